//! The real `laterbase` binary, started as a process: this module starts
//! and stops nodes (`Server`), speaks HTTP/1.1 to them over a socket, reads
//! a database back whole and waits for nodes to converge; each file beside
//! it tests one part of what the binary promises.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use serde_json::Value;

mod backup;
mod compat;
mod config;
mod fixtures;
mod full_disk;
mod kills;
mod lifecycle;
mod ring;
mod wire;

/// How long a node may take to start or stop before the test fails.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(30);

/// A `laterbase serve` process.
struct Server {
    child: Child,
    addr: SocketAddr,
    /// What [`Server::request`] presents as `Authorization: Bearer`, if
    /// the node wants a token.
    token: Option<String>,
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
    /// A node on `data_dir` whose database `gates` holds one event.
    fn with_one_event(data_dir: &Path) -> Server {
        let server = Server::start(data_dir);
        assert_eq!(server.request("PUT", "/db/gates", "").0, 201);
        assert_eq!(
            server.request("POST", "/db/gates/e", "{\"data\": 1}").0,
            200
        );
        server
    }

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
        let data_dir = data_dir.to_str().expect("a UTF-8 path");
        let mut args = vec!["serve", "--data-dir", data_dir, "--listen", listen];
        args.extend(extra);
        Server::try_start_with(program, &args, &[])
    }

    /// Starts `program` with `args` (the subcommand first) and the
    /// environment `env`, without any other `LATERBASE_` variable.
    fn try_start_with(
        program: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Server, Refusal> {
        let mut command = Command::new(program);
        command.args(args).env("RUST_LOG", "info");
        for (name, _) in
            std::env::vars_os().filter(|(name, _)| name.to_string_lossy().starts_with("LATERBASE_"))
        {
            command.env_remove(name);
        }
        command.envs(env.iter().copied());
        let mut child = command
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
                        token: None,
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

    /// This node, its requests presenting `token`.
    fn presenting(mut self, token: &str) -> Server {
        self.token = Some(token.to_owned());
        self
    }

    fn request(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        let bearer = self.token.as_ref().map(|token| format!("Bearer {token}"));
        let headers: Vec<(&str, &str)> = bearer
            .iter()
            .map(|value| ("authorization", value.as_str()))
            .collect();
        let (status, body) = request(self.addr, method, path, &headers, body.as_bytes());
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

/// Writes `body` to `database` on `server`, which must take it.
fn write(server: &Server, database: &str, body: &str) {
    let (status, answer) = server.request("POST", &format!("/db/{database}/e"), body);
    assert_eq!(status, 200, "{answer}");
}
