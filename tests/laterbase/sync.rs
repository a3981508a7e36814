//! Two nodes on loopback, synced round by round through the HTTP routes.

use std::collections::BTreeMap;

use laterbase::http::{HttpState, router};
use laterbase::replication::conflicts::pull_conflicts;
use laterbase::replication::driver::{Sending, Transport, TransportError, round};
use laterbase::replication::transport::HttpTransport;
use laterbase::sync::protocol::Entries;
use laterbase::sync::wire;
use laterbase::{Config, Conflict, Database, EventId, NewEvent, Node, Timestamp};

use crate::support::{assert_contiguous, read_feed};

/// A node serving its API on a loopback port until dropped.
pub(crate) struct Served {
    pub(crate) node: Node,
    pub(crate) url: String,
    state: HttpState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Served {
    pub(crate) async fn start(config: Config) -> Served {
        let node = Node::open(config).await.expect("open");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = HttpState::new(node.clone());
        let app = router(state.clone());
        let task = tokio::spawn(laterbase::server::serve(listener, app, async {
            let _ = stopped.await;
        }));
        Served {
            node,
            url,
            state,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub(crate) async fn stop(mut self) {
        // As `laterbase serve` stops: streams and peers' watches end first.
        self.state.end_live_streams();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
        self.node.clone().shutdown().await.expect("shutdown");
    }
}

/// Rounds from `from` to `to` for `database` until neither side has more.
pub(crate) async fn sync(from: &Served, to: &Served, database: &str) -> (u64, u64) {
    sync_in(from, to, database, wire::VERSION).await
}

/// Rounds as [`sync`] runs them, in wire `version`.
async fn sync_in(from: &Served, to: &Served, database: &str, version: u8) -> (u64, u64) {
    let db = from.node.create_database(database).await.expect("database");
    let transport = HttpTransport::new(&to.url, from.node.id(), None);
    let (mut sent, mut received) = (0, 0);
    for _ in 0..100 {
        let report = round(&db, to.node.id(), &transport, version)
            .await
            .expect("round");
        sent += report.events_out;
        received += report.events_in;
        if !report.more {
            // As a sync worker does with a first-release peer that lists
            // losers (newer ones exchange lists within rounds).
            if version < wire::VERSION && report.peer_losers_listed > 0 {
                pull_conflicts(&db, &transport).await.expect("conflicts");
            }
            return (sent, received);
        }
    }
    panic!("sync did not finish in 100 rounds");
}

/// Every conflict of `db`, page by page.
async fn conflicts(db: &Database) -> Vec<Conflict> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = db.conflicts(after, 2).await.expect("conflicts");
        after = page.conflicts.last().map(|conflict| conflict.id);
        all.extend(page.conflicts);
        if !page.more {
            return all;
        }
    }
}

async fn contents(db: &Database) -> BTreeMap<EventId, (Vec<u8>, Timestamp)> {
    let feed = read_feed(db, 10_000).await;
    assert_contiguous(&feed);
    feed.into_iter()
        .map(|e| (e.id, (e.data.to_vec(), e.recorded_at)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_converge_both_ways() {
    let a = Served::start(Config::in_memory()).await;
    let b = Served::start(Config::in_memory()).await;
    let db_a = a.node.create_database("s").await.expect("create");
    db_a.append(
        (0..3)
            .map(|n| NewEvent::new(format!("{{\"a\":{n}}}")))
            .collect(),
    )
    .await
    .expect("append");

    sync(&a, &b, "s").await;
    let db_b = b.node.database("s").expect("the database reached b");
    assert_eq!(
        contents(&db_b).await,
        contents(&db_a).await,
        "recorded_at and bytes travel"
    );

    db_b.append(
        (0..2)
            .map(|n| NewEvent::new(format!("{{\"b\":{n}}}")))
            .collect(),
    )
    .await
    .expect("append");
    db_a.append(vec![NewEvent::new("{\"a\":3}")])
        .await
        .expect("append");
    sync(&a, &b, "s").await;
    assert_eq!(contents(&db_a).await.len(), 6);
    assert_eq!(contents(&db_a).await, contents(&db_b).await);
    assert_eq!(sync(&a, &b, "s").await, (0, 0), "nothing new moves nothing");

    // Many events: pages of at most SYNC_PAGE_EVENTS_MAX.
    for _ in 0..3 {
        db_b.append((0..10_000).map(|n| NewEvent::new(format!("{n}"))).collect())
            .await
            .expect("append");
    }
    let (_, received) = sync(&a, &b, "s").await;
    assert!(received >= 30_000, "received {received}");
    assert_eq!(contents(&db_a).await, contents(&db_b).await);

    // One id, two values: the smaller bytes win on both, and both list the
    // loser.
    let id = EventId::from_parts(1_700_000_000_000, 77);
    db_a.append(vec![NewEvent::with_id(id, "\"b\"")])
        .await
        .expect("append");
    db_b.append(vec![NewEvent::with_id(id, "\"a\"")])
        .await
        .expect("append");
    sync(&a, &b, "s").await;
    let mut listed = Vec::new();
    for db in [&db_a, &db_b] {
        let kept = db.get(&[id]).await.expect("get").events[0].data.clone();
        assert_eq!(&kept[..], b"\"a\"");
        listed.extend(conflicts(db).await);
    }
    assert!(!listed.is_empty(), "the loser is listed");
    assert!(
        listed
            .iter()
            .all(|c| c.id == id && &c.lost[0][..] == b"\"b\""),
        "{listed:?}"
    );
    assert_eq!(contents(&db_a).await, contents(&db_b).await);
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_lists_a_conflict_even_where_the_values_never_met() {
    lists_converge(wire::VERSION).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_converge_with_a_first_release_peer_too() {
    lists_converge(wire::VERSION_OLDEST).await;
}

async fn lists_converge(version: u8) {
    let a = Served::start(Config::in_memory()).await;
    let b = Served::start(Config::in_memory()).await;
    let c = Served::start(Config::in_memory()).await;
    let id = EventId::from_parts(1_700_000_000_000, 78);
    let db_a = a.node.create_database("s").await.expect("create");
    let db_c = c.node.create_database("s").await.expect("create");
    db_a.append(vec![NewEvent::with_id(id, "\"small\"")])
        .await
        .expect("append");
    db_c.append(vec![NewEvent::with_id(id, "\"tall\"")])
        .await
        .expect("append");
    // b gets a's value, then meets c's; c keeps a's smaller one. a and c
    // never sync with each other.
    sync_in(&b, &a, "s", version).await;
    sync_in(&c, &b, "s", version).await;
    let db_b = b.node.database("s").expect("b has it");
    assert_eq!(conflicts(&db_b).await.len(), 1);
    assert_eq!(conflicts(&db_c).await.len(), 1);
    let expected = conflicts(&db_c).await;
    assert_eq!(&expected[0].lost[0][..], b"\"tall\"");
    if version < wire::VERSION {
        // a gets back its own value only: it never sees c's.
        let (_, received) = sync_in(&b, &a, "s", version).await;
        assert_eq!(received, 0);
        assert_eq!(conflicts(&db_a).await.len(), 0);
        // a pulls b's list when its rounds show b lists a loser.
        sync_in(&a, &b, "s", version).await;
    } else {
        // Lists travel both ways within a round: b, which a only ever
        // dials, passes the loser on to a when b starts the round.
        let (_, received) = sync_in(&b, &a, "s", version).await;
        assert_eq!(received, 0, "a lacks no event");
    }
    assert_eq!(conflicts(&db_b).await, expected);
    assert_eq!(conflicts(&db_a).await, expected);
    // Nothing changes after: lists do not grow from being read again.
    sync_in(&a, &b, "s", version).await;
    sync_in(&b, &c, "s", version).await;
    assert_eq!(conflicts(&db_a).await, expected);
    for served in [c, b, a] {
        served.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_node_gets_everything_back_and_its_new_writes_flow_out() {
    let a = Served::start(Config::in_memory()).await;
    let b = Served::start(Config::in_memory()).await;
    let db_a = a.node.create_database("s").await.expect("create");
    db_a.append((0..50).map(|n| NewEvent::new(format!("{n}"))).collect())
        .await
        .expect("append");
    sync(&a, &b, "s").await;
    b.stop().await;

    // b's data directory is gone: a new, empty node in its place.
    let b = Served::start(Config::in_memory()).await;
    sync(&b, &a, "s").await;
    let db_b = b.node.database("s").expect("database");
    assert_eq!(
        contents(&db_b).await,
        contents(&db_a).await,
        "everything came back"
    );
    db_b.append(vec![NewEvent::new("\"after\"")])
        .await
        .expect("append");
    sync(&a, &b, "s").await;
    assert_eq!(
        contents(&db_a).await.len(),
        51,
        "what the wiped node writes flows out"
    );
    b.stop().await;
    a.stop().await;
}

/// Keeps the first message a round sends, and fails the round there.
#[derive(Default)]
struct Capture(std::sync::Mutex<Option<bytes::Bytes>>);

impl Transport for Capture {
    fn post(&self, _path: String, body: bytes::Bytes) -> Sending<'_> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_or_insert(body);
        Box::pin(async { Err(TransportError("kept, not sent".to_owned())) })
    }
}

/// Someone holding the token sends b an offer in p's name, copied from p's
/// own and bent: a head of 2^62 and an empty push page that ends there.
/// Believed, it parked b's cursor into p past everything p would write, and
/// b received nothing more from p, even after p restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_offer_is_refused_and_moves_no_cursor() {
    let storage = laterbase::MemoryStorage::new();
    let p = Served::start(Config::memory(storage.clone())).await;
    let b = Served::start(Config::in_memory()).await;
    let db_p = p.node.create_database("s").await.expect("create");
    db_p.append((0..10).map(|n| NewEvent::new(format!("{n}"))).collect())
        .await
        .expect("append");
    sync(&b, &p, "s").await;

    let capture = Capture::default();
    round(&db_p, b.node.id(), &capture, wire::VERSION)
        .await
        .expect_err("the capture fails the round");
    let honest = capture.0.lock().expect("lock").clone().expect("an offer");
    let mut offer = wire::decode_offer(&honest).expect("decodes");
    offer.summary.head_lc = 1 << 62;
    offer.push.to.lc = 1 << 62;
    offer.push.entries = Entries::Ids(Vec::new());
    offer.push.held.clear();
    let forger = HttpTransport::new(&b.url, p.node.id(), None);
    let refused = forger
        .post(
            "/sync/s/offer".to_owned(),
            wire::encode_offer(&offer, wire::VERSION),
        )
        .await
        .expect_err("the forged offer is refused");
    assert!(
        refused.0.contains("offer refused") && refused.0.contains("carries 0"),
        "{refused}"
    );

    // p writes on, restarts (a new epoch of its log) and writes more: b
    // gets every event.
    db_p.append((10..15).map(|n| NewEvent::new(format!("{n}"))).collect())
        .await
        .expect("append");
    p.stop().await;
    let p = Served::start(Config::memory(storage)).await;
    let db_p = p.node.database("s").expect("database");
    db_p.append((15..20).map(|n| NewEvent::new(format!("{n}"))).collect())
        .await
        .expect("append");
    sync(&b, &p, "s").await;
    let db_b = b.node.database("s").expect("database");
    assert_eq!(contents(&db_b).await.len(), 20);
    assert_eq!(contents(&db_b).await, contents(&db_p).await);
    b.stop().await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restored_from_an_old_copy_resyncs_without_gaps() {
    let storage = laterbase::MemoryStorage::new();
    let a = Served::start(Config::memory(storage.clone())).await;
    let b = Served::start(Config::in_memory()).await;
    let db_a = a.node.create_database("s").await.expect("create");
    db_a.append((0..10).map(|n| NewEvent::new(format!("{n}"))).collect())
        .await
        .expect("append");
    sync(&a, &b, "s").await;
    let backup = storage.crash_copy();
    db_a.append((10..20).map(|n| NewEvent::new(format!("{n}"))).collect())
        .await
        .expect("append");
    sync(&a, &b, "s").await;
    a.stop().await;

    // a comes back from the copy taken at 10 events, and writes others.
    let a = Served::start(Config::memory(backup)).await;
    let db_a = a.node.database("s").expect("database");
    db_a.append(
        (0..5)
            .map(|n| NewEvent::new(format!("\"restored {n}\"")))
            .collect(),
    )
    .await
    .expect("append");
    sync(&b, &a, "s").await;
    let db_b = b.node.database("s").expect("database");
    assert_eq!(
        contents(&db_a).await.len(),
        25,
        "a got back what only b still had"
    );
    assert_eq!(
        contents(&db_a).await,
        contents(&db_b).await,
        "b did not skip a's new writes"
    );
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restored_from_an_online_backup_is_recognised_by_its_peers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("a");
    let copy = dir.path().join("backup");
    let a = Served::start(Config::new(&data)).await;
    let b = Served::start(Config::in_memory()).await;
    let db_a = a.node.create_database("s").await.expect("create");
    db_a.append((0..10).map(|n| NewEvent::new(format!("{n}"))).collect())
        .await
        .expect("append");
    let records = a.node.backup(&copy).await.expect("backup while serving");
    assert!(records >= 10);
    db_a.append((10..20).map(|n| NewEvent::new(format!("{n}"))).collect())
        .await
        .expect("append");
    sync(&a, &b, "s").await;
    let a_id = a.node.id();
    a.stop().await;

    let a = Served::start(Config::new(&copy)).await;
    assert_eq!(a.node.id(), a_id, "the restored node keeps its id");
    let db_a = a.node.database("s").expect("database");
    assert_eq!(
        db_a.lc(),
        10,
        "the copy holds what was durable when it was taken"
    );
    db_a.append(
        (0..5)
            .map(|n| NewEvent::new(format!("\"restored {n}\"")))
            .collect(),
    )
    .await
    .expect("append");
    sync(&a, &b, "s").await;
    let db_b = b.node.database("s").expect("database");
    assert_eq!(contents(&db_a).await.len(), 25);
    assert_eq!(contents(&db_a).await, contents(&db_b).await);
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_push_to_a_peer_that_pulls_the_same_events_in_bulk() {
    let a = Served::start(Config::in_memory()).await;
    let b = Served::start(Config::in_memory()).await;
    let db_a = a.node.create_database("s").await.expect("create");
    db_a.append((0..100).map(|n| NewEvent::new(format!("{n}"))).collect())
        .await
        .expect("append");
    let db_b = b.node.create_database("s").await.expect("create");
    // b's first round pulls from nothing: a learns that b pulls in bulk.
    let to_a = HttpTransport::new(&a.url, b.node.id(), None);
    let first = round(&db_b, a.node.id(), &to_a, wire::VERSION)
        .await
        .expect("round");
    assert_eq!(first.events_in, 100, "b pulled a's events itself");
    // Had b not got them all, a's own round would carry them again; it
    // pushes nothing meanwhile.
    db_a.append(vec![NewEvent::new("\"one more\"")])
        .await
        .expect("append");
    let to_b = HttpTransport::new(&b.url, a.node.id(), None);
    let held_back = round(&db_a, b.node.id(), &to_b, wire::VERSION)
        .await
        .expect("round");
    assert_eq!(
        (held_back.ids_out, held_back.events_out),
        (0, 0),
        "no push while b pulls in bulk"
    );
    // Once b's offer says it is caught up, a pushes again.
    sync(&b, &a, "s").await;
    db_a.append(vec![NewEvent::new("\"and another\"")])
        .await
        .expect("append");
    let pushed = round(&db_a, b.node.id(), &to_b, wire::VERSION)
        .await
        .expect("round");
    // (a learns where b's cursor stands from b's offers, one round behind:
    // the event b pulled in its last round is offered once more, as an id.)
    assert!(
        (1..=2).contains(&pushed.ids_out),
        "the new event is offered: {pushed:?}"
    );
    assert_eq!(pushed.events_out, 1, "and only it is sent");
    assert_eq!(contents(&db_a).await, contents(&db_b).await);
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_joins_later_lists_a_conflict_of_values_with_whitespace() {
    whitespace_conflict_listed(wire::VERSION).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_joins_later_lists_a_conflict_of_values_with_whitespace_in_version_2() {
    whitespace_conflict_listed(wire::VERSION_OLDEST).await;
}

/// a keeps `{"v":1}\n` and lists `{"v":2}\n`, both written through the
/// binary encoding (their bytes kept, trailing newline included); b joins
/// later, learns a's list, and lists the same bytes: values are compared
/// as bytes, not after a JSON round trip, which trims them.
async fn whitespace_conflict_listed(version: u8) {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use laterbase::http::binary;

    let a = Served::start(Config::in_memory()).await;
    let b = Served::start(Config::in_memory()).await;
    let api = crate::http::Api::serving(a.node.clone(), |state| state);
    api.create("s").await;
    let id = EventId::from_parts(1_700_000_000_000, 79);
    let (kept, lost) = (&b"{\"v\":1}\n"[..], &b"{\"v\":2}\n"[..]);
    let request = Request::post("/db/s/e")
        .header("content-type", binary::CONTENT_TYPE)
        .body(Body::from(binary::encode_batch(&[NewEvent::with_id(
            id, lost,
        )])))
        .expect("request");
    assert_eq!(api.send(request).await.0, StatusCode::OK);
    // The other value comes to a as sync would bring it: the smaller
    // bytes win, and a lists the value it had.
    let db_a = a.node.database("s").expect("created");
    let mut other = db_a.get(&[id]).await.expect("get").events.remove(0);
    other.data = bytes::Bytes::from_static(kept);
    assert_eq!(db_a.merge(vec![other]).await.expect("merge").conflicts, 1);
    let expected = conflicts(&db_a).await;
    assert_eq!(expected.len(), 1);
    assert_eq!(
        (&expected[0].kept[..], &expected[0].lost[0][..]),
        (kept, lost)
    );

    // b joins later and starts the rounds.
    sync_in(&b, &a, "s", version).await;
    let db_b = b.node.database("s").expect("b has it");
    assert_eq!(
        &db_b.get(&[id]).await.expect("get").events[0].data[..],
        kept,
        "b keeps the same bytes"
    );
    assert_eq!(conflicts(&db_b).await, expected, "and lists the same loser");
    b.stop().await;
    a.stop().await;
}
