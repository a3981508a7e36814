//! The database actor, the only writer of one database, and its handle.
//!
//! An append flows through the actor in one pass: check the batch (future
//! ids, duplicates, conflicts), assign ids and logical clocks, write it, and
//! park the reply until an fsync covers it. One fsync runs at a time, on the
//! blocking pool, while the actor goes on writing the next batches; when it
//! completes, every batch it covered is answered at once (group commit), and
//! the next fsync starts if more wait.
//!
//! ```text
//! append -> check -> write -> wait ... fsync done -> durable_lc -> reply
//! ```
//!
//! The durable watermark (`durable_lc`) moves only after an fsync: reads
//! stop at it, so nothing is shown that a power loss could take back.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::Semaphore;

use super::run_storage;
use crate::clock::Hlc;
use crate::error::{Error, Result};
use crate::event::{
    ChangesPage, Event, EventId, KeysPage, NewEvent, RangePage, Receipt, Timestamp,
};
use crate::limits::{
    APPEND_KIB_IN_FLIGHT_MAX, BATCH_BYTES_MAX, BATCH_EVENTS_MAX, GET_IDS_MAX, PAGE_EVENTS_MAX,
};
use crate::storage::{DatabaseRecord, DatabaseStore, Storage, StoredEvent, WriteBatch};

/// A handle to one database: append and read its events.
///
/// Cheap to clone. Every call times out after the node's call timeout.
#[derive(Clone)]
pub struct Database {
    pub(crate) shared: Arc<DatabaseShared>,
}

/// What a database is and holds, as `GET /db/{db}` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseInfo {
    /// Its name.
    pub name: String,
    /// How many events it holds.
    pub events: u64,
    /// Its logical clock (durable).
    pub lc: u64,
    /// The id of the node answering.
    pub node: EventId,
    /// Made at creation, never reused.
    pub incarnation: u128,
}

/// Counters of a database's work since the node started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DatabaseStats {
    /// Appends acknowledged.
    pub appends: u64,
    /// fsyncs that covered at least one append.
    pub persists: u64,
    /// Events stored by this node for the first time.
    pub events: u64,
}

/// Where a database's actor stands.
#[derive(Clone)]
pub(crate) enum ActorSlot {
    /// Not started yet, or crashed and being restarted: calls wait.
    Restarting,
    /// Serving.
    Running(ActorRef<DatabaseMsg>),
    /// Stopped for good (shutdown, or restarts exhausted): calls fail.
    Stopped,
}

/// State shared by a database's actor, its handles and its supervisor.
pub(crate) struct DatabaseShared {
    pub(crate) record: DatabaseRecord,
    pub(crate) node_id: EventId,
    pub(crate) may_block: bool,
    pub(crate) call_timeout_ms: u64,
    /// The engine's handle; `None` once the node has shut down.
    pub(crate) store: RwLock<Option<Arc<dyn DatabaseStore>>>,
    /// The running actor; replaced when the supervisor restarts it.
    actor: tokio::sync::watch::Sender<ActorSlot>,
    /// The highest logical clock that an fsync has covered.
    pub(crate) durable_lc: AtomicU64,
    /// Bounds the bytes of appends in flight, in KiB.
    in_flight_kib: Semaphore,
    appends: AtomicU64,
    persists: AtomicU64,
    events: AtomicU64,
}

impl DatabaseShared {
    pub(crate) fn new(
        record: DatabaseRecord,
        store: Arc<dyn DatabaseStore>,
        node_id: EventId,
        may_block: bool,
        call_timeout_ms: u64,
    ) -> DatabaseShared {
        DatabaseShared {
            record,
            node_id,
            may_block,
            call_timeout_ms,
            store: RwLock::new(Some(store)),
            actor: tokio::sync::watch::Sender::new(ActorSlot::Restarting),
            durable_lc: AtomicU64::new(0),
            in_flight_kib: Semaphore::new(APPEND_KIB_IN_FLIGHT_MAX as usize),
            appends: AtomicU64::new(0),
            persists: AtomicU64::new(0),
            events: AtomicU64::new(0),
        }
    }

    fn store(&self) -> Result<Arc<dyn DatabaseStore>> {
        let store = self.store.read().unwrap_or_else(PoisonError::into_inner);
        store
            .clone()
            .ok_or(Error::Unavailable("the node has shut down"))
    }

    pub(crate) fn set_actor(&self, slot: ActorSlot) {
        self.actor.send_replace(slot);
    }

    /// The running actor; while the supervisor restarts it, waits for the
    /// new one, up to the call timeout.
    async fn actor(&self) -> Result<ActorRef<DatabaseMsg>> {
        let mut slot = self.actor.subscribe();
        let timeout = Duration::from_millis(self.call_timeout_ms);
        let ready = slot.wait_for(|slot| !matches!(slot, ActorSlot::Restarting));
        match tokio::time::timeout(timeout, ready).await {
            Ok(Ok(slot)) => match &*slot {
                ActorSlot::Running(actor) => Ok(actor.clone()),
                _ => Err(Error::Unavailable("the database is stopped")),
            },
            Ok(Err(_)) => Err(Error::Unavailable("the database is stopped")),
            Err(_) => Err(Error::Timeout {
                operation: "append",
                timeout_ms: self.call_timeout_ms,
            }),
        }
    }
}

impl Database {
    /// The database's name.
    pub fn name(&self) -> &str {
        &self.shared.record.name
    }

    /// The random id made when the database was created.
    pub fn incarnation(&self) -> u128 {
        self.shared.record.incarnation
    }

    /// The logical clock of the last durable event.
    pub fn lc(&self) -> u64 {
        self.shared.durable_lc.load(Ordering::Acquire)
    }

    /// Name, event count, clock and node, as `GET /db/{db}` shows them.
    pub fn info(&self) -> DatabaseInfo {
        let lc = self.lc();
        DatabaseInfo {
            name: self.name().to_owned(),
            events: lc,
            lc,
            node: self.shared.node_id,
            incarnation: self.incarnation(),
        }
    }

    /// Counters since the node started.
    pub fn stats(&self) -> DatabaseStats {
        DatabaseStats {
            appends: self.shared.appends.load(Ordering::Relaxed),
            persists: self.shared.persists.load(Ordering::Relaxed),
            events: self.shared.events.load(Ordering::Relaxed),
        }
    }

    /// Appends a batch atomically and returns once it is durable.
    ///
    /// Events without an id get one from the node's clock. An id already
    /// stored with the same bytes stores nothing new; with other bytes the
    /// whole batch fails with [`Error::Conflict`]. An id more than the allowed
    /// skew ahead of the clock fails with [`Error::FutureEvent`].
    pub async fn append(&self, events: Vec<NewEvent>) -> Result<Receipt> {
        check_batch_size(&events)?;
        let bytes: usize = events.iter().map(|event| event.data.len()).sum();
        let kib = u32::try_from(bytes / 1024 + 1).unwrap_or(APPEND_KIB_IN_FLIGHT_MAX);
        let _permit = self
            .shared
            .in_flight_kib
            .acquire_many(kib.min(APPEND_KIB_IN_FLIGHT_MAX))
            .await
            .map_err(|_| Error::Unavailable("the database is closed"))?;
        let actor = self.shared.actor().await?;
        let timeout = Duration::from_millis(self.shared.call_timeout_ms);
        let answer = actor
            .call(|reply| DatabaseMsg::Append { events, reply }, Some(timeout))
            .await;
        match answer {
            Ok(ractor::rpc::CallResult::Success(result)) => result,
            Ok(ractor::rpc::CallResult::Timeout) => Err(Error::Timeout {
                operation: "append",
                timeout_ms: self.shared.call_timeout_ms,
            }),
            Ok(ractor::rpc::CallResult::SenderError) | Err(_) => Err(Error::Unavailable(
                "the database actor stopped before answering",
            )),
        }
    }

    /// The changes feed: durable events with a logical clock above `after_lc`,
    /// in clock order, at most `limit` (clamped to the page maximum).
    pub async fn changes(&self, after_lc: u64, limit: usize) -> Result<ChangesPage> {
        let limit = limit.min(PAGE_EVENTS_MAX);
        let up_to_lc = self.lc();
        let store = self.shared.store()?;
        let events = self
            .read(move || Ok(store.scan_log(after_lc, up_to_lc, limit)?))
            .await?;
        let lc = events.last().map_or(after_lc, |event| event.lc);
        Ok(ChangesPage {
            more: lc < up_to_lc,
            lc,
            events,
        })
    }

    /// The durable events with these ids, in the order asked, and the ids not stored.
    pub async fn get(&self, ids: &[EventId]) -> Result<KeysPage> {
        if ids.len() > GET_IDS_MAX {
            return Err(Error::BatchTooLarge {
                what: "ids",
                actual: ids.len(),
                limit: GET_IDS_MAX,
            });
        }
        let up_to_lc = self.lc();
        let store = self.shared.store()?;
        let ids = ids.to_vec();
        self.read(move || {
            let mut page = KeysPage {
                events: Vec::with_capacity(ids.len()),
                missing: Vec::new(),
            };
            for id in ids {
                match store.lc_of(id)?.filter(|lc| *lc <= up_to_lc) {
                    Some(lc) => page.events.push(event_at(store.as_ref(), lc)?),
                    None => page.missing.push(id),
                }
            }
            Ok(page)
        })
        .await
    }

    /// Durable events with ids strictly between `after` and `before` (each
    /// bound optional), in id order, at most `limit` (clamped to the page maximum).
    pub async fn range(
        &self,
        after: Option<EventId>,
        before: Option<EventId>,
        limit: usize,
    ) -> Result<RangePage> {
        let limit = limit.min(PAGE_EVENTS_MAX);
        let up_to_lc = self.lc();
        let store = self.shared.store()?;
        self.read(move || {
            let mut lcs = store.scan_ids(after, before, up_to_lc, limit.saturating_add(1))?;
            let more = lcs.len() > limit;
            lcs.truncate(limit);
            let events = lcs
                .into_iter()
                .map(|lc| event_at(store.as_ref(), lc))
                .collect::<Result<_>>()?;
            Ok(RangePage { events, more })
        })
        .await
    }

    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let timeout = Duration::from_millis(self.shared.call_timeout_ms);
        tokio::time::timeout(timeout, run_storage(self.shared.may_block, work))
            .await
            .map_err(|_| Error::Timeout {
                operation: "read",
                timeout_ms: self.shared.call_timeout_ms,
            })?
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("name", &self.name())
            .field("lc", &self.lc())
            .finish_non_exhaustive()
    }
}

fn check_batch_size(events: &[NewEvent]) -> Result<()> {
    if events.len() > BATCH_EVENTS_MAX {
        return Err(Error::BatchTooLarge {
            what: "events",
            actual: events.len(),
            limit: BATCH_EVENTS_MAX,
        });
    }
    let bytes: usize = events.iter().map(|event| event.data.len()).sum();
    if bytes > BATCH_BYTES_MAX {
        return Err(Error::BatchTooLarge {
            what: "bytes",
            actual: bytes,
            limit: BATCH_BYTES_MAX,
        });
    }
    Ok(())
}

/// An event the log must hold: its absence below the watermark is corruption.
fn event_at(store: &dyn DatabaseStore, lc: u64) -> Result<Event> {
    store.event_at(lc)?.ok_or_else(|| {
        Error::Storage(crate::error::StorageError::Corrupt {
            what: "log",
            detail: format!("the id index points at lc {lc}, which the log lacks"),
        })
    })
}

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
}

/// Messages a database actor takes.
pub(crate) enum DatabaseMsg {
    /// Append a batch; the reply comes once it is durable.
    Append {
        events: Vec<NewEvent>,
        reply: RpcReplyPort<Result<Receipt>>,
    },
    /// An fsync that covered everything up to `lc` has finished.
    Persisted { lc: u64, result: Result<()> },
}

pub(crate) struct DatabaseState {
    shared: Arc<DatabaseShared>,
    store: Arc<dyn DatabaseStore>,
    storage: Arc<dyn Storage>,
    hlc: Arc<Hlc>,
    /// The highest logical clock written, durable or not.
    written_lc: u64,
    /// The highest id stored: ids above it need no lookup to be known new.
    max_id: Option<EventId>,
    /// Appends written and waiting for an fsync, in logical-clock order.
    waiters: VecDeque<Waiter>,
    /// Whether an fsync is running.
    persisting: bool,
    /// Why writes are refused, once a write or an fsync failed.
    poisoned: Option<String>,
}

struct Waiter {
    receipt: Receipt,
    reply: RpcReplyPort<Result<Receipt>>,
}

impl Actor for DatabaseActor {
    type Msg = DatabaseMsg;
    type State = DatabaseState;
    type Arguments = DatabaseArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<DatabaseMsg>,
        args: DatabaseArgs,
    ) -> Result<DatabaseState, ActorProcessingErr> {
        let store = args.shared.store()?;
        let storage = args.storage.clone();
        let restarted = args.restarted;
        let reader = store.clone();
        let (written_lc, max_id) = run_storage(args.shared.may_block, move || {
            if restarted {
                storage.persist()?;
            }
            Ok((reader.last_lc()?, reader.last_id()?))
        })
        .await?;
        args.shared.durable_lc.store(written_lc, Ordering::Release);
        Ok(DatabaseState {
            shared: args.shared,
            store,
            storage: args.storage,
            hlc: args.hlc,
            written_lc,
            max_id,
            waiters: VecDeque::new(),
            persisting: false,
            poisoned: None,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<DatabaseMsg>,
        message: DatabaseMsg,
        state: &mut DatabaseState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            DatabaseMsg::Append { events, reply } => {
                match append(&myself, state, events).await {
                    Ok(receipt) => state.waiters.push_back(Waiter { receipt, reply }),
                    Err(error) => ignore_closed(reply.send(Err(error))),
                }
                start_persist(&myself, state);
            }
            DatabaseMsg::Persisted { lc, result } => {
                state.persisting = false;
                match result {
                    Ok(()) => acknowledge(state, lc),
                    Err(error) => poison(state, &error),
                }
                start_persist(&myself, state);
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<DatabaseMsg>,
        state: &mut DatabaseState,
    ) -> Result<(), ActorProcessingErr> {
        if state.waiters.is_empty() {
            return Ok(());
        }
        let storage = state.storage.clone();
        let lc = state.written_lc;
        match run_storage(state.shared.may_block, move || Ok(storage.persist()?)).await {
            Ok(()) => acknowledge(state, lc),
            Err(error) => poison(state, &error),
        }
        Ok(())
    }
}

/// Checks, assigns and writes one batch; returns its receipt, to be sent
/// once an fsync covers `receipt.lc`.
async fn append(
    myself: &ActorRef<DatabaseMsg>,
    state: &mut DatabaseState,
    events: Vec<NewEvent>,
) -> Result<Receipt> {
    if let Some(reason) = &state.poisoned {
        return Err(Error::Poisoned(reason.clone()));
    }
    check_batch_size(&events)?;
    check_future_ids(&state.hlc, &events)?;
    let known = stored_data(state, &events).await?;
    let new = select_new(&events, &known)?;
    if let Some(max) = events.iter().filter_map(|event| event.id).max() {
        state.hlc.observe(max);
    }
    let recorded_at = Timestamp(state.hlc.wall_ms());
    let mut ids = Vec::with_capacity(events.len());
    let mut batch = WriteBatch {
        first_lc: state.written_lc + 1,
        events: Vec::with_capacity(new.len()),
        hlc_floor: EventId::from_u128(0),
    };
    for (index, event) in events.into_iter().enumerate() {
        let id = match event.id {
            Some(id) => id,
            None => fresh_id(state).await?,
        };
        ids.push(id);
        if new.get(index).copied().unwrap_or(false) {
            batch.events.push(StoredEvent {
                id,
                recorded_at,
                data: event.data,
            });
        }
    }
    batch.hlc_floor = state.hlc.floor();
    write(myself, state, batch).await?;
    Ok(Receipt {
        ids,
        lc: state.written_lc,
    })
}

fn check_future_ids(hlc: &Hlc, events: &[NewEvent]) -> Result<()> {
    // One reading of the clock serves the whole batch.
    let wall_ms = hlc.wall_ms();
    let limit_ms = wall_ms.saturating_add(hlc.skew_ms());
    for (index, event) in events.iter().enumerate() {
        let Some(id) = event.id else { continue };
        if id.time_ms() > limit_ms {
            return Err(Error::FutureEvent {
                index,
                id,
                ahead_ms: id.time_ms() - wall_ms,
                skew_ms: hlc.skew_ms(),
            });
        }
    }
    Ok(())
}

/// The stored bytes of every id in the batch that may be stored already.
async fn stored_data(
    state: &DatabaseState,
    events: &[NewEvent],
) -> Result<HashMap<EventId, Bytes>> {
    let Some(max_id) = state.max_id else {
        return Ok(HashMap::new());
    };
    let candidates: Vec<EventId> = events
        .iter()
        .filter_map(|event| event.id)
        .filter(|id| *id <= max_id)
        .collect();
    if candidates.is_empty() {
        return Ok(HashMap::new());
    }
    let store = state.store.clone();
    run_storage(state.shared.may_block, move || {
        let mut known = HashMap::new();
        for id in candidates {
            if let Some(lc) = store.lc_of(id)? {
                known.insert(id, event_at(store.as_ref(), lc)?.data);
            }
        }
        Ok(known)
    })
    .await
}

/// Which events of the batch are new; an error at the first conflict.
fn select_new(events: &[NewEvent], known: &HashMap<EventId, Bytes>) -> Result<Vec<bool>> {
    // Writer ids in increasing order (the common case) cannot repeat within
    // the batch, so only a batch out of order needs to remember earlier ids.
    let mut previous = None;
    let ordered = events.iter().filter_map(|event| event.id).all(|id| {
        let increasing = previous.is_none_or(|previous| id > previous);
        previous = Some(id);
        increasing
    });
    let mut earlier: HashMap<EventId, &Bytes> = HashMap::new();
    let mut new = Vec::with_capacity(events.len());
    for (index, event) in events.iter().enumerate() {
        let Some(id) = event.id else {
            new.push(true);
            continue;
        };
        let stored = known.get(&id).or_else(|| earlier.get(&id).copied());
        match stored {
            Some(data) if *data == event.data => new.push(false),
            Some(_) => return Err(Error::Conflict { index, id }),
            None => {
                if !ordered {
                    earlier.insert(id, &event.data);
                }
                new.push(true);
            }
        }
    }
    Ok(new)
}

/// An id from the node's clock that this database does not hold. Only an id
/// at or below the largest stored one (which sync can bring from a node whose
/// clock runs ahead) needs a lookup.
async fn fresh_id(state: &DatabaseState) -> Result<EventId> {
    loop {
        let id = state.hlc.next_id();
        if state.max_id.is_none_or(|max| id > max) {
            return Ok(id);
        }
        let store = state.store.clone();
        let stored = run_storage(state.shared.may_block, move || Ok(store.lc_of(id)?)).await?;
        if stored.is_none() {
            return Ok(id);
        }
    }
}

/// Writes a batch. When no fsync is running, the same blocking job goes on
/// to persist it, which saves a round through the runtime on the common path
/// of one writer; the fsync's end arrives as [`DatabaseMsg::Persisted`].
async fn write(
    myself: &ActorRef<DatabaseMsg>,
    state: &mut DatabaseState,
    batch: WriteBatch,
) -> Result<()> {
    if batch.events.is_empty() {
        return Ok(());
    }
    assert_eq!(
        batch.first_lc,
        state.written_lc + 1,
        "logical clocks are contiguous"
    );
    let count = batch.events.len() as u64;
    let max_id = batch.events.iter().map(|event| event.id).max();
    let result = if state.shared.may_block {
        let persist = !state.persisting;
        let result = write_and_persist(myself, state, batch, persist).await;
        state.persisting |= persist && result.is_ok();
        result
    } else {
        state.store.write(&batch).map_err(Error::from)
    };
    if let Err(error) = result {
        if !matches!(&error, Error::Storage(inner) if inner.is_storage_full()) {
            state.poisoned = Some(error.to_string());
        }
        return Err(storage_error(error));
    }
    state.written_lc += count;
    state.max_id = state.max_id.max(max_id);
    state.shared.events.fetch_add(count, Ordering::Relaxed);
    Ok(())
}

/// Writes on the blocking pool and answers once written; then, if `persist`,
/// fsyncs and reports to the actor.
async fn write_and_persist(
    myself: &ActorRef<DatabaseMsg>,
    state: &DatabaseState,
    batch: WriteBatch,
    persist: bool,
) -> Result<()> {
    let (written_tx, written_rx) = tokio::sync::oneshot::channel();
    let store = state.store.clone();
    let storage = state.storage.clone();
    let myself = myself.clone();
    let lc = batch.first_lc + batch.events.len() as u64 - 1;
    tokio::task::spawn_blocking(move || {
        let written = store.write(&batch).map_err(Error::from);
        let ok = written.is_ok();
        let _ = written_tx.send(written);
        if ok && persist {
            let result = storage
                .persist()
                .map_err(|error| storage_error(error.into()));
            let _ = myself.send_message(DatabaseMsg::Persisted { lc, result });
        }
    });
    // A dropped sender means the engine panicked while writing: crash the
    // actor, as an inline engine's panic would, and let the supervisor act.
    written_rx
        .await
        .expect("the storage engine panicked while writing")
}

fn storage_error(error: Error) -> Error {
    match error {
        Error::Storage(inner) if inner.is_storage_full() => Error::StorageFull(inner.to_string()),
        Error::Storage(inner) if inner.is_poisoned() => Error::Poisoned(inner.to_string()),
        other => other,
    }
}

/// Starts an fsync for everything written, unless one runs or none is needed.
fn start_persist(myself: &ActorRef<DatabaseMsg>, state: &mut DatabaseState) {
    if state.persisting || state.waiters.is_empty() {
        return;
    }
    let lc = state.written_lc;
    if lc <= state.shared.durable_lc.load(Ordering::Acquire) {
        acknowledge(state, lc);
        return;
    }
    state.persisting = true;
    let storage = state.storage.clone();
    let may_block = state.shared.may_block;
    if may_block {
        let myself = myself.clone();
        tokio::spawn(async move {
            let result = run_storage(true, move || Ok(storage.persist()?))
                .await
                .map_err(storage_error);
            // The actor may have stopped; its post_stop persists on its own.
            let _ = myself.send_message(DatabaseMsg::Persisted { lc, result });
        });
    } else {
        // The in-memory engine never blocks: persisting inline keeps a
        // simulation deterministic, and the message still lets appends that
        // are already queued share the next fsync.
        let result = storage
            .persist()
            .map_err(|error| storage_error(error.into()));
        let _ = myself.send_message(DatabaseMsg::Persisted { lc, result });
    }
}

/// Moves the durable watermark to `lc` and answers every append it covers.
fn acknowledge(state: &mut DatabaseState, lc: u64) {
    let previous = state.shared.durable_lc.fetch_max(lc, Ordering::AcqRel);
    if lc > previous {
        state.shared.persists.fetch_add(1, Ordering::Relaxed);
    }
    while state
        .waiters
        .front()
        .is_some_and(|waiter| waiter.receipt.lc <= lc)
    {
        if let Some(waiter) = state.waiters.pop_front() {
            state.shared.appends.fetch_add(1, Ordering::Relaxed);
            ignore_closed(waiter.reply.send(Ok(waiter.receipt)));
        }
    }
}

/// Refuses every later write and fails every append waiting for an fsync.
fn poison(state: &mut DatabaseState, error: &Error) {
    tracing::error!(database = %state.shared.record.name, %error, "fsync failed; the database refuses writes from now on");
    let reason = error.to_string();
    state.poisoned = Some(reason.clone());
    for waiter in state.waiters.drain(..) {
        ignore_closed(waiter.reply.send(Err(Error::Poisoned(reason.clone()))));
    }
}

/// A caller that gave up (timed out) no longer listens; that is its choice.
fn ignore_closed<E>(_sent: std::result::Result<(), E>) {}
