//! Durable state behind one trait, with two engines.
//!
//! A node's [`Storage`] holds its metadata (node id, format version) and the
//! set of its databases; each database is a [`DatabaseStore`] with its events
//! by logical clock (the log, which the changes feed scans) and an index from
//! id to logical clock. [`fjall`](self::fjall) is the durable default;
//! [`memory`] serves tests, simulations and ephemeral use, and can lose what
//! was not persisted as a power loss would.
//!
//! Engines store and read; they decide nothing. Which events are new, which
//! conflict, and which logical clock each gets is the database actor's work.
//! Writes are atomic but not durable until [`Storage::persist`] returns.

pub mod fjall;
pub mod memory;

use bytes::Bytes;

use crate::error::StorageError;
use crate::event::{Event, EventId, Timestamp};

/// The on-disk format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// What an engine call returns.
pub type StorageResult<T> = Result<T, StorageError>;

/// The node's own record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeRecord {
    /// The format the data was written in.
    pub format_version: u32,
    /// The node's id, made when its data directory was.
    pub node_id: EventId,
}

/// A database's record, made once when it is created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseRecord {
    /// Its name.
    pub name: String,
    /// Random, made at creation, never reused: tells a recreated database
    /// from the one before it.
    pub incarnation: u128,
    /// When it was created.
    pub created_at: Timestamp,
}

/// One event of a write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    /// Its id.
    pub id: EventId,
    /// When the first node to store it stored it.
    pub recorded_at: Timestamp,
    /// Its bytes.
    pub data: Bytes,
}

/// An atomic write: new events with contiguous logical clocks, stored
/// events rewritten in place (an earlier `recorded_at`, or a conflict's
/// winner from a peer), and the losers of conflicts.
#[derive(Clone, Debug, Default)]
pub struct WriteBatch {
    /// The logical clock of the first new event; the others follow by one.
    pub first_lc: u64,
    /// The new events.
    pub events: Vec<StoredEvent>,
    /// Stored events to rewrite, by their logical clock, which stays.
    pub replaced: Vec<(u64, StoredEvent)>,
    /// The update number of the first replaced event; the others follow by
    /// one, in the order of `replaced`.
    pub first_us: u64,
    /// Values that lost a conflict: the id and the losing bytes.
    pub conflicts: Vec<(EventId, Bytes)>,
    /// The database's own metadata to set with the events (sync cursors,
    /// epochs), by key.
    pub meta: Vec<(Vec<u8>, Bytes)>,
    /// The node's clock floor to persist with the events.
    pub hlc_floor: EventId,
}

impl WriteBatch {
    /// Whether the batch changes nothing stored.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.replaced.is_empty()
            && self.conflicts.is_empty()
            && self.meta.is_empty()
    }
}

/// One id stored with two values on two nodes: the smaller bytes are kept
/// everywhere, the others listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The id.
    pub id: EventId,
    /// The value kept.
    pub kept: Bytes,
    /// The values that lost, each once.
    pub lost: Vec<Bytes>,
}

/// A page of a database's conflicts, in id order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConflictsPage {
    /// The conflicts, each id whole.
    pub conflicts: Vec<Conflict>,
    /// Whether more follow: the next page starts after the last id here.
    pub more: bool,
}

/// A node's storage engine.
pub trait Storage: Send + Sync + 'static {
    /// Whether calls may block the thread (then they run on the blocking
    /// pool) or always return at once (then they run inline).
    fn may_block(&self) -> bool;

    /// The node's record, if the store was initialised.
    fn load_node(&self) -> StorageResult<Option<NodeRecord>>;

    /// Stores the node's record durably.
    fn save_node(&self, record: &NodeRecord) -> StorageResult<()>;

    /// Every database's record.
    fn databases(&self) -> StorageResult<Vec<DatabaseRecord>>;

    /// Creates a database durably and opens it.
    fn create_database(&self, record: &DatabaseRecord) -> StorageResult<Box<dyn DatabaseStore>>;

    /// Opens an existing database.
    fn open_database(&self, name: &str) -> StorageResult<Box<dyn DatabaseStore>>;

    /// Makes every write that returned before this call durable (an fsync).
    fn persist(&self) -> StorageResult<()>;

    /// Opens (or creates) the store of view `view` of database `database`.
    /// Views are derived data: their writes become durable with the next
    /// [`Storage::persist`] and are never persisted on their own.
    fn open_view(&self, database: &str, view: &str) -> StorageResult<Box<dyn ViewStore>>;

    /// Copies a consistent snapshot of everything, durably, into a new store
    /// at `to` (which must not exist), while writes go on; returns the
    /// number of records copied.
    fn backup(&self, to: &std::path::Path) -> StorageResult<u64>;
}

/// One database's events.
///
/// Reads take an upper bound on the logical clock, so that callers never see
/// an event that is written but not yet durable.
pub trait DatabaseStore: Send + Sync + 'static {
    /// The highest logical clock written (durable or not).
    fn last_lc(&self) -> StorageResult<u64>;

    /// The highest id stored.
    fn last_id(&self) -> StorageResult<Option<EventId>>;

    /// The highest update number written (each rewrite of a stored event
    /// takes the next).
    fn last_us(&self) -> StorageResult<u64>;

    /// The ids rewritten with update numbers `after_us < us <= up_to_us`,
    /// in order, at most `limit`.
    fn updates_after(
        &self,
        after_us: u64,
        up_to_us: u64,
        limit: usize,
    ) -> StorageResult<Vec<(u64, EventId)>>;

    /// The database's own metadata under `key`.
    fn meta(&self, key: &[u8]) -> StorageResult<Option<Bytes>>;

    /// The clock floor persisted with the last write.
    fn hlc_floor(&self) -> StorageResult<Option<EventId>>;

    /// The logical clock of `id`, if stored.
    fn lc_of(&self, id: EventId) -> StorageResult<Option<u64>>;

    /// The event at logical clock `lc`.
    fn event_at(&self, lc: u64) -> StorageResult<Option<Event>>;

    /// Events with `after_lc < lc <= up_to_lc`, in order: at most `limit`,
    /// and no more once the next one would take their data past
    /// `bytes_max` (the first comes whatever its size, so that a reader
    /// paging on always moves). The scan stops there: it reads no event
    /// beyond the one that does not fit.
    fn scan_log(
        &self,
        after_lc: u64,
        up_to_lc: u64,
        limit: usize,
        bytes_max: usize,
    ) -> StorageResult<Vec<Event>>;

    /// Logical clocks of the ids strictly between `after` and `before`, in id
    /// order, skipping those above `up_to_lc`, at most `limit`.
    fn scan_ids(
        &self,
        after: Option<EventId>,
        before: Option<EventId>,
        up_to_lc: u64,
        limit: usize,
    ) -> StorageResult<Vec<u64>>;

    /// Writes a batch atomically: all of it or none. Not durable until
    /// [`Storage::persist`]. A loser already listed for its id is not
    /// listed twice.
    fn write(&self, batch: &WriteBatch) -> StorageResult<()>;

    /// The losing values listed for the ids after `after`, by id in id
    /// order, whole ids only: the first id, then each next one while the
    /// page holds at most `rows` values and `bytes` of their data; and
    /// whether more ids follow.
    fn losers_after(
        &self,
        after: Option<EventId>,
        rows: usize,
        bytes: usize,
    ) -> StorageResult<(LosersById, bool)>;

    /// How many losing values are listed, counted without holding them.
    fn losers_count(&self) -> StorageResult<u64>;

    /// The losing values listed for `id`.
    fn losers(&self, id: EventId) -> StorageResult<Vec<Bytes>>;
}

/// The event at `lc`, which the log must hold: an id index or a watermark
/// points at it, so its absence is corruption.
pub fn held_event_at(store: &dyn DatabaseStore, lc: u64) -> StorageResult<Event> {
    store.event_at(lc)?.ok_or_else(|| StorageError::Corrupt {
        what: "log",
        detail: format!("the id index points at lc {lc}, which the log lacks"),
    })
}

/// What a page of a read may still take, in bytes: its first item always
/// fits, whatever its size (a page is never empty while items remain, so
/// paging moves on); each later one fits while the page stays within the
/// bound.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PageBytes {
    bytes_max: usize,
    taken: usize,
    items: usize,
}

impl PageBytes {
    pub(crate) fn new(bytes_max: usize) -> PageBytes {
        PageBytes {
            bytes_max,
            taken: 0,
            items: 0,
        }
    }

    /// Counts an item of `bytes` into the page if it fits; `false` (and
    /// nothing counted) if it does not, and the page ends before it.
    pub(crate) fn take(&mut self, bytes: usize) -> bool {
        let taken = self.taken.saturating_add(bytes);
        if self.items > 0 && taken > self.bytes_max {
            return false;
        }
        self.taken = taken;
        self.items += 1;
        true
    }
}

/// Losing values grouped by id, in id order: a page of a list of losers.
pub type LosersById = Vec<(EventId, Vec<Bytes>)>;

/// Gathers a page of losers from `(id, value)` pairs in key order, whole
/// ids only, within a bound of values and bytes (the first id always fits).
/// Whether a node may have left a losing value of an id unlisted, given
/// the values it lists: it lists at most
/// [`LOSERS_PER_ID_MAX`](crate::limits::LOSERS_PER_ID_MAX) values and
/// [`LOSER_BYTES_PER_ID_MAX`](crate::limits::LOSER_BYTES_PER_ID_MAX) bytes
/// of them per id, and a value it left out held at most
/// [`EVENT_BYTES_MAX`](crate::limits::EVENT_BYTES_MAX).
pub fn losers_may_be_missing(listed: &[Bytes]) -> bool {
    use crate::limits::{EVENT_BYTES_MAX, LOSER_BYTES_PER_ID_MAX, LOSERS_PER_ID_MAX};
    let bytes: usize = listed.iter().map(Bytes::len).sum();
    listed.len() >= LOSERS_PER_ID_MAX || bytes + EVENT_BYTES_MAX > LOSER_BYTES_PER_ID_MAX
}

pub(crate) struct LoserPager {
    rows: usize,
    bytes: usize,
    page: LosersById,
    page_rows: usize,
    page_bytes: usize,
    group: Option<(EventId, Vec<Bytes>)>,
}

impl LoserPager {
    pub(crate) fn new(rows: usize, bytes: usize) -> LoserPager {
        LoserPager {
            rows,
            bytes,
            page: Vec::new(),
            page_rows: 0,
            page_bytes: 0,
            group: None,
        }
    }

    /// Takes the next pair; `false` once the page is full (more follow).
    pub(crate) fn push(&mut self, id: EventId, lost: Bytes) -> bool {
        if let Some((group_id, _)) = &self.group
            && *group_id != id
            && !self.close_group()
        {
            return false;
        }
        self.group
            .get_or_insert_with(|| (id, Vec::new()))
            .1
            .push(lost);
        true
    }

    /// The page, and whether more ids follow.
    pub(crate) fn finish(mut self, stopped: bool) -> (LosersById, bool) {
        if stopped {
            return (self.page, true);
        }
        let fits = self.close_group();
        (self.page, !fits)
    }

    /// Moves the id being gathered into the page, if it fits.
    fn close_group(&mut self) -> bool {
        let Some((id, losers)) = self.group.take() else {
            return true;
        };
        let bytes: usize = losers.iter().map(Bytes::len).sum();
        let fits = self.page.is_empty()
            || (self.page_rows + losers.len() <= self.rows
                && self.page_bytes + bytes <= self.bytes);
        if fits {
            self.page_rows += losers.len();
            self.page_bytes += bytes;
            self.page.push((id, losers));
        }
        fits
    }
}

/// The keys of an id range, both bounds exclusive, as big-endian bytes.
fn id_bounds(after: Option<EventId>, before: Option<EventId>) -> Option<(u128, u128)> {
    let low = match after {
        Some(id) => id.to_u128().checked_add(1)?,
        None => 0,
    };
    let high = match before {
        Some(id) => id.to_u128().checked_sub(1)?,
        None => u128::MAX,
    };
    (low <= high).then_some((low, high))
}

/// One view's store: a sorted map of bytes that the view runtime lays out
/// (rows, its position, checkpoints). Derived from events, so losing the tail
/// of its writes in a crash costs a refold of that tail, never an event.
pub trait ViewStore: Send + Sync + 'static {
    /// The value at `key`.
    fn get(&self, key: &[u8]) -> StorageResult<Option<Bytes>>;

    /// Entries with `start <= key < end`, in key order, at most `limit`.
    fn range(&self, start: &[u8], end: &[u8], limit: usize) -> StorageResult<Vec<(Bytes, Bytes)>>;

    /// The entry with the greatest key in `start <= key < end`.
    fn last_in(&self, start: &[u8], end: &[u8]) -> StorageResult<Option<(Bytes, Bytes)>>;

    /// Sets (`Some`) and removes (`None`) entries, atomically.
    fn write(&self, changes: &[(Vec<u8>, Option<Vec<u8>>)]) -> StorageResult<()>;

    /// Removes every entry.
    fn clear(&self) -> StorageResult<()>;

    /// The store as it is now, unchanged by later writes: what a read that
    /// spans many pages reads from.
    fn snapshot(&self) -> StorageResult<Box<dyn ViewSnapshot>>;
}

/// A view's store as of one instant.
pub trait ViewSnapshot: Send + Sync + 'static {
    /// Entries from `start` (inclusive) to `end` (exclusive): at most
    /// `limit`, and no more once their bytes reach `bytes_max` (at least
    /// one, if any).
    fn range(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        bytes_max: usize,
    ) -> StorageResult<Vec<(Bytes, Bytes)>>;
}
