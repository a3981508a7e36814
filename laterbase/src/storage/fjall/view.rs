//! A view's keyspace, `{database}.view.{view}`, and its snapshots: rows
//! and the view's own entries under keys the view chooses.

use std::sync::Arc;

use bytes::Bytes;
use fjall::Keyspace;

use super::failures::Failures;
use super::records::corrupt;
use crate::error::EngineWrite;
use crate::storage::{StorageResult, ViewSnapshot, ViewStore};

/// A view's keyspace, `{database}.view.{view}`.
pub(super) struct FjallView {
    pub(super) db: fjall::Database,
    pub(super) failures: Arc<Failures>,
    pub(super) rows: Keyspace,
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
