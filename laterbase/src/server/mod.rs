//! `serve(listener, router, shutdown)`: runs the HTTP API on a listener
//! until `shutdown` completes, then stops accepting and lets in-flight
//! requests finish.
//!
//! Connections are bounded ([`CONNECTIONS_MAX`]), but for those whose
//! answer is a stream, which leave the bound once answered
//! (`http::ConnectionSlot`); a connection that does not
//! send its headers within [`HEADER_READ_TIMEOUT_MS`] (slow, or idle between
//! requests) is closed, so idle and slow clients cannot starve the others.
//! A connection whose reader takes no byte of its answer for the write
//! timeout ([`ANSWER_WRITE_TIMEOUT_MS_DEFAULT`], [`ServeOptions`]) is closed
//! too: the answer it was sent, and the room it held among the answers not
//! yet written (`http::held`), are let go.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub use self::tcp::TcpConnection;
use crate::http::{ConnectionSlot, Remote, StreamedConnection};

mod tcp;
pub mod tls;
use crate::limits::{
    ANSWER_WRITE_TIMEOUT_MS_DEFAULT, CONNECTIONS_MAX, DRAIN_TIMEOUT_MS, HEADER_BYTES_MAX,
    HEADER_READ_TIMEOUT_MS,
};

/// Where a server takes its connections from: a TCP listener, or a
/// simulated network's.
pub trait Listener: Send + 'static {
    /// One accepted connection.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// The next connection and its peer's address.
    fn accept(&self) -> impl Future<Output = std::io::Result<(Self::Io, SocketAddr)>> + Send;

    /// What to do to `io` once it is given over to a stream (a live
    /// stream, a peer's watch), if anything: a TCP connection then keeps
    /// little unsent.
    fn for_streams(io: &Self::Io) -> Option<StreamedConnection> {
        let _ = io;
        None
    }
}

impl Listener for TcpListener {
    type Io = TcpConnection;

    async fn accept(&self) -> std::io::Result<(TcpConnection, SocketAddr)> {
        let (stream, remote) = TcpListener::accept(self).await?;
        let _ = stream.set_nodelay(true);
        Ok((TcpConnection::new(stream), remote))
    }

    fn for_streams(io: &TcpConnection) -> Option<StreamedConnection> {
        Some(Arc::new(io.for_streams()))
    }
}

/// How [`serve_with`] treats its connections, beyond the fixed bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServeOptions {
    /// How long the reader of an answer may take none of its bytes before
    /// its connection is closed (default
    /// [`ANSWER_WRITE_TIMEOUT_MS_DEFAULT`]).
    pub write_timeout: Duration,
    /// The most ordinary connections served at once (default
    /// [`CONNECTIONS_MAX`]); more wait to be accepted. A connection whose
    /// answer is a stream (a live stream, a peer's watch) leaves this bound
    /// once answered: streams have bounds of their own.
    pub connections_max: usize,
}

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions {
            write_timeout: Duration::from_millis(ANSWER_WRITE_TIMEOUT_MS_DEFAULT),
            connections_max: CONNECTIONS_MAX,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes; then waits up
/// to [`DRAIN_TIMEOUT_MS`] for the requests in flight.
pub async fn serve(listener: impl Listener, router: Router, shutdown: impl Future<Output = ()>) {
    serve_with(listener, router, shutdown, ServeOptions::default()).await;
}

/// [`serve`], with `options`.
pub async fn serve_with<L: Listener>(
    listener: L,
    router: Router,
    shutdown: impl Future<Output = ()>,
    options: ServeOptions,
) {
    let graceful = GracefulShutdown::new();
    // Every connection's task, so that those still open after the drain
    // are closed rather than left running.
    let mut connections = tokio::task::JoinSet::new();
    let slots = Arc::new(Semaphore::new(options.connections_max));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            () = &mut shutdown => break,
        };
        let Ok(slot) = slot else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: back off, go on.
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // Each request learns its connection's remote address and slot,
        // which a stream gives back (`http::ConnectionSlot`).
        let slot = ConnectionSlot::new(slot, L::for_streams(&stream));
        let connection_slot = slot.clone();
        let service = TowerToHyperService::new(tower::util::MapRequest::new(
            router.clone(),
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(connection_slot.clone());
                request.extensions_mut().insert(Remote(remote));
                request
            },
        ));
        // A write that makes no progress for the timeout fails, and hyper
        // closes the connection: a write that makes some starts it over.
        let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
        stream.set_write_timeout(Some(options.write_timeout));
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_millis(HEADER_READ_TIMEOUT_MS))
            .max_buf_size(HEADER_BYTES_MAX)
            .serve_connection(TokioIo::new(Box::pin(stream)), service);
        let connection = graceful.watch(connection);
        while connections.try_join_next().is_some() {}
        connections.spawn(async move {
            // A connection whose answer is a live stream goes on on the
            // runtime the answer names, as long as this task runs.
            let mut connection = Box::pin(connection);
            let ended = tokio::select! {
                ended = &mut connection => ended,
                runtime = slot.moved() => match AbortOnDrop(runtime.spawn(connection)).await {
                    Ok(ended) => ended,
                    // Its runtime stopped.
                    Err(_) => return,
                },
            };
            if let Err(error) = ended {
                if is_write_timeout(&error) {
                    metrics::counter!("laterbase_http_write_timeouts_total").increment(1);
                    tracing::info!(%remote, "closed a connection whose reader took nothing of its answer for the write timeout");
                } else {
                    tracing::debug!(%remote, %error, "connection ended with an error");
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    let drain = Duration::from_millis(DRAIN_TIMEOUT_MS);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            timeout_ms = DRAIN_TIMEOUT_MS,
            open = connections.len(),
            "requests still in flight after the drain timeout; closing them"
        );
    }
    connections.shutdown().await;
}

/// A task, aborted when this is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

/// Whether a connection ended because its reader took nothing for the
/// write timeout.
fn is_write_timeout(error: &hyper::Error) -> bool {
    crate::error::io_source(error).is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
}
