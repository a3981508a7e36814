use laterbase::view;
use serde::Deserialize;

#[derive(Deserialize)]
struct Reading {
    sensor: String,
}

#[view(db = "readings", event = Reading)]
struct Stats {
    #[count]
    readings: String,
}

fn main() {}
