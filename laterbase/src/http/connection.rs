//! What a server tells the router of the connection a request came on: the
//! remote address, and the connection's slot among the ordinary
//! connections, which a stream gives back.
//!
//! A server bounds its connections; a live stream or a peer's watch holds
//! its connection for as long as the node runs, and a thousand of them
//! would leave no room for requests and peers' rounds. So once a route
//! answers with a stream (`text/event-stream`), its connection leaves the
//! ordinary bound, counted among the streams instead (`live.rs` bounds
//! them), keeps little unsent (`server::TcpConnection`), and closes when
//! the stream ends.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use tokio::runtime::Handle;
use tokio::sync::{Notify, OwnedSemaphorePermit};

use super::live::CONTENT_TYPE as STREAM_CONTENT_TYPE;
use super::pump::StreamRuntime;

/// A connection's slot among the ordinary connections, as the server put
/// it in every request's extensions, and what the connection does to
/// itself once given over to a stream. Cheap to clone.
#[derive(Clone, Default)]
pub struct ConnectionSlot {
    permit: Arc<Mutex<Option<OwnedSemaphorePermit>>>,
    for_streams: Option<StreamedConnection>,
    moves: Arc<Moves>,
}

/// Where a connection serving a stream is to run from now on.
#[derive(Default)]
struct Moves {
    to: Mutex<Option<Handle>>,
    told: Notify,
}

impl std::fmt::Debug for ConnectionSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionSlot")
            .field("permit", &self.permit)
            .finish_non_exhaustive()
    }
}

impl ConnectionSlot {
    /// The slot `permit` holds, on a connection that does `for_streams`
    /// to itself once it serves a stream.
    pub fn new(
        permit: OwnedSemaphorePermit,
        for_streams: Option<StreamedConnection>,
    ) -> ConnectionSlot {
        ConnectionSlot {
            permit: Arc::new(Mutex::new(Some(permit))),
            for_streams,
            moves: Arc::default(),
        }
    }

    /// Gives the slot back, the connection serving a stream: it no longer
    /// counts among the ordinary ones. A TCP connection (one that does
    /// something `for_streams`) moves to `runtime` if there is one.
    fn give_over_to_stream(&self, runtime: Option<Handle>) {
        drop(
            self.permit
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let Some(for_streams) = &self.for_streams else {
            return;
        };
        for_streams();
        if let Some(runtime) = runtime {
            *self.moves.to.lock().unwrap_or_else(PoisonError::into_inner) = Some(runtime);
            self.moves.told.notify_one();
        }
    }

    /// The runtime the connection is to move to, once its answer says.
    pub async fn moved(&self) -> Handle {
        loop {
            self.moves.told.notified().await;
            let to = self
                .moves
                .to
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(to) = to {
                return to;
            }
        }
    }
}

/// What a connection given over to a stream does to itself (a TCP
/// connection keeps little unsent, `server::TcpConnection`).
pub type StreamedConnection = Arc<dyn Fn() + Send + Sync>;

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
    let runtime = response
        .extensions_mut()
        .remove::<StreamRuntime>()
        .map(|StreamRuntime(runtime)| runtime);
    let streamed = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes() == STREAM_CONTENT_TYPE.as_bytes());
    if streamed {
        if let Some(slot) = slot {
            slot.give_over_to_stream(runtime);
        }
        response.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    response
}
