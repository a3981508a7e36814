//! What a node keeps when two things meet: two forms of one id (the merge
//! rule, which every node applies alike, so that all converge on the same
//! form), two cursors into one log, and a peer's list of conflicts and its
//! own events.

use bytes::Bytes;

use super::messages::Cursor;
use crate::event::{Event, EventId};
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

/// One conflict a peer of the first release lists (it exchanges no lists
/// within a round, and answers its whole list at once): the value it keeps
/// for `id` and one that lost to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedConflict {
    /// The event.
    pub id: EventId,
    /// The value the peer keeps.
    pub kept: Bytes,
    /// A value that lost to it.
    pub lost: Bytes,
}

/// The losing values of `listed` to list here, as events to merge. Only
/// under the same kept value is the peer's loser a loser here: `held`
/// gives this node's form of an id, and an id it holds another value of
/// (or none) waits for the events' own sync. A lost value is larger than
/// the kept one under the merge rule; a list that says otherwise is not
/// believed.
pub fn listed_losers<'a>(
    listed: &[ListedConflict],
    held: impl Fn(EventId) -> Option<&'a Event>,
) -> Vec<Event> {
    listed
        .iter()
        .filter_map(|conflict| {
            let mine = held(conflict.id)?;
            (mine.data == conflict.kept && conflict.lost > conflict.kept).then(|| Event {
                id: conflict.id,
                lc: 0,
                recorded_at: mine.recorded_at,
                data: conflict.lost.clone(),
            })
        })
        .collect()
}
