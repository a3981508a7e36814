//! Subscriptions to a view's rows through the embedding API: every row then
//! each change, the latest value of each row whatever races the catch-up,
//! resumed exactly from the last row seen, one key, backdated events,
//! rewrites by a peer, a rebuild, a stalled reader, and the end when the
//! node shuts down. The views are those `views.rs` declares on `fleet`.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use laterbase::{Config, Database, Error, Event, EventId, LiveRow, NewEvent, Node, Timestamp};
use serde_json::{Value, json};

/// How long a test waits for a row it expects before it fails, rather
/// than hang: never reached when the node is right.
const PATIENCE: Duration = Duration::from_secs(60);

fn reading(sensor: &str, celsius: f64) -> NewEvent {
    NewEvent::new(json!({"sensor": sensor, "celsius": celsius}).to_string())
}

fn at(ms: u64) -> EventId {
    EventId::from_parts(1_700_000_000_000 + ms, u128::from(ms))
}

async fn fleet() -> (Node, Database) {
    let node = Node::open(Config::in_memory()).await.expect("open");
    let db = node.create_database("fleet").await.expect("created");
    (node, db)
}

/// The next row of `rows`, within [`PATIENCE`].
async fn next_row(rows: &mut (impl Stream<Item = laterbase::Result<LiveRow>> + Unpin)) -> LiveRow {
    tokio::time::timeout(PATIENCE, rows.next())
        .await
        .expect("a row in time")
        .expect("the stream goes on")
        .expect("a row")
}

/// `(key, readings)` of a row of `sensor_stats`.
fn readings(row: &LiveRow) -> (String, u64) {
    let key = row.key.as_str().expect("a sensor").to_owned();
    let value = row.value.as_ref().expect("a value");
    (key, value["readings"].as_u64().expect("a count"))
}

/// Every row of `view` as the view answers it now.
async fn rows_now(db: &Database, view: &str) -> BTreeMap<String, Value> {
    let (rows, more) = db.view_rows(view, None, None).await.expect("rows");
    assert!(!more);
    rows.into_iter()
        .map(|row| (row.key.to_string(), row.value))
        .collect()
}

/// Reads `rows` until the latest value of each key (a row handed out
/// without one is gone) is what `expected` holds, and returns how many rows
/// that took.
async fn read_until(
    rows: &mut (impl Stream<Item = laterbase::Result<LiveRow>> + Unpin),
    latest: &mut BTreeMap<String, Value>,
    expected: &BTreeMap<String, Value>,
) -> usize {
    let mut count = 0;
    while latest != expected {
        let row = next_row(rows).await;
        match row.value {
            Some(value) => latest.insert(row.key.to_string(), value),
            None => latest.remove(&row.key.to_string()),
        };
        count += 1;
    }
    count
}

#[tokio::test]
async fn a_view_subscription_sends_every_row_then_each_change() {
    let (node, db) = fleet().await;
    db.append(vec![
        reading("c", 1.0),
        reading("a", 2.0),
        reading("b", 3.0),
    ])
    .await
    .expect("appended");
    let mut rows = Box::pin(
        db.subscribe_view("sensor_stats", None, None)
            .expect("a view"),
    );
    let first: Vec<LiveRow> = vec![
        next_row(&mut rows).await,
        next_row(&mut rows).await,
        next_row(&mut rows).await,
    ];
    let seen: Vec<_> = first.iter().map(readings).collect();
    assert_eq!(
        seen,
        [("a".into(), 1), ("b".into(), 1), ("c".into(), 1)],
        "every row, in key order, over every event durable at the call"
    );
    assert!(first.iter().all(|row| row.lc == 3), "{first:?}");
    assert_eq!(
        first.iter().map(|row| row.resume_lc).collect::<Vec<_>>(),
        [0, 0, 3],
        "a reader may resume from 3 once the last row is out"
    );
    db.append(vec![reading("b", 4.0)]).await.expect("appended");
    let changed = next_row(&mut rows).await;
    assert_eq!(readings(&changed), ("b".into(), 2));
    assert_eq!((changed.lc, changed.resume_lc), (4, 4));
    assert_eq!(changed.value.expect("a value")["hottest"], json!(4.0));
    // A row that appears for the first time is a change like any other.
    db.append(vec![reading("d", 5.0)]).await.expect("appended");
    assert_eq!(readings(&next_row(&mut rows).await), ("d".into(), 1));
    node.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_changed_by_writes_racing_the_catch_up_end_with_their_latest_value() {
    let (node, db) = fleet().await;
    let batch = |start: usize| -> Vec<NewEvent> {
        (start..start + 20)
            .map(|n| reading(&format!("s{}", n % 37), n as f64))
            .collect()
    };
    for start in (0..2_000).step_by(20) {
        db.append(batch(start)).await.expect("appended");
    }
    let mut rows = Box::pin(
        db.subscribe_view("sensor_stats", None, None)
            .expect("a view"),
    );
    let racing = {
        let db = db.clone();
        tokio::spawn(async move {
            for start in (2_000..4_000).step_by(20) {
                db.append(batch(start)).await.expect("appended");
            }
        })
    };
    let mut seen = Vec::new();
    let mut latest = BTreeMap::new();
    let mut record = |row: LiveRow| {
        latest.insert(row.key.to_string(), row.value.clone().expect("a value"));
        seen.push(row);
    };
    // The catch-up, read while the writes go on.
    for _ in 0..37 {
        record(next_row(&mut rows).await);
    }
    racing.await.expect("the writer");
    let expected = rows_now(&db, "sensor_stats").await;
    while latest != expected {
        let row = next_row(&mut rows).await;
        latest.insert(row.key.to_string(), row.value.clone().expect("a value"));
        seen.push(row);
    }
    // Each value is the view's as of the lc it names: the readings of its
    // sensor stored up to that lc.
    let log = db.changes(0, 4_000).await.expect("the log");
    assert_eq!(log.events.len(), 4_000);
    let sensors: Vec<String> = log
        .events
        .iter()
        .map(|event| {
            let reading: Value = serde_json::from_slice(&event.data).expect("json");
            reading["sensor"].as_str().expect("a sensor").to_owned()
        })
        .collect();
    for row in &seen {
        let (sensor, count) = readings(row);
        let lc = usize::try_from(row.lc).expect("an lc");
        let stored = sensors.iter().take(lc).filter(|s| **s == sensor).count();
        assert_eq!(count, stored as u64, "{sensor} at lc {}", row.lc);
    }
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_view_subscription_resumes_with_exactly_the_rows_changed_after_it() {
    let (node, db) = fleet().await;
    db.append(vec![
        reading("a", 1.0),
        reading("b", 2.0),
        reading("c", 3.0),
    ])
    .await
    .expect("appended");
    let mut rows = Box::pin(
        db.subscribe_view("sensor_stats", None, None)
            .expect("a view"),
    );
    let mut last = next_row(&mut rows).await;
    while last.resume_lc < 3 {
        last = next_row(&mut rows).await;
    }
    drop(rows);
    // While no one reads: b changes and d appears.
    db.append(vec![reading("b", 4.0)]).await.expect("appended");
    db.append(vec![reading("d", 5.0)]).await.expect("appended");
    let mut resumed = Box::pin(
        db.subscribe_view("sensor_stats", Some(last.resume_lc), None)
            .expect("a view"),
    );
    let first = next_row(&mut resumed).await;
    let second = next_row(&mut resumed).await;
    assert_eq!(
        [readings(&first), readings(&second)],
        [("b".into(), 2), ("d".into(), 1)]
    );
    assert_eq!((second.lc, second.resume_lc), (5, 5));
    // And nothing else: the next row is the next change.
    db.append(vec![reading("e", 6.0)]).await.expect("appended");
    assert_eq!(readings(&next_row(&mut resumed).await), ("e".into(), 1));
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_subscription_to_one_key_sees_only_that_row() {
    let (node, db) = fleet().await;
    db.append(vec![
        reading("a", 1.0),
        reading("b", 2.0),
        reading("c", 3.0),
    ])
    .await
    .expect("appended");
    let mut rows = Box::pin(
        db.subscribe_view("sensor_stats", None, Some("b"))
            .expect("a view"),
    );
    let first = next_row(&mut rows).await;
    assert_eq!(readings(&first), ("b".into(), 1));
    assert_eq!((first.lc, first.resume_lc), (3, 3));
    db.append(vec![reading("a", 4.0)]).await.expect("appended");
    db.append(vec![reading("c", 5.0), reading("b", 6.0)])
        .await
        .expect("appended");
    let changed = next_row(&mut rows).await;
    assert_eq!(readings(&changed), ("b".into(), 2));
    assert_eq!(changed.lc, 6);
    // A row not there yet comes once it is.
    let mut absent = Box::pin(
        db.subscribe_view("sensor_stats", None, Some("z"))
            .expect("a view"),
    );
    db.append(vec![reading("y", 7.0)]).await.expect("appended");
    db.append(vec![reading("z", 8.0)]).await.expect("appended");
    let appeared = next_row(&mut absent).await;
    assert_eq!(readings(&appeared), ("z".into(), 1));
    assert_eq!(appeared.lc, 8);
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_subscription_refuses_an_unknown_view_and_a_key_of_another_type() {
    let (node, db) = fleet().await;
    let unknown = db.subscribe_view("no_such_view", None, None).err();
    assert!(
        matches!(unknown, Some(Error::ViewNotFound { .. })),
        "{unknown:?}"
    );
    let wrong = db.subscribe_view("route", None, Some("seven")).err();
    assert!(matches!(wrong, Some(Error::InvalidKey { .. })), "{wrong:?}");
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_backdated_event_changes_its_row_and_the_subscription_shows_it() {
    let (node, db) = fleet().await;
    let scan = |ms: u64, place: &str| {
        NewEvent::with_id(at(ms), json!({"parcel": 7, "place": place}).to_string())
    };
    db.append(vec![scan(1, "farm gate"), scan(5, "ship")])
        .await
        .expect("appended");
    let mut rows = Box::pin(db.subscribe_view("route", None, Some("7")).expect("a view"));
    let first = next_row(&mut rows).await;
    assert_eq!(
        first.value.expect("a value")["places"],
        json!(["farm gate", "ship"])
    );
    // An event from before the others, written late.
    db.append(vec![scan(3, "truck")]).await.expect("appended");
    let changed = next_row(&mut rows).await;
    assert_eq!(changed.key, json!(7));
    assert_eq!(
        changed.value.expect("a value")["places"],
        json!(["farm gate", "truck", "ship"])
    );
    assert_eq!(changed.lc, 3);
    node.shutdown().await.expect("shutdown");
}

/// A stored event's winning form from a peer: the same id, smaller bytes.
fn winner(id: EventId, data: &str) -> Event {
    Event {
        id,
        lc: 1,
        recorded_at: Timestamp(1),
        data: bytes::Bytes::from(data.to_owned()),
    }
}

#[tokio::test]
async fn a_rewrite_by_a_peer_changes_rows_without_moving_the_lc_and_the_subscription_shows_it() {
    let (node, db) = fleet().await;
    db.append(vec![
        NewEvent::with_id(at(1), r#"{"sensor":"a","celsius":5.0}"#),
        NewEvent::with_id(at(2), r#"{"sensor":"b","celsius":30.0}"#),
        NewEvent::with_id(at(3), r#"{"sensor":"c","celsius":9.0}"#),
    ])
    .await
    .expect("appended");
    let mut rows = Box::pin(
        db.subscribe_view("sensor_stats", None, None)
            .expect("a view"),
    );
    for _ in 0..3 {
        next_row(&mut rows).await;
    }
    // The peer's form of the reading of b is smaller, and is of a.
    let receipt = db
        .merge(vec![winner(at(2), r#"{"celsius":-3.0,"sensor":"a"}"#)])
        .await
        .expect("merge");
    assert_eq!((receipt.conflicts, db.lc()), (1, 3), "no lc moved");
    let moved = next_row(&mut rows).await;
    let emptied = next_row(&mut rows).await;
    assert_eq!(moved.key, json!("a"));
    let value = moved.value.expect("a value");
    assert_eq!(
        (&value["readings"], &value["coldest"]),
        (&json!(2), &json!(-3.0))
    );
    assert_eq!(emptied.key, json!("b"));
    assert_eq!(emptied.value, None, "b has no reading left");
    assert_eq!((moved.lc, emptied.lc), (3, 3));
    node.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_that_rebuilds_is_sent_whole_again_once_rebuilt() {
    let (node, db) = fleet().await;
    // More rewrites in one commit than a refold by key takes: the
    // order-insensitive view starts over from its events.
    let count = laterbase::limits::VIEW_REWRITES_REFOLD_MAX as u64 + 10;
    let mut events: Vec<NewEvent> = (1..=count)
        .map(|n| {
            let data = format!(r#"{{"sensor":"s{}","celsius":{n}.5}}"#, n % 3);
            NewEvent::with_id(at(n), data)
        })
        .collect();
    // A row no rewrite touches.
    events.push(reading("u", 1.0));
    db.append(events).await.expect("appended");
    let mut rows = Box::pin(
        db.subscribe_view("sensor_stats", None, None)
            .expect("a view"),
    );
    let mut latest = BTreeMap::new();
    read_until(&mut rows, &mut latest, &rows_now(&db, "sensor_stats").await).await;
    let winners: Vec<Event> = (1..=count)
        .map(|n| {
            winner(
                at(n),
                &format!(r#"{{"celsius":-{n}.25,"sensor":"t{}"}}"#, n % 4),
            )
        })
        .collect();
    db.merge(winners).await.expect("merge");
    // Every row comes again, each with its value after the rebuild: the
    // rows of t0 to t3, and u, which no rewrite named. (The rows of s0 to
    // s2 are gone; a rebuild does not say so.)
    let expected = rows_now(&db, "sensor_stats").await;
    assert_eq!(expected.len(), 5, "{expected:?}");
    let mut after = BTreeMap::new();
    read_until(&mut rows, &mut after, &expected).await;
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_stalled_reader_holds_up_no_write_and_catches_up_with_the_latest_values() {
    let (node, db) = fleet().await;
    for n in 0..10 {
        db.append(vec![reading(&format!("s{n}"), 0.0)])
            .await
            .expect("appended");
    }
    let mut rows = Box::pin(
        db.subscribe_view("sensor_stats", None, None)
            .expect("a view"),
    );
    let first = next_row(&mut rows).await;
    assert_eq!(readings(&first), ("s0".into(), 1));
    // It stops reading; writes go on without it.
    for start in (0..5_000).step_by(500) {
        let events = (start..start + 500)
            .map(|n| reading(&format!("s{}", n % 10), n as f64))
            .collect();
        db.append(events).await.expect("appended");
    }
    assert_eq!(db.lc(), 5_010);
    let mut latest = BTreeMap::from([(first.key.to_string(), first.value.expect("a value"))]);
    let expected = rows_now(&db, "sensor_stats").await;
    let count = read_until(&mut rows, &mut latest, &expected).await;
    // The nine rows of the catch-up it held, then each row once more: the
    // changes came merged, not one message per event.
    assert!(count <= 9 + 2 * 10, "{count} rows");
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_view_subscription_ends_when_the_node_shuts_down() {
    let (node, db) = fleet().await;
    db.append(vec![reading("a", 1.0)]).await.expect("appended");
    let mut rows = Box::pin(
        db.subscribe_view("sensor_stats", None, None)
            .expect("a view"),
    );
    assert_eq!(readings(&next_row(&mut rows).await), ("a".into(), 1));
    // Waiting for a change when the node stops.
    let waiting = tokio::spawn(async move {
        let ended = rows.next().await;
        (ended, rows.next().await.is_none())
    });
    node.shutdown().await.expect("shutdown");
    let (ended, then_nothing) = waiting.await.expect("the reader");
    assert!(
        matches!(ended, Some(Err(Error::Unavailable(_)))),
        "the stream says the node is gone: {ended:?}"
    );
    assert!(then_nothing, "and ends");
}
