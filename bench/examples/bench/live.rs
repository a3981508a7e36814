//! `live`: live streams and pushing peers.
//!
//! - The time from a write's answer to its event arriving on a live stream
//!   (`GET /db/bench/e?feed=live`), with 1 stream open and with 1,000 (the
//!   event is read off every one of them; the time is taken on the first).
//! - Ingest of 100,000 events in batches of 1,000 with 1,000 streams open,
//!   beside the same ingest with none: streams of another database, then
//!   of the one written that read nothing, then that read every event.
//! - The time from a write's answer on one node to its event being readable
//!   on a peer, both ways, where only one of the two dials the other (a
//!   truck and its hub: the hub's writes reach the truck over its watch).
//! - The bytes two idle peers holding 100 databases exchange per second,
//!   both ways, headers included, through relays that count them.
//!
//! Every node serves on loopback from this process, each on its own
//! runtime; the clients run on another.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use laterbase::{Database, NewEvent};
use laterbase_bench::thousands;

use super::http::{Served, connect, json_bodies, post, send};
use super::sync::{self, relay};

const WRITES: usize = 300;
const STREAMS: usize = 1_000;
const INGEST_EVENTS: usize = 100_000;
const INGEST_BATCH: usize = 1_000;
const INGEST_ROUNDS: usize = 5;
const IDLE_DATABASES: usize = 100;

/// Runs every case and prints its figures.
pub fn run(parent: Option<&Path>) {
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("client runtime");
    println!(
        "live streams: from a write's answer to the event on a stream ({WRITES} writes, one at a time)"
    );
    for streams in [1, STREAMS] {
        let served = Served::start(parent);
        let latencies = client.block_on(stream_latency(served.addr, streams));
        print_latencies(&format!("{streams} stream(s) open"), &latencies);
    }
    println!(
        "ingest of {} events in batches of {INGEST_BATCH}, with live streams open (median of {INGEST_ROUNDS})",
        thousands(INGEST_EVENTS as f64)
    );
    // The streams' readers run apart from the writer, as they would on
    // other machines: a writer among a thousand busy readers on one
    // runtime would wait its turn behind them. Here they still share the
    // processor with the node; a second set yields it, as readers on
    // other machines would take none of it.
    let readers_runtime = |yielding: bool| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("stream-readers")
            .on_thread_start(move || {
                if yielding {
                    let _ = rustix::process::nice(19);
                }
            })
            .enable_all()
            .build()
            .expect("readers' runtime")
    };
    let stream_readers = readers_runtime(false);
    let yielding_readers = readers_runtime(true);
    // Each case runs `INGEST_ROUNDS` times, the cases in turn, and shows
    // its median: one ingest takes a fraction of a second, and what ran
    // just before it (a node closing, the disk) moves it by a third.
    let cases = [
        ("no stream open", &stream_readers, 0, Readers::Reading),
        (
            "streams on another database",
            &stream_readers,
            STREAMS,
            Readers::Elsewhere,
        ),
        (
            "streams, none reading",
            &stream_readers,
            STREAMS,
            Readers::Stalled,
        ),
        (
            "streams, each reading all",
            &stream_readers,
            STREAMS,
            Readers::Reading,
        ),
        (
            "streams, each reading all, yielding",
            &yielding_readers,
            STREAMS,
            Readers::Reading,
        ),
    ];
    let mut times = vec![Vec::new(); cases.len()];
    let mut delivered = vec![None; cases.len()];
    for round in 0..INGEST_ROUNDS {
        // Each round starts one case later: no case always follows the same.
        for turn in 0..cases.len() {
            let index = (round + turn) % cases.len();
            let (_, readers_runtime, streams, readers) = &cases[index];
            let served = Served::start(parent);
            let ingest = client.block_on(ingest_with_streams(
                served.addr,
                readers_runtime.handle(),
                *streams,
                *readers,
                round == 0,
            ));
            times[index].push(ingest.ingest);
            if round == 0 {
                delivered[index] = ingest.delivered;
            }
        }
    }
    let median = |times: &mut Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    let none = median(&mut times[0]);
    let rate = |time: Duration| INGEST_EVENTS as f64 / time.as_secs_f64();
    for (index, (label, _, streams, _)) in cases.iter().enumerate() {
        let time = median(&mut times[index]);
        let label = match streams {
            0 => (*label).to_owned(),
            streams => format!("{streams} {label}"),
        };
        let ratio = match streams {
            0 => String::new(),
            _ => format!(
                "   {:.2}x of none (goal: at least 0.8)",
                none.as_secs_f64() / time.as_secs_f64()
            ),
        };
        println!(
            "  {label:<40} {:>10} events/s  {:>7.3} s{ratio}",
            thousands(rate(time)),
            time.as_secs_f64(),
        );
        if let Some(delivered) = delivered[index] {
            println!(
                "    every stream had every event {:.3} s after the first write: {} events/s delivered",
                delivered.as_secs_f64(),
                thousands((INGEST_EVENTS * streams) as f64 / delivered.as_secs_f64())
            );
        }
    }
    write_to_peer(parent);
    idle_bytes(parent);
}

/// Opens a live stream of `bench` from `lc` 0 on `addr`: its body.
async fn open_stream(addr: SocketAddr) -> hyper::body::Incoming {
    open_stream_of(addr, "bench").await
}

/// Opens a live stream of `database` from `lc` 0 on `addr`: its body.
async fn open_stream_of(addr: SocketAddr, database: &str) -> hyper::body::Incoming {
    let mut sender = connect(addr).await;
    sender.ready().await.expect("connection ready");
    let request = Request::get(format!("/db/{database}/e?lc=0&feed=live"))
        .header("host", "bench")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let response = sender.send_request(request).await.expect("answer");
    assert_eq!(response.status(), 200, "a live stream opens");
    // The connection lives as long as its task; the sender may go.
    response.into_body()
}

/// What a stream's reader reports.
#[derive(Clone)]
enum Report {
    /// Nothing.
    Nothing,
    /// Each message's `lc` and when it came.
    Every(tokio::sync::mpsc::UnboundedSender<(u64, Instant)>),
    /// The message of this `lc` only, when it came: the reader looks for it
    /// without parsing the rest.
    One(u64, tokio::sync::mpsc::UnboundedSender<(u64, Instant)>),
}

/// Reads a stream to its end, reporting what `report` says.
async fn drain(mut body: hyper::body::Incoming, report: Report) {
    let mut pending = String::new();
    let wanted = match &report {
        Report::One(lc, _) => format!("id: {lc}\n").into_bytes(),
        _ => Vec::new(),
    };
    // The end of the last chunk, so that an id cut in two is found.
    let mut tail: Vec<u8> = Vec::new();
    while let Some(Ok(frame)) = body.frame().await {
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let now = Instant::now();
        match &report {
            Report::Nothing => {}
            Report::One(lc, arrivals) => {
                tail.extend_from_slice(&data[..data.len().min(wanted.len())]);
                let found = tail.windows(wanted.len()).any(|window| window == wanted)
                    || data.windows(wanted.len()).any(|window| window == wanted);
                if found {
                    let _ = arrivals.send((*lc, now));
                }
                tail.clear();
                tail.extend_from_slice(&data[data.len().saturating_sub(wanted.len())..]);
            }
            Report::Every(arrivals) => {
                pending.push_str(&String::from_utf8_lossy(&data));
                while let Some(end) = pending.find("\n\n") {
                    let message: String = pending.drain(..end + 2).collect();
                    if let Some(lc) = message
                        .lines()
                        .find_map(|line| line.strip_prefix("id: "))
                        .and_then(|lc| lc.parse().ok())
                    {
                        let _ = arrivals.send((lc, now));
                    }
                }
            }
        }
    }
}

/// `WRITES` writes of one event each, with `streams` streams open: for
/// each, the time from its answer to its arrival on the first stream.
async fn stream_latency(addr: SocketAddr, streams: usize) -> Vec<Duration> {
    let (arrivals, mut arrived) = tokio::sync::mpsc::unbounded_channel();
    let first = open_stream(addr).await;
    tokio::spawn(drain(first, Report::Every(arrivals)));
    for _ in 1..streams {
        let body = open_stream(addr).await;
        tokio::spawn(drain(body, Report::Nothing));
    }
    let mut writer = connect(addr).await;
    let mut latencies = Vec::with_capacity(WRITES);
    for n in 0..WRITES {
        let body = Bytes::from(format!("[{{\"data\":{{\"n\":{n}}}}}]"));
        let (status, answer) = send(&mut writer, post(&body, "application/json")).await;
        let answered = Instant::now();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
        let lc = lc_of(&answer);
        loop {
            let (seen, at) = arrived.recv().await.expect("the stream goes on");
            if seen == lc {
                latencies.push(at.saturating_duration_since(answered));
                break;
            }
        }
    }
    latencies
}

/// The `lc` of a write's answer.
fn lc_of(answer: &[u8]) -> u64 {
    let answer: serde_json::Value = serde_json::from_slice(answer).expect("JSON");
    answer["lc"].as_u64().expect("an lc")
}

/// What the streams open beside an ingest do.
#[derive(Clone, Copy)]
enum Readers {
    /// Each reads every event, as fast as it can.
    Reading,
    /// None reads anything once open.
    Stalled,
    /// They follow another database, which nothing writes to.
    Elsewhere,
}

/// Ingest of `INGEST_EVENTS` with `streams` streams open: the time until
/// the last write's answer, and with [`Readers::Reading`] and
/// `until_delivered` the time until every stream has read the last event
/// too.
async fn ingest_with_streams(
    addr: SocketAddr,
    stream_readers: &tokio::runtime::Handle,
    streams: usize,
    readers: Readers,
    until_delivered: bool,
) -> Ingest {
    let (arrivals, mut arrived) = tokio::sync::mpsc::unbounded_channel();
    if let Readers::Elsewhere = readers {
        let mut sender = connect(addr).await;
        let create = Request::put("/db/other")
            .header("host", "bench")
            .body(Full::new(Bytes::new()))
            .expect("request");
        let (status, _) = send(&mut sender, create).await;
        assert!(
            status == 200 || status == 201,
            "the other database is made: {status}"
        );
    }
    // Each reader opens its stream on the readers' runtime, says so, and
    // reads it (or holds it, unread, until the ingest is over).
    let (opened, mut open) = tokio::sync::mpsc::unbounded_channel();
    let (over, _) = tokio::sync::watch::channel(false);
    for _ in 0..streams {
        let (opened, arrivals) = (opened.clone(), arrivals.clone());
        let mut over = over.subscribe();
        stream_readers.spawn(async move {
            let database = match readers {
                Readers::Elsewhere => "other",
                Readers::Reading | Readers::Stalled => "bench",
            };
            let body = open_stream_of(addr, database).await;
            let _ = opened.send(());
            match readers {
                Readers::Reading => {
                    drain(body, Report::One(INGEST_EVENTS as u64, arrivals)).await;
                }
                Readers::Stalled => {
                    let _ = over.wait_for(|over| *over).await;
                    drop(body);
                }
                Readers::Elsewhere => drain(body, Report::Nothing).await,
            }
        });
    }
    for _ in 0..streams {
        open.recv().await.expect("a stream opens");
    }
    drop(arrivals);
    let bodies = json_bodies(INGEST_BATCH, INGEST_EVENTS, 7);
    let mut writer = connect(addr).await;
    let start = Instant::now();
    for body in &bodies {
        let (status, answer) = send(&mut writer, post(body, "application/json")).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    }
    let ingest = start.elapsed();
    let mut delivered = None;
    if let (Readers::Reading, true, 1..) = (readers, until_delivered, streams) {
        let mut done = 0;
        while done < streams {
            let (lc, _) = arrived.recv().await.expect("the streams go on");
            if lc == INGEST_EVENTS as u64 {
                done += 1;
            }
        }
        delivered = Some(start.elapsed());
    }
    over.send_replace(true);
    Ingest { ingest, delivered }
}

/// How long an ingest took, and until when its streams had read it all.
struct Ingest {
    ingest: Duration,
    delivered: Option<Duration>,
}

/// A node serving on loopback from its own runtime, holding `databases`
/// databases.
fn peer(parent: Option<&Path>, databases: usize) -> sync::Served {
    let served = sync::Served::start(parent);
    for index in 0..databases {
        served.create(&database_name(index));
    }
    served
}

fn database_name(index: usize) -> String {
    format!("db{index:03}")
}

/// Writes of one event each on `from`, one at a time: for each, the time
/// from its answer to its arrival on `to`'s database.
fn peer_latencies(
    runtime: &tokio::runtime::Runtime,
    from: &Database,
    to: &Database,
    writes: usize,
) -> Vec<Duration> {
    runtime.block_on(async {
        let mut arrivals = Box::pin(to.subscribe(to.lc()));
        let mut latencies = Vec::with_capacity(writes);
        for n in 0..writes {
            let event = NewEvent::new(format!("{{\"n\":{n}}}").into_bytes());
            let receipt = from.append(vec![event]).await.expect("write");
            let answered = Instant::now();
            let id = receipt.ids[0];
            loop {
                let event = tokio::time::timeout(Duration::from_secs(30), arrivals.next())
                    .await
                    .expect("the event reaches the peer")
                    .expect("the stream goes on")
                    .expect("an event");
                if event.id == id {
                    latencies.push(answered.elapsed());
                    break;
                }
            }
        }
        latencies
    })
}

/// Write-to-peer latency both ways between a hub and a truck that dials it.
fn write_to_peer(parent: Option<&Path>) {
    println!(
        "write to peer: from a write's answer to the event readable on the peer ({WRITES} writes, one at a time; the truck dials the hub, the hub cannot dial the truck)"
    );
    let hub = peer(parent, 1);
    let truck = peer(parent, 1);
    truck.replicate(hub.addr);
    let name = database_name(0);
    let (hub_db, truck_db) = (hub.create(&name), truck.create(&name));
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("client runtime");
    // The first writes wait for the truck's first pass and its watch.
    peer_latencies(&client, &truck_db, &hub_db, 1);
    peer_latencies(&client, &hub_db, &truck_db, 1);
    let up = peer_latencies(&client, &truck_db, &hub_db, WRITES);
    print_latencies("truck to hub", &up);
    let down = peer_latencies(&client, &hub_db, &truck_db, WRITES);
    print_latencies("hub to truck (over the truck's watch)", &down);
}

/// Bytes per second between two idle peers holding `IDLE_DATABASES`
/// databases, each dialling the other through a counting relay.
fn idle_bytes(parent: Option<&Path>) {
    let a = peer(parent, IDLE_DATABASES);
    let b = peer(parent, IDLE_DATABASES);
    let to_b = relay(&a.runtime, b.addr);
    let to_a = relay(&b.runtime, a.addr);
    a.replicate(to_b.addr);
    b.replicate(to_a.addr);
    // One write in every database, then quiet.
    for index in 0..IDLE_DATABASES {
        let database = a.create(&database_name(index));
        a.runtime
            .block_on(database.append(vec![NewEvent::new(b"{}".to_vec())]))
            .expect("write");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let synced = |index| {
        b.node
            .database(&database_name(index))
            .is_ok_and(|database| database.lc() > 0)
    };
    while !(0..IDLE_DATABASES).all(synced) {
        assert!(Instant::now() < deadline, "the databases did not sync");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(5));
    let bytes = || to_b.bytes() + to_a.bytes();
    let before = bytes();
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    let per_second = (bytes() - before) as f64 / start.elapsed().as_secs_f64();
    println!(
        "idle peers: {IDLE_DATABASES} databases each, both dialling the other, 10 s after 5 s of quiet"
    );
    println!("  both ways, headers included   {per_second:>8.0} bytes/s   (goal: at most 1,000)");
}

/// Prints p50 and p99 of `latencies`.
fn print_latencies(label: &str, latencies: &[Duration]) {
    let mut sorted = latencies.to_vec();
    sorted.sort();
    let at = |quantile: f64| {
        let index = ((sorted.len() as f64 - 1.0) * quantile).round() as usize;
        sorted.get(index).copied().unwrap_or_default()
    };
    println!(
        "  {label:<40} p50 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms",
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        sorted.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
}
