//! The messages of a sync round and what they name: cursors into a log and
//! its epochs, pages and the runs of them a peer holds, summaries, lists of
//! losers, and the [`Log`] through which a step reads a node's copy of a
//! database. Data only: the steps are in `protocol.rs`, the checks in
//! `checks.rs`.

use bytes::Bytes;

use crate::event::{Event, EventId, Timestamp};
use crate::storage::StorageResult;

/// A position in a database's log, as the node that pulls from it keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cursor {
    /// The incarnation of the database the log belongs to.
    pub incarnation: u128,
    /// The epoch of the log the position was reached in.
    pub epoch: u128,
    /// Everything up to this logical clock has been pulled.
    pub lc: u64,
    /// Every rewrite of a stored event up to this update number has been
    /// pulled.
    pub us: u64,
}

/// One epoch of a log: from an open of its node to the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochStart {
    /// Random, made at the open.
    pub epoch: u128,
    /// The log's `lc` at the open: the epoch's events come after it.
    pub start_lc: u64,
    /// The log's update number at the open.
    pub start_us: u64,
}

/// A digest of an event's value and `recorded_at`: two copies of one id
/// with different digests differ, and must be settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Digest(pub u64);

/// The digest of a value recorded at a time.
pub fn digest(data: &[u8], recorded_at: Timestamp) -> Digest {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(&recorded_at.0.to_be_bytes());
    hasher.update(data);
    Digest(hasher.digest())
}

/// An id and the digest of its event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdDigest {
    /// The event's id.
    pub id: EventId,
    /// Its digest.
    pub digest: Digest,
}

/// A stretch of a log, from after one cursor up to another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// Where the stretch starts (after this position).
    pub from: Cursor,
    /// Where the stretch ends: the puller's new cursor once it holds all of it.
    pub to: Cursor,
    /// Whether the log goes on after `to`.
    pub more: bool,
    /// The stretch's events as ids and digests, or whole (the fast path).
    pub entries: Entries,
    /// Runs of the stretch that the puller holds already: events that came
    /// from its own log, in its current epoch, and were not sent back.
    pub held: Vec<Held>,
}

/// A run of a log's clocks whose events all came, unchanged, from one
/// epoch of a peer's log: the peer holds them (its log only grows within an
/// epoch), so pages to it name the run instead of listing the events again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Held {
    /// The run starts after this logical clock.
    pub after_lc: u64,
    /// The run ends at this logical clock, included.
    pub to_lc: u64,
    /// The incarnation of the peer's database the events came from.
    pub incarnation: u128,
    /// The epoch of the peer's log the events came from.
    pub epoch: u128,
}

/// Whether `held` names the current epoch of `log`: only then does the
/// log still hold the run's events for certain.
pub fn holds(log: &Summary, held: &Held) -> bool {
    held.incarnation == log.incarnation
        && log
            .history
            .last()
            .is_some_and(|last| last.epoch == held.epoch)
}

/// The contents of a page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entries {
    /// Ids with digests: the puller asks for those it lacks.
    Ids(Vec<IdDigest>),
    /// The events themselves.
    Events(Vec<Event>),
}

/// How much one page may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageBounds {
    /// The most events (or ids) per page.
    pub events: usize,
    /// The most bytes of event data per page; one event that holds more goes
    /// alone, so that a page never holds more than `bytes` or one event.
    pub bytes: usize,
}

/// An event a pushed page leaves out because the peer cannot take it in
/// one message (a peer of the first release reads smaller requests): the
/// page covers it all the same, so the peer's cursor passes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeftOut {
    /// The event's id.
    pub id: EventId,
    /// The bytes of its data.
    pub bytes: usize,
}

/// What the protocol reads of a node's copy of one database.
pub trait Log {
    /// The database's incarnation.
    fn incarnation(&self) -> u128;
    /// The epochs of the log, oldest first; never empty.
    fn history(&self) -> Vec<EpochStart>;
    /// The highest durable logical clock.
    fn head_lc(&self) -> u64;
    /// The highest durable update number: each rewrite of a stored event (an
    /// earlier `recorded_at`, a conflict's winner) takes the next one, since
    /// it keeps its `lc`.
    fn head_us(&self) -> u64;
    /// Durable events with an `lc` above `after_lc`, in `lc` order, within
    /// `bounds`; and whether more follow.
    fn events_after(&self, after_lc: u64, bounds: PageBounds) -> StorageResult<(Vec<Event>, bool)>;
    /// The events rewritten after update number `after_us`, each with its
    /// update number, in their current form, within `bounds`; and whether
    /// more follow.
    fn updates_after(
        &self,
        after_us: u64,
        bounds: PageBounds,
    ) -> StorageResult<(Vec<(u64, Event)>, bool)>;
    /// The digest of each id's event, where it is stored.
    fn digests(&self, ids: &[EventId]) -> StorageResult<Vec<Option<Digest>>>;
    /// Each id's event, where it is stored.
    fn events(&self, ids: &[EventId]) -> StorageResult<Vec<Option<Event>>>;

    /// How many distinct losing values of conflicts the log's owner lists.
    fn losers_listed(&self) -> u64;

    /// The losing values listed for ids after `after`, in id order, whole
    /// ids only, within `bounds` (at least one id); and whether more follow.
    fn losers_after(
        &self,
        after: Option<EventId>,
        bounds: PageBounds,
    ) -> StorageResult<(Vec<Loser>, bool)>;
}

/// A value that lost a conflict: the id and its losing bytes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Loser {
    /// The id whose other value was kept.
    pub id: EventId,
    /// The losing bytes.
    pub data: Bytes,
}

/// What a log's owner tells a puller so that it can check a cursor itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The database's incarnation.
    pub incarnation: u128,
    /// The epochs of the log, oldest first.
    pub history: Vec<EpochStart>,
    /// The highest durable logical clock.
    pub head_lc: u64,
    /// The highest durable update number.
    pub head_us: u64,
}

impl Summary {
    /// The summary of `log`.
    pub fn of(log: &impl Log) -> Summary {
        Summary {
            incarnation: log.incarnation(),
            history: log.history(),
            head_lc: log.head_lc(),
            head_us: log.head_us(),
        }
    }
}

/// Message 1, initiator to responder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    /// The initiator's cursor into the responder's log.
    pub pull: Option<Cursor>,
    /// Whether the initiator is catching up and wants whole events rather
    /// than ids first.
    pub bulk: bool,
    /// The initiator's log, so that the responder can check its own cursor
    /// into it.
    pub summary: Summary,
    /// The initiator's log since where it believes the responder's cursor is.
    pub push: Page,
    /// How many distinct losing values of conflicts the initiator lists:
    /// when it moves, the responder reads the list.
    pub losers_listed: u64,
}

/// Message 2, responder to initiator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The ids of the offered page that the responder lacks or holds in
    /// another form (empty when the page carried events).
    pub missing: Vec<EventId>,
    /// The responder's log since the initiator's cursor (as checked).
    pub page: Page,
    /// Where the responder's cursor into the initiator's log stands (as
    /// checked against the offer's summary), before this round.
    pub cursor_at_initiator: Cursor,
    /// Whether the offered page starts at or before that cursor, so that
    /// holding all of it moves the cursor to its end.
    pub push_taken: bool,
    /// How many of the responder's events lie after its page: what a
    /// catching-up initiator still has to pull.
    pub remaining: u64,
    /// The responder's cursor into the initiator as it was stored when it
    /// replied: a responder that keeps no state between the round trips
    /// takes the fill's page only if its cursor has not changed since.
    pub cursor_stored: Option<Cursor>,
    /// How many distinct losing values of conflicts the responder lists:
    /// when it moves, the initiator reads the list.
    pub losers_listed: u64,
    /// Where the responder wants the initiator's list of losers read from,
    /// if it wants it.
    pub losers_wanted: Option<ListFrom>,
}

/// Message 3, initiator to responder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fill {
    /// The events the responder asked for.
    pub events: Vec<Event>,
    /// Whether every asked-for event is here (an initiator that lost data
    /// in between may miss some).
    pub complete: bool,
    /// Where the offered page ended: the responder's new cursor, if complete.
    pub push_to: Cursor,
    /// The ids of the responder's page that the initiator lacks.
    pub want: Vec<EventId>,
    /// The page of the initiator's list of losers the reply asked for.
    pub losers: Option<LoserPage>,
    /// Where the initiator wants the responder's list of losers read from,
    /// if it wants it.
    pub losers_wanted: Option<ListFrom>,
}

/// Message 4, responder to initiator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deliver {
    /// The events the initiator asked for.
    pub events: Vec<Event>,
    /// Whether every asked-for event is here.
    pub complete: bool,
    /// The page of the responder's list of losers the fill asked for.
    pub losers: Option<LoserPage>,
}

/// Where a read of a list of losers goes on: after this id, or from the
/// start.
pub type ListFrom = Option<EventId>;

/// A stretch of a node's list of losing values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoserPage {
    /// Where the stretch starts, as asked.
    pub after: ListFrom,
    /// The losers of whole ids after it, in id order.
    pub losers: Vec<Loser>,
    /// Whether the list goes on after it.
    pub more: bool,
}

/// How far this node has read a peer's list of losers. Lists only grow, but
/// a loser can land behind a read under way; so a read that ends records the
/// peer's count as it was when the read began, and a count that differs from
/// it starts another read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoserScan {
    /// The peer's count of listed losers when the last whole read began.
    pub seen: u64,
    /// A read under way: the peer's count when it began, and where it goes
    /// on from.
    pub reading: Option<(u64, ListFrom)>,
}

impl LoserScan {
    /// What to ask of a peer that lists `listed` losers, if anything: where
    /// to read its list from, and the scan with that read under way.
    pub fn ask(self, listed: u64) -> Option<(ListFrom, LoserScan)> {
        match self.reading {
            Some((_, at)) => Some((at, self)),
            None if listed != self.seen => Some((
                None,
                LoserScan {
                    seen: self.seen,
                    reading: Some((listed, None)),
                },
            )),
            None => None,
        }
    }

    /// The scan once `page` came, or `None` if the page does not go on where
    /// the read stands (an answer to an older question): it is ignored.
    pub fn take(self, page: &LoserPage) -> Option<LoserScan> {
        let (began_at, at) = self.reading?;
        if page.after != at {
            return None;
        }
        if !page.more {
            return Some(LoserScan {
                seen: began_at,
                reading: None,
            });
        }
        // A page that says more follow names at least one id to go on after.
        let last = page.losers.last()?.id;
        Some(LoserScan {
            seen: self.seen,
            reading: Some((began_at, Some(last))),
        })
    }
}

/// Which epoch of which database a merge's events came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The peer's database incarnation.
    pub incarnation: u128,
    /// The epoch of the peer's log.
    pub epoch: u128,
}

impl Origin {
    /// The epoch a cursor into the peer's log names.
    pub fn of(cursor: Cursor) -> Origin {
        Origin {
            incarnation: cursor.incarnation,
            epoch: cursor.epoch,
        }
    }
}

/// Whether every run a page names as held by `log` is one it holds: a page
/// naming another epoch of it (it restarted since the runs were learnt)
/// moves no cursor.
pub(super) fn page_holds(log: &Summary, page: &Page) -> bool {
    page.held.iter().all(|run| holds(log, run))
}

impl Fill {
    /// Whether the second round trip carries nothing: no events to send, none
    /// to ask for, no list of losers. The initiator may then skip it.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.want.is_empty()
            && self.complete
            && self.losers.is_none()
            && self.losers_wanted.is_none()
    }
}
