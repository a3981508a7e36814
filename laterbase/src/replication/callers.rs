//! The peers that dial this node: what it saw of each as the responder of
//! their rounds and the server of their watches, for `/status`. For a hub,
//! they are the fleet.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use super::config::{Direction, Lag, PeerStatus};
use crate::clock::Clock;
use crate::event::{EventId, Timestamp};
use crate::limits::{PEER_FAILING_PASSES, SYNC_CALLER_SILENCE_MS, SYNC_CALLERS_MAX};

/// What this node saw of one peer that dials it.
#[derive(Clone, Debug, Default)]
struct Caller {
    /// The address its last request came from.
    address: Option<SocketAddr>,
    /// When this node last answered one of its rounds.
    last_sync: Option<Timestamp>,
    /// When it was last heard from (a round, or a watch closing).
    last_heard_ms: u64,
    last_error: Option<String>,
    /// Rounds this node could not answer, in a row.
    failures: u32,
    /// Its watches open now.
    watches: u32,
    /// Per database, how far apart the last round showed the two nodes.
    lags: BTreeMap<String, Lag>,
}

/// The peers that dial this node. Cheap to clone; bounded to
/// [`SYNC_CALLERS_MAX`], forgetting the one heard from longest ago that
/// holds no watch.
#[derive(Clone)]
pub struct Callers {
    callers: Arc<Mutex<BTreeMap<EventId, Caller>>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Callers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Callers")
    }
}

impl Callers {
    /// No callers yet; time from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Callers {
        Callers {
            callers: Arc::default(),
            clock,
        }
    }

    fn update<R>(
        &self,
        peer: EventId,
        address: Option<SocketAddr>,
        change: impl FnOnce(&mut Caller, u64) -> R,
    ) -> R {
        let now_ms = self.clock.now_ms();
        let mut callers = self.callers.lock().unwrap_or_else(PoisonError::into_inner);
        if !callers.contains_key(&peer) && callers.len() >= SYNC_CALLERS_MAX {
            let oldest = callers
                .iter()
                .filter(|(_, caller)| caller.watches == 0)
                .min_by_key(|(_, caller)| caller.last_heard_ms)
                .map(|(node, _)| *node);
            if let Some(oldest) = oldest {
                callers.remove(&oldest);
            }
        }
        let caller = callers.entry(peer).or_default();
        if address.is_some() {
            caller.address = address;
        }
        caller.last_heard_ms = caller.last_heard_ms.max(now_ms);
        change(caller, now_ms)
    }

    /// This node answered a message of `peer`'s round for `database`
    /// (`lag` once the answer to its offer shows it), or could not.
    pub fn answered(
        &self,
        peer: EventId,
        address: Option<SocketAddr>,
        database: &str,
        outcome: Result<Option<Lag>, String>,
    ) {
        self.update(peer, address, |caller, now_ms| match outcome {
            Ok(lag) => {
                caller.failures = 0;
                caller.last_error = None;
                caller.last_sync = Some(Timestamp(now_ms));
                if let Some(lag) = lag
                    && (caller.lags.len() < crate::limits::DATABASES_MAX
                        || caller.lags.contains_key(database))
                {
                    caller.lags.insert(database.to_owned(), lag);
                }
            }
            Err(error) => {
                caller.failures = caller.failures.saturating_add(1);
                caller.last_error = Some(error);
            }
        });
    }

    /// `peer` opened a watch: it counts as open until the guard drops.
    pub fn watching(&self, peer: EventId, address: Option<SocketAddr>) -> Watching {
        self.update(peer, address, |caller, _| caller.watches += 1);
        Watching {
            callers: self.clone(),
            peer,
        }
    }

    /// Every peer that dials in, as `/status` shows it now.
    pub fn statuses(&self) -> Vec<PeerStatus> {
        let now_ms = self.clock.now_ms();
        let callers = self.callers.lock().unwrap_or_else(PoisonError::into_inner);
        callers
            .iter()
            .map(|(node, caller)| {
                let url = caller
                    .address
                    .map_or_else(String::new, |address| address.to_string());
                let mut status = PeerStatus::new(Direction::In, url);
                status.node = Some(*node);
                status.last_sync = caller.last_sync;
                status.last_error.clone_from(&caller.last_error);
                status.watching = caller.watches > 0;
                status.failures = caller.failures.max(silences(caller, now_ms));
                status.lag = (!caller.lags.is_empty()).then(|| caller.lags.values().sum());
                status
            })
            .collect()
    }
}

/// A peer that dials in and holds no watch, silent for so long, counts as
/// that many failures: one per [`SYNC_CALLER_SILENCE_MS`], so that a truck
/// gone dark shows `retrying`, then `failing` after
/// [`PEER_FAILING_PASSES`] such stretches. One that holds a watch is in touch.
fn silences(caller: &Caller, now_ms: u64) -> u32 {
    if caller.watches > 0 {
        return 0;
    }
    let silent_ms = now_ms.saturating_sub(caller.last_heard_ms);
    u32::try_from(silent_ms / SYNC_CALLER_SILENCE_MS)
        .unwrap_or(u32::MAX)
        .min(PEER_FAILING_PASSES)
}

/// An open watch of a peer that dials in.
#[derive(Debug)]
pub struct Watching {
    callers: Callers,
    peer: EventId,
}

impl Watching {
    /// The watch closed: its peer's silence counts from now.
    fn close(&self) {
        let now_ms = self.callers.clock.now_ms();
        let mut callers = self
            .callers
            .callers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(caller) = callers.get_mut(&self.peer) {
            caller.watches = caller.watches.saturating_sub(1);
            caller.last_heard_ms = caller.last_heard_ms.max(now_ms);
        }
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::PeerState;

    #[test]
    fn a_caller_in_touch_is_ok_and_one_gone_dark_fails() {
        let clock = crate::clock::ManualClock::new(1_000);
        let callers = Callers::new(Arc::new(clock.clone()));
        let peer = EventId::from_u128(7);
        let lag = Lag {
            to_pull: 2,
            to_push: 3,
        };
        callers.answered(peer, None, "a", Ok(Some(lag)));
        callers.answered(peer, None, "b", Ok(Some(lag)));
        let status = &callers.statuses()[0];
        assert_eq!(status.direction, Direction::In);
        assert_eq!(status.state(), PeerState::Ok);
        assert_eq!(
            status.lag,
            Some(Lag {
                to_pull: 4,
                to_push: 6
            })
        );
        let watch = callers.watching(peer, None);
        let closed = 1_000 + 100 * SYNC_CALLER_SILENCE_MS;
        clock.set(closed);
        assert_eq!(
            callers.statuses()[0].state(),
            PeerState::Ok,
            "a watch is touch"
        );
        drop(watch);
        assert_eq!(
            callers.statuses()[0].state(),
            PeerState::Ok,
            "silence counts from the watch's end"
        );
        clock.set(closed + SYNC_CALLER_SILENCE_MS);
        assert_eq!(callers.statuses()[0].state(), PeerState::Retrying);
        clock.set(closed + u64::from(PEER_FAILING_PASSES) * SYNC_CALLER_SILENCE_MS);
        assert_eq!(callers.statuses()[0].state(), PeerState::Failing);
        callers.answered(peer, None, "a", Err("refused".to_owned()));
        let status = &callers.statuses()[0];
        assert_eq!(status.failures, 1, "heard from again, one failed round");
        assert_eq!(status.last_error.as_deref(), Some("refused"));
    }
}
