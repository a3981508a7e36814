//! The views every simulated node serves, and the events they fold.

use laterbase::{EventId, view};
use serde::{Deserialize, Serialize};

/// What simulated clients write.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Reading {
    /// The row it belongs to.
    pub key: String,
    /// A number to add up.
    pub n: i64,
}

/// Order-insensitive aggregators, and `first`/`last`.
#[view(db = "sim", event = Reading, key = key)]
pub struct Tally {
    #[count]
    events: u64,
    #[sum(n)]
    total: i64,
    #[min(n)]
    low: i64,
    #[first(n)]
    first: i64,
    #[last(n)]
    last: i64,
}

/// A custom fold that depends on order: the last three numbers by id.
#[view(db = "sim", event = Reading, key = key, fold = Recent::apply)]
#[derive(Default, Serialize, Deserialize)]
pub struct Recent {
    last_three: Vec<i64>,
    events: u64,
}

impl Recent {
    fn apply(&mut self, _id: EventId, reading: &Reading) {
        self.last_three.push(reading.n);
        if self.last_three.len() > 3 {
            self.last_three.remove(0);
        }
        self.events += 1;
    }
}

/// Each view's name and its fold of `events` (id, JSON bytes) in id order,
/// as the node must serve it.
pub fn models(events: &[(EventId, Vec<u8>)]) -> Vec<(&'static str, serde_json::Value)> {
    let fold = |rows: Vec<laterbase::Row>| serde_json::to_value(rows).unwrap_or_default();
    vec![
        (
            "tally",
            fold(laterbase::testing::fold_json::<Tally, _>(
                events.iter().cloned(),
            )),
        ),
        (
            "recent",
            fold(laterbase::testing::fold_json::<Recent, _>(
                events.iter().cloned(),
            )),
        ),
    ]
}
