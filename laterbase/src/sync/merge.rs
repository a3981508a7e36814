//! What a node keeps when two things meet: two forms of one id (the merge
//! rule, which every node applies alike, so that all converge on the same
//! form), and two cursors into one log.

use bytes::Bytes;

use super::messages::Cursor;
use crate::storage::StoredEvent;

/// Settles two forms of one id: the kept form, and the value that lost a
/// conflict, if the values differ. The same value keeps the earlier
/// `recorded_at`; of two values, the smaller bytes win, with their own
/// `recorded_at`. The result does not depend on which form came first.
pub fn settle(present: &StoredEvent, incoming: StoredEvent) -> (StoredEvent, Option<Bytes>) {
    if present.data == incoming.data {
        let mut kept = present.clone();
        kept.recorded_at = kept.recorded_at.min(incoming.recorded_at);
        return (kept, None);
    }
    if incoming.data < present.data {
        let lost = present.data.clone();
        (incoming, Some(lost))
    } else {
        (present.clone(), Some(incoming.data))
    }
}

/// The cursor to keep: the new one, except that within one incarnation and
/// epoch a cursor never moves back (two rounds with one peer may finish out
/// of order; each cursor is sound, the later-finishing one may be older).
pub fn furthest(stored: Option<Cursor>, new: Option<Cursor>) -> Option<Cursor> {
    match (stored, new) {
        (Some(stored), Some(new))
            if stored.incarnation == new.incarnation && stored.epoch == new.epoch =>
        {
            Some(Cursor {
                lc: stored.lc.max(new.lc),
                us: stored.us.max(new.us),
                ..new
            })
        }
        (stored, new) => new.or(stored),
    }
}
