//! Routes outside a database's events: unknown routes, methods and views
//! answer in the contract's shape, and `/metrics` in Prometheus format.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;

use super::{Api, assert_error};

#[tokio::test]
async fn unknown_routes_methods_and_views_answer_in_shape() {
    let api = Api::new().await;
    api.create("s").await;
    assert_error(
        &api.get("/nowhere").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &api.get("/db/s/e/extra").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &api.call("DELETE", "/db/s", Body::empty()).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    assert_error(
        &api.call("PUT", "/db/s/e", Body::empty()).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    assert_error(
        &api.get("/s/stats").await,
        StatusCode::NOT_FOUND,
        "view_not_found",
    );
    assert_error(
        &api.get("/absent/stats").await,
        StatusCode::NOT_FOUND,
        "db_not_found",
    );
    assert_error(
        &api.get("/s/Stats").await,
        StatusCode::BAD_REQUEST,
        "invalid_name",
    );
    assert_eq!(
        api.get("/db/s/conflicts").await,
        (StatusCode::OK, json!({"conflicts": [], "more": false}))
    );
    assert_error(
        &api.get("/db/absent/conflicts").await,
        StatusCode::NOT_FOUND,
        "db_not_found",
    );
    assert_eq!(
        api.get("/peers").await,
        (StatusCode::OK, json!({"peers": []}))
    );
}

#[tokio::test]
async fn metrics_are_exposed_in_prometheus_format() {
    let api = Api::new().await;
    api.create("s").await;
    api.post("/db/s/e", "{\"data\":1}").await;
    let (status, body) = api
        .send(
            Request::get("/metrics")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let text = std::str::from_utf8(&body).expect("utf-8");
    for name in [
        "laterbase_http_requests_total",
        "laterbase_http_request_duration_seconds",
        "laterbase_events_stored",
        "laterbase_fsync_seconds",
    ] {
        assert!(text.contains(name), "{name} in {text}");
    }
    assert!(text.contains("route=\"/db/{db}/e\""), "requests by route");
}
