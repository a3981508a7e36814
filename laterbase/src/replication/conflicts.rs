//! The conflict-list exchange with a peer of the first release, which
//! exchanges no lists within a round: its whole list, fetched from its
//! public `GET /db/{db}/conflicts`, and the core's rule
//! ([`listed_losers`]) for which of its losers this node lists too.

use bytes::Bytes;

use super::transport::HttpTransport;
use crate::actors::Database;
use crate::error::{Error, Result};
use crate::event::EventId;
use crate::limits::{BATCH_EVENTS_MAX, GET_IDS_MAX};
use crate::sync::merge::{ListedConflict, listed_losers};

/// One entry of a peer's `GET /db/{db}/conflicts`, its values borrowed
/// from the answer.
#[derive(serde::Deserialize)]
struct ListedConflictJson<'a> {
    id: EventId,
    #[serde(borrow)]
    kept: Option<&'a serde_json::value::RawValue>,
    kept_b64: Option<String>,
    #[serde(borrow)]
    lost: Option<&'a serde_json::value::RawValue>,
    lost_b64: Option<String>,
}

#[derive(serde::Deserialize)]
struct ListedConflicts<'a> {
    #[serde(borrow)]
    conflicts: Vec<ListedConflictJson<'a>>,
}

/// The bytes of a value the conflicts route shows as JSON or as base64.
/// JSON shown verbatim keeps its bytes only with the whitespace around it,
/// which a JSON parser leaves out: the route writes a value right after
/// its key's colon and right before the comma or brace that follows, so
/// whitespace there in `answer` is the value's own.
fn listed_bytes(
    answer: &[u8],
    json: Option<&serde_json::value::RawValue>,
    b64: Option<&str>,
) -> Option<Bytes> {
    use base64::Engine as _;
    match (json, b64) {
        (Some(json), _) => Some(Bytes::copy_from_slice(with_whitespace(answer, json.get()))),
        (None, Some(b64)) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .ok()
            .map(Bytes::from),
        (None, None) => None,
    }
}

/// `text`, a slice of `answer`, widened over the JSON whitespace on both
/// sides of it.
fn with_whitespace<'a>(answer: &'a [u8], text: &'a str) -> &'a [u8] {
    let span = answer.as_ptr_range();
    let start = text.as_ptr();
    if !span.contains(&start) {
        return text.as_bytes();
    }
    let is_space = |byte: &&u8| matches!(byte, b' ' | b'\t' | b'\n' | b'\r');
    let from = start as usize - span.start as usize;
    let to = from + text.len();
    let (Some(head), Some(tail)) = (answer.get(..from), answer.get(to..)) else {
        return text.as_bytes();
    };
    let before = head.iter().rev().take_while(is_space).count();
    let after = tail.iter().take_while(is_space).count();
    answer
        .get(from - before..to + after)
        .unwrap_or(text.as_bytes())
}

/// For a peer of the first release, which exchanges no lists within a
/// round: fetches its list of conflicts for `database` (it answers the
/// whole list at once) and lists here each losing value of an id whose kept
/// value this node shares (for the others, the events' own sync comes
/// first). Returns how many losing values it merged (listed anew, or listed
/// already).
pub async fn pull_conflicts<C>(database: &Database, transport: &HttpTransport<C>) -> Result<u64>
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let path = format!("/db/{}/conflicts", database.name());
    let body = transport
        .get(&path)
        .await
        .map_err(|error| Error::Sync(error.to_string()))?
        .body;
    let listed: ListedConflicts<'_> = serde_json::from_slice(&body)
        .map_err(|error| Error::Sync(format!("{path}: the answer does not parse: {error}")))?;
    let ids: Vec<EventId> = listed
        .conflicts
        .iter()
        .map(|conflict| conflict.id)
        .collect();
    let mut held = std::collections::HashMap::new();
    for chunk in ids.chunks(GET_IDS_MAX) {
        // A read by ids stops at its byte bound: ask again for the rest.
        let mut rest = chunk;
        while !rest.is_empty() {
            let page = database.get(rest).await?;
            rest = rest
                .get(page.events.len() + page.missing.len()..)
                .unwrap_or_default();
            for event in page.events {
                held.insert(event.id, event);
            }
        }
    }
    let listed: Vec<ListedConflict> = listed
        .conflicts
        .iter()
        .filter_map(|conflict| {
            Some(ListedConflict {
                id: conflict.id,
                kept: listed_bytes(&body, conflict.kept, conflict.kept_b64.as_deref())?,
                lost: listed_bytes(&body, conflict.lost, conflict.lost_b64.as_deref())?,
            })
        })
        .collect();
    let losers = listed_losers(&listed, |id| held.get(&id));
    let mut listed_anew = 0;
    for batch in losers.chunks(BATCH_EVENTS_MAX) {
        listed_anew += database.merge(batch.to_vec()).await?.conflicts;
    }
    Ok(listed_anew)
}
