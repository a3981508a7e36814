//! A view's rows live over Server-Sent Events: every row then each change,
//! resumed from `Last-Event-ID`, one key, the errors before the stream
//! starts, and the bound on open streams, shared with the changes feed.
//! The views are those `views.rs` declares on `fleet`.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use laterbase::NewEvent;
use serde_json::{Value, json};

use super::live::{Messages, live, next_message};
use super::{Api, assert_error};

/// The id a row message names (where a reader resumes from) and its data.
fn row_of(message: &str) -> (u64, Value) {
    let mut lines = message.lines();
    let id = lines
        .next()
        .and_then(|line| line.strip_prefix("id: "))
        .and_then(|id| id.parse().ok())
        .expect("an lc as the id");
    assert_eq!(lines.next(), Some("event: row"), "{message}");
    let data = lines
        .next()
        .and_then(|line| line.strip_prefix("data: "))
        .expect("the row on one data line");
    assert!(lines.all(str::is_empty), "one data line: {message}");
    (id, serde_json::from_str(data).expect("the row as JSON"))
}

/// The next row message of a stream, past any heartbeat.
async fn next_row(body: &mut Messages) -> (u64, Value) {
    loop {
        let message = next_message(body).await.expect("a message");
        if !message.starts_with(':') {
            return row_of(&message);
        }
    }
}

async fn write(api: &Api, readings: &[(&str, f64)]) {
    let db = api.node.database("fleet").expect("the database");
    let events = readings
        .iter()
        .map(|(sensor, celsius)| {
            NewEvent::new(json!({"sensor": sensor, "celsius": celsius}).to_string())
        })
        .collect();
    db.append(events).await.expect("appended");
}

/// The key, the readings and the lc of a row message's data.
fn readings(row: &Value) -> (&str, u64, u64) {
    (
        row["key"].as_str().expect("a sensor"),
        row["value"]["readings"].as_u64().expect("a count"),
        row["lc"].as_u64().expect("an lc"),
    )
}

#[tokio::test]
async fn a_live_view_sends_every_row_then_each_change() {
    let api = Api::new().await;
    api.create("fleet").await;
    write(&api, &[("b", 1.0), ("a", 2.0)]).await;
    let response = api.open(live("/fleet/sensor_stats?feed=live", None)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body: Messages = response.into_body().into();
    let (first_id, first) = next_row(&mut body).await;
    let (second_id, second) = next_row(&mut body).await;
    assert_eq!(
        (readings(&first), readings(&second)),
        (("a", 1, 2), ("b", 1, 2))
    );
    assert_eq!(
        (first_id, second_id),
        (0, 2),
        "a reader may resume from 2 once the last row is out"
    );
    // The key and value as the view route shows them.
    let (_, shown) = api.get("/fleet/sensor_stats?key=a").await;
    assert_eq!(first["key"], shown["key"]);
    assert_eq!(first["value"], shown["value"]);
    write(&api, &[("b", 3.0)]).await;
    let (id, changed) = next_row(&mut body).await;
    assert_eq!((id, readings(&changed)), (3, ("b", 2, 3)));
    assert_eq!(changed["value"]["hottest"], json!(3.0));
}

#[tokio::test]
async fn a_live_view_resumes_with_exactly_the_rows_changed_after_the_last_event_id() {
    let api = Api::new().await;
    api.create("fleet").await;
    write(&api, &[("a", 1.0), ("b", 2.0), ("c", 3.0)]).await;
    write(&api, &[("b", 4.0)]).await;
    write(&api, &[("d", 5.0)]).await;
    // The header takes the place of lc.
    let mut body: Messages = api
        .open(live("/fleet/sensor_stats?feed=live&lc=1", Some("3")))
        .await
        .into_body()
        .into();
    let (_, first) = next_row(&mut body).await;
    let (id, second) = next_row(&mut body).await;
    assert_eq!(
        (readings(&first), readings(&second)),
        (("b", 2, 5), ("d", 1, 5))
    );
    assert_eq!(id, 5);
    write(&api, &[("e", 6.0)]).await;
    let (_, next) = next_row(&mut body).await;
    assert_eq!(readings(&next), ("e", 1, 6), "and nothing else");
    // Asked by the Accept header instead of feed=live, from lc 4.
    let request = Request::builder()
        .uri("/fleet/sensor_stats?lc=4")
        .header("accept", "text/event-stream")
        .body(Body::empty())
        .expect("request");
    let mut body: Messages = api.open(request).await.into_body().into();
    let (_, first) = next_row(&mut body).await;
    let (id, second) = next_row(&mut body).await;
    assert_eq!(
        (readings(&first), readings(&second)),
        (("d", 1, 6), ("e", 1, 6))
    );
    assert_eq!(id, 6);
}

#[tokio::test]
async fn a_live_view_of_one_key_sends_only_that_row() {
    let api = Api::new().await;
    api.create("fleet").await;
    write(&api, &[("a", 1.0), ("b", 2.0)]).await;
    let mut body: Messages = api
        .open(live("/fleet/sensor_stats?feed=live&key=b", None))
        .await
        .into_body()
        .into();
    let (id, first) = next_row(&mut body).await;
    assert_eq!((id, readings(&first)), (2, ("b", 1, 2)));
    write(&api, &[("a", 3.0)]).await;
    write(&api, &[("b", 4.0)]).await;
    let (id, changed) = next_row(&mut body).await;
    assert_eq!((id, readings(&changed)), (4, ("b", 2, 4)));
}

#[tokio::test]
async fn a_silent_live_view_sends_heartbeats() {
    let api = Api::new().await;
    api.create("fleet").await;
    let mut body: Messages = api
        .open(live("/fleet/sensor_stats?feed=live&heartbeat_ms=100", None))
        .await
        .into_body()
        .into();
    assert_eq!(
        next_message(&mut body).await.as_deref(),
        Some(": heartbeat\n\n")
    );
    write(&api, &[("a", 1.0)]).await;
    let (_, row) = next_row(&mut body).await;
    assert_eq!(readings(&row), ("a", 1, 1));
}

#[tokio::test]
async fn a_live_view_refuses_what_it_cannot_follow_before_it_starts() {
    let api = Api::new().await;
    api.create("fleet").await;
    for (uri, status, code) in [
        (
            "/fleet/sensor_stats?feed=live&limit=10",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/fleet/sensor_stats?feed=live&after=a",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/fleet/sensor_stats?feed=live&heartbeat_ms=99",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/fleet/sensor_stats?feed=live&heartbeat_ms=300001",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/fleet/sensor_stats?feed=live&lc=two",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/fleet/sensor_stats?feed=later",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/fleet/sensor_stats?lc=1",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/fleet/sensor_stats?heartbeat_ms=1000",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/fleet/route?feed=live&key=seven",
            StatusCode::BAD_REQUEST,
            "invalid_key",
        ),
        (
            "/fleet/no_such_view?feed=live",
            StatusCode::NOT_FOUND,
            "view_not_found",
        ),
        (
            "/fleet/no_such_view?feed=live&key=a",
            StatusCode::NOT_FOUND,
            "view_not_found",
        ),
        (
            "/absent/sensor_stats?feed=live",
            StatusCode::NOT_FOUND,
            "db_not_found",
        ),
    ] {
        let answer = api.get(uri).await;
        assert_error(&answer, status, code);
    }
    let (status, _) = api
        .send(live("/fleet/sensor_stats?feed=live", Some("four")))
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a Last-Event-ID that is no lc"
    );
}

#[tokio::test]
async fn live_views_count_among_the_live_streams_and_end_when_the_server_stops() {
    let node = laterbase::Node::open(laterbase::Config::in_memory())
        .await
        .expect("open");
    node.create_database("fleet").await.expect("created");
    let mut handle = None;
    let api = Api::serving(node, |state| {
        let state = state.live_streams_max(1);
        handle = Some(state.clone());
        state
    });
    let state = handle.expect("the state");
    let rows = api.open(live("/fleet/sensor_stats?feed=live", None)).await;
    assert_eq!(rows.status(), StatusCode::OK);
    for uri in ["/db/fleet/e?feed=live", "/fleet/all_readings?feed=live"] {
        let answer = api.get(uri).await;
        assert_error(&answer, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    }
    state.end_live_streams();
    let mut body: Messages = rows.into_body().into();
    assert_eq!(next_message(&mut body).await, None, "the stream ends");
}

#[tokio::test]
async fn a_live_view_ends_when_the_node_shuts_down() {
    let api = Api::new().await;
    api.create("fleet").await;
    write(&api, &[("a", 1.0)]).await;
    let mut body: Messages = api
        .open(live("/fleet/sensor_stats?feed=live", None))
        .await
        .into_body()
        .into();
    assert_eq!(readings(&next_row(&mut body).await.1), ("a", 1, 1));
    api.node.shutdown().await.expect("shutdown");
    assert_eq!(next_message(&mut body).await, None, "the stream ends");
}
