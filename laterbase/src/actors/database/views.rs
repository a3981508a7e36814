//! The views of a database, as its handle reads them: each query goes to
//! the view's actor, which answers once it has folded every event durable
//! when the call began.

use std::sync::PoisonError;

use super::Database;
use crate::actors::view::{RowPages, ViewAnswer, ViewHandle, ViewQuery};
use crate::error::{Error, Result};
use crate::limits::VIEW_PAGE_ROWS_MAX;
use crate::views::{Row, ViewStatus};

impl Database {
    /// The names of this database's views, sorted.
    pub fn view_names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.shared.views.iter().map(|view| view.name).collect();
        names.sort_unstable();
        names
    }

    /// The row of `view` at `key`, over every event durable when the call
    /// began (read-your-writes). `key` is the key as a query gives it (see
    /// [`Key::parse`]).
    pub async fn view_row(&self, view: &str, key: &str) -> Result<Option<Row>> {
        let handle = self.view_handle(view)?;
        let parsed = handle.parse_key(view, key)?;
        match handle.ask(ViewQuery::Key(parsed), self.lc()).await? {
            ViewAnswer::Row(row) => Ok(row),
            _ => Err(Error::Unavailable("the view answered another question")),
        }
    }

    /// Rows of `view` in key order after the row keyed `after` (a key as a
    /// query gives it), at most `limit` (clamped to [`VIEW_PAGE_ROWS_MAX`];
    /// without one, as many as fit) and about [`PAGE_BYTES_MAX`] of stored
    /// rows; and whether more follow. Over every event durable when the
    /// call began. [`Database::view_pages`] reads every row.
    pub async fn view_rows(
        &self,
        view: &str,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<(Vec<Row>, bool)> {
        let handle = self.view_handle(view)?;
        let after = after.map(|text| handle.parse_key(view, text)).transpose()?;
        let limit = limit.map_or(usize::MAX, |limit| limit.clamp(1, VIEW_PAGE_ROWS_MAX));
        match handle
            .ask(ViewQuery::Rows { after, limit }, self.lc())
            .await?
        {
            ViewAnswer::Rows { rows, more } => Ok((rows, more)),
            _ => Err(Error::Unavailable("the view answered another question")),
        }
    }

    /// Every row of `view` in key order after the row keyed `after`, as of
    /// one snapshot taken once the view has folded every event durable when
    /// the call began, to read a page at a time: the whole of a large view
    /// without holding it in memory.
    pub async fn view_pages(&self, view: &str, after: Option<&str>) -> Result<RowPages> {
        let handle = self.view_handle(view)?;
        let after = after.map(|text| handle.parse_key(view, text)).transpose()?;
        match handle.ask(ViewQuery::Snapshot { after }, self.lc()).await? {
            ViewAnswer::Snapshot(pages) => Ok(pages),
            _ => Err(Error::Unavailable("the view answered another question")),
        }
    }

    /// Where each of this database's views stands, once each has folded
    /// every event durable now.
    pub async fn view_statuses(&self) -> Result<Vec<ViewStatus>> {
        let mut statuses = Vec::new();
        for name in self.view_names() {
            let handle = self.view_handle(name)?;
            match handle.ask(ViewQuery::Status, self.lc()).await? {
                ViewAnswer::Status(status) => statuses.push(status),
                _ => return Err(Error::Unavailable("the view answered another question")),
            }
        }
        Ok(statuses)
    }

    pub(super) fn view_handle(&self, view: &str) -> Result<ViewHandle> {
        let not_found = || Error::ViewNotFound {
            db: self.name().to_owned(),
            view: view.to_owned(),
        };
        if !self
            .shared
            .views
            .iter()
            .any(|registered| registered.name == view)
        {
            return Err(not_found());
        }
        self.shared
            .view_actors
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(view)
            .cloned()
            .ok_or(Error::Unavailable("the view is starting"))
    }
}
