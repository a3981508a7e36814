//! The durable engine, on fjall. The only module that imports fjall.
//!
//! One fjall `Database` per data directory. Its keyspace `node` holds the
//! node's record, one record per database (`db/{name}`) and each database's
//! persisted clock floor (`hlc/{name}`). Each Laterbase database has two
//! keyspaces of its own:
//!
//! ```text
//! {name}.log   first lc of a chunk (u64 BE) -> count (u32 BE), then per event:
//!                  id (16 bytes) | recorded_at ms (u64 BE) | length (u32 BE) | data
//! {name}.ids   id (16 bytes) -> lc (u64 BE)
//! {name}.conflicts  id (16 bytes) | n (u32 BE) -> the n-th losing value of id
//! {name}.updates    us (u64 BE) -> id (16 bytes): rewrites of stored events
//! ```
//!
//! A database's own metadata (sync cursors, epochs) lives in `node` under
//! `dbmeta/{name}/{key}`.
//!
//! The log holds events in chunks of consecutive logical clocks (at most
//! [`LOG_CHUNK_EVENTS_MAX`] events and about [`LOG_CHUNK_BYTES_MAX`] bytes), so a
//! write inserts one log key per chunk and one index key per event. The
//! changes feed is a range scan of the log; a read by id is one lookup in
//! `ids` and one seek in the log. Writes go through one fjall batch, which is
//! atomic across keyspaces.
//!
//! fjall refuses every write once a journal write, an fsync or a flush or
//! compaction in the background failed (it is poisoned), and a refusal says
//! only `Poisoned`. So every handle on the store shares `Failures`: the
//! first failure a call of this module meets is kept there and named by each
//! later refusal, and a refusal that no call met the cause of is put down to
//! the background, where the disk's free space tells a full disk (the usual
//! cause) from another failure that fjall logs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use fjall::{Keyspace, KeyspaceCreateOptions, PersistMode};

use super::{
    DatabaseRecord, DatabaseStore, NodeRecord, PageBytes, Storage, StorageResult, StoredEvent,
    ViewSnapshot, ViewStore, WriteBatch,
};
use crate::error::{EngineWrite, Poison, StorageError, io_kind};
use bytes::Bytes;

use crate::event::{Event, EventId, Timestamp};
use crate::limits::{
    CACHE_BYTES, DISK_FULL_FREE_BYTES_MAX, INDEX_MEMTABLE_BYTES_MAX, LOG_CHUNK_BYTES_MAX,
    LOG_CHUNK_EVENTS_MAX, LOG_MEMTABLE_BYTES_MAX,
};

const NODE_KEY: &[u8] = b"node";
const DATABASE_PREFIX: &str = "db/";
const HLC_PREFIX: &str = "hlc/";
const DATABASE_META_PREFIX: &str = "dbmeta/";

/// The fjall engine over one data directory.
pub struct FjallStorage {
    db: fjall::Database,
    meta: Keyspace,
    failures: Arc<Failures>,
}

impl FjallStorage {
    /// Opens (or creates) the store in `dir`. Fails with
    /// [`fjall::Error::Locked`] inside when another process holds it.
    pub fn open(dir: &Path) -> StorageResult<FjallStorage> {
        let db = fjall::Database::builder(dir)
            .cache_size(CACHE_BYTES)
            .open()?;
        let failures = Arc::new(Failures::new(dir));
        let meta = db
            .keyspace("node", || keyspace_options_for("node"))
            .map_err(|error| failures.error(error))?;
        Ok(FjallStorage { db, meta, failures })
    }

    fn keyspaces(&self, name: &str) -> StorageResult<[Keyspace; 4]> {
        let open = |suffix: &str| {
            let full = format!("{name}.{suffix}");
            self.db
                .keyspace(&full, || keyspace_options_for(&full))
                .map_err(|error| self.failures.error(error))
        };
        Ok([
            open("log")?,
            open("ids")?,
            open("conflicts")?,
            open("updates")?,
        ])
    }
}

/// The first failure that poisoned a store, shared by every handle on it.
struct Failures {
    /// The data directory, whose disk's free space tells a full disk.
    dir: PathBuf,
    /// Set once, by the first failed write or the first refusal.
    first: OnceLock<Poison>,
}

impl Failures {
    fn new(dir: &Path) -> Failures {
        Failures {
            dir: dir.to_owned(),
            first: OnceLock::new(),
        }
    }

    /// The error of a `write` that failed, which fjall poisons itself for:
    /// the first failure's, this one if it is the first.
    fn failed(&self, write: EngineWrite, error: fjall::Error) -> StorageError {
        let poison = self.first.get_or_init(|| match &error {
            fjall::Error::Poisoned => background_failure(free_bytes(&self.dir)),
            other => Poison {
                write,
                kind: io_kind(other).unwrap_or(std::io::ErrorKind::Other),
                detail: io_detail(other),
            },
        });
        StorageError::Poisoned(poison.clone())
    }

    /// The error of a call that fjall does not poison itself for when it
    /// fails, but that a poisoned store refuses.
    fn error(&self, error: fjall::Error) -> StorageError {
        match error {
            fjall::Error::Poisoned => self.failed(EngineWrite::Background, error),
            other => StorageError::Fjall(other),
        }
    }
}

/// Why a store refuses writes when none of its callers saw a write fail:
/// a flush or a compaction failed in the background, which fjall logs
/// without returning. With `free` bytes (if known) left on the disk, a full
/// disk is the cause ([`DISK_FULL_FREE_BYTES_MAX`]); otherwise the log has it.
fn background_failure(free: Option<u64>) -> Poison {
    let (kind, detail) = match free {
        Some(free) if free <= DISK_FULL_FREE_BYTES_MAX => (
            std::io::ErrorKind::StorageFull,
            format!("{free} bytes are free on the data directory's disk"),
        ),
        Some(free) => (
            std::io::ErrorKind::Other,
            format!(
                "the storage engine's log has the error ({free} bytes are free on the data directory's disk)"
            ),
        ),
        None => (
            std::io::ErrorKind::Other,
            "the storage engine's log has the error".to_owned(),
        ),
    };
    Poison {
        write: EngineWrite::Background,
        kind,
        detail,
    }
}

/// The bytes free for the node on the disk that holds `dir`.
#[cfg(unix)]
fn free_bytes(dir: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// The bytes free on the disk that holds `dir`: unknown off Unix.
#[cfg(not(unix))]
fn free_bytes(_dir: &Path) -> Option<u64> {
    None
}

/// An fjall error in words: its I/O error's, when it has one (fjall shows
/// itself in its `Debug` form).
fn io_detail(error: &fjall::Error) -> String {
    crate::error::io_source(error).map_or_else(|| error.to_string(), ToString::to_string)
}

fn keyspace_options(memtable_bytes: u64) -> KeyspaceCreateOptions {
    KeyspaceCreateOptions::default().max_memtable_size(memtable_bytes)
}

impl std::fmt::Debug for FjallStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FjallStorage").finish_non_exhaustive()
    }
}

impl Storage for FjallStorage {
    fn may_block(&self) -> bool {
        true
    }

    fn load_node(&self) -> StorageResult<Option<NodeRecord>> {
        let Some(value) = self.meta.get(NODE_KEY)? else {
            return Ok(None);
        };
        let (version, node_id) = value
            .split_at_checked(4)
            .ok_or_else(|| corrupt("node record", &value))?;
        Ok(Some(NodeRecord {
            format_version: u32::from_be_bytes(array(version, "node record")?),
            node_id: EventId::from_bytes(array(node_id, "node record")?),
        }))
    }

    fn save_node(&self, record: &NodeRecord) -> StorageResult<()> {
        let mut value = record.format_version.to_be_bytes().to_vec();
        value.extend_from_slice(&record.node_id.to_bytes());
        self.meta
            .insert(NODE_KEY, value)
            .map_err(|error| self.failures.failed(EngineWrite::Journal, error))?;
        self.persist()
    }

    fn databases(&self) -> StorageResult<Vec<DatabaseRecord>> {
        let mut records = Vec::new();
        for guard in self.meta.prefix(DATABASE_PREFIX) {
            let (key, value) = guard.into_inner()?;
            let name = std::str::from_utf8(&key[DATABASE_PREFIX.len()..])
                .map_err(|_| corrupt("database name", &key))?;
            let (incarnation, created) = value
                .split_at_checked(16)
                .ok_or_else(|| corrupt("database record", &value))?;
            records.push(DatabaseRecord {
                name: name.to_owned(),
                incarnation: u128::from_be_bytes(array(incarnation, "database record")?),
                created_at: Timestamp(u64::from_be_bytes(array(created, "database record")?)),
            });
        }
        Ok(records)
    }

    fn create_database(&self, record: &DatabaseRecord) -> StorageResult<Box<dyn DatabaseStore>> {
        let store = self.open_database(&record.name)?;
        let mut value = record.incarnation.to_be_bytes().to_vec();
        value.extend_from_slice(&record.created_at.0.to_be_bytes());
        self.meta
            .insert(format!("{DATABASE_PREFIX}{}", record.name), value)
            .map_err(|error| self.failures.failed(EngineWrite::Journal, error))?;
        self.persist()?;
        Ok(store)
    }

    fn open_database(&self, name: &str) -> StorageResult<Box<dyn DatabaseStore>> {
        let [log, ids, conflicts, updates] = self.keyspaces(name)?;
        Ok(Box::new(FjallDatabase {
            db: self.db.clone(),
            failures: self.failures.clone(),
            meta: self.meta.clone(),
            hlc_key: format!("{HLC_PREFIX}{name}"),
            meta_prefix: format!("{DATABASE_META_PREFIX}{name}/"),
            log,
            ids,
            conflicts,
            updates,
        }))
    }

    fn persist(&self) -> StorageResult<()> {
        self.db
            .persist(PersistMode::SyncAll)
            .map_err(|error| self.failures.failed(EngineWrite::Persist, error))
    }

    fn open_view(&self, database: &str, view: &str) -> StorageResult<Box<dyn ViewStore>> {
        let name = format!("{database}.view.{view}");
        let rows = self
            .db
            .keyspace(&name, || keyspace_options_for(&name))
            .map_err(|error| self.failures.error(error))?;
        Ok(Box::new(FjallView {
            db: self.db.clone(),
            failures: self.failures.clone(),
            rows,
        }))
    }

    fn backup(&self, to: &Path) -> StorageResult<u64> {
        if to.exists() {
            return Err(StorageError::Io(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists already; a backup goes into a new directory",
                    to.display()
                ),
            )));
        }
        // One snapshot across keyspaces: the copy is one instant of the store.
        let snapshot = self.db.snapshot();
        let target = fjall::Database::builder(to).open()?;
        let mut copied = 0_u64;
        for name in self.db.list_keyspace_names() {
            let name: &str = &name;
            let options = || keyspace_options_for(name);
            let source = self.db.keyspace(name, options)?;
            let copy = target.keyspace(name, options)?;
            let mut batch = target.batch();
            for guard in fjall::Readable::iter(&snapshot, &source) {
                let (key, value) = guard.into_inner()?;
                batch.insert(&copy, key, value);
                copied += 1;
                if batch.len() >= BACKUP_BATCH_RECORDS {
                    batch.commit()?;
                    batch = target.batch();
                }
            }
            batch.commit()?;
        }
        target.persist(PersistMode::SyncAll)?;
        Ok(copied)
    }
}

/// Records per write batch of a backup.
const BACKUP_BATCH_RECORDS: usize = 10_000;

/// The options a keyspace is made with, by its name: the id index is mostly
/// random id bytes, which lz4 cannot shrink.
fn keyspace_options_for(name: &str) -> KeyspaceCreateOptions {
    if name.ends_with(".log") {
        keyspace_options(LOG_MEMTABLE_BYTES_MAX)
    } else if name.ends_with(".ids") {
        keyspace_options(INDEX_MEMTABLE_BYTES_MAX)
            .data_block_compression_policy(fjall::config::CompressionPolicy::disabled())
    } else {
        keyspace_options(INDEX_MEMTABLE_BYTES_MAX)
    }
}

/// A view's keyspace, `{database}.view.{view}`.
struct FjallView {
    db: fjall::Database,
    failures: Arc<Failures>,
    rows: Keyspace,
}

impl ViewStore for FjallView {
    fn get(&self, key: &[u8]) -> StorageResult<Option<Bytes>> {
        Ok(self.rows.get(key)?.map(Bytes::from))
    }

    fn range(&self, start: &[u8], end: &[u8], limit: usize) -> StorageResult<Vec<(Bytes, Bytes)>> {
        let mut entries = Vec::new();
        for guard in self.rows.range(start..end).take(limit) {
            let (key, value) = guard.into_inner()?;
            entries.push((key.into(), value.into()));
        }
        Ok(entries)
    }

    fn last_in(&self, start: &[u8], end: &[u8]) -> StorageResult<Option<(Bytes, Bytes)>> {
        match self.rows.range(start..end).next_back() {
            Some(guard) => {
                let (key, value) = guard.into_inner()?;
                Ok(Some((key.into(), value.into())))
            }
            None => Ok(None),
        }
    }

    fn write(&self, changes: &[(Vec<u8>, Option<Vec<u8>>)]) -> StorageResult<()> {
        // fjall takes keys of at most 64 KiB; a longer one must not reach it.
        if let Some((key, _)) = changes
            .iter()
            .find(|(key, _)| key.len() > usize::from(u16::MAX))
        {
            return Err(corrupt("view key", key));
        }
        let mut batch = self.db.batch();
        for (key, value) in changes {
            match value {
                Some(value) => batch.insert(&self.rows, key.as_slice(), value.as_slice()),
                None => batch.remove(&self.rows, key.as_slice()),
            }
        }
        batch
            .commit()
            .map_err(|error| self.failures.failed(EngineWrite::Journal, error))
    }

    fn clear(&self) -> StorageResult<()> {
        self.rows
            .clear()
            .map_err(|error| self.failures.failed(EngineWrite::Journal, error))
    }

    fn snapshot(&self) -> StorageResult<Box<dyn ViewSnapshot>> {
        Ok(Box::new(FjallViewSnapshot {
            snapshot: self.db.snapshot(),
            rows: self.rows.clone(),
        }))
    }
}

/// A view's keyspace as of one instant.
struct FjallViewSnapshot {
    snapshot: fjall::Snapshot,
    rows: Keyspace,
}

impl ViewSnapshot for FjallViewSnapshot {
    fn range(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        bytes_max: usize,
    ) -> StorageResult<Vec<(Bytes, Bytes)>> {
        let mut entries = Vec::new();
        let mut bytes = 0;
        for guard in fjall::Readable::range(&self.snapshot, &self.rows, start..end).take(limit) {
            let (key, value) = guard.into_inner()?;
            bytes += key.len() + value.len();
            entries.push((key.into(), value.into()));
            if bytes >= bytes_max {
                break;
            }
        }
        Ok(entries)
    }
}

struct FjallDatabase {
    db: fjall::Database,
    failures: Arc<Failures>,
    meta: Keyspace,
    hlc_key: String,
    /// Where this database's own metadata keys start in `meta`.
    meta_prefix: String,
    log: Keyspace,
    ids: Keyspace,
    conflicts: Keyspace,
    updates: Keyspace,
}

impl FjallDatabase {
    /// The chunk holding `lc`, if any: its first lc and its bytes.
    fn chunk_of(&self, lc: u64) -> StorageResult<Option<(u64, bytes::Bytes)>> {
        let Some(guard) = self.log.range(..=lc.to_be_bytes()).next_back() else {
            return Ok(None);
        };
        let (key, value) = guard.into_inner()?;
        Ok(Some((decode_lc(&key)?, value.into())))
    }
}

impl DatabaseStore for FjallDatabase {
    fn last_lc(&self) -> StorageResult<u64> {
        match self.log.last_key_value() {
            Some(guard) => {
                let (key, value) = guard.into_inner()?;
                let count = Chunk::new(decode_lc(&key)?, value.into())?.count;
                Ok(decode_lc(&key)? + u64::from(count) - 1)
            }
            None => Ok(0),
        }
    }

    fn last_id(&self) -> StorageResult<Option<EventId>> {
        match self.ids.last_key_value() {
            Some(guard) => Ok(Some(EventId::from_bytes(array(&guard.key()?, "id key")?))),
            None => Ok(None),
        }
    }

    fn hlc_floor(&self) -> StorageResult<Option<EventId>> {
        match self.meta.get(&self.hlc_key)? {
            Some(value) => Ok(Some(EventId::from_bytes(array(&value, "clock floor")?))),
            None => Ok(None),
        }
    }

    fn last_us(&self) -> StorageResult<u64> {
        match self.updates.last_key_value() {
            Some(guard) => decode_lc(&guard.key()?),
            None => Ok(0),
        }
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
        let mut updates = Vec::new();
        for guard in self
            .updates
            .range((after_us + 1).to_be_bytes()..=up_to_us.to_be_bytes())
            .take(limit)
        {
            let (key, value) = guard.into_inner()?;
            updates.push((
                decode_lc(&key)?,
                EventId::from_bytes(array(&value, "update")?),
            ));
        }
        Ok(updates)
    }

    fn meta(&self, key: &[u8]) -> StorageResult<Option<Bytes>> {
        Ok(self.meta.get(self.meta_key(key))?.map(Bytes::from))
    }

    fn lc_of(&self, id: EventId) -> StorageResult<Option<u64>> {
        match self.ids.get(id.to_bytes())? {
            Some(value) => Ok(Some(decode_lc(&value)?)),
            None => Ok(None),
        }
    }

    fn event_at(&self, lc: u64) -> StorageResult<Option<Event>> {
        let Some((first_lc, bytes)) = self.chunk_of(lc)? else {
            return Ok(None);
        };
        Chunk::new(first_lc, bytes)?
            .find(|event| event.as_ref().map_or(true, |event| event.lc == lc))
            .transpose()
    }

    fn scan_log(
        &self,
        after_lc: u64,
        up_to_lc: u64,
        limit: usize,
        bytes_max: usize,
    ) -> StorageResult<Vec<Event>> {
        if after_lc >= up_to_lc || limit == 0 {
            return Ok(Vec::new());
        }
        // Start at the chunk holding the first wanted lc, which may begin before it.
        let start = match self.chunk_of(after_lc + 1)? {
            Some((first_lc, _)) => first_lc,
            None => after_lc + 1,
        };
        let wanted = usize::try_from(up_to_lc - after_lc).unwrap_or(usize::MAX);
        let mut events = Vec::with_capacity(limit.min(wanted));
        let mut budget = PageBytes::new(bytes_max);
        for guard in self.log.range(start.to_be_bytes()..=up_to_lc.to_be_bytes()) {
            let (key, value) = guard.into_inner()?;
            for event in Chunk::new(decode_lc(&key)?, value.into())? {
                let event = event?;
                if event.lc > up_to_lc || events.len() == limit {
                    return Ok(events);
                }
                if event.lc > after_lc {
                    // The chunk that holds the event that does not fit is
                    // the last one read.
                    if !budget.take(event.data.len()) {
                        return Ok(events);
                    }
                    events.push(event);
                }
            }
        }
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
        let mut lcs = Vec::new();
        for guard in self.ids.range(low.to_be_bytes()..=high.to_be_bytes()) {
            if lcs.len() == limit {
                break;
            }
            let lc = decode_lc(&guard.value()?)?;
            if lc <= up_to_lc {
                lcs.push(lc);
            }
        }
        Ok(lcs)
    }

    fn write(&self, batch: &WriteBatch) -> StorageResult<()> {
        let mut writes = self.db.batch();
        let mut first_lc = batch.first_lc;
        for chunk in chunks(&batch.events) {
            for (lc, event) in (first_lc..).zip(chunk) {
                writes.insert(&self.ids, event.id.to_bytes(), lc.to_be_bytes());
            }
            writes.insert(&self.log, first_lc.to_be_bytes(), encode_chunk(chunk)?);
            first_lc += chunk.len() as u64;
        }
        self.rewrite_chunks(&mut writes, &batch.replaced)?;
        for ((_, event), us) in batch.replaced.iter().zip(batch.first_us..) {
            writes.insert(&self.updates, us.to_be_bytes(), event.id.to_bytes());
        }
        self.list_losers(&mut writes, &batch.conflicts)?;
        for (key, value) in &batch.meta {
            writes.insert(&self.meta, self.meta_key(key), value.as_ref());
        }
        writes.insert(
            &self.meta,
            self.hlc_key.as_str(),
            batch.hlc_floor.to_bytes(),
        );
        writes
            .commit()
            .map_err(|error| self.failures.failed(EngineWrite::Journal, error))
    }

    fn losers(&self, id: EventId) -> StorageResult<Vec<Bytes>> {
        let mut losers = Vec::new();
        for guard in self.conflicts.prefix(id.to_bytes()) {
            losers.push(Bytes::from(guard.value()?));
        }
        Ok(losers)
    }

    fn losers_after(
        &self,
        after: Option<EventId>,
        rows: usize,
        bytes: usize,
    ) -> StorageResult<(super::LosersById, bool)> {
        // Past every key of `after`: its id, then a count, all ones.
        let start = after.map_or_else(Vec::new, |id| {
            let mut key = id.to_bytes().to_vec();
            key.extend_from_slice(&[0xff; 5]);
            key
        });
        let mut pager = super::LoserPager::new(rows, bytes);
        for guard in self.conflicts.range(start..) {
            let (key, value) = guard.into_inner()?;
            let id = EventId::from_bytes(array(key.get(..16).unwrap_or_default(), "conflict key")?);
            if !pager.push(id, value.into()) {
                return Ok(pager.finish(true));
            }
        }
        Ok(pager.finish(false))
    }

    fn losers_count(&self) -> StorageResult<u64> {
        Ok(self.conflicts.len()? as u64)
    }
}

impl FjallDatabase {
    fn meta_key(&self, key: &[u8]) -> Vec<u8> {
        let mut full = self.meta_prefix.as_bytes().to_vec();
        full.extend_from_slice(key);
        full
    }

    /// Rewrites the chunks that hold replaced events, each chunk once.
    fn rewrite_chunks(
        &self,
        writes: &mut fjall::OwnedWriteBatch,
        replaced: &[(u64, StoredEvent)],
    ) -> StorageResult<()> {
        let mut chunks: std::collections::BTreeMap<u64, Vec<Event>> =
            std::collections::BTreeMap::new();
        for (lc, event) in replaced {
            let first_lc = match chunks.range(..=*lc).next_back() {
                Some((first, events)) if lc - first < events.len() as u64 => *first,
                _ => {
                    let (first, bytes) = self
                        .chunk_of(*lc)?
                        .ok_or_else(|| corrupt("log chunk", &[]))?;
                    let events =
                        Chunk::new(first, bytes)?.collect::<StorageResult<Vec<Event>>>()?;
                    chunks.insert(first, events);
                    first
                }
            };
            let events = chunks
                .get_mut(&first_lc)
                .ok_or_else(|| corrupt("log chunk", &[]))?;
            let slot = events
                .get_mut(usize::try_from(lc - first_lc).unwrap_or(usize::MAX))
                .ok_or_else(|| corrupt("log chunk", &[]))?;
            assert_eq!(slot.id, event.id, "a replaced event keeps its id and lc");
            slot.data = event.data.clone();
            slot.recorded_at = event.recorded_at;
        }
        for (first_lc, events) in chunks {
            let stored: Vec<StoredEvent> = events
                .into_iter()
                .map(|event| StoredEvent {
                    id: event.id,
                    recorded_at: event.recorded_at,
                    data: event.data,
                })
                .collect();
            writes.insert(&self.log, first_lc.to_be_bytes(), encode_chunk(&stored)?);
        }
        Ok(())
    }

    /// Lists each losing value under its id, unless it is listed already.
    fn list_losers(
        &self,
        writes: &mut fjall::OwnedWriteBatch,
        conflicts: &[(EventId, Bytes)],
    ) -> StorageResult<()> {
        let mut listed: std::collections::HashMap<EventId, Vec<Bytes>> =
            std::collections::HashMap::new();
        for (id, lost) in conflicts {
            if !listed.contains_key(id) {
                let mut known = Vec::new();
                for guard in self.conflicts.prefix(id.to_bytes()) {
                    known.push(Bytes::from(guard.value()?));
                }
                listed.insert(*id, known);
            }
            let known = listed.entry(*id).or_default();
            if known.contains(lost) {
                continue;
            }
            let mut key = id.to_bytes().to_vec();
            let n = u32::try_from(known.len()).map_err(|_| corrupt("conflict count", &[]))?;
            key.extend_from_slice(&n.to_be_bytes());
            writes.insert(&self.conflicts, key, lost.as_ref());
            known.push(lost.clone());
        }
        Ok(())
    }
}

/// A chunk's bytes: its count, then each event.
fn encode_chunk(chunk: &[StoredEvent]) -> StorageResult<Vec<u8>> {
    let data_bytes: usize = chunk.iter().map(|event| event.data.len()).sum();
    let mut value = Vec::with_capacity(4 + chunk.len() * EVENT_HEADER_BYTES + data_bytes);
    let count = u32::try_from(chunk.len()).map_err(|_| corrupt("chunk size", &[]))?;
    value.extend_from_slice(&count.to_be_bytes());
    for event in chunk {
        let length = u32::try_from(event.data.len()).map_err(|_| corrupt("event size", &[]))?;
        value.extend_from_slice(&event.id.to_bytes());
        value.extend_from_slice(&event.recorded_at.0.to_be_bytes());
        value.extend_from_slice(&length.to_be_bytes());
        value.extend_from_slice(&event.data);
    }
    Ok(value)
}

/// id, recorded_at and length before each event's data in a chunk.
const EVENT_HEADER_BYTES: usize = 16 + 8 + 4;

/// Splits a batch into log chunks: at most [`LOG_CHUNK_EVENTS_MAX`] events,
/// and no more data than [`LOG_CHUNK_BYTES_MAX`] unless one event is larger.
fn chunks(events: &[StoredEvent]) -> impl Iterator<Item = &[StoredEvent]> {
    let mut rest = events;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = 0;
        let mut count = 0;
        for event in rest.iter().take(LOG_CHUNK_EVENTS_MAX) {
            if count > 0 && bytes + event.data.len() > LOG_CHUNK_BYTES_MAX {
                break;
            }
            bytes += event.data.len();
            count += 1;
        }
        let (chunk, tail) = rest.split_at(count);
        rest = tail;
        Some(chunk)
    })
}

/// The events of one log chunk, decoded as they are iterated.
struct Chunk {
    next_lc: u64,
    count: u32,
    bytes: bytes::Bytes,
    offset: usize,
}

impl Chunk {
    fn new(first_lc: u64, bytes: bytes::Bytes) -> StorageResult<Chunk> {
        let count = u32::from_be_bytes(array(bytes.get(..4).unwrap_or_default(), "chunk count")?);
        if count == 0 {
            return Err(corrupt("log chunk", &bytes));
        }
        Ok(Chunk {
            next_lc: first_lc,
            count,
            bytes,
            offset: 4,
        })
    }

    fn decode(&mut self) -> StorageResult<Event> {
        let header = self
            .bytes
            .get(self.offset..self.offset + EVENT_HEADER_BYTES)
            .ok_or_else(|| corrupt("log chunk", &self.bytes))?;
        let id = EventId::from_bytes(array(&header[..16], "event id")?);
        let recorded_at = Timestamp(u64::from_be_bytes(array(&header[16..24], "event time")?));
        let length = u32::from_be_bytes(array(&header[24..], "event length")?) as usize;
        let start = self.offset + EVENT_HEADER_BYTES;
        if self.bytes.len() < start + length {
            return Err(corrupt("log chunk", &self.bytes));
        }
        let event = Event {
            id,
            recorded_at,
            data: self.bytes.slice(start..start + length),
            lc: self.next_lc,
        };
        self.offset = start + length;
        self.next_lc += 1;
        Ok(event)
    }
}

impl Iterator for Chunk {
    type Item = StorageResult<Event>;

    fn next(&mut self) -> Option<StorageResult<Event>> {
        if self.count == 0 {
            return None;
        }
        self.count -= 1;
        Some(self.decode())
    }
}

fn decode_lc(bytes: &[u8]) -> StorageResult<u64> {
    Ok(u64::from_be_bytes(array(bytes, "logical clock")?))
}

fn array<const N: usize>(bytes: &[u8], what: &'static str) -> StorageResult<[u8; N]> {
    bytes.try_into().map_err(|_| corrupt(what, bytes))
}

fn corrupt(what: &'static str, bytes: &[u8]) -> StorageError {
    StorageError::Corrupt {
        what,
        detail: format!(
            "{} bytes: {:02x?}",
            bytes.len(),
            &bytes[..bytes.len().min(32)]
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::io::ErrorKind;

    use super::*;

    fn poison_of(error: &StorageError) -> &Poison {
        match error {
            StorageError::Poisoned(poison) => poison,
            other => panic!("not a refusal: {other:?}"),
        }
    }

    #[test]
    fn a_background_failure_with_little_room_left_is_a_full_disk() {
        for free in [0, 4096, DISK_FULL_FREE_BYTES_MAX] {
            let poison = background_failure(Some(free));
            assert_eq!(poison.write, EngineWrite::Background);
            assert!(poison.is_storage_full(), "{free} bytes free: {poison}");
        }
        for free in [Some(DISK_FULL_FREE_BYTES_MAX + 1), None] {
            let poison = background_failure(free);
            assert!(!poison.is_storage_full(), "{free:?} bytes free: {poison}");
        }
    }

    #[test]
    fn every_refusal_names_the_first_failure() {
        let dir = tempfile::tempdir().expect("tempdir");
        let failures = Failures::new(dir.path());
        let full = fjall::Error::Io(std::io::Error::from(ErrorKind::StorageFull));
        let first = failures.failed(EngineWrite::Journal, full);
        let later = failures.failed(EngineWrite::Persist, fjall::Error::Poisoned);
        let opening = failures.error(fjall::Error::Poisoned);
        for error in [&first, &later, &opening] {
            let poison = poison_of(error);
            assert_eq!(poison.write, EngineWrite::Journal, "{poison}");
            assert!(poison.is_storage_full(), "{poison}");
            assert!(error.is_storage_full() && error.is_poisoned(), "{error}");
        }
    }

    #[test]
    fn a_refusal_that_no_call_saw_the_cause_of_is_put_down_to_the_background() {
        let dir = tempfile::tempdir().expect("tempdir");
        let failures = Failures::new(dir.path());
        let refused = failures.failed(EngineWrite::Journal, fjall::Error::Poisoned);
        assert_eq!(poison_of(&refused).write, EngineWrite::Background);
        let again = failures.failed(EngineWrite::Persist, fjall::Error::Poisoned);
        assert_eq!(poison_of(&again), poison_of(&refused), "diagnosed once");
    }

    #[test]
    fn another_failure_of_a_call_that_does_not_poison_passes_through() {
        let dir = tempfile::tempdir().expect("tempdir");
        let failures = Failures::new(dir.path());
        let locked = failures.error(fjall::Error::Locked);
        assert!(
            matches!(locked, StorageError::Fjall(fjall::Error::Locked)),
            "{locked:?}"
        );
        let refused = failures.failed(EngineWrite::Persist, fjall::Error::Poisoned);
        assert_eq!(
            poison_of(&refused).write,
            EngineWrite::Background,
            "nothing was kept"
        );
    }
}
