//! Views through `#[view]`, the embedding API and the HTTP routes. This
//! module declares the views under test (all on the database `fleet`),
//! snapshot-tests what they fold to, and holds the model every node's
//! views are checked against: the fold of its stored events in id order.
//! Each file beside it tests one part of how a node keeps its views.

use axum::http::StatusCode;
use laterbase::testing::{fold, fold_json};
use laterbase::{Database, EventId, NewEvent, view};
use serde::{Deserialize, Serialize};

use crate::http::Api;
use crate::support::read_feed;

mod backdating;
mod orders;
mod restarts;
mod rewrites;
mod routes;
mod skipped;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Reading {
    sensor: String,
    celsius: f64,
}

/// The contract's example, on the database of these tests.
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

/// The status of `view` on `db`.
async fn status_of(db: &Database, view: &str) -> laterbase::ViewStatus {
    db.view_statuses()
        .await
        .expect("statuses")
        .into_iter()
        .find(|status| status.view == view)
        .expect("listed")
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
