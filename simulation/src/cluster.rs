//! A cluster of real Laterbase nodes in one turmoil simulation: each node is
//! a simulated host running the node's actors, its HTTP server and its sync
//! workers; clients are hosts that write and read over HTTP. A script (or a
//! seed) drives faults between steps of simulated time.
//!
//! A node's disk is a `MemoryStorage` that outlives its software, so a crash
//! keeps what was persisted (its crash copy), a wipe starts it empty, and a
//! restore puts back an older copy. Its clock is the simulation's, plus a
//! skew the script sets.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use laterbase::http::{Access, Grant, HttpState, router};
use laterbase::{Config, EventId, MemoryStorage, Node, Peer, ReplicationConfig};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::net::{self, PORT, SimListener};

/// The simulation's start, as Unix milliseconds (2026-01-01).
pub const EPOCH_MS: u64 = 1_767_225_600_000;

/// The database every client writes to.
pub const DATABASE: &str = "sim";

/// How long a client waits for an answer before it gives up (and retries).
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// The sync interval and backoff cap of simulated nodes: short, so that a
/// cluster heals within a few simulated seconds.
const SYNC_INTERVAL: Duration = Duration::from_millis(100);
pub(crate) const SYNC_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Safety-net rounds while a watch is open: notices here are lost and
/// repeated on purpose (`net::unreliable_notices`).
const SYNC_SAFETY_NET: Duration = Duration::from_secs(1);
pub(crate) const SYNC_REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// A simulated node's clock: the simulation's time plus a skew.
#[derive(Clone)]
struct SimClock {
    skew_ms: Arc<AtomicI64>,
}

impl laterbase::clock::Clock for SimClock {
    fn now_ms(&self) -> u64 {
        let elapsed = turmoil::sim_elapsed().unwrap_or_default().as_millis();
        let now = i128::from(EPOCH_MS)
            + elapsed as i128
            + i128::from(self.skew_ms.load(Ordering::Relaxed));
        u64::try_from(now.max(0)).unwrap_or(u64::MAX)
    }
}

/// What a node is set up with at each start: the databases it makes sure
/// of, the peers it dials and the tokens it knows (none: it is open).
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub(crate) databases: Vec<String>,
    pub(crate) peers: Vec<Peer>,
    pub(crate) grants: Vec<Grant>,
}

/// What outlives a node's software: its disk, its backups and its clock.
struct Machine {
    name: String,
    pub(crate) storage: MemoryStorage,
    backups: Vec<MemoryStorage>,
    skew_ms: Arc<AtomicI64>,
    /// Starts so far, which varies the node's seed from one start to the next.
    starts: u64,
    running: bool,
}

/// What the clients and the script saw: acknowledged events, and a log of
/// everything that happened, for the digest.
#[derive(Default)]
pub(crate) struct Record {
    /// Per database, each acknowledged id and the values acknowledged for
    /// it.
    pub(crate) acknowledged: BTreeMap<String, BTreeMap<EventId, BTreeSet<Vec<u8>>>>,
    /// The nodes that acknowledged each id, by database.
    acked_by: BTreeMap<(String, EventId), BTreeSet<usize>>,
    /// Acknowledged ids that a simulated disk loss may have taken with it.
    pub(crate) may_be_lost: BTreeSet<EventId>,
    /// What happened, in order, with the simulated time.
    pub(crate) log: Vec<String>,
    /// Set when the clients are to stop.
    pub(crate) stop: bool,
    /// Each node's disk losses so far (wipes and restores): an answer that
    /// arrives after its node lost its disk may speak of lost writes.
    disk_losses: BTreeMap<usize, u64>,
    pub(crate) batches_acknowledged: u64,
    pub(crate) timeouts: u64,
    /// Invariants broken while the run went on.
    pub(crate) violations: Vec<String>,
    /// What the checker read from each node at the end.
    pub(crate) holdings: Vec<Option<crate::check::Holding>>,
}

/// The options of one cluster.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Seeds the network, the nodes and the clients.
    pub seed: u64,
    /// How many nodes.
    pub nodes: usize,
    /// Who dials whom.
    pub topology: Topology,
}

/// Who dials whom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topology {
    /// Every node dials every other.
    Mesh,
    /// Node 0 is a hub that dials nobody; every other node dials only the
    /// hub, as trucks behind NAT do: what one writes reaches another only
    /// through the hub, and reaches it from the hub only over the
    /// connections it opened itself.
    Hub,
}

/// A simulated cluster and its script's handles.
pub struct Cluster {
    pub(crate) sim: turmoil::Sim<'static>,
    machines: Vec<Rc<RefCell<Machine>>>,
    pub(crate) record: Rc<RefCell<Record>>,
    rng: StdRng,
    options: Options,
    /// What the nodes' servers read, for the digest.
    deliveries: net::Deliveries,
}

impl Cluster {
    /// Starts `options.nodes` nodes, each with every other as a peer, and
    /// one writing client per node.
    pub fn new(options: Options) -> Cluster {
        let plans = (0..options.nodes)
            .map(|index| Plan {
                databases: vec![DATABASE.to_owned()],
                peers: (0..options.nodes)
                    .filter(|peer| match options.topology {
                        Topology::Mesh => *peer != index,
                        Topology::Hub => index != 0 && *peer == 0,
                    })
                    .map(|peer| Peer::new(format!("http://n{peer}:{PORT}")))
                    .collect(),
                grants: Vec::new(),
            })
            .collect();
        let mut cluster = Cluster::with_plans(options, plans);
        for index in 0..options.nodes {
            cluster.client(index);
        }
        cluster
    }

    /// Starts one node per plan, named `n0`, `n1`…, and no client.
    pub(crate) fn with_plans(options: Options, plans: Vec<Plan>) -> Cluster {
        align_task_ids();
        let sim = turmoil::Builder::new()
            .rng_seed(options.seed)
            .epoch(std::time::UNIX_EPOCH + Duration::from_millis(EPOCH_MS))
            .simulation_duration(Duration::from_secs(3_600))
            .tick_duration(Duration::from_millis(5))
            .min_message_latency(Duration::from_millis(1))
            .max_message_latency(Duration::from_millis(20))
            .build();
        let mut cluster = Cluster {
            sim,
            machines: Vec::new(),
            record: Rc::default(),
            rng: StdRng::seed_from_u64(options.seed ^ 0x5ced_5eed),
            options,
            deliveries: net::Deliveries::default(),
        };
        for (index, plan) in plans.into_iter().enumerate() {
            let machine = Rc::new(RefCell::new(Machine {
                name: format!("n{index}"),
                storage: MemoryStorage::new(),
                backups: Vec::new(),
                skew_ms: Arc::default(),
                starts: 0,
                running: true,
            }));
            cluster.host(index, machine.clone(), plan);
            cluster.machines.push(machine);
        }
        cluster
    }

    fn host(&mut self, index: usize, machine: Rc<RefCell<Machine>>, plan: Plan) {
        let seed = self.options.seed;
        let deliveries = self.deliveries.clone();
        let name = machine.borrow().name.clone();
        self.sim.host(name.as_str(), move || {
            let (storage, skew_ms, starts) = {
                let mut machine = machine.borrow_mut();
                machine.starts += 1;
                (
                    machine.storage.clone(),
                    machine.skew_ms.clone(),
                    machine.starts,
                )
            };
            let plan = plan.clone();
            let deliveries = deliveries.clone();
            async move {
                let config = Config::memory(storage)
                    .clock(SimClock { skew_ms })
                    .seed(seed ^ ((index as u64) << 40) ^ starts);
                let node = Node::open(config).await?;
                for database in &plan.databases {
                    node.ensure_database(database).await?;
                }
                let mut replication = ReplicationConfig::new(Vec::new());
                replication.peers = plan.peers;
                replication.interval = SYNC_INTERVAL;
                replication.backoff_max = SYNC_BACKOFF_MAX;
                replication.request_timeout = SYNC_REQUEST_TIMEOUT;
                replication.safety_net = SYNC_SAFETY_NET;
                replication.connector = net::connector();
                let replication = node.replicate(replication).await?;
                let listener = turmoil::net::TcpListener::bind(("0.0.0.0", PORT)).await?;
                let state = HttpState::new(node)
                    .access(Access::grants(plan.grants))
                    .replication(replication);
                let app = router(state);
                let app = net::unreliable_notices(
                    app,
                    seed ^ 0x0071_ce00 ^ ((index as u64) << 32) ^ starts,
                );
                let listener = SimListener {
                    listener,
                    node: index,
                    deliveries,
                };
                laterbase::server::serve(listener, app, std::future::pending()).await;
                Ok(())
            }
        });
    }

    /// A client that writes to node `home` (and now and then another) until
    /// told to stop: batches of readings with backdated ids of its own, or
    /// without ids; a batch with ids that times out is retried elsewhere.
    fn client(&mut self, home: usize) {
        let record = self.record.clone();
        let nodes = self.options.nodes;
        let mut rng = StdRng::seed_from_u64(self.options.seed ^ 0xc11e_0000 ^ home as u64);
        self.sim.client(format!("client{home}"), async move {
            while !record.borrow().stop {
                tokio::time::sleep(Duration::from_millis(rng.random_range(20..250))).await;
                let now = EPOCH_MS + turmoil::sim_elapsed().unwrap_or_default().as_millis() as u64;
                let own_ids = rng.random_bool(0.7);
                let events: Vec<(Option<EventId>, Vec<u8>)> = (0..rng.random_range(1..6))
                    .map(|_| {
                        let id = own_ids.then(|| {
                            EventId::from_parts(now - rng.random_range(0..60_000), rng.random())
                        });
                        let key = format!("k{}", rng.random_range(0..4));
                        let reading = crate::views::Reading::draw(key, &mut rng);
                        (id, serde_json::to_vec(&reading).unwrap_or_default())
                    })
                    .collect();
                let node = if rng.random_bool(0.8) {
                    home
                } else {
                    rng.random_range(0..nodes)
                };
                let acked = write(&record, node, DATABASE, None, &events).await;
                if acked.is_none() && own_ids {
                    // Timed out: the batch may or may not be stored. With
                    // its own ids it is safe to send again, elsewhere.
                    let other = (node + 1 + rng.random_range(0..nodes.max(2) - 1)) % nodes;
                    write(&record, other, DATABASE, None, &events).await;
                }
                if rng.random_bool(0.2) {
                    let key = format!("k{}", rng.random_range(0..4));
                    let path = format!("/{DATABASE}/tally?key={key}");
                    net::request(
                        &format!("n{node}"),
                        "GET",
                        &path,
                        Bytes::new(),
                        REQUEST_TIMEOUT,
                    )
                    .await;
                }
            }
            Ok(())
        });
    }

    /// Runs the simulation for `duration` of simulated time.
    pub fn run_for(&mut self, duration: Duration) -> Result<(), String> {
        let until = self.sim.elapsed() + duration;
        while self.sim.elapsed() < until {
            self.sim
                .step()
                .map_err(|error| format!("the simulation failed: {error}"))?;
        }
        Ok(())
    }

    pub(crate) fn name(&self, node: usize) -> String {
        self.machines[node].borrow().name.clone()
    }

    pub(crate) fn note(&self, what: String) {
        let at = self.sim.elapsed().as_millis();
        self.record.borrow_mut().log.push(format!("{at} {what}"));
    }

    /// What `node`'s disk holds now (written, durable or not).
    pub(crate) fn storage(&self, node: usize) -> MemoryStorage {
        self.machines[node].borrow().storage.clone()
    }

    /// The simulated time since the start.
    pub fn elapsed(&self) -> Duration {
        self.sim.elapsed()
    }

    /// Cuts both directions between `a` and `b`.
    pub fn partition(&mut self, a: usize, b: usize) {
        self.note(format!("partition n{a} n{b}"));
        self.sim.partition(self.name(a), self.name(b));
    }

    /// Cuts what `from` sends to `to`; the other direction still works.
    pub fn partition_oneway(&mut self, from: usize, to: usize) {
        self.note(format!("partition n{from} -> n{to}"));
        self.sim.partition_oneway(self.name(from), self.name(to));
    }

    /// Repairs the link between `a` and `b`, both ways.
    pub fn repair(&mut self, a: usize, b: usize) {
        self.note(format!("repair n{a} n{b}"));
        self.sim.repair(self.name(a), self.name(b));
    }

    /// Repairs every link and takes away latency and loss.
    pub fn heal(&mut self) {
        self.note("heal".to_owned());
        for a in 0..self.machines.len() {
            for b in 0..self.machines.len() {
                if a != b {
                    self.sim.repair(self.name(a), self.name(b));
                }
            }
        }
        self.sim.set_max_message_latency(Duration::from_millis(20));
        self.sim.set_fail_rate(0.0);
    }

    /// Slow, lossy links: up to `latency` per message, and links that fail
    /// (and repair) at random with `fail_rate` per step.
    pub fn degrade(&mut self, latency: Duration, fail_rate: f64) {
        self.note(format!("degrade {} ms {fail_rate}", latency.as_millis()));
        self.sim.set_max_message_latency(latency);
        self.sim.set_fail_rate(fail_rate);
    }

    /// Kills node `node` as a power loss would: what it had not persisted
    /// is gone. It stays down until [`Cluster::restart`].
    pub fn crash(&mut self, node: usize) {
        if !self.machines[node].borrow().running {
            return;
        }
        self.note(format!("crash n{node}"));
        self.sim.crash(self.name(node));
        let copy = self.machines[node].borrow().storage.crash_copy();
        self.check_kept(node, &copy);
        let mut machine = self.machines[node].borrow_mut();
        machine.storage = copy;
        machine.running = false;
    }

    /// Checked at every crash: what survives holds every event `node`
    /// acknowledged (but those a disk loss may have taken).
    fn check_kept(&self, node: usize, disk: &MemoryStorage) {
        use laterbase::storage::Storage;
        let at = self.sim.elapsed().as_millis();
        let mut record = self.record.borrow_mut();
        let mut stores = BTreeMap::new();
        let lost: Vec<(String, EventId)> = record
            .acked_by
            .iter()
            .filter(|((_, id), nodes)| nodes.contains(&node) && !record.may_be_lost.contains(id))
            .map(|(key, _)| key.clone())
            .filter(|(database, id)| {
                stores
                    .entry(database.clone())
                    .or_insert_with(|| disk.open_database(database).ok())
                    .as_ref()
                    .and_then(|store| store.lc_of(*id).ok().flatten())
                    .is_none()
            })
            .collect();
        for (database, id) in lost {
            record.violations.push(format!(
                "{at} ms: n{node} lost acknowledged event {id} of {database} in a crash"
            ));
        }
    }

    /// Starts a crashed node again on what its disk holds.
    pub fn restart(&mut self, node: usize) {
        if self.machines[node].borrow().running {
            return;
        }
        self.note(format!("restart n{node}"));
        self.sim.bounce(self.name(node));
        self.machines[node].borrow_mut().running = true;
    }

    /// Crashes `node` and starts it on an empty disk.
    pub fn wipe(&mut self, node: usize) {
        self.crash(node);
        self.note(format!("wipe n{node}"));
        self.machines[node].borrow_mut().storage = MemoryStorage::new();
        self.forget_acknowledged_by(node);
        self.restart(node);
    }

    /// Takes a backup of `node`'s disk as it is now (what it has persisted).
    pub fn backup(&mut self, node: usize) {
        self.note(format!("backup n{node}"));
        let mut machine = self.machines[node].borrow_mut();
        let copy = machine.storage.crash_copy();
        machine.backups.push(copy);
    }

    /// Crashes `node` and starts it on its latest backup (or an empty disk
    /// if it has none).
    pub fn restore(&mut self, node: usize) {
        self.crash(node);
        self.note(format!("restore n{node}"));
        {
            let mut machine = self.machines[node].borrow_mut();
            machine.storage = match machine.backups.last() {
                Some(backup) => backup.crash_copy(),
                None => MemoryStorage::new(),
            };
        }
        self.forget_acknowledged_by(node);
        self.restart(node);
    }

    /// Sets `node`'s clock `skew_ms` ahead of the simulation's (behind if
    /// negative).
    pub fn skew(&mut self, node: usize, skew_ms: i64) {
        self.note(format!("skew n{node} {skew_ms}"));
        self.machines[node]
            .borrow()
            .skew_ms
            .store(skew_ms, Ordering::Relaxed);
    }

    /// Writes one id with different bytes to nodes `a` and `b` (a client
    /// that misbehaves, typically across a partition).
    pub fn conflict(&mut self, a: usize, b: usize) {
        let now = EPOCH_MS + self.sim.elapsed().as_millis() as u64;
        let id = EventId::from_parts(now - 1_000, self.rng.random());
        self.note(format!("conflict {id} n{a} n{b}"));
        for (node, n) in [(a, 1), (b, 2)] {
            let record = self.record.clone();
            let reading = crate::views::Reading {
                key: "k0".to_owned(),
                n,
                x: 0.1 * n as f64,
            };
            let data = serde_json::to_vec(&reading).unwrap_or_default();
            self.sim.client(
                format!("conflict{}-{node}", self.record.borrow().log.len()),
                async move {
                    write(&record, node, DATABASE, None, &[(Some(id), data)]).await;
                    Ok(())
                },
            );
        }
    }

    /// Ids that `node` acknowledged may be lost with its disk.
    fn forget_acknowledged_by(&mut self, node: usize) {
        let mut record = self.record.borrow_mut();
        *record.disk_losses.entry(node).or_default() += 1;
        let lost: Vec<EventId> = record
            .acked_by
            .iter()
            .filter(|(_, nodes)| nodes.contains(&node))
            .map(|((_, id), _)| *id)
            .collect();
        record.may_be_lost.extend(lost);
    }

    /// Stops the clients, heals everything, lets the cluster go quiet, reads
    /// every node, and checks the invariants; the run's digest.
    pub fn assert_converged(&mut self) -> Result<u64, String> {
        self.record.borrow_mut().stop = true;
        // The clients finish their last request.
        self.run_for(REQUEST_TIMEOUT * 3)?;
        self.heal();
        for node in 0..self.machines.len() {
            self.restart(node);
        }
        // Long enough for a request cut by a partition to time out, every
        // backoff to run out and the rounds to finish.
        self.run_for(SYNC_REQUEST_TIMEOUT * 2 + SYNC_BACKOFF_MAX * 4 + Duration::from_secs(4))?;
        self.read_everything()?;
        let record = self.record.borrow();
        crate::check::converged(&record, self.machines.len()).map_err(|error| {
            let faults: Vec<&str> = record
                .log
                .iter()
                .filter(|line| !line.contains(" ack "))
                .map(String::as_str)
                .collect();
            format!("{error}\n  faults (ms since start): {}", faults.join("; "))
        })?;
        drop(record);
        Ok(self.digest())
    }

    /// A client that reads every node's events and views into the record.
    fn read_everything(&mut self) -> Result<(), String> {
        let nodes = self.machines.len();
        let record = self.record.clone();
        record.borrow_mut().holdings = vec![None; nodes];
        self.run_to_end("checker", async move {
            for node in 0..nodes {
                let holding = crate::check::read(&format!("n{node}")).await;
                record.borrow_mut().holdings[node] = holding;
            }
            Ok(())
        })
    }

    /// Runs the client `client` (once every other client has finished)
    /// until it finishes.
    pub(crate) fn run_to_end(
        &mut self,
        name: &str,
        client: impl std::future::Future<Output = turmoil::Result> + 'static,
    ) -> Result<(), String> {
        self.sim.client(name, client);
        for _ in 0..100_000 {
            if self
                .sim
                .step()
                .map_err(|error| format!("the simulation failed: {error}"))?
            {
                return Ok(());
            }
        }
        Err("the checker did not finish".to_owned())
    }

    /// A digest of everything that happened: the log (faults, and each
    /// acknowledged batch with its time), every read of every node's server
    /// (the messages delivered), and what every node holds.
    pub fn digest(&self) -> u64 {
        let record = self.record.borrow();
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        for line in &record.log {
            hasher.update(line.as_bytes());
            hasher.update(b"\n");
        }
        for holding in record.holdings.iter().flatten() {
            for event in &holding.events {
                hasher.update(&event.id.to_bytes());
                hasher.update(&event.lc.to_be_bytes());
                hasher.update(event.recorded_at.as_bytes());
            }
        }
        hasher.update(&self.deliveries.digest().to_be_bytes());
        hasher.digest()
    }

    /// The log of the run: faults and acknowledged batches, with their times.
    pub fn log(&self) -> Vec<String> {
        self.record.borrow().log.clone()
    }

    /// Figures of the run, for the runner's output.
    pub fn summary(&self) -> String {
        let record = self.record.borrow();
        format!(
            "{} batches acknowledged, {} events, {} requests timed out, {} faults",
            record.batches_acknowledged,
            record
                .acknowledged
                .values()
                .map(BTreeMap::len)
                .sum::<usize>(),
            record.timeouts,
            record
                .log
                .iter()
                .filter(|line| !line.contains(" ack "))
                .count()
        )
    }

    /// Requests that timed out so far (against a dead or cut-off node).
    pub fn timeouts(&self) -> u64 {
        self.record.borrow().timeouts
    }

    /// Batches acknowledged so far.
    pub fn batches_acknowledged(&self) -> u64 {
        self.record.borrow().batches_acknowledged
    }

    /// The seeded generator scripts draw from.
    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    /// How many nodes.
    pub fn nodes(&self) -> usize {
        self.machines.len()
    }
}

/// tokio numbers tasks from one counter for the whole process, and a
/// runtime that is dropped (a crashed host) shuts its tasks down shard by
/// shard, the shard being the task's number modulo the shard count. So
/// that a seed replays exactly whatever ran before it in this process, each
/// cluster starts its tasks' numbers on a multiple of [`TASK_ID_ALIGNMENT`].
fn align_task_ids() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime to align task numbers");
    runtime.block_on(async {
        loop {
            let id = tokio::spawn(async { tokio::task::id() })
                .await
                .expect("the task runs");
            let number: u64 = id.to_string().parse().expect("task ids are numbers");
            if number % TASK_ID_ALIGNMENT == TASK_ID_ALIGNMENT - 1 {
                return;
            }
        }
    });
}

/// A multiple of every shard count of tokio's task lists in the simulation
/// (current-thread runtimes have 4).
const TASK_ID_ALIGNMENT: u64 = 64;

/// Posts `events` to node `node`; records the acknowledged ones. `None` if
/// the write was not acknowledged.
pub(crate) async fn write(
    record: &Rc<RefCell<Record>>,
    node: usize,
    database: &str,
    token: Option<&str>,
    events: &[(Option<EventId>, Vec<u8>)],
) -> Option<()> {
    let mut body = Vec::from(&b"["[..]);
    for (index, (id, data)) in events.iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        match id {
            Some(id) => body.extend_from_slice(format!("{{\"id\":\"{id}\",\"data\":").as_bytes()),
            None => body.extend_from_slice(b"{\"data\":"),
        }
        body.extend_from_slice(data);
        body.push(b'}');
    }
    body.push(b']');
    let host = format!("n{node}");
    let path = format!("/db/{database}/e");
    let losses_before = record.borrow().disk_losses.get(&node).copied();
    let Some((status, answer)) =
        net::request_as(&host, "POST", &path, body.into(), REQUEST_TIMEOUT, token).await
    else {
        record.borrow_mut().timeouts += 1;
        return None;
    };
    if status != 200 {
        return None;
    }
    let answer: serde_json::Value = serde_json::from_slice(&answer).ok()?;
    let ids: Vec<EventId> = answer["ids"]
        .as_array()?
        .iter()
        .filter_map(|id| id.as_str()?.parse().ok())
        .collect();
    let at = turmoil::sim_elapsed().unwrap_or_default().as_millis();
    let mut record = record.borrow_mut();
    record.batches_acknowledged += 1;
    record.log.push(format!(
        "{at} ack n{node} {database} {}",
        ids.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    ));
    let lost_since = record.disk_losses.get(&node).copied() != losses_before;
    for (id, (_, data)) in ids.iter().zip(events) {
        record
            .acknowledged
            .entry(database.to_owned())
            .or_default()
            .entry(*id)
            .or_default()
            .insert(data.clone());
        record
            .acked_by
            .entry((database.to_owned(), *id))
            .or_default()
            .insert(node);
        if lost_since {
            record.may_be_lost.insert(*id);
        }
    }
    Some(())
}
