//! Replication: the delta-state sync protocol, as a pure state machine.
//!
//! Nothing here does I/O, reads a clock or awaits: a driver (the replication
//! actors in production, tests and simulations directly) reads the local log
//! through [`Log`], carries the messages, and performs the merges and the
//! cursor updates a step asks for, each cursor only once the merge before it
//! is durable.
//!
//! A round between an initiator L and a responder R is two round trips:
//!
//! ```text
//! L -> R  Offer    L's cursor into R's log; L's page since R's cursor into L
//! R -> L  Reply    the ids of L's page that R lacks; R's page since L's cursor
//! L -> R  Fill     the events R lacks; the ids of R's page that L lacks
//! R -> L  Deliver  those events
//! ```
//!
//! A page lists ids with a digest of each event (so that two values of one
//! id, or two `recorded_at`s, are seen to differ), or, when a cursor starts
//! from nothing (a new peer, a wiped one, an unknown epoch), the events
//! themselves: the fast path that does not list every id first.
//!
//! Cursors live with the node that pulls. A cursor names the incarnation of
//! the database and the epoch of the log it points into; every open of a
//! node starts a new epoch at its current `lc`, and each database keeps the
//! history of its epochs. The owner of a log checks a cursor against that
//! history: a cursor into an epoch that a restored backup cut short is cut
//! back to where the backup ends; one into an unknown epoch or incarnation
//! starts over. So nothing is ever skipped.

mod checks;
pub mod fit;
pub mod merge;
mod messages;
pub mod protocol;
pub mod recall;
pub mod refusals;
pub mod state;
pub mod wire;

#[cfg(test)]
mod model;

pub use protocol::{
    Cursor, Deliver, Digest, Effects, Entries, EpochStart, Fill, Held, IdDigest, Initiator,
    LeftOut, ListFrom, Log, Loser, LoserPage, LoserScan, Offer, Origin, Page, PageBounds, Recall,
    Reply, Responder, Summary, deliver, digest, fill, finish, offer, reply, resume,
};
