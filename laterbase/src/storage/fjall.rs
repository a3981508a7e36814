//! The durable engine, on fjall. The only module that imports fjall.
//!
//! One fjall `Database` per data directory. Its keyspace `node` holds the
//! node's record, one record per database (`db/{name}`) and each database's
//! persisted clock floor (`hlc/{name}`). Each Laterbase database has two
//! keyspaces of its own:
//!
//! ```text
//! {name}.log   lc (u64 BE)  -> id (16 bytes) | recorded_at ms (u64 BE) | data
//! {name}.ids   id (16 bytes) -> lc (u64 BE)
//! ```
//!
//! The changes feed is a range scan of the log; a read by id is one lookup in
//! `ids` and one in the log. Writes go through one fjall batch, which is
//! atomic across keyspaces.

use std::path::Path;

use fjall::{Keyspace, KeyspaceCreateOptions, PersistMode};

use super::{DatabaseRecord, DatabaseStore, NodeRecord, Storage, StorageResult, WriteBatch};
use crate::error::StorageError;
use crate::event::{Event, EventId, Timestamp};
use crate::limits::{CACHE_BYTES, MEMTABLE_BYTES_MAX};

const NODE_KEY: &[u8] = b"node";
const DATABASE_PREFIX: &str = "db/";
const HLC_PREFIX: &str = "hlc/";

/// The fjall engine over one data directory.
pub struct FjallStorage {
    db: fjall::Database,
    meta: Keyspace,
}

impl FjallStorage {
    /// Opens (or creates) the store in `dir`. Fails with
    /// [`fjall::Error::Locked`] inside when another process holds it.
    pub fn open(dir: &Path) -> StorageResult<FjallStorage> {
        let db = fjall::Database::builder(dir)
            .cache_size(CACHE_BYTES)
            .open()?;
        let meta = db.keyspace("node", keyspace_options)?;
        Ok(FjallStorage { db, meta })
    }

    fn keyspaces(&self, name: &str) -> StorageResult<(Keyspace, Keyspace)> {
        let log = self.db.keyspace(&format!("{name}.log"), keyspace_options)?;
        let ids = self.db.keyspace(&format!("{name}.ids"), keyspace_options)?;
        Ok((log, ids))
    }
}

fn keyspace_options() -> KeyspaceCreateOptions {
    KeyspaceCreateOptions::default().max_memtable_size(MEMTABLE_BYTES_MAX)
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
        self.meta.insert(NODE_KEY, value)?;
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
            .insert(format!("{DATABASE_PREFIX}{}", record.name), value)?;
        self.persist()?;
        Ok(store)
    }

    fn open_database(&self, name: &str) -> StorageResult<Box<dyn DatabaseStore>> {
        let (log, ids) = self.keyspaces(name)?;
        Ok(Box::new(FjallDatabase {
            db: self.db.clone(),
            meta: self.meta.clone(),
            hlc_key: format!("{HLC_PREFIX}{name}"),
            log,
            ids,
        }))
    }

    fn persist(&self) -> StorageResult<()> {
        Ok(self.db.persist(PersistMode::SyncAll)?)
    }
}

struct FjallDatabase {
    db: fjall::Database,
    meta: Keyspace,
    hlc_key: String,
    log: Keyspace,
    ids: Keyspace,
}

impl DatabaseStore for FjallDatabase {
    fn last_lc(&self) -> StorageResult<u64> {
        match self.log.last_key_value() {
            Some(guard) => decode_lc(&guard.key()?),
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

    fn lc_of(&self, id: EventId) -> StorageResult<Option<u64>> {
        match self.ids.get(id.to_bytes())? {
            Some(value) => Ok(Some(decode_lc(&value)?)),
            None => Ok(None),
        }
    }

    fn event_at(&self, lc: u64) -> StorageResult<Option<Event>> {
        match self.log.get(lc.to_be_bytes())? {
            Some(value) => Ok(Some(decode_event(lc, value.into())?)),
            None => Ok(None),
        }
    }

    fn scan_log(&self, after_lc: u64, up_to_lc: u64, limit: usize) -> StorageResult<Vec<Event>> {
        if after_lc >= up_to_lc {
            return Ok(Vec::new());
        }
        let range = (after_lc + 1).to_be_bytes()..=up_to_lc.to_be_bytes();
        let mut events =
            Vec::with_capacity(limit.min(usize::try_from(up_to_lc - after_lc).unwrap_or(limit)));
        for guard in self.log.range(range).take(limit) {
            let (key, value) = guard.into_inner()?;
            events.push(decode_event(decode_lc(&key)?, value.into())?);
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
            let lc = decode_lc(&guard.value()?)?;
            if lc <= up_to_lc {
                lcs.push(lc);
                if lcs.len() == limit {
                    break;
                }
            }
        }
        Ok(lcs)
    }

    fn write(&self, batch: &WriteBatch) -> StorageResult<()> {
        let mut writes = self.db.batch();
        for (lc, event) in (batch.first_lc..).zip(&batch.events) {
            let mut value = Vec::with_capacity(24 + event.data.len());
            value.extend_from_slice(&event.id.to_bytes());
            value.extend_from_slice(&event.recorded_at.0.to_be_bytes());
            value.extend_from_slice(&event.data);
            writes.insert(&self.log, lc.to_be_bytes(), value);
            writes.insert(&self.ids, event.id.to_bytes(), lc.to_be_bytes());
        }
        writes.insert(
            &self.meta,
            self.hlc_key.as_str(),
            batch.hlc_floor.to_bytes(),
        );
        Ok(writes.commit()?)
    }
}

fn decode_lc(bytes: &[u8]) -> StorageResult<u64> {
    Ok(u64::from_be_bytes(array(bytes, "logical clock")?))
}

fn decode_event(lc: u64, value: bytes::Bytes) -> StorageResult<Event> {
    if value.len() < 24 {
        return Err(corrupt("event", &value));
    }
    Ok(Event {
        id: EventId::from_bytes(array(&value[..16], "event id")?),
        recorded_at: Timestamp(u64::from_be_bytes(array(&value[16..24], "event time")?)),
        data: value.slice(24..),
        lc,
    })
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
