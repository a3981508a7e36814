//! Live streams over Server-Sent Events: the changes feed,
//! `GET /db/{db}/e?feed=live` (every event stored after `lc`, first the
//! stored ones, then each new one once durable), and a view's rows,
//! `GET /{db}/{view}?feed=live` (every row or the one of `key`, or those
//! changed after `lc`, then each row as it changes); either also with
//! `Accept: text/event-stream`, and resumed from the `Last-Event-ID`.
//!
//! A stream reads at its reader's pace, holding one page: a changes feed
//! from its database's shared tail (`feed`) when it is at the head, else
//! through `Database::subscribe`; rows through `Database::subscribe_view`.
//! Its work runs on the live streams' own runtime, which yields to
//! commits and requests (`pump`). A silent stream sends a heartbeat
//! comment every `heartbeat_ms`. Streams are counted apart from other
//! answers, at most `--live-streams-max` at once, and all of them end when
//! the server stops (`HttpState::end_live_streams`) or the node shuts
//! down.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

use super::error::ApiError;
use super::event_json::push_event;
use super::feed::{ChangesPump, Feeds};
use super::pump::{Background, Pump, StreamRuntime};
use crate::actors::Database;
use crate::event::Event;
use crate::limits::{
    LIVE_HEARTBEAT_MS_DEFAULT, LIVE_HEARTBEAT_MS_MAX, LIVE_HEARTBEAT_MS_MIN, SYNC_WATCHES_MAX,
};
use crate::views::LiveRow;

/// The content type of a live stream.
pub const CONTENT_TYPE: &str = "text/event-stream";

/// The live streams of one router: how many may be open, and the signal
/// that ends them all.
#[derive(Debug)]
pub(super) struct LiveStreams {
    open: Arc<Semaphore>,
    max: usize,
    /// Peers' watches, bounded apart: a hub's trucks each hold one.
    watches: Arc<Semaphore>,
    ending: watch::Sender<bool>,
    /// Where the streams' work runs.
    background: Background,
    /// The shared tails of the databases' changes.
    feeds: Feeds,
}

impl LiveStreams {
    pub(super) fn new(max: usize) -> LiveStreams {
        LiveStreams {
            open: Arc::new(Semaphore::new(max)),
            max,
            watches: Arc::new(Semaphore::new(SYNC_WATCHES_MAX)),
            ending: watch::Sender::new(false),
            background: Background::default(),
            feeds: Feeds::default(),
        }
    }

    /// Room for one more peer's watch, or `503 unavailable` (the peer then
    /// syncs every interval).
    pub(super) fn watch_permit(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.room(&self.watches, || {
            format!("{SYNC_WATCHES_MAX} peers' watches are open, the most this node serves at once")
        })
    }

    /// A permit of `bound`, or `503 unavailable` saying `full` when it has
    /// none, or that the node is stopping.
    fn room(
        &self,
        bound: &Arc<Semaphore>,
        full: impl FnOnce() -> String,
    ) -> Result<OwnedSemaphorePermit, ApiError> {
        if *self.ending.borrow() {
            return Err(ApiError::unavailable("the node is stopping"));
        }
        bound
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::unavailable(full()))
    }

    /// The live streams open now (peers' watches apart), and the most
    /// that may be.
    pub(super) fn counts(&self) -> (usize, usize) {
        (
            self.max.saturating_sub(self.open.available_permits()),
            self.max,
        )
    }

    /// Turns true when every stream is to end.
    pub(super) fn ending(&self) -> watch::Receiver<bool> {
        self.ending.subscribe()
    }

    /// Ends every stream open now or opened later.
    pub(super) fn end(&self) {
        self.ending.send_replace(true);
    }

    /// Room for one more stream, or `503 unavailable`.
    fn permit(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.room(&self.open, || {
            format!(
                "{} live streams are open, the most this node serves at once",
                self.max
            )
        })
    }
}

/// How long a stream may stay silent, from `heartbeat_ms` (or the default).
pub(super) fn heartbeat(heartbeat_ms: Option<u64>) -> Result<Duration, ApiError> {
    let heartbeat_ms = heartbeat_ms.unwrap_or(LIVE_HEARTBEAT_MS_DEFAULT);
    if !(LIVE_HEARTBEAT_MS_MIN..=LIVE_HEARTBEAT_MS_MAX).contains(&heartbeat_ms) {
        return Err(ApiError::invalid_query(format!(
            "heartbeat_ms must be from {LIVE_HEARTBEAT_MS_MIN} to {LIVE_HEARTBEAT_MS_MAX}, not {heartbeat_ms}"
        )));
    }
    Ok(Duration::from_millis(heartbeat_ms))
}

/// Where a stream starts: after the `lc` a `Last-Event-ID` header names (a
/// reader that resumes says where it stopped), or else `lc`.
pub(super) fn resume_lc(headers: &HeaderMap, lc: Option<u64>) -> Result<Option<u64>, ApiError> {
    let Some(id) = headers.get("last-event-id") else {
        return Ok(lc);
    };
    id.to_str()
        .ok()
        .and_then(|id| id.trim().parse().ok())
        .map(Some)
        .ok_or_else(|| ApiError::invalid_query(format!("Last-Event-ID {id:?} is not an lc")))
}

/// One message: `id: <id>`, `event: <kind>`, and the JSON `write` puts
/// after `data: ` (a value with line breaks in its whitespace goes on as
/// many `data:` lines, which a reader joins back).
fn message(
    id: u64,
    kind: &str,
    capacity: usize,
    write: impl FnOnce(&mut String) -> Result<(), ApiError>,
) -> Result<Bytes, ApiError> {
    // Writing to a String cannot fail.
    let mut out = String::with_capacity(capacity + 160);
    let _ = write!(out, "id: {id}\nevent: {kind}\ndata: ");
    let start = out.len();
    write(&mut out)?;
    if out.get(start..).is_some_and(|json| json.contains('\n')) {
        let json = out.split_off(start);
        for (index, line) in json.split('\n').enumerate() {
            if index > 0 {
                out.push_str("\ndata: ");
            }
            out.push_str(line.trim_end_matches('\r'));
        }
    }
    out.push_str("\n\n");
    Ok(Bytes::from(out))
}

/// One event as a message: its `lc` as the id, and the event as the
/// changes feed shows it.
fn event_message(event: &Event) -> Result<Bytes, ApiError> {
    message(event.lc, "event", event.data.len() * 4 / 3, |out| {
        push_event(out, event)
    })
}

/// One row as a message: where a reader resumes from as the id, and
/// `{"key": K, "value": V, "lc": N}` as the view route shows the row
/// (`value` is `null` for a row no longer there).
fn row_message(row: &LiveRow) -> Result<Bytes, ApiError> {
    let value = row.value.as_ref().unwrap_or(&serde_json::Value::Null);
    message(row.resume_lc, "row", 64, |out| {
        // Compact JSON, on one line; writing to a String cannot fail.
        let _ = write!(
            out,
            r#"{{"key":{},"value":{value},"lc":{}}}"#,
            row.key, row.lc
        );
        Ok(())
    })
}

/// The answer of a live changes feed of `database` after `after_lc`: it
/// follows the database's shared tail (`feed`) whenever it can.
pub(super) fn changes(
    streams: &LiveStreams,
    database: &Database,
    after_lc: u64,
    heartbeat: Duration,
) -> Result<Response, ApiError> {
    let permit = streams.permit()?;
    let what = format!("the changes of {}", database.name());
    let (pump, ready) = Pump::new(event_message, heartbeat, streams.ending(), what);
    let feed = streams
        .feeds
        .of(database, &streams.background, event_message);
    let pump = ChangesPump {
        database: database.clone(),
        after_lc,
        feed,
        pump,
    };
    streams.background.spawn(pump.run());
    Ok(answer(streams, permit, ready))
}

/// The answer of a live stream of the rows of `view` of `database` (or of
/// the one row of `key`), from every row or from those changed after
/// `after_lc`.
pub(super) fn rows(
    streams: &LiveStreams,
    database: &Database,
    view: &str,
    after_lc: Option<u64>,
    key: Option<&str>,
    heartbeat: Duration,
) -> Result<Response, ApiError> {
    let rows = database.subscribe_view(view, after_lc, key)?;
    let permit = streams.permit()?;
    let what = format!("the rows of {}/{view}", database.name());
    let (pump, ready) = Pump::new(row_message, heartbeat, streams.ending(), what);
    streams.background.spawn(pump.run(Box::pin(rows)));
    Ok(answer(streams, permit, ready))
}

/// The answer of a stream whose chunks come `ready`, holding its `permit`
/// among the streams open until its body is dropped (the stream's pump
/// stops as soon as it is). Its connection moves to the live streams'
/// runtime, which writes it out when nothing else wants the processor
/// (`pump::StreamRuntime`).
fn answer(
    streams: &LiveStreams,
    permit: OwnedSemaphorePermit,
    ready: mpsc::Receiver<Bytes>,
) -> Response {
    let body = stream::unfold((ready, permit), |(mut ready, permit)| async move {
        let chunk = ready.recv().await?;
        Some((Ok::<_, Infallible>(chunk), (ready, permit)))
    });
    let mut response = (
        [
            (header::CONTENT_TYPE, CONTENT_TYPE),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response();
    if let Some(runtime) = streams.background.handle() {
        response.extensions_mut().insert(StreamRuntime(runtime));
    }
    response
}
