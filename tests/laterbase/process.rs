//! The real `laterbase` binary: start, SIGKILL, SIGTERM, refusals, and
//! garbage on the wire.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use rand::{Rng, RngExt, SeedableRng, rngs::StdRng};
use serde_json::{Value, json};

mod compat;
mod full_disk;

/// How long a node may take to start or stop before the test fails.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(30);

/// A `laterbase serve` process.
struct Server {
    child: Child,
    addr: SocketAddr,
    /// Keeps the thread that drains its stderr running (a full pipe would
    /// block the node's logging).
    _log: mpsc::Receiver<String>,
}

/// A node that refused to start: its exit status and what it printed.
struct Refusal {
    status: ExitStatus,
    stderr: String,
}

/// What a node is told to listen on: port 0, so that the system picks a
/// free port and the node names it in its "serving" line. (Binding a port
/// here, dropping it and passing it on would race with anything else on the
/// machine that binds in between.)
const ANY_PORT: &str = "127.0.0.1:0";

/// The address a node's "serving" log line names (`listen=ADDR`).
fn serving_address(line: &str) -> SocketAddr {
    line.split_whitespace()
        .find_map(|field| field.strip_prefix("listen="))
        .unwrap_or_else(|| panic!("the serving line names no address: {line}"))
        .parse()
        .unwrap_or_else(|error| panic!("the serving line's address: {error}: {line}"))
}

impl Server {
    fn start(data_dir: &Path) -> Server {
        Server::try_start(data_dir, ANY_PORT, &[]).unwrap_or_else(|refusal| {
            panic!(
                "the node refused to start ({}): {}",
                refusal.status, refusal.stderr
            )
        })
    }

    /// Starts a node and waits for its "serving" log line, which comes once
    /// the listener is bound and the data directory open.
    fn try_start(data_dir: &Path, listen: &str, extra: &[&str]) -> Result<Server, Refusal> {
        Server::try_start_program(
            env!("CARGO_BIN_EXE_laterbase").as_ref(),
            data_dir,
            listen,
            extra,
        )
    }

    /// Starts `serve` of an example program of this workspace, which cargo
    /// builds beside the tests.
    fn start_example(example: &str, data_dir: &Path) -> Server {
        let exe = std::env::current_exe().expect("this test binary");
        // target/<profile>/deps/<test> → target/<profile>/examples/<example>
        let program = exe
            .parent()
            .and_then(Path::parent)
            .expect("the profile directory")
            .join("examples")
            .join(example);
        assert!(
            program.exists(),
            "{} is not built: `cargo test --workspace` builds it, as does `cargo build --example {example}`",
            program.display()
        );
        Server::try_start_program(&program, data_dir, ANY_PORT, &[]).unwrap_or_else(|refusal| {
            panic!(
                "{example} refused to start ({}): {}",
                refusal.status, refusal.stderr
            )
        })
    }

    fn try_start_program(
        program: &Path,
        data_dir: &Path,
        listen: &str,
        extra: &[&str],
    ) -> Result<Server, Refusal> {
        let mut child = Command::new(program)
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg(listen)
            .args(extra)
            .env("RUST_LOG", "info")
            .env_remove("LATERBASE_TOKEN")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("spawn {}: {error}", program.display()));
        let stderr = child.stderr.take().expect("stderr");
        let (lines, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let mut printed = String::new();
        loop {
            match log.recv_timeout(PROCESS_TIMEOUT) {
                Ok(line) if line.contains("serving") => {
                    return Ok(Server {
                        child,
                        addr: serving_address(&line),
                        _log: log,
                    });
                }
                Ok(line) => {
                    printed.push_str(&line);
                    printed.push('\n');
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait().expect("wait");
                    return Err(Refusal {
                        status,
                        stderr: printed,
                    });
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    panic!("the node printed no \"serving\" line in time: {printed}");
                }
            }
        }
    }

    fn request(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        let (status, body) = request(self.addr, method, path, &[], body.as_bytes());
        let value = serde_json::from_slice(&body).unwrap_or_else(|_| {
            panic!(
                "{method} {path}: not JSON: {}",
                String::from_utf8_lossy(&body)
            )
        });
        (status, value)
    }

    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("wait");
    }

    /// Sends SIGTERM and waits for the exit, bounded.
    fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        assert!(sent.success());
        let (done, exited) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(self.child.wait());
        });
        exited
            .recv_timeout(PROCESS_TIMEOUT)
            .expect("the node stops promptly after SIGTERM")
            .expect("wait")
    }
}

/// One HTTP/1.1 request on a fresh connection; the status and the body.
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut raw = format!(
        "{method} {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    raw.push_str("\r\n");
    let mut bytes = raw.into_bytes();
    bytes.extend_from_slice(body);
    exchange(addr, &bytes, false).expect("an HTTP answer")
}

/// Sends raw bytes, reads the answer to the end; `None` when the server
/// could not be reached or closed without an answer. With `close_write`, the client then closes its side,
/// which ends a request that was cut short.
fn exchange(addr: SocketAddr, bytes: &[u8], close_write: bool) -> Option<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(PROCESS_TIMEOUT)).ok()?;
    let _ = stream.write_all(bytes);
    if close_write {
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    parse_response(&answer)
}

fn parse_response(answer: &[u8]) -> Option<(u16, Vec<u8>)> {
    let split = answer.windows(4).position(|window| window == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&answer[..split]).ok()?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let body = &answer[split + 4..];
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Some((
        status,
        if chunked {
            dechunk(body)
        } else {
            body.to_vec()
        },
    ))
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = body.windows(2).position(|window| window == b"\r\n") {
        let size = std::str::from_utf8(&body[..end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = end + 2;
        out.extend_from_slice(&body[start..(start + size).min(body.len())]);
        body = &body[(start + size + 2).min(body.len())..];
    }
    out
}

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
fn sigterm_stops_the_node_with_exit_code_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    assert_eq!(server.request("PUT", "/db/gates", "").0, 201);
    assert_eq!(
        server.request("POST", "/db/gates/e", "{\"data\": 1}").0,
        200
    );
    let status = server.terminate();
    assert!(status.success(), "exit status {status}");
    let server = Server::start(dir.path());
    assert_eq!(server.request("GET", "/db/gates", "").1["events"], 1);
    assert!(server.terminate().success());
}

#[test]
fn a_second_node_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = Server::start(dir.path());
    let second = Server::try_start(dir.path(), ANY_PORT, &[]);
    let Err(refusal) = second else {
        panic!("a second node started on the same directory")
    };
    assert!(!refusal.status.success());
    let last = refusal.stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("in use by another node"),
        "one line with the reason: {}",
        refusal.stderr
    );
    assert_eq!(
        first.request("GET", "/healthz", "").0,
        200,
        "the first node serves on"
    );
    assert!(first.terminate().success());
}

#[test]
fn a_taken_address_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let other = tempfile::tempdir().expect("tempdir");
    let first = Server::start(dir.path());
    let second = Server::try_start(other.path(), &first.addr.to_string(), &[]);
    let Err(refusal) = second else {
        panic!("a second node bound a taken address")
    };
    assert!(!refusal.status.success());
    assert!(
        refusal.stderr.contains("cannot listen on"),
        "{}",
        refusal.stderr
    );
    first.kill();
}

#[test]
fn an_unknown_format_version_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = fjall::Database::builder(dir.path()).open().expect("fjall");
        let node = db
            .keyspace("node", fjall::KeyspaceCreateOptions::default)
            .expect("keyspace");
        let mut record = 99_u32.to_be_bytes().to_vec();
        record.extend_from_slice(&[7; 16]);
        node.insert("node", record).expect("insert");
        db.persist(fjall::PersistMode::SyncAll).expect("persist");
    }
    let refusal = Server::try_start(dir.path(), ANY_PORT, &[])
        .err()
        .expect("refused");
    assert!(!refusal.status.success());
    assert!(
        refusal.stderr.contains("format version 99"),
        "{}",
        refusal.stderr
    );
}

#[test]
fn garbage_on_the_wire_gets_a_4xx_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    assert_eq!(server.request("PUT", "/db/gates", "").0, 201);
    assert_eq!(
        server.request("POST", "/db/gates/e", "{\"data\": 1}").0,
        200
    );
    let mut rng = StdRng::seed_from_u64(0x6a7b);

    for _ in 0..20 {
        let mut noise = vec![0; 1 + (rng.next_u64() % 2_000) as usize];
        rng.fill_bytes(&mut noise);
        if let Some((status, _)) = exchange(server.addr, &noise, true) {
            assert!(
                (400..500).contains(&status),
                "random bytes answered {status}"
            );
        }
    }
    // A body cut short: the connection closes before its declared length.
    let truncated =
        b"POST /db/gates/e HTTP/1.1\r\nhost: t\r\ncontent-length: 100\r\n\r\n[{\"data\": 2}";
    if let Some((status, _)) = exchange(server.addr, truncated, true) {
        assert!(
            (400..500).contains(&status),
            "a truncated body answered {status}"
        );
    }
    let huge_header = format!(
        "GET /db HTTP/1.1\r\nhost: t\r\nx-big: {}\r\n\r\n",
        "a".repeat(200_000)
    );
    if let Some((status, _)) = exchange(server.addr, huge_header.as_bytes(), true) {
        assert!(
            (400..500).contains(&status),
            "huge headers answered {status}"
        );
    }
    let nested = format!(
        "{{\"data\": {}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let (status, body) = request(server.addr, "POST", "/db/gates/e", &[], nested.as_bytes());
    assert_eq!(
        (status, error_code(&body)),
        (400, "invalid_json".to_owned())
    );
    let (status, body) = request(
        server.addr,
        "POST",
        "/db/gates/e",
        &[],
        b"{\"data\": \"\xc3\x28\"}",
    );
    assert_eq!(
        (status, error_code(&body)),
        (400, "invalid_json".to_owned())
    );
    for path in [
        "/db/..%2F..%2Fetc/e",
        "/db/%00/e",
        "/db/a%2Fb/e",
        "/db/%FF/e",
        "/db/.../e",
    ] {
        let (status, body) = request(server.addr, "POST", path, &[], b"{\"data\": 3}");
        assert_eq!(
            (status, error_code(&body)),
            (400, "invalid_name".to_owned()),
            "{path}"
        );
    }
    for path in [
        "/db/../db/gates/e",
        "/../../etc/passwd",
        "/db/gates/e/../../x",
    ] {
        let (status, _) = request(server.addr, "POST", path, &[], b"{\"data\": 3}");
        assert!((400..500).contains(&status), "{path} answered {status}");
    }

    assert_eq!(
        server.request("GET", "/healthz", "").0,
        200,
        "the node stays up"
    );
    let (_, info) = server.request("GET", "/db/gates", "");
    assert_eq!(info["events"], 1, "nothing was stored");
    assert_eq!(
        server.request("GET", "/db", "").1,
        json!({"databases": ["gates"]})
    );
    assert!(server.terminate().success());
}

fn error_code(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .map(|value| value["error"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

#[test]
fn a_data_directory_that_cannot_be_opened_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, b"x").expect("write");
    let refusal = Server::try_start(&file, ANY_PORT, &[])
        .err()
        .expect("refused");
    assert!(!refusal.status.success());
    assert!(refusal.stderr.contains("cannot open"), "{}", refusal.stderr);
}

#[test]
fn idle_connections_do_not_starve_a_client() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    // Connections that send nothing, and one that sends half a request.
    let idle: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(server.addr).expect("connect"))
        .collect();
    let mut slow = TcpStream::connect(server.addr).expect("connect");
    slow.write_all(b"POST /db/x/e HTTP/1.1\r\nhost: t\r\ncontent-le")
        .expect("write");
    assert_eq!(server.request("GET", "/healthz", "").0, 200);
    assert_eq!(server.request("PUT", "/db/busy", "").0, 201);
    // A stopping node waits (up to DRAIN_TIMEOUT_MS) for a request under
    // way, and a half-sent one counts: end the clients first.
    drop(idle);
    drop(slow);
    assert!(server.terminate().success());
}

#[test]
fn limits_out_of_bounds_are_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let refusal = Server::try_start(dir.path(), ANY_PORT, &["--batch-events-max", "0"])
        .err()
        .expect("refused");
    assert!(!refusal.status.success());
    assert!(
        refusal.stderr.contains("batch_events_max"),
        "{}",
        refusal.stderr
    );
}

/// Every event of `database` on `server`: (id, data, recorded_at), sorted.
fn everything(server: &Server, database: &str) -> Vec<(String, String, String)> {
    let mut events = Vec::new();
    let mut lc = 0;
    loop {
        let (status, page) =
            server.request("GET", &format!("/db/{database}/e?lc={lc}&limit=10000"), "");
        if status == 404 {
            return events;
        }
        assert_eq!(status, 200, "{page}");
        for event in page["events"].as_array().expect("events") {
            events.push((
                event["id"].as_str().expect("id").to_owned(),
                event["data"].to_string(),
                event["recorded_at"]
                    .as_str()
                    .expect("recorded_at")
                    .to_owned(),
            ));
        }
        lc = page["lc"].as_u64().expect("lc");
        if page["more"] == false {
            events.sort();
            return events;
        }
    }
}

/// Waits, bounded, until every server holds the same events, and returns them.
fn converged(servers: &[&Server], database: &str) -> Vec<(String, String, String)> {
    let deadline = std::time::Instant::now() + PROCESS_TIMEOUT;
    loop {
        let contents: Vec<_> = servers
            .iter()
            .map(|server| everything(server, database))
            .collect();
        if contents.windows(2).all(|pair| pair[0] == pair[1]) {
            return contents.into_iter().next().unwrap_or_default();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no convergence: {:?}",
            contents.iter().map(Vec::len).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits, bounded, until every running node has `database`.
fn database_everywhere(nodes: &[Option<Server>], database: &str) {
    let deadline = std::time::Instant::now() + PROCESS_TIMEOUT;
    let path = format!("/db/{database}");
    while !nodes
        .iter()
        .flatten()
        .all(|server| server.request("GET", &path, "").0 == 200)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{database} did not reach every node"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A fixed address in front of a node that comes back on another port: the
/// test holds its listener for its whole run and forwards each connection to
/// the node's current address (a connection to a node that is down is closed
/// at once, as a refused one would be).
struct Relay {
    addr: SocketAddr,
    target: Arc<Mutex<Option<SocketAddr>>>,
}

impl Relay {
    fn start() -> Relay {
        let listener = TcpListener::bind(ANY_PORT).expect("bind the relay");
        let addr = listener.local_addr().expect("the relay's address");
        let target = Arc::new(Mutex::new(None::<SocketAddr>));
        let current = target.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Some(backend) = *current.lock().expect("lock") else {
                    continue;
                };
                std::thread::spawn(move || {
                    if let Ok(server) = TcpStream::connect(backend) {
                        relay_both_ways(client, server);
                    }
                });
            }
        });
        Relay { addr, target }
    }

    fn forward_to(&self, backend: SocketAddr) {
        *self.target.lock().expect("lock") = Some(backend);
    }
}

/// Copies bytes both ways until each side has closed its half.
fn relay_both_ways(client: TcpStream, server: TcpStream) {
    let (Ok(client_reader), Ok(server_reader)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let upstream = std::thread::spawn(move || pipe(client_reader, server));
    pipe(server_reader, client);
    let _ = upstream.join();
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(std::net::Shutdown::Write);
}

fn node(nodes: &[Option<Server>], index: usize) -> &Server {
    nodes[index].as_ref().expect("running")
}

fn write(server: &Server, database: &str, body: &str) {
    let (status, answer) = server.request("POST", &format!("/db/{database}/e"), body);
    assert_eq!(status, 200, "{answer}");
}

#[test]
fn a_ring_of_nodes_converges_through_kills_and_a_wipe() {
    let dirs: Vec<_> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    // Each node is its peer's at a fixed address, the relay's, and listens
    // on a port of the system's choosing, a new one after each restart.
    let relays: Vec<Relay> = (0..3).map(|_| Relay::start()).collect();
    let addrs: Vec<SocketAddr> = relays.iter().map(|relay| relay.addr).collect();
    let start = |index: usize| {
        let next = format!("http://{}", addrs[(index + 1) % 3]);
        let server = Server::try_start(
            dirs[index].path(),
            ANY_PORT,
            &["--peer", &next, "--sync-interval-ms", "50"],
        )
        .unwrap_or_else(|refusal| panic!("node {index}: {}", refusal.stderr));
        relays[index].forward_to(server.addr);
        server
    };
    let mut nodes: Vec<Option<Server>> = (0..3).map(|index| Some(start(index))).collect();

    assert_eq!(node(&nodes, 0).request("PUT", "/db/yard", "").0, 201);
    // The database reaches the ring before anything is written to it.
    let deadline = std::time::Instant::now() + PROCESS_TIMEOUT;
    while !nodes
        .iter()
        .flatten()
        .all(|server| server.request("GET", "/db/yard", "").0 == 200)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the database did not reach every node"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for (index, backdated) in [
        "01HF7YAT00000000000000000A",
        "01HF7YAT00000000000000000B",
        "01HF7YAT00000000000000000C",
    ]
    .iter()
    .enumerate()
    {
        write(
            node(&nodes, index),
            "yard",
            &format!(
                r#"[{{"id": "{backdated}", "data": {{"gate": {index}}}}}, {{"data": {{"truck": {index}}}}}]"#
            ),
        );
    }
    let all: Vec<&Server> = nodes.iter().map(|n| n.as_ref().expect("running")).collect();
    let first = converged(&all, "yard");
    assert_eq!(
        first.len(),
        6,
        "a database created on one node and its events reach the ring"
    );

    // Pause a node (SIGSTOP): the others go on, and it catches up when it
    // resumes.
    let paused = node(&nodes, 1).child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-STOP", &paused])
            .status()
            .expect("kill")
            .success()
    );
    write(node(&nodes, 0), "yard", r#"{"data": "while b was paused"}"#);
    assert!(
        Command::new("kill")
            .args(["-CONT", &paused])
            .status()
            .expect("kill")
            .success()
    );
    let all: Vec<&Server> = nodes.iter().map(|n| n.as_ref().expect("running")).collect();
    assert_eq!(converged(&all, "yard").len(), 7);

    // kill -9 a node in the middle of things; the others write on.
    nodes[1].take().expect("running").kill();
    write(node(&nodes, 0), "yard", r#"{"data": "while b was down"}"#);
    write(
        node(&nodes, 2),
        "yard",
        r#"{"id": "01HF7YAT00000000000000000D", "data": "backdated, while b was down"}"#,
    );
    nodes[1] = Some(start(1));
    let all: Vec<&Server> = nodes.iter().map(|n| n.as_ref().expect("running")).collect();
    assert_eq!(converged(&all, "yard").len(), 9);

    // Wipe a node's data directory: it gets everything back, and its new
    // writes flow out.
    nodes[2].take().expect("running").kill();
    std::fs::remove_dir_all(dirs[2].path()).expect("wipe");
    nodes[2] = Some(start(2));
    database_everywhere(&nodes, "yard");
    write(node(&nodes, 2), "yard", r#"{"data": "after the wipe"}"#);
    let all: Vec<&Server> = nodes.iter().map(|n| n.as_ref().expect("running")).collect();
    let last = converged(&all, "yard");
    assert_eq!(last.len(), 10);
    for event in &first {
        assert!(
            last.contains(event),
            "{event:?} kept its bytes and recorded_at"
        );
    }
    let (_, peers) = node(&nodes, 0).request("GET", "/peers", "");
    assert_eq!(peers["peers"][0]["url"], format!("http://{}", addrs[1]));
    assert!(peers["peers"][0]["last_sync"].is_string(), "{peers}");
    for server in nodes.into_iter().flatten() {
        assert!(server.terminate().success());
    }
}

#[test]
fn the_backup_command_copies_a_running_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let backups = dir.path().join("backups");
    let copy = backups.join("copy");
    let backup_dir = backups.to_str().expect("a UTF-8 path");
    let server = Server::try_start(&data, ANY_PORT, &["--backup-dir", backup_dir])
        .unwrap_or_else(|refusal| panic!("{}", refusal.stderr));
    assert_eq!(server.request("PUT", "/db/dock", "").0, 201);
    write(&server, "dock", r#"[{"data": 1}, {"data": 2}]"#);
    let backup_to = |to: &str| {
        Command::new(env!("CARGO_BIN_EXE_laterbase"))
            .args([
                "backup",
                "--node",
                &format!("http://{}", server.addr),
                "--to",
                to,
            ])
            .output()
            .expect("run laterbase backup")
    };
    let output = backup_to("copy");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let escape = backup_to("../escaped");
    assert!(!escape.status.success(), "a target outside is refused");
    assert!(
        String::from_utf8_lossy(&escape.stderr).contains("may not contain `..`"),
        "{}",
        String::from_utf8_lossy(&escape.stderr)
    );
    assert!(
        !dir.path().join("escaped").exists(),
        "and nothing is written"
    );
    let refused = Command::new(env!("CARGO_BIN_EXE_laterbase"))
        .args(["backup", "--data-dir"])
        .arg(&data)
        .arg("--to")
        .arg(dir.path().join("other"))
        .output()
        .expect("run laterbase backup");
    assert!(
        !refused.status.success(),
        "the running node holds its directory"
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--node"));
    assert!(server.terminate().success());
    let restored = Server::start(&copy);
    assert_eq!(everything(&restored, "dock").len(), 2);
    assert!(restored.terminate().success());
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
