//! HTTPS: a listener whose connections speak TLS (rustls, on ring) and
//! nothing else.
//!
//! The handshake runs in the connection's own task, as its first reads and
//! writes, never in the accept loop: a client that connects and says
//! nothing holds up no one but itself, and the header read timeout closes
//! it. Plain HTTP or garbage fails the handshake, which closes that one
//! connection.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::{Listener, TcpConnection};
use crate::http::StreamedConnection;

/// The crypto provider every TLS configuration of the node uses: ring,
/// whose build needs no cmake.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes ring the process's provider, for code that asks rustls for the
/// default one; a provider installed already (by the application) stays.
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The configuration of a server that presents the certificate chain in
/// `cert` with the private key in `key` (both PEM files).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|error| format!("cannot read the certificate {}: {error}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|error| format!("the certificate {} is not PEM: {error}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "the certificate file {} holds no certificate",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|error| format!("cannot read a private key from {}: {error}", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("cannot configure TLS: {error}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|error| {
            format!(
                "the certificate {} and its key do not make a TLS server: {error}",
                cert.display()
            )
        })?;
    Ok(Arc::new(config))
}

/// A TCP listener whose connections speak TLS.
pub struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl TlsListener {
    /// Serves TLS with `config` on the connections `tcp` accepts.
    pub fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> TlsListener {
        TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(config),
        }
    }
}

impl Listener for TlsListener {
    type Io = TlsConnection;

    async fn accept(&self) -> io::Result<(TlsConnection, SocketAddr)> {
        let (stream, remote) = self.tcp.accept().await?;
        let _ = stream.set_nodelay(true);
        let tcp = TcpConnection::new(stream);
        let for_streams: StreamedConnection = Arc::new(tcp.for_streams());
        let connection = TlsConnection {
            state: State::Handshaking(Box::new(self.acceptor.accept(tcp))),
            for_streams,
        };
        Ok((connection, remote))
    }

    fn for_streams(io: &TlsConnection) -> Option<StreamedConnection> {
        Some(io.for_streams.clone())
    }
}

/// An accepted connection: its handshake, then its TLS stream.
pub struct TlsConnection {
    state: State,
    for_streams: StreamedConnection,
}

enum State {
    Handshaking(Box<tokio_rustls::Accept<TcpConnection>>),
    Ready(Box<tokio_rustls::server::TlsStream<TcpConnection>>),
    Failed,
}

impl TlsConnection {
    /// Drives the handshake; the stream once it is done.
    fn poll_ready(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<&mut tokio_rustls::server::TlsStream<TcpConnection>>> {
        if let State::Handshaking(accept) = &mut self.state {
            match Pin::new(&mut **accept).poll(cx) {
                Poll::Ready(Ok(stream)) => self.state = State::Ready(Box::new(stream)),
                Poll::Ready(Err(error)) => {
                    self.state = State::Failed;
                    tracing::debug!(%error, "a TLS handshake failed; closing the connection");
                    return Poll::Ready(Err(error));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        match &mut self.state {
            State::Ready(stream) => Poll::Ready(Ok(&mut **stream)),
            State::Handshaking(_) | State::Failed => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the TLS handshake failed",
            ))),
        }
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut().poll_ready(cx) {
            Poll::Ready(Ok(stream)) => Pin::new(stream).poll_read(cx, buf),
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().poll_ready(cx) {
            Poll::Ready(Ok(stream)) => Pin::new(stream).poll_write(cx, buf),
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().poll_ready(cx) {
            Poll::Ready(Ok(stream)) => Pin::new(stream).poll_flush(cx),
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match &mut this.state {
            State::Ready(stream) => Pin::new(&mut **stream).poll_shutdown(cx),
            // Nothing was said over TLS: nothing to close but the socket.
            State::Handshaking(_) | State::Failed => Poll::Ready(Ok(())),
        }
    }
}
