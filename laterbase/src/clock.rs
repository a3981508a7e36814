//! Time and randomness, and the hybrid logical clock that assigns event ids.
//!
//! Wall-clock time reaches the node only through [`Clock`] and randomness only
//! through [`Random`], so that a test or a simulation can drive both. The
//! [`Hlc`] turns them into ids that strictly increase on one node, across
//! restarts and when the wall clock steps back. This module does no I/O.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::event::EventId;
use crate::limits::ID_COUNTER_BITS;

/// A source of wall-clock time.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
    }
}

/// A clock that moves only when told: for tests and simulations.
#[derive(Debug, Default, Clone)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock showing `now_ms`.
    pub fn new(now_ms: u64) -> ManualClock {
        ManualClock(Arc::new(AtomicU64::new(now_ms)))
    }

    /// Sets the time, forwards or backwards.
    pub fn set(&self, now_ms: u64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }

    /// Moves the time by `delta_ms`, which may be negative.
    pub fn advance(&self, delta_ms: i64) {
        let now = self.0.load(Ordering::SeqCst);
        self.set(now.saturating_add_signed(delta_ms));
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A random source, seeded for replay or from the operating system.
#[derive(Debug)]
pub struct Random(Mutex<StdRng>);

impl Random {
    /// A source that gives the same numbers for the same seed.
    pub fn from_seed(seed: u64) -> Random {
        Random(Mutex::new(StdRng::seed_from_u64(seed)))
    }

    /// A source seeded by the operating system.
    pub fn from_os() -> Random {
        Random(Mutex::new(rand::make_rng()))
    }

    /// The next 64 random bits.
    pub fn next_u64(&self) -> u64 {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .next_u64()
    }

    /// The next 128 random bits.
    pub fn next_u128(&self) -> u128 {
        (u128::from(self.next_u64()) << 64) | u128::from(self.next_u64())
    }
}

/// One reading of the wall clock with the allowed skew: how far ahead a
/// writer's id may be. One reading serves a whole batch, so that every event
/// of it is judged against the same time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Horizon {
    /// The wall clock's time when it was read.
    pub wall_ms: u64,
    /// The allowed skew.
    pub skew_ms: u64,
}

impl Horizon {
    /// Refuses `id`, the event at `index` of its batch, when its time is more
    /// than the skew ahead of the reading.
    pub fn check(self, index: usize, id: EventId) -> Result<(), FutureEvent> {
        if id.time_ms() > self.wall_ms.saturating_add(self.skew_ms) {
            return Err(FutureEvent {
                index,
                id,
                ahead_ms: id.time_ms() - self.wall_ms,
                skew_ms: self.skew_ms,
            });
        }
        Ok(())
    }
}

/// An event whose id is further in the future than the allowed clock skew
/// ([`Error::FutureEvent`](crate::Error::FutureEvent) says it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FutureEvent {
    /// The event's index in its batch.
    pub index: usize,
    /// The refused id.
    pub id: EventId,
    /// How far ahead of the node's wall clock the id's time is.
    pub ahead_ms: u64,
    /// The allowed skew.
    pub skew_ms: u64,
}

/// The hybrid logical clock of one node: it assigns event ids.
///
/// An assigned id's time is the largest of the wall clock and every id issued
/// or accepted so far (the floor); within one millisecond a counter of
/// [`ID_COUNTER_BITS`] bits follows the time, and the remaining bits are
/// random. Every id it returns is greater than the floor, which then moves to
/// it, so ids strictly increase. The floor is persisted with every batch and
/// restored at start, so they increase across restarts too.
pub struct Hlc {
    clock: Arc<dyn Clock>,
    random: Arc<Random>,
    skew_ms: u64,
    /// The largest id issued or accepted: every new id is above it.
    floor: Mutex<u128>,
}

const RANDOM_BITS: u32 = 80 - ID_COUNTER_BITS;
const COUNTER_MAX: u128 = (1 << ID_COUNTER_BITS) - 1;

impl Hlc {
    /// A clock over `clock` and `random` that starts above `floor` and
    /// accepts ids at most `skew_ms` ahead of the wall clock.
    pub fn new(clock: Arc<dyn Clock>, random: Arc<Random>, skew_ms: u64, floor: EventId) -> Hlc {
        Hlc {
            clock,
            random,
            skew_ms,
            floor: Mutex::new(floor.to_u128()),
        }
    }

    /// The wall clock's time.
    pub fn wall_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The allowed skew.
    pub fn skew_ms(&self) -> u64 {
        self.skew_ms
    }

    /// The wall clock read now, with the allowed skew.
    pub fn horizon(&self) -> Horizon {
        Horizon {
            wall_ms: self.wall_ms(),
            skew_ms: self.skew_ms,
        }
    }

    /// How far `id` is ahead of the wall clock beyond the allowed skew, if it is.
    pub fn too_far_ahead(&self, id: EventId) -> Option<u64> {
        let ahead_ms = id.time_ms().saturating_sub(self.wall_ms());
        (ahead_ms > self.skew_ms).then_some(ahead_ms)
    }

    /// Moves the floor up to `id` when `id` is within the allowed skew; an
    /// id further ahead does not move the clock.
    pub fn observe(&self, id: EventId) {
        if self.too_far_ahead(id).is_none() {
            self.accept(id);
        }
    }

    /// Moves the floor up to `id`, which the caller checked with
    /// [`Hlc::too_far_ahead`] against the same reading of the wall clock.
    pub fn accept(&self, id: EventId) {
        let mut floor = self.floor.lock().unwrap_or_else(PoisonError::into_inner);
        *floor = (*floor).max(id.to_u128());
    }

    /// The largest id issued or accepted so far.
    pub fn floor(&self) -> EventId {
        EventId::from_u128(*self.floor.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// A new id, greater than every id issued or accepted before.
    pub fn next_id(&self) -> EventId {
        let now_ms = self.wall_ms();
        let random = self.random.next_u128() & ((1 << RANDOM_BITS) - 1);
        let mut floor = self.floor.lock().unwrap_or_else(PoisonError::into_inner);
        let last = EventId::from_u128(*floor);
        let id = if now_ms > last.time_ms() {
            EventId::from_parts(now_ms, random)
        } else {
            let counter = last.rest() >> RANDOM_BITS;
            if counter < COUNTER_MAX {
                EventId::from_parts(last.time_ms(), ((counter + 1) << RANDOM_BITS) | random)
            } else {
                EventId::from_parts(last.time_ms() + 1, random)
            }
        };
        assert!(id.to_u128() > *floor, "hlc: a new id must exceed the floor");
        *floor = id.to_u128();
        id
    }
}

impl std::fmt::Debug for Hlc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hlc")
            .field("skew_ms", &self.skew_ms)
            .field("floor", &self.floor())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hlc(clock: &ManualClock, floor: EventId) -> Hlc {
        Hlc::new(
            Arc::new(clock.clone()),
            Arc::new(Random::from_seed(7)),
            60_000,
            floor,
        )
    }

    #[test]
    fn ids_strictly_increase_when_the_wall_clock_steps_back() {
        let clock = ManualClock::new(1_000_000);
        let hlc = hlc(&clock, EventId::from_u128(0));
        let mut last = hlc.next_id();
        for step in 0..10_000_i64 {
            clock.advance(if step % 3 == 0 { -5 } else { 1 });
            let id = hlc.next_id();
            assert!(id > last, "{id} after {last}");
            last = id;
        }
    }

    #[test]
    fn a_full_counter_moves_into_the_next_millisecond() {
        let clock = ManualClock::new(5_000);
        let floor = EventId::from_parts(5_000, (COUNTER_MAX << RANDOM_BITS) | 3);
        let id = hlc(&clock, floor).next_id();
        assert_eq!(id.time_ms(), 5_001);
        assert!(id > floor);
    }

    #[test]
    fn ids_within_the_skew_move_the_floor_and_ids_beyond_do_not() {
        let clock = ManualClock::new(1_000_000);
        let hlc = hlc(&clock, EventId::from_u128(0));
        let near = EventId::from_parts(1_030_000, 42);
        hlc.observe(near);
        assert_eq!(hlc.floor(), near);
        let far = EventId::from_parts(1_060_001, 42);
        assert_eq!(hlc.too_far_ahead(far), Some(60_001));
        hlc.observe(far);
        assert_eq!(hlc.floor(), near);
        assert_eq!(hlc.next_id().time_ms(), 1_030_000);
    }

    #[test]
    fn the_same_seed_gives_the_same_ids() {
        let clock = ManualClock::new(77);
        let first: Vec<_> = (0..5)
            .map({
                let h = hlc(&clock, EventId::from_u128(0));
                move |_| h.next_id()
            })
            .collect();
        let again: Vec<_> = (0..5)
            .map({
                let h = hlc(&clock, EventId::from_u128(0));
                move |_| h.next_id()
            })
            .collect();
        assert_eq!(first, again);
    }
}
