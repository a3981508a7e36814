//! What a view answers: its rows, and where it stands.

use serde::{Deserialize, Serialize};

/// One row of a view, as queries and [`crate::testing::fold`] return it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The row's key (`null` for a view without a key).
    pub key: serde_json::Value,
    /// The row's value.
    pub value: serde_json::Value,
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
