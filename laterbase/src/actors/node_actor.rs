//! The node actor, root of a node's supervision tree: it spawns one linked
//! database actor per database, creates new databases (it is the only
//! writer of the set), and restarts a database actor that crashes while the
//! others go on serving.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};

use super::blocking::run_storage;
use super::database::{ActorSlot, DatabaseShared, NodeContext};
use super::database_actor::{DatabaseActor, DatabaseArgs};
use super::node_state::{NodeMsg, NodeShared, start_epoch};
use super::supervision::{RestartBudget, stopped_child};
use crate::error::{Error, Result};
use crate::event::{Timestamp, validate_name, validate_new_name};
use crate::limits::{
    DATABASE_RESTARTS_MAX, DATABASES_MAX, RESTART_WINDOW_MS, WRITER_LEASE_WAIT_MS_MAX,
};
use crate::storage::{DatabaseRecord, DatabaseStore};

/// The node actor's behaviour.
pub(crate) struct NodeActor;

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
            NodeMsg::CreateDatabase {
                name,
                from_peer,
                reply,
            } => {
                let answer = create_database(&myself, state, name, from_peer).await;
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
    from_peer: bool,
) -> Result<(Arc<DatabaseShared>, bool)> {
    validate_name(&name)?;
    if let Some(existing) = state.shared.database(&name) {
        return Ok((existing, false));
    }
    if from_peer {
        if validate_new_name(&name).is_err() {
            tracing::warn!(database = %name, "a peer holds a database of a reserved name (an older release made it): it syncs here too, served through /db/{{db}}/...");
        }
    } else {
        validate_new_name(&name)?;
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
        clock: state.shared.clock.clone(),
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
    // A new database is news to peers too, like a commit.
    state
        .shared
        .commits
        .send_modify(|commits| *commits = commits.wrapping_add(1));
    Ok((shared, true))
}
