//! Stored events rewritten in place by a peer's merge (a conflict's
//! winner): the views fold the winner instead of the loser, refold only
//! the keys the rewrite touches, and stay right when one commit rewrites
//! more than one refold takes.

use laterbase::{Config, Database, EventId, NewEvent};
use serde_json::json;

use super::{assert_views_match_model, at, event, reading, rewrite_position, scan, status_of};
use crate::http::Api;
use crate::support::runtime;

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
