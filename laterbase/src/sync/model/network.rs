//! The model's network and its driver: the steps of a round as the driver
//! and the responder's routes run them (every message through the wire in
//! the version the two nodes speak, a fill and a deliver cut to what their
//! receiver reads by `fit`), the effects applied as a database applies
//! them (merge first, then the cursors, kept by `merge::furthest`), and
//! the faults a round may meet: a message lost, a fill delivered twice, a
//! responder that restarts between its reply and the fill, a write that
//! lands while the round is under way.
//!
//! Every honest message is checked on the way against the bounds it was
//! made within (`assert_page_within`, `assert_events_within`), and after
//! every step a test may check that no cursor passes an event its node
//! lacks (`assert_cursors_sound`).

use bytes::Bytes;

use super::node::{ModelNode, VALUE_BYTES_MAX, VALUES_PER_KEY};
use crate::event::{Event, EventId};
use crate::limits::{EVENT_BYTES_MAX, SYNC_ANSWER_BYTES_MAX, SYNC_EVENT_FRAMING_BYTES};
use crate::sync::fit;
use crate::sync::merge::furthest;
use crate::sync::protocol::{
    self, Cursor, Deliver, Effects, Entries, Fill, Initiator, Log, Loser, LoserPage, Offer, Origin,
    Page, PageBounds, Recall, Refusal, Reply, Responder, StepError, StepResult, Summary,
};
use crate::sync::recall::PeerRecall;
use crate::sync::state::Link;
use crate::sync::wire::{self, FillRequest};

/// How two nodes talk: the wire version they speak and what each message
/// may hold.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    /// The wire version.
    pub(super) version: u8,
    /// How much a page, and the events of a fill or a deliver, may carry.
    pub(super) bounds: PageBounds,
    /// The most bytes a fill may take: what the responder reads of a
    /// request.
    pub(super) fill_bytes: usize,
    /// The most bytes a deliver may take: what the initiator reads of an
    /// answer.
    pub(super) deliver_bytes: usize,
    /// The most data an event may hold to be pushed.
    pub(super) push_event_bytes: usize,
}

impl Limits {
    /// What two nodes of this release allow each other, with pages of
    /// `bounds`.
    pub(super) fn current(bounds: PageBounds) -> Limits {
        Limits {
            version: wire::VERSION,
            bounds,
            fill_bytes: fit::peer_body_bytes_max(wire::VERSION),
            deliver_bytes: SYNC_ANSWER_BYTES_MAX,
            push_event_bytes: EVENT_BYTES_MAX,
        }
    }

    /// The limits scaled down to the model's values, in the current
    /// version: pages of `bounds`, and fills and delivers that take the
    /// most a page of ids asks for, one value alone or one id's losers
    /// alone (as the real limits take the largest event and the most one id
    /// lists), and `fill_extra` and `deliver_extra` bytes more. A page of
    /// events may take more: then fills and delivers are cut.
    pub(super) fn scaled(bounds: PageBounds, fill_extra: usize, deliver_extra: usize) -> Limits {
        let lone = lone_event_bytes().max(lone_losers_bytes());
        let fill_bytes = fill_framing_bytes(bounds.events) + lone;
        let deliver_bytes = deliver_framing_bytes() + lone;
        Limits {
            version: wire::VERSION,
            bounds,
            fill_bytes: fill_bytes.saturating_add(fill_extra),
            deliver_bytes: deliver_bytes.saturating_add(deliver_extra),
            push_event_bytes: EVENT_BYTES_MAX,
        }
    }

    /// Whether the version exchanges lists and names held runs.
    fn current_version(&self) -> bool {
        self.version >= wire::VERSION
    }
}

/// The largest id and cursor, for the largest framing.
const ID_MAX: u128 = u128::MAX;

fn cursor_max() -> Cursor {
    Cursor {
        incarnation: ID_MAX,
        epoch: ID_MAX,
        lc: u64::MAX,
        us: u64::MAX,
    }
}

/// The bytes of the largest fill without events nor a list: `events` ids
/// wanted and as many missing, each cursor, a list asked for after an id.
pub(super) fn fill_framing_bytes(events: usize) -> usize {
    let id = EventId::from_u128(ID_MAX);
    let request = FillRequest {
        fill: Fill {
            events: Vec::new(),
            complete: true,
            push_to: cursor_max(),
            want: vec![id; events],
            losers: None,
            losers_wanted: Some(Some(id)),
        },
        missing: vec![id; events],
        push_taken: true,
        cursor_stored: Some(cursor_max()),
    };
    wire::encode_fill(&request, wire::VERSION).len()
}

fn empty_deliver() -> Deliver {
    Deliver {
        events: Vec::new(),
        complete: true,
        losers: None,
    }
}

/// The bytes of a deliver without events nor a list.
pub(super) fn deliver_framing_bytes() -> usize {
    wire::encode_deliver(&empty_deliver(), wire::VERSION).len()
}

/// What one value of the model takes in a message.
fn lone_event_bytes() -> usize {
    SYNC_EVENT_FRAMING_BYTES + VALUE_BYTES_MAX
}

/// What a page of one id's losers takes in a message, at most.
fn lone_losers_bytes() -> usize {
    let id = EventId::from_u128(ID_MAX);
    let losers = (1..VALUES_PER_KEY)
        .map(|_| Loser {
            id,
            data: Bytes::from(vec![0; VALUE_BYTES_MAX]),
        })
        .collect();
    let deliver = Deliver {
        losers: Some(LoserPage {
            after: Some(id),
            losers,
            more: true,
        }),
        ..empty_deliver()
    };
    wire::encode_deliver(&deliver, wire::VERSION).len() - deliver_framing_bytes()
}

/// The faults a round meets.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Faults {
    /// The message the network loses, if any (1 to 4).
    pub(super) lost: Option<u8>,
    /// Whether the network delivers message 3 twice.
    pub(super) repeat_fill: bool,
    /// Whether the responder restarts between its reply and the fill.
    pub(super) responder_restarts: bool,
    /// A write that lands while the round is under way: on the initiator
    /// before its fill (`true`), or on the responder before its deliver;
    /// its key and value.
    pub(super) write_between: Option<(bool, u64, u8)>,
}

/// A round without faults.
pub(super) const FAULTLESS: Faults = Faults {
    lost: None,
    repeat_fill: false,
    responder_restarts: false,
    write_between: None,
};

/// What a round did.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Done {
    /// Whether anything changed on either node: events, losers, cursors or
    /// what they remember of each other.
    pub(super) changed: bool,
    /// Ids offered either way, in pages.
    pub(super) ids: usize,
    /// Events sent either way, in pages and answers.
    pub(super) events: usize,
    /// What was cut to fit.
    pub(super) cuts: Cuts,
}

/// How many messages were sent, and how many of them cut to fit their
/// bounds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Cuts {
    /// Pages sent.
    pub(super) pages_sent: usize,
    /// Fills sent.
    pub(super) fills_sent: usize,
    /// Delivers sent.
    pub(super) delivers_sent: usize,
    /// Pages that say more follow with fewer entries than their count
    /// allows: cut by their bytes (or at a held run).
    pub(super) pages: usize,
    /// Fills cut to what the responder reads.
    pub(super) fills: usize,
    /// Delivers cut to what the initiator reads.
    pub(super) delivers: usize,
}

impl Cuts {
    pub(super) fn add(&mut self, other: Cuts) {
        self.pages_sent += other.pages_sent;
        self.fills_sent += other.fills_sent;
        self.delivers_sent += other.delivers_sent;
        self.pages += other.pages;
        self.fills += other.fills;
        self.delivers += other.delivers;
    }
}

impl Done {
    fn page(&mut self, page: &Page, bounds: PageBounds) {
        let entries = match &page.entries {
            Entries::Ids(ids) => ids.len(),
            Entries::Events(events) => events.len(),
        };
        match &page.entries {
            Entries::Ids(_) => self.ids += entries,
            Entries::Events(_) => self.events += entries,
        }
        self.cuts.pages_sent += 1;
        self.cuts.pages += usize::from(page.more && entries < bounds.events);
    }

    pub(super) fn add(&mut self, other: Done) {
        self.changed |= other.changed;
        self.ids += other.ids;
        self.events += other.events;
        self.cuts.add(other.cuts);
    }
}

/// What the protocol reads of `recall` between nodes that talk as
/// `limits` says.
pub(super) fn view<'a>(recall: &'a PeerRecall, limits: &Limits) -> Recall<'a> {
    Recall {
        push_event_bytes: limits.push_event_bytes,
        ..recall.view(limits.current_version())
    }
}

/// A message as its receiver reads it: encoded in `version` and decoded
/// (events without their `lc`, which is the sender's own), and what is
/// read says what was sent.
fn carry<T>(
    message: &T,
    version: u8,
    encode: fn(&T, u8) -> Bytes,
    decode: fn(&Bytes) -> Result<T, wire::WireError>,
) -> T {
    let sent = encode(message, version);
    let read = decode(&sent).expect("what is encoded decodes");
    assert_eq!(
        encode(&read, version),
        sent,
        "what is read is what was sent"
    );
    read
}

/// Message 1: `a`'s offer to `b`, from what `a` keeps and remembers.
pub(super) fn offer(nodes: &[ModelNode], a: usize, b: usize, limits: Limits) -> (Offer, Initiator) {
    let link = nodes[a].link(b);
    let recall = nodes[a].recall(b);
    protocol::offer(
        &nodes[a],
        link.into_peer,
        link.peer_into_local,
        link.bulk,
        view(&recall, &limits),
        limits.bounds,
    )
    .expect("the model's log reads")
}

/// Message 1 arrives at `b` from `a`: read and checked as the route reads
/// it before anything else (`check_offer_events`, `check_offer`), then
/// answered (message 2); what the offer teaches of `a` is remembered and
/// the effects applied, as the responder's route does.
pub(super) fn answer_offer(
    nodes: &mut [ModelNode],
    b: usize,
    a: usize,
    offer: &Offer,
    limits: Limits,
) -> StepResult<Reply> {
    let offer = carry(
        offer,
        limits.version,
        wire::encode_offer,
        wire::decode_offer,
    );
    protocol::check_offer_events(&offer).map_err(|why| StepError::Refused(Refusal(why)))?;
    protocol::check_offer(&offer)?;
    let origin = offer.summary.history.last().map(|last| Origin {
        incarnation: offer.summary.incarnation,
        epoch: last.epoch,
    });
    let link = nodes[b].link(a);
    let recall = nodes[b].recall(a);
    let (reply, responder, effects) = protocol::reply(
        &nodes[b],
        link.into_peer,
        offer,
        view(&recall, &limits),
        limits.bounds,
    )?;
    assert_page_within(&nodes[b], &reply.page, limits.bounds);
    let recall = nodes[b].recalls.entry(a).or_default();
    if let (true, Some(origin)) = (limits.current_version(), origin) {
        recall.learn(origin);
    }
    recall.answered(responder);
    apply(&mut nodes[b], a, effects);
    Ok(reply)
}

/// Message 2 arrives at `a` from `b`: its fill (message 3), cut to what
/// `b` reads (`fit::fill_within`), as sent, and whether it was cut; and
/// the effects applied. `None` when the fill carries nothing: it is not
/// sent.
pub(super) fn fill(
    nodes: &mut [ModelNode],
    a: usize,
    b: usize,
    initiator: Initiator,
    reply: &Reply,
    limits: Limits,
) -> StepResult<Option<(FillRequest, Initiator, bool)>> {
    let reply = carry(
        reply,
        limits.version,
        wire::encode_reply,
        wire::decode_reply,
    );
    let (missing, push_taken, cursor_stored) =
        (reply.missing.clone(), reply.push_taken, reply.cursor_stored);
    // The reply's page names the responder's current epoch: the fill is
    // planned knowing it, and it is kept only once the reply passed.
    let origin = limits.current_version().then(|| Origin::of(reply.page.to));
    let mut recall = nodes[a].recall(b);
    if let Some(origin) = origin {
        recall.learn(origin);
    }
    let (fill, initiator, effects) = protocol::fill(
        &nodes[a],
        initiator,
        reply,
        view(&recall, &limits),
        limits.bounds,
    )?;
    if let Some(origin) = origin {
        nodes[a].recalls.entry(b).or_default().learn(origin);
    }
    assert_events_within(&fill.events, limits.bounds, "a fill");
    apply(&mut nodes[a], b, effects);
    if fill.is_empty() {
        return Ok(None);
    }
    let mut request = FillRequest {
        fill,
        missing,
        push_taken,
        cursor_stored,
    };
    let whole = request.clone();
    let body = fit::fill_within(&mut request, limits.version, limits.fill_bytes)
        .expect("a fill without its events and its list fits");
    assert!(body.len() <= limits.fill_bytes, "a fill fits its peer");
    let cut = request != whole;
    Ok(Some((request, initiator, cut)))
}

/// Message 3 arrives at `b` from `a`: held to what `b` remembers of its
/// reply (or to `remembered`, as if it remembered that), against its cursor
/// as stored now; merged, answered (message 4, cut to what `a` reads by
/// `fit::deliver_within`) and applied. The deliver as sent, and whether it
/// was cut.
pub(super) fn answer_fill(
    nodes: &mut [ModelNode],
    b: usize,
    a: usize,
    request: &FillRequest,
    limits: Limits,
    remembered: Option<Responder>,
) -> (Deliver, bool) {
    let request = carry(
        request,
        limits.version,
        wire::encode_fill,
        wire::decode_fill,
    );
    let responder = match remembered {
        Some(responder) => responder,
        None => nodes[b].recalls.entry(a).or_default().take_answered(),
    }
    .against(nodes[b].cursor_into(a));
    let recall = nodes[b].recall(a);
    let (mut deliver, effects) = protocol::deliver(
        &nodes[b],
        responder,
        request.fill,
        view(&recall, &limits),
        limits.bounds,
    )
    .expect("the model's log reads");
    assert_events_within(&deliver.events, limits.bounds, "a deliver");
    apply(&mut nodes[b], a, effects);
    let whole = deliver.clone();
    let body = fit::deliver_within(&mut deliver, limits.version, limits.deliver_bytes)
        .expect("a deliver without its events and its list fits");
    assert!(
        body.len() <= limits.deliver_bytes,
        "a deliver fits its peer"
    );
    let cut = deliver != whole;
    (
        carry(
            &deliver,
            limits.version,
            wire::encode_deliver,
            wire::decode_deliver,
        ),
        cut,
    )
}

/// Message 4 arrives at `a` from `b`: the round ends there.
pub(super) fn finish(
    nodes: &mut [ModelNode],
    a: usize,
    b: usize,
    initiator: Initiator,
    request: &FillRequest,
    deliver: Deliver,
    limits: Limits,
) {
    let recall = nodes[a].recall(b);
    let effects = protocol::finish(initiator, &request.fill, deliver, view(&recall, &limits));
    apply(&mut nodes[a], b, effects);
}

/// One round from `a` to `b`, honest, through `faults`.
pub(super) fn round(
    nodes: &mut [ModelNode],
    a: usize,
    b: usize,
    faults: Faults,
    limits: Limits,
) -> Done {
    let before = (nodes[a].clone(), nodes[b].clone());
    let mut done = Done::default();
    steps(nodes, a, b, faults, limits, &mut done);
    done.changed = (&nodes[a], &nodes[b]) != (&before.0, &before.1);
    done
}

fn steps(
    nodes: &mut [ModelNode],
    a: usize,
    b: usize,
    faults: Faults,
    limits: Limits,
    done: &mut Done,
) {
    let (offer, initiator) = offer(nodes, a, b, limits);
    assert_page_within(&nodes[a], &offer.push, limits.bounds);
    done.page(&offer.push, limits.bounds);
    if faults.lost == Some(1) {
        return;
    }
    let reply = answer_offer(nodes, b, a, &offer, limits).expect("an honest offer is taken");
    done.page(&reply.page, limits.bounds);
    if faults.lost == Some(2) {
        return;
    }
    if let Some((true, key, value)) = faults.write_between {
        nodes[a].write(key, value, 0);
    }
    let filled = fill(nodes, a, b, initiator, &reply, limits).expect("an honest reply is taken");
    let Some((request, initiator, cut)) = filled else {
        return;
    };
    done.events += request.fill.events.len();
    done.cuts.fills_sent += 1;
    done.cuts.fills += usize::from(cut);
    if faults.lost == Some(3) {
        return;
    }
    if faults.responder_restarts {
        nodes[b].reopen();
    }
    if let Some((false, key, value)) = faults.write_between {
        nodes[b].write(key, value, 0);
    }
    let remembered = nodes[b].recall(a).take_answered();
    let (deliver, cut) = answer_fill(nodes, b, a, &request, limits, None);
    done.events += deliver.events.len();
    done.cuts.delivers_sent += 1;
    done.cuts.delivers += usize::from(cut);
    if faults.repeat_fill {
        // As if the responder remembered its reply twice: a fill repeated
        // moves nothing the first did not.
        answer_fill(nodes, b, a, &request, limits, Some(remembered));
    }
    if faults.lost == Some(4) {
        return;
    }
    finish(nodes, a, b, initiator, &request, deliver, limits);
}

/// Applies what a step asks for as a database does: merges the events and
/// lists the losers and, with them, stores the cursors (the cursor into the
/// peer never moving back within an epoch: `furthest`); then remembers
/// what the step taught of the peer.
pub(super) fn apply(node: &mut ModelNode, peer: usize, effects: Effects) {
    let link = node.link(peer);
    let updated = Link {
        into_peer: furthest(link.into_peer, effects.cursor_into_peer),
        peer_into_local: effects.peer_cursor_into_local.or(link.peer_into_local),
        bulk: effects.bulk.unwrap_or(link.bulk),
    };
    let mut held = None;
    if !effects.merge.is_empty() || !effects.losers.is_empty() || updated != link {
        let run = node.merge(effects.merge);
        for loser in effects.losers {
            node.list(loser.id, loser.data);
        }
        node.links.insert(peer, updated);
        held = effects.merge_origin.zip(run);
    }
    let recall = node.recalls.entry(peer).or_default();
    if let Some((origin, (after_lc, to_lc))) = held {
        recall.remember(origin, after_lc, to_lc);
    }
    if let Some(cursor) = updated.peer_into_local {
        recall.passed(cursor);
    }
    if let Some(scan) = effects.loser_scan {
        recall.read_losers(scan);
    }
}

/// Rounds from `a` to `b` until one changes nothing; what they did.
pub(super) fn until_quiet(nodes: &mut [ModelNode], a: usize, b: usize, limits: Limits) -> Done {
    let mut total = Done::default();
    for _ in 0..1_000 {
        let done = round(nodes, a, b, FAULTLESS, limits);
        total.add(done);
        if !done.changed {
            return total;
        }
    }
    panic!("rounds from {a} to {b} never went quiet");
}

/// Rounds between every pair, both ways, until none changes anything.
pub(super) fn all_quiet(nodes: &mut [ModelNode], limits: Limits) -> Done {
    let mut total = Done::default();
    for _ in 0..1_000 {
        let mut changed = false;
        for a in 0..nodes.len() {
            for b in 0..nodes.len() {
                if a != b {
                    let done = until_quiet(nodes, a, b, limits);
                    changed |= done.changed;
                    total.add(done);
                }
            }
        }
        if !changed {
            return total;
        }
    }
    panic!("rounds never went quiet");
}

/// The bytes of data of an entry of a page of `sender`.
fn entry_bytes(sender: &ModelNode, entries: &Entries) -> Vec<usize> {
    match entries {
        Entries::Ids(ids) => ids
            .iter()
            .map(|entry| sender.get(entry.id).map_or(0, |event| event.data.len()))
            .collect(),
        Entries::Events(events) => events.iter().map(|event| event.data.len()).collect(),
    }
}

/// Asserts that `sizes` (of `count` items) stay within `bounds`: at most
/// `bounds.events`, and `bounds.bytes` or one alone.
fn assert_sizes_within(sizes: &[usize], bounds: PageBounds, what: &str) {
    assert!(
        sizes.len() <= bounds.events.max(1),
        "{what} of {} entries, past {} per page",
        sizes.len(),
        bounds.events
    );
    let bytes: usize = sizes.iter().sum();
    assert!(
        sizes.len() <= 1 || bytes <= bounds.bytes,
        "{what} of {bytes} bytes in {} entries, past {} per page",
        sizes.len(),
        bounds.bytes
    );
}

/// Asserts that an honest page of `sender` holds to `bounds`: at most its
/// count and its bytes of data, or one entry alone; that it moves while
/// the sender's log goes on after it starts (never nothing when there is
/// something); and that it says more exactly when the log goes on after
/// its end.
pub(super) fn assert_page_within(sender: &ModelNode, page: &Page, bounds: PageBounds) {
    assert_sizes_within(&entry_bytes(sender, &page.entries), bounds, "a page");
    let (head_lc, head_us) = (sender.head_lc(), sender.head_us());
    if head_lc > page.from.lc || head_us > page.from.us {
        assert_ne!(page.to, page.from, "a page moves while the log goes on");
    }
    assert_eq!(
        page.more,
        page.to.lc < head_lc || page.to.us < head_us,
        "a page says more exactly when the log goes on after it"
    );
}

/// Asserts that the events of a fill or a deliver stay within `bounds`, as
/// a page's do.
pub(super) fn assert_events_within(events: &[Event], bounds: PageBounds, what: &str) {
    let sizes: Vec<usize> = events.iter().map(|event| event.data.len()).collect();
    assert_sizes_within(&sizes, bounds, what);
}

/// Asserts that no cursor passes an event its node lacks: where a node's
/// cursor into a peer may resume (as the peer checks it: `resume`), the
/// node holds every id the peer's log holds up to there.
pub(super) fn assert_cursors_sound(nodes: &[ModelNode]) {
    for (index, node) in nodes.iter().enumerate() {
        for (peer, link) in &node.links {
            let Some(cursor) = link.into_peer else {
                continue;
            };
            let at = protocol::resume(&Summary::of(&nodes[*peer]), Some(cursor));
            for event in nodes[*peer].log.iter().take(at.lc as usize) {
                assert!(
                    node.ids.contains_key(&event.id),
                    "node {index}'s cursor into {peer} (lc {}) passes lc {}, which it lacks",
                    at.lc,
                    event.lc
                );
            }
        }
    }
}
