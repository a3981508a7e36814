//! The HTTP contract, row by row, through the router (no socket). This
//! module holds the node behind its router (`Api`) and the check of an
//! error answer that the tests of every route use; each file beside it
//! tests one part of the contract.

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use bytes::Bytes;
use http_body_util::BodyExt;
use laterbase::http::{HttpState, router};
use laterbase::{Config, Node};
use serde_json::Value;
use tower::ServiceExt;

mod access;
mod checks;
mod databases;
mod encodings;
mod limits;
mod live;
mod live_rows;
mod reads;
mod routes;
mod status;
mod storage_failures;
mod writes;

/// A node in memory behind its router.
pub(crate) struct Api {
    router: Router,
    pub(crate) node: Node,
}

fn metrics_handle() -> metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: OnceLock<metrics_exporter_prometheus::PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .expect("the one global recorder")
        })
        .clone()
}

impl Api {
    pub(crate) async fn new() -> Api {
        Api::with_token(None).await
    }

    pub(crate) async fn with_token(token: Option<&str>) -> Api {
        Api::on(Config::in_memory(), token).await
    }

    pub(crate) async fn on(config: Config, token: Option<&str>) -> Api {
        let node = Node::open(config).await.expect("open");
        let state = HttpState::new(node.clone())
            .token(token.map(str::to_owned))
            .metrics(metrics_handle());
        Api {
            router: router(state),
            node,
        }
    }

    /// `node` behind a router whose state `configure` adjusts.
    pub(crate) fn serving(node: Node, configure: impl FnOnce(HttpState) -> HttpState) -> Api {
        let state = configure(HttpState::new(node.clone()).metrics(metrics_handle()));
        Api {
            router: router(state),
            node,
        }
    }

    /// The answer to `request` as it comes, its body not yet read.
    pub(crate) async fn open(&self, request: Request<Body>) -> axum::response::Response {
        self.router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible")
    }

    pub(crate) async fn send(&self, request: Request<Body>) -> (StatusCode, Bytes) {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, body)
    }

    pub(crate) async fn call(
        &self,
        method: &str,
        uri: &str,
        body: impl Into<Body>,
    ) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(body.into())
            .expect("request");
        let (status, body) = self.send(request).await;
        let value = serde_json::from_slice(&body)
            .unwrap_or_else(|error| panic!("{method} {uri}: not JSON ({error}): {body:?}"));
        (status, value)
    }

    pub(crate) async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call("GET", uri, Body::empty()).await
    }

    pub(crate) async fn post(&self, uri: &str, body: &str) -> (StatusCode, Value) {
        self.call("POST", uri, body.to_owned()).await
    }

    pub(crate) async fn create(&self, name: &str) {
        let (status, _) = self
            .call("PUT", &format!("/db/{name}"), Body::empty())
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
}

/// Asserts an error answer: its status, its code, and a message.
pub(crate) fn assert_error(answer: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["error"], code, "{}", answer.1);
    assert!(
        answer.1["message"].as_str().is_some_and(|m| !m.is_empty()),
        "a message for a person: {}",
        answer.1
    );
}

/// Two ids that tests write with, `ID_A` before `ID_B` in id order.
const ID_A: &str = "01JDQ8Z4Y4M5V6T4Q2W3E8R9TA";
const ID_B: &str = "01JDQ8Z4Y4M5V6T4Q2W3E8R9TB";
