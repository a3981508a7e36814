//! What sync keeps in a database's own metadata, and the [`Log`] of a
//! database as the protocol reads it.
//!
//! ```text
//! "epochs"            n x (epoch u128 | start_lc u64 | start_us u64)
//! "link/" + peer id   cursor into the peer | the peer's cursor into us,
//!                     each absent (one byte 0) or (1 | incarnation | epoch | lc | us),
//!                     then bulk u8 (1 if bulk, 0 or absent if not)
//! ```

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use super::protocol::{Cursor, Digest, EpochStart, Log, Loser, PageBounds, digest};
use crate::codec::{ReadError, Reader};
use crate::error::StorageError;
use crate::event::{Event, EventId};
use crate::limits::CONFLICTS_PAGE_BYTES_MAX;
use crate::storage::{DatabaseStore, StorageResult};

/// The metadata key of a database's epochs.
pub const EPOCHS_KEY: &[u8] = b"epochs";

const EPOCH_BYTES: usize = 16 + 8 + 8;
const CURSOR_BYTES: usize = 1 + 16 + 16 + 8 + 8;

/// Encodes epochs for the metadata.
pub fn encode_epochs(epochs: &[EpochStart]) -> Bytes {
    let mut out = BytesMut::with_capacity(epochs.len() * EPOCH_BYTES);
    for epoch in epochs {
        out.put_u128(epoch.epoch);
        out.put_u64(epoch.start_lc);
        out.put_u64(epoch.start_us);
    }
    out.freeze()
}

/// Decodes epochs from the metadata.
pub fn decode_epochs(bytes: &[u8]) -> StorageResult<Vec<EpochStart>> {
    if !bytes.len().is_multiple_of(EPOCH_BYTES) {
        return Err(corrupt("epochs", bytes.len()));
    }
    let corrupted = |_: ReadError| corrupt("epochs", bytes.len());
    let mut reader = Reader::new(bytes);
    let mut epochs = Vec::with_capacity(bytes.len() / EPOCH_BYTES);
    while reader.remaining() > 0 {
        epochs.push(EpochStart {
            epoch: reader.u128("an epoch").map_err(corrupted)?,
            start_lc: reader.u64("an epoch's start lc").map_err(corrupted)?,
            start_us: reader
                .u64("an epoch's start update number")
                .map_err(corrupted)?,
        });
    }
    Ok(epochs)
}

/// The metadata key of what this database keeps about `peer`.
pub fn link_key(peer: EventId) -> Vec<u8> {
    let mut key = b"link/".to_vec();
    key.extend_from_slice(&peer.to_bytes());
    key
}

/// What a database keeps about one peer: its cursor into the peer's log,
/// and the peer's cursor into its own as last learnt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Link {
    /// How far this database has pulled from the peer.
    pub into_peer: Option<Cursor>,
    /// How far the peer has pulled from this database, as last learnt.
    pub peer_into_local: Option<Cursor>,
    /// Whether this database is catching up with the peer (asks for whole
    /// events).
    pub bulk: bool,
}

/// Encodes a link for the metadata.
pub fn encode_link(link: &Link) -> Bytes {
    let mut out = BytesMut::with_capacity(2 * CURSOR_BYTES);
    for cursor in [link.into_peer, link.peer_into_local] {
        match cursor {
            None => out.put_u8(0),
            Some(cursor) => {
                out.put_u8(1);
                out.put_u128(cursor.incarnation);
                out.put_u128(cursor.epoch);
                out.put_u64(cursor.lc);
                out.put_u64(cursor.us);
            }
        }
    }
    out.put_u8(u8::from(link.bulk));
    out.freeze()
}

/// Decodes a link from the metadata.
pub fn decode_link(bytes: &[u8]) -> StorageResult<Link> {
    let mut reader = Reader::new(bytes);
    let into_peer = link_cursor(&mut reader)?;
    let peer_into_local = link_cursor(&mut reader)?;
    let bulk = reader.u8("bulk").is_ok_and(|flag| flag == 1);
    Ok(Link {
        into_peer,
        peer_into_local,
        bulk,
    })
}

/// One cursor of a link: absent (a byte 0), or a byte 1 and the cursor.
/// A link that ends inside one is corrupt, with the bytes that were left.
fn link_cursor(reader: &mut Reader<&[u8]>) -> StorageResult<Option<Cursor>> {
    let corrupted = |error: ReadError| corrupt("link", error.left());
    if reader.u8("a cursor's flag").map_err(corrupted)? == 0 {
        return Ok(None);
    }
    // The whole cursor first, so that a link cut inside it says how much
    // of it there was.
    let mut cursor = Reader::new(
        reader
            .slice(CURSOR_BYTES - 1, "a cursor")
            .map_err(corrupted)?,
    );
    Ok(Some(Cursor {
        incarnation: cursor.u128("its incarnation").map_err(corrupted)?,
        epoch: cursor.u128("its epoch").map_err(corrupted)?,
        lc: cursor.u64("its lc").map_err(corrupted)?,
        us: cursor.u64("its update number").map_err(corrupted)?,
    }))
}

fn corrupt(what: &'static str, length: usize) -> StorageError {
    StorageError::Corrupt {
        what,
        detail: format!("{length} bytes do not decode"),
    }
}

/// A database's log as the protocol reads it: durable events only, up to
/// the watermarks taken when the view was made.
pub struct DatabaseLog {
    pub(crate) store: Arc<dyn DatabaseStore>,
    pub(crate) incarnation: u128,
    pub(crate) history: Vec<EpochStart>,
    pub(crate) head_lc: u64,
    pub(crate) head_us: u64,
    pub(crate) losers_listed: u64,
}

impl DatabaseLog {
    /// The durable event `id`, if stored.
    fn event(&self, id: EventId) -> StorageResult<Option<Event>> {
        match self.store.lc_of(id)? {
            Some(lc) if lc <= self.head_lc => self.store.event_at(lc),
            _ => Ok(None),
        }
    }
}

impl Log for DatabaseLog {
    fn incarnation(&self) -> u128 {
        self.incarnation
    }

    fn history(&self) -> Vec<EpochStart> {
        self.history.clone()
    }

    fn head_lc(&self) -> u64 {
        self.head_lc
    }

    fn head_us(&self) -> u64 {
        self.head_us
    }

    fn losers_listed(&self) -> u64 {
        self.losers_listed
    }

    fn losers_after(
        &self,
        after: Option<EventId>,
        bounds: PageBounds,
    ) -> StorageResult<(Vec<Loser>, bool)> {
        let bytes = bounds.bytes.min(CONFLICTS_PAGE_BYTES_MAX);
        let (losers, more) = self.store.losers_after(after, bounds.events, bytes)?;
        let losers = losers
            .into_iter()
            .flat_map(|(id, lost)| lost.into_iter().map(move |data| Loser { id, data }))
            .collect();
        Ok((losers, more))
    }

    fn events_after(&self, after_lc: u64, bounds: PageBounds) -> StorageResult<(Vec<Event>, bool)> {
        // The scan stops at the page's bytes: a log of large events is read
        // a page at a time, not up to the page's count of events.
        let events = self
            .store
            .scan_log(after_lc, self.head_lc, bounds.events, bounds.bytes)?;
        let last = events.last().map_or(after_lc, |event| event.lc);
        Ok((events, last < self.head_lc))
    }

    fn updates_after(
        &self,
        after_us: u64,
        bounds: PageBounds,
    ) -> StorageResult<(Vec<(u64, Event)>, bool)> {
        let updates = self
            .store
            .updates_after(after_us, self.head_us, bounds.events)?;
        let mut out = Vec::with_capacity(updates.len());
        let mut bytes = 0;
        let mut last = after_us;
        for (us, id) in updates {
            if let Some(lc) = self.store.lc_of(id)?
                && let Some(event) = self.store.event_at(lc)?
            {
                bytes += event.data.len();
                if bytes > bounds.bytes && !out.is_empty() {
                    break;
                }
                out.push((us, event));
            }
            last = us;
        }
        Ok((out, last < self.head_us))
    }

    fn digests(&self, ids: &[EventId]) -> StorageResult<Vec<Option<Digest>>> {
        // One event at a time: a page of ids over large events is digested
        // without holding the events.
        ids.iter()
            .map(|id| {
                let event = self.event(*id)?;
                Ok(event.map(|event| digest(&event.data, event.recorded_at)))
            })
            .collect()
    }

    fn events(&self, ids: &[EventId]) -> StorageResult<Vec<Option<Event>>> {
        ids.iter().map(|id| self.event(*id)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Timestamp;
    use crate::storage::memory::MemoryStorage;
    use crate::storage::{DatabaseRecord, Storage, StoredEvent, WriteBatch};

    /// A log of `count` events of `bytes` each, on a store that counts what
    /// its reads return.
    fn log_of(count: u64, bytes: usize) -> (MemoryStorage, DatabaseLog) {
        let storage = MemoryStorage::new();
        let record = DatabaseRecord {
            name: "large".to_owned(),
            incarnation: 1,
            created_at: Timestamp(0),
        };
        let store: Arc<dyn DatabaseStore> =
            Arc::from(storage.create_database(&record).expect("create"));
        let events = (0..count)
            .map(|n| StoredEvent {
                id: EventId::from_parts(1_700_000_000_000 + n, 0),
                recorded_at: Timestamp(0),
                data: Bytes::from(vec![b'7'; bytes]),
            })
            .collect();
        let batch = WriteBatch {
            first_lc: 1,
            events,
            ..WriteBatch::default()
        };
        store.write(&batch).expect("write");
        let log = DatabaseLog {
            store,
            incarnation: 1,
            history: vec![EpochStart {
                epoch: 1,
                start_lc: 0,
                start_us: 0,
            }],
            head_lc: count,
            head_us: 0,
            losers_listed: 0,
        };
        (storage, log)
    }

    #[test]
    fn a_page_of_large_events_reads_no_more_than_its_bytes() {
        let event_bytes = 64 * 1024;
        let (storage, log) = log_of(300, event_bytes);
        let bounds = PageBounds {
            events: 10_000,
            bytes: 1024 * 1024,
        };
        let mut after_lc = 0;
        let mut pages = 0;
        loop {
            let before = storage.event_bytes_read();
            let (page, more) = log.events_after(after_lc, bounds).expect("page");
            let read = storage.event_bytes_read() - before;
            assert!(
                read <= (bounds.bytes + event_bytes) as u64,
                "a page read {read} bytes of events, past its bound of {}",
                bounds.bytes
            );
            assert_eq!(page.len(), (300 - after_lc as usize).min(16));
            assert_eq!(page[0].lc, after_lc + 1, "pages chain");
            after_lc = page.last().expect("never empty").lc;
            pages += 1;
            if !more {
                break;
            }
        }
        assert_eq!((after_lc, pages), (300, 19));
    }

    /// How many events read through a [`Tracked`] store are alive, and the
    /// most that were at once.
    #[derive(Default)]
    struct Alive {
        now: std::sync::atomic::AtomicUsize,
        peak: std::sync::atomic::AtomicUsize,
    }

    /// An event's data that counts itself alive until dropped.
    struct Counted {
        data: Bytes,
        alive: Arc<Alive>,
    }

    impl AsRef<[u8]> for Counted {
        fn as_ref(&self) -> &[u8] {
            &self.data
        }
    }

    impl Drop for Counted {
        fn drop(&mut self) {
            self.alive
                .now
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// A store whose events read by `lc` count how many are alive at once.
    struct Tracked {
        inner: Arc<dyn DatabaseStore>,
        alive: Arc<Alive>,
    }

    impl DatabaseStore for Tracked {
        fn last_lc(&self) -> StorageResult<u64> {
            self.inner.last_lc()
        }
        fn last_id(&self) -> StorageResult<Option<EventId>> {
            self.inner.last_id()
        }
        fn last_us(&self) -> StorageResult<u64> {
            self.inner.last_us()
        }
        fn updates_after(
            &self,
            after_us: u64,
            up_to_us: u64,
            limit: usize,
        ) -> StorageResult<Vec<(u64, EventId)>> {
            self.inner.updates_after(after_us, up_to_us, limit)
        }
        fn meta(&self, key: &[u8]) -> StorageResult<Option<Bytes>> {
            self.inner.meta(key)
        }
        fn hlc_floor(&self) -> StorageResult<Option<EventId>> {
            self.inner.hlc_floor()
        }
        fn lc_of(&self, id: EventId) -> StorageResult<Option<u64>> {
            self.inner.lc_of(id)
        }
        fn event_at(&self, lc: u64) -> StorageResult<Option<Event>> {
            use std::sync::atomic::Ordering::SeqCst;
            Ok(self.inner.event_at(lc)?.map(|mut event| {
                let now = self.alive.now.fetch_add(1, SeqCst) + 1;
                self.alive.peak.fetch_max(now, SeqCst);
                event.data = Bytes::from_owner(Counted {
                    data: event.data,
                    alive: self.alive.clone(),
                });
                event
            }))
        }
        fn scan_log(
            &self,
            after_lc: u64,
            up_to_lc: u64,
            limit: usize,
            bytes_max: usize,
        ) -> StorageResult<Vec<Event>> {
            self.inner.scan_log(after_lc, up_to_lc, limit, bytes_max)
        }
        fn scan_ids(
            &self,
            after: Option<EventId>,
            before: Option<EventId>,
            up_to_lc: u64,
            limit: usize,
        ) -> StorageResult<Vec<u64>> {
            self.inner.scan_ids(after, before, up_to_lc, limit)
        }
        fn write(&self, batch: &WriteBatch) -> StorageResult<()> {
            self.inner.write(batch)
        }
        fn losers_after(
            &self,
            after: Option<EventId>,
            rows: usize,
            bytes: usize,
        ) -> StorageResult<(crate::storage::LosersById, bool)> {
            self.inner.losers_after(after, rows, bytes)
        }
        fn losers_count(&self) -> StorageResult<u64> {
            self.inner.losers_count()
        }
        fn losers(&self, id: EventId) -> StorageResult<Vec<Bytes>> {
            self.inner.losers(id)
        }
    }

    #[test]
    fn digests_of_a_page_of_ids_hold_one_event_at_a_time() {
        let (_, mut log) = log_of(100, 64 * 1024);
        let alive = Arc::new(Alive::default());
        log.store = Arc::new(Tracked {
            inner: log.store.clone(),
            alive: alive.clone(),
        });
        let ids: Vec<EventId> = (0..100)
            .map(|n| EventId::from_parts(1_700_000_000_000 + n, 0))
            .collect();
        let digests = log.digests(&ids).expect("digests");
        assert!(digests.iter().all(Option::is_some), "every id is stored");
        assert_eq!(
            alive.peak.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "each event is dropped once digested"
        );
    }

    #[test]
    fn the_events_a_peer_asks_for_are_read_only_up_to_a_page() {
        use crate::sync::protocol;
        let (_, mut log) = log_of(100, 64 * 1024);
        let alive = Arc::new(Alive::default());
        log.store = Arc::new(Tracked {
            inner: log.store.clone(),
            alive: alive.clone(),
        });
        let want: Vec<EventId> = (0..100)
            .map(|n| EventId::from_parts(1_700_000_000_000 + n, 0))
            .collect();
        let nowhere = protocol::Cursor {
            incarnation: 0,
            epoch: 0,
            lc: 0,
            us: 0,
        };
        let fill = protocol::Fill {
            events: Vec::new(),
            complete: true,
            push_to: nowhere,
            want,
            losers: None,
            losers_wanted: None,
        };
        let recall = protocol::Recall {
            held: &[],
            losers: None,
            push: true,
            push_event_bytes: usize::MAX,
        };
        let bounds = PageBounds {
            events: 10_000,
            bytes: 256 * 1024,
        };
        let (deliver, _) =
            protocol::deliver(&log, protocol::Responder::unknown(), fill, recall, bounds)
                .expect("deliver");
        assert_eq!((deliver.events.len(), deliver.complete), (4, false));
        drop(deliver);
        assert_eq!(
            alive.peak.load(std::sync::atomic::Ordering::SeqCst),
            5,
            "a page's worth, and the one event that did not fit"
        );
    }

    #[test]
    fn an_event_larger_than_a_page_still_comes_alone() {
        let (_, log) = log_of(3, 3 * 1024 * 1024);
        let bounds = PageBounds {
            events: 10_000,
            bytes: 1024 * 1024,
        };
        let (page, more) = log.events_after(0, bounds).expect("page");
        assert_eq!(page.iter().map(|event| event.lc).collect::<Vec<_>>(), [1]);
        assert!(more);
    }

    #[test]
    fn links_and_epochs_round_trip() {
        let cursor = Cursor {
            incarnation: 7,
            epoch: 8,
            lc: 9,
            us: 10,
        };
        for link in [
            Link::default(),
            Link {
                into_peer: Some(cursor),
                peer_into_local: None,
                bulk: true,
            },
            Link {
                into_peer: None,
                peer_into_local: Some(cursor),
                bulk: false,
            },
        ] {
            assert_eq!(decode_link(&encode_link(&link)).expect("decodes"), link);
        }
        let epochs = vec![
            EpochStart {
                epoch: 1,
                start_lc: 0,
                start_us: 0,
            },
            EpochStart {
                epoch: u128::MAX,
                start_lc: 5,
                start_us: 2,
            },
        ];
        assert_eq!(
            decode_epochs(&encode_epochs(&epochs)).expect("decodes"),
            epochs
        );
    }

    #[test]
    fn a_link_cut_short_is_corrupt_and_names_the_bytes_left() {
        let cursor = Cursor {
            incarnation: 1,
            epoch: 2,
            lc: 3,
            us: 4,
        };
        let link = Link {
            into_peer: Some(cursor),
            peer_into_local: Some(cursor),
            bulk: true,
        };
        let bytes = encode_link(&link);
        assert_eq!(bytes.len(), 2 * CURSOR_BYTES + 1);
        for cut in 0..2 * CURSOR_BYTES {
            let error = decode_link(&bytes[..cut]).expect_err("cut");
            // Where the cursor that is cut starts, and what is left after
            // its flag.
            let left = match cut % CURSOR_BYTES {
                0 => 0,
                within => within - 1,
            };
            assert_eq!(
                error.to_string(),
                format!("corrupt link: {left} bytes do not decode"),
                "cut at {cut}"
            );
        }
        let without_bulk = decode_link(&bytes[..2 * CURSOR_BYTES]).expect("decodes");
        assert_eq!(
            without_bulk,
            Link {
                bulk: false,
                ..link
            },
            "no bulk byte: not bulk"
        );
    }

    #[test]
    fn epochs_not_a_whole_number_of_epochs_long_are_corrupt() {
        let epoch = EpochStart {
            epoch: 1,
            start_lc: 2,
            start_us: 3,
        };
        let bytes = encode_epochs(&[epoch, epoch]);
        for cut in 0..bytes.len() {
            match decode_epochs(&bytes[..cut]) {
                Ok(epochs) => assert_eq!(epochs.len() * EPOCH_BYTES, cut, "cut at {cut}"),
                Err(error) => assert_eq!(
                    error.to_string(),
                    format!("corrupt epochs: {cut} bytes do not decode")
                ),
            }
        }
    }

    proptest::proptest! {
        /// No bytes make the metadata's decoders panic.
        #[test]
        fn no_bytes_make_a_link_or_epochs_decoder_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120),
        ) {
            let _ = decode_link(&bytes);
            let _ = decode_epochs(&bytes);
        }
    }
}
