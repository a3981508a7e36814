//! Nodes killed with SIGKILL: every write acknowledged before the kill is
//! there after a restart, with a quiet client or many at once, and a
//! node's views match its events again.

use std::sync::Arc;
use std::time::Duration;

use rand::{RngExt, SeedableRng, rngs::StdRng};
use serde_json::{Value, json};

use super::{PROCESS_TIMEOUT, Server, everything, exchange};

#[test]
fn a_node_killed_with_sigkill_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    assert_eq!(server.request("PUT", "/db/trucks", "").0, 201);
    let mut written = Vec::new();
    for batch in 0..20 {
        let events: Vec<Value> = (0..50)
            .map(|n| json!({"data": {"batch": batch, "n": n}}))
            .collect();
        let (status, answer) =
            server.request("POST", "/db/trucks/e", &Value::Array(events).to_string());
        assert_eq!(status, 200, "{answer}");
        written.extend(answer["ids"].as_array().expect("ids").iter().cloned());
    }
    server.kill();

    let server = Server::start(dir.path());
    let (status, page) = server.request("GET", "/db/trucks/e?limit=10000", "");
    assert_eq!(status, 200);
    let events = page["events"].as_array().expect("events");
    let ids: Vec<Value> = events.iter().map(|event| event["id"].clone()).collect();
    assert_eq!(ids, written, "every acknowledged event, in order");
    assert_eq!(
        events[999]["data"],
        json!({"batch": 19, "n": 49}),
        "bytes as written"
    );
    assert_eq!(page["lc"], 1_000);
    server.kill();
}

#[test]
fn kill_9_under_concurrent_load_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    assert_eq!(server.request("PUT", "/db/load", "").0, 201);
    let addr = server.addr;
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let acknowledged = acknowledged.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                for batch in 0.. {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        return;
                    }
                    let body = format!(r#"[{{"data": [{writer}, {batch}, 0]}}, {{"data": [{writer}, {batch}, 1]}}]"#);
                    let raw = format!(
                        "POST /db/load/e HTTP/1.1\r\nhost: t\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    // After the kill, requests fail: that is the point.
                    let Some((200, answer)) = exchange(addr, raw.as_bytes(), false) else { continue };
                    let answer: Value = serde_json::from_slice(&answer).expect("json");
                    let mut acknowledged = acknowledged.lock().expect("lock");
                    for id in answer["ids"].as_array().expect("ids") {
                        acknowledged.push(id.as_str().expect("id").to_owned());
                    }
                }
            })
        })
        .collect();
    // Kill once a few hundred events are acknowledged, while writes go on.
    let deadline = std::time::Instant::now() + PROCESS_TIMEOUT;
    while acknowledged.lock().expect("lock").len() < 400 {
        assert!(
            std::time::Instant::now() < deadline,
            "the writers made no progress"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for writer in writers {
        writer.join().expect("writer");
    }
    let acknowledged = acknowledged.lock().expect("lock").clone();
    let server = Server::start(dir.path());
    let stored: std::collections::HashSet<String> = everything(&server, "load")
        .into_iter()
        .map(|(id, _, _)| id)
        .collect();
    for id in &acknowledged {
        assert!(stored.contains(id), "acknowledged {id} survives kill -9");
    }
    assert!(server.terminate().success());
}

#[derive(serde::Deserialize)]
struct Reading {
    sensor: String,
    celsius: f64,
}

/// The view of `examples/readings.rs`, as the model the node is held to.
#[laterbase::view(db = "readings", event = Reading, key = sensor)]
struct SensorStats {
    #[count]
    readings: u64,
    #[sum(celsius)]
    total: f64,
    #[min(celsius)]
    coldest: f64,
    #[max(celsius)]
    hottest: f64,
    #[first(celsius)]
    first: f64,
    #[last(celsius)]
    latest: f64,
}

/// What the node's view must hold: the fold of its events in id order.
fn sensor_stats_model(server: &Server) -> Value {
    let events: Vec<(laterbase::EventId, String)> = everything(server, "readings")
        .into_iter()
        .map(|(id, data, _)| (id.parse().expect("an id"), data))
        .collect();
    serde_json::to_value(laterbase::testing::fold_json::<SensorStats, _>(events)).expect("json")
}

#[test]
fn views_match_their_events_after_sigkill_under_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_example("readings", dir.path());
    assert_eq!(server.request("PUT", "/db/readings", "").0, 201);
    let addr = server.addr;
    // Two writers of backdated readings (seeded), acknowledged ids kept;
    // the node is killed while they write. The kill waits on what the
    // clients saw acknowledged, not on what the node stored: a batch can be
    // durable and still unanswered when the node dies.
    let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writers: Vec<_> = (0..2_u64)
        .map(|writer| {
            let answered = answered.clone();
            std::thread::spawn(move || {
                let mut rng = StdRng::seed_from_u64(40 + writer);
                let mut acknowledged = Vec::new();
                for _ in 0..400 {
                    let events: Vec<Value> = (0..10)
                        .map(|_| {
                            let ms = 1_764_000_000_000 + rng.random_range(0..86_400_000_u64);
                            let id = laterbase::EventId::from_parts(ms, rng.random());
                            let data = if rng.random_range(0..10) == 0 {
                                json!("not a reading")
                            } else {
                                json!({"sensor": format!("dock-{}", rng.random_range(0..4)),
                                       "celsius": rng.random_range(-20..40)})
                            };
                            json!({"id": id.to_string(), "data": data})
                        })
                        .collect();
                    let body = Value::Array(events.clone()).to_string();
                    let raw = format!(
                        "POST /db/readings/e HTTP/1.1\r\nhost: test\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    match exchange(addr, raw.as_bytes(), false) {
                        Some((200, _)) => {
                            answered.fetch_add(events.len(), std::sync::atomic::Ordering::Relaxed);
                            acknowledged.extend(events.into_iter().map(|e| e["id"].clone()));
                        }
                        _ => return acknowledged,
                    }
                }
                acknowledged
            })
        })
        .collect();
    // Read the view while the writers run, then kill the node mid-load,
    // once the clients hold a few thousand acknowledgements.
    let deadline = std::time::Instant::now() + PROCESS_TIMEOUT;
    while answered.load(std::sync::atomic::Ordering::Relaxed) < 2_000 {
        let (status, _) = server.request("GET", "/readings/sensor_stats", "");
        assert_eq!(status, 200);
        assert!(std::time::Instant::now() < deadline, "the writers stalled");
    }
    server.kill();
    let acknowledged: Vec<Value> = writers
        .into_iter()
        .flat_map(|writer| writer.join().expect("writer"))
        .collect();
    assert!(
        acknowledged.len() >= 2_000,
        "{} acknowledged",
        acknowledged.len()
    );

    let server = Server::start_example("readings", dir.path());
    let stored: std::collections::BTreeSet<String> = everything(&server, "readings")
        .into_iter()
        .map(|(id, _, _)| id)
        .collect();
    for id in &acknowledged {
        assert!(
            stored.contains(id.as_str().expect("id")),
            "acknowledged {id} was lost"
        );
    }
    let (status, view) = server.request("GET", "/readings/sensor_stats", "");
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["rows"], sensor_stats_model(&server));
    // And once more after a clean stop: the view resumes where it was.
    assert!(server.terminate().success());
    let server = Server::start_example("readings", dir.path());
    let (_, view) = server.request("GET", "/readings/sensor_stats", "");
    assert_eq!(view["rows"], sensor_stats_model(&server));
    server.kill();
}
