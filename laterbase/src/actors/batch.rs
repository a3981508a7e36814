//! What a write brings and what a merge answers: the checks of a batch
//! before anything of it is written (its size, ids from the future, which
//! events are new), and the receipt of a merge.

use std::collections::HashMap;

use bytes::Bytes;

use crate::clock::Horizon;
use crate::error::{Error, Result};
use crate::event::{EventId, NewEvent};
use crate::limits::{BATCH_BYTES_MAX, Limits};

/// What a merge of another node's events did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MergeReceipt {
    /// Events stored here for the first time (each took a new `lc`).
    pub stored: u64,
    /// Stored events rewritten: an earlier `recorded_at`, or a conflict's
    /// smaller value.
    pub updated: u64,
    /// Values that lost a conflict and were listed.
    pub conflicts: u64,
    /// Events (and losing values) refused and skipped: no read could serve
    /// them (see [`Event::unservable`](crate::Event::unservable)).
    pub refused: u64,
    /// The database's logical clock right after the merge.
    pub lc: u64,
    /// The run of logical clocks `(after, to]` that the merge's new events
    /// took, when each was stored exactly as given (no other write of the
    /// commit changed it): the node they came from holds that run.
    pub held: Option<(u64, u64)>,
}

/// Refuses a batch over the limits of events or bytes.
pub(crate) fn check_batch_size(events: &[NewEvent], limits: &Limits) -> Result<()> {
    if events.len() > limits.batch_events_max {
        return Err(Error::BatchTooLarge {
            what: "events",
            actual: events.len(),
            limit: limits.batch_events_max,
        });
    }
    let bytes: usize = events.iter().map(|event| event.data.len()).sum();
    if bytes > BATCH_BYTES_MAX {
        return Err(Error::BatchTooLarge {
            what: "bytes",
            actual: bytes,
            limit: BATCH_BYTES_MAX,
        });
    }
    Ok(())
}

pub(crate) fn check_future_ids(horizon: Horizon, events: &[NewEvent]) -> Result<()> {
    for (index, event) in events.iter().enumerate() {
        if let Some(id) = event.id {
            horizon.check(index, id)?;
        }
    }
    Ok(())
}

/// Which events of the batch are new; an error at the first conflict.
pub(crate) fn select_new(
    events: &[NewEvent],
    known: &HashMap<EventId, Bytes>,
) -> Result<Vec<bool>> {
    // Writer ids in increasing order (the common case) cannot repeat within
    // the batch, so only a batch out of order needs to remember earlier ids.
    let mut previous = None;
    let ordered = events.iter().filter_map(|event| event.id).all(|id| {
        let increasing = previous.is_none_or(|previous| id > previous);
        previous = Some(id);
        increasing
    });
    let mut earlier: HashMap<EventId, &Bytes> = HashMap::new();
    let mut new = Vec::with_capacity(events.len());
    for (index, event) in events.iter().enumerate() {
        let Some(id) = event.id else {
            new.push(true);
            continue;
        };
        let stored = known.get(&id).or_else(|| earlier.get(&id).copied());
        match stored {
            Some(data) if *data == event.data => new.push(false),
            Some(_) => return Err(Error::Conflict { index, id }),
            None => {
                if !ordered {
                    earlier.insert(id, &event.data);
                }
                new.push(true);
            }
        }
    }
    Ok(new)
}
