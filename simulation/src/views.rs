//! The views every simulated node serves, and the events they fold.

use laterbase::{EventId, view};
use serde::{Deserialize, Serialize};

/// What simulated clients write.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Reading {
    /// The row it belongs to.
    pub key: String,
    /// An integer to add up, at times near either bound.
    pub n: i64,
    /// A float to add up, whose sum depends on order if taken in it.
    pub x: f64,
}

impl Reading {
    /// A reading of `key` drawn from `rng`: integers near either bound
    /// now and then, floats that are decimals, of mixed magnitudes,
    /// negative, `0.0` and `-0.0`, so that any order-dependent
    /// arithmetic in a view shows.
    pub fn draw(key: String, rng: &mut impl rand::RngExt) -> Reading {
        let n = match rng.random_range(0..10) {
            0 => i64::MAX - rng.random_range(0..100),
            1 => i64::MIN + rng.random_range(0..100),
            _ => rng.random_range(-50..50),
        };
        let x = match rng.random_range(0..6) {
            0 => 0.0,
            1 => -0.0,
            2 => f64::from(rng.random_range(-9..9_i32)) * 1e8 + 0.1,
            3 => f64::from(rng.random_range(-999..999_i32)) * 1e-3,
            _ => f64::from(rng.random_range(-400..400_i32)) * 0.1,
        };
        Reading { key, n, x }
    }
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
    #[sum(x)]
    sum_x: f64,
    #[min(x)]
    low_x: f64,
    #[max(x)]
    high_x: f64,
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
