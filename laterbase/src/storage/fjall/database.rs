//! A Laterbase database's store: its log in chunks, its id index, its
//! listed losers and its rewrites, each a keyspace of its own, and its
//! metadata and clock floor in the keyspace `node`. Every write is one
//! fjall batch, atomic across keyspaces.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use fjall::Keyspace;

use super::chunk::{Chunk, chunks, encode_chunk};
use super::failures::Failures;
use super::records::{conflict_id, corrupt, decode_id, decode_lc};
use crate::error::EngineWrite;
use crate::event::{Event, EventId};
use crate::storage::{
    DatabaseStore, LoserPager, LosersById, PageBytes, StorageResult, StoredEvent, WriteBatch,
    id_bounds,
};

/// One database's keyspaces, and where its records are in `node`.
pub(super) struct FjallDatabase {
    pub(super) db: fjall::Database,
    pub(super) failures: Arc<Failures>,
    /// The keyspace `node`.
    pub(super) meta: Keyspace,
    /// The key of the database's clock floor in `meta`.
    pub(super) hlc_key: String,
    /// Where this database's own metadata keys start in `meta`.
    pub(super) meta_prefix: String,
    pub(super) log: Keyspace,
    pub(super) ids: Keyspace,
    pub(super) conflicts: Keyspace,
    pub(super) updates: Keyspace,
}

impl FjallDatabase {
    /// The chunk holding `lc`, if any: its first lc and its bytes.
    fn chunk_of(&self, lc: u64) -> StorageResult<Option<(u64, Bytes)>> {
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
            Some(guard) => Ok(Some(decode_id(&guard.key()?, "id key")?)),
            None => Ok(None),
        }
    }

    fn hlc_floor(&self) -> StorageResult<Option<EventId>> {
        match self.meta.get(&self.hlc_key)? {
            Some(value) => Ok(Some(decode_id(&value, "clock floor")?)),
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
            updates.push((decode_lc(&key)?, decode_id(&value, "update")?));
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
        let Some((low, high)) = id_bounds(after, before) else {
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
    ) -> StorageResult<(LosersById, bool)> {
        // Past every key of `after`: its id, then a count, all ones.
        let start = after.map_or_else(Vec::new, |id| {
            let mut key = id.to_bytes().to_vec();
            key.extend_from_slice(&[0xff; 5]);
            key
        });
        let mut pager = LoserPager::new(rows, bytes);
        for guard in self.conflicts.range(start..) {
            let (key, value) = guard.into_inner()?;
            let id = conflict_id(&key)?;
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
        let mut chunks: BTreeMap<u64, Vec<Event>> = BTreeMap::new();
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
        let mut listed: HashMap<EventId, Vec<Bytes>> = HashMap::new();
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
