//! The model node: one node's copy of one database in memory, with what it
//! keeps about its peers (cursors, as `state::Link`) and remembers of them
//! (`recall::PeerRecall`). It merges as a commit does (the merge rule is
//! `merge::settle`) and reads as the storage does, byte bounds included:
//! its `Log` pages with the storage's own `PageBytes` and `LoserPager`,
//! and `pages::the_model_reads_its_log_as_the_storage_does` holds it to a
//! `DatabaseLog` over the in-memory engine.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

use crate::event::{Event, EventId, Timestamp};
use crate::limits::{CONFLICTS_PAGE_BYTES_MAX, LOSER_BYTES_PER_ID_MAX, LOSERS_PER_ID_MAX};
use crate::storage::{LoserPager, PageBytes, StorageResult, StoredEvent};
use crate::sync::merge::settle;
use crate::sync::protocol::{self, Cursor, Digest, EpochStart, Log, Loser, PageBounds};
use crate::sync::recall::PeerRecall;
use crate::sync::state::Link;

/// The sizes of the values writes store: a value's first byte decides its
/// order, its size is one of these, so that a winner may be larger than
/// the value it replaces.
pub(super) const SIZES: [usize; 8] = [1, 2, 3, 5, 8, 13, 21, 34];

/// The largest value a model write stores.
pub(super) const VALUE_BYTES_MAX: usize = 34;

/// How many values a key may take: with one kept, an id lists at most one
/// fewer losers.
pub(super) const VALUES_PER_KEY: u8 = 3;

/// The id of a model write's key.
pub(super) fn key_id(key: u64) -> EventId {
    EventId::from_parts(1_000 + key, u128::from(key))
}

/// The bytes of value `value` of `key`: ordered by `value`, of a size that
/// depends on both.
pub(super) fn value_of(key: u64, value: u8) -> Bytes {
    let index = (key as usize * 3 + usize::from(value)) % SIZES.len();
    let mut data = vec![b'.'; SIZES[index]];
    data[0] = b'a' + value;
    Bytes::from(data)
}

/// Each id's value and `recorded_at`, as a node holds them.
pub(super) type Settled = BTreeMap<EventId, (Bytes, Timestamp)>;

/// The conflicts a node shows: each id with a value that lost.
pub(super) type Conflicts = BTreeMap<(EventId, Bytes), ()>;

/// One node's copy of one database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ModelNode {
    pub(super) incarnation: u128,
    pub(super) history: Vec<EpochStart>,
    /// The log: index + 1 is the lc.
    pub(super) log: Vec<Event>,
    pub(super) ids: HashMap<EventId, usize>,
    /// Rewritten events, in order: index + 1 is the update number.
    pub(super) updates: Vec<EventId>,
    /// Per peer: this node's cursor into the peer, the peer's cursor into
    /// this node as last learnt, and whether this node catches up.
    pub(super) links: HashMap<usize, Link>,
    /// The losers of conflicts, by id, each id's in the order listed.
    pub(super) losers: BTreeMap<EventId, Vec<Bytes>>,
    /// What the node remembers of each peer, in memory: lost at a restart.
    pub(super) recalls: HashMap<usize, PeerRecall>,
    /// A source of fresh epochs and incarnations.
    pub(super) next: u128,
}

/// What a node stores, as a restart keeps it: everything but what it
/// remembers in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Stored {
    log: Vec<Event>,
    updates: Vec<EventId>,
    links: BTreeMap<usize, Link>,
    losers: BTreeMap<EventId, Vec<Bytes>>,
    history: Vec<EpochStart>,
}

impl ModelNode {
    pub(super) fn new(seed: u128) -> ModelNode {
        ModelNode {
            incarnation: seed,
            history: vec![EpochStart {
                epoch: seed + 1,
                start_lc: 0,
                start_us: 0,
            }],
            log: Vec::new(),
            ids: HashMap::new(),
            updates: Vec::new(),
            links: HashMap::new(),
            losers: BTreeMap::new(),
            recalls: HashMap::new(),
            next: seed + 2,
        }
    }

    /// A node whose log holds events of `sizes` (ids and `recorded_at` by
    /// lc, from 1), of which those at the lcs of `rewritten` were rewritten
    /// since (an earlier `recorded_at`, the same bytes), in that order.
    pub(super) fn of_sizes(sizes: &[usize], rewritten: &[u64]) -> ModelNode {
        let mut node = ModelNode::new(1);
        for (size, lc) in sizes.iter().zip(1..) {
            node.merge(vec![Event {
                id: EventId::from_parts(lc, 0),
                data: Bytes::from(vec![b'x'; *size]),
                recorded_at: Timestamp(lc + 1_000),
                lc: 0,
            }]);
        }
        for lc in rewritten {
            let mut earlier = node.log[*lc as usize - 1].clone();
            earlier.recorded_at.0 -= 1;
            node.merge(vec![earlier]);
        }
        node
    }

    pub(super) fn fresh(&mut self) -> u128 {
        self.next += 1_000_003;
        self.next
    }

    /// Writes value `value` of `key`, recorded at `at`.
    pub(super) fn write(&mut self, key: u64, value: u8, at: u64) {
        self.merge(vec![Event {
            id: key_id(key),
            data: value_of(key, value),
            recorded_at: Timestamp(at),
            lc: 0,
        }]);
    }

    /// Writes `data` under `key`, recorded at `key`.
    pub(super) fn write_bytes(&mut self, key: u64, data: &[u8]) {
        self.merge(vec![Event {
            id: key_id(key),
            data: Bytes::copy_from_slice(data),
            recorded_at: Timestamp(key),
            lc: 0,
        }]);
    }

    /// Merges as a commit does: a new id takes the next lc, a stored one is
    /// settled with what came (a stored event it changes takes the next
    /// update number; one new in this merge is stored in its settled form).
    /// Returns the run `(after, to]` of the new events when each was stored
    /// exactly as given: the peer they came from holds them.
    pub(super) fn merge(&mut self, events: Vec<Event>) -> Option<(u64, u64)> {
        let before = self.log.len();
        let mut changed_new = false;
        for event in events {
            let incoming = StoredEvent {
                id: event.id,
                recorded_at: event.recorded_at,
                data: event.data,
            };
            let Some(&index) = self.ids.get(&incoming.id) else {
                self.ids.insert(incoming.id, self.log.len());
                self.log.push(Event {
                    id: incoming.id,
                    data: incoming.data,
                    recorded_at: incoming.recorded_at,
                    lc: self.log.len() as u64 + 1,
                });
                continue;
            };
            let slot = &self.log[index];
            let present = StoredEvent {
                id: slot.id,
                recorded_at: slot.recorded_at,
                data: slot.data.clone(),
            };
            let (kept, lost) = settle(&present, incoming);
            if let Some(lost) = lost {
                self.list(kept.id, lost);
            }
            if kept != present {
                let slot = &mut self.log[index];
                slot.data = kept.data;
                slot.recorded_at = kept.recorded_at;
                if index < before {
                    self.updates.push(kept.id);
                } else {
                    changed_new = true;
                }
            }
        }
        let after = self.log.len();
        (after > before && !changed_new).then_some((before as u64, after as u64))
    }

    /// Lists `lost` under `id`, once, within what a node keeps per id.
    pub(super) fn list(&mut self, id: EventId, lost: Bytes) {
        let listed = self.losers.entry(id).or_default();
        let bytes: usize = listed.iter().map(Bytes::len).sum();
        if listed.contains(&lost)
            || listed.len() >= LOSERS_PER_ID_MAX
            || bytes + lost.len() > LOSER_BYTES_PER_ID_MAX
        {
            return;
        }
        listed.push(lost);
    }

    /// The event stored for `id`.
    pub(super) fn get(&self, id: EventId) -> Option<&Event> {
        self.ids.get(&id).map(|index| &self.log[*index])
    }

    /// The conflicts as a node shows them: losers of ids it holds, other
    /// than the value it keeps.
    pub(super) fn conflicts(&self) -> Conflicts {
        let mut shown = BTreeMap::new();
        for (id, listed) in &self.losers {
            let Some(kept) = self.get(*id) else {
                continue;
            };
            for lost in listed {
                if *lost != kept.data {
                    shown.insert((*id, lost.clone()), ());
                }
            }
        }
        shown
    }

    /// A restart: what was remembered is lost, and a new epoch starts at
    /// the current lc.
    pub(super) fn reopen(&mut self) {
        self.recalls.clear();
        let epoch = self.fresh();
        self.history.push(EpochStart {
            epoch,
            start_lc: self.log.len() as u64,
            start_us: self.updates.len() as u64,
        });
    }

    /// A wiped data directory: a new, empty database.
    pub(super) fn wipe(&mut self) {
        let seed = self.fresh();
        let next = self.next;
        *self = ModelNode::new(seed);
        self.next = next + 7;
    }

    /// This node restored from `backup` (an older copy of it): what the
    /// copy stored, opened in a new epoch.
    pub(super) fn restore(&mut self, backup: &ModelNode) {
        let next = self.next;
        *self = backup.clone();
        self.next = next + 11;
        self.reopen();
    }

    /// Each id's value and `recorded_at`.
    pub(super) fn settled(&self) -> Settled {
        self.log
            .iter()
            .map(|e| (e.id, (e.data.clone(), e.recorded_at)))
            .collect()
    }

    /// What the node stores: what a refused message must leave unchanged.
    pub(super) fn stored(&self) -> Stored {
        Stored {
            log: self.log.clone(),
            updates: self.updates.clone(),
            links: self
                .links
                .iter()
                .map(|(peer, link)| (*peer, *link))
                .collect(),
            losers: self.losers.clone(),
            history: self.history.clone(),
        }
    }

    /// The link to `peer`, as stored.
    pub(super) fn link(&self, peer: usize) -> Link {
        self.links.get(&peer).copied().unwrap_or_default()
    }

    /// This node's cursor into `peer`.
    pub(super) fn cursor_into(&self, peer: usize) -> Option<Cursor> {
        self.link(peer).into_peer
    }

    /// What this node remembers of `peer`.
    pub(super) fn recall(&self, peer: usize) -> PeerRecall {
        self.recalls.get(&peer).cloned().unwrap_or_default()
    }

    /// The current epoch of the log.
    pub(super) fn epoch(&self) -> u128 {
        self.history.last().map_or(0, |last| last.epoch)
    }
}

impl Log for ModelNode {
    fn incarnation(&self) -> u128 {
        self.incarnation
    }

    fn history(&self) -> Vec<EpochStart> {
        self.history.clone()
    }

    fn head_lc(&self) -> u64 {
        self.log.len() as u64
    }

    fn head_us(&self) -> u64 {
        self.updates.len() as u64
    }

    /// As a store's `scan_log` under `DatabaseLog`: at most `bounds.events`,
    /// and no more once the next would take the data past `bounds.bytes`
    /// (the first whatever its size); more while the log goes on past the
    /// last one.
    fn events_after(&self, after_lc: u64, bounds: PageBounds) -> StorageResult<(Vec<Event>, bool)> {
        let start = usize::try_from(after_lc)
            .unwrap_or(usize::MAX)
            .min(self.log.len());
        let mut budget = PageBytes::new(bounds.bytes);
        let events: Vec<Event> = self.log[start..]
            .iter()
            .take(bounds.events)
            .take_while(|event| budget.take(event.data.len()))
            .cloned()
            .collect();
        let last = events.last().map_or(after_lc, |event| event.lc);
        Ok((events, last < self.head_lc()))
    }

    /// As `DatabaseLog` does: the update numbers after `after_us`, at most
    /// `bounds.events`, each event in its current form while the data stays
    /// within `bounds.bytes` (the first whatever its size).
    fn updates_after(
        &self,
        after_us: u64,
        bounds: PageBounds,
    ) -> StorageResult<(Vec<(u64, Event)>, bool)> {
        let start = usize::try_from(after_us)
            .unwrap_or(usize::MAX)
            .min(self.updates.len());
        let mut budget = PageBytes::new(bounds.bytes);
        let mut updates = Vec::new();
        let mut last = after_us;
        for (index, id) in self
            .updates
            .iter()
            .enumerate()
            .skip(start)
            .take(bounds.events)
        {
            let us = index as u64 + 1;
            if let Some(event) = self.get(*id) {
                if !budget.take(event.data.len()) {
                    break;
                }
                updates.push((us, event.clone()));
            }
            last = us;
        }
        Ok((updates, last < self.head_us()))
    }

    fn digests(&self, ids: &[EventId]) -> StorageResult<Vec<Option<Digest>>> {
        Ok(ids
            .iter()
            .map(|id| {
                self.get(*id)
                    .map(|event| protocol::digest(&event.data, event.recorded_at))
            })
            .collect())
    }

    fn events(&self, ids: &[EventId]) -> StorageResult<Vec<Option<Event>>> {
        Ok(ids.iter().map(|id| self.get(*id).cloned()).collect())
    }

    fn losers_listed(&self) -> u64 {
        self.losers.values().map(|listed| listed.len() as u64).sum()
    }

    /// As a store's `losers_after` under `DatabaseLog`: whole ids, the first
    /// whatever it holds, each next one while the page holds at most
    /// `bounds.events` values and the lesser of `bounds.bytes` and
    /// `CONFLICTS_PAGE_BYTES_MAX` of their data.
    fn losers_after(
        &self,
        after: Option<EventId>,
        bounds: PageBounds,
    ) -> StorageResult<(Vec<Loser>, bool)> {
        let start = match after {
            Some(id) => std::ops::Bound::Excluded(id),
            None => std::ops::Bound::Unbounded,
        };
        let mut pager = LoserPager::new(bounds.events, bounds.bytes.min(CONFLICTS_PAGE_BYTES_MAX));
        let mut stopped = false;
        'ids: for (id, listed) in self.losers.range((start, std::ops::Bound::Unbounded)) {
            for lost in listed {
                if !pager.push(*id, lost.clone()) {
                    stopped = true;
                    break 'ids;
                }
            }
        }
        let (page, more) = pager.finish(stopped);
        let losers = page
            .into_iter()
            .flat_map(|(id, lost)| lost.into_iter().map(move |data| Loser { id, data }))
            .collect();
        Ok((losers, more))
    }
}
