//! The flags of `laterbase serve` and `laterbase backup`, each also read
//! from an environment variable, and for `serve` from the configuration
//! file ([`super::file`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::ValueEnum;

use crate::http::Grant;
use crate::limits::{
    BATCH_EVENTS_MAX, BODY_BYTES_MAX, CLOCK_SKEW_MS_DEFAULT, LIVE_STREAMS_MAX_DEFAULT,
    PAGE_EVENTS_DEFAULT, PAGE_EVENTS_MAX, REQUEST_TIMEOUT_MS_DEFAULT, SYNC_BACKOFF_MS_MAX,
    SYNC_INTERVAL_MS_DEFAULT,
};
use crate::replication::Peer;

/// The flags of `laterbase backup`.
#[derive(clap::Args, Debug, Clone)]
pub struct BackupArgs {
    /// The node's data directory, when no node runs on it.
    #[arg(long, env = "LATERBASE_DATA_DIR", default_value = "./laterbase-data")]
    pub data_dir: PathBuf,

    /// The new directory to copy into (must not exist). With `--node`, it is
    /// on the node's machine, under the node's `--backup-dir`: a name
    /// relative to it, or an absolute path inside it.
    #[arg(long)]
    pub to: PathBuf,

    /// The base URL of a node that runs on the data directory: it takes the
    /// copy itself, while it serves, into its `--backup-dir`.
    #[arg(long)]
    pub node: Option<String>,

    /// The node's access token, with `--node`.
    #[arg(long, env = "LATERBASE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// The flags of `laterbase serve`.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// A TOML file whose keys are these flags without their dashes, with
    /// `[[peer]]` and `[[token]]` tables (`docs/configuration.md`); a flag
    /// given here or in the environment wins over the file.
    #[arg(long, env = "LATERBASE_CONFIG")]
    pub config: Option<PathBuf>,

    /// Where the node keeps its data (created if missing). One node per directory.
    #[arg(long, env = "LATERBASE_DATA_DIR", default_value = "./laterbase-data")]
    pub data_dir: PathBuf,

    /// The address to serve the HTTP API on (port 0: one the system picks,
    /// named in the "serving" log line).
    #[arg(long, env = "LATERBASE_LISTEN", default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,

    /// Another node's base URL (repeatable; the variable takes a
    /// comma-separated list): every database, both ways, presenting
    /// `--token`.
    #[arg(long = "peer", env = "LATERBASE_PEERS", value_delimiter = ',')]
    pub peers: Vec<String>,

    /// Require `Authorization: Bearer <TOKEN>` on every route but /healthz:
    /// a token with every scope on every database, beside the file's
    /// `[[token]]` tables; peers given by `--peer` are presented it.
    #[arg(long, env = "LATERBASE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Serve HTTPS with this certificate chain (PEM), and nothing else;
    /// with `--tls-key`.
    #[arg(long, env = "LATERBASE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM) of `--tls-cert`.
    #[arg(long, env = "LATERBASE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// A CA (PEM) that `https://` peers' certificates may be signed by,
    /// besides the system's roots.
    #[arg(long, env = "LATERBASE_PEER_CA")]
    pub peer_ca: Option<PathBuf>,

    /// The directory (created if missing) under which `POST /admin/backup`
    /// and `laterbase backup --node` may write new copies of the node;
    /// without it, backups over HTTP are off.
    #[arg(long, env = "LATERBASE_BACKUP_DIR")]
    pub backup_dir: Option<PathBuf>,

    /// How far ahead of this node's clock an event id may be, in milliseconds.
    #[arg(long, env = "LATERBASE_CLOCK_SKEW_MS", default_value_t = CLOCK_SKEW_MS_DEFAULT)]
    pub clock_skew_ms: u64,

    /// How many live streams (`feed=live`) the node serves at once; one
    /// more answers 503.
    #[arg(long, env = "LATERBASE_LIVE_STREAMS_MAX", default_value_t = LIVE_STREAMS_MAX_DEFAULT)]
    pub live_streams_max: usize,

    /// How long one request may take before it answers 503, in milliseconds.
    #[arg(long, env = "LATERBASE_REQUEST_TIMEOUT_MS", default_value_t = REQUEST_TIMEOUT_MS_DEFAULT)]
    pub request_timeout_ms: u64,

    /// The time between sync rounds with each peer when nothing is written,
    /// in milliseconds (a local write starts a round at once).
    #[arg(long, env = "LATERBASE_SYNC_INTERVAL_MS", default_value_t = SYNC_INTERVAL_MS_DEFAULT)]
    pub sync_interval_ms: u64,

    /// The longest wait before retrying a peer whose passes failed, in
    /// milliseconds (the wait doubles from the interval up to this).
    #[arg(long, env = "LATERBASE_SYNC_BACKOFF_MS_MAX", default_value_t = SYNC_BACKOFF_MS_MAX)]
    pub sync_backoff_ms_max: u64,

    /// The most events one write may carry (at most 10,000).
    #[arg(long, env = "LATERBASE_BATCH_EVENTS_MAX", default_value_t = BATCH_EVENTS_MAX)]
    pub batch_events_max: usize,

    /// The largest request body read, in bytes (at most 16 MiB).
    #[arg(long, env = "LATERBASE_BODY_BYTES_MAX", default_value_t = BODY_BYTES_MAX)]
    pub body_bytes_max: usize,

    /// The page size of a read that names no `limit`.
    #[arg(long, env = "LATERBASE_PAGE_EVENTS_DEFAULT", default_value_t = PAGE_EVENTS_DEFAULT)]
    pub page_events_default: usize,

    /// The most events one page returns; larger `limit`s are clamped (at most 10,000).
    #[arg(long, env = "LATERBASE_PAGE_EVENTS_MAX", default_value_t = PAGE_EVENTS_MAX)]
    pub page_events_max: usize,

    /// The log's format; what is logged is filtered by RUST_LOG (default: info,
    /// with the storage engine's own lines from warn up).
    #[arg(long, env = "LATERBASE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// The configuration file's `[[peer]]` tables (before the `--peer`s).
    #[arg(skip)]
    pub peer_tables: Vec<Peer>,

    /// The configuration file's `[[token]]` tables (beside `--token`).
    #[arg(skip)]
    pub grants: Vec<Grant>,

    /// The flags (by field name, `data_dir`) given on the command line or
    /// in the environment, which the file does not override: `cli::run` fills
    /// it; arguments made otherwise take every key the file has.
    #[arg(skip)]
    pub given: Vec<String>,
}

/// How log lines are written.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event.
    Text,
    /// One JSON object per line.
    Json,
}
