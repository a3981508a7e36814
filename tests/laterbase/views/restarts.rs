//! Views across a restart: they resume from their stored position without
//! folding again, and start over when their definition (or the format of
//! their state) changed.

use laterbase::{Config, NewEvent, Node};

use super::{SensorStats, at, edit_position, event, reading, rewrite_position};
use crate::support::runtime;

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
