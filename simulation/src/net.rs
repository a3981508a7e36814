//! Laterbase's network hooks over turmoil's simulated TCP: the server's
//! listener, the sync client's connector, and the small HTTP client the
//! simulated clients use.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use laterbase::replication::transport::{BoxedIo, PeerConnector};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The port every simulated node serves on.
pub const PORT: u16 = 7070;

/// A digest of every read a server makes from its connections: which node,
/// when (simulated), how many bytes. It covers the messages delivered.
#[derive(Clone, Default)]
pub struct Deliveries(Arc<Mutex<xxhash_rust::xxh3::Xxh3>>);

impl Deliveries {
    fn note(&self, node: usize, bytes: usize) {
        let at = turmoil::sim_elapsed().unwrap_or_default().as_millis() as u64;
        let mut digest = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        digest.update(&(node as u64).to_be_bytes());
        digest.update(&at.to_be_bytes());
        digest.update(&(bytes as u64).to_be_bytes());
    }

    /// The digest so far.
    pub fn digest(&self) -> u64 {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .digest()
    }
}

/// A turmoil listener, for `laterbase::server::serve`, whose connections
/// note what they deliver.
pub struct SimListener {
    /// The listener.
    pub listener: turmoil::net::TcpListener,
    /// The node it serves.
    pub node: usize,
    /// Where deliveries are noted.
    pub deliveries: Deliveries,
}

impl laterbase::server::Listener for SimListener {
    type Io = Counted;

    async fn accept(&self) -> std::io::Result<(Counted, SocketAddr)> {
        let (stream, remote) = self.listener.accept().await?;
        let counted = Counted {
            stream,
            node: self.node,
            deliveries: self.deliveries.clone(),
        };
        Ok((counted, remote))
    }
}

/// A server's connection that notes each read in the deliveries digest.
pub struct Counted {
    stream: turmoil::net::TcpStream,
    node: usize,
    deliveries: Deliveries,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            self.deliveries.note(self.node, read);
        }
        polled
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
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
    request_as(host, method, path, body, timeout, None).await
}

/// [`request`], presenting `token` (a bearer token) if one is given.
pub async fn request_as(
    host: &str,
    method: &str,
    path: &str,
    body: Bytes,
    timeout: Duration,
    token: Option<&str>,
) -> Option<Answer> {
    tokio::time::timeout(timeout, exchange(host, method, path, body, token))
        .await
        .ok()
        .flatten()
}

async fn exchange(
    host: &str,
    method: &str,
    path: &str,
    body: Bytes,
    token: Option<&str>,
) -> Option<Answer> {
    let stream = turmoil::net::TcpStream::connect((host, PORT)).await.ok()?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(connection);
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", host)
        .header("content-type", "application/json");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request.body(Full::new(body)).ok()?;
    let response = sender.send_request(request).await.ok()?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.ok()?.to_bytes();
    Some((status, body))
}

/// Loses and repeats peers' watch notices (`GET /sync/watch`) as they leave
/// a node's server: a quarter are lost, an eighth sent twice, as the
/// generator drawn from the seed says, so that the cluster shows that a
/// notice is only a hint. Messages other than notices pass untouched.
pub fn unreliable_notices(router: axum::Router, seed: u64) -> axum::Router {
    use rand::{RngExt, SeedableRng};
    let rng = Arc::new(Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)));
    router.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let rng = rng.clone();
            async move {
                let watch = request.uri().path() == laterbase::replication::watch::WATCH_PATH;
                let response = next.run(request).await;
                if !watch {
                    return response;
                }
                let (parts, body) = response.into_parts();
                let messages =
                    futures_util::StreamExt::map(body.into_data_stream(), move |chunk| {
                        let chunk = chunk?;
                        let mut out = Vec::with_capacity(chunk.len());
                        let mut rng = rng.lock().unwrap_or_else(PoisonError::into_inner);
                        for message in chunk
                            .split_inclusive(|byte| *byte == b'\n')
                            .collect::<Vec<_>>()
                            .split_inclusive(|line| *line == b"\n")
                        {
                            let message: Vec<u8> = message.concat();
                            let copies = if message.starts_with(b"event: notice") {
                                match rng.random_range(0..8) {
                                    0 | 1 => 0,
                                    2 => 2,
                                    _ => 1,
                                }
                            } else {
                                1
                            };
                            for _ in 0..copies {
                                out.extend_from_slice(&message);
                            }
                        }
                        Ok::<_, axum::Error>(Bytes::from(out))
                    });
                axum::response::Response::from_parts(parts, axum::body::Body::from_stream(messages))
            }
        },
    ))
}
