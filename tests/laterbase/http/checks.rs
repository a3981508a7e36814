//! The checks of a request, in the contract's order (token, name,
//! database, size, JSON, events, conflicts), and the token that guards
//! every route but `/healthz`.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use bytes::Bytes;
use serde_json::{Value, json};

use super::{Api, ID_A, assert_error};

#[tokio::test]
async fn checks_run_in_the_contracts_order() {
    let api = Api::with_token(Some("secret")).await;
    // auth before name
    assert_error(
        &api.post("/db/Bad/e", "x").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let authorized = |method: &str, uri: &str, body: &str| {
        Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", "Bearer secret")
            .body(Body::from(body.to_owned()))
            .expect("request")
    };
    let code = |body: Bytes| serde_json::from_slice::<Value>(&body).expect("json")["error"].clone();
    // name before database
    assert_eq!(
        code(api.send(authorized("POST", "/db/Bad/e", "x")).await.1),
        "invalid_name"
    );
    // database before size and JSON
    let huge = "x".repeat(laterbase::limits::BODY_BYTES_MAX + 1);
    assert_eq!(
        code(api.send(authorized("POST", "/db/absent/e", &huge)).await.1),
        "db_not_found"
    );
    api.send(authorized("PUT", "/db/s", "")).await;
    // size before JSON
    assert_eq!(
        code(api.send(authorized("POST", "/db/s/e", &huge)).await.1),
        "payload_too_large"
    );
    // JSON before events, events in index order, then conflicts
    assert_eq!(
        code(
            api.send(authorized("POST", "/db/s/e", "[{\"data\":1},"))
                .await
                .1
        ),
        "invalid_json"
    );
    assert_eq!(
        code(
            api.send(authorized(
                "POST",
                "/db/s/e",
                &format!("[{{\"id\":\"{ID_A}\",\"data\":1}}]")
            ))
            .await
            .1
        ),
        Value::Null
    );
    let answer = api
        .send(authorized(
            "POST",
            "/db/s/e",
            &format!("[{{\"id\":\"{ID_A}\",\"data\":2}},{{\"id\":\"bad\",\"data\":1}}]"),
        ))
        .await;
    assert_eq!(
        code(answer.1),
        "invalid_id",
        "each event is checked before conflicts"
    );
}

#[tokio::test]
async fn the_token_guards_every_route_but_healthz() {
    let api = Api::with_token(Some("secret")).await;
    assert_eq!(
        api.get("/healthz").await,
        (StatusCode::OK, json!({"status": "ok"}))
    );
    for uri in ["/db", "/db/s", "/db/s/e", "/peers", "/s/v", "/nowhere"] {
        assert_error(
            &api.get(uri).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        );
    }
    let (status, _) = api
        .send(
            Request::get("/metrics")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    for header in [
        "Bearer wrong",
        "Bearer secre",
        "Bearer secrets",
        "secret",
        "bearer secret",
    ] {
        let request = Request::get("/db")
            .header("authorization", header)
            .body(Body::empty())
            .expect("request");
        assert_eq!(
            api.send(request).await.0,
            StatusCode::UNAUTHORIZED,
            "{header}"
        );
    }
    let request = Request::get("/db")
        .header("authorization", "Bearer secret")
        .body(Body::empty())
        .expect("request");
    assert_eq!(api.send(request).await.0, StatusCode::OK);
}
