//! The compact binary encoding of batches and pages
//! (`application/vnd.laterbase.batch`), described in `docs/binary-encoding.md`.
//!
//! All integers are big-endian. A batch to write:
//!
//! ```text
//! "LBB1" | count u32 | count x (flags u8 | id [16] if flags & 1 | length u32 | data)
//! ```
//!
//! A page read back:
//!
//! ```text
//! "LBP1" | lc u64 | more u8 | count u32
//!        | count x (id [16] | recorded_at ms u64 | lc u64 | length u32 | data)
//!        | missing u32 | missing x id [16]
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use super::error::ApiError;
use crate::clock::Horizon;
use crate::codec::{ReadError, Reader};
use crate::event::{Event, EventId, NewEvent, Timestamp};

/// The content type of the binary encoding.
pub const CONTENT_TYPE: &str = "application/vnd.laterbase.batch";

const BATCH_MAGIC: &[u8; 4] = b"LBB1";
const PAGE_MAGIC: &[u8; 4] = b"LBP1";
const HAS_ID: u8 = 1;

/// Decodes a batch of at most `events_max` events; each event's data is a
/// slice of `body`. Each event is checked before the next: an id further
/// ahead than `horizon` allows fails its event.
pub fn decode_batch(
    body: &Bytes,
    events_max: usize,
    horizon: Horizon,
) -> Result<Vec<NewEvent>, ApiError> {
    let mut reader = Reader::new(body.clone());
    let whole = |error| ApiError::invalid_event(refusal(&error, None));
    if reader.array("the magic bytes").map_err(whole)? != *BATCH_MAGIC {
        return Err(ApiError::invalid_event(
            "a binary batch starts with \"LBB1\"",
        ));
    }
    let count = length(reader.u32("the event count").map_err(whole)?);
    if count > events_max {
        return Err(ApiError::payload_too_large(format!(
            "the batch holds {count} events, more than the limit of {events_max}"
        )));
    }
    let mut events = Vec::with_capacity(count);
    for index in 0..count {
        let inside = |error| ApiError::invalid_event(refusal(&error, Some(index)));
        let flags = reader.u8("flags").map_err(inside)?;
        if flags & !HAS_ID != 0 {
            return Err(ApiError::invalid_event(format!(
                "event {index}: unknown flags"
            )));
        }
        let id = if flags & HAS_ID != 0 {
            // Every value of 16 bytes is a valid 128-bit id.
            let id = EventId::from_bytes(reader.array("id").map_err(inside)?);
            horizon.check(index, id)?;
            Some(id)
        } else {
            None
        };
        let data_length = length(reader.u32("length").map_err(inside)?);
        let data = reader.bytes(data_length, "data").map_err(inside)?;
        events.push(NewEvent { id, data });
    }
    reader.end().map_err(whole)?;
    Ok(events)
}

/// Encodes a batch, as a client does.
pub fn encode_batch(events: &[NewEvent]) -> Bytes {
    let data_bytes: usize = events.iter().map(|event| event.data.len()).sum();
    let mut out = BytesMut::with_capacity(8 + events.len() * 21 + data_bytes);
    out.put_slice(BATCH_MAGIC);
    out.put_u32(u32::try_from(events.len()).unwrap_or(u32::MAX));
    for event in events {
        match event.id {
            Some(id) => {
                out.put_u8(HAS_ID);
                out.put_slice(&id.to_bytes());
            }
            None => out.put_u8(0),
        }
        out.put_u32(u32::try_from(event.data.len()).unwrap_or(u32::MAX));
        out.put_slice(&event.data);
    }
    out.freeze()
}

/// Encodes a page of events, with the ids asked for and not found.
pub fn encode_page(lc: u64, more: bool, events: &[Event], missing: &[EventId]) -> Bytes {
    let data_bytes: usize = events.iter().map(|event| event.data.len()).sum();
    let mut out = BytesMut::with_capacity(21 + events.len() * 36 + data_bytes + missing.len() * 16);
    out.put_slice(PAGE_MAGIC);
    out.put_u64(lc);
    out.put_u8(u8::from(more));
    out.put_u32(u32::try_from(events.len()).unwrap_or(u32::MAX));
    for event in events {
        out.put_slice(&event.id.to_bytes());
        out.put_u64(event.recorded_at.0);
        out.put_u64(event.lc);
        out.put_u32(u32::try_from(event.data.len()).unwrap_or(u32::MAX));
        out.put_slice(&event.data);
    }
    out.put_u32(u32::try_from(missing.len()).unwrap_or(u32::MAX));
    for id in missing {
        out.put_slice(&id.to_bytes());
    }
    out.freeze()
}

/// A decoded page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The page's logical clock (the changes feed's), or 0.
    pub lc: u64,
    /// Whether more events follow.
    pub more: bool,
    /// The events.
    pub events: Vec<Event>,
    /// Ids asked for and not stored.
    pub missing: Vec<EventId>,
}

/// Decodes a page, as a client does.
pub fn decode_page(body: &Bytes) -> Result<Page, String> {
    let mut reader = Reader::new(body.clone());
    let error = |error| refusal(&error, None);
    if reader.array("the magic bytes").map_err(error)? != *PAGE_MAGIC {
        return Err("a binary page starts with \"LBP1\"".to_owned());
    }
    let lc = reader.u64("the page's lc").map_err(error)?;
    let more = reader.u8("more").map_err(error)? != 0;
    let count = reader.u32("the event count").map_err(error)?;
    let mut events = Vec::new();
    for _ in 0..count {
        let id = EventId::from_bytes(reader.array("an id").map_err(error)?);
        let recorded_at = Timestamp(reader.u64("recorded_at").map_err(error)?);
        let event_lc = reader.u64("lc").map_err(error)?;
        let data_length = length(reader.u32("length").map_err(error)?);
        events.push(Event {
            id,
            data: reader.bytes(data_length, "data").map_err(error)?,
            recorded_at,
            lc: event_lc,
        });
    }
    let missing_count = reader.u32("the missing count").map_err(error)?;
    let mut missing = Vec::new();
    for _ in 0..missing_count {
        missing.push(EventId::from_bytes(reader.array("an id").map_err(error)?));
    }
    Ok(Page {
        lc,
        more,
        events,
        missing,
    })
}

/// A length on the wire, as a length in memory.
fn length(wire: u32) -> usize {
    usize::try_from(wire).unwrap_or(usize::MAX)
}

/// Why a body the reader could not read is refused: where it ends, inside
/// which field (of event `event`, when it is one of an event's).
fn refusal(error: &ReadError, event: Option<usize>) -> String {
    match (error, event) {
        (ReadError::Short { field, at, .. }, None) => {
            format!("the binary body ends inside {field} (at byte {at})")
        }
        (ReadError::Short { field, at, .. }, Some(index)) => {
            format!("the binary body ends inside event {index}: {field} (at byte {at})")
        }
        (ReadError::Trailing { left, .. }, _) => format!("{left} bytes follow the last event"),
        (ReadError::Count { .. }, _) => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::BATCH_EVENTS_MAX;

    /// A clock reading that no id of these tests is ahead of.
    const ANY_TIME: Horizon = Horizon {
        wall_ms: 1_000,
        skew_ms: 0,
    };

    #[test]
    fn batches_round_trip() {
        let events = vec![
            NewEvent::with_id(EventId::from_parts(5, 6), &b"\x00\x01"[..]),
            NewEvent::new(&b"{}"[..]),
        ];
        assert_eq!(
            decode_batch(&encode_batch(&events), BATCH_EVENTS_MAX, ANY_TIME).expect("decodes"),
            events
        );
    }

    #[test]
    fn truncated_batches_are_refused_with_the_place() {
        let encoded = encode_batch(&[NewEvent::new(&b"hello"[..])]);
        let truncated = encoded.slice(..encoded.len() - 1);
        let error = decode_batch(&truncated, BATCH_EVENTS_MAX, ANY_TIME).expect_err("truncated");
        assert_eq!(error.code, "invalid_event");
        assert!(error.message.contains("data"), "{}", error.message);
    }

    /// A batch with and without ids, and a page with events and missing ids.
    fn encoded() -> (Bytes, Bytes) {
        let batch = encode_batch(&[
            NewEvent::with_id(EventId::from_parts(5, 6), &b"\x00\x01"[..]),
            NewEvent::new(&b"{}"[..]),
        ]);
        let event = Event {
            id: EventId::from_parts(7, 8),
            data: Bytes::from_static(b"{\"a\":1}"),
            recorded_at: crate::event::Timestamp(9),
            lc: 10,
        };
        let page = encode_page(11, true, &[event], &[EventId::from_parts(12, 13)]);
        (batch, page)
    }

    #[test]
    fn pages_round_trip() {
        let (_, page) = encoded();
        let decoded = decode_page(&page).expect("decodes");
        assert_eq!((decoded.lc, decoded.more), (11, true));
        assert_eq!(decoded.events.len(), 1);
        assert_eq!(decoded.missing, [EventId::from_parts(12, 13)]);
        assert_eq!(
            encode_page(11, true, &decoded.events, &decoded.missing),
            page
        );
    }

    #[test]
    fn each_cut_of_a_batch_names_the_field_it_ends_inside() {
        let (batch, _) = encoded();
        let field_at = |cut: usize| match cut {
            0..4 => "the magic bytes (at byte 0)".to_owned(),
            4..8 => "the event count (at byte 4)".to_owned(),
            8 => "event 0: flags (at byte 8)".to_owned(),
            9..25 => "event 0: id (at byte 9)".to_owned(),
            25..29 => "event 0: length (at byte 25)".to_owned(),
            29..31 => "event 0: data (at byte 29)".to_owned(),
            31 => "event 1: flags (at byte 31)".to_owned(),
            32..36 => "event 1: length (at byte 32)".to_owned(),
            _ => "event 1: data (at byte 36)".to_owned(),
        };
        assert_eq!(batch.len(), 38);
        for cut in 0..batch.len() {
            let error =
                decode_batch(&batch.slice(..cut), BATCH_EVENTS_MAX, ANY_TIME).expect_err("cut");
            assert_eq!(error.code, "invalid_event");
            assert_eq!(
                error.message,
                format!("the binary body ends inside {}", field_at(cut)),
                "cut at {cut}"
            );
        }
        let mut padded = batch.to_vec();
        padded.extend_from_slice(b"xy");
        let error =
            decode_batch(&Bytes::from(padded), BATCH_EVENTS_MAX, ANY_TIME).expect_err("padded");
        assert_eq!(error.message, "2 bytes follow the last event");
    }

    proptest::proptest! {
        /// A batch or a page cut anywhere is refused, and no bytes (a cut
        /// body followed by noise) make a decoder panic.
        #[test]
        fn cut_bodies_are_refused_and_no_bytes_make_a_decoder_panic(
            cut in proptest::prelude::any::<proptest::sample::Index>(),
            noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
        ) {
            let (batch, page) = encoded();
            let batch_cut = batch.slice(..cut.index(batch.len()));
            let page_cut = page.slice(..cut.index(page.len()));
            proptest::prop_assert!(decode_batch(&batch_cut, BATCH_EVENTS_MAX, ANY_TIME).is_err());
            proptest::prop_assert!(decode_page(&page_cut).is_err());
            for cut in [batch_cut, page_cut] {
                let mut noisy = cut.to_vec();
                noisy.extend_from_slice(&noise);
                let noisy = Bytes::from(noisy);
                let _ = decode_batch(&noisy, BATCH_EVENTS_MAX, ANY_TIME);
                let _ = decode_page(&noisy);
            }
        }
    }
}
