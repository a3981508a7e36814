//! The HTTP contract, row by row, through the router (no socket).

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use bytes::Bytes;
use http_body_util::BodyExt;
use laterbase::http::{HttpState, binary, router};
use laterbase::{Config, EngineWrite, EventId, NewEvent, Node};
use serde_json::{Value, json};
use tower::ServiceExt;

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

const ID_A: &str = "01JDQ8Z4Y4M5V6T4Q2W3E8R9TA";
const ID_B: &str = "01JDQ8Z4Y4M5V6T4Q2W3E8R9TB";

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

#[tokio::test]
async fn writes_answer_ids_in_request_order_and_the_clock() {
    let api = Api::new().await;
    api.create("s").await;
    let (status, answer) = api
        .post("/db/s/e", &format!(r#"[{{"id": "{ID_B}", "data": 1}}, {{"data": {{"a": 2}}}}, {{"id": "{}", "data": 3}}]"#, ID_A.to_lowercase()))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let ids = answer["ids"].as_array().expect("ids");
    assert_eq!(ids[0], ID_B);
    assert_eq!(ids[2], ID_A, "ids are printed upper case");
    assert!(
        ids[1]
            .as_str()
            .expect("assigned")
            .parse::<EventId>()
            .is_ok()
    );
    assert_eq!(answer["lc"], 3);
    let (status, single) = api.post("/db/s/e", r#"{"data": "one"}"#).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(single["lc"], 4);
    assert_eq!(single["ids"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn rewriting_the_same_bytes_is_idempotent_and_other_bytes_conflict() {
    let api = Api::new().await;
    api.create("s").await;
    let batch = format!(r#"[{{"id": "{ID_A}", "data": {{"x": 1}}}}]"#);
    assert_eq!(api.post("/db/s/e", &batch).await.1["lc"], 1);
    let again = api.post("/db/s/e", &batch).await;
    assert_eq!(again.0, StatusCode::OK);
    assert_eq!(
        again.1,
        json!({"ids": [ID_A], "lc": 1}),
        "the lc does not move"
    );

    // The same value with other bytes (spacing) is other bytes.
    let conflicting = format!(r#"[{{"data": "new"}}, {{"id": "{ID_A}", "data": {{"x":1}}}}]"#);
    let answer = api.post("/db/s/e", &conflicting).await;
    assert_error(&answer, StatusCode::CONFLICT, "conflict");
    assert!(
        answer.1["message"]
            .as_str()
            .is_some_and(|m| m.contains("event 1")),
        "{}",
        answer.1
    );
    assert_eq!(
        api.get("/db/s").await.1["lc"],
        1,
        "nothing of the batch is stored"
    );

    let repeated = format!(r#"[{{"id": "{ID_B}", "data": 1}}, {{"id": "{ID_B}", "data": 1}}]"#);
    assert_eq!(
        api.post("/db/s/e", &repeated).await.1["lc"],
        2,
        "a repeat in one batch stores once"
    );
    let clashing = format!(
        r#"[{{"id": "{}", "data": 1}}, {{"id": "{}", "data": 2}}]"#,
        "01JDQ8Z4Y4M5V6T4Q2W3E8R9TC", "01JDQ8Z4Y4M5V6T4Q2W3E8R9TC"
    );
    assert_error(
        &api.post("/db/s/e", &clashing).await,
        StatusCode::CONFLICT,
        "conflict",
    );
}

#[tokio::test]
async fn ids_too_far_ahead_are_refused() {
    let api = Api::new().await;
    api.create("s").await;
    let now_ms = laterbase::clock::Clock::now_ms(&laterbase::clock::SystemClock);
    let future = EventId::from_parts(now_ms + 3_600_000, 1);
    let answer = api
        .post(
            "/db/s/e",
            &format!(r#"[{{"data": 0}}, {{"id": "{future}", "data": 1}}]"#),
        )
        .await;
    assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, "future_event");
    assert!(
        answer.1["message"]
            .as_str()
            .is_some_and(|m| m.contains("event 1"))
    );
    let backdated = EventId::from_parts(now_ms - 10 * 365 * 86_400_000, 1);
    assert_eq!(
        api.post("/db/s/e", &format!(r#"{{"id": "{backdated}", "data": 1}}"#))
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_first_failing_event_by_index_answers() {
    let api = Api::new().await;
    api.create("s").await;
    let now_ms = laterbase::clock::Clock::now_ms(&laterbase::clock::SystemClock);
    let future = EventId::from_parts(now_ms + 3_600_000, 1);
    // Event 0 is too far ahead; event 1 is broken in another way. Event 0
    // answers, whatever event 1's fault (and event 0 lacking `data` too).
    for body in [
        format!(r#"[{{"id": "{future}", "data": 1}}, {{"id": "bad", "data": 1}}]"#),
        format!(r#"[{{"id": "{future}"}}, {{"id": "bad"}}]"#),
        format!(r#"[{{"id": "{future}", "data": 1}}, {{"id": 7, "data": 1}}]"#),
        format!(r#"[{{"id": "{future}", "data": 1}}, 7]"#),
        format!(r#"[{{"id": "{future}", "data": 1}}, {{"nodata": 1}}]"#),
    ] {
        let answer = api.post("/db/s/e", &body).await;
        assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, "future_event");
        assert!(
            answer.1["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("event 0:")),
            "{body}: {}",
            answer.1
        );
    }
    // In the binary encoding too: event 1 ends early.
    let mut batch = binary::encode_batch(&[
        NewEvent::with_id(future, &b"1"[..]),
        NewEvent::new(&b"22"[..]),
    ])
    .to_vec();
    batch.pop();
    let request = Request::post("/db/s/e")
        .header("content-type", binary::CONTENT_TYPE)
        .body(Body::from(batch))
        .expect("request");
    let (status, body) = api.send(request).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body:?}");
    // And the other way round, event 0's own fault answers.
    let answer = api
        .post(
            "/db/s/e",
            &format!(r#"[{{"id": "bad", "data": 1}}, {{"id": "{future}", "data": 1}}]"#),
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_id");
    assert_eq!(api.get("/db/s").await.1["lc"], 0, "nothing was stored");
}

#[tokio::test]
async fn malformed_writes_get_precise_errors_and_store_nothing() {
    let api = Api::new().await;
    api.create("s").await;
    let cases: &[(&str, StatusCode, &str)] = &[
        ("", StatusCode::BAD_REQUEST, "invalid_json"),
        ("[{\"data\": 1}", StatusCode::BAD_REQUEST, "invalid_json"),
        ("{\"data\": tru}", StatusCode::BAD_REQUEST, "invalid_json"),
        ("[1]", StatusCode::BAD_REQUEST, "invalid_event"),
        (
            "[{\"data\": 1}, \"x\"]",
            StatusCode::BAD_REQUEST,
            "invalid_event",
        ),
        (
            "[{\"id\": \"01JDQ8Z4Y4M5V6T4Q2W3E8R9TA\"}]",
            StatusCode::BAD_REQUEST,
            "invalid_event",
        ),
        (
            "[{\"data\": 1}, {\"id\": \"nope\", \"data\": 1}]",
            StatusCode::BAD_REQUEST,
            "invalid_id",
        ),
        (
            "[{\"id\": 7, \"data\": 1}]",
            StatusCode::BAD_REQUEST,
            "invalid_id",
        ),
        (
            "[{\"id\": \"81JDQ8Z4Y4M5V6T4Q2W3E8R9TA\", \"data\": 1}]",
            StatusCode::BAD_REQUEST,
            "invalid_id",
        ),
        (
            "[{\"id\": \"01JDQ8Z4Y4M5V6T4Q2W3E8R9TU\", \"data\": 1}]",
            StatusCode::BAD_REQUEST,
            "invalid_id",
        ),
    ];
    for (body, status, code) in cases {
        let answer = api.post("/db/s/e", body).await;
        assert_eq!(answer.0, *status, "{body}: {}", answer.1);
        assert_error(&answer, *status, code);
    }
    let answer = api
        .post(
            "/db/s/e",
            "[{\"data\": 1}, {\"id\": \"nope\", \"data\": 1}]",
        )
        .await;
    assert!(
        answer.1["message"]
            .as_str()
            .is_some_and(|m| m.contains("event 1")),
        "{}",
        answer.1
    );
    let nested = format!("{{\"data\": {}{}}}", "[".repeat(10_000), "]".repeat(10_000));
    assert_error(
        &api.post("/db/s/e", &nested).await,
        StatusCode::BAD_REQUEST,
        "invalid_json",
    );
    let limit = laterbase::limits::JSON_DEPTH_MAX;
    let deepest = format!(
        "{{\"data\": {}\"[{{\"{}}}",
        "[".repeat(limit - 1),
        "]".repeat(limit - 1)
    );
    assert_eq!(
        api.post("/db/s/e", &deepest).await.0,
        StatusCode::OK,
        "brackets in strings do not count"
    );
    let deeper = format!("{{\"data\": {}{}}}", "[".repeat(limit), "]".repeat(limit));
    assert_error(
        &api.post("/db/s/e", &deeper).await,
        StatusCode::BAD_REQUEST,
        "invalid_json",
    );
    let request = Request::post("/db/s/e")
        .body(Body::from(&b"{\"data\": \"\xff\xfe\"}"[..]))
        .expect("request");
    let (status, body) = api.send(request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).expect("json")["error"],
        "invalid_json"
    );
    assert_eq!(api.get("/db/s").await.1["lc"], 1, "nothing else was stored");
}

#[tokio::test]
async fn limits_answer_payload_too_large() {
    let api = Api::new().await;
    api.create("s").await;
    let too_many = format!("[{}]", vec!["{\"data\":0}"; 10_001].join(","));
    assert_error(
        &api.post("/db/s/e", &too_many).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    let huge = format!(
        "{{\"data\": \"{}\"}}",
        "x".repeat(laterbase::limits::BODY_BYTES_MAX)
    );
    assert_error(
        &api.post("/db/s/e", &huge).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    let exactly = format!("[{}]", vec!["{\"data\":0}"; 10_000].join(","));
    assert_eq!(api.post("/db/s/e", &exactly).await.1["lc"], 10_000);
}

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

#[tokio::test]
async fn the_feed_pages_without_skips_or_repeats() {
    let api = Api::new().await;
    api.create("s").await;
    let batch = format!(
        "[{}]",
        (0..1_005)
            .map(|n| format!("{{\"data\":{n}}}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    assert_eq!(api.post("/db/s/e", &batch).await.1["lc"], 1_005);

    let (status, first) = api.get("/db/s/e").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        first["events"].as_array().map(Vec::len),
        Some(1_000),
        "limit defaults to 1,000"
    );
    assert_eq!(
        (first["lc"].clone(), first["more"].clone()),
        (json!(1_000), json!(true))
    );
    let (_, rest) = api.get("/db/s/e?lc=1000").await;
    assert_eq!(rest["events"].as_array().map(Vec::len), Some(5));
    assert_eq!(
        (rest["lc"].clone(), rest["more"].clone()),
        (json!(1_005), json!(false))
    );
    let (_, empty) = api.get("/db/s/e?lc=1005&limit=3").await;
    assert_eq!(empty, json!({"events": [], "lc": 1_005, "more": false}));

    let mut seen = Vec::new();
    let mut lc = 0;
    loop {
        let (_, page) = api.get(&format!("/db/s/e?lc={lc}&limit=7")).await;
        for event in page["events"].as_array().expect("events") {
            seen.push(event["data"].as_u64().expect("number"));
            assert_eq!(event["lc"], seen.len() as u64);
        }
        lc = page["lc"].as_u64().expect("lc");
        if page["more"] == false {
            break;
        }
    }
    assert_eq!(
        seen,
        (0..1_005).collect::<Vec<_>>(),
        "every event once, in order"
    );
    let (_, clamped) = api.get("/db/s/e?limit=20000").await;
    assert_eq!(
        clamped["events"].as_array().map(Vec::len),
        Some(1_005),
        "a large limit is clamped, not refused"
    );
    for bad in [
        "limit=0",
        "limit=-1",
        "limit=ten",
        "limit=",
        "lc=-1",
        "lc=x",
        "lc=1.5",
        "after=nope",
        "before=01",
        "color=red",
        "keys=",
        "keys=01JDQ8Z4Y4M5V6T4Q2W3E8R9TA&lc=0",
        "lc=0&after=01JDQ8Z4Y4M5V6T4Q2W3E8R9TA",
    ] {
        assert_error(
            &api.get(&format!("/db/s/e?{bad}")).await,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        );
    }
    assert_error(
        &api.get("/db/absent/e").await,
        StatusCode::NOT_FOUND,
        "db_not_found",
    );
}

#[tokio::test]
async fn events_read_back_by_key_and_by_range() {
    let api = Api::new().await;
    api.create("s").await;
    let ids: Vec<String> = (1..=5)
        .map(|n| EventId::from_parts(1_700_000_000_000 + n, 0).to_string())
        .collect();
    let batch: Vec<String> = ids
        .iter()
        .rev()
        .enumerate()
        .map(|(n, id)| format!("{{\"id\":\"{id}\",\"data\":{n}}}"))
        .collect();
    api.post("/db/s/e", &format!("[{}]", batch.join(","))).await;

    let absent = EventId::from_parts(1_600_000_000_000, 9).to_string();
    let (status, keys) = api
        .get(&format!(
            "/db/s/e?keys={},{absent},{}",
            ids[3],
            ids[0].to_lowercase()
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let found: Vec<&str> = keys["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        found,
        [ids[3].as_str(), ids[0].as_str()],
        "in the order asked"
    );
    assert_eq!(keys["missing"], json!([absent]));
    let event = &keys["events"][0];
    assert_eq!(event["data"], 1);
    assert_eq!(event["lc"], 2);
    assert!(
        event["recorded_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t.len() == 24),
        "{event}"
    );
    assert_error(
        &api.get("/db/s/e?keys=01JDQ8Z4Y4M5V6T4Q2W3E8R9TA,bad").await,
        StatusCode::BAD_REQUEST,
        "invalid_id",
    );

    let (_, range) = api
        .get(&format!("/db/s/e?after={}&before={}", ids[0], ids[4]))
        .await;
    let in_range: Vec<&str> = range["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        in_range,
        [ids[1].as_str(), ids[2].as_str(), ids[3].as_str()],
        "ascending, both bounds exclusive"
    );
    assert_eq!(range["more"], false);
    let (_, first) = api.get(&format!("/db/s/e?after={}&limit=2", ids[0])).await;
    assert_eq!(first["more"], true);
    let (_, next) = api
        .get(&format!(
            "/db/s/e?after={}&limit=2",
            first["events"][1]["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(
        next["events"][0]["id"],
        ids[3].as_str(),
        "the next page starts after the last id"
    );
    let (_, before_only) = api.get(&format!("/db/s/e?before={}", ids[1])).await;
    assert_eq!(before_only["events"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn data_reads_back_byte_for_byte() {
    let api = Api::new().await;
    api.create("s").await;
    let values = [
        r#"{ "b" :1, "a": [1.0e10, -0, "\u00e9\n"] }"#,
        "1.50",
        "\"caf\u{e9}\"",
        "null",
        "[ ]",
    ];
    for value in values {
        let (status, _) = api.post("/db/s/e", &format!("{{\"data\":{value}}}")).await;
        assert_eq!(status, StatusCode::OK, "{value}");
    }
    let (_, body) = api
        .send(
            Request::get("/db/s/e")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    let text = std::str::from_utf8(&body).expect("utf-8");
    for value in values {
        assert!(
            text.contains(&format!("\"data\":{value},")),
            "{value} verbatim in {text}"
        );
    }
}

#[tokio::test]
async fn binary_batches_write_and_read() {
    let api = Api::new().await;
    api.create("s").await;
    let id = EventId::from_parts(1_700_000_000_000, 3);
    let events = vec![
        NewEvent::with_id(id, &b"\x00\xffraw"[..]),
        NewEvent::new(&b"{\"json\":true}"[..]),
    ];
    let request = Request::post("/db/s/e")
        .header("content-type", binary::CONTENT_TYPE)
        .body(Body::from(binary::encode_batch(&events)))
        .expect("request");
    let (status, body) = api.send(request).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    let (_, page) = api.get("/db/s/e").await;
    assert_eq!(
        page["events"][0]["data_b64"], "AP9yYXc=",
        "bytes that are not JSON read back as base64"
    );
    assert!(page["events"][0].get("data").is_none());
    assert_eq!(page["events"][1]["data"], json!({"json": true}));

    let request = Request::get("/db/s/e?lc=0")
        .header("accept", binary::CONTENT_TYPE)
        .body(Body::empty())
        .expect("request");
    let (status, body) = api.send(request).await;
    assert_eq!(status, StatusCode::OK);
    let page = binary::decode_page(&body).expect("a binary page");
    assert_eq!((page.lc, page.more, page.events.len()), (2, false, 2));
    assert_eq!(page.events[0].id, id);
    assert_eq!(&page.events[0].data[..], b"\x00\xffraw");

    let truncated = binary::encode_batch(&events).slice(..10);
    let request = Request::post("/db/s/e")
        .header("content-type", binary::CONTENT_TYPE)
        .body(Body::from(truncated))
        .expect("request");
    let (status, _) = api.send(request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let request = Request::post("/db/s/e")
        .header("content-type", "text/csv")
        .body(Body::from("a,b"))
        .expect("request");
    let (status, body) = api.send(request).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).expect("json")["error"],
        "unsupported_media_type"
    );
}

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

#[tokio::test]
async fn a_full_disk_refuses_writes_with_507_and_reads_go_on() {
    let storage = laterbase::MemoryStorage::new();
    let api = Api::on(Config::memory(storage.clone()), None).await;
    api.create("s").await;
    api.post("/db/s/e", "{\"data\": 1}").await;
    storage.fill_disk();
    assert_error(
        &api.post("/db/s/e", "{\"data\": 2}").await,
        StatusCode::INSUFFICIENT_STORAGE,
        "insufficient_storage",
    );
    assert_error(
        &api.post("/db/s/e", "{\"data\": 3}").await,
        StatusCode::INSUFFICIENT_STORAGE,
        "insufficient_storage",
    );
    let (status, page) = api.get("/db/s/e").await;
    assert_eq!(status, StatusCode::OK, "reads go on");
    assert_eq!(page["events"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_failed_fsync_answers_503_from_then_on() {
    let storage = laterbase::MemoryStorage::new();
    let api = Api::on(Config::memory(storage.clone()), None).await;
    api.create("s").await;
    storage.fail_next_persist();
    assert_error(
        &api.post("/db/s/e", "{\"data\": 1}").await,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
    );
    assert_error(
        &api.post("/db/s/e", "{\"data\": 2}").await,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
    );
    assert_eq!(api.get("/db/s").await.1["lc"], 0);
}

#[tokio::test]
async fn a_full_disk_met_by_a_background_flush_answers_507_and_reads_go_on() {
    let storage = laterbase::MemoryStorage::new();
    let api = Api::on(Config::memory(storage.clone()), None).await;
    api.create("s").await;
    api.post("/db/s/e", "{\"data\": 1}").await;
    // fjall fails a flush in the background and says only that the store
    // is poisoned: the refusal still names the full disk and the flush.
    storage.fail_in_background(EngineWrite::Flush, std::io::ErrorKind::StorageFull);
    for _ in 0..2 {
        let refused = api.post("/db/s/e", "{\"data\": 2}").await;
        assert_error(
            &refused,
            StatusCode::INSUFFICIENT_STORAGE,
            "insufficient_storage",
        );
        let message = refused.1["message"].as_str().unwrap_or_default();
        assert!(message.contains("a background flush failed"), "{message}");
    }
    let (status, _) = api.call("PUT", "/db/t", Body::empty()).await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "a new database");
    let (status, page) = api.get("/db/s/e").await;
    assert_eq!(status, StatusCode::OK, "reads go on");
    assert_eq!(page["events"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_background_compaction_that_fails_on_a_disk_with_room_answers_503() {
    let storage = laterbase::MemoryStorage::new();
    let api = Api::on(Config::memory(storage.clone()), None).await;
    api.create("s").await;
    storage.fail_in_background(EngineWrite::Compaction, std::io::ErrorKind::Other);
    assert_error(
        &api.post("/db/s/e", "{\"data\": 1}").await,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
    );
}

#[tokio::test]
async fn lowered_limits_are_kept() {
    let limits = laterbase::limits::Limits {
        batch_events_max: 3,
        body_bytes_max: 200,
        page_events_default: 2,
        page_events_max: 4,
    };
    let api = Api::on(Config::in_memory().limits(limits), None).await;
    api.create("s").await;
    let four = "[{\"data\":1},{\"data\":2},{\"data\":3},{\"data\":4}]";
    assert_error(
        &api.post("/db/s/e", four).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    let long = format!("{{\"data\":\"{}\"}}", "x".repeat(200));
    assert_error(
        &api.post("/db/s/e", &long).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    api.post("/db/s/e", "[{\"data\":1},{\"data\":2},{\"data\":3}]")
        .await;
    api.post("/db/s/e", "[{\"data\":4},{\"data\":5},{\"data\":6}]")
        .await;
    assert_eq!(
        api.get("/db/s/e").await.1["events"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert_eq!(
        api.get("/db/s/e?limit=100").await.1["events"]
            .as_array()
            .map(Vec::len),
        Some(4)
    );

    let too_high = laterbase::limits::Limits {
        page_events_max: 20_000,
        ..limits
    };
    let refused = Node::open(Config::in_memory().limits(too_high)).await;
    assert!(
        matches!(refused, Err(laterbase::Error::InvalidConfig(_))),
        "{refused:?}"
    );
}
