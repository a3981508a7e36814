//! Three nodes in a ring of peers, each behind a relay at a fixed address:
//! they converge through a pause, a kill and a wiped data directory.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use super::{ANY_PORT, PROCESS_TIMEOUT, Relay, Server, converged, write};

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

fn node(nodes: &[Option<Server>], index: usize) -> &Server {
    nodes[index].as_ref().expect("running")
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
