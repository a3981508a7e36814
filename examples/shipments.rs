//! Shipments as trucks, gates and ships report them: a custom fold that
//! keeps each shipment's status and place as of its latest event by valid
//! time, however late a report arrives (a truck that was offline for a day
//! reports when it is back; the view is as if it had reported on time).
//!
//! Run with: `cargo run --release --example shipments -- serve`
//! (the flags of `laterbase serve`), then follow the README's walk-through.

use std::process::ExitCode;

use laterbase::{EventId, view};
use serde::{Deserialize, Serialize};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Where a shipment stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Status {
    #[default]
    Booked,
    Loaded,
    Departed,
    Arrived,
    Delivered,
}

/// One report about a shipment.
#[derive(Deserialize)]
struct ShipmentEvent {
    shipment_id: String,
    status: Status,
    location: String,
}

/// Each shipment as its reports, in valid-time order, leave it.
#[view(db = "shipments", event = ShipmentEvent, key = shipment_id, fold = Shipment::apply)]
#[derive(Default, Serialize, Deserialize)]
struct Shipment {
    status: Status,
    location: String,
    /// The id (and so the time) of the delivery, once delivered.
    delivered_at: Option<EventId>,
    reports: u32,
}

impl Shipment {
    fn apply(&mut self, id: EventId, event: &ShipmentEvent) {
        self.status = event.status;
        self.location.clone_from(&event.location);
        if event.status == Status::Delivered {
            self.delivered_at = Some(id);
        }
        self.reports += 1;
    }
}

fn main() -> ExitCode {
    laterbase::cli::run()
}
