//! What sync asks of a database: its log as the protocol reads it, its link
//! to each peer, what it remembers of each, and the applying of a step's
//! effects, one step at a time per peer.

use std::sync::{Arc, PoisonError};

use super::Database;
use crate::error::Result;
use crate::event::EventId;
use crate::limits::SYNC_PEERS_RECALLED_MAX;
use crate::sync::Effects;
use crate::sync::merge::furthest;
use crate::sync::recall::PeerRecall;
use crate::sync::state::{DatabaseLog, Link, decode_link, encode_link, link_key};

impl Database {
    /// The durable log as the sync protocol reads it, as of now.
    pub(crate) fn sync_log(&self) -> Result<DatabaseLog> {
        Ok(DatabaseLog {
            store: self.shared.store()?,
            incarnation: self.shared.record.incarnation,
            history: self.shared.history.clone(),
            // The update number first: a rewrite is durable only with its
            // commit, which the lc watermark also covers.
            head_us: self.shared.durable.us(),
            head_lc: self.shared.durable.lc(),
            losers_listed: self.shared.durable.losers_listed(),
        })
    }

    /// What this database keeps about `peer`.
    pub(crate) async fn sync_link(&self, peer: EventId) -> Result<Link> {
        let store = self.shared.store()?;
        self.read(move || match store.meta(&link_key(peer))? {
            Some(bytes) => Ok(decode_link(&bytes)?),
            None => Ok(Link::default()),
        })
        .await
    }

    /// The lock under which sync steps with `peer` read and write its link.
    fn link_lock(&self, peer: EventId) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .shared
            .link_locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !locks.contains_key(&peer) && locks.len() >= SYNC_PEERS_RECALLED_MAX {
            // Only a lock nobody holds or waits for may go.
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        }
        locks.entry(peer).or_default().clone()
    }

    /// What sync remembers of `peer`.
    pub(crate) fn recall(&self, peer: EventId) -> PeerRecall {
        self.shared
            .recalls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .of(peer)
    }

    /// Changes what sync remembers of `peer`.
    pub(crate) fn update_recall<R>(
        &self,
        peer: EventId,
        change: impl FnOnce(&mut PeerRecall) -> R,
    ) -> R {
        self.shared
            .recalls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .update(peer, change)
    }

    /// Applies what a sync step asks for: merges its events and lists its
    /// losers and, in the same atomic write, stores the cursors it moved;
    /// then remembers what the step taught of the peer. Returns the link as
    /// stored. One step at a time per peer reads and writes its link: a node
    /// is the initiator and the responder of rounds with the same peer at
    /// once, and a write from a link read before the other's would move a
    /// cursor back.
    pub(crate) async fn apply_sync(&self, peer: EventId, effects: Effects) -> Result<Link> {
        let lock = self.link_lock(peer);
        let _only_step = lock.lock().await;
        let link = self.sync_link(peer).await?;
        let updated = Link {
            into_peer: furthest(link.into_peer, effects.cursor_into_peer),
            peer_into_local: effects.peer_cursor_into_local.or(link.peer_into_local),
            bulk: effects.bulk.unwrap_or(link.bulk),
        };
        let mut held = None;
        if !effects.merge.is_empty() || !effects.losers.is_empty() || updated != link {
            // What no read could serve is skipped, and the rest stored with
            // the cursors: refusing the whole page would stop this
            // database's sync with the peer for good.
            let (events, losers, refused) = self.screen(effects.merge, effects.losers, Some(peer));
            let meta = vec![(link_key(peer), encode_link(&updated))];
            let receipt = self.merge_with_meta(events, losers, meta).await?;
            self.shared.refusals.record(peer, &refused);
            held = effects.merge_origin.zip(receipt.held);
        }
        self.update_recall(peer, |recall| {
            if let Some((origin, (after_lc, to_lc))) = held {
                recall.remember(origin, after_lc, to_lc);
            }
            if let Some(cursor) = updated.peer_into_local {
                recall.passed(cursor);
            }
            if let Some(scan) = effects.loser_scan {
                recall.read_losers(scan);
            }
        });
        Ok(updated)
    }
}

#[cfg(feature = "server")]
impl Database {
    /// Where the database stands, durably: what a peer's watch is told, so
    /// that it knows when a round would find something new.
    pub(crate) fn standing(&self) -> Standing {
        // The update number and the count of losers first: a commit
        // publishes its clock last.
        let us = self.shared.durable.us();
        let losers = self.shared.durable.losers_listed();
        Standing {
            incarnation: self.shared.record.incarnation,
            epoch: self.shared.history.last().map(|last| last.epoch),
            lc: self.shared.durable.lc(),
            us,
            losers,
        }
    }
}

/// Where a database stands: its incarnation, durable clock, update number
/// and count of listed losers. Anything a round could carry moves one of
/// them.
#[cfg(feature = "server")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Standing {
    /// The database's incarnation, so that a database made again under the
    /// same name is news even at the same clock.
    #[serde(with = "incarnation_hex")]
    pub(crate) incarnation: u128,
    /// The epoch the log is in (since this node's open), so that a peer
    /// that only pushes can ask for the log from its head; nodes of an
    /// earlier release do not say.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "epoch_hex")]
    pub(crate) epoch: Option<u128>,
    /// The durable logical clock.
    pub(crate) lc: u64,
    /// The durable update number.
    pub(crate) us: u64,
    /// Distinct losing values of conflicts listed.
    pub(crate) losers: u64,
}

/// An epoch, if named, as 32 hexadecimal digits.
#[cfg(feature = "server")]
mod epoch_hex {
    pub(super) fn serialize<S: serde::Serializer>(
        value: &Option<u128>,
        out: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => super::incarnation_hex::serialize(value, out),
            None => out.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        input: D,
    ) -> Result<Option<u128>, D::Error> {
        let text = <Option<std::borrow::Cow<'de, str>> as serde::Deserialize>::deserialize(input)?;
        text.map(|text| u128::from_str_radix(&text, 16).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// An incarnation as 32 hexadecimal digits: JSON numbers stop at 2^53 for
/// many readers.
#[cfg(feature = "server")]
mod incarnation_hex {
    pub(super) fn serialize<S: serde::Serializer>(value: &u128, out: S) -> Result<S::Ok, S::Error> {
        out.serialize_str(&format!("{value:032x}"))
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        input: D,
    ) -> Result<u128, D::Error> {
        let text = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(input)?;
        u128::from_str_radix(&text, 16).map_err(serde::de::Error::custom)
    }
}
