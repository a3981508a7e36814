//! The `laterbase` binary: the command line of [`laterbase::cli`].

use std::process::ExitCode;

// Commits free on one thread what was allocated on another; glibc's
// allocator loses a fifth of the ingest rate to that, mimalloc does not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    laterbase::cli::run()
}
