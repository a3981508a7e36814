//! Integration tests of Laterbase through its public interfaces.

mod answers;
mod backup;
mod browser;
mod clock;
mod crash;

mod durability;
mod errors;
mod fleet;
mod full_disk;
mod http;
mod imports;
mod live;
mod live_rows;
mod merge;
mod model;
mod process;
mod push;
mod supervision;
mod support;
mod sync;
mod ui;
mod values;
mod views;
