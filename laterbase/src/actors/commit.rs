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

use super::batch::{MergeReceipt, check_batch_size, check_future_ids, select_new};
use super::database::DatabaseShared;
use super::watermarks::Marks;
use crate::clock::Hlc;
use crate::error::{Error, Result, StorageError};
use crate::event::{Event, EventId, NewEvent, Receipt, Timestamp};
use crate::limits::{LOSER_BYTES_PER_ID_MAX, LOSERS_PER_ID_MAX, MERGE_ITEMS_MAX};
use crate::storage::{DatabaseStore, Storage, StoredEvent, WriteBatch, held_event_at};
use crate::sync::merge::settle;
use crate::sync::protocol::Loser;

/// A write waiting for its commit.
pub(crate) struct PendingWrite {
    pub(crate) write: Write,
    /// Its share of the bytes in flight, released once it is answered.
    pub(crate) _permit: tokio::sync::OwnedSemaphorePermit,
}

/// What a write asks for, and where its answer goes.
pub(crate) enum Write {
    /// New events from a writer: refused whole on a conflict.
    Append {
        events: Vec<NewEvent>,
        reply: RpcReplyPort<Result<Receipt>>,
    },
    /// Events another node stored: conflicts are settled, not refused.
    /// `meta` (sync cursors) is stored in the same atomic batch, so that a
    /// cursor never runs ahead of the events it covers.
    Merge {
        events: Vec<Event>,
        losers: Vec<Loser>,
        meta: Vec<(Vec<u8>, Bytes)>,
        reply: RpcReplyPort<Result<MergeReceipt>>,
    },
}

impl Write {
    /// How many events the write carries.
    pub(crate) fn len(&self) -> usize {
        match self {
            Write::Append { events, .. } => events.len(),
            Write::Merge { events, .. } => events.len(),
        }
    }
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
    /// The highest update number written.
    written_us: u64,
    /// How many distinct losing values are listed: peers that see it move
    /// fetch the list.
    losers_listed: u64,
    /// The highest id stored: ids above it need no lookup to be known new.
    max_id: Option<EventId>,
    /// Why writes are refused, once a write or an fsync failed.
    poisoned: Option<Failure>,
    /// Held for the writer's life: no other writer of this database can
    /// open until this one is gone, even if its actor was killed while it
    /// committed.
    _lease: tokio::sync::OwnedMutexGuard<()>,
}

/// The stored form of ids a merge names, with their lc.
type StoredForms = HashMap<EventId, (u64, StoredEvent)>;

/// The losers listed for ids a merge names.
type ListedLosers = HashMap<EventId, Vec<Bytes>>;

/// One commit's batch while its writes are staged.
struct Staged {
    batch: WriteBatch,
    /// Where each id this commit stores anew sits in `batch.events`.
    new_ids: HashMap<EventId, usize>,
    /// Stored events this commit rewrites, by id: their lc and new form.
    replaced: HashMap<EventId, (u64, StoredEvent)>,
    /// Losing values this commit lists for the first time.
    new_losers: u64,
    /// Indexes in `batch.events` of new events that a later write of the
    /// commit changed.
    changed_new: Vec<usize>,
    max_id: Option<EventId>,
    /// New events staged by appends, for the database's rates.
    written: u64,
    /// New events staged by merges, for the database's rates.
    synced: u64,
}

impl Staged {
    /// The logical clock after everything staged so far.
    fn lc(&self) -> u64 {
        self.batch.first_lc + self.batch.events.len() as u64 - 1
    }

    fn push_new(&mut self, event: StoredEvent, remember: bool) {
        if remember {
            self.new_ids.insert(event.id, self.batch.events.len());
        }
        self.max_id = self.max_id.max(Some(event.id));
        self.batch.events.push(event);
    }
}

/// The form `id` has now: new in this commit, rewritten by it, or stored
/// (as read before the merge began).
fn current(
    staged: &Staged,
    stored: &HashMap<EventId, (u64, StoredEvent)>,
    id: EventId,
) -> Option<Current> {
    if let Some(&index) = staged.new_ids.get(&id)
        && let Some(event) = staged.batch.events.get(index)
    {
        return Some(Current::New(index, event.clone()));
    }
    if let Some((lc, event)) = staged.replaced.get(&id) {
        return Some(Current::Stored(*lc, event.clone()));
    }
    stored
        .get(&id)
        .map(|(lc, event)| Current::Stored(*lc, event.clone()))
}

/// An id's current form: stored before this commit (with its lc) or new in it.
enum Current {
    Stored(u64, StoredEvent),
    New(usize, StoredEvent),
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
        let written_us = store.last_us()?;
        let max_id = store.last_id()?;
        let losers_listed = store.losers_count()?;
        shared.durable.publish(Marks {
            lc: written_lc,
            us: written_us,
            losers_listed,
        });
        let database = shared.record.name.clone();
        metrics::gauge!("laterbase_events_stored", "database" => database).set(written_lc as f64);
        Ok(Writer {
            shared,
            store,
            storage,
            hlc,
            written_lc,
            written_us,
            losers_listed,
            max_id,
            poisoned: None,
            _lease: lease,
        })
    }

    /// Commits `writes`: each succeeds or fails on its own, the successful
    /// ones are durable before any caller hears back.
    pub(crate) fn commit(&mut self, writes: Vec<PendingWrite>) {
        let mut staged = Staged {
            batch: WriteBatch {
                first_lc: self.written_lc + 1,
                first_us: self.written_us + 1,
                ..WriteBatch::default()
            },
            new_ids: HashMap::new(),
            replaced: HashMap::new(),
            new_losers: 0,
            changed_new: Vec::new(),
            max_id: self.max_id,
            written: 0,
            synced: 0,
        };
        let count = writes.len();
        let mut answers = Vec::with_capacity(count);
        for (index, pending) in writes.into_iter().enumerate() {
            // Only a later write of this commit needs to find these ids.
            let remember = index + 1 < count;
            let before = staged.batch.events.len() as u64;
            let answer = match pending.write {
                Write::Append { events, reply } => {
                    let answer = self.stage_append(&mut staged, events, remember);
                    staged.written += staged.batch.events.len() as u64 - before;
                    Answer::Append(reply, answer)
                }
                Write::Merge {
                    events,
                    losers,
                    meta,
                    reply,
                } => {
                    let answer = self.stage_merge(&mut staged, events, losers);
                    if answer.is_ok() {
                        staged.batch.meta.extend(meta);
                    }
                    staged.synced += staged.batch.events.len() as u64 - before;
                    Answer::Merge(reply, answer)
                }
            };
            answers.push((answer, pending._permit));
        }
        // A run changed by a later write is no longer what its peer holds.
        for (answer, _) in &mut answers {
            if let Answer::Merge(_, Ok(receipt)) = answer
                && let Some((after, to)) = receipt.held
            {
                let first = staged.batch.first_lc;
                let changed = staged.changed_new.iter().any(|index| {
                    let lc = first + *index as u64;
                    after < lc && lc <= to
                });
                if changed {
                    receipt.held = None;
                }
            }
        }
        let failure = self.write_and_persist(staged).err();
        for (answer, _permit) in answers {
            answer.send(failure.as_ref(), &self.shared);
        }
    }

    /// Checks one append and adds its new events to the commit; with
    /// `remember`, records their ids for the later writes of the commit.
    /// An append that fails adds nothing.
    fn stage_append(
        &self,
        staged: &mut Staged,
        events: Vec<NewEvent>,
        remember: bool,
    ) -> Result<Receipt> {
        if let Some(failure) = &self.poisoned {
            return Err(failure.again());
        }
        check_batch_size(&events, &self.shared.limits)?;
        // One reading of the wall clock serves the whole append.
        let horizon = self.hlc.horizon();
        let wall_ms = horizon.wall_ms;
        check_future_ids(horizon, &events)?;
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
                let event = StoredEvent {
                    id: *id,
                    recorded_at,
                    data: event.data,
                };
                staged.push_new(event, remember);
            }
        }
        Ok(Receipt {
            ids,
            lc: staged.lc(),
        })
    }

    /// Adds another node's events to the commit, and lists the losing values
    /// its list of conflicts had. New ids are stored with their
    /// `recorded_at`; for a stored id the earlier `recorded_at` wins, and
    /// between two values the smaller bytes win and the other is listed as a
    /// conflict, so that every node ends with the same event.
    fn stage_merge(
        &self,
        staged: &mut Staged,
        events: Vec<Event>,
        losers: Vec<Loser>,
    ) -> Result<MergeReceipt> {
        if let Some(failure) = &self.poisoned {
            return Err(failure.again());
        }
        if events.len() + losers.len() > MERGE_ITEMS_MAX {
            return Err(Error::BatchTooLarge {
                what: "events",
                actual: events.len() + losers.len(),
                limit: MERGE_ITEMS_MAX,
            });
        }
        // Every read first: a merge that fails adds nothing to the commit.
        let (stored, mut listed) = self.read_for_merge(staged, &events, &losers)?;
        let wall_ms = self.hlc.wall_ms();
        let mut receipt = MergeReceipt::default();
        let new_before = staged.batch.events.len();
        for event in events {
            // The handle refused what no read could serve before it sent
            // the merge here.
            assert!(
                event.unservable().is_none(),
                "merged events are screened first"
            );
            // Sync stores whatever a peer has; only an id within the skew
            // moves the clock.
            if event.id.time_ms() <= wall_ms.saturating_add(self.hlc.skew_ms()) {
                self.hlc.accept(event.id);
            }
            let incoming = StoredEvent {
                id: event.id,
                recorded_at: event.recorded_at,
                data: event.data,
            };
            let Some(current) = current(staged, &stored, incoming.id) else {
                staged.push_new(incoming, true);
                receipt.stored += 1;
                continue;
            };
            let (present, _) = match &current {
                Current::Stored(lc, event) => (event, Some(*lc)),
                Current::New(_, event) => (event, None),
            };
            let (kept, lost) = settle(present, incoming);
            if let Some(lost) = lost {
                receipt.conflicts += 1;
                self.list_loser(staged, &mut listed, kept.id, lost);
            }
            if kept != *present {
                receipt.updated += 1;
                match current {
                    Current::Stored(lc, _) => {
                        staged.replaced.insert(kept.id, (lc, kept));
                    }
                    Current::New(index, _) => {
                        staged.changed_new.push(index);
                        #[expect(
                            clippy::indexing_slicing,
                            reason = "`current` found the event at this index of the batch"
                        )]
                        let slot = &mut staged.batch.events[index];
                        *slot = kept;
                    }
                }
            }
        }
        for loser in losers {
            assert!(
                crate::event::data_unservable(&loser.data).is_none(),
                "merged losers are screened first"
            );
            self.list_loser(staged, &mut listed, loser.id, loser.data);
        }
        receipt.lc = staged.lc();
        let new_after = staged.batch.events.len();
        if new_after > new_before {
            let first = staged.batch.first_lc;
            receipt.held = Some((first + new_before as u64 - 1, first + new_after as u64 - 1));
        }
        Ok(receipt)
    }

    /// What a merge reads before it stages anything: the stored form of each
    /// of its ids, and the losers listed for each id that may conflict (its
    /// values differ somewhere) or that a peer's list names.
    fn read_for_merge(
        &self,
        staged: &Staged,
        events: &[Event],
        losers: &[Loser],
    ) -> Result<(StoredForms, ListedLosers)> {
        let mut stored = HashMap::new();
        let mut seen: HashMap<EventId, Bytes> = HashMap::new();
        let mut may_conflict: Vec<EventId> = losers.iter().map(|loser| loser.id).collect();
        for event in events {
            let known = staged.new_ids.contains_key(&event.id)
                || staged.replaced.contains_key(&event.id)
                || stored.contains_key(&event.id);
            if !known && let Some(current) = self.stored(event.id)? {
                stored.insert(event.id, current);
            }
            let present =
                seen.entry(event.id)
                    .or_insert_with(|| match current(staged, &stored, event.id) {
                        Some(Current::Stored(_, form) | Current::New(_, form)) => form.data,
                        None => event.data.clone(),
                    });
            if *present != event.data {
                may_conflict.push(event.id);
            }
        }
        let mut listed = HashMap::new();
        for id in may_conflict {
            if let std::collections::hash_map::Entry::Vacant(slot) = listed.entry(id) {
                slot.insert(self.store.losers(id)?);
            }
        }
        Ok((stored, listed))
    }

    /// Lists `lost` under `id` unless it is listed already, or `id` has as
    /// many losers listed as a node keeps.
    fn list_loser(
        &self,
        staged: &mut Staged,
        listed: &mut HashMap<EventId, Vec<Bytes>>,
        id: EventId,
        lost: Bytes,
    ) {
        let known = listed.entry(id).or_default();
        // An earlier write of the same commit may have staged it already.
        if known.contains(&lost) || staged.batch.conflicts.contains(&(id, lost.clone())) {
            return;
        }
        let known_bytes: usize = known.iter().map(Bytes::len).sum();
        if known.len() >= LOSERS_PER_ID_MAX || known_bytes + lost.len() > LOSER_BYTES_PER_ID_MAX {
            tracing::warn!(database = %self.shared.record.name, %id, values = LOSERS_PER_ID_MAX, bytes = LOSER_BYTES_PER_ID_MAX, "an id has as many losing values listed as a node keeps (in number or in bytes); another is not listed");
            metrics::counter!("laterbase_conflict_losers_dropped_total", "database" => self.shared.record.name.clone()).increment(1);
            return;
        }
        known.push(lost.clone());
        staged.new_losers += 1;
        staged.batch.conflicts.push((id, lost));
    }

    /// The stored form of `id`, with its lc, if stored.
    fn stored(&self, id: EventId) -> Result<Option<(u64, StoredEvent)>> {
        let Some(lc) = self.store.lc_of(id)? else {
            return Ok(None);
        };
        assert!(
            lc <= self.written_lc,
            "the id index points past the written log"
        );
        let event = held_event_at(self.store.as_ref(), lc)?;
        Ok(Some((
            lc,
            StoredEvent {
                id,
                recorded_at: event.recorded_at,
                data: event.data,
            },
        )))
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
            if let Some(event) = staged
                .new_ids
                .get(&id)
                .and_then(|index| staged.batch.events.get(*index))
            {
                known.insert(id, event.data.clone());
            } else if let Some((_, event)) = staged.replaced.get(&id) {
                known.insert(id, event.data.clone());
            } else if let Some(lc) = self.store.lc_of(id)? {
                // Every write since this writer opened was fsynced (or
                // poisoned it), so the index points at nothing unwritten.
                assert!(
                    lc <= self.written_lc,
                    "the id index points past the written log"
                );
                known.insert(id, held_event_at(self.store.as_ref(), lc)?.data);
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
            if !staged.new_ids.contains_key(&id) && self.store.lc_of(id)?.is_none() {
                return Ok(id);
            }
        }
    }

    /// Writes the commit's batch and fsyncs it; moves the watermark.
    fn write_and_persist(&mut self, mut staged: Staged) -> Result<(), Failure> {
        let mut replaced: Vec<(u64, StoredEvent)> = staged.replaced.into_values().collect();
        replaced.sort_by_key(|(lc, _)| *lc);
        staged.batch.replaced = replaced;
        if staged.batch.is_empty() {
            // Every earlier commit ended durable: nothing waits for an fsync.
            return Ok(());
        }
        let last_lc = staged.batch.first_lc + staged.batch.events.len() as u64 - 1;
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
            tracing::error!(database = %self.shared.record.name, %error, "a write or fsync failed, or the store refuses writes since one did; the database refuses writes until the node restarts");
            let failure = Failure::of(&error);
            self.poisoned = Some(failure.clone());
            return Err(failure);
        }
        let count = staged.batch.events.len() as u64;
        self.shared.rates.record(staged.written, staged.synced);
        self.written_lc = last_lc;
        self.written_us += staged.batch.replaced.len() as u64;
        self.losers_listed += staged.new_losers;
        self.max_id = self.max_id.max(staged.max_id);
        self.shared.events.fetch_add(count, Ordering::Relaxed);
        self.shared.persists.fetch_add(1, Ordering::Relaxed);
        self.shared.durable.publish(Marks {
            lc: last_lc,
            us: self.written_us,
            losers_listed: self.losers_listed,
        });
        let database = self.shared.record.name.clone();
        metrics::gauge!("laterbase_events_stored", "database" => database).set(last_lc as f64);
        if count > 0 || !staged.batch.replaced.is_empty() {
            self.shared
                .commits
                .send_modify(|commits| *commits = commits.wrapping_add(1));
            self.shared
                .view_wakeups
                .send_modify(|commits| *commits = commits.wrapping_add(1));
        }
        Ok(())
    }
}

/// A staged write's answer, sent once the commit is durable (or failed).
enum Answer {
    Append(RpcReplyPort<Result<Receipt>>, Result<Receipt>),
    Merge(RpcReplyPort<Result<MergeReceipt>>, Result<MergeReceipt>),
}

impl Answer {
    /// Sends the answer; a write the commit's failure undid gets the failure.
    /// A caller that gave up (timed out) no longer listens.
    fn send(self, failure: Option<&Failure>, shared: &DatabaseShared) {
        match self {
            Answer::Append(reply, answer) => {
                let answer = answer.and_then(|receipt| match failure {
                    Some(failure) => Err(failure.again()),
                    None => {
                        shared.appends.fetch_add(1, Ordering::Relaxed);
                        Ok(receipt)
                    }
                });
                let _ = reply.send(answer);
            }
            Answer::Merge(reply, answer) => {
                let answer = answer.and_then(|receipt| match failure {
                    Some(failure) => Err(failure.again()),
                    None => Ok(receipt),
                });
                let _ = reply.send(answer);
            }
        }
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
