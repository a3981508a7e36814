//! The messages of a sync round, the checks of cursors, and the steps of
//! each side. See the module above for the shape of a round.

use std::collections::HashMap;

use bytes::Bytes;

use crate::error::StorageError;
use crate::event::{Event, EventId, Timestamp};
use crate::storage::StorageResult;

/// Why a sync message was refused: it claims what its sender cannot hold,
/// or its parts do not add up. Nothing it carried is stored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

/// Why a step did not complete.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// Reading the log failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The message the step answers was refused.
    #[error("sync message refused: {0}")]
    Refused(#[from] Refusal),
}

/// What a step that checks a message returns.
pub type StepResult<T> = Result<T, StepError>;

fn refuse<T>(why: String) -> Result<T, Refusal> {
    Err(Refusal(why))
}

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

/// How many of `sizes`, from the start, fit in `bytes`; when `alone`
/// (nothing precedes them), at least one, however large.
fn fitting(sizes: impl Iterator<Item = usize>, bytes: usize, alone: bool) -> usize {
    let mut total = 0_usize;
    let fit = sizes
        .take_while(|size| {
            total = total.saturating_add(*size);
            total <= bytes
        })
        .count();
    if alone { fit.max(1) } else { fit }
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

/// The page of `log`'s list of losers that `from` asks for.
fn losers_page(log: &impl Log, from: ListFrom, bounds: PageBounds) -> StorageResult<LoserPage> {
    let (losers, more) = log.losers_after(from, bounds)?;
    Ok(LoserPage {
        after: from,
        losers,
        more,
    })
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

/// Where a cursor into a log may resume, given the log's summary: the same
/// position when the log still holds it, cut back to the end of its epoch
/// when a restore cut that epoch short, from nothing when the incarnation or
/// the epoch is unknown, or when the cursor stands past the head of the
/// log's current epoch (no page led there: a forged one did). The result
/// names the log's current epoch.
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
    if index + 1 == log.history.len() && (cursor.lc > log.head_lc || cursor.us > log.head_us) {
        // Past the head of the epoch the log is in, which only grows: no
        // page of this log ever led there, so the cursor is not to be
        // trusted with anything the log holds.
        return start;
    }
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

/// The checks of an offer that need nothing of the responder's log: its
/// summary, and its pushed page against that summary. A responder runs them
/// before it creates the database an offer is for, so that an offer it
/// refuses creates nothing; [`reply`] runs them again with the rest.
pub fn check_offer(offer: &Offer) -> Result<(), Refusal> {
    check_summary(&offer.summary)?;
    check_page(
        &offer.push,
        &PageCheck {
            what: "pushed page",
            sender: Some(&offer.summary),
            asked: None,
            receiver: None,
        },
    )
}

/// Checks a summary of its sender's log: epochs that start in order, at or
/// below its head.
pub fn check_summary(summary: &Summary) -> Result<(), Refusal> {
    let Some(last) = summary.history.last() else {
        return refuse("the summary names no epoch of its log".to_owned());
    };
    let ordered = summary
        .history
        .windows(2)
        .all(|pair| pair[0].start_lc <= pair[1].start_lc && pair[0].start_us <= pair[1].start_us);
    if !ordered || last.start_lc > summary.head_lc || last.start_us > summary.head_us {
        return refuse(format!(
            "the summary's epochs do not start in order at or below its head (lc {}, us {})",
            summary.head_lc, summary.head_us
        ));
    }
    Ok(())
}

/// What a page is checked against.
struct PageCheck<'a> {
    /// The page's name in errors.
    what: &'static str,
    /// The summary of the sender's log, when the message carries it.
    sender: Option<&'a Summary>,
    /// The cursor the page answers, if it answers one: it may start there
    /// or before (cut back to what the sender's log holds), never after.
    asked: Option<Option<Cursor>>,
    /// The receiver's log: runs a page names as held by it, in its current
    /// epoch, cannot add up to more events than it has. `None` before the
    /// receiver is known (a responder about to create the database).
    receiver: Option<&'a Summary>,
}

/// Checks a page before anything it says is believed: it starts and ends in
/// one epoch of its sender's log, at or below the sender's head, where the
/// cursor it answers says or before; and it carries exactly the entries it
/// spans. Clocks are contiguous, so a page from `lc` a to `lc` b carries
/// b − a new events, less those in the runs it names as held, and one entry
/// per update number it spans (none on the fast path from nothing, which
/// reads every event in its current form). So no page moves a cursor past
/// events it does not carry.
fn check_page(page: &Page, check: &PageCheck<'_>) -> Result<(), Refusal> {
    let (what, from, to) = (check.what, page.from, page.to);
    if (from.incarnation, from.epoch) != (to.incarnation, to.epoch) {
        return refuse(format!(
            "the {what} starts in one epoch of its log and ends in another"
        ));
    }
    if to.lc < from.lc || to.us < from.us {
        return refuse(format!(
            "the {what} ends (lc {}, us {}) before it starts (lc {}, us {})",
            to.lc, to.us, from.lc, from.us
        ));
    }
    if let Some(sender) = check.sender {
        let current = sender.history.last().map(|last| last.epoch);
        if to.incarnation != sender.incarnation || current != Some(to.epoch) {
            return refuse(format!(
                "the {what} names an epoch of its log other than the current one its summary names"
            ));
        }
        if to.lc > sender.head_lc || to.us > sender.head_us {
            return refuse(format!(
                "the {what} ends at lc {}, us {}: past its log's head (lc {}, us {})",
                to.lc, to.us, sender.head_lc, sender.head_us
            ));
        }
    }
    match check.asked {
        Some(Some(cursor))
            if cursor.incarnation == from.incarnation
                && (from.lc > cursor.lc || from.us > cursor.us) =>
        {
            return refuse(format!(
                "the {what} starts at lc {}, us {}: after the cursor it answers (lc {}, us {})",
                from.lc, from.us, cursor.lc, cursor.us
            ));
        }
        Some(Some(cursor)) if cursor.incarnation == from.incarnation => {}
        Some(_) if from.lc != 0 || from.us != 0 => {
            return refuse(format!(
                "the {what} starts at lc {}, us {}, but no cursor into its log was given",
                from.lc, from.us
            ));
        }
        _ => {}
    }
    let mut held: u64 = 0;
    let mut at = from.lc;
    for run in &page.held {
        if run.after_lc < at || run.to_lc <= run.after_lc || run.to_lc > to.lc {
            return refuse(format!(
                "the {what} names a held run (lc {} to {}) outside it or out of order",
                run.after_lc, run.to_lc
            ));
        }
        held += run.to_lc - run.after_lc;
        at = run.to_lc;
    }
    // Runs that name another epoch of the receiver move no cursor (see
    // `page_holds`); those that name this one must fit in its log.
    if let Some(receiver) = check.receiver
        && held > receiver.head_lc
        && page_holds(receiver, page)
    {
        return refuse(format!(
            "the {what} names {held} events as held by this node, which has {}",
            receiver.head_lc
        ));
    }
    let (carried, rewritten) = match &page.entries {
        Entries::Events(events) if from.lc == 0 => (events.len(), 0),
        Entries::Events(events) => (events.len(), to.us - from.us),
        Entries::Ids(ids) => (ids.len(), to.us - from.us),
    };
    let spanned = u128::from(to.lc - from.lc - held) + u128::from(rewritten);
    if carried as u128 != spanned {
        return refuse(format!(
            "the {what} spans lc {} to {} and us {} to {} ({spanned} entries, {held} of them held) but carries {carried}",
            from.lc, to.lc, from.us, to.us
        ));
    }
    Ok(())
}

/// Checks a cursor a peer says it keeps into `log`: in its current epoch,
/// at or below its head.
fn check_cursor_into(log: &Summary, cursor: Cursor, what: &str) -> Result<(), Refusal> {
    let current = log.history.last().map(|last| last.epoch);
    if cursor.incarnation != log.incarnation
        || Some(cursor.epoch) != current
        || cursor.lc > log.head_lc
        || cursor.us > log.head_us
    {
        return refuse(format!(
            "{what} (lc {}, us {}) is not a position in this log (head lc {}, us {})",
            cursor.lc, cursor.us, log.head_lc, log.head_us
        ));
    }
    Ok(())
}

/// The page of `log` after `from`: ids and digests of new events and of
/// rewritten ones; or, with `fast` and when `from` starts at nothing, the
/// events themselves. Runs of `held` (the puller holds their events) are
/// named, not listed. Events with more data than `event_bytes` are left
/// out, and returned beside the page, which covers them all the same.
pub fn page_after(
    log: &impl Log,
    from: Cursor,
    bounds: PageBounds,
    fast: bool,
    held: &[Held],
    event_bytes: usize,
) -> StorageResult<(Page, Vec<LeftOut>)> {
    let mut left_out = Vec::new();
    let mut keep = |event: &Event| {
        let fits = event.data.len() <= event_bytes;
        if !fits {
            left_out.push(LeftOut {
                id: event.id,
                bytes: event.data.len(),
            });
        }
        fits
    };
    if fast && from.lc == 0 {
        let head_us = log.head_us();
        let (mut events, skipped, last_lc, more) = events_skipping(log, 0, bounds, held)?;
        events.retain(&mut keep);
        // The events are read in their current form, so every rewrite made
        // so far is in them or in the pages after: the update cursor can
        // jump to the head. Not over a held run, whose events may have been
        // rewritten here since they came: those rewrites must still go.
        let us = if skipped.is_empty() { head_us } else { from.us };
        let page = Page {
            from,
            to: Cursor {
                lc: last_lc,
                us,
                ..from
            },
            more: more || us < head_us,
            entries: Entries::Events(events),
            held: skipped,
        };
        return Ok((page, left_out));
    }
    let (events, skipped, last_lc, more_events) = events_skipping(log, from.lc, bounds, held)?;
    // New and rewritten events share one page's budget, so that a page
    // never holds more than a merge takes: more than its bytes only as one
    // event alone.
    let data: usize = events.iter().map(|event| event.data.len()).sum();
    let rest = PageBounds {
        events: bounds.events.saturating_sub(events.len()),
        bytes: bounds.bytes.saturating_sub(data),
    };
    let (mut updates, mut more_updates) = if rest.events == 0 || rest.bytes == 0 {
        (Vec::new(), from.us < log.head_us())
    } else {
        log.updates_after(from.us, rest)?
    };
    let fit = fitting(
        updates.iter().map(|(_, event)| event.data.len()),
        rest.bytes,
        events.is_empty(),
    );
    if fit < updates.len() {
        updates.truncate(fit);
        more_updates = true;
    }
    let to = Cursor {
        lc: last_lc,
        us: updates.last().map_or(from.us, |(us, _)| *us),
        ..from
    };
    let more = more_events || more_updates;
    let changed = events
        .into_iter()
        .chain(updates.into_iter().map(|(_, event)| event))
        .filter(|event| keep(event));
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
    let page = Page {
        from,
        to,
        more,
        entries,
        held: skipped,
    };
    Ok((page, left_out))
}

/// The events of `log` after `after_lc`, within `bounds`, passing over the
/// runs of `held` (sorted, disjoint) instead of reading them: the events,
/// the runs passed over, the last logical clock covered, and whether the log
/// goes on. Each step reads up to the next run or passes one, so the steps
/// are bounded by the runs.
fn events_skipping(
    log: &impl Log,
    after_lc: u64,
    bounds: PageBounds,
    held: &[Held],
) -> StorageResult<(Vec<Event>, Vec<Held>, u64, bool)> {
    let head_lc = log.head_lc();
    let mut at = after_lc;
    let mut events: Vec<Event> = Vec::new();
    let mut skipped = Vec::new();
    let mut budget = bounds;
    for _ in 0..2 * held.len() + 2 {
        if at >= head_lc {
            break;
        }
        if let Some(run) = held.iter().find(|run| run.after_lc <= at && at < run.to_lc) {
            let to_lc = run.to_lc.min(head_lc);
            skipped.push(Held {
                after_lc: at,
                to_lc,
                ..*run
            });
            at = to_lc;
            continue;
        }
        if budget.events == 0 || budget.bytes == 0 {
            break;
        }
        let (mut batch, _) = log.events_after(at, budget)?;
        // Stop at the next run, so that it is named rather than read.
        if let Some(stop) = held
            .iter()
            .map(|run| run.after_lc)
            .filter(|start| *start > at)
            .min()
        {
            let keep = batch.iter().take_while(|event| event.lc <= stop).count();
            batch.truncate(keep);
        }
        // Past the budget only as the page's one event.
        let fit = fitting(
            batch.iter().map(|event| event.data.len()),
            budget.bytes,
            events.is_empty(),
        );
        batch.truncate(fit);
        let Some(last) = batch.last() else { break };
        at = last.lc;
        let data: usize = batch.iter().map(|event| event.data.len()).sum();
        budget.events = budget.events.saturating_sub(batch.len());
        budget.bytes = budget.bytes.saturating_sub(data);
        events.extend(batch);
    }
    Ok((events, skipped, at, at < head_lc))
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

/// The events of `ids` that `log` holds, within `bounds` (as a page is,
/// so that the events of a page all go), and whether all of them are here.
/// An event rewritten since its page was read may no longer fit: it goes in
/// a later round.
fn gather(
    log: &impl Log,
    ids: &[EventId],
    bounds: PageBounds,
) -> StorageResult<(Vec<Event>, bool)> {
    let asked = &ids[..ids.len().min(bounds.events.max(1))];
    // One at a time, so that whatever ids a peer asks for, no more than the
    // page's bytes (and the one event that does not fit) are ever held.
    let mut found: Vec<Event> = Vec::new();
    let mut bytes = 0_usize;
    for id in asked {
        let Some(event) = log.events(std::slice::from_ref(id))?.pop().flatten() else {
            continue;
        };
        bytes = bytes.saturating_add(event.data.len());
        if bytes > bounds.bytes && !found.is_empty() {
            return Ok((found, false));
        }
        found.push(event);
    }
    let complete = found.len() == ids.len();
    Ok((found, complete))
}

/// What one side must do after a step, in this order: merge the events
/// and list the losers durably, then store the cursors.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// Events to merge into the local log.
    pub merge: Vec<Event>,
    /// Where the events to merge came from: the epoch of the peer's log they
    /// were read in. Those stored here anew, unchanged, form a run the peer
    /// holds ([`Held`]).
    pub merge_origin: Option<Origin>,
    /// Losing values from the peer's list, to list here too.
    pub losers: Vec<Loser>,
    /// The new cursor into the peer's log, once the merge is durable.
    pub cursor_into_peer: Option<Cursor>,
    /// Where the peer's cursor into the local log now stands, when learnt.
    pub peer_cursor_into_local: Option<Cursor>,
    /// Whether to ask for whole events next round (catching up), when learnt.
    pub bulk: Option<bool>,
    /// How far the peer's list of losers has been read, when it moved.
    pub loser_scan: Option<LoserScan>,
}

/// The initiator between its messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Initiator {
    /// The cursor into the responder the offer sent: its page starts there
    /// or before.
    pull: Option<Cursor>,
    push: (Cursor, Cursor),
    page_to: Option<Cursor>,
    /// The epoch of the responder's log its page was read in.
    page_origin: Option<Origin>,
    /// Whether the responder takes the pushed page (it starts at or before
    /// the responder's cursor), learnt from the reply.
    push_taken: bool,
    /// The events the pushed page left out: the responder cannot take them.
    left_out: Vec<LeftOut>,
}

impl Initiator {
    /// The events the offer's pushed page left out, too large for the
    /// responder to take (see [`Recall::push_event_bytes`]).
    pub fn left_out(&self) -> &[LeftOut] {
        &self.left_out
    }
}

/// What a node remembers of one peer between rounds, as the protocol reads
/// it: the runs of its own log that hold the peer's events, and how far it
/// has read the peer's list of losers.
#[derive(Clone, Copy, Debug)]
pub struct Recall<'a> {
    /// Runs of the local log that the peer holds, sorted and disjoint.
    pub held: &'a [Held],
    /// How far the peer's list of losers has been read; `None` for a peer
    /// that cannot exchange lists within a round (an older wire version).
    pub losers: Option<LoserScan>,
    /// Whether to push: not while the peer pulls this log in bulk itself
    /// (it is catching up), when a push would carry the same events again.
    pub push: bool,
    /// The most data an event may hold to be pushed to the peer: a pushed
    /// page leaves larger ones out ([`LeftOut`]).
    pub push_event_bytes: usize,
}

/// Step 1 (initiator): the offer, from the cursors it keeps about the peer
/// and what it recalls of it.
pub fn offer(
    log: &impl Log,
    cursor_into_peer: Option<Cursor>,
    peer_cursor_into_local: Option<Cursor>,
    bulk: bool,
    recall: Recall<'_>,
    bounds: PageBounds,
) -> StorageResult<(Offer, Initiator)> {
    let summary = Summary::of(log);
    let from = resume(&summary, peer_cursor_into_local);
    // A push never takes the fast path: a responder that starts from nothing
    // may hold most of the log already (it is where the events came from),
    // and ids cost a fifth of events. The responder's own pull (its reply)
    // does take it.
    let (push, left_out) = if recall.push {
        page_after(
            log,
            from,
            bounds,
            false,
            recall.held,
            recall.push_event_bytes,
        )?
    } else {
        let page = Page {
            from,
            to: from,
            more: false,
            entries: Entries::Ids(Vec::new()),
            held: Vec::new(),
        };
        (page, Vec::new())
    };
    let initiator = Initiator {
        pull: cursor_into_peer,
        push: (push.from, push.to),
        page_to: None,
        page_origin: None,
        push_taken: false,
        left_out,
    };
    let offer = Offer {
        pull: cursor_into_peer,
        bulk,
        summary,
        push,
        losers_listed: log.losers_listed(),
    };
    Ok((offer, initiator))
}

/// The responder between its messages: what it checked of the offer and
/// asked for, kept (bounded by a page) rather than believed when a fill
/// echoes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Responder {
    missing: Vec<EventId>,
    /// Whether the pushed page starts at or before this side's cursor, so
    /// that holding all of it moves the cursor to its end without a gap.
    push_taken: bool,
    /// Where the checked pushed page ends: the only position a fill can
    /// move the cursor to.
    push_to: Cursor,
    /// The cursor into the initiator as stored when the offer was checked.
    cursor_stored: Option<Cursor>,
}

impl Responder {
    /// A responder that remembers no offer (it restarted, or the fill
    /// answers an offer it never saw): the fill's events are merged, but no
    /// cursor moves.
    pub fn unknown() -> Responder {
        Responder {
            missing: Vec::new(),
            push_taken: false,
            push_to: Cursor {
                incarnation: 0,
                epoch: 0,
                lc: 0,
                us: 0,
            },
            cursor_stored: None,
        }
    }

    /// The same, taking the pushed page only if the cursor into the
    /// initiator is still `stored_now`, as when the offer was checked (a
    /// node that lost its data and came back in between must not move it).
    pub fn against(mut self, stored_now: Option<Cursor>) -> Responder {
        self.push_taken &= stored_now == self.cursor_stored;
        self
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

/// Whether every run a page names as held by `log` is one it holds: a page
/// naming another epoch of it (it restarted since the runs were learnt)
/// moves no cursor.
fn page_holds(log: &Summary, page: &Page) -> bool {
    page.held.iter().all(|run| holds(log, run))
}

/// Step 2 (responder): checks the initiator's cursor, answers with its own
/// page, and asks for what it lacks. When the offer carried events, they are
/// merged and the responder's cursor moves at once.
pub fn reply(
    log: &impl Log,
    cursor_into_initiator: Option<Cursor>,
    offer: Offer,
    recall: Recall<'_>,
    bounds: PageBounds,
) -> StepResult<(Reply, Responder, Effects)> {
    let own = Summary::of(log);
    check_summary(&offer.summary)?;
    check_page(
        &offer.push,
        &PageCheck {
            what: "pushed page",
            sender: Some(&offer.summary),
            asked: None,
            receiver: Some(&own),
        },
    )?;
    let from = resume(&own, offer.pull);
    // Only runs of the initiator's current epoch are certain to be there.
    let held: Vec<Held> = recall
        .held
        .iter()
        .filter(|run| holds(&offer.summary, run))
        .copied()
        .collect();
    // An answer carries any event this node stores: none is left out.
    let (page, _) = page_after(
        log,
        from,
        bounds,
        offer.bulk || from.lc == 0,
        &held,
        usize::MAX,
    )?;
    let mine = resume(&offer.summary, cursor_into_initiator);
    let push_taken = takes(offer.push.from, mine) && page_holds(&own, &offer.push);
    // The initiator's cursor into this log, as checked: where this node's
    // own pushes to it start.
    let mut effects = Effects {
        peer_cursor_into_local: Some(from),
        ..Effects::default()
    };
    let push_to = offer.push.to;
    let missing = match offer.push.entries {
        Entries::Events(events) => {
            effects.merge = events;
            effects.merge_origin = Some(Origin::of(offer.push.to));
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
    let asked = recall.losers.and_then(|scan| scan.ask(offer.losers_listed));
    effects.loser_scan = asked.map(|(_, scan)| scan);
    let reply = Reply {
        missing: missing.clone(),
        remaining: log.head_lc().saturating_sub(page.to.lc),
        page,
        cursor_at_initiator: mine,
        push_taken,
        cursor_stored: cursor_into_initiator,
        losers_listed: log.losers_listed(),
        losers_wanted: asked.map(|(from, _)| from),
    };
    Ok((
        reply,
        Responder {
            missing,
            push_taken,
            push_to,
            cursor_stored: cursor_into_initiator,
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
    recall: Recall<'_>,
    bounds: PageBounds,
) -> StepResult<(Fill, Initiator, Effects)> {
    let own = Summary::of(log);
    check_page(
        &reply.page,
        &PageCheck {
            what: "replied page",
            sender: None,
            asked: Some(initiator.pull),
            receiver: Some(&own),
        },
    )?;
    check_cursor_into(
        &own,
        reply.cursor_at_initiator,
        "the cursor the reply says it keeps into this log",
    )?;
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
    let holds = page_holds(&own, &reply.page);
    let more = reply.page.more;
    let page_to = holds.then_some(reply.page.to);
    initiator.page_origin = Some(Origin::of(reply.page.to));
    let want = match reply.page.entries {
        Entries::Events(events) => {
            effects.merge = events;
            effects.merge_origin = initiator.page_origin;
            effects.cursor_into_peer = page_to;
            effects.bulk = Some(more);
            Vec::new()
        }
        Entries::Ids(entries) => {
            let want = missing_from(log, &entries)?;
            // Lacking most of a page that has more behind it: catching up.
            effects.bulk = Some(more && want.len() * 2 > entries.len());
            if want.is_empty() {
                effects.cursor_into_peer = page_to;
            } else {
                initiator.page_to = page_to;
            }
            want
        }
    };
    let (events, complete) = gather(log, &reply.missing, bounds)?;
    let losers = reply
        .losers_wanted
        .map(|from| losers_page(log, from, bounds))
        .transpose()?;
    let asked = recall.losers.and_then(|scan| scan.ask(reply.losers_listed));
    effects.loser_scan = asked.map(|(_, scan)| scan);
    let fill = Fill {
        events,
        complete,
        push_to: initiator.push.1,
        want,
        losers,
        losers_wanted: asked.map(|(from, _)| from),
    };
    Ok((fill, initiator, effects))
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

/// The losers a page brings, and the scan after it; nothing for a page that
/// does not go on where the scan stands.
fn take_losers(scan: Option<LoserScan>, page: Option<LoserPage>, effects: &mut Effects) {
    let (Some(scan), Some(page)) = (scan, page) else {
        return;
    };
    if let Some(next) = scan.take(&page) {
        effects.losers = page.losers;
        effects.loser_scan = Some(next);
    }
}

/// Step 4 (responder): merges what it was sent; its cursor into the
/// initiator moves when everything it asked for came. Sends what the
/// initiator asked for.
pub fn deliver(
    log: &impl Log,
    responder: Responder,
    fill: Fill,
    recall: Recall<'_>,
    bounds: PageBounds,
) -> StorageResult<(Deliver, Effects)> {
    let arrived: HashMap<EventId, ()> = fill.events.iter().map(|event| (event.id, ())).collect();
    let all_came = fill.complete && responder.missing.iter().all(|id| arrived.contains_key(id));
    let mut effects = Effects {
        merge: fill.events,
        merge_origin: Some(Origin::of(fill.push_to)),
        // Only to the end of the page checked with the offer, whatever the
        // fill says.
        cursor_into_peer: (all_came && responder.push_taken && fill.push_to == responder.push_to)
            .then_some(responder.push_to),
        ..Effects::default()
    };
    take_losers(recall.losers, fill.losers, &mut effects);
    let (events, complete) = gather(log, &fill.want, bounds)?;
    let losers = fill
        .losers_wanted
        .map(|from| losers_page(log, from, bounds))
        .transpose()?;
    Ok((
        Deliver {
            events,
            complete,
            losers,
        },
        effects,
    ))
}

/// Step 5 (initiator): merges the delivered events; the cursor into the
/// responder moves when everything it asked for came, and the responder's
/// cursor into the initiator is known to have moved to the offered page's end
/// once the responder had all of it (it asked for nothing, or got it all).
pub fn finish(initiator: Initiator, fill: &Fill, deliver: Deliver, recall: Recall<'_>) -> Effects {
    let arrived: HashMap<EventId, ()> = deliver.events.iter().map(|event| (event.id, ())).collect();
    let all_came = deliver.complete && fill.want.iter().all(|id| arrived.contains_key(id));
    let mut effects = Effects {
        merge: deliver.events,
        merge_origin: initiator.page_origin,
        cursor_into_peer: if all_came { initiator.page_to } else { None },
        peer_cursor_into_local: (fill.complete && initiator.push_taken).then_some(fill.push_to),
        ..Effects::default()
    };
    take_losers(recall.losers, deliver.losers, &mut effects);
    effects
}
