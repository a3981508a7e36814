//! `POST /db/{db}/e` and `GET /db/{db}/e`: writing events and the three reads.
//!
//! A JSON batch is parsed without re-serialising: each event's `data` is a
//! slice of the request body, stored byte for byte. Reads write `data` back
//! verbatim when the bytes are JSON, as `data_b64` otherwise.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::value::RawValue;

use super::error::ApiError;
use super::event_json::{push_event, push_value, unwritten};
use super::names::database_name;
use super::state::HttpState;
use super::{binary, held, live};
use crate::actors::Database;
use crate::clock::Horizon;
use crate::event::Receipt;
use crate::event::{Event, EventId, NewEvent};
use crate::limits::{
    CONFLICTS_PAGE_BYTES_MAX, GET_IDS_MAX, JSON_DEPTH_MAX, Limits, PAGE_EVENTS_MAX,
};

/// `POST /db/{db}/e`: checks in the contract's order (name, database, size,
/// body, each event, conflicts), then appends and answers once durable.
/// Each event is checked whole before the next (its shape, its id, its id's
/// time against one reading of the node's clock, its data), so that the
/// first bad event by index answers; the writer checks the times again
/// against its own reading.
pub(super) async fn write(
    State(state): State<HttpState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let name = database_name(path)?;
    let database = state.node().database(&name)?;
    let limits = state.node().limits();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limits.body_bytes_max as u64) {
        return Err(too_large_body(&limits));
    }
    let body = read_body(body, &limits).await?;
    let horizon = state.node().horizon();
    let events = match content_type(&headers)? {
        Encoding::Json => parse_batch(&body, &limits, horizon)?,
        Encoding::Binary => binary::decode_batch(&body, limits.batch_events_max, horizon)?,
    };
    // Room for the receipt before the batch is stored: a node short of
    // room refuses the write while it changes nothing.
    let held = state
        .answers()
        .reserve(held::receipt_bytes_max(events.len()))
        .await?;
    let receipt = database.append(events).await?;
    held.hold(receipt_json(&receipt)?).await
}

/// Reads a body up to the body limit.
pub(super) async fn read_body(body: Body, limits: &Limits) -> Result<Bytes, ApiError> {
    read_body_up_to(body, limits.body_bytes_max).await
}

/// Reads a body of at most `bytes_max` bytes.
pub(super) async fn read_body_up_to(body: Body, bytes_max: usize) -> Result<Bytes, ApiError> {
    Ok(http_body_util::Limited::new(body, bytes_max)
        .collect()
        .await
        .map_err(|error| {
            if error.is::<http_body_util::LengthLimitError>() {
                too_large(bytes_max)
            } else {
                ApiError::invalid_json(format!("the body could not be read: {error}"))
            }
        })?
        .to_bytes())
}

fn too_large_body(limits: &Limits) -> ApiError {
    too_large(limits.body_bytes_max)
}

fn too_large(bytes_max: usize) -> ApiError {
    ApiError::payload_too_large(format!(
        "the body is larger than the limit of {bytes_max} bytes"
    ))
}

enum Encoding {
    Json,
    Binary,
}

/// The body's encoding: JSON when the type says so or says nothing.
fn content_type(headers: &HeaderMap) -> Result<Encoding, ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(Encoding::Json);
    };
    let text = value.to_str().unwrap_or_default();
    let essence = text
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Ok(Encoding::Json),
        binary::CONTENT_TYPE => Ok(Encoding::Binary),
        _ => Err(ApiError::unsupported_media_type(text, binary::CONTENT_TYPE)),
    }
}

/// An event as written: only `id` and `data` count; other fields are ignored.
#[derive(serde::Deserialize)]
struct WireEvent<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    data: Option<&'a RawValue>,
}

/// A field that is present, even as `null` (which is a value of `data`).
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue as serde::Deserialize>::deserialize(deserializer).map(Some)
}

/// Parses a JSON batch (one event or an array); each `data` is a slice of
/// `body`. An id further ahead than `horizon` allows fails its event.
fn parse_batch(body: &Bytes, limits: &Limits, horizon: Horizon) -> Result<Vec<NewEvent>, ApiError> {
    check_depth(body)?;
    let whole: &RawValue = serde_json::from_slice(body)
        .map_err(|error| ApiError::invalid_json(format!("the body is not valid JSON: {error}")))?;
    let items: Vec<&RawValue> = if whole.get().starts_with('[') {
        serde_json::from_str(whole.get()).map_err(|error| {
            ApiError::invalid_json(format!("the body is not valid JSON: {error}"))
        })?
    } else {
        vec![whole]
    };
    if items.len() > limits.batch_events_max {
        return Err(ApiError::payload_too_large(format!(
            "the batch holds {} events, more than the limit of {}",
            items.len(),
            limits.batch_events_max
        )));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| parse_event(body, index, item, horizon))
        .collect()
}

/// Refuses a body that nests arrays and objects deeper than
/// [`JSON_DEPTH_MAX`]: serde_json checks no depth while it skips over a raw
/// value, and a reader of the data later would choke on it.
fn check_depth(body: &[u8]) -> Result<(), ApiError> {
    let mut depth = 0_usize;
    let mut in_string = false;
    let mut escaped = false;
    for byte in body {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > JSON_DEPTH_MAX {
                    return Err(ApiError::invalid_json(format!(
                        "the body nests arrays and objects deeper than the limit of {JSON_DEPTH_MAX} levels"
                    )));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// One event, checked in this order: an object, its id, the id's time, its
/// data.
fn parse_event(
    body: &Bytes,
    index: usize,
    item: &RawValue,
    horizon: Horizon,
) -> Result<NewEvent, ApiError> {
    if !item.get().starts_with('{') {
        return Err(ApiError::invalid_event(format!(
            "event {index} is not a JSON object"
        )));
    }
    let event: WireEvent<'_> = serde_json::from_str(item.get())
        .map_err(|error| ApiError::invalid_event(format!("event {index}: {error}")))?;
    let id = match event.id.map(RawValue::get) {
        None | Some("null") => None,
        Some(raw) => Some(parse_id(index, raw)?),
    };
    if let Some(id) = id {
        horizon.check(index, id)?;
    }
    let Some(data) = event.data else {
        return Err(ApiError::invalid_event(format!(
            "event {index} has no `data`"
        )));
    };
    Ok(NewEvent {
        id,
        data: body.slice_ref(data.get().as_bytes()),
    })
}

fn parse_id(index: usize, raw: &str) -> Result<EventId, ApiError> {
    let text: Cow<'_, str> = serde_json::from_str(raw).map_err(|_| {
        ApiError::invalid_id(format!("event {index}: `id` must be a string, not {raw}"))
    })?;
    text.parse()
        .map_err(|error| ApiError::invalid_id(format!("event {index}: id {text:?}: {error}")))
}

fn receipt_json(receipt: &Receipt) -> Result<Response, ApiError> {
    let mut out = String::with_capacity(32 + receipt.ids.len() * 29);
    out.push_str("{\"ids\":[");
    for (index, id) in receipt.ids.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        write!(out, "\"{id}\"").map_err(unwritten)?;
    }
    write!(out, "],\"lc\":{}}}", receipt.lc).map_err(unwritten)?;
    Ok(json_response(out.into_bytes()))
}

fn json_response(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// What a read asks for.
enum Read {
    Changes {
        lc: u64,
        limit: usize,
    },
    Keys(Vec<EventId>),
    Range {
        after: Option<EventId>,
        before: Option<EventId>,
        limit: usize,
    },
}

/// A read of pages, or the live changes feed (`feed=live`).
enum Query {
    Pages(Read),
    Live { lc: u64, heartbeat: Duration },
}

/// `GET /db/{db}/e`: the changes feed, events by key, or an id range.
pub(super) async fn read(
    State(state): State<HttpState>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let name = database_name(path)?;
    let database = state.node().database(&name)?;
    let binary = accepts(&headers, binary::CONTENT_TYPE);
    let read = match parse_read(
        query.as_deref().unwrap_or_default(),
        &state.node().limits(),
        accepts(&headers, live::CONTENT_TYPE),
    )? {
        Query::Pages(read) => read,
        Query::Live { lc, heartbeat } => {
            let lc = live::resume_lc(&headers, Some(lc))?.unwrap_or(lc);
            return live::changes(state.live(), &database, lc, heartbeat);
        }
    };
    // Room for the most the page can take, before it is read.
    let events_max = match &read {
        Read::Changes { limit, .. } | Read::Range { limit, .. } => *limit,
        Read::Keys(ids) => ids.len(),
    };
    let held = state
        .answers()
        .reserve(held::page_bytes_max(events_max))
        .await?;
    let answer = match read {
        Read::Changes { lc, limit } => changes(&database, lc, limit, binary).await?,
        Read::Keys(ids) => keys(&database, &ids, binary).await?,
        Read::Range {
            after,
            before,
            limit,
        } => range(&database, after, before, limit, binary).await?,
    };
    held.hold(answer).await
}

/// Whether the request's `Accept` names `content_type`.
pub(super) fn accepts(headers: &HeaderMap, content_type: &str) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains(content_type))
}

fn parse_read(query: &str, limits: &Limits, accepts_live: bool) -> Result<Query, ApiError> {
    let mut live = accepts_live;
    let mut heartbeat_ms = None;
    let mut lc = None;
    let mut limit = None;
    let mut keys = None;
    let mut after = None;
    let mut before = None;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "lc" => lc = Some(parse_number(&key, &value, 0)?),
            "limit" => limit = Some(parse_number(&key, &value, 1)?),
            "after" => after = Some(parse_bound(&key, &value)?),
            "before" => before = Some(parse_bound(&key, &value)?),
            "keys" => keys = Some(parse_keys(&value)?),
            "feed" if value == "live" => live = true,
            "feed" => {
                return Err(ApiError::invalid_query(format!(
                    "feed must be live, not {value:?}"
                )));
            }
            "heartbeat_ms" => heartbeat_ms = Some(parse_number(&key, &value, 0)?),
            other => {
                return Err(ApiError::invalid_query(format!(
                    "unknown query parameter {other:?}: this route takes lc, limit, keys, after, before, feed and heartbeat_ms"
                )));
            }
        }
    }
    if live {
        if keys.is_some() || after.is_some() || before.is_some() {
            return Err(ApiError::invalid_query(
                "a live feed follows the changes feed: keys, after and before do not combine with it",
            ));
        }
        return Ok(Query::Live {
            lc: lc.unwrap_or(0),
            heartbeat: live::heartbeat(heartbeat_ms)?,
        });
    }
    if heartbeat_ms.is_some() {
        return Err(ApiError::invalid_query(
            "heartbeat_ms is for a live feed (feed=live)",
        ));
    }
    let limit = limit.map_or(limits.page_events_default, |limit| {
        usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .min(limits.page_events_max)
    });
    let read = match (keys, lc, after.is_some() || before.is_some()) {
        (Some(_), Some(_), _) | (Some(_), _, true) => {
            return Err(ApiError::invalid_query(
                "keys cannot be combined with lc, after or before",
            ));
        }
        (Some(keys), None, false) => Read::Keys(keys),
        (None, Some(_), true) => {
            return Err(ApiError::invalid_query(
                "lc (the changes feed) cannot be combined with after or before (an id range)",
            ));
        }
        (None, _, true) => Read::Range {
            after: after.flatten(),
            before: before.flatten(),
            limit,
        },
        (None, lc, false) => Read::Changes {
            lc: lc.unwrap_or(0),
            limit,
        },
    };
    Ok(Query::Pages(read))
}

fn parse_number(key: &str, value: &str, minimum: u64) -> Result<u64, ApiError> {
    match value.parse::<u64>() {
        Ok(number) if number >= minimum => Ok(number),
        _ => Err(ApiError::invalid_query(format!(
            "{key} must be a whole number of at least {minimum}, not {value:?}"
        ))),
    }
}

fn parse_bound(key: &str, value: &str) -> Result<Option<EventId>, ApiError> {
    value.parse().map(Some).map_err(|error| {
        ApiError::invalid_query(format!("{key} {value:?} is not an event id: {error}"))
    })
}

fn parse_keys(value: &str) -> Result<Vec<EventId>, ApiError> {
    if value.is_empty() {
        return Err(ApiError::invalid_query("keys names no id"));
    }
    let ids: Vec<&str> = value.split(',').collect();
    if ids.len() > GET_IDS_MAX {
        return Err(ApiError::invalid_query(format!(
            "keys names {} ids, more than the limit of {GET_IDS_MAX}",
            ids.len()
        )));
    }
    ids.into_iter()
        .enumerate()
        .map(|(index, id)| {
            id.parse()
                .map_err(|error| ApiError::invalid_id(format!("key {index} {id:?}: {error}")))
        })
        .collect()
}

async fn changes(
    database: &Database,
    lc: u64,
    limit: usize,
    binary: bool,
) -> Result<Response, ApiError> {
    let page = database.changes(lc, limit).await?;
    if binary {
        return Ok(binary_response(binary::encode_page(
            page.lc,
            page.more,
            &page.events,
            &[],
        )));
    }
    let mut out = events_json(&page.events)?;
    write!(out, ",\"lc\":{},\"more\":{}}}", page.lc, page.more).map_err(unwritten)?;
    Ok(json_response(out.into_bytes()))
}

async fn keys(database: &Database, ids: &[EventId], binary: bool) -> Result<Response, ApiError> {
    let page = database.get(ids).await?;
    if binary {
        return Ok(binary_response(binary::encode_page(
            0,
            page.more,
            &page.events,
            &page.missing,
        )));
    }
    let mut out = events_json(&page.events)?;
    out.push_str(",\"missing\":[");
    for (index, id) in page.missing.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        write!(out, "\"{id}\"").map_err(unwritten)?;
    }
    out.push(']');
    // The contract's answer, unless the page was cut at its byte bound.
    if page.more {
        out.push_str(",\"more\":true");
    }
    out.push('}');
    Ok(json_response(out.into_bytes()))
}

async fn range(
    database: &Database,
    after: Option<EventId>,
    before: Option<EventId>,
    limit: usize,
    binary: bool,
) -> Result<Response, ApiError> {
    let page = database.range(after, before, limit).await?;
    if binary {
        return Ok(binary_response(binary::encode_page(
            0,
            page.more,
            &page.events,
            &[],
        )));
    }
    let mut out = events_json(&page.events)?;
    write!(out, ",\"more\":{}}}", page.more).map_err(unwritten)?;
    Ok(json_response(out.into_bytes()))
}

fn binary_response(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, binary::CONTENT_TYPE)], body).into_response()
}

/// The `after` and `limit` of a page of conflicts.
pub(super) fn parse_conflicts_query(
    query: &str,
    limits: &Limits,
) -> Result<(Option<EventId>, usize), ApiError> {
    let mut after = None;
    let mut limit = None;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "after" => after = parse_bound(&key, &value)?,
            "limit" => limit = Some(parse_number(&key, &value, 1)?),
            other => {
                return Err(ApiError::invalid_query(format!(
                    "unknown query parameter {other:?}: this route takes after and limit"
                )));
            }
        }
    }
    let limit = limit.map_or(limits.page_events_default, |limit| {
        usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .min(limits.page_events_max)
    });
    Ok((after, limit))
}

/// The room a page of conflicts of at most `limit` entries takes within
/// its bytes (a first id larger than them takes more once built): the
/// values as base64 at worst, and each entry's fields.
pub(super) fn conflicts_bytes_max(limit: usize) -> usize {
    held::base64_bytes(CONFLICTS_PAGE_BYTES_MAX)
        .saturating_add(limit.min(PAGE_EVENTS_MAX).saturating_mul(64))
        .saturating_add(64)
}

/// `{"conflicts": [{"id", "kept", "lost"}, ...], "more": bool}`: one entry
/// per losing value.
pub(super) fn conflicts_json(page: &crate::storage::ConflictsPage) -> Result<Response, ApiError> {
    let mut out = String::from("{\"conflicts\":[");
    let mut first = true;
    for conflict in &page.conflicts {
        for lost in &conflict.lost {
            if !first {
                out.push(',');
            }
            first = false;
            write!(out, "{{\"id\":\"{}\",", conflict.id).map_err(unwritten)?;
            push_value(&mut out, "kept", &conflict.kept).map_err(unwritten)?;
            out.push(',');
            push_value(&mut out, "lost", lost).map_err(unwritten)?;
            out.push('}');
        }
    }
    write!(out, "],\"more\":{}}}", page.more).map_err(unwritten)?;
    Ok(json_response(out.into_bytes()))
}

/// `{"events":[...]` without the closing brace, for the caller to finish;
/// an error, not a broken body, if an event cannot be written (a
/// `recorded_at` RFC 3339 cannot write, which no merge stores any more but
/// an older data directory may hold).
fn events_json(events: &[Event]) -> Result<String, ApiError> {
    let data_bytes: usize = events.iter().map(|event| event.data.len()).sum();
    let mut out = String::with_capacity(16 + events.len() * 96 + data_bytes * 4 / 3);
    out.push_str("{\"events\":[");
    for (index, event) in events.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        push_event(&mut out, event)?;
    }
    out.push(']');
    Ok(out)
}
