//! `GET /status` and the dashboard's routes: the node, its databases with
//! their write rates, its views, its peers' states, the live streams open
//! and the chart of events per second; the token on `/status` and none on
//! the page and its assets; the reserved names `status` and `ui`, and a
//! database of either name that an older data directory holds.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use laterbase::clock::ManualClock;
use laterbase::limits::{PEER_FAILING_PASSES, RATES_WINDOW_S};
use laterbase::storage::fjall::FjallStorage;
use laterbase::storage::{DatabaseRecord, Storage};
use laterbase::{Config, Event, EventId, NewEvent, Node, ReplicationConfig, Timestamp};
use serde_json::{Value, json};

use super::{Api, assert_error};
use crate::sync::Served;

/// A time the manual clock of these tests starts at: 2024-01-01, on a
/// whole second.
const START_MS: u64 = 1_704_067_200_000;

fn counts(chart: &Value, series: &str) -> Vec<u64> {
    chart[series]
        .as_array()
        .unwrap_or_else(|| panic!("{series}: {chart}"))
        .iter()
        .map(|count| count.as_u64().expect("a count"))
        .collect()
}

#[tokio::test]
async fn status_shows_the_node_its_databases_and_the_events_of_each_second() {
    let clock = ManualClock::new(START_MS);
    let api = Api::on(Config::in_memory().clock(clock.clone()), None).await;
    api.create("yard").await;
    api.create("dock").await;
    clock.advance(90_000);
    let (status, _) = api
        .post("/db/yard/e", r#"[{"data": 1}, {"data": 2}, {"data": 3}]"#)
        .await;
    assert_eq!(status, StatusCode::OK);
    // Two new events from a peer, and one this node holds already.
    let yard = api.node.database("yard").expect("yard");
    let stored = yard.changes(0, 1).await.expect("read").events;
    let merged: Vec<Event> = (1..=2)
        .map(|n| Event {
            id: EventId::from_parts(START_MS, n),
            recorded_at: Timestamp(START_MS),
            lc: 0,
            data: format!("{{\"peer\": {n}}}").into(),
        })
        .chain(stored)
        .collect();
    assert_eq!(yard.merge(merged).await.expect("merge").stored, 2);
    clock.advance(2_000);
    let dock = api.node.database("dock").expect("dock");
    dock.append(vec![NewEvent::new("4")]).await.expect("append");

    let (status, answer) = api.get("/status").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["node"]["id"], api.node.id().to_string());
    assert_eq!(answer["node"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(answer["node"]["uptime_s"], 92, "by the node's clock");
    assert_eq!(answer["node"]["listen"], Value::Null, "not told");
    assert_eq!(
        answer["databases"],
        json!([
            {"name": "dock", "events": 1, "lc": 1, "writes_per_s": 1.0 / 60.0},
            {"name": "yard", "events": 5, "lc": 5, "writes_per_s": 3.0 / 60.0},
        ]),
        "written counts the clients' events alone"
    );
    assert_eq!(answer["peers"], json!([]));
    assert_eq!(answer["views"], json!([]));
    assert_eq!(answer["live_streams"], 0);
    assert_eq!(
        answer["live_streams_max"],
        laterbase::limits::LIVE_STREAMS_MAX_DEFAULT
    );
    let chart = &answer["chart"];
    assert_eq!(chart["until"], (START_MS + 92_000) / 1000);
    let (written, synced) = (counts(chart, "written"), counts(chart, "synced"));
    assert_eq!(written.len(), RATES_WINDOW_S);
    assert_eq!(synced.len(), RATES_WINDOW_S);
    let last = RATES_WINDOW_S - 1;
    assert_eq!(written[last], 1, "dock's write, this second");
    assert_eq!(written[last - 2], 3, "yard's, two seconds before");
    assert_eq!(synced[last - 2], 2, "only the new events of the merge");
    assert_eq!(written.iter().sum::<u64>(), 4);
    assert_eq!(synced.iter().sum::<u64>(), 2);

    // Five minutes on, the window holds none of it.
    clock.advance(300_000);
    let (_, answer) = api.get("/status").await;
    assert_eq!(counts(&answer["chart"], "written").iter().sum::<u64>(), 0);
    assert_eq!(answer["databases"][1]["writes_per_s"], 0.0);
    assert_eq!(answer["databases"][1]["events"], 5);
}

#[tokio::test]
async fn status_names_the_address_it_is_told_and_lists_every_view() {
    let node = Node::open(Config::in_memory()).await.expect("open");
    let address: std::net::SocketAddr = "127.0.0.1:7070".parse().expect("address");
    let api = Api::serving(node, |state| state.listen(address).live_streams_max(7));
    api.create("fleet").await;
    let (status, _) = api
        .post(
            "/db/fleet/e",
            r#"{"data": {"sensor": "s1", "celsius": 4.5}}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // A status shows each view where it stands: they fold the write soon.
    let deadline = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        let (_, answer) = api.get("/status").await;
        let views = answer["views"].as_array().expect("views");
        if !views.is_empty() && views.iter().all(|view| view["lc"] == 1) {
            break answer;
        }
        assert!(Instant::now() < deadline, "{answer}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(answer["node"]["listen"], "127.0.0.1:7070");
    assert_eq!(answer["live_streams_max"], 7);
    let views = answer["views"].as_array().expect("views");
    let fleet = api.node.database("fleet").expect("fleet");
    let names: Vec<String> = fleet
        .view_names()
        .iter()
        .map(|name| (*name).to_owned())
        .collect();
    assert!(!names.is_empty(), "the tests' views are on fleet");
    assert_eq!(views.len(), names.len(), "{answer}");
    for (view, name) in views.iter().zip(&names) {
        assert_eq!(view["db"], "fleet");
        assert_eq!(view["view"], name.as_str());
        assert_eq!(view["lc"], 1, "{view}");
        assert!(view["events_skipped"].is_u64(), "{view}");
        assert_eq!(view["rebuilding"], false, "{view}");
    }
    let sensors = views
        .iter()
        .find(|view| view["view"] == "sensor_stats")
        .expect("the contract's example view");
    assert_eq!(sensors["events_skipped"], 0);
    let scans = views
        .iter()
        .find(|view| view["view"] == "route")
        .expect("a view of other events");
    assert_eq!(scans["events_skipped"], 1, "a reading is no scan");
}

#[tokio::test]
async fn status_counts_the_live_streams_open() {
    let api = Api::new().await;
    api.create("live").await;
    let request = Request::get("/db/live/e?feed=live")
        .body(Body::empty())
        .expect("request");
    let stream = api.open(request).await;
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(api.get("/status").await.1["live_streams"], 1);
    drop(stream);
    assert_eq!(api.get("/status").await.1["live_streams"], 0);
}

/// `/status` until `ready` holds of its first peer, polled, within a deadline.
async fn first_peer_until(api: &Api, ready: impl Fn(&Value) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        let (status, answer) = api.get("/status").await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let peer = answer["peers"][0].clone();
        let done = ready(&peer);
        if seen.last() != Some(&peer) {
            seen.push(peer);
        }
        if done {
            return seen;
        }
        assert!(Instant::now() < deadline, "{seen:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// What a peer's state must be for the failures it shows.
fn state_for(peer: &Value) -> &'static str {
    let failures = peer["failures"].as_u64().expect("failures");
    if failures >= u64::from(PEER_FAILING_PASSES) {
        "failing"
    } else if failures > 0 || peer["last_sync"].is_null() {
        "retrying"
    } else {
        "ok"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_goes_from_ok_to_retrying_to_failing_as_its_passes_fail() {
    let a = Served::start(Config::in_memory()).await;
    let b = Served::start(Config::in_memory()).await;
    let peer_url = b.url.clone();
    let mut config = ReplicationConfig::new(vec![peer_url.clone()]);
    // Each failed pass waits at least the interval, doubled each time: the
    // failures 1 to 4 last long enough to be seen.
    config.interval = Duration::from_millis(100);
    let replication = a.node.replicate(config).await.expect("replicate");
    let api = Api::serving(a.node.clone(), |state| state.replication(replication));
    let b_id = b.node.id().to_string();

    let seen = first_peer_until(&api, |peer| peer["state"] == "ok").await;
    let ok = seen.last().expect("seen");
    assert_eq!(ok["direction"], "out");
    assert_eq!(ok["url"], peer_url.as_str());
    assert_eq!(ok["address"], Value::Null);
    assert_eq!(ok["node"], b_id.as_str());
    assert_eq!(ok["failures"], 0);
    assert_eq!(ok["last_error"], Value::Null);
    assert!(ok["last_sync"].is_string(), "{ok}");

    b.stop().await;
    let seen = first_peer_until(&api, |peer| peer["state"] == "failing").await;
    for peer in &seen {
        assert_eq!(peer["state"], state_for(peer), "{seen:?}");
    }
    assert!(
        seen.iter().any(|peer| peer["state"] == "retrying"),
        "retrying before failing: {seen:?}"
    );
    let failing = seen.last().expect("seen");
    assert_eq!(failing["failures"], PEER_FAILING_PASSES, "{failing}");
    assert!(failing["last_error"].is_string(), "{failing}");
    // The last pass that succeeded, which may be one after `ok` was first
    // seen: it stays while the passes fail.
    let last_sync = failing["last_sync"].as_str().expect("a last sync");
    assert!(
        last_sync >= ok["last_sync"].as_str().expect("a last sync"),
        "{seen:?}"
    );
    for peer in seen.iter().filter(|peer| peer["failures"] != 0) {
        assert_eq!(
            peer["last_sync"], last_sync,
            "the last that succeeded: {seen:?}"
        );
    }
    assert_eq!(failing["node"], b_id.as_str());
    a.stop().await;
}

async fn send(
    api: &Api,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = api
        .open(request.body(Body::empty()).expect("request"))
        .await;
    let (status, headers) = (response.status(), response.headers().clone());
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .expect("body")
        .to_bytes();
    (status, headers, body.to_vec())
}

#[tokio::test]
async fn the_dashboard_needs_no_token_and_status_the_same_as_every_route() {
    let api = Api::with_token(Some("secret")).await;
    let bearer = [("authorization", "Bearer secret")];
    assert_error(
        &api.get("/status").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let (status, headers, body) = send(&api, "GET", "/status", &bearer).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["cache-control"], "no-store");
    let answer: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(answer["node"]["id"], api.node.id().to_string());

    for (path, content_type) in [
        ("/ui", "text/html; charset=utf-8"),
        ("/ui/app.js", "text/javascript; charset=utf-8"),
        ("/ui/app.css", "text/css; charset=utf-8"),
    ] {
        let (status, headers, body) = send(&api, "GET", path, &[]).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(headers["content-type"], content_type, "{path}");
        assert_eq!(headers["cache-control"], "no-cache", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert!(!body.is_empty(), "{path}");
        // The same bytes again: the browser's copy is still good.
        let tag = headers["etag"].to_str().expect("an ETag").to_owned();
        let (status, _, body) = send(&api, "GET", path, &[("if-none-match", &tag)]).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED, "{path}");
        assert!(body.is_empty(), "{path}");
        let (status, _, _) = send(&api, "GET", path, &[("if-none-match", "\"other\"")]).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let (_, _, page) = send(&api, "GET", "/ui", &[]).await;
    let page = String::from_utf8(page).expect("UTF-8");
    assert!(page.contains("/ui/app.js") && page.contains("/ui/app.css"));

    // Nothing else opens: neighbours of the dashboard's paths, a method
    // that is not GET aside (it answers no data).
    for path in [
        "/ui/",
        "/ui/other",
        "/uix",
        "/ui/app.js/",
        "/ui/app%2Ejs",
        "/db",
        "/peers",
    ] {
        assert_error(
            &api.get(path).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        );
    }
    assert_error(
        &api.call("POST", "/ui", Body::empty()).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
}

#[tokio::test]
async fn status_and_ui_are_refused_as_new_database_names() {
    let api = Api::new().await;
    for name in ["status", "ui", "db"] {
        let refused = api.call("PUT", &format!("/db/{name}"), Body::empty()).await;
        assert_error(&refused, StatusCode::BAD_REQUEST, "invalid_name");
        let message = refused.1["message"].as_str().expect("message");
        assert!(
            message.contains(&format!("the name '{name}' is reserved")),
            "{message}"
        );
        let created = api.node.create_database(name).await;
        assert!(
            matches!(created, Err(laterbase::Error::InvalidName { .. })),
            "{created:?}"
        );
    }
    assert_error(
        &api.get("/db/ui").await,
        StatusCode::NOT_FOUND,
        "db_not_found",
    );
    assert_eq!(api.get("/db").await.1, json!({"databases": []}));
}

/// Log lines, as a subscriber writes them, to read back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_database_named_ui_from_an_older_data_directory_is_served_with_a_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The engine's own call, which names are not checked at: what an older
    // node that let `ui` be created left on disk.
    {
        let storage = FjallStorage::open(dir.path()).expect("open the engine");
        for name in ["ui", "yard"] {
            let record = DatabaseRecord {
                name: name.to_owned(),
                incarnation: 7,
                created_at: Timestamp(START_MS),
            };
            storage.create_database(&record).expect("create");
        }
        storage.persist().expect("persist");
    }
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let node = {
        let _logging = tracing::subscriber::set_default(subscriber);
        Node::open(Config::new(dir.path())).await.expect("open")
    };
    let log = String::from_utf8(log.0.lock().expect("lock").clone()).expect("text");
    let warnings: Vec<&str> = log.lines().filter(|line| line.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains("database=ui"), "{log}");
    assert!(warnings[0].contains("reserved"), "{log}");

    let api = Api::serving(node, |state| state);
    let (status, answer) = api.post("/db/ui/e", r#"{"data": {"kept": true}}"#).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, page) = api.get("/db/ui/e?lc=0").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["events"][0]["data"], json!({"kept": true}));
    assert_eq!(api.get("/db/ui").await.1["events"], 1);
    let (status, again) = api.call("PUT", "/db/ui", Body::empty()).await;
    assert_eq!(
        (status, again),
        (StatusCode::OK, json!({"name": "ui", "created": false}))
    );
    let (_, answer) = api.get("/status").await;
    let names: Vec<&Value> = answer["databases"]
        .as_array()
        .expect("databases")
        .iter()
        .map(|database| &database["name"])
        .collect();
    assert_eq!(names, [&json!("ui"), &json!("yard")]);
    api.node.clone().shutdown().await.expect("shutdown");
}
