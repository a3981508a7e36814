//! How the store reports a refusal. fjall refuses every write once one
//! failed (it is poisoned) and says only `Poisoned`, logging a background
//! flush's or compaction's error without returning it: [`Failures`] keeps
//! the first failure a call of the engine met, names it in every later
//! refusal, and puts a refusal none of them explains down to the
//! background, a full disk if the disk's free space says so.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::{EngineWrite, Poison, StorageError, io_kind};
use crate::limits::DISK_FULL_FREE_BYTES_MAX;

/// The first failure that poisoned a store, shared by every handle on it.
pub(super) struct Failures {
    /// The data directory, whose disk's free space tells a full disk.
    dir: PathBuf,
    /// Set once, by the first failed write or the first refusal.
    first: OnceLock<Poison>,
}

impl Failures {
    pub(super) fn new(dir: &Path) -> Failures {
        Failures {
            dir: dir.to_owned(),
            first: OnceLock::new(),
        }
    }

    /// The error of a `write` that failed, which fjall poisons itself for:
    /// the first failure's, this one if it is the first.
    pub(super) fn failed(&self, write: EngineWrite, error: fjall::Error) -> StorageError {
        let poison = self.first.get_or_init(|| match &error {
            fjall::Error::Poisoned => background_failure(free_bytes(&self.dir)),
            other => Poison {
                write,
                kind: io_kind(other).unwrap_or(std::io::ErrorKind::Other),
                detail: io_detail(other),
            },
        });
        StorageError::Poisoned(poison.clone())
    }

    /// The error of a call that fjall does not poison itself for when it
    /// fails, but that a poisoned store refuses.
    pub(super) fn error(&self, error: fjall::Error) -> StorageError {
        match error {
            fjall::Error::Poisoned => self.failed(EngineWrite::Background, error),
            other => StorageError::Fjall(other),
        }
    }
}

/// Why a store refuses writes when none of its callers saw a write fail:
/// a flush or a compaction failed in the background, which fjall logs
/// without returning. With `free` bytes (if known) left on the disk, a full
/// disk is the cause ([`DISK_FULL_FREE_BYTES_MAX`]); otherwise the log has it.
fn background_failure(free: Option<u64>) -> Poison {
    let (kind, detail) = match free {
        Some(free) if free <= DISK_FULL_FREE_BYTES_MAX => (
            std::io::ErrorKind::StorageFull,
            format!("{free} bytes are free on the data directory's disk"),
        ),
        Some(free) => (
            std::io::ErrorKind::Other,
            format!(
                "the storage engine's log has the error ({free} bytes are free on the data directory's disk)"
            ),
        ),
        None => (
            std::io::ErrorKind::Other,
            "the storage engine's log has the error".to_owned(),
        ),
    };
    Poison {
        write: EngineWrite::Background,
        kind,
        detail,
    }
}

/// The bytes free for the node on the disk that holds `dir`.
#[cfg(unix)]
fn free_bytes(dir: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// The bytes free on the disk that holds `dir`: unknown off Unix.
#[cfg(not(unix))]
fn free_bytes(_dir: &Path) -> Option<u64> {
    None
}

/// An fjall error in words: its I/O error's, when it has one (fjall shows
/// itself in its `Debug` form).
fn io_detail(error: &fjall::Error) -> String {
    crate::error::io_source(error).map_or_else(|| error.to_string(), ToString::to_string)
}

#[cfg(test)]
mod tests {
    use std::io::ErrorKind;

    use super::*;

    fn poison_of(error: &StorageError) -> &Poison {
        match error {
            StorageError::Poisoned(poison) => poison,
            other => panic!("not a refusal: {other:?}"),
        }
    }

    #[test]
    fn a_background_failure_with_little_room_left_is_a_full_disk() {
        for free in [0, 4096, DISK_FULL_FREE_BYTES_MAX] {
            let poison = background_failure(Some(free));
            assert_eq!(poison.write, EngineWrite::Background);
            assert!(poison.is_storage_full(), "{free} bytes free: {poison}");
        }
        for free in [Some(DISK_FULL_FREE_BYTES_MAX + 1), None] {
            let poison = background_failure(free);
            assert!(!poison.is_storage_full(), "{free:?} bytes free: {poison}");
        }
    }

    #[test]
    fn every_refusal_names_the_first_failure() {
        let dir = tempfile::tempdir().expect("tempdir");
        let failures = Failures::new(dir.path());
        let full = fjall::Error::Io(std::io::Error::from(ErrorKind::StorageFull));
        let first = failures.failed(EngineWrite::Journal, full);
        let later = failures.failed(EngineWrite::Persist, fjall::Error::Poisoned);
        let opening = failures.error(fjall::Error::Poisoned);
        for error in [&first, &later, &opening] {
            let poison = poison_of(error);
            assert_eq!(poison.write, EngineWrite::Journal, "{poison}");
            assert!(poison.is_storage_full(), "{poison}");
            assert!(error.is_storage_full() && error.is_poisoned(), "{error}");
        }
    }

    #[test]
    fn a_refusal_that_no_call_saw_the_cause_of_is_put_down_to_the_background() {
        let dir = tempfile::tempdir().expect("tempdir");
        let failures = Failures::new(dir.path());
        let refused = failures.failed(EngineWrite::Journal, fjall::Error::Poisoned);
        assert_eq!(poison_of(&refused).write, EngineWrite::Background);
        let again = failures.failed(EngineWrite::Persist, fjall::Error::Poisoned);
        assert_eq!(poison_of(&again), poison_of(&refused), "diagnosed once");
    }

    #[test]
    fn another_failure_of_a_call_that_does_not_poison_passes_through() {
        let dir = tempfile::tempdir().expect("tempdir");
        let failures = Failures::new(dir.path());
        let locked = failures.error(fjall::Error::Locked);
        assert!(
            matches!(locked, StorageError::Fjall(fjall::Error::Locked)),
            "{locked:?}"
        );
        let refused = failures.failed(EngineWrite::Persist, fjall::Error::Poisoned);
        assert_eq!(
            poison_of(&refused).write,
            EngineWrite::Background,
            "nothing was kept"
        );
    }
}
