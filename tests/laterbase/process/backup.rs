//! The `laterbase backup` command: it copies a running node through its
//! HTTP API into the node's backup directory, refuses a target outside it
//! and a data directory that a running node holds, and the copy starts.

use std::process::Command;

use super::{ANY_PORT, Server, everything, write};

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
