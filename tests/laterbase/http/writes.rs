//! Writes: the ids and clock a batch answers, rewrites of the same id, and
//! the refusals of a batch (ids too far ahead, the first failing event by
//! index, malformed bodies), each of which stores nothing.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use laterbase::http::binary;
use laterbase::{EventId, NewEvent};
use serde_json::{Value, json};

use super::{Api, ID_A, ID_B, assert_error};

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
