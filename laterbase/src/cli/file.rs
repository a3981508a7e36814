//! `laterbase serve --config FILE`: a TOML file whose keys are the flags of
//! `serve` without their dashes, with `[[peer]]` and `[[token]]` tables
//! for `--peer` and `--token`.
//!
//! The file is read and checked whole before the node starts: an unknown
//! key, a bad value or a missing file is one line naming the file, the key
//! and what is wrong. A flag given on the command line or in the
//! environment wins over the file's key. Relative paths in the file are
//! relative to the file's own directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::args::{LogFormat, ServeArgs};
use crate::event::EventId;
use crate::http::{Grant, Scope};
use crate::replication::{Flow, Peer};

/// The file, as written.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct File {
    data_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    backup_dir: Option<PathBuf>,
    clock_skew_ms: Option<u64>,
    live_streams_max: Option<usize>,
    request_timeout_ms: Option<u64>,
    sync_interval_ms: Option<u64>,
    sync_backoff_ms_max: Option<u64>,
    batch_events_max: Option<usize>,
    body_bytes_max: Option<usize>,
    page_events_default: Option<usize>,
    page_events_max: Option<usize>,
    log_format: Option<LogFormat>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    peer_ca: Option<PathBuf>,
    #[serde(default)]
    peer: Vec<PeerTable>,
    #[serde(default)]
    token: Vec<TokenTable>,
}

/// A `[[peer]]` table.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerTable {
    url: String,
    databases: Option<Vec<String>>,
    token: Option<String>,
    direction: Option<Flow>,
}

/// A `[[token]]` table.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenTable {
    token: Option<String>,
    sha256: Option<String>,
    databases: Option<Vec<String>>,
    scopes: Option<Vec<Scope>>,
    node: Option<String>,
}

/// Reads the file at `path` into `args`: each of its keys whose flag
/// `given` does not name (given on the command line or in the
/// environment), and its tables, before those of the command line.
pub(super) fn apply(
    args: &mut ServeArgs,
    path: &Path,
    given: impl Fn(&str) -> bool,
) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        format!(
            "cannot read the configuration file {}: {error}",
            path.display()
        )
    })?;
    let file = parse(&text).map_err(|error| format!("{}: {error}", path.display()))?;
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    let within = |relative: PathBuf| base.join(relative);
    let (peers, grants) = tables(&file).map_err(|error| format!("{}: {error}", path.display()))?;
    macro_rules! take {
        ($($field:ident),* $(,)?) => {$(
            if let Some(value) = file.$field {
                if !given(stringify!($field)) {
                    args.$field = value;
                }
            }
        )*};
    }
    macro_rules! take_path {
        ($($field:ident),* $(,)?) => {$(
            if let Some(value) = file.$field {
                if !given(stringify!($field)) {
                    args.$field = within(value).into();
                }
            }
        )*};
    }
    take!(
        listen,
        clock_skew_ms,
        live_streams_max,
        request_timeout_ms,
        sync_interval_ms,
        sync_backoff_ms_max,
        batch_events_max,
        body_bytes_max,
        page_events_default,
        page_events_max,
        log_format,
    );
    take_path!(data_dir, backup_dir, tls_cert, tls_key, peer_ca);
    // The file's tables first, then what the command line adds to them.
    args.peer_tables.splice(0..0, peers);
    args.grants.splice(0..0, grants);
    Ok(())
}

/// The file's text read as a [`File`]; an error says where, on one line.
fn parse(text: &str) -> Result<File, String> {
    toml::from_str::<File>(text).map_err(|error| {
        let message = error.message().replace('\n', " ");
        let Some(span) = error.span() else {
            return message;
        };
        let start = span.start.min(text.len());
        let line = text
            .get(..start)
            .map_or(1, |before| before.matches('\n').count() + 1);
        let line_text = text.lines().nth(line - 1).unwrap_or_default();
        match line_text.split_once('=') {
            // What toml says of a value it did not take quotes the value:
            // never a token's.
            Some((key, _)) if matches!(key.trim(), "token" | "sha256") => format!(
                "line {line}, key {}: not what it should be (a token is a string, in a [[token]] or [[peer]] table)",
                key.trim()
            ),
            Some((key, _)) if !key.trim().starts_with('[') => {
                format!("line {line}, key {}: {message}", key.trim())
            }
            _ => format!("line {line}: {message}"),
        }
    })
}

/// The file's `[[peer]]` and `[[token]]` tables, checked.
fn tables(file: &File) -> Result<(Vec<Peer>, Vec<Grant>), String> {
    let mut peers = Vec::with_capacity(file.peer.len());
    for (index, table) in file.peer.iter().enumerate() {
        let at =
            |key: &str, problem: String| format!("[[peer]] {}, key {key}: {problem}", index + 1);
        if !(table.url.starts_with("http://") || table.url.starts_with("https://")) {
            return Err(at(
                "url",
                format!("{:?} is not an http:// or https:// URL", table.url),
            ));
        }
        let databases = table
            .databases
            .clone()
            .unwrap_or_else(|| vec!["*".to_owned()]);
        if databases.is_empty() {
            return Err(at(
                "databases",
                "an empty list syncs nothing: leave the key out for every database".to_owned(),
            ));
        }
        peers.push(Peer {
            url: table.url.clone(),
            databases,
            token: table.token.clone(),
            flow: table.direction.unwrap_or_default(),
        });
    }
    let mut grants = Vec::with_capacity(file.token.len());
    for (index, table) in file.token.iter().enumerate() {
        let at =
            |key: &str, problem: &str| format!("[[token]] {}, key {key}: {problem}", index + 1);
        let grant = match (&table.token, &table.sha256) {
            (Some(token), None) => {
                if token.is_empty() {
                    return Err(at("token", "a token is not empty"));
                }
                Grant::token(token)
            }
            (None, Some(hash)) => {
                Grant::sha256_hex(hash).map_err(|problem| at("sha256", &problem))?
            }
            (Some(_), Some(_)) => return Err(at("token", "give token or sha256, not both")),
            (None, None) => return Err(at("token", "give token = \"...\" or sha256 = \"<hex>\"")),
        };
        let scopes = match &table.scopes {
            Some(scopes) if !scopes.is_empty() => scopes.clone(),
            _ => {
                return Err(at(
                    "scopes",
                    "scopes are required: some of \"read\", \"write\", \"sync\", \"admin\"",
                ));
            }
        };
        let node = match &table.node {
            Some(text) => Some(
                text.parse::<EventId>()
                    .map_err(|_| at("node", &format!("{text:?} is not a node id (a ULID)")))?,
            ),
            None => None,
        };
        let databases = table
            .databases
            .clone()
            .unwrap_or_else(|| vec!["*".to_owned()]);
        grants.push(grant.databases(databases).scopes(scopes).node(node));
    }
    Ok((peers, grants))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
listen = "0.0.0.0:7443"
tls-cert = "hub.crt"
tls-key = "hub.key"

[[peer]]
url = "https://hub-north.example:7443"
databases = ["truck-17", "routes"]   # names, or globs with `*`
token = "t17-9c1e"
direction = "push"

[[token]]
sha256 = "4f1a000000000000000000000000000000000000000000000000000000000000"
databases = ["truck-*"]
scopes = ["read", "write", "sync"]
node = "01JDQ8Z4Y4M5V6T4Q2W3E8R9TA"

[[token]]
token = "hub-admin"
scopes = ["admin"]
"#;

    #[test]
    fn the_example_reads_as_peers_and_grants() {
        let file = parse(EXAMPLE).expect("the example");
        assert_eq!(
            file.listen,
            Some("0.0.0.0:7443".parse().expect("an address"))
        );
        assert_eq!(file.tls_cert, Some(PathBuf::from("hub.crt")));
        let (peers, grants) = tables(&file).expect("tables");
        assert_eq!(
            peers,
            vec![Peer {
                url: "https://hub-north.example:7443".to_owned(),
                databases: vec!["truck-17".to_owned(), "routes".to_owned()],
                token: Some("t17-9c1e".to_owned()),
                flow: Flow::Push,
            }]
        );
        assert_eq!(grants.len(), 2);
        let truck = &grants[0];
        assert!(truck.allows(Scope::Sync, "truck-17") && !truck.allows(Scope::Sync, "routes"));
        assert!(!truck.allows(Scope::Admin, "truck-17"));
        assert_eq!(
            truck.bound_node().map(|node| node.to_string()),
            Some("01JDQ8Z4Y4M5V6T4Q2W3E8R9TA".to_owned())
        );
        let admin = &grants[1];
        assert!(admin.has(Scope::Admin) && !admin.allows(Scope::Read, "anything"));
    }

    #[test]
    fn every_flag_is_a_key() {
        let file = parse(
            r#"
data-dir = "./a"
listen = "127.0.0.1:0"
backup-dir = "backups"
clock-skew-ms = 1
live-streams-max = 2
request-timeout-ms = 3
sync-interval-ms = 4
sync-backoff-ms-max = 5
batch-events-max = 6
body-bytes-max = 7
page-events-default = 8
page-events-max = 9
log-format = "json"
tls-cert = "c"
tls-key = "k"
peer-ca = "ca"
"#,
        )
        .expect("every key");
        assert_eq!(
            (file.clock_skew_ms, file.page_events_max, file.log_format),
            (Some(1), Some(9), Some(LogFormat::Json))
        );
        assert_eq!(file.peer_ca, Some(PathBuf::from("ca")));
    }

    /// The error of `text`, which must be one line naming `words`.
    fn error(text: &str, words: &[&str]) {
        let said = match parse(text) {
            Err(error) => error,
            Ok(file) => tables(&file).expect_err("an error"),
        };
        assert!(!said.contains('\n'), "one line: {said}");
        for word in words {
            assert!(said.contains(word), "{said:?} names {word:?}");
        }
    }

    #[test]
    fn each_mistake_is_one_line_naming_the_key() {
        error("lisen = \"x\"", &["line 1", "lisen", "unknown field"]);
        error(
            "data-dir = \"a\"\nlisten = \"nowhere\"",
            &["line 2", "key listen", "invalid socket address"],
        );
        error("sync-interval-ms = -4", &["key sync-interval-ms"]);
        error("log-format = \"xml\"", &["key log-format", "xml"]);
        error(
            "[[token]]\ntoken = \"t\"",
            &["[[token]] 1", "scopes are required"],
        );
        error(
            "[[token]]\ntoken = \"t\"\nscopes = []",
            &["[[token]] 1", "scopes are required"],
        );
        error(
            "[[token]]\ntoken = \"t\"\nsha256 = \"ab\"\nscopes = [\"read\"]",
            &["token or sha256, not both"],
        );
        error(
            "[[token]]\nsha256 = \"abc\"\nscopes = [\"read\"]",
            &["key sha256", "64 hexadecimal digits"],
        );
        error(
            "[[token]]\ntoken = \"t\"\nscopes = [\"root\"]",
            &["line 3", "key scopes", "root"],
        );
        error(
            "[[token]]\ntoken = \"a\"\nscopes = [\"read\"]\n[[token]]\ntoken = \"t\"\nscopes = [\"read\"]\nnode = \"truck\"",
            &["[[token]] 2", "key node", "not a node id"],
        );
        error(
            "[[token]]\ntoken = \"t\"\nscope = [\"read\"]",
            &["line 3", "scope"],
        );
        error("[[peer]]\ndatabases = [\"a\"]", &["url"]);
        error(
            "[[peer]]\nurl = \"hub:7070\"",
            &["[[peer]] 1", "key url", "http://"],
        );
        error(
            "[[peer]]\nurl = \"http://hub\"\ndirection = \"sideways\"",
            &["line 3", "key direction", "sideways"],
        );
        error("peer = \"http://hub\"", &["line 1", "key peer"]);
        error("token = \"secret\"", &["line 1", "key token"]);
        let said = parse("token = \"secret\"").expect_err("a table");
        assert!(!said.contains("secret"), "{said}");
    }
}
