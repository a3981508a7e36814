//! `ingest`: durable appends through the embedding API beside raw fjall and
//! raw LMDB with the same batches and one fsync per batch; then 64 concurrent
//! writers of 10-event batches (group commit at work), and batches of
//! backdated ids in random order.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use laterbase::{Config, NewEvent, Node};
use laterbase_bench::{Item, increasing, report, scattered, timed};

const VALUE_BYTES: usize = 100;
const BATCH_EVENTS: usize = 1_000;
const WRITERS: usize = 64;
const WRITER_BATCH_EVENTS: usize = 10;

/// What `ingest` was asked for.
pub struct Ingest {
    pub events: usize,
    pub runs: usize,
    pub parent: Option<PathBuf>,
    pub only: Vec<String>,
}

impl Ingest {
    fn wants(&self, case: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|only| only == case)
    }

    /// A fresh directory for one run.
    fn fresh_dir(&self) -> tempfile::TempDir {
        laterbase_bench::fresh_dir(self.parent.as_deref())
    }
}

/// One run of a case: its time and, for some cases, one more figure.
type RunFn<'a> = Box<dyn FnMut(&Path) -> (Duration, f64) + 'a>;

fn case<'a>(name: &'static str, label: &'static str, run: RunFn<'a>) -> Case<'a> {
    Case {
        name,
        label,
        run,
        times: Vec::new(),
        figure: 0.0,
    }
}

/// One case of a workload: what it prints and how one run goes. A run
/// returns its time and, for some cases, one more figure.
struct Case<'a> {
    name: &'static str,
    label: &'static str,
    run: RunFn<'a>,
    times: Vec<Duration>,
    figure: f64,
}

/// Runs every case asked for and prints its figures.
pub fn run(args: &Ingest) {
    let events = args.events;
    let batches = increasing(events, BATCH_EVENTS, VALUE_BYTES, 1);
    let small = increasing(events, WRITER_BATCH_EVENTS, VALUE_BYTES, 2);
    let backdated = scattered(events, BATCH_EVENTS, VALUE_BYTES, 3);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let runtime = &runtime;
    let mut cases = vec![
        case(
            "fjall",
            "raw fjall, batches of 1,000",
            Box::new(|dir| (raw_fjall(&batches, dir), 0.0)),
        ),
        case(
            "layout",
            "raw fjall, laterbase's key layout",
            Box::new(|dir| (raw_fjall_layout(&batches, dir), 0.0)),
        ),
        case(
            "lmdb",
            "raw LMDB (heed), batches of 1,000",
            Box::new(|dir| (raw_lmdb(&batches, dir), 0.0)),
        ),
        case(
            "batches",
            "laterbase, batches of 1,000",
            Box::new(|dir| (runtime.block_on(laterbase_batches(&batches, dir)), 0.0)),
        ),
        case(
            "writers",
            "laterbase, 64 writers x 10 events",
            Box::new(|dir| runtime.block_on(laterbase_writers(&small, dir))),
        ),
        case(
            "backdated",
            "laterbase, backdated random ids",
            Box::new(|dir| (runtime.block_on(laterbase_batches(&backdated, dir)), 0.0)),
        ),
    ];
    cases.retain(|case| args.wants(case.name));
    println!(
        "ingest: {events} events of {VALUE_BYTES} bytes, durable (fsync before acknowledging), \
         median of {} runs, cases interleaved",
        args.runs
    );
    // Round-robin, so that a drifting machine weighs on every case alike.
    for _ in 0..args.runs.max(1) {
        for case in &mut cases {
            let dir = args.fresh_dir();
            let (time, figure) = (case.run)(dir.path());
            case.times.push(time);
            case.figure = figure;
        }
    }
    let times = |name: &str| {
        cases
            .iter()
            .find(|case| case.name == name)
            .map(|case| case.times.clone())
    };
    for case in &cases {
        let time = median(case.times.clone());
        let note = match case.name {
            "fjall" => "baseline".to_owned(),
            "writers" => format!("{:.3} fsyncs per acknowledged batch", case.figure),
            "backdated" => ratio(times("batches"), &case.times, "in-order ids"),
            _ => ratio(times("fjall"), &case.times, "raw fjall"),
        };
        report(case.label, events, time, &note);
    }
}

fn median<T: Ord + Copy>(mut values: Vec<T>) -> T {
    values.sort();
    values[values.len() / 2]
}

/// The median of the runs' ratios: each run's case against the baseline's
/// run next to it, so that drift between runs cancels out.
fn ratio(baseline: Option<Vec<Duration>>, measured: &[Duration], of: &str) -> String {
    let Some(baseline) = baseline else {
        return String::new();
    };
    let ratios: Vec<u64> = baseline
        .iter()
        .zip(measured)
        .map(|(base, time)| (base.as_secs_f64() / time.as_secs_f64() * 1e6) as u64)
        .collect();
    format!(
        "{:.2} of {of} (median of paired runs)",
        median(ratios) as f64 / 1e6
    )
}

pub fn raw_fjall(batches: &[Vec<Item>], dir: &Path) -> Duration {
    let db = fjall::Database::builder(dir).open().expect("open fjall");
    let events = db
        .keyspace("events", fjall::KeyspaceCreateOptions::default)
        .expect("keyspace");
    timed(|| {
        for batch in batches {
            let mut writes = db.batch();
            for (id, value) in batch {
                writes.insert(&events, id.to_bytes(), value.as_slice());
            }
            writes.commit().expect("commit");
            db.persist(fjall::PersistMode::SyncAll).expect("fsync");
        }
    })
}

/// Raw fjall writing the keys Laterbase writes: the log in chunks by lc, and
/// the index from id to lc.
fn raw_fjall_layout(batches: &[Vec<Item>], dir: &Path) -> Duration {
    let db = fjall::Database::builder(dir).open().expect("open fjall");
    let log = db
        .keyspace("log", fjall::KeyspaceCreateOptions::default)
        .expect("keyspace");
    let ids = db
        .keyspace("ids", fjall::KeyspaceCreateOptions::default)
        .expect("keyspace");
    let mut lc: u64 = 0;
    timed(|| {
        for batch in batches {
            let mut writes = db.batch();
            for chunk in batch.chunks(laterbase::limits::LOG_CHUNK_EVENTS_MAX) {
                let first_lc = lc + 1;
                let mut value = Vec::with_capacity(4 + chunk.len() * (28 + VALUE_BYTES));
                value.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
                for (id, data) in chunk {
                    lc += 1;
                    value.extend_from_slice(&id.to_bytes());
                    value.extend_from_slice(&id.time_ms().to_be_bytes());
                    value.extend_from_slice(&(data.len() as u32).to_be_bytes());
                    value.extend_from_slice(data);
                    writes.insert(&ids, id.to_bytes(), lc.to_be_bytes());
                }
                writes.insert(&log, first_lc.to_be_bytes(), value);
            }
            writes.commit().expect("commit");
            db.persist(fjall::PersistMode::SyncAll).expect("fsync");
        }
    })
}

fn raw_lmdb(batches: &[Vec<Item>], dir: &Path) -> Duration {
    #[allow(
        unsafe_code,
        reason = "each environment is opened once, in a fresh directory"
    )]
    let env = unsafe {
        heed::EnvOpenOptions::new()
            .map_size(8 << 30)
            .open(dir)
            .expect("open LMDB")
    };
    let mut setup = env.write_txn().expect("txn");
    let events: heed::Database<heed::types::Bytes, heed::types::Bytes> =
        env.create_database(&mut setup, None).expect("database");
    setup.commit().expect("commit");
    timed(|| {
        for batch in batches {
            let mut txn = env.write_txn().expect("txn");
            for (id, value) in batch {
                events.put(&mut txn, &id.to_bytes(), value).expect("put");
            }
            // An LMDB commit fsyncs by default.
            txn.commit().expect("commit");
        }
    })
}

fn to_events(batch: &[Item]) -> Vec<NewEvent> {
    batch
        .iter()
        .map(|(id, value)| NewEvent::with_id(*id, value.clone()))
        .collect()
}

async fn laterbase_batches(batches: &[Vec<Item>], dir: &Path) -> Duration {
    let node = Node::open(Config::new(dir)).await.expect("open");
    let db = node.create_database("bench").await.expect("create");
    let prepared: Vec<Vec<NewEvent>> = batches.iter().map(|batch| to_events(batch)).collect();
    let start = Instant::now();
    for batch in prepared {
        db.append(batch).await.expect("append");
    }
    let elapsed = start.elapsed();
    node.shutdown().await.expect("shutdown");
    elapsed
}

/// Returns the time and the fsyncs per acknowledged batch.
async fn laterbase_writers(batches: &[Vec<Item>], dir: &Path) -> (Duration, f64) {
    let node = Node::open(Config::new(dir)).await.expect("open");
    let db = node.create_database("bench").await.expect("create");
    let mut shares: Vec<Vec<Vec<NewEvent>>> = vec![Vec::new(); WRITERS];
    for (index, batch) in batches.iter().enumerate() {
        shares[index % WRITERS].push(to_events(batch));
    }
    let before = db.stats();
    let start = Instant::now();
    let writers: Vec<_> = shares
        .into_iter()
        .map(|share| {
            let db = db.clone();
            tokio::spawn(async move {
                for batch in share {
                    db.append(batch).await.expect("append");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    let elapsed = start.elapsed();
    let after = db.stats();
    let per_batch =
        (after.persists - before.persists) as f64 / (after.appends - before.appends) as f64;
    node.shutdown().await.expect("shutdown");
    (elapsed, per_batch)
}
