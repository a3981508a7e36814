//! Integration tests of Laterbase through its public interfaces.

mod clock;
mod crash;

mod durability;
mod http;
mod model;
mod supervision;
mod support;
