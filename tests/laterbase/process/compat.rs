//! A node of this build beside a node of the first release (commit 70bd2e3:
//! sync wire version 2, storage format 1): the new one opens the data
//! directory the old one wrote, and both sync both ways, conflict lists
//! included, with the one token of that release or, on the new side, a
//! configuration file's scoped tokens.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::{ANY_PORT, Relay, Server, converged, write};

/// The released commit whose nodes later ones must keep syncing with.
const RELEASE: &str = "70bd2e3";

/// The `laterbase` binary of the first release: `LATERBASE_RELEASE_BINARY`
/// if set, else built once from the repository's history into
/// `target/compat-70bd2e3`.
fn release_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("LATERBASE_RELEASE_BINARY") {
        return PathBuf::from(path);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf();
    let home = root.join("target").join(format!("compat-{RELEASE}"));
    let binary = home.join("target/debug/laterbase");
    if binary.exists() {
        return binary;
    }
    let source = home.join("src");
    std::fs::create_dir_all(&source).expect("the release's source directory");
    let archive = Command::new("git")
        .arg("-C")
        .arg(&root)
        .args(["archive", "--format=tar", RELEASE])
        .output()
        .expect("git archive");
    assert!(
        archive.status.success(),
        "the repository's history must hold {RELEASE}: {}",
        String::from_utf8_lossy(&archive.stderr)
    );
    let mut untar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(&source)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("tar");
    std::io::Write::write_all(untar.stdin.as_mut().expect("stdin"), &archive.stdout)
        .expect("untar");
    assert!(untar.wait().expect("tar").success());
    let built = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .current_dir(&source)
        .args(["build", "--quiet", "-p", "laterbase", "--bin", "laterbase"])
        .env("CARGO_TARGET_DIR", home.join("target"))
        .output()
        .expect("cargo build of the release");
    assert!(
        built.status.success(),
        "the release {RELEASE} builds: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    binary
}

/// The port a process listens on, read from the system: a node of the first
/// release does not print it.
fn listening_port(pid: u32) -> u16 {
    let mut sockets = Vec::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).expect("the node's descriptors") {
        let Ok(link) = std::fs::read_link(fd.expect("fd").path()) else {
            continue;
        };
        if let Some(inode) = link
            .to_str()
            .and_then(|text| text.strip_prefix("socket:["))
            .and_then(|text| text.strip_suffix(']'))
        {
            sockets.push(inode.to_owned());
        }
    }
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).expect("tcp table");
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // local address, state 0A (listening), inode
        if fields.len() > 9 && fields[3] == "0A" && sockets.iter().any(|s| s == fields[9]) {
            let port = fields[1].rsplit(':').next().expect("a port");
            return u16::from_str_radix(port, 16).expect("a hex port");
        }
    }
    panic!("process {pid} listens on no TCP port");
}

/// Starts `program` on `data_dir`, peered with `peer` if given.
fn start(program: &Path, data_dir: &Path, peer: Option<&Relay>) -> Server {
    start_with(program, data_dir, peer, &[])
}

/// [`start`], with `more` flags.
fn start_with(program: &Path, data_dir: &Path, peer: Option<&Relay>, more: &[&str]) -> Server {
    let peer_url = peer.map(|relay| format!("http://{}", relay.addr));
    let mut extra = vec!["--sync-interval-ms", "50"];
    extra.extend(more);
    if let Some(url) = &peer_url {
        extra.extend(["--peer", url.as_str()]);
    }
    let mut server = Server::try_start_program(program, data_dir, ANY_PORT, &extra)
        .unwrap_or_else(|refusal| panic!("{}: {}", program.display(), refusal.stderr));
    if server.addr.port() == 0 {
        server.addr.set_port(listening_port(server.child.id()));
    }
    server
}

fn events(count: usize, tag: &str) -> String {
    let events: Vec<String> = (0..count)
        .map(|n| format!(r#"{{"data": {{"n": {n}, "at": "{tag}"}}}}"#))
        .collect();
    format!("[{}]", events.join(","))
}

fn conflicts(server: &Server) -> Value {
    let (status, answer) = server.request("GET", "/db/yard/conflicts", "");
    assert_eq!(status, 200, "{answer}");
    answer["conflicts"].clone()
}

/// Waits, bounded, until both list the same conflicts, and returns them.
fn conflicts_converged(servers: [&Server; 2]) -> Value {
    let deadline = std::time::Instant::now() + super::PROCESS_TIMEOUT;
    loop {
        let [a, b] = servers.map(conflicts);
        if a == b {
            return a;
        }
        assert!(std::time::Instant::now() < deadline, "{a} against {b}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_first_release_node_and_this_one_share_a_fleet() {
    let release = release_binary();
    let current = Path::new(env!("CARGO_BIN_EXE_laterbase"));
    let dirs = [
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    ];
    let conflicting = "01JDQ8Z4Y4M5V6T4Q2W3E8R9TA";
    // Both data directories are written by the first release, apart: each
    // its own events, and one id with two values.
    for (dir, value) in dirs.iter().zip(["\"tall\"", "\"small\""]) {
        let old = start(&release, dir.path(), None);
        assert_eq!(old.request("PUT", "/db/yard", "").0, 201);
        write(&old, "yard", &events(300, &value[1..2]));
        write(
            &old,
            "yard",
            &format!(r#"[{{"id": "{conflicting}", "data": {value}}}]"#),
        );
        assert_eq!(old.terminate().code(), Some(0));
    }
    // The first directory is upgraded: this build opens it; the other stays
    // on the first release, and each syncs with the other.
    let relays = [Relay::start(), Relay::start()];
    let new = start(current, dirs[0].path(), Some(&relays[1]));
    let old = start(&release, dirs[1].path(), Some(&relays[0]));
    relays[0].forward_to(new.addr);
    relays[1].forward_to(old.addr);
    let all = converged(&[&new, &old], "yard");
    assert_eq!(all.len(), 601, "both logs and the one contested id");
    let winner = all
        .iter()
        .find(|(id, _, _)| id == conflicting)
        .expect("the contested id");
    assert_eq!(winner.1, "\"small\"", "the smaller value wins on both");
    let listed = conflicts_converged([&new, &old]);
    assert_eq!(
        listed,
        serde_json::json!([{"id": conflicting, "kept": "small", "lost": "tall"}]),
        "both list the loser"
    );
    // New writes on either side flow to the other.
    write(&new, "yard", &events(50, "new"));
    write(&old, "yard", &events(50, "old"));
    assert_eq!(converged(&[&new, &old], "yard").len(), 701);
    for server in [&new, &old] {
        let (_, peers) = server.request("GET", "/peers", "");
        assert_eq!(peers["peers"][0]["last_error"], Value::Null, "{peers}");
    }
    let (_, peers) = new.request("GET", "/peers", "");
    assert_eq!(peers["peers"][0]["wire_version"], 2, "{peers}");
    let (_, status) = new.request("GET", "/status", "");
    assert_eq!(status["peers"][0]["wire_version"], 2, "{status}");
    assert_eq!(new.terminate().code(), Some(0));
    assert_eq!(old.terminate().code(), Some(0));
}

/// Waits, bounded, until `server` holds `count` events of `database`.
fn holds(server: &Server, database: &str, count: u64) {
    let deadline = std::time::Instant::now() + super::PROCESS_TIMEOUT;
    loop {
        let (_, info) = server.request("GET", &format!("/db/{database}"), "");
        if info["events"] == count {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{info}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Writes one event of `data_bytes` bytes of data (a JSON string) and
/// returns its id.
fn write_sized(server: &Server, database: &str, data_bytes: usize) -> String {
    let body = format!("{{\"data\":\"{}\"}}", "x".repeat(data_bytes - 2));
    let (status, answer) = server.request("POST", &format!("/db/{database}/e"), &body);
    assert_eq!(status, 200, "{answer}");
    answer["ids"][0].as_str().expect("an id").to_owned()
}

#[test]
fn an_event_a_first_release_node_cannot_take_is_named_and_the_rest_flows() {
    let release = release_binary();
    let current = Path::new(env!("CARGO_BIN_EXE_laterbase"));
    let dirs = [
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    ];
    // The first-release node only answers: all it gets comes in pushes.
    let old = start(&release, dirs[1].path(), None);
    let relay = Relay::start();
    relay.forward_to(old.addr);
    let new = start(current, dirs[0].path(), Some(&relay));
    assert_eq!(new.request("PUT", "/db/yard", "").0, 201);
    write(&new, "yard", &events(1, "before"));
    // The largest event this node's write route takes: too large for a
    // first-release node's sync limit, whatever the framing.
    let largest = laterbase::limits::BODY_BYTES_MAX - "{\"data\":}".len();
    assert!(largest > laterbase::limits::SYNC_V2_PUSH_EVENT_BYTES_MAX);
    let too_large = write_sized(&new, "yard", largest);
    // Larger than a page's budget, yet small enough for that node: it goes.
    let alone = write_sized(&new, "yard", laterbase::limits::SYNC_PAGE_BYTES_MAX + 1);
    write(&new, "yard", &events(1, "after"));
    holds(&old, "yard", 3);
    let (_, found) = old.request("GET", &format!("/db/yard/e?keys={too_large},{alone}"), "");
    assert_eq!(
        found["missing"],
        serde_json::json!([too_large]),
        "only the one it cannot take is missing"
    );
    let (_, peers) = new.request("GET", "/peers", "");
    let peer = &peers["peers"][0];
    assert_eq!(peer["unsent"], 1, "{peers}");
    assert_eq!(peer["last_error"], Value::Null, "the rest syncs: {peers}");
    let said = peer["last_unsent"].as_str().expect("named");
    for part in [
        too_large.as_str(),
        &largest.to_string(),
        &laterbase::limits::SYNC_V2_PUSH_EVENT_BYTES_MAX.to_string(),
        "first release",
    ] {
        assert!(said.contains(part), "{part}: {said}");
    }
    // Later writes flow too.
    write(&new, "yard", &events(5, "later"));
    holds(&old, "yard", 8);
    assert_eq!(new.terminate().code(), Some(0));
    assert_eq!(old.terminate().code(), Some(0));
}

#[test]
fn a_first_release_node_and_this_one_sync_under_one_token() {
    let release = release_binary();
    let current = Path::new(env!("CARGO_BIN_EXE_laterbase"));
    let dirs = [
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    ];
    let token = ["--token", "the-fleet-token"];
    let relays = [Relay::start(), Relay::start()];
    let new = start_with(current, dirs[0].path(), Some(&relays[1]), &token);
    let old = start_with(&release, dirs[1].path(), Some(&relays[0]), &token);
    relays[0].forward_to(new.addr);
    relays[1].forward_to(old.addr);
    for server in [&new, &old] {
        assert_eq!(
            server.request("GET", "/db", "").0,
            401,
            "no token, no entry"
        );
    }
    let new = new.presenting("the-fleet-token");
    let old = old.presenting("the-fleet-token");
    for server in [&new, &old] {
        assert_eq!(server.request("PUT", "/db/yard", "").0, 201);
    }
    write(&new, "yard", &events(40, "new"));
    write(&old, "yard", &events(40, "old"));
    assert_eq!(converged(&[&new, &old], "yard").len(), 80);
    for server in [&new, &old] {
        let (_, peers) = server.request("GET", "/peers", "");
        assert_eq!(peers["peers"][0]["last_error"], Value::Null, "{peers}");
    }
    assert_eq!(new.terminate().code(), Some(0));
    assert_eq!(old.terminate().code(), Some(0));
}

#[test]
fn a_hub_with_scoped_tokens_serves_a_first_release_truck_within_them() {
    let release = release_binary();
    let current = Path::new(env!("CARGO_BIN_EXE_laterbase"));
    let dirs = [
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    ];
    // The hub: this build, dialled by the truck; the truck's token may
    // sync `yard` and nothing else.
    let config = dirs[0].path().join("hub.toml");
    std::fs::write(
        &config,
        "[[token]]\ntoken = \"truck\"\ndatabases = [\"yard\"]\nscopes = [\"sync\"]\n\n\
         [[token]]\ntoken = \"dispatch\"\nscopes = [\"read\", \"write\", \"admin\"]\n",
    )
    .expect("the hub's file");
    let hub = start_with(
        current,
        &dirs[0].path().join("data"),
        None,
        &["--config", config.to_str().expect("UTF-8")],
    )
    .presenting("dispatch");
    assert_eq!(hub.request("PUT", "/db/yard", "").0, 201);
    assert_eq!(hub.request("PUT", "/db/payroll", "").0, 201);
    write(&hub, "yard", &events(30, "hub"));
    write(&hub, "payroll", &events(5, "hub"));
    // The truck: the first release, dialling the hub with its one token.
    let relay = Relay::start();
    relay.forward_to(hub.addr);
    let truck = start_with(
        &release,
        dirs[1].path(),
        Some(&relay),
        &["--token", "truck"],
    )
    .presenting("truck");
    assert_eq!(truck.request("PUT", "/db/yard", "").0, 201);
    write(&truck, "yard", &events(20, "truck"));
    assert_eq!(converged(&[&hub, &truck], "yard").len(), 50);
    let (_, listed) = truck.request("GET", "/db", "");
    assert_eq!(
        listed["databases"],
        serde_json::json!(["yard"]),
        "the truck is not sent what its token may not sync"
    );
    let (_, peers) = truck.request("GET", "/peers", "");
    assert_eq!(peers["peers"][0]["last_error"], Value::Null, "{peers}");
    assert_eq!(hub.terminate().code(), Some(0));
    assert_eq!(truck.terminate().code(), Some(0));
}
