//! Replication with peers: driving the sync protocol over a transport, and
//! supervising the peers a node syncs with.
//!
//! ```text
//! NodeActor
//! └── ReplicationSupervisor      restarts a crashed worker
//!     ├── SyncWorker peer 1      rounds for every database, on a timer and
//!     └── SyncWorker peer 2      soon after local writes; backs off on failure
//! ```
//!
//! This layer sits above both the database actors and the protocol core
//! (`sync`): the [`driver`] runs a round for a [`Database`](crate::Database)
//! over any [`Transport`](driver::Transport), reading the log on the
//! blocking pool and merging through the database's writer; the HTTP layer
//! routes a peer's messages to the driver's answers. With the `server`
//! feature, [`Node::replicate`](crate::Node::replicate) starts a supervisor
//! and one worker per peer, over HTTP ([`transport`]). An application that
//! embeds the store without the server syncs by calling
//! [`driver::round`] over a transport of its own.

#[cfg(feature = "server")]
mod callers;
#[cfg(feature = "server")]
mod config;
#[cfg(feature = "server")]
pub mod conflicts;
pub mod driver;
#[cfg(feature = "server")]
mod supervisor;
#[cfg(feature = "server")]
pub mod transport;
#[cfg(feature = "server")]
pub mod watch;
#[cfg(feature = "server")]
mod watcher;
#[cfg(feature = "server")]
mod worker;

#[cfg(feature = "server")]
pub use callers::{Callers, Watching};
#[cfg(feature = "server")]
pub use config::{Direction, Lag, Peer, PeerState, PeerStatus, ReplicationConfig};
pub use driver::Flow;
#[cfg(feature = "server")]
pub use supervisor::Replication;
