//! The ractor actors that own a node's state, and the handles callers use.
//!
//! ```text
//! NodeActor                   root supervisor; owns the storage engine and
//! │                           the set of databases; restarts a crashed child
//! ├── DatabaseActor "a"       the only writer of database "a": checks, assigns
//! │   ├── ViewActor "a/v1"    ids and logical clocks, writes, group-commits;
//! │   └── ...                 restarts a crashed view (one actor per view,
//! ├── DatabaseActor "b"       folding the database's durable events)
//! ├── ...
//! └── ReplicationSupervisor   with `--peer`: one SyncWorker per peer
//!     └── SyncWorker ...
//! ```
//!
//! Callers hold a [`Node`] or a [`Database`]: typed handles whose async
//! methods time out. Writes go through the database actor's mailbox; reads go
//! straight to the storage engine, bounded by the durable watermark, so they
//! never queue behind writes nor show an event that is not yet durable.

pub(crate) mod commit;
pub(crate) mod database;
pub(crate) mod node;
pub(crate) mod replication;
pub(crate) mod view;

pub use commit::MergeReceipt;
pub use database::{Database, DatabaseInfo, DatabaseStats};
pub use node::Node;
pub use replication::{PeerStatus, ReplicationConfig};
pub(crate) use view::RowPages;

use crate::error::{Error, Result};

/// Runs storage work on the blocking pool when the engine may block, inline
/// when it never does. A panic in the work is resumed in the caller, so that
/// an actor crashes the same way with either engine.
pub(crate) async fn run_storage<T, F>(may_block: bool, work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    if !may_block {
        return work();
    }
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(_) => Err(Error::Unavailable("the runtime is shutting down")),
    }
}

/// The child a supervision event reports stopped (failed or terminated) and
/// why; `None` for other events.
pub(crate) fn stopped_child(
    event: ractor::SupervisionEvent,
) -> Option<(ractor::ActorCell, String)> {
    match event {
        ractor::SupervisionEvent::ActorFailed(cell, error) => Some((cell, error.to_string())),
        ractor::SupervisionEvent::ActorTerminated(cell, _, reason) => {
            Some((cell, reason.unwrap_or_else(|| "stopped".to_owned())))
        }
        _ => None,
    }
}
