//! The sync messages on the wire: a compact binary encoding, described in
//! `docs/sync.md`. Integers are big-endian, ids 16 bytes, events
//! `id | recorded_at ms u64 | length u32 | data`.
//!
//! A message starts with its version. This node speaks [`VERSION`] and,
//! to nodes of the first release, [`VERSION_OLDEST`]: a version 2 message
//! is a version 3 one without the runs a page names as held, without the
//! counts and pages of the lists of losers. A responder answers in the
//! version it was asked in.
//!
//! ```text
//! version.rs   the versions spoken, the content type and headers, WireError
//! messages.rs  the four messages of a round, encoded and decoded
//!   ├─ write.rs  their fields as bytes
//!   └─ read.rs   their fields from bytes, through the crate's checked reader
//! ```

mod messages;
mod read;
mod version;
mod write;

#[cfg(test)]
mod tests;

pub use messages::{
    FillRequest, decode_deliver, decode_fill, decode_offer, decode_reply, encode_deliver,
    encode_fill, encode_offer, encode_reply,
};
pub use version::{
    CONTENT_TYPE, NODE_HEADER, VERSION, VERSION_HEADER, VERSION_OLDEST, WireError, version_of,
    version_refused,
};
