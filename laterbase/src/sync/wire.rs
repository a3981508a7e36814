//! The sync messages on the wire: a compact binary encoding, described in
//! `docs/sync.md`. Integers are big-endian, ids 16 bytes, events
//! `id | recorded_at ms u64 | length u32 | data`.

use bytes::{BufMut, Bytes, BytesMut};

use super::protocol::{
    Cursor, Deliver, Digest, Entries, EpochStart, Fill, IdDigest, Offer, Page, Reply, Summary,
};
use crate::event::{Event, EventId, Timestamp};

/// The content type of sync messages.
pub const CONTENT_TYPE: &str = "application/vnd.laterbase.sync";

const VERSION: u8 = 2;

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

/// Why bytes are not a sync message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed sync message: {0}")]
pub struct WireError(pub String);

/// Encodes message 1.
pub fn encode_offer(offer: &Offer) -> Bytes {
    let mut out = Out::new();
    out.option_cursor(offer.pull);
    out.bytes.put_u8(u8::from(offer.bulk));
    out.summary(&offer.summary);
    out.page(&offer.push);
    out.done()
}

/// Decodes message 1.
pub fn decode_offer(bytes: &Bytes) -> Result<Offer, WireError> {
    let mut input = In::new(bytes)?;
    let offer = Offer {
        pull: input.option_cursor()?,
        bulk: input.flag()?,
        summary: input.summary()?,
        push: input.page()?,
    };
    input.end()?;
    Ok(offer)
}

/// Encodes message 2.
pub fn encode_reply(reply: &Reply) -> Bytes {
    let mut out = Out::new();
    out.ids(&reply.missing);
    out.page(&reply.page);
    out.cursor(reply.cursor_at_initiator);
    out.bytes.put_u8(u8::from(reply.push_taken));
    out.option_cursor(reply.cursor_stored);
    out.bytes.put_u64(reply.remaining);
    out.bytes.put_u64(reply.losers_listed);
    out.done()
}

/// Decodes message 2.
pub fn decode_reply(bytes: &Bytes) -> Result<Reply, WireError> {
    let mut input = In::new(bytes)?;
    let reply = Reply {
        missing: input.ids()?,
        page: input.page()?,
        cursor_at_initiator: input.cursor()?,
        push_taken: input.flag()?,
        cursor_stored: input.option_cursor()?,
        remaining: input.u64()?,
        losers_listed: input.u64()?,
    };
    input.end()?;
    Ok(reply)
}

/// Encodes message 3.
pub fn encode_fill(request: &FillRequest) -> Bytes {
    let mut out = Out::new();
    out.events(&request.fill.events);
    out.bytes.put_u8(u8::from(request.fill.complete));
    out.cursor(request.fill.push_to);
    out.ids(&request.fill.want);
    out.ids(&request.missing);
    out.bytes.put_u8(u8::from(request.push_taken));
    out.option_cursor(request.cursor_stored);
    out.done()
}

/// Decodes message 3.
pub fn decode_fill(bytes: &Bytes) -> Result<FillRequest, WireError> {
    let mut input = In::new(bytes)?;
    let fill = Fill {
        events: input.events()?,
        complete: input.flag()?,
        push_to: input.cursor()?,
        want: input.ids()?,
    };
    let request = FillRequest {
        fill,
        missing: input.ids()?,
        push_taken: input.flag()?,
        cursor_stored: input.option_cursor()?,
    };
    input.end()?;
    Ok(request)
}

/// Encodes message 4.
pub fn encode_deliver(deliver: &Deliver) -> Bytes {
    let mut out = Out::new();
    out.events(&deliver.events);
    out.bytes.put_u8(u8::from(deliver.complete));
    out.done()
}

/// Decodes message 4.
pub fn decode_deliver(bytes: &Bytes) -> Result<Deliver, WireError> {
    let mut input = In::new(bytes)?;
    let deliver = Deliver {
        events: input.events()?,
        complete: input.flag()?,
    };
    input.end()?;
    Ok(deliver)
}

struct Out {
    bytes: BytesMut,
}

impl Out {
    fn new() -> Out {
        let mut bytes = BytesMut::with_capacity(256);
        bytes.put_u8(VERSION);
        Out { bytes }
    }

    fn done(self) -> Bytes {
        self.bytes.freeze()
    }

    fn count(&mut self, count: usize) {
        self.bytes.put_u32(u32::try_from(count).unwrap_or(u32::MAX));
    }

    fn cursor(&mut self, cursor: Cursor) {
        self.bytes.put_u128(cursor.incarnation);
        self.bytes.put_u128(cursor.epoch);
        self.bytes.put_u64(cursor.lc);
        self.bytes.put_u64(cursor.us);
    }

    fn option_cursor(&mut self, cursor: Option<Cursor>) {
        match cursor {
            None => self.bytes.put_u8(0),
            Some(cursor) => {
                self.bytes.put_u8(1);
                self.cursor(cursor);
            }
        }
    }

    fn summary(&mut self, summary: &Summary) {
        self.bytes.put_u128(summary.incarnation);
        self.bytes.put_u64(summary.head_lc);
        self.bytes.put_u64(summary.head_us);
        self.count(summary.history.len());
        for epoch in &summary.history {
            self.bytes.put_u128(epoch.epoch);
            self.bytes.put_u64(epoch.start_lc);
            self.bytes.put_u64(epoch.start_us);
        }
    }

    fn ids(&mut self, ids: &[EventId]) {
        self.count(ids.len());
        for id in ids {
            self.bytes.put_slice(&id.to_bytes());
        }
    }

    fn events(&mut self, events: &[Event]) {
        self.count(events.len());
        let data: usize = events.iter().map(|event| event.data.len()).sum();
        self.bytes.reserve(events.len() * 28 + data);
        for event in events {
            self.bytes.put_slice(&event.id.to_bytes());
            self.bytes.put_u64(event.recorded_at.0);
            self.count(event.data.len());
            self.bytes.put_slice(&event.data);
        }
    }

    fn page(&mut self, page: &Page) {
        self.cursor(page.from);
        self.cursor(page.to);
        self.bytes.put_u8(u8::from(page.more));
        match &page.entries {
            Entries::Ids(entries) => {
                self.bytes.put_u8(0);
                self.count(entries.len());
                for entry in entries {
                    self.bytes.put_slice(&entry.id.to_bytes());
                    self.bytes.put_u64(entry.digest.0);
                }
            }
            Entries::Events(events) => {
                self.bytes.put_u8(1);
                self.events(events);
            }
        }
    }
}

struct In<'a> {
    bytes: &'a Bytes,
    offset: usize,
}

impl<'a> In<'a> {
    fn new(bytes: &'a Bytes) -> Result<In<'a>, WireError> {
        let mut input = In { bytes, offset: 0 };
        let version = input.take(1)?[0];
        if version != VERSION {
            return Err(WireError(format!(
                "version {version}, this node speaks {VERSION}"
            )));
        }
        Ok(input)
    }

    fn end(&self) -> Result<(), WireError> {
        if self.offset == self.bytes.len() {
            Ok(())
        } else {
            Err(WireError(format!(
                "{} bytes after the message",
                self.bytes.len() - self.offset
            )))
        }
    }

    fn take(&mut self, length: usize) -> Result<&'a [u8], WireError> {
        let end = self
            .offset
            .checked_add(length)
            .filter(|end| *end <= self.bytes.len());
        let Some(end) = end else {
            return Err(WireError(format!(
                "the message ends early, at byte {}",
                self.offset
            )));
        };
        let slice = &self.bytes[self.offset..end];
        self.offset = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn u128(&mut self) -> Result<u128, WireError> {
        Ok(u128::from_be_bytes(self.array()?))
    }

    /// A count of items of at least `item_bytes` each: it cannot promise
    /// more items than the bytes left hold, so no allocation runs away.
    fn count(&mut self, item_bytes: usize) -> Result<usize, WireError> {
        let count = u32::from_be_bytes(self.array()?) as usize;
        if count > (self.bytes.len() - self.offset) / item_bytes {
            return Err(WireError(format!("a count of {count} exceeds the message")));
        }
        Ok(count)
    }

    fn flag(&mut self) -> Result<bool, WireError> {
        match self.take(1)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(WireError(format!("flag byte {other}"))),
        }
    }

    fn id(&mut self) -> Result<EventId, WireError> {
        Ok(EventId::from_bytes(self.array()?))
    }

    fn cursor(&mut self) -> Result<Cursor, WireError> {
        Ok(Cursor {
            incarnation: self.u128()?,
            epoch: self.u128()?,
            lc: self.u64()?,
            us: self.u64()?,
        })
    }

    fn option_cursor(&mut self) -> Result<Option<Cursor>, WireError> {
        if self.flag()? {
            Ok(Some(self.cursor()?))
        } else {
            Ok(None)
        }
    }

    fn summary(&mut self) -> Result<Summary, WireError> {
        let incarnation = self.u128()?;
        let head_lc = self.u64()?;
        let head_us = self.u64()?;
        let count = self.count(32)?;
        let mut history = Vec::with_capacity(count);
        for _ in 0..count {
            history.push(EpochStart {
                epoch: self.u128()?,
                start_lc: self.u64()?,
                start_us: self.u64()?,
            });
        }
        Ok(Summary {
            incarnation,
            history,
            head_lc,
            head_us,
        })
    }

    fn ids(&mut self) -> Result<Vec<EventId>, WireError> {
        let count = self.count(16)?;
        (0..count).map(|_| self.id()).collect()
    }

    fn events(&mut self) -> Result<Vec<Event>, WireError> {
        let count = self.count(28)?;
        let mut events = Vec::with_capacity(count);
        for _ in 0..count {
            let id = self.id()?;
            let recorded_at = Timestamp(self.u64()?);
            let length = u32::from_be_bytes(self.array()?) as usize;
            let start = self.offset;
            self.take(length)?;
            events.push(Event {
                id,
                data: self.bytes.slice(start..start + length),
                recorded_at,
                lc: 0,
            });
        }
        Ok(events)
    }

    fn page(&mut self) -> Result<Page, WireError> {
        let from = self.cursor()?;
        let to = self.cursor()?;
        let more = self.flag()?;
        let entries = if self.flag()? {
            Entries::Events(self.events()?)
        } else {
            let count = self.count(24)?;
            let mut entries = Vec::with_capacity(count);
            for _ in 0..count {
                entries.push(IdDigest {
                    id: self.id()?,
                    digest: Digest(self.u64()?),
                });
            }
            Entries::Ids(entries)
        };
        Ok(Page {
            from,
            to,
            more,
            entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor(lc: u64) -> Cursor {
        Cursor {
            incarnation: 1 << 100,
            epoch: 3,
            lc,
            us: lc / 2,
        }
    }

    fn event(n: u64) -> Event {
        Event {
            id: EventId::from_parts(n, u128::from(n)),
            data: Bytes::from(vec![n as u8; n as usize]),
            recorded_at: Timestamp(n * 7),
            lc: 0,
        }
    }

    #[test]
    fn every_message_round_trips() {
        let ids_page = Page {
            from: cursor(5),
            to: cursor(9),
            more: true,
            entries: Entries::Ids(vec![IdDigest {
                id: event(1).id,
                digest: Digest(42),
            }]),
        };
        let events_page = Page {
            entries: Entries::Events(vec![event(3), event(0)]),
            more: false,
            ..ids_page.clone()
        };
        let offer = Offer {
            pull: Some(cursor(4)),
            bulk: true,
            summary: Summary {
                incarnation: 9,
                history: vec![EpochStart {
                    epoch: 2,
                    start_lc: 1,
                    start_us: 0,
                }],
                head_lc: 10,
                head_us: 1,
            },
            push: events_page.clone(),
        };
        assert_eq!(decode_offer(&encode_offer(&offer)).expect("offer"), offer);
        let reply = Reply {
            missing: vec![event(2).id],
            page: ids_page,
            cursor_at_initiator: cursor(1),
            push_taken: true,
            cursor_stored: Some(cursor(2)),
            remaining: 12,
            losers_listed: 3,
        };
        assert_eq!(decode_reply(&encode_reply(&reply)).expect("reply"), reply);
        let request = FillRequest {
            fill: Fill {
                events: vec![event(4)],
                complete: false,
                push_to: cursor(8),
                want: vec![event(5).id],
            },
            missing: vec![event(4).id],
            push_taken: false,
            cursor_stored: None,
        };
        assert_eq!(decode_fill(&encode_fill(&request)).expect("fill"), request);
        let deliver = Deliver {
            events: vec![event(6)],
            complete: true,
        };
        assert_eq!(
            decode_deliver(&encode_deliver(&deliver)).expect("deliver"),
            deliver
        );
    }

    #[test]
    fn truncated_or_padded_messages_are_refused() {
        let deliver = encode_deliver(&Deliver {
            events: vec![event(6)],
            complete: true,
        });
        for cut in 0..deliver.len() {
            assert!(
                decode_deliver(&deliver.slice(..cut)).is_err(),
                "cut at {cut}"
            );
        }
        let mut padded = deliver.to_vec();
        padded.push(0);
        assert!(decode_deliver(&Bytes::from(padded)).is_err());
        let huge_count = Bytes::from_static(&[1, 0xff, 0xff, 0xff, 0xff]);
        assert!(decode_deliver(&huge_count).is_err());
    }
}
