//! Subscriptions to a database's events: every event stored after a
//! logical clock, in clock order, each once; first those stored already,
//! then each new one as soon as it is durable.
//!
//! A subscription reads the log at its reader's pace, a page at a time
//! (`SUBSCRIPTION_PAGE_EVENTS`, within `SUBSCRIPTION_PAGE_BYTES`), and waits on the
//! counter of commits the writer bumps after each fsync: commits never wait
//! for a subscriber, and a stalled one holds one page.

use std::collections::VecDeque;

use futures_util::stream::{self, Stream};
use tokio::sync::watch;

use super::Database;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::limits::{SUBSCRIPTION_PAGE_BYTES, SUBSCRIPTION_PAGE_EVENTS};

impl Database {
    /// Every event this node stores with a logical clock above `after_lc`,
    /// in clock order and each once: first the ones stored already, then
    /// each new one (written here or merged from a peer) as soon as it is
    /// durable. A reader that stops where it is resumes exactly with the
    /// last `lc` it saw.
    ///
    /// The stream holds at most one page of events for its reader, however
    /// slowly it reads. It ends after an error: once the node shuts down,
    /// with [`Error::Unavailable`].
    pub fn subscribe(&self, after_lc: u64) -> impl Stream<Item = Result<Event>> + Send + 'static {
        let subscription = Subscription {
            database: self.clone(),
            after_lc,
            page: VecDeque::new(),
            commits: self.shared.view_wakeups.subscribe(),
            ended: false,
        };
        stream::unfold(subscription, |mut subscription| async move {
            let next = subscription.next().await?;
            Some((next, subscription))
        })
    }
}

/// Where a subscription stands.
struct Subscription {
    database: Database,
    /// The `lc` of the last event handed out.
    after_lc: u64,
    /// Events read and not yet handed out: one page at most.
    page: VecDeque<Event>,
    /// Bumped by the writer after each commit that stored something.
    commits: watch::Receiver<u64>,
    ended: bool,
}

impl Subscription {
    async fn next(&mut self) -> Option<Result<Event>> {
        if self.ended {
            return None;
        }
        loop {
            if let Some(event) = self.page.pop_front() {
                self.after_lc = event.lc;
                return Some(Ok(event));
            }
            // Marked seen before the read: a commit after it wakes the wait.
            self.commits.borrow_and_update();
            // Nothing durable past where it stands: no read to make. A
            // commit publishes its clock before it wakes the subscribers.
            if self.database.lc() <= self.after_lc {
                // Checked before the wait, which the loop comes back to
                // after each wakeup: a subscription made after the node
                // shut down has seen its last wakeup already.
                if self.database.shared.store().is_err() || self.commits.changed().await.is_err() {
                    self.ended = true;
                    return Some(Err(Error::Unavailable("the database is closed")));
                }
                continue;
            }
            match self
                .database
                .changes_within(
                    self.after_lc,
                    SUBSCRIPTION_PAGE_EVENTS,
                    SUBSCRIPTION_PAGE_BYTES,
                )
                .await
            {
                Ok(page) if !page.events.is_empty() => self.page.extend(page.events),
                Ok(_) => {
                    if self.commits.changed().await.is_err() {
                        self.ended = true;
                        return Some(Err(Error::Unavailable("the database is closed")));
                    }
                }
                Err(error) => {
                    self.ended = true;
                    return Some(Err(error));
                }
            }
        }
    }
}
