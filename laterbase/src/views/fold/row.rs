//! A row as stored: the greatest id folded into it, the events since its
//! last checkpoint and its state as JSON (`last id u128 BE | since u32 BE |
//! state`), with the fold of one event into it and the state's stored form.

use super::layout::{corrupt, row_key};
use crate::codec::{ReadError, Reader};
use crate::event::EventId;
use crate::storage::{StorageResult, ViewStore};
use crate::views::finite::{self, NotFinite};
use crate::views::view::{FoldError, View};

/// The format of the rows' state: 1 kept `#[sum]` as a running total in
/// the field's own type; 2 keeps exact totals.
pub(super) const VIEW_STATE_FORMAT: u64 = 2;

/// A row as stored.
pub(super) struct RowState<S> {
    /// The greatest id folded into it.
    pub(super) last_id: Option<EventId>,
    /// Events folded since its last checkpoint (ordered views).
    pub(super) since_checkpoint: u32,
    pub(super) state: S,
    /// `state` as stored (JSON), kept from the last event that folded, so
    /// that a failed fold can go back to it; empty for the default state.
    pub(super) stored: Vec<u8>,
    /// Whether `state` moved on from `stored` (an order-insensitive view's
    /// row, encoded once per batch).
    pub(super) dirty: bool,
}

impl<S: serde::Serialize + serde::de::DeserializeOwned + Default> RowState<S> {
    /// A row no event has folded into.
    pub(super) fn empty() -> RowState<S> {
        RowState {
            last_id: None,
            since_checkpoint: 0,
            state: S::default(),
            stored: Vec::new(),
            dirty: false,
        }
    }

    /// The row as stored.
    pub(super) fn encode(&self) -> Vec<u8> {
        // An empty state: an ordered view's row whose every event failed to
        // fold; it keeps its ids for refolds, and is not shown.
        let mut bytes = Vec::with_capacity(20 + self.stored.len());
        bytes.extend_from_slice(&self.last_id.map_or(0, EventId::to_u128).to_be_bytes());
        bytes.extend_from_slice(&self.since_checkpoint.to_be_bytes());
        bytes.extend_from_slice(&self.stored);
        bytes
    }

    /// The row stored as `bytes`.
    pub(super) fn decode(bytes: &[u8]) -> StorageResult<RowState<S>> {
        let short = |_: ReadError| corrupt("view row", "it is shorter than its header");
        let mut reader = Reader::new(bytes);
        let id = reader.u128("the last id").map_err(short)?;
        let since_checkpoint = reader
            .u32("the events since the checkpoint")
            .map_err(short)?;
        let state = reader.rest();
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
pub(super) fn encode_state<S: serde::Serialize>(state: &S) -> Result<Vec<u8>, FoldError> {
    finite::check(state).map_err(FoldError::State)?;
    serde_json::to_vec(state)
        .map_err(|error| FoldError::State(NotFinite::Serialize(error.to_string())))
}

/// The state stored as `bytes` (the default state if empty).
pub(super) fn decode_state<S: serde::de::DeserializeOwned + Default>(
    bytes: &[u8],
) -> StorageResult<S> {
    if bytes.is_empty() {
        return Ok(S::default());
    }
    serde_json::from_slice(bytes)
        .map_err(|error| corrupt("view state", &format!("it does not decode: {error}")))
}

/// The stored row of `key`, or an empty one.
pub(super) fn load_row<S: serde::Serialize + serde::de::DeserializeOwned + Default>(
    view: &dyn ViewStore,
    key: &[u8],
) -> StorageResult<RowState<S>> {
    match view.get(&row_key(key))? {
        Some(bytes) => RowState::decode(&bytes),
        None => Ok(RowState::empty()),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_row_round_trips_and_one_cut_inside_its_header_is_corrupt() {
        let row = RowState::<u64> {
            last_id: Some(EventId::from_parts(1, 2)),
            since_checkpoint: 3,
            state: 4,
            stored: b"4".to_vec(),
            dirty: false,
        };
        let bytes = row.encode();
        let decoded = RowState::<u64>::decode(&bytes).expect("decodes");
        assert_eq!(
            (decoded.last_id, decoded.since_checkpoint, decoded.state),
            (row.last_id, 3, 4)
        );
        assert_eq!(decoded.stored, row.stored);
        for cut in 0..20 {
            let error = RowState::<u64>::decode(&bytes[..cut]).err();
            assert_eq!(
                error.map(|error| error.to_string()).as_deref(),
                Some("corrupt view row: it is shorter than its header"),
                "cut at {cut}"
            );
        }
        let empty = RowState::<u64>::decode(&bytes[..20]).expect("no state");
        assert_eq!(
            (empty.state, empty.stored.len()),
            (0, 0),
            "the default state"
        );
    }

    proptest! {
        /// No bytes make a row's decoder panic.
        #[test]
        fn no_bytes_make_a_row_decoder_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let _ = RowState::<u64>::decode(&bytes);
        }
    }
}
