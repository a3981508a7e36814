use laterbase::view;
use serde::Deserialize;

#[derive(Deserialize)]
struct Reading {
    sensor: String,
    celsius: f64,
}

#[view(db = "readings", event = Reading, key = sensor)]
struct Stats {
    #[avg(celsius)]
    mean: f64,
}

fn main() {}
