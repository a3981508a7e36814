//! `http`: the anchors' workloads through a node's HTTP API, shaped like
//! `shared/anchors/couch_workloads.py`: bodies encoded before the clock
//! starts, one request in flight, the median of the runs, a fresh node each
//! run. The node serves in this process on its own runtime; the client is
//! hyper on another.
//!
//! - A, ingest: batches of 1,000 events of 100 bytes, durable, in JSON and
//!   in the binary encoding; then 32 clients sending batches of 10.
//! - C, changes feed: all events read back, in pages of 10,000 (the page
//!   maximum) and of 1,000.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use laterbase::http::{HttpState, binary, router};
use laterbase::{Config, NewEvent, Node};
use laterbase_bench::{fresh_dir, increasing, median_of, report};

const VALUE_BYTES: usize = 100;
const BATCH_EVENTS: usize = 1_000;
const CLIENTS: usize = 32;
const CLIENT_BATCH_EVENTS: usize = 10;

/// A node serving on loopback from its own thread and runtime.
pub(crate) struct Served {
    pub(crate) addr: SocketAddr,
    node: Node,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Served {
    pub(crate) fn start(parent: Option<&Path>) -> Served {
        let dir = fresh_dir(parent);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let path = dir.path().to_owned();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .thread_name("node")
                .enable_all()
                .build()
                .expect("server runtime");
            runtime.block_on(async move {
                let node = Node::open(Config::new(path)).await.expect("open");
                node.create_database("bench").await.expect("create");
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                let addr = listener.local_addr().expect("address");
                let app = router(HttpState::new(node.clone()));
                ready_tx.send((addr, node.clone())).expect("ready");
                laterbase::server::serve(listener, app, async {
                    let _ = stopped.await;
                })
                .await;
                node.shutdown().await.expect("shutdown");
            });
        });
        let (addr, node) = ready_rx.recv().expect("the server starts");
        Served {
            addr,
            node,
            stop: Some(stop),
            thread: Some(thread),
            _dir: dir,
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub(crate) async fn connect(addr: SocketAddr) -> SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    sender
}

pub(crate) async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> (u16, Bytes) {
    sender.ready().await.expect("connection ready");
    let response = sender.send_request(request).await.expect("response");
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, body)
}

pub(crate) fn post(body: &Bytes, content_type: &str) -> Request<Full<Bytes>> {
    Request::post("/db/bench/e")
        .header("host", "bench")
        .header("content-type", content_type)
        .body(Full::new(body.clone()))
        .expect("request")
}

/// JSON batches: each value a JSON string of exactly 100 bytes.
pub(crate) fn json_bodies(batch_events: usize, events: usize, seed: u64) -> Vec<Bytes> {
    increasing(events, batch_events, VALUE_BYTES, seed)
        .into_iter()
        .map(|batch| {
            let items: Vec<String> = batch
                .iter()
                .map(|(id, value)| {
                    let text: String = value
                        .iter()
                        .take(VALUE_BYTES - 2)
                        .map(|byte| char::from(b'a' + byte % 26))
                        .collect();
                    format!("{{\"id\":\"{id}\",\"data\":\"{text}\"}}")
                })
                .collect();
            Bytes::from(format!("[{}]", items.join(",")))
        })
        .collect()
}

fn binary_bodies(events: usize, seed: u64) -> Vec<Bytes> {
    increasing(events, BATCH_EVENTS, VALUE_BYTES, seed)
        .into_iter()
        .map(|batch| {
            let events: Vec<NewEvent> = batch
                .into_iter()
                .map(|(id, value)| NewEvent::with_id(id, value))
                .collect();
            binary::encode_batch(&events)
        })
        .collect()
}

/// Posts every body in turn, one request in flight.
async fn ingest(addr: SocketAddr, bodies: &[Bytes], content_type: &str) -> Duration {
    let mut sender = connect(addr).await;
    let start = Instant::now();
    for body in bodies {
        let (status, answer) = send(&mut sender, post(body, content_type)).await;
        assert_eq!(status, 200, "{answer:?}");
    }
    start.elapsed()
}

/// `CLIENTS` connections posting their share of the bodies at once; the
/// time and the fsyncs per request.
async fn ingest_concurrently(served: &Served, bodies: &[Bytes]) -> (Duration, f64) {
    let database = served.node.database("bench").expect("database");
    let before = database.stats();
    let mut shares: Vec<Vec<Bytes>> = vec![Vec::new(); CLIENTS];
    for (index, body) in bodies.iter().enumerate() {
        shares[index % CLIENTS].push(body.clone());
    }
    let mut senders = Vec::new();
    for _ in 0..CLIENTS {
        senders.push(connect(served.addr).await);
    }
    let start = Instant::now();
    let clients: Vec<_> = shares
        .into_iter()
        .zip(senders)
        .map(|(share, mut sender)| {
            tokio::spawn(async move {
                for body in share {
                    let (status, answer) = send(&mut sender, post(&body, "application/json")).await;
                    assert_eq!(status, 200, "{answer:?}");
                }
            })
        })
        .collect();
    for client in clients {
        client.await.expect("client");
    }
    let elapsed = start.elapsed();
    let after = database.stats();
    let per_request =
        (after.persists - before.persists) as f64 / (after.appends - before.appends) as f64;
    (elapsed, per_request)
}

#[derive(serde::Deserialize)]
struct FeedPage {
    events: Vec<serde::de::IgnoredAny>,
    lc: u64,
    more: bool,
}

/// Reads the whole changes feed in pages of `limit`; the time and the count.
async fn read_feed(addr: SocketAddr, limit: usize, binary_pages: bool) -> (Duration, usize) {
    let mut sender = connect(addr).await;
    let mut lc = 0;
    let mut count = 0;
    let start = Instant::now();
    loop {
        let mut request =
            Request::get(format!("/db/bench/e?lc={lc}&limit={limit}")).header("host", "bench");
        if binary_pages {
            request = request.header("accept", binary::CONTENT_TYPE);
        }
        let (status, body) = send(
            &mut sender,
            request.body(Full::new(Bytes::new())).expect("request"),
        )
        .await;
        assert_eq!(status, 200);
        let (events, next, more) = if binary_pages {
            let page = binary::decode_page(&body).expect("a page");
            (page.events.len(), page.lc, page.more)
        } else {
            let page: FeedPage = serde_json::from_slice(&body).expect("a page");
            (page.events.len(), page.lc, page.more)
        };
        count += events;
        lc = next;
        if !more {
            return (start.elapsed(), count);
        }
    }
}

/// Runs workloads A and C and prints their figures.
pub fn run(events: usize, runs: usize, parent: Option<&Path>) {
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let json = json_bodies(BATCH_EVENTS, events, 11);
    let binary = binary_bodies(events, 12);
    let small = json_bodies(CLIENT_BATCH_EVENTS, events, 13);
    let payload_bytes: usize = events * (26 + VALUE_BYTES);
    println!(
        "http: {events} events of {VALUE_BYTES} bytes ({:.1} MB of id and value), durable, median of {runs} runs",
        payload_bytes as f64 / 1e6
    );

    let batches = increasing(events, BATCH_EVENTS, VALUE_BYTES, 14);
    let fjall = median_of(runs, || {
        let dir = fresh_dir(parent);
        crate::ingest::raw_fjall(&batches, dir.path())
    });
    report("raw fjall, batches of 1,000", events, fjall, "baseline");

    let mut feeds: Vec<(&str, usize, bool, Vec<Duration>)> = vec![
        (
            "C: changes feed, pages of 10,000",
            10_000,
            false,
            Vec::new(),
        ),
        ("C: changes feed, pages of 1,000", 1_000, false, Vec::new()),
        ("C: changes feed, binary, 10,000", 10_000, true, Vec::new()),
    ];
    let ingest_json = median_of(runs, || {
        let served = Served::start(parent);
        let elapsed = client.block_on(ingest(served.addr, &json, "application/json"));
        for (_, limit, binary_pages, times) in &mut feeds {
            let (time, count) = client.block_on(read_feed(served.addr, *limit, *binary_pages));
            assert_eq!(count, events, "the feed holds every event");
            times.push(time);
        }
        elapsed
    });
    report(
        "A: JSON, batches of 1,000",
        events,
        ingest_json,
        &ratio(fjall, ingest_json),
    );
    let ingest_binary = median_of(runs, || {
        let served = Served::start(parent);
        client.block_on(ingest(served.addr, &binary, binary::CONTENT_TYPE))
    });
    report(
        "A: binary, batches of 1,000",
        events,
        ingest_binary,
        &ratio(fjall, ingest_binary),
    );
    let mut fsyncs = 0.0;
    let concurrent = median_of(runs, || {
        let served = Served::start(parent);
        let (elapsed, per_request) = client.block_on(ingest_concurrently(&served, &small));
        fsyncs = per_request;
        elapsed
    });
    let note = format!("{fsyncs:.3} fsyncs per request");
    report("A: JSON, 32 clients x 10 events", events, concurrent, &note);
    for (label, _, _, mut times) in feeds {
        times.sort();
        report(label, events, times[times.len() / 2], "");
    }
}

fn ratio(baseline: Duration, measured: Duration) -> String {
    format!(
        "{:.2} of raw fjall",
        baseline.as_secs_f64() / measured.as_secs_f64()
    )
}
