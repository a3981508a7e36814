//! Merging another node's events: ids, bytes and `recorded_at` are kept,
//! the earlier `recorded_at` wins, and of two values the smaller bytes win,
//! whatever the order events arrive in.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use laterbase::{Config, Event, EventId, Node, Timestamp};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};

use crate::support::{assert_contiguous, read_feed, runtime};

fn event(id: EventId, data: &str, recorded_at: u64) -> Event {
    Event {
        id,
        data: Bytes::from(data.to_owned()),
        recorded_at: Timestamp(recorded_at),
        lc: 0,
    }
}

fn id(n: u64) -> EventId {
    EventId::from_parts(1_700_000_000_000 + n, u128::from(n))
}

async fn check_merge_rules(config: Config) {
    let node = Node::open(config).await.expect("open");
    let db = node.create_database("m").await.expect("create");
    let local = db
        .append(vec![laterbase::NewEvent::with_id(id(1), "\"b\"")])
        .await
        .expect("append");
    let receipt = db
        .merge(vec![event(id(2), "\"x\"", 500), event(id(3), "\"y\"", 600)])
        .await
        .expect("merge");
    assert_eq!(
        (
            receipt.stored,
            receipt.updated,
            receipt.conflicts,
            receipt.lc
        ),
        (2, 0, 0, 3)
    );
    let keys = db.get(&[id(2)]).await.expect("get");
    assert_eq!(
        keys.events[0].recorded_at,
        Timestamp(500),
        "recorded_at travels with the event"
    );

    // The same bytes recorded earlier elsewhere: the earlier time wins.
    let earlier = db
        .merge(vec![event(id(2), "\"x\"", 100), event(id(3), "\"y\"", 900)])
        .await
        .expect("merge");
    assert_eq!(
        (
            earlier.stored,
            earlier.updated,
            earlier.conflicts,
            earlier.lc
        ),
        (0, 1, 0, 3)
    );
    let keys = db.get(&[id(2), id(3)]).await.expect("get");
    assert_eq!(keys.events[0].recorded_at, Timestamp(100));
    assert_eq!(
        keys.events[1].recorded_at,
        Timestamp(600),
        "a later time changes nothing"
    );
    assert_eq!(keys.events[0].lc, 2, "an update keeps the event's lc");

    // Two values of one id: the smaller bytes win, the other is listed once.
    let local_at = db.get(&[id(1)]).await.expect("get").events[0].recorded_at;
    let smaller = db
        .merge(vec![event(id(1), "\"a\"", 42)])
        .await
        .expect("merge");
    assert_eq!((smaller.updated, smaller.conflicts), (1, 1));
    let larger = db
        .merge(vec![event(id(1), "\"c\"", 7), event(id(1), "\"b\"", 1)])
        .await
        .expect("merge");
    assert_eq!((larger.updated, larger.conflicts), (0, 2));
    let again = db
        .merge(vec![event(id(1), "\"b\"", 1)])
        .await
        .expect("merge");
    assert_eq!(again.updated, 0);
    let kept = db.get(&[id(1)]).await.expect("get").events[0].clone();
    assert_eq!(
        (&kept.data[..], kept.recorded_at, kept.lc),
        (&b"\"a\""[..], Timestamp(42), local.lc)
    );
    let conflicts = db
        .conflicts(None, 1_000)
        .await
        .expect("conflicts")
        .conflicts;
    assert_eq!(conflicts.len(), 1);
    assert_eq!(&conflicts[0].kept[..], b"\"a\"");
    let lost: BTreeSet<&[u8]> = conflicts[0].lost.iter().map(|b| &b[..]).collect();
    assert_eq!(
        lost,
        BTreeSet::from([&b"\"b\""[..], &b"\"c\""[..]]),
        "each loser listed once"
    );
    assert!(local_at.0 > 42);

    // A local write of the id now conflicts with the kept value.
    let refused = db
        .append(vec![laterbase::NewEvent::with_id(id(1), "\"b\"")])
        .await;
    assert!(
        matches!(refused, Err(laterbase::Error::Conflict { .. })),
        "{refused:?}"
    );
    let feed = read_feed(&db, 2).await;
    assert_contiguous(&feed);
    assert_eq!(feed.len(), 3);
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn merge_rules_in_memory() {
    check_merge_rules(Config::in_memory()).await;
}

#[tokio::test]
async fn merge_rules_on_fjall() {
    let dir = tempfile::tempdir().expect("tempdir");
    check_merge_rules(Config::new(dir.path())).await;
}

#[tokio::test]
async fn merged_ids_ahead_of_the_clock_are_stored_and_do_not_move_it() {
    let clock = laterbase::clock::ManualClock::new(1_800_000_000_000);
    let node = Node::open(Config::in_memory().clock(clock))
        .await
        .expect("open");
    let db = node.create_database("m").await.expect("create");
    let far = EventId::from_parts(1_800_000_000_000 + 86_400_000, 1);
    db.merge(vec![event(far, "1", 5)]).await.expect("merge");
    assert_eq!(db.get(&[far]).await.expect("get").events.len(), 1);
    let assigned = db
        .append(vec![laterbase::NewEvent::new("2")])
        .await
        .expect("append")
        .ids[0];
    assert!(assigned.time_ms() < far.time_ms(), "the clock stayed");
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn rewritten_chunks_read_back_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::open(Config::new(dir.path())).await.expect("open");
    let db = node.create_database("m").await.expect("create");
    let events: Vec<Event> = (0..300)
        .map(|n| event(id(n), &format!("\"v{n:03}\""), 1_000 + n))
        .collect();
    db.merge(events).await.expect("merge");
    let updates: Vec<Event> = (0..300)
        .step_by(7)
        .map(|n| event(id(n), &format!("\"v{n:03}\""), n))
        .collect();
    let receipt = db.merge(updates).await.expect("merge");
    assert_eq!(receipt.updated, 43);
    let winners: Vec<Event> = (0..300)
        .step_by(11)
        .map(|n| event(id(n), &format!("\"a{n:03}\""), 9))
        .collect();
    assert_eq!(db.merge(winners).await.expect("merge").conflicts, 28);
    node.shutdown().await.expect("shutdown");

    let node = Node::open(Config::new(dir.path())).await.expect("reopen");
    let db = node.database("m").expect("database");
    let feed = read_feed(&db, 64).await;
    assert_contiguous(&feed);
    for (n, event) in (0_u64..).zip(&feed) {
        let (data, at) = match (n % 11, n % 7) {
            (0, _) => (format!("\"a{n:03}\""), 9),
            (_, 0) => (format!("\"v{n:03}\""), n),
            _ => (format!("\"v{n:03}\""), 1_000 + n),
        };
        assert_eq!(
            (&event.data[..], event.recorded_at),
            (data.as_bytes(), Timestamp(at)),
            "event {n}"
        );
    }
    assert_eq!(
        db.conflicts(None, 1_000)
            .await
            .expect("conflicts")
            .conflicts
            .len(),
        28
    );
    node.shutdown().await.expect("shutdown");
}

/// The state a merge leaves: per id, its bytes and recorded_at, and the
/// losers per id.
type Settled = (
    BTreeMap<EventId, (Vec<u8>, u64)>,
    BTreeMap<EventId, BTreeSet<Vec<u8>>>,
);

async fn settle_on_a_node(config: Config, deliveries: Vec<Vec<Event>>) -> Settled {
    let node = Node::open(config).await.expect("open");
    let db = node.create_database("m").await.expect("create");
    for batch in deliveries {
        db.merge(batch).await.expect("merge");
    }
    let feed = read_feed(&db, 100).await;
    assert_contiguous(&feed);
    let events = feed
        .into_iter()
        .map(|e| (e.id, (e.data.to_vec(), e.recorded_at.0)))
        .collect();
    let conflicts = db
        .conflicts(None, 10_000)
        .await
        .expect("conflicts")
        .conflicts
        .into_iter()
        .map(|c| (c.id, c.lost.iter().map(|b| b.to_vec()).collect()))
        .collect();
    node.shutdown().await.expect("shutdown");
    (events, conflicts)
}

fn copies() -> impl Strategy<Value = Vec<Event>> {
    let copy = (0_u64..12, 0_usize..3, 0_u64..5)
        .prop_map(|(n, value, at)| event(id(n), ["\"p\"", "\"q\"", "\"r\""][value], 100 + at));
    prop::collection::vec(copy, 1..40)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        rng_seed: RngSeed::Fixed(0x3e76e),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Two nodes that merge the same copies in different orders and batches
    /// end with the same events and the same conflicts.
    #[test]
    fn merges_converge_whatever_the_order(
        copies in copies(),
        cut in 1usize..7,
        order in Just(()).prop_perturb(|(), mut rng| rng.next_u64()),
    ) {
        let mut shuffled = copies.clone();
        let mut seed = order;
        for index in (1..shuffled.len()).rev() {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            shuffled.swap(index, (seed >> 33) as usize % (index + 1));
        }
        let first = runtime().block_on(settle_on_a_node(Config::in_memory(), vec![copies.clone()]));
        let chunks: Vec<Vec<Event>> = shuffled.chunks(cut).map(<[Event]>::to_vec).collect();
        let dir = tempfile::tempdir().expect("tempdir");
        let second = runtime().block_on(settle_on_a_node(Config::new(dir.path()), chunks));
        prop_assert_eq!(&first, &second);
        for (id, (data, at)) in &first.0 {
            let values: Vec<&Event> = copies.iter().filter(|c| c.id == *id).collect();
            let smallest = values.iter().map(|c| c.data.to_vec()).min().expect("copies");
            let earliest = values.iter().filter(|c| c.data.to_vec() == smallest).map(|c| c.recorded_at.0).min();
            prop_assert_eq!(data, &smallest, "the smallest value is kept");
            prop_assert_eq!(Some(*at), earliest, "with its earliest recorded_at");
        }
    }
}

#[tokio::test]
async fn a_merge_whose_read_of_losers_fails_changes_nothing() {
    use laterbase::MemoryStorage;
    use laterbase::storage::memory::ReadFault;

    let storage = MemoryStorage::new();
    let node = Node::open(Config::memory(storage.clone()))
        .await
        .expect("open");
    let db = node.create_database("m").await.expect("create");
    db.append(vec![laterbase::NewEvent::with_id(id(1), "\"b\"")])
        .await
        .expect("append");
    let persists = storage.persist_count();

    // A new event first (staged), then a second value for the stored id,
    // whose conflict needs the listed losers: that read fails.
    storage.fail_next_read(ReadFault::Losers, std::io::ErrorKind::Other);
    let failed = db
        .merge(vec![
            event(id(2), "\"new\"", 500),
            event(id(1), "\"a\"", 600),
        ])
        .await;
    assert!(
        matches!(failed, Err(laterbase::Error::Storage(_))),
        "{failed:?}"
    );

    assert_eq!(db.lc(), 1, "the clock did not move");
    let feed = read_feed(&db, 10).await;
    let data: Vec<&[u8]> = feed.iter().map(|event| &event.data[..]).collect();
    assert_eq!(data, [&b"\"b\""[..]], "nothing of the batch was stored");
    assert!(
        db.conflicts(None, 1_000)
            .await
            .expect("conflicts")
            .conflicts
            .is_empty()
    );
    assert_eq!(storage.persist_count(), persists, "nothing was written");

    // The same merge, once the read works, is stored whole.
    let receipt = db
        .merge(vec![
            event(id(2), "\"new\"", 500),
            event(id(1), "\"a\"", 600),
        ])
        .await
        .expect("merge");
    assert_eq!((receipt.stored, receipt.conflicts, receipt.lc), (1, 1, 2));
    node.shutdown().await.expect("shutdown");
}
