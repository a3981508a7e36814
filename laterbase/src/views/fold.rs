//! Folding events into a view's store.
//!
//! A view's store holds, under one-byte prefixes:
//!
//! ```text
//! p                      position: lc, data rewrites, fingerprint, counters
//! r key                  a row: the id of its latest event, events since its
//!                        last checkpoint, its state (JSON)
//! i len key id           ordered views: the ids of each key's events
//! c len key id           ordered views: the key's state after event `id`
//! ```
//!
//! An event that does not decode, or whose key is longer than
//! [`VIEW_KEY_BYTES_MAX`], is skipped and counted.
//!
//! Events come in `lc` order, which is arrival order. Order-insensitive
//! views fold them as they come. An ordered view (a custom fold) folds an
//! event in place when it is the newest of its key; an older one (backdated)
//! refolds its key from the last checkpoint before it, over the key's newer
//! events: a cost of at most [`VIEW_CHECKPOINT_EVENTS`] plus those events,
//! never the whole history. Each batch of events is one atomic write with
//! the position, so a crash leaves rows and position agreeing.

use std::collections::HashMap;
use std::marker::PhantomData;

use super::{Key, KeyKind, View};
use crate::error::StorageError;
use crate::event::{Event, EventId};
use crate::limits::{VIEW_CHECKPOINT_EVENTS, VIEW_KEY_BYTES_MAX};
use crate::storage::{DatabaseStore, StorageResult, ViewStore};

const POSITION_KEY: &[u8] = b"p";
const ROW_PREFIX: u8 = b'r';
const INDEX_PREFIX: u8 = b'i';
const CHECKPOINT_PREFIX: u8 = b'c';

/// How far a view has folded, stored with its rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Position {
    /// The database's logical clock folded up to.
    pub(crate) lc: u64,
    /// The database's count of data rewrites when the fold began: a later
    /// rewrite of a stored event's bytes rebuilds the view.
    pub(crate) rewrites: u64,
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
            self.rewrites,
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
        let [lc, rewrites, fingerprint, folded, skipped] = fields[..] else {
            return Err(corrupt("view position", "it is not 40 bytes"));
        };
        Ok(Position {
            lc,
            rewrites,
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

    /// Starts the view over: no rows, nothing folded.
    pub(crate) fn reset(
        view: &dyn ViewStore,
        rewrites: u64,
        fingerprint: u64,
    ) -> StorageResult<Position> {
        view.clear()?;
        let position = Position {
            rewrites,
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
    /// A row's value from its stored bytes.
    fn value(&self, stored: &[u8]) -> StorageResult<serde_json::Value>;
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
}

impl<S: serde::Serialize + serde::de::DeserializeOwned + Default> RowState<S> {
    fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(64);
        bytes.extend_from_slice(&self.last_id.map_or(0, EventId::to_u128).to_be_bytes());
        bytes.extend_from_slice(&self.since_checkpoint.to_be_bytes());
        // A state of numbers, strings and options always serialises.
        serde_json::to_writer(&mut bytes, &self.state).expect("a view state serialises to JSON");
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
        let state = serde_json::from_slice(state)
            .map_err(|error| corrupt("view row", &format!("its state does not decode: {error}")))?;
        Ok(RowState {
            last_id: (id != 0).then(|| EventId::from_u128(id)),
            since_checkpoint,
            state,
        })
    }
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
            self.changes.push((row_key(&key), Some(row.encode())));
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
        V::FINGERPRINT
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
                refold::<V>(view, log, &key, event, decoded, position)?;
                continue;
            }
            V::fold(&mut row.state, event.id, &decoded);
            row.last_id = Some(row.last_id.map_or(event.id, |last| last.max(event.id)));
            if V::ORDERED {
                row.since_checkpoint += 1;
                let checkpoint = (row.since_checkpoint >= VIEW_CHECKPOINT_EVENTS).then(|| {
                    row.since_checkpoint = 0;
                    serde_json::to_vec(&row.state).expect("a view state serialises")
                });
                pending
                    .changes
                    .push((index_key(&key, event.id), Some(Vec::new())));
                if let Some(state) = checkpoint {
                    pending
                        .changes
                        .push((checkpoint_key(&key, event.id), Some(state)));
                }
            }
            position.lc = event.lc;
            position.folded += 1;
        }
        pending.write(view, position)
    }

    fn value(&self, stored: &[u8]) -> StorageResult<serde_json::Value> {
        let row = RowState::<V::State>::decode(stored)?;
        Ok(V::value(&row.state))
    }
}

/// Folds a backdated `event` into its key: from the key's last checkpoint
/// before it, over the key's events after that checkpoint in id order,
/// making new checkpoints on the way; one atomic write with the position.
fn refold<V: View>(
    view: &dyn ViewStore,
    log: &dyn DatabaseStore,
    key: &[u8],
    event: &Event,
    decoded: V::Event,
    position: &mut Position,
) -> StorageResult<()> {
    let row = load_row::<V::State>(view, key)?;
    let checkpoints = prefix(CHECKPOINT_PREFIX, key);
    let checkpoints_end = prefix_end(&checkpoints);
    let before = checkpoint_key(key, event.id);
    let mut changes: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
    let (mut state, from) = match view.last_in(&checkpoints, &before)? {
        Some((stored_key, state)) => {
            let state: V::State = serde_json::from_slice(&state)
                .map_err(|error| corrupt("view checkpoint", &error.to_string()))?;
            (state, Some(id_suffix(&stored_key)?))
        }
        None => (V::State::default(), None),
    };
    // Checkpoints after the event no longer hold: they are made again below.
    for (stale, _) in view.range(&before, &checkpoints_end, usize::MAX)? {
        changes.push((stale.to_vec(), None));
    }
    let index = prefix(INDEX_PREFIX, key);
    let start = match from {
        Some(id) => index_key(key, EventId::from_u128(id.to_u128() + 1)),
        None => index.clone(),
    };
    let mut ids: Vec<EventId> = view
        .range(&start, &prefix_end(&index), usize::MAX)?
        .iter()
        .map(|(stored_key, _)| id_suffix(stored_key))
        .collect::<StorageResult<_>>()?;
    let at = ids.partition_point(|id| *id < event.id);
    ids.insert(at, event.id);
    let mut decoded = Some(decoded);
    let mut since_checkpoint = 0_u32;
    for id in &ids {
        let one = if *id == event.id {
            decoded.take()
        } else {
            stored_event::<V>(log, *id)?
        };
        let Some(one) = one else { continue };
        V::fold(&mut state, *id, &one);
        since_checkpoint += 1;
        if since_checkpoint >= VIEW_CHECKPOINT_EVENTS {
            since_checkpoint = 0;
            let bytes = serde_json::to_vec(&state).expect("a view state serialises");
            changes.push((checkpoint_key(key, *id), Some(bytes)));
        }
    }
    let row = RowState {
        last_id: row.last_id.max(Some(event.id)),
        since_checkpoint,
        state,
    };
    changes.push((index_key(key, event.id), Some(Vec::new())));
    changes.push((row_key(key), Some(row.encode())));
    position.lc = event.lc;
    position.folded += 1;
    changes.push((POSITION_KEY.to_vec(), Some(position.encode())));
    view.write(&changes)
}

/// The stored event `id`, decoded; `None` if it is gone or no longer
/// decodes (neither happens to an indexed event).
fn stored_event<V: View>(log: &dyn DatabaseStore, id: EventId) -> StorageResult<Option<V::Event>> {
    let Some(lc) = log.lc_of(id)? else {
        return Ok(None);
    };
    Ok(log
        .event_at(lc)?
        .and_then(|event| serde_json::from_slice(&event.data).ok()))
}

fn load_row<S: serde::Serialize + serde::de::DeserializeOwned + Default>(
    view: &dyn ViewStore,
    key: &[u8],
) -> StorageResult<RowState<S>> {
    match view.get(&row_key(key))? {
        Some(bytes) => RowState::decode(&bytes),
        None => Ok(RowState {
            last_id: None,
            since_checkpoint: 0,
            state: S::default(),
        }),
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
