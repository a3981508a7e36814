//! Group commit: the synchronous work of a database's writes.
//!
//! The database actor hands the [`Writer`] every append that queued up while
//! the previous commit ran; [`Writer::commit`] checks each one on its own
//! (future ids, duplicates, conflicts, also against earlier appends of the
//! same commit), assigns ids and logical clocks, writes them all in one
//! atomic batch, fsyncs once, moves the durable watermark and only then
//! answers every caller. One fsync thus serves every append of a commit.
//!
//! ```text
//! appends -> stage each (check, assign) -> one write -> one fsync -> durable_lc -> replies
//! ```
//!
//! Nothing here is async or touches the actor: the actor runs each commit
//! off the async runtime's hands (fjall) or inline (the in-memory engine).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use ractor::RpcReplyPort;

use super::database::DatabaseShared;
use crate::clock::Hlc;
use crate::error::{Error, Result, StorageError};
use crate::event::{EventId, NewEvent, Receipt, Timestamp};
use crate::limits::{BATCH_BYTES_MAX, Limits};
use crate::storage::{DatabaseStore, Storage, StoredEvent, WriteBatch};

/// An append waiting for its commit.
pub(crate) struct PendingAppend {
    pub(crate) events: Vec<NewEvent>,
    pub(crate) reply: RpcReplyPort<Result<Receipt>>,
    /// Its share of the bytes in flight, released once it is answered.
    pub(crate) _permit: tokio::sync::OwnedSemaphorePermit,
}

/// The only writer of one database, owned by its actor.
pub(crate) struct Writer {
    shared: Arc<DatabaseShared>,
    store: Arc<dyn DatabaseStore>,
    storage: Arc<dyn Storage>,
    hlc: Arc<Hlc>,
    /// The highest logical clock written; every commit ends durable, so it
    /// is also the durable one unless an fsync failed.
    written_lc: u64,
    /// The highest id stored: ids above it need no lookup to be known new.
    max_id: Option<EventId>,
    /// Why writes are refused, once a write or an fsync failed.
    poisoned: Option<Failure>,
    /// Held for the writer's life: no other writer of this database can
    /// open until this one is gone, even if its actor was killed while it
    /// committed.
    _lease: tokio::sync::OwnedMutexGuard<()>,
}

/// One commit's batch while its appends are staged.
struct Staged {
    batch: WriteBatch,
    /// The bytes of every id this commit stores, for later appends of it.
    ids: HashMap<EventId, Bytes>,
    max_id: Option<EventId>,
}

impl Staged {
    fn last_lc(&self) -> u64 {
        self.batch.first_lc + self.batch.events.len() as u64 - 1
    }
}

impl Writer {
    /// Opens the writer over what the store holds. After a crash
    /// (`restarted`), first makes durable whatever the crashed writer left
    /// written but not fsynced, so that nothing is shown before it is durable.
    pub(crate) fn open(
        shared: Arc<DatabaseShared>,
        storage: Arc<dyn Storage>,
        hlc: Arc<Hlc>,
        restarted: bool,
        lease: tokio::sync::OwnedMutexGuard<()>,
    ) -> Result<Writer> {
        let store = shared.store()?;
        if restarted {
            storage.persist()?;
        }
        let written_lc = store.last_lc()?;
        let max_id = store.last_id()?;
        shared.durable_lc.store(written_lc, Ordering::Release);
        let database = shared.record.name.clone();
        metrics::gauge!("laterbase_events_stored", "database" => database).set(written_lc as f64);
        Ok(Writer {
            shared,
            store,
            storage,
            hlc,
            written_lc,
            max_id,
            poisoned: None,
            _lease: lease,
        })
    }

    /// Commits `appends`: each succeeds or fails on its own, the successful
    /// ones are durable before any caller hears back.
    pub(crate) fn commit(&mut self, appends: Vec<PendingAppend>) {
        let mut staged = Staged {
            batch: WriteBatch {
                first_lc: self.written_lc + 1,
                events: Vec::new(),
                hlc_floor: EventId::from_u128(0),
            },
            ids: HashMap::new(),
            max_id: self.max_id,
        };
        let mut answers = Vec::with_capacity(appends.len());
        let count = appends.len();
        for (index, append) in appends.into_iter().enumerate() {
            // Only a later append of this commit needs to find these ids.
            let remember = index + 1 < count;
            let answer = self.stage(&mut staged, append.events, remember);
            answers.push((append.reply, append._permit, answer));
        }
        if let Err(failure) = self.write_and_persist(staged) {
            for (_, _, answer) in &mut answers {
                if answer.is_ok() {
                    *answer = Err(failure.again());
                }
            }
        }
        for (reply, _permit, answer) in answers {
            if answer.is_ok() {
                self.shared.appends.fetch_add(1, Ordering::Relaxed);
            }
            // A caller that gave up (timed out) no longer listens.
            let _ = reply.send(answer);
        }
    }

    /// Checks one append and adds its new events to the commit; with
    /// `remember`, records their ids for the later appends of the commit.
    /// An append that fails adds nothing.
    fn stage(&self, staged: &mut Staged, events: Vec<NewEvent>, remember: bool) -> Result<Receipt> {
        if let Some(failure) = &self.poisoned {
            return Err(failure.again());
        }
        check_batch_size(&events, &self.shared.limits)?;
        // One reading of the wall clock serves the whole append.
        let wall_ms = self.hlc.wall_ms();
        check_future_ids(&self.hlc, wall_ms, &events)?;
        let known = self.stored_data(staged, &events)?;
        let new = select_new(&events, &known)?;
        if let Some(max) = events.iter().filter_map(|event| event.id).max() {
            self.hlc.accept(max);
        }
        let ids = events
            .iter()
            .map(|event| match event.id {
                Some(id) => Ok(id),
                None => self.fresh_id(staged),
            })
            .collect::<Result<Vec<EventId>>>()?;
        let recorded_at = Timestamp(wall_ms);
        for ((event, is_new), id) in events.into_iter().zip(new).zip(&ids) {
            if is_new {
                if remember {
                    staged.ids.insert(*id, event.data.clone());
                }
                staged.max_id = staged.max_id.max(Some(*id));
                staged.batch.events.push(StoredEvent {
                    id: *id,
                    recorded_at,
                    data: event.data,
                });
            }
        }
        Ok(Receipt {
            ids,
            lc: staged.batch.first_lc + staged.batch.events.len() as u64 - 1,
        })
    }

    /// The stored bytes of every writer id in `events` that this commit or
    /// the store may hold already.
    fn stored_data(&self, staged: &Staged, events: &[NewEvent]) -> Result<HashMap<EventId, Bytes>> {
        let mut known = HashMap::new();
        let Some(max_id) = staged.max_id else {
            return Ok(known);
        };
        // Looked up in key order, neighbours share the engine's cached blocks.
        let mut candidates: Vec<EventId> = events
            .iter()
            .filter_map(|event| event.id)
            .filter(|id| *id <= max_id)
            .collect();
        candidates.sort_unstable();
        candidates.dedup();
        for id in candidates {
            if let Some(data) = staged.ids.get(&id) {
                known.insert(id, data.clone());
            } else if let Some(lc) = self.store.lc_of(id)? {
                // Every write since this writer opened was fsynced (or
                // poisoned it), so the index points at nothing unwritten.
                assert!(
                    lc <= self.written_lc,
                    "the id index points past the written log"
                );
                known.insert(id, event_at(self.store.as_ref(), lc)?.data);
            }
        }
        Ok(known)
    }

    /// An id from the node's clock that this database does not hold. Only an
    /// id at or below the largest stored one (which sync can bring from a
    /// node whose clock runs ahead) needs a lookup.
    fn fresh_id(&self, staged: &Staged) -> Result<EventId> {
        loop {
            let id = self.hlc.next_id();
            if staged.max_id.is_none_or(|max| id > max) {
                return Ok(id);
            }
            if !staged.ids.contains_key(&id) && self.store.lc_of(id)?.is_none() {
                return Ok(id);
            }
        }
    }

    /// Writes the commit's batch and fsyncs it; moves the watermark.
    fn write_and_persist(&mut self, mut staged: Staged) -> Result<(), Failure> {
        if staged.batch.events.is_empty() {
            // Every earlier commit ended durable: nothing waits for an fsync.
            return Ok(());
        }
        let last_lc = staged.last_lc();
        staged.batch.hlc_floor = self.hlc.floor();
        let written = self.store.write(&staged.batch);
        let persisted = written.and_then(|()| {
            let start = std::time::Instant::now();
            let persisted = self.storage.persist();
            metrics::histogram!("laterbase_fsync_seconds").record(start.elapsed().as_secs_f64());
            persisted
        });
        if let Err(error) = persisted {
            // What was written may sit in the engine's memory unfsynced: a
            // retry would find it and be acknowledged without an fsync. So
            // every later write is refused, until a restart makes the store
            // whole again.
            tracing::error!(database = %self.shared.record.name, %error, "write or fsync failed; the database refuses writes until the node restarts");
            let failure = Failure::of(&error);
            self.poisoned = Some(failure.clone());
            return Err(failure);
        }
        let count = staged.batch.events.len() as u64;
        self.written_lc = last_lc;
        self.max_id = self.max_id.max(staged.max_id);
        self.shared.events.fetch_add(count, Ordering::Relaxed);
        self.shared.persists.fetch_add(1, Ordering::Relaxed);
        self.shared.durable_lc.store(last_lc, Ordering::Release);
        let database = self.shared.record.name.clone();
        metrics::gauge!("laterbase_events_stored", "database" => database).set(last_lc as f64);
        Ok(())
    }
}

/// Why a commit's write failed, to be told to each of its appends and to
/// every later one.
#[derive(Clone)]
enum Failure {
    /// The disk is full.
    StorageFull(String),
    /// The write or the fsync failed otherwise.
    Poisoned(String),
}

impl Failure {
    fn of(error: &StorageError) -> Failure {
        if error.is_storage_full() {
            Failure::StorageFull(error.to_string())
        } else {
            Failure::Poisoned(error.to_string())
        }
    }

    fn again(&self) -> Error {
        match self {
            Failure::StorageFull(reason) => Error::StorageFull(reason.clone()),
            Failure::Poisoned(reason) => Error::Poisoned(reason.clone()),
        }
    }
}

/// Refuses a batch over the limits of events or bytes.
pub(crate) fn check_batch_size(events: &[NewEvent], limits: &Limits) -> Result<()> {
    if events.len() > limits.batch_events_max {
        return Err(Error::BatchTooLarge {
            what: "events",
            actual: events.len(),
            limit: limits.batch_events_max,
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

fn check_future_ids(hlc: &Hlc, wall_ms: u64, events: &[NewEvent]) -> Result<()> {
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

/// An event the log must hold: its absence below the watermark is corruption.
pub(crate) fn event_at(store: &dyn DatabaseStore, lc: u64) -> Result<crate::event::Event> {
    store.event_at(lc)?.ok_or_else(|| {
        Error::Storage(StorageError::Corrupt {
            what: "log",
            detail: format!("the id index points at lc {lc}, which the log lacks"),
        })
    })
}
