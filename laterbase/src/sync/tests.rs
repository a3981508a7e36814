//! The protocol against a model: nodes with in-memory logs that write,
//! sync in random pairs over a network that drops and repeats messages,
//! restart, lose their data and come back from old backups. After final
//! rounds between all pairs, every node holds the same events: the settled
//! union of what the nodes held, and lists the same losers of conflicts.
//! Nodes remember runs of their logs that a peer holds (and name them
//! rather than offering their ids back), as a node does in memory.
//!
//! Liars interleave with the honest rounds: messages that claim another
//! node's id with forged cursors, page bounds, heads, held runs and fills.
//! Each must be refused or move nothing it should not: the final rounds
//! still bring every node every event.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};

use super::merge::settle;
use super::protocol::{self, Cursor, Digest, Entries, EpochStart, Log, Loser, PageBounds};
use super::recall::PeerRecall;
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
    /// The losers of conflicts, by id.
    losers: BTreeMap<EventId, Vec<Bytes>>,
    /// What the node remembers of each peer, in memory: lost at a restart.
    recalls: HashMap<usize, PeerRecall>,
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
            losers: BTreeMap::new(),
            recalls: HashMap::new(),
            next: seed + 2,
        }
    }

    fn fresh(&mut self) -> u128 {
        self.next += 1_000_003;
        self.next
    }

    /// Merges as a commit does; returns the run `(after, to]` of the new
    /// events when each was stored exactly as given.
    fn merge(&mut self, events: Vec<Event>) -> Option<(u64, u64)> {
        let before = self.log.len() as u64;
        let mut changed_new = false;
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
                    let index = *index;
                    let slot = &mut self.log[index];
                    let present = StoredEvent {
                        id: slot.id,
                        recorded_at: slot.recorded_at,
                        data: slot.data.clone(),
                    };
                    let (kept, lost) = settle(&present, incoming);
                    if kept != present {
                        slot.data = kept.data;
                        slot.recorded_at = kept.recorded_at;
                        self.updates.push(kept.id);
                        changed_new |= index as u64 >= before;
                    }
                    if let Some(lost) = lost {
                        self.list(kept.id, lost);
                    }
                }
            }
        }
        let after = self.log.len() as u64;
        (after > before && !changed_new).then_some((before, after))
    }

    fn list(&mut self, id: EventId, lost: Bytes) {
        let listed = self.losers.entry(id).or_default();
        if !listed.contains(&lost) {
            listed.push(lost);
        }
    }

    /// The conflicts as a node shows them: losers of ids it holds, other
    /// than the value it keeps.
    fn conflicts(&self) -> BTreeMap<(EventId, Bytes), ()> {
        let mut shown = BTreeMap::new();
        for (id, listed) in &self.losers {
            let Some(index) = self.ids.get(id) else {
                continue;
            };
            for lost in listed {
                if *lost != self.log[*index].data {
                    shown.insert((*id, lost.clone()), ());
                }
            }
        }
        shown
    }

    /// A restart: a new epoch from the current lc.
    fn reopen(&mut self) {
        self.recalls.clear();
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

    fn losers_listed(&self) -> u64 {
        self.losers.values().map(|listed| listed.len() as u64).sum()
    }

    fn losers_after(
        &self,
        after: Option<EventId>,
        bounds: PageBounds,
    ) -> StorageResult<(Vec<Loser>, bool)> {
        let start = match after {
            Some(id) => std::ops::Bound::Excluded(id),
            None => std::ops::Bound::Unbounded,
        };
        let mut page = Vec::new();
        for (ids, (id, listed)) in self
            .losers
            .range((start, std::ops::Bound::Unbounded))
            .enumerate()
        {
            if ids > 0 && page.len() + listed.len() > bounds.events {
                return Ok((page, true));
            }
            page.extend(listed.iter().map(|data| Loser {
                id: *id,
                data: data.clone(),
            }));
        }
        Ok((page, false))
    }
}

/// Which message of a round the network loses, if any, and whether it
/// delivers message 3 twice.
#[derive(Clone, Copy, Debug)]
struct Faults {
    lost: Option<u8>,
    repeat_fill: bool,
}

/// What a round did.
#[derive(Clone, Copy, Debug, Default)]
struct Done {
    /// Whether anything changed: events, losers or cursors.
    changed: bool,
    /// Ids offered either way, in pages.
    ids: usize,
    /// Events sent either way, in pages and answers.
    events: usize,
}

fn entries(page: &protocol::Page) -> (usize, usize) {
    match &page.entries {
        Entries::Ids(ids) => (ids.len(), 0),
        Entries::Events(events) => (0, events.len()),
    }
}

/// One round from `a` to `b`.
fn round(nodes: &mut [ModelNode], a: usize, b: usize, faults: Faults, bounds: PageBounds) -> Done {
    let mut done = Done::default();
    let (into_b, b_into_a, bulk) = nodes[a].links.get(&b).copied().unwrap_or_default();
    let recall = nodes[a].recalls.get(&b).cloned().unwrap_or_default();
    let (offer, initiator) =
        protocol::offer(&nodes[a], into_b, b_into_a, bulk, recall.view(true), bounds)
            .expect("offer");
    let (ids, events) = entries(&offer.push);
    done.ids += ids;
    done.events += events;
    if faults.lost == Some(1) {
        return done;
    }
    let b_cursor_into_a = nodes[b].links.get(&a).copied().unwrap_or_default().0;
    let origin_a = protocol::Origin {
        incarnation: offer.summary.incarnation,
        epoch: offer.summary.history.last().expect("an epoch").epoch,
    };
    nodes[b].recalls.entry(a).or_default().learn(origin_a);
    let recall = nodes[b].recalls.get(&a).cloned().unwrap_or_default();
    let (reply, responder, effects) =
        protocol::reply(&nodes[b], b_cursor_into_a, offer, recall.view(true), bounds)
            .expect("reply");
    let (ids, events) = entries(&reply.page);
    done.ids += ids;
    done.events += events;
    done.changed |= apply(&mut nodes[b], a, effects);
    if faults.lost == Some(2) {
        return done;
    }
    let origin_b = protocol::Origin::of(reply.page.to);
    nodes[a].recalls.entry(b).or_default().learn(origin_b);
    let recall = nodes[a].recalls.get(&b).cloned().unwrap_or_default();
    let (fill, initiator, effects) =
        protocol::fill(&nodes[a], initiator, reply, recall.view(true), bounds).expect("fill");
    done.events += fill.events.len();
    done.changed |= apply(&mut nodes[a], b, effects);
    if faults.lost == Some(3) || (fill.is_empty() && faults.lost.is_none() && !faults.repeat_fill) {
        return done;
    }
    let recall = nodes[b].recalls.get(&a).cloned().unwrap_or_default();
    let (deliver, effects) = protocol::deliver(
        &nodes[b],
        responder.clone(),
        fill.clone(),
        recall.view(true),
        bounds,
    )
    .expect("deliver");
    done.events += deliver.events.len();
    done.changed |= apply(&mut nodes[b], a, effects);
    if faults.repeat_fill {
        let recall = nodes[b].recalls.get(&a).cloned().unwrap_or_default();
        let (_, effects) = protocol::deliver(
            &nodes[b],
            responder,
            fill.clone(),
            recall.view(true),
            bounds,
        )
        .expect("deliver");
        apply(&mut nodes[b], a, effects);
    }
    if faults.lost == Some(4) {
        return done;
    }
    let recall = nodes[a].recalls.get(&b).cloned().unwrap_or_default();
    let effects = protocol::finish(initiator, &fill, deliver, recall.view(true));
    done.changed |= apply(&mut nodes[a], b, effects);
    done
}

/// Merges and lists first, then stores the cursors, then remembers, as a
/// driver must; whether anything changed (events, losers or cursors).
fn apply(node: &mut ModelNode, peer: usize, effects: protocol::Effects) -> bool {
    let before = (
        node.settled(),
        node.links.get(&peer).copied(),
        node.losers.clone(),
    );
    let held = node.merge(effects.merge);
    for loser in effects.losers {
        node.list(loser.id, loser.data);
    }
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
    let peer_into_local = link.1;
    let recall = node.recalls.entry(peer).or_default();
    if let (Some(origin), Some((after, to))) = (effects.merge_origin, held) {
        recall.remember(origin, after, to);
    }
    if let Some(cursor) = peer_into_local {
        recall.passed(cursor);
    }
    if let Some(scan) = effects.loser_scan {
        recall.read_losers(scan);
    }
    (
        node.settled(),
        node.links.get(&peer).copied(),
        node.losers.clone(),
    ) != before
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
    /// A message forged in the name of `claimed`, sent to `target`.
    Lie {
        claimed: usize,
        target: usize,
        lie: Lie,
        /// How far a forged bound reaches past the truth.
        by: u64,
    },
}

/// What a liar forges.
#[derive(Clone, Copy, Debug)]
enum Lie {
    /// An offer whose summary and empty push page claim a head far ahead.
    Head,
    /// An offer whose push page ends past what it carries.
    PushEnd,
    /// An offer whose push page names a held run of the target's events
    /// longer than its log.
    HeldRun,
    /// A fill whose push ends past the page the offer before it pushed.
    FillEnd,
    /// A reply whose page ends past what it carries.
    ReplyEnd,
    /// A reply that says the target's cursor stands past its head.
    ReplyCursor,
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
        1 => node.clone().prop_map(|node| Op::Restore { node }),
        3 => (node, 1..NODES, lie(), prop_oneof![1_u64..4, Just(1_u64 << 62)])
            .prop_map(|(claimed, offset, lie, by)| Op::Lie { claimed, target: (claimed + offset) % NODES, lie, by }),
    ]
}

fn lie() -> impl Strategy<Value = Lie> {
    prop_oneof![
        Just(Lie::Head),
        Just(Lie::PushEnd),
        Just(Lie::HeldRun),
        Just(Lie::FillEnd),
        Just(Lie::ReplyEnd),
        Just(Lie::ReplyCursor),
    ]
}

/// A message forged in the name of `claimed` to `target`, from what
/// `claimed` would honestly send, bent by `lie`. Whether it was refused.
fn forge(
    nodes: &mut [ModelNode],
    claimed: usize,
    target: usize,
    lie: Lie,
    by: u64,
    bounds: PageBounds,
) -> bool {
    let (into_target, target_into, bulk) = nodes[claimed]
        .links
        .get(&target)
        .copied()
        .unwrap_or_default();
    let recall = nodes[claimed]
        .recalls
        .get(&target)
        .cloned()
        .unwrap_or_default();
    let (mut offer, initiator) = protocol::offer(
        &nodes[claimed],
        into_target,
        target_into,
        bulk,
        recall.view(true),
        bounds,
    )
    .expect("offer");
    let target_cursor = nodes[target]
        .links
        .get(&claimed)
        .copied()
        .unwrap_or_default()
        .0;
    match lie {
        Lie::Head => {
            offer.summary.head_lc += by;
            offer.push.to.lc = offer.summary.head_lc;
            offer.push.entries = Entries::Ids(Vec::new());
            offer.push.held.clear();
        }
        Lie::PushEnd => offer.push.to.lc += by,
        Lie::HeldRun => {
            let to_lc = offer.push.to.lc + nodes[target].head_lc() + by;
            let origin = nodes[target].history.last().expect("an epoch").epoch;
            offer.summary.head_lc = offer.summary.head_lc.max(to_lc);
            offer.push.held.push(protocol::Held {
                after_lc: offer.push.to.lc,
                to_lc,
                incarnation: nodes[target].incarnation,
                epoch: origin,
            });
            offer.push.to.lc = to_lc;
        }
        Lie::FillEnd | Lie::ReplyEnd | Lie::ReplyCursor => {}
    }
    let recall = nodes[target]
        .recalls
        .get(&claimed)
        .cloned()
        .unwrap_or_default();
    let replied = protocol::reply(
        &nodes[target],
        target_cursor,
        offer,
        recall.view(true),
        bounds,
    );
    let (mut reply, responder, effects) = match replied {
        Ok(replied) => replied,
        Err(protocol::StepError::Refused(_)) => return true,
        Err(error) => panic!("reply: {error}"),
    };
    apply(&mut nodes[target], claimed, effects);
    match lie {
        Lie::FillEnd => {
            let recall = nodes[claimed]
                .recalls
                .get(&target)
                .cloned()
                .unwrap_or_default();
            let Ok((mut fill, _, _)) =
                protocol::fill(&nodes[claimed], initiator, reply, recall.view(true), bounds)
            else {
                return true;
            };
            fill.push_to.lc += by;
            fill.complete = true;
            let recall = nodes[target]
                .recalls
                .get(&claimed)
                .cloned()
                .unwrap_or_default();
            let (_, effects) =
                protocol::deliver(&nodes[target], responder, fill, recall.view(true), bounds)
                    .expect("deliver");
            apply(&mut nodes[target], claimed, effects);
            false
        }
        Lie::ReplyEnd | Lie::ReplyCursor => {
            // The other way round: `target` dialled `claimed` and a liar
            // answers in its name.
            let (into, into_me, bulk) = nodes[target]
                .links
                .get(&claimed)
                .copied()
                .unwrap_or_default();
            let recall = nodes[target]
                .recalls
                .get(&claimed)
                .cloned()
                .unwrap_or_default();
            let (_, initiator) = protocol::offer(
                &nodes[target],
                into,
                into_me,
                bulk,
                recall.view(true),
                bounds,
            )
            .expect("offer");
            if matches!(lie, Lie::ReplyEnd) {
                reply.page.to.lc += by;
            } else {
                reply.cursor_at_initiator.lc = nodes[target].head_lc() + by;
            }
            let fill = protocol::fill(&nodes[target], initiator, reply, recall.view(true), bounds);
            match fill {
                Ok((_, _, effects)) => {
                    apply(&mut nodes[target], claimed, effects);
                    false
                }
                Err(protocol::StepError::Refused(_)) => true,
                Err(error) => panic!("fill: {error}"),
            }
        }
        Lie::Head | Lie::PushEnd | Lie::HeldRun => false,
    }
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
            Op::Lie {
                claimed,
                target,
                lie,
                by,
            } => {
                let before = nodes[target].links.get(&claimed).and_then(|link| link.0);
                let refused = forge(&mut nodes, claimed, target, lie, by, bounds);
                let after = nodes[target].links.get(&claimed).and_then(|link| link.0);
                match lie {
                    // Held to the offer it follows, not refused.
                    Lie::FillEnd => {}
                    // A run that names this node's current epoch is checked
                    // against its log; a page with a run of another epoch
                    // is not taken.
                    Lie::HeldRun => assert!(
                        refused || after == before,
                        "{lie:?} by {by} was refused or moved no cursor"
                    ),
                    _ => assert!(refused, "{lie:?} by {by} was refused"),
                }
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
    // Everything any node holds now must reach every node, and every value
    // any node holds or lists, but the winner, is every node's loser.
    let mut expected: BTreeMap<EventId, (Bytes, Timestamp)> = BTreeMap::new();
    let mut union = ModelNode::new(u128::MAX / 2);
    for node in &nodes {
        union.merge(node.log.clone());
    }
    expected.extend(union.settled());
    let mut expected_losers = BTreeMap::new();
    for node in &nodes {
        let values = node.log.iter().map(|event| (event.id, event.data.clone()));
        let listed = node
            .losers
            .iter()
            .flat_map(|(id, listed)| listed.iter().map(|lost| (*id, lost.clone())));
        for (id, value) in values.chain(listed) {
            if expected
                .get(&id)
                .is_some_and(|(winner, _)| *winner != value)
            {
                expected_losers.insert((id, value), ());
            }
        }
    }
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
                    while round(&mut nodes, a, b, faultless, bounds).changed {
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
        assert_eq!(
            node.conflicts(),
            expected_losers,
            "node {index} lists every loser"
        );
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

fn write(node: &mut ModelNode, key: u64, data: &'static [u8]) {
    node.merge(vec![Event {
        id: EventId::from_parts(1_000 + key, u128::from(key)),
        data: Bytes::from_static(data),
        recorded_at: Timestamp(key),
        lc: 0,
    }]);
}

const FAULTLESS: Faults = Faults {
    lost: None,
    repeat_fill: false,
};

const BOUNDS: PageBounds = PageBounds {
    events: 16,
    bytes: usize::MAX,
};

/// Rounds from `a` to `b` until one changes nothing; what they did.
fn until_quiet(nodes: &mut [ModelNode], a: usize, b: usize) -> Done {
    let mut total = Done::default();
    for _ in 0..100 {
        let done = round(nodes, a, b, FAULTLESS, BOUNDS);
        total.ids += done.ids;
        total.events += done.events;
        if !done.changed {
            return total;
        }
    }
    panic!("rounds never went quiet");
}

#[test]
fn events_that_came_from_a_peer_are_not_offered_back_to_it() {
    let mut nodes = vec![ModelNode::new(1), ModelNode::new(2_000_000)];
    for key in 0..100 {
        write(&mut nodes[0], key, b"a");
    }
    // Node 1 pulls everything, whole, then both ways go quiet: not one id
    // of the copied events travels back, whoever starts the rounds.
    let copy = until_quiet(&mut nodes, 1, 0);
    assert_eq!(copy.events, 100, "each event is sent once");
    assert_eq!(copy.ids, 0, "no id is offered back");
    let back = until_quiet(&mut nodes, 0, 1);
    assert_eq!((back.ids, back.events), (0, 0), "nor the other way");
    // New writes on each side reach the other once, as ids and events.
    for key in 100..110 {
        write(&mut nodes[0], key, b"a");
        write(&mut nodes[1], key + 100, b"b");
    }
    let both = until_quiet(&mut nodes, 0, 1);
    assert_eq!(both.ids, 20, "each new id is offered once");
    assert_eq!(both.events, 20, "and sent once");
    let quiet = until_quiet(&mut nodes, 1, 0);
    assert_eq!((quiet.ids, quiet.events), (0, 0), "then nothing moves");
    // A restart forgets what was held: ids may be offered once more, and
    // the logs stay whole.
    nodes[1].reopen();
    until_quiet(&mut nodes, 1, 0);
    until_quiet(&mut nodes, 0, 1);
    assert_eq!(nodes[0].settled(), nodes[1].settled());
}

#[test]
fn a_restored_peer_is_sent_what_it_lost_though_it_had_sent_it() {
    let mut nodes = vec![ModelNode::new(1), ModelNode::new(2_000_000)];
    let backup = nodes[0].clone();
    for key in 0..40 {
        write(&mut nodes[0], key, b"a");
    }
    until_quiet(&mut nodes, 1, 0);
    until_quiet(&mut nodes, 0, 1);
    // Node 0 comes back from a copy older than its writes: node 1 holds
    // them only because node 0 sent them, and sends them back.
    let next = nodes[0].next;
    nodes[0] = backup;
    nodes[0].next = next + 11;
    nodes[0].reopen();
    until_quiet(&mut nodes, 1, 0);
    until_quiet(&mut nodes, 0, 1);
    assert_eq!(nodes[0].settled(), nodes[1].settled());
    assert_eq!(nodes[0].log.len(), 40);
}

#[test]
fn a_node_that_is_only_dialled_lists_the_losers_of_its_callers() {
    // The hub (node 0) never starts a round; each truck dials it.
    let mut nodes = vec![
        ModelNode::new(1),
        ModelNode::new(2_000_000),
        ModelNode::new(4_000_000),
    ];
    write(&mut nodes[1], 7, b"b");
    write(&mut nodes[1], 7, b"a");
    write(&mut nodes[2], 7, b"c");
    assert_eq!(nodes[1].conflicts().len(), 1, "truck 1 saw the conflict");
    for _ in 0..3 {
        until_quiet(&mut nodes, 1, 0);
        until_quiet(&mut nodes, 2, 0);
    }
    let expected: Vec<(EventId, Bytes)> = [&b"b"[..], &b"c"[..]]
        .iter()
        .map(|lost| (EventId::from_parts(1_007, 7), Bytes::copy_from_slice(lost)))
        .collect();
    for (index, node) in nodes.iter().enumerate() {
        let shown: Vec<(EventId, Bytes)> = node.conflicts().into_keys().collect();
        assert_eq!(shown, expected, "node {index}");
    }
}
