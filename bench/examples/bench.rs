//! Laterbase's benchmark program: figures printed beside baselines measured
//! in the same run.
//!
//! Run with: `cargo run --release --example bench -- ingest`
//!
//! `ingest` appends events of 100 bytes with durability on, in batches of
//! 1,000, through the embedding API and, with the same batches and one fsync
//! per batch, through raw fjall and raw LMDB; then 64 concurrent writers of
//! 10-event batches (group commit at work), and batches of backdated ids in
//! random order. Each figure is the median of `--runs` runs on fresh
//! directories under `--dir` (default: the system's temporary directory).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use laterbase::{Config, NewEvent, Node};
use laterbase_bench::{Item, increasing, median_of, report, scattered, timed};

#[derive(Parser)]
#[command(about = "Laterbase benchmarks: figures beside baselines from the same run")]
struct Args {
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Subcommand)]
enum Workload {
    /// Durable ingest through the embedding API, raw fjall and raw LMDB.
    Ingest {
        /// Events per workload.
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        /// Runs per figure; the median is printed.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Where the runs' data directories are made.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Run only these cases (fjall, layout, lmdb, batches, writers, backdated).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
}

const VALUE_BYTES: usize = 100;
const BATCH_EVENTS: usize = 1_000;
const WRITERS: usize = 64;
const WRITER_BATCH_EVENTS: usize = 10;

fn main() {
    match Args::parse().workload {
        Workload::Ingest {
            events,
            runs,
            dir,
            only,
        } => ingest(&Ingest {
            events,
            runs,
            parent: dir,
            only,
        }),
    }
}

struct Ingest {
    events: usize,
    runs: usize,
    parent: Option<PathBuf>,
    only: Vec<String>,
}

impl Ingest {
    fn wants(&self, case: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|only| only == case)
    }

    /// The median time of the case's runs, each on a fresh directory.
    fn measure(&self, mut run: impl FnMut(&Path) -> Duration) -> Duration {
        median_of(self.runs, || {
            let dir = match &self.parent {
                Some(parent) => tempfile::tempdir_in(parent),
                None => tempfile::tempdir(),
            }
            .expect("a fresh directory");
            run(dir.path())
        })
    }
}

fn ingest(args: &Ingest) {
    let events = args.events;
    let batches = increasing(events, BATCH_EVENTS, VALUE_BYTES, 1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "ingest: {events} events of {VALUE_BYTES} bytes, durable (fsync before acknowledging), median of {}",
        args.runs
    );
    let mut fjall = None;
    if args.wants("fjall") {
        let elapsed = args.measure(|dir| raw_fjall(&batches, dir));
        report("raw fjall, batches of 1,000", events, elapsed, "baseline");
        fjall = Some(elapsed);
    }
    if args.wants("layout") {
        let elapsed = args.measure(|dir| raw_fjall_layout(&batches, dir));
        report(
            "raw fjall, laterbase's key layout",
            events,
            elapsed,
            &ratio(fjall, elapsed, "raw fjall"),
        );
    }
    if args.wants("lmdb") {
        let elapsed = args.measure(|dir| raw_lmdb(&batches, dir));
        report(
            "raw LMDB (heed), batches of 1,000",
            events,
            elapsed,
            &ratio(fjall, elapsed, "raw fjall"),
        );
    }
    let mut in_order = None;
    if args.wants("batches") {
        let elapsed = args.measure(|dir| runtime.block_on(laterbase_batches(&batches, dir)));
        report(
            "laterbase, batches of 1,000",
            events,
            elapsed,
            &ratio(fjall, elapsed, "raw fjall"),
        );
        in_order = Some(elapsed);
    }
    if args.wants("writers") {
        let small = increasing(events, WRITER_BATCH_EVENTS, VALUE_BYTES, 2);
        let mut fsyncs_per_batch = 0.0;
        let elapsed = args.measure(|dir| {
            let (elapsed, per_batch) = runtime.block_on(laterbase_writers(&small, dir));
            fsyncs_per_batch = per_batch;
            elapsed
        });
        let note = format!("{fsyncs_per_batch:.3} fsyncs per acknowledged batch");
        report("laterbase, 64 writers x 10 events", events, elapsed, &note);
    }
    if args.wants("backdated") {
        let backdated = scattered(events, BATCH_EVENTS, VALUE_BYTES, 3);
        let elapsed = args.measure(|dir| runtime.block_on(laterbase_batches(&backdated, dir)));
        report(
            "laterbase, backdated random ids",
            events,
            elapsed,
            &ratio(in_order, elapsed, "in-order ids"),
        );
    }
}

fn ratio(baseline: Option<Duration>, measured: Duration, of: &str) -> String {
    match baseline {
        Some(baseline) => format!(
            "{:.2} of {of}",
            baseline.as_secs_f64() / measured.as_secs_f64()
        ),
        None => String::new(),
    }
}

fn raw_fjall(batches: &[Vec<Item>], dir: &Path) -> Duration {
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
