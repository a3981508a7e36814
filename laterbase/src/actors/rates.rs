//! How many events a database stored each second, over the last
//! [`RATES_WINDOW_S`] seconds: those written by this node's clients and
//! those synced from peers. The database's writer is the one writer of
//! these counts (it adds what each durable commit stored); handles read
//! them for `GET /status` and its chart.
//!
//! The counts sit in a fixed ring of one slot per second, by the node's
//! [`Clock`], so that memory stays bounded whatever the rate and a test
//! moves time with a manual clock. A database never written holds no ring
//! at all.

use std::sync::{Arc, Mutex, PoisonError};

use crate::clock::Clock;
use crate::limits::RATES_WINDOW_S;

/// Events stored each second over the last [`RATES_WINDOW_S`] seconds, as
/// [`Database::rates`](crate::Database::rates) and
/// [`Node::rates`](crate::Node::rates) read them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRates {
    /// The second (Unix time) of the newest slot: the one under way.
    pub until_s: u64,
    /// Events written by clients on this node, one count per second,
    /// oldest first: [`RATES_WINDOW_S`] of them, the last for `until_s`.
    pub written: Vec<u64>,
    /// New events merged from peers, one count per second as `written`.
    pub synced: Vec<u64>,
}

impl EventRates {
    /// No events in the window that ends at `until_s`.
    pub fn empty(until_s: u64) -> EventRates {
        EventRates {
            until_s,
            written: vec![0; RATES_WINDOW_S],
            synced: vec![0; RATES_WINDOW_S],
        }
    }

    /// Events written per second over the last `seconds` of the window
    /// (the second under way included), on average.
    pub fn written_per_s(&self, seconds: usize) -> f64 {
        let seconds = seconds.clamp(1, self.written.len().max(1));
        let skipped = self.written.len().saturating_sub(seconds);
        let written: u64 = self.written.iter().skip(skipped).sum();
        written as f64 / seconds as f64
    }

    /// Adds `other`'s counts, second by second; both end at the same second.
    pub(crate) fn add(&mut self, other: &EventRates) {
        assert_eq!(self.until_s, other.until_s, "rates of one window");
        for (sum, count) in self.written.iter_mut().zip(&other.written) {
            *sum = sum.saturating_add(*count);
        }
        for (sum, count) in self.synced.iter_mut().zip(&other.synced) {
            *sum = sum.saturating_add(*count);
        }
    }
}

/// One database's counts: written by its writer, read by its handles.
pub(crate) struct RateRing {
    clock: Arc<dyn Clock>,
    /// `None` until the first commit that stored an event.
    ring: Mutex<Option<Box<Ring>>>,
}

/// The slots: the count of second `s` sits at `s % RATES_WINDOW_S`.
struct Ring {
    /// The newest second counted; the slots hold the window that ends there.
    newest_s: u64,
    written: [u32; RATES_WINDOW_S],
    synced: [u32; RATES_WINDOW_S],
}

const WINDOW: u64 = RATES_WINDOW_S as u64;

impl RateRing {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> RateRing {
        RateRing {
            clock,
            ring: Mutex::new(None),
        }
    }

    /// Counts what a durable commit stored now: `written` events from
    /// appends and `synced` new events from merges. Only the writer calls
    /// it. A second before the window (the clock stepped back that far) is
    /// not counted.
    pub(crate) fn record(&self, written: u64, synced: u64) {
        if written == 0 && synced == 0 {
            return;
        }
        let now_s = self.clock.now_ms() / 1000;
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        let ring = ring.get_or_insert_with(|| {
            Box::new(Ring {
                newest_s: now_s,
                written: [0; RATES_WINDOW_S],
                synced: [0; RATES_WINDOW_S],
            })
        });
        ring.advance(now_s);
        if ring.newest_s - now_s >= WINDOW {
            return;
        }
        let slot = slot_of(now_s);
        let narrow = |count: u64| u32::try_from(count).unwrap_or(u32::MAX);
        if let Some(count) = ring.written.get_mut(slot) {
            *count = count.saturating_add(narrow(written));
        }
        if let Some(count) = ring.synced.get_mut(slot) {
            *count = count.saturating_add(narrow(synced));
        }
    }

    /// The counts of the window that ends at the second under way.
    pub(crate) fn read(&self) -> EventRates {
        self.read_until(self.clock.now_ms() / 1000)
    }

    /// The counts of the window that ends at `until_s`: a second the ring
    /// no longer (or not yet) holds counts zero.
    pub(crate) fn read_until(&self, until_s: u64) -> EventRates {
        let mut rates = EventRates::empty(until_s);
        let ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(ring) = ring.as_ref() else {
            return rates;
        };
        for (index, (written, synced)) in rates
            .written
            .iter_mut()
            .zip(rates.synced.iter_mut())
            .enumerate()
        {
            // The second this slot of the answer shows, oldest first.
            let Some(second) = (until_s + index as u64 + 1).checked_sub(WINDOW) else {
                continue;
            };
            if second > ring.newest_s || ring.newest_s - second >= WINDOW {
                continue;
            }
            let slot = slot_of(second);
            *written = ring.written.get(slot).copied().map_or(0, u64::from);
            *synced = ring.synced.get(slot).copied().map_or(0, u64::from);
        }
        rates
    }
}

impl Ring {
    /// Moves the newest second up to `now_s`, emptying the slots of the
    /// seconds it passes (all of them after a long quiet).
    fn advance(&mut self, now_s: u64) {
        if now_s <= self.newest_s {
            return;
        }
        let passed = (now_s - self.newest_s).min(WINDOW);
        for second in (now_s + 1 - passed)..=now_s {
            let slot = slot_of(second);
            if let Some(count) = self.written.get_mut(slot) {
                *count = 0;
            }
            if let Some(count) = self.synced.get_mut(slot) {
                *count = 0;
            }
        }
        self.newest_s = now_s;
    }
}

fn slot_of(second: u64) -> usize {
    // The remainder is below RATES_WINDOW_S, a usize.
    (second % WINDOW) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn ring_at(now_ms: u64) -> (RateRing, ManualClock) {
        let clock = ManualClock::new(now_ms);
        (RateRing::new(Arc::new(clock.clone())), clock)
    }

    #[test]
    fn counts_land_in_their_second_and_read_oldest_first() {
        let (ring, clock) = ring_at(1_000_000);
        ring.record(3, 0);
        ring.record(2, 5);
        clock.advance(2_500);
        ring.record(1, 1);
        let rates = ring.read();
        assert_eq!(rates.until_s, 1_002);
        assert_eq!(rates.written.len(), RATES_WINDOW_S);
        assert_eq!(rates.written[RATES_WINDOW_S - 1], 1);
        assert_eq!(rates.written[RATES_WINDOW_S - 2], 0);
        assert_eq!(rates.written[RATES_WINDOW_S - 3], 5);
        assert_eq!(rates.synced[RATES_WINDOW_S - 3], 5);
        assert_eq!(rates.written.iter().sum::<u64>(), 6);
        assert!((rates.written_per_s(60) - 0.1).abs() < 1e-9);
    }

    #[test]
    fn seconds_that_leave_the_window_count_no_more() {
        let (ring, clock) = ring_at(10_000_000);
        ring.record(7, 7);
        clock.advance(299_000);
        assert_eq!(ring.read().written[0], 7, "still the oldest second");
        clock.advance(1_000);
        assert_eq!(ring.read().written.iter().sum::<u64>(), 0, "read past it");
        // A write after a long quiet empties what the ring held before.
        clock.advance(10_000_000);
        ring.record(1, 0);
        let rates = ring.read();
        assert_eq!(rates.written.iter().sum::<u64>(), 1);
        assert_eq!(rates.synced.iter().sum::<u64>(), 0);
    }

    #[test]
    fn a_clock_that_steps_back_counts_within_the_window_only() {
        let (ring, clock) = ring_at(50_000_000);
        ring.record(1, 0);
        clock.advance(-10_000);
        ring.record(2, 0);
        clock.advance(-400_000);
        ring.record(4, 0);
        clock.set(50_000_000);
        let rates = ring.read();
        assert_eq!(rates.written[RATES_WINDOW_S - 1], 1);
        assert_eq!(rates.written[RATES_WINDOW_S - 11], 2);
        assert_eq!(rates.written.iter().sum::<u64>(), 3, "the third is too old");
    }

    #[test]
    fn a_window_near_the_epoch_and_an_unwritten_ring_read_zero() {
        let (ring, _) = ring_at(5_000);
        assert_eq!(ring.read(), EventRates::empty(5));
        ring.record(1, 2);
        let rates = ring.read();
        assert_eq!(rates.written[RATES_WINDOW_S - 1], 1);
        assert_eq!(rates.synced[RATES_WINDOW_S - 1], 2);
        let mut sum = EventRates::empty(5);
        sum.add(&rates);
        sum.add(&rates);
        assert_eq!(sum.synced[RATES_WINDOW_S - 1], 4);
    }
}
