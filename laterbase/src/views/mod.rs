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
//! [`View`], its keys and [`FoldError`] are in `view.rs`, rows and a
//! view's status in `row.rs`, the registry in `registry.rs`;
//! [`fold`](self::fold) keeps a view's rows in its store; the actor that
//! drives it lives in `actors::view_actor`; [`crate::testing::fold`] folds a view
//! over a list of events without a node.

pub mod exact;
pub(crate) mod finite;
pub(crate) mod fold;
#[doc(hidden)]
pub mod private;
mod registry;
mod row;
mod view;

pub use finite::NotFinite;
pub use registry::{Registration, registered};
pub use row::{LiveRow, Row, ViewStatus};
pub use view::{FoldError, Key, KeyKind, View};
