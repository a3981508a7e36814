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
use crate::event::{Event, EventId, NewEvent};

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
    let mut reader = Reader { body, offset: 0 };
    if reader.take(4, "the magic bytes")? != BATCH_MAGIC {
        return Err(ApiError::invalid_event(
            "a binary batch starts with \"LBB1\"",
        ));
    }
    let count = reader.u32("the event count")? as usize;
    if count > events_max {
        return Err(ApiError::payload_too_large(format!(
            "the batch holds {count} events, more than the limit of {events_max}"
        )));
    }
    let mut events = Vec::with_capacity(count);
    for index in 0..count {
        let what = |part: &str| format!("event {index}: {part}");
        let flags = reader.take(1, &what("flags"))?[0];
        if flags & !HAS_ID != 0 {
            return Err(ApiError::invalid_event(what("unknown flags")));
        }
        let id = if flags & HAS_ID != 0 {
            // Every value of 16 bytes is a valid 128-bit id.
            let bytes: [u8; 16] = reader.take(16, &what("id"))?.try_into().unwrap_or([0; 16]);
            let id = EventId::from_bytes(bytes);
            horizon.check(index, id)?;
            Some(id)
        } else {
            None
        };
        let length = reader.u32(&what("length"))? as usize;
        let start = reader.offset;
        reader.take(length, &what("data"))?;
        events.push(NewEvent {
            id,
            data: body.slice(start..start + length),
        });
    }
    if reader.offset != body.len() {
        return Err(ApiError::invalid_event(format!(
            "{} bytes follow the last event",
            body.len() - reader.offset
        )));
    }
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
    let mut reader = Reader { body, offset: 0 };
    let error = |e: ApiError| e.message;
    if reader.take(4, "the magic bytes").map_err(error)? != PAGE_MAGIC {
        return Err("a binary page starts with \"LBP1\"".to_owned());
    }
    let lc = reader.u64("the page's lc").map_err(error)?;
    let more = reader.take(1, "more").map_err(error)?[0] != 0;
    let count = reader.u32("the event count").map_err(error)?;
    let mut events = Vec::new();
    for _ in 0..count {
        let id: [u8; 16] = reader
            .take(16, "an id")
            .map_err(error)?
            .try_into()
            .unwrap_or([0; 16]);
        let recorded_at = crate::event::Timestamp(reader.u64("recorded_at").map_err(error)?);
        let event_lc = reader.u64("lc").map_err(error)?;
        let length = reader.u32("length").map_err(error)? as usize;
        let start = reader.offset;
        reader.take(length, "data").map_err(error)?;
        events.push(Event {
            id: EventId::from_bytes(id),
            data: body.slice(start..start + length),
            recorded_at,
            lc: event_lc,
        });
    }
    let missing_count = reader.u32("the missing count").map_err(error)?;
    let mut missing = Vec::new();
    for _ in 0..missing_count {
        let id: [u8; 16] = reader
            .take(16, "an id")
            .map_err(error)?
            .try_into()
            .unwrap_or([0; 16]);
        missing.push(EventId::from_bytes(id));
    }
    Ok(Page {
        lc,
        more,
        events,
        missing,
    })
}

struct Reader<'a> {
    body: &'a Bytes,
    offset: usize,
}

impl Reader<'_> {
    fn take(&mut self, length: usize, what: &str) -> Result<&[u8], ApiError> {
        let end = self
            .offset
            .checked_add(length)
            .filter(|end| *end <= self.body.len());
        let Some(end) = end else {
            return Err(ApiError::invalid_event(format!(
                "the binary body ends inside {what} (at byte {})",
                self.offset
            )));
        };
        let slice = &self.body[self.offset..end];
        self.offset = end;
        Ok(slice)
    }

    fn u32(&mut self, what: &str) -> Result<u32, ApiError> {
        let bytes = self.take(4, what)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn u64(&mut self, what: &str) -> Result<u64, ApiError> {
        let bytes = self.take(8, what)?;
        let mut array = [0; 8];
        array.copy_from_slice(bytes);
        Ok(u64::from_be_bytes(array))
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
}
