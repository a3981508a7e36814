//! `POST /admin/backup`: copies go only under the configured backup
//! directory, and every refusal writes nothing.

use std::path::Path;

use axum::http::StatusCode;
use laterbase::http::{BackupDir, HttpState};
use laterbase::{Config, Node};
use serde_json::json;

use crate::http::{Api, assert_error};

/// A durable node with one event, serving backups under `backups` (or not).
async fn node_with_backups(data: &Path, backups: Option<&Path>) -> Api {
    let node = Node::open(Config::new(data)).await.expect("open");
    let backup_dir = backups.map(|dir| BackupDir::open(dir).expect("backup dir"));
    let api = Api::serving(node, |state: HttpState| state.backup_dir(backup_dir));
    api.create("dock").await;
    let (status, answer) = api.post("/db/dock/e", r#"{"data": 1}"#).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    api
}

async fn ask_backup(api: &Api, to: &Path) -> (StatusCode, serde_json::Value) {
    api.post("/admin/backup", &json!({"to": to}).to_string())
        .await
}

/// Every entry under `dir`, for "nothing was written".
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn without_a_backup_directory_the_route_is_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let api = node_with_backups(&dir.path().join("data"), None).await;
    let target = dir.path().join("copy");
    let answer = ask_backup(&api, &target).await;
    assert_error(&answer, StatusCode::NOT_FOUND, "not_found");
    assert!(
        answer.1["message"]
            .as_str()
            .is_some_and(|message| message.contains("--backup-dir")),
        "{}",
        answer.1
    );
    assert!(!target.exists(), "nothing was written");
    api.node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_backup_goes_under_the_backup_directory_by_name_or_absolute_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backups = dir.path().join("backups");
    let api = node_with_backups(&dir.path().join("data"), Some(&backups)).await;

    let (status, answer) = ask_backup(&api, Path::new("monday")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(
        answer["records"].as_u64().is_some_and(|n| n > 0),
        "{answer}"
    );
    let written = backups.canonicalize().expect("canonical").join("monday");
    assert_eq!(answer["to"], json!(written), "the answer names the copy");

    let absolute = backups.join("tuesday");
    let (status, answer) = ask_backup(&api, &absolute).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(entries(&backups), ["monday", "tuesday"]);
    api.node.shutdown().await.expect("shutdown");

    let restored = Node::open(Config::new(&written))
        .await
        .expect("open the copy");
    let database = restored
        .database("dock")
        .expect("the copy has the database");
    assert_eq!(database.changes(0, 10).await.expect("read").events.len(), 1);
    restored.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn targets_that_leave_the_backup_directory_are_refused_and_write_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backups = dir.path().join("backups");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).expect("mkdir");
    let api = node_with_backups(&dir.path().join("data"), Some(&backups)).await;
    std::os::unix::fs::symlink(&elsewhere, backups.join("link")).expect("symlink");
    std::os::unix::fs::symlink(elsewhere.join("gone"), backups.join("dangling")).expect("symlink");

    let refusals = [
        ("", "names a new directory"),
        ("../escaped", "may not contain `..`"),
        ("inside/../../escaped", "may not contain `..`"),
        ("link/copy", "outside the backup directory"),
        ("missing/copy", "does not exist"),
        ("/", "outside the backup directory"),
    ];
    for (to, reason) in refusals {
        let answer = ask_backup(&api, Path::new(to)).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_name");
        assert!(
            answer.1["message"]
                .as_str()
                .is_some_and(|message| message.contains(reason)),
            "{to:?}: {}",
            answer.1
        );
    }
    let absolute_elsewhere = elsewhere.join("copy");
    let answer = ask_backup(&api, &absolute_elsewhere).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_name");

    // The link itself exists (as would a dangling one): a backup goes into a
    // new directory.
    for to in ["link", "dangling"] {
        let answer = ask_backup(&api, Path::new(to)).await;
        assert_error(&answer, StatusCode::CONFLICT, "conflict");
    }

    assert_eq!(
        entries(&backups),
        ["dangling", "link"],
        "nothing was written inside"
    );
    assert!(
        entries(&elsewhere).is_empty(),
        "nothing was written outside"
    );
    assert_eq!(entries(dir.path()), ["backups", "data", "elsewhere"]);
    api.node.shutdown().await.expect("shutdown");
}
