//! The node actor, root of a node's supervision tree, and the [`Node`] handle.
//!
//! Opening a node loads everything that can fail (the engine, the node's
//! record, every database's record and clock floor) before any actor starts,
//! so that a bad data directory is a plain error. The node actor then spawns
//! one linked database actor per database, creates new databases (it is the
//! only writer of the set), and restarts a database actor that crashes while
//! the others go on serving.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};
use tokio::sync::watch;

use super::blocking::run_storage;
use super::database::{ActorSlot, Database, DatabaseShared, NodeContext};
use super::database_actor::{DatabaseActor, DatabaseArgs};
use super::supervision::{RestartBudget, stopped_child};
#[cfg(feature = "server")]
use crate::clock::Clock;
use crate::clock::{Hlc, Random};
use crate::config::{Config, Engine};
use crate::error::{Error, Result, StorageError};
use crate::event::{EventId, Timestamp, validate_name};
use crate::limits::{
    DATABASE_RESTARTS_MAX, DATABASES_MAX, EPOCHS_MAX, Limits, RESTART_WINDOW_MS,
    WRITER_LEASE_WAIT_MS_MAX,
};
use crate::storage::fjall::FjallStorage;
use crate::storage::{
    DatabaseRecord, DatabaseStore, FORMAT_VERSION, NodeRecord, Storage, WriteBatch,
};
use crate::sync::EpochStart;
use crate::sync::refusals::{PeerRefusals, RefusalLedger};
use crate::sync::state::{EPOCHS_KEY, decode_epochs, encode_epochs};

/// A running node: the handle an application embeds.
///
/// Cheap to clone. Stop it with [`Node::shutdown`], which makes everything
/// durable and closes the data directory.
#[derive(Clone)]
pub struct Node {
    actor: ActorRef<NodeMsg>,
    shared: Arc<NodeShared>,
}

/// State shared by the node actor and its handles.
pub(crate) struct NodeShared {
    node_id: EventId,
    may_block: bool,
    call_timeout_ms: u64,
    limits: Limits,
    hlc: Arc<Hlc>,
    random: Arc<Random>,
    /// The wall clock, for the sync workers.
    #[cfg(feature = "server")]
    clock: Arc<dyn Clock>,
    /// Counts commits that changed something: sync workers watch it to sync
    /// soon after a write.
    commits: Arc<watch::Sender<u64>>,
    /// Every view compiled into the binary.
    views: Arc<Vec<crate::views::Registration>>,
    /// What the node's merges refused of each peer.
    refusals: Arc<RefusalLedger>,
    /// The engine; `None` once the node has shut down.
    storage: RwLock<Option<Arc<dyn Storage>>>,
    /// Every database by name. Only the node actor adds to it.
    databases: RwLock<BTreeMap<String, Arc<DatabaseShared>>>,
}

impl NodeShared {
    fn storage(&self) -> Result<Arc<dyn Storage>> {
        let storage = self.storage.read().unwrap_or_else(PoisonError::into_inner);
        storage
            .clone()
            .ok_or(Error::Unavailable("the node has shut down"))
    }

    fn database(&self, name: &str) -> Option<Arc<DatabaseShared>> {
        let databases = self
            .databases
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        databases.get(name).cloned()
    }
}

impl Node {
    /// Opens the node described by `config` and starts its actors.
    ///
    /// Fails with [`Error::DataDirLocked`] when another node holds the data
    /// directory and [`Error::UnknownFormat`] when it was written by an
    /// unknown format version.
    pub async fn open(config: Config) -> Result<Node> {
        Node::start(config, None).await
    }

    /// Opens the node as [`Node::open`] does, with its root actor linked
    /// under `supervisor`, for an application with its own supervision tree.
    pub async fn spawn_linked(config: Config, supervisor: ActorCell) -> Result<Node> {
        Node::start(config, Some(supervisor)).await
    }

    async fn start(config: Config, supervisor: Option<ActorCell>) -> Result<Node> {
        let shared = Arc::new(load(config).await?);
        let spawned = match supervisor {
            Some(supervisor) => {
                Actor::spawn_linked(None, NodeActor, shared.clone(), supervisor).await
            }
            None => Actor::spawn(None, NodeActor, shared.clone()).await,
        };
        let (actor, _) = spawned.map_err(|error| Error::Start(error.to_string()))?;
        tracing::info!(node = %shared.node_id, databases = shared.databases.read().unwrap_or_else(PoisonError::into_inner).len(), "node started");
        Ok(Node { actor, shared })
    }

    /// The node's id, made when its data directory was.
    pub fn id(&self) -> EventId {
        self.shared.node_id
    }

    /// Copies a consistent snapshot of the node's data, durably, into a new
    /// data directory `to`, while the node goes on serving; returns the
    /// number of records copied. A node started on the copy is a restored
    /// node: it keeps the id, and its peers resend what it lacks.
    pub async fn backup(&self, to: &std::path::Path) -> Result<u64> {
        let storage = self.shared.storage()?;
        let to = to.to_owned();
        let copied = run_storage(self.shared.may_block, move || Ok(storage.backup(&to)?)).await?;
        tracing::info!(records = copied, "backup written");
        Ok(copied)
    }

    /// The root actor, under which the replication layer links its
    /// supervisor.
    #[cfg(feature = "server")]
    pub(crate) fn root(&self) -> ActorCell {
        self.actor.get_cell()
    }

    /// Counts the commits that changed something, as they happen.
    #[cfg(feature = "server")]
    pub(crate) fn commits(&self) -> watch::Receiver<u64> {
        self.shared.commits.subscribe()
    }

    /// The node's wall clock.
    #[cfg(feature = "server")]
    pub(crate) fn clock(&self) -> Arc<dyn Clock> {
        self.shared.clock.clone()
    }

    /// The node's source of randomness.
    #[cfg(feature = "server")]
    pub(crate) fn random(&self) -> Arc<Random> {
        self.shared.random.clone()
    }

    /// The node's wall clock read now, with the skew it allows writers' ids.
    pub fn horizon(&self) -> crate::clock::Horizon {
        self.shared.hlc.horizon()
    }

    /// What the node's sync merges refused of each peer (values no read
    /// could serve), by the peer's node id, since the node started.
    pub fn refusals(&self) -> BTreeMap<EventId, PeerRefusals> {
        self.shared.refusals.all()
    }

    /// The bounds the node runs with.
    pub fn limits(&self) -> Limits {
        self.shared.limits
    }

    /// The node's root actor, to link or monitor from an application's tree.
    pub fn actor(&self) -> ActorCell {
        self.actor.get_cell()
    }

    /// The names of all databases, sorted.
    pub fn databases(&self) -> Vec<String> {
        let databases = self
            .shared
            .databases
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        databases.keys().cloned().collect()
    }

    /// The database `name`, or [`Error::DatabaseNotFound`].
    pub fn database(&self, name: &str) -> Result<Database> {
        validate_name(name)?;
        match self.shared.database(name) {
            Some(shared) => Ok(Database { shared }),
            None => Err(Error::DatabaseNotFound(name.to_owned())),
        }
    }

    /// The database `name`, created (durably) if it does not exist.
    pub async fn create_database(&self, name: &str) -> Result<Database> {
        Ok(self.ensure_database(name).await?.0)
    }

    /// The database `name`, and whether this call created it.
    pub async fn ensure_database(&self, name: &str) -> Result<(Database, bool)> {
        validate_name(name)?;
        if let Some(shared) = self.shared.database(name) {
            return Ok((Database { shared }, false));
        }
        let name = name.to_owned();
        let (shared, created) = self
            .call("create_database", |reply| NodeMsg::CreateDatabase {
                name,
                reply,
            })
            .await??;
        Ok((Database { shared }, created))
    }

    /// Stops the node: lets every database finish what is in its mailbox,
    /// makes everything durable, stops the actors and closes the storage.
    /// Handles still held afterwards answer [`Error::Unavailable`]. On a
    /// store that a full disk made refuse writes, the stop is clean without
    /// its final fsync (every acknowledged write had one); another failure
    /// of the store fails the stop.
    pub async fn shutdown(self) -> Result<()> {
        let timeout = Duration::from_millis(self.shared.call_timeout_ms);
        self.call("shutdown", |reply| NodeMsg::Stopping { reply })
            .await?;
        self.actor.drain_children_and_wait(Some(timeout)).await;
        let stopped = self.actor.stop_and_wait(None, Some(timeout)).await;
        // A commit left running by a child that was killed rather than
        // drained still holds its writer's lease: wait for it.
        let leases: Vec<_> = {
            let databases = self
                .shared
                .databases
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            databases
                .values()
                .map(|database| database.writer_lease.clone())
                .collect()
        };
        for lease in leases {
            let _ = tokio::time::timeout(timeout, lease.lock_owned()).await;
        }
        let storage = self.shared.storage()?;
        let persisted = run_storage(self.shared.may_block, move || Ok(storage.persist()?)).await;
        let persisted = forgive_a_full_disk(persisted);
        for database in self
            .shared
            .databases
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
        {
            *database
                .store
                .write()
                .unwrap_or_else(PoisonError::into_inner) = None;
            database.set_actor(ActorSlot::Stopped);
        }
        *self
            .shared
            .storage
            .write()
            .unwrap_or_else(PoisonError::into_inner) = None;
        persisted?;
        stopped.map_err(|_| Error::Timeout {
            operation: "shutdown",
            timeout_ms: self.shared.call_timeout_ms,
        })?;
        tracing::info!(node = %self.shared.node_id, "node stopped");
        Ok(())
    }

    async fn call<T: Send + 'static>(
        &self,
        operation: &'static str,
        message: impl FnOnce(RpcReplyPort<T>) -> NodeMsg,
    ) -> Result<T> {
        let timeout_ms = self.shared.call_timeout_ms;
        match self
            .actor
            .call(message, Some(Duration::from_millis(timeout_ms)))
            .await
        {
            Ok(ractor::rpc::CallResult::Success(answer)) => Ok(answer),
            Ok(ractor::rpc::CallResult::Timeout) => Err(Error::Timeout {
                operation,
                timeout_ms,
            }),
            Ok(ractor::rpc::CallResult::SenderError) | Err(_) => {
                Err(Error::Unavailable("the node has shut down"))
            }
        }
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.shared.node_id)
            .finish_non_exhaustive()
    }
}

/// The outcome of a stop's final fsync, where a store that a full disk
/// poisoned stops cleanly: every acknowledged write was fsynced before it was
/// answered, so what the final fsync would have covered is views' writes,
/// which a view refolds at the next start, and the writes of the commit that
/// met the full disk, which were refused. Any other failure of the store is
/// the operator's to look at, and the stop reports it.
fn forgive_a_full_disk(persisted: Result<()>) -> Result<()> {
    match persisted {
        Err(Error::Storage(StorageError::Poisoned(poison))) if poison.is_storage_full() => {
            tracing::warn!(cause = %poison, "the disk is full: the node stops without its final fsync, which every acknowledged write had already had");
            Ok(())
        }
        other => other,
    }
}

/// Opens the engine and reads everything a node starts from.
async fn load(config: Config) -> Result<NodeShared> {
    let limits = config.limits.validate().map_err(Error::InvalidConfig)?;
    // Two views of one name stop the node before it touches its data.
    let views = Arc::new(crate::views::registered()?);
    let random = Arc::new(config.seed.map_or_else(Random::from_os, Random::from_seed));
    let storage: Arc<dyn Storage> = match config.engine {
        Engine::Memory(storage) => Arc::new(storage),
        Engine::Fjall(dir) => {
            let shown = dir.display().to_string();
            run_storage(true, move || match FjallStorage::open(&dir) {
                Ok(storage) => Ok(Arc::new(storage) as Arc<dyn Storage>),
                Err(StorageError::Fjall(fjall::Error::Locked)) => Err(Error::DataDirLocked(shown)),
                Err(error) => Err(error.into()),
            })
            .await?
        }
    };
    let may_block = storage.may_block();
    let clock = config.clock.clone();
    let loader = (storage.clone(), random.clone());
    let (node, databases, floor) = run_storage(may_block, move || {
        let (storage, random) = loader;
        let node = match storage.load_node()? {
            Some(node) if node.format_version != FORMAT_VERSION => {
                return Err(Error::UnknownFormat {
                    found: node.format_version,
                    supported: FORMAT_VERSION,
                });
            }
            Some(node) => node,
            None => {
                let node = NodeRecord {
                    format_version: FORMAT_VERSION,
                    node_id: EventId::from_parts(clock.now_ms(), random.next_u128()),
                };
                storage.save_node(&node)?;
                node
            }
        };
        // What a crash left written but unfsynced is made durable before
        // anything is shown: a reader must never see an lc that a power
        // loss could erase and reuse.
        storage.persist()?;
        let mut floor = EventId::from_u128(0);
        let mut databases = Vec::new();
        for record in storage.databases()? {
            let store: Arc<dyn DatabaseStore> = storage.open_database(&record.name)?.into();
            floor = floor.max(store.hlc_floor()?.unwrap_or(floor));
            let history = start_epoch(store.as_ref(), &random)?;
            databases.push((record, store, history));
        }
        // The new epochs are durable before any peer can see them.
        storage.persist()?;
        Ok((node, databases, floor))
    })
    .await?;
    let commits = Arc::new(watch::Sender::new(0_u64));
    let refusals = Arc::new(RefusalLedger::default());
    let context = NodeContext {
        node_id: node.node_id,
        may_block,
        call_timeout_ms: config.call_timeout_ms,
        limits,
        commits: commits.clone(),
        views: views.clone(),
        refusals: refusals.clone(),
    };
    let hlc = Arc::new(Hlc::new(
        config.clock.clone(),
        random.clone(),
        config.clock_skew_ms,
        floor,
    ));
    let databases = databases
        .into_iter()
        .map(|(record, store, history)| {
            let name = record.name.clone();
            let shared = DatabaseShared::new(record, store, history, &context);
            (name, Arc::new(shared))
        })
        .collect();
    Ok(NodeShared {
        node_id: node.node_id,
        may_block,
        call_timeout_ms: config.call_timeout_ms,
        limits,
        hlc,
        random,
        #[cfg(feature = "server")]
        clock: config.clock,
        commits,
        views,
        refusals,
        storage: RwLock::new(Some(storage)),
        databases: RwLock::new(databases),
    })
}

/// Starts a new epoch of a database's log at its current end, and stores
/// the history (not yet durable: the caller persists). Every open of a node
/// starts one, so that a peer's cursor into a log restored from a backup is
/// cut back to where the backup ends (see `sync`).
fn start_epoch(store: &dyn DatabaseStore, random: &Random) -> Result<Vec<EpochStart>> {
    let mut history = match store.meta(EPOCHS_KEY)? {
        Some(bytes) => decode_epochs(&bytes)?,
        None => Vec::new(),
    };
    let start_lc = store.last_lc()?;
    let start_us = store.last_us()?;
    history.push(EpochStart {
        epoch: random.next_u128(),
        start_lc,
        start_us,
    });
    let excess = history.len().saturating_sub(EPOCHS_MAX);
    history.drain(..excess);
    store.write(&WriteBatch {
        first_lc: start_lc + 1,
        first_us: start_us + 1,
        meta: vec![(EPOCHS_KEY.to_vec(), encode_epochs(&history))],
        hlc_floor: store.hlc_floor()?.unwrap_or_default(),
        ..WriteBatch::default()
    })?;
    Ok(history)
}

/// The node actor's behaviour.
pub(crate) struct NodeActor;

/// Messages the node actor takes.
pub(crate) enum NodeMsg {
    /// Create a database unless it exists; answers whether this created it.
    CreateDatabase {
        name: String,
        reply: RpcReplyPort<Result<(Arc<DatabaseShared>, bool)>>,
    },
    /// The node is stopping: children that stop now are not restarted.
    Stopping { reply: RpcReplyPort<()> },
}

pub(crate) struct NodeState {
    shared: Arc<NodeShared>,
    /// Which database each running child actor serves.
    children: HashMap<ActorId, String>,
    /// The restarts of crashed database actors still allowed.
    restarts: RestartBudget,
    /// Set at shutdown: stopping children are then not restarted.
    stopping: bool,
}

impl Actor for NodeActor {
    type Msg = NodeMsg;
    type State = NodeState;
    type Arguments = Arc<NodeShared>;

    async fn pre_start(
        &self,
        myself: ActorRef<NodeMsg>,
        shared: Arc<NodeShared>,
    ) -> Result<NodeState, ActorProcessingErr> {
        let mut state = NodeState {
            shared,
            children: HashMap::new(),
            restarts: RestartBudget::new(DATABASE_RESTARTS_MAX),
            stopping: false,
        };
        let databases: Vec<_> = {
            let databases = state
                .shared
                .databases
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            databases.values().cloned().collect()
        };
        for database in databases {
            if let Err(error) = spawn_database(&myself, &mut state, database, false).await {
                // Nothing half-started keeps the data directory open.
                state.stopping = true;
                myself.stop_children_and_wait(None, None).await;
                return Err(error);
            }
        }
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<NodeMsg>,
        message: NodeMsg,
        state: &mut NodeState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            NodeMsg::CreateDatabase { name, reply } => {
                let answer = create_database(&myself, state, name).await;
                let _ = reply.send(answer);
            }
            NodeMsg::Stopping { reply } => {
                state.stopping = true;
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<NodeMsg>,
        event: SupervisionEvent,
        state: &mut NodeState,
    ) -> Result<(), ActorProcessingErr> {
        let Some((cell, reason)) = stopped_child(event) else {
            return Ok(());
        };
        let Some(name) = state.children.remove(&cell.get_id()) else {
            return Ok(());
        };
        let Some(database) = state.shared.database(&name) else {
            return Ok(());
        };
        if state.stopping {
            database.set_actor(ActorSlot::Stopped);
            return Ok(());
        }
        if !state.restarts.spend(tokio::time::Instant::now()) {
            database.set_actor(ActorSlot::Stopped);
            tracing::error!(database = %name, %reason, restarts = state.restarts.in_window(), window_ms = RESTART_WINDOW_MS, "database actor stopped; restart budget spent, the database stays unavailable");
            return Ok(());
        }
        database.set_actor(ActorSlot::Restarting);
        tracing::error!(database = %name, %reason, "database actor stopped; restarting it");
        if let Err(error) = spawn_database(&myself, state, database.clone(), true).await {
            database.set_actor(ActorSlot::Stopped);
            tracing::error!(database = %name, %error, "database actor failed to restart; the database stays unavailable");
        }
        Ok(())
    }
}

async fn spawn_database(
    myself: &ActorRef<NodeMsg>,
    state: &mut NodeState,
    database: Arc<DatabaseShared>,
    restarted: bool,
) -> Result<(), ActorProcessingErr> {
    let args = DatabaseArgs {
        shared: database.clone(),
        storage: state.shared.storage()?,
        hlc: state.shared.hlc.clone(),
        restarted,
        lease_wait: Duration::from_millis(WRITER_LEASE_WAIT_MS_MAX),
    };
    let (actor, _) = Actor::spawn_linked(None, DatabaseActor, args, myself.get_cell()).await?;
    state
        .children
        .insert(actor.get_id(), database.record.name.clone());
    database.set_actor(ActorSlot::Running(actor));
    Ok(())
}

async fn create_database(
    myself: &ActorRef<NodeMsg>,
    state: &mut NodeState,
    name: String,
) -> Result<(Arc<DatabaseShared>, bool)> {
    validate_name(&name)?;
    if let Some(existing) = state.shared.database(&name) {
        return Ok((existing, false));
    }
    let count = state
        .shared
        .databases
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .len();
    if count >= DATABASES_MAX {
        return Err(Error::LimitReached {
            what: "databases",
            limit: DATABASES_MAX,
        });
    }
    let record = DatabaseRecord {
        name: name.clone(),
        incarnation: state.shared.random.next_u128(),
        created_at: Timestamp(state.shared.hlc.wall_ms()),
    };
    let storage = state.shared.storage()?;
    let creating = record.clone();
    let random = state.shared.random.clone();
    let (store, history) = run_storage(state.shared.may_block, move || {
        let store: Arc<dyn DatabaseStore> = storage.create_database(&creating)?.into();
        let history = start_epoch(store.as_ref(), &random)?;
        storage.persist()?;
        Ok((store, history))
    })
    .await?;
    let context = NodeContext {
        node_id: state.shared.node_id,
        may_block: state.shared.may_block,
        call_timeout_ms: state.shared.call_timeout_ms,
        limits: state.shared.limits,
        commits: state.shared.commits.clone(),
        views: state.shared.views.clone(),
        refusals: state.shared.refusals.clone(),
    };
    let shared = Arc::new(DatabaseShared::new(record, store, history, &context));
    spawn_database(myself, state, shared.clone(), false)
        .await
        .map_err(|error| {
            tracing::error!(database = %name, %error, "database actor failed to start");
            Error::Unavailable("the database actor failed to start")
        })?;
    state
        .shared
        .databases
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(name.clone(), shared.clone());
    tracing::info!(database = %name, "database created");
    Ok((shared, true))
}
