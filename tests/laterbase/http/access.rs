//! Scoped tokens, route by route: the matrix of scope × route comes from
//! the router's own table (`route_rules`), so that a route added later is
//! held to it too; a refused request changes nothing; `GET /db` and a
//! peer's watch show only what the token may see; a token bound to a node
//! syncs only as that node.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use laterbase::http::{Access, Grant, Need, Scope, route_rules};
use laterbase::{Config, EventId, Node};
use serde_json::Value;

use super::{Api, assert_error};

/// The tokens of the node under test, by name, and what each may do.
fn grants(bound: EventId) -> Vec<Grant> {
    vec![
        Grant::token("reader")
            .databases(["ship*"])
            .scopes([Scope::Read]),
        Grant::token("writer")
            .databases(["ship*"])
            .scopes([Scope::Write]),
        Grant::token("syncer")
            .databases(["ship*"])
            .scopes([Scope::Sync]),
        Grant::token("admin").scopes([Scope::Admin]),
        Grant::token("elsewhere").databases(["other"]).scopes([
            Scope::Read,
            Scope::Write,
            Scope::Sync,
        ]),
        Grant::token("truck")
            .databases(["ship*"])
            .scopes([Scope::Sync])
            .node(Some(bound)),
        Grant::everything("all"),
    ]
}

/// The node bound to the token `truck`.
fn truck_id() -> EventId {
    EventId::from_parts(1_700_000_000_000, 17)
}

async fn api() -> Api {
    let node = Node::open(Config::in_memory()).await.expect("open");
    let api = Api::serving(node, |state| {
        state.access(Access::grants(grants(truck_id())))
    });
    for name in ["shipments", "other"] {
        let (status, _) = send(&api, "PUT", &format!("/db/{name}"), Some("all"), &[]).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    api
}

/// Sends a request and reads its status, and its body unless it is a
/// stream (a watch): only its head is waited for.
async fn send(
    api: &Api,
    method: &str,
    uri: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = api
        .open(request.body(Body::empty()).expect("request"))
        .await;
    let status = response.status();
    let streams = response
        .headers()
        .get("content-type")
        .is_some_and(|value| value.as_bytes().starts_with(b"text/event-stream"));
    if streams {
        return (status, Value::Null);
    }
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Whether the token `token` may take a route that needs `need`, on the
/// database `shipments`.
fn allowed(need: Need, token: &str) -> bool {
    let scope_on_shipments = |scope: Scope| match token {
        "reader" => scope == Scope::Read,
        "writer" => scope == Scope::Write,
        "syncer" | "truck" => scope == Scope::Sync,
        "all" => true,
        _ => false,
    };
    match need {
        Need::Nothing | Need::Token => true,
        Need::Admin => matches!(token, "admin" | "all"),
        Need::SyncAny => matches!(token, "syncer" | "truck" | "elsewhere" | "all"),
        Need::On(scope) => scope_on_shipments(scope),
    }
}

#[tokio::test]
async fn every_route_of_the_router_holds_every_token_to_its_scopes() {
    let api = api().await;
    let rules = route_rules();
    assert!(rules.len() >= 20, "the router's table: {rules:?}");
    let tokens = [
        "reader",
        "writer",
        "syncer",
        "admin",
        "elsewhere",
        "truck",
        "all",
    ];
    let truck = truck_id().to_string();
    for rule in &rules {
        let uri = rule
            .path
            .replace("{db}", "shipments")
            .replace("{view}", "no_such_view");
        let method = rule.method.as_str();
        // The sync routes name the node that speaks: the bound token's own.
        let headers = [("laterbase-node", truck.as_str())];
        for token in [None, Some("unknown")] {
            let (status, body) = send(&api, method, &uri, token, &headers).await;
            if rule.need == Need::Nothing {
                assert!(
                    status.is_success(),
                    "{method} {uri} with {token:?}: {status} {body}"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::UNAUTHORIZED,
                    "{method} {uri} with {token:?}: {body}"
                );
                assert_eq!(body["error"], "unauthorized");
            }
        }
        for token in tokens {
            let (status, body) = send(&api, method, &uri, Some(token), &headers).await;
            let said = format!(
                "{method} {uri} ({:?}) with {token}: {status} {body}",
                rule.need
            );
            if allowed(rule.need, token) {
                assert_ne!(status, StatusCode::UNAUTHORIZED, "{said}");
                assert_ne!(status, StatusCode::FORBIDDEN, "{said}");
                // The router serves the method the table names.
                assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{said}");
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{said}");
                assert_eq!(body["error"], "forbidden", "{said}");
                assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
            }
        }
    }
    // Outside the table: a known token learns what is not there, nobody
    // else learns anything.
    assert_error(
        &api.get("/nowhere/at/all").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let (status, body) = send(&api, "GET", "/nowhere/at/all", Some("reader"), &[]).await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::NOT_FOUND, &"not_found".into())
    );
    let (status, _) = send(&api, "DELETE", "/db/shipments", Some("reader"), &[]).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _) = send(&api, "DELETE", "/db/shipments", None, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_refused_request_changes_nothing() {
    let api = api().await;
    let write = |db: &str, token: &str| {
        Request::builder()
            .method("POST")
            .uri(format!("/db/{db}/e"))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Body::from(r#"[{"data":{"gate":1}}]"#))
            .expect("request")
    };
    for (db, token) in [
        ("shipments", "reader"),
        ("shipments", "syncer"),
        ("shipments", "admin"),
        ("other", "writer"),
    ] {
        let (status, _) = api.send(write(db, token)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{db} with {token}");
    }
    let (status, _) = api.send(write("shipments", "writer")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(api.node.database("shipments").expect("there").lc(), 1);
    assert_eq!(api.node.database("other").expect("there").lc(), 0);
    // A database the token may not write is not created.
    for token in ["reader", "syncer", "admin", "elsewhere"] {
        let (status, _) = send(&api, "PUT", "/db/shipyard", Some(token), &[]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{token}");
    }
    assert!(api.node.database("shipyard").is_err());
    let (status, _) = send(&api, "PUT", "/db/shipyard", Some("writer"), &[]).await;
    assert_eq!(status, StatusCode::CREATED);
    // Nor through sync, by a token without `sync` on it.
    let offer = |token: &str| {
        Request::builder()
            .method("POST")
            .uri("/sync/elsewhere_db/offer")
            .header("authorization", format!("Bearer {token}"))
            .header("laterbase-node", truck_id().to_string())
            .body(Body::from(vec![3_u8, 0, 0]))
            .expect("request")
    };
    let (status, _) = api.send(offer("syncer")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(api.node.database("elsewhere_db").is_err());
}

#[tokio::test]
async fn the_list_of_databases_shows_what_the_token_may_read_or_sync() {
    let api = api().await;
    let (status, _) = send(&api, "PUT", "/db/shipyard", Some("all"), &[]).await;
    assert_eq!(status, StatusCode::CREATED);
    for (token, expected) in [
        ("reader", vec!["shipments", "shipyard"]),
        ("syncer", vec!["shipments", "shipyard"]),
        ("writer", vec![]),
        ("admin", vec![]),
        ("elsewhere", vec!["other"]),
        ("all", vec!["other", "shipments", "shipyard"]),
    ] {
        let (status, body) = send(&api, "GET", "/db", Some(token), &[]).await;
        assert_eq!(status, StatusCode::OK);
        let mut listed: Vec<String> =
            serde_json::from_value(body["databases"].clone()).expect("names");
        listed.sort();
        assert_eq!(listed, expected, "{token}");
    }
}

#[tokio::test]
async fn a_token_bound_to_a_node_syncs_only_as_that_node() {
    let api = api().await;
    let other = EventId::from_parts(1_700_000_000_000, 18).to_string();
    for (claimed, expected) in [
        (Some(truck_id().to_string()), StatusCode::BAD_REQUEST),
        (Some(other.clone()), StatusCode::FORBIDDEN),
        (Some("not an id".to_owned()), StatusCode::FORBIDDEN),
        (None, StatusCode::FORBIDDEN),
    ] {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri("/sync/shipments/offer")
            .header("authorization", "Bearer truck");
        if let Some(claimed) = &claimed {
            request = request.header("laterbase-node", claimed);
        }
        // A message that does not decode: past the token, the route says so.
        let (status, body) = api
            .send(request.body(Body::from(vec![9_u8])).expect("request"))
            .await;
        assert_eq!(status, expected, "{claimed:?}: {body:?}");
        if expected == StatusCode::FORBIDDEN {
            let body: Value = serde_json::from_slice(&body).expect("JSON");
            assert_eq!(body["error"], "forbidden");
        }
    }
    // The watch too.
    let (status, _) = send(
        &api,
        "GET",
        "/sync/watch",
        Some("truck"),
        &[("laterbase-node", &other)],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // An unbound sync token may claim any node.
    let (status, _) = send(
        &api,
        "POST",
        "/sync/shipments/offer",
        Some("syncer"),
        &[("laterbase-node", &other)],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
