//! What a page carries: at most its byte budget or one event alone,
//! however it is made up (around held runs, with rewritten events); the
//! model's log read exactly as the storage reads one; the runs a peer
//! holds named rather than offered back to it.

use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};

use super::network::{Limits, until_quiet};
use super::node::{ModelNode, VALUES_PER_KEY};
use crate::event::{EventId, Timestamp};
use crate::storage::memory::MemoryStorage;
use crate::storage::{DatabaseRecord, DatabaseStore, Storage, StoredEvent, WriteBatch};
use crate::sync::protocol::{self, Cursor, Entries, Held, Log, PageBounds};
use crate::sync::state::DatabaseLog;

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
fn page_bytes(log: &ModelNode, entries: &Entries) -> Vec<usize> {
    let ids: Vec<EventId> = match entries {
        Entries::Ids(ids) => ids.iter().map(|entry| entry.id).collect(),
        Entries::Events(events) => events.iter().map(|event| event.id).collect(),
    };
    ids.iter()
        .map(|id| log.get(*id).expect("held").data.len())
        .collect()
}

#[test]
fn a_page_past_its_budget_holds_one_event_alone() {
    // 7 bytes, a held run, then 16 bytes: the run's far side does not join
    // the page past its budget.
    let log = ModelNode::of_sizes(&[7, 1, 16, 1], &[]);
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
    let log = ModelNode::of_sizes(&[7, 16], &[2]);
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
fn new_and_rewritten_events_share_one_budget_and_the_pages_chain() {
    // Every page from every position, in both shapes: within its bytes or
    // one entry alone, never empty while the log goes on, more exactly
    // while it does, and each page starts where the last ended until the
    // log's head.
    let log = ModelNode::of_sizes(&[4, 9, 1, 30, 2, 2, 6], &[2, 4, 7, 2]);
    for bytes in [1, 5, 10, 40, usize::MAX] {
        for events in [1, 2, 3, 100] {
            let bounds = PageBounds { events, bytes };
            for fast in [false, true] {
                let mut from = start();
                let mut pages = 0;
                loop {
                    let (page, _) = protocol::page_after(&log, from, bounds, fast, &[], usize::MAX)
                        .expect("page");
                    super::network::assert_page_within(&log, &page, bounds);
                    assert_eq!(page.from, from, "pages chain");
                    from = page.to;
                    pages += 1;
                    if !page.more {
                        break;
                    }
                    assert!(pages < 100, "the pages reach the head");
                }
                assert_eq!((from.lc, from.us), (7, 4), "{bounds:?}, fast: {fast}");
            }
        }
    }
}

/// A store holding what `node` holds: its events in their current form,
/// its update numbers in order and its losers, each id's in order.
fn stored_like(node: &ModelNode) -> DatabaseLog {
    let storage = MemoryStorage::new();
    let record = DatabaseRecord {
        name: "model".to_owned(),
        incarnation: node.incarnation,
        created_at: Timestamp(0),
    };
    let store: Arc<dyn DatabaseStore> =
        Arc::from(storage.create_database(&record).expect("create"));
    let stored = |lc: usize| {
        let event = &node.log[lc];
        StoredEvent {
            id: event.id,
            recorded_at: event.recorded_at,
            data: event.data.clone(),
        }
    };
    let events = (0..node.log.len()).map(stored).collect();
    let conflicts = node
        .losers
        .iter()
        .flat_map(|(id, listed)| listed.iter().map(|lost| (*id, lost.clone())))
        .collect();
    let batch = WriteBatch {
        first_lc: 1,
        events,
        conflicts,
        ..WriteBatch::default()
    };
    store.write(&batch).expect("write");
    for (us, id) in (1..).zip(&node.updates) {
        let lc = node.ids[id];
        let batch = WriteBatch {
            replaced: vec![(lc as u64 + 1, stored(lc))],
            first_us: us,
            ..WriteBatch::default()
        };
        store.write(&batch).expect("write");
    }
    DatabaseLog {
        store,
        incarnation: node.incarnation,
        history: node.history.clone(),
        head_lc: node.head_lc(),
        head_us: node.head_us(),
        losers_listed: node.losers_listed(),
    }
}

/// Asserts that `model` reads as `store` from every position within every
/// bound tried.
fn assert_reads_alike(model: &ModelNode, store: &DatabaseLog) {
    let ids: Vec<Option<EventId>> = std::iter::once(None)
        .chain(model.losers.keys().copied().map(Some))
        .chain(std::iter::once(Some(EventId::from_parts(1, 0))))
        .collect();
    for bytes in [0, 1, 2, 7, 30, 100, usize::MAX] {
        for events in [0, 1, 2, 5, 100] {
            let bounds = PageBounds { events, bytes };
            for after in 0..=model.head_lc() + 1 {
                assert_eq!(
                    model.events_after(after, bounds).expect("model"),
                    store.events_after(after, bounds).expect("store"),
                    "events after lc {after} within {bounds:?}"
                );
            }
            for after in 0..=model.head_us() + 1 {
                assert_eq!(
                    model.updates_after(after, bounds).expect("model"),
                    store.updates_after(after, bounds).expect("store"),
                    "updates after us {after} within {bounds:?}"
                );
            }
            for after in &ids {
                assert_eq!(
                    model.losers_after(*after, bounds).expect("model"),
                    store.losers_after(*after, bounds).expect("store"),
                    "losers after {after:?} within {bounds:?}"
                );
            }
        }
    }
    let all: Vec<EventId> = model
        .log
        .iter()
        .map(|event| event.id)
        .chain(ids.iter().flatten().copied())
        .collect();
    assert_eq!(
        model.digests(&all).expect("model"),
        store.digests(&all).expect("store")
    );
    assert_eq!(
        model.events(&all).expect("model"),
        store.events(&all).expect("store")
    );
    assert_eq!(protocol::Summary::of(model), protocol::Summary::of(store));
    assert_eq!(model.losers_listed(), store.losers_listed());
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 32,
        rng_seed: RngSeed::Fixed(0x1065),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// The model honours byte bounds exactly as the storage does: events
    /// and rewrites of varied sizes, values that lose conflicts, read from
    /// every position within bounds from none to any.
    #[test]
    fn the_model_reads_its_log_as_the_storage_does(
        writes in prop::collection::vec((0_u64..12, 0..VALUES_PER_KEY, 0_u64..4), 0..40),
    ) {
        let mut model = ModelNode::new(1);
        for (key, value, at) in writes {
            model.write(key, value, at);
        }
        let store = stored_like(&model);
        assert_reads_alike(&model, &store);
    }
}

#[test]
fn events_that_came_from_a_peer_are_not_offered_back_to_it() {
    let limits = Limits::current(PageBounds {
        events: 16,
        bytes: usize::MAX,
    });
    let mut nodes = vec![ModelNode::new(1), ModelNode::new(2_000_000)];
    for key in 0..100 {
        nodes[0].write_bytes(key, b"a");
    }
    // Node 1 pulls everything, whole, then both ways go quiet: not one id
    // of the copied events travels back, whoever starts the rounds.
    let copy = until_quiet(&mut nodes, 1, 0, limits);
    assert_eq!(copy.events, 100, "each event is sent once");
    assert_eq!(copy.ids, 0, "no id is offered back");
    let back = until_quiet(&mut nodes, 0, 1, limits);
    assert_eq!((back.ids, back.events), (0, 0), "nor the other way");
    // New writes on each side reach the other once, as ids and events.
    for key in 100..110 {
        nodes[0].write_bytes(key, b"a");
        nodes[1].write_bytes(key + 100, b"b");
    }
    let both = until_quiet(&mut nodes, 0, 1, limits);
    assert_eq!(both.ids, 20, "each new id is offered once");
    assert_eq!(both.events, 20, "and sent once");
    let quiet = until_quiet(&mut nodes, 1, 0, limits);
    assert_eq!((quiet.ids, quiet.events), (0, 0), "then nothing moves");
    // A restart forgets what was held: ids may be offered once more, and
    // the logs stay whole.
    nodes[1].reopen();
    until_quiet(&mut nodes, 1, 0, limits);
    until_quiet(&mut nodes, 0, 1, limits);
    assert_eq!(nodes[0].settled(), nodes[1].settled());
}

#[test]
fn a_list_of_one_id_is_read_whole_however_small_the_page() {
    let mut node = ModelNode::new(1);
    for value in [b"c" as &[u8], b"b", b"a"] {
        node.write_bytes(7, value);
    }
    node.write_bytes(8, b"z");
    node.write_bytes(8, b"y");
    let tight = PageBounds {
        events: 1,
        bytes: 1,
    };
    let (first, more) = node.losers_after(None, tight).expect("losers");
    let data: Vec<Bytes> = first.iter().map(|loser| loser.data.clone()).collect();
    assert_eq!(data, [&b"c"[..], b"b"], "the first id whole");
    assert!(more, "and more follow");
    let (next, more) = node.losers_after(Some(first[0].id), tight).expect("losers");
    assert_eq!(next.len(), 1);
    assert!(!more);
}
