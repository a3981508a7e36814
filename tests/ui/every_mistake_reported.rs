// One struct, five mistakes: each is reported, not only the first.
use laterbase::view;
use serde::Deserialize;

#[derive(Deserialize)]
struct Reading {
    sensor: String,
    celsius: f64,
}

#[view(db = "Readings", event = Reading, colour = "red")]
struct Stats {
    #[median(celsius)]
    middle: f64,
    #[count(celsius)]
    readings: u64,
    #[first]
    first: f64,
    unmarked: f64,
}

fn main() {}
