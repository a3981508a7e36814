//! A writer process killed with SIGKILL at random moments loses nothing it
//! acknowledged, and leaves a log without gaps.
//!
//! The test runs itself as the writer: the parent starts its own binary with
//! this test's name and an environment variable, the child appends batches
//! in a loop and prints a line for each acknowledged one, and the parent
//! kills it after a (seeded) random number of acknowledgements, reopens the
//! store and checks. SIGKILL keeps the page cache, so this proves the log's
//! atomicity and recovery; the power-loss test in `durability` proves the
//! fsyncs.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use laterbase::{Config, EventId, NewEvent, Node};
use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::support::{assert_contiguous, read_feed, runtime};

const CHILD_DIR_ENV: &str = "LATERBASE_TEST_CRASH_DIR";
const CHILD_ROUND_ENV: &str = "LATERBASE_TEST_CRASH_ROUND";
const ROUNDS: u64 = 4;
const WRITERS: u64 = 4;
/// Bounds the child's life if the parent never kills it.
const CHILD_BATCHES_MAX: u64 = 20_000;

fn data(round: u64, writer: u64, batch: u64, index: u64) -> String {
    format!("{{\"round\":{round},\"writer\":{writer},\"batch\":{batch},\"index\":{index}}}")
}

/// Every other event carries a backdated writer id, unique to its place.
fn writer_id(round: u64, writer: u64, batch: u64, index: u64) -> Option<EventId> {
    (index % 2 == 1).then(|| {
        let time = 1_600_000_000_000 + round * 10_000_000 + writer * 1_000_000 + batch;
        EventId::from_parts(time, u128::from(index))
    })
}

#[test]
fn acknowledged_events_survive_sigkill() {
    if let Some(dir) = std::env::var_os(CHILD_DIR_ENV) {
        let round = std::env::var(CHILD_ROUND_ENV)
            .expect("round")
            .parse()
            .expect("round");
        return run_writer(Path::new(&dir), round);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = StdRng::seed_from_u64(0xdead_beef);
    let mut acknowledged: BTreeMap<EventId, String> = BTreeMap::new();
    let mut newest_assigned: Option<EventId> = None;
    for round in 0..ROUNDS {
        let kill_after = 5 + rng.next_u64() % 60;
        let acks = run_and_kill(dir.path(), round, kill_after);
        assert!(
            acks.len() as u64 >= kill_after,
            "the child acknowledged {} batches",
            acks.len()
        );
        let mut round_assigned = Vec::new();
        for (writer, batch, ids) in acks {
            for (index, id) in (0..).zip(ids) {
                if writer_id(round, writer, batch, index).is_none() {
                    round_assigned.push(id);
                }
                acknowledged.insert(id, data(round, writer, batch, index));
            }
        }
        if let (Some(before), Some(first)) = (newest_assigned, round_assigned.iter().min()) {
            assert!(
                *first > before,
                "ids assigned after a restart are larger than before it"
            );
        }
        newest_assigned = round_assigned.into_iter().max().or(newest_assigned);
        runtime().block_on(check_store(dir.path(), &acknowledged));
    }
}

/// Starts the writer, kills it with SIGKILL after `kill_after` acknowledged
/// batches, and returns every batch it acknowledged: (writer, batch, ids).
fn run_and_kill(dir: &Path, round: u64, kill_after: u64) -> Vec<(u64, u64, Vec<EventId>)> {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "crash::acknowledged_events_survive_sigkill",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_ENV, dir)
        .env(CHILD_ROUND_ENV, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the writer");
    let stdout = child.stdout.take().expect("stdout");
    let mut acks = Vec::new();
    let mut killed = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read");
        let Some(ack) = line.strip_prefix("ACK ") else {
            continue;
        };
        let mut fields = ack.split(' ');
        let mut number = || fields.next().expect("field").to_owned();
        let writer: u64 = number().parse().expect("writer");
        let batch: u64 = number().parse().expect("batch");
        let ids = number()
            .split(',')
            .map(|id| id.parse().expect("id"))
            .collect();
        acks.push((writer, batch, ids));
        if !killed && acks.len() as u64 >= kill_after {
            child.kill().expect("SIGKILL");
            killed = true;
        }
    }
    let status = child.wait().expect("wait");
    assert!(killed, "the writer exited on its own: {status}");
    acks
}

async fn check_store(dir: &Path, acknowledged: &BTreeMap<EventId, String>) {
    let node = Node::open(Config::new(dir))
        .await
        .expect("reopen after SIGKILL");
    let db = node.database("crash").expect("the database survives");
    let feed = read_feed(&db, 1000).await;
    assert_contiguous(&feed);
    let stored: BTreeMap<EventId, &[u8]> = feed.iter().map(|e| (e.id, &e.data[..])).collect();
    assert_eq!(stored.len(), feed.len(), "no id is stored twice");
    for (id, data) in acknowledged {
        assert_eq!(
            stored.get(id).copied(),
            Some(data.as_bytes()),
            "acknowledged event {id}"
        );
    }
    node.shutdown().await.expect("shutdown");
}

fn run_writer(dir: &Path, round: u64) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let node = Node::open(Config::new(dir)).await.expect("open");
        let db = node.create_database("crash").await.expect("create");
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let db = db.clone();
                tokio::spawn(async move {
                    for batch in 0..CHILD_BATCHES_MAX {
                        let events = (0..1 + batch % 16)
                            .map(|index| {
                                let data = data(round, writer, batch, index);
                                match writer_id(round, writer, batch, index) {
                                    Some(id) => NewEvent::with_id(id, data),
                                    None => NewEvent::new(data),
                                }
                            })
                            .collect();
                        let receipt = db.append(events).await.expect("append");
                        let ids: Vec<String> =
                            receipt.ids.iter().map(ToString::to_string).collect();
                        let mut stdout = std::io::stdout().lock();
                        writeln!(stdout, "ACK {writer} {batch} {}", ids.join(",")).expect("print");
                        stdout.flush().expect("flush");
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await.expect("writer");
        }
    });
}
