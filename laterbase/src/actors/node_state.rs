//! What a node's actor and its handles share, the messages the actor takes,
//! and opening a node: everything that can fail (the engine, the node's
//! record, every database's record and clock floor) is loaded before any
//! actor starts, so that a bad data directory is a plain error.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use ractor::RpcReplyPort;
use tokio::sync::watch;

use super::blocking::run_storage;
use super::database::{DatabaseShared, NodeContext};
use crate::clock::{Clock, Hlc, Random};
use crate::config::{Config, Engine};
use crate::error::{Error, Result, StorageError};
use crate::event::EventId;
use crate::limits::{EPOCHS_MAX, Limits};
use crate::storage::fjall::FjallStorage;
use crate::storage::{DatabaseStore, FORMAT_VERSION, NodeRecord, Storage, WriteBatch};
use crate::sync::EpochStart;
use crate::sync::refusals::RefusalLedger;
use crate::sync::state::{EPOCHS_KEY, decode_epochs, encode_epochs};

/// State shared by the node actor and its handles.
pub(crate) struct NodeShared {
    pub(super) node_id: EventId,
    pub(super) may_block: bool,
    pub(super) call_timeout_ms: u64,
    pub(super) limits: Limits,
    pub(super) hlc: Arc<Hlc>,
    pub(super) random: Arc<Random>,
    /// The wall clock, for the sync workers and the databases' rates.
    pub(super) clock: Arc<dyn Clock>,
    /// When the node started, by `clock`.
    pub(super) started_ms: u64,
    /// Counts commits that changed something: sync workers watch it to sync
    /// soon after a write.
    pub(super) commits: Arc<watch::Sender<u64>>,
    /// Every view compiled into the binary.
    pub(super) views: Arc<Vec<crate::views::Registration>>,
    /// What the node's merges refused of each peer.
    pub(super) refusals: Arc<RefusalLedger>,
    /// The engine; `None` once the node has shut down.
    pub(super) storage: RwLock<Option<Arc<dyn Storage>>>,
    /// Every database by name. Only the node actor adds to it.
    pub(super) databases: RwLock<BTreeMap<String, Arc<DatabaseShared>>>,
}

impl NodeShared {
    pub(super) fn storage(&self) -> Result<Arc<dyn Storage>> {
        let storage = self.storage.read().unwrap_or_else(PoisonError::into_inner);
        storage
            .clone()
            .ok_or(Error::Unavailable("the node has shut down"))
    }

    pub(super) fn database(&self, name: &str) -> Option<Arc<DatabaseShared>> {
        let databases = self
            .databases
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        databases.get(name).cloned()
    }
}

/// Messages the node actor takes.
pub(crate) enum NodeMsg {
    /// Create a database unless it exists; answers whether this created it.
    CreateDatabase {
        name: String,
        /// Whether a peer holds it: a peer of an older release may hold a
        /// database of a name reserved since, which syncs like any other.
        from_peer: bool,
        reply: RpcReplyPort<Result<(Arc<DatabaseShared>, bool)>>,
    },
    /// The node is stopping: children that stop now are not restarted.
    Stopping { reply: RpcReplyPort<()> },
}

/// The outcome of a stop's final fsync, where a store that a full disk
/// poisoned stops cleanly: every acknowledged write was fsynced before it was
/// answered, so what the final fsync would have covered is views' writes,
/// which a view refolds at the next start, and the writes of the commit that
/// met the full disk, which were refused. Any other failure of the store is
/// the operator's to look at, and the stop reports it.
pub(super) fn forgive_a_full_disk(persisted: Result<()>) -> Result<()> {
    match persisted {
        Err(Error::Storage(StorageError::Poisoned(poison))) if poison.is_storage_full() => {
            tracing::warn!(cause = %poison, "the disk is full: the node stops without its final fsync, which every acknowledged write had already had");
            Ok(())
        }
        other => other,
    }
}

/// Opens the engine and reads everything a node starts from.
pub(super) async fn load(config: Config) -> Result<NodeShared> {
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
        clock: config.clock.clone(),
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
        started_ms: config.clock.now_ms(),
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
pub(super) fn start_epoch(store: &dyn DatabaseStore, random: &Random) -> Result<Vec<EpochStart>> {
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
