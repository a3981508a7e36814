//! The database actor, the only writer of one database: it queues each
//! append and merge that arrives through its mailbox and sends itself a
//! `Flush` behind whatever else waits there, so that every write that came
//! while the last commit ran joins the next one (see `commit`): one fsync
//! serves them all. It also starts and supervises the database's views.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::blocking::run_storage;
use super::commit::{PendingWrite, Write, Writer};
use super::database::{DatabaseMsg, DatabaseShared};
use super::supervision::{RestartBudget, stopped_child};
use super::view::ViewHandle;
use super::view_actor::{ViewActor, ViewArgs};
use crate::clock::Hlc;
use crate::error::{Error, Result};
use crate::limits::{BATCH_EVENTS_MAX, VIEW_RESTARTS_MAX};
use crate::storage::Storage;
use crate::views::Registration;

/// The database actor's behaviour.
pub(crate) struct DatabaseActor;

/// What a database actor is started with.
pub(crate) struct DatabaseArgs {
    pub(crate) shared: Arc<DatabaseShared>,
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) hlc: Arc<Hlc>,
    /// Whether this start follows a crash: then what the crashed actor wrote
    /// but did not make durable is made durable before anything is shown.
    pub(crate) restarted: bool,
    /// How long the start waits for the writer lease
    /// (`WRITER_LEASE_WAIT_MS_MAX`).
    pub(crate) lease_wait: Duration,
}

pub(crate) struct DatabaseState {
    shared: Arc<DatabaseShared>,
    /// The only writer of the database; `None` only while a commit has
    /// lent it to the blocking pool.
    writer: Option<Writer>,
    /// Appends waiting for the next commit.
    queue: Vec<PendingWrite>,
    /// Whether a `Flush` is in the mailbox.
    flush_queued: bool,
    /// The engine, for the views' stores.
    storage: Arc<dyn Storage>,
    /// The running view actors, to restart one that crashes.
    views: HashMap<ractor::ActorId, Registration>,
    /// Each view's restarts still allowed (`VIEW_RESTARTS_MAX` per window).
    view_restarts: HashMap<&'static str, RestartBudget>,
}

impl Actor for DatabaseActor {
    type Msg = DatabaseMsg;
    type State = DatabaseState;
    type Arguments = DatabaseArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<DatabaseMsg>,
        args: DatabaseArgs,
    ) -> Result<DatabaseState, ActorProcessingErr> {
        let DatabaseArgs {
            shared,
            storage,
            hlc,
            restarted,
            lease_wait,
        } = args;
        // A writer left running by a killed predecessor finishes first, but
        // a start does not wait for it forever.
        let lease = tokio::time::timeout(lease_wait, shared.writer_lease.clone().lock_owned())
            .await
            .map_err(|_| Error::WriterLeaseTimeout {
                database: shared.record.name.clone(),
                waited_ms: u64::try_from(lease_wait.as_millis()).unwrap_or(u64::MAX),
            })?;
        let opening = shared.clone();
        let views_storage = storage.clone();
        let writer = run_storage(shared.may_block, move || {
            Writer::open(opening, storage, hlc, restarted, lease)
        })
        .await?;
        let mut state = DatabaseState {
            shared,
            writer: Some(writer),
            queue: Vec::new(),
            flush_queued: false,
            storage: views_storage,
            views: HashMap::new(),
            view_restarts: HashMap::new(),
        };
        // A view that cannot start leaves its database serving.
        for registration in state.shared.views.clone() {
            if let Err(error) = spawn_view(&myself, &mut state, registration).await {
                tracing::error!(database = registration.db, view = registration.name, %error, "view actor failed to start; the view stays unavailable");
            }
        }
        Ok(state)
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<DatabaseMsg>,
        event: ractor::SupervisionEvent,
        state: &mut DatabaseState,
    ) -> Result<(), ActorProcessingErr> {
        let Some((cell, reason)) = stopped_child(event) else {
            return Ok(());
        };
        let Some(registration) = state.views.remove(&cell.get_id()) else {
            return Ok(());
        };
        let (db, view) = (registration.db, registration.name);
        let restarts = state
            .view_restarts
            .entry(view)
            .or_insert_with(|| RestartBudget::new(VIEW_RESTARTS_MAX));
        if !restarts.spend(tokio::time::Instant::now()) {
            tracing::error!(database = db, view, %reason, "view actor stopped; restart budget spent, the view stays unavailable");
            return Ok(());
        }
        tracing::error!(database = db, view, %reason, "view actor stopped; restarting it");
        if let Err(error) = spawn_view(&myself, state, registration).await {
            tracing::error!(database = db, view, %error, "view actor failed to restart; the view stays unavailable");
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<DatabaseMsg>,
        message: DatabaseMsg,
        state: &mut DatabaseState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            DatabaseMsg::Append {
                events,
                permit,
                reply: Some(reply),
            } => {
                state.queue.push(PendingWrite {
                    write: Write::Append { events, reply },
                    _permit: permit,
                });
                // Appends already in the mailbox (they queued up during the
                // last commit) join this one's commit: the flush comes after.
                if !state.flush_queued {
                    state.flush_queued = true;
                    myself.send_message(DatabaseMsg::Flush)?;
                }
            }
            DatabaseMsg::Append { reply: None, .. } => {
                unreachable!("appends are sent with a reply port")
            }
            DatabaseMsg::Merge { reply: None, .. } => {
                unreachable!("merges are sent with a reply port")
            }
            DatabaseMsg::Merge {
                events,
                losers,
                meta,
                permit,
                reply: Some(reply),
            } => {
                state.queue.push(PendingWrite {
                    write: Write::Merge {
                        events,
                        losers,
                        meta,
                        reply,
                    },
                    _permit: permit,
                });
                if !state.flush_queued {
                    state.flush_queued = true;
                    myself.send_message(DatabaseMsg::Flush)?;
                }
            }
            DatabaseMsg::Flush => {
                state.flush_queued = false;
                commit_queued(state).await?;
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<DatabaseMsg>,
        state: &mut DatabaseState,
    ) -> Result<(), ActorProcessingErr> {
        // Views are not restarted from here on.
        state.views.clear();
        myself
            .stop_children_and_wait(
                None,
                Some(Duration::from_millis(state.shared.call_timeout_ms)),
            )
            .await;
        commit_queued(state).await
    }
}

/// Starts the actor of one view, linked to its database's actor.
async fn spawn_view(
    myself: &ActorRef<DatabaseMsg>,
    state: &mut DatabaseState,
    registration: Registration,
) -> Result<(), ActorProcessingErr> {
    let args = ViewArgs {
        registration,
        shared: state.shared.clone(),
        storage: state.storage.clone(),
    };
    let key_kind = (registration.engine)().key_kind();
    let (actor, _) = Actor::spawn_linked(None, ViewActor, args, myself.get_cell()).await?;
    state.views.insert(actor.get_id(), registration);
    state
        .shared
        .view_actors
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(registration.name, ViewHandle { key_kind, actor });
    Ok(())
}

/// Commits every queued append, a batch's worth at a time.
///
/// The commit blocks this actor, not the runtime: on a multi-threaded
/// runtime it runs in place (the worker hands its other tasks over), which
/// spares a thread switch per commit; on a current-thread runtime it goes to
/// the blocking pool; with the in-memory engine, which never blocks, it runs
/// inline. Appends that arrive meanwhile wait in the mailbox and share the
/// next commit, and so its fsync.
async fn commit_queued(state: &mut DatabaseState) -> Result<(), ActorProcessingErr> {
    while !state.queue.is_empty() {
        let appends = take_commit(&mut state.queue);
        let Some(mut writer) = state.writer.take() else {
            return Err("the writer was lost by an earlier commit".into());
        };
        let multi_thread = tokio::runtime::Handle::current().runtime_flavor()
            == tokio::runtime::RuntimeFlavor::MultiThread;
        if !state.shared.may_block {
            writer.commit(appends);
        } else if multi_thread {
            tokio::task::block_in_place(|| writer.commit(appends));
        } else {
            writer = run_storage(true, move || {
                writer.commit(appends);
                Ok(writer)
            })
            .await?;
        }
        state.writer = Some(writer);
    }
    Ok(())
}

/// The queued appends for one commit: all of them, up to a batch's worth of
/// events (always at least one append).
fn take_commit(queue: &mut Vec<PendingWrite>) -> Vec<PendingWrite> {
    let mut events = 0;
    let count = queue
        .iter()
        .take_while(|pending| {
            events += pending.write.len();
            events <= BATCH_EVENTS_MAX
        })
        .count()
        .max(1);
    queue.drain(..count.min(queue.len())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventId, NewEvent};

    /// A second actor for a database whose writer lease is held (by the
    /// running actor, here; by a killed one's commit in production) gives
    /// up after its bound, naming the database.
    #[tokio::test]
    async fn a_start_waits_for_the_writer_lease_boundedly() {
        let node = crate::Node::open(crate::Config::in_memory())
            .await
            .expect("open");
        let db = node.create_database("leased").await.expect("create");
        let clock: Arc<dyn crate::clock::Clock> = Arc::new(crate::clock::SystemClock);
        let random = Arc::new(crate::clock::Random::from_seed(7));
        let args = DatabaseArgs {
            shared: db.shared.clone(),
            storage: Arc::new(crate::MemoryStorage::new()),
            hlc: Arc::new(Hlc::new(clock, random, 0, EventId::default())),
            restarted: true,
            lease_wait: Duration::from_millis(20),
        };
        let started = Actor::spawn(None, DatabaseActor, args).await;
        let Err(error) = started else {
            panic!("a second writer started while the lease was held");
        };
        let ractor::SpawnErr::StartupFailed(cause) = error else {
            panic!("not a failed start: {error:?}");
        };
        let message = cause.to_string();
        assert!(
            message
                .starts_with("database \"leased\": its writer lease was not released within 20 ms"),
            "{message}"
        );
        db.append(vec![NewEvent::new("1")])
            .await
            .expect("the running actor serves on");
        node.shutdown().await.expect("shutdown");
    }
}
