//! The four messages of a round as bytes: message 1 (the offer), 2 (the
//! reply), 3 (the fill, with the responder's state from its reply) and 4
//! (the deliver), each encoded in the version asked for and decoded in any
//! version this node speaks.

use bytes::Bytes;

use super::read::In;
use super::version::WireError;
use super::write::Out;
use crate::event::EventId;
use crate::sync::messages::{Cursor, Deliver, Fill, Offer, Reply};

/// Message 3 as sent: the fill, and the responder's state from its reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FillRequest {
    /// The fill.
    pub fill: Fill,
    /// The reply's `missing`.
    pub missing: Vec<EventId>,
    /// The reply's `push_taken`.
    pub push_taken: bool,
    /// The reply's `cursor_stored`.
    pub cursor_stored: Option<Cursor>,
}

/// Encodes message 1 in `version`.
pub fn encode_offer(offer: &Offer, version: u8) -> Bytes {
    let mut out = Out::new(version);
    out.option_cursor(offer.pull);
    out.flag(offer.bulk);
    out.summary(&offer.summary);
    out.page(&offer.push);
    if out.current() {
        out.u64(offer.losers_listed);
    }
    out.done()
}

/// Decodes message 1, in any version this node speaks.
pub fn decode_offer(bytes: &Bytes) -> Result<Offer, WireError> {
    let mut input = In::new(bytes)?;
    let offer = Offer {
        pull: input.option_cursor()?,
        bulk: input.flag("bulk")?,
        summary: input.summary()?,
        push: input.page()?,
        losers_listed: if input.current() {
            input.u64("the count of losers listed")?
        } else {
            0
        },
    };
    input.end()?;
    Ok(offer)
}

/// Encodes message 2 in `version`.
pub fn encode_reply(reply: &Reply, version: u8) -> Bytes {
    let mut out = Out::new(version);
    out.ids(&reply.missing);
    out.page(&reply.page);
    out.cursor(reply.cursor_at_initiator);
    out.flag(reply.push_taken);
    out.option_cursor(reply.cursor_stored);
    out.u64(reply.remaining);
    out.u64(reply.losers_listed);
    if out.current() {
        out.list_from(reply.losers_wanted);
    } else {
        assert!(reply.losers_wanted.is_none(), "version 2 asks for no list");
    }
    out.done()
}

/// Decodes message 2, in any version this node speaks.
pub fn decode_reply(bytes: &Bytes) -> Result<Reply, WireError> {
    let mut input = In::new(bytes)?;
    let reply = Reply {
        missing: input.ids()?,
        page: input.page()?,
        cursor_at_initiator: input.cursor()?,
        push_taken: input.flag("push taken")?,
        cursor_stored: input.option_cursor()?,
        remaining: input.u64("the count of events remaining")?,
        losers_listed: input.u64("the count of losers listed")?,
        losers_wanted: if input.current() {
            input.list_from()?
        } else {
            None
        },
    };
    input.end()?;
    Ok(reply)
}

/// Encodes message 3 in `version`.
pub fn encode_fill(request: &FillRequest, version: u8) -> Bytes {
    let mut out = Out::new(version);
    out.events(&request.fill.events);
    out.flag(request.fill.complete);
    out.cursor(request.fill.push_to);
    out.ids(&request.fill.want);
    out.ids(&request.missing);
    out.flag(request.push_taken);
    out.option_cursor(request.cursor_stored);
    if out.current() {
        out.option_losers(request.fill.losers.as_ref());
        out.list_from(request.fill.losers_wanted);
    } else {
        assert!(request.fill.losers.is_none(), "version 2 carries no list");
        assert!(
            request.fill.losers_wanted.is_none(),
            "version 2 asks for no list"
        );
    }
    out.done()
}

/// Decodes message 3, in any version this node speaks.
pub fn decode_fill(bytes: &Bytes) -> Result<FillRequest, WireError> {
    let mut input = In::new(bytes)?;
    let mut fill = Fill {
        events: input.events()?,
        complete: input.flag("complete")?,
        push_to: input.cursor()?,
        want: input.ids()?,
        losers: None,
        losers_wanted: None,
    };
    let missing = input.ids()?;
    let push_taken = input.flag("push taken")?;
    let cursor_stored = input.option_cursor()?;
    if input.current() {
        fill.losers = input.option_losers()?;
        fill.losers_wanted = input.list_from()?;
    }
    input.end()?;
    Ok(FillRequest {
        fill,
        missing,
        push_taken,
        cursor_stored,
    })
}

/// Encodes message 4 in `version`.
pub fn encode_deliver(deliver: &Deliver, version: u8) -> Bytes {
    let mut out = Out::new(version);
    out.events(&deliver.events);
    out.flag(deliver.complete);
    if out.current() {
        out.option_losers(deliver.losers.as_ref());
    } else {
        assert!(deliver.losers.is_none(), "version 2 carries no list");
    }
    out.done()
}

/// Decodes message 4, in any version this node speaks.
pub fn decode_deliver(bytes: &Bytes) -> Result<Deliver, WireError> {
    let mut input = In::new(bytes)?;
    let deliver = Deliver {
        events: input.events()?,
        complete: input.flag("complete")?,
        losers: if input.current() {
            input.option_losers()?
        } else {
            None
        },
    };
    input.end()?;
    Ok(deliver)
}
