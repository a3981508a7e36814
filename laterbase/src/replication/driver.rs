//! Drives the protocol over a transport: the initiator's round, and the
//! responder's two answers that the HTTP routes serve.
//!
//! Reads of the log run on the blocking pool; every merge goes through the
//! database's writer, and the cursors a step moves are stored in the same
//! atomic write as the events they cover.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

use crate::actors::Database;
use crate::actors::blocking::run_storage;
use crate::error::{Error, Result};
use crate::event::EventId;
use crate::limits::SYNC_ANSWER_BYTES_MAX;
use crate::sync::fit::{BOUNDS, deliver_within, fill_within, peer_body_bytes_max};
use crate::sync::protocol::{self, Cursor, Entries, LeftOut, Origin, StepError, StepResult};
use crate::sync::recall::PeerRecall;
use crate::sync::wire::{self, FillRequest};

/// A future a transport returns.
pub type Sending<'a> = Pin<Box<dyn Future<Output = Result<Bytes, TransportError>> + Send + 'a>>;

/// Carries sync messages to one peer. HTTP over hyper in production; a
/// simulation brings its own.
pub trait Transport: Send + Sync {
    /// Posts `body` to `path` on the peer, as this node, and returns the
    /// answer's body.
    fn post(&self, path: String, body: Bytes) -> Sending<'_>;
}

/// Why a message did not reach the peer or its answer did not come back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(pub String);

/// What one round did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoundReport {
    /// Events received and merged.
    pub events_in: u64,
    /// Events sent.
    pub events_out: u64,
    /// Ids (with digests) offered to the peer.
    pub ids_out: u64,
    /// Ids (with digests) the peer offered.
    pub ids_in: u64,
    /// Bytes sent, bodies only.
    pub bytes_out: u64,
    /// Bytes received, bodies only.
    pub bytes_in: u64,
    /// Whether either log has more after this round's pages (events merged
    /// here count: their ids are offered back in the next round).
    pub more: bool,
    /// The peer's events after its page: what is left to pull.
    pub remaining: u64,
    /// How many distinct losing values of conflicts the peer lists.
    pub peer_losers_listed: u64,
    /// Events left out of the page pushed to the peer, which cannot take
    /// them (see [`Recall::push_event_bytes`](crate::sync::Recall::push_event_bytes)).
    pub unsent: u64,
    /// The last of them.
    pub unsent_last: Option<LeftOut>,
}

/// Which way events go between this node and a peer it syncs with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flow {
    /// Both ways.
    #[default]
    Both,
    /// From this node to the peer only: nothing of the peer's is taken.
    Push,
    /// From the peer to this node only: nothing of this node's is sent.
    Pull,
}

impl Flow {
    /// Whether this node sends its events to the peer.
    pub fn sends(self) -> bool {
        self != Flow::Pull
    }

    /// Whether this node takes the peer's events.
    pub fn takes(self) -> bool {
        self != Flow::Push
    }

    /// `both`, `push` or `pull`.
    pub fn as_str(self) -> &'static str {
        match self {
            Flow::Both => "both",
            Flow::Push => "push",
            Flow::Pull => "pull",
        }
    }
}

/// One round with `peer` for `database`, as the initiator, in wire
/// `version` (the peer's, if older than this node's), both ways.
pub async fn round(
    database: &Database,
    peer: EventId,
    transport: &dyn Transport,
    version: u8,
) -> Result<RoundReport> {
    round_one_way(database, peer, transport, version, Flow::Both, &mut None).await
}

/// [`round`], with events going only the ways `flow` lets them.
///
/// Nothing in the messages says which way a round goes, so that a peer of
/// any release answers it: a round that only pulls pushes an empty page and
/// sends no list of losers; a round that only pushes takes nothing of the
/// reply (no event, no list, no cursor), and asks for the peer's log from
/// `skip`, where the last reply said the peer's head stood (kept by the
/// caller, in memory only: the cursor this node stores into the peer stays
/// where its pulls left it).
pub async fn round_one_way(
    database: &Database,
    peer: EventId,
    transport: &dyn Transport,
    version: u8,
    flow: Flow,
    skip: &mut Option<Cursor>,
) -> Result<RoundReport> {
    let name = database.name().to_owned();
    let current = version >= wire::VERSION;
    let link = database.sync_link(peer).await?;
    let log = database.sync_log()?;
    let recall = database.recall(peer);
    let may_block = database.shared.may_block;
    let pull_from = if flow.takes() {
        link.into_peer
    } else {
        skip.or(link.into_peer)
    };
    let bulk = link.bulk && flow.takes();
    let (offer, initiator) = run_storage(may_block, move || {
        let mut view = recall.view(current);
        view.push &= flow.sends();
        Ok(protocol::offer(
            &log,
            pull_from,
            link.peer_into_local,
            bulk,
            view,
            BOUNDS,
        )?)
    })
    .await?;
    let mut report = RoundReport {
        more: offer.push.more,
        unsent: initiator.left_out().len() as u64,
        unsent_last: initiator.left_out().last().copied(),
        ..RoundReport::default()
    };
    let (ids, events) = count(&offer.push.entries);
    report.ids_out += ids;
    report.events_out += events;
    let body = wire::encode_offer(&offer, version);
    report.bytes_out += body.len() as u64;
    let answer = send(transport, format!("/sync/{name}/offer"), body).await?;
    report.bytes_in += answer.len() as u64;
    let reply = wire::decode_reply(&answer).map_err(|error| protocol_error(&error))?;
    if flow.takes() {
        let (ids, events) = count(&reply.page.entries);
        report.ids_in += ids;
        report.events_in += events;
        report.more |= reply.page.more;
        report.remaining = reply.remaining;
    } else {
        // The peer's head, as its reply shows it: the next round asks from
        // there, for a page of only what is new.
        *skip = Some(Cursor {
            lc: reply.page.to.lc.saturating_add(reply.remaining),
            ..reply.page.to
        });
    }
    report.peer_losers_listed = reply.losers_listed;
    let (missing, push_taken, cursor_stored) =
        (reply.missing.clone(), reply.push_taken, reply.cursor_stored);
    // A push the responder did not take (it started past the responder's
    // cursor, or named runs of an epoch it left) goes again at once, from
    // where the reply says.
    let pushed = offer.push.to != offer.push.from;
    report.more |= pushed && !push_taken;
    // The reply's page names the responder's current epoch: the fill is
    // planned knowing it, and what it teaches is kept only once the reply
    // passed its checks.
    let origin = current.then(|| Origin::of(reply.page.to));
    let log = database.sync_log()?;
    let mut recall = database.recall(peer);
    if let Some(origin) = origin {
        recall.learn(origin);
    }
    let filled = run_storage(may_block, move || {
        Ok(protocol::fill(
            &log,
            initiator,
            reply,
            recall.view(current),
            BOUNDS,
        ))
    })
    .await?;
    let (mut fill, initiator, effects) = checked(database, peer, "reply", filled)?;
    if let Some(origin) = origin {
        database.update_recall(peer, |recall| recall.learn(origin));
    }
    let effects = flow_effects(flow, effects);
    if !flow.takes() {
        fill.want.clear();
        fill.losers_wanted = None;
    }
    if !flow.sends() {
        fill.events.clear();
        fill.losers = None;
    }
    database.apply_sync(peer, effects).await?;
    if fill.is_empty() {
        return Ok(report);
    }
    let mut request = FillRequest {
        fill,
        missing,
        push_taken,
        cursor_stored,
    };
    let body = fill_within(&mut request, version, peer_body_bytes_max(version))?;
    report.events_out += request.fill.events.len() as u64;
    report.bytes_out += body.len() as u64;
    let answer = send(transport, format!("/sync/{name}/fill"), body).await?;
    report.bytes_in += answer.len() as u64;
    let deliver = wire::decode_deliver(&answer).map_err(|error| protocol_error(&error))?;
    report.events_in += deliver.events.len() as u64;
    // A list of losers longer than a page goes on next round.
    report.more |= [request.fill.losers.as_ref(), deliver.losers.as_ref()]
        .into_iter()
        .flatten()
        .any(|page| page.more);
    let recall = database.recall(peer);
    let effects = protocol::finish(initiator, &request.fill, deliver, recall.view(current));
    database
        .apply_sync(peer, flow_effects(flow, effects))
        .await?;
    Ok(report)
}

/// What of a step's `effects` a round that goes `flow` keeps: one that
/// only pushes keeps only where the peer's cursor into this node stands.
fn flow_effects(flow: Flow, effects: protocol::Effects) -> protocol::Effects {
    if flow.takes() {
        return effects;
    }
    protocol::Effects {
        peer_cursor_into_local: effects.peer_cursor_into_local,
        ..protocol::Effects::default()
    }
}

/// An offer as a responder reads it, decoded and checked before anything is
/// stored or created: a message that fails here changes nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfferRequest {
    version: u8,
    offer: protocol::Offer,
}

impl OfferRequest {
    /// Decodes message 1 from `peer` for `database`, in any version this
    /// node speaks, and checks what needs nothing of the database: that its
    /// page holds no more events than a page may, and
    /// [`protocol::check_offer`].
    pub fn decode(body: &Bytes, database: &str, peer: EventId) -> Result<OfferRequest> {
        let version = wire::version_of(body).map_err(|error| protocol_error(&error))?;
        let offer = wire::decode_offer(body).map_err(|error| protocol_error(&error))?;
        protocol::check_offer_events(&offer).map_err(Error::MalformedSync)?;
        let checked_early = protocol::check_offer(&offer).map_err(StepError::from);
        refused_as_error(database, peer, "offer", checked_early)?;
        Ok(OfferRequest { version, offer })
    }
}

/// The responder's answer to an offer: message 2, and how far apart it
/// leaves the two nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfferAnswer {
    /// Message 2, in the offer's wire version.
    pub body: Bytes,
    /// Events of the peer's log this node has not pulled yet, as far as
    /// the offer says.
    pub to_pull: u64,
    /// Events of this node's log the peer has not pulled yet, after the
    /// reply's page.
    pub to_push: u64,
}

/// The responder's answer to an offer (message 1 to message 2), in the
/// offer's wire version. Events the offer carried are durable before the
/// reply leaves.
pub async fn answer_offer(
    database: &Database,
    peer: EventId,
    request: OfferRequest,
) -> Result<OfferAnswer> {
    let OfferRequest { version, offer } = request;
    let peer_head = offer.summary.head_lc;
    let current = version >= wire::VERSION;
    // A peer that pulls from nothing or catches up pulls the events a push
    // would carry: pushes to it wait.
    let bulk = offer.bulk || offer.pull.is_none();
    let origin = offer.summary.history.last().map(|last| Origin {
        incarnation: offer.summary.incarnation,
        epoch: last.epoch,
    });
    let link = database.sync_link(peer).await?;
    let log = database.sync_log()?;
    let recall = database.recall(peer);
    let replied = run_storage(database.shared.may_block, move || {
        Ok(protocol::reply(
            &log,
            link.into_peer,
            offer,
            recall.view(current),
            BOUNDS,
        ))
    })
    .await?;
    let (reply, responder, effects) = checked(database, peer, "offer", replied)?;
    // What the offer teaches of the peer, once it was checked. The fill that
    // follows is held to what was checked here, not to what it echoes.
    database.update_recall(peer, |recall| {
        recall.pulls_in_bulk(bulk);
        if let (true, Some(origin)) = (current, origin) {
            recall.learn(origin);
        }
        recall.answered(responder);
    });
    let link = database.apply_sync(peer, effects).await?;
    let pulled = link.into_peer.map_or(0, |cursor| cursor.lc);
    Ok(OfferAnswer {
        body: wire::encode_reply(&reply, version),
        to_pull: peer_head.saturating_sub(pulled),
        to_push: reply.remaining,
    })
}

/// The responder's answer to a fill (message 3 to message 4), in the fill's
/// wire version.
pub async fn answer_fill(database: &Database, peer: EventId, body: &Bytes) -> Result<Bytes> {
    let version = wire::version_of(body).map_err(|error| protocol_error(&error))?;
    let request = wire::decode_fill(body).map_err(|error| protocol_error(&error))?;
    let link = database.sync_link(peer).await?;
    let log = database.sync_log()?;
    // What the reply asked for and checked, as remembered: the fill's echo
    // of it (which the first release's responders need) is not believed.
    // The pushed page was checked against the cursor stored at the reply:
    // if the cursor changed since (this node lost its data and came back,
    // say), the page may start past it, and must not move it.
    let responder = database
        .update_recall(peer, PeerRecall::take_answered)
        .against(link.into_peer);
    let recall = database.recall(peer);
    let current = version >= wire::VERSION;
    let (mut deliver, effects) = run_storage(database.shared.may_block, move || {
        Ok(protocol::deliver(
            &log,
            responder,
            request.fill,
            recall.view(current),
            BOUNDS,
        )?)
    })
    .await?;
    database.apply_sync(peer, effects).await?;
    deliver_within(&mut deliver, version, SYNC_ANSWER_BYTES_MAX)
}

/// A step's result, with a refused message logged and counted as such.
fn checked<T>(
    database: &Database,
    peer: EventId,
    message: &'static str,
    stepped: StepResult<T>,
) -> Result<T> {
    refused_as_error(database.name(), peer, message, stepped)
}

/// [`checked`] for a database named `database`, which may not exist yet.
fn refused_as_error<T>(
    database: &str,
    peer: EventId,
    message: &'static str,
    stepped: StepResult<T>,
) -> Result<T> {
    match stepped {
        Ok(done) => Ok(done),
        Err(StepError::Storage(error)) => Err(error.into()),
        Err(StepError::Refused(refusal)) => {
            tracing::warn!(
                database,
                %peer,
                message,
                reason = %refusal,
                "a sync message was refused; nothing it carried is stored"
            );
            metrics::counter!("laterbase_sync_refused_total", "peer" => peer.to_string(), "message" => message)
                .increment(1);
            Err(Error::MalformedSync(format!(
                "{message} refused: {refusal}"
            )))
        }
    }
}

/// The ids and the events a page carries.
fn count(entries: &Entries) -> (u64, u64) {
    match entries {
        Entries::Ids(ids) => (ids.len() as u64, 0),
        Entries::Events(events) => (0, events.len() as u64),
    }
}

async fn send(transport: &dyn Transport, path: String, body: Bytes) -> Result<Bytes> {
    transport
        .post(path, body)
        .await
        .map_err(|error| Error::Sync(error.0))
}

fn protocol_error(error: &wire::WireError) -> Error {
    Error::MalformedSync(error.to_string())
}
