//! Whole Laterbase clusters inside one deterministic simulation: the real
//! node (its actors, HTTP handlers, sync workers and views) on turmoil's
//! simulated network and clock, driven by a seed, with the network and the
//! nodes failing on purpose; the invariants are checked after every run.
//!
//! ```text
//! seed ─▶ turmoil (network, time, task order) ─▶ n0 … nN: Node + serve + sync
//!   │                                             ▲
//!   ├─▶ clients: writes (own and node ids, backdated), retries, view reads
//!   └─▶ script: partition, crash, wipe, restore, skew, conflict … heal
//!                                  ─▶ checker reads every node ─▶ invariants
//! ```
//!
//! Time and randomness reach a node only through `Config::clock` (the
//! simulation's time plus a skew) and `Config::seed`; tokio's own scheduler
//! randomness is seeded by turmoil (the workspace builds with
//! `--cfg tokio_unstable` for that). The in-memory storage engine runs inline,
//! since turmoil does not simulate blocking threads; a disk fault is a
//! restart on an empty store or on an older copy. A run's digest covers what
//! happened (faults, acknowledged batches and their times) and what every
//! node ends up holding, so one seed run twice must give one digest.

pub mod check;
pub mod cluster;
pub mod fleet;
pub mod net;
pub mod random;
pub mod views;

pub use cluster::{Cluster, Options, Topology};
pub use fleet::{FleetOptions, FleetOutcome, run_fleet};
pub use random::{Mix, Outcome, run};
