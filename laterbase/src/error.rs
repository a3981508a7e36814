//! The crate's error type: what callers of the embedding API get back.
//!
//! Storage engines report [`StorageError`]; everything that crosses the public
//! API is an [`Error`]. Caller mistakes (a bad name, a future id, a conflict)
//! and operating failures (a full disk, a poisoned store, a timeout) are
//! distinct variants so that the HTTP layer can map each to its status.

use crate::clock::FutureEvent;
use crate::event::{EventId, InvalidName};

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
    /// The store refuses writes since a write, an fsync or a flush or
    /// compaction in the background failed, otherwise than by a full disk.
    #[error("the store refuses writes after a failed write or fsync: {0}")]
    Poisoned(String),
    /// The disk is full, whichever of the engine's writes met it first:
    /// writes are refused on every database until the node restarts, reads
    /// go on, and the node still stops cleanly.
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

impl From<InvalidName> for Error {
    fn from(InvalidName { name, reason }: InvalidName) -> Error {
        Error::InvalidName { name, reason }
    }
}

impl From<FutureEvent> for Error {
    fn from(event: FutureEvent) -> Error {
        let FutureEvent {
            index,
            id,
            ahead_ms,
            skew_ms,
        } = event;
        Error::FutureEvent {
            index,
            id,
            ahead_ms,
            skew_ms,
        }
    }
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
    /// The engine refuses every write since one of its writes failed: its
    /// journal, an fsync, or a flush or compaction in the background.
    #[error("{0}")]
    Poisoned(Poison),
}

/// One of a storage engine's writes, as the cause of its refusing writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EngineWrite {
    /// A write into the engine's journal (its write-ahead log).
    Journal,
    /// An fsync that makes what was written durable.
    Persist,
    /// The engine's background flush of its memory tables into files.
    Flush,
    /// The engine's background compaction of its files.
    Compaction,
    /// A flush or a compaction in the background: the engine (fjall) tells
    /// that it failed, not which one, and logs the error itself.
    Background,
}

impl std::fmt::Display for EngineWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EngineWrite::Journal => "a journal write",
            EngineWrite::Persist => "an fsync",
            EngineWrite::Flush => "a background flush",
            EngineWrite::Compaction => "a background compaction",
            EngineWrite::Background => "a background flush or compaction",
        })
    }
}

/// Why an engine refuses every write: the first of its writes that failed,
/// and how. Every later refusal names the same cause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Poison {
    /// Which write failed first.
    pub write: EngineWrite,
    /// How it failed: [`std::io::ErrorKind::StorageFull`] for a full disk.
    pub kind: std::io::ErrorKind,
    /// The failure as the engine reported it.
    pub detail: String,
}

impl Poison {
    /// Whether the disk was full.
    pub fn is_storage_full(&self) -> bool {
        self.kind == std::io::ErrorKind::StorageFull
    }
}

impl std::fmt::Display for Poison {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed: {}", self.write, self.detail)
    }
}

impl StorageError {
    /// Whether the failure means the disk is full.
    pub fn is_storage_full(&self) -> bool {
        match self {
            StorageError::Poisoned(poison) => poison.is_storage_full(),
            _ => io_kind(self) == Some(std::io::ErrorKind::StorageFull),
        }
    }

    /// Whether the engine will refuse every later write.
    pub fn is_poisoned(&self) -> bool {
        matches!(
            self,
            StorageError::Poisoned(_) | StorageError::Fjall(fjall::Error::Poisoned)
        )
    }
}

/// `error` and its sources, outermost first.
pub(crate) fn sources<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(error), |error| error.source())
}

/// The first I/O error in `error`'s chain of sources.
pub(crate) fn io_source<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a std::io::Error> {
    sources(error).find_map(|error| error.downcast_ref::<std::io::Error>())
}

/// Shows an error with its sources on one line (`outer: inner: root`), for
/// logs and answers: the one printer of error chains.
pub(crate) struct ErrorChain<'a>(pub(crate) &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut causes = sources(self.0);
        if let Some(outer) = causes.next() {
            write!(f, "{outer}")?;
        }
        causes.try_for_each(|cause| write!(f, ": {cause}"))
    }
}

/// The kind of the I/O errors in `error`'s chain of sources: a full disk if
/// any says so, else the first one's.
pub(crate) fn io_kind(error: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut kinds = sources(error)
        .filter_map(|error| error.downcast_ref::<std::io::Error>())
        .map(std::io::Error::kind);
    let first = kinds.next()?;
    if first == std::io::ErrorKind::StorageFull
        || kinds.any(|kind| kind == std::io::ErrorKind::StorageFull)
    {
        return Some(std::io::ErrorKind::StorageFull);
    }
    Some(first)
}
