//! Answers that stream: `GET /{db}/{view}` without `limit` sends every row
//! of the view, read from one snapshot a page at a time, so that the node
//! never holds the whole answer in memory: the next page is read only once
//! the reader has taken enough of the ones before that one of the
//! [`VIEW_STREAM_PAGES_BUFFERED`] places is free (its room among the
//! answers held is the handler's, `http::held`).
//!
//! ```text
//! RowPages ─ page ─ JSON ─▶ bounded channel ─▶ body ─▶ client
//!     └─ a read fails: the body ends in an error, and hyper aborts the
//!        connection (never a 200 body that looks complete)
//! ```

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper::body::Frame;
use tokio::sync::mpsc;

use crate::actors::RowPages;
use crate::limits::VIEW_STREAM_PAGES_BUFFERED;

/// A body fed by a task through a bounded channel; an error aborts it.
struct ChannelBody(mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|chunk| chunk.map(Frame::data)))
    }
}

/// `{"db": db, "view": view, "rows": [...]}`, the rows streamed from
/// `pages`.
pub(super) fn view_rows(db: &str, view: &str, pages: RowPages) -> Response {
    let (sender, receiver) = mpsc::channel(VIEW_STREAM_PAGES_BUFFERED);
    let head = format!(
        r#"{{"db":{},"view":{},"rows":["#,
        serde_json::Value::from(db),
        serde_json::Value::from(view)
    );
    tokio::spawn(feed(pages, head, sender, (db.to_owned(), view.to_owned())));
    (
        [(header::CONTENT_TYPE, "application/json")],
        axum::body::Body::new(ChannelBody(receiver)),
    )
        .into_response()
}

/// Sends the answer's head, each page of rows, then its end; or, if a read
/// fails, an error in place of the rest.
async fn feed(
    mut pages: RowPages,
    head: String,
    sender: mpsc::Sender<Result<Bytes, std::io::Error>>,
    (db, view): (String, String),
) {
    if sender.send(Ok(Bytes::from(head))).await.is_err() {
        return;
    }
    let mut first = true;
    loop {
        let chunk = match pages.next_page().await {
            Ok(Some(rows)) => page(&rows, &mut first),
            Ok(None) => {
                // The client may be gone; nothing is left to tell it.
                let _ = sender.send(Ok(Bytes::from_static(b"]}"))).await;
                return;
            }
            Err(error) => Err(std::io::Error::other(error)),
        };
        let failed = chunk.is_err();
        if let Err(error) = &chunk {
            tracing::error!(database = %db, view = %view, %error, "a streamed view read failed; aborting the answer");
        }
        if sender.send(chunk).await.is_err() || failed {
            return;
        }
    }
}

/// One page of rows as JSON, each after a comma but the answer's first.
fn page(rows: &[crate::views::Row], first: &mut bool) -> Result<Bytes, std::io::Error> {
    let mut chunk = Vec::with_capacity(64 * rows.len());
    for row in rows {
        if !std::mem::take(first) {
            chunk.push(b',');
        }
        serde_json::to_writer(&mut chunk, row)?;
    }
    Ok(Bytes::from(chunk))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use http_body_util::BodyExt;

    use crate::actors::RowPages;
    use crate::error::StorageError;
    use crate::storage::{StorageResult, ViewSnapshot};

    #[derive(serde::Deserialize)]
    struct Tick {}

    #[crate::view(db = "stream-test", event = Tick)]
    struct Counted {
        #[count]
        ticks: u64,
    }

    /// A snapshot whose first page reads and whose second fails.
    struct FailsSecond(AtomicUsize);

    impl ViewSnapshot for FailsSecond {
        fn range(
            &self,
            _: &[u8],
            _: &[u8],
            _: usize,
            _: usize,
        ) -> StorageResult<Vec<(Bytes, Bytes)>> {
            if self.0.fetch_add(1, Ordering::Relaxed) > 0 {
                return Err(StorageError::Corrupt {
                    what: "view row",
                    detail: "planted".to_owned(),
                });
            }
            let mut row = vec![0; 20];
            row.extend_from_slice(br#"{"ticks":3}"#);
            Ok(vec![(Bytes::from_static(b"r"), Bytes::from(row))])
        }
    }

    fn pages(snapshot: FailsSecond) -> RowPages {
        let engine = Arc::from(crate::views::fold::engine::<Counted>());
        RowPages::new(Arc::new(snapshot), engine, false, None)
    }

    #[tokio::test]
    async fn a_read_that_fails_mid_stream_aborts_the_body() {
        let response = super::view_rows(
            "stream-test",
            "counted",
            pages(FailsSecond(AtomicUsize::new(0))),
        );
        assert_eq!(response.status(), axum::http::StatusCode::OK);
        let collected = response.into_body().collect().await;
        assert!(
            collected.is_err(),
            "the body ends in an error, not in a complete answer"
        );
    }

    #[tokio::test]
    async fn a_stream_that_reads_whole_is_the_contract_answer() {
        // Only the first page reads: the second is past the end.
        struct OnePage(FailsSecond);
        impl ViewSnapshot for OnePage {
            fn range(
                &self,
                start: &[u8],
                end: &[u8],
                limit: usize,
                bytes: usize,
            ) -> StorageResult<Vec<(Bytes, Bytes)>> {
                match self.0.range(start, end, limit, bytes) {
                    Err(_) => Ok(Vec::new()),
                    page => page,
                }
            }
        }
        let engine = Arc::from(crate::views::fold::engine::<Counted>());
        let pages = RowPages::new(
            Arc::new(OnePage(FailsSecond(AtomicUsize::new(0)))),
            engine,
            false,
            None,
        );
        let body = super::view_rows("stream-test", "counted", pages)
            .into_body()
            .collect()
            .await
            .expect("a whole body")
            .to_bytes();
        let answer: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(
            answer,
            serde_json::json!({"db": "stream-test", "view": "counted",
                "rows": [{"key": null, "value": {"ticks": 3}}]})
        );
    }
}
