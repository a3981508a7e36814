//! The bounds of a write and of a page: the defaults answer
//! `payload_too_large`, and a node opened with lowered limits keeps them
//! (and refuses limits above the maximums).

use axum::http::StatusCode;
use laterbase::{Config, Node};

use super::{Api, assert_error};

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
