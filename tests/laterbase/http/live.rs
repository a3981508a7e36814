//! The live changes feed over Server-Sent Events: catch-up then live,
//! resumed from `Last-Event-ID`, heartbeats, its errors before the stream
//! starts, the bound on open streams, and the end of every stream when the
//! server stops.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use laterbase::NewEvent;
use serde_json::Value;

use super::{Api, assert_error};

pub(super) fn live(uri: &str, last_event_id: Option<&str>) -> Request<Body> {
    let mut request = Request::builder().method("GET").uri(uri);
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    request.body(Body::empty()).expect("request")
}

/// A stream's body, read a message at a time: a chunk may carry several.
pub(super) struct Messages {
    body: Body,
    pending: String,
}

impl From<Body> for Messages {
    fn from(body: Body) -> Messages {
        Messages {
            body,
            pending: String::new(),
        }
    }
}

/// The next message of a stream, with the blank line that ends it, or
/// `None` once it ended.
pub(super) async fn next_message(body: &mut Messages) -> Option<String> {
    loop {
        if let Some(end) = body.pending.find("\n\n") {
            return Some(body.pending.drain(..end + 2).collect());
        }
        let frame = body.body.frame().await?.expect("a frame");
        if let Ok(data) = frame.into_data() {
            body.pending
                .push_str(std::str::from_utf8(&data).expect("text"));
        }
    }
}

/// The `lc` a message names as its id, and its event's JSON.
fn event_of(message: &str) -> (u64, Value) {
    let mut lines = message.lines();
    let id = lines.next().and_then(|line| line.strip_prefix("id: "));
    assert_eq!(lines.next(), Some("event: event"), "{message}");
    let data: String = lines
        .filter_map(|line| line.strip_prefix("data: "))
        .collect::<Vec<_>>()
        .join("\n");
    let event: Value = serde_json::from_str(&data).expect("the event as JSON");
    let lc = id.and_then(|id| id.parse().ok()).expect("an lc as the id");
    assert_eq!(event["lc"], lc, "{message}");
    (lc, event)
}

async fn write(api: &Api, count: usize) {
    let db = api.node.database("live").expect("the database");
    let events = (0..count)
        .map(|n| NewEvent::new(format!("{{\"n\":{n}}}")))
        .collect();
    db.append(events).await.expect("appended");
}

#[tokio::test]
async fn a_live_feed_sends_the_stored_events_then_each_new_one() {
    let api = Api::new().await;
    api.create("live").await;
    write(&api, 3).await;
    let response = api.open(live("/db/live/e?feed=live", None)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body: Messages = response.into_body().into();
    for lc in 1..=3 {
        let (seen, event) = event_of(&next_message(&mut body).await.expect("a message"));
        assert_eq!(seen, lc);
        assert_eq!(
            event["data"]["n"],
            lc - 1,
            "the event as the changes feed shows it"
        );
    }
    write(&api, 2).await;
    for lc in 4..=5 {
        assert_eq!(
            event_of(&next_message(&mut body).await.expect("live")).0,
            lc
        );
    }
}

#[tokio::test]
async fn a_live_feed_resumes_after_the_last_event_id() {
    let api = Api::new().await;
    api.create("live").await;
    write(&api, 6).await;
    let mut body: Messages = api
        .open(live("/db/live/e?feed=live&lc=1", Some("4")))
        .await
        .into_body()
        .into();
    assert_eq!(
        event_of(&next_message(&mut body).await.expect("a message")).0,
        5
    );
    // Asked by the Accept header instead of feed=live.
    let request = Request::builder()
        .uri("/db/live/e?lc=5")
        .header("accept", "text/event-stream")
        .body(Body::empty())
        .expect("request");
    let mut body: Messages = api.open(request).await.into_body().into();
    assert_eq!(
        event_of(&next_message(&mut body).await.expect("a message")).0,
        6
    );
}

#[tokio::test]
async fn a_silent_live_feed_sends_heartbeats() {
    let api = Api::new().await;
    api.create("live").await;
    let mut body: Messages = api
        .open(live("/db/live/e?feed=live&heartbeat_ms=100", None))
        .await
        .into_body()
        .into();
    assert_eq!(
        next_message(&mut body).await.as_deref(),
        Some(": heartbeat\n\n")
    );
    write(&api, 1).await;
    // A heartbeat may come first; the event does.
    loop {
        let message = next_message(&mut body).await.expect("a message");
        if message.starts_with(':') {
            continue;
        }
        assert_eq!(event_of(&message).0, 1);
        break;
    }
}

#[tokio::test]
async fn a_live_feed_refuses_what_it_cannot_follow_before_it_starts() {
    let api = Api::new().await;
    api.create("live").await;
    for (uri, status, code) in [
        (
            "/db/live/e?feed=live&heartbeat_ms=99",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/db/live/e?feed=live&heartbeat_ms=300001",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/db/live/e?feed=live&keys=01JDQ8Z4Y4M5V6T4Q2W3E8R9TA",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/db/live/e?feed=live&after=01JDQ8Z4Y4M5V6T4Q2W3E8R9TA",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/db/live/e?feed=later",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/db/live/e?heartbeat_ms=1000",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/db/absent/e?feed=live",
            StatusCode::NOT_FOUND,
            "db_not_found",
        ),
    ] {
        let answer = api.get(uri).await;
        assert_error(&answer, status, code);
    }
    let (status, _) = api.send(live("/db/live/e?feed=live", Some("four"))).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a Last-Event-ID that is no lc"
    );
}

#[tokio::test]
async fn live_feeds_are_bounded_and_end_when_the_server_stops() {
    let node = laterbase::Node::open(laterbase::Config::in_memory())
        .await
        .expect("open");
    node.create_database("live").await.expect("created");
    let mut handle = None;
    let api = Api::serving(node, |state| {
        let state = state.live_streams_max(2);
        handle = Some(state.clone());
        state
    });
    let state = handle.expect("the state");
    let first = api.open(live("/db/live/e?feed=live", None)).await;
    let second = api.open(live("/db/live/e?feed=live", None)).await;
    assert_eq!(
        (first.status(), second.status()),
        (StatusCode::OK, StatusCode::OK)
    );
    let answer = api.get("/db/live/e?feed=live").await;
    assert_error(&answer, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    drop(second);
    let third = api.open(live("/db/live/e?feed=live", None)).await;
    assert_eq!(
        third.status(),
        StatusCode::OK,
        "a closed stream gives back its room"
    );
    state.end_live_streams();
    for response in [first, third] {
        let mut body: Messages = response.into_body().into();
        assert_eq!(next_message(&mut body).await, None, "the stream ends");
    }
    let answer = api.get("/db/live/e?feed=live").await;
    assert_error(&answer, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
}

/// Reads `body` until the message of `last`, asserting that the messages
/// are those of `first..=last`, each once, in order, each event the one
/// written with that `lc` (`{"n": lc, ...}`).
async fn read_in_order(body: &mut Messages, first: u64, last: u64) {
    let mut expected = first;
    while expected <= last {
        let message = next_message(body).await.expect("the stream goes on");
        if message.starts_with(':') {
            continue;
        }
        let (lc, event) = event_of(&message);
        assert_eq!(lc, expected, "each event once, in order");
        assert_eq!(event["data"]["n"], lc, "the event of that lc");
        expected += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_that_start_behind_or_fall_behind_the_shared_tail_see_every_event_once() {
    let api = Api::new().await;
    api.create("live").await;
    let db = api.node.database("live").expect("the database");
    let pad = "x".repeat(1024);
    let mut written = 0_u64;
    let mut append = async |count: u64| {
        let events = (written + 1..=written + count)
            .map(|n| NewEvent::new(format!("{{\"n\":{n},\"pad\":\"{pad}\"}}")))
            .collect();
        db.append(events).await.expect("appended");
        written += count;
        written
    };
    append(500).await;
    // One stream from the start, behind where the database's shared tail
    // begins; one from the head, which the tail serves.
    let mut behind: Messages = api
        .open(live("/db/live/e?feed=live", None))
        .await
        .into_body()
        .into();
    let mut head: Messages = api
        .open(live("/db/live/e?feed=live&lc=500", None))
        .await
        .into_body()
        .into();
    read_in_order(&mut behind, 1, 10).await;
    // 12 MiB written while neither reads: more than the tail keeps, so
    // both fall behind it, and catch up on their own.
    let mut last = 0;
    for _ in 0..24 {
        last = append(500).await;
    }
    read_in_order(&mut head, 501, 1_000).await;
    // Written while one reads and the other does not.
    last = append(500).await.max(last);
    read_in_order(&mut head, 1_001, last).await;
    read_in_order(&mut behind, 11, last).await;
    // Both at the head now, served by the tail again.
    let last = append(10).await;
    read_in_order(&mut head, last - 9, last).await;
    read_in_order(&mut behind, last - 9, last).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_feed_at_the_head_ends_when_the_node_shuts_down() {
    let api = Api::new().await;
    api.create("live").await;
    write(&api, 2).await;
    // From the head: what comes next, the database's shared tail sends.
    let mut body: Messages = api
        .open(live("/db/live/e?feed=live&lc=2", None))
        .await
        .into_body()
        .into();
    write(&api, 2).await;
    for lc in 3..=4 {
        let message = next_message(&mut body).await.expect("a message");
        assert_eq!(event_of(&message).0, lc);
    }
    api.node.shutdown().await.expect("shutdown");
    assert_eq!(next_message(&mut body).await, None, "the stream ends");
}
