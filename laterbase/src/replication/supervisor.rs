//! The replication supervisor: one sync worker per peer, restarted when it
//! crashes, within a budget; and [`Replication`], the handle a node's
//! [`replicate`](Node::replicate) returns.

use std::sync::{Arc, PoisonError, RwLock};

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};

use super::config::{Direction, PeerStatus, PeerStatuses, ReplicationConfig, Shared};
use super::worker::{SyncWorker, WorkerArgs};
use crate::actors::Node;
use crate::actors::supervision::{RestartBudget, stopped_child};
use crate::error::{Error, Result};
use crate::limits::SYNC_WORKER_RESTARTS_MAX;

/// A node's replication with its peers, once started: what each peer's last
/// pass did. It runs under the node's root actor until the node shuts down;
/// dropping the handle stops nothing.
#[derive(Clone, Debug)]
pub struct Replication {
    statuses: PeerStatuses,
}

impl Replication {
    /// Every peer and how its last sync went.
    pub fn peers(&self) -> Vec<PeerStatus> {
        self.statuses
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Node {
    /// Starts syncing every database with `config.peers`, in both
    /// directions, for as long as the node runs: a replication supervisor
    /// with one worker per peer, under the node's root actor.
    pub async fn replicate(&self, config: ReplicationConfig) -> Result<Replication> {
        let statuses: PeerStatuses = Arc::new(RwLock::new(
            config
                .peers
                .iter()
                .map(|peer| PeerStatus::new(Direction::Out, peer.url.clone()))
                .collect(),
        ));
        let shared = Shared {
            node: self.clone(),
            config,
            statuses: statuses.clone(),
            commits: self.commits(),
            clock: self.clock(),
            random: self.random(),
        };
        Actor::spawn_linked(None, ReplicationSupervisor, shared, self.root())
            .await
            .map_err(|error| Error::Start(error.to_string()))?;
        Ok(Replication { statuses })
    }
}

/// The supervisor's behaviour.
pub(crate) struct ReplicationSupervisor;

pub(crate) struct SupervisorState {
    args: Arc<Shared>,
    /// Each running worker's peer index.
    workers: Vec<(ractor::ActorId, usize)>,
    /// The restarts still allowed, per peer.
    restarts: Vec<RestartBudget>,
}

impl Actor for ReplicationSupervisor {
    type Msg = ();
    type State = SupervisorState;
    type Arguments = Shared;

    async fn pre_start(
        &self,
        myself: ActorRef<()>,
        args: Shared,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let peers = args.config.peers.len();
        let mut state = SupervisorState {
            args: Arc::new(args),
            workers: Vec::new(),
            restarts: vec![RestartBudget::new(SYNC_WORKER_RESTARTS_MAX); peers],
        };
        for index in 0..state.args.config.peers.len() {
            spawn_worker(&myself, &mut state, index).await?;
        }
        Ok(state)
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<()>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let Some((cell, reason)) = stopped_child(event) else {
            return Ok(());
        };
        let Some(position) = state
            .workers
            .iter()
            .position(|(id, _)| *id == cell.get_id())
        else {
            return Ok(());
        };
        let (_, index) = state.workers.remove(position);
        let (Some(url), Some(restarts)) = (
            state.args.config.peers.get(index).map(|peer| &peer.url),
            state.restarts.get_mut(index),
        ) else {
            return Err(format!("a worker of no peer stopped: index {index}").into());
        };
        if !restarts.spend(tokio::time::Instant::now()) {
            tracing::error!(peer = %url, %reason, "sync worker stopped; restart budget spent");
            return Ok(());
        }
        tracing::error!(peer = %url, %reason, "sync worker stopped; restarting it");
        spawn_worker(&myself, state, index).await?;
        Ok(())
    }
}

async fn spawn_worker(
    myself: &ActorRef<()>,
    state: &mut SupervisorState,
    index: usize,
) -> Result<(), ActorProcessingErr> {
    let args = WorkerArgs {
        shared: state.args.clone(),
        index,
    };
    let (worker, _) = Actor::spawn_linked(None, SyncWorker, args, myself.get_cell()).await?;
    state.workers.push((worker.get_id(), index));
    Ok(())
}
