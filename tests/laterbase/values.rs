//! Values at the edges: what sync refuses because no read could serve it
//! (and how that shows), and the largest values that must sync.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use bytes::Bytes;
use laterbase::limits::RECORDED_AT_MS_MAX;
use laterbase::storage::{Storage, StoredEvent, WriteBatch};
use laterbase::sync::{Cursor, Entries, EpochStart, Offer, Page, Summary, wire};
use laterbase::{Config, Event, EventId, MemoryStorage, Node, ReplicationConfig, Timestamp};
use serde_json::Value;

use crate::http::Api;
use crate::sync::Served;

/// The time of ids and `recorded_at`s that every read can write.
const WRITABLE_MS: u64 = 1_700_000_000_000;

fn event(id: EventId, recorded_at_ms: u64, data: &'static str) -> Event {
    Event {
        id,
        data: Bytes::from_static(data.as_bytes()),
        recorded_at: Timestamp(recorded_at_ms),
        lc: 0,
    }
}

/// Message 1 from a node whose log is `events` and which pushes them whole,
/// as a responder of its own would never be sent but a peer may send.
fn offer_of(events: Vec<Event>) -> Vec<u8> {
    let (incarnation, epoch) = (7, 9);
    let cursor = |lc| Cursor {
        incarnation,
        epoch,
        lc,
        us: 0,
    };
    let offer = Offer {
        pull: None,
        bulk: false,
        summary: Summary {
            incarnation,
            history: vec![EpochStart {
                epoch,
                start_lc: 0,
                start_us: 0,
            }],
            head_lc: events.len() as u64,
            head_us: 0,
        },
        push: Page {
            from: cursor(0),
            to: cursor(events.len() as u64),
            more: false,
            entries: Entries::Events(events),
            held: Vec::new(),
        },
        losers_listed: 0,
    };
    wire::encode_offer(&offer, wire::VERSION).to_vec()
}

/// Posts message 1 to `path` of the router as node `from`.
async fn post_offer(api: &Api, from: EventId, database: &str, body: Vec<u8>) -> StatusCode {
    let request = Request::post(format!("/sync/{database}/offer"))
        .header("laterbase-node", from.to_string())
        .header("content-type", wire::CONTENT_TYPE)
        .body(Body::from(body))
        .expect("request");
    api.send(request).await.0
}

/// `GET` of `uri`, whose answer must be JSON whatever its status.
async fn read_json(api: &Api, uri: &str) -> (StatusCode, Value) {
    let (status, body) = api
        .send(Request::get(uri).body(Body::empty()).expect("request"))
        .await;
    let value = serde_json::from_slice(&body).unwrap_or_else(|error| {
        panic!(
            "{uri}: {status} but not JSON ({error}): {}",
            String::from_utf8_lossy(&body)
        )
    });
    (status, value)
}

#[tokio::test]
async fn a_peer_s_values_no_read_could_serve_are_skipped_and_the_rest_stored() {
    let api = Api::new().await;
    let peer = EventId::from_parts(WRITABLE_MS, 1);
    let late: EventId = "7ZZZZZZZZZZZZZZZZZZZZZZZZZ".parse().expect("an id");
    let good = EventId::from_parts(WRITABLE_MS, 2);
    let last = EventId::from_parts(WRITABLE_MS, 3);
    let offer = offer_of(vec![
        event(good, WRITABLE_MS, "{\"ok\":1}"),
        // Past what RFC 3339 writes: no read could show it.
        event(late, 1 << 63, "{\"bad\":1}"),
        // The last moment RFC 3339 writes, and the id of the latest time
        // (year 10889: ids print as ULIDs, their time is never written).
        event(EventId::from_u128(u128::MAX - 1), RECORDED_AT_MS_MAX, "2"),
        event(last, WRITABLE_MS, "3"),
    ]);
    assert_eq!(
        post_offer(&api, peer, "refusing", offer.clone()).await,
        StatusCode::OK
    );
    // Every read answers JSON, with what was stored and nothing else.
    for uri in [
        "/db/refusing/e?lc=0",
        "/db/refusing/e?after=00000000000000000000000000",
        "/db/refusing/e",
    ] {
        let (status, page) = read_json(&api, uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {page}");
        let ids: Vec<&str> = page["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter_map(|event| event["id"].as_str())
            .collect();
        assert_eq!(
            ids.len(),
            3,
            "{uri}: the three servable events, whatever their order: {page}"
        );
        assert!(!ids.contains(&late.to_string().as_str()), "{uri}: {page}");
    }
    let (status, page) = read_json(
        &api,
        &format!(
            "/db/refusing/e?keys={late},{last},{}",
            EventId::from_u128(u128::MAX - 1)
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["missing"], serde_json::json!([late.to_string()]));
    assert_eq!(page["events"][1]["recorded_at"], "9999-12-31T23:59:59.999Z");

    // The refusal shows: on /peers under the node that sent it (it is no
    // peer of this node's), in the log and in the metrics.
    let (_, peers) = read_json(&api, "/peers").await;
    let caller = &peers["callers"][0];
    assert_eq!(caller["node"], peer.to_string(), "{peers}");
    assert_eq!(caller["refused"], 1, "{peers}");
    let last_refused = caller["last_refused"].as_str().expect("the refusal");
    for part in ["refusing", &late.to_string(), "recorded_at", "RFC 3339"] {
        assert!(last_refused.contains(part), "{part}: {last_refused}");
    }
    let (_, metrics) = api
        .send(
            Request::get("/metrics")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    let metrics = String::from_utf8_lossy(&metrics).into_owned();
    assert!(
        metrics.contains(
            "laterbase_merge_refused_total{database=\"refusing\",reason=\"recorded_at\"} 1"
        ),
        "{metrics}"
    );
    // The same page again stores nothing new and refuses the same value.
    assert_eq!(
        post_offer(&api, peer, "refusing", offer).await,
        StatusCode::OK
    );
    assert_eq!(read_json(&api, "/db/refusing").await.1["lc"], 3);
    assert_eq!(
        read_json(&api, "/peers").await.1["callers"][0]["refused"],
        2
    );
}

#[tokio::test]
async fn an_event_no_read_can_write_answers_an_error_not_broken_json() {
    // A data directory written before merges refused such events.
    let storage = MemoryStorage::new();
    let node = Node::open(Config::memory(storage.clone()))
        .await
        .expect("open");
    node.create_database("old").await.expect("create");
    node.shutdown().await.expect("shutdown");
    let late = EventId::from_parts(WRITABLE_MS, 5);
    let store = storage.open_database("old").expect("the database");
    store
        .write(&WriteBatch {
            first_lc: 1,
            first_us: 1,
            events: vec![StoredEvent {
                id: late,
                recorded_at: Timestamp(1 << 63),
                data: Bytes::from_static(b"{}"),
            }],
            ..WriteBatch::default()
        })
        .expect("write");
    storage.persist().expect("persist");
    let api = Api::on(Config::memory(storage), None).await;
    for uri in [
        "/db/old/e".to_owned(),
        format!("/db/old/e?keys={late}"),
        "/db/old/e?after=00000000000000000000000000".to_owned(),
    ] {
        let (status, answer) = read_json(&api, &uri).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{uri}: {answer}");
        assert_eq!(answer["error"], "internal", "{uri}: {answer}");
    }
    // The binary encoding carries the time as a number: it reads.
    let request = Request::get("/db/old/e")
        .header("accept", laterbase::http::binary::CONTENT_TYPE)
        .body(Body::empty())
        .expect("request");
    let (status, body) = api.send(request).await;
    assert_eq!(status, StatusCode::OK);
    let page = laterbase::http::binary::decode_page(&body).expect("a page");
    assert_eq!(page.events[0].recorded_at, Timestamp(1 << 63));
}

/// Polls `/peers` through `api` until `ready` holds of it, bounded.
async fn peers_until(api: &Api, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, answer) = read_json(api, "/peers").await;
        if ready(&answer) {
            return answer;
        }
        assert!(Instant::now() < deadline, "{answer}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_shows_under_the_peer_that_sent_it() {
    let a = Served::start(Config::in_memory()).await;
    let b = Served::start(Config::in_memory()).await;
    let replication = a
        .node
        .replicate(ReplicationConfig::new(vec![b.url.clone()]))
        .await
        .expect("replicate");
    // a's router, over the same node and its replication.
    let api = Api::serving(a.node.clone(), |state| state.replication(replication));
    let b_id = b.node.id().to_string();
    peers_until(&api, |peers| peers["peers"][0]["node"] == b_id.as_str()).await;
    // b's node id pushes what no read could serve.
    let late = EventId::from_parts(WRITABLE_MS, 9);
    let offer = offer_of(vec![event(late, u64::MAX, "1")]);
    assert_eq!(
        post_offer(&api, b.node.id(), "yard", offer).await,
        StatusCode::OK
    );
    let peers = peers_until(&api, |peers| peers["peers"][0]["refused"] == 1).await;
    let last_refused = peers["peers"][0]["last_refused"].as_str().expect("said");
    assert!(last_refused.contains(&late.to_string()), "{peers}");
    assert_eq!(peers.get("callers"), None, "{peers}");
    b.stop().await;
    a.stop().await;
}

/// The largest event the JSON write route takes: its body, `{"data":"…"}`,
/// at the body limit.
fn largest_json_body() -> String {
    let framing = "{\"data\":\"\"}".len();
    format!(
        "{{\"data\":\"{}\"}}",
        "x".repeat(laterbase::limits::BODY_BYTES_MAX - framing)
    )
}

/// Every event of `database` on `node`, by id: its bytes and `recorded_at`.
async fn held(
    node: &Node,
    database: &str,
) -> std::collections::BTreeMap<EventId, (Bytes, Timestamp)> {
    let db = node.database(database).expect("the database");
    crate::support::read_feed(&db, 10)
        .await
        .into_iter()
        .map(|event| (event.id, (event.data, event.recorded_at)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_events_sync_both_ways() {
    let a = Served::start(Config::in_memory()).await;
    let b = Served::start(Config::in_memory()).await;
    let c = Served::start(Config::in_memory()).await;
    let api = Api::serving(a.node.clone(), |state| state);
    api.create("big").await;
    // The largest event the write route takes, one as large as an append
    // may carry, and events after them.
    let (status, answer) = api.post("/db/big/e", &largest_json_body()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let db = a.node.database("big").expect("created");
    db.append(vec![laterbase::NewEvent::new(vec![
        b'7';
        laterbase::limits::EVENT_BYTES_MAX
    ])])
    .await
    .expect("the largest append");
    db.append(vec![laterbase::NewEvent::new("1")])
        .await
        .expect("append");
    // a pushes to b (the events go in a's fills), c pulls from a (they
    // come in a's replies and delivers).
    crate::sync::sync(&a, &b, "big").await;
    crate::sync::sync(&c, &a, "big").await;
    let expected = held(&a.node, "big").await;
    assert_eq!(expected.len(), 3);
    assert_eq!(held(&b.node, "big").await, expected, "pushed");
    assert_eq!(held(&c.node, "big").await, expected, "pulled");
    for served in [c, b, a] {
        served.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_page_of_events_and_a_page_of_losers_merge_in_one_step() {
    let a = Served::start(Config::in_memory()).await;
    let b = Served::start(Config::in_memory()).await;
    let db = a.node.create_database("lists").await.expect("create");
    // a lists a loser, and holds more events than a page.
    let id = EventId::from_parts(WRITABLE_MS, 11);
    for value in ["\"b\"", "\"a\""] {
        db.merge(vec![event(id, WRITABLE_MS, value)])
            .await
            .expect("merge");
    }
    let page = laterbase::limits::SYNC_PAGE_EVENTS_MAX;
    db.append(
        (0..page)
            .map(|n| laterbase::NewEvent::new(n.to_string()))
            .collect(),
    )
    .await
    .expect("append");
    // b lacks the whole page a pushes, and asks for a's list in the same
    // round: the fill carries both.
    crate::sync::sync(&a, &b, "lists").await;
    assert_eq!(held(&b.node, "lists").await.len(), page + 1);
    let listed = b
        .node
        .database("lists")
        .expect("b has it")
        .conflicts(None, 10)
        .await
        .expect("conflicts");
    assert_eq!(listed.conflicts.len(), 1, "{listed:?}");
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn the_losers_of_one_id_are_bounded_in_bytes() {
    let node = Node::open(Config::in_memory()).await.expect("open");
    let db = node.create_database("heavy").await.expect("create");
    let id = EventId::from_parts(WRITABLE_MS, 12);
    // Four of the largest values, each smaller than the last: each new one
    // wins, and the one it beats is listed while the id's losers hold at
    // most LOSER_BYTES_PER_ID_MAX.
    let limits = (
        laterbase::limits::EVENT_BYTES_MAX,
        laterbase::limits::LOSER_BYTES_PER_ID_MAX,
    );
    for first in [b'd', b'c', b'b', b'a'] {
        let mut data = vec![b'x'; limits.0];
        data[0] = first;
        let receipt = db
            .merge(vec![Event {
                id,
                data: Bytes::from(data),
                recorded_at: Timestamp(WRITABLE_MS),
                lc: 0,
            }])
            .await
            .expect("merge");
        assert_eq!(receipt.refused, 0);
    }
    let page = db.conflicts(None, 10).await.expect("conflicts");
    let lost = &page.conflicts[0].lost;
    assert_eq!(lost.len(), limits.1 / limits.0, "{} listed", lost.len());
    assert_eq!(page.conflicts[0].kept[0], b'a');
    // So a view that folded a value of this id cannot count on finding it
    // listed, and rebuilds rather than refolding by key.
    assert!(laterbase::storage::losers_may_be_missing(lost));
    assert!(!laterbase::storage::losers_may_be_missing(&[
        Bytes::from_static(b"b"),
        Bytes::from(vec![b'c'; limits.1 - limits.0 - 1]),
    ]));
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_value_larger_than_any_write_is_refused_through_sync() {
    let api = Api::new().await;
    let peer = EventId::from_parts(WRITABLE_MS, 1);
    let (huge, fine) = (
        EventId::from_parts(WRITABLE_MS, 13),
        EventId::from_parts(WRITABLE_MS, 14),
    );
    let mut oversized = event(huge, WRITABLE_MS, "");
    oversized.data = Bytes::from(vec![b'x'; laterbase::limits::EVENT_BYTES_MAX + 1]);
    let offer = offer_of(vec![oversized, event(fine, WRITABLE_MS, "1")]);
    assert_eq!(
        post_offer(&api, peer, "oversized", offer).await,
        StatusCode::OK
    );
    let (_, page) = read_json(&api, &format!("/db/oversized/e?keys={huge},{fine}")).await;
    assert_eq!(
        page["missing"],
        serde_json::json!([huge.to_string()]),
        "{page}"
    );
    let (_, peers) = read_json(&api, "/peers").await;
    let caller = peers["callers"]
        .as_array()
        .expect("callers")
        .iter()
        .find(|caller| caller["node"] == peer.to_string())
        .expect("the caller");
    let said = caller["last_refused"].as_str().expect("said");
    assert!(
        said.contains(&huge.to_string()) && said.contains("bytes of data"),
        "{said}"
    );
}
