//! The `SensorStats` view of the views contract, served by a node: the same
//! command line as `laterbase serve`, with this view compiled in.
//!
//! Run with: `cargo run --release --example readings -- serve`
//! (every flag of `laterbase serve` works: `--data-dir`, `--listen`,
//! `--peer`, ...), then:
//!
//! ```sh
//! curl -X PUT localhost:7070/db/readings
//! curl -X POST localhost:7070/db/readings/e -d '[
//!   {"data": {"sensor": "dock-1", "celsius": 4.5}},
//!   {"data": {"sensor": "dock-1", "celsius": 6.0}}]'
//! curl localhost:7070/readings/sensor_stats
//! curl 'localhost:7070/readings/sensor_stats?key=dock-1'
//! ```

use std::process::ExitCode;

use laterbase::view;
use serde::Deserialize;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Deserialize)]
struct Reading {
    sensor: String,
    celsius: f64,
}

/// Temperature statistics per sensor.
#[view(db = "readings", event = Reading, key = sensor)]
struct SensorStats {
    #[count]
    readings: u64,
    #[sum(celsius)]
    total: f64,
    #[min(celsius)]
    coldest: f64,
    #[max(celsius)]
    hottest: f64,
    #[first(celsius)]
    first: f64, // earliest by event id (valid time)
    #[last(celsius)]
    latest: f64, // latest by event id (valid time)
}

fn main() -> ExitCode {
    laterbase::cli::run()
}
