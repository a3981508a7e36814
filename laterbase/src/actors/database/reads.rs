//! What a database's readers see: the changes feed, reads by id and by id
//! range, and the conflicts. Each read goes straight to the engine on the
//! blocking pool, never queues behind writes, and shows nothing above the
//! durable watermark; each page is bounded by its events and its bytes.

use bytes::Bytes;

use super::Database;
use crate::error::{Error, Result};
use crate::event::{ChangesPage, EventId, KeysPage, RangePage};
use crate::limits::{CONFLICTS_PAGE_BYTES_MAX, GET_IDS_MAX, PAGE_BYTES_MAX, PAGE_EVENTS_MAX};
use crate::storage::{Conflict, ConflictsPage, PageBytes, held_event_at};

impl Database {
    /// The ids stored with two values somewhere, after `after` in id order:
    /// the value kept, and each value that lost. A page holds whole ids, at
    /// most `limit` losing values (clamped to [`PAGE_EVENTS_MAX`]; one id
    /// with more still comes whole) and [`CONFLICTS_PAGE_BYTES_MAX`] of
    /// their bytes, kept values included (its first id comes whatever its
    /// size). A page that says `more` is never empty, so paging moves on.
    pub async fn conflicts(&self, after: Option<EventId>, limit: usize) -> Result<ConflictsPage> {
        let store = self.shared.store()?;
        let rows = limit.clamp(1, PAGE_EVENTS_MAX);
        self.read(move || {
            let mut conflicts = Vec::new();
            let mut budget = PageBytes::new(CONFLICTS_PAGE_BYTES_MAX);
            let mut after = after;
            loop {
                let (losers, more) = store.losers_after(after, rows, CONFLICTS_PAGE_BYTES_MAX)?;
                for (id, lost) in losers {
                    after = Some(id);
                    // A loser learnt from a peer can be listed before its
                    // event arrives, or name the value kept here until the
                    // winner arrives: neither is a conflict to show yet.
                    let Some(lc) = store.lc_of(id)? else { continue };
                    let kept = held_event_at(store.as_ref(), lc)?.data;
                    let lost: Vec<Bytes> = lost.into_iter().filter(|lost| *lost != kept).collect();
                    if lost.is_empty() {
                        continue;
                    }
                    // Each losing value is shown beside the kept one.
                    let bytes = lost.iter().map(|lost| kept.len() + lost.len()).sum();
                    if !budget.take(bytes) {
                        return Ok(ConflictsPage {
                            conflicts,
                            more: true,
                        });
                    }
                    conflicts.push(Conflict { id, kept, lost });
                }
                // A page whose ids were all hidden goes on to the next:
                // an empty page that says `more` names no id to go on after.
                if !more || !conflicts.is_empty() {
                    return Ok(ConflictsPage { conflicts, more });
                }
            }
        })
        .await
    }

    /// The changes feed: durable events with a logical clock above `after_lc`,
    /// in clock order, at most `limit` (clamped to 1 and the page maximum)
    /// and [`PAGE_BYTES_MAX`] of their data (at least one event).
    pub async fn changes(&self, after_lc: u64, limit: usize) -> Result<ChangesPage> {
        self.changes_within(after_lc, limit, PAGE_BYTES_MAX).await
    }

    /// [`changes`](Database::changes) within `bytes_max` of data (at least
    /// one event).
    pub(crate) async fn changes_within(
        &self,
        after_lc: u64,
        limit: usize,
        bytes_max: usize,
    ) -> Result<ChangesPage> {
        let limit = limit.clamp(1, self.shared.limits.page_events_max);
        let up_to_lc = self.lc();
        let store = self.shared.store()?;
        let events = self
            .read(move || Ok(store.scan_log(after_lc, up_to_lc, limit, bytes_max)?))
            .await?;
        let lc = events.last().map_or(after_lc, |event| event.lc);
        Ok(ChangesPage {
            more: lc < up_to_lc,
            lc,
            events,
        })
    }

    /// The durable events with these ids, in the order asked, and the ids
    /// not stored; within [`PAGE_BYTES_MAX`] of data (at least one event).
    /// A page cut there answers a prefix of the ids asked (each found or
    /// missing) and says `more`: the rest are asked again.
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
                events: Vec::new(),
                missing: Vec::new(),
                more: false,
            };
            let mut budget = PageBytes::new(PAGE_BYTES_MAX);
            for id in ids {
                let Some(lc) = store.lc_of(id)?.filter(|lc| *lc <= up_to_lc) else {
                    page.missing.push(id);
                    continue;
                };
                let event = held_event_at(store.as_ref(), lc)?;
                if !budget.take(event.data.len()) {
                    page.more = true;
                    break;
                }
                page.events.push(event);
            }
            Ok(page)
        })
        .await
    }

    /// Durable events with ids strictly between `after` and `before` (each
    /// bound optional), in id order, at most `limit` (clamped to 1 and the
    /// page maximum) and [`PAGE_BYTES_MAX`] of their data (at least one).
    pub async fn range(
        &self,
        after: Option<EventId>,
        before: Option<EventId>,
        limit: usize,
    ) -> Result<RangePage> {
        let limit = limit.clamp(1, self.shared.limits.page_events_max);
        let up_to_lc = self.lc();
        let store = self.shared.store()?;
        self.read(move || {
            let mut lcs = store.scan_ids(after, before, up_to_lc, limit.saturating_add(1))?;
            let mut more = lcs.len() > limit;
            lcs.truncate(limit);
            let mut events = Vec::new();
            let mut budget = PageBytes::new(PAGE_BYTES_MAX);
            for lc in lcs {
                let event = held_event_at(store.as_ref(), lc)?;
                if !budget.take(event.data.len()) {
                    more = true;
                    break;
                }
                events.push(event);
            }
            Ok(RangePage { events, more })
        })
        .await
    }
}
