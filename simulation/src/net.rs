//! Laterbase's network hooks over turmoil's simulated TCP: the server's
//! listener, the sync client's connector, and the small HTTP client the
//! simulated clients use.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use laterbase::sync::transport::{BoxedIo, PeerConnector};

/// The port every simulated node serves on.
pub const PORT: u16 = 7070;

/// A turmoil listener, for `laterbase::server::serve`.
pub struct SimListener(pub turmoil::net::TcpListener);

impl laterbase::server::Listener for SimListener {
    type Io = turmoil::net::TcpStream;

    async fn accept(&self) -> std::io::Result<(turmoil::net::TcpStream, SocketAddr)> {
        self.0.accept().await
    }
}

/// Peer connections over turmoil's network: `http://host:port` dials the
/// simulated host.
pub fn connector() -> PeerConnector {
    PeerConnector::new(|uri| {
        Box::pin(async move {
            let host = uri.host().unwrap_or_default().to_owned();
            let port = uri.port_u16().unwrap_or(PORT);
            let stream = turmoil::net::TcpStream::connect((host.as_str(), port)).await?;
            Ok(BoxedIo::new(TokioIo::new(stream)))
        })
    })
}

/// The answer to one request: its status and body.
pub type Answer = (u16, Bytes);

/// One HTTP/1.1 request to `host` on a fresh simulated connection, bounded
/// by `timeout`; `None` if it could not be sent or answered in time.
pub async fn request(
    host: &str,
    method: &str,
    path: &str,
    body: Bytes,
    timeout: Duration,
) -> Option<Answer> {
    tokio::time::timeout(timeout, exchange(host, method, path, body))
        .await
        .ok()
        .flatten()
}

async fn exchange(host: &str, method: &str, path: &str, body: Bytes) -> Option<Answer> {
    let stream = turmoil::net::TcpStream::connect((host, PORT)).await.ok()?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(connection);
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", host)
        .header("content-type", "application/json")
        .body(Full::new(body))
        .ok()?;
    let response = sender.send_request(request).await.ok()?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.ok()?.to_bytes();
    Some((status, body))
}
