//! The committed data directories of earlier releases (`tests/fixtures/`):
//! this build opens a copy of each and serves every event as the release
//! that wrote it did, and keeps taking writes on it.

use std::path::Path;

use serde_json::Value;

use super::{Server, everything, write};

/// Copies the directory `from` into `to`, recursively.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create");
    for entry in std::fs::read_dir(from).expect("read the fixture") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[test]
fn a_data_directory_of_format_one_opens_with_every_event_intact() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/format-1");
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&fixture.join("data"), dir.path());
    for start in 0..2 {
        let server = Server::start(dir.path());
        for database in ["yard", "gates"] {
            let text = std::fs::read_to_string(fixture.join(format!("{database}.json")))
                .expect("the fixture's events");
            let expected: Vec<(String, String, String)> =
                serde_json::from_str::<Vec<(String, Value, String)>>(&text)
                    .expect("triples")
                    .into_iter()
                    .map(|(id, data, recorded_at)| (id, data.to_string(), recorded_at))
                    .collect();
            let held = everything(&server, database);
            let mine: Vec<_> = held.iter().take(expected.len()).cloned().collect();
            assert_eq!(mine, expected, "{database}, start {start}");
        }
        write(
            &server,
            "yard",
            &format!(r#"[{{"data": {{"start": {start}}}}}]"#),
        );
        assert_eq!(
            server.request("GET", "/db/yard", "").1["events"],
            151 + start
        );
        assert!(server.terminate().success());
    }
}
