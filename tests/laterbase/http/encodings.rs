//! What events carry on the way in and out: JSON data read back byte for
//! byte, and the binary encoding of batches and pages.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use laterbase::http::binary;
use laterbase::{EventId, NewEvent};
use serde_json::{Value, json};

use super::Api;

#[tokio::test]
async fn data_reads_back_byte_for_byte() {
    let api = Api::new().await;
    api.create("s").await;
    let values = [
        r#"{ "b" :1, "a": [1.0e10, -0, "\u00e9\n"] }"#,
        "1.50",
        "\"caf\u{e9}\"",
        "null",
        "[ ]",
    ];
    for value in values {
        let (status, _) = api.post("/db/s/e", &format!("{{\"data\":{value}}}")).await;
        assert_eq!(status, StatusCode::OK, "{value}");
    }
    let (_, body) = api
        .send(
            Request::get("/db/s/e")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    let text = std::str::from_utf8(&body).expect("utf-8");
    for value in values {
        assert!(
            text.contains(&format!("\"data\":{value},")),
            "{value} verbatim in {text}"
        );
    }
}

#[tokio::test]
async fn binary_batches_write_and_read() {
    let api = Api::new().await;
    api.create("s").await;
    let id = EventId::from_parts(1_700_000_000_000, 3);
    let events = vec![
        NewEvent::with_id(id, &b"\x00\xffraw"[..]),
        NewEvent::new(&b"{\"json\":true}"[..]),
    ];
    let request = Request::post("/db/s/e")
        .header("content-type", binary::CONTENT_TYPE)
        .body(Body::from(binary::encode_batch(&events)))
        .expect("request");
    let (status, body) = api.send(request).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    let (_, page) = api.get("/db/s/e").await;
    assert_eq!(
        page["events"][0]["data_b64"], "AP9yYXc=",
        "bytes that are not JSON read back as base64"
    );
    assert!(page["events"][0].get("data").is_none());
    assert_eq!(page["events"][1]["data"], json!({"json": true}));

    let request = Request::get("/db/s/e?lc=0")
        .header("accept", binary::CONTENT_TYPE)
        .body(Body::empty())
        .expect("request");
    let (status, body) = api.send(request).await;
    assert_eq!(status, StatusCode::OK);
    let page = binary::decode_page(&body).expect("a binary page");
    assert_eq!((page.lc, page.more, page.events.len()), (2, false, 2));
    assert_eq!(page.events[0].id, id);
    assert_eq!(&page.events[0].data[..], b"\x00\xffraw");

    let truncated = binary::encode_batch(&events).slice(..10);
    let request = Request::post("/db/s/e")
        .header("content-type", binary::CONTENT_TYPE)
        .body(Body::from(truncated))
        .expect("request");
    let (status, _) = api.send(request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let request = Request::post("/db/s/e")
        .header("content-type", "text/csv")
        .body(Body::from("a,b"))
        .expect("request");
    let (status, body) = api.send(request).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).expect("json")["error"],
        "unsupported_media_type"
    );
}
