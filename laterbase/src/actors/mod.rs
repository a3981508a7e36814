//! The ractor actors that own a node's state, and the handles callers use.
//!
//! ```text
//! NodeActor                   root supervisor; owns the storage engine and
//! │                           the set of databases; restarts a crashed child
//! ├── DatabaseActor "a"       the only writer of database "a": checks, assigns
//! │   ├── ViewActor "a/v1"    ids and logical clocks, writes, group-commits;
//! │   └── ...                 restarts a crashed view (one actor per view,
//! ├── DatabaseActor "b"       folding the database's durable events)
//! └── ...
//! ```
//!
//! With peers, the replication layer above (`crate::replication`) links its
//! supervisor under the node's root actor too.
//!
//! Callers hold a [`Node`] or a [`Database`]: typed handles whose async
//! methods time out. Writes go through the database actor's mailbox; reads go
//! straight to the storage engine, bounded by the durable watermark, so they
//! never queue behind writes nor show an event that is not yet durable.

pub(crate) mod batch;
pub(crate) mod blocking;
pub(crate) mod commit;
pub(crate) mod database;
pub(crate) mod database_actor;
pub(crate) mod node;
pub(crate) mod node_actor;
pub(crate) mod node_state;
pub(crate) mod rates;
pub(crate) mod supervision;
pub(crate) mod view;
pub(crate) mod view_actor;
pub(crate) mod watermarks;

pub use batch::MergeReceipt;
pub use database::{Database, DatabaseInfo, DatabaseStats};
pub use node::Node;
pub use rates::EventRates;
pub use view::RowPages;
