//! Sync messages over HTTP, with hyper's client. The connector is a type
//! parameter, so that a simulation can carry the connections itself.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::rt::TokioExecutor;

use super::driver::{Sending, Transport, TransportError};
use super::wire::CONTENT_TYPE;
use crate::event::EventId;
use crate::http::NODE_HEADER;
use crate::limits::{SYNC_ANSWER_BYTES_MAX, SYNC_REQUEST_TIMEOUT_MS};

/// Posts sync messages to one peer's base URL.
#[derive(Clone)]
pub struct HttpTransport<C = HttpConnector> {
    client: Client<C, Full<Bytes>>,
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
            base_url: base_url.trim_end_matches('/').to_owned(),
            node,
            token,
        }
    }

    /// POSTs a JSON body to `path` and returns the answer's body.
    pub async fn post_json(&self, path: &str, body: Bytes) -> Result<Bytes, TransportError> {
        let mut request = self.request("POST", path, body)?;
        request.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        Ok(self.exchange(request).await?.1)
    }

    /// GETs `path` and returns the answering node's id and the body.
    pub async fn get(&self, path: &str) -> Result<(Option<EventId>, Bytes), TransportError> {
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

    async fn exchange(
        &self,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<(Option<EventId>, Bytes), TransportError> {
        let uri = request.uri().to_string();
        let timeout = std::time::Duration::from_millis(SYNC_REQUEST_TIMEOUT_MS);
        let response = tokio::time::timeout(timeout, self.client.request(request))
            .await
            .map_err(|_| {
                TransportError(format!(
                    "{uri}: no answer within {SYNC_REQUEST_TIMEOUT_MS} ms"
                ))
            })?
            .map_err(|error| TransportError(format!("{uri}: {error}")))?;
        let status = response.status();
        let node = response
            .headers()
            .get(NODE_HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| text.parse().ok());
        let body =
            http_body_util::Limited::new(response.into_body(), SYNC_ANSWER_BYTES_MAX).collect();
        let body = tokio::time::timeout(timeout, body)
            .await
            .map_err(|_| {
                TransportError(format!(
                    "{uri}: the answer did not end within {SYNC_REQUEST_TIMEOUT_MS} ms"
                ))
            })?
            .map_err(|error| TransportError(format!("{uri}: reading the answer: {error}")))?
            .to_bytes();
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned();
            return Err(TransportError(format!("{uri} answered {status}: {text}")));
        }
        Ok((node, body))
    }
}

impl<C: Connect + Clone + Send + Sync + 'static> Transport for HttpTransport<C> {
    fn post(&self, path: String, body: Bytes) -> Sending<'_> {
        Box::pin(async move {
            let request = self.request("POST", &path, body)?;
            Ok(self.exchange(request).await?.1)
        })
    }
}
