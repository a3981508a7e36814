//! A TCP connection as the server serves it: the socket, shared, so that
//! once a connection is given over to a stream its send buffer can be made
//! small. The kernel would otherwise grow it to megabytes for each stream
//! whose reader has stopped, and copying those megabytes, for a thousand
//! streams, takes the processor from everything else.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The most bytes a streamed connection's kernel holds unsent (asked of
/// the kernel, which doubles it for its bookkeeping): a stalled reader
/// costs about this much copying once, and a reader 200 ms away still
/// gets about 300 KB/s (some 2,000 events a second), which a live stream
/// rarely needs; a long catch-up is faster paged (`GET /db/{db}/e`).
const STREAM_SEND_BUFFER_BYTES: usize = 32 * 1024;

/// An accepted TCP connection.
#[derive(Debug)]
pub struct TcpConnection(Arc<TcpStream>);

impl TcpConnection {
    pub(super) fn new(stream: TcpStream) -> TcpConnection {
        TcpConnection(Arc::new(stream))
    }

    /// What makes the connection keep little unsent, once it serves a
    /// stream.
    pub(super) fn for_streams(&self) -> impl Fn() + Send + Sync + 'static {
        let socket = self.0.clone();
        move || {
            if let Err(error) =
                socket2::SockRef::from(&*socket).set_send_buffer_size(STREAM_SEND_BUFFER_BYTES)
            {
                tracing::debug!(%error, "a streamed connection keeps its send buffer");
            }
        }
    }
}

impl AsyncRead for TcpConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.0.poll_read_ready(cx))?;
            // A would-block read clears the readiness: the loop then waits.
            match self.0.try_read_buf(buf) {
                Ok(_) => return Poll::Ready(Ok(())),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }
}

impl TcpConnection {
    /// Writes with `write` once the socket takes bytes.
    fn poll_write_with(
        &self,
        cx: &mut Context<'_>,
        mut write: impl FnMut(&TcpStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            // A would-block write clears the readiness: the loop then waits.
            match write(&self.0) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                done => return Poll::Ready(done),
            }
        }
    }
}

impl AsyncWrite for TcpConnection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_with(cx, |socket| socket.try_write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_with(cx, |socket| socket.try_write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A connection the other side closed already is shut: no error.
        match socket2::SockRef::from(&*self.0).shutdown(std::net::Shutdown::Write) {
            Err(error) if error.kind() != io::ErrorKind::NotConnected => Poll::Ready(Err(error)),
            _ => Poll::Ready(Ok(())),
        }
    }
}
