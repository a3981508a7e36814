//! Databases: created, listed and described, and the rule their names
//! follow on every route that takes one.

use axum::body::Body;
use axum::http::StatusCode;
use serde_json::json;

use super::{Api, assert_error};

#[tokio::test]
async fn databases_are_created_listed_and_described() {
    let api = Api::new().await;
    assert_eq!(
        api.call("PUT", "/db/trucks", Body::empty()).await,
        (
            StatusCode::CREATED,
            json!({"name": "trucks", "created": true})
        )
    );
    assert_eq!(
        api.call("PUT", "/db/trucks", Body::empty()).await,
        (StatusCode::OK, json!({"name": "trucks", "created": false}))
    );
    assert_eq!(
        api.call("POST", "/db/ships", Body::empty()).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        api.get("/db").await,
        (StatusCode::OK, json!({"databases": ["ships", "trucks"]}))
    );
    let (status, info) = api.get("/db/trucks").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        info,
        json!({"name": "trucks", "events": 0, "lc": 0, "node": api.node.id().to_string()})
    );
    assert_error(
        &api.get("/db/absent").await,
        StatusCode::NOT_FOUND,
        "db_not_found",
    );
}

#[tokio::test]
async fn names_outside_the_rule_are_invalid() {
    let api = Api::new().await;
    for name in [
        "Trucks",
        "db",
        "1trucks",
        "_x",
        "a.b",
        "%2E%2E",
        "%FF",
        "caf%C3%A9",
        &"a".repeat(65),
    ] {
        assert_error(
            &api.call("PUT", &format!("/db/{name}"), Body::empty()).await,
            StatusCode::BAD_REQUEST,
            "invalid_name",
        );
        assert_error(
            &api.post(&format!("/db/{name}/e"), "{}").await,
            StatusCode::BAD_REQUEST,
            "invalid_name",
        );
    }
    assert_eq!(
        api.get("/db").await.1,
        json!({"databases": []}),
        "nothing was created"
    );
}
