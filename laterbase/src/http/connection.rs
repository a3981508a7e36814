//! What a server tells the router of the connection a request came on: the
//! remote address, and the connection's slot among the ordinary
//! connections, which a stream gives back.
//!
//! A server bounds its connections; a live stream or a peer's watch holds
//! its connection for as long as the node runs, and a thousand of them
//! would leave no room for requests and peers' rounds. So once a route
//! answers with a stream (`text/event-stream`), its connection leaves the
//! ordinary bound, counted among the streams instead (`live.rs` bounds
//! them), and closes when the stream ends.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use tokio::sync::OwnedSemaphorePermit;

use super::live::CONTENT_TYPE as STREAM_CONTENT_TYPE;

/// A connection's slot among the ordinary connections, as the server put
/// it in every request's extensions. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct ConnectionSlot(Arc<Mutex<Option<OwnedSemaphorePermit>>>);

impl ConnectionSlot {
    /// The slot `permit` holds.
    pub fn new(permit: OwnedSemaphorePermit) -> ConnectionSlot {
        ConnectionSlot(Arc::new(Mutex::new(Some(permit))))
    }

    /// Gives the slot back: the connection no longer counts among the
    /// ordinary ones.
    fn release(&self) {
        drop(self.0.lock().unwrap_or_else(PoisonError::into_inner).take());
    }
}

/// The remote address of a request's connection, as the server put it in
/// the request's extensions (absent when the router is called directly).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Remote(pub SocketAddr);

/// Middleware: a streamed answer gives its connection's ordinary slot back,
/// and asks for the connection to close when the stream ends, so that a
/// connection without a slot serves nothing after it.
pub(super) async fn streams_leave_the_bound(request: Request, next: Next) -> Response {
    let slot = request.extensions().get::<ConnectionSlot>().cloned();
    let mut response = next.run(request).await;
    let streamed = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes() == STREAM_CONTENT_TYPE.as_bytes());
    if streamed {
        if let Some(slot) = slot {
            slot.release();
        }
        response.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    response
}
