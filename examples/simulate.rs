//! Runs seeded simulations of whole clusters and prints every failing seed
//! with the command that replays it.
//!
//! Run with: `cargo run --release --example simulate -- --seeds 1000`
//! (`--seed N` for one seed, `--nodes`, `--faults partitions,crashes,...`,
//! `--verbose` for the nodes' logs).

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use laterbase_simulation::{Mix, run};

#[derive(Parser)]
#[command(about = "Deterministic simulations of Laterbase clusters")]
struct Args {
    /// How many seeds to run, from `--first`.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    first: u64,
    /// Run this one seed only.
    #[arg(long)]
    seed: Option<u64>,
    /// Nodes per cluster.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// The faults to inject: partitions, links, crashes, disks, skew,
    /// conflicts, or all.
    #[arg(long, default_value = "all")]
    faults: String,
    /// Print the nodes' logs (tracing, at `RUST_LOG` or info).
    #[arg(long)]
    verbose: bool,
    /// Print every seed's digest and figures, not only failures.
    #[arg(long)]
    digests: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mix = match Mix::parse(&args.faults) {
        Ok(mix) => mix,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    if args.verbose {
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
            )
            .init();
    }
    if args.nodes < 2 {
        eprintln!("--nodes must be at least 2");
        return ExitCode::FAILURE;
    }
    let seeds: Vec<u64> = match args.seed {
        Some(seed) => vec![seed],
        None => (args.first..args.first.saturating_add(args.seeds)).collect(),
    };
    let start = Instant::now();
    let mut failures = 0;
    for &seed in &seeds {
        let outcome = std::panic::catch_unwind(|| run(seed, args.nodes, mix))
            .unwrap_or_else(|panic| Err(format!("panicked: {}", panic_message(&panic))));
        match outcome {
            Ok(outcome) if args.seed.is_some() || args.digests => {
                println!(
                    "seed {seed}: ok, digest {:016x}; {}",
                    outcome.digest, outcome.summary
                );
            }
            Ok(_) => {}
            Err(error) => {
                failures += 1;
                println!("seed {seed} FAILED: {error}");
                println!(
                    "  replay: cargo run --release --example simulate -- --seed {seed} --nodes {} --faults {}",
                    args.nodes, args.faults
                );
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "{} seeds, {failures} failed, in {elapsed:.1} s ({:.2} seeds/s)",
        seeds.len(),
        seeds.len() as f64 / elapsed
    );
    if failures > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|text| (*text).to_owned()))
        .unwrap_or_else(|| "a panic without a message".to_owned())
}
