//! The [`Node`] handle: what an application holds of a running node. Its
//! actor is in `node_actor.rs`; what they share, and opening a node, in
//! `node_state.rs`.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use ractor::{Actor, ActorCell, ActorRef, RpcReplyPort};
#[cfg(feature = "server")]
use tokio::sync::watch;

use super::blocking::run_storage;
use super::database::{ActorSlot, Database};
use super::node_actor::NodeActor;
use super::node_state::{NodeMsg, NodeShared, forgive_a_full_disk, load};
use super::rates::EventRates;
#[cfg(feature = "server")]
use crate::clock::{Clock, Random};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::event::{EventId, RESERVED_NAMES, validate_name, validate_new_name};
use crate::limits::Limits;
use crate::sync::refusals::PeerRefusals;

/// A running node: the handle an application embeds.
///
/// Cheap to clone. Stop it with [`Node::shutdown`], which makes everything
/// durable and closes the data directory.
#[derive(Clone)]
pub struct Node {
    actor: ActorRef<NodeMsg>,
    shared: Arc<NodeShared>,
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
        for name in shared
            .databases
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .filter(|name| RESERVED_NAMES.contains(&name.as_str()))
        {
            tracing::warn!(database = %name, "this database's name is reserved for a route of the API since it was created: the node still serves it through /db/{{db}}/..., but no node creates a database of this name, so a peer that does not hold it already will not take it; copy its events into a database of another name");
        }
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

    /// Whether the node has shut down.
    #[cfg(feature = "server")]
    pub(crate) fn is_shut_down(&self) -> bool {
        self.shared.storage().is_err()
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

    /// How long the node has run, by its clock.
    pub fn uptime(&self) -> Duration {
        let now_ms = self.shared.clock.now_ms();
        Duration::from_millis(now_ms.saturating_sub(self.shared.started_ms))
    }

    /// Events written by clients of this node and new events synced from
    /// peers, each second of the last
    /// [`RATES_WINDOW_S`](crate::limits::RATES_WINDOW_S) by the node's
    /// clock, summed over every database (see [`Database::rates`]).
    pub fn rates(&self) -> EventRates {
        let until_s = self.shared.clock.now_ms() / 1000;
        let mut rates = EventRates::empty(until_s);
        let databases = self
            .shared
            .databases
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        for database in databases.values() {
            rates.add(&database.rates.read_until(until_s));
        }
        rates
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

    /// Calls `each` with every database, in name order, under one read of
    /// the list: no name is copied, none looked up again.
    #[cfg(feature = "server")]
    pub(crate) fn each_database(&self, mut each: impl FnMut(&str, &Database)) {
        let databases = self
            .shared
            .databases
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        for (name, shared) in databases.iter() {
            each(
                name,
                &Database {
                    shared: shared.clone(),
                },
            );
        }
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

    /// The database `name`, and whether this call created it. A name of
    /// [`RESERVED_NAMES`](crate::event::RESERVED_NAMES) finds a database an
    /// older data directory holds, and creates none.
    pub async fn ensure_database(&self, name: &str) -> Result<(Database, bool)> {
        self.ensure(name, false).await
    }

    /// [`ensure_database`](Node::ensure_database) for a database a peer
    /// holds, which may bear a name reserved after the peer's release made
    /// it: the set of databases syncs whatever their names.
    #[cfg(feature = "server")]
    pub(crate) async fn ensure_peer_database(&self, name: &str) -> Result<(Database, bool)> {
        self.ensure(name, true).await
    }

    async fn ensure(&self, name: &str, from_peer: bool) -> Result<(Database, bool)> {
        validate_name(name)?;
        if let Some(shared) = self.shared.database(name) {
            return Ok((Database { shared }, false));
        }
        if !from_peer {
            validate_new_name(name)?;
        }
        let name = name.to_owned();
        let (shared, created) = self
            .call("create_database", |reply| NodeMsg::CreateDatabase {
                name,
                from_peer,
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
            // Subscribers wake, find the store closed, and end.
            database
                .view_wakeups
                .send_modify(|commits| *commits = commits.wrapping_add(1));
        }
        *self
            .shared
            .storage
            .write()
            .unwrap_or_else(PoisonError::into_inner) = None;
        // Peers' watches wake, find the node shut down, and end.
        self.shared
            .commits
            .send_modify(|commits| *commits = commits.wrapping_add(1));
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
