//! A fleet: one hub and many edges (trucks behind NAT) that dial only the
//! hub and are online a small fraction of the time.
//!
//! Edge `i` (node `n{i}`) writes its own database, `edge-{i}`, and reads the
//! shared one, [`SHARED`], which a dispatcher writes on the hub (`n0`). The
//! hub dials nobody and knows one token per edge, scoped to that edge's
//! database and the shared one; each edge's peer table names the hub with
//! its token. An edge is online while its link to the hub is up: the seed
//! picks when each edge comes online and for how long, and, among the
//! faults, crashes (a restart on what the disk kept, of edges and of the
//! hub), edges stopped while offline, and skewed clocks.
//!
//! At the end the clients stop, every edge comes back online and the
//! network heals; the run then steps until every acknowledged event is on
//! the hub and every edge holds the shared database's acknowledged events
//! and its own (read straight from the simulated disks, so that looking
//! changes nothing), which gives the time to converge. After a quiet
//! spell, every node is read over HTTP: the hub holds every acknowledged
//! event; each edge holds exactly the hub's copy of its own database and of
//! the shared one, and no other database.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use laterbase::http::{Grant, Scope};
use laterbase::replication::Flow;
use laterbase::storage::Storage;
use laterbase::{EventId, Peer};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::check::{self, HeldEvent};
use crate::cluster::{
    self, Cluster, EPOCH_MS, Options, Plan, REQUEST_TIMEOUT, SYNC_BACKOFF_MAX,
    SYNC_REQUEST_TIMEOUT, Topology,
};
use crate::net::{self, PORT};

/// The database the hub is written to and every edge reads.
pub const SHARED: &str = "routes";

/// The hub's index: `n0`.
pub const HUB: usize = 0;

/// The dispatcher's token on the hub: it writes and reads [`SHARED`].
const DISPATCHER_TOKEN: &str = "dispatcher";

/// The checker's token on the hub: it reads every database.
const CHECKER_TOKEN: &str = "checker";

/// How often the convergence probe looks at the disks after the last edge
/// came back, in simulated time.
const PROBE_EVERY: Duration = Duration::from_millis(50);

/// How long after the last edge came back the fleet must have converged.
const CONVERGE_WITHIN: Duration = Duration::from_secs(120);

/// The database edge `edge` writes to.
pub fn edge_database(edge: usize) -> String {
    format!("edge-{edge}")
}

/// The token edge `edge` presents to the hub.
fn edge_token(edge: usize) -> String {
    format!("token-of-edge-{edge}")
}

/// The options of one fleet.
#[derive(Clone, Copy, Debug)]
pub struct FleetOptions {
    /// Seeds the network, the nodes, the clients and the schedule.
    pub seed: u64,
    /// How many edges (beside the hub).
    pub edges: usize,
    /// How long the fleet runs, with its clients writing, before the
    /// clients stop and every edge comes back.
    pub duration: Duration,
    /// Every edge's peer table names every database (`*`) rather than its
    /// own and the shared one: what it syncs is then held to its token's
    /// scopes on the hub alone.
    pub wide_tables: bool,
}

impl FleetOptions {
    /// `edges` edges for 30 simulated seconds, each naming its own database
    /// and the shared one in its peer table.
    pub fn new(seed: u64, edges: usize) -> FleetOptions {
        FleetOptions {
            seed,
            edges,
            duration: Duration::from_secs(30),
            wide_tables: false,
        }
    }
}

/// The result of one fleet run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetOutcome {
    /// The digest of everything that happened and what every node holds.
    pub digest: u64,
    /// Simulated time from the moment the last edges came back (and the
    /// network healed) to the moment every node held what it must.
    pub converged_after: Duration,
    /// Figures of the run.
    pub summary: String,
}

/// What the schedule does to the fleet, at its moment.
#[derive(Clone, Copy, Debug)]
enum Action {
    /// The edge's link to the hub comes up (and the edge starts, if it was
    /// stopped).
    Online(usize),
    /// The edge's link to the hub goes down; `stop`: the edge is stopped
    /// too (as a power loss would), until it comes online again.
    Offline { edge: usize, stop: bool },
    /// A crash (power loss), of an edge or the hub.
    Crash(usize),
    /// A restart on what the disk kept.
    Restart(usize),
    /// The node's clock is set this far ahead (behind if negative).
    Skew(usize, i64),
}

/// The fleet's schedule, drawn from the seed: actions by (millisecond,
/// order drawn), and the share of edge-time spent online.
fn schedule(options: &FleetOptions, rng: &mut StdRng) -> (BTreeMap<(u64, u64), Action>, f64) {
    let duration_ms = options.duration.as_millis() as u64;
    let mut actions = BTreeMap::new();
    let mut order = 0;
    let mut push = |at: u64, action: Action| {
        actions.insert((at, order), action);
        order += 1;
    };
    let mut online_ms = 0;
    for edge in 1..=options.edges {
        if rng.random_bool(0.5) {
            let skew = if rng.random_bool(0.7) {
                rng.random_range(-30_000..30_000)
            } else {
                rng.random_range(-300_000..300_000)
            };
            push(rng.random_range(0..duration_ms), Action::Skew(edge, skew));
        }
        // Every edge comes online at least once before the end.
        let mut at = rng.random_range(0..duration_ms / 2);
        while at < duration_ms {
            let window = rng.random_range(1_000..4_000);
            online_ms += window.min(duration_ms - at);
            push(at, Action::Online(edge));
            if rng.random_bool(0.25) {
                // A crash while online, in the middle of a sync perhaps.
                let crash = at + rng.random_range(0..window);
                push(crash, Action::Crash(edge));
                push(crash + rng.random_range(300..2_000), Action::Restart(edge));
            }
            let stop = rng.random_bool(0.3);
            push(at + window, Action::Offline { edge, stop });
            at += window + rng.random_range(8_000..30_000);
        }
    }
    push(
        rng.random_range(0..duration_ms),
        Action::Skew(HUB, rng.random_range(-20_000..20_000)),
    );
    for _ in 0..rng.random_range(1..3) {
        let at = rng.random_range(0..duration_ms);
        push(at, Action::Crash(HUB));
        push(at + rng.random_range(500..3_000), Action::Restart(HUB));
    }
    let share = online_ms as f64 / (options.edges.max(1) as u64 * duration_ms.max(1)) as f64;
    (actions, share)
}

/// What one node holds at the end: each database it lists, with its
/// events in `lc` order.
#[derive(Clone, Debug, Default)]
pub struct FleetHolding {
    /// Events by database.
    pub databases: BTreeMap<String, Vec<HeldEvent>>,
}

/// Runs one fleet: builds it, drives it through its schedule, brings every
/// edge back, waits for convergence and checks it; the outcome, or what
/// was broken.
pub fn run_fleet(options: FleetOptions) -> Result<FleetOutcome, String> {
    let edges = options.edges;
    let mut cluster = Cluster::with_plans(
        Options {
            seed: options.seed,
            nodes: edges + 1,
            topology: Topology::Hub,
        },
        plans(&options),
    );
    let mut rng = StdRng::seed_from_u64(options.seed ^ 0xf1ee_7000);
    let (actions, online_share) = schedule(&options, &mut rng);
    // Every edge starts offline.
    for edge in 1..=edges {
        cluster.partition(HUB, edge);
    }
    for edge in 1..=edges {
        edge_client(&mut cluster, options.seed, edge);
    }
    dispatcher(&mut cluster, options.seed);
    for ((at, _), action) in actions {
        let at = Duration::from_millis(at);
        if at >= options.duration {
            break;
        }
        if at > cluster.elapsed() {
            cluster.run_for(at - cluster.elapsed())?;
        }
        apply(&mut cluster, action);
    }
    if options.duration > cluster.elapsed() {
        cluster.run_for(options.duration - cluster.elapsed())?;
    }
    // The clients stop and finish their last request, edges still out.
    cluster.record.borrow_mut().stop = true;
    cluster.run_for(REQUEST_TIMEOUT * 3)?;
    // The last edges come back, and the network heals.
    let back = cluster.elapsed();
    cluster.heal();
    for node in 0..=edges {
        cluster.restart(node);
    }
    let mut missing = Missing::of(&cluster.record.borrow(), edges);
    loop {
        cluster.run_for(PROBE_EVERY)?;
        missing.probe(&cluster);
        if missing.is_empty() {
            break;
        }
        if cluster.elapsed() - back > CONVERGE_WITHIN {
            return Err(format!(
                "not converged {} s after the last edge came back: {}\n  faults (ms since start): {}",
                CONVERGE_WITHIN.as_secs(),
                missing.describe(),
                faults(&cluster)
            ));
        }
    }
    let converged_after = cluster.elapsed() - back;
    // Quiet: whatever was stored but not acknowledged settles too.
    cluster.run_for(SYNC_REQUEST_TIMEOUT * 2 + SYNC_BACKOFF_MAX * 2)?;
    let holdings = read_fleet(&mut cluster, edges)?;
    check_fleet(&cluster.record.borrow(), &holdings, edges)
        .map_err(|error| format!("{error}\n  faults (ms since start): {}", faults(&cluster)))?;
    let digest = {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        hasher.update(&cluster.digest().to_be_bytes());
        for (node, holding) in holdings.iter().enumerate() {
            for (database, events) in holding.iter().flat_map(|h| &h.databases) {
                hasher.update(format!("n{node} {database}\n").as_bytes());
                for event in events {
                    hasher.update(&event.id.to_bytes());
                    hasher.update(&event.lc.to_be_bytes());
                    hasher.update(event.recorded_at.as_bytes());
                }
            }
        }
        hasher.digest()
    };
    Ok(FleetOutcome {
        digest,
        converged_after,
        summary: format!(
            "{edges} edges online {:.0}% of the time; {}",
            online_share * 100.0,
            cluster.summary()
        ),
    })
}

/// The hub's plan and each edge's.
fn plans(options: &FleetOptions) -> Vec<Plan> {
    let mut grants: Vec<Grant> = (1..=options.edges)
        .map(|edge| {
            Grant::token(&edge_token(edge))
                .databases([edge_database(edge), SHARED.to_owned()])
                .scopes([Scope::Read, Scope::Write, Scope::Sync])
        })
        .collect();
    grants.push(
        Grant::token(DISPATCHER_TOKEN)
            .databases([SHARED])
            .scopes([Scope::Read, Scope::Write]),
    );
    grants.push(Grant::token(CHECKER_TOKEN).scopes([Scope::Read]));
    let hub = Plan {
        databases: vec![SHARED.to_owned()],
        peers: Vec::new(),
        grants,
    };
    let edges = (1..=options.edges).map(|edge| {
        let databases = if options.wide_tables {
            vec!["*".to_owned()]
        } else {
            vec![edge_database(edge), SHARED.to_owned()]
        };
        Plan {
            databases: vec![edge_database(edge)],
            peers: vec![Peer {
                url: format!("http://n{HUB}:{PORT}"),
                databases,
                token: Some(edge_token(edge)),
                flow: Flow::Both,
            }],
            grants: Vec::new(),
        }
    });
    std::iter::once(hub).chain(edges).collect()
}

fn apply(cluster: &mut Cluster, action: Action) {
    match action {
        Action::Online(edge) => {
            cluster.repair(HUB, edge);
            cluster.restart(edge);
        }
        Action::Offline { edge, stop } => {
            cluster.partition(HUB, edge);
            if stop {
                cluster.crash(edge);
            }
        }
        Action::Crash(node) => cluster.crash(node),
        Action::Restart(node) => cluster.restart(node),
        Action::Skew(node, skew_ms) => cluster.skew(node, skew_ms),
    }
}

/// A batch as a client writes it: each event's id (or none) and bytes.
type Batch = Vec<(Option<EventId>, Vec<u8>)>;

/// A batch of one to `most` readings drawn from `rng`, with ids of their
/// own (backdated up to a minute) or none; whether they have ids.
fn draw_batch(rng: &mut StdRng, most: usize) -> (bool, Batch) {
    let now = EPOCH_MS + turmoil::sim_elapsed().unwrap_or_default().as_millis() as u64;
    let own_ids = rng.random_bool(0.5);
    let events = (0..rng.random_range(1..=most))
        .map(|_| {
            let id = own_ids
                .then(|| EventId::from_parts(now - rng.random_range(0..60_000), rng.random()));
            let key = format!("k{}", rng.random_range(0..4));
            let reading = crate::views::Reading::draw(key, rng);
            (id, serde_json::to_vec(&reading).unwrap_or_default())
        })
        .collect();
    (own_ids, events)
}

/// The edge's own client, on the edge's side of its link: writes its
/// database now and then, and reads a page of the shared one.
fn edge_client(cluster: &mut Cluster, seed: u64, edge: usize) {
    let record = cluster.record.clone();
    let mut rng = StdRng::seed_from_u64(seed ^ 0xed9e_0000 ^ edge as u64);
    let database = edge_database(edge);
    cluster.sim.client(format!("client{edge}"), async move {
        while !record.borrow().stop {
            tokio::time::sleep(Duration::from_millis(rng.random_range(500..3_000))).await;
            let (own_ids, events) = draw_batch(&mut rng, 3);
            let acked = cluster::write(&record, edge, &database, None, &events).await;
            if acked.is_none() && own_ids {
                // The edge was down: with its own ids the batch is safe to
                // send again.
                cluster::write(&record, edge, &database, None, &events).await;
            }
            if rng.random_bool(0.2) {
                let path = format!("/db/{SHARED}/e?limit=20");
                let host = format!("n{edge}");
                net::request(&host, "GET", &path, bytes::Bytes::new(), REQUEST_TIMEOUT).await;
            }
        }
        Ok(())
    });
}

/// The dispatcher: a client of the hub that writes the shared database.
fn dispatcher(cluster: &mut Cluster, seed: u64) {
    let record = cluster.record.clone();
    let mut rng = StdRng::seed_from_u64(seed ^ 0xd15_9a7c);
    cluster.sim.client("dispatcher", async move {
        while !record.borrow().stop {
            tokio::time::sleep(Duration::from_millis(rng.random_range(200..1_000))).await;
            let (own_ids, events) = draw_batch(&mut rng, 4);
            let token = Some(DISPATCHER_TOKEN);
            let acked = cluster::write(&record, HUB, SHARED, token, &events).await;
            if acked.is_none() && own_ids {
                cluster::write(&record, HUB, SHARED, token, &events).await;
            }
        }
        Ok(())
    });
}

/// What each node must still receive: (database, id) pairs acknowledged
/// somewhere and not yet on its disk.
struct Missing {
    by_node: Vec<BTreeMap<String, BTreeSet<EventId>>>,
}

impl Missing {
    /// Everything acknowledged for the hub; the shared database's and its
    /// own for each edge.
    fn of(record: &cluster::Record, edges: usize) -> Missing {
        let ids = |database: &str| -> BTreeSet<EventId> {
            record
                .acknowledged
                .get(database)
                .map(|ids| ids.keys().copied().collect())
                .unwrap_or_default()
        };
        let hub = record
            .acknowledged
            .iter()
            .map(|(database, ids)| (database.clone(), ids.keys().copied().collect()))
            .collect();
        let edges = (1..=edges).map(|edge| {
            let own = edge_database(edge);
            BTreeMap::from([(SHARED.to_owned(), ids(SHARED)), (own.clone(), ids(&own))])
        });
        let mut missing = Missing {
            by_node: std::iter::once(hub).chain(edges).collect(),
        };
        missing.forget_empty();
        missing
    }

    /// Looks at every disk and forgets what arrived.
    fn probe(&mut self, cluster: &Cluster) {
        for (node, wanted) in self.by_node.iter_mut().enumerate() {
            if wanted.is_empty() {
                continue;
            }
            let disk = cluster.storage(node);
            for (database, ids) in wanted.iter_mut() {
                let Ok(store) = disk.open_database(database) else {
                    continue;
                };
                ids.retain(|id| store.lc_of(*id).ok().flatten().is_none());
            }
        }
        self.forget_empty();
    }

    fn forget_empty(&mut self) {
        for wanted in &mut self.by_node {
            wanted.retain(|_, ids| !ids.is_empty());
        }
    }

    fn is_empty(&self) -> bool {
        self.by_node.iter().all(BTreeMap::is_empty)
    }

    fn describe(&self) -> String {
        let lines: Vec<String> = self
            .by_node
            .iter()
            .enumerate()
            .flat_map(|(node, wanted)| {
                wanted.iter().map(move |(database, ids)| {
                    let first = ids.iter().next().map(ToString::to_string);
                    format!(
                        "n{node} lacks {} of {database} (first {})",
                        ids.len(),
                        first.unwrap_or_default()
                    )
                })
            })
            .collect();
        let shown = lines
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ");
        format!("{} nodes short: {shown}", lines.len())
    }
}

/// The run's faults (the log without its acknowledgements).
fn faults(cluster: &Cluster) -> String {
    cluster
        .log()
        .into_iter()
        .filter(|line| !line.contains(" ack "))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Reads every node over HTTP: the databases it lists (on the hub, to the
/// checker's token) and their events.
fn read_fleet(cluster: &mut Cluster, edges: usize) -> Result<Vec<Option<FleetHolding>>, String> {
    let holdings = Rc::new(RefCell::new(vec![None; edges + 1]));
    let into = holdings.clone();
    cluster.run_to_end("checker", async move {
        for node in 0..=edges {
            let host = format!("n{node}");
            let token = (node == HUB).then_some(CHECKER_TOKEN);
            let holding = async {
                let mut holding = FleetHolding::default();
                for database in check::read_databases(&host, token).await? {
                    let events = check::read_events(&host, &database, token).await?;
                    holding.databases.insert(database, events);
                }
                Some(holding)
            }
            .await;
            into.borrow_mut()[node] = holding;
        }
        Ok(())
    })?;
    let holdings = holdings.borrow().clone();
    Ok(holdings)
}

/// Events as compared between nodes: id, bytes, `recorded_at`.
fn contents(events: &[HeldEvent]) -> Vec<(EventId, String, String)> {
    let mut contents: Vec<_> = events
        .iter()
        .map(|event| {
            (
                event.id,
                event.data.get().to_owned(),
                event.recorded_at.clone(),
            )
        })
        .collect();
    contents.sort();
    contents
}

/// The fleet's invariants over what the checker read; the first broken.
fn check_fleet(
    record: &cluster::Record,
    holdings: &[Option<FleetHolding>],
    edges: usize,
) -> Result<(), String> {
    if let Some(violation) = record.violations.first() {
        return Err(violation.clone());
    }
    let mut held = Vec::new();
    for (node, holding) in holdings.iter().enumerate() {
        let holding = holding
            .as_ref()
            .ok_or_else(|| format!("n{node} did not answer the checker"))?;
        for (database, events) in &holding.databases {
            for (expected, event) in (1..).zip(events) {
                if event.lc != expected {
                    return Err(format!(
                        "n{node}: {database}: lc {} where {expected} was due",
                        event.lc
                    ));
                }
            }
        }
        held.push(holding);
    }
    let hub = held[HUB];
    let allowed: BTreeSet<String> = (1..=edges)
        .map(edge_database)
        .chain([SHARED.to_owned()])
        .collect();
    if let Some(stray) = hub.databases.keys().find(|name| !allowed.contains(*name)) {
        return Err(format!("the hub holds a database nobody writes: {stray}"));
    }
    // Every acknowledged event reached the hub, with its bytes (each
    // database has one writer: no id was acknowledged with two values).
    for (database, ids) in &record.acknowledged {
        let on_hub: BTreeMap<EventId, &str> = hub
            .databases
            .get(database)
            .into_iter()
            .flatten()
            .map(|event| (event.id, event.data.get()))
            .collect();
        for (id, values) in ids {
            let smallest = values.iter().next().map(Vec::as_slice).unwrap_or_default();
            match on_hub.get(id) {
                None => {
                    return Err(format!(
                        "acknowledged event {id} of {database} never reached the hub"
                    ));
                }
                Some(data) if data.as_bytes() != smallest => {
                    return Err(format!(
                        "the hub holds {data} for {id} of {database}, but {} was acknowledged",
                        String::from_utf8_lossy(smallest)
                    ));
                }
                Some(_) => {}
            }
        }
    }
    let shared = contents(hub.databases.get(SHARED).map_or(&[][..], Vec::as_slice));
    for (edge, holding) in held.iter().enumerate().skip(1) {
        let own = edge_database(edge);
        if let Some(leak) = holding
            .databases
            .keys()
            .find(|name| **name != own && *name != SHARED)
        {
            return Err(format!(
                "scope leak: n{edge} holds {leak}, which its token does not cover"
            ));
        }
        let edge_shared = contents(holding.databases.get(SHARED).map_or(&[][..], Vec::as_slice));
        if edge_shared != shared {
            return Err(format!(
                "n{edge} holds {} events of {SHARED}, the hub {}",
                edge_shared.len(),
                shared.len()
            ));
        }
        let mine = contents(holding.databases.get(&own).map_or(&[][..], Vec::as_slice));
        let hubs = contents(hub.databases.get(&own).map_or(&[][..], Vec::as_slice));
        if mine != hubs {
            let only_edge: Vec<_> = mine.iter().filter(|e| !hubs.contains(e)).take(3).collect();
            let only_hub: Vec<_> = hubs.iter().filter(|e| !mine.contains(e)).take(3).collect();
            return Err(format!(
                "n{edge} and the hub hold different events of {own} ({} and {}); only on the edge: {only_edge:?}; only on the hub: {only_hub:?}",
                mine.len(),
                hubs.len()
            ));
        }
    }
    Ok(())
}
