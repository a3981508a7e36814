//! A sync worker: passes with one peer.
//!
//! While the peer's watch is open (`watcher.rs`), a pass runs rounds only
//! for the databases whose standing moved, here or on the peer, since their
//! last clean rounds, and one safety-net round in turn every
//! `safety_net`; the watch names the peer and its databases. While it is
//! not, a pass asks the peer for its databases (which also names the peer),
//! creates the ones missing here, and runs rounds for every database, every
//! interval. Either way a database's rounds go on until neither side has
//! more, within a bound. The worker's ticker task sends it a `Tick` after
//! the interval, after a local commit (a coalesced nudge), or after its
//! backoff, and its watcher sends one when the peer's standing moves; one
//! slow or dead peer only slows its own worker.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::watch;

use super::config::Peer;
use super::config::{Lag, Shared};
use super::driver::{RoundReport, round_one_way};
use super::transport::{HttpTransport, PeerConnector};
use super::watcher::{Nudge, PeerWatch, WatchView, watch_peer};
use crate::actors::Database;
use crate::actors::database::sync::Standing;
use crate::error::{Error, Result};
use crate::event::{EventId, Timestamp};
use crate::limits::{
    SYNC_ROUNDS_PER_PASS_MAX, SYNC_V2_BODY_BYTES_MAX, SYNC_V2_PUSH_EVENT_BYTES_MAX,
};
use crate::sync::LeftOut;
use crate::sync::protocol::Cursor;
use crate::sync::wire;

/// How often a long catch-up logs its progress.
const CATCH_UP_LOG_INTERVAL: Duration = Duration::from_secs(5);

/// A sync worker's behaviour: passes with one peer.
pub(crate) struct SyncWorker;

pub(crate) struct WorkerArgs {
    pub(super) shared: Arc<Shared>,
    pub(super) index: usize,
}

/// Messages a sync worker takes.
pub(crate) enum WorkerMsg {
    /// Run a pass now.
    Tick,
}

pub(crate) struct WorkerState {
    shared: Arc<Shared>,
    index: usize,
    transport: HttpTransport<PeerConnector>,
    /// The peer's node id, learnt at the first pass.
    peer: Option<EventId>,
    /// Failures in a row, for the backoff.
    failures: u32,
    /// Set by the ticker when it sends a `Tick`, cleared when a pass starts:
    /// ticks do not pile up while a pass runs.
    tick_pending: Arc<AtomicBool>,
    /// The ticker's next wait, in milliseconds (the interval or the backoff).
    delay_ms: Arc<AtomicU64>,
    ticker: tokio::task::JoinHandle<()>,
    /// Per database, the peer's count of listed losing values when this
    /// worker last fetched its list of conflicts (for a peer of the first
    /// release only: newer ones exchange lists within rounds).
    losers_seen: std::sync::Mutex<BTreeMap<String, u64>>,
    /// The sync wire version spoken with the peer: the newest both speak.
    version: u8,
    /// The peer's base URL, as configured.
    url: String,
    /// The peer as configured: the databases synced with it, and which way.
    configured: Peer,
    /// Per database, in a round that only pushes, where the peer's head
    /// stood at its last reply: the next round asks its log from there.
    skips: std::sync::Mutex<BTreeMap<String, Cursor>>,
    /// Passes that left out a database of a peer this node only pushes
    /// to, waiting for its watch to say where the peer's log stands.
    push_waits: u32,
    /// The peer as its watch shows it, kept by the watcher task.
    watch: Arc<PeerWatch>,
    watcher: tokio::task::JoinHandle<()>,
    /// Per database, where the peer (as its watch told) and this node stood
    /// when its last rounds ended clean, each if events go from it: until
    /// one of them moves, it has nothing to sync.
    synced: BTreeMap<String, (Option<Standing>, Option<Standing>)>,
    /// When the next safety-net round is due, and the turn it takes.
    safety_due: tokio::time::Instant,
    safety_turn: usize,
    /// Per database, how far apart the last rounds left the two nodes.
    lags: BTreeMap<String, Lag>,
    /// While backing off, when the next pass may run: the watcher's nudges
    /// before it wait.
    retry_at: Option<tokio::time::Instant>,
}

impl Actor for SyncWorker {
    type Msg = WorkerMsg;
    type State = WorkerState;
    type Arguments = WorkerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<WorkerMsg>,
        args: WorkerArgs,
    ) -> Result<WorkerState, ActorProcessingErr> {
        let config = &args.shared.config;
        let peer = config.peers.get(args.index).cloned().ok_or_else(|| {
            format!(
                "no peer {} among the {} configured",
                args.index,
                config.peers.len()
            )
        })?;
        let url = peer.url.clone();
        let transport = HttpTransport::with_connector(
            config.connector.clone(),
            &url,
            args.shared.node.id(),
            peer.token.clone().or_else(|| config.token.clone()),
        )
        .with_timeout(config.request_timeout);
        let tick_pending = Arc::new(AtomicBool::new(false));
        let delay_ms = Arc::new(AtomicU64::new(0));
        // The first pass runs at once; the ticker waits the interval after.
        tick_pending.store(true, Ordering::Release);
        myself.send_message(WorkerMsg::Tick)?;
        delay_ms.store(duration_ms(config.interval), Ordering::Relaxed);
        let watch = Arc::new(PeerWatch::default());
        let nudge: Nudge = {
            let worker = myself.clone();
            let pending = tick_pending.clone();
            Arc::new(move || {
                if !pending.swap(true, Ordering::AcqRel) {
                    // A worker that stopped hears nothing more.
                    let _ = worker.send_message(WorkerMsg::Tick);
                }
            })
        };
        let watcher = tokio::spawn(watch_peer(
            transport.clone(),
            watch.clone(),
            nudge,
            config.interval,
            url.clone(),
        ));
        let safety_due = tokio::time::Instant::now() + config.safety_net;
        let ticker = tokio::spawn(tick(
            myself,
            args.shared.commits.clone(),
            tick_pending.clone(),
            delay_ms.clone(),
            duration_ms(config.interval),
        ));
        Ok(WorkerState {
            shared: args.shared,
            index: args.index,
            transport,
            peer: None,
            failures: 0,
            tick_pending,
            delay_ms,
            ticker,
            losers_seen: std::sync::Mutex::default(),
            version: wire::VERSION,
            url,
            configured: peer,
            skips: std::sync::Mutex::default(),
            push_waits: 0,
            watch,
            watcher,
            synced: BTreeMap::new(),
            safety_due,
            safety_turn: 0,
            lags: BTreeMap::new(),
            retry_at: None,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<WorkerMsg>,
        message: WorkerMsg,
        state: &mut WorkerState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            WorkerMsg::Tick => {
                state.tick_pending.store(false, Ordering::Release);
                if state
                    .retry_at
                    .is_some_and(|at| tokio::time::Instant::now() < at)
                {
                    return Ok(());
                }
                let mut report = PassReport::default();
                let outcome = pass(state, &mut report).await;
                record(state, report, outcome);
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<WorkerMsg>,
        state: &mut WorkerState,
    ) -> Result<(), ActorProcessingErr> {
        state.ticker.abort();
        state.watcher.abort();
        Ok(())
    }
}

/// Sends the worker a `Tick` after each wait: the interval, cut short by a
/// commit; or, after a failure, the whole backoff.
async fn tick(
    worker: ActorRef<WorkerMsg>,
    mut commits: watch::Receiver<u64>,
    pending: Arc<AtomicBool>,
    delay_ms: Arc<AtomicU64>,
    interval_ms: u64,
) {
    loop {
        let wait_ms = delay_ms.load(Ordering::Relaxed);
        let sleep = tokio::time::sleep(Duration::from_millis(wait_ms));
        if wait_ms > interval_ms {
            // Backing off: commits do not cut the wait short.
            sleep.await;
        } else {
            tokio::select! {
                changed = commits.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                () = sleep => {}
            }
        }
        if !pending.swap(true, Ordering::AcqRel) && worker.send_message(WorkerMsg::Tick).is_err() {
            return;
        }
    }
}

/// A peer's answer to `GET /db`.
#[derive(serde::Deserialize)]
struct DatabaseList {
    databases: Vec<String>,
}

/// What a pass did, summed over its rounds.
#[derive(Default)]
struct PassReport {
    /// Whether the pass reached the peer: asked it, or heard it over its
    /// watch (whose standings say what is left to sync, nothing at all for
    /// peers holding no database).
    reached: bool,
    rounds: u64,
    totals: RoundReport,
    /// Events left out of pushes, the peer being unable to take them.
    unsent: u64,
    /// The last of them, said for a person.
    last_unsent: Option<String>,
}

/// One pass: over the peer's watch if it is open, else asking the peer.
async fn pass(state: &mut WorkerState, report: &mut PassReport) -> Result<()> {
    match state.watch.open() {
        Some(view) => watched_pass(state, view, report).await,
        None => full_pass(state, report).await,
    }
}

/// Takes `peer` as the node at the other end, speaking `version` (a node
/// of the first release names none: it speaks the oldest).
fn meet(state: &mut WorkerState, peer: EventId, version: Option<u8>) -> Result<()> {
    if peer == state.shared.node.id() {
        return Err(Error::Sync("the peer is this node itself".to_owned()));
    }
    state.peer = Some(peer);
    let spoken = version
        .unwrap_or(wire::VERSION_OLDEST)
        .clamp(wire::VERSION_OLDEST, wire::VERSION);
    if spoken != state.version {
        tracing::info!(peer = %state.url, version = spoken, "speaking this sync wire version with the peer");
        state.version = spoken;
    }
    Ok(())
}

/// A pass while the watch is open: the databases the watch names are
/// created here, then rounds run for each database whose standing moved
/// since its last clean rounds, and for the one whose safety-net turn it
/// is.
async fn watched_pass(
    state: &mut WorkerState,
    view: WatchView,
    report: &mut PassReport,
) -> Result<()> {
    let peer = view
        .node
        .ok_or_else(|| Error::Sync("the peer's watch did not name its node".to_owned()))?;
    meet(state, peer, view.version)?;
    report.reached = true;
    let mut failure = None;
    let flow = state.configured.flow;
    for name in view.standings.keys() {
        if !flow.takes() || !state.configured.syncs(name) {
            continue;
        }
        if let Err(error) = state.shared.node.ensure_peer_database(name).await {
            failure.get_or_insert(error);
        }
    }
    let names = synced_databases(state, |name| view.standings.contains_key(name));
    let now = tokio::time::Instant::now();
    let safety = if now >= state.safety_due && !names.is_empty() {
        state.safety_due = now + state.shared.config.safety_net;
        state.safety_turn = state.safety_turn.wrapping_add(1);
        names.get(state.safety_turn % names.len()).cloned()
    } else {
        None
    };
    for name in names {
        // Only the sides events go from: a peer that takes nothing of this
        // node is not synced for a write here, nor one that gives nothing
        // for a write there.
        let local = flow
            .sends()
            .then(|| {
                state
                    .shared
                    .node
                    .database(&name)
                    .map(|database| database.standing())
            })
            .transpose()?;
        let told = view.standings.get(&name).copied().filter(|_| flow.takes());
        if !flow.takes() {
            seed_skip(state, &name, view.standings.get(&name));
        }
        let current = state.synced.get(&name) == Some(&(told, local));
        if current && safety.as_ref() != Some(&name) {
            continue;
        }
        match sync_database(state, peer, &name, report).await {
            Ok(lag) => {
                state.synced.insert(name.clone(), (told, local));
                state.lags.insert(name, lag);
            }
            Err(error) => {
                tracing::warn!(peer = %state.url, database = %name, %error, "sync of a database failed");
                state.synced.remove(&name);
                failure.get_or_insert(error);
            }
        }
    }
    match failure {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// A pass without the watch: the peer's databases, then rounds for every
/// database.
async fn full_pass(state: &mut WorkerState, report: &mut PassReport) -> Result<()> {
    let answer = state
        .transport
        .get("/db")
        .await
        .map_err(|error| Error::Sync(error.0))?;
    let peer = answer
        .node
        .ok_or_else(|| Error::Sync("the peer did not name its node".to_owned()))?;
    meet(state, peer, answer.version)?;
    report.reached = true;
    let body = answer.body;
    // An answer that is not a list of names is an error, not an empty list:
    // read as none, it would hide a broken peer behind a pass that succeeds.
    let listed: DatabaseList = serde_json::from_slice(&body).map_err(|error| {
        Error::Sync(format!(
            "the peer's GET /db answer is not a list of databases: {error}"
        ))
    })?;
    // One database that fails does not hold up the others: the pass goes
    // on, and reports the first failure.
    let mut failure = None;
    let flow = state.configured.flow;
    for name in &listed.databases {
        if !flow.takes() || !state.configured.syncs(name) {
            continue;
        }
        if let Err(error) = state.shared.node.ensure_peer_database(name).await {
            failure.get_or_insert(error);
        }
    }
    let mut waited = false;
    for name in synced_databases(state, |name| {
        listed.databases.iter().any(|listed| listed == name)
    }) {
        if waits_for_watch(state, &name) {
            waited = true;
            continue;
        }
        match sync_database(state, peer, &name, report).await {
            Ok(lag) => {
                state.lags.insert(name, lag);
            }
            Err(error) => {
                tracing::warn!(peer = %state.url, database = %name, %error, "sync of a database failed");
                failure.get_or_insert(error);
            }
        }
    }
    if waited {
        state.push_waits += 1;
    }
    match failure {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// How many passes a node that only pushes waits for a peer's watch before
/// it syncs a database without knowing where the peer's log stands.
const PUSH_WATCH_WAITS_MAX: u32 = 3;

/// Whether a pass without the watch leaves the database `name` out: a
/// node that only pushes, to a peer that has a watch, waits a few passes
/// for it to say where the peer's log stands, rather than be sent a page
/// of it to drop.
fn waits_for_watch(state: &WorkerState, name: &str) -> bool {
    !state.configured.flow.takes()
        && state.version >= wire::VERSION
        && state.push_waits < PUSH_WATCH_WAITS_MAX
        && !state
            .skips
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(name)
}

/// For a node that only pushes: where the peer's log stands, as its watch
/// told, unless a reply said so already.
fn seed_skip(state: &WorkerState, name: &str, told: Option<&Standing>) {
    let Some((told, epoch)) = told.and_then(|told| Some((told, told.epoch?))) else {
        return;
    };
    state
        .skips
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(name.to_owned())
        .or_insert(Cursor {
            incarnation: told.incarnation,
            epoch,
            lc: told.lc,
            us: told.us,
        });
}

/// The databases of this node synced with the peer: those its table
/// names, and of them, when nothing of this node is sent, only those the
/// peer holds (`held_there`): an offer would create the others there.
fn synced_databases(state: &WorkerState, held_there: impl Fn(&str) -> bool) -> Vec<String> {
    let mut names = state.shared.node.databases();
    let configured = &state.configured;
    names.retain(|name| configured.syncs(name) && (configured.flow.sends() || held_there(name)));
    names
}

/// Rounds for one database until neither side has more, within the bound;
/// how far apart they left the two nodes.
async fn sync_database(
    state: &WorkerState,
    peer: EventId,
    name: &str,
    report: &mut PassReport,
) -> Result<Lag> {
    let database = state.shared.node.database(name)?;
    let mut rounds = 0;
    let started = std::time::Instant::now();
    let mut received = 0_u64;
    let mut logged = started;
    let mut version = state.version;
    let flow = state.configured.flow;
    let mut skip = state
        .skips
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(name)
        .copied();
    loop {
        let rounded =
            round_one_way(&database, peer, &state.transport, version, flow, &mut skip).await;
        if let Some(skip) = skip {
            state
                .skips
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(name.to_owned(), skip);
        }
        let done = match rounded {
            // A peer that refuses this version for one it names (a node
            // downgraded since the pass began, say): speak that one.
            Err(Error::Sync(text))
                if wire::version_refused(&text)
                    .is_some_and(|spoken| (wire::VERSION_OLDEST..version).contains(&spoken)) =>
            {
                version = wire::version_refused(&text).unwrap_or(wire::VERSION_OLDEST);
                tracing::info!(peer = %state.url, version, "the peer refused the sync wire version; speaking its own");
                continue;
            }
            other => other?,
        };
        rounds += 1;
        report.reached = true;
        received += done.events_in;
        if let Some(left_out) = done.unsent_last {
            let said = unsent_message(name, left_out);
            tracing::warn!(peer = %state.url, unsent = done.unsent, last = %said, "events too large for the peer were left out of a push; the events after them go on");
            report.unsent += done.unsent;
            report.last_unsent = Some(said);
        }
        // A long catch-up says how far it is, every few seconds.
        if done.remaining > 0 && logged.elapsed() >= CATCH_UP_LOG_INTERVAL {
            logged = std::time::Instant::now();
            let rate = received as f64 / started.elapsed().as_secs_f64().max(0.001);
            tracing::info!(
                peer = %state.url,
                database = %name,
                received,
                of = received + done.remaining,
                events_per_second = rate as u64,
                "catching up"
            );
        }
        report.rounds += 1;
        report.totals.events_in += done.events_in;
        report.totals.events_out += done.events_out;
        report.totals.bytes_in += done.bytes_in;
        report.totals.bytes_out += done.bytes_out;
        if !done.more || rounds >= SYNC_ROUNDS_PER_PASS_MAX {
            if version < wire::VERSION && flow.takes() {
                pull_conflicts(state, &database, done.peer_losers_listed).await;
            }
            // What the peer has pulled of this node's log, as it last said.
            let pulled = database
                .sync_link(peer)
                .await?
                .peer_into_local
                .map_or(0, |cursor| cursor.lc);
            return Ok(Lag {
                to_pull: if flow.takes() { done.remaining } else { 0 },
                to_push: if flow.sends() {
                    database.lc().saturating_sub(pulled)
                } else {
                    0
                },
            });
        }
    }
}

/// Fetches the conflicts of a peer of the first release when its count of
/// listed losing values differs from the last fetch, so that every node
/// lists every loser. That peer answers its whole list at once: a list too
/// large to fetch is logged, and fetched again only once the count moves,
/// rather than failing every pass.
async fn pull_conflicts(state: &WorkerState, database: &Database, peer_losers: u64) {
    let name = database.name().to_owned();
    let peer_url = &state.url;
    let seen = state
        .losers_seen
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&name)
        .copied()
        .unwrap_or(0);
    if seen == peer_losers {
        return;
    }
    match super::conflicts::pull_conflicts(database, &state.transport).await {
        Ok(merged) => {
            tracing::debug!(peer = %peer_url, database = %name, merged, "fetched the peer's conflicts");
        }
        Err(error) => {
            tracing::warn!(peer = %peer_url, database = %name, %error, "could not fetch the conflicts of a first-release peer; trying again when its count of losers moves");
        }
    }
    state
        .losers_seen
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(name, peer_losers);
}

/// What `/peers` says of an event left out of a push to the peer.
fn unsent_message(database: &str, left_out: LeftOut) -> String {
    format!(
        "database {database}: event {} holds {} bytes, more than the {SYNC_V2_PUSH_EVENT_BYTES_MAX} a node of the first release takes in one sync request (its body limit is {SYNC_V2_BODY_BYTES_MAX} bytes): it is not pushed to this peer, which gets it only by pulling from this node; the events after it go on",
        left_out.id, left_out.bytes
    )
}

/// Records a pass in the peer's status, the metrics and the backoff.
fn record(state: &mut WorkerState, report: PassReport, outcome: Result<()>) {
    let config = &state.shared.config;
    let url = state.url.clone();
    let now = Timestamp(state.shared.clock.now_ms());
    let mut statuses = state
        .shared
        .statuses
        .write()
        .unwrap_or_else(PoisonError::into_inner);
    #[expect(
        clippy::indexing_slicing,
        reason = "the statuses hold one entry per configured peer, and a worker's index is one of them"
    )]
    let status = &mut statuses[state.index];
    status.node = state.peer;
    status.wire_version = state.peer.map(|_| state.version);
    status.watching = state.watch.is_open();
    if report.unsent > 0 {
        status.unsent += report.unsent;
        status.last_unsent.clone_from(&report.last_unsent);
        metrics::counter!("laterbase_sync_events_unsent_total", "peer" => url.clone())
            .increment(report.unsent);
    }
    match outcome {
        Ok(()) => {
            state.failures = 0;
            state.retry_at = None;
            status.failures = 0;
            if report.reached {
                status.last_sync = Some(now);
            }
            // Databases gone from this node (none are, today) drop out.
            let databases = state.shared.node.databases();
            state.lags.retain(|name, _| databases.contains(name));
            status.lag = Some(state.lags.values().sum());
            status.last_error = None;
            state
                .delay_ms
                .store(duration_ms(config.interval), Ordering::Relaxed);
            let labels = [("peer", url.clone())];
            metrics::counter!("laterbase_sync_rounds_total", &labels).increment(report.rounds);
            let totals = report.totals;
            for (direction, events, bytes) in [
                ("in", totals.events_in, totals.bytes_in),
                ("out", totals.events_out, totals.bytes_out),
            ] {
                let labels = [("peer", url.clone()), ("direction", direction.to_owned())];
                metrics::counter!("laterbase_sync_events_total", &labels).increment(events);
                metrics::counter!("laterbase_sync_bytes_total", &labels).increment(bytes);
            }
            if totals.events_in + totals.events_out > 0 {
                tracing::info!(peer = %url, rounds = report.rounds, events_in = totals.events_in, events_out = totals.events_out, "synced");
            }
        }
        Err(error) => {
            state.failures = state.failures.saturating_add(1);
            status.failures = state.failures;
            status.last_error = Some(error.to_string());
            // Exponential backoff with jitter, capped.
            let base = duration_ms(config.interval).max(1);
            let exponent = state.failures.min(16);
            let backoff = base
                .saturating_mul(1 << exponent)
                .min(duration_ms(config.backoff_max).max(1));
            let jitter = state.shared.random.next_u64() % (backoff / 2 + 1);
            state
                .delay_ms
                .store(backoff / 2 + jitter, Ordering::Relaxed);
            state.retry_at =
                Some(tokio::time::Instant::now() + Duration::from_millis(backoff / 2 + jitter));
            metrics::counter!("laterbase_sync_failures_total", "peer" => url.clone()).increment(1);
            tracing::warn!(peer = %url, %error, failures = state.failures, retry_ms = backoff / 2 + jitter, "sync pass failed");
        }
    }
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
