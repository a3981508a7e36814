//! The sync protocol against a model: nodes with in-memory logs, driven
//! through rounds with no runtime, disk or socket.
//!
//! ```text
//! node.rs      ModelNode: one node's copy of a database, its links and
//!              recalls; merges as a commit does, reads as the storage does
//! network.rs   the steps of a round as the driver runs them, through the
//!              wire and `fit`; faults; the effects applied as a database
//!              applies them; the checks every honest message meets
//! liars.rs     messages forged in another node's name
//! random.rs    the randomised run: writes, rounds, faults, restarts,
//!              wipes, restores and liars, within drawn byte budgets
//! pages.rs     fits.rs  cursors.rs  lists.rs: the named rules
//! ```

mod cursors;
mod fits;
mod liars;
mod lists;
mod network;
mod node;
mod pages;
mod random;
