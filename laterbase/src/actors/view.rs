//! A view's handle, what callers ask of it, and the pages of rows it
//! answers; the actor behind it is in `view_actor`.

use std::sync::Arc;
use std::time::Duration;

use ractor::{ActorRef, RpcReplyPort};

use super::blocking::run_storage;
use crate::error::{Error, Result};
use crate::limits::{VIEW_QUERY_WAIT_MS, VIEW_STREAM_PAGE_BYTES, VIEW_STREAM_PAGE_ROWS};
use crate::storage::ViewSnapshot;
use crate::views::fold::{self, Engine};
use crate::views::{Key, KeyKind, Row, ViewStatus};

/// A view's handle: queries go to its actor.
#[derive(Clone)]
pub(crate) struct ViewHandle {
    pub(crate) key_kind: KeyKind,
    pub(crate) actor: ActorRef<ViewMsg>,
}

/// What a query asks for.
pub(crate) enum ViewQuery {
    /// One row.
    Key(Key),
    /// Rows in key order after `after`, at most `limit`.
    Rows { after: Option<Key>, limit: usize },
    /// Where the view stands.
    Status,
    /// Every row after `after`, as of one snapshot, to read a page at a
    /// time.
    Snapshot { after: Option<Key> },
    /// Where the view stands and a snapshot of its rows that agrees with
    /// it, at once: what a subscription to its rows reads.
    Follow,
}

/// What a query answers.
pub(crate) enum ViewAnswer {
    Row(Option<Row>),
    Rows {
        rows: Vec<Row>,
        more: bool,
    },
    Status(ViewStatus),
    Snapshot(RowPages),
    /// Where the view stands, and its rows then (`None` while it
    /// rebuilds: they are not all there).
    Follow {
        progress: ViewProgress,
        snapshot: Option<Arc<dyn ViewSnapshot>>,
    },
}

/// Where a view stands, as its actor publishes it after each step, for the
/// subscriptions to its rows: it only tells them to look, and never waits
/// for them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ViewProgress {
    /// The database's logical clock folded up to.
    pub(crate) lc: u64,
    /// The update number up to which rewrites of stored events are refolded.
    pub(crate) us: u64,
    /// How many times the view started over from an empty store since the
    /// node started: rows may have changed that no event or rewrite names.
    pub(crate) rebuilds: u64,
    /// Whether it is refolding from the start.
    pub(crate) rebuilding: bool,
}

/// Every row of a view as of one instant (taken once the view had folded
/// what the query asked for), read [`VIEW_STREAM_PAGE_ROWS`] rows or about
/// [`VIEW_STREAM_PAGE_BYTES`] at a time: [`Database::view_pages`](crate::Database::view_pages).
pub struct RowPages {
    snapshot: Arc<dyn ViewSnapshot>,
    engine: Arc<dyn Engine>,
    may_block: bool,
    /// Where the next page starts; `None` once every row was read.
    next: Option<Vec<u8>>,
}

impl RowPages {
    /// Every row of `snapshot` after the row keyed `after`, as `engine`
    /// shows rows.
    pub(crate) fn new(
        snapshot: Arc<dyn ViewSnapshot>,
        engine: Arc<dyn Engine>,
        may_block: bool,
        after: Option<&Key>,
    ) -> RowPages {
        let start = match after {
            // Just past the row `after`.
            Some(after) => {
                let mut key = fold::row_key(&after.to_bytes());
                key.push(0);
                key
            }
            None => fold::row_bounds().0,
        };
        RowPages {
            snapshot,
            engine,
            may_block,
            next: Some(start),
        }
    }

    /// The next page of rows, or `None` after the last.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Row>>> {
        let Some(start) = self.next.take() else {
            return Ok(None);
        };
        let (snapshot, engine) = (self.snapshot.clone(), self.engine.clone());
        let (rows, next) = run_storage(self.may_block, move || {
            let (_, end) = fold::row_bounds();
            let entries =
                snapshot.range(&start, &end, VIEW_STREAM_PAGE_ROWS, VIEW_STREAM_PAGE_BYTES)?;
            let rows = rows_of(engine.as_ref(), &entries)?;
            // Go on just past the page (a page cut by bytes is short but
            // not the last); an empty page is the end.
            let next = entries.last().map(|(last, _)| {
                let mut next = last.to_vec();
                next.push(0);
                next
            });
            Ok((rows, next))
        })
        .await?;
        self.next = next;
        match (rows.is_empty(), &self.next) {
            // Every row of this page is hidden: go on to the next.
            (true, Some(_)) => Box::pin(self.next_page()).await,
            (true, None) => Ok(None),
            (false, _) => Ok(Some(rows)),
        }
    }
}

/// The rows shown of stored `entries` (a row none of whose events folded
/// is not).
pub(super) fn rows_of(
    engine: &dyn Engine,
    entries: &[(bytes::Bytes, bytes::Bytes)],
) -> Result<Vec<Row>> {
    let kind = engine.key_kind();
    let mut rows = Vec::with_capacity(entries.len());
    for (stored_key, stored) in entries {
        if let Some(value) = engine.value(stored)? {
            rows.push(Row {
                key: fold::row_of(kind, stored_key)?.to_json(),
                value,
            });
        }
    }
    Ok(rows)
}

/// Messages a view actor takes.
pub(crate) enum ViewMsg {
    /// Fold the next events, if any are durable.
    Step,
    /// Answer once the view has folded up to `lc`.
    Query {
        query: ViewQuery,
        lc: u64,
        reply: RpcReplyPort<Result<ViewAnswer>>,
    },
}

impl ViewHandle {
    /// `text` as a key of this view (of `view`, for the error).
    pub(crate) fn parse_key(&self, view: &str, text: &str) -> Result<Key> {
        Key::parse(self.key_kind, text).ok_or_else(|| Error::InvalidKey {
            view: view.to_owned(),
            key: text.to_owned(),
            expected: self.key_kind.to_string(),
        })
    }

    /// Asks the view, which answers over every event durable now.
    pub(crate) async fn ask(&self, query: ViewQuery, lc: u64) -> Result<ViewAnswer> {
        let wait = Duration::from_millis(VIEW_QUERY_WAIT_MS);
        let unavailable = |_| Error::Unavailable("the view is catching up; retry shortly");
        let call = self
            .actor
            .call(|reply| ViewMsg::Query { query, lc, reply }, Some(wait));
        match call.await {
            Ok(ractor::rpc::CallResult::Success(answer)) => answer,
            Ok(ractor::rpc::CallResult::Timeout) => Err(unavailable(())),
            Ok(ractor::rpc::CallResult::SenderError) | Err(_) => {
                Err(Error::Unavailable("the view is restarting"))
            }
        }
    }
}
