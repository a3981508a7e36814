//! Whole clusters in the deterministic simulation: one scripted scenario per
//! fault, replay of a seed, and a fixed budget of random seeds.
//!
//! Every scenario ends with `assert_converged()`: the clients stop, every
//! link heals, every node runs, the cluster goes quiet, and then every node
//! must hold the same events (ids, bytes, `recorded_at`), a superset of what
//! was acknowledged, with contiguous logical clocks and views equal to the
//! fold of its events in id order.

use std::time::Duration;

use laterbase_simulation::{Cluster, Mix, Options, run};

fn seconds(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

fn cluster(seed: u64) -> Cluster {
    Cluster::new(Options { seed, nodes: 3 })
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

#[test]
fn a_seed_replays_exactly() {
    let first = run(11, 3, Mix::ALL).expect("seed 11 converges");
    let second = run(11, 3, Mix::ALL).expect("seed 11 converges");
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
