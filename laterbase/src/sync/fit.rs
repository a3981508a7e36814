//! Fitting a message to what its receiver reads: the bounds of one page,
//! and a fill or a deliver cut to the bytes a peer takes.

use bytes::Bytes;

use super::messages::{Deliver, PageBounds};
use super::wire::{self, FillRequest};
use crate::error::{Error, Result};
use crate::limits::{
    SYNC_BODY_BYTES_MAX, SYNC_EVENT_FRAMING_BYTES, SYNC_PAGE_BYTES_MAX, SYNC_PAGE_EVENTS_MAX,
    SYNC_V2_BODY_BYTES_MAX,
};

/// How much one page of a sync message may carry.
pub const BOUNDS: PageBounds = PageBounds {
    events: SYNC_PAGE_EVENTS_MAX,
    bytes: SYNC_PAGE_BYTES_MAX,
};

/// The largest request a peer speaking wire `version` reads.
pub fn peer_body_bytes_max(version: u8) -> usize {
    if version >= wire::VERSION {
        SYNC_BODY_BYTES_MAX
    } else {
        SYNC_V2_BODY_BYTES_MAX
    }
}

/// Encodes a fill within `bytes_max`. Every fill a page allows fits a peer
/// (see `limits`), unless its events were rewritten larger since their page
/// was read, or a list of losers predates the bound of one id's losers:
/// then the page of the list waits for a later round, and then events from
/// the end, the fill saying it is not complete (the responder's cursor does
/// not move, and the next round offers them again).
pub fn fill_within(request: &mut FillRequest, version: u8, bytes_max: usize) -> Result<Bytes> {
    let body = wire::encode_fill(request, version);
    if body.len() <= bytes_max {
        return Ok(body);
    }
    if request.fill.losers.take().is_some() {
        return fill_within(request, version, bytes_max);
    }
    let mut excess = body.len() - bytes_max;
    while excess > 0 {
        let Some(event) = request.fill.events.pop() else {
            return Err(Error::Sync(format!(
                "a fill of {} bytes without events does not fit the peer's limit of {bytes_max} bytes",
                wire::encode_fill(request, version).len()
            )));
        };
        request.fill.complete = false;
        excess = excess.saturating_sub(SYNC_EVENT_FRAMING_BYTES + event.data.len());
    }
    tracing::debug!(
        events = request.fill.events.len(),
        bytes_max,
        "a fill was cut to fit the peer's limit; the rest goes next round"
    );
    Ok(wire::encode_fill(request, version))
}

/// Encodes a deliver within `bytes_max`, as [`fill_within`] does a fill.
pub fn deliver_within(deliver: &mut Deliver, version: u8, bytes_max: usize) -> Result<Bytes> {
    let body = wire::encode_deliver(deliver, version);
    if body.len() <= bytes_max {
        return Ok(body);
    }
    if deliver.losers.take().is_some() {
        return deliver_within(deliver, version, bytes_max);
    }
    let mut excess = body.len() - bytes_max;
    while excess > 0 {
        let Some(event) = deliver.events.pop() else {
            return Err(Error::Sync(format!(
                "a deliver without events does not fit the limit of {bytes_max} bytes"
            )));
        };
        deliver.complete = false;
        excess = excess.saturating_sub(SYNC_EVENT_FRAMING_BYTES + event.data.len());
    }
    Ok(wire::encode_deliver(deliver, version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, EventId, Timestamp};
    use crate::sync::messages::{Cursor, Fill, Loser, LoserPage};

    fn request(sizes: &[usize], losers: Option<usize>) -> FillRequest {
        let cursor = Cursor {
            incarnation: 1,
            epoch: 2,
            lc: 3,
            us: 4,
        };
        let events = sizes
            .iter()
            .zip(1..)
            .map(|(size, n)| Event {
                id: EventId::from_parts(n, 0),
                data: Bytes::from(vec![b'x'; *size]),
                recorded_at: Timestamp(n),
                lc: 0,
            })
            .collect();
        FillRequest {
            fill: Fill {
                events,
                complete: true,
                push_to: cursor,
                want: Vec::new(),
                losers: losers.map(|size| LoserPage {
                    after: None,
                    losers: vec![Loser {
                        id: EventId::from_parts(1, 0),
                        data: Bytes::from(vec![b'y'; size]),
                    }],
                    more: false,
                }),
                losers_wanted: None,
            },
            missing: Vec::new(),
            push_taken: true,
            cursor_stored: Some(cursor),
        }
    }

    #[test]
    fn a_fill_too_large_for_its_peer_defers_its_list_then_its_last_events() {
        let fits = request(&[100, 100], Some(100));
        let limit = wire::encode_fill(&fits, wire::VERSION).len();
        let mut same = fits.clone();
        assert_eq!(
            fill_within(&mut same, wire::VERSION, limit)
                .expect("fits")
                .len(),
            limit
        );
        assert_eq!(same, fits, "a fill that fits goes whole");
        // A list page that no longer fits waits for a later round.
        let mut larger = request(&[100, 100], Some(200));
        let body = fill_within(&mut larger, wire::VERSION, limit).expect("cut");
        assert!(body.len() <= limit);
        assert_eq!(larger.fill.losers, None);
        assert!(larger.fill.complete, "every event still goes");
        // Events that no longer fit go next round: the fill says so.
        let mut rewritten = request(&[100, 300], Some(100));
        let body = fill_within(&mut rewritten, wire::VERSION, limit).expect("cut");
        assert!(body.len() <= limit);
        assert_eq!(rewritten.fill.events.len(), 1);
        assert!(!rewritten.fill.complete);
        assert_eq!(
            wire::decode_fill(&body).expect("decodes"),
            rewritten,
            "what is sent is what the round goes on with"
        );
    }
}
