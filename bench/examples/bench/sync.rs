//! `sync`: workload B of `shared/anchors/`. Node A holds the events, node B
//! is empty; B syncs with A through a relay that counts the bytes on the
//! wire both ways (headers included): the full copy, a round after 100 new
//! events, and a round with nothing new. Both nodes serve on loopback from
//! this process, each on its own runtime.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use laterbase::http::{HttpState, router};
use laterbase::replication::driver::round;
use laterbase::replication::transport::HttpTransport;
use laterbase::{Config, Database, NewEvent, Node};
use laterbase_bench::{fresh_dir, increasing, increasing_lazily, peak_rss_mib, thousands};

const VALUE_BYTES: usize = 100;
/// The anchors' payload: the 26-character id and the value.
const PAYLOAD_BYTES: usize = 26 + VALUE_BYTES;

/// A node serving on loopback from its own thread and runtime.
pub(crate) struct Served {
    pub(crate) node: Node,
    pub(crate) addr: SocketAddr,
    pub(crate) runtime: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Served {
    pub(crate) fn start(parent: Option<&Path>) -> Served {
        let dir = fresh_dir(parent);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let (node, addr, stop) = runtime.block_on(async {
            let node = Node::open(Config::new(dir.path())).await.expect("open");
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("address");
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let app = router(HttpState::new(node.clone()));
            tokio::spawn(laterbase::server::serve(listener, app, async {
                let _ = stopped.await;
            }));
            (node, addr, stop)
        });
        Served {
            node,
            addr,
            runtime,
            stop: Some(stop),
            _dir: dir,
        }
    }

    fn database(&self) -> Database {
        self.create("bench")
    }

    /// The database `name`, created if need be.
    pub(crate) fn create(&self, name: &str) -> Database {
        self.runtime
            .block_on(self.node.create_database(name))
            .expect("database")
    }

    /// Syncs with the node at `peer`, as `--peer` does.
    pub(crate) fn replicate(&self, peer: SocketAddr) {
        self.runtime
            .block_on(
                self.node
                    .replicate(laterbase::ReplicationConfig::new(vec![format!(
                        "http://{peer}"
                    )])),
            )
            .expect("replicate");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let node = self.node.clone();
        let _ = self.runtime.block_on(node.shutdown());
    }
}

/// A TCP relay in front of a target that counts the bytes through it.
pub(crate) struct Relay {
    pub(crate) addr: SocketAddr,
    bytes: Arc<AtomicU64>,
    /// Where connections go; none yet: they are closed at once.
    target: Arc<std::sync::Mutex<Option<SocketAddr>>>,
}

impl Relay {
    /// The bytes through it so far, both ways.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    fn forward_to(&self, target: SocketAddr) {
        *self.target.lock().expect("lock") = Some(target);
    }
}

pub(crate) fn relay(runtime: &tokio::runtime::Runtime, target: SocketAddr) -> Relay {
    let relay = relay_to_nowhere(runtime);
    relay.forward_to(target);
    relay
}

fn relay_to_nowhere(runtime: &tokio::runtime::Runtime) -> Relay {
    let bytes = Arc::new(AtomicU64::new(0));
    let counted = bytes.clone();
    let target = Arc::new(std::sync::Mutex::new(None::<SocketAddr>));
    let current = target.clone();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    runtime.spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let counted = counted.clone();
            let Some(target) = *current.lock().expect("lock") else {
                continue;
            };
            tokio::spawn(async move {
                let Ok(outbound) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                let _ = inbound.set_nodelay(true);
                let _ = outbound.set_nodelay(true);
                let (inbound_read, inbound_write) = inbound.into_split();
                let (outbound_read, outbound_write) = outbound.into_split();
                tokio::spawn(pump(inbound_read, outbound_write, counted.clone()));
                tokio::spawn(pump(outbound_read, inbound_write, counted));
            });
        }
    });
    Relay {
        addr,
        bytes,
        target,
    }
}

/// Copies one direction of a connection, counting every byte as it passes.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    counted: Arc<AtomicU64>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0; 256 * 1024];
    loop {
        match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => {
                counted.fetch_add(read as u64, Ordering::Relaxed);
                if to.write_all(&buffer[..read]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Rounds from B until neither side has more; the time.
async fn sync_all(
    database: &Database,
    peer: laterbase::EventId,
    transport: &HttpTransport,
) -> Duration {
    let start = Instant::now();
    loop {
        let report = round(database, peer, transport, laterbase::sync::wire::VERSION)
            .await
            .expect("round");
        if !report.more {
            return start.elapsed();
        }
    }
}

/// Runs workload B with `events` events and prints its figures.
pub fn run(events: usize, parent: Option<&Path>) {
    let a = Served::start(parent);
    let b = Served::start(parent);
    let source = a.database();
    // Load A through the embedding API, in batches of 1,000.
    for batch in increasing_lazily(events, 1_000, VALUE_BYTES, 21) {
        let batch: Vec<NewEvent> = batch
            .into_iter()
            .map(|(id, value)| NewEvent::with_id(id, value))
            .collect();
        a.runtime.block_on(source.append(batch)).expect("append");
    }
    let target = b.database();
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("client runtime");
    let counter = relay(&client, a.addr);
    let transport = HttpTransport::new(&format!("http://{}", counter.addr), b.node.id(), None);
    let payload = (events * PAYLOAD_BYTES) as f64;
    println!(
        "sync: node A holds {events} events of {VALUE_BYTES} bytes ({:.1} MB of id and value), node B is empty",
        payload / 1e6
    );

    let full = client.block_on(sync_all(&target, a.node.id(), &transport));
    let bytes = counter.bytes.swap(0, Ordering::Relaxed);
    assert_eq!(target.lc(), events as u64, "B holds every event");
    print_round("full copy", full, bytes, payload);
    println!(
        "    {} events/s, {:.2} times the payload on the wire",
        thousands(events as f64 / full.as_secs_f64()),
        bytes as f64 / payload
    );

    // B's log now lists A's events under B's clock: one more round offers
    // their ids back (ids, not events), after which the logs are quiet.
    let settle = client.block_on(sync_all(&target, a.node.id(), &transport));
    let bytes = counter.bytes.swap(0, Ordering::Relaxed);
    print_round("then B's ids of them back to A", settle, bytes, payload);

    let more: Vec<NewEvent> = increasing(100, 100, VALUE_BYTES, 22)
        .into_iter()
        .flatten()
        .map(|(id, value)| {
            NewEvent::with_id(
                laterbase::EventId::from_parts(id.time_ms() + 10_000_000, id.rest()),
                value,
            )
        })
        .collect();
    a.runtime.block_on(source.append(more)).expect("append");
    let plus = client.block_on(sync_all(&target, a.node.id(), &transport));
    let bytes = counter.bytes.swap(0, Ordering::Relaxed);
    assert_eq!(target.lc(), events as u64 + 100);
    print_round(
        "round after 100 new events",
        plus,
        bytes,
        (100 * PAYLOAD_BYTES) as f64,
    );

    let mut quiet = Vec::new();
    for _ in 0..5 {
        quiet.push(client.block_on(sync_all(&target, a.node.id(), &transport)));
    }
    quiet.sort();
    let bytes = counter.bytes.swap(0, Ordering::Relaxed) / 5;
    print_round("round with nothing new (median of 5)", quiet[2], bytes, 0.0);
    if let Some(peak) = peak_rss_mib() {
        println!("  peak memory of this process, both nodes together: {peak:.0} MiB");
    }
}

fn print_round(label: &str, time: Duration, bytes: u64, payload: f64) {
    let ratio = if payload > 0.0 {
        format!(" ({:.2} x payload)", bytes as f64 / payload)
    } else {
        String::new()
    };
    println!(
        "  {label:<38} {:>9.3} ms  {:>12} bytes on the wire{ratio}",
        time.as_secs_f64() * 1e3,
        thousands(bytes as f64)
    );
}

/// A node in a process of its own: this program's hidden `node` command.
struct NodeProcess {
    child: std::process::Child,
    addr: SocketAddr,
}

impl NodeProcess {
    fn start(dir: &Path, extra: &[String]) -> NodeProcess {
        use std::io::BufRead;
        let mut child = std::process::Command::new(std::env::current_exe().expect("this program"))
            .arg("node")
            .arg("--data-dir")
            .arg(dir)
            // Port 0: the node binds a port of the system's choosing and
            // names it in its "serving" line.
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn a node");
        let stderr = child.stderr.take().expect("stderr");
        let (ready, serving) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("serving") {
                    let addr = line
                        .split_whitespace()
                        .find_map(|field| field.strip_prefix("listen="))
                        .and_then(|addr| addr.parse::<SocketAddr>().ok());
                    let _ = ready.send(addr);
                }
            }
        });
        let addr = serving
            .recv_timeout(Duration::from_secs(60))
            .expect("the node starts")
            .expect("the serving line names the bound address");
        NodeProcess { child, addr }
    }

    /// Peak resident memory (VmHWM), in MiB.
    fn peak_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|line| line.starts_with("VmHWM:"))
            .and_then(|line| line.split_whitespace().nth(1)?.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    }

    fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Workload B with each node in its own process: A is loaded over HTTP in
/// the binary encoding, then B starts with A (through the counting relay) as
/// its peer and its own sync worker copies everything. With `both_ways`, A
/// has B as its peer too (through a second counting relay), as a fleet's
/// nodes do, and the figures count both directions, then a few seconds of
/// quiet after the copy (where ids offered back would show).
pub fn run_processes(events: usize, parent: Option<&Path>, both_ways: bool) {
    let dir_a = fresh_dir(parent);
    let dir_b = fresh_dir(parent);
    let mut a = NodeProcess::start(dir_a.path(), &[]);
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("client runtime");
    client.block_on(async {
        let mut sender = crate::http::connect(a.addr).await;
        let create = hyper::Request::put("/db/bench")
            .header("host", "bench")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .expect("request");
        crate::http::send(&mut sender, create).await;
        for batch in increasing_lazily(events, 1_000, VALUE_BYTES, 21) {
            let batch: Vec<NewEvent> = batch
                .into_iter()
                .map(|(id, value)| NewEvent::with_id(id, value))
                .collect();
            let body = laterbase::http::binary::encode_batch(&batch);
            let (status, _) = crate::http::send(
                &mut sender,
                crate::http::post(&body, laterbase::http::binary::CONTENT_TYPE),
            )
            .await;
            assert_eq!(status, 200);
        }
    });
    let loaded_peak = a.peak_mib();
    let towards_b = relay_to_nowhere(&client);
    if both_ways {
        a.stop();
        a = NodeProcess::start(
            dir_a.path(),
            &[
                "--peer".to_owned(),
                format!("http://{}", towards_b.addr),
                "--sync-interval-ms".to_owned(),
                "100".to_owned(),
            ],
        );
    }
    let counter = relay(&client, a.addr);
    let start = Instant::now();
    let peer = format!("http://{}", counter.addr);
    let b = NodeProcess::start(
        dir_b.path(),
        &[
            "--peer".to_owned(),
            peer,
            "--sync-interval-ms".to_owned(),
            "100".to_owned(),
        ],
    );
    towards_b.forward_to(b.addr);
    let full = client.block_on(async {
        let mut sender = crate::http::connect(b.addr).await;
        loop {
            let request = hyper::Request::get("/db/bench")
                .header("host", "bench")
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .expect("request");
            let (status, body) = crate::http::send(&mut sender, request).await;
            if status == 200 {
                let info: serde_json::Value = serde_json::from_slice(&body).expect("json");
                if info["events"].as_u64() == Some(events as u64) {
                    return start.elapsed();
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let bytes = counter.bytes.load(Ordering::Relaxed) + towards_b.bytes.load(Ordering::Relaxed);
    let payload = (events * PAYLOAD_BYTES) as f64;
    let peered = if both_ways {
        "A and B peered both ways"
    } else {
        "B starts empty with A as its peer"
    };
    println!(
        "sync, one process per node: A holds {events} events of {VALUE_BYTES} bytes, {peered}"
    );
    print_round("full copy (B's start included)", full, bytes, payload);
    // The floor of this encoding: a 16-byte id, an 8-byte time and a 4-byte
    // length per event, against the counted 26-character id.
    let floor = (16 + 8 + 4 + VALUE_BYTES) as f64 / PAYLOAD_BYTES as f64;
    println!("    the encoding's floor: {floor:.3} x payload");
    if both_ways {
        std::thread::sleep(Duration::from_secs(3));
        let settled =
            counter.bytes.load(Ordering::Relaxed) + towards_b.bytes.load(Ordering::Relaxed);
        println!(
            "  then 3 s of quiet: {} bytes more ({:.3} x payload in all)",
            thousands((settled - bytes) as f64),
            settled as f64 / payload
        );
    }
    println!(
        "  peak memory: node A {:.0} MiB ({loaded_peak:.0} MiB after loading), node B {:.0} MiB",
        a.peak_mib(),
        b.peak_mib()
    );
    b.stop();
    a.stop();
}
