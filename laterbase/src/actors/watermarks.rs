//! How far a database is durable, as its writer publishes it after each
//! commit's fsync: the one writer of these marks; views, handles and sync
//! read them.

use std::sync::atomic::{AtomicU64, Ordering};

/// One database's durable marks.
#[derive(Debug, Default)]
pub(crate) struct Watermarks {
    /// The highest logical clock that an fsync has covered.
    lc: AtomicU64,
    /// The highest update number that an fsync has covered.
    us: AtomicU64,
    /// Distinct losing values listed, durable: told to peers in sync
    /// messages, so that they read the list when it grows.
    losers_listed: AtomicU64,
}

/// The marks as one commit leaves them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Marks {
    pub(crate) lc: u64,
    pub(crate) us: u64,
    pub(crate) losers_listed: u64,
}

impl Watermarks {
    /// Publishes what a durable commit (or a writer's open) covers. Only
    /// the database's writer calls it. The update number and the count of
    /// losers go first and the logical clock last, so that a reader that
    /// sees a commit's clock sees its rewrites and losers too.
    pub(crate) fn publish(&self, marks: Marks) {
        self.losers_listed
            .store(marks.losers_listed, Ordering::Release);
        self.us.store(marks.us, Ordering::Release);
        self.lc.store(marks.lc, Ordering::Release);
    }

    /// The highest durable logical clock.
    pub(crate) fn lc(&self) -> u64 {
        self.lc.load(Ordering::Acquire)
    }

    /// The highest durable update number.
    pub(crate) fn us(&self) -> u64 {
        self.us.load(Ordering::Acquire)
    }

    /// How many distinct losing values are listed, durably.
    pub(crate) fn losers_listed(&self) -> u64 {
        self.losers_listed.load(Ordering::Acquire)
    }
}
