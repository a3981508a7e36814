//! Hostile input: a message that fails one of the checks of `checks.rs` is
//! refused whole, with its reason, and nothing of it is stored. Each check
//! meets the messages it must refuse; the offers that need nothing of the
//! responder's log are refused before its database would be created
//! (`check_offer`, `check_offer_events`).

use super::network::{
    FAULTLESS, Limits, answer_fill, answer_offer, fill, offer, round, until_quiet,
};
use super::node::ModelNode;
use crate::limits::SYNC_PAGE_EVENTS_MAX;
use crate::sync::protocol::{
    self, Entries, Held, Log, Offer, PageBounds, Reply, StepError, StepResult,
};

fn limits() -> Limits {
    Limits::current(PageBounds {
        events: 16,
        bytes: usize::MAX,
    })
}

/// Nodes 0 and 1 in sync, node 0's log in its second epoch; then each with
/// writes the other lacks. Node 2 has synced with neither.
fn synced() -> Vec<ModelNode> {
    let mut nodes = vec![
        ModelNode::new(1),
        ModelNode::new(2_000_000),
        ModelNode::new(4_000_000),
    ];
    for key in 0..4 {
        nodes[0].write_bytes(key, b"a");
        nodes[1].write_bytes(key + 10, b"b");
    }
    nodes[0].reopen();
    nodes[0].write_bytes(4, b"a");
    until_quiet(&mut nodes, 0, 1, limits());
    until_quiet(&mut nodes, 1, 0, limits());
    for key in 5..8 {
        nodes[0].write_bytes(key, b"a");
        nodes[1].write_bytes(key + 10, b"b");
    }
    nodes
}

/// Asserts that `stepped` was refused saying `why`.
fn assert_refused<T: std::fmt::Debug>(stepped: StepResult<T>, why: &str) {
    match stepped {
        Err(StepError::Refused(refusal)) => {
            assert!(refusal.0.contains(why), "refused saying {why:?}: {refusal}");
        }
        other => panic!("refused saying {why:?}, not {other:?}"),
    }
}

/// Node 0's offer to node 1, bent by `bend`: node 1 refuses it saying
/// `why`, and is unchanged, what it remembers included. When `early`, the
/// offer is refused before a database would be created for it.
fn offer_refused(bend: impl FnOnce(&mut Offer, &[ModelNode]), why: &str, early: bool) {
    let mut nodes = synced();
    let (mut forged, _) = offer(&nodes, 0, 1, limits());
    bend(&mut forged, &nodes);
    let before = nodes[1].clone();
    assert_refused(answer_offer(&mut nodes, 1, 0, &forged, limits()), why);
    assert_eq!(nodes[1], before, "nothing of the offer is stored");
    let checked_early =
        protocol::check_offer_events(&forged).is_ok() && protocol::check_offer(&forged).is_ok();
    assert_eq!(!checked_early, early, "refused before the database: {why}");
}

/// The reply to node `initiator`'s offer to node 1, bent by `bend`: the
/// initiator refuses it saying `why`, and stores nothing of it.
fn reply_refused(initiator: usize, bend: impl FnOnce(&mut Reply, &[ModelNode]), why: &str) {
    let mut nodes = synced();
    let (sent, state) = offer(&nodes, initiator, 1, limits());
    let mut forged = answer_offer(&mut nodes, 1, initiator, &sent, limits()).expect("taken");
    bend(&mut forged, &nodes);
    let before = nodes[initiator].stored();
    assert_refused(
        fill(&mut nodes, initiator, 1, state, &forged, limits()),
        why,
    );
    assert_eq!(
        nodes[initiator].stored(),
        before,
        "nothing of the reply is stored"
    );
}

#[test]
fn check_summary_refuses_epochs_out_of_order_or_past_the_head() {
    offer_refused(
        |offer, _| offer.summary.history.clear(),
        "names no epoch",
        true,
    );
    offer_refused(
        |offer, _| offer.summary.history.swap(0, 1),
        "do not start in order",
        true,
    );
    offer_refused(
        |offer, _| {
            let head = offer.summary.head_lc;
            if let Some(last) = offer.summary.history.last_mut() {
                last.start_lc = head + 1;
            }
        },
        "do not start in order",
        true,
    );
}

#[test]
fn check_page_refuses_a_pushed_page_outside_its_senders_current_epoch() {
    offer_refused(
        |offer, nodes| offer.push.from.epoch = nodes[0].history[0].epoch,
        "starts in one epoch of its log and ends in another",
        true,
    );
    offer_refused(
        |offer, nodes| {
            offer.push.from.epoch = nodes[0].history[0].epoch;
            offer.push.to.epoch = nodes[0].history[0].epoch;
        },
        "other than the current one its summary names",
        true,
    );
    offer_refused(
        |offer, _| offer.push.to.lc = offer.summary.head_lc + 1,
        "past its log's head",
        true,
    );
    offer_refused(
        |offer, _| offer.push.to.lc = offer.push.from.lc - 1,
        "before it starts",
        true,
    );
}

#[test]
fn check_page_refuses_a_pushed_page_that_does_not_carry_what_it_spans() {
    offer_refused(
        |offer, _| {
            if let Entries::Ids(ids) = &mut offer.push.entries {
                ids.pop();
            }
        },
        "but carries",
        true,
    );
    // Events carried whole, one more than the page spans: none is merged.
    offer_refused(
        |offer, nodes| {
            let Entries::Ids(ids) = &offer.push.entries else {
                panic!("a push lists ids");
            };
            let mut events: Vec<_> = ids
                .iter()
                .filter_map(|entry| nodes[0].get(entry.id).cloned())
                .collect();
            events.push(nodes[0].log[0].clone());
            offer.push.entries = Entries::Events(events);
        },
        "but carries",
        true,
    );
    offer_refused(
        |offer, _| {
            offer.push.held.push(Held {
                after_lc: offer.push.from.lc - 1,
                to_lc: offer.push.from.lc + 1,
                incarnation: 9,
                epoch: 9,
            });
        },
        "names a held run",
        true,
    );
    // Runs named as held in the receiver's current epoch that add up to
    // more than its log: only the receiver can tell.
    offer_refused(
        |offer, nodes| {
            let to_lc = offer.push.to.lc + nodes[1].head_lc() + 1;
            offer.summary.head_lc = to_lc;
            offer.push.held.push(Held {
                after_lc: offer.push.to.lc,
                to_lc,
                incarnation: nodes[1].incarnation,
                epoch: nodes[1].epoch(),
            });
            offer.push.to.lc = to_lc;
        },
        "as held by this node",
        false,
    );
}

#[test]
fn check_offer_events_refuses_more_events_than_a_page_holds() {
    offer_refused(
        |offer, nodes| {
            let events = vec![nodes[0].log[0].clone(); SYNC_PAGE_EVENTS_MAX + 1];
            offer.push.entries = Entries::Events(events);
        },
        "more than the limit",
        true,
    );
}

#[test]
fn check_page_refuses_a_replied_page_that_does_not_answer_the_cursor_asked() {
    reply_refused(
        0,
        |reply, _| {
            reply.page.from.lc += 1;
            reply.page.to.lc = reply.page.to.lc.max(reply.page.from.lc);
        },
        "after the cursor it answers",
    );
    // Node 2 keeps no cursor into node 1: a page for it starts at nothing.
    reply_refused(
        2,
        |reply, _| reply.page.from.lc = 1,
        "no cursor into its log was given",
    );
    reply_refused(0, |reply, _| reply.page.to.lc += 1, "but carries");
    reply_refused(
        0,
        |reply, nodes| {
            reply.page.held.push(Held {
                after_lc: reply.page.to.lc,
                to_lc: reply.page.to.lc + nodes[0].head_lc() + 1,
                incarnation: nodes[0].incarnation,
                epoch: nodes[0].epoch(),
            });
            reply.page.to.lc += nodes[0].head_lc() + 1;
        },
        "as held by this node",
    );
}

#[test]
fn check_cursor_into_refuses_a_cursor_that_is_no_position_in_this_log() {
    let why = "is not a position in this log";
    reply_refused(
        0,
        |reply, nodes| reply.cursor_at_initiator.lc = nodes[0].head_lc() + 1,
        why,
    );
    reply_refused(
        0,
        |reply, nodes| reply.cursor_at_initiator.us = nodes[0].head_us() + 1,
        why,
    );
    reply_refused(
        0,
        |reply, nodes| reply.cursor_at_initiator.epoch = nodes[0].history[0].epoch,
        why,
    );
    reply_refused(
        0,
        |reply, _| reply.cursor_at_initiator.incarnation += 1,
        why,
    );
}

#[test]
fn a_fill_is_held_to_the_offer_it_answers() {
    let mut nodes = synced();
    let before = nodes[1].cursor_into(0);
    let (sent, state) = offer(&nodes, 0, 1, limits());
    let reply = answer_offer(&mut nodes, 1, 0, &sent, limits()).expect("taken");
    let (mut request, _, _) = fill(&mut nodes, 0, 1, state, &reply, limits())
        .expect("taken")
        .expect("sent");
    // The fill says its page ends past node 0's head.
    request.fill.push_to.lc = nodes[0].head_lc() + 5;
    answer_fill(&mut nodes, 1, 0, &request, limits(), None);
    assert_eq!(
        nodes[1].cursor_into(0),
        before,
        "no cursor moves to where the offer did not go"
    );
    until_quiet(&mut nodes, 0, 1, limits());
    assert_eq!(
        nodes[1].cursor_into(0).map(|cursor| cursor.lc),
        Some(nodes[0].head_lc()),
        "honest rounds move it"
    );
}

#[test]
fn a_refused_reply_changes_nothing_the_initiator_remembers_of_its_peer() {
    let mut nodes = synced();
    // Node 0 pulls node 1's new events: runs of its log it then names to
    // node 1 rather than offering them back.
    round(&mut nodes, 0, 1, FAULTLESS, limits());
    assert!(
        !nodes[0].recall(1).view(true).held.is_empty(),
        "node 0 remembers runs node 1 holds"
    );
    let (sent, state) = offer(&nodes, 0, 1, limits());
    let mut forged = answer_offer(&mut nodes, 1, 0, &sent, limits()).expect("taken");
    // A page of another epoch of the responder's log (as after its restart),
    // which spans more than it carries.
    forged.page.from.epoch += 1;
    forged.page.to.epoch += 1;
    forged.page.to.lc += 1;
    let before = nodes[0].clone();
    assert!(
        matches!(
            fill(&mut nodes, 0, 1, state, &forged, limits()),
            Err(StepError::Refused(_))
        ),
        "the reply is refused"
    );
    assert_eq!(
        nodes[0], before,
        "what node 0 stores and remembers is unchanged: the reply's epoch is learnt only once it passed"
    );
}
