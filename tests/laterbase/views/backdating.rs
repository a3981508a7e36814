//! Events that arrive backdated: only the key they belong to is folded
//! again, in id order, and a key with many events is read in pages.

use laterbase::NewEvent;
use serde_json::json;

use super::{assert_views_match_model, at, event, scan};
use crate::http::Api;

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
