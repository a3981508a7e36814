//! The durable engine, on fjall. The only module that imports fjall.
//!
//! One fjall `Database` per data directory. Its keyspace `node` holds the
//! node's record, one record per database (`db/{name}`) and each database's
//! persisted clock floor (`hlc/{name}`). Each Laterbase database has four
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
//! [`LOG_CHUNK_EVENTS_MAX`](crate::limits::LOG_CHUNK_EVENTS_MAX) events and
//! about [`LOG_CHUNK_BYTES_MAX`](crate::limits::LOG_CHUNK_BYTES_MAX) bytes),
//! so a write inserts one log key per chunk and one index key per event. The
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
//!
//! ```text
//! mod.rs        FjallStorage: the data directory, its databases and views, backups
//! ├─ database.rs  a database's keyspaces: log, id index, conflicts, updates
//! │  └─ chunk.rs  the log's chunks, written and read
//! ├─ view.rs      a view's keyspace and its snapshots
//! ├─ records.rs   the records of `node` and the fixed-size values
//! └─ failures.rs  the first failure, named by every refusal
//! ```

mod chunk;
mod database;
mod failures;
mod records;
mod view;

use std::path::Path;
use std::sync::Arc;

use fjall::{Keyspace, KeyspaceCreateOptions, PersistMode};

use self::database::FjallDatabase;
use self::failures::Failures;
use self::records::{
    DATABASE_META_PREFIX, DATABASE_PREFIX, HLC_PREFIX, NODE_KEY, decode_database, decode_node,
    encode_database, encode_node,
};
use self::view::FjallView;
use crate::error::{EngineWrite, StorageError};
use crate::limits::{CACHE_BYTES, INDEX_MEMTABLE_BYTES_MAX, LOG_MEMTABLE_BYTES_MAX};
use crate::storage::{
    DatabaseRecord, DatabaseStore, NodeRecord, Storage, StorageResult, ViewStore,
};

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
        decode_node(&value).map(Some)
    }

    fn save_node(&self, record: &NodeRecord) -> StorageResult<()> {
        self.meta
            .insert(NODE_KEY, encode_node(record))
            .map_err(|error| self.failures.failed(EngineWrite::Journal, error))?;
        self.persist()
    }

    fn databases(&self) -> StorageResult<Vec<DatabaseRecord>> {
        let mut records = Vec::new();
        for guard in self.meta.prefix(DATABASE_PREFIX) {
            let (key, value) = guard.into_inner()?;
            records.push(decode_database(&key, &value)?);
        }
        Ok(records)
    }

    fn create_database(&self, record: &DatabaseRecord) -> StorageResult<Box<dyn DatabaseStore>> {
        let store = self.open_database(&record.name)?;
        self.meta
            .insert(
                format!("{DATABASE_PREFIX}{}", record.name),
                encode_database(record),
            )
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
