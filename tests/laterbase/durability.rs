//! What is acknowledged is persisted: restarts, power loss, fsync counts and
//! a failing fsync.

use std::sync::{Arc, Mutex};

use laterbase::{Config, Error, EventId, MemoryStorage, NewEvent, Node};

use crate::support::{assert_contiguous, read_feed};

fn event(writer: usize, batch: usize, index: usize) -> NewEvent {
    NewEvent::new(format!(
        "{{\"writer\":{writer},\"batch\":{batch},\"index\":{index}}}"
    ))
}

#[tokio::test]
async fn a_reopened_store_holds_everything_and_its_clocks_continue() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::open(Config::new(dir.path())).await.expect("open");
    let node_id = node.id();
    let db = node.create_database("trucks").await.expect("create");
    let backdated = EventId::from_parts(1_600_000_000_000, 1);
    db.append(vec![NewEvent::with_id(backdated, "\"old\"")])
        .await
        .expect("append");
    for batch in 0..20 {
        db.append((0..50).map(|i| event(0, batch, i)).collect())
            .await
            .expect("append");
    }
    let before = read_feed(&db, 1000).await;
    let incarnation = db.incarnation();
    node.shutdown().await.expect("shutdown");

    let node = Node::open(Config::new(dir.path())).await.expect("reopen");
    assert_eq!(node.id(), node_id, "the node keeps its id");
    assert_eq!(
        node.databases(),
        vec!["trucks".to_owned()],
        "the set of databases persists"
    );
    let db = node.database("trucks").expect("database");
    assert_eq!(db.incarnation(), incarnation);
    assert_eq!(
        read_feed(&db, 7).await,
        before,
        "every event survives, byte for byte"
    );
    let receipt = db.append(vec![event(1, 0, 0)]).await.expect("append");
    assert_eq!(receipt.lc, before.len() as u64 + 1, "lc continues");
    let newest_before = before.iter().map(|e| e.id).max().expect("events");
    assert!(
        receipt.ids[0] > newest_before,
        "ids assigned after the reopen are larger"
    );
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_second_node_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::open(Config::new(dir.path())).await.expect("open");
    let second = Node::open(Config::new(dir.path())).await;
    assert!(matches!(second, Err(Error::DataDirLocked(_))), "{second:?}");
    node.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_batch_survives_a_power_loss() {
    let storage = MemoryStorage::new();
    let node = Node::open(Config::memory(storage.clone()))
        .await
        .expect("open");
    let db = node.create_database("gates").await.expect("create");
    let acknowledged: Arc<Mutex<Vec<(EventId, String)>>> = Arc::default();
    let mut writers = Vec::new();
    for writer in 0..16 {
        let db = db.clone();
        let acknowledged = acknowledged.clone();
        writers.push(tokio::spawn(async move {
            for batch in 0..40 {
                let events: Vec<NewEvent> = (0..3).map(|i| event(writer, batch, i)).collect();
                let data: Vec<String> = events
                    .iter()
                    .map(|e| String::from_utf8(e.data.to_vec()).expect("utf-8"))
                    .collect();
                let receipt = db.append(events).await.expect("append");
                let mut acknowledged = acknowledged.lock().expect("lock");
                acknowledged.extend(receipt.ids.into_iter().zip(data));
            }
        }));
    }
    // Cut the power while the writers run: the copy holds only what was
    // persisted at that instant, and every batch acknowledged before it must
    // be in it.
    let mut cuts = Vec::new();
    for threshold in [1, 300, 900, 1500] {
        loop {
            tokio::task::yield_now().await;
            let acknowledged = acknowledged.lock().expect("lock");
            if acknowledged.len() >= threshold || writers.iter().all(|w| w.is_finished()) {
                cuts.push((storage.crash_copy(), acknowledged.clone()));
                break;
            }
        }
    }
    for writer in writers {
        writer.await.expect("writer");
    }
    cuts.push((
        storage.crash_copy(),
        acknowledged.lock().expect("lock").clone(),
    ));
    node.shutdown().await.expect("shutdown");

    for (disk, acknowledged) in cuts {
        let node = Node::open(Config::memory(disk))
            .await
            .expect("open after power loss");
        let db = node.database("gates").expect("the database survives");
        let feed = read_feed(&db, 1000).await;
        assert_contiguous(&feed);
        let ids: Vec<EventId> = acknowledged.iter().map(|(id, _)| *id).collect();
        let keys = db.get(&ids).await.expect("get");
        assert!(
            keys.missing.is_empty(),
            "acknowledged events lost: {:?}",
            keys.missing
        );
        for (event, (_, data)) in keys.events.iter().zip(&acknowledged) {
            assert_eq!(event.data, data.as_bytes(), "bytes unaltered");
        }
        node.shutdown().await.expect("shutdown");
    }
}

#[tokio::test]
async fn each_sequential_batch_costs_one_fsync() {
    let storage = MemoryStorage::new();
    let node = Node::open(Config::memory(storage.clone()))
        .await
        .expect("open");
    let db = node.create_database("ships").await.expect("create");
    let before = storage.persist_count();
    for batch in 0..25 {
        db.append(vec![event(0, batch, 0)]).await.expect("append");
    }
    assert_eq!(
        storage.persist_count() - before,
        25,
        "one fsync per acknowledged batch"
    );
    assert_eq!(db.stats().appends, 25);
    assert_eq!(db.stats().persists, 25);
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn concurrent_batches_share_fsyncs() {
    let storage = MemoryStorage::new();
    let node = Node::open(Config::memory(storage.clone()))
        .await
        .expect("open");
    let db = node.create_database("ships").await.expect("create");
    let before = storage.persist_count();
    let writers: Vec<_> = (0..64)
        .map(|writer| {
            let db = db.clone();
            tokio::spawn(async move { db.append(vec![event(writer, 0, 0)]).await })
        })
        .collect();
    for writer in writers {
        writer.await.expect("task").expect("append");
    }
    let fsyncs = storage.persist_count() - before;
    assert_eq!(db.stats().appends, 64);
    assert!(
        fsyncs < 64 / 4,
        "64 concurrent batches took {fsyncs} fsyncs"
    );
    assert_eq!(db.lc(), 64);
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_failed_fsync_refuses_later_writes_and_hides_the_unpersisted_batch() {
    let storage = MemoryStorage::new();
    let node = Node::open(Config::memory(storage.clone()))
        .await
        .expect("open");
    let db = node.create_database("farm").await.expect("create");
    let kept = db.append(vec![event(0, 0, 0)]).await.expect("append");

    storage.fail_next_persist();
    // Three appends queue up into one commit: its fsync fails for all.
    let failing: Vec<_> = (1..4)
        .map(|batch| {
            let db = db.clone();
            tokio::spawn(async move { db.append(vec![event(0, batch, 0)]).await })
        })
        .collect();
    for failed in failing {
        let failed = failed.await.expect("task");
        assert!(matches!(failed, Err(Error::Poisoned(_))), "{failed:?}");
    }
    let later = db.append(vec![event(0, 9, 0)]).await;
    assert!(matches!(later, Err(Error::Poisoned(_))), "{later:?}");

    assert_eq!(
        db.lc(),
        kept.lc,
        "the watermark stays at the last durable event"
    );
    let feed = read_feed(&db, 10).await;
    assert_eq!(feed.len(), 1, "reads go on, without the unpersisted batch");
    assert_eq!(feed[0].id, kept.ids[0]);
    node.shutdown()
        .await
        .expect_err("the final fsync fails too");
}

#[tokio::test]
async fn oversized_batches_are_refused_before_anything_is_stored() {
    let node = Node::open(Config::in_memory()).await.expect("open");
    let db = node.create_database("big").await.expect("create");
    let too_many = (0..=laterbase::limits::BATCH_EVENTS_MAX)
        .map(|_| NewEvent::new("1"))
        .collect();
    let answer = db.append(too_many).await;
    assert!(
        matches!(answer, Err(Error::BatchTooLarge { what: "events", .. })),
        "{answer:?}"
    );
    let too_big = vec![NewEvent::new(vec![
        b'7';
        laterbase::limits::BATCH_BYTES_MAX + 1
    ])];
    let answer = db.append(too_big).await;
    assert!(
        matches!(answer, Err(Error::BatchTooLarge { what: "bytes", .. })),
        "{answer:?}"
    );
    assert_eq!(db.lc(), 0);
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn names_are_checked_and_unknown_databases_reported() {
    let node = Node::open(Config::in_memory()).await.expect("open");
    let bad = node.create_database("Bad Name").await;
    assert!(matches!(bad, Err(Error::InvalidName { .. })), "{bad:?}");
    let reserved = node.create_database("db").await;
    assert!(
        matches!(reserved, Err(Error::InvalidName { .. })),
        "{reserved:?}"
    );
    let missing = node.database("absent");
    assert!(
        matches!(missing, Err(Error::DatabaseNotFound(_))),
        "{missing:?}"
    );
    let (_, created) = node.ensure_database("present").await.expect("create");
    let (_, again) = node.ensure_database("present").await.expect("create");
    assert!(
        created && !again,
        "the second call finds the first's database"
    );
    node.shutdown().await.expect("shutdown");
}

async fn racing_appends_of_one_id(config: Config) {
    let node = Node::open(config).await.expect("open");
    let db = node.create_database("race").await.expect("create");
    let id = EventId::from_parts(1_700_000_000_000, 9);
    let appends: Vec<_> = [&b"\"left\""[..], b"\"right\"", b"\"left\""]
        .into_iter()
        .map(|data| {
            let db = db.clone();
            tokio::spawn(async move { db.append(vec![NewEvent::with_id(id, data)]).await })
        })
        .collect();
    let mut answers = Vec::new();
    for append in appends {
        answers.push(append.await.expect("task"));
    }
    assert!(answers[0].is_ok(), "{:?}", answers[0]);
    assert!(
        matches!(answers[1], Err(Error::Conflict { index: 0, .. })),
        "{:?}",
        answers[1]
    );
    assert!(
        answers[2].is_ok(),
        "the same bytes again are accepted: {:?}",
        answers[2]
    );
    assert_eq!(db.lc(), 1, "the id is stored once");
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn racing_appends_of_one_id_store_it_once_in_memory() {
    racing_appends_of_one_id(Config::in_memory()).await;
}

#[tokio::test]
async fn racing_appends_of_one_id_store_it_once_on_fjall() {
    let dir = tempfile::tempdir().expect("tempdir");
    racing_appends_of_one_id(Config::new(dir.path())).await;
}

#[tokio::test]
async fn a_full_disk_refuses_the_write_and_its_retry() {
    let storage = MemoryStorage::new();
    let node = Node::open(Config::memory(storage.clone()))
        .await
        .expect("open");
    let db = node.create_database("full").await.expect("create");
    let kept = EventId::from_parts(1_700_000_000_000, 1);
    db.append(vec![NewEvent::with_id(kept, "1")])
        .await
        .expect("append");

    // A backdated id: the retry's lookup finds the unfsynced first attempt.
    let retried = EventId::from_parts(1_600_000_000_000, 2);
    storage.fill_disk();
    let full = db.append(vec![NewEvent::with_id(retried, "2")]).await;
    assert!(matches!(full, Err(Error::StorageFull(_))), "{full:?}");
    let retry = db.append(vec![NewEvent::with_id(retried, "2")]).await;
    assert!(
        matches!(retry, Err(Error::StorageFull(_))),
        "a retry is not acknowledged unfsynced: {retry:?}"
    );

    let keys = db.get(&[kept, retried]).await.expect("reads go on");
    assert_eq!(keys.missing, vec![retried]);
    assert_eq!(db.lc(), 1);
    let after_power_loss = Node::open(Config::memory(storage.crash_copy()))
        .await
        .expect("open");
    assert_eq!(after_power_loss.database("full").expect("database").lc(), 1);
    after_power_loss.shutdown().await.expect("shutdown");
    node.shutdown()
        .await
        .expect("a full disk stops cleanly: every acknowledged write had its fsync");
}
