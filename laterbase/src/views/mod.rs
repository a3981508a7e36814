//! The runtime behind `#[view]`: what a view is, how its rows are keyed,
//! and the registry of every view compiled into the binary.
//!
//! A view is a fold over one database's events, grouped by a key. The
//! `#[view]` macro turns a user's struct into an implementation of [`View`]
//! and registers it at build time; a node serves every registered view of
//! each database it holds. The pipeline of one event:
//!
//! ```text
//! event bytes ─ decode (V::Event) ─ key ─ fold into the key's state ─ row
//!      │            └─ fails: skipped and counted
//!      └─ read from the durable log in lc order by the view's actor
//! ```
//!
//! [`View`], its keys and [`FoldError`] are in `view.rs`;
//! [`fold`](self::fold) keeps a view's rows in its store; the actor that
//! drives it lives in `actors::view`; [`crate::testing::fold`] folds a view
//! over a list of events without a node.

pub mod exact;
pub(crate) mod finite;
pub(crate) mod fold;
#[doc(hidden)]
pub mod private;
mod view;

pub use finite::NotFinite;
pub use view::{FoldError, Key, KeyKind, View};

use std::fmt;

use serde::{Deserialize, Serialize};

/// One row of a view, as queries and [`crate::testing::fold`] return it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The row's key (`null` for a view without a key).
    pub key: serde_json::Value,
    /// The row's value.
    pub value: serde_json::Value,
}

/// A view compiled into the binary, as `#[view]` registers it.
#[derive(Clone, Copy)]
pub struct Registration {
    /// The database it folds.
    pub db: &'static str,
    /// Its name.
    pub name: &'static str,
    /// The struct's path, to name it in errors.
    pub type_name: &'static str,
    pub(crate) engine: fn() -> Box<dyn fold::Engine>,
}

impl Registration {
    /// The registration of `V`, named `type_name` in errors.
    pub const fn of<V: View>(type_name: &'static str) -> Registration {
        Registration {
            db: V::DB,
            name: V::NAME,
            type_name,
            engine: fold::engine::<V>,
        }
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("db", &self.db)
            .field("name", &self.name)
            .field("type_name", &self.type_name)
            .finish()
    }
}

inventory::collect!(Registration);

/// Every view compiled into this binary, sorted by database and name.
/// Fails naming both structs when two views of one database share a name.
pub fn registered() -> crate::error::Result<Vec<Registration>> {
    let mut views: Vec<Registration> = inventory::iter::<Registration>
        .into_iter()
        .copied()
        .collect();
    views.sort_by(|a, b| (a.db, a.name, a.type_name).cmp(&(b.db, b.name, b.type_name)));
    for pair in views.windows(2) {
        if let [first, second] = pair
            && first.db == second.db
            && first.name == second.name
        {
            return Err(crate::error::Error::DuplicateView {
                db: first.db.to_owned(),
                view: first.name.to_owned(),
                first: first.type_name.to_owned(),
                second: second.type_name.to_owned(),
            });
        }
    }
    Ok(views)
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
