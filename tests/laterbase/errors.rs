//! Errors keep their cause: a peer's malformed database list, a sync
//! responder's failures, each with its own message and code.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use laterbase::replication::driver::{Sending, Transport, TransportError, round};
use laterbase::storage::memory::ReadFault;
use laterbase::{Config, MemoryStorage, NewEvent, Node, ReplicationConfig};
use serde_json::{Value, json};
use std::sync::Mutex;

use crate::http::Api;

/// Posts a sync message to the responder's route as node `from`.
async fn post_sync(
    api: &Api,
    from: laterbase::EventId,
    path: &str,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let request = Request::builder()
        .method("POST")
        .uri(path)
        .header("laterbase-node", from.to_string())
        .header("content-type", laterbase::sync::wire::CONTENT_TYPE)
        .body(Body::from(body))
        .expect("request");
    let (status, body) = api.send(request).await;
    // A success is a binary sync message; an error is JSON in the
    // contract's shape (`Null` here when it is not, which fails the checks).
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, value)
}

#[tokio::test]
async fn a_sync_message_that_does_not_decode_is_invalid_event() {
    let api = Api::new().await;
    api.create("yard").await;
    let peer = laterbase::EventId::from_parts(1, 1);

    // An unknown wire version: the answer names the newest version spoken
    // here, in the words the first release used (version 2), which a node
    // that speaks a newer one falls back on.
    let answer = post_sync(&api, peer, "/sync/yard/offer", vec![9]).await;
    assert_eq!(answer.0, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer.1,
        json!({
            "error": "invalid_event",
            "message": "sync failed: malformed sync message: version 9, this node speaks 3"
        })
    );
    // A known version, then garbage.
    let answer = post_sync(&api, peer, "/sync/yard/fill", vec![2, 0xff, 0xff]).await;
    assert_eq!(answer.0, StatusCode::BAD_REQUEST, "{}", answer.1);
    assert_eq!(answer.1["error"], "invalid_event");
    assert!(
        answer.1["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("sync failed: malformed sync message: ")),
        "{}",
        answer.1
    );
}

#[tokio::test]
async fn a_refused_offer_for_an_unknown_database_creates_nothing() {
    let api = Api::new().await;
    let peer = laterbase::EventId::from_parts(1, 1);
    for body in [b"garbage".to_vec(), vec![9], vec![3, 0xff], Vec::new()] {
        let answer = post_sync(&api, peer, "/sync/fresh/offer", body).await;
        assert_eq!(answer.0, StatusCode::BAD_REQUEST, "{}", answer.1);
        assert_eq!(answer.1["error"], "invalid_event", "{}", answer.1);
    }
    // An offer that decodes but says what no log can be: its summary names
    // no epoch, and its page ends past its head.
    let cursor = laterbase::sync::Cursor {
        incarnation: 7,
        epoch: 9,
        lc: 0,
        us: 0,
    };
    let forged = laterbase::sync::Offer {
        pull: None,
        bulk: false,
        summary: laterbase::sync::Summary {
            incarnation: 7,
            history: Vec::new(),
            head_lc: 0,
            head_us: 0,
        },
        push: laterbase::sync::Page {
            from: cursor,
            to: laterbase::sync::Cursor { lc: 5, ..cursor },
            more: false,
            entries: laterbase::sync::Entries::Ids(Vec::new()),
            held: Vec::new(),
        },
        losers_listed: 0,
    };
    let body = laterbase::sync::wire::encode_offer(&forged, laterbase::sync::wire::VERSION);
    let answer = post_sync(&api, peer, "/sync/fresh/offer", body.to_vec()).await;
    assert_eq!(answer.0, StatusCode::BAD_REQUEST, "{}", answer.1);
    assert!(
        answer.1["message"]
            .as_str()
            .is_some_and(|m| m.contains("offer refused")),
        "{}",
        answer.1
    );
    let oversized = vec![3; laterbase::limits::SYNC_BODY_BYTES_MAX + 1];
    let answer = post_sync(&api, peer, "/sync/fresh/offer", oversized).await;
    assert_eq!(answer.0, StatusCode::PAYLOAD_TOO_LARGE, "{}", answer.1);
    assert_eq!(
        api.get("/db").await.1,
        json!({"databases": []}),
        "a 4xx changes nothing"
    );
    assert_eq!(api.get("/db/fresh").await.0, StatusCode::NOT_FOUND);
}

/// A transport that keeps the first message it is given and delivers none.
#[derive(Default)]
struct Capture(Mutex<Option<bytes::Bytes>>);

impl Transport for Capture {
    fn post(&self, _path: String, body: bytes::Bytes) -> Sending<'_> {
        *self.0.lock().expect("lock") = Some(body);
        Box::pin(async { Err(TransportError("captured".to_owned())) })
    }
}

#[tokio::test]
async fn a_sync_responder_whose_disk_fails_answers_as_a_write_would() {
    // A well-formed offer, from a node that holds one event.
    let initiator = Node::open(Config::in_memory()).await.expect("open");
    let local = initiator.create_database("yard").await.expect("create");
    local
        .append(vec![NewEvent::new("1")])
        .await
        .expect("append");
    let storage = MemoryStorage::new();
    let responder = Api::on(Config::memory(storage.clone()), None).await;
    responder.create("yard").await;
    let capture = Capture::default();
    let captured = round(
        &local,
        responder.node.id(),
        &capture,
        laterbase::sync::wire::VERSION,
    )
    .await;
    assert!(captured.is_err(), "the capture delivers nothing");
    let offer = capture.0.lock().expect("lock").clone().expect("an offer");

    // The same offer, again and again.
    let post_offer = || {
        post_sync(
            &responder,
            initiator.id(),
            "/sync/yard/offer",
            offer.to_vec(),
        )
    };
    storage.fail_next_read(ReadFault::Any, std::io::ErrorKind::StorageFull);
    let answer = post_offer().await;
    assert_eq!(answer.0, StatusCode::INSUFFICIENT_STORAGE, "{}", answer.1);
    assert_eq!(answer.1["error"], "insufficient_storage");

    storage.fail_next_read(ReadFault::Any, std::io::ErrorKind::Other);
    let answer = post_offer().await;
    assert_eq!(answer.0, StatusCode::INTERNAL_SERVER_ERROR, "{}", answer.1);
    assert_eq!(answer.1["error"], "internal");

    // And with the disk back, the same offer is answered.
    let (status, _) = post_offer().await;
    assert_eq!(status, StatusCode::OK);
    initiator.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_whose_database_list_is_malformed_shows_on_peers() {
    // A "peer" that names a node and answers GET /db with no list.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let fake = axum::Router::new().route(
        "/db",
        axum::routing::get(|| async {
            (
                [("laterbase-node", "01HF7YAT00000000000000000A")],
                axum::Json(json!({"databases": "yard"})),
            )
        }),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(laterbase::server::serve(listener, fake, async {
        let _ = stopped.await;
    }));

    let node = Node::open(Config::in_memory()).await.expect("open");
    let replication = node
        .replicate(ReplicationConfig::new(vec![url]))
        .await
        .expect("replicate");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let error = loop {
        if let Some(error) = replication.peers()[0].last_error.clone() {
            break error;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the pass never failed: a malformed list was read as no databases"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert!(
        error.contains("GET /db answer is not a list of databases"),
        "{error}"
    );
    node.shutdown().await.expect("shutdown");
    let _ = stop.send(());
    server.await.expect("server");
}
