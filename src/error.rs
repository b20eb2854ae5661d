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
    ///
    /// Errors while opening a store by path name the file; the message
    /// says what to do where the cause is common (permission denied on a
    /// file you may only read, a missing directory, a full filesystem).
    #[error("{}", io_message(context, path.as_deref(), source))]
    Io {
        /// What peerlog was doing.
        context: &'static str,
        /// The file, when the store was opened by path and the error came
        /// while opening it.
        path: Option<PathBuf>,
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
    /// Another handle, in this process or another, holds the file (or, for
    /// the PostgreSQL backend, the account's owner lease).
    #[error("{}", locked_message(path, *pid, *same_process, *read_only_holder, holder.as_deref()))]
    Locked {
        /// The file; for the PostgreSQL backend (feature `postgres`), the
        /// database, schema and account.
        path: PathBuf,
        /// The holder's process id: from the owner record that writable
        /// opens leave, and only while that process is alive. `None` when
        /// the holder is a read-only handle (which cannot write the
        /// record) or the record names a process that is gone.
        pid: Option<u32>,
        /// The holder is a handle of this very process (another `Store`,
        /// a `Pool`'s store, or a `verify_file` in progress).
        same_process: bool,
        /// The holder is a read-only handle (`verify_file`, or
        /// `Options { read_only: true, .. }`); it may be in any process.
        read_only_holder: bool,
        /// Who holds it, when the backend knows more than a local pid: for
        /// the PostgreSQL owner lease, the holder's host, pid and since
        /// when. `None` for files.
        holder: Option<String>,
    },
    /// A database server (the PostgreSQL backend, feature `postgres`) could
    /// not be reached, refused the login, or failed a request. Nothing of
    /// the failed call was written.
    #[error("{context}: {message}")]
    Database {
        /// What peerlog was doing, naming the server or account.
        context: String,
        /// The server's or the client library's error, with what to do
        /// where the cause is common.
        message: String,
    },
    /// This handle no longer holds the owner lease of its account (its
    /// connection dropped, was terminated, or another owner took the
    /// lease), so it is fenced: it refuses every call, and no write of it
    /// can reach the account again. Open the account anew (which fails
    /// with [`Error::Locked`] while another owner holds it).
    #[error(
        "the owner lease of {account} is lost ({reason}); nothing was written: open the account again"
    )]
    LeaseLost {
        /// The account, with its database and schema.
        account: String,
        /// Why: the connection error, or who holds the lease now.
        reason: String,
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
    /// Every store of a [`crate::Pool`] is in use or being opened, so there
    /// is no room for another; the pool does not wait. Drop handles, or
    /// raise [`crate::PoolOptions::max_open`].
    #[error("pool full: all {max_open} stores are in use or being opened (PoolOptions::max_open)")]
    PoolFull {
        /// The pool's limit.
        max_open: usize,
    },
    /// A Telethon, Pyrogram or GramJS session string could not be imported
    /// or exported.
    #[error(transparent)]
    SessionString(#[from] crate::session::SessionStringError),
    /// A Telethon, Pyrogram, Kurigram or grammers `.session` file could not
    /// be imported or exported (feature `migrate`).
    #[cfg(feature = "migrate")]
    #[error(transparent)]
    SessionFile(#[from] crate::migrate::SessionFileError),
}

impl From<crate::format::bucket::TooLarge> for Error {
    fn from(e: crate::format::bucket::TooLarge) -> Self {
        let crate::format::bucket::TooLarge { what, len, max } = e;
        Error::TooLarge { what, len, max }
    }
}

/// Context of the open of a store file for reading and writing.
pub(crate) const OPENING_RW: &str = "opening the store file";
/// Context of the open of a store file for reading only.
pub(crate) const OPENING_RO: &str = "opening the store file read-only";
/// Context of the creation of a new store file.
pub(crate) const CREATING: &str = "creating the store file";

fn io_message(context: &str, path: Option<&std::path::Path>, source: &std::io::Error) -> String {
    use std::io::ErrorKind;
    let hint = match (source.kind(), context) {
        (ErrorKind::PermissionDenied, OPENING_RW) => {
            "; to read a file you may not write, open it with Options { read_only: true, .. }"
        }
        (ErrorKind::PermissionDenied, CREATING) => "; you may not write to its directory",
        (ErrorKind::NotFound, CREATING) => "; the directory it should be in does not exist",
        (ErrorKind::NotFound, OPENING_RW | OPENING_RO) => {
            "; there is no such file (Options::create makes a new store)"
        }
        (ErrorKind::IsADirectory, _) => "; that is a directory: name a file inside it",
        (ErrorKind::StorageFull, _) => "; the filesystem is full: free space or use another one",
        (ErrorKind::ReadOnlyFilesystem, OPENING_RW | CREATING) => {
            "; the filesystem is read-only: open with Options { read_only: true, .. } to read"
        }
        _ => "",
    };
    match path {
        Some(p) => format!("I/O error while {context} {}: {source}{hint}", p.display()),
        None => format!("I/O error while {context}: {source}{hint}"),
    }
}

fn locked_message(
    path: &std::path::Path,
    pid: Option<u32>,
    same: bool,
    read_only: bool,
    holder: Option<&str>,
) -> String {
    let path = path.display();
    if let Some(holder) = holder {
        let here = if same { " (this very process)" } else { "" };
        return format!("{path} is locked: its owner lease is held by {holder}{here}");
    }
    let who = if read_only {
        "a read-only handle (such as verify_file)"
    } else {
        "another peerlog handle"
    };
    if same {
        return format!(
            "{path} is locked: it is already open in this process, by {who}; use that handle (Store is cheap to clone), or drop it first"
        );
    }
    match pid {
        Some(pid) => format!("{path} is locked by {who} of process {pid}"),
        None => format!("{path} is locked by {who} of another process (pid unknown)"),
    }
}

impl Error {
    pub(crate) fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> Error {
        move |source| Error::Io {
            context,
            path: None,
            source,
        }
    }

    /// [`Error::io`] naming the file.
    pub(crate) fn io_at(
        context: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.to_path_buf();
        move |source| Error::Io {
            context,
            path: Some(path),
            source,
        }
    }

    /// Names the file in an I/O error that does not yet name one.
    pub(crate) fn at_path(self, file: &std::path::Path) -> Error {
        match self {
            Error::Io {
                context,
                path: None,
                source,
            } => Error::Io {
                context,
                path: Some(file.to_path_buf()),
                source,
            },
            other => other,
        }
    }
    pub(crate) fn corrupt(offset: u64, what: impl Into<String>) -> Error {
        Error::Corrupt {
            offset,
            what: what.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hints of I/O errors at open (the permission case cannot be
    /// produced in a test run as root).
    #[test]
    fn open_errors_say_what_to_do() {
        let e = |context, kind| Error::Io {
            context,
            path: Some("/x/bot.peerlog".into()),
            source: std::io::Error::from(kind),
        };
        let msg = e(OPENING_RW, std::io::ErrorKind::PermissionDenied).to_string();
        assert!(
            msg.contains("opening the store file /x/bot.peerlog: permission denied")
                && msg.ends_with("open it with Options { read_only: true, .. }"),
            "{msg}"
        );
        let msg = e(CREATING, std::io::ErrorKind::NotFound).to_string();
        assert!(
            msg.contains("directory it should be in does not exist"),
            "{msg}"
        );
        let msg = e(OPENING_RO, std::io::ErrorKind::PermissionDenied).to_string();
        assert!(!msg.contains("read_only"), "{msg}");
    }
}
