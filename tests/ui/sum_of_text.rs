use laterbase::view;
use serde::Deserialize;

#[derive(Deserialize)]
struct Reading {
    sensor: String,
    celsius: f64,
}

#[view(db = "readings", event = Reading, key = sensor)]
struct Stats {
    #[sum(sensor)]
    names: String,
}

fn main() {}
