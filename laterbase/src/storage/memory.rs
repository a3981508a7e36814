//! The in-memory engine: for tests, simulations and ephemeral embedded use.
//!
//! It keeps two copies of the data: what was written, and what was persisted.
//! [`MemoryStorage::crash_copy`] returns the persisted copy alone, which is
//! what a power loss at that instant would leave on a disk: tests use it to
//! prove that every acknowledged write had been persisted. It also counts
//! persists and the bytes of events its reads return (what a read held),
//! and can be told to fail (a journal write, an fsync, a flush or
//! compaction in the background, a read), to exercise the error paths.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;

use super::{
    DatabaseRecord, DatabaseStore, NodeRecord, PageBytes, Storage, StorageResult, StoredEvent,
    ViewSnapshot, ViewStore, WriteBatch,
};
use crate::error::{EngineWrite, Poison, StorageError};
use crate::event::{Event, EventId};

/// Which read of a database [`MemoryStorage::fail_next_read`] makes fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadFault {
    /// The next read of any kind.
    Any,
    /// The next read of the losers listed for an id (which a merge does
    /// after it has looked up the events it merges).
    Losers,
}

/// An engine that keeps everything in memory. Clones share the same data.
#[derive(Clone, Default)]
pub struct MemoryStorage(Arc<Mutex<State>>);

#[derive(Default)]
struct State {
    /// Everything written, persisted or not: what reads see.
    live: Disk,
    /// What the last persist covered: what survives a power loss.
    durable: Disk,
    /// Writes since the last persist, in order, to apply to `durable`.
    unpersisted: Vec<(String, WriteBatch)>,
    persists: u64,
    /// Bytes of event data that reads of the log returned, ever.
    event_bytes_read: u64,
    /// The next write fails with this error, as a journal write would.
    fail_next_write: Option<std::io::ErrorKind>,
    /// The next persist fails with this error, as an fsync would.
    fail_next_persist: Option<std::io::ErrorKind>,
    /// The next read of this kind fails with this error.
    fail_next_read: Option<(ReadFault, std::io::ErrorKind)>,
    panic_next_write: bool,
    /// Set by the first failed write, persist or background work: every
    /// later write and persist is refused with it.
    poisoned: Option<Poison>,
    /// Each view's entries, by database and view. Views are derived, so this
    /// engine keeps them out of its disk model: a crash copy starts every
    /// view over, which is what a view whose writes were all lost does.
    /// Each view's entries; shared with its snapshots until written again.
    views: BTreeMap<(String, String), ViewEntries>,
}

#[derive(Clone, Default)]
struct Disk {
    node: Option<NodeRecord>,
    databases: BTreeMap<String, Database>,
}

#[derive(Clone)]
struct Database {
    record: DatabaseRecord,
    log: BTreeMap<u64, StoredEvent>,
    ids: BTreeMap<EventId, u64>,
    conflicts: BTreeMap<EventId, Vec<Bytes>>,
    updates: BTreeMap<u64, EventId>,
    meta: BTreeMap<Vec<u8>, Bytes>,
    hlc_floor: Option<EventId>,
}

impl Database {
    fn apply(&mut self, batch: &WriteBatch) {
        for (lc, event) in (batch.first_lc..).zip(&batch.events) {
            self.ids.insert(event.id, lc);
            self.log.insert(lc, event.clone());
        }
        for ((lc, event), us) in batch.replaced.iter().zip(batch.first_us..) {
            self.log.insert(*lc, event.clone());
            self.updates.insert(us, event.id);
        }
        for (key, value) in &batch.meta {
            self.meta.insert(key.clone(), value.clone());
        }
        for (id, lost) in &batch.conflicts {
            let losers = self.conflicts.entry(*id).or_default();
            if !losers.contains(lost) {
                losers.push(lost.clone());
            }
        }
        self.hlc_floor = Some(batch.hlc_floor);
    }
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }

    /// A new store holding only what this one has persisted: the disk after
    /// a power loss at this instant.
    pub fn crash_copy(&self) -> MemoryStorage {
        let state = self.lock();
        MemoryStorage(Arc::new(Mutex::new(State {
            live: state.durable.clone(),
            durable: state.durable.clone(),
            ..State::default()
        })))
    }

    /// How many persists (fsyncs) the store has done.
    pub fn persist_count(&self) -> u64 {
        self.lock().persists
    }

    /// How many bytes of event data reads of the log (scans and reads by
    /// logical clock) have returned, over every database: what reads held
    /// in memory, to check that a read stops at its bound.
    pub fn event_bytes_read(&self) -> u64 {
        self.lock().event_bytes_read
    }

    /// Makes the next persist fail, as an fsync that reports an I/O error.
    pub fn fail_next_persist(&self) {
        self.fail_next_write(EngineWrite::Persist, std::io::ErrorKind::Other);
    }

    /// Makes the next persist fail as on a full disk.
    pub fn fill_disk(&self) {
        self.fail_next_write(EngineWrite::Persist, std::io::ErrorKind::StorageFull);
    }

    /// Makes the next write of kind `write` (a [`EngineWrite::Journal`]
    /// write of a database or of a new database's record, or an
    /// [`EngineWrite::Persist`]) fail with an I/O error of `kind`
    /// (`StorageFull` for a full disk). The store then refuses every later
    /// write and persist, naming that failure.
    ///
    /// # Panics
    ///
    /// For a `write` that runs in the background: see
    /// [`MemoryStorage::fail_in_background`].
    pub fn fail_next_write(&self, write: EngineWrite, kind: std::io::ErrorKind) {
        let mut state = self.lock();
        match write {
            EngineWrite::Journal => state.fail_next_write = Some(kind),
            EngineWrite::Persist => state.fail_next_persist = Some(kind),
            other => panic!("{other} is not a write a caller makes"),
        }
    }

    /// Fails the store now as its background `write` (a flush or a
    /// compaction) would, with an I/O error of `kind`: no call fails of its
    /// own, and every later write and persist is refused, naming that
    /// failure. This is how fjall reports a background failure.
    ///
    /// # Panics
    ///
    /// For a `write` a caller makes: see [`MemoryStorage::fail_next_write`].
    pub fn fail_in_background(&self, write: EngineWrite, kind: std::io::ErrorKind) {
        assert!(
            matches!(
                write,
                EngineWrite::Flush | EngineWrite::Compaction | EngineWrite::Background
            ),
            "{write} is not a write of the background"
        );
        self.lock().poison(Poison {
            write,
            kind,
            detail: std::io::Error::from(kind).to_string(),
        });
    }

    /// Makes the next read of kind `read` of any database fail with an I/O
    /// error of `kind`, as a failing disk would (`StorageFull` included).
    pub fn fail_next_read(&self, read: ReadFault, kind: std::io::ErrorKind) {
        self.lock().fail_next_read = Some((read, kind));
    }

    /// Makes the next write panic after applying itself (unpersisted), as a
    /// bug in the engine would.
    pub fn panic_next_write(&self) {
        self.lock().panic_next_write = true;
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// Refuses every later write and persist with the first failure.
    fn poison(&mut self, poison: Poison) {
        self.poisoned.get_or_insert(poison);
    }

    /// The refusal of a write or persist, once the store is poisoned.
    fn refusal(&self) -> StorageResult<()> {
        match &self.poisoned {
            Some(poison) => Err(StorageError::Poisoned(poison.clone())),
            None => Ok(()),
        }
    }

    /// Fails the write of kind `write` that was told to fail, poisoning the
    /// store.
    fn injected(&mut self, write: EngineWrite) -> StorageResult<()> {
        let planned = match write {
            EngineWrite::Journal => self.fail_next_write.take(),
            _ => self.fail_next_persist.take(),
        };
        let Some(kind) = planned else {
            return Ok(());
        };
        let error = std::io::Error::new(kind, format!("injected {write} failure"));
        self.poison(Poison {
            write,
            kind,
            detail: error.to_string(),
        });
        Err(StorageError::Io(error))
    }
}

/// A view's entries, shared with its snapshots until written again.
type ViewEntries = Arc<BTreeMap<Vec<u8>, Bytes>>;

/// One view of a [`MemoryStorage`].
struct MemoryView {
    storage: MemoryStorage,
    name: (String, String),
}

impl MemoryView {
    fn read<T>(&self, read: impl FnOnce(&BTreeMap<Vec<u8>, Bytes>) -> T) -> T {
        let state = self.storage.lock();
        match state.views.get(&self.name) {
            Some(entries) => read(entries),
            None => read(&BTreeMap::new()),
        }
    }
}

impl ViewStore for MemoryView {
    fn get(&self, key: &[u8]) -> StorageResult<Option<Bytes>> {
        Ok(self.read(|entries| entries.get(key).cloned()))
    }

    fn range(&self, start: &[u8], end: &[u8], limit: usize) -> StorageResult<Vec<(Bytes, Bytes)>> {
        if start >= end {
            return Ok(Vec::new());
        }
        Ok(self.read(|entries| {
            entries
                .range(start.to_vec()..end.to_vec())
                .take(limit)
                .map(|(key, value)| (Bytes::copy_from_slice(key), value.clone()))
                .collect()
        }))
    }

    fn last_in(&self, start: &[u8], end: &[u8]) -> StorageResult<Option<(Bytes, Bytes)>> {
        if start >= end {
            return Ok(None);
        }
        Ok(self.read(|entries| {
            entries
                .range(start.to_vec()..end.to_vec())
                .next_back()
                .map(|(key, value)| (Bytes::copy_from_slice(key), value.clone()))
        }))
    }

    fn write(&self, changes: &[(Vec<u8>, Option<Vec<u8>>)]) -> StorageResult<()> {
        let mut state = self.storage.lock();
        let entries = Arc::make_mut(state.views.entry(self.name.clone()).or_default());
        for (key, value) in changes {
            match value {
                Some(value) => entries.insert(key.clone(), Bytes::copy_from_slice(value)),
                None => entries.remove(key),
            };
        }
        Ok(())
    }

    fn clear(&self) -> StorageResult<()> {
        self.storage.lock().views.remove(&self.name);
        Ok(())
    }

    fn snapshot(&self) -> StorageResult<Box<dyn ViewSnapshot>> {
        let state = self.storage.lock();
        let entries = state.views.get(&self.name).cloned().unwrap_or_default();
        Ok(Box::new(MemoryViewSnapshot(entries)))
    }
}

/// A view's entries as of one instant: shared until the view is written.
struct MemoryViewSnapshot(ViewEntries);

impl ViewSnapshot for MemoryViewSnapshot {
    fn range(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        bytes_max: usize,
    ) -> StorageResult<Vec<(Bytes, Bytes)>> {
        let mut entries = Vec::new();
        if start >= end {
            return Ok(entries);
        }
        let mut bytes = 0;
        for (key, value) in self.0.range(start.to_vec()..end.to_vec()).take(limit) {
            bytes += key.len() + value.len();
            entries.push((Bytes::copy_from_slice(key), value.clone()));
            if bytes >= bytes_max {
                break;
            }
        }
        Ok(entries)
    }
}

impl std::fmt::Debug for MemoryStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStorage").finish_non_exhaustive()
    }
}

impl Storage for MemoryStorage {
    fn may_block(&self) -> bool {
        false
    }

    fn load_node(&self) -> StorageResult<Option<NodeRecord>> {
        Ok(self.lock().live.node)
    }

    fn save_node(&self, record: &NodeRecord) -> StorageResult<()> {
        let mut state = self.lock();
        state.live.node = Some(*record);
        state.durable.node = Some(*record);
        Ok(())
    }

    fn databases(&self) -> StorageResult<Vec<DatabaseRecord>> {
        let state = self.lock();
        Ok(state
            .live
            .databases
            .values()
            .map(|db| db.record.clone())
            .collect())
    }

    fn create_database(&self, record: &DatabaseRecord) -> StorageResult<Box<dyn DatabaseStore>> {
        let mut state = self.lock();
        state.refusal()?;
        state.injected(EngineWrite::Journal)?;
        let database = Database {
            record: record.clone(),
            log: BTreeMap::new(),
            ids: BTreeMap::new(),
            conflicts: BTreeMap::new(),
            updates: BTreeMap::new(),
            meta: BTreeMap::new(),
            hlc_floor: None,
        };
        state
            .live
            .databases
            .insert(record.name.clone(), database.clone());
        state
            .durable
            .databases
            .insert(record.name.clone(), database);
        drop(state);
        self.open_database(&record.name)
    }

    fn open_database(&self, name: &str) -> StorageResult<Box<dyn DatabaseStore>> {
        if !self.lock().live.databases.contains_key(name) {
            return Err(StorageError::Corrupt {
                what: "database record",
                detail: format!("no database {name:?}"),
            });
        }
        Ok(Box::new(MemoryDatabase {
            storage: self.clone(),
            name: name.to_owned(),
        }))
    }

    fn persist(&self) -> StorageResult<()> {
        let mut state = self.lock();
        state.refusal()?;
        state.injected(EngineWrite::Persist)?;
        let state = &mut *state;
        for (name, batch) in state.unpersisted.drain(..) {
            if let Some(database) = state.durable.databases.get_mut(&name) {
                database.apply(&batch);
            }
        }
        state.persists += 1;
        Ok(())
    }

    fn open_view(&self, database: &str, view: &str) -> StorageResult<Box<dyn ViewStore>> {
        Ok(Box::new(MemoryView {
            storage: self.clone(),
            name: (database.to_owned(), view.to_owned()),
        }))
    }

    fn backup(&self, _to: &std::path::Path) -> StorageResult<u64> {
        Err(StorageError::Io(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "an in-memory store has nothing on disk to back up; use crash_copy",
        )))
    }
}

struct MemoryDatabase {
    storage: MemoryStorage,
    name: String,
}

impl MemoryDatabase {
    fn read<T>(&self, read: impl FnOnce(&Database) -> T) -> StorageResult<T> {
        self.read_of(ReadFault::Any, read)
    }

    /// A read of kind `kind`, which an injected fault of that kind (or of
    /// any kind) makes fail once.
    fn read_of<T>(&self, kind: ReadFault, read: impl FnOnce(&Database) -> T) -> StorageResult<T> {
        let mut state = self.storage.lock();
        if let Some((fault, error)) = state.fail_next_read
            && (fault == ReadFault::Any || fault == kind)
        {
            state.fail_next_read = None;
            return Err(StorageError::Io(std::io::Error::new(
                error,
                "injected read failure",
            )));
        }
        let database = state
            .live
            .databases
            .get(&self.name)
            .ok_or(StorageError::Corrupt {
                what: "database record",
                detail: format!("database {:?} vanished", self.name),
            })?;
        Ok(read(database))
    }
}

impl MemoryDatabase {
    /// Counts what a read of the log returned.
    fn count_read<'a>(&self, events: impl Iterator<Item = &'a Event>) {
        let bytes: usize = events.map(|event| event.data.len()).sum();
        self.storage.lock().event_bytes_read += bytes as u64;
    }
}

fn to_event(lc: u64, stored: &StoredEvent) -> Event {
    Event {
        id: stored.id,
        data: stored.data.clone(),
        recorded_at: stored.recorded_at,
        lc,
    }
}

impl DatabaseStore for MemoryDatabase {
    fn last_lc(&self) -> StorageResult<u64> {
        self.read(|db| db.log.keys().next_back().copied().unwrap_or(0))
    }

    fn last_id(&self) -> StorageResult<Option<EventId>> {
        self.read(|db| db.ids.keys().next_back().copied())
    }

    fn hlc_floor(&self) -> StorageResult<Option<EventId>> {
        self.read(|db| db.hlc_floor)
    }

    fn last_us(&self) -> StorageResult<u64> {
        self.read(|db| db.updates.keys().next_back().copied().unwrap_or(0))
    }

    fn updates_after(
        &self,
        after_us: u64,
        up_to_us: u64,
        limit: usize,
    ) -> StorageResult<Vec<(u64, EventId)>> {
        if after_us >= up_to_us {
            return Ok(Vec::new());
        }
        self.read(|db| {
            db.updates
                .range(after_us + 1..=up_to_us)
                .take(limit)
                .map(|(us, id)| (*us, *id))
                .collect()
        })
    }

    fn meta(&self, key: &[u8]) -> StorageResult<Option<Bytes>> {
        self.read(|db| db.meta.get(key).cloned())
    }

    fn lc_of(&self, id: EventId) -> StorageResult<Option<u64>> {
        self.read(|db| db.ids.get(&id).copied())
    }

    fn event_at(&self, lc: u64) -> StorageResult<Option<Event>> {
        let event = self.read(|db| db.log.get(&lc).map(|stored| to_event(lc, stored)))?;
        self.count_read(event.iter());
        Ok(event)
    }

    fn scan_log(
        &self,
        after_lc: u64,
        up_to_lc: u64,
        limit: usize,
        bytes_max: usize,
    ) -> StorageResult<Vec<Event>> {
        if after_lc >= up_to_lc {
            return Ok(Vec::new());
        }
        let events: Vec<Event> = self.read(|db| {
            let mut budget = PageBytes::new(bytes_max);
            db.log
                .range(after_lc + 1..=up_to_lc)
                .take(limit)
                .take_while(|(_, stored)| budget.take(stored.data.len()))
                .map(|(lc, stored)| to_event(*lc, stored))
                .collect()
        })?;
        self.count_read(events.iter());
        Ok(events)
    }

    fn scan_ids(
        &self,
        after: Option<EventId>,
        before: Option<EventId>,
        up_to_lc: u64,
        limit: usize,
    ) -> StorageResult<Vec<u64>> {
        let Some((low, high)) = super::id_bounds(after, before) else {
            return Ok(Vec::new());
        };
        self.read(|db| {
            db.ids
                .range(EventId::from_u128(low)..=EventId::from_u128(high))
                .map(|(_, lc)| *lc)
                .filter(|lc| *lc <= up_to_lc)
                .take(limit)
                .collect()
        })
    }

    fn losers_after(
        &self,
        after: Option<EventId>,
        rows: usize,
        bytes: usize,
    ) -> StorageResult<(super::LosersById, bool)> {
        self.read(|db| {
            let mut pager = super::LoserPager::new(rows, bytes);
            let start = match after {
                Some(id) => std::ops::Bound::Excluded(id),
                None => std::ops::Bound::Unbounded,
            };
            for (id, losers) in db.conflicts.range((start, std::ops::Bound::Unbounded)) {
                for lost in losers {
                    if !pager.push(*id, lost.clone()) {
                        return pager.finish(true);
                    }
                }
            }
            pager.finish(false)
        })
    }

    fn losers_count(&self) -> StorageResult<u64> {
        self.read(|db| {
            db.conflicts
                .values()
                .map(|losers| losers.len() as u64)
                .sum()
        })
    }

    fn losers(&self, id: EventId) -> StorageResult<Vec<Bytes>> {
        self.read_of(ReadFault::Losers, |db| {
            db.conflicts.get(&id).cloned().unwrap_or_default()
        })
    }

    fn write(&self, batch: &WriteBatch) -> StorageResult<()> {
        let mut state = self.storage.lock();
        if state.panic_next_write {
            state.panic_next_write = false;
            drop(state);
            panic!("injected panic in the in-memory engine's write");
        }
        state.refusal()?;
        state.injected(EngineWrite::Journal)?;
        let database = state
            .live
            .databases
            .get_mut(&self.name)
            .ok_or(StorageError::Corrupt {
                what: "database record",
                detail: format!("database {:?} vanished", self.name),
            })?;
        database.apply(batch);
        state.unpersisted.push((self.name.clone(), batch.clone()));
        Ok(())
    }
}
