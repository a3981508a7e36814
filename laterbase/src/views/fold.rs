//! Folding events into a view's store.
//!
//! A view's store holds, under one-byte prefixes:
//!
//! ```text
//! p                      position: lc, update number, fingerprint, counters
//! r key                  a row: the id of its latest event, events since its
//!                        last checkpoint, its state (JSON)
//! i len key id           ordered views: the ids of each key's events
//! c len key id           ordered views: the key's state after event `id`
//! ```
//!
//! An event that does not decode, whose key is longer than
//! [`VIEW_KEY_BYTES_MAX`], or that does not fold (a non-finite number, a
//! state that cannot be stored: see [`fold_one`]) is skipped and counted.
//!
//! Built-in aggregators keep exact state (`#[sum]` in an `i128` or an
//! [`ExactSum`](super::exact::ExactSum)), so a row is a function of the set
//! of its events, whatever their order. The layout of that state is
//! [`VIEW_STATE_FORMAT`], mixed into every view's fingerprint: a view
//! stored in another format is rebuilt rather than misread.
//!
//! Events come in `lc` order, which is arrival order. Order-insensitive
//! views fold them as they come. An ordered view (a custom fold) folds an
//! event in place when it is the newest of its key; an older one (backdated)
//! refolds its key from the last checkpoint before it, over the key's newer
//! events: a cost of at most [`VIEW_CHECKPOINT_EVENTS`] plus those events,
//! never the whole history. Each batch of events is one atomic write with
//! the position, so a crash leaves rows and position agreeing.
//!
//! A stored event whose bytes are rewritten (a conflict's smaller value
//! wins) was folded in its older form. The view refolds only the keys its
//! forms belong to, old and new ([`Engine::refold_rewritten`]): an ordered
//! view from each key's checkpoint before the event, over its index; an
//! order-insensitive view, which keeps no index, by reading the log once
//! for all of them and folding only those keys' events. Other rows are
//! not touched, and the view answers as it did.

use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;

use super::finite::{self, NotFinite};
use super::key::{Key, KeyKind};
use super::view::{FoldError, View};
use crate::error::StorageError;
use crate::event::{Event, EventId};
use crate::limits::{
    VIEW_CHECKPOINT_EVENTS, VIEW_FOLD_BYTES_MAX, VIEW_KEY_BYTES_MAX, VIEW_REFOLD_PAGE_ENTRIES,
};
use crate::storage::{DatabaseStore, StorageResult, ViewStore};

/// The format of the rows' state: 1 kept `#[sum]` as a running total in
/// the field's own type; 2 keeps exact totals.
pub(crate) const VIEW_STATE_FORMAT: u64 = 2;

const POSITION_KEY: &[u8] = b"p";
const ROW_PREFIX: u8 = b'r';
const INDEX_PREFIX: u8 = b'i';
const CHECKPOINT_PREFIX: u8 = b'c';

/// How far a view has folded, stored with its rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Position {
    /// The database's logical clock folded up to.
    pub(crate) lc: u64,
    /// The database's update number up to which rewrites of stored events
    /// are folded. (A position stored before update numbers were kept here
    /// holds a count of rewrites, never above the update number it was
    /// read with: the rewrites after it are refolded again, which changes
    /// nothing.)
    pub(crate) us: u64,
    /// The definition the rows were folded with.
    pub(crate) fingerprint: u64,
    /// Events folded since the view was (re)built.
    pub(crate) folded: u64,
    /// Events skipped because they did not decode.
    pub(crate) skipped: u64,
}

impl Position {
    fn encode(&self) -> Vec<u8> {
        [
            self.lc,
            self.us,
            self.fingerprint,
            self.folded,
            self.skipped,
        ]
        .iter()
        .flat_map(|value| value.to_be_bytes())
        .collect()
    }

    fn decode(bytes: &[u8]) -> StorageResult<Position> {
        let fields: Vec<u64> = bytes
            .chunks(8)
            .map(|field| field.try_into().map(u64::from_be_bytes))
            .collect::<Result<_, _>>()
            .map_err(|_| corrupt("view position", "it is not 40 bytes"))?;
        let [lc, us, fingerprint, folded, skipped] = fields[..] else {
            return Err(corrupt("view position", "it is not 40 bytes"));
        };
        Ok(Position {
            lc,
            us,
            fingerprint,
            folded,
            skipped,
        })
    }

    /// The stored position, if the view was ever folded.
    pub(crate) fn load(view: &dyn ViewStore) -> StorageResult<Option<Position>> {
        view.get(POSITION_KEY)?
            .map(|bytes| Position::decode(&bytes))
            .transpose()
    }

    /// Starts the view over: no rows, nothing folded, and every rewrite up
    /// to update number `us` in the events it will read.
    pub(crate) fn reset(
        view: &dyn ViewStore,
        us: u64,
        fingerprint: u64,
    ) -> StorageResult<Position> {
        view.clear()?;
        let position = Position {
            us,
            fingerprint,
            ..Position::default()
        };
        view.write(&[(POSITION_KEY.to_vec(), Some(position.encode()))])?;
        Ok(position)
    }
}

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

/// A row as stored.
struct RowState<S> {
    /// The greatest id folded into it.
    last_id: Option<EventId>,
    /// Events folded since its last checkpoint (ordered views).
    since_checkpoint: u32,
    state: S,
    /// `state` as stored (JSON), kept from the last event that folded, so
    /// that a failed fold can go back to it; empty for the default state.
    stored: Vec<u8>,
    /// Whether `state` moved on from `stored` (an order-insensitive view's
    /// row, encoded once per batch).
    dirty: bool,
}

impl<S: serde::Serialize + serde::de::DeserializeOwned + Default> RowState<S> {
    /// A row no event has folded into.
    fn empty() -> RowState<S> {
        RowState {
            last_id: None,
            since_checkpoint: 0,
            state: S::default(),
            stored: Vec::new(),
            dirty: false,
        }
    }

    fn encode(&self) -> Vec<u8> {
        // An empty state: an ordered view's row whose every event failed to
        // fold; it keeps its ids for refolds, and is not shown.
        let mut bytes = Vec::with_capacity(20 + self.stored.len());
        bytes.extend_from_slice(&self.last_id.map_or(0, EventId::to_u128).to_be_bytes());
        bytes.extend_from_slice(&self.since_checkpoint.to_be_bytes());
        bytes.extend_from_slice(&self.stored);
        bytes
    }

    fn decode(bytes: &[u8]) -> StorageResult<RowState<S>> {
        let (id, rest) = bytes
            .split_at_checked(16)
            .ok_or_else(|| corrupt("view row", "it is shorter than its header"))?;
        let (since, state) = rest
            .split_at_checked(4)
            .ok_or_else(|| corrupt("view row", "it is shorter than its header"))?;
        let id = u128::from_be_bytes(id.try_into().map_err(|_| corrupt("view row", "bad id"))?);
        let since_checkpoint = u32::from_be_bytes(
            since
                .try_into()
                .map_err(|_| corrupt("view row", "bad count"))?,
        );
        let stored = state.to_vec();
        let state = decode_state(state)?;
        Ok(RowState {
            last_id: (id != 0).then(|| EventId::from_u128(id)),
            since_checkpoint,
            state,
            stored,
            dirty: false,
        })
    }
}

/// Folds one event into `state`, whose stored form is `stored`: on success
/// `stored` is the new state's; on failure (the fold refused the event, or
/// its state cannot be stored: a non-finite float, a failing `Serialize`)
/// `state` goes back to `stored` and the error says why.
pub(crate) fn fold_one<V: View>(
    state: &mut V::State,
    stored: &mut Vec<u8>,
    id: EventId,
    event: &V::Event,
) -> StorageResult<Result<(), FoldError>> {
    let folded = V::fold(state, id, event).and_then(|()| encode_state(state));
    match folded {
        Ok(bytes) => {
            *stored = bytes;
            Ok(Ok(()))
        }
        Err(error) => {
            *state = decode_state(stored)?;
            Ok(Err(error))
        }
    }
}

/// A state's stored form, if it has one.
fn encode_state<S: serde::Serialize>(state: &S) -> Result<Vec<u8>, FoldError> {
    finite::check(state).map_err(FoldError::State)?;
    serde_json::to_vec(state)
        .map_err(|error| FoldError::State(NotFinite::Serialize(error.to_string())))
}

/// The state stored as `bytes` (the default state if empty).
fn decode_state<S: serde::de::DeserializeOwned + Default>(bytes: &[u8]) -> StorageResult<S> {
    if bytes.is_empty() {
        return Ok(S::default());
    }
    serde_json::from_slice(bytes)
        .map_err(|error| corrupt("view state", &format!("it does not decode: {error}")))
}

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
        Ok(self.rows.get_mut(key).expect("the row was just loaded"))
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
        // Each touched key, with the rewritten ids that are or were of it.
        let mut touched: BTreeMap<Vec<u8>, Vec<EventId>> = BTreeMap::new();
        for &id in ids {
            let Some(event) = log.lc_of(id)?.filter(|lc| *lc <= position.lc) else {
                // Not folded yet: it is folded in its stored form when its
                // turn comes.
                continue;
            };
            let losers = log.losers(id)?;
            if crate::storage::losers_may_be_missing(&losers) {
                return Ok(false);
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
                refold_key::<V>(view, log, &key, ids[0], &joining, None, &mut changes)?;
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

    fn value(&self, stored: &[u8]) -> StorageResult<Option<serde_json::Value>> {
        let row = RowState::<V::State>::decode(stored)?;
        Ok((!row.stored.is_empty()).then(|| V::value(&row.state)))
    }
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

/// Refolds the row of `key` (an ordered view's) from its last checkpoint
/// before `from`, over its events in id order: those in its index and
/// `joining` (ids now of this key, sorted, which join the index), each read
/// from the log in its stored form. An indexed event whose stored form is no
/// longer of this key leaves the index; a key left with no events loses
/// its row. Checkpoints after `from` are made again. Pushes the writes to
/// `changes`; returns why `watch` did not fold, if it did not. The index
/// and checkpoints are read in pages of [`VIEW_REFOLD_PAGE_ENTRIES`], never
/// whole.
fn refold_key<V: View>(
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
fn refold_by_scan<V: View>(
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
fn key_of<V: View>(bytes: &[u8]) -> Option<Vec<u8>> {
    let decoded = serde_json::from_slice::<V::Event>(bytes).ok()?;
    let key = V::key(&decoded).to_bytes();
    (key.len() <= VIEW_KEY_BYTES_MAX).then_some(key)
}

/// The stored event `id`, decoded, if its stored form is of row `key`.
fn stored_of_key<V: View>(
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

fn load_row<S: serde::Serialize + serde::de::DeserializeOwned + Default>(
    view: &dyn ViewStore,
    key: &[u8],
) -> StorageResult<RowState<S>> {
    match view.get(&row_key(key))? {
        Some(bytes) => RowState::decode(&bytes),
        None => Ok(RowState::empty()),
    }
}

/// The store key of a row.
pub(crate) fn row_key(key: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(1 + key.len());
    bytes.push(ROW_PREFIX);
    bytes.extend_from_slice(key);
    bytes
}

/// Where rows start and end in the store.
pub(crate) fn row_bounds() -> (Vec<u8>, Vec<u8>) {
    (vec![ROW_PREFIX], vec![ROW_PREFIX + 1])
}

/// The key of the row at `stored` (a store key from [`row_key`]).
pub(crate) fn row_of(kind: KeyKind, stored: &[u8]) -> StorageResult<Key> {
    stored
        .get(1..)
        .and_then(|bytes| Key::from_bytes(kind, bytes))
        .ok_or_else(|| corrupt("view row key", "it does not decode as the view's key type"))
}

/// `tag`, the key's length and the key: the start of a key's entries.
fn prefix(tag: u8, key: &[u8]) -> Vec<u8> {
    // Longer keys are skipped before they get here.
    let length = u16::try_from(key.len()).expect("a view key is at most VIEW_KEY_BYTES_MAX bytes");
    let mut bytes = Vec::with_capacity(3 + key.len() + 16);
    bytes.push(tag);
    bytes.extend_from_slice(&length.to_be_bytes());
    bytes.extend_from_slice(key);
    bytes
}

/// Just past every entry that starts with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    end.extend_from_slice(&[0xFF; 17]);
    end
}

fn index_key(key: &[u8], id: EventId) -> Vec<u8> {
    let mut bytes = prefix(INDEX_PREFIX, key);
    bytes.extend_from_slice(&id.to_bytes());
    bytes
}

fn checkpoint_key(key: &[u8], id: EventId) -> Vec<u8> {
    let mut bytes = prefix(CHECKPOINT_PREFIX, key);
    bytes.extend_from_slice(&id.to_bytes());
    bytes
}

/// The event id that ends an index or checkpoint key.
fn id_suffix(stored: &[u8]) -> StorageResult<EventId> {
    let start = stored
        .len()
        .checked_sub(16)
        .ok_or_else(|| corrupt("view entry", "it is shorter than an id"))?;
    let bytes: [u8; 16] = stored[start..]
        .try_into()
        .map_err(|_| corrupt("view entry", "it is shorter than an id"))?;
    Ok(EventId::from_bytes(bytes))
}

fn corrupt(what: &'static str, detail: &str) -> StorageError {
    StorageError::Corrupt {
        what,
        detail: detail.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryStorage;
    use crate::storage::{DatabaseRecord, Storage};
    use crate::views::Key;

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
