//! Refolding a key from what is stored: an ordered view's key from its
//! last checkpoint before an event, over the key's index; an
//! order-insensitive view's keys from nothing, over one read of the log.
//! The index and checkpoints are read a page at a time, never whole.

use std::collections::HashMap;

use super::layout::{
    CHECKPOINT_PREFIX, INDEX_PREFIX, checkpoint_key, id_suffix, index_key, prefix, prefix_end,
    row_key,
};
use super::row::{RowState, decode_state, fold_one};
use crate::event::EventId;
use crate::limits::{
    VIEW_CHECKPOINT_EVENTS, VIEW_FOLD_BYTES_MAX, VIEW_KEY_BYTES_MAX, VIEW_REFOLD_PAGE_ENTRIES,
};
use crate::storage::{DatabaseStore, StorageResult, ViewStore};
use crate::views::view::{FoldError, View};

/// Refolds the row of `key` (an ordered view's) from its last checkpoint
/// before `from`, over its events in id order: those in its index and
/// `joining` (ids now of this key, sorted, which join the index), each read
/// from the log in its stored form. An indexed event whose stored form is no
/// longer of this key leaves the index; a key left with no events loses
/// its row. Checkpoints after `from` are made again. Pushes the writes to
/// `changes`; returns why `watch` did not fold, if it did not. The index
/// and checkpoints are read in pages of [`VIEW_REFOLD_PAGE_ENTRIES`], never
/// whole.
pub(super) fn refold_key<V: View>(
    view: &dyn ViewStore,
    log: &dyn DatabaseStore,
    key: &[u8],
    from: EventId,
    joining: &[EventId],
    watch: Option<EventId>,
    changes: &mut Vec<(Vec<u8>, Option<Vec<u8>>)>,
) -> StorageResult<Option<FoldError>> {
    let before = checkpoint_key(key, from);
    let (mut state, mut stored, checkpoint) =
        match view.last_in(&prefix(CHECKPOINT_PREFIX, key), &before)? {
            Some((stored_key, bytes)) => (
                decode_state::<V::State>(&bytes)?,
                bytes.to_vec(),
                Some(id_suffix(&stored_key)?),
            ),
            None => (V::State::default(), Vec::new(), None),
        };
    // Checkpoints after `from` no longer hold: they are made again below.
    let checkpoints_end = prefix_end(&prefix(CHECKPOINT_PREFIX, key));
    for_each_page(view, before, &checkpoints_end, |stale| {
        changes.push((stale.to_vec(), None));
        Ok(())
    })?;
    let index = prefix(INDEX_PREFIX, key);
    let start = match checkpoint {
        Some(id) => index_key(key, EventId::from_u128(id.to_u128() + 1)),
        None => index.clone(),
    };
    let mut refold = Refold::<V> {
        joining,
        last_id: checkpoint,
        since_checkpoint: 0,
        watch,
        failed: None,
        changes,
        key,
        state: &mut state,
        stored: &mut stored,
    };
    for_each_page(view, start, &prefix_end(&index), |stored_key| {
        let id = id_suffix(stored_key)?;
        refold.joining_before(log, id)?;
        if let Some(rest) = refold.joining.strip_prefix(&[id]) {
            // Already indexed.
            refold.joining = rest;
        }
        refold.one(log, id)
    })?;
    refold.joining_before(log, EventId::from_u128(u128::MAX))?;
    let (since_checkpoint, last_id, failed) = (
        refold.since_checkpoint,
        refold.last_id,
        refold.failed.take(),
    );
    let row = RowState {
        last_id,
        since_checkpoint,
        state,
        stored,
        dirty: false,
    };
    changes.push((row_key(key), row.last_id.is_some().then(|| row.encode())));
    Ok(failed)
}

/// A refold of one key under way: the state so far and what it writes.
struct Refold<'a, V: View> {
    /// Ids joining the key, sorted, until their turn in id order.
    joining: &'a [EventId],
    /// The greatest id of the key so far.
    last_id: Option<EventId>,
    /// Events folded since the last checkpoint made.
    since_checkpoint: u32,
    /// The id whose fold failure is reported.
    watch: Option<EventId>,
    /// Why `watch` did not fold, if it did not.
    failed: Option<FoldError>,
    changes: &'a mut Vec<(Vec<u8>, Option<Vec<u8>>)>,
    key: &'a [u8],
    state: &'a mut V::State,
    stored: &'a mut Vec<u8>,
}

impl<V: View> Refold<'_, V> {
    /// Folds the joining ids before `id`, indexing each.
    fn joining_before(&mut self, log: &dyn DatabaseStore, id: EventId) -> StorageResult<()> {
        while let Some((&joining, rest)) = self.joining.split_first()
            && joining < id
        {
            self.joining = rest;
            self.changes
                .push((index_key(self.key, joining), Some(Vec::new())));
            self.one(log, joining)?;
        }
        Ok(())
    }

    /// Folds the event `id` in its stored form; one that fails is left out,
    /// as it was when it first came, and a checkpoint follows every
    /// [`VIEW_CHECKPOINT_EVENTS`] events. One whose stored form is no
    /// longer of this key (or gone) leaves the index.
    fn one(&mut self, log: &dyn DatabaseStore, id: EventId) -> StorageResult<()> {
        let Some(event) = stored_of_key::<V>(log, id, self.key)? else {
            self.changes.push((index_key(self.key, id), None));
            return Ok(());
        };
        let folded = fold_one::<V>(self.state, self.stored, id, &event)?;
        self.last_id = self.last_id.max(Some(id));
        self.since_checkpoint += 1;
        if self.since_checkpoint >= VIEW_CHECKPOINT_EVENTS && !self.stored.is_empty() {
            self.since_checkpoint = 0;
            self.changes
                .push((checkpoint_key(self.key, id), Some(self.stored.clone())));
        }
        if let Err(error) = folded
            && self.watch == Some(id)
        {
            self.failed = Some(error);
        }
        Ok(())
    }
}

/// Refolds the rows of `keys` (an order-insensitive view's, which keeps no
/// index) from nothing, over every event up to `up_to_lc` read from the
/// log a page at a time; only those keys' events are folded and only their
/// rows written (a key left with no events loses its row).
pub(super) fn refold_by_scan<V: View>(
    log: &dyn DatabaseStore,
    keys: Vec<Vec<u8>>,
    up_to_lc: u64,
    changes: &mut Vec<(Vec<u8>, Option<Vec<u8>>)>,
) -> StorageResult<()> {
    let mut rows: HashMap<Vec<u8>, RowState<V::State>> = keys
        .into_iter()
        .map(|key| (key, RowState::empty()))
        .collect();
    let mut after = 0;
    loop {
        let page = log.scan_log(
            after,
            up_to_lc,
            VIEW_REFOLD_PAGE_ENTRIES,
            VIEW_FOLD_BYTES_MAX,
        )?;
        let Some(last) = page.last() else {
            break;
        };
        after = last.lc;
        for event in &page {
            let Ok(decoded) = serde_json::from_slice::<V::Event>(&event.data) else {
                continue;
            };
            if let Some(row) = rows.get_mut(&V::key(&decoded).to_bytes())
                && fold_one::<V>(&mut row.state, &mut row.stored, event.id, &decoded)?.is_ok()
            {
                row.last_id = row.last_id.max(Some(event.id));
            }
        }
    }
    for (key, row) in rows {
        changes.push((row_key(&key), row.last_id.is_some().then(|| row.encode())));
    }
    Ok(())
}

/// The row key of an event's `bytes`, if they decode into the view's event
/// and the key can be stored.
pub(super) fn key_of<V: View>(bytes: &[u8]) -> Option<Vec<u8>> {
    let decoded = serde_json::from_slice::<V::Event>(bytes).ok()?;
    let key = V::key(&decoded).to_bytes();
    (key.len() <= VIEW_KEY_BYTES_MAX).then_some(key)
}

/// The stored event `id`, decoded, if its stored form is of row `key`.
pub(super) fn stored_of_key<V: View>(
    log: &dyn DatabaseStore,
    id: EventId,
    key: &[u8],
) -> StorageResult<Option<V::Event>> {
    let Some(lc) = log.lc_of(id)? else {
        return Ok(None);
    };
    let Some(event) = log.event_at(lc)? else {
        return Ok(None);
    };
    Ok(serde_json::from_slice::<V::Event>(&event.data)
        .ok()
        .filter(|decoded| V::key(decoded).to_bytes() == key))
}
/// Calls `each` with every store key from `start` to `end`, reading
/// [`VIEW_REFOLD_PAGE_ENTRIES`] at a time.
fn for_each_page(
    view: &dyn ViewStore,
    mut start: Vec<u8>,
    end: &[u8],
    mut each: impl FnMut(&[u8]) -> StorageResult<()>,
) -> StorageResult<()> {
    loop {
        let page = view.range(&start, end, VIEW_REFOLD_PAGE_ENTRIES)?;
        for (stored_key, _) in &page {
            each(stored_key)?;
        }
        match page.last() {
            Some((last, _)) if page.len() == VIEW_REFOLD_PAGE_ENTRIES => {
                // Just past the last key read.
                start = last.to_vec();
                start.push(0);
            }
            _ => return Ok(()),
        }
    }
}
