//! `GET /status`: what an operator and the dashboard (`/ui`) read of a node,
//! in one document: the node, its databases with their write rates, its
//! peers with their state, its views with how far they have folded, the
//! live streams open, and the chart of events written and synced each
//! second. Everything comes from the node's handles and its replication;
//! nothing here waits on a peer.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::ApiError;
use super::state::HttpState;
use crate::actors::{Database, EventRates};
use crate::limits::WRITES_PER_S_WINDOW_S;
use crate::replication::{Direction, PeerStatus, Replication};
use crate::views::ViewStatus;

/// `GET /status`.
pub(super) async fn status(State(state): State<HttpState>) -> Result<Response, ApiError> {
    let node = state.node();
    let mut databases = Vec::new();
    let mut views = Vec::new();
    for name in node.databases() {
        let database = node.database(&name)?;
        databases.push(database_json(&database));
        for view in database.view_statuses().await? {
            views.push(view_json(&view));
        }
    }
    let mut peers = state
        .replicating()
        .map(Replication::peers)
        .unwrap_or_default();
    peers.extend(state.callers().statuses());
    let peers = peers.iter().map(peer_json).collect::<Result<Vec<_>, _>>()?;
    let (live_streams, live_streams_max) = state.live_streams();
    let answer = json!({
        "node": {
            "id": node.id(),
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_s": node.uptime().as_secs(),
            "listen": state.listen_address().map(|address| address.to_string()),
        },
        "databases": databases,
        "peers": peers,
        "views": views,
        "live_streams": live_streams,
        "live_streams_max": live_streams_max,
        "chart": chart_json(&node.rates()),
    });
    // A status is read to be current: no cache keeps one.
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(answer)).into_response())
}

/// One peer, as `/status` shows it: one this node dials names its `url`,
/// one that dials in its `address`. `lag` is `null` until a round showed
/// it.
pub(super) fn peer_json(peer: &PeerStatus) -> Result<Value, ApiError> {
    let (url, address) = match peer.direction {
        Direction::Out => (Some(&peer.url), None),
        Direction::In => (None, Some(&peer.url)),
    };
    Ok(json!({
        "direction": peer.direction.as_str(),
        "url": url,
        "address": address,
        "node": peer.node,
        "state": peer.state().as_str(),
        "last_sync": last_sync(peer)?,
        "last_error": peer.last_error,
        "failures": peer.failures,
        "lag": peer.lag.map(|lag| json!({"in": lag.to_pull, "out": lag.to_push})),
        "watching": peer.watching,
        "wire_version": peer.wire_version,
    }))
}

/// When the last pass with `peer` that succeeded ended, in RFC 3339; a time
/// RFC 3339 cannot write is an internal error, never a malformed answer.
pub(super) fn last_sync(peer: &PeerStatus) -> Result<Option<String>, ApiError> {
    match peer.last_sync {
        Some(time) if !time.is_writable() => Err(ApiError::internal(&format_args!(
            "the last sync with {} is at {} ms, which RFC 3339 cannot write",
            peer.url, time.0
        ))),
        time => Ok(time.map(|time| time.to_string())),
    }
}

fn database_json(database: &Database) -> Value {
    let info = database.info();
    let rates = database.rates();
    json!({
        "name": info.name,
        "events": info.events,
        "lc": info.lc,
        "writes_per_s": rates.written_per_s(WRITES_PER_S_WINDOW_S),
    })
}

fn view_json(view: &ViewStatus) -> Value {
    json!({
        "db": view.db,
        "view": view.view,
        "lc": view.lc,
        "events_skipped": view.skipped,
        "rebuilding": view.rebuilding,
    })
}

fn chart_json(rates: &EventRates) -> Value {
    json!({
        "until": rates.until_s,
        "written": rates.written,
        "synced": rates.synced,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Timestamp;
    use crate::limits::PEER_FAILING_PASSES;

    fn peer(failures: u32, last_sync: Option<u64>) -> PeerStatus {
        let mut peer = PeerStatus::new(Direction::Out, "http://peer".to_owned());
        peer.failures = failures;
        peer.last_sync = last_sync.map(Timestamp);
        peer
    }

    #[test]
    fn a_peer_is_ok_only_after_a_pass_succeeded() {
        let state = |failures, last_sync| {
            peer_json(&peer(failures, last_sync)).map(|json| json["state"].clone())
        };
        assert_eq!(state(0, None), Ok(json!("retrying")));
        assert_eq!(state(0, Some(1)), Ok(json!("ok")));
        for failures in 1..PEER_FAILING_PASSES {
            assert_eq!(state(failures, None), Ok(json!("retrying")));
            assert_eq!(state(failures, Some(1)), Ok(json!("retrying")));
        }
        for failures in [PEER_FAILING_PASSES, PEER_FAILING_PASSES + 1, u32::MAX] {
            assert_eq!(state(failures, Some(1)), Ok(json!("failing")));
        }
    }

    #[test]
    fn a_peer_that_dials_in_names_its_address() {
        let mut caller = PeerStatus::new(Direction::In, "10.0.0.7:41234".to_owned());
        caller.lag = Some(crate::replication::Lag {
            to_pull: 3,
            to_push: 0,
        });
        let json = peer_json(&caller).expect("json");
        assert_eq!(json["direction"], "in");
        assert_eq!(json["url"], Value::Null);
        assert_eq!(json["address"], "10.0.0.7:41234");
        assert_eq!(json["lag"], json!({"in": 3, "out": 0}));
    }

    #[test]
    fn a_last_sync_that_rfc_3339_cannot_write_is_an_internal_error() {
        let peer = peer(0, Some(crate::limits::RECORDED_AT_MS_MAX + 1));
        assert!(last_sync(&peer).is_err());
        assert!(peer_json(&peer).is_err());
    }
}
