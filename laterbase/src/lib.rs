//! Laterbase: an offline-first event store that syncs.
//!
//! Every node keeps a grow-only map of events: key an [`EventId`] (a ULID,
//! whose time is when the event happened in the world), value bytes, plus when
//! a node first recorded it. Writes are atomic per batch and durable before
//! they are acknowledged; reads never show an event before it is durable.
//!
//! # Quick start
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> laterbase::Result<()> {
//! # let dir = tempfile::tempdir().map_err(laterbase::StorageError::from)?;
//! use laterbase::{Config, NewEvent, Node};
//!
//! let node = Node::open(Config::new(dir.path())).await?;
//! let db = node.create_database("shipments").await?;
//!
//! let loaded = serde_json::json!({"shipment": "S-1", "status": "loaded"});
//! let receipt = db.append(vec![NewEvent::json(&loaded).expect("serialises")]).await?;
//! assert_eq!(receipt.lc, 1);
//!
//! let page = db.changes(0, 1000).await?;
//! assert_eq!(page.events[0].id, receipt.ids[0]);
//! assert_eq!(page.events[0].data, serde_json::to_vec(&loaded).expect("serialises"));
//!
//! node.shutdown().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Modules
//!
//! - [`event`]: ids, times, events, and the pages reads return.
//! - [`clock`]: the clock and random interfaces, and the hybrid logical clock.
//! - [`storage`]: the storage trait and its fjall and in-memory engines.
//! - [`limits`]: every bound, named.
//! - [`views`]: the runtime behind [`view`]: the [`View`] trait, keys, rows
//!   and the registry of the views compiled into the binary.
//! - [`sync`]: the sync protocol core, a pure state machine: its messages,
//!   checks, merge rule and wire encoding.
//! - [`replication`]: the protocol driven for real: a round over any
//!   [`replication::driver::Transport`], and (feature `server`) the
//!   supervisor with one worker per peer.
//! - [`testing`]: folding a view without a node, for snapshot tests.
//! - the actors behind [`Node`] and [`Database`], and [`Config`] to open a node.
//! - `http` (feature `server`): the axum router of the HTTP API, to serve or
//!   to mount in an application's own router.
//! - `server` (feature `server`): `serve(listener, router, shutdown)`, and
//!   `serve_with` for a write timeout of one's own.
//! - `cli` (feature `cli`): the `laterbase` command line, `cli::run()`.
//!
//! # Features
//!
//! - `server`: the HTTP API (the router, with `/metrics` rendered from a
//!   Prometheus handle), `server::serve`, the sync transport over hyper's
//!   client (`replication::transport`) and replication with peers
//!   (`Node::replicate`, `Replication`, `ReplicationConfig`, `PeerStatus`).
//! - `cli` (default; implies `server`): the command line with its logging
//!   setup and Prometheus recorder, mimalloc, and the `laterbase` binary.
//!
//! An application that embeds the store alone (storage, actors, views, the
//! sync core over its own transport, the testing helpers) depends on
//! `laterbase = { default-features = false }` and compiles none of axum,
//! hyper, clap, tracing-subscriber, the Prometheus exporter or mimalloc.

#![warn(missing_docs)]
// Library code neither indexes nor takes `expect` on what it did not check;
// a case that cannot fail says why, with `#[expect(lint, reason = "...")]`.
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing))]

mod actors;
#[cfg(feature = "cli")]
pub mod cli;
pub mod clock;
mod codec;
mod config;
mod error;
pub mod event;
#[cfg(feature = "server")]
pub mod http;
pub mod limits;
pub mod replication;
#[cfg(feature = "server")]
pub mod server;
pub mod storage;
pub mod sync;
pub mod testing;
pub mod views;

// The code `#[view]` generates names `::laterbase::__private`, also inside
// this crate's own tests.
extern crate self as laterbase;

#[doc(hidden)]
pub use views::private as __private;

pub use actors::{Database, DatabaseInfo, DatabaseStats, EventRates, MergeReceipt, Node, RowPages};
pub use config::Config;
pub use error::{EngineWrite, Error, Poison, Result, StorageError};
pub use event::{ChangesPage, Event, EventId, KeysPage, NewEvent, RangePage, Receipt, Timestamp};
pub use laterbase_macros::view;
#[cfg(feature = "server")]
pub use replication::{Peer, PeerStatus, Replication, ReplicationConfig};
pub use storage::memory::MemoryStorage;
pub use storage::{Conflict, ConflictsPage};
pub use views::{FoldError, Key, KeyKind, LiveRow, Row, View, ViewStatus};
