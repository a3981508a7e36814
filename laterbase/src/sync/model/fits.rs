//! What a fill and a deliver carry: their events within a page's bounds,
//! the message cut to what its receiver reads (by wire version), the rest
//! in later rounds, and no cursor moved over what did not come; events too
//! large for a first-release peer left out of pushes to it.

use bytes::Bytes;

use super::network::{
    self, FAULTLESS, Limits, answer_fill, answer_offer, fill, finish, offer, round, until_quiet,
};
use super::node::{ModelNode, key_id};
use crate::event::{Event, EventId, Timestamp};
use crate::limits::{SYNC_BODY_BYTES_MAX, SYNC_V2_BODY_BYTES_MAX};
use crate::sync::fit::{deliver_within, fill_within, peer_body_bytes_max};
use crate::sync::protocol::{
    self, Cursor, Deliver, Fill, Log, Loser, LoserPage, PageBounds, Recall, StepError,
};
use crate::sync::wire::{self, FillRequest};

const BOUNDS: PageBounds = PageBounds {
    events: 16,
    bytes: usize::MAX,
};

/// Two nodes of this release, the first with `count` values of `size`
/// bytes that the second lacks.
fn ahead(count: u64, size: usize) -> Vec<ModelNode> {
    let mut nodes = vec![ModelNode::new(1), ModelNode::new(2_000_000)];
    for key in 0..count {
        nodes[0].write_bytes(key, &vec![b'v'; size]);
    }
    nodes
}

#[test]
fn an_event_rewritten_larger_since_its_page_goes_in_a_later_round() {
    let limits = Limits::current(PageBounds {
        events: 16,
        bytes: 10,
    });
    let mut nodes = ahead(4, 1);
    until_quiet(&mut nodes, 1, 0, Limits::current(BOUNDS));
    for key in 4..8 {
        nodes[0].write_bytes(key, b"b");
    }
    // Node 0 pushes the ids of its four new one-byte values; before its
    // fill, the first is rewritten by a smaller value of 41 bytes.
    let (offer, initiator) = offer(&nodes, 0, 1, limits);
    let reply = answer_offer(&mut nodes, 1, 0, &offer, limits).expect("taken");
    assert_eq!(reply.missing.len(), 4);
    let mut larger = vec![b'x'; 41];
    larger[0] = b'a';
    nodes[0].write_bytes(4, &larger);
    let (request, initiator, _) = fill(&mut nodes, 0, 1, initiator, &reply, limits)
        .expect("taken")
        .expect("sent");
    // The fill's events stay within a page: the larger one alone, the fill
    // not complete, and the responder's cursor stays where it was.
    let sizes: Vec<usize> = request.fill.events.iter().map(|e| e.data.len()).collect();
    assert_eq!((sizes, request.fill.complete), (vec![41], false));
    let cursor = nodes[1].cursor_into(0);
    let (deliver, _) = answer_fill(&mut nodes, 1, 0, &request, limits, None);
    finish(&mut nodes, 0, 1, initiator, &request, deliver, limits);
    assert_eq!(
        nodes[1].cursor_into(0),
        cursor,
        "no cursor moves past what did not come"
    );
    assert!(nodes[1].get(key_id(4)).is_some(), "what came is merged");
    until_quiet(&mut nodes, 0, 1, limits);
    assert_eq!(
        nodes[1].settled(),
        nodes[0].settled(),
        "the rest came later"
    );
    assert_eq!(
        nodes[1].cursor_into(0).map(|cursor| cursor.lc),
        Some(nodes[0].head_lc())
    );
}

#[test]
fn a_fill_cut_to_its_peer_moves_no_cursor_and_the_next_rounds_send_the_rest() {
    // Six values of 30 bytes, to a responder that reads fills of two of
    // them (the six ids it lacks take 210 bytes of framing).
    let limits = Limits {
        fill_bytes: 330,
        ..Limits::current(BOUNDS)
    };
    let mut nodes = ahead(6, 30);
    let done = round(&mut nodes, 0, 1, FAULTLESS, limits);
    assert_eq!(done.cuts.fills, 1, "the fill was cut");
    assert_eq!(
        nodes[1].cursor_into(0),
        None,
        "the responder's cursor stays"
    );
    let held = nodes[1].log.len();
    assert!(0 < held && held < 6, "what came is merged: {held}");
    let rest = until_quiet(&mut nodes, 0, 1, limits);
    assert!(rest.cuts.fills >= 1, "cut again");
    assert_eq!(nodes[1].settled(), nodes[0].settled());
    assert_eq!(
        nodes[1].cursor_into(0).map(|cursor| cursor.lc),
        Some(6),
        "and the cursor moves once all came"
    );
}

#[test]
fn a_deliver_cut_to_its_peer_moves_no_cursor_until_every_asked_for_event_came() {
    let limits = Limits {
        deliver_bytes: network::deliver_framing_bytes() + 100,
        ..Limits::current(BOUNDS)
    };
    let mut nodes = ahead(1, 1);
    until_quiet(&mut nodes, 1, 0, limits);
    let before = nodes[1].cursor_into(0);
    assert_eq!(before.map(|cursor| cursor.lc), Some(1));
    for key in 1..7 {
        nodes[0].write_bytes(key, &[b'w'; 30]);
    }
    // Node 1 pulls a page of six ids, wants them all, and is delivered
    // what fits.
    let done = round(&mut nodes, 1, 0, FAULTLESS, limits);
    assert_eq!(done.cuts.delivers, 1, "the deliver was cut");
    assert_eq!(
        nodes[1].cursor_into(0),
        before,
        "the initiator's cursor stays"
    );
    until_quiet(&mut nodes, 1, 0, limits);
    assert_eq!(nodes[1].settled(), nodes[0].settled());
    assert_eq!(nodes[1].cursor_into(0).map(|cursor| cursor.lc), Some(7));
}

fn sized(sizes: &[usize]) -> Vec<Event> {
    sizes
        .iter()
        .zip(1..)
        .map(|(size, n)| Event {
            id: EventId::from_parts(n, 0),
            data: Bytes::from(vec![b'x'; *size]),
            recorded_at: Timestamp(n),
            lc: 0,
        })
        .collect()
}

#[test]
fn a_peer_of_the_first_release_is_sent_fills_within_its_smaller_body() {
    assert_eq!(
        peer_body_bytes_max(wire::VERSION_OLDEST),
        SYNC_V2_BODY_BYTES_MAX
    );
    assert_eq!(peer_body_bytes_max(wire::VERSION), SYNC_BODY_BYTES_MAX);
    let cursor = Cursor {
        incarnation: 1,
        epoch: 2,
        lc: 3,
        us: 4,
    };
    let six = 6 * 1024 * 1024;
    let request = FillRequest {
        fill: Fill {
            events: sized(&[six, six, six]),
            complete: true,
            push_to: cursor,
            want: Vec::new(),
            losers: None,
            losers_wanted: None,
        },
        missing: Vec::new(),
        push_taken: true,
        cursor_stored: Some(cursor),
    };
    let mut current = request.clone();
    let body = fill_within(
        &mut current,
        wire::VERSION,
        peer_body_bytes_max(wire::VERSION),
    )
    .expect("fits");
    assert_eq!(current, request, "a peer of this release reads it whole");
    assert!(body.len() > SYNC_V2_BODY_BYTES_MAX);
    let mut oldest = request.clone();
    let version = wire::VERSION_OLDEST;
    let body = fill_within(&mut oldest, version, peer_body_bytes_max(version)).expect("cut");
    assert!(body.len() <= SYNC_V2_BODY_BYTES_MAX);
    assert_eq!(oldest.fill.events.len(), 2, "the last event waits");
    assert!(!oldest.fill.complete, "and the fill says so");
}

#[test]
fn a_deliver_too_large_for_its_peer_defers_its_list_then_its_last_events() {
    let list = |size: usize| LoserPage {
        after: None,
        losers: vec![Loser {
            id: EventId::from_parts(1, 0),
            data: Bytes::from(vec![b'y'; size]),
        }],
        more: false,
    };
    let fits = Deliver {
        events: sized(&[100, 100]),
        complete: true,
        losers: Some(list(100)),
    };
    let limit = wire::encode_deliver(&fits, wire::VERSION).len();
    let mut same = fits.clone();
    deliver_within(&mut same, wire::VERSION, limit).expect("fits");
    assert_eq!(same, fits, "a deliver that fits goes whole");
    let mut larger = Deliver {
        losers: Some(list(200)),
        ..fits.clone()
    };
    let body = deliver_within(&mut larger, wire::VERSION, limit).expect("cut");
    assert!(body.len() <= limit);
    assert_eq!(larger.losers, None, "the list waits for a later round");
    assert!(larger.complete, "every event still goes");
    let mut rewritten = Deliver {
        events: sized(&[100, 300]),
        ..fits
    };
    let body = deliver_within(&mut rewritten, wire::VERSION, limit).expect("cut");
    assert!(body.len() <= limit);
    assert_eq!((rewritten.events.len(), rewritten.complete), (1, false));
    let read = wire::decode_deliver(&body).expect("decodes");
    assert_eq!(
        read.events.len(),
        1,
        "what is sent is what the round goes on with"
    );
}

#[test]
fn a_push_leaves_out_what_the_peer_cannot_take_and_covers_it() {
    let log = ModelNode::of_sizes(&[3, 16, 3], &[]);
    let recall = Recall {
        held: &[],
        losers: None,
        push: true,
        push_event_bytes: 15,
    };
    let bounds = PageBounds {
        events: 100,
        bytes: 10,
    };
    let mut from = Cursor {
        incarnation: 1,
        epoch: 2,
        lc: 0,
        us: 0,
    };
    let mut pushed = Vec::new();
    let mut left_out = Vec::new();
    while from.lc < log.head_lc() {
        let (offer, initiator) =
            protocol::offer(&log, None, Some(from), false, recall, bounds).expect("offer");
        pushed.extend(match &offer.push.entries {
            protocol::Entries::Ids(ids) => ids
                .iter()
                .map(|entry| log.get(entry.id).expect("held").data.len())
                .collect::<Vec<_>>(),
            protocol::Entries::Events(_) => panic!("a push lists ids"),
        });
        left_out.extend_from_slice(initiator.left_out());
        from = offer.push.to;
    }
    assert_eq!(pushed, vec![3, 3], "the events around it go");
    assert_eq!(left_out.len(), 1);
    assert_eq!(
        (left_out[0].id, left_out[0].bytes),
        (EventId::from_parts(2, 0), 16)
    );
}

#[test]
fn a_first_release_peer_pulls_what_pushes_to_it_leave_out() {
    // Node 1 speaks the first release's version, which takes events of at
    // most 20 bytes in a request; answers carry any event.
    let limits = Limits {
        version: wire::VERSION_OLDEST,
        push_event_bytes: 20,
        ..Limits::current(BOUNDS)
    };
    let mut nodes = vec![ModelNode::new(1), ModelNode::new(2_000_000)];
    for (key, size) in [(0, 3), (1, 40), (2, 3)] {
        nodes[0].write_bytes(key, &vec![b'v'; size]);
    }
    let (push, initiator) = offer(&nodes, 0, 1, limits);
    assert_eq!(initiator.left_out().len(), 1, "left out");
    assert_eq!(initiator.left_out()[0].id, key_id(1));
    assert_eq!(push.push.to.lc, 3, "the page covers it all the same");
    // Only a first-release node is sent such a page: one of this release
    // checks that a page carries every entry it spans.
    let refused = answer_offer(&mut nodes, 1, 0, &push, limits);
    assert!(matches!(refused, Err(StepError::Refused(_))));
    // The first-release node gets the event by pulling it (its own pushes
    // leave nothing out).
    let pulling = Limits {
        push_event_bytes: usize::MAX,
        ..limits
    };
    until_quiet(&mut nodes, 1, 0, pulling);
    assert_eq!(nodes[1].settled(), nodes[0].settled());
}
