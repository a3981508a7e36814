//! The `laterbase` command line: `laterbase serve`.
//!
//! [`run`] is the whole program: an application that defines views calls it
//! from its `main` and gets the full `serve` command. Every flag can also come
//! from an environment variable (`--help` names them).

use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::actors::Node;
use crate::config::Config;
use crate::http::{Access, Grant};
use crate::http::{BackupDir, HttpState, router};
use crate::limits::Limits;
use crate::replication::transport::{HttpTransport, PeerConnector};
use crate::replication::{Peer, ReplicationConfig};

mod args;
mod file;

pub use args::{BackupArgs, LogFormat, ServeArgs};

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
    Serve(Box<ServeArgs>),
    /// Copy a consistent snapshot of a node's data into a new directory.
    Backup(BackupArgs),
}

/// Parses the command line and runs it; the process's exit code.
pub fn run() -> ExitCode {
    let matches = Cli::command().get_matches();
    let Cli { command } = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    match command {
        Command::Serve(mut args) => {
            if let Some(("serve", serve_matches)) = matches.subcommand() {
                args.given = given_flags(serve_matches);
            }
            serve(*args)
        }
        Command::Backup(args) => backup(args),
    }
}

/// The flags of `matches` given on the command line or in the environment.
fn given_flags(matches: &clap::ArgMatches) -> Vec<String> {
    use clap::parser::ValueSource;
    matches
        .ids()
        .filter(|id| {
            matches!(
                matches.value_source(id.as_str()),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        })
        .map(|id| id.as_str().to_owned())
        .collect()
}

/// `args` with the configuration file read into them, checked.
fn resolve(mut args: ServeArgs) -> Result<ServeArgs, String> {
    if let Some(path) = args.config.clone() {
        let given = args.given.clone();
        file::apply(&mut args, &path, |flag| {
            given.iter().any(|given| given == flag)
        })?;
    }
    if args.tls_cert.is_some() != args.tls_key.is_some() {
        return Err(
            "--tls-cert and --tls-key go together (tls-cert and tls-key in the file)".to_owned(),
        );
    }
    Ok(args)
}

/// Runs `laterbase serve` with `args`: exits 0 after a clean stop (a full
/// disk's included), 1 with a one-line reason on stderr when the node cannot
/// start or cannot stop cleanly.
pub fn serve(args: ServeArgs) -> ExitCode {
    let args = match resolve(args) {
        Ok(args) => args,
        // Before logging is set up: the reason is the one line printed.
        Err(reason) => return fail(&reason),
    };
    init_logging(args.log_format);
    crate::server::tls::install_provider();
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
    let connector = PeerConnector::tls(None)?;
    let transport = HttpTransport::with_connector(
        connector,
        url,
        crate::event::EventId::default(),
        args.token.clone(),
    );
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
    // TLS, peers and tokens are read before anything opens: a bad file
    // stops the node before it holds its data directory.
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(crate::server::tls::server_config(cert, key)?),
        _ => None,
    };
    let connector = PeerConnector::tls(args.peer_ca.as_deref())?;
    let mut grants = args.grants.clone();
    if let Some(token) = &args.token {
        grants.push(Grant::everything(token));
    }
    let mut peers = args.peer_tables.clone();
    peers.extend(args.peers.iter().map(|url| Peer {
        token: args.token.clone(),
        ..Peer::new(url.clone())
    }));
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
    let open = grants.is_empty();
    if open {
        tracing::warn!(
            "no token is set (--token, or [[token]] tables): every route is open to anyone who reaches the node"
        );
        if backup_dir.is_some() {
            tracing::warn!(
                "backups are on and no token is set: anyone who reaches the node can fill the backup directory"
            );
        }
    }
    let tokens = grants.len();
    let mut state = HttpState::new(node.clone())
        .access(Access::grants(grants))
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
        auth = !open,
        tokens,
        tls = tls.is_some(),
        backup_dir = %backup_dir
            .as_ref()
            .map_or_else(|| "off".into(), |dir| dir.path().display().to_string()),
        "serving"
    );
    if !peers.is_empty() {
        // Never the tokens: the URLs, databases and directions.
        let said: Vec<String> = peers
            .iter()
            .map(|peer| {
                format!(
                    "{} ({}, {})",
                    peer.url,
                    peer.databases.join(","),
                    peer.flow.as_str()
                )
            })
            .collect();
        let replication = ReplicationConfig {
            peers,
            interval: Duration::from_millis(args.sync_interval_ms),
            token: None,
            connector,
            backoff_max: Duration::from_millis(args.sync_backoff_ms_max),
            ..ReplicationConfig::new(Vec::new())
        };
        let replication = node
            .replicate(replication)
            .await
            .map_err(|error| format!("cannot start replication: {}", chain(&error)))?;
        state = state.replication(replication);
        tracing::info!(peers = %said.join("; "), "replicating");
    }
    // Live streams do not end by themselves: the stop ends them, so that
    // the drain waits only for ordinary requests.
    let streams = state.clone();
    let shutdown = async move {
        shutdown.await;
        streams.end_live_streams();
    };
    match tls {
        Some(config) => {
            let listener = crate::server::tls::TlsListener::new(listener, config);
            crate::server::serve(listener, router(state), shutdown).await;
        }
        None => crate::server::serve(listener, router(state), shutdown).await,
    }
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
