//! The node's clock through the embedding API: future ids, a wall clock that
//! steps back, and restarts.

use std::time::Duration;

use laterbase::clock::ManualClock;
use laterbase::{Config, Error, EventId, MemoryStorage, NewEvent, Node};

const NOW_MS: u64 = 1_795_000_000_000;

#[tokio::test]
async fn a_future_id_is_refused_and_leaves_the_clock_unmoved() {
    let clock = ManualClock::new(NOW_MS);
    let config = Config::in_memory()
        .clock(clock.clone())
        .clock_skew(Duration::from_secs(60))
        .seed(1);
    let node = Node::open(config).await.expect("open");
    let db = node.create_database("clock").await.expect("create");

    let within = EventId::from_parts(NOW_MS + 60_000, 5);
    db.append(vec![NewEvent::with_id(within, "1")])
        .await
        .expect("60 s ahead is allowed");
    let assigned = db
        .append(vec![NewEvent::new("2")])
        .await
        .expect("append")
        .ids[0];
    assert!(assigned > within, "an accepted id moves the clock");

    let beyond = EventId::from_parts(NOW_MS + 3_600_000, 5);
    let refused = db
        .append(vec![NewEvent::new("3"), NewEvent::with_id(beyond, "4")])
        .await;
    match refused {
        Err(Error::FutureEvent {
            index,
            id,
            ahead_ms,
            skew_ms,
        }) => {
            assert_eq!(
                (index, id, ahead_ms, skew_ms),
                (1, beyond, 3_600_000, 60_000)
            );
        }
        other => panic!("expected future_event, got {other:?}"),
    }
    assert_eq!(db.lc(), 2, "the refused batch stores nothing");
    let next = db
        .append(vec![NewEvent::new("5")])
        .await
        .expect("append")
        .ids[0];
    assert!(
        next.time_ms() < beyond.time_ms(),
        "the refused id did not move the clock"
    );
    assert_eq!(
        next.time_ms(),
        within.time_ms(),
        "the clock stays at the last accepted id"
    );
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn assigned_ids_increase_when_the_wall_clock_steps_back_and_across_restarts() {
    let storage = MemoryStorage::new();
    let clock = ManualClock::new(NOW_MS);
    let mut last: Option<EventId> = None;
    for restart in 0..3 {
        let config = Config::memory(storage.clone())
            .clock(clock.clone())
            .seed(restart);
        let node = Node::open(config).await.expect("open");
        let db = node.create_database("clock").await.expect("create");
        for step in 0..50 {
            clock.advance(if step % 4 == 0 { -20_000 } else { 3 });
            let ids = db
                .append(vec![NewEvent::new("a"), NewEvent::new("b")])
                .await
                .expect("append")
                .ids;
            for id in ids {
                assert!(last.is_none_or(|last| id > last), "{id} follows {last:?}");
                last = Some(id);
            }
        }
        node.shutdown().await.expect("shutdown");
        // The wall clock is far behind the last id at every restart.
        clock.advance(-3_600_000);
    }
}

#[tokio::test]
async fn the_same_seed_and_clock_assign_the_same_ids() {
    let mut runs = Vec::new();
    for _ in 0..2 {
        let config = Config::in_memory().clock(ManualClock::new(NOW_MS)).seed(99);
        let node = Node::open(config).await.expect("open");
        let db = node.create_database("replay").await.expect("create");
        let receipt = db
            .append((0..10).map(|_| NewEvent::new("x")).collect())
            .await
            .expect("append");
        runs.push((node.id(), db.incarnation(), receipt.ids));
        node.shutdown().await.expect("shutdown");
    }
    assert_eq!(runs[0], runs[1]);
}
