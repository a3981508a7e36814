//! The protocol against a model: nodes with in-memory logs that write,
//! sync in random pairs over a network that drops and repeats messages,
//! restart, lose their data and come back from old backups. After final
//! rounds between all pairs, every node holds the same events: the settled
//! union of what the nodes held.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};

use super::protocol::{self, Cursor, Digest, EpochStart, Log, PageBounds};
use crate::actors::commit::settle;
use crate::event::{Event, EventId, Timestamp};
use crate::storage::{StorageResult, StoredEvent};

/// One node's copy of one database, with what it keeps about its peers.
#[derive(Clone, Debug)]
struct ModelNode {
    incarnation: u128,
    history: Vec<EpochStart>,
    /// The log: index + 1 is the lc.
    log: Vec<Event>,
    ids: HashMap<EventId, usize>,
    /// Rewritten events, in order: index + 1 is the update number.
    updates: Vec<EventId>,
    /// Per peer: this node's cursor into the peer, and the peer's cursor
    /// into this node as last learnt.
    links: HashMap<usize, (Option<Cursor>, Option<Cursor>, bool)>,
    /// A source of fresh epochs and incarnations.
    next: u128,
}

impl ModelNode {
    fn new(seed: u128) -> ModelNode {
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
            next: seed + 2,
        }
    }

    fn fresh(&mut self) -> u128 {
        self.next += 1_000_003;
        self.next
    }

    fn merge(&mut self, events: Vec<Event>) {
        for event in events {
            let incoming = StoredEvent {
                id: event.id,
                recorded_at: event.recorded_at,
                data: event.data,
            };
            match self.ids.get(&incoming.id) {
                None => {
                    let lc = self.log.len() as u64 + 1;
                    self.ids.insert(incoming.id, self.log.len());
                    self.log.push(Event {
                        id: incoming.id,
                        data: incoming.data,
                        recorded_at: incoming.recorded_at,
                        lc,
                    });
                }
                Some(index) => {
                    let slot = &mut self.log[*index];
                    let present = StoredEvent {
                        id: slot.id,
                        recorded_at: slot.recorded_at,
                        data: slot.data.clone(),
                    };
                    let (kept, _) = settle(&present, incoming);
                    if kept != present {
                        slot.data = kept.data;
                        slot.recorded_at = kept.recorded_at;
                        self.updates.push(kept.id);
                    }
                }
            }
        }
    }

    /// A restart: a new epoch from the current lc.
    fn reopen(&mut self) {
        let epoch = self.fresh();
        self.history.push(EpochStart {
            epoch,
            start_lc: self.log.len() as u64,
            start_us: self.updates.len() as u64,
        });
    }

    /// A wiped data directory: a new, empty database.
    fn wipe(&mut self) {
        let seed = self.fresh();
        let next = self.next;
        *self = ModelNode::new(seed);
        self.next = next + 7;
    }

    fn settled(&self) -> BTreeMap<EventId, (Bytes, Timestamp)> {
        self.log
            .iter()
            .map(|e| (e.id, (e.data.clone(), e.recorded_at)))
            .collect()
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

    fn updates_after(
        &self,
        after_us: u64,
        bounds: PageBounds,
    ) -> StorageResult<(Vec<(u64, Event)>, bool)> {
        let start = usize::try_from(after_us)
            .unwrap_or(usize::MAX)
            .min(self.updates.len());
        let rest = &self.updates[start..];
        let take = rest.len().min(bounds.events);
        let updates = (after_us + 1..)
            .zip(&rest[..take])
            .map(|(us, id)| (us, self.log[self.ids[id]].clone()))
            .collect();
        Ok((updates, take < rest.len()))
    }

    fn events_after(&self, after_lc: u64, bounds: PageBounds) -> StorageResult<(Vec<Event>, bool)> {
        let start = usize::try_from(after_lc)
            .unwrap_or(usize::MAX)
            .min(self.log.len());
        let rest = &self.log[start..];
        let take = rest.len().min(bounds.events);
        Ok((rest[..take].to_vec(), take < rest.len()))
    }

    fn digests(&self, ids: &[EventId]) -> StorageResult<Vec<Option<Digest>>> {
        let digest_at = |i: &usize| protocol::digest(&self.log[*i].data, self.log[*i].recorded_at);
        Ok(ids
            .iter()
            .map(|id| self.ids.get(id).map(digest_at))
            .collect())
    }

    fn events(&self, ids: &[EventId]) -> StorageResult<Vec<Option<Event>>> {
        Ok(ids
            .iter()
            .map(|id| self.ids.get(id).map(|i| self.log[*i].clone()))
            .collect())
    }
}

/// Which message of a round the network loses, if any, and whether it
/// delivers message 3 twice.
#[derive(Clone, Copy, Debug)]
struct Faults {
    lost: Option<u8>,
    repeat_fill: bool,
}

/// One round from `a` to `b`; returns whether anything was merged.
fn round(nodes: &mut [ModelNode], a: usize, b: usize, faults: Faults, bounds: PageBounds) -> bool {
    let (into_b, b_into_a, bulk) = nodes[a].links.get(&b).copied().unwrap_or_default();
    let (offer, initiator) =
        protocol::offer(&nodes[a], into_b, b_into_a, bulk, bounds).expect("offer");
    if faults.lost == Some(1) {
        return false;
    }
    let b_cursor_into_a = nodes[b].links.get(&a).copied().unwrap_or_default().0;
    let (reply, responder, effects) =
        protocol::reply(&nodes[b], b_cursor_into_a, offer, bounds).expect("reply");
    let mut merged = apply(&mut nodes[b], a, effects);
    if faults.lost == Some(2) {
        return merged;
    }
    let (fill, initiator, effects) = protocol::fill(&nodes[a], initiator, reply).expect("fill");
    merged |= apply(&mut nodes[a], b, effects);
    if faults.lost == Some(3) || (fill.is_empty() && faults.lost.is_none() && !faults.repeat_fill) {
        return merged;
    }
    let (deliver, effects) =
        protocol::deliver(&nodes[b], responder.clone(), fill.clone()).expect("deliver");
    merged |= apply(&mut nodes[b], a, effects);
    if faults.repeat_fill {
        let (_, effects) = protocol::deliver(&nodes[b], responder, fill.clone()).expect("deliver");
        apply(&mut nodes[b], a, effects);
    }
    if faults.lost == Some(4) {
        return merged;
    }
    let effects = protocol::finish(initiator, &fill, deliver);
    merged | apply(&mut nodes[a], b, effects)
}

/// Merges first, then stores the cursors, as a driver must; whether
/// anything changed (events or cursors).
fn apply(node: &mut ModelNode, peer: usize, effects: protocol::Effects) -> bool {
    let before = (node.settled(), node.links.get(&peer).copied());
    node.merge(effects.merge);
    let link = node.links.entry(peer).or_default();
    if let Some(cursor) = effects.cursor_into_peer {
        link.0 = Some(cursor);
    }
    if let Some(cursor) = effects.peer_cursor_into_local {
        link.1 = Some(cursor);
    }
    if let Some(bulk) = effects.bulk {
        link.2 = bulk;
    }
    (node.settled(), node.links.get(&peer).copied()) != before
}

#[derive(Clone, Debug)]
enum Op {
    Write {
        node: usize,
        key: u64,
        value: u8,
        at: u64,
    },
    Round {
        a: usize,
        b: usize,
        lost: Option<u8>,
        repeat_fill: bool,
    },
    Reopen {
        node: usize,
    },
    Wipe {
        node: usize,
    },
    Backup {
        node: usize,
    },
    Restore {
        node: usize,
    },
}

const NODES: usize = 3;

fn op() -> impl Strategy<Value = Op> {
    let node = 0..NODES;
    prop_oneof![
        6 => (node.clone(), 0_u64..40, 0_u8..3, 0_u64..4)
            .prop_map(|(node, key, value, at)| Op::Write { node, key, value, at }),
        6 => (node.clone(), 1..NODES, prop::option::weighted(0.2, 1_u8..5), any::<bool>())
            .prop_map(|(a, offset, lost, repeat_fill)| Op::Round { a, b: (a + offset) % NODES, lost, repeat_fill }),
        1 => node.clone().prop_map(|node| Op::Reopen { node }),
        1 => node.clone().prop_map(|node| Op::Wipe { node }),
        1 => node.clone().prop_map(|node| Op::Backup { node }),
        1 => node.prop_map(|node| Op::Restore { node }),
    ]
}

fn run(ops: Vec<Op>, page_events: usize) {
    let bounds = PageBounds {
        events: page_events,
        bytes: usize::MAX,
    };
    let mut nodes: Vec<ModelNode> = (0..NODES)
        .map(|n| ModelNode::new(n as u128 * 1_000_000_007))
        .collect();
    let mut backups: HashMap<usize, ModelNode> = HashMap::new();
    for op in ops {
        match op {
            Op::Write {
                node,
                key,
                value,
                at,
            } => {
                let id = EventId::from_parts(1_000 + key, u128::from(key));
                let data = Bytes::from(vec![b'a' + value]);
                nodes[node].merge(vec![Event {
                    id,
                    data,
                    recorded_at: Timestamp(at),
                    lc: 0,
                }]);
            }
            Op::Round {
                a,
                b,
                lost,
                repeat_fill,
            } => {
                round(&mut nodes, a, b, Faults { lost, repeat_fill }, bounds);
            }
            Op::Reopen { node } => nodes[node].reopen(),
            Op::Wipe { node } => nodes[node].wipe(),
            Op::Backup { node } => {
                backups.insert(node, nodes[node].clone());
            }
            Op::Restore { node } => {
                if let Some(backup) = backups.get(&node) {
                    let next = nodes[node].next;
                    nodes[node] = backup.clone();
                    nodes[node].next = next + 11;
                    nodes[node].reopen();
                }
            }
        }
    }
    // Everything any node holds now must reach every node.
    let mut expected: BTreeMap<EventId, (Bytes, Timestamp)> = BTreeMap::new();
    let mut union = ModelNode::new(u128::MAX / 2);
    for node in &nodes {
        union.merge(node.log.clone());
    }
    expected.extend(union.settled());
    let faultless = Faults {
        lost: None,
        repeat_fill: false,
    };
    let mut passes = 0;
    loop {
        let mut changed = false;
        for a in 0..NODES {
            for b in 0..NODES {
                if a != b {
                    // A round moves at most a page each way: repeat until quiet.
                    while round(&mut nodes, a, b, faultless, bounds) {
                        changed = true;
                    }
                }
            }
        }
        passes += 1;
        assert!(passes < 1_000, "rounds never went quiet");
        if !changed {
            break;
        }
    }
    for (index, node) in nodes.iter().enumerate() {
        assert_eq!(
            node.settled(),
            expected,
            "node {index} holds the settled union"
        );
        for (lc, event) in (1..).zip(&node.log) {
            assert_eq!(event.lc, lc, "lc contiguous on node {index}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        rng_seed: RngSeed::Fixed(0x5e1c),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_node_ends_with_the_settled_union(
        ops in prop::collection::vec(op(), 1..80),
        page_events in 1_usize..6,
    ) {
        run(ops, page_events);
    }
}

#[test]
fn a_cursor_into_a_restored_log_is_cut_back_to_the_backup() {
    let mut node = ModelNode::new(1);
    for key in 0..10 {
        node.merge(vec![Event {
            id: EventId::from_parts(key, 0),
            data: Bytes::from_static(b"x"),
            recorded_at: Timestamp(0),
            lc: 0,
        }]);
    }
    let backup = node.clone();
    let epoch = node.history[0].epoch;
    for key in 10..20 {
        node.merge(vec![Event {
            id: EventId::from_parts(key, 0),
            data: Bytes::from_static(b"y"),
            recorded_at: Timestamp(0),
            lc: 0,
        }]);
    }
    let cursor = Cursor {
        incarnation: 1,
        epoch,
        lc: 18,
        us: 0,
    };
    assert_eq!(
        protocol::resume(&protocol::Summary::of(&node), Some(cursor)).lc,
        18,
        "the live log keeps the cursor"
    );
    let mut restored = backup;
    restored.reopen();
    assert_eq!(
        protocol::resume(&protocol::Summary::of(&restored), Some(cursor)).lc,
        10,
        "cut back to where the backup ends"
    );
    let unknown = Cursor {
        epoch: 99,
        ..cursor
    };
    assert_eq!(
        protocol::resume(&protocol::Summary::of(&restored), Some(unknown)).lc,
        0,
        "an unknown epoch starts over"
    );
    let other = Cursor {
        incarnation: 2,
        ..cursor
    };
    assert_eq!(
        protocol::resume(&protocol::Summary::of(&restored), Some(other)).lc,
        0,
        "another incarnation starts over"
    );
}
