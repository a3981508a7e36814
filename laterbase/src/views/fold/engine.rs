//! A view's fold with its types erased ([`Engine`]), as the view's actor
//! drives it: a batch of events folded in one atomic write with the
//! position, a backdated event into an ordered view refolded from its key's
//! checkpoint, and the rows of rewritten events refolded.

use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;

use super::layout::{POSITION_KEY, checkpoint_key, index_key, row_key};
use super::position::Position;
use super::refold::{key_of, refold_by_scan, refold_key, stored_of_key};
use super::row::{RowState, VIEW_STATE_FORMAT, decode_state, encode_state, fold_one, load_row};
use crate::event::{Event, EventId};
use crate::limits::{VIEW_CHECKPOINT_EVENTS, VIEW_KEY_BYTES_MAX};
use crate::storage::{DatabaseStore, StorageResult, ViewStore};
use crate::views::view::{FoldError, KeyKind, View};

/// A view's fold with its types erased, for the view's actor.
pub(crate) trait Engine: Send + Sync {
    /// The view's definition hash.
    fn fingerprint(&self) -> u64;
    /// The type of its keys.
    fn key_kind(&self) -> KeyKind;
    /// Folds durable `events` (in `lc` order, after `position.lc`) into
    /// `view`, reading `log` to refold a key, and moves `position` on.
    fn fold(
        &self,
        view: &dyn ViewStore,
        log: &dyn DatabaseStore,
        events: &[Event],
        position: &mut Position,
    ) -> StorageResult<()>;
    /// Refolds the rows that events `ids`, rewritten in place up to update
    /// number `us`, belong or belonged to (their stored form and every
    /// listed loser), and moves `position.us` to `us`, in one atomic write.
    /// An id the view has not folded yet, or that lists no loser (only its
    /// `recorded_at` moved), changes no row. `false`, with nothing written,
    /// when a form the view folded may be missing from the list (an id
    /// lists as many losers as a node keeps, see
    /// [`losers_may_be_missing`](crate::storage::losers_may_be_missing)): the
    /// view must be rebuilt.
    fn refold_rewritten(
        &self,
        view: &dyn ViewStore,
        log: &dyn DatabaseStore,
        ids: &[EventId],
        us: u64,
        position: &mut Position,
    ) -> StorageResult<bool>;
    /// Whether the view keeps an index of each key's events (a custom
    /// fold), so that refolding a key reads only its events.
    fn indexed(&self) -> bool;
    /// The row key (its bytes in the store) an event of `data` is folded
    /// under; `None` if it does not decode into the view's event or its key
    /// is too long, so that it is skipped.
    fn key_of(&self, data: &[u8]) -> Option<Vec<u8>>;
    /// The row keys that events `ids`, rewritten in place, belong or
    /// belonged to (their stored form and every listed loser), for those
    /// folded up to `up_to_lc`: the rows [`Engine::refold_rewritten`]
    /// refolds. An id that lists no loser (only its `recorded_at` moved)
    /// touches none.
    fn rewritten_keys(
        &self,
        log: &dyn DatabaseStore,
        ids: &[EventId],
        up_to_lc: u64,
    ) -> StorageResult<Vec<Vec<u8>>>;
    /// A row's value from its stored bytes; `None` for a row none of whose
    /// events folded, which is not shown.
    fn value(&self, stored: &[u8]) -> StorageResult<Option<serde_json::Value>>;
}

/// The fingerprint a view of `definition` is stored under: its definition
/// and the state format, mixed so that a change of either changes it.
pub(crate) fn fingerprint(definition: u64) -> u64 {
    (definition ^ VIEW_STATE_FORMAT.wrapping_mul(0x9e37_79b9_7f4a_7c15)).rotate_left(17)
}

/// The engine of `V`.
pub(crate) fn engine<V: View>() -> Box<dyn Engine> {
    Box::new(Typed::<V>(PhantomData))
}

struct Typed<V>(PhantomData<fn() -> V>);

/// The rows one batch changed, and its other writes, until they are
/// written with the position.
struct Pending<S> {
    rows: HashMap<Vec<u8>, RowState<S>>,
    changes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl<S: serde::Serialize + serde::de::DeserializeOwned + Default> Pending<S> {
    fn row(&mut self, view: &dyn ViewStore, key: &[u8]) -> StorageResult<&mut RowState<S>> {
        if !self.rows.contains_key(key) {
            let row = load_row(view, key)?;
            self.rows.insert(key.to_vec(), row);
        }
        #[expect(
            clippy::expect_used,
            reason = "the row is there: it was there or was just inserted"
        )]
        let row = self.rows.get_mut(key).expect("the row was just loaded");
        Ok(row)
    }

    /// Writes the batch so far with `position`, atomically.
    fn write(&mut self, view: &dyn ViewStore, position: &Position) -> StorageResult<()> {
        for (key, row) in self.rows.drain() {
            // A row whose every event failed to fold was never there.
            if row.last_id.is_some() {
                self.changes.push((row_key(&key), Some(row.encode())));
            }
        }
        self.changes
            .push((POSITION_KEY.to_vec(), Some(position.encode())));
        view.write(&self.changes)?;
        self.changes.clear();
        Ok(())
    }
}

impl<V: View> Engine for Typed<V> {
    fn fingerprint(&self) -> u64 {
        fingerprint(V::FINGERPRINT)
    }

    fn key_kind(&self) -> KeyKind {
        V::key_kind()
    }

    fn fold(
        &self,
        view: &dyn ViewStore,
        log: &dyn DatabaseStore,
        events: &[Event],
        position: &mut Position,
    ) -> StorageResult<()> {
        let mut pending = Pending::<V::State> {
            rows: HashMap::new(),
            changes: Vec::new(),
        };
        for event in events {
            let Ok(decoded) = serde_json::from_slice::<V::Event>(&event.data) else {
                position.skipped += 1;
                position.lc = event.lc;
                continue;
            };
            let key = V::key(&decoded).to_bytes();
            if key.len() > VIEW_KEY_BYTES_MAX {
                position.skipped += 1;
                position.lc = event.lc;
                continue;
            }
            let row = pending.row(view, &key)?;
            if V::ORDERED && row.last_id.is_some_and(|last| event.id < last) {
                // Backdated: what is pending goes first, so that the refold
                // reads the key's events and checkpoints from the store.
                pending.write(view, position)?;
                refold::<V>(view, log, &key, event, position)?;
                continue;
            }
            let folded = if V::ORDERED {
                fold_one::<V>(&mut row.state, &mut row.stored, event.id, &decoded)?
            } else {
                // An order-insensitive fold that fails changes nothing (the
                // macro checks every input first; the trait asks it of any
                // fold), so its state is encoded once, when the batch is
                // written, not once per event.
                let folded = V::fold(&mut row.state, event.id, &decoded);
                row.dirty |= folded.is_ok();
                folded
            };
            if folded.is_ok() || V::ORDERED {
                // An ordered view indexes an event that failed too, so that
                // a refold tries it again at its place in id order.
                row.last_id = Some(row.last_id.map_or(event.id, |last| last.max(event.id)));
            }
            if V::ORDERED {
                row.since_checkpoint += 1;
                if row.since_checkpoint >= VIEW_CHECKPOINT_EVENTS && !row.stored.is_empty() {
                    row.since_checkpoint = 0;
                    let state = row.stored.clone();
                    pending
                        .changes
                        .push((checkpoint_key(&key, event.id), Some(state)));
                }
                pending
                    .changes
                    .push((index_key(&key, event.id), Some(Vec::new())));
            }
            position.lc = event.lc;
            match folded {
                Ok(()) => position.folded += 1,
                Err(error) => failed_event::<V>(event, &error, position),
            }
        }
        encode_deferred::<V>(view, &mut pending, events, position)?;
        pending.write(view, position)
    }

    fn refold_rewritten(
        &self,
        view: &dyn ViewStore,
        log: &dyn DatabaseStore,
        ids: &[EventId],
        us: u64,
        position: &mut Position,
    ) -> StorageResult<bool> {
        let Some(touched) = touched_keys::<V>(log, ids, position.lc)? else {
            return Ok(false);
        };
        let mut changes = Vec::new();
        if V::ORDERED {
            for (key, mut ids) in touched {
                ids.sort_unstable();
                let mut joining = Vec::with_capacity(ids.len());
                for &id in &ids {
                    if stored_of_key::<V>(log, id, &key)?.is_some() {
                        joining.push(id);
                    }
                }
                let Some(&first) = ids.first() else {
                    continue;
                };
                refold_key::<V>(view, log, &key, first, &joining, None, &mut changes)?;
            }
        } else if !touched.is_empty() {
            refold_by_scan::<V>(
                log,
                touched.into_keys().collect(),
                position.lc,
                &mut changes,
            )?;
        }
        position.us = us;
        changes.push((POSITION_KEY.to_vec(), Some(position.encode())));
        view.write(&changes)?;
        Ok(true)
    }

    fn indexed(&self) -> bool {
        V::ORDERED
    }

    fn key_of(&self, data: &[u8]) -> Option<Vec<u8>> {
        key_of::<V>(data)
    }

    fn rewritten_keys(
        &self,
        log: &dyn DatabaseStore,
        ids: &[EventId],
        up_to_lc: u64,
    ) -> StorageResult<Vec<Vec<u8>>> {
        // Losers left unlisted make the view rebuild; the keys of those
        // listed are what can be named.
        let touched = touched_keys::<V>(log, ids, up_to_lc)?;
        Ok(touched.map_or_else(Vec::new, |touched| touched.into_keys().collect()))
    }

    fn value(&self, stored: &[u8]) -> StorageResult<Option<serde_json::Value>> {
        let row = RowState::<V::State>::decode(stored)?;
        Ok((!row.stored.is_empty()).then(|| V::value(&row.state)))
    }
}

/// Each key that events `ids`, rewritten in place and folded up to
/// `up_to_lc`, are or were of (their stored form and every listed loser),
/// with the ids of it. An id not folded yet is folded in its stored form
/// when its turn comes, and one that lists no loser changed no key. `None`
/// when a form the view folded may be missing from the list of losers (see
/// [`losers_may_be_missing`](crate::storage::losers_may_be_missing)).
fn touched_keys<V: View>(
    log: &dyn DatabaseStore,
    ids: &[EventId],
    up_to_lc: u64,
) -> StorageResult<Option<BTreeMap<Vec<u8>, Vec<EventId>>>> {
    let mut touched: BTreeMap<Vec<u8>, Vec<EventId>> = BTreeMap::new();
    for &id in ids {
        let Some(event) = log.lc_of(id)?.filter(|lc| *lc <= up_to_lc) else {
            continue;
        };
        let losers = log.losers(id)?;
        if crate::storage::losers_may_be_missing(&losers) {
            return Ok(None);
        }
        if losers.is_empty() {
            continue;
        }
        let Some(stored) = log.event_at(event)? else {
            continue;
        };
        for form in losers.iter().chain([&stored.data]) {
            if let Some(key) = key_of::<V>(form) {
                let ids = touched.entry(key).or_default();
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
    }
    Ok(Some(touched))
}

/// Encodes the rows an order-insensitive batch moved. A state that cannot be
/// stored (a hand-written fold made a non-finite number, say) is folded
/// again from its stored row over the batch's events of its key, one event
/// at a time, so that only the events that made it so are left out.
fn encode_deferred<V: View>(
    view: &dyn ViewStore,
    pending: &mut Pending<V::State>,
    events: &[Event],
    position: &mut Position,
) -> StorageResult<()> {
    let mut unstorable = Vec::new();
    for (key, row) in &mut pending.rows {
        if !row.dirty {
            continue;
        }
        match encode_state(&row.state) {
            Ok(stored) => {
                row.stored = stored;
                row.dirty = false;
            }
            Err(_) => unstorable.push(key.clone()),
        }
    }
    for key in unstorable {
        let mut row = load_row::<V::State>(view, &key)?;
        for event in events {
            let Ok(decoded) = serde_json::from_slice::<V::Event>(&event.data) else {
                continue;
            };
            if V::key(&decoded).to_bytes() != key
                || V::fold(&mut row.state, event.id, &decoded).is_err()
            {
                // Not of this row, or refused and counted already.
                continue;
            }
            match encode_state(&row.state) {
                Ok(stored) => {
                    row.stored = stored;
                    row.last_id = row.last_id.max(Some(event.id));
                }
                Err(error) => {
                    // Counted as folded in the batch; it is not.
                    row.state = decode_state(&row.stored)?;
                    position.folded = position.folded.saturating_sub(1);
                    failed_event::<V>(event, &error, position);
                }
            }
        }
        pending.rows.insert(key, row);
    }
    Ok(())
}

/// Counts `event`, which did not fold, as skipped, and says why.
fn failed_event<V: View>(event: &Event, error: &FoldError, position: &mut Position) {
    position.skipped += 1;
    tracing::warn!(
        database = V::DB,
        view = V::NAME,
        id = %event.id,
        error = %crate::error::ErrorChain(error),
        "an event could not be folded; it is skipped and counted"
    );
}

/// Folds a backdated `event` into its key: from the key's last checkpoint
/// before it, over the key's events after that checkpoint in id order,
/// making new checkpoints on the way; one atomic write with the position.
fn refold<V: View>(
    view: &dyn ViewStore,
    log: &dyn DatabaseStore,
    key: &[u8],
    event: &Event,
    position: &mut Position,
) -> StorageResult<()> {
    let mut changes = Vec::new();
    let failed = refold_key::<V>(
        view,
        log,
        key,
        event.id,
        &[event.id],
        Some(event.id),
        &mut changes,
    )?;
    position.lc = event.lc;
    match failed {
        None => position.folded += 1,
        Some(error) => failed_event::<V>(event, &error, position),
    }
    changes.push((POSITION_KEY.to_vec(), Some(position.encode())));
    view.write(&changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryStorage;
    use crate::storage::{DatabaseRecord, Storage};
    use crate::views::view::Key;

    #[derive(serde::Deserialize)]
    struct Amount {
        x: f64,
    }

    /// A hand-written order-insensitive view whose fold can make a state
    /// that cannot be stored: a total that overflows to infinity.
    struct Total;

    impl View for Total {
        const DB: &'static str = "d";
        const NAME: &'static str = "total";
        const FINGERPRINT: u64 = 1;
        const ORDERED: bool = false;
        type Event = Amount;
        type State = f64;

        fn key_kind() -> KeyKind {
            KeyKind::Null
        }

        fn key(_event: &Amount) -> Key {
            Key::Null
        }

        fn fold(state: &mut f64, _id: EventId, event: &Amount) -> Result<(), FoldError> {
            *state += event.x;
            Ok(())
        }

        fn value(state: &f64) -> serde_json::Value {
            serde_json::json!(state)
        }
    }

    #[test]
    fn a_batch_state_that_cannot_be_stored_leaves_out_only_the_events_that_made_it() {
        let storage = MemoryStorage::new();
        let record = DatabaseRecord {
            name: "d".to_owned(),
            incarnation: 1,
            created_at: crate::event::Timestamp(0),
        };
        let log = storage.create_database(&record).expect("database");
        let view = storage.open_view("d", "total").expect("view");
        let events: Vec<Event> = ["1e308", "1e308", "1.0", "-1e308"]
            .iter()
            .zip(1..)
            .map(|(x, lc)| Event {
                id: EventId::from_parts(1_000 + lc, 0),
                lc,
                recorded_at: crate::event::Timestamp(0),
                data: bytes::Bytes::from(format!(r#"{{"x":{x}}}"#)),
            })
            .collect();
        let mut position = Position::default();
        engine::<Total>()
            .fold(view.as_ref(), log.as_ref(), &events, &mut position)
            .expect("fold");
        // 1e308 + 1e308 is infinite: that event is left out, and the others
        // fold on from 1e308 (1.0 is lost in its rounding) back to 0.
        assert_eq!((position.folded, position.skipped, position.lc), (3, 1, 4));
        let stored = view
            .get(&row_key(&Key::Null.to_bytes()))
            .expect("read")
            .expect("a row");
        let value = engine::<Total>().value(&stored).expect("decodes");
        assert_eq!(value, Some(serde_json::json!(0.0)));
    }
}
