//! Where cursors stand and what a node keeps: the merge rule, cursors that
//! never move back within an epoch, a cursor checked against the epochs of
//! the log it points into (cut back on a restored epoch, from nothing on an
//! unknown one or another incarnation), and a cursor moved only over what
//! came: not by a fill its responder does not remember or checked against
//! another cursor, nor by a round whose last message was lost.

use bytes::Bytes;

use super::network::{
    Faults, Limits, answer_fill, answer_offer, fill, finish, offer, round, until_quiet,
};
use super::node::ModelNode;
use crate::event::{EventId, Timestamp};
use crate::storage::StoredEvent;
use crate::sync::merge::{furthest, settle};
use crate::sync::protocol::{self, Cursor, PageBounds, Summary};

const BOUNDS: PageBounds = PageBounds {
    events: 16,
    bytes: usize::MAX,
};

fn limits() -> Limits {
    Limits::current(BOUNDS)
}

#[test]
fn the_merge_rule_keeps_the_same_form_whichever_came_first() {
    let values: [&[u8]; 4] = [b"", b"a", b"ab", b"b"];
    let forms: Vec<StoredEvent> = values
        .iter()
        .flat_map(|data| {
            [1, 2].map(|at| StoredEvent {
                id: EventId::from_parts(1, 0),
                recorded_at: Timestamp(at),
                data: Bytes::copy_from_slice(data),
            })
        })
        .collect();
    for x in &forms {
        for y in &forms {
            let (kept, lost) = settle(x, y.clone());
            assert_eq!(
                kept,
                settle(y, x.clone()).0,
                "{x:?} and {y:?} in either order"
            );
            assert_eq!(
                kept.data,
                x.data.clone().min(y.data.clone()),
                "the smaller bytes win"
            );
            if x.data == y.data {
                assert_eq!(kept.recorded_at, x.recorded_at.min(y.recorded_at));
                assert_eq!(lost, None, "the same value is no conflict");
            } else {
                assert_eq!(lost, Some(x.data.clone().max(y.data.clone())));
            }
            for z in &forms {
                let left = settle(&settle(x, y.clone()).0, z.clone()).0;
                let right = settle(x, settle(y, z.clone()).0).0;
                assert_eq!(left, right, "in any grouping");
            }
        }
    }
}

#[test]
fn a_cursor_never_moves_back_within_an_epoch() {
    let at = |epoch: u128, lc: u64, us: u64| Cursor {
        incarnation: 1,
        epoch,
        lc,
        us,
    };
    assert_eq!(
        furthest(Some(at(2, 5, 1)), Some(at(2, 3, 4))),
        Some(at(2, 5, 4))
    );
    assert_eq!(furthest(Some(at(2, 5, 1)), None), Some(at(2, 5, 1)));
    assert_eq!(furthest(None, Some(at(2, 3, 0))), Some(at(2, 3, 0)));
    assert_eq!(
        furthest(Some(at(2, 5, 1)), Some(at(3, 1, 0))),
        Some(at(3, 1, 0)),
        "another epoch replaces it"
    );
    // Two rounds from node 1 to node 0 finish out of order: the one begun
    // first ends last, with an older cursor, which moves nothing back.
    let mut nodes = vec![ModelNode::new(1), ModelNode::new(2_000_000)];
    nodes[0].write_bytes(0, b"a");
    until_quiet(&mut nodes, 1, 0, limits());
    nodes[0].write_bytes(1, b"a");
    let (first, initiator) = offer(&nodes, 1, 0, limits());
    let reply = answer_offer(&mut nodes, 0, 1, &first, limits()).expect("taken");
    let (request, initiator, _) = fill(&mut nodes, 1, 0, initiator, &reply, limits())
        .expect("taken")
        .expect("node 1 wants lc 2");
    nodes[0].write_bytes(2, b"a");
    round(&mut nodes, 1, 0, super::network::FAULTLESS, limits());
    let later = nodes[1].cursor_into(0).expect("a cursor");
    assert_eq!(later.lc, 3, "the later round went further");
    let (deliver, _) = answer_fill(&mut nodes, 0, 1, &request, limits(), None);
    finish(&mut nodes, 1, 0, initiator, &request, deliver, limits());
    assert_eq!(
        nodes[1].cursor_into(0),
        Some(later),
        "and the earlier one ends behind it"
    );
}

#[test]
fn a_cursor_into_a_restored_log_is_cut_back_to_the_backup() {
    let mut node = ModelNode::new(1);
    for key in 0..10 {
        node.write_bytes(key, b"x");
    }
    let backup = node.clone();
    let epoch = node.history[0].epoch;
    for key in 10..20 {
        node.write_bytes(key, b"y");
    }
    let cursor = Cursor {
        incarnation: 1,
        epoch,
        lc: 18,
        us: 0,
    };
    assert_eq!(
        protocol::resume(&Summary::of(&node), Some(cursor)).lc,
        18,
        "the live log keeps the cursor"
    );
    let past = Cursor { lc: 21, ..cursor };
    assert_eq!(
        protocol::resume(&Summary::of(&node), Some(past)).lc,
        0,
        "past the head of the current epoch, it starts over"
    );
    let mut restored = backup;
    restored.reopen();
    assert_eq!(
        protocol::resume(&Summary::of(&restored), Some(cursor)).lc,
        10,
        "cut back to where the backup ends"
    );
    let unknown = Cursor {
        epoch: 99,
        ..cursor
    };
    assert_eq!(
        protocol::resume(&Summary::of(&restored), Some(unknown)).lc,
        0,
        "an unknown epoch starts over"
    );
    let other = Cursor {
        incarnation: 2,
        ..cursor
    };
    assert_eq!(
        protocol::resume(&Summary::of(&restored), Some(other)).lc,
        0,
        "another incarnation starts over"
    );
}

#[test]
fn a_restored_peer_is_sent_what_it_lost_though_it_had_sent_it() {
    let mut nodes = vec![ModelNode::new(1), ModelNode::new(2_000_000)];
    let backup = nodes[0].clone();
    for key in 0..40 {
        nodes[0].write_bytes(key, b"a");
    }
    until_quiet(&mut nodes, 1, 0, limits());
    until_quiet(&mut nodes, 0, 1, limits());
    // Node 0 comes back from a copy older than its writes: node 1 holds
    // them only because node 0 sent them, and sends them back.
    nodes[0].restore(&backup);
    until_quiet(&mut nodes, 1, 0, limits());
    until_quiet(&mut nodes, 0, 1, limits());
    assert_eq!(nodes[0].settled(), nodes[1].settled());
    assert_eq!(nodes[0].log.len(), 40);
}

#[test]
fn a_wiped_peer_is_pulled_from_nothing_and_sent_everything() {
    let mut nodes = vec![ModelNode::new(1), ModelNode::new(2_000_000)];
    for key in 0..20 {
        nodes[0].write_bytes(key, b"a");
        nodes[1].write_bytes(key + 20, b"b");
    }
    until_quiet(&mut nodes, 0, 1, limits());
    nodes[1].wipe();
    nodes[1].write_bytes(50, b"c");
    // Node 0's cursor into node 1 names an incarnation that is gone: it
    // starts over, and node 1 gets everything back.
    until_quiet(&mut nodes, 0, 1, limits());
    assert_eq!(nodes[0].log.len(), 41);
    assert_eq!(nodes[0].settled(), nodes[1].settled());
    let cursor = nodes[0].cursor_into(1).expect("a cursor");
    assert_eq!((cursor.incarnation, cursor.lc), (nodes[1].incarnation, 41));
}

#[test]
fn a_fill_its_responder_does_not_remember_merges_and_moves_no_cursor() {
    let mut nodes = vec![ModelNode::new(1), ModelNode::new(2_000_000)];
    for key in 0..3 {
        nodes[0].write_bytes(key, b"a");
    }
    let (push, initiator) = offer(&nodes, 0, 1, limits());
    let reply = answer_offer(&mut nodes, 1, 0, &push, limits()).expect("taken");
    let (request, _, _) = fill(&mut nodes, 0, 1, initiator, &reply, limits())
        .expect("taken")
        .expect("sent");
    // Node 1 restarts between its reply and the fill: it remembers nothing
    // of what it checked.
    nodes[1].reopen();
    answer_fill(&mut nodes, 1, 0, &request, limits(), None);
    assert_eq!(nodes[1].log.len(), 3, "the events are merged");
    assert_eq!(nodes[1].cursor_into(0), None, "no cursor moves");
    until_quiet(&mut nodes, 0, 1, limits());
    assert_eq!(nodes[1].cursor_into(0).map(|cursor| cursor.lc), Some(3));
}

#[test]
fn a_fill_is_held_to_the_cursor_stored_when_its_offer_was_checked() {
    let mut nodes = vec![ModelNode::new(1), ModelNode::new(2_000_000)];
    let empty = nodes[1].clone();
    nodes[0].write_bytes(0, b"a");
    until_quiet(&mut nodes, 1, 0, limits());
    until_quiet(&mut nodes, 0, 1, limits());
    // Node 0 pushes lc 2 from node 1's cursor at lc 1; before the fill,
    // node 1 loses its data and comes back from a copy older than that
    // cursor, remembering what it checked of the offer (as a responder
    // that keeps it outside its data would).
    nodes[0].write_bytes(1, b"a");
    let (push, initiator) = offer(&nodes, 0, 1, limits());
    let reply = answer_offer(&mut nodes, 1, 0, &push, limits()).expect("taken");
    assert_eq!(reply.missing.len(), 1);
    let remembered = nodes[1].recalls.clone();
    nodes[1].restore(&empty);
    nodes[1].recalls = remembered;
    let (request, _, _) = fill(&mut nodes, 0, 1, initiator, &reply, limits())
        .expect("taken")
        .expect("sent");
    answer_fill(&mut nodes, 1, 0, &request, limits(), None);
    assert_eq!(nodes[1].log.len(), 1, "lc 2 is merged, lc 1 is not there");
    assert_eq!(
        nodes[1].cursor_into(0),
        None,
        "the page checked against another cursor moves none past lc 1"
    );
    until_quiet(&mut nodes, 1, 0, limits());
    assert_eq!(nodes[1].settled(), nodes[0].settled());
}

#[test]
fn a_round_whose_last_message_is_lost_moves_no_cursor_of_the_initiator() {
    let mut nodes = vec![ModelNode::new(1), ModelNode::new(2_000_000)];
    nodes[0].write_bytes(0, b"a");
    until_quiet(&mut nodes, 1, 0, limits());
    let before = nodes[1].cursor_into(0);
    for key in 1..4 {
        nodes[0].write_bytes(key, b"a");
    }
    let lost = Faults {
        lost: Some(4),
        ..super::network::FAULTLESS
    };
    round(&mut nodes, 1, 0, lost, limits());
    assert_eq!(nodes[1].log.len(), 1, "nothing came");
    assert_eq!(
        nodes[1].cursor_into(0),
        before,
        "and the cursor waits for it"
    );
    until_quiet(&mut nodes, 1, 0, limits());
    assert_eq!(nodes[1].cursor_into(0).map(|cursor| cursor.lc), Some(4));
}
