//! The ractor actors that own a node's state, and the handles callers use.
//!
//! ```text
//! NodeActor                   root supervisor; owns the storage engine and
//! │                           the set of databases; restarts a crashed child
//! ├── DatabaseActor "a"       the only writer of database "a": checks, assigns
//! │   ├── ViewActor "a/v1"    ids and logical clocks, writes, group-commits;
//! │   └── ...                 restarts a crashed view (one actor per view,
//! ├── DatabaseActor "b"       folding the database's durable events)
//! ├── ...
//! └── ReplicationSupervisor   with `--peer`: one SyncWorker per peer
//!     └── SyncWorker ...
//! ```
//!
//! Callers hold a [`Node`] or a [`Database`]: typed handles whose async
//! methods time out. Writes go through the database actor's mailbox; reads go
//! straight to the storage engine, bounded by the durable watermark, so they
//! never queue behind writes nor show an event that is not yet durable.

pub(crate) mod commit;
pub(crate) mod database;
pub(crate) mod database_actor;
pub(crate) mod node;
#[cfg(feature = "server")]
pub(crate) mod replication;
pub(crate) mod view;
pub(crate) mod watermarks;

pub use commit::MergeReceipt;
pub use database::{Database, DatabaseInfo, DatabaseStats};
pub use node::Node;
#[cfg(feature = "server")]
pub use replication::{PeerStatus, ReplicationConfig};
pub use view::RowPages;

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::limits::RESTART_WINDOW_MS;

/// The restarts a supervisor may still grant: at most `max` within any
/// window of `RESTART_WINDOW_MS`. Older restarts stop counting, so that a
/// rare crash a day never uses it up, while a child that crashes over and
/// over is given up on.
#[derive(Debug, Clone)]
pub(crate) struct RestartBudget {
    max: u32,
    window: Duration,
    /// When the restarts still in the window were granted, oldest first
    /// (at most `max`).
    granted: VecDeque<Instant>,
}

impl RestartBudget {
    pub(crate) fn new(max: u32) -> RestartBudget {
        RestartBudget {
            max,
            window: Duration::from_millis(RESTART_WINDOW_MS),
            granted: VecDeque::new(),
        }
    }

    /// Spends one restart at `now`; `false` (and nothing spent) when `max`
    /// were granted within the window before it.
    pub(crate) fn spend(&mut self, now: Instant) -> bool {
        while let Some(oldest) = self.granted.front()
            && now.saturating_duration_since(*oldest) >= self.window
        {
            self.granted.pop_front();
        }
        if self.granted.len() >= self.max as usize {
            return false;
        }
        self.granted.push_back(now);
        assert!(self.granted.len() <= self.max as usize);
        true
    }

    /// The restarts granted within the window, as of the last `spend`.
    pub(crate) fn in_window(&self) -> usize {
        self.granted.len()
    }
}

/// Runs storage work on the blocking pool when the engine may block, inline
/// when it never does. A panic in the work is resumed in the caller, so that
/// an actor crashes the same way with either engine.
pub(crate) async fn run_storage<T, F>(may_block: bool, work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    if !may_block {
        return work();
    }
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(_) => Err(Error::Unavailable("the runtime is shutting down")),
    }
}

/// The child a supervision event reports stopped (failed or terminated) and
/// why; `None` for other events.
pub(crate) fn stopped_child(
    event: ractor::SupervisionEvent,
) -> Option<(ractor::ActorCell, String)> {
    match event {
        ractor::SupervisionEvent::ActorFailed(cell, error) => Some((cell, error.to_string())),
        ractor::SupervisionEvent::ActorTerminated(cell, _, reason) => {
            Some((cell, reason.unwrap_or_else(|| "stopped".to_owned())))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_budget_refuses_a_burst_and_recovers_after_the_window() {
        let start = Instant::now();
        let window = Duration::from_millis(RESTART_WINDOW_MS);
        let mut budget = RestartBudget::new(3);
        for second in 0..3 {
            assert!(budget.spend(start + Duration::from_secs(second)));
        }
        assert!(
            !budget.spend(start + Duration::from_secs(3)),
            "a fourth restart within the window is refused"
        );
        assert_eq!(budget.in_window(), 3, "a refusal spends nothing");
        // The first restart leaves the window: one more may be granted.
        assert!(budget.spend(start + window));
        assert!(!budget.spend(start + window + Duration::from_millis(500)));
    }

    #[test]
    fn rare_restarts_never_use_the_budget_up() {
        let start = Instant::now();
        let mut budget = RestartBudget::new(2);
        // A crash a day for a thousand days.
        for day in 0..1_000 {
            assert!(
                budget.spend(start + Duration::from_secs(day * 86_400)),
                "day {day}"
            );
        }
        assert_eq!(budget.in_window(), 1);
    }
}
