//! The crate's error type: what callers of the embedding API get back.
//!
//! Storage engines report [`StorageError`]; everything that crosses the public
//! API is an [`Error`]. Caller mistakes (a bad name, a future id, a conflict)
//! and operating failures (a full disk, a poisoned store, a timeout) are
//! distinct variants so that the HTTP layer can map each to its status.

use crate::event::EventId;

/// The result of every fallible call of the embedding API.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in a call to a node or a database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A database name does not match `^[a-z][a-z0-9_-]{0,63}$`, or is reserved.
    #[error("invalid database name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// Which part of the rule it breaks.
        reason: &'static str,
    },
    /// No database of that name exists on this node.
    #[error("database {0:?} does not exist")]
    DatabaseNotFound(String),
    /// The batch holds more events or bytes than the limits allow.
    #[error("batch too large: {what} is {actual}, the limit is {limit}")]
    BatchTooLarge {
        /// `events` or `bytes`.
        what: &'static str,
        /// The batch's figure.
        actual: usize,
        /// The limit that was passed.
        limit: usize,
    },
    /// A bound of [`crate::limits`] would be passed.
    #[error("the limit of {limit} {what} is reached")]
    LimitReached {
        /// What is counted.
        what: &'static str,
        /// The bound.
        limit: usize,
    },
    /// An event's id is further in the future than the allowed clock skew.
    #[error(
        "event {index}: id {id} is {ahead_ms} ms ahead of this node's clock, more than the allowed {skew_ms} ms"
    )]
    FutureEvent {
        /// The event's index in its batch.
        index: usize,
        /// The refused id.
        id: EventId,
        /// How far ahead of the node's wall clock the id's time is.
        ahead_ms: u64,
        /// The allowed skew.
        skew_ms: u64,
    },
    /// An id is already stored (or repeated in the batch) with other bytes.
    #[error("event {index}: id {id} is already stored with different data")]
    Conflict {
        /// The event's index in its batch.
        index: usize,
        /// The conflicting id.
        id: EventId,
    },
    /// The store refuses writes since a write or an fsync failed.
    #[error("the store refuses writes after a failed write or fsync: {0}")]
    Poisoned(String),
    /// The disk is full: writes are refused, reads go on.
    #[error("the disk is full: {0}")]
    StorageFull(String),
    /// The data directory is already open in another node.
    #[error("the data directory {0} is in use by another node")]
    DataDirLocked(String),
    /// The data directory was written by an unknown format version.
    #[error("the data directory has format version {found}; this build reads version {supported}")]
    UnknownFormat {
        /// The version found on disk.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// The storage engine failed.
    #[error("storage failed")]
    Storage(#[from] StorageError),
    /// A call did not complete within its timeout; a write may or may not be stored.
    #[error("{operation} timed out after {timeout_ms} ms")]
    Timeout {
        /// Which call.
        operation: &'static str,
        /// The timeout that passed.
        timeout_ms: u64,
    },
    /// A configuration value is out of its bounds.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// A sync round with a peer failed: the peer is unreachable, answered
    /// with an error, or sent a malformed message.
    #[error("sync failed: {0}")]
    Sync(String),
    /// A peer's sync message does not decode (an unknown wire version
    /// included); the responder answers it `400 invalid_event`, with a
    /// message older nodes recognise.
    #[error("sync failed: {0}")]
    MalformedSync(String),
    /// A database actor's start gave up waiting for its writer lease, which
    /// a killed predecessor's commit still held.
    #[error(
        "database {database:?}: its writer lease was not released within {waited_ms} ms (a killed writer's commit still runs)"
    )]
    WriterLeaseTimeout {
        /// The database.
        database: String,
        /// How long the start waited.
        waited_ms: u64,
    },
    /// The node's actors failed to start.
    #[error("the node failed to start: {0}")]
    Start(String),
    /// No view of that name is defined for the database.
    #[error("database {db:?} has no view {view:?}")]
    ViewNotFound {
        /// The database.
        db: String,
        /// The view asked for.
        view: String,
    },
    /// A view key does not parse as the view's key type.
    #[error("key {key:?} is not {expected}, the key type of view {view:?}")]
    InvalidKey {
        /// The view.
        view: String,
        /// The key as given.
        key: String,
        /// What the view's keys are.
        expected: String,
    },
    /// Two views compiled into the binary share a database and a name.
    #[error("two views are named {view:?} on database {db:?}: {first} and {second}")]
    DuplicateView {
        /// The database.
        db: String,
        /// The shared name.
        view: String,
        /// One struct.
        first: String,
        /// The other.
        second: String,
    },
    /// The node or database is shutting down or restarting.
    #[error("unavailable: {0}")]
    Unavailable(&'static str),
}

/// A failure inside a storage engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// fjall reported an error.
    #[error("fjall: {0}")]
    Fjall(#[from] fjall::Error),
    /// A file operation failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Stored bytes do not decode: the data directory is damaged.
    #[error("corrupt {what}: {detail}")]
    Corrupt {
        /// Which record.
        what: &'static str,
        /// What was wrong with it.
        detail: String,
    },
    /// The engine was poisoned by an earlier failed write or fsync.
    #[error("poisoned by an earlier failure")]
    Poisoned,
}

impl StorageError {
    /// Whether the failure means the disk is full.
    pub fn is_storage_full(&self) -> bool {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(error) = source {
            if let Some(io) = error.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::StorageFull
            {
                return true;
            }
            source = error.source();
        }
        false
    }

    /// Whether the engine will refuse every later write.
    pub fn is_poisoned(&self) -> bool {
        matches!(
            self,
            StorageError::Poisoned | StorageError::Fjall(fjall::Error::Poisoned)
        )
    }
}
