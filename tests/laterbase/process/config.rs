//! `serve --config FILE`: the file's keys and tables reach the node, the
//! command line and the environment win over the file, and a file that
//! cannot be read or holds a mistake stops the node with one line naming
//! the file and the key.

use std::path::Path;

use sha2::Digest;

use super::{Refusal, Server, request};

fn serve(args: &[&str], env: &[(&str, &str)]) -> Result<Server, Refusal> {
    let mut all = vec!["serve"];
    all.extend(args);
    Server::try_start_with(env!("CARGO_BIN_EXE_laterbase").as_ref(), &all, env)
}

fn write(path: &Path, text: &str) -> String {
    std::fs::write(path, text).expect("write the configuration file");
    path.to_str().expect("a UTF-8 path").to_owned()
}

/// The status of `method path` presenting `token` (none: no header).
fn status(server: &Server, method: &str, path: &str, token: Option<&str>) -> u16 {
    let bearer = token.map(|token| format!("Bearer {token}"));
    let headers: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|value| vec![("authorization", value)])
        .unwrap_or_default();
    request(server.addr, method, path, &headers, b"").0
}

#[test]
fn the_command_line_wins_over_the_environment_which_wins_over_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A relative path in the file is relative to the file's directory.
    let config = write(
        &dir.path().join("node.toml"),
        "data-dir = \"from-file\"\nlisten = \"127.0.0.1:0\"\n",
    );
    let from_env = dir.path().join("from-env");
    let from_flag = dir.path().join("from-flag");
    let from_env_arg = from_env.to_str().expect("UTF-8");
    let from_flag_arg = from_flag.to_str().expect("UTF-8");

    let file_only = serve(&["--config", &config], &[]).unwrap_or_else(|refusal| {
        panic!("refused: {}", refusal.stderr);
    });
    assert!(
        dir.path().join("from-file").is_dir(),
        "the file's data-dir, beside the file"
    );
    assert!(file_only.terminate().success());

    let env_and_file = serve(
        &["--config", &config],
        &[("LATERBASE_DATA_DIR", from_env_arg)],
    )
    .unwrap_or_else(|refusal| panic!("refused: {}", refusal.stderr));
    assert!(from_env.is_dir(), "the environment's data-dir");
    assert!(env_and_file.terminate().success());

    let all_three = serve(
        &["--config", &config, "--data-dir", from_flag_arg],
        &[("LATERBASE_DATA_DIR", from_env_arg)],
    )
    .unwrap_or_else(|refusal| panic!("refused: {}", refusal.stderr));
    assert!(from_flag.is_dir(), "the command line's data-dir");
    assert!(all_three.terminate().success());

    // The environment may name the file too.
    std::fs::remove_dir_all(dir.path().join("from-file")).expect("remove");
    let file_from_env = serve(&[], &[("LATERBASE_CONFIG", &config)])
        .unwrap_or_else(|refusal| panic!("refused: {}", refusal.stderr));
    assert!(dir.path().join("from-file").is_dir(), "LATERBASE_CONFIG");
    assert!(file_from_env.terminate().success());
}

#[test]
fn the_files_tokens_hold_their_scopes_and_one_may_be_stored_as_sha256() {
    let dir = tempfile::tempdir().expect("tempdir");
    let writer_digest = hex(&sha2::Sha256::digest(b"the-writer"));
    let config = write(
        &dir.path().join("node.toml"),
        &format!(
            "data-dir = \"data\"\nlisten = \"127.0.0.1:0\"\n\n\
             [[token]]\ntoken = \"the-reader\"\ndatabases = [\"yard*\"]\nscopes = [\"read\"]\n\n\
             [[token]]\nsha256 = \"{writer_digest}\"\nscopes = [\"read\", \"write\", \"admin\"]\n"
        ),
    );
    let server = serve(&["--config", &config], &[])
        .unwrap_or_else(|refusal| panic!("refused: {}", refusal.stderr));
    assert_eq!(status(&server, "PUT", "/db/yard-1", None), 401);
    assert_eq!(status(&server, "PUT", "/db/yard-1", Some("wrong")), 401);
    assert_eq!(
        status(&server, "PUT", "/db/yard-1", Some("the-reader")),
        403
    );
    assert_eq!(
        status(&server, "PUT", "/db/yard-1", Some("the-writer")),
        201,
        "the token whose SHA-256 the file holds"
    );
    assert_eq!(status(&server, "PUT", "/db/dock", Some("the-writer")), 201);
    assert_eq!(
        status(&server, "GET", "/db/yard-1", Some("the-reader")),
        200
    );
    assert_eq!(
        status(&server, "GET", "/db/dock", Some("the-reader")),
        403,
        "outside the reader's databases"
    );
    assert_eq!(status(&server, "GET", "/healthz", None), 200);
    assert!(server.terminate().success());
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The one line a refused node printed.
fn one_line(refusal: &Refusal) -> &str {
    assert!(!refusal.status.success(), "{}", refusal.status);
    assert_eq!(refusal.status.code(), Some(1), "{}", refusal.status);
    let lines: Vec<&str> = refusal.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {}", refusal.stderr);
    lines[0]
}

#[test]
fn a_missing_file_stops_the_node_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("absent.toml");
    let refusal = serve(&["--config", missing.to_str().expect("UTF-8")], &[])
        .err()
        .expect("refused");
    let line = one_line(&refusal);
    assert!(line.contains("absent.toml"), "{line}");
    assert!(line.contains("cannot read"), "{line}");
}

#[test]
fn a_mistake_in_the_file_stops_the_node_naming_file_line_and_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        (
            "data-dir = \"d\"\nlisten-on = \"127.0.0.1:0\"\n",
            "line 2",
            "listen-on",
        ),
        ("listen = \"nowhere\"\n", "line 1", "listen"),
        (
            "[[peer]]\nurl = \"http://hub:7070\"\ndirection = \"sideways\"\n",
            "line 3",
            "direction",
        ),
        (
            "[[token]]\ntoken = \"t\"\nscopes = [\"everything\"]\n",
            "line 3",
            "scopes",
        ),
        (
            "[[token]]\ntoken = \"t\"\nscopes = [\"read\"]\n[[token]]\ntoken = \"u\"\n",
            "[[token]] 2",
            "scopes",
        ),
    ];
    for (text, at, key) in cases {
        let path = write(&dir.path().join("bad.toml"), text);
        let refusal = serve(&["--config", &path], &[]).err().expect("refused");
        let line = one_line(&refusal);
        assert!(line.contains("bad.toml"), "names the file: {line}");
        assert!(line.contains(at), "says where ({at}): {line}");
        assert!(line.contains(key), "names the key ({key}): {line}");
    }
    // A token written as something else than a string: the error does not
    // repeat it.
    let path = write(
        &dir.path().join("bad.toml"),
        "[[token]]\ntoken = 31415926\nscopes = [\"read\"]\n",
    );
    let refusal = serve(&["--config", &path], &[]).err().expect("refused");
    let line = one_line(&refusal);
    assert!(line.contains("token"), "{line}");
    assert!(
        !line.contains("31415926"),
        "the token is not echoed: {line}"
    );
    assert!(
        !dir.path().join("d").exists(),
        "nothing was opened for a file that failed"
    );
}
