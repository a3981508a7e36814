//! What a node refused of what its peers sent, per peer, in memory only: the
//! values a merge skips because no read could serve them (see
//! [`Unservable`]). The rest of a page is stored and the cursor moves past
//! the skipped ones (refusing the whole page would stop the database's sync
//! with that peer for good); this ledger is how the refusal stays visible on
//! `/peers`, beside the log line and the metric.
//!
//! Every database's sync steps write to the node's one ledger, each adding
//! counts under one lock; readers take a copy.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use crate::event::{EventId, Unservable};
use crate::limits::SYNC_PEERS_RECALLED_MAX;

/// A value a merge refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The database it was for.
    pub database: String,
    /// The event's id.
    pub id: EventId,
    /// Whether it was a losing value from a peer's list of conflicts rather
    /// than an event.
    pub loser: bool,
    /// Why no read could serve it.
    pub reason: Unservable,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = if self.loser {
            "a losing value of event"
        } else {
            "event"
        };
        write!(
            f,
            "database {}: {what} {} refused and skipped: {}",
            self.database, self.id, self.reason
        )
    }
}

/// What was refused of one peer since the node started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerRefusals {
    /// Values refused.
    pub values: u64,
    /// The last refusal, said for a person.
    pub last: Option<String>,
}

/// The refusals of every peer, by node id; at most
/// [`SYNC_PEERS_RECALLED_MAX`] peers, the one refused longest ago forgotten
/// first.
#[derive(Debug, Default)]
pub struct RefusalLedger {
    peers: Mutex<Ledger>,
}

#[derive(Debug, Default)]
struct Ledger {
    /// Each peer's refusals, with the sequence number of its last one.
    by_peer: BTreeMap<EventId, (u64, PeerRefusals)>,
    /// Counts every record, to know which peer was refused longest ago.
    sequence: u64,
}

impl RefusalLedger {
    /// Adds `refused`, which came from `peer`.
    pub fn record(&self, peer: EventId, refused: &[Refusal]) {
        let Some(last) = refused.last() else { return };
        let mut ledger = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        if !ledger.by_peer.contains_key(&peer) && ledger.by_peer.len() >= SYNC_PEERS_RECALLED_MAX {
            let oldest = ledger
                .by_peer
                .iter()
                .min_by_key(|(_, (sequence, _))| *sequence)
                .map(|(peer, _)| *peer);
            if let Some(oldest) = oldest {
                ledger.by_peer.remove(&oldest);
            }
        }
        ledger.sequence += 1;
        let sequence = ledger.sequence;
        let (at, refusals) = ledger.by_peer.entry(peer).or_default();
        *at = sequence;
        refusals.values += refused.len() as u64;
        refusals.last = Some(last.to_string());
    }

    /// What was refused of each peer, by node id.
    pub fn all(&self) -> BTreeMap<EventId, PeerRefusals> {
        let ledger = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        ledger
            .by_peer
            .iter()
            .map(|(peer, (_, refusals))| (*peer, refusals.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(n: u64) -> Refusal {
        Refusal {
            database: "yard".to_owned(),
            id: EventId::from_parts(n, 0),
            loser: n % 2 == 1,
            reason: Unservable::RecordedAt(1 << 63),
        }
    }

    #[test]
    fn refusals_count_per_peer_and_keep_the_last() {
        let ledger = RefusalLedger::default();
        let (a, b) = (EventId::from_parts(1, 1), EventId::from_parts(2, 2));
        ledger.record(a, &[refusal(0), refusal(1)]);
        ledger.record(a, &[]);
        ledger.record(b, &[refusal(2)]);
        let all = ledger.all();
        assert_eq!(all[&a].values, 2);
        assert_eq!(
            all[&a].last.as_deref(),
            Some(refusal(1).to_string().as_str())
        );
        assert!(
            all[&a]
                .last
                .as_deref()
                .is_some_and(|last| last.starts_with("database yard: a losing value of event")),
            "{all:?}"
        );
        assert_eq!(all[&b].values, 1);
    }

    #[test]
    fn the_peer_refused_longest_ago_is_forgotten_first() {
        let ledger = RefusalLedger::default();
        let peer = |n: usize| EventId::from_parts(n as u64, 9);
        for n in 0..SYNC_PEERS_RECALLED_MAX {
            ledger.record(peer(n), &[refusal(0)]);
        }
        ledger.record(peer(0), &[refusal(0)]);
        ledger.record(peer(SYNC_PEERS_RECALLED_MAX), &[refusal(0)]);
        let all = ledger.all();
        assert_eq!(all.len(), SYNC_PEERS_RECALLED_MAX);
        assert!(all.contains_key(&peer(0)), "refused again lately");
        assert!(!all.contains_key(&peer(1)), "refused longest ago");
        assert!(all.contains_key(&peer(SYNC_PEERS_RECALLED_MAX)));
    }
}
