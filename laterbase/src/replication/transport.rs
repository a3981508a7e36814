//! Sync messages over HTTP, with hyper's client. The connector is a type
//! parameter, so that a simulation can carry the connections itself.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::rt::TokioExecutor;

use super::driver::{Sending, Transport, TransportError};
use crate::event::EventId;
use crate::limits::{SYNC_ANSWER_BYTES_MAX, SYNC_REQUEST_TIMEOUT_MS};
use crate::sync::wire::{CONTENT_TYPE, NODE_HEADER, VERSION_HEADER};

/// A connection a [`PeerConnector`] opens.
pub trait PeerIo: hyper::rt::Read + hyper::rt::Write + Unpin + Send {}

impl<T: hyper::rt::Read + hyper::rt::Write + Unpin + Send> PeerIo for T {}

/// A boxed [`PeerIo`], as hyper's client takes it.
pub struct BoxedIo(Box<dyn PeerIo>);

impl BoxedIo {
    /// Boxes a connection.
    pub fn new(io: impl PeerIo + 'static) -> BoxedIo {
        BoxedIo(Box::new(io))
    }
}

impl hyper::rt::Read for BoxedIo {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for BoxedIo {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

impl hyper_util::client::legacy::connect::Connection for BoxedIo {
    fn connected(&self) -> hyper_util::client::legacy::connect::Connected {
        hyper_util::client::legacy::connect::Connected::new()
    }
}

/// The future a [`PeerConnector`] returns.
pub type Connecting =
    std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<BoxedIo>> + Send>>;

/// Opens connections to peers: over TCP by default, or over whatever a
/// simulation provides. Cheap to clone.
#[derive(Clone)]
pub struct PeerConnector(std::sync::Arc<dyn Fn(hyper::Uri) -> Connecting + Send + Sync>);

impl PeerConnector {
    /// Connections made by `connect`.
    pub fn new(
        connect: impl Fn(hyper::Uri) -> Connecting + Send + Sync + 'static,
    ) -> PeerConnector {
        PeerConnector(std::sync::Arc::new(connect))
    }

    /// Plain TCP connections, with `TCP_NODELAY`: an `https://` peer is
    /// refused (see [`PeerConnector::tls`]), never spoken to in plain HTTP.
    pub fn tcp() -> PeerConnector {
        PeerConnector::over_tcp(None)
    }

    /// TCP connections, TLS to an `https://` peer, whose certificate is
    /// verified against the system's roots plus the PEM certificates in
    /// `extra_ca` (a fleet's own CA), if given.
    pub fn tls(extra_ca: Option<&std::path::Path>) -> Result<PeerConnector, String> {
        Ok(PeerConnector::tls_with(client_config(extra_ca)?))
    }

    /// TCP connections, TLS with `config` to an `https://` peer.
    pub fn tls_with(config: Arc<rustls::ClientConfig>) -> PeerConnector {
        PeerConnector::over_tcp(Some(tokio_rustls::TlsConnector::from(config)))
    }

    fn over_tcp(tls: Option<tokio_rustls::TlsConnector>) -> PeerConnector {
        let mut tcp = HttpConnector::new();
        tcp.set_nodelay(true);
        // The scheme is this connector's to check: `https` takes TLS.
        tcp.enforce_http(false);
        PeerConnector::new(move |uri| {
            let mut tcp = tcp.clone();
            let tls = tls.clone();
            Box::pin(async move {
                let secure = match uri.scheme_str() {
                    Some("http") => false,
                    Some("https") => true,
                    other => {
                        return Err(std::io::Error::other(format!(
                            "a peer's URL is http:// or https://, not {}",
                            other.unwrap_or("without a scheme")
                        )));
                    }
                };
                let host = uri.host().unwrap_or_default().to_owned();
                let io = tower::Service::call(&mut tcp, uri)
                    .await
                    .map_err(std::io::Error::other)?;
                if !secure {
                    return Ok(BoxedIo::new(io));
                }
                let Some(tls) = tls else {
                    return Err(std::io::Error::other(
                        "this node has no TLS configured for https:// peers",
                    ));
                };
                // `[::1]` names the address `::1`.
                let name = host.trim_start_matches('[').trim_end_matches(']');
                let name = rustls::pki_types::ServerName::try_from(name.to_owned())
                    .map_err(|error| std::io::Error::other(format!("{host}: {error}")))?;
                let stream = tls
                    .connect(name, io.into_inner())
                    .await
                    .map_err(|error| std::io::Error::other(format!("TLS with {host}: {error}")))?;
                Ok(BoxedIo::new(hyper_util::rt::TokioIo::new(stream)))
            })
        })
    }
}

impl std::fmt::Debug for PeerConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerConnector")
    }
}

impl tower::Service<hyper::Uri> for PeerConnector {
    type Response = BoxedIo;
    type Error = std::io::Error;
    type Future = Connecting;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: hyper::Uri) -> Connecting {
        (self.0)(uri)
    }
}

/// The configuration of a TLS client that verifies peers against the
/// system's roots plus the PEM certificates in `extra_ca`, if given.
pub fn client_config(
    extra_ca: Option<&std::path::Path>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let system = rustls_native_certs::load_native_certs();
    for error in &system.errors {
        tracing::debug!(%error, "a system root certificate could not be read");
    }
    let (_, ignored) = roots.add_parsable_certificates(system.certs);
    if ignored > 0 {
        tracing::debug!(
            ignored,
            "system root certificates that do not parse were left out"
        );
    }
    if let Some(path) = extra_ca {
        let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|error| format!("cannot read the CA {}: {error}", path.display()))?
            .collect::<Result<_, _>>()
            .map_err(|error| format!("the CA {} is not PEM: {error}", path.display()))?;
        if certificates.is_empty() {
            return Err(format!(
                "the CA file {} holds no certificate",
                path.display()
            ));
        }
        for certificate in certificates {
            roots.add(certificate).map_err(|error| {
                format!(
                    "the CA {} is not a usable certificate: {error}",
                    path.display()
                )
            })?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|error| format!("cannot configure TLS: {error}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// What a peer answered.
#[derive(Clone, Debug)]
pub struct Answer {
    /// The node that answered, as it names itself.
    pub node: Option<EventId>,
    /// The newest sync wire version it speaks, as it says (nodes of the
    /// first release say nothing).
    pub version: Option<u8>,
    /// The body.
    pub body: Bytes,
}

/// Posts sync messages to one peer's base URL.
#[derive(Clone)]
pub struct HttpTransport<C = HttpConnector> {
    client: Client<C, Full<Bytes>>,
    /// How long a request may take, answer included.
    timeout: std::time::Duration,
    base_url: String,
    node: EventId,
    token: Option<String>,
}

impl HttpTransport {
    /// A transport to `base_url` (`http://host:port`) over TCP, as `node`,
    /// with the shared access token if there is one.
    pub fn new(base_url: &str, node: EventId, token: Option<String>) -> HttpTransport {
        HttpTransport::with_connector(HttpConnector::new(), base_url, node, token)
    }
}

impl<C: Connect + Clone + Send + Sync + 'static> HttpTransport<C> {
    /// A transport over a given connector.
    pub fn with_connector(
        connector: C,
        base_url: &str,
        node: EventId,
        token: Option<String>,
    ) -> HttpTransport<C> {
        HttpTransport {
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout: std::time::Duration::from_millis(SYNC_REQUEST_TIMEOUT_MS),
            base_url: base_url.trim_end_matches('/').to_owned(),
            node,
            token,
        }
    }

    /// The transport with requests bounded by `timeout` (answer included)
    /// instead of [`SYNC_REQUEST_TIMEOUT_MS`].
    pub fn with_timeout(mut self, timeout: std::time::Duration) -> HttpTransport<C> {
        self.timeout = timeout;
        self
    }

    /// POSTs a JSON body to `path` and returns the answer's body.
    pub async fn post_json(&self, path: &str, body: Bytes) -> Result<Bytes, TransportError> {
        let mut request = self.request("POST", path, body)?;
        request.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        Ok(self.exchange(request).await?.body)
    }

    /// GETs `path` and returns the answer.
    pub async fn get(&self, path: &str) -> Result<Answer, TransportError> {
        let request = self.request("GET", path, Bytes::new())?;
        self.exchange(request).await
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        body: Bytes,
    ) -> Result<hyper::Request<Full<Bytes>>, TransportError> {
        let mut builder = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base_url))
            .header(NODE_HEADER, self.node.to_string())
            .header(hyper::header::CONTENT_TYPE, CONTENT_TYPE);
        if let Some(token) = &self.token {
            builder = builder.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        builder.body(Full::new(body)).map_err(|error| {
            TransportError(format!(
                "cannot build a request to {}: {error}",
                self.base_url
            ))
        })
    }

    /// Sends `request` and waits, within the timeout, for the answer's
    /// head: the node that answered, the version it speaks, the status and
    /// the body, left to read.
    async fn head(
        &self,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<(Answering, hyper::body::Incoming), TransportError> {
        let uri = request.uri().to_string();
        let timeout_ms = self.timeout.as_millis();
        let response = tokio::time::timeout(self.timeout, self.client.request(request))
            .await
            .map_err(|_| TransportError(format!("{uri}: no answer within {timeout_ms} ms")))?
            // The client's error says only "connect": its sources say why
            // (refused, a certificate that does not verify).
            .map_err(|error| {
                TransportError(format!("{uri}: {}", crate::error::ErrorChain(&error)))
            })?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        let answering = Answering {
            uri,
            status: response.status(),
            node: header(NODE_HEADER).and_then(|text| text.parse().ok()),
            version: header(VERSION_HEADER).and_then(|text| text.parse().ok()),
        };
        Ok((answering, response.into_body()))
    }

    async fn exchange(
        &self,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<Answer, TransportError> {
        let (answering, body) = self.head(request).await?;
        let body = answering.read_body(body, self.timeout).await?;
        if !answering.status.is_success() {
            return Err(answering.refusal(&body));
        }
        Ok(Answer {
            node: answering.node,
            version: answering.version,
            body,
        })
    }

    /// GETs `path`, an answer that streams: once its head has come (within
    /// the timeout), the node that answered, the version it speaks, and the
    /// body to read as it comes.
    pub async fn open_stream(
        &self,
        path: &str,
    ) -> Result<(Option<EventId>, Option<u8>, hyper::body::Incoming), TransportError> {
        let request = self.request("GET", path, Bytes::new())?;
        let (answering, body) = self.head(request).await?;
        if !answering.status.is_success() {
            let body = answering.read_body(body, self.timeout).await?;
            return Err(answering.refusal(&body));
        }
        Ok((answering.node, answering.version, body))
    }
}

/// The head of a peer's answer.
struct Answering {
    uri: String,
    status: hyper::StatusCode,
    node: Option<EventId>,
    version: Option<u8>,
}

impl Answering {
    /// Reads a whole body, within the answer size limit and `timeout`.
    async fn read_body(
        &self,
        body: hyper::body::Incoming,
        timeout: std::time::Duration,
    ) -> Result<Bytes, TransportError> {
        let uri = &self.uri;
        let timeout_ms = timeout.as_millis();
        let body = http_body_util::Limited::new(body, SYNC_ANSWER_BYTES_MAX).collect();
        Ok(tokio::time::timeout(timeout, body)
            .await
            .map_err(|_| {
                TransportError(format!(
                    "{uri}: the answer did not end within {timeout_ms} ms"
                ))
            })?
            .map_err(|error| TransportError(format!("{uri}: reading the answer: {error}")))?
            .to_bytes())
    }

    /// A refusal, said with the start of its body.
    fn refusal(&self, body: &Bytes) -> TransportError {
        let text = String::from_utf8_lossy(body.get(..512).unwrap_or(body)).into_owned();
        TransportError(format!("{} answered {}: {text}", self.uri, self.status))
    }
}

impl<C: Connect + Clone + Send + Sync + 'static> Transport for HttpTransport<C> {
    fn post(&self, path: String, body: Bytes) -> Sending<'_> {
        Box::pin(async move {
            let request = self.request("POST", &path, body)?;
            Ok(self.exchange(request).await?.body)
        })
    }
}
