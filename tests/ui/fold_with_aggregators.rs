use laterbase::{EventId, view};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Move {
    shipment: String,
}

#[view(db = "shipments", event = Move, key = shipment, fold = Shipment::apply)]
#[derive(Default, Serialize, Deserialize)]
struct Shipment {
    #[count]
    moves: u64,
}

impl Shipment {
    fn apply(&mut self, _id: EventId, _event: &Move) {}
}

fn main() {}
