//! Shared pieces of Laterbase's benchmark programs: workloads made before the
//! clock starts, timing, and how figures are printed.
//!
//! The programs live in `examples/`; each prints what it measured, beside a
//! baseline measured in the same run.

use std::time::{Duration, Instant};

use laterbase::EventId;
use rand::{Rng, SeedableRng, rngs::StdRng};

/// An event of a workload: its id and value.
pub type Item = (EventId, Vec<u8>);

/// `count` events with strictly increasing ids (one millisecond apart from
/// `start_ms`) and random values of `value_bytes`, grouped in batches.
pub fn increasing(count: usize, batch: usize, value_bytes: usize, seed: u64) -> Vec<Vec<Item>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let start_ms = 1_700_000_000_000;
    let items: Vec<Item> = (0..count as u64)
        .map(|n| {
            let id = EventId::from_parts(start_ms + n, u128::from(rng.next_u64()));
            (id, value(&mut rng, value_bytes))
        })
        .collect();
    items.chunks(batch).map(<[Item]>::to_vec).collect()
}

/// The batches of [`increasing`], made one at a time, for workloads too
/// large to hold in memory beside the nodes they load.
pub fn increasing_lazily(
    count: usize,
    batch: usize,
    value_bytes: usize,
    seed: u64,
) -> impl Iterator<Item = Vec<Item>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let start_ms = 1_700_000_000_000;
    (0..count as u64).step_by(batch.max(1)).map(move |first| {
        (first..(first + batch as u64).min(count as u64))
            .map(|n| {
                let id = EventId::from_parts(start_ms + n, u128::from(rng.next_u64()));
                (id, value(&mut rng, value_bytes))
            })
            .collect()
    })
}

/// `count` events with ids at random past times, in random order: backdated
/// writes, each batch scattered over the whole key space.
pub fn scattered(count: usize, batch: usize, value_bytes: usize, seed: u64) -> Vec<Vec<Item>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let items: Vec<Item> = (0..count)
        .map(|_| {
            let time = 1_500_000_000_000 + rng.next_u64() % 200_000_000_000;
            let id = EventId::from_parts(time, u128::from(rng.next_u64()));
            (id, value(&mut rng, value_bytes))
        })
        .collect();
    items.chunks(batch).map(<[Item]>::to_vec).collect()
}

fn value(rng: &mut StdRng, bytes: usize) -> Vec<u8> {
    let mut value = vec![0; bytes];
    rng.fill_bytes(&mut value);
    value
}

/// A fresh directory for one run, under `parent` or the system's temporary
/// directory; removed when dropped.
pub fn fresh_dir(parent: Option<&std::path::Path>) -> tempfile::TempDir {
    match parent {
        Some(parent) => tempfile::tempdir_in(parent),
        None => tempfile::tempdir(),
    }
    .expect("a fresh directory")
}

/// Runs `work` `runs` times and returns the median duration.
pub fn median_of<F: FnMut() -> Duration>(runs: usize, mut work: F) -> Duration {
    let mut durations: Vec<Duration> = (0..runs.max(1)).map(|_| work()).collect();
    durations.sort();
    durations[durations.len() / 2]
}

/// Times one call.
pub fn timed(work: impl FnOnce()) -> Duration {
    let start = Instant::now();
    work();
    start.elapsed()
}

/// Events per second.
pub fn rate(events: usize, elapsed: Duration) -> f64 {
    events as f64 / elapsed.as_secs_f64()
}

/// Prints one figure: a label, the rate, the time, and a note.
pub fn report(label: &str, events: usize, elapsed: Duration, note: &str) {
    println!(
        "  {label:<34} {:>12} events/s  {:>8.3} s  {note}",
        thousands(rate(events, elapsed)),
        elapsed.as_secs_f64()
    );
}

/// A number with thousands separators.
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// The process's peak resident memory (VmHWM) in MiB, where Linux tells it.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
