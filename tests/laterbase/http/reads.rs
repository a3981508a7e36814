//! Reads of a database's events: the changes feed in pages, without skips
//! or repeats, and reads by id and by id range.

use axum::http::StatusCode;
use laterbase::EventId;
use serde_json::json;

use super::{Api, assert_error};

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
