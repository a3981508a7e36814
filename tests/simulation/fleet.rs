//! The fleet: a hub and edges that dial only the hub, online a small
//! fraction of the time, each writing its own database and reading a
//! shared one under a token scoped to both (`laterbase_simulation::fleet`).
//!
//! Each run prints the simulated time the fleet took to converge after the
//! last edge came back (`--nocapture` shows it; a failing test shows it
//! anyway).

use laterbase_simulation::{FleetOptions, FleetOutcome, run_fleet};

fn converged(options: FleetOptions) -> FleetOutcome {
    let outcome = run_fleet(options).unwrap_or_else(|error| {
        panic!(
            "fleet seed {} ({} edges) did not converge: {error}",
            options.seed, options.edges
        )
    });
    println!(
        "fleet seed {} ({} edges): converged {} ms after the last edge came back; digest {:016x}; {}",
        options.seed,
        options.edges,
        outcome.converged_after.as_millis(),
        outcome.digest,
        outcome.summary
    );
    outcome
}

#[test]
fn a_small_fleet_converges_through_its_hub() {
    for seed in 1..=4 {
        converged(FleetOptions::new(seed, 10));
    }
}
