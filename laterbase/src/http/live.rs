//! Live streams over Server-Sent Events: `GET /db/{db}/e?feed=live` (or
//! `Accept: text/event-stream`), every event stored after `lc` (or the
//! `Last-Event-ID`), first the stored ones, then each new one once durable.
//!
//! A stream reads the store at its reader's pace through
//! `Database::subscribe`, holding one page; a silent stream sends a
//! heartbeat comment every `heartbeat_ms`. Streams are counted apart from
//! other answers, at most `--live-streams-max` at once, and all of them end
//! when the server stops (`HttpState::end_live_streams`) or the node shuts
//! down.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use super::error::ApiError;
use super::event_json::push_event;
use crate::actors::Database;
use crate::event::Event;
use crate::limits::SYNC_WATCHES_MAX;

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
}

impl LiveStreams {
    pub(super) fn new(max: usize) -> LiveStreams {
        LiveStreams {
            open: Arc::new(Semaphore::new(max)),
            max,
            watches: Arc::new(Semaphore::new(SYNC_WATCHES_MAX)),
            ending: watch::Sender::new(false),
        }
    }

    /// Room for one more peer's watch, or `503 unavailable` (the peer then
    /// syncs every interval).
    pub(super) fn watch_permit(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        if *self.ending.borrow() {
            return Err(ApiError::unavailable("the node is stopping"));
        }
        self.watches.clone().try_acquire_owned().map_err(|_| {
            ApiError::unavailable(format!(
                "{SYNC_WATCHES_MAX} peers' watches are open, the most this node serves at once"
            ))
        })
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
        if *self.ending.borrow() {
            return Err(ApiError::unavailable("the node is stopping"));
        }
        self.open.clone().try_acquire_owned().map_err(|_| {
            ApiError::unavailable(format!(
                "{} live streams are open, the most this node serves at once",
                self.max
            ))
        })
    }
}

/// One event as a message: its `lc` as the id, and the event as the
/// changes feed shows it (a value with line breaks in its whitespace goes
/// on as many `data:` lines, which a reader joins back).
fn message(event: &Event) -> Result<Bytes, ApiError> {
    // Writing to a String cannot fail.
    let mut out = String::with_capacity(event.data.len() * 4 / 3 + 160);
    let _ = write!(out, "id: {}\nevent: event\ndata: ", event.lc);
    let start = out.len();
    push_event(&mut out, event)?;
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

/// The answer of a live changes feed of `database` after `after_lc`.
pub(super) fn changes(
    streams: &LiveStreams,
    database: &Database,
    after_lc: u64,
    heartbeat: Duration,
) -> Result<Response, ApiError> {
    let permit = streams.permit()?;
    let ending = streams.ending.subscribe();
    let events = Box::pin(database.subscribe(after_lc));
    let name = database.name().to_owned();
    let body = stream::unfold(
        (events, ending, permit, name),
        move |(mut events, mut ending, permit, name)| {
            async move {
                if *ending.borrow_and_update() {
                    return None;
                }
                let frame = tokio::select! {
                    next = events.next() => match next {
                        Some(Ok(event)) => match message(&event) {
                            Ok(frame) => frame,
                            // The cause is logged where it was found.
                            Err(_) => {
                                tracing::error!(database = %name, lc = event.lc, "a live stream ends: an event cannot be written out");
                                return None;
                            }
                        },
                        // The node shut down.
                        Some(Err(_)) | None => return None,
                    },
                    () = tokio::time::sleep(heartbeat) => Bytes::from_static(b": heartbeat\n\n"),
                    _ = ending.changed() => return None,
                };
                Some((Ok::<_, Infallible>(frame), (events, ending, permit, name)))
            }
        },
    );
    Ok((
        [
            (header::CONTENT_TYPE, CONTENT_TYPE),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response())
}
