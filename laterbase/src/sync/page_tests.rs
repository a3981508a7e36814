//! The bounds of a page in bytes: at most its budget, or one event alone,
//! however the page is made up (around held runs, with rewritten events);
//! the events a peer cannot take are left out of a push; the events of a
//! fill and a deliver stay within a page's bounds.

use bytes::Bytes;

use super::protocol::{
    self, Cursor, Digest, Entries, EpochStart, Held, Log, Loser, PageBounds, Recall,
};
use crate::event::{Event, EventId, Timestamp};
use crate::storage::StorageResult;

/// A log of events of given sizes, some of them rewritten since.
struct SizedLog {
    events: Vec<Event>,
    /// Update numbers, in order: the lc of each rewritten event.
    updates: Vec<u64>,
}

impl SizedLog {
    fn new(sizes: &[usize], rewritten: &[u64]) -> SizedLog {
        let events = sizes
            .iter()
            .zip(1..)
            .map(|(size, lc)| Event {
                id: EventId::from_parts(lc, 0),
                data: Bytes::from(vec![b'x'; *size]),
                recorded_at: Timestamp(lc),
                lc,
            })
            .collect();
        SizedLog {
            events,
            updates: rewritten.to_vec(),
        }
    }
}

/// The events from the start of `events` that fit `bytes`, at least one:
/// what a store's read within bounds returns.
fn within<T: Clone>(items: &[T], bounds: PageBounds, size: impl Fn(&T) -> usize) -> Vec<T> {
    let mut total = 0;
    let keep = items
        .iter()
        .take(bounds.events)
        .take_while(|item| {
            total += size(item);
            total <= bounds.bytes
        })
        .count()
        .max(1)
        .min(items.len());
    items[..keep].to_vec()
}

impl Log for SizedLog {
    fn incarnation(&self) -> u128 {
        1
    }

    fn history(&self) -> Vec<EpochStart> {
        vec![EpochStart {
            epoch: 2,
            start_lc: 0,
            start_us: 0,
        }]
    }

    fn head_lc(&self) -> u64 {
        self.events.len() as u64
    }

    fn head_us(&self) -> u64 {
        self.updates.len() as u64
    }

    fn events_after(&self, after_lc: u64, bounds: PageBounds) -> StorageResult<(Vec<Event>, bool)> {
        let rest = &self.events[after_lc as usize..];
        let events = within(rest, bounds, |event| event.data.len());
        let more = events.len() < rest.len();
        Ok((events, more))
    }

    fn updates_after(
        &self,
        after_us: u64,
        bounds: PageBounds,
    ) -> StorageResult<(Vec<(u64, Event)>, bool)> {
        let rest: Vec<(u64, Event)> = (after_us + 1..)
            .zip(&self.updates[after_us as usize..])
            .map(|(us, lc)| (us, self.events[*lc as usize - 1].clone()))
            .collect();
        let updates = within(&rest, bounds, |(_, event)| event.data.len());
        let more = updates.len() < rest.len();
        Ok((updates, more))
    }

    fn digests(&self, ids: &[EventId]) -> StorageResult<Vec<Option<Digest>>> {
        Ok(self
            .events(ids)?
            .into_iter()
            .map(|event| event.map(|event| protocol::digest(&event.data, event.recorded_at)))
            .collect())
    }

    fn events(&self, ids: &[EventId]) -> StorageResult<Vec<Option<Event>>> {
        Ok(ids
            .iter()
            .map(|id| self.events.iter().find(|event| event.id == *id).cloned())
            .collect())
    }

    fn losers_listed(&self) -> u64 {
        0
    }

    fn losers_after(
        &self,
        _after: Option<EventId>,
        _bounds: PageBounds,
    ) -> StorageResult<(Vec<Loser>, bool)> {
        Ok((Vec::new(), false))
    }
}

const BOUNDS: PageBounds = PageBounds {
    events: 100,
    bytes: 10,
};

fn start() -> Cursor {
    Cursor {
        incarnation: 1,
        epoch: 2,
        lc: 0,
        us: 0,
    }
}

/// The data bytes of a page's entries, read back from `log`.
fn page_bytes(log: &SizedLog, entries: &Entries) -> Vec<usize> {
    let ids: Vec<EventId> = match entries {
        Entries::Ids(ids) => ids.iter().map(|entry| entry.id).collect(),
        Entries::Events(events) => events.iter().map(|event| event.id).collect(),
    };
    log.events(&ids)
        .expect("events")
        .into_iter()
        .map(|event| event.expect("held").data.len())
        .collect()
}

#[test]
fn a_page_past_its_budget_holds_one_event_alone() {
    // 7 bytes, a held run, then 16 bytes: the run's far side does not join
    // the page past its budget.
    let log = SizedLog::new(&[7, 1, 16, 1], &[]);
    let run = Held {
        after_lc: 1,
        to_lc: 2,
        incarnation: 9,
        epoch: 9,
    };
    for fast in [false, true] {
        let (page, left_out) =
            protocol::page_after(&log, start(), BOUNDS, fast, &[run], usize::MAX).expect("page");
        assert_eq!(page_bytes(&log, &page.entries), vec![7], "fast: {fast}");
        assert!(page.more && left_out.is_empty());
        assert_eq!(page.to.lc, 2, "up to the run's end");
        let (next, _) =
            protocol::page_after(&log, page.to, BOUNDS, fast, &[], usize::MAX).expect("page");
        assert_eq!(page_bytes(&log, &next.entries), vec![16], "alone");
        assert_eq!(next.to.lc, 3);
    }
    // A rewritten event past the budget waits for a page of its own too.
    let log = SizedLog::new(&[7, 16], &[2]);
    let from = Cursor { lc: 1, ..start() };
    let (page, _) =
        protocol::page_after(&log, start(), BOUNDS, false, &[], usize::MAX).expect("page");
    assert_eq!(page_bytes(&log, &page.entries), vec![7]);
    assert_eq!((page.to.lc, page.to.us, page.more), (1, 0, true));
    let (next, _) = protocol::page_after(&log, from, BOUNDS, false, &[], usize::MAX).expect("page");
    assert_eq!(page_bytes(&log, &next.entries), vec![16], "new, alone");
    assert_eq!((next.to.lc, next.to.us, next.more), (2, 0, true));
    let (last, _) =
        protocol::page_after(&log, next.to, BOUNDS, false, &[], usize::MAX).expect("page");
    assert_eq!(
        page_bytes(&log, &last.entries),
        vec![16],
        "rewritten, alone"
    );
    assert_eq!((last.to.lc, last.to.us, last.more), (2, 1, false));
}

#[test]
fn a_push_leaves_out_what_the_peer_cannot_take_and_covers_it() {
    let log = SizedLog::new(&[3, 16, 3], &[]);
    let recall = Recall {
        held: &[],
        losers: None,
        push: true,
        push_event_bytes: 15,
    };
    let mut from = start();
    let mut pushed = Vec::new();
    let mut left_out = Vec::new();
    while from.lc < log.head_lc() {
        let (offer, initiator) =
            protocol::offer(&log, None, Some(from), false, recall, BOUNDS).expect("offer");
        pushed.extend(page_bytes(&log, &offer.push.entries));
        left_out.extend_from_slice(initiator.left_out());
        from = offer.push.to;
    }
    assert_eq!(pushed, vec![3, 3], "the events around it go");
    assert_eq!(left_out.len(), 1);
    assert_eq!(
        (left_out[0].id, left_out[0].bytes),
        (EventId::from_parts(2, 0), 16)
    );
}
