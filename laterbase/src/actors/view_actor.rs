//! The actor of one view of one database: it owns the view's store, folds
//! the database's durable events into it as they arrive (local writes and
//! sync alike), and answers queries once it has folded every event that was
//! durable when the query began (read-your-writes).
//!
//! ```text
//! commit ─ nudge ─▶ Step: read ≤ VIEW_FOLD_EVENTS_MAX durable events after
//!                         the position ─ fold ─ one atomic write ─ answer
//!                         the queries that wait for this lc ─ Step again
//!                         while behind
//! ```
//!
//! Only commits of the view's own database nudge it, and not while a Step
//! is already queued: a view catching up gets one message, not one per
//! commit.
//!
//! A stored event whose bytes its database rewrote (a conflict's winner) is
//! refolded first, in the keys it touches (`Engine::refold_rewritten`);
//! queries wait for that as they wait for new events. A view whose
//! definition changed (its fingerprint), or that would refold more than
//! [`VIEW_REWRITES_REFOLD_MAX`] rewritten events with no index, starts over
//! from an empty store and refolds in the background; queries wait for it
//! up to [`VIEW_QUERY_WAIT_MS`](crate::limits::VIEW_QUERY_WAIT_MS) and then answer `unavailable`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::blocking::run_storage;
use super::database::DatabaseShared;
use super::view::{RowPages, ViewAnswer, ViewMsg, ViewProgress, ViewQuery, rows_of};
use crate::error::{Error, Result};
use crate::limits::{
    PAGE_BYTES_MAX, VIEW_FOLD_BYTES_MAX, VIEW_FOLD_EVENTS_MAX, VIEW_QUERIES_WAITING_MAX,
    VIEW_REWRITES_REFOLD_MAX,
};
use crate::storage::{Storage, ViewSnapshot, ViewStore};
use crate::views::fold::{self, Engine, Position};
use crate::views::{Registration, Row, ViewStatus};

/// The view actor's behaviour.
pub(crate) struct ViewActor;

/// What a view actor is started with.
pub(crate) struct ViewArgs {
    pub(crate) registration: Registration,
    pub(crate) shared: Arc<DatabaseShared>,
    pub(crate) storage: Arc<dyn Storage>,
}

pub(crate) struct ViewState {
    registration: Registration,
    engine: Arc<dyn Engine>,
    /// The view's rows and position.
    store: Arc<dyn ViewStore>,
    /// The database whose events it folds.
    shared: Arc<DatabaseShared>,
    /// How far it has folded; the same as stored.
    position: Position,
    /// Whether it is refolding from the start after a change.
    rebuilding: bool,
    /// Queries waiting for the view to reach their lc.
    waiting: Vec<(ViewQuery, u64, RpcReplyPort<Result<ViewAnswer>>)>,
    /// Whether a `Step` is in the mailbox, shared with the task that turns
    /// commits into steps, so that a view already catching up is not sent
    /// a message per commit.
    step_queued: Arc<AtomicBool>,
    /// Steps run, for what commits cost the view.
    steps: Arc<AtomicU64>,
    /// The task that turns commits into steps.
    nudges: tokio::task::JoinHandle<()>,
    /// The view's lease, shared with the fold in flight.
    lease: Arc<tokio::sync::OwnedMutexGuard<()>>,
    /// Where the view stands, published after each step for the
    /// subscriptions to its rows.
    progress: Arc<tokio::sync::watch::Sender<ViewProgress>>,
    /// A snapshot of the rows as they stand, taken for the first
    /// subscription that asked since the last step and shared by the
    /// others; let go before the next step writes.
    follow: Option<Arc<dyn ViewSnapshot>>,
}

impl Actor for ViewActor {
    type Msg = ViewMsg;
    type State = ViewState;
    type Arguments = ViewArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ViewMsg>,
        args: ViewArgs,
    ) -> Result<ViewState, ActorProcessingErr> {
        let ViewArgs {
            registration,
            shared,
            storage,
        } = args;
        let engine: Arc<dyn Engine> = Arc::from((registration.engine)());
        let (db, name) = (registration.db, registration.name);
        // A killed predecessor's fold finishes before this actor reads the
        // position it leaves.
        let lease = match shared.view_leases.get(name) {
            Some(lease) => Arc::new(lease.clone().lock_owned().await),
            None => return Err(format!("view {name} is not registered on database {db}").into()),
        };
        let progress = match shared.view_progress.get(name) {
            Some(progress) => progress.clone(),
            None => return Err(format!("view {name} is not registered on database {db}").into()),
        };
        let fingerprint = engine.fingerprint();
        let us = shared.durable.us();
        let (store, position, rebuilding) = run_storage(shared.may_block, move || {
            let store: Arc<dyn ViewStore> = Arc::from(storage.open_view(db, name)?);
            let (position, rebuilding) = match Position::load(store.as_ref())? {
                Some(position) if position.fingerprint == fingerprint => (position, false),
                Some(_) => {
                    tracing::warn!(
                        database = db,
                        view = name,
                        "the view's definition changed; rebuilding it from the events"
                    );
                    (Position::reset(store.as_ref(), us, fingerprint)?, true)
                }
                None => (Position::reset(store.as_ref(), us, fingerprint)?, false),
            };
            Ok((store, position, rebuilding))
        })
        .await?;
        tracing::info!(
            database = db,
            view = name,
            lc = position.lc,
            "view resumes from its stored position"
        );
        let steps = match shared.view_steps.get(name) {
            Some(steps) => steps.clone(),
            None => return Err(format!("view {name} is not registered on database {db}").into()),
        };
        if rebuilding {
            progress.send_modify(|progress| progress.rebuilds += 1);
        }
        let step_queued = Arc::new(AtomicBool::new(true));
        let nudges = tokio::spawn(nudge(
            shared.view_wakeups.subscribe(),
            step_queued.clone(),
            myself.clone(),
        ));
        myself.send_message(ViewMsg::Step)?;
        let state = ViewState {
            registration,
            engine,
            store,
            shared,
            position,
            rebuilding,
            waiting: Vec::new(),
            step_queued,
            steps,
            nudges,
            lease,
            progress,
            follow: None,
        };
        publish(&state);
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<ViewMsg>,
        message: ViewMsg,
        state: &mut ViewState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ViewMsg::Step => {
                // Cleared before the step reads the durable lc: a commit
                // after this point queues another step.
                state.step_queued.store(false, Ordering::Release);
                state.steps.fetch_add(1, Ordering::Relaxed);
                step(state).await?;
                if behind(state) {
                    queue_step(&state.step_queued, &myself)?;
                }
            }
            ViewMsg::Query { query, lc, reply } => {
                if matches!(query, ViewQuery::Status | ViewQuery::Follow) || ready(state, lc) {
                    let _ = reply.send(answer(state, query).await);
                } else if state.waiting.len() >= VIEW_QUERIES_WAITING_MAX {
                    let _ = reply.send(Err(Error::Unavailable(
                        "too many queries wait for this view; retry shortly",
                    )));
                } else {
                    state.waiting.push((query, lc, reply));
                    queue_step(&state.step_queued, &myself)?;
                }
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<ViewMsg>,
        state: &mut ViewState,
    ) -> Result<(), ActorProcessingErr> {
        state.nudges.abort();
        Ok(())
    }
}

/// Whether the view answers a query that began at `lc`: it has folded up
/// to it, is not rebuilding, and has refolded every durable rewrite.
fn ready(state: &ViewState, lc: u64) -> bool {
    state.position.lc >= lc && !state.rebuilding && !rewritten(state)
}

/// Where the view stands now.
fn progress(state: &ViewState) -> ViewProgress {
    ViewProgress {
        lc: state.position.lc,
        us: state.position.us,
        rebuilds: state.progress.borrow().rebuilds,
        rebuilding: state.rebuilding,
    }
}

/// Tells the subscriptions to the view's rows where it stands, if that
/// moved; never waits for them.
fn publish(state: &ViewState) {
    let now = progress(state);
    state.progress.send_if_modified(|published| {
        let moved = *published != now;
        *published = now;
        moved
    });
}

/// Whether a stored event was rewritten since the view last refolded.
fn rewritten(state: &ViewState) -> bool {
    state.shared.durable.us() > state.position.us
}

/// Whether durable events or rewrites wait for the view.
fn behind(state: &ViewState) -> bool {
    state.position.lc < state.shared.durable.lc() || rewritten(state)
}

/// Sends a step after commits of the view's database, until the actor is
/// gone. Coalesced twice: the watch keeps only the latest count, and no step
/// is sent while one is queued.
async fn nudge(
    mut commits: tokio::sync::watch::Receiver<u64>,
    queued: Arc<AtomicBool>,
    actor: ActorRef<ViewMsg>,
) {
    while commits.changed().await.is_ok() {
        if queue_step(&queued, &actor).is_err() {
            return;
        }
    }
}

/// Sends `actor` a step unless one is queued.
fn queue_step(
    queued: &AtomicBool,
    actor: &ActorRef<ViewMsg>,
) -> Result<(), ractor::MessagingErr<ViewMsg>> {
    if queued.swap(true, Ordering::AcqRel) {
        return Ok(());
    }
    actor.send_message(ViewMsg::Step)
}

/// Refolds what was rewritten and folds the next durable events, then
/// answers the queries they satisfy.
async fn step(state: &mut ViewState) -> Result<(), ActorProcessingErr> {
    // Rewrites first: a rewrite made durable after this read is refolded
    // by the next step, whichever form the fold below reads.
    let durable_us = state.shared.durable.us();
    let durable_lc = state.shared.durable.lc();
    let (db, name) = (state.registration.db, state.registration.name);
    if durable_us > state.position.us || state.position.lc < durable_lc {
        // No longer as the rows will stand; and a store that shares its
        // rows with a snapshot copies them on write.
        state.follow = None;
    }
    if durable_us > state.position.us {
        refold_rewritten(state, durable_us).await?;
    }
    if state.position.lc < durable_lc {
        let (store, engine, log) = (
            state.store.clone(),
            state.engine.clone(),
            state.shared.store()?,
        );
        let mut position = state.position;
        let before = position;
        let lease = state.lease.clone();
        position = run_storage(state.shared.may_block, move || {
            let _lease = lease;
            let events = read_events(log.as_ref(), position.lc, durable_lc)?;
            engine.fold(store.as_ref(), log.as_ref(), &events, &mut position)?;
            Ok(position)
        })
        .await?;
        state.position = position;
        metrics::counter!("laterbase_view_events_folded_total", "database" => db, "view" => name)
            .increment(position.folded.saturating_sub(before.folded));
        metrics::counter!("laterbase_view_events_skipped_total", "database" => db, "view" => name)
            .increment(position.skipped.saturating_sub(before.skipped));
        if position.skipped > before.skipped {
            tracing::debug!(
                database = db,
                view = name,
                skipped = position.skipped - before.skipped,
                "events that do not decode into the view's event type were skipped"
            );
        }
    }
    if state.rebuilding && state.position.lc >= durable_lc {
        state.rebuilding = false;
        tracing::info!(
            database = db,
            view = name,
            events = state.position.folded,
            "view rebuilt"
        );
    }
    publish(state);
    let ready = state.position.lc;
    let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut state.waiting)
        .into_iter()
        .partition(|(_, lc, _)| *lc <= ready && !state.rebuilding && !rewritten(state));
    state.waiting = later;
    for (query, _, reply) in now {
        let _ = reply.send(answer(state, query).await);
    }
    if state.rebuilding && state.position.lc < durable_lc {
        tracing::info!(
            database = db,
            view = name,
            lc = state.position.lc,
            of = durable_lc,
            "view rebuilding"
        );
    }
    Ok(())
}

/// Refolds the keys that events rewritten after the view's update number,
/// up to `durable_us`, touch; or, when that is not possible or would cost
/// more than a rebuild, starts the view over.
async fn refold_rewritten(
    state: &mut ViewState,
    durable_us: u64,
) -> Result<(), ActorProcessingErr> {
    let (db, name) = (state.registration.db, state.registration.name);
    let (store, engine, log) = (
        state.store.clone(),
        state.engine.clone(),
        state.shared.store()?,
    );
    let mut position = state.position;
    let lease = state.lease.clone();
    let refolded = run_storage(state.shared.may_block, move || {
        let _lease = lease;
        let updates = log.updates_after(position.us, durable_us, VIEW_REWRITES_REFOLD_MAX + 1)?;
        let (updates, up_to_us) = match updates.split_at_checked(VIEW_REWRITES_REFOLD_MAX) {
            // An order-insensitive view reads the log once per refold: past
            // this many, a rebuild reads it once for all of them.
            Some((_, [_, ..])) if !engine.indexed() => return Ok(None),
            Some((first, [_, ..])) => (first, first.last().map_or(position.us, |(us, _)| *us)),
            _ => (updates.as_slice(), durable_us),
        };
        let ids: Vec<_> = updates.iter().map(|(_, id)| *id).collect();
        let refolded =
            engine.refold_rewritten(store.as_ref(), log.as_ref(), &ids, up_to_us, &mut position)?;
        Ok(refolded.then_some(position))
    })
    .await?;
    match refolded {
        Some(position) => state.position = position,
        None => {
            tracing::warn!(
                database = db,
                view = name,
                "stored events were rewritten beyond what the view refolds by key; rebuilding the view from the events"
            );
            let store = state.store.clone();
            let fingerprint = state.engine.fingerprint();
            state.position = run_storage(state.shared.may_block, move || {
                Ok(Position::reset(store.as_ref(), durable_us, fingerprint)?)
            })
            .await?;
            state.rebuilding = true;
            state
                .progress
                .send_modify(|progress| progress.rebuilds += 1);
            metrics::counter!("laterbase_view_rebuilds_total", "database" => db, "view" => name)
                .increment(1);
        }
    }
    Ok(())
}

/// The durable events after `after_lc`, up to [`VIEW_FOLD_EVENTS_MAX`] of
/// them and [`VIEW_FOLD_BYTES_MAX`] of their bytes (at least one), in one
/// scan that stops there.
fn read_events(
    log: &dyn crate::storage::DatabaseStore,
    after_lc: u64,
    durable_lc: u64,
) -> Result<Vec<crate::event::Event>> {
    Ok(log.scan_log(
        after_lc,
        durable_lc,
        VIEW_FOLD_EVENTS_MAX,
        VIEW_FOLD_BYTES_MAX,
    )?)
}

/// Answers `query` from the store as it stands.
async fn answer(state: &mut ViewState, query: ViewQuery) -> Result<ViewAnswer> {
    let store = state.store.clone();
    let engine = state.engine.clone();
    match query {
        ViewQuery::Status => Ok(ViewAnswer::Status(ViewStatus {
            db: state.registration.db.to_owned(),
            view: state.registration.name.to_owned(),
            lc: state.position.lc,
            folded: state.position.folded,
            skipped: state.position.skipped,
            rebuilding: state.rebuilding,
        })),
        ViewQuery::Follow => {
            let progress = progress(state);
            if state.rebuilding {
                return Ok(ViewAnswer::Follow {
                    progress,
                    snapshot: None,
                });
            }
            let snapshot = match &state.follow {
                Some(snapshot) => snapshot.clone(),
                None => {
                    let snapshot: Arc<dyn ViewSnapshot> = Arc::from(
                        run_storage(state.shared.may_block, move || Ok(store.snapshot()?)).await?,
                    );
                    state.follow = Some(snapshot.clone());
                    snapshot
                }
            };
            Ok(ViewAnswer::Follow {
                progress,
                snapshot: Some(snapshot),
            })
        }
        ViewQuery::Snapshot { after } => {
            let may_block = state.shared.may_block;
            let snapshot = run_storage(may_block, move || Ok(store.snapshot()?)).await?;
            Ok(ViewAnswer::Snapshot(RowPages::new(
                Arc::from(snapshot),
                engine,
                may_block,
                after.as_ref(),
            )))
        }
        ViewQuery::Key(key) => {
            run_storage(state.shared.may_block, move || {
                let Some(stored) = store.get(&fold::row_key(&key.to_bytes()))? else {
                    return Ok(ViewAnswer::Row(None));
                };
                Ok(ViewAnswer::Row(engine.value(&stored)?.map(|value| Row {
                    key: key.to_json(),
                    value,
                })))
            })
            .await
        }
        ViewQuery::Rows { after, limit } => {
            run_storage(state.shared.may_block, move || {
                let (start, end) = fold::row_bounds();
                let start = match after {
                    // Just past the row `after`.
                    Some(after) => {
                        let mut key = fold::row_key(&after.to_bytes());
                        key.push(0);
                        key
                    }
                    None => start,
                };
                // Read from a snapshot, which stops at a page's bytes too.
                let snapshot = store.snapshot()?;
                let mut entries =
                    snapshot.range(&start, &end, limit.saturating_add(1), PAGE_BYTES_MAX)?;
                let mut more = entries.len() > limit;
                entries.truncate(limit);
                let bytes: usize = entries.iter().map(|(k, v)| k.len() + v.len()).sum();
                if let Some((last, _)) = entries.last()
                    && !more
                    && bytes >= PAGE_BYTES_MAX
                {
                    // Cut at its bytes: whether rows follow is one more read.
                    let mut next = last.to_vec();
                    next.push(0);
                    more = !snapshot.range(&next, &end, 1, usize::MAX)?.is_empty();
                }
                let rows = rows_of(engine.as_ref(), &entries)?;
                Ok(ViewAnswer::Rows { rows, more })
            })
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use crate::{Config, NewEvent, Node};

    #[derive(serde::Deserialize)]
    struct Tick {
        n: u64,
    }

    /// A view of one database, to count what commits of others cost it.
    #[crate::view(db = "wake-a", event = Tick)]
    struct Ticks {
        #[sum(n)]
        total: u64,
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn commits_wake_only_their_own_databases_views() {
        let node = Node::open(Config::memory(crate::MemoryStorage::new()))
            .await
            .expect("open");
        let watched = node.create_database("wake-a").await.expect("database");
        let other = node.create_database("wake-b").await.expect("database");
        watched
            .append(vec![NewEvent::new(br#"{"n": 1}"#.to_vec())])
            .await
            .expect("append");
        let row = watched.view_row("ticks", "null").await.expect("row");
        assert_eq!(row.map(|row| row.value["total"].clone()), Some(1.into()));
        let steps = watched.shared.view_steps["ticks"].clone();
        let before = steps.load(Ordering::Relaxed);
        for n in 0..50_u64 {
            let data = format!(r#"{{"n": {n}}}"#).into_bytes();
            other
                .append(vec![NewEvent::new(data)])
                .await
                .expect("append");
        }
        // Asked through the view's mailbox, after every nudge the commits
        // could have sent. The nudge of this database's own commit above
        // may still come after `before` was read: at most one step more.
        watched.view_statuses().await.expect("statuses");
        let after = steps.load(Ordering::Relaxed);
        assert!(
            after <= before + 1,
            "commits of another database run no step of this view: {before} then {after}"
        );
        node.shutdown().await.expect("shutdown");
    }
}
