//! The randomised run: three nodes write values of varied sizes, sync in
//! random pairs through faults, restart, lose their data, come back from
//! old backups, and meet liars, within byte budgets small enough that
//! pages, fills and delivers are cut often (each case draws its own).
//! After every step no cursor passes an event its node lacks; after final
//! rounds between all pairs, every node holds the settled union of what
//! the nodes held and lists the same losers of conflicts.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed, TestRunner};

use super::liars::{Lie, forge, lie};
use super::network::{Cuts, Faults, Limits, all_quiet, assert_cursors_sound, round};
use super::node::{Conflicts, ModelNode, Settled, VALUES_PER_KEY};
use crate::sync::protocol::PageBounds;

const NODES: usize = 3;

/// How many keys the nodes write.
const KEYS: u64 = 40;

#[derive(Clone, Debug)]
enum Op {
    /// Writes of `count` keys from `key` on, each its `value`.
    Write {
        node: usize,
        key: u64,
        count: u64,
        value: u8,
        at: u64,
    },
    Round {
        a: usize,
        b: usize,
        faults: Faults,
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

fn faults() -> impl Strategy<Value = Faults> {
    (
        prop::option::weighted(0.2, 1_u8..5),
        any::<bool>(),
        prop::bool::weighted(0.1),
        prop::option::weighted(0.1, (any::<bool>(), 0..KEYS, 0..VALUES_PER_KEY)),
    )
        .prop_map(
            |(lost, repeat_fill, responder_restarts, write_between)| Faults {
                lost,
                repeat_fill,
                responder_restarts,
                write_between,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    let node = 0..NODES;
    prop_oneof![
        6 => (node.clone(), 0..KEYS, 1_u64..10, 0..VALUES_PER_KEY, 0_u64..4)
            .prop_map(|(node, key, count, value, at)| Op::Write { node, key, count, value, at }),
        6 => (node.clone(), 1..NODES, faults())
            .prop_map(|(a, offset, faults)| Op::Round { a, b: (a + offset) % NODES, faults }),
        1 => node.clone().prop_map(|node| Op::Reopen { node }),
        1 => node.clone().prop_map(|node| Op::Wipe { node }),
        1 => node.clone().prop_map(|node| Op::Backup { node }),
        1 => node.clone().prop_map(|node| Op::Restore { node }),
        3 => (node, 1..NODES, lie(), prop_oneof![1_u64..4, Just(1_u64 << 62)])
            .prop_map(|(claimed, offset, lie, by)| Op::Lie { claimed, target: (claimed + offset) % NODES, lie, by }),
    ]
}

/// The bounds of a case: pages of 1 to 9 events and, mostly, the bytes of
/// a few values; fills and delivers from what one value or one id's losers
/// need to a few values more, or without a bound of their own.
fn limits() -> impl Strategy<Value = Limits> {
    let bytes = prop_oneof![2 => 1_usize..40, 2 => 40_usize..300, 1 => Just(usize::MAX)];
    let extra = prop_oneof![3 => 0_usize..40, 1 => Just(usize::MAX)];
    (1_usize..10, bytes, extra.clone(), extra).prop_map(|(events, bytes, fill, deliver)| {
        Limits::scaled(PageBounds { events, bytes }, fill, deliver)
    })
}

/// What every node must end with: the settled union of what the nodes
/// hold, and as losers every value any node holds or lists but the
/// winner.
fn expected(nodes: &[ModelNode]) -> (Settled, Conflicts) {
    let mut union = ModelNode::new(u128::MAX / 2);
    for node in nodes {
        union.merge(node.log.clone());
    }
    let settled = union.settled();
    let mut losers = BTreeMap::new();
    for node in nodes {
        let values = node.log.iter().map(|event| (event.id, event.data.clone()));
        let listed = node
            .losers
            .iter()
            .flat_map(|(id, listed)| listed.iter().map(|lost| (*id, lost.clone())));
        for (id, value) in values.chain(listed) {
            if settled.get(&id).is_some_and(|(winner, _)| *winner != value) {
                losers.insert((id, value), ());
            }
        }
    }
    (settled, losers)
}

fn step(
    nodes: &mut [ModelNode],
    backups: &mut HashMap<usize, ModelNode>,
    op: Op,
    limits: Limits,
) -> Cuts {
    match op {
        Op::Write {
            node,
            key,
            count,
            value,
            at,
        } => {
            for key in key..key + count {
                nodes[node].write(key % KEYS, value, at);
            }
        }
        Op::Round { a, b, faults } => return round(nodes, a, b, faults, limits).cuts,
        Op::Lie {
            claimed,
            target,
            lie,
            by,
        } => {
            let before = nodes[target].cursor_into(claimed);
            let refused = forge(nodes, claimed, target, lie, by, limits);
            let after = nodes[target].cursor_into(claimed);
            match lie {
                // Held to the offer it follows, not refused.
                Lie::FillEnd => {}
                // A run that names this node's current epoch is checked
                // against its log; a page with a run of another epoch is
                // not taken.
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
                nodes[node].restore(backup);
            }
        }
    }
    Cuts::default()
}

/// Runs `ops` within `limits`, then final rounds; what was cut to fit.
fn run(ops: Vec<Op>, limits: Limits) -> Cuts {
    let mut nodes: Vec<ModelNode> = (0..NODES)
        .map(|n| ModelNode::new(n as u128 * 1_000_000_007))
        .collect();
    let mut backups: HashMap<usize, ModelNode> = HashMap::new();
    let mut cuts = Cuts::default();
    for op in ops {
        cuts.add(step(&mut nodes, &mut backups, op, limits));
        assert_cursors_sound(&nodes);
    }
    // Everything any node holds now must reach every node, and every value
    // any node holds or lists, but the winner, is every node's loser.
    let (settled, losers) = expected(&nodes);
    cuts.add(all_quiet(&mut nodes, limits).cuts);
    assert_cursors_sound(&nodes);
    for (index, node) in nodes.iter().enumerate() {
        assert_eq!(
            node.settled(),
            settled,
            "node {index} holds the settled union"
        );
        for (lc, event) in (1..).zip(&node.log) {
            assert_eq!(event.lc, lc, "lc contiguous on node {index}");
        }
        assert_eq!(node.conflicts(), losers, "node {index} lists every loser");
    }
    cuts
}

#[test]
fn every_node_ends_with_the_settled_union() {
    let config = ProptestConfig {
        cases: 256,
        rng_seed: RngSeed::Fixed(0x5e1c),
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let cuts = Cell::new(Cuts::default());
    let mut runner = TestRunner::new(config);
    let cases = (prop::collection::vec(op(), 1..80), limits());
    let result = runner.run(&cases, |(ops, limits)| {
        let mut total = cuts.get();
        total.add(run(ops, limits));
        cuts.set(total);
        Ok(())
    });
    if let Err(error) = result {
        panic!("{error}");
    }
    let cuts = cuts.get();
    // The bounds drawn cut each kind of message in many rounds (about a
    // sixth of the pages, a tenth of the fills that carry events and a
    // fifth of the delivers), or the run would not test them.
    assert!(cuts.pages > 2_000, "pages cut: {cuts:?}");
    assert!(cuts.fills > 200, "fills cut: {cuts:?}");
    assert!(cuts.delivers > 1_000, "delivers cut: {cuts:?}");
}
