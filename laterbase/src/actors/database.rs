//! The handle of one database, the messages it sends its actor
//! (`database_actor.rs`, the only writer), and the state they share; the
//! reads are in `database/reads.rs`, what sync and views ask of a
//! database in `database/sync.rs` and `database/views.rs`, and the
//! subscriptions to its events and to its views' rows in
//! `database/live.rs` and `database/live_rows.rs`.
//!
//! Appends travel through the actor's mailbox. The actor queues each one and
//! sends itself a `Flush` behind whatever else waits in the mailbox, so that
//! every append that arrived while the last commit ran joins the next one
//! (see `commit`): one fsync serves them all.
//!
//! ```text
//! Database::append -> mailbox -> queue -> Flush -> Writer::commit
//!                                                    -> one write, one fsync
//!                                                    -> durable_lc -> replies
//! ```
//!
//! Reads skip the actor: they go to the engine, bounded by the durable
//! watermark (`durable_lc`), which moves only after an fsync, so nothing is
//! shown that a power loss could take back.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use ractor::{ActorRef, RpcReplyPort};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::batch::{MergeReceipt, check_batch_size};
use super::blocking::run_storage;
use super::rates::{EventRates, RateRing};
use super::view::{ViewHandle, ViewProgress};
use super::watermarks::Watermarks;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::event::{Event, EventId, NewEvent, Receipt};
use crate::limits::{APPEND_KIB_IN_FLIGHT_MAX, Limits, MERGE_ITEMS_MAX};
use crate::storage::{DatabaseRecord, DatabaseStore};
use crate::sync::EpochStart;
use crate::sync::protocol::Loser;
use crate::sync::recall::Recalls;
use crate::sync::refusals::{Refusal, RefusalLedger};
use crate::views::Registration;

mod live;
mod live_rows;
mod reads;
pub(crate) mod sync;
mod views;

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

/// What every database of a node shares with the node.
#[derive(Clone)]
pub(crate) struct NodeContext {
    pub(crate) node_id: EventId,
    pub(crate) may_block: bool,
    pub(crate) call_timeout_ms: u64,
    pub(crate) limits: Limits,
    /// The node's count of commits that changed something.
    pub(crate) commits: Arc<tokio::sync::watch::Sender<u64>>,
    /// Every view compiled into the binary.
    pub(crate) views: Arc<Vec<Registration>>,
    /// What the node's merges refused of each peer.
    pub(crate) refusals: Arc<RefusalLedger>,
    /// The node's wall clock, which times each database's rates.
    pub(crate) clock: Arc<dyn Clock>,
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
    /// The epochs of the log, the current one (begun at this node's open) last.
    pub(crate) history: Vec<EpochStart>,
    pub(crate) node_id: EventId,
    pub(crate) may_block: bool,
    pub(crate) call_timeout_ms: u64,
    /// The bounds of appends and pages.
    pub(crate) limits: Limits,
    /// The node's count of commits that changed something.
    pub(crate) commits: Arc<tokio::sync::watch::Sender<u64>>,
    /// The engine's handle; `None` once the node has shut down.
    pub(crate) store: RwLock<Option<Arc<dyn DatabaseStore>>>,
    /// The views of this database compiled into the binary.
    pub(crate) views: Vec<Registration>,
    /// Each view's running actor, by name; set by the database actor.
    pub(crate) view_actors: RwLock<BTreeMap<&'static str, ViewHandle>>,
    /// Each view's lease, held by its actor and by the fold it runs: a
    /// restarted view actor starts only once a killed one's fold is done.
    pub(crate) view_leases: BTreeMap<&'static str, Arc<tokio::sync::Mutex<()>>>,
    /// This database's count of commits that changed something: what wakes
    /// its views (a commit of another database does not).
    pub(crate) view_wakeups: tokio::sync::watch::Sender<u64>,
    /// Each view's count of fold steps run, by name: what commits cost it.
    pub(crate) view_steps: BTreeMap<&'static str, Arc<AtomicU64>>,
    /// Where each view stands, by name, as its actor publishes it: what
    /// wakes the subscriptions to its rows.
    pub(crate) view_progress: BTreeMap<&'static str, Arc<tokio::sync::watch::Sender<ViewProgress>>>,
    /// The running actor; replaced when the supervisor restarts it.
    actor: tokio::sync::watch::Sender<ActorSlot>,
    /// How far the database is durable, as its writer publishes it.
    pub(crate) durable: Watermarks,
    /// What sync remembers of each peer between rounds.
    pub(crate) recalls: std::sync::Mutex<Recalls>,
    /// What the node's merges refused of each peer (shared by the node's
    /// databases).
    refusals: Arc<RefusalLedger>,
    /// Per peer, the lock under which sync steps read and write its link.
    link_locks: std::sync::Mutex<BTreeMap<EventId, Arc<tokio::sync::Mutex<()>>>>,
    /// Bounds the bytes of appends in flight, in KiB.
    in_flight_kib: Arc<Semaphore>,
    /// Held by the database's one writer for its whole life.
    pub(crate) writer_lease: Arc<tokio::sync::Mutex<()>>,
    pub(crate) appends: AtomicU64,
    pub(crate) persists: AtomicU64,
    pub(crate) events: AtomicU64,
    /// Events written and synced each second, counted by the writer.
    pub(crate) rates: RateRing,
}

impl DatabaseShared {
    pub(crate) fn new(
        record: DatabaseRecord,
        store: Arc<dyn DatabaseStore>,
        history: Vec<EpochStart>,
        context: &NodeContext,
    ) -> DatabaseShared {
        let views: Vec<Registration> = context
            .views
            .iter()
            .filter(|view| view.db == record.name)
            .copied()
            .collect();
        let view_leases = views
            .iter()
            .map(|view| (view.name, Arc::default()))
            .collect();
        let view_steps = views
            .iter()
            .map(|view| (view.name, Arc::default()))
            .collect();
        let view_progress = views
            .iter()
            .map(|view| (view.name, Arc::default()))
            .collect();
        DatabaseShared {
            record,
            history,
            node_id: context.node_id,
            may_block: context.may_block,
            call_timeout_ms: context.call_timeout_ms,
            limits: context.limits,
            commits: context.commits.clone(),
            views,
            view_leases,
            view_wakeups: tokio::sync::watch::Sender::new(0),
            view_steps,
            view_progress,
            view_actors: RwLock::default(),
            store: RwLock::new(Some(store)),
            actor: tokio::sync::watch::Sender::new(ActorSlot::Restarting),
            durable: Watermarks::default(),
            recalls: std::sync::Mutex::default(),
            refusals: context.refusals.clone(),
            link_locks: std::sync::Mutex::default(),
            in_flight_kib: Arc::new(Semaphore::new(APPEND_KIB_IN_FLIGHT_MAX as usize)),
            writer_lease: Arc::new(tokio::sync::Mutex::new(())),
            appends: AtomicU64::new(0),
            persists: AtomicU64::new(0),
            events: AtomicU64::new(0),
            rates: RateRing::new(context.clock.clone()),
        }
    }

    pub(crate) fn store(&self) -> Result<Arc<dyn DatabaseStore>> {
        let store = self.store.read().unwrap_or_else(PoisonError::into_inner);
        store
            .clone()
            .ok_or(Error::Unavailable("the node has shut down"))
    }

    pub(crate) fn set_actor(&self, slot: ActorSlot) {
        self.actor.send_replace(slot);
    }

    /// The running actor other than `dead`; while the supervisor restarts
    /// it, waits for the new one, up to the call timeout (a timeout names
    /// `operation`, the call that waited).
    async fn actor(
        &self,
        operation: &'static str,
        dead: Option<ractor::ActorId>,
    ) -> Result<ActorRef<DatabaseMsg>> {
        let mut slot = self.actor.subscribe();
        let timeout = Duration::from_millis(self.call_timeout_ms);
        let ready = slot.wait_for(|slot| match slot {
            ActorSlot::Restarting => false,
            ActorSlot::Running(actor) => Some(actor.get_id()) != dead,
            ActorSlot::Stopped => true,
        });
        match tokio::time::timeout(timeout, ready).await {
            Ok(Ok(slot)) => match &*slot {
                ActorSlot::Running(actor) => Ok(actor.clone()),
                _ => Err(Error::Unavailable("the database is stopped")),
            },
            Ok(Err(_)) => Err(Error::Unavailable("the database is stopped")),
            Err(_) => Err(Error::Timeout {
                operation,
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
        self.shared.durable.lc()
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

    /// Events written by clients of this node and new events synced from
    /// peers, each second of the last
    /// [`RATES_WINDOW_S`](crate::limits::RATES_WINDOW_S) by the node's clock,
    /// since the node started.
    pub fn rates(&self) -> EventRates {
        self.shared.rates.read()
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
        check_batch_size(&events, &self.shared.limits)?;
        let permit = self
            .permit("append", events.iter().map(|event| event.data.len()).sum())
            .await?;
        let message = DatabaseMsg::Append {
            events,
            permit,
            reply: None,
        };
        self.call_writer("append", message, DatabaseMsg::with_append_reply)
            .await
    }

    /// Stores events another node holds, keeping their ids, bytes and
    /// `recorded_at`, and returns once they are durable. New ids take new
    /// logical clocks; for an id stored already the earlier `recorded_at`
    /// wins, and of two values the smaller bytes win while the other is
    /// listed by [`Database::conflicts`]: every node that merges the same
    /// events ends with the same ones. Ids ahead of the clock are stored
    /// too; only those within the skew move it.
    ///
    /// An event no read could serve (a `recorded_at` past what RFC 3339
    /// writes, more data than [`EVENT_BYTES_MAX`](crate::limits::EVENT_BYTES_MAX))
    /// is refused: it is skipped, logged and counted (`refused` in the
    /// receipt, the metric `laterbase_merge_refused_total`), and the others
    /// are stored.
    pub async fn merge(&self, events: Vec<Event>) -> Result<MergeReceipt> {
        let (events, _, refused) = self.screen(events, Vec::new(), None);
        let mut receipt = self.merge_with_meta(events, Vec::new(), Vec::new()).await?;
        receipt.refused = refused.len() as u64;
        Ok(receipt)
    }

    /// Splits what a merge was given into what it stores and what it
    /// refuses because no read could serve it (see [`Event::unservable`]);
    /// logs and counts the refusals. `peer` names the node they came from.
    fn screen(
        &self,
        events: Vec<Event>,
        losers: Vec<Loser>,
        peer: Option<EventId>,
    ) -> (Vec<Event>, Vec<Loser>, Vec<Refusal>) {
        let mut refused = Vec::new();
        let refusal = |id, loser, reason| Refusal {
            database: self.name().to_owned(),
            id,
            loser,
            reason,
        };
        let events: Vec<Event> = events
            .into_iter()
            .filter(|event| match event.unservable() {
                Some(reason) => {
                    refused.push(refusal(event.id, false, reason));
                    false
                }
                None => true,
            })
            .collect();
        let losers: Vec<Loser> = losers
            .into_iter()
            .filter(|loser| match crate::event::data_unservable(&loser.data) {
                Some(reason) => {
                    refused.push(refusal(loser.id, true, reason));
                    false
                }
                None => true,
            })
            .collect();
        if let Some(first) = refused.first() {
            let peer = peer.map(|peer| peer.to_string());
            tracing::warn!(database = %self.name(), peer = peer.as_deref().unwrap_or("none"), refused = refused.len(), first = %first, "a merge refused values no read could serve; the rest is stored");
            for refusal in &refused {
                metrics::counter!("laterbase_merge_refused_total", "database" => self.name().to_owned(), "reason" => refusal.reason.label()).increment(1);
            }
        }
        (events, losers, refused)
    }

    /// Merges as [`Database::merge`] does, lists `losers` (values that lost
    /// a conflict on a peer) and sets the database's own metadata, all in the
    /// same atomic write.
    pub(crate) async fn merge_with_meta(
        &self,
        events: Vec<Event>,
        losers: Vec<Loser>,
        meta: Vec<(Vec<u8>, Bytes)>,
    ) -> Result<MergeReceipt> {
        if events.len() + losers.len() > MERGE_ITEMS_MAX {
            return Err(Error::BatchTooLarge {
                what: "events",
                actual: events.len() + losers.len(),
                limit: MERGE_ITEMS_MAX,
            });
        }
        let bytes = events.iter().map(|event| event.data.len()).sum::<usize>()
            + losers.iter().map(|loser| loser.data.len()).sum::<usize>();
        let permit = self.permit("merge", bytes).await?;
        let message = DatabaseMsg::Merge {
            events,
            losers,
            meta,
            permit,
            reply: None,
        };
        self.call_writer("merge", message, DatabaseMsg::with_merge_reply)
            .await
    }

    /// A share of the bytes in flight, waited for up to the call timeout (a
    /// timeout names `operation`, the write that waited).
    async fn permit(&self, operation: &'static str, bytes: usize) -> Result<OwnedSemaphorePermit> {
        let timeout = Duration::from_millis(self.shared.call_timeout_ms);
        let kib = u32::try_from(bytes / 1024 + 1).unwrap_or(APPEND_KIB_IN_FLIGHT_MAX);
        let permit = self
            .shared
            .in_flight_kib
            .clone()
            .acquire_many_owned(kib.min(APPEND_KIB_IN_FLIGHT_MAX));
        tokio::time::timeout(timeout, permit)
            .await
            .map_err(|_| Error::Timeout {
                operation,
                timeout_ms: self.shared.call_timeout_ms,
            })?
            .map_err(|_| Error::Unavailable("the database is closed"))
    }

    /// Sends a write to the actor and waits for its answer. A message that
    /// never reached the mailbox (the actor had just died) is sent again to
    /// its successor; one that did is not, since it may have been stored.
    async fn call_writer<T: Send + 'static>(
        &self,
        operation: &'static str,
        mut message: DatabaseMsg,
        with_reply: fn(DatabaseMsg, RpcReplyPort<Result<T>>) -> DatabaseMsg,
    ) -> Result<T> {
        let timeout = Duration::from_millis(self.shared.call_timeout_ms);
        let mut dead = None;
        for _ in 0..2 {
            let actor = self.shared.actor(operation, dead).await?;
            let answer = actor
                .call(|reply| with_reply(message, reply), Some(timeout))
                .await;
            match answer {
                Ok(ractor::rpc::CallResult::Success(result)) => return result,
                Ok(ractor::rpc::CallResult::Timeout) => {
                    return Err(Error::Timeout {
                        operation,
                        timeout_ms: self.shared.call_timeout_ms,
                    });
                }
                Ok(ractor::rpc::CallResult::SenderError) => break,
                Err(ractor::MessagingErr::SendErr(unsent)) => {
                    dead = Some(actor.get_id());
                    message = unsent;
                }
                Err(_) => break,
            }
        }
        Err(Error::Unavailable(
            "the database actor stopped before answering",
        ))
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

/// Messages a database actor takes.
pub(crate) enum DatabaseMsg {
    /// Append a batch; the reply comes once it is durable.
    Append {
        events: Vec<NewEvent>,
        /// The append's share of the bytes in flight, held until answered.
        permit: OwnedSemaphorePermit,
        /// Always set when sent; `None` only while the message is built.
        reply: Option<RpcReplyPort<Result<Receipt>>>,
    },
    /// Merge another node's events; the reply comes once they are durable.
    Merge {
        events: Vec<Event>,
        losers: Vec<Loser>,
        meta: Vec<(Vec<u8>, Bytes)>,
        permit: OwnedSemaphorePermit,
        reply: Option<RpcReplyPort<Result<MergeReceipt>>>,
    },
    /// Commit what has queued up.
    Flush,
}

impl DatabaseMsg {
    fn with_append_reply(self, reply: RpcReplyPort<Result<Receipt>>) -> DatabaseMsg {
        match self {
            DatabaseMsg::Append { events, permit, .. } => DatabaseMsg::Append {
                events,
                permit,
                reply: Some(reply),
            },
            other => other,
        }
    }

    fn with_merge_reply(self, reply: RpcReplyPort<Result<MergeReceipt>>) -> DatabaseMsg {
        match self {
            DatabaseMsg::Merge {
                events,
                losers,
                meta,
                permit,
                ..
            } => DatabaseMsg::Merge {
                events,
                losers,
                meta,
                permit,
                reply: Some(reply),
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call that waits for a restarting actor and gives up says which
    /// call it was, not "append" for every one.
    #[tokio::test]
    async fn a_call_that_waits_for_a_restarting_actor_names_its_operation() {
        let config = crate::Config::in_memory().call_timeout(Duration::from_millis(20));
        let node = crate::Node::open(config).await.expect("open");
        let db = node.create_database("waits").await.expect("create");
        let running = db.shared.actor.send_replace(ActorSlot::Restarting);

        let merged = db.merge(Vec::new()).await;
        assert!(
            matches!(
                merged,
                Err(Error::Timeout {
                    operation: "merge",
                    ..
                })
            ),
            "{merged:?}"
        );
        let appended = db.append(vec![NewEvent::new("1")]).await;
        assert!(
            matches!(
                appended,
                Err(Error::Timeout {
                    operation: "append",
                    ..
                })
            ),
            "{appended:?}"
        );

        db.shared.actor.send_replace(running);
        node.shutdown().await.expect("shutdown");
    }
}
