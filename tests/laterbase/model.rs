//! Property tests: any sequence of appends reads back as a simple model says,
//! on both storage engines.
//!
//! The model is a map from id to bytes plus the list of ids in the order they
//! were first stored. Appends mix node-assigned ids with writer ids drawn from
//! a small pool of backdated ids and a small set of values, so that
//! duplicates, conflicts and repeats inside one batch are common.

use std::collections::HashMap;

use bytes::Bytes;
use laterbase::{Config, Error, EventId, MemoryStorage, NewEvent, Node};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};

use crate::support::{assert_contiguous, read_feed, read_range, runtime};

/// 2024-01-01T00:00:00Z: every pool id lies in the past.
const POOL_BASE_MS: u64 = 1_704_067_200_000;
const POOL_IDS: usize = 24;
const VALUES: [&[u8]; 3] = [
    b"{\"status\":\"loaded\"}",
    b"{\"status\":\"departed\"}",
    b"\x00\xffbinary",
];

fn pool_id(index: usize) -> EventId {
    // Spread over time, out of order with the index, so ranges interleave.
    let time = POOL_BASE_MS + (index as u64 * 7_919) % 100_000;
    EventId::from_parts(time, index as u128 * 1_000_003)
}

#[derive(Clone, Debug)]
struct Spec {
    id: Option<usize>,
    value: usize,
}

fn batch() -> impl Strategy<Value = Vec<Spec>> {
    let spec = (prop::option::weighted(0.7, 0..POOL_IDS), 0..VALUES.len())
        .prop_map(|(id, value)| Spec { id, value });
    prop::collection::vec(spec, 0..8)
}

#[derive(Default)]
struct Model {
    data: HashMap<EventId, Bytes>,
    log: Vec<EventId>,
}

impl Model {
    /// The index of the first conflicting event, if the batch conflicts.
    fn conflict(&self, batch: &[Spec]) -> Option<usize> {
        let mut earlier: HashMap<EventId, &[u8]> = HashMap::new();
        for (index, spec) in batch.iter().enumerate() {
            let Some(id) = spec.id.map(pool_id) else {
                continue;
            };
            let value = VALUES[spec.value];
            let known = self
                .data
                .get(&id)
                .map(|b| &b[..])
                .or(earlier.get(&id).copied());
            match known {
                Some(stored) if stored != value => return Some(index),
                Some(_) => {}
                None => {
                    earlier.insert(id, value);
                }
            }
        }
        None
    }

    fn apply(&mut self, batch: &[Spec], ids: &[EventId]) {
        for (spec, id) in batch.iter().zip(ids) {
            if !self.data.contains_key(id) {
                self.data
                    .insert(*id, Bytes::from_static(VALUES[spec.value]));
                self.log.push(*id);
            }
        }
    }
}

/// Appends `batches` in groups of `concurrency`: a group's appends are sent
/// together, in order, so that they share commits; the model takes them in
/// the same order.
async fn check(config: Config, batches: Vec<Vec<Spec>>, page: usize, concurrency: usize) {
    let node = Node::open(config).await.expect("open");
    let db = node.create_database("model").await.expect("create");
    let mut model = Model::default();
    let mut assigned: Vec<EventId> = Vec::new();
    let mut answers = Vec::new();
    for group in batches.chunks(concurrency) {
        let sent: Vec<_> = group
            .iter()
            .map(|batch| {
                let events: Vec<NewEvent> = batch
                    .iter()
                    .map(|spec| match spec.id {
                        Some(index) => NewEvent::with_id(pool_id(index), VALUES[spec.value]),
                        None => NewEvent::new(VALUES[spec.value]),
                    })
                    .collect();
                let db = db.clone();
                tokio::spawn(async move { db.append(events).await })
            })
            .collect();
        for append in sent {
            answers.push(append.await.expect("task"));
        }
    }
    for (batch, answer) in batches.iter().zip(answers) {
        match (answer, model.conflict(batch)) {
            (Err(Error::Conflict { index, id }), Some(expected)) => {
                assert_eq!(index, expected, "the first conflicting event is named");
                assert_eq!(Some(id), batch[index].id.map(pool_id));
            }
            (Ok(receipt), None) => {
                assert_eq!(receipt.ids.len(), batch.len());
                for (spec, id) in batch.iter().zip(&receipt.ids) {
                    match spec.id {
                        Some(index) => assert_eq!(*id, pool_id(index), "writer ids are kept"),
                        None => {
                            assert!(
                                assigned.last().is_none_or(|last| id > last),
                                "assigned ids increase"
                            );
                            assigned.push(*id);
                        }
                    }
                }
                model.apply(batch, &receipt.ids);
                assert_eq!(
                    receipt.lc,
                    model.log.len() as u64,
                    "lc counts the events stored"
                );
            }
            (answer, expected) => {
                panic!("append answered {answer:?}, the model expected a conflict at {expected:?}")
            }
        }
    }

    assert_eq!(
        db.lc(),
        model.log.len() as u64,
        "a conflicting batch stores nothing"
    );
    let feed = read_feed(&db, page).await;
    assert_contiguous(&feed);
    assert_eq!(
        feed.iter().map(|e| e.id).collect::<Vec<_>>(),
        model.log,
        "the feed is the log"
    );
    for event in &feed {
        assert_eq!(
            event.data, model.data[&event.id],
            "bytes read back as written"
        );
    }

    let mut by_id = model.log.clone();
    by_id.sort();
    let range = read_range(&db, page).await;
    assert_eq!(
        range.iter().map(|e| e.id).collect::<Vec<_>>(),
        by_id,
        "ranges are in id order"
    );
    if let [first, .., last] = by_id.as_slice() {
        let inner = db
            .range(Some(*first), Some(*last), 10_000)
            .await
            .expect("range");
        assert_eq!(
            inner.events.len(),
            by_id.len() - 2,
            "both bounds are exclusive"
        );
    }

    let mut asked: Vec<EventId> = (0..POOL_IDS).map(pool_id).collect();
    asked.extend(assigned.iter().rev());
    let keys = db.get(&asked).await.expect("get");
    let found: Vec<EventId> = asked
        .iter()
        .copied()
        .filter(|id| model.data.contains_key(id))
        .collect();
    let missing: Vec<EventId> = asked
        .iter()
        .copied()
        .filter(|id| !model.data.contains_key(id))
        .collect();
    assert_eq!(
        keys.events.iter().map(|e| e.id).collect::<Vec<_>>(),
        found,
        "found, in the order asked"
    );
    assert_eq!(keys.missing, missing);
    node.shutdown().await.expect("shutdown");
}

fn proptest_config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        rng_seed: RngSeed::Fixed(0x1a7e_ba5e),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(proptest_config(96))]

    #[test]
    fn appends_read_back_as_the_model_says_in_memory(
        batches in prop::collection::vec(batch(), 1..24),
        page in 1usize..6,
        concurrency in 1usize..5,
    ) {
        runtime().block_on(check(Config::memory(MemoryStorage::new()), batches, page, concurrency));
    }
}

proptest! {
    #![proptest_config(proptest_config(24))]

    #[test]
    fn appends_read_back_as_the_model_says_on_fjall(
        batches in prop::collection::vec(batch(), 1..24),
        page in 1usize..6,
        concurrency in 1usize..5,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        runtime().block_on(check(Config::new(dir.path()), batches, page, concurrency));
    }
}

/// Batches larger than a log chunk, and events larger than a chunk's bytes,
/// read back whole through every read, from any starting point.
async fn check_large_batches(config: Config) {
    let node = Node::open(config).await.expect("open");
    let db = node.create_database("large").await.expect("create");
    let mut written: Vec<(EventId, Vec<u8>)> = Vec::new();
    for batch in 0..6_usize {
        let events: Vec<NewEvent> = (0..150_usize)
            .map(|index| {
                let size = if index == 70 {
                    100 * 1024
                } else {
                    (batch * 31 + index * 7) % 300
                };
                NewEvent::new(vec![b'a' + (index % 26) as u8; size])
            })
            .collect();
        let sizes: Vec<Vec<u8>> = events.iter().map(|event| event.data.to_vec()).collect();
        let receipt = db.append(events).await.expect("append");
        written.extend(receipt.ids.into_iter().zip(sizes));
    }
    for page in [1, 7, 64, 65, 1000] {
        let feed = read_feed(&db, page).await;
        assert_contiguous(&feed);
        let read: Vec<(EventId, Vec<u8>)> = feed.iter().map(|e| (e.id, e.data.to_vec())).collect();
        assert_eq!(read, written, "pages of {page}");
    }
    for after in [0, 1, 63, 64, 65, 149, 150, 899] {
        let page = db.changes(after, 3).await.expect("changes");
        let lcs: Vec<u64> = page.events.iter().map(|e| e.lc).collect();
        assert_eq!(
            lcs,
            (after + 1..=(after + 3).min(900)).collect::<Vec<_>>(),
            "from lc {after}"
        );
    }
    let ids: Vec<EventId> = written.iter().map(|(id, _)| *id).rev().collect();
    let keys = db.get(&ids).await.expect("get");
    assert!(keys.missing.is_empty());
    let by_key: Vec<Vec<u8>> = keys.events.iter().map(|e| e.data.to_vec()).collect();
    let expected: Vec<Vec<u8>> = written.iter().rev().map(|(_, data)| data.clone()).collect();
    assert_eq!(by_key, expected);
    assert_eq!(read_range(&db, 100).await.len(), written.len());
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn large_batches_read_back_whole_in_memory() {
    check_large_batches(Config::in_memory()).await;
}

#[tokio::test]
async fn large_batches_read_back_whole_on_fjall() {
    let dir = tempfile::tempdir().expect("tempdir");
    check_large_batches(Config::new(dir.path())).await;
}
