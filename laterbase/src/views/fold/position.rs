//! How far a view has folded, stored with its rows under
//! [`POSITION_KEY`]: five u64 BE, `lc | us | fingerprint | folded |
//! skipped`, read through the crate's checked reader.

use super::layout::{POSITION_KEY, corrupt};
use crate::codec::{ReadError, Reader};
use crate::storage::{StorageResult, ViewStore};

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
    /// The position as stored.
    pub(super) fn encode(&self) -> Vec<u8> {
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
        let corrupted = |_: ReadError| corrupt("view position", "it is not 40 bytes");
        let mut reader = Reader::new(bytes);
        let position = Position {
            lc: reader.u64("lc").map_err(corrupted)?,
            us: reader.u64("the update number").map_err(corrupted)?,
            fingerprint: reader.u64("the fingerprint").map_err(corrupted)?,
            folded: reader.u64("the count folded").map_err(corrupted)?,
            skipped: reader.u64("the count skipped").map_err(corrupted)?,
        };
        reader.end().map_err(corrupted)?;
        Ok(position)
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_position_round_trips_and_one_of_another_length_is_corrupt() {
        let position = Position {
            lc: 1,
            us: 2,
            fingerprint: u64::MAX,
            folded: 4,
            skipped: 5,
        };
        let bytes = position.encode();
        assert_eq!(bytes.len(), 40);
        assert_eq!(Position::decode(&bytes).expect("decodes"), position);
        let mut padded = bytes.clone();
        padded.push(0);
        for wrong in (0..bytes.len())
            .map(|cut| &bytes[..cut])
            .chain([&padded[..]])
        {
            let error = Position::decode(wrong).expect_err("corrupt");
            assert_eq!(
                error.to_string(),
                "corrupt view position: it is not 40 bytes",
                "{} bytes",
                wrong.len()
            );
        }
    }

    proptest! {
        /// Any bytes decode as a position exactly when they are 40, and
        /// none make the decoder panic.
        #[test]
        fn a_position_decodes_from_any_40_bytes_and_no_others(
            bytes in proptest::collection::vec(any::<u8>(), 0..90),
        ) {
            prop_assert_eq!(Position::decode(&bytes).is_ok(), bytes.len() == 40);
        }
    }
}
