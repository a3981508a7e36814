//! What a view answers: its rows, the rows a live subscription hands out,
//! and where it stands.

use serde::{Deserialize, Serialize};

/// One row of a view, as queries and [`crate::testing::fold`] return it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The row's key (`null` for a view without a key).
    pub key: serde_json::Value,
    /// The row's value.
    pub value: serde_json::Value,
}

/// A row as a live subscription to a view hands it out
/// ([`Database::subscribe_view`](crate::Database::subscribe_view)).
#[derive(Clone, Debug, PartialEq)]
pub struct LiveRow {
    /// The row's key (`null` for a view without a key), as [`Row`] shows it.
    pub key: serde_json::Value,
    /// The row's value, as [`Row`] shows it; `None` for a row that is no
    /// longer there (a rewritten event's events went to another key).
    pub value: Option<serde_json::Value>,
    /// The database's logical clock the view had folded when the value was
    /// read: the value covers every event up to it.
    pub lc: u64,
    /// Where a new subscription resumes from (its `after_lc`) if this is
    /// the last row seen: every row that changed up to this `lc` has been
    /// handed out. At most `lc`, and the same once a burst of changes has
    /// been handed out.
    pub resume_lc: u64,
}

/// Where a view stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ViewStatus {
    /// The database.
    pub db: String,
    /// The view.
    pub view: String,
    /// The database's logical clock the view has folded up to.
    pub lc: u64,
    /// Events folded since the view was (re)built.
    pub folded: u64,
    /// Events that did not decode into the view's event type, skipped.
    pub skipped: u64,
    /// Whether the view is rebuilding (its definition changed, or a stored
    /// event was rewritten).
    pub rebuilding: bool,
}
