//! Starting and stopping: SIGTERM stops a node with exit code 0 and keeps
//! its data, and a node that cannot start (its directory held, unreadable
//! or of an unknown format, its address taken, its limits out of bounds)
//! exits with a one-line reason.

use super::{ANY_PORT, Server};

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
