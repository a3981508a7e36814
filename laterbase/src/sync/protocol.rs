//! The messages of a sync round, the checks of cursors, and the steps of
//! each side. See the module above for the shape of a round.

use std::collections::HashMap;

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
    /// The most bytes of event data per page (at least one event is sent).
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

    /// How many distinct losing values of conflicts the log's owner lists
    /// (the list itself travels outside the protocol, when this moves).
    fn losers_listed(&self) -> u64 {
        0
    }
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
    /// when it moves, the initiator fetches the list.
    pub losers_listed: u64,
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
}

/// Message 4, responder to initiator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deliver {
    /// The events the initiator asked for.
    pub events: Vec<Event>,
    /// Whether every asked-for event is here.
    pub complete: bool,
}

/// Where a cursor into a log may resume, given the log's summary: the same
/// position when the log still holds it, cut back to the end of its epoch
/// when a restore cut that epoch short, from nothing when the incarnation or
/// the epoch is unknown. The result names the log's current epoch.
pub fn resume(log: &Summary, cursor: Option<Cursor>) -> Cursor {
    let current = log.history.last().map_or(0, |last| last.epoch);
    let start = Cursor {
        incarnation: log.incarnation,
        epoch: current,
        lc: 0,
        us: 0,
    };
    let Some(cursor) = cursor else { return start };
    if cursor.incarnation != log.incarnation {
        return start;
    }
    let Some(index) = log
        .history
        .iter()
        .position(|epoch| epoch.epoch == cursor.epoch)
    else {
        return start;
    };
    let (end_lc, end_us) = log
        .history
        .get(index + 1)
        .map_or((log.head_lc, log.head_us), |next| {
            (next.start_lc, next.start_us)
        });
    Cursor {
        lc: cursor.lc.min(end_lc).min(log.head_lc),
        us: cursor.us.min(end_us).min(log.head_us),
        ..start
    }
}

/// The page of `log` after `from`: ids and digests of new events and of
/// rewritten ones; or, with `fast` and when `from` starts at nothing, the
/// events themselves.
pub fn page_after(
    log: &impl Log,
    from: Cursor,
    bounds: PageBounds,
    fast: bool,
) -> StorageResult<Page> {
    if fast && from.lc == 0 {
        // The events are read in their current form, so every rewrite made
        // so far is in them or in the pages after: the update cursor can
        // jump to the head.
        let head_us = log.head_us();
        let (events, more) = log.events_after(0, bounds)?;
        let to = Cursor {
            lc: events.last().map_or(0, |event| event.lc),
            us: head_us,
            ..from
        };
        return Ok(Page {
            from,
            to,
            more,
            entries: Entries::Events(events),
        });
    }
    let (events, more_events) = log.events_after(from.lc, bounds)?;
    // New and rewritten events share one page's budget, so that a page
    // never holds more than a merge takes.
    let data: usize = events.iter().map(|event| event.data.len()).sum();
    let rest = PageBounds {
        events: bounds.events.saturating_sub(events.len()),
        bytes: bounds.bytes.saturating_sub(data),
    };
    let (updates, more_updates) = if rest.events == 0 || rest.bytes == 0 {
        (Vec::new(), from.us < log.head_us())
    } else {
        log.updates_after(from.us, rest)?
    };
    let to = Cursor {
        lc: events.last().map_or(from.lc, |event| event.lc),
        us: updates.last().map_or(from.us, |(us, _)| *us),
        ..from
    };
    let more = more_events || more_updates;
    let changed = events
        .into_iter()
        .chain(updates.into_iter().map(|(_, event)| event));
    let entries = if fast {
        // Catching up: the new and the rewritten events, whole.
        Entries::Events(changed.collect())
    } else {
        Entries::Ids(
            changed
                .map(|event| IdDigest {
                    id: event.id,
                    digest: digest(&event.data, event.recorded_at),
                })
                .collect(),
        )
    };
    Ok(Page {
        from,
        to,
        more,
        entries,
    })
}

/// The ids of `entries` that `log` lacks or holds in another form.
fn missing_from(log: &impl Log, entries: &[IdDigest]) -> StorageResult<Vec<EventId>> {
    let ids: Vec<EventId> = entries.iter().map(|entry| entry.id).collect();
    Ok(entries
        .iter()
        .zip(log.digests(&ids)?)
        .filter(|(entry, local)| *local != Some(entry.digest))
        .map(|(entry, _)| entry.id)
        .collect())
}

/// The events of `ids` that `log` holds, and whether it holds all.
fn gather(log: &impl Log, ids: &[EventId]) -> StorageResult<(Vec<Event>, bool)> {
    let found: Vec<Event> = log.events(ids)?.into_iter().flatten().collect();
    let complete = found.len() == ids.len();
    Ok((found, complete))
}

/// What one side must do after a step, in this order: merge the events
/// durably, then store the cursors.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// Events to merge into the local log.
    pub merge: Vec<Event>,
    /// The new cursor into the peer's log, once the merge is durable.
    pub cursor_into_peer: Option<Cursor>,
    /// Where the peer's cursor into the local log now stands, when learnt.
    pub peer_cursor_into_local: Option<Cursor>,
    /// Whether to ask for whole events next round (catching up), when learnt.
    pub bulk: Option<bool>,
}

/// The initiator between its messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Initiator {
    push: (Cursor, Cursor),
    page_to: Option<Cursor>,
    /// Whether the responder takes the pushed page (it starts at or before
    /// the responder's cursor), learnt from the reply.
    push_taken: bool,
}

/// Step 1 (initiator): the offer, from the cursors it keeps about the peer.
pub fn offer(
    log: &impl Log,
    cursor_into_peer: Option<Cursor>,
    peer_cursor_into_local: Option<Cursor>,
    bulk: bool,
    bounds: PageBounds,
) -> StorageResult<(Offer, Initiator)> {
    let summary = Summary::of(log);
    let from = resume(&summary, peer_cursor_into_local);
    // A push never takes the fast path: a responder that starts from nothing
    // may hold most of the log already (it is where the events came from),
    // and ids cost a fifth of events. The responder's own pull (its reply)
    // does take it.
    let push = page_after(log, from, bounds, false)?;
    let initiator = Initiator {
        push: (push.from, push.to),
        page_to: None,
        push_taken: false,
    };
    let offer = Offer {
        pull: cursor_into_peer,
        bulk,
        summary,
        push,
    };
    Ok((offer, initiator))
}

/// The responder between its messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Responder {
    missing: Vec<EventId>,
    /// Whether the pushed page starts at or before this side's cursor, so
    /// that holding all of it moves the cursor to its end without a gap.
    push_taken: bool,
}

impl Responder {
    /// The responder's state as its reply tells it, for a responder that
    /// keeps none between the two round trips (the initiator sends the reply's
    /// `missing` and `push_taken` back with its fill).
    pub fn from_reply(missing: Vec<EventId>, push_taken: bool) -> Responder {
        Responder {
            missing,
            push_taken,
        }
    }
}

/// Whether a page pushed from `from` may move a cursor standing at `cursor`
/// (both checked against the same summary) to its end.
fn takes(from: Cursor, cursor: Cursor) -> bool {
    from.incarnation == cursor.incarnation
        && from.epoch == cursor.epoch
        && from.lc <= cursor.lc
        && from.us <= cursor.us
}

/// Step 2 (responder): checks the initiator's cursor, answers with its own
/// page, and asks for what it lacks. When the offer carried events, they are
/// merged and the responder's cursor moves at once.
pub fn reply(
    log: &impl Log,
    cursor_into_initiator: Option<Cursor>,
    offer: Offer,
    bounds: PageBounds,
) -> StorageResult<(Reply, Responder, Effects)> {
    let from = resume(&Summary::of(log), offer.pull);
    let page = page_after(log, from, bounds, offer.bulk || from.lc == 0)?;
    let mine = resume(&offer.summary, cursor_into_initiator);
    let push_taken = takes(offer.push.from, mine);
    let mut effects = Effects::default();
    let missing = match offer.push.entries {
        Entries::Events(events) => {
            effects.merge = events;
            effects.cursor_into_peer = push_taken.then_some(offer.push.to);
            Vec::new()
        }
        Entries::Ids(entries) => {
            let missing = missing_from(log, &entries)?;
            if missing.is_empty() {
                // Nothing to wait for: the cursor moves now, and the
                // initiator may skip the second round trip.
                effects.cursor_into_peer = push_taken.then_some(offer.push.to);
            }
            missing
        }
    };
    let reply = Reply {
        missing: missing.clone(),
        remaining: log.head_lc().saturating_sub(page.to.lc),
        page,
        cursor_at_initiator: mine,
        push_taken,
        cursor_stored: cursor_into_initiator,
        losers_listed: log.losers_listed(),
    };
    Ok((
        reply,
        Responder {
            missing,
            push_taken,
        },
        effects,
    ))
}

/// Step 3 (initiator): sends what the responder lacks, asks for what it
/// lacks. When the reply carried events, they are merged and the cursor
/// into the responder moves at once.
pub fn fill(
    log: &impl Log,
    mut initiator: Initiator,
    reply: Reply,
) -> StorageResult<(Fill, Initiator, Effects)> {
    initiator.push_taken = takes(initiator.push.0, reply.cursor_at_initiator);
    let moved_now = initiator.push_taken && reply.missing.is_empty();
    let mut effects = Effects {
        peer_cursor_into_local: Some(if moved_now {
            initiator.push.1
        } else {
            reply.cursor_at_initiator
        }),
        ..Effects::default()
    };
    let more = reply.page.more;
    let want = match reply.page.entries {
        Entries::Events(events) => {
            effects.merge = events;
            effects.cursor_into_peer = Some(reply.page.to);
            effects.bulk = Some(more);
            Vec::new()
        }
        Entries::Ids(entries) => {
            let want = missing_from(log, &entries)?;
            // Lacking most of a page that has more behind it: catching up.
            effects.bulk = Some(more && want.len() * 2 > entries.len());
            if want.is_empty() {
                effects.cursor_into_peer = Some(reply.page.to);
            } else {
                initiator.page_to = Some(reply.page.to);
            }
            want
        }
    };
    let (events, complete) = gather(log, &reply.missing)?;
    let fill = Fill {
        events,
        complete,
        push_to: initiator.push.1,
        want,
    };
    Ok((fill, initiator, effects))
}

impl Fill {
    /// Whether the second round trip carries nothing: no events to send, none
    /// to ask for. The initiator may then skip it.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.want.is_empty() && self.complete
    }
}

/// Step 4 (responder): merges what it was sent; its cursor into the
/// initiator moves when everything it asked for came. Sends what the
/// initiator asked for.
pub fn deliver(
    log: &impl Log,
    responder: Responder,
    fill: Fill,
) -> StorageResult<(Deliver, Effects)> {
    let arrived: HashMap<EventId, ()> = fill.events.iter().map(|event| (event.id, ())).collect();
    let all_came = fill.complete && responder.missing.iter().all(|id| arrived.contains_key(id));
    let effects = Effects {
        merge: fill.events,
        cursor_into_peer: (all_came && responder.push_taken).then_some(fill.push_to),
        ..Effects::default()
    };
    let (events, complete) = gather(log, &fill.want)?;
    Ok((Deliver { events, complete }, effects))
}

/// Step 5 (initiator): merges the delivered events; the cursor into the
/// responder moves when everything it asked for came, and the responder's
/// cursor into the initiator is known to have moved to the offered page's end
/// once the responder had all of it (it asked for nothing, or got it all).
pub fn finish(initiator: Initiator, fill: &Fill, deliver: Deliver) -> Effects {
    let asked: Vec<EventId> = fill.want.clone();
    let arrived: HashMap<EventId, ()> = deliver.events.iter().map(|event| (event.id, ())).collect();
    let all_came = deliver.complete && asked.iter().all(|id| arrived.contains_key(id));
    Effects {
        merge: deliver.events,
        cursor_into_peer: if all_came { initiator.page_to } else { None },
        peer_cursor_into_local: (fill.complete && initiator.push_taken).then_some(fill.push_to),
        bulk: None,
    }
}
