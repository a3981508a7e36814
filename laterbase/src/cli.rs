//! The `laterbase` command line: `laterbase serve`.
//!
//! [`run`] is the whole program: an application that defines views calls it
//! from its `main` and gets the full `serve` command. Every flag can also come
//! from an environment variable (`--help` names them).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::actors::Node;
use crate::config::Config;
use crate::http::{BackupDir, HttpState, router};
use crate::limits::{
    BATCH_EVENTS_MAX, BODY_BYTES_MAX, CLOCK_SKEW_MS_DEFAULT, LIVE_STREAMS_MAX_DEFAULT, Limits,
    PAGE_EVENTS_DEFAULT, PAGE_EVENTS_MAX, REQUEST_TIMEOUT_MS_DEFAULT, SYNC_BACKOFF_MS_MAX,
    SYNC_INTERVAL_MS_DEFAULT,
};
use crate::replication::ReplicationConfig;
use crate::replication::transport::HttpTransport;

/// Laterbase: an offline-first event store that syncs.
#[derive(Parser, Debug)]
#[command(name = "laterbase", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a node: serve the HTTP API until SIGINT or SIGTERM.
    Serve(ServeArgs),
    /// Copy a consistent snapshot of a node's data into a new directory.
    Backup(BackupArgs),
}

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
    /// Where the node keeps its data (created if missing). One node per directory.
    #[arg(long, env = "LATERBASE_DATA_DIR", default_value = "./laterbase-data")]
    pub data_dir: PathBuf,

    /// The address to serve the HTTP API on (port 0: one the system picks,
    /// named in the "serving" log line).
    #[arg(long, env = "LATERBASE_LISTEN", default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,

    /// Another node's base URL (repeatable; the variable takes a comma-separated list).
    #[arg(long = "peer", env = "LATERBASE_PEERS", value_delimiter = ',')]
    pub peers: Vec<String>,

    /// Require `Authorization: Bearer <TOKEN>` on every route but /healthz.
    #[arg(long, env = "LATERBASE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

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
}

/// How log lines are written.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One readable line per event.
    Text,
    /// One JSON object per line.
    Json,
}

/// Parses the command line and runs it; the process's exit code.
pub fn run() -> ExitCode {
    let Cli { command } = Cli::parse();
    match command {
        Command::Serve(args) => serve(args),
        Command::Backup(args) => backup(args),
    }
}

/// Runs `laterbase serve` with `args`: exits 0 after a clean stop (a full
/// disk's included), 1 with a one-line reason on stderr when the node cannot
/// start or cannot stop cleanly.
pub fn serve(args: ServeArgs) -> ExitCode {
    init_logging(args.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fail(&format!("cannot start the async runtime: {error}")),
    };
    match runtime.block_on(serve_until_signal(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => fail(&reason),
    }
}

/// Runs `laterbase backup`: through the running node with `--node`, else by
/// opening the data directory (which fails while a node holds it).
pub fn backup(args: BackupArgs) -> ExitCode {
    init_logging(LogFormat::Text);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fail(&format!("cannot start the async runtime: {error}")),
    };
    let outcome = runtime.block_on(async {
        match &args.node {
            Some(url) => backup_through(url, &args).await,
            None => {
                let node = Node::open(Config::new(&args.data_dir))
                    .await
                    .map_err(|error| {
                        format!(
                            "cannot open {}: {} (for a running node, pass --node <its URL>)",
                            args.data_dir.display(),
                            chain(&error)
                        )
                    })?;
                let copied = node.backup(&args.to).await;
                let _ = node.shutdown().await;
                copied.map_err(|error| format!("backup failed: {}", chain(&error)))
            }
        }
    });
    match outcome {
        Ok(records) => {
            println!("copied {records} records into {}", args.to.display());
            ExitCode::SUCCESS
        }
        Err(reason) => fail(&reason),
    }
}

async fn backup_through(url: &str, args: &BackupArgs) -> Result<u64, String> {
    let transport = HttpTransport::new(url, crate::event::EventId::default(), args.token.clone());
    let body = serde_json::json!({"to": args.to}).to_string();
    let answer = transport
        .post_json("/admin/backup", body.into())
        .await
        .map_err(|error| format!("backup failed: {error}"))?;
    let answer: serde_json::Value =
        serde_json::from_slice(&answer).map_err(|error| format!("the node answered: {error}"))?;
    let records = answer
        .get("records")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| format!("the node answered no record count: {answer}"))?;
    if let Some(written) = answer.get("to").and_then(serde_json::Value::as_str) {
        println!("the node wrote {written}");
    }
    Ok(records)
}

fn fail(reason: &str) -> ExitCode {
    tracing::error!("{reason}");
    eprintln!("laterbase: {reason}");
    ExitCode::FAILURE
}

async fn serve_until_signal(args: ServeArgs) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|error| format!("cannot listen on {}: {error}", args.listen))?;
    // With port 0 the system picks the port: the "serving" line names the
    // address actually bound, which is how a supervisor (or a test) learns it.
    let bound = listener
        .local_addr()
        .map_err(|error| format!("cannot read the address bound for {}: {error}", args.listen))?;
    let limits = Limits {
        batch_events_max: args.batch_events_max,
        body_bytes_max: args.body_bytes_max,
        page_events_default: args.page_events_default,
        page_events_max: args.page_events_max,
    };
    let config = Config::new(&args.data_dir)
        .clock_skew(Duration::from_millis(args.clock_skew_ms))
        .limits(limits);
    let node = Node::open(config)
        .await
        .map_err(|error| format!("cannot open {}: {}", args.data_dir.display(), chain(&error)))?;
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(LATENCY_BUCKETS_SECONDS)
        .map_err(|error| format!("cannot configure the metrics: {error}"))?
        .install_recorder()
        .map_err(|error| format!("cannot install the metrics recorder: {error}"))?;
    let backup_dir = match &args.backup_dir {
        Some(dir) => Some(BackupDir::open(dir).map_err(|error| {
            format!("cannot use the backup directory {}: {error}", dir.display())
        })?),
        None => None,
    };
    if backup_dir.is_some() && args.token.is_none() {
        tracing::warn!(
            "backups are on and no --token is set: anyone who reaches the node can fill the backup directory"
        );
    }
    let mut state = HttpState::new(node.clone())
        .token(args.token.clone())
        .backup_dir(backup_dir.clone())
        .metrics(metrics)
        .request_timeout(Duration::from_millis(args.request_timeout_ms))
        .live_streams_max(args.live_streams_max)
        .listen(bound);
    // Listening for signals before saying so: from the "serving" line on,
    // SIGTERM stops the node cleanly.
    let shutdown = shutdown_signal()?;
    tracing::info!(
        listen = %bound,
        data_dir = %args.data_dir.display(),
        node = %node.id(),
        auth = args.token.is_some(),
        backup_dir = ?backup_dir.as_ref().map(BackupDir::path),
        "serving"
    );
    if !args.peers.is_empty() {
        let replication = ReplicationConfig {
            interval: Duration::from_millis(args.sync_interval_ms),
            token: args.token.clone(),
            backoff_max: Duration::from_millis(args.sync_backoff_ms_max),
            ..ReplicationConfig::new(args.peers.clone())
        };
        let replication = node
            .replicate(replication)
            .await
            .map_err(|error| format!("cannot start replication: {}", chain(&error)))?;
        state = state.replication(replication);
        tracing::info!(peers = ?args.peers, "replicating");
    }
    // Live streams do not end by themselves: the stop ends them, so that
    // the drain waits only for ordinary requests.
    let streams = state.clone();
    let shutdown = async move {
        shutdown.await;
        streams.end_live_streams();
    };
    crate::server::serve(listener, router(state), shutdown).await;
    tracing::info!("stopped accepting; flushing");
    node.shutdown()
        .await
        .map_err(|error| format!("the node did not stop cleanly: {}", chain(&error)))
}

/// Latency histogram buckets, in seconds: from a fast read to a slow fsync.
const LATENCY_BUCKETS_SECONDS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// A future that completes on SIGINT or SIGTERM, listening from the moment
/// it is made: a signal that arrives before the future is first polled (a
/// node told to stop right after it said it serves) still stops the node
/// cleanly, instead of killing it.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, String> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|error| format!("cannot listen for {name}: {error}"))
        };
        let mut interrupt = listen(SignalKind::interrupt(), "SIGINT")?;
        let mut terminate = listen(SignalKind::terminate(), "SIGTERM")?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => tracing::info!("SIGINT received"),
                _ = terminate.recv() => tracing::info!("SIGTERM received"),
            }
        })
    }
    #[cfg(not(unix))]
    {
        let interrupt = tokio::signal::ctrl_c();
        Ok(async move {
            let _ = interrupt.await;
        })
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,fjall=warn,lsm_tree=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // A second call (an application that set up logging) keeps the first.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// An error with its sources, on one line.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    crate::error::ErrorChain(error).to_string()
}
