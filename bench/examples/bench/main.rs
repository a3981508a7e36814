//! Laterbase's benchmark program: figures printed beside baselines measured
//! in the same run.
//!
//! Run with: `cargo run --release --example bench -- ingest` (or `-- http`,
//! `-- sync`, `-- views`, `-- live`)
//!
//! Each figure is the median of `--runs` runs on fresh directories under
//! `--dir` (default: the system's temporary directory).

mod http;
mod ingest;
mod live;
mod sync;
mod views;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
    /// The anchors' workload B: a full copy to an empty node, then rounds.
    Sync {
        /// Events node A holds.
        #[arg(long, default_value_t = 100_000)]
        events: usize,
        /// Where the nodes' data directories are made.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Run each node in a process of its own and report each one's peak
        /// memory (the full copy only, as B's own sync worker runs it).
        #[arg(long)]
        processes: bool,
        /// With `--processes`: A has B as its peer too, as B has A.
        #[arg(long)]
        both_ways: bool,
    },
    /// Views through a node: catch-up, backdated events, read latency.
    Views {
        /// Events stored in each database.
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Where the node's data directory is made.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Live streams and pushing peers: stream latency, ingest with streams
    /// open, write-to-peer latency, idle bytes between peers.
    Live {
        /// Where the nodes' data directories are made.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// A node, for `sync --processes` (this program's `laterbase serve`).
    #[command(hide = true)]
    Node(Box<laterbase::cli::ServeArgs>),
    /// The anchors' workloads A (ingest) and C (changes feed) over HTTP.
    Http {
        /// Events per workload.
        #[arg(long, default_value_t = 100_000)]
        events: usize,
        /// Runs per figure; the median is printed.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Where the runs' data directories are made.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

// With glibc's allocator, memory freed on another thread than the one that
// allocated it (as a commit's batches are) cost a fifth of the ingest rate on
// the 2-core machine this was measured on; every case runs on mimalloc alike,
// as the `laterbase` binary does.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    match Args::parse().workload {
        Workload::Ingest {
            events,
            runs,
            dir,
            only,
        } => ingest::run(&ingest::Ingest {
            events,
            runs,
            parent: dir,
            only,
        }),
        Workload::Http { events, runs, dir } => http::run(events, runs, dir.as_deref()),
        Workload::Sync {
            events,
            dir,
            processes: false,
            ..
        } => sync::run(events, dir.as_deref()),
        Workload::Sync {
            events,
            dir,
            processes: true,
            both_ways,
        } => sync::run_processes(events, dir.as_deref(), both_ways),
        Workload::Views { events, dir } => views::run(events, dir.as_deref()),
        Workload::Live { dir } => live::run(dir.as_deref()),
        Workload::Node(args) => return laterbase::cli::serve(*args),
    }
    std::process::ExitCode::SUCCESS
}
