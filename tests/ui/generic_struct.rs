use laterbase::view;
use serde::Deserialize;

#[derive(Deserialize)]
struct Reading {
    sensor: String,
}

#[view(db = "readings", event = Reading, key = sensor)]
struct Stats<T> {
    #[count]
    readings: T,
}

fn main() {}
