//! Subscriptions to a database's events through the embedding API: catch-up
//! then live, each event once, resumed exactly from the last `lc` seen, and
//! ended when the node shuts down.

use std::collections::BTreeSet;

use futures_util::StreamExt;
use laterbase::{Config, Error, EventId, NewEvent, Node};

/// Appends `count` events in batches of `batch`, returning their ids.
async fn append(db: &laterbase::Database, count: usize, batch: usize) -> Vec<EventId> {
    let mut ids = Vec::with_capacity(count);
    for start in (0..count).step_by(batch) {
        let events = (start..(start + batch).min(count))
            .map(|n| NewEvent::new(n.to_string()))
            .collect();
        ids.extend(db.append(events).await.expect("appended").ids);
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_sees_every_event_once_across_writes_racing_its_catch_up() {
    let node = Node::open(Config::in_memory()).await.expect("open");
    let db = node.create_database("live").await.expect("created");
    let mut written = append(&db, 2_500, 100).await;
    let stream = db.subscribe(0);
    // Writes race the catch-up, which reads more than one page.
    let racing = {
        let db = db.clone();
        tokio::spawn(async move { append(&db, 1_500, 10).await })
    };
    let seen: Vec<_> = stream
        .take(4_000)
        .map(|event| event.expect("an event"))
        .collect()
        .await;
    written.extend(racing.await.expect("the writer"));
    let lcs: Vec<u64> = seen.iter().map(|event| event.lc).collect();
    assert_eq!(
        lcs,
        (1..=4_000).collect::<Vec<_>>(),
        "clock order, none skipped or repeated"
    );
    let ids: BTreeSet<EventId> = seen.iter().map(|event| event.id).collect();
    assert_eq!(
        ids,
        written.into_iter().collect(),
        "every event written, once"
    );
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_subscription_resumes_after_the_last_lc_seen() {
    let node = Node::open(Config::in_memory()).await.expect("open");
    let db = node.create_database("live").await.expect("created");
    append(&db, 30, 10).await;
    let first: Vec<_> = db
        .subscribe(0)
        .take(12)
        .map(|event| event.expect("an event"))
        .collect()
        .await;
    let last = first.last().expect("twelve events").lc;
    // A new subscription from the last lc seen goes on from the next one,
    // into events written after it began.
    let mut resumed = Box::pin(db.subscribe(last));
    let next = resumed.next().await.expect("more").expect("an event");
    assert_eq!(next.lc, last + 1);
    append(&db, 5, 5).await;
    let rest: Vec<u64> = resumed
        .take(22)
        .map(|event| event.expect("an event").lc)
        .collect()
        .await;
    assert_eq!(rest, (last + 2..=35).collect::<Vec<_>>());
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_subscriber_that_does_not_read_holds_up_no_write() {
    let node = Node::open(Config::in_memory()).await.expect("open");
    let db = node.create_database("live").await.expect("created");
    let mut stalled = Box::pin(db.subscribe(0));
    append(&db, 10, 10).await;
    assert_eq!(
        stalled.next().await.expect("more").expect("an event").lc,
        1,
        "it reads its first page"
    );
    // It stops reading, holding one page; writes go on without it.
    append(&db, 5_000, 500).await;
    assert_eq!(db.lc(), 5_010);
    let rest: Vec<u64> = stalled
        .take(5_009)
        .map(|event| event.expect("an event").lc)
        .collect()
        .await;
    assert_eq!(rest, (2..=5_010).collect::<Vec<_>>(), "and it catches up");
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_subscription_ends_when_the_node_shuts_down() {
    let node = Node::open(Config::in_memory()).await.expect("open");
    let db = node.create_database("live").await.expect("created");
    append(&db, 3, 3).await;
    let mut stream = Box::pin(db.subscribe(0));
    for lc in 1..=3 {
        assert_eq!(stream.next().await.expect("more").expect("an event").lc, lc);
    }
    // Waiting for a fourth event when the node stops.
    let waiting = tokio::spawn(async move {
        let ended = stream.next().await;
        (ended, stream.next().await.is_none())
    });
    node.shutdown().await.expect("shutdown");
    let (ended, then_nothing) = waiting.await.expect("the reader");
    assert!(
        matches!(ended, Some(Err(Error::Unavailable(_)))),
        "the stream says the node is gone: {ended:?}"
    );
    assert!(then_nothing, "and ends");
}

#[tokio::test]
async fn a_subscription_hands_out_events_larger_than_its_page_one_at_a_time() {
    let node = Node::open(Config::in_memory()).await.expect("open");
    let db = node.create_database("live").await.expect("created");
    let size = laterbase::limits::SUBSCRIPTION_PAGE_BYTES + 1;
    for n in 0..6_u8 {
        db.append(vec![NewEvent::new(vec![b'a' + n; size])])
            .await
            .expect("appended");
    }
    let seen: Vec<_> = db
        .subscribe(0)
        .take(6)
        .map(|event| event.expect("an event"))
        .collect()
        .await;
    let lcs: Vec<u64> = seen.iter().map(|event| event.lc).collect();
    assert_eq!(lcs, (1..=6).collect::<Vec<_>>());
    assert!(seen.iter().all(|event| event.data.len() == size), "whole");
}
