//! The checks of what a peer says, run before a step believes any of it:
//! a message that fails is refused whole ([`Refusal`]), and nothing it
//! carried is stored. `docs/sync.md` lists them.

use super::messages::{Cursor, Entries, Offer, Page, Summary, page_holds};
use crate::error::StorageError;
use crate::limits::SYNC_PAGE_EVENTS_MAX;

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

/// Checks that an offer's pushed page holds no more events than a page
/// may, as its decoder reads it; says why not.
pub fn check_offer_events(offer: &Offer) -> Result<(), String> {
    match &offer.push.entries {
        Entries::Events(events) if events.len() > SYNC_PAGE_EVENTS_MAX => Err(format!(
            "the offer's page holds {} events, more than the limit of {SYNC_PAGE_EVENTS_MAX}",
            events.len()
        )),
        _ => Ok(()),
    }
}

/// Checks a summary of its sender's log: epochs that start in order, at or
/// below its head.
pub fn check_summary(summary: &Summary) -> Result<(), Refusal> {
    let Some(last) = summary.history.last() else {
        return refuse("the summary names no epoch of its log".to_owned());
    };
    let ordered = summary.history.windows(2).all(|pair| match pair {
        [earlier, later] => {
            earlier.start_lc <= later.start_lc && earlier.start_us <= later.start_us
        }
        _ => true,
    });
    if !ordered || last.start_lc > summary.head_lc || last.start_us > summary.head_us {
        return refuse(format!(
            "the summary's epochs do not start in order at or below its head (lc {}, us {})",
            summary.head_lc, summary.head_us
        ));
    }
    Ok(())
}

/// What a page is checked against.
pub(super) struct PageCheck<'a> {
    /// The page's name in errors.
    pub(super) what: &'static str,
    /// The summary of the sender's log, when the message carries it.
    pub(super) sender: Option<&'a Summary>,
    /// The cursor the page answers, if it answers one: it may start there
    /// or before (cut back to what the sender's log holds), never after.
    pub(super) asked: Option<Option<Cursor>>,
    /// The receiver's log: runs a page names as held by it, in its current
    /// epoch, cannot add up to more events than it has. `None` before the
    /// receiver is known (a responder about to create the database).
    pub(super) receiver: Option<&'a Summary>,
}

/// Checks a page before anything it says is believed: it starts and ends in
/// one epoch of its sender's log, at or below the sender's head, where the
/// cursor it answers says or before; and it carries exactly the entries it
/// spans. Clocks are contiguous, so a page from `lc` a to `lc` b carries
/// b − a new events, less those in the runs it names as held, and one entry
/// per update number it spans (none on the fast path from nothing, which
/// reads every event in its current form). So no page moves a cursor past
/// events it does not carry.
pub(super) fn check_page(page: &Page, check: &PageCheck<'_>) -> Result<(), Refusal> {
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
pub(super) fn check_cursor_into(log: &Summary, cursor: Cursor, what: &str) -> Result<(), Refusal> {
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
