//! Events a view cannot take (a key too long to store, a fold that fails
//! or makes a state that cannot be stored) are skipped and counted, and
//! the view goes on folding the others.

use axum::http::StatusCode;
use laterbase::testing::fold_json;
use laterbase::{EventId, NewEvent};
use serde_json::json;

use super::{
    Fragile, Sample, SampleSums, assert_views_match_model, at, event, reading, rows_of, status_of,
};
use crate::http::Api;
use crate::support::read_feed;

#[tokio::test]
async fn an_event_with_a_key_too_long_to_store_is_skipped_and_counted() {
    let api = Api::new().await;
    api.create("fleet").await;
    let db = api.node.database("fleet").expect("database");
    let long = "k".repeat(laterbase::limits::VIEW_KEY_BYTES_MAX + 1);
    db.append(vec![
        event(at(1), &reading(&long, 1.0)),
        event(at(2), &reading("dock-1", 2.0)),
    ])
    .await
    .expect("append");
    let statuses = db.view_statuses().await.expect("statuses");
    let stats = statuses
        .iter()
        .find(|s| s.view == "sensor_stats")
        .expect("listed");
    assert_eq!((stats.folded, stats.skipped, stats.lc), (1, 1, 2));
    assert_eq!(
        rows_of(&api, "sensor_stats").await.as_array().map(Vec::len),
        Some(1)
    );
    // The database and its views go on taking events.
    db.append(vec![event(at(3), &reading("dock-1", 3.0))])
        .await
        .expect("append");
    assert_views_match_model(&api).await;
}

#[tokio::test]
async fn an_event_that_cannot_be_folded_is_skipped_and_counted() {
    let api = Api::new().await;
    api.create("fleet").await;
    let db = api.node.database("fleet").expect("database");
    let sample = |x: f64| Sample {
        probe: 1,
        x,
        small: 1.5,
    };
    db.append(vec![
        event(at(10), &sample(2.0)),
        // 1 / 0 is infinite: the custom fold's state cannot be stored.
        event(at(20), &sample(0.0)),
        // A map keyed by bytes does not serialise to JSON.
        event(at(30), &sample(7.0)),
        // Valid JSON, but beyond `f32`: the event's deserializer makes it
        // infinite, which the declarative view refuses.
        NewEvent::with_id(at(40), br#"{"probe":1,"x":9.0,"small":1e39}"#.to_vec()),
        event(at(50), &sample(4.0)),
    ])
    .await
    .expect("append");
    let fragile = status_of(&db, "fragile").await;
    assert_eq!((fragile.folded, fragile.skipped, fragile.lc), (3, 2, 5));
    let sums = status_of(&db, "sample_sums").await;
    assert_eq!((sums.folded, sums.skipped, sums.lc), (4, 1, 5));
    // The views go on: rows are served, as their folds over the events
    // that fold give them.
    let (status, row) = api.get("/fleet/fragile?key=1").await;
    assert_eq!(status, StatusCode::OK, "{row}");
    assert_eq!(
        (&row["value"]["seen"], &row["value"]["inverse"]),
        (&json!(3), &json!(0.25))
    );
    let (_, row) = api.get("/fleet/sample_sums?key=1").await;
    assert_eq!(
        row["value"],
        json!({"samples": 4, "small_total": 6.0, "top": 7.0})
    );
    // Backdated, into the refold of an ordered view: one that fails and
    // one that folds.
    db.append(vec![event(at(1), &sample(0.0))])
        .await
        .expect("append");
    db.append(vec![event(at(2), &sample(5.0))])
        .await
        .expect("append");
    let fragile = status_of(&db, "fragile").await;
    assert_eq!((fragile.folded, fragile.skipped, fragile.lc), (4, 3, 7));
    let events: Vec<(EventId, bytes::Bytes)> = read_feed(&db, 1_000)
        .await
        .into_iter()
        .map(|event| (event.id, event.data))
        .collect();
    for (view, model) in [
        ("fragile", fold_json::<Fragile, _>(events.clone())),
        ("sample_sums", fold_json::<SampleSums, _>(events)),
    ] {
        let model = serde_json::to_string(&model).expect("json");
        assert_eq!(rows_of(&api, view).await.to_string(), model, "{view}");
    }
    let (_, row) = api.get("/fleet/fragile?key=1").await;
    assert_eq!(
        (&row["value"]["seen"], &row["value"]["inverse"]),
        (&json!(4), &json!(0.25))
    );
    // A key whose only event fails has no row, until an earlier event
    // that folds arrives: then the failed one is tried again after it.
    let other = |x: f64| Sample {
        probe: 2,
        x,
        small: 1.0,
    };
    db.append(vec![event(at(60), &other(0.0))])
        .await
        .expect("append");
    let (status, _) = api.get("/fleet/fragile?key=2").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    db.append(vec![event(at(55), &other(8.0))])
        .await
        .expect("append");
    let (_, row) = api.get("/fleet/fragile?key=2").await;
    assert_eq!(
        (&row["value"]["seen"], &row["value"]["inverse"]),
        (&json!(1), &json!(0.125))
    );
    let events: Vec<(EventId, bytes::Bytes)> = read_feed(&db, 1_000)
        .await
        .into_iter()
        .map(|event| (event.id, event.data))
        .collect();
    let model = serde_json::to_string(&fold_json::<Fragile, _>(events)).expect("json");
    assert_eq!(rows_of(&api, "fragile").await.to_string(), model);
}
