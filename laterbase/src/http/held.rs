//! The bytes held for answers not yet written, bounded in total
//! ([`ANSWER_BYTES_HELD_MAX`]) over every connection.
//!
//! A read that builds a large answer in memory first reserves room for the
//! most its answer can take, waiting up to [`ANSWER_HOLD_WAIT_MS`] (then
//! `503 unavailable`), so that a node short of room stops reading rather
//! than building answers it cannot hold. Once built, the answer keeps room
//! for its own size (giving back the rest, or taking more if a page's first
//! item alone was larger) and its body holds it until the last byte is out,
//! or until the body is dropped: its reader went away, or `server::serve`
//! cut off a reader that took nothing for its write timeout. Writes and
//! sync messages reserve theirs before their work too, so that a node short
//! of room refuses them before they change anything; other answers larger
//! than [`ANSWER_UNCOUNTED_BYTES_MAX`] (the node's own state: metrics, the
//! list of databases) take room once built, in the middleware.
//!
//! ```text
//! reserve(bound) ─▶ read, build ─▶ hold(answer): room = the body's size
//!                                       │
//!       HeldBody ─ copies of ANSWER_CHUNK_BYTES ─▶ hyper ─▶ reader
//!           └─ last byte out, or dropped: room given back
//! ```
//!
//! What this module leaves to others: the write timeout is the server's
//! ([`crate::server`]), the bounds of each page the handlers'.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::response::Parts;
use axum::response::Response;
use bytes::{Buf, Bytes};
use hyper::body::{Body as _, Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::ApiError;
use crate::limits::{
    ANSWER_BYTES_HELD_MAX, ANSWER_CHUNK_BYTES, ANSWER_HOLD_WAIT_MS, ANSWER_UNCOUNTED_BYTES_MAX,
    CONFLICTS_PAGE_BYTES_MAX, EVENT_BYTES_MAX, PAGE_BYTES_MAX, SYNC_PAGE_BYTES_MAX,
    SYNC_PAGE_EVENTS_MAX,
};

/// The most bytes one event's fields take in a page beside its data, in
/// JSON: `{"id":"<26>","data_b64":"","recorded_at":"<24>","lc":<20>},`
/// (the binary encoding takes 36).
const EVENT_FIELDS_BYTES_MAX: usize = 128;

/// The room a page of at most `events` events can take (or a read by ids
/// of that many ids, found or missing): its data, within
/// [`PAGE_BYTES_MAX`] or one larger event alone, as base64 at worst, and
/// each event's fields.
pub(super) fn page_bytes_max(events: usize) -> usize {
    base64_bytes(PAGE_BYTES_MAX.max(EVENT_BYTES_MAX))
        .saturating_add(events.saturating_mul(EVENT_FIELDS_BYTES_MAX))
        .saturating_add(64)
}

/// The room a write's receipt of `events` ids takes:
/// `{"ids":["<26>",...],"lc":<20>}`.
pub(super) fn receipt_bytes_max(events: usize) -> usize {
    events.saturating_mul(29).saturating_add(64)
}

/// The room a sync answer reserves before its work: a page of events
/// within its bytes, a page of losers and a page of ids with their
/// digests. A larger one (a page's first event alone, the events a fill
/// asked for) takes more once built.
pub(super) const SYNC_ANSWER_BYTES: usize =
    SYNC_PAGE_BYTES_MAX + CONFLICTS_PAGE_BYTES_MAX + SYNC_PAGE_EVENTS_MAX * 64;

/// The length of `bytes` in padded base64.
pub(super) fn base64_bytes(bytes: usize) -> usize {
    bytes.div_ceil(3).saturating_mul(4)
}

/// The room shared by every answer a router holds.
pub(crate) struct AnswerRoom {
    /// One permit per byte held.
    bytes: Arc<Semaphore>,
    bytes_max: usize,
    wait: Duration,
}

impl AnswerRoom {
    /// Room for `bytes_max` bytes of answers (at most
    /// [`ANSWER_BYTES_HELD_MAX`]), waited for up to [`ANSWER_HOLD_WAIT_MS`].
    pub(crate) fn new(bytes_max: usize) -> AnswerRoom {
        let bytes_max = bytes_max.clamp(1, ANSWER_BYTES_HELD_MAX);
        AnswerRoom {
            bytes: Arc::new(Semaphore::new(bytes_max)),
            bytes_max,
            wait: Duration::from_millis(ANSWER_HOLD_WAIT_MS),
        }
    }

    /// Room for an answer of at most `bytes` (all the room, if it is
    /// larger), before it is built; `503 unavailable` if none is given back
    /// within the wait.
    pub(crate) async fn reserve(self: &Arc<Self>, bytes: usize) -> Result<Held, ApiError> {
        let permit = self.take(bytes).await?;
        Ok(Held {
            permit: Some(permit),
            room: self.clone(),
        })
    }

    /// Takes room for `response` once built, unless it holds some already
    /// or is small enough to go uncounted.
    pub(crate) async fn hold_built(self: &Arc<Self>, response: Response) -> Response {
        if response.extensions().get::<Counted>().is_some() {
            return response;
        }
        // A body of unknown size is a stream, and each stream this router
        // answers reserves its room before it starts.
        let small = response
            .body()
            .size_hint()
            .exact()
            .is_none_or(|size| size <= ANSWER_UNCOUNTED_BYTES_MAX as u64);
        if small {
            return response;
        }
        let held = match self.reserve(0).await {
            Ok(held) => held,
            Err(error) => return axum::response::IntoResponse::into_response(error),
        };
        held.hold(response)
            .await
            .unwrap_or_else(axum::response::IntoResponse::into_response)
    }

    async fn take(&self, bytes: usize) -> Result<OwnedSemaphorePermit, ApiError> {
        let permits = u32::try_from(bytes.min(self.bytes_max)).unwrap_or(u32::MAX);
        let taking = self.bytes.clone().acquire_many_owned(permits);
        let permit = match tokio::time::timeout(self.wait, taking).await {
            Ok(Ok(permit)) => permit,
            // The semaphore is never closed; a timeout is the node's room
            // staying full.
            Ok(Err(_)) | Err(_) => {
                return Err(ApiError::unavailable(format!(
                    "the node holds its limit of {} bytes of answers not yet written, and not enough was written within {} ms; retry shortly",
                    self.bytes_max,
                    self.wait.as_millis()
                )));
            }
        };
        self.measure();
        Ok(permit)
    }

    fn measure(&self) {
        let held = self
            .bytes_max
            .saturating_sub(self.bytes.available_permits());
        metrics::gauge!("laterbase_http_answer_bytes_held").set(held as f64);
    }
}

/// Room held for one answer; given back when dropped.
pub(crate) struct Held {
    /// `None` only while dropped.
    permit: Option<OwnedSemaphorePermit>,
    room: Arc<AnswerRoom>,
}

/// Marks an answer that holds its room, so that the middleware does not
/// count it again.
#[derive(Clone, Copy)]
struct Counted;

impl Held {
    /// `response`, holding room for its body's size until the body's last
    /// byte is out or the body is dropped. An answer of unknown size (a
    /// stream) keeps all the room reserved while it lasts; one larger than
    /// what was reserved takes the rest, within the wait.
    pub(crate) async fn hold(mut self, response: Response) -> Result<Response, ApiError> {
        let (mut parts, body) = response.into_parts();
        if let Some(size) = body.size_hint().exact() {
            let size = usize::try_from(size)
                .unwrap_or(usize::MAX)
                .min(self.room.bytes_max);
            self.resize(size).await?;
        }
        parts.extensions.insert(Counted);
        Ok(self.into_response(parts, body))
    }

    fn permits(&self) -> usize {
        self.permit
            .as_ref()
            .map_or(0, OwnedSemaphorePermit::num_permits)
    }

    async fn resize(&mut self, size: usize) -> Result<(), ApiError> {
        let held = self.permits();
        if size < held {
            drop(
                self.permit
                    .as_mut()
                    .and_then(|permit| permit.split(held - size)),
            );
        } else if size > held {
            let more = self.room.take(size - held).await?;
            match self.permit.as_mut() {
                Some(permit) => permit.merge(more),
                None => self.permit = Some(more),
            }
        }
        self.room.measure();
        Ok(())
    }

    fn into_response(self, parts: Parts, body: Body) -> Response {
        let body = HeldBody {
            inner: body,
            pending: Bytes::new(),
            held: Some(self),
        };
        Response::from_parts(parts, Body::new(body))
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        drop(self.permit.take());
        self.room.measure();
    }
}

/// A body that holds its answer's room, and hands hyper copies of
/// [`ANSWER_CHUNK_BYTES`] at a time: a slice would keep the whole answer
/// alive in hyper's buffer after the room was given back.
struct HeldBody {
    inner: Body,
    /// What is left of the frame being handed out.
    pending: Bytes,
    /// Given back once the last byte is out.
    held: Option<Held>,
}

impl hyper::body::Body for HeldBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if this.pending.is_empty() {
            let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => frame,
                Poll::Ready(other) => {
                    // The end, or an error that aborts the answer.
                    this.held = None;
                    return Poll::Ready(other);
                }
            };
            match frame.into_data() {
                Ok(data) if data.len() > ANSWER_CHUNK_BYTES => this.pending = data,
                Ok(data) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Err(frame) => return Poll::Ready(Some(Ok(frame))),
            }
        }
        let length = this.pending.len().min(ANSWER_CHUNK_BYTES);
        // A copy, so that the answer's buffer goes once its last chunk is out.
        let chunk = Bytes::copy_from_slice(this.pending.get(..length).unwrap_or_default());
        this.pending.advance(length);
        if this.pending.is_empty() {
            // An empty slice still keeps its allocation alive.
            this.pending = Bytes::new();
        }
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.inner.size_hint();
        let pending = self.pending.len() as u64;
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower().saturating_add(pending));
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper.saturating_add(pending));
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    fn answer(bytes: usize) -> Response {
        Response::new(Body::from(vec![b'x'; bytes]))
    }

    #[tokio::test]
    async fn an_answer_holds_its_size_until_it_is_read_or_dropped() {
        let room = Arc::new(AnswerRoom::new(1024 * 1024));
        let held = room.reserve(900 * 1024).await.expect("room");
        assert_eq!(room.bytes.available_permits(), 124 * 1024);
        let response = held.hold(answer(300 * 1024)).await.expect("held");
        assert_eq!(
            room.bytes.available_permits(),
            724 * 1024,
            "what the answer did not take is given back"
        );
        assert_eq!(
            response.body().size_hint().exact(),
            Some(300 * 1024),
            "the length stays known"
        );
        let mut body = response.into_body();
        let first = body.frame().await.expect("a frame").expect("data");
        assert_eq!(first.data_ref().map(Bytes::len), Some(ANSWER_CHUNK_BYTES));
        assert_eq!(room.bytes.available_permits(), 724 * 1024);
        drop(body);
        assert_eq!(
            room.bytes.available_permits(),
            1024 * 1024,
            "a dropped answer gives its room back"
        );

        let held = room.reserve(0).await.expect("room");
        let read = held
            .hold(answer(200 * 1024))
            .await
            .expect("room taken once built")
            .into_body()
            .collect()
            .await
            .expect("the body")
            .to_bytes();
        assert_eq!(read.len(), 200 * 1024);
        assert_eq!(room.bytes.available_permits(), 1024 * 1024);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_room_answers_unavailable_after_its_wait() {
        let room = Arc::new(AnswerRoom::new(1024));
        let first = room.reserve(1000).await.expect("room");
        let start = tokio::time::Instant::now();
        let refused = room.reserve(100).await;
        assert!(
            refused
                .as_ref()
                .is_err_and(|error| error.code == "unavailable"),
            "a read that finds no room in time is refused"
        );
        assert!(
            start.elapsed() >= Duration::from_millis(ANSWER_HOLD_WAIT_MS),
            "it waited for room first"
        );
        drop(first);
        assert!(room.reserve(100).await.is_ok(), "room given back is taken");
    }
}
