//! What a database remembers of each peer between sync rounds, in memory
//! only: the runs of its own log that hold events which came from the peer
//! (so that pages to the peer name them instead of offering their ids back),
//! how far it has read the peer's list of losers, and what it checked of the
//! peer's last offer (so that the fill which follows is held to it rather
//! than believed). Losing it (a restart) costs one more offer of those ids,
//! one more read of the list and one more round before a cursor moves, never
//! an event: a run is only named to the epoch of the peer's log it came
//! from, and a fill with no offer remembered moves no cursor.

use std::collections::BTreeMap;

use super::protocol::{Cursor, Held, LoserScan, Origin, Recall, Responder};
use crate::event::EventId;
use crate::limits::{
    EVENT_BYTES_MAX, SYNC_BULK_PULL_HOLD_MS, SYNC_HELD_RUNS_MAX, SYNC_PEERS_RECALLED_MAX,
    SYNC_V2_PUSH_EVENT_BYTES_MAX,
};

/// What is remembered of one peer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerRecall {
    /// Runs of the local log the peer holds, sorted and disjoint, all from
    /// `origin`.
    held: Vec<Held>,
    /// The peer's current epoch, as last learnt.
    origin: Option<Origin>,
    /// How far the peer's list of losers has been read.
    losers: LoserScan,
    /// Until when the peer pulls this log in bulk (it said so in its last
    /// offer): pushes to it wait meanwhile, since its pulls carry the same
    /// events. Bounded in time, so that a peer that stops pulling is
    /// pushed to again.
    pulling_until: Option<tokio::time::Instant>,
    /// What this node checked of the peer's last offer and asked for in its
    /// reply, until the fill that answers it (a page of ids at most).
    answered: Option<Responder>,
}

impl PeerRecall {
    /// What the protocol reads of it; `exchanges_lists` is false for a peer
    /// of the first release, which neither names runs nor exchanges lists,
    /// and reads smaller requests (the events pushed to it are at most
    /// [`SYNC_V2_PUSH_EVENT_BYTES_MAX`]).
    pub fn view(&self, exchanges_lists: bool) -> Recall<'_> {
        let push = self
            .pulling_until
            .is_none_or(|until| tokio::time::Instant::now() >= until);
        Recall {
            held: if exchanges_lists { &self.held } else { &[] },
            losers: exchanges_lists.then_some(self.losers),
            push,
            push_event_bytes: if exchanges_lists {
                EVENT_BYTES_MAX
            } else {
                SYNC_V2_PUSH_EVENT_BYTES_MAX
            },
        }
    }

    /// The peer's offer said whether it pulls in bulk (catching up) or
    /// pulls from nothing.
    pub fn pulls_in_bulk(&mut self, bulk: bool) {
        self.pulling_until = bulk.then(|| {
            tokio::time::Instant::now() + std::time::Duration::from_millis(SYNC_BULK_PULL_HOLD_MS)
        });
    }

    /// The peer's log is now in `origin`: runs from another epoch of it are
    /// no longer certain to be there.
    pub fn learn(&mut self, origin: Origin) {
        if self.origin != Some(origin) {
            self.held.clear();
            self.origin = Some(origin);
        }
    }

    /// The peer's cursor into the local log stands at `cursor`: runs it has
    /// passed are needed no more.
    pub fn passed(&mut self, cursor: Cursor) {
        self.held.retain(|run| run.to_lc > cursor.lc);
    }

    /// The merge of events from `origin` stored them anew, unchanged, at the
    /// logical clocks `(after_lc, to_lc]`.
    pub fn remember(&mut self, origin: Origin, after_lc: u64, to_lc: u64) {
        self.learn(origin);
        // New events take the next clocks: a run starts past every other.
        if let Some(last) = self.held.last_mut() {
            assert!(last.to_lc <= after_lc, "held runs are disjoint and sorted");
            if last.to_lc == after_lc {
                last.to_lc = to_lc;
                return;
            }
        }
        self.held.push(Held {
            after_lc,
            to_lc,
            incarnation: origin.incarnation,
            epoch: origin.epoch,
        });
        if self.held.len() > SYNC_HELD_RUNS_MAX {
            // Forgetting a run only sends its ids again.
            self.held.remove(0);
        }
    }

    /// The read of the peer's list of losers moved.
    pub fn read_losers(&mut self, scan: LoserScan) {
        self.losers = scan;
    }

    /// This node replied to the peer's offer, as `responder` remembers.
    pub fn answered(&mut self, responder: Responder) {
        self.answered = Some(responder);
    }

    /// What the fill that follows the last reply is held to, once: a fill
    /// that answers no remembered reply moves no cursor.
    pub fn take_answered(&mut self) -> Responder {
        self.answered.take().unwrap_or_else(Responder::unknown)
    }
}

/// What a database remembers of its peers, bounded in number: a peer
/// forgotten to make room is only offered some ids again.
#[derive(Debug, Default)]
pub struct Recalls {
    peers: BTreeMap<EventId, PeerRecall>,
}

impl Recalls {
    /// What is remembered of `peer` (nothing yet, for a new one).
    pub fn of(&self, peer: EventId) -> PeerRecall {
        self.peers.get(&peer).cloned().unwrap_or_default()
    }

    /// Changes what is remembered of `peer`.
    pub fn update<R>(&mut self, peer: EventId, change: impl FnOnce(&mut PeerRecall) -> R) -> R {
        if !self.peers.contains_key(&peer) && self.peers.len() >= SYNC_PEERS_RECALLED_MAX {
            self.peers.pop_first();
        }
        change(self.peers.entry(peer).or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: Origin = Origin {
        incarnation: 1,
        epoch: 2,
    };

    fn runs(recall: &PeerRecall) -> Vec<(u64, u64)> {
        recall
            .view(true)
            .held
            .iter()
            .map(|run| (run.after_lc, run.to_lc))
            .collect()
    }

    #[test]
    fn runs_join_end_to_end_and_go_once_passed_or_of_another_epoch() {
        let mut recall = PeerRecall::default();
        recall.remember(ORIGIN, 0, 10);
        recall.remember(ORIGIN, 10, 20);
        recall.remember(ORIGIN, 25, 30);
        assert_eq!(runs(&recall), vec![(0, 20), (25, 30)]);
        assert!(
            recall.view(false).held.is_empty(),
            "not for a first-release peer"
        );
        recall.passed(Cursor {
            incarnation: 9,
            epoch: 9,
            lc: 20,
            us: 0,
        });
        assert_eq!(runs(&recall), vec![(25, 30)]);
        recall.learn(Origin { epoch: 3, ..ORIGIN });
        assert_eq!(runs(&recall), Vec::<(u64, u64)>::new());
    }

    #[test]
    fn the_runs_of_a_peer_are_bounded() {
        let mut recall = PeerRecall::default();
        for n in 0..(SYNC_HELD_RUNS_MAX as u64 + 5) {
            recall.remember(ORIGIN, 2 * n, 2 * n + 1);
        }
        let kept = runs(&recall);
        assert_eq!(kept.len(), SYNC_HELD_RUNS_MAX);
        assert_eq!(kept[0], (10, 11), "the oldest are forgotten");
    }
}
