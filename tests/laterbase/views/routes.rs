//! Views over HTTP: rows read right after a write, single keys, pages and
//! errors in the contract's shape, and an answer without `limit` that
//! streams every row.

use axum::http::StatusCode;
use laterbase::NewEvent;
use serde_json::json;

use super::{assert_views_match_model, at, event, reading};
use crate::http::{Api, assert_error};

#[tokio::test]
async fn views_are_served_over_http_and_read_your_writes() {
    let api = Api::new().await;
    api.create("fleet").await;
    let body = json!([
        {"id": at(1).to_string(), "data": {"sensor": "dock-1", "celsius": 4.5}},
        {"id": at(2).to_string(), "data": {"sensor": "dock-2", "celsius": 9.0}},
        {"id": at(3).to_string(), "data": {"parcel": 7, "place": "truck"}},
        {"id": at(4).to_string(), "data": "not a reading"},
    ]);
    let (status, answer) = api.post("/db/fleet/e", &body.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // Asked right after the write: the rows include it.
    let (status, all) = api.get("/fleet/sensor_stats").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all["db"], "fleet");
    assert_eq!(all["view"], "sensor_stats");
    assert_eq!(all["rows"].as_array().map(Vec::len), Some(2));
    assert_eq!(all.get("more"), None, "no paging asked, none answered");
    let (status, one) = api.get("/fleet/sensor_stats?key=dock-2").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        one,
        json!({"key": "dock-2", "value": {"readings": 1, "total": 9.0,
            "coldest": 9.0, "hottest": 9.0, "first": 9.0, "latest": 9.0}})
    );
    let (status, route) = api.get("/fleet/route?key=7").await;
    assert_eq!(
        (status, &route["value"]["places"]),
        (StatusCode::OK, &json!(["truck"]))
    );
    let (status, total) = api.get("/fleet/all_readings?key=null").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(total, json!({"key": null, "value": {"readings": 2}}));
    // Errors, each in the contract's shape.
    assert_error(
        &api.get("/fleet/sensor_stats?key=dock-9").await,
        StatusCode::NOT_FOUND,
        "key_not_found",
    );
    assert_error(
        &api.get("/fleet/route?key=seven").await,
        StatusCode::BAD_REQUEST,
        "invalid_key",
    );
    assert_error(
        &api.get("/fleet/route?key=-1").await,
        StatusCode::BAD_REQUEST,
        "invalid_key",
    );
    assert_error(
        &api.get("/fleet/nothing").await,
        StatusCode::NOT_FOUND,
        "view_not_found",
    );
    assert_error(
        &api.get("/fleet/route?limit=0").await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    );
    assert_error(
        &api.get("/fleet/route?colour=red").await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    );
    // Pages, past the contract: `limit` and `after`, with `more`.
    let (_, first) = api.get("/fleet/sensor_stats?limit=1").await;
    assert_eq!(first["rows"][0]["key"], "dock-1");
    assert_eq!(first["more"], true);
    let (_, second) = api.get("/fleet/sensor_stats?limit=1&after=dock-1").await;
    assert_eq!(second["rows"][0]["key"], "dock-2");
    assert_eq!(second["more"], false);
    // The undecodable events are counted, per view.
    let (status, statuses) = api.get("/db/fleet/views").await;
    assert_eq!(status, StatusCode::OK);
    let stats = statuses["views"]
        .as_array()
        .and_then(|views| views.iter().find(|view| view["view"] == "sensor_stats"))
        .expect("sensor_stats is listed");
    assert_eq!(
        (stats["folded"].as_u64(), stats["skipped"].as_u64()),
        (Some(2), Some(2))
    );
    assert_views_match_model(&api).await;
}

#[tokio::test]
async fn a_view_read_without_limit_streams_every_row() {
    let api = Api::new().await;
    api.create("fleet").await;
    let db = api.node.database("fleet").expect("database");
    // More rows than one streamed page holds.
    let rows = laterbase::limits::VIEW_STREAM_PAGE_ROWS * 2 + 7;
    let readings: Vec<NewEvent> = (0..rows as u64)
        .map(|n| event(at(n + 1), &reading(&format!("s{n:05}"), n as f64 * 0.1)))
        .collect();
    db.append(readings).await.expect("append");
    // Asked right after the write: every row, in the contract's shape.
    let (status, answer) = api.get("/fleet/sensor_stats").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (&answer["db"], &answer["view"]),
        (&json!("fleet"), &json!("sensor_stats"))
    );
    assert_eq!(answer.as_object().map(|object| object.len()), Some(3));
    assert_eq!(answer["rows"].as_array().map(Vec::len), Some(rows));
    assert_views_match_model(&api).await;
    // `after` without `limit`: every row after it.
    let (_, after) = api.get("/fleet/sensor_stats?after=s00009").await;
    assert_eq!(after["rows"].as_array().map(Vec::len), Some(rows - 10));
    assert_eq!(after["rows"][0]["key"], "s00010");
}
