//! Starting and stopping: SIGTERM stops a node with exit code 0 and keeps
//! its data, and a node that cannot start (its directory held, unreadable
//! or of an unknown format, its address taken, its limits out of bounds)
//! exits with a one-line reason.

use super::{ANY_PORT, Server};

#[test]
fn sigterm_stops_the_node_with_exit_code_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::with_one_event(dir.path());
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

#[test]
fn sigterm_ends_open_live_streams_cleanly() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::with_one_event(dir.path());
    let mut stream = std::net::TcpStream::connect(server.addr).expect("connect");
    stream
        .write_all(b"GET /db/gates/e?feed=live HTTP/1.1\r\nhost: node\r\n\r\n")
        .expect("request");
    // Until the stored event has come.
    let mut seen = Vec::new();
    let mut buffer = [0; 4096];
    while !String::from_utf8_lossy(&seen).contains("id: 1\n") {
        let read = stream.read(&mut buffer).expect("read");
        assert!(
            read > 0,
            "the stream ended early: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buffer[..read]);
    }
    let stopping = std::time::Instant::now();
    let status = server.terminate();
    assert!(status.success(), "exit status {status}");
    // The stop ended the stream: the drain did not wait out its timeout
    // for it (a bound on what happened, not a measure of speed).
    assert!(
        stopping.elapsed() < std::time::Duration::from_millis(laterbase::limits::DRAIN_TIMEOUT_MS),
        "the drain waited for the stream"
    );
    // What follows is the end of the chunked body, then the connection
    // closes: the stream ended cleanly.
    stream.read_to_end(&mut seen).expect("read to the end");
    let text = String::from_utf8_lossy(&seen);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.ends_with("0\r\n\r\n"),
        "the body ends cleanly: {text:?}"
    );
}
