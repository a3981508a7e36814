//! `views`: views measured through a node. A million readings of 100
//! sensors are stored; then the time `SensorStats` takes to fold them all
//! from nothing (its keyspace dropped while the node is down), the cost of
//! one backdated event into a million-event view (with `first`/`last`, and
//! with a custom fold), and the latency of a key read right after a write
//! and of a whole-view read.

use std::path::Path;
use std::time::{Duration, Instant};

use laterbase::{Config, Database, EventId, NewEvent, Node, view};
use laterbase_bench::{fresh_dir, thousands};
use serde::{Deserialize, Serialize};

const SENSORS: u64 = 100;
/// The first event's time; one event per millisecond after it.
const START_MS: u64 = 1_750_000_000_000;

#[derive(Deserialize)]
struct Reading {
    sensor: String,
    celsius: f64,
}

/// The contract's view, on the `readings` database.
#[view(db = "readings", event = Reading, key = sensor)]
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

/// A custom fold over the same readings on the `trails` database: the
/// last three readings of each sensor, which depends on order.
#[view(db = "trails", event = Reading, key = sensor, fold = Trail::apply)]
#[derive(Default, Serialize, Deserialize)]
struct Trail {
    recent: Vec<f64>,
    readings: u64,
}

impl Trail {
    fn apply(&mut self, _id: EventId, reading: &Reading) {
        self.recent.push(reading.celsius);
        if self.recent.len() > 3 {
            self.recent.remove(0);
        }
        self.readings += 1;
    }
}

fn reading(n: u64) -> NewEvent {
    let data = format!(
        r#"{{"sensor":"s{}","celsius":{}.5}}"#,
        n % SENSORS,
        (n * 7) % 60
    );
    NewEvent::with_id(EventId::from_parts(START_MS + n, u128::from(n)), data)
}

async fn load(db: &Database, events: u64) {
    for start in (0..events).step_by(1_000) {
        let batch = (start..(start + 1_000).min(events)).map(reading).collect();
        db.append(batch).await.expect("append");
    }
}

/// Waits until `view` of `db` has folded every stored event; the time.
async fn caught_up(db: &Database, view: &str) -> Duration {
    let start = Instant::now();
    loop {
        match db.view_statuses().await {
            Ok(statuses) if statuses.iter().any(|s| s.view == view && s.lc == db.lc()) => {
                return start.elapsed();
            }
            // The query's wait ran out while the view folds: ask again.
            Ok(_) | Err(laterbase::Error::Unavailable(_)) => {}
            Err(error) => panic!("view status: {error}"),
        }
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Appends one event backdated behind the newest three events of its key,
/// then reads its row, which waits until the view has folded it: the
/// append's time, and the read's.
async fn backdated(db: &Database, view: &str, events: u64, round: u64) -> (Duration, Duration) {
    // Sensor s7's events are every 100th; go behind its newest `behind`.
    let behind = 3;
    let newest_of_key = events - SENSORS + 7;
    let time = START_MS + newest_of_key - behind * SENSORS - 1;
    let id = EventId::from_parts(time, u128::from(round) + (1 << 100));
    let event = NewEvent::with_id(id, r#"{"sensor":"s7","celsius":-40.0}"#);
    let start = Instant::now();
    db.append(vec![event]).await.expect("append");
    let appended = start.elapsed();
    let start = Instant::now();
    let row = db.view_row(view, "s7").await.expect("row");
    let read = start.elapsed();
    assert!(row.is_some(), "the row exists");
    (appended, read)
}

/// Runs the views workload over `events` stored events.
pub fn run(events: u64, parent: Option<&Path>) {
    let dir = fresh_dir(parent);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let node = Node::open(Config::new(dir.path())).await.expect("open");
        let readings = node.create_database("readings").await.expect("database");
        let trails = node.create_database("trails").await.expect("database");
        load(&readings, events).await;
        load(&trails, events).await;
        caught_up(&readings, "sensor_stats").await;
        caught_up(&trails, "trail").await;
        node.shutdown().await.expect("shutdown");
    });
    // Drop the view's keyspace: the node starts it from nothing.
    {
        let db = fjall::Database::builder(dir.path()).open().expect("fjall");
        let keyspace = db
            .keyspace(
                "readings.view.sensor_stats",
                fjall::KeyspaceCreateOptions::default,
            )
            .expect("keyspace");
        db.delete_keyspace(keyspace).expect("delete");
    }
    runtime.block_on(async {
        let node = Node::open(Config::new(dir.path())).await.expect("reopen");
        let readings = node.database("readings").expect("database");
        let trails = node.database("trails").expect("database");
        let catch_up = caught_up(&readings, "sensor_stats").await;
        println!("views over {events} stored events of {SENSORS} sensors, through a node");
        println!(
            "  SensorStats folds them from nothing  {:>9.3} s   {:>12} events/s",
            catch_up.as_secs_f64(),
            thousands(events as f64 / catch_up.as_secs_f64())
        );

        // The view folds the event as soon as it is durable, often before
        // the append's answer is back: the whole path, append to answer,
        // bounds what the backdated event cost.
        let (mut appends, mut first_last, mut custom) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..21 {
            let (appended, read) = backdated(&readings, "sensor_stats", events, round).await;
            appends.push(appended);
            first_last.push(appended + read);
            let (appended, read) = backdated(&trails, "trail", events, round).await;
            appends.push(appended);
            custom.push(appended + read);
        }
        println!(
            "  one backdated event, append to row   {:>9.3} ms  first/last (median of 21)",
            median(first_last).as_secs_f64() * 1e3
        );
        println!(
            "  one backdated event, append to row   {:>9.3} ms  custom fold, 3 newer events of its key",
            median(custom).as_secs_f64() * 1e3
        );
        println!(
            "    of which the durable append        {:>9.3} ms",
            median(appends).as_secs_f64() * 1e3
        );

        let mut after_write = Vec::new();
        let mut key_only = Vec::new();
        let mut whole = Vec::new();
        for n in 0..101 {
            readings
                .append(vec![reading(events + 1_000 + n)])
                .await
                .expect("append");
            let start = Instant::now();
            readings.view_row("sensor_stats", "s3").await.expect("row");
            after_write.push(start.elapsed());
            let start = Instant::now();
            readings.view_row("sensor_stats", "s3").await.expect("row");
            key_only.push(start.elapsed());
            let start = Instant::now();
            let (rows, _) = readings
                .view_rows("sensor_stats", None, None)
                .await
                .expect("rows");
            whole.push(start.elapsed());
            assert_eq!(rows.len(), SENSORS as usize);
        }
        println!(
            "  key read right after a write         {:>9.3} ms  (median of 101)",
            median(after_write).as_secs_f64() * 1e3
        );
        println!(
            "  key read                             {:>9.3} ms",
            median(key_only).as_secs_f64() * 1e3
        );
        println!(
            "  whole-view read, {SENSORS} rows            {:>9.3} ms",
            median(whole).as_secs_f64() * 1e3
        );
        node.shutdown().await.expect("shutdown");
    });
}
