//! Where `POST /admin/backup` may write: a copy of the node, written only
//! under the directory the operator configured for backups.
//!
//! [`BackupDir`] owns the confinement: a request names a new directory,
//! relative to the backup directory or absolute inside it, and it is resolved
//! (symbolic links included) before anything is written. A node without a
//! backup directory answers `404 not_found`: the route is off. The copy itself
//! is [`Node::backup`](crate::Node::backup)'s, which the embedding API offers
//! without this confinement, to a program that names its own paths.

use std::path::{Component, Path, PathBuf};

use super::error::ApiError;

/// The directory backups may be written under, resolved once when the node
/// starts (created if missing, symbolic links followed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupDir {
    /// The canonical path: every target must resolve to a child of it.
    root: PathBuf,
}

/// Why a backup target was refused; nothing was written.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackupRefusal {
    /// The request named no directory.
    #[error("a backup request names a new directory under the backup directory")]
    Empty,
    /// A `..` component, which could climb out.
    #[error("backup target {to:?} may not contain `..`")]
    ParentComponent {
        /// The target as the request named it.
        to: PathBuf,
    },
    /// The target resolves outside the backup directory (an absolute path
    /// elsewhere, or a symbolic link that leads out).
    #[error("backup target {to:?} is outside the backup directory {root:?}")]
    Outside {
        /// The target as the request named it.
        to: PathBuf,
        /// The backup directory.
        root: PathBuf,
    },
    /// The directory the target would be made in does not exist.
    #[error("backup target {to:?}: the directory {parent:?} does not exist")]
    NoParent {
        /// The target as the request named it.
        to: PathBuf,
        /// Its parent, under the backup directory.
        parent: PathBuf,
    },
    /// A backup goes into a new directory.
    #[error("backup target {target:?} exists already; a backup goes into a new directory")]
    Exists {
        /// The resolved target.
        target: PathBuf,
    },
}

impl BackupDir {
    /// Creates `dir` if missing and resolves it; the error names `dir`.
    pub fn open(dir: &Path) -> std::io::Result<BackupDir> {
        std::fs::create_dir_all(dir)?;
        let root = dir.canonicalize()?;
        if !root.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                format!("{} is not a directory", dir.display()),
            ));
        }
        Ok(BackupDir { root })
    }

    /// The resolved backup directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Where a backup named `to` goes: a new directory whose parent, with
    /// every symbolic link followed, is the backup directory or inside it.
    /// The answer names the resolved parent, so that the copy does not
    /// follow the links of the request again.
    pub fn resolve(&self, to: &Path) -> Result<PathBuf, BackupRefusal> {
        if to.as_os_str().is_empty() {
            return Err(BackupRefusal::Empty);
        }
        if to.components().any(|part| part == Component::ParentDir) {
            return Err(BackupRefusal::ParentComponent { to: to.to_owned() });
        }
        let outside = || BackupRefusal::Outside {
            to: to.to_owned(),
            root: self.root.clone(),
        };
        // An absolute `to` replaces the root; it must then lead back inside.
        let joined = self.root.join(to);
        let (Some(parent), Some(name)) = (joined.parent(), joined.file_name()) else {
            return Err(outside());
        };
        let parent = parent.canonicalize().map_err(|_| BackupRefusal::NoParent {
            to: to.to_owned(),
            parent: parent.to_owned(),
        })?;
        if !parent.starts_with(&self.root) {
            return Err(outside());
        }
        let target = parent.join(name);
        // `symlink_metadata`, not `exists`: a dangling link exists too, and
        // writing through it would leave the directory.
        if target.symlink_metadata().is_ok() {
            return Err(BackupRefusal::Exists { target });
        }
        Ok(target)
    }
}

impl From<BackupRefusal> for ApiError {
    fn from(refusal: BackupRefusal) -> ApiError {
        let message = refusal.to_string();
        match refusal {
            BackupRefusal::Exists { .. } => ApiError::conflict(message),
            _ => ApiError::invalid_name(message),
        }
    }
}
