//! The lists of losers of conflicts: read within rounds, a page at a time
//! (whole ids, within a page's bytes), read again when a count moves, so
//! that a node only ever dialled lists its callers' losers; and a
//! first-release peer's list, which adds a loser here only under the same
//! kept value and only a lost value larger than the kept one
//! (`merge::listed_losers`).

use bytes::Bytes;

use super::network::{Limits, round, until_quiet};
use super::node::{ModelNode, key_id};
use crate::event::EventId;
use crate::sync::merge::{ListedConflict, listed_losers};
use crate::sync::protocol::{Log, PageBounds};

const BOUNDS: PageBounds = PageBounds {
    events: 16,
    bytes: usize::MAX,
};

#[test]
fn a_node_that_is_only_dialled_lists_the_losers_of_its_callers() {
    let limits = Limits::current(BOUNDS);
    // The hub (node 0) never starts a round; each truck dials it.
    let mut nodes = vec![
        ModelNode::new(1),
        ModelNode::new(2_000_000),
        ModelNode::new(4_000_000),
    ];
    nodes[1].write_bytes(7, b"b");
    nodes[1].write_bytes(7, b"a");
    nodes[2].write_bytes(7, b"c");
    assert_eq!(nodes[1].conflicts().len(), 1, "truck 1 saw the conflict");
    for _ in 0..3 {
        until_quiet(&mut nodes, 1, 0, limits);
        until_quiet(&mut nodes, 2, 0, limits);
    }
    let expected: Vec<(EventId, Bytes)> = [&b"b"[..], &b"c"[..]]
        .iter()
        .map(|lost| (key_id(7), Bytes::copy_from_slice(lost)))
        .collect();
    for (index, node) in nodes.iter().enumerate() {
        let shown: Vec<(EventId, Bytes)> = node.conflicts().into_keys().collect();
        assert_eq!(shown, expected, "node {index}");
    }
}

/// Node 0 with two losers listed under each of `keys` ids, and node 1
/// holding the same events without them.
fn listing(keys: u64) -> Vec<ModelNode> {
    let mut nodes = vec![ModelNode::new(1), ModelNode::new(2_000_000)];
    for key in 0..keys {
        nodes[1].write_bytes(key, b"a");
        for value in [b"c", b"b", b"a"] {
            nodes[0].write_bytes(key, value);
        }
    }
    nodes
}

#[test]
fn a_list_longer_than_a_page_is_read_a_page_per_round() {
    // Pages of two bytes: one id's two losers, whole, per page.
    let limits = Limits::current(PageBounds {
        events: 16,
        bytes: 2,
    });
    let mut nodes = listing(6);
    let mut listed = Vec::new();
    for _ in 0..20 {
        if !round(&mut nodes, 1, 0, super::network::FAULTLESS, limits).changed {
            break;
        }
        listed.push(nodes[1].losers_listed());
    }
    listed.dedup();
    assert_eq!(listed, [2, 4, 6, 8, 10, 12], "an id at a time, whole");
    assert_eq!(nodes[1].conflicts(), nodes[0].conflicts());
}

#[test]
fn a_loser_listed_behind_a_read_under_way_is_read_again() {
    let limits = Limits::current(PageBounds {
        events: 16,
        bytes: 2,
    });
    let mut nodes = listing(4);
    while nodes[1].losers_listed() < 4 {
        round(&mut nodes, 1, 0, super::network::FAULTLESS, limits);
    }
    // The read stands past the second id; a loser lands under the first.
    nodes[0].write_bytes(0, b"d");
    assert_eq!(nodes[0].losers_listed(), 9);
    until_quiet(&mut nodes, 1, 0, limits);
    assert_eq!(nodes[1].conflicts(), nodes[0].conflicts());
    assert_eq!(nodes[1].losers_listed(), 9, "the read began again");
}

#[test]
fn a_first_release_peers_list_adds_only_losers_under_the_same_kept_value() {
    let mut node = ModelNode::new(1);
    node.write_bytes(1, b"a");
    node.write_bytes(2, b"b");
    let conflict = |key: u64, kept: &'static [u8], lost: &'static [u8]| ListedConflict {
        id: key_id(key),
        kept: Bytes::from_static(kept),
        lost: Bytes::from_static(lost),
    };
    let listed = [
        // Under the value kept here: a loser here too.
        conflict(1, b"a", b"c"),
        // Under another kept value: it waits for the events' own sync.
        conflict(1, b"b", b"d"),
        // A lost value smaller than the kept one: not believed.
        conflict(2, b"b", b"a"),
        // An id not held here.
        conflict(3, b"a", b"z"),
    ];
    let losers = listed_losers(&listed, |id| node.get(id));
    assert_eq!(losers.len(), 1);
    let kept = node.get(key_id(1)).expect("held").clone();
    assert_eq!(
        (losers[0].id, &losers[0].data, losers[0].recorded_at),
        (kept.id, &Bytes::from_static(b"c"), kept.recorded_at)
    );
    let settled = node.settled();
    node.merge(losers);
    assert_eq!(node.settled(), settled, "no kept value changes");
    let shown: Vec<(EventId, Bytes)> = node.conflicts().into_keys().collect();
    assert_eq!(shown, [(key_id(1), Bytes::from_static(b"c"))]);
}
