//! The sync messages on the wire: a compact binary encoding, described in
//! `docs/sync.md`. Integers are big-endian, ids 16 bytes, events
//! `id | recorded_at ms u64 | length u32 | data`.
//!
//! A message starts with its version. This node speaks [`VERSION`] and,
//! to nodes of the first release, [`VERSION_OLDEST`]: a version 2 message
//! is a version 3 one without the runs a page names as held, without the
//! counts and pages of the lists of losers. A responder answers in the
//! version it was asked in.

use bytes::{BufMut, Bytes, BytesMut};

use super::protocol::{
    Cursor, Deliver, Digest, Entries, EpochStart, Fill, Held, IdDigest, ListFrom, Loser, LoserPage,
    Offer, Page, Reply, Summary,
};
use crate::event::{Event, EventId, Timestamp};

/// The content type of sync messages.
pub const CONTENT_TYPE: &str = "application/vnd.laterbase.sync";

/// The wire version this node speaks by choice.
pub const VERSION: u8 = 3;

/// The oldest wire version this node still speaks: the first release's.
pub const VERSION_OLDEST: u8 = 2;

/// The header that names the node answering, and the node syncing.
pub const NODE_HEADER: &str = "laterbase-node";

/// The header in which a node names the newest wire version it speaks, on
/// every answer (nodes of the first release send none).
pub const VERSION_HEADER: &str = "laterbase-sync-version";

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

/// The version a message is in, if this node speaks it.
pub fn version_of(bytes: &[u8]) -> Result<u8, WireError> {
    match bytes.first() {
        None => Err(WireError("the message is empty".to_owned())),
        Some(&version) if (VERSION_OLDEST..=VERSION).contains(&version) => Ok(version),
        Some(&version) => Err(WireError(format!(
            "version {version}, this node speaks {VERSION}"
        ))),
    }
}

/// The version a peer's refusal says it speaks, when it refused a message
/// for its version (`version N, this node speaks M`).
pub fn version_refused(answer: &str) -> Option<u8> {
    let (_, rest) = answer.split_once("this node speaks ")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Encodes message 1 in `version`.
pub fn encode_offer(offer: &Offer, version: u8) -> Bytes {
    let mut out = Out::new(version);
    out.option_cursor(offer.pull);
    out.bytes.put_u8(u8::from(offer.bulk));
    out.summary(&offer.summary);
    out.page(&offer.push);
    if out.current() {
        out.bytes.put_u64(offer.losers_listed);
    }
    out.done()
}

/// Decodes message 1, in any version this node speaks.
pub fn decode_offer(bytes: &Bytes) -> Result<Offer, WireError> {
    let mut input = In::new(bytes)?;
    let offer = Offer {
        pull: input.option_cursor()?,
        bulk: input.flag()?,
        summary: input.summary()?,
        push: input.page()?,
        losers_listed: if input.current() { input.u64()? } else { 0 },
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
    out.bytes.put_u8(u8::from(reply.push_taken));
    out.option_cursor(reply.cursor_stored);
    out.bytes.put_u64(reply.remaining);
    out.bytes.put_u64(reply.losers_listed);
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
        push_taken: input.flag()?,
        cursor_stored: input.option_cursor()?,
        remaining: input.u64()?,
        losers_listed: input.u64()?,
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
    out.bytes.put_u8(u8::from(request.fill.complete));
    out.cursor(request.fill.push_to);
    out.ids(&request.fill.want);
    out.ids(&request.missing);
    out.bytes.put_u8(u8::from(request.push_taken));
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
        complete: input.flag()?,
        push_to: input.cursor()?,
        want: input.ids()?,
        losers: None,
        losers_wanted: None,
    };
    let missing = input.ids()?;
    let push_taken = input.flag()?;
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
    out.bytes.put_u8(u8::from(deliver.complete));
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
        complete: input.flag()?,
        losers: if input.current() {
            input.option_losers()?
        } else {
            None
        },
    };
    input.end()?;
    Ok(deliver)
}

struct Out {
    bytes: BytesMut,
    version: u8,
}

impl Out {
    fn new(version: u8) -> Out {
        assert!(
            (VERSION_OLDEST..=VERSION).contains(&version),
            "wire version {version} is not spoken here"
        );
        let mut bytes = BytesMut::with_capacity(256);
        bytes.put_u8(version);
        Out { bytes, version }
    }

    /// Whether the message is in the current version (with its fields).
    fn current(&self) -> bool {
        self.version >= 3
    }

    fn list_from(&mut self, from: Option<ListFrom>) {
        match from {
            None => self.bytes.put_u8(0),
            Some(None) => self.bytes.put_u8(1),
            Some(Some(id)) => {
                self.bytes.put_u8(2);
                self.bytes.put_slice(&id.to_bytes());
            }
        }
    }

    fn option_losers(&mut self, page: Option<&LoserPage>) {
        let Some(page) = page else {
            self.bytes.put_u8(0);
            return;
        };
        self.bytes.put_u8(1);
        self.list_from(Some(page.after));
        self.count(page.losers.len());
        for loser in &page.losers {
            self.bytes.put_slice(&loser.id.to_bytes());
            self.count(loser.data.len());
            self.bytes.put_slice(&loser.data);
        }
        self.bytes.put_u8(u8::from(page.more));
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
        if self.current() {
            self.count(page.held.len());
            for run in &page.held {
                self.bytes.put_u64(run.after_lc);
                self.bytes.put_u64(run.to_lc);
                self.bytes.put_u128(run.incarnation);
                self.bytes.put_u128(run.epoch);
            }
        } else {
            assert!(page.held.is_empty(), "version 2 names no held runs");
        }
    }
}

struct In<'a> {
    bytes: &'a Bytes,
    offset: usize,
    version: u8,
}

impl<'a> In<'a> {
    fn new(bytes: &'a Bytes) -> Result<In<'a>, WireError> {
        let version = version_of(bytes)?;
        Ok(In {
            bytes,
            offset: 1,
            version,
        })
    }

    /// Whether the message is in the current version (with its fields).
    fn current(&self) -> bool {
        self.version >= 3
    }

    fn list_from(&mut self) -> Result<Option<ListFrom>, WireError> {
        match self.take(1)?[0] {
            0 => Ok(None),
            1 => Ok(Some(None)),
            2 => Ok(Some(Some(self.id()?))),
            other => Err(WireError(format!("list position tag {other}"))),
        }
    }

    fn option_losers(&mut self) -> Result<Option<LoserPage>, WireError> {
        if !self.flag()? {
            return Ok(None);
        }
        let Some(after) = self.list_from()? else {
            return Err(WireError("a list page without its position".to_owned()));
        };
        let count = self.count(20)?;
        let mut losers = Vec::with_capacity(count);
        for _ in 0..count {
            let id = self.id()?;
            let length = u32::from_be_bytes(self.array()?) as usize;
            let start = self.offset;
            self.take(length)?;
            losers.push(Loser {
                id,
                data: self.bytes.slice(start..start + length),
            });
        }
        let more = self.flag()?;
        Ok(Some(LoserPage {
            after,
            losers,
            more,
        }))
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
        let mut held = Vec::new();
        if self.current() {
            let count = self.count(48)?;
            held.reserve(count);
            for _ in 0..count {
                held.push(Held {
                    after_lc: self.u64()?,
                    to_lc: self.u64()?,
                    incarnation: self.u128()?,
                    epoch: self.u128()?,
                });
            }
        }
        Ok(Page {
            from,
            to,
            more,
            entries,
            held,
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

    fn ids_page() -> Page {
        Page {
            from: cursor(5),
            to: cursor(9),
            more: true,
            entries: Entries::Ids(vec![
                IdDigest {
                    id: event(1).id,
                    digest: Digest(42),
                },
                IdDigest {
                    id: event(2).id,
                    digest: Digest(u64::MAX),
                },
            ]),
            held: Vec::new(),
        }
    }

    fn events_page() -> Page {
        Page {
            entries: Entries::Events(vec![event(3), event(0)]),
            more: false,
            ..ids_page()
        }
    }

    fn summary() -> Summary {
        Summary {
            incarnation: 9,
            history: vec![
                EpochStart {
                    epoch: 2,
                    start_lc: 1,
                    start_us: 0,
                },
                EpochStart {
                    epoch: 5,
                    start_lc: 4,
                    start_us: 1,
                },
            ],
            head_lc: 10,
            head_us: 1,
        }
    }

    /// The messages of the version 2 fixtures, as the first release built
    /// them (no field of version 3 set).
    fn release_messages() -> (Offer, Offer, Reply, FillRequest, Deliver) {
        let offer = Offer {
            pull: Some(cursor(4)),
            bulk: false,
            summary: summary(),
            push: ids_page(),
            losers_listed: 0,
        };
        let offer_events = Offer {
            pull: None,
            bulk: true,
            summary: summary(),
            push: events_page(),
            losers_listed: 0,
        };
        let reply = Reply {
            missing: vec![event(2).id],
            page: events_page(),
            cursor_at_initiator: cursor(1),
            push_taken: true,
            cursor_stored: Some(cursor(2)),
            remaining: 12,
            losers_listed: 3,
            losers_wanted: None,
        };
        let fill = FillRequest {
            fill: Fill {
                events: vec![event(4)],
                complete: false,
                push_to: cursor(8),
                want: vec![event(5).id],
                losers: None,
                losers_wanted: None,
            },
            missing: vec![event(4).id],
            push_taken: false,
            cursor_stored: None,
        };
        let deliver = Deliver {
            events: vec![event(6)],
            complete: true,
            losers: None,
        };
        (offer, offer_events, reply, fill, deliver)
    }

    fn fixture(name: &str) -> Bytes {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/sync-v2")
            .join(name);
        Bytes::from(std::fs::read(&path).expect("the fixture is committed"))
    }

    #[test]
    fn the_first_release_messages_decode_and_encode_to_the_same_bytes() {
        let (offer, offer_events, reply, fill, deliver) = release_messages();
        for (name, offer) in [("offer.bin", offer), ("offer-events.bin", offer_events)] {
            let bytes = fixture(name);
            assert_eq!(version_of(&bytes), Ok(VERSION_OLDEST), "{name}");
            assert_eq!(decode_offer(&bytes).expect("decodes"), offer, "{name}");
            assert_eq!(encode_offer(&offer, VERSION_OLDEST), bytes, "{name}");
        }
        let bytes = fixture("reply.bin");
        assert_eq!(decode_reply(&bytes).expect("decodes"), reply);
        assert_eq!(encode_reply(&reply, VERSION_OLDEST), bytes);
        let bytes = fixture("fill.bin");
        assert_eq!(decode_fill(&bytes).expect("decodes"), fill);
        assert_eq!(encode_fill(&fill, VERSION_OLDEST), bytes);
        let bytes = fixture("deliver.bin");
        assert_eq!(decode_deliver(&bytes).expect("decodes"), deliver);
        assert_eq!(encode_deliver(&deliver, VERSION_OLDEST), bytes);
    }

    #[test]
    fn every_message_round_trips_in_the_current_version() {
        let (mut offer, _, mut reply, mut fill, mut deliver) = release_messages();
        offer.losers_listed = 7;
        offer.push.held = vec![Held {
            after_lc: 6,
            to_lc: 8,
            incarnation: 11,
            epoch: u128::MAX,
        }];
        let bytes = encode_offer(&offer, VERSION);
        assert_eq!(version_of(&bytes), Ok(VERSION));
        assert_eq!(decode_offer(&bytes).expect("offer"), offer);
        for wanted in [None, Some(None), Some(Some(event(9).id))] {
            reply.losers_wanted = wanted;
            let bytes = encode_reply(&reply, VERSION);
            assert_eq!(decode_reply(&bytes).expect("reply"), reply);
        }
        let losers = LoserPage {
            after: Some(event(1).id),
            losers: vec![
                Loser {
                    id: event(2).id,
                    data: Bytes::from_static(b"{\"b\":1} "),
                },
                Loser {
                    id: event(2).id,
                    data: Bytes::new(),
                },
            ],
            more: true,
        };
        fill.fill.losers = Some(losers.clone());
        fill.fill.losers_wanted = Some(None);
        assert_eq!(
            decode_fill(&encode_fill(&fill, VERSION)).expect("fill"),
            fill
        );
        deliver.losers = Some(LoserPage {
            after: None,
            more: false,
            ..losers
        });
        assert_eq!(
            decode_deliver(&encode_deliver(&deliver, VERSION)).expect("deliver"),
            deliver
        );
    }

    /// What each part of a message costs, against what `limits` counts:
    /// the checks there of messages against the peers' limits hold only if
    /// the encoder spends no more.
    #[test]
    fn messages_cost_what_the_limits_count() {
        use crate::limits::{
            SYNC_EPOCH_BYTES, SYNC_EVENT_FRAMING_BYTES, SYNC_ID_BYTES, SYNC_ID_DIGEST_BYTES,
            SYNC_LOSER_FRAMING_BYTES, SYNC_MESSAGE_FIXED_BYTES_MAX, SYNC_RUN_BYTES,
            SYNC_V2_FILL_FRAMING_BYTES,
        };
        let (mut offer, _, mut reply, mut fill, mut deliver) = release_messages();
        let run = Held {
            after_lc: 1,
            to_lc: 2,
            incarnation: 3,
            epoch: 4,
        };
        // Every fixed field at its largest: options set, positions named.
        reply.losers_wanted = Some(Some(event(1).id));
        fill.fill.losers_wanted = Some(Some(event(1).id));
        fill.cursor_stored = Some(cursor(1));
        let no_losers = LoserPage {
            after: Some(event(1).id),
            losers: Vec::new(),
            more: true,
        };
        fill.fill.losers = Some(no_losers.clone());
        deliver.losers = Some(no_losers);
        let (no_events, no_ids) = (Entries::Events(Vec::new()), Entries::Ids(Vec::new()));
        offer.push.entries = no_ids;
        offer.summary.history.clear();
        reply.page.entries = no_events;
        reply.missing.clear();
        (fill.fill.events, fill.fill.want, fill.missing) = (Vec::new(), Vec::new(), Vec::new());
        deliver.events.clear();
        let offer_len = |offer: &Offer| encode_offer(offer, VERSION).len();
        let reply_len = |reply: &Reply| encode_reply(reply, VERSION).len();
        let fill_len = |fill: &FillRequest| encode_fill(fill, VERSION).len();
        let deliver_len = |deliver: &Deliver| encode_deliver(deliver, VERSION).len();
        for fixed in [
            offer_len(&offer),
            reply_len(&reply),
            fill_len(&fill),
            deliver_len(&deliver),
        ] {
            assert!(fixed <= SYNC_MESSAGE_FIXED_BYTES_MAX, "{fixed}");
        }
        // Each item, by what it adds.
        let base = (offer_len(&offer), fill_len(&fill), deliver_len(&deliver));
        offer.summary.history.push(summary().history[0]);
        offer.push.held.push(run);
        offer.push.entries = Entries::Ids(vec![IdDigest {
            id: event(1).id,
            digest: Digest(1),
        }]);
        assert_eq!(
            offer_len(&offer) - base.0,
            SYNC_EPOCH_BYTES + SYNC_RUN_BYTES + SYNC_ID_DIGEST_BYTES
        );
        let data = 10;
        fill.fill.events.push(event(data));
        fill.fill.want.push(event(1).id);
        fill.missing.push(event(1).id);
        let loser = Loser {
            id: event(1).id,
            data: Bytes::from(vec![7; data as usize]),
        };
        if let Some(page) = &mut fill.fill.losers {
            page.losers.push(loser.clone());
        }
        assert_eq!(
            fill_len(&fill) - base.1,
            SYNC_EVENT_FRAMING_BYTES
                + 2 * SYNC_ID_BYTES
                + SYNC_LOSER_FRAMING_BYTES
                + 2 * data as usize
        );
        deliver.events.push(event(data));
        if let Some(page) = &mut deliver.losers {
            page.losers.push(loser);
        }
        assert_eq!(
            deliver_len(&deliver) - base.2,
            SYNC_EVENT_FRAMING_BYTES + SYNC_LOSER_FRAMING_BYTES + 2 * data as usize
        );
        // A version 2 fill of one event that asks nothing back.
        let one = FillRequest {
            fill: Fill {
                events: vec![event(data)],
                want: Vec::new(),
                losers: None,
                losers_wanted: None,
                ..fill.fill.clone()
            },
            missing: vec![event(data).id],
            ..fill
        };
        assert_eq!(
            encode_fill(&one, VERSION_OLDEST).len(),
            SYNC_V2_FILL_FRAMING_BYTES + data as usize
        );
    }

    #[test]
    fn truncated_or_padded_messages_are_refused() {
        let (_, _, _, mut fill, _) = release_messages();
        fill.fill.losers = Some(LoserPage {
            after: None,
            losers: vec![Loser {
                id: event(2).id,
                data: Bytes::from_static(b"lost"),
            }],
            more: false,
        });
        let deliver = encode_deliver(
            &Deliver {
                events: vec![event(6)],
                complete: true,
                losers: None,
            },
            VERSION,
        );
        let fill = encode_fill(&fill, VERSION);
        type Refused = fn(&Bytes) -> bool;
        let checks: [(&Bytes, Refused); 2] = [
            (&deliver, |bytes| decode_deliver(bytes).is_err()),
            (&fill, |bytes| decode_fill(bytes).is_err()),
        ];
        for (message, refused) in checks {
            for cut in 0..message.len() {
                assert!(refused(&message.slice(..cut)), "cut at {cut}");
            }
            let mut padded = message.to_vec();
            padded.push(0);
            assert!(refused(&Bytes::from(padded)), "padded");
        }
        let huge_count = Bytes::from_static(&[VERSION, 0xff, 0xff, 0xff, 0xff]);
        assert!(decode_deliver(&huge_count).is_err());
    }

    #[test]
    fn an_unknown_version_is_refused_with_the_version_spoken_here() {
        let message = Bytes::from_static(&[4, 0, 0, 0, 0, 1]);
        let error = decode_deliver(&message).expect_err("version 4 is unknown");
        assert_eq!(
            error.to_string(),
            "malformed sync message: version 4, this node speaks 3"
        );
        assert_eq!(version_refused(&error.to_string()), Some(3));
        // As the first release words it, inside its error answer.
        let released = r#"{"error":"invalid_event","message":"malformed sync message: version 3, this node speaks 2"}"#;
        assert_eq!(version_refused(released), Some(2));
        assert_eq!(version_refused("connection refused"), None);
    }
}
