//! The real binary on a small disk of its own that it fills: every refused
//! write answers `507 insufficient_storage`, reads go on, SIGTERM stops the
//! node with exit code 0, and once the disk has room again the node holds
//! every acknowledged event.

use serde_json::Value;

use super::Server;
use crate::support::{SmallDisk, incompressible_json};

/// The disk: one memtable of journal fits with room to spare, its flush
/// does not, so fjall's background flush is what usually meets the full
/// disk first (the journal write or the fsync may, and answer the same).
const DISK_BYTES: u64 = 48 * 1024 * 1024;

/// What one write carries: four events of 64 KiB.
const EVENTS_PER_BATCH: usize = 4;
const EVENT_BYTES: usize = 64 * 1024;

/// The most writes before the disk must have filled.
const BATCHES_MAX: u64 = 1_000;

/// The ids of the changes feed of `database`, page by page.
fn feed_ids(server: &Server, database: &str) -> Vec<Value> {
    let mut ids = Vec::new();
    let mut lc = 0;
    loop {
        let (status, page) = server.request("GET", &format!("/db/{database}/e?lc={lc}"), "");
        assert_eq!(status, 200, "{page}");
        let events = page["events"].as_array().expect("events");
        ids.extend(events.iter().map(|event| event["id"].clone()));
        lc = page["lc"].as_u64().expect("lc");
        if page["more"] != Value::Bool(true) {
            return ids;
        }
    }
}

#[test]
fn a_node_that_fills_its_disk_answers_507_and_stops_with_exit_code_zero() {
    let Some(disk) = SmallDisk::mount(DISK_BYTES) else {
        return;
    };
    let data_dir = disk.path().join("data");
    let server = Server::start(&data_dir);
    assert_eq!(server.request("PUT", "/db/trucks", "").0, 201);
    let mut acknowledged = Vec::new();
    let refusal = (0..BATCHES_MAX)
        .find_map(|batch| {
            let events: Vec<String> = (0..EVENTS_PER_BATCH as u64)
                .map(|n| {
                    let data =
                        incompressible_json(batch * EVENTS_PER_BATCH as u64 + n, EVENT_BYTES);
                    format!("{{\"data\": {data}}}")
                })
                .collect();
            let body = format!("[{}]", events.join(","));
            let (status, answer) = server.request("POST", "/db/trucks/e", &body);
            if status != 200 {
                return Some((status, answer));
            }
            acknowledged.extend(answer["ids"].as_array().expect("ids").iter().cloned());
            None
        })
        .expect("the writes filled the disk");
    assert!(!acknowledged.is_empty(), "the disk took some writes first");
    for (status, answer) in [
        refusal,
        server.request("POST", "/db/trucks/e", "{\"data\": 1}"),
        server.request("PUT", "/db/docks", ""),
    ] {
        assert_eq!(status, 507, "{answer}");
        assert_eq!(answer["error"], "insufficient_storage", "{answer}");
    }
    assert_eq!(feed_ids(&server, "trucks"), acknowledged, "reads go on");
    let status = server.terminate();
    assert!(status.success(), "a full disk stops cleanly: {status}");

    disk.grow(DISK_BYTES * 4);
    let server = Server::start(&data_dir);
    let stored = feed_ids(&server, "trucks");
    assert_eq!(
        stored.get(..acknowledged.len()),
        Some(&acknowledged[..]),
        "every acknowledged event, in order"
    );
    assert!(
        stored.len() - acknowledged.len() <= EVENTS_PER_BATCH,
        "at most the refused batch besides"
    );
    assert_eq!(
        server.request("POST", "/db/trucks/e", "{\"data\": 2}").0,
        200
    );
    assert!(server.terminate().success());
}
