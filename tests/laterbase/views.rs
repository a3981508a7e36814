//! Views through `#[view]`, the embedding API and the HTTP routes: folded
//! output (snapshot-tested), queries, backdating, restarts, and two nodes
//! that receive the same events in different orders.

use axum::http::StatusCode;
use laterbase::testing::{fold, fold_json};
use laterbase::{Config, Database, EventId, NewEvent, Node, view};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed, TestRunner};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::http::{Api, assert_error};
use crate::support::{read_feed, runtime};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Reading {
    sensor: String,
    celsius: f64,
}

/// The contract's example, on this file's database.
#[view(db = "fleet", event = Reading, key = sensor)]
struct SensorStats {
    #[count]
    readings: u64,
    #[sum(celsius)]
    total: f64,
    #[min(celsius)]
    coldest: f64,
    #[max(celsius)]
    hottest: f64,
    #[first(celsius)]
    first: f64,
    #[last(celsius)]
    latest: f64,
}

/// One global row.
#[view(db = "fleet", event = Reading, name = "all_readings")]
struct Totals {
    #[count]
    readings: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Scan {
    parcel: u32,
    place: String,
}

/// A custom fold whose result depends on order: the places a parcel went
/// through, in event-id order.
#[view(db = "fleet", event = Scan, key = parcel, fold = Route::apply)]
#[derive(Default, Serialize, Deserialize)]
struct Route {
    places: Vec<String>,
    scans: u32,
}

impl Route {
    fn apply(&mut self, _id: EventId, scan: &Scan) {
        self.places.push(scan.place.clone());
        self.scans += 1;
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    account: u8,
    amount: i64,
}

/// Integer sums near the bound: exact, saturated only when shown.
#[view(db = "fleet", event = Entry, key = account)]
struct Ledger {
    #[count]
    entries: u32,
    #[sum(amount)]
    balance: i64,
    #[min(amount)]
    smallest: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Sample {
    probe: u8,
    x: f64,
    /// Read as an `f64` and narrowed, as a user's deserializer may: `1e39`
    /// becomes infinite (serde_json itself refuses it for an `f32`).
    #[serde(deserialize_with = "narrowed")]
    small: f32,
}

fn narrowed<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<f32, D::Error> {
    f64::deserialize(deserializer).map(|wide| wide as f32)
}

/// A declarative view over an `f32` that can be infinite.
#[view(db = "fleet", event = Sample, key = probe)]
struct SampleSums {
    #[count]
    samples: u64,
    #[sum(small)]
    small_total: f32,
    #[max(x)]
    top: f64,
}

/// A custom fold that can make a state that cannot be stored: an infinite
/// float (x = 0) or a map whose keys are not strings (x = 7).
#[view(db = "fleet", event = Sample, key = probe, fold = Fragile::apply)]
#[derive(Default, Serialize, Deserialize)]
struct Fragile {
    seen: u32,
    inverse: f64,
    odd: std::collections::HashMap<Vec<u8>, u32>,
}

impl Fragile {
    fn apply(&mut self, _id: EventId, sample: &Sample) {
        self.seen += 1;
        self.inverse = 1.0 / sample.x;
        if sample.x == 7.0 {
            self.odd.insert(vec![7], 1);
        }
    }
}

fn at(ms: u64) -> EventId {
    EventId::from_parts(1_700_000_000_000 + ms, u128::from(ms))
}

fn reading(sensor: &str, celsius: f64) -> Reading {
    Reading {
        sensor: sensor.to_owned(),
        celsius,
    }
}

fn scan(parcel: u32, place: &str) -> Scan {
    Scan {
        parcel,
        place: place.to_owned(),
    }
}

fn event<T: Serialize>(id: EventId, value: &T) -> NewEvent {
    NewEvent::with_id(id, serde_json::to_vec(value).expect("serialises"))
}

#[test]
fn sensor_stats_fold_as_the_contract_says() {
    // Given out of order: first and last follow ids, not arrival.
    let rows = fold::<SensorStats>([
        (at(3), reading("dock-1", 6.0)),
        (at(1), reading("dock-1", 4.5)),
        (at(2), reading("dock-2", -1.0)),
        (at(4), reading("dock-1", 2.5)),
    ]);
    insta::assert_json_snapshot!(rows);
}

#[test]
fn a_custom_fold_sees_events_in_id_order() {
    let rows = fold::<Route>([
        (at(5), scan(7, "ship")),
        (at(1), scan(7, "farm gate")),
        (at(3), scan(7, "truck")),
        (at(2), scan(8, "warehouse")),
    ]);
    insta::assert_json_snapshot!(rows);
}

#[test]
fn a_view_without_a_key_has_one_null_row() {
    let rows = fold::<Totals>([(at(1), reading("a", 1.0)), (at(2), reading("b", 2.0))]);
    insta::assert_json_snapshot!(rows);
}

/// The node's view of `db` as the HTTP route answers it.
async fn rows_of(api: &Api, view: &str) -> serde_json::Value {
    let (status, body) = api.get(&format!("/fleet/{view}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["rows"].clone()
}

/// The views the model checks.
const VIEWS: [&str; 4] = ["sensor_stats", "all_readings", "route", "ledger"];

/// What a node's views must equal: the fold of its stored events in id
/// order, as JSON text, so that `-0.0` and `0.0` (equal as JSON numbers)
/// and the last bit of every float count.
async fn model(db: &Database) -> [String; 4] {
    let events: Vec<(EventId, bytes::Bytes)> = read_feed(db, 1_000)
        .await
        .into_iter()
        .map(|event| (event.id, event.data))
        .collect();
    let text = |rows: Vec<laterbase::Row>| serde_json::to_string(&rows).expect("json");
    [
        text(fold_json::<SensorStats, _>(events.clone())),
        text(fold_json::<Totals, _>(events.clone())),
        text(fold_json::<Route, _>(events.clone())),
        text(fold_json::<Ledger, _>(events)),
    ]
}

async fn assert_views_match_model(api: &Api) {
    let db = api.node.database("fleet").expect("database");
    let models = model(&db).await;
    for (view, model) in VIEWS.iter().zip(models) {
        assert_eq!(rows_of(api, view).await.to_string(), model, "{view}");
    }
}

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
async fn a_backdated_event_refolds_only_its_key_in_id_order() {
    let api = Api::new().await;
    api.create("fleet").await;
    let db = api.node.database("fleet").expect("database");
    // 200 scans of parcel 1 (several checkpoints), one of parcel 2.
    let scans: Vec<NewEvent> = (10..210)
        .map(|ms| event(at(ms * 10), &scan(1, &format!("p{ms}"))))
        .chain([event(at(5_000), &scan(2, "dock"))])
        .collect();
    db.append(scans).await.expect("append");
    assert_views_match_model(&api).await;
    // Backdated before everything, into the middle, and after a checkpoint.
    for ms in [5, 1_005, 1_645, 2_095] {
        db.append(vec![event(at(ms), &scan(1, &format!("late{ms}")))])
            .await
            .expect("append");
        assert_views_match_model(&api).await;
    }
    let (_, route) = api.get("/fleet/route?key=1").await;
    assert_eq!(route["value"]["scans"], 204);
    assert_eq!(route["value"]["places"][0], "late5");
}

#[test]
fn views_resume_after_a_restart_without_refolding() {
    let dir = tempfile::tempdir().expect("dir");
    runtime().block_on(async {
        let node = Node::open(Config::new(dir.path())).await.expect("open");
        let db = node.create_database("fleet").await.expect("database");
        let readings: Vec<NewEvent> = (1..=50)
            .map(|ms| {
                event(
                    at(ms),
                    &reading(if ms % 2 == 0 { "a" } else { "b" }, ms as f64),
                )
            })
            .collect();
        db.append(readings).await.expect("append");
        let before = db
            .view_rows("sensor_stats", None, None)
            .await
            .expect("rows");
        let statuses = db.view_statuses().await.expect("statuses");
        node.shutdown().await.expect("shutdown");

        let node = Node::open(Config::new(dir.path())).await.expect("reopen");
        let db = node.database("fleet").expect("database");
        assert_eq!(
            db.view_rows("sensor_stats", None, None)
                .await
                .expect("rows"),
            before
        );
        // The counters of folded events are where they were: nothing was
        // folded again at start.
        assert_eq!(db.view_statuses().await.expect("statuses"), statuses);
        db.append(vec![event(at(51), &reading("a", 0.0))])
            .await
            .expect("append");
        let after = db
            .view_row("sensor_stats", "a")
            .await
            .expect("row")
            .expect("a row");
        assert_eq!(after.value["readings"], 26);
        assert_eq!(after.value["coldest"], 0.0);
        node.shutdown().await.expect("shutdown");
    });
}

/// One generated event: a reading, a scan or bytes no view decodes.
#[derive(Debug, Clone)]
enum Generated {
    Reading(u8, f64),
    Entry(u8, i64),
    Scan(u8, u8),
    Garbage,
}

impl Generated {
    fn data(&self) -> Vec<u8> {
        match self {
            Generated::Reading(sensor, celsius) => {
                serde_json::to_vec(&reading(&format!("s{sensor}"), *celsius))
            }
            Generated::Entry(account, amount) => serde_json::to_vec(&Entry {
                account: *account,
                amount: *amount,
            }),
            Generated::Scan(parcel, place) => {
                serde_json::to_vec(&scan(u32::from(*parcel), &format!("place{place}")))
            }
            Generated::Garbage => serde_json::to_vec(&json!({"unrelated": true})),
        }
        .expect("serialises")
    }
}

/// Floats whose sum depends on the order it is taken in: decimals, mixed
/// magnitudes, negatives and both zeros.
fn celsius() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(-0.0),
        (-40..40_i32).prop_map(|tenths| f64::from(tenths) * 0.1),
        (-9..9_i32).prop_map(|n| f64::from(n) * 1e8 + 0.3),
        (-999..999_i32).prop_map(|n| f64::from(n) * 1e-3),
    ]
}

/// Integers whose saturating sum depends on order: near either bound.
fn amount() -> impl Strategy<Value = i64> {
    prop_oneof![
        (0..1_000_i64).prop_map(|n| i64::MAX - n),
        (0..1_000_i64).prop_map(|n| i64::MIN + n),
        -1_000..1_000_i64,
    ]
}

fn generated() -> impl Strategy<Value = Generated> {
    prop_oneof![
        (0..3_u8, celsius()).prop_map(|(s, c)| Generated::Reading(s, c)),
        (0..2_u8, amount()).prop_map(|(a, n)| Generated::Entry(a, n)),
        (0..3_u8, 0..9_u8).prop_map(|(p, q)| Generated::Scan(p, q)),
        Just(Generated::Garbage),
    ]
}

/// Events with distinct ids (times spread over a minute, so many arrive
/// backdated), split between two nodes, each delivered in its own order.
/// Events (id, bytes, whether node A takes it) and each node's order.
type Scenario = (Vec<(EventId, Vec<u8>, bool)>, Vec<usize>, Vec<usize>);

fn scenario() -> impl Strategy<Value = Scenario> {
    prop::collection::btree_map(0..60_000_u64, (generated(), any::<bool>()), 1..80).prop_flat_map(
        |events| {
            let events: Vec<(EventId, Vec<u8>, bool)> = events
                .into_iter()
                .map(|(ms, (generated, on_a))| (at(ms), generated.data(), on_a))
                .collect();
            let count = events.len();
            let order: Vec<usize> = (0..count).collect();
            (
                Just(events),
                Just(order.clone()).prop_shuffle(),
                Just(order).prop_shuffle(),
            )
        },
    )
}

#[test]
fn two_nodes_fed_in_different_orders_hold_the_same_views() {
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 24,
        rng_seed: RngSeed::Fixed(0x71e3_5eed),
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let runtime = runtime();
    runner
        .run(&scenario(), |(events, order_a, order_b)| {
            runtime.block_on(async {
                let a = Api::new().await;
                let b = Api::new().await;
                a.create("fleet").await;
                b.create("fleet").await;
                let db_a = a.node.database("fleet").expect("database");
                let db_b = b.node.database("fleet").expect("database");
                // Each node takes its own writes, a few at a time, in its order.
                for (api, db, order, mine) in
                    [(&a, &db_a, &order_a, true), (&b, &db_b, &order_b, false)]
                {
                    for chunk in order.chunks(7) {
                        let batch: Vec<NewEvent> = chunk
                            .iter()
                            .map(|index| &events[*index])
                            .filter(|(_, _, on_a)| *on_a == mine)
                            .map(|(id, data, _)| NewEvent::with_id(*id, data.clone()))
                            .collect();
                        if !batch.is_empty() {
                            db.append(batch).await.expect("append");
                        }
                        // Views are read between writes, to fold as events come.
                        let _ = rows_of(api, "route").await;
                    }
                }
                // Then each gets the other's events as sync delivers them:
                // in the other's log order, in pages.
                let feed_a = read_feed(&db_a, 1_000).await;
                let feed_b = read_feed(&db_b, 1_000).await;
                for page in feed_b.chunks(5) {
                    db_a.merge(page.to_vec()).await.expect("merge");
                }
                for page in feed_a.chunks(9) {
                    db_b.merge(page.to_vec()).await.expect("merge");
                }
                assert_views_match_model(&a).await;
                assert_views_match_model(&b).await;
                for view in VIEWS {
                    assert_eq!(
                        rows_of(&a, view).await.to_string(),
                        rows_of(&b, view).await.to_string(),
                        "{view}"
                    );
                }
            });
            Ok(())
        })
        .expect("every case holds");
}

/// Rewrites the stored position of a view of a stopped node: its
/// fingerprint moved by `fingerprint_delta`, its count of folded events set.
fn rewrite_position(dir: &std::path::Path, view: &str, fingerprint_delta: u64, folded: u64) {
    edit_position(
        dir,
        view,
        |stored| stored.wrapping_add(fingerprint_delta),
        folded,
    );
}

/// Rewrites the stored position of a view of a stopped node: its
/// fingerprint through `fingerprint`, its count of folded events set.
fn edit_position(
    dir: &std::path::Path,
    view: &str,
    fingerprint: impl FnOnce(u64) -> u64,
    folded: u64,
) {
    let db = fjall::Database::builder(dir).open().expect("open fjall");
    let rows = db
        .keyspace(
            &format!("fleet.view.{view}"),
            fjall::KeyspaceCreateOptions::default,
        )
        .expect("the view's keyspace");
    let mut position = rows.get(b"p").expect("read").expect("a position").to_vec();
    let stored = u64::from_be_bytes(position[16..24].try_into().expect("8 bytes"));
    position[16..24].copy_from_slice(&fingerprint(stored).to_be_bytes());
    position[24..32].copy_from_slice(&folded.to_be_bytes());
    rows.insert(b"p", position).expect("write");
    db.persist(fjall::PersistMode::SyncAll).expect("persist");
}

#[test]
fn a_view_resumes_as_stored_and_rebuilds_when_its_definition_changes() {
    let dir = tempfile::tempdir().expect("dir");
    let runtime = runtime();
    let readings: Vec<NewEvent> = (1..=40)
        .map(|ms| {
            event(
                at(ms),
                &reading(if ms % 3 == 0 { "a" } else { "b" }, ms as f64),
            )
        })
        .collect();
    let rows = runtime.block_on(async {
        let node = Node::open(Config::new(dir.path())).await.expect("open");
        let db = node.create_database("fleet").await.expect("database");
        db.append(readings).await.expect("append");
        let rows = db
            .view_rows("sensor_stats", None, None)
            .await
            .expect("rows");
        node.shutdown().await.expect("shutdown");
        rows
    });
    let status = |dir: &std::path::Path| {
        runtime.block_on(async {
            let node = Node::open(Config::new(dir)).await.expect("open");
            let db = node.database("fleet").expect("database");
            let statuses = db.view_statuses().await.expect("statuses");
            let now = db
                .view_rows("sensor_stats", None, None)
                .await
                .expect("rows");
            node.shutdown().await.expect("shutdown");
            let status = statuses
                .into_iter()
                .find(|s| s.view == "sensor_stats")
                .expect("listed");
            (status, now)
        })
    };
    // Same definition: the stored position is taken as it is (nothing is
    // folded again, so the planted count stays).
    rewrite_position(dir.path(), "sensor_stats", 0, 999_999);
    let (resumed, now) = status(dir.path());
    assert_eq!((resumed.folded, now.clone()), (999_999, rows.clone()));
    // A changed definition: the view starts over and folds every event.
    rewrite_position(dir.path(), "sensor_stats", 1, 999_999);
    let (rebuilt, now) = status(dir.path());
    assert_eq!(
        (rebuilt.folded, rebuilt.lc, now.clone()),
        (40, 40, rows.clone())
    );
    // A position stored under the bare definition hash, as the release
    // whose sums kept the field's type (state format 1) stored it: the
    // state format is part of the fingerprint, so the view is rebuilt
    // rather than misread.
    let bare = <SensorStats as laterbase::View>::FINGERPRINT;
    edit_position(dir.path(), "sensor_stats", |_| bare, 999_999);
    let (rebuilt, now) = status(dir.path());
    assert_eq!((rebuilt.folded, rebuilt.lc, now), (40, 40, rows));
}

#[tokio::test]
async fn a_conflict_winner_from_a_peer_replaces_the_folded_loser() {
    let api = Api::new().await;
    api.create("fleet").await;
    let db = api.node.database("fleet").expect("database");
    let id = at(7);
    db.append(vec![
        event(at(1), &reading("dock-1", 5.0)),
        NewEvent::with_id(id, br#"{"sensor":"dock-1","celsius":30.0}"#.to_vec()),
    ])
    .await
    .expect("append");
    assert_views_match_model(&api).await;
    // A peer stored the same id with smaller bytes: they win everywhere.
    let theirs = laterbase::Event {
        id,
        lc: 1,
        recorded_at: laterbase::Timestamp(1),
        data: bytes::Bytes::from_static(br#"{"celsius":-3.0,"sensor":"dock-1"}"#),
    };
    let receipt = db.merge(vec![theirs]).await.expect("merge");
    assert_eq!(receipt.conflicts, 1);
    let (_, row) = api.get("/fleet/sensor_stats?key=dock-1").await;
    assert_eq!(
        (&row["value"]["coldest"], &row["value"]["latest"]),
        (&json!(-3.0), &json!(-3.0))
    );
    assert_views_match_model(&api).await;
}

/// A stored event rewritten in place: the same id, other bytes (which won
/// a conflict), as a peer's merge brings it.
fn rewritten(id: EventId, data: &str) -> laterbase::Event {
    laterbase::Event {
        id,
        lc: 1,
        recorded_at: laterbase::Timestamp(1),
        data: bytes::Bytes::from(data.to_owned()),
    }
}

#[test]
fn a_rewrite_of_bytes_refolds_only_the_keys_it_touches() {
    let dir = tempfile::tempdir().expect("dir");
    let runtime = runtime();
    let (reading_id, scan_id) = (at(3), at(6));
    runtime.block_on(async {
        let api = Api::on(Config::new(dir.path()), None).await;
        let db = api.node.create_database("fleet").await.expect("database");
        db.append(vec![
            event(at(1), &reading("a", 1.0)),
            NewEvent::with_id(reading_id, br#"{"sensor":"a","celsius":9.0}"#.to_vec()),
            event(at(4), &reading("c", 4.0)),
            event(at(5), &scan(1, "ship")),
            NewEvent::with_id(scan_id, br#"{"parcel":2,"place":"dock"}"#.to_vec()),
            event(at(8), &scan(1, "truck")),
            event(at(9), &scan(2, "port")),
        ])
        .await
        .expect("append");
        assert_views_match_model(&api).await;
        api.node.shutdown().await.expect("shutdown");
    });
    // Planted counts show whether a view folds everything again.
    rewrite_position(dir.path(), "sensor_stats", 0, 999_999);
    rewrite_position(dir.path(), "route", 0, 999_999);
    runtime.block_on(async {
        let api = Api::on(Config::new(dir.path()), None).await;
        let db = api.node.database("fleet").expect("database");
        let folded = |db: Database| async move {
            (
                status_of(&db, "sensor_stats").await.folded,
                status_of(&db, "route").await.folded,
            )
        };
        // The same bytes, stored earlier elsewhere: recorded_at moves, the
        // views' input does not.
        let same = rewritten(reading_id, r#"{"sensor":"a","celsius":9.0}"#);
        assert_eq!(db.merge(vec![same]).await.expect("merge").updated, 1);
        assert_eq!(folded(db.clone()).await, (999_999, 999_999));
        // Smaller bytes win, and move each event to another key: a reading
        // from sensor a to b, a scan from parcel 2 to 1, before its truck.
        let receipt = db
            .merge(vec![
                rewritten(reading_id, r#"{"celsius":2.0,"sensor":"b"}"#),
                rewritten(scan_id, r#"{"parcel":1,"place":"gate"}"#),
            ])
            .await
            .expect("merge");
        assert_eq!(receipt.conflicts, 2);
        assert_views_match_model(&api).await;
        assert_eq!(
            folded(db.clone()).await,
            (999_999, 999_999),
            "neither view was rebuilt"
        );
        let (_, route) = api.get("/fleet/route?key=1").await;
        assert_eq!(route["value"]["places"], json!(["ship", "gate", "truck"]));
        let (_, stats) = api.get("/fleet/sensor_stats?key=a").await;
        assert_eq!(stats["value"]["readings"], json!(1));
        // An id with as many losers as are listed for one: the form a view
        // folded may be missing from the list, so the view is rebuilt.
        for spaces in 1..laterbase::limits::LOSERS_PER_ID_MAX {
            let smaller = format!(r#"{{{}"celsius":2.0,"sensor":"b"}}"#, " ".repeat(spaces));
            db.merge(vec![rewritten(reading_id, &smaller)])
                .await
                .expect("merge");
        }
        assert_views_match_model(&api).await;
        assert_eq!(
            folded(db.clone()).await,
            (3, 4),
            "both views were rebuilt from their 3 readings and 4 scans"
        );
        api.node.shutdown().await.expect("shutdown");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_rewrites_than_one_refold_takes_leave_every_view_right() {
    let api = Api::new().await;
    api.create("fleet").await;
    let db = api.node.database("fleet").expect("database");
    // Scans for the custom fold, readings for the declarative views.
    let count = 2 * laterbase::limits::VIEW_REWRITES_REFOLD_MAX as u64 + 10;
    let form = |n: u64, winner: bool| match (n % 2, winner) {
        (0, false) => format!(r#"{{"parcel":{},"place":"p{n}"}}"#, 5 + n % 3),
        (0, true) => format!(r#"{{"parcel":{},"place":"q{n}"}}"#, 1 + n % 4),
        (_, false) => format!(r#"{{"sensor":"s{}","celsius":{n}.5}}"#, n % 3),
        (_, true) => format!(r#"{{"celsius":-{n}.25,"sensor":"t{}"}}"#, n % 4),
    };
    let events: Vec<NewEvent> = (1..=count)
        .map(|n| NewEvent::with_id(at(n), form(n, false).into_bytes()))
        .collect();
    db.append(events).await.expect("append");
    assert_views_match_model(&api).await;
    // Every event moves to another key, with smaller bytes: more rewrites
    // than one refold takes, in one commit.
    let winners: Vec<laterbase::Event> = (1..=count)
        .map(|n| rewritten(at(n), &form(n, true)))
        .collect();
    let receipt = db.merge(winners).await.expect("merge");
    assert_eq!(receipt.conflicts, count);
    assert_views_match_model(&api).await;
}

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

/// The issue's case, made small: the same events in two arrival orders.
/// Summed as they arrive, (0.1 + 0.2) + 0.3 is 0.6000000000000001 and
/// (0.3 + 0.2) + 0.1 is 0.6; `i64::MAX + 1 - 1` saturates one way and not
/// the other; `min` by `<` keeps whichever of `0.0` and `-0.0` came first.
#[tokio::test]
async fn two_orders_of_the_same_events_give_bit_identical_rows() {
    let entry = |amount| Entry { account: 1, amount };
    let events = vec![
        event(at(1), &reading("dock-1", 0.1)),
        event(at(2), &reading("dock-1", 0.2)),
        event(at(3), &reading("dock-1", 0.3)),
        event(at(4), &reading("dock-2", 0.0)),
        event(at(5), &reading("dock-2", -0.0)),
        event(at(6), &entry(i64::MAX)),
        event(at(7), &entry(1)),
        event(at(8), &entry(-1)),
    ];
    let mut seen = Vec::new();
    for reversed in [false, true] {
        let api = Api::new().await;
        api.create("fleet").await;
        let db = api.node.database("fleet").expect("database");
        let mut order = events.clone();
        if reversed {
            order.reverse();
        }
        for one in order {
            db.append(vec![one]).await.expect("append");
        }
        assert_views_match_model(&api).await;
        seen.push((
            rows_of(&api, "sensor_stats").await,
            rows_of(&api, "ledger").await,
        ));
    }
    let text = |(stats, ledger): &(serde_json::Value, serde_json::Value)| {
        (stats.to_string(), ledger.to_string())
    };
    assert_eq!(text(&seen[0]), text(&seen[1]));
    let (stats, ledger) = &seen[0];
    // The exact sum, rounded once; the total order of floats; the exact
    // integer total, saturated only when shown.
    assert_eq!(stats[0]["value"]["total"].to_string(), "0.6");
    assert_eq!(stats[1]["value"]["coldest"].to_string(), "-0.0");
    assert_eq!(stats[1]["value"]["hottest"].to_string(), "0.0");
    assert_eq!(stats[1]["value"]["total"].to_string(), "0.0");
    assert_eq!(ledger[0]["value"]["balance"], json!(i64::MAX));
}

/// The status of `view` on `db`.
async fn status_of(db: &Database, view: &str) -> laterbase::ViewStatus {
    db.view_statuses()
        .await
        .expect("statuses")
        .into_iter()
        .find(|status| status.view == view)
        .expect("listed")
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

#[tokio::test]
async fn a_refold_reads_a_long_key_in_pages() {
    let api = Api::new().await;
    api.create("fleet").await;
    let db = api.node.database("fleet").expect("database");
    // More of one key's events than a refold reads at a time.
    let count = laterbase::limits::VIEW_REFOLD_PAGE_ENTRIES as u64 * 2 + 3;
    let scans: Vec<NewEvent> = (0..count)
        .map(|n| event(at(10 + n), &scan(3, &format!("p{n}"))))
        .collect();
    db.append(scans).await.expect("append");
    // Before every one of them, and before every checkpoint.
    db.append(vec![event(at(1), &scan(3, "first"))])
        .await
        .expect("append");
    assert_views_match_model(&api).await;
    let (_, route) = api.get("/fleet/route?key=3").await;
    assert_eq!(route["value"]["scans"], json!(count + 1));
    assert_eq!(route["value"]["places"][0], "first");
}
