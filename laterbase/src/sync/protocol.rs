//! The steps of each side of a sync round, and the rules they plan pages
//! and move cursors by. See the module above for the shape of a round; the
//! messages the steps exchange are in `messages.rs`, the checks of what a
//! peer says in `checks.rs`, and both are named here too.

use std::collections::HashMap;

use super::checks::{PageCheck, check_cursor_into, check_page};
pub use super::checks::{
    Refusal, StepError, StepResult, check_offer, check_offer_events, check_summary,
};
pub use super::messages::*;
use crate::event::{Event, EventId};
use crate::storage::{PageBytes, StorageResult};

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

/// The page of `log`'s list of losers that `from` asks for.
fn losers_page(log: &impl Log, from: ListFrom, bounds: PageBounds) -> StorageResult<LoserPage> {
    let (losers, more) = log.losers_after(from, bounds)?;
    Ok(LoserPage {
        after: from,
        losers,
        more,
    })
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
    let asked = ids.get(..bounds.events.max(1)).unwrap_or(ids);
    // One at a time, so that whatever ids a peer asks for, no more than the
    // page's bytes (and the one event that does not fit) are ever held.
    let mut found: Vec<Event> = Vec::new();
    let mut budget = PageBytes::new(bounds.bytes);
    for id in asked {
        let Some(event) = log.events(std::slice::from_ref(id))?.pop().flatten() else {
            continue;
        };
        if !budget.take(event.data.len()) {
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
