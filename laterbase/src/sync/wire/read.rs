//! Reading the fields of sync messages, the counterpart of `write.rs`.
//! Every field goes through the crate's checked reader, and every count is
//! held to the bytes left before anything is allocated for it, so no
//! message, however short or hostile, makes a read panic or run away.

use bytes::Bytes;

use super::version::{WireError, version_of};
use crate::codec::{ReadError, Reader};
use crate::event::{Event, EventId, Timestamp};
use crate::limits::{
    SYNC_EPOCH_BYTES, SYNC_EVENT_FRAMING_BYTES, SYNC_ID_BYTES, SYNC_ID_DIGEST_BYTES,
    SYNC_LOSER_FRAMING_BYTES, SYNC_RUN_BYTES,
};
use crate::sync::messages::{
    Cursor, Digest, Entries, EpochStart, Held, IdDigest, ListFrom, Loser, LoserPage, Page, Summary,
};

/// A message being read, after its version.
pub(super) struct In {
    reader: Reader<Bytes>,
    version: u8,
}

impl In {
    /// The message in `bytes`, if it is in a version this node speaks.
    pub(super) fn new(bytes: &Bytes) -> Result<In, WireError> {
        let version = version_of(bytes)?;
        let mut reader = Reader::new(bytes.clone());
        reader.u8("the version").map_err(malformed)?;
        Ok(In { reader, version })
    }

    /// Whether the message is in the current version (with its fields).
    pub(super) fn current(&self) -> bool {
        self.version >= 3
    }

    /// Refuses bytes left after the message.
    pub(super) fn end(&self) -> Result<(), WireError> {
        self.reader.end().map_err(malformed)
    }

    pub(super) fn list_from(&mut self) -> Result<Option<ListFrom>, WireError> {
        match self.u8("a list position's tag")? {
            0 => Ok(None),
            1 => Ok(Some(None)),
            2 => Ok(Some(Some(self.id("a list position")?))),
            other => Err(WireError(format!("list position tag {other}"))),
        }
    }

    pub(super) fn option_losers(&mut self) -> Result<Option<LoserPage>, WireError> {
        if !self.flag("whether a list page follows")? {
            return Ok(None);
        }
        let Some(after) = self.list_from()? else {
            return Err(WireError("a list page without its position".to_owned()));
        };
        let count = self.count(SYNC_LOSER_FRAMING_BYTES, "losers")?;
        let mut losers = Vec::with_capacity(count);
        for _ in 0..count {
            let id = self.id("a loser's id")?;
            let data = self.data("a loser's length", "a loser's data")?;
            losers.push(Loser { id, data });
        }
        let more = self.flag("whether the list goes on")?;
        Ok(Some(LoserPage {
            after,
            losers,
            more,
        }))
    }

    pub(super) fn u64(&mut self, field: &'static str) -> Result<u64, WireError> {
        self.reader.u64(field).map_err(malformed)
    }

    pub(super) fn flag(&mut self, field: &'static str) -> Result<bool, WireError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(WireError(format!("flag byte {other}"))),
        }
    }

    pub(super) fn cursor(&mut self) -> Result<Cursor, WireError> {
        Ok(Cursor {
            incarnation: self.u128("a cursor's incarnation")?,
            epoch: self.u128("a cursor's epoch")?,
            lc: self.u64("a cursor's lc")?,
            us: self.u64("a cursor's update number")?,
        })
    }

    pub(super) fn option_cursor(&mut self) -> Result<Option<Cursor>, WireError> {
        if self.flag("whether a cursor follows")? {
            Ok(Some(self.cursor()?))
        } else {
            Ok(None)
        }
    }

    pub(super) fn summary(&mut self) -> Result<Summary, WireError> {
        let incarnation = self.u128("the summary's incarnation")?;
        let head_lc = self.u64("the summary's head lc")?;
        let head_us = self.u64("the summary's head update number")?;
        let count = self.count(SYNC_EPOCH_BYTES, "epochs")?;
        let mut history = Vec::with_capacity(count);
        for _ in 0..count {
            history.push(EpochStart {
                epoch: self.u128("an epoch")?,
                start_lc: self.u64("an epoch's start lc")?,
                start_us: self.u64("an epoch's start update number")?,
            });
        }
        Ok(Summary {
            incarnation,
            history,
            head_lc,
            head_us,
        })
    }

    pub(super) fn ids(&mut self) -> Result<Vec<EventId>, WireError> {
        let count = self.count(SYNC_ID_BYTES, "ids")?;
        (0..count).map(|_| self.id("an id")).collect()
    }

    pub(super) fn events(&mut self) -> Result<Vec<Event>, WireError> {
        let count = self.count(SYNC_EVENT_FRAMING_BYTES, "events")?;
        let mut events = Vec::with_capacity(count);
        for _ in 0..count {
            let id = self.id("an event's id")?;
            let recorded_at = Timestamp(self.u64("an event's recorded_at")?);
            let data = self.data("an event's length", "an event's data")?;
            events.push(Event {
                id,
                data,
                recorded_at,
                lc: 0,
            });
        }
        Ok(events)
    }

    pub(super) fn page(&mut self) -> Result<Page, WireError> {
        let from = self.cursor()?;
        let to = self.cursor()?;
        let more = self.flag("whether the log goes on")?;
        let entries = if self.flag("whether the page holds whole events")? {
            Entries::Events(self.events()?)
        } else {
            let count = self.count(SYNC_ID_DIGEST_BYTES, "ids and digests")?;
            let mut entries = Vec::with_capacity(count);
            for _ in 0..count {
                entries.push(IdDigest {
                    id: self.id("an id")?,
                    digest: Digest(self.u64("a digest")?),
                });
            }
            Entries::Ids(entries)
        };
        let mut held = Vec::new();
        if self.current() {
            let count = self.count(SYNC_RUN_BYTES, "held runs")?;
            held.reserve(count);
            for _ in 0..count {
                held.push(Held {
                    after_lc: self.u64("a run's start")?,
                    to_lc: self.u64("a run's end")?,
                    incarnation: self.u128("a run's incarnation")?,
                    epoch: self.u128("a run's epoch")?,
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

    fn u8(&mut self, field: &'static str) -> Result<u8, WireError> {
        self.reader.u8(field).map_err(malformed)
    }

    fn u128(&mut self, field: &'static str) -> Result<u128, WireError> {
        self.reader.u128(field).map_err(malformed)
    }

    fn id(&mut self, field: &'static str) -> Result<EventId, WireError> {
        Ok(EventId::from_bytes(
            self.reader.array(field).map_err(malformed)?,
        ))
    }

    /// A count of items of at least `item_bytes` each: it cannot promise
    /// more items than the bytes left hold, so no allocation runs away.
    fn count(&mut self, item_bytes: usize, field: &'static str) -> Result<usize, WireError> {
        self.reader.count(item_bytes, field).map_err(malformed)
    }

    /// A length and that many bytes, as a slice of the message.
    fn data(&mut self, length: &'static str, field: &'static str) -> Result<Bytes, WireError> {
        let length = self.reader.u32(length).map_err(malformed)?;
        let length = usize::try_from(length).unwrap_or(usize::MAX);
        self.reader.bytes(length, field).map_err(malformed)
    }
}

/// Why a message the reader could not read is refused, in the words this
/// node has always used (a peer may show them).
fn malformed(error: ReadError) -> WireError {
    match error {
        ReadError::Short { at, .. } => WireError(format!("the message ends early, at byte {at}")),
        ReadError::Count { count, .. } => {
            WireError(format!("a count of {count} exceeds the message"))
        }
        ReadError::Trailing { left, .. } => WireError(format!("{left} bytes after the message")),
    }
}
