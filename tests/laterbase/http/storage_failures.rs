//! A storage that fails under the node: a full disk refuses writes with
//! `507` while reads go on, a failed fsync or background write answers
//! `503` from then on.

use axum::body::Body;
use axum::http::StatusCode;
use laterbase::{Config, EngineWrite};

use super::{Api, assert_error};

#[tokio::test]
async fn a_full_disk_refuses_writes_with_507_and_reads_go_on() {
    let storage = laterbase::MemoryStorage::new();
    let api = Api::on(Config::memory(storage.clone()), None).await;
    api.create("s").await;
    api.post("/db/s/e", "{\"data\": 1}").await;
    storage.fill_disk();
    assert_error(
        &api.post("/db/s/e", "{\"data\": 2}").await,
        StatusCode::INSUFFICIENT_STORAGE,
        "insufficient_storage",
    );
    assert_error(
        &api.post("/db/s/e", "{\"data\": 3}").await,
        StatusCode::INSUFFICIENT_STORAGE,
        "insufficient_storage",
    );
    let (status, page) = api.get("/db/s/e").await;
    assert_eq!(status, StatusCode::OK, "reads go on");
    assert_eq!(page["events"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_failed_fsync_answers_503_from_then_on() {
    let storage = laterbase::MemoryStorage::new();
    let api = Api::on(Config::memory(storage.clone()), None).await;
    api.create("s").await;
    storage.fail_next_persist();
    assert_error(
        &api.post("/db/s/e", "{\"data\": 1}").await,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
    );
    assert_error(
        &api.post("/db/s/e", "{\"data\": 2}").await,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
    );
    assert_eq!(api.get("/db/s").await.1["lc"], 0);
}

#[tokio::test]
async fn a_full_disk_met_by_a_background_flush_answers_507_and_reads_go_on() {
    let storage = laterbase::MemoryStorage::new();
    let api = Api::on(Config::memory(storage.clone()), None).await;
    api.create("s").await;
    api.post("/db/s/e", "{\"data\": 1}").await;
    // fjall fails a flush in the background and says only that the store
    // is poisoned: the refusal still names the full disk and the flush.
    storage.fail_in_background(EngineWrite::Flush, std::io::ErrorKind::StorageFull);
    for _ in 0..2 {
        let refused = api.post("/db/s/e", "{\"data\": 2}").await;
        assert_error(
            &refused,
            StatusCode::INSUFFICIENT_STORAGE,
            "insufficient_storage",
        );
        let message = refused.1["message"].as_str().unwrap_or_default();
        assert!(message.contains("a background flush failed"), "{message}");
    }
    let (status, _) = api.call("PUT", "/db/t", Body::empty()).await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "a new database");
    let (status, page) = api.get("/db/s/e").await;
    assert_eq!(status, StatusCode::OK, "reads go on");
    assert_eq!(page["events"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_background_compaction_that_fails_on_a_disk_with_room_answers_503() {
    let storage = laterbase::MemoryStorage::new();
    let api = Api::on(Config::memory(storage.clone()), None).await;
    api.create("s").await;
    storage.fail_in_background(EngineWrite::Compaction, std::io::ErrorKind::Other);
    assert_error(
        &api.post("/db/s/e", "{\"data\": 1}").await,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
    );
}
