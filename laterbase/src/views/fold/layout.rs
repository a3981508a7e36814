//! Where everything is in a view's store: the keys of its position, rows,
//! index and checkpoints under their one-byte prefixes, as the module above
//! lays them out. An index or checkpoint key holds its view key's length
//! (u16 BE) before it, so that one key's entries never run into those of a
//! longer key that starts with it. Also the error of stored bytes of the
//! view that do not decode.

use crate::codec::{ReadError, Reader};
use crate::error::StorageError;
use crate::event::EventId;
use crate::storage::StorageResult;
use crate::views::view::{Key, KeyKind};

/// The key of the view's position.
pub(super) const POSITION_KEY: &[u8] = b"p";
const ROW_PREFIX: u8 = b'r';
pub(super) const INDEX_PREFIX: u8 = b'i';
pub(super) const CHECKPOINT_PREFIX: u8 = b'c';

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
    let mut reader = Reader::new(stored);
    reader
        .skip(1, "the row prefix")
        .ok()
        .and_then(|()| Key::from_bytes(kind, reader.rest()))
        .ok_or_else(|| corrupt("view row key", "it does not decode as the view's key type"))
}

/// `tag`, the key's length and the key: the start of a key's entries.
pub(super) fn prefix(tag: u8, key: &[u8]) -> Vec<u8> {
    // Longer keys are skipped before they get here.
    #[expect(
        clippy::expect_used,
        reason = "keys longer than VIEW_KEY_BYTES_MAX, which fits in a u16, are skipped before here"
    )]
    let length = u16::try_from(key.len()).expect("a view key is at most VIEW_KEY_BYTES_MAX bytes");
    let mut bytes = Vec::with_capacity(3 + key.len() + 16);
    bytes.push(tag);
    bytes.extend_from_slice(&length.to_be_bytes());
    bytes.extend_from_slice(key);
    bytes
}

/// Just past every entry that starts with `prefix`.
pub(super) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    end.extend_from_slice(&[0xFF; 17]);
    end
}

/// The key of `id` in the index of `key`'s events.
pub(super) fn index_key(key: &[u8], id: EventId) -> Vec<u8> {
    let mut bytes = prefix(INDEX_PREFIX, key);
    bytes.extend_from_slice(&id.to_bytes());
    bytes
}

/// The key of `key`'s checkpoint after event `id`.
pub(super) fn checkpoint_key(key: &[u8], id: EventId) -> Vec<u8> {
    let mut bytes = prefix(CHECKPOINT_PREFIX, key);
    bytes.extend_from_slice(&id.to_bytes());
    bytes
}

/// The event id that ends an index or checkpoint key.
pub(super) fn id_suffix(stored: &[u8]) -> StorageResult<EventId> {
    let short = |_: ReadError| corrupt("view entry", "it is shorter than an id");
    let mut reader = Reader::new(stored);
    reader
        .skip(stored.len().saturating_sub(16), "the entry's key")
        .map_err(short)?;
    Ok(EventId::from_bytes(
        reader.array("the entry's id").map_err(short)?,
    ))
}

/// Stored bytes of the view that do not decode as `what`, and why.
pub(super) fn corrupt(what: &'static str, detail: &str) -> StorageError {
    StorageError::Corrupt {
        what,
        detail: detail.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_give_back_their_id_and_rows_their_key() {
        let id = EventId::from_parts(1, 2);
        for key in [&b""[..], b"k", &[0xff; 40]] {
            assert_eq!(id_suffix(&index_key(key, id)).expect("index"), id);
            assert_eq!(id_suffix(&checkpoint_key(key, id)).expect("checkpoint"), id);
        }
        let key = Key::Str("shipment".to_owned());
        let stored = row_key(&key.to_bytes());
        assert_eq!(row_of(KeyKind::Str, &stored).expect("row"), key);
    }

    #[test]
    fn short_entries_and_rows_are_corrupt() {
        for length in 0..16 {
            let error = id_suffix(&vec![0; length]).expect_err("short");
            assert_eq!(
                error.to_string(),
                "corrupt view entry: it is shorter than an id"
            );
        }
        for stored in [&b""[..], b"r", b"r\x00\x01"] {
            let error = row_of(KeyKind::UInt, stored).expect_err("not a u64 key");
            assert!(
                error.to_string().starts_with("corrupt view row key: "),
                "{error}"
            );
        }
    }
}
