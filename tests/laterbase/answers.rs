//! Answers stay bounded in memory, whoever reads them: every paged read
//! stops at a byte budget (and reads no further than it), an answer's
//! reader that takes nothing is cut off, and the bytes held for answers not
//! yet written are bounded in total.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use bytes::Bytes;
use laterbase::http::{HttpState, binary, router};
use laterbase::limits::{ANSWER_HOLD_WAIT_MS, CONFLICTS_PAGE_BYTES_MAX, PAGE_BYTES_MAX};
use laterbase::server::{Listener, ServeOptions, serve_with};
use laterbase::{Config, Database, Event, EventId, MemoryStorage, NewEvent, Node, Timestamp, view};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::{Mutex, mpsc};
use tokio::time::Instant;

use crate::http::Api;

const MIB: usize = 1024 * 1024;

fn id(n: u64) -> EventId {
    EventId::from_parts(1_700_000_000_000 + n, 0)
}

/// A JSON string of `bytes` bytes in all, quotes included.
fn text(fill: char, bytes: usize) -> String {
    format!("\"{}\"", fill.to_string().repeat(bytes - 2))
}

/// `count` events of `bytes` of data each, ids in order.
async fn large_events(db: &Database, count: u64, bytes: usize) -> Vec<EventId> {
    let events = (0..count)
        .map(|n| NewEvent::with_id(id(n), text('e', bytes)))
        .collect();
    db.append(events).await.expect("append").ids
}

/// The ids of a JSON page's events, and the bytes of their data.
fn page_events(page: &Value) -> (Vec<EventId>, usize) {
    let events = page["events"].as_array().expect("events");
    let ids = events
        .iter()
        .map(|event| event["id"].as_str().expect("id").parse().expect("an id"))
        .collect();
    let bytes = events
        .iter()
        .map(|event| event["data"].as_str().expect("a string").len() + 2)
        .sum();
    (ids, bytes)
}

/// Reads one page through `api` and checks it against the budget: never
/// empty, within the bytes (one event may pass them alone), and read from
/// the store within the budget and one event.
async fn bounded_page(
    api: &Api,
    storage: &MemoryStorage,
    uri: &str,
    event_bytes: usize,
) -> (Value, Vec<EventId>) {
    let before = storage.event_bytes_read();
    let (status, page) = api.get(uri).await;
    let read = storage.event_bytes_read() - before;
    assert_eq!(status, StatusCode::OK, "{uri}");
    let (ids, bytes) = page_events(&page);
    assert!(!ids.is_empty(), "{uri}: a page is never empty");
    assert!(
        ids.len() == 1 || bytes <= PAGE_BYTES_MAX,
        "{uri}: {bytes} bytes of events, past the page's budget"
    );
    assert!(
        read <= (PAGE_BYTES_MAX + event_bytes) as u64,
        "{uri}: the read took {read} bytes of events from the store"
    );
    (page, ids)
}

#[tokio::test]
async fn pages_of_large_events_stop_at_their_byte_budget() {
    let storage = MemoryStorage::new();
    let api = Api::on(Config::memory(storage.clone()), None).await;
    let db = api.node.create_database("large").await.expect("create");
    let event_bytes = MIB;
    let ids = large_events(&db, 12, event_bytes).await;
    let per_page = PAGE_BYTES_MAX / event_bytes;
    assert!(per_page < ids.len(), "the events fill several pages");

    // The changes feed, with the default limit and the largest one.
    for limit in ["", "&limit=10000"] {
        let mut seen = Vec::new();
        let mut lc = 0;
        loop {
            let uri = format!("/db/large/e?lc={lc}{limit}");
            let (page, page_ids) = bounded_page(&api, &storage, &uri, event_bytes).await;
            assert_eq!(page_ids.len(), per_page.min(ids.len() - seen.len()));
            seen.extend(page_ids);
            lc = page["lc"].as_u64().expect("lc");
            if page["more"] == false {
                break;
            }
        }
        assert_eq!(seen, ids, "every event once, in order");
    }

    // The id range.
    let mut seen: Vec<EventId> = Vec::new();
    loop {
        let after = seen
            .last()
            .map_or(String::new(), |id| format!("&after={id}"));
        let uri = format!("/db/large/e?before={}{after}", id(100));
        let (page, page_ids) = bounded_page(&api, &storage, &uri, event_bytes).await;
        seen.extend(page_ids);
        if page["more"] == false {
            break;
        }
    }
    assert_eq!(seen, ids, "every event once, in id order");

    // By ids: a cut page answers a prefix of the ids asked and says so.
    let absent = id(100);
    let mut asked: Vec<EventId> = ids.iter().copied().chain([absent]).collect();
    let (mut found, mut missing) = (Vec::new(), Vec::new());
    loop {
        let keys: Vec<String> = asked.iter().map(ToString::to_string).collect();
        let uri = format!("/db/large/e?keys={}", keys.join(","));
        let (page, page_ids) = bounded_page(&api, &storage, &uri, event_bytes).await;
        let page_missing: Vec<EventId> = page["missing"]
            .as_array()
            .expect("missing")
            .iter()
            .map(|id| id.as_str().expect("id").parse().expect("an id"))
            .collect();
        let answered = page_ids.len() + page_missing.len();
        found.extend(page_ids);
        missing.extend(page_missing);
        asked.drain(..answered);
        if page.get("more").is_none() {
            assert!(
                asked.is_empty(),
                "an answer that is not cut answers every id"
            );
            break;
        }
        assert_eq!(page["more"], true);
    }
    assert_eq!((found, missing), (ids.clone(), vec![absent]));

    // The binary page is cut the same way.
    let request = Request::builder()
        .uri("/db/large/e?limit=10000")
        .header("accept", binary::CONTENT_TYPE)
        .body(Body::empty())
        .expect("request");
    let (status, body) = api.send(request).await;
    assert_eq!(status, StatusCode::OK);
    let page = binary::decode_page(&body).expect("a binary page");
    assert_eq!((page.events.len(), page.more), (per_page, true));
}

#[tokio::test]
async fn the_disk_engine_stops_its_scans_at_the_budget_too() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let node = laterbase::Node::open(Config::new(dir.path()))
        .await
        .expect("open");
    let db = node.create_database("large").await.expect("create");
    let ids = large_events(&db, 12, MIB).await;
    let mut seen = Vec::new();
    let mut lc = 0;
    loop {
        let page = db.changes(lc, 10_000).await.expect("changes");
        let bytes: usize = page.events.iter().map(|event| event.data.len()).sum();
        assert_eq!(
            page.events.len(),
            (PAGE_BYTES_MAX / MIB).min(12 - seen.len())
        );
        assert!(bytes <= PAGE_BYTES_MAX, "{bytes} bytes in one page");
        seen.extend(page.events.iter().map(|event| event.id));
        lc = page.lc;
        if !page.more {
            break;
        }
    }
    assert_eq!(seen, ids);
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn an_event_larger_than_the_budget_comes_alone() {
    let storage = MemoryStorage::new();
    let api = Api::on(Config::memory(storage.clone()), None).await;
    let db = api.node.create_database("huge").await.expect("create");
    let event_bytes = PAGE_BYTES_MAX + MIB;
    let ids = large_events(&db, 2, event_bytes).await;
    let (page, first) = bounded_page(&api, &storage, "/db/huge/e", event_bytes).await;
    assert_eq!(
        (first, page["more"].clone()),
        (vec![ids[0]], Value::Bool(true))
    );
    let (page, second) = bounded_page(&api, &storage, "/db/huge/e?lc=1", event_bytes).await;
    assert_eq!(
        (second, page["more"].clone()),
        (vec![ids[1]], Value::Bool(false))
    );
}

#[tokio::test]
async fn pages_of_conflicts_count_kept_values_in_their_bytes() {
    let api = Api::new().await;
    let db = api.node.create_database("disputed").await.expect("create");
    // Each id holds a value here and a smaller one from a peer, which wins:
    // each entry shows both.
    let value_bytes = 200 * 1024;
    let count = 8;
    let local = (0..count)
        .map(|n| NewEvent::with_id(id(n), text('b', value_bytes)))
        .collect();
    db.append(local).await.expect("append");
    let peer = (0..count)
        .map(|n| Event {
            id: id(n),
            data: Bytes::from(text('a', value_bytes)),
            recorded_at: Timestamp(1),
            lc: 0,
        })
        .collect();
    assert_eq!(db.merge(peer).await.expect("merge").conflicts, count);

    let mut seen: Vec<String> = Vec::new();
    let mut pages = 0;
    loop {
        let after = seen
            .last()
            .map_or(String::new(), |id| format!("?after={id}"));
        let (status, page) = api.get(&format!("/db/disputed/conflicts{after}")).await;
        assert_eq!(status, StatusCode::OK);
        let entries = page["conflicts"].as_array().expect("conflicts");
        assert!(!entries.is_empty(), "a page is never empty");
        let bytes: usize = entries
            .iter()
            .map(|entry| {
                entry["kept"].as_str().expect("kept").len()
                    + entry["lost"].as_str().expect("lost").len()
                    + 4
            })
            .sum();
        assert!(
            entries.len() == 1 || bytes <= CONFLICTS_PAGE_BYTES_MAX,
            "{bytes} bytes of values in one page"
        );
        seen.extend(
            entries
                .iter()
                .map(|entry| entry["id"].as_str().expect("id").to_owned()),
        );
        pages += 1;
        if page["more"] == false {
            break;
        }
    }
    let all: Vec<String> = (0..count).map(|n| id(n).to_string()).collect();
    assert_eq!(seen, all, "every conflict once, in id order");
    assert!(pages > 1, "the values fill several pages");
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Note {
    page: u32,
    text: String,
}

/// A view whose rows are as large as the notes written.
#[view(db = "notebook", event = Note, key = page, fold = Sheet::apply)]
#[derive(Default, Serialize, Deserialize)]
struct Sheet {
    text: String,
}

impl Sheet {
    fn apply(&mut self, _id: EventId, note: &Note) {
        self.text.clone_from(&note.text);
    }
}

#[tokio::test]
async fn pages_of_view_rows_stop_at_their_byte_budget() {
    let api = Api::new().await;
    let db = api.node.create_database("notebook").await.expect("create");
    let rows = 12;
    let notes = (0..rows)
        .map(|page| {
            let note = Note {
                page,
                text: "n".repeat(MIB),
            };
            NewEvent::new(serde_json::to_vec(&note).expect("json"))
        })
        .collect();
    db.append(notes).await.expect("append");

    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let (status, page) = api.get(&format!("/notebook/sheet?limit=100{after}")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let keys: Vec<u64> = page["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|row| row["key"].as_u64().expect("a number key"))
            .collect();
        assert!(!keys.is_empty(), "a page is never empty");
        assert!(
            keys.len() <= PAGE_BYTES_MAX / MIB + 1,
            "{} rows of a MiB in one page",
            keys.len()
        );
        after = format!("&after={}", keys.last().expect("a key"));
        seen.extend(keys);
        if page["more"] == false {
            break;
        }
    }
    assert_eq!(seen, (0..u64::from(rows)).collect::<Vec<_>>());
    let (_, streamed) = api.get("/notebook/sheet").await;
    assert_eq!(
        streamed["rows"].as_array().map(Vec::len),
        Some(rows as usize),
        "a streamed read still answers every row"
    );
}

/// Connections over in-memory pipes, handed to a server one at a time: a
/// reader that does not read fills its pipe, as a stalled socket would.
struct Pipes(Mutex<mpsc::Receiver<DuplexStream>>);

impl Listener for Pipes {
    type Io = DuplexStream;

    async fn accept(&self) -> std::io::Result<(DuplexStream, SocketAddr)> {
        match self.0.lock().await.recv().await {
            Some(pipe) => Ok((pipe, SocketAddr::from(([127, 0, 0, 1], 1)))),
            None => std::future::pending().await,
        }
    }
}

/// What a pipe holds between the server and its reader.
const PIPE_BYTES: usize = 64 * 1024;

/// A server over pipes.
struct Served {
    connect: mpsc::Sender<DuplexStream>,
}

impl Served {
    fn start(state: HttpState, write_timeout: Duration) -> Served {
        Served::start_with(
            state,
            ServeOptions {
                write_timeout,
                ..ServeOptions::default()
            },
        )
    }

    fn start_with(state: HttpState, options: ServeOptions) -> Served {
        let (connect, accepted) = mpsc::channel(4);
        let listener = Pipes(Mutex::new(accepted));
        tokio::spawn(serve_with(
            listener,
            router(state),
            std::future::pending(),
            options,
        ));
        Served { connect }
    }

    /// A new connection that has sent `GET uri`.
    async fn get(&self, uri: &str) -> DuplexStream {
        self.request(&format!("GET {uri}"), "").await
    }

    /// A new connection that has sent `line` (a method and a path) with
    /// `body`.
    async fn request(&self, line: &str, body: &str) -> DuplexStream {
        let (mut client, server) = tokio::io::duplex(PIPE_BYTES);
        self.connect.send(server).await.expect("the server accepts");
        let request = format!(
            "{line} HTTP/1.1\r\nhost: test\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        client
            .write_all(request.as_bytes())
            .await
            .expect("the request is sent");
        client
    }
}

/// Reads an answer to its end: its status, its `content-length` and the
/// body bytes that came.
async fn read_answer(client: &mut DuplexStream, already: &[u8]) -> (u16, usize, Vec<u8>) {
    let mut raw = already.to_vec();
    client.read_to_end(&mut raw).await.expect("the answer");
    let split = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("a head");
    let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status");
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length: "))
        .and_then(|length| length.trim().parse().ok())
        .expect("a content length");
    (status, length, raw[split + 4..].to_vec())
}

/// A node with a database `stalled` of large events (a page's answer is
/// about `PAGE_BYTES_MAX`), served with `room` for answers held.
async fn stalled_reads(room: usize, write_timeout: Duration) -> (Database, Served) {
    let node = Node::open(Config::in_memory()).await.expect("open");
    let db = node.create_database("stalled").await.expect("create");
    large_events(&db, 12, MIB).await;
    let state = HttpState::new(node).answer_bytes_held_max(room);
    (db, Served::start(state, write_timeout))
}

/// The first bytes of an answer: once they came, its page was read and
/// its room is held, and the reader stops reading.
async fn start_reading(client: &mut DuplexStream) -> Vec<u8> {
    let mut first = vec![0; 1024];
    let read = client.read(&mut first).await.expect("the answer begins");
    first.truncate(read);
    first
}

#[tokio::test(start_paused = true)]
async fn a_reader_that_takes_nothing_is_cut_off_and_its_room_given_back() {
    let write_timeout = Duration::from_secs(1);
    // Room for one page's answer and a little more.
    let (_, served) = stalled_reads(PAGE_BYTES_MAX + 2 * MIB, write_timeout).await;
    let mut stalled = served.get("/db/stalled/e").await;
    let first = start_reading(&mut stalled).await;

    // A second read needs room the stalled answer holds: it waits, and is
    // answered once the stalled reader is cut off.
    let started = Instant::now();
    let mut second = served.get("/db/stalled/e").await;
    let (status, length, body) = read_answer(&mut second, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        body.len(),
        length,
        "a reader that reads gets its whole answer"
    );
    assert!(
        started.elapsed() >= write_timeout,
        "the second read was answered only once the first reader was cut off"
    );
    assert!(started.elapsed() < Duration::from_millis(ANSWER_HOLD_WAIT_MS));

    let (status, length, body) = read_answer(&mut stalled, &first).await;
    assert_eq!(status, 200);
    assert!(
        body.len() < length,
        "the stalled reader's answer ended early: {} of {length} bytes",
        body.len()
    );
}

#[tokio::test(start_paused = true)]
async fn reads_past_the_room_for_answers_wait_then_answer_unavailable() {
    // Room for one page's answer, which the stalled one takes whole; its
    // reader is cut off only long after a read gives up.
    let (db, served) = stalled_reads(PAGE_BYTES_MAX, Duration::from_secs(600)).await;
    let mut stalled = served.get("/db/stalled/e").await;
    start_reading(&mut stalled).await;

    let started = Instant::now();
    let mut refused = served.get("/db/stalled/e").await;
    let (status, length, body) = read_answer(&mut refused, &[]).await;
    assert_eq!((status, body.len()), (503, length));
    let error: Value = serde_json::from_slice(&body).expect("a JSON error");
    assert_eq!(error["error"], "unavailable", "{error}");
    let waited = started.elapsed();
    let wait = Duration::from_millis(ANSWER_HOLD_WAIT_MS);
    assert!(
        waited >= wait && waited < 2 * wait,
        "the read waited for room, then gave up: {waited:?}"
    );
    // A write is refused before it stores anything: its receipt finds no
    // room either.
    let lc = db.lc();
    let mut write = served
        .request("POST /db/stalled/e", r#"[{"data":1}]"#)
        .await;
    let (status, _, body) = read_answer(&mut write, &[]).await;
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    assert_eq!(db.lc(), lc, "the refused write stored nothing");
    // A small answer needs no room and is answered at once.
    let started = Instant::now();
    let mut healthy = served.get("/healthz").await;
    assert_eq!(read_answer(&mut healthy, &[]).await.0, 200);
    assert!(started.elapsed() < wait, "it did not wait for room");
}

/// Reads from `client` until the head of an answer has come: its status.
async fn read_status(client: &mut DuplexStream) -> u16 {
    let mut raw = Vec::new();
    let mut buffer = [0_u8; 1024];
    while !raw.windows(4).any(|window| window == b"\r\n\r\n") {
        let read = client.read(&mut buffer).await.expect("the answer");
        assert!(read > 0, "the connection closed before the head");
        raw.extend_from_slice(&buffer[..read]);
    }
    String::from_utf8_lossy(&raw)
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status")
}

#[tokio::test]
async fn live_streams_leave_the_bound_on_ordinary_connections() {
    let node = Node::open(Config::in_memory()).await.expect("open");
    node.create_database("yard").await.expect("create");
    let served = Served::start_with(
        HttpState::new(node.clone()),
        ServeOptions {
            connections_max: 2,
            ..ServeOptions::default()
        },
    );
    // Five streams on a server of two connections: each, once answered,
    // gives its connection's slot back.
    let mut streams = Vec::new();
    for _ in 0..5 {
        let mut stream = served.get("/db/yard/e?lc=0&feed=live").await;
        assert_eq!(read_status(&mut stream).await, 200);
        streams.push(stream);
    }
    // Requests are still served, two at a time.
    for _ in 0..3 {
        let mut client = served.get("/healthz").await;
        let (status, _, _) = read_answer(&mut client, &[]).await;
        assert_eq!(status, 200);
    }
    drop(streams);
    node.shutdown().await.expect("shutdown");
}
