//! Whole clusters in the deterministic simulation: one scripted scenario per
//! fault, replay of a seed, and a fixed budget of random seeds.
//!
//! Every scenario ends with `assert_converged()`: the clients stop, every
//! link heals, every node runs, the cluster goes quiet, and then every node
//! must hold the same events (ids, bytes, `recorded_at`), a superset of what
//! was acknowledged, with contiguous logical clocks and views equal to the
//! fold of its events in id order.

mod fleet;

use std::time::Duration;

use laterbase_simulation::{Cluster, Mix, Options, Topology, run};

fn seconds(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

fn cluster(seed: u64) -> Cluster {
    Cluster::new(Options {
        seed,
        nodes: 3,
        topology: Topology::Mesh,
    })
}

/// A hub (node 0) that dials nobody, and trucks that dial only the hub.
fn hub(seed: u64) -> Cluster {
    Cluster::new(Options {
        seed,
        nodes: 4,
        topology: Topology::Hub,
    })
}

fn converged(mut cluster: Cluster) -> u64 {
    cluster
        .assert_converged()
        .unwrap_or_else(|error| panic!("not converged: {error}"))
}

#[test]
fn a_partition_heals_and_both_sides_converge() {
    let mut c = cluster(1);
    c.run_for(seconds(1)).expect("run");
    c.partition(0, 1);
    c.partition(0, 2);
    c.run_for(seconds(3)).expect("run");
    c.heal();
    converged(c);
}

/// Trucks behind NAT hear of each other's writes only through the hub,
/// and of the hub's only over the watches they hold open on it, whose
/// notices are lost and repeated here: nothing is lost, whatever is cut.
#[test]
fn trucks_that_only_dial_the_hub_converge_through_it() {
    let mut c = hub(5);
    c.run_for(seconds(1)).expect("run");
    c.partition(0, 1);
    c.run_for(seconds(2)).expect("run");
    c.heal();
    c.crash(0);
    c.run_for(seconds(1)).expect("run");
    c.restart(0);
    c.run_for(seconds(2)).expect("run");
    converged(c);
}

#[test]
fn a_one_way_partition_heals() {
    let mut c = cluster(2);
    c.run_for(seconds(1)).expect("run");
    c.partition_oneway(0, 1);
    c.partition_oneway(2, 0);
    c.run_for(seconds(3)).expect("run");
    c.heal();
    converged(c);
}

#[test]
fn slow_failing_links_still_converge() {
    let mut c = cluster(3);
    c.degrade(Duration::from_millis(400), 0.03);
    c.run_for(seconds(5)).expect("run");
    converged(c);
}

#[test]
fn a_crashed_node_keeps_what_it_acknowledged() {
    let mut c = cluster(4);
    c.run_for(seconds(2)).expect("run");
    // Clients time out against the dead node and retry elsewhere.
    c.crash(1);
    c.run_for(seconds(3)).expect("run");
    assert!(c.timeouts() > 0, "the clients of the dead node timed out");
    c.restart(1);
    c.run_for(seconds(1)).expect("run");
    assert!(c.batches_acknowledged() > 20, "the clients wrote");
    converged(c);
}

#[test]
fn a_node_that_lost_its_disk_gets_everything_back() {
    let mut c = cluster(5);
    c.run_for(seconds(2)).expect("run");
    c.wipe(2);
    c.run_for(seconds(3)).expect("run");
    converged(c);
}

#[test]
fn a_node_restored_from_an_old_backup_resyncs() {
    let mut c = cluster(6);
    c.run_for(seconds(1)).expect("run");
    c.backup(0);
    c.run_for(seconds(2)).expect("run");
    c.partition(0, 1);
    c.run_for(seconds(1)).expect("run");
    c.restore(0);
    c.run_for(seconds(2)).expect("run");
    c.heal();
    converged(c);
}

#[test]
fn skewed_clocks_within_and_beyond_the_allowed_skew() {
    let mut c = cluster(7);
    c.skew(0, 20_000);
    c.skew(1, -240_000);
    c.skew(2, 300_000);
    c.run_for(seconds(4)).expect("run");
    converged(c);
}

#[test]
fn one_id_written_with_different_bytes_across_a_partition_has_one_winner() {
    let mut c = cluster(8);
    c.run_for(seconds(1)).expect("run");
    c.partition(0, 1);
    c.conflict(0, 1);
    c.conflict(1, 2);
    c.run_for(seconds(2)).expect("run");
    c.heal();
    converged(c);
}

/// Set in the child processes of [`a_seed_replays_exactly`]: the seed the
/// child runs and prints the outcome of.
const REPLAY_SEED: &str = "LATERBASE_SIMULATION_REPLAY_SEED";

/// A seed replays exactly in a process of its own, as the runner replays
/// it: each run is a child process (this test binary, running this test
/// alone with [`REPLAY_SEED`] set), because tests running beside each other
/// in one process share tokio's task numbers, on which the order a crashed
/// host's connections close depends.
#[test]
fn a_seed_replays_exactly() {
    if let Ok(seed) = std::env::var(REPLAY_SEED) {
        let seed: u64 = seed.parse().expect("a seed is a number");
        let outcome = run(seed, 3, Mix::ALL).expect("the seed converges");
        println!("outcome: {} {}", outcome.digest, outcome.summary);
        return;
    }
    let replay = || {
        let output = std::process::Command::new(std::env::current_exe().expect("this test binary"))
            .args([
                "--exact",
                "a_seed_replays_exactly",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(REPLAY_SEED, "11")
            .output()
            .expect("the child runs");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "the child failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        // The harness may print the test's name on the same line.
        stdout
            .lines()
            .find_map(|line| line.split_once("outcome: "))
            .map(|(_, outcome)| outcome.to_owned())
            .unwrap_or_else(|| panic!("the child printed no outcome: {stdout}"))
    };
    let first = replay();
    let second = replay();
    assert_eq!(first, second);
}

/// Random seeds, split in two so that both cores run them. The budget is
/// sized to a few minutes on 2 cores; `cargo run --release --example
/// simulate -- --seeds 1000` runs more.
const SEEDS_PER_HALF: u64 = 120;

fn random_seeds(first: u64) {
    let mut failed = Vec::new();
    for seed in first..first + SEEDS_PER_HALF {
        if let Err(error) = run(seed, 3, Mix::ALL) {
            failed.push(format!(
                "seed {seed}: {error}\n  replay: cargo run --release --example simulate -- --seed {seed}"
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn random_seeds_first_half() {
    random_seeds(1_000);
}

#[test]
fn random_seeds_second_half() {
    random_seeds(1_000 + SEEDS_PER_HALF);
}
