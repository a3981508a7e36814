//! What the supervisors of the actors share: a budget of restarts, and the
//! child a supervision event reports stopped.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

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
