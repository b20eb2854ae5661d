//! The one error type of the crate.
//!
//! Every variant says what went wrong and where; decoding hostile bytes lands
//! in [`Error::Corrupt`] or [`Error::NotPeerlog`], never in a panic.

use std::path::PathBuf;

/// Result alias used throughout peerlog.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in peerlog.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O call failed. The store stays readable; after a failed write or
    /// fsync every later write returns [`Error::Poisoned`] until reopen.
    #[error("I/O error while {context}: {source}")]
    Io {
        /// What peerlog was doing.
        context: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// An earlier write or fsync failed, so what is on disk is unknown.
    /// Reopen the store: recovery restores the last durable state.
    #[error("an earlier write or fsync failed ({first}); reopen the store to recover")]
    Poisoned {
        /// The first failure, as text.
        first: String,
    },
    /// Another handle, in this process or another, holds the file.
    #[error("{path} is locked by another peerlog handle{}", pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Locked {
        /// The file.
        path: PathBuf,
        /// The holder's process id, when it could be read.
        pid: Option<u32>,
    },
    /// The file does not start with peerlog's magic bytes.
    #[error("{path} is not a peerlog file")]
    NotPeerlog {
        /// The file.
        path: PathBuf,
    },
    /// The file was written by a newer peerlog.
    #[error("unsupported format version {found} (this build reads up to {supported})")]
    UnsupportedVersion {
        /// The version in the file.
        found: u32,
        /// The newest version this build understands.
        supported: u32,
    },
    /// Bytes on disk contradict the format. Nothing was changed; run
    /// [`crate::Store::verify`] or restore from a backup.
    #[error("corrupt store at byte {offset}: {what}")]
    Corrupt {
        /// File offset of the bad bytes.
        offset: u64,
        /// What was wrong.
        what: String,
    },
    /// A key, value, name or batch exceeds a limit of the format.
    #[error("{what} is {len} bytes; the limit is {max}")]
    TooLarge {
        /// Which kind of input.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An argument was rejected before anything was written.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// The store was opened read-only (e.g. by `verify_file`).
    #[error("the store is read-only")]
    ReadOnly,
}

impl Error {
    pub(crate) fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> Error {
        move |source| Error::Io { context, source }
    }
    pub(crate) fn corrupt(offset: u64, what: impl Into<String>) -> Error {
        Error::Corrupt {
            offset,
            what: what.into(),
        }
    }
}
