use laterbase::view;
use serde::Deserialize;

#[derive(Deserialize)]
struct Reading {
    sensor: String,
    celsius: f64,
}

#[view(db = "readings", event = Reading, key = truck)]
struct Stats {
    #[max(kelvin)]
    hottest: f64,
}

fn main() {}
