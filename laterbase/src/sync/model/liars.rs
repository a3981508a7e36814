//! Liars: messages forged in another node's name, from what that node
//! would honestly send, bent. The randomised run interleaves them with the
//! honest rounds; each must be refused, or move nothing it should not.

use proptest::prelude::*;

use super::network::{self, Limits};
use super::node::ModelNode;
use crate::sync::protocol::{self, Held, Log, StepError};
use crate::sync::wire::FillRequest;

/// What a liar forges.
#[derive(Clone, Copy, Debug)]
pub(super) enum Lie {
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

pub(super) fn lie() -> impl Strategy<Value = Lie> {
    prop_oneof![
        Just(Lie::Head),
        Just(Lie::PushEnd),
        Just(Lie::HeldRun),
        Just(Lie::FillEnd),
        Just(Lie::ReplyEnd),
        Just(Lie::ReplyCursor),
    ]
}

/// A message forged in the name of `claimed` to `target`, bent by `lie`
/// (a bound reaching `by` past the truth), and what `target` did with it;
/// whether it was refused.
pub(super) fn forge(
    nodes: &mut [ModelNode],
    claimed: usize,
    target: usize,
    lie: Lie,
    by: u64,
    limits: Limits,
) -> bool {
    let (mut offer, initiator) = network::offer(nodes, claimed, target, limits);
    match lie {
        Lie::Head => {
            offer.summary.head_lc += by;
            offer.push.to.lc = offer.summary.head_lc;
            offer.push.entries = protocol::Entries::Ids(Vec::new());
            offer.push.held.clear();
        }
        Lie::PushEnd => offer.push.to.lc += by,
        Lie::HeldRun => {
            let to_lc = offer.push.to.lc + nodes[target].head_lc() + by;
            offer.summary.head_lc = offer.summary.head_lc.max(to_lc);
            offer.push.held.push(Held {
                after_lc: offer.push.to.lc,
                to_lc,
                incarnation: nodes[target].incarnation,
                epoch: nodes[target].epoch(),
            });
            offer.push.to.lc = to_lc;
        }
        Lie::FillEnd | Lie::ReplyEnd | Lie::ReplyCursor => {}
    }
    let mut reply = match network::answer_offer(nodes, target, claimed, &offer, limits) {
        Ok(reply) => reply,
        Err(StepError::Refused(_)) => return true,
        Err(error) => panic!("reply: {error}"),
    };
    match lie {
        Lie::FillEnd => {
            // What `claimed` would fill, read but not applied: `claimed`
            // never saw this round.
            let recall = nodes[claimed].recall(target);
            let filled = protocol::fill(
                &nodes[claimed],
                initiator,
                reply.clone(),
                network::view(&recall, &limits),
                limits.bounds,
            );
            let Ok((mut fill, _, _)) = filled else {
                return true;
            };
            fill.push_to.lc += by;
            fill.complete = true;
            let request = FillRequest {
                fill,
                missing: reply.missing,
                push_taken: reply.push_taken,
                cursor_stored: reply.cursor_stored,
            };
            network::answer_fill(nodes, target, claimed, &request, limits, None);
            false
        }
        Lie::ReplyEnd | Lie::ReplyCursor => {
            // The other way round: `target` dialled `claimed` and a liar
            // answers in its name.
            let (_, initiator) = network::offer(nodes, target, claimed, limits);
            if matches!(lie, Lie::ReplyEnd) {
                reply.page.to.lc += by;
            } else {
                reply.cursor_at_initiator.lc = nodes[target].head_lc() + by;
            }
            match network::fill(nodes, target, claimed, initiator, &reply, limits) {
                Ok(_) => false,
                Err(StepError::Refused(_)) => true,
                Err(error) => panic!("fill: {error}"),
            }
        }
        Lie::Head | Lie::PushEnd | Lie::HeldRun => false,
    }
}
