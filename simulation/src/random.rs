//! Randomised runs: a seed picks the faults, their targets and their
//! timing from the fault mix; every run ends healed, quiet and checked.

use std::time::Duration;

use rand::RngExt;

use crate::cluster::{Cluster, Options, Topology};

/// Which faults a randomised run may inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mix {
    /// Symmetric and one-way partitions, and their healing.
    pub partitions: bool,
    /// Slow, failing links.
    pub degraded_links: bool,
    /// Crashes (power loss) and restarts.
    pub crashes: bool,
    /// Restarts on an empty disk, and on an older backup.
    pub disk_loss: bool,
    /// Clocks skewed within and beyond the allowed skew.
    pub clock_skew: bool,
    /// One id written with different bytes on two nodes.
    pub conflicts: bool,
}

impl Mix {
    /// Every fault.
    pub const ALL: Mix = Mix {
        partitions: true,
        degraded_links: true,
        crashes: true,
        disk_loss: true,
        clock_skew: true,
        conflicts: true,
    };

    /// Parses a comma-separated list of `partitions`, `links`, `crashes`,
    /// `disks`, `skew`, `conflicts`, or `all`.
    pub fn parse(text: &str) -> Result<Mix, String> {
        let mut mix = Mix {
            partitions: false,
            degraded_links: false,
            crashes: false,
            disk_loss: false,
            clock_skew: false,
            conflicts: false,
        };
        for name in text
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
        {
            match name {
                "all" => mix = Mix::ALL,
                "partitions" => mix.partitions = true,
                "links" => mix.degraded_links = true,
                "crashes" => mix.crashes = true,
                "disks" => mix.disk_loss = true,
                "skew" => mix.clock_skew = true,
                "conflicts" => mix.conflicts = true,
                other => {
                    return Err(format!(
                        "unknown fault {other:?}: expected partitions, links, crashes, disks, skew, conflicts or all"
                    ));
                }
            }
        }
        Ok(mix)
    }
}

/// The result of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The digest of everything that happened and what every node holds.
    pub digest: u64,
    /// Figures of the run.
    pub summary: String,
}

/// Phases of faults in one randomised run.
const PHASES: usize = 12;

/// Runs one seed: `nodes` nodes under faults drawn from `mix`, then healed
/// and checked.
pub fn run(seed: u64, nodes: usize, mix: Mix) -> Result<Outcome, String> {
    // Odd seeds run a hub and its trucks, even ones a mesh.
    let topology = if seed % 2 == 1 {
        Topology::Hub
    } else {
        Topology::Mesh
    };
    let mut cluster = Cluster::new(Options {
        seed,
        nodes,
        topology,
    });
    let digest = drive(&mut cluster, mix)?;
    Ok(Outcome {
        digest,
        summary: cluster.summary(),
    })
}

/// Drives `cluster` through a randomised run; its digest.
pub fn drive(cluster: &mut Cluster, mix: Mix) -> Result<u64, String> {
    cluster.run_for(Duration::from_millis(500))?;
    for _ in 0..PHASES {
        inject(cluster, mix);
        let pause = cluster.rng().random_range(200..1_500);
        cluster.run_for(Duration::from_millis(pause))?;
    }
    cluster.assert_converged()
}

/// One fault from `mix`, on nodes the seed picks.
fn inject(cluster: &mut Cluster, mix: Mix) {
    let nodes = cluster.nodes();
    let rng = cluster.rng();
    let a = rng.random_range(0..nodes);
    let b = (a + rng.random_range(1..nodes.max(2))) % nodes;
    let choice = rng.random_range(0..12);
    let skew = if rng.random_bool(0.5) {
        rng.random_range(-30_000..30_000)
    } else {
        rng.random_range(-300_000..300_000)
    };
    let latency = Duration::from_millis(rng.random_range(50..500));
    let fail_rate = rng.random_range(0.0..0.05);
    match choice {
        0 | 1 if mix.partitions => cluster.partition(a, b),
        2 if mix.partitions => cluster.partition_oneway(a, b),
        3 if mix.partitions || mix.degraded_links => cluster.heal(),
        4 if mix.degraded_links => cluster.degrade(latency, fail_rate),
        5 | 6 if mix.crashes => cluster.crash(a),
        7 if mix.crashes || mix.disk_loss => cluster.restart(a),
        8 if mix.disk_loss => cluster.wipe(a),
        9 if mix.disk_loss => {
            cluster.backup(a);
        }
        10 if mix.disk_loss => cluster.restore(a),
        11 if mix.clock_skew => cluster.skew(a, skew),
        _ if mix.conflicts && choice % 4 == 0 => cluster.conflict(a, b),
        _ => {}
    }
}
