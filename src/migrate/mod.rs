//! Session **files** of other Telegram libraries, moved into a peerlog
//! [`Account`] and back (feature `migrate`).
//!
//! A bot that runs on Telethon, Pyrogram, Kurigram or grammers today keeps
//! its login and its peer cache in a SQLite `.session` file. This module
//! reads such a file into an [`Account`] ([`import_session_file`]) and
//! writes an account out as one ([`export_session_file`]), so a bot can
//! move to peerlog on its first start, and back, without logging in again
//! and without losing the access hashes it has collected.
//!
//! ```no_run
//! use std::path::Path;
//! use peerlog::Store;
//! use peerlog::migrate::{import_session_file, SessionFileFormat};
//!
//! let store = Store::open_with("bot.peerlog", peerlog::Options { create: true, ..Default::default() })?;
//! let bot = store.account("bot")?;
//! // The format is recognised by the file's tables, not by its name.
//! let report = import_session_file(Path::new("bot.session"), None, &bot)?;
//! println!("{report}");
//! # Ok::<(), peerlog::Error>(())
//! ```
//!
//! # Formats and where their schemas come from
//!
//! Each schema below was copied from the library's own source (the DDL is
//! verbatim in the format's module and in `tests/fixtures/session_files/`):
//!
//! | [`SessionFileFormat`] | library | schema | source |
//! |---|---|---|---|
//! | `Telethon` | Telethon 1.37.0 (`v1` branch, commit `85c4a91`, 2024-10-24) | `version` 7: `sessions`, `entities`, `sent_files`, `update_state` | `telethon/sessions/sqlite.py` |
//! | `Pyrogram` | Pyrogram 2.0.106 (commit `30de1e2`, 2024-12-23) | `version` 3 (2 read too): `sessions`, `peers` | `pyrogram/storage/sqlite_storage.py`, `file_storage.py` |
//! | `Kurigram` | Kurigram (KurimuzonAkuma/pyrogram) 2.1.35 (commit `e29c7bc`, 2025-01-02: version 6) and later (commit `3b048b4`: version 7) | `version` 4–7: `sessions` (+ `server_address`, `port` at 7), `peers`, `usernames`, `update_state` | `pyrogram/storage/sqlite_storage.py` |
//! | `Grammers` | grammers-session 0.11.0 (crates.io) | `PRAGMA user_version` 1: `dc_home`, `dc_option`, `peer_info`, `update_state`, `channel_state` | `src/storages/sqlite.rs` |
//!
//! Pyrogram and Kurigram share one file layout that Kurigram extended:
//! reading accepts any of versions 2 to 7 and looks at which tables and
//! columns are there; writing produces exactly one of them (Pyrogram's
//! version 3, which Kurigram also opens and upgrades, or Kurigram's 7).
//!
//! # What comes across, and what does not
//!
//! Every value the [`Account`] can hold comes across in both directions: the
//! session (DC id, server address and port, auth key, user id, bot flag,
//! test mode, api id where the format has them), every cached peer with its
//! access hash, usernames and phone, and the update state (pts, qts, date,
//! seq and the pts of every channel). Whatever one side cannot hold is
//! *skipped and reported* in [`ImportReport::skipped`] /
//! [`ExportReport::skipped`], with the reason, never dropped silently.
//! Per peer that includes the fields a format's rows have no column for:
//! Telethon keeps one display name (first and last name joined) and no bot
//! flag or channel kind; Pyrogram, Kurigram and grammers keep no names;
//! grammers no update time; none keeps photo ids or languages.
//! Values are never substituted quietly either: a username or phone that
//! peerlog refuses (see [`crate::normalize_username`]) is skipped and
//! reported, the peer kept. A username or phone two rows of a file hold
//! (the libraries allow it; peerlog holds each name once) stays with the
//! most recently updated row, as Telethon's and Kurigram's lookups answer,
//! and the other row's copy is reported.
//!
//! Ids: Telethon, Pyrogram and grammers store marked (Bot API) ids
//! (`-100…` for channels), read through [`PeerId::from_bot_api`], so a
//! channel never becomes a user; an id outside the three ranges peerlog
//! holds (a secret chat, a monoforum) is skipped and reported.
//!
//! Decisions, per format:
//!
//! - **Telethon.** `entities` row `id = 0` is Telethon's record of the
//!   logged-in user (its `hash` holds the user id, its `date` when the
//!   client last saved itself): they become [`Session::user_id`] and
//!   [`Session::date`], and are written back from them. A user or channel
//!   with `hash = 0` is imported with access hash `Some(0)`, the value
//!   Telethon would send; basic chats (always `0`) get none. Telethon keeps
//!   no min peers and no peer without an access hash (its
//!   `get_input_peer` refuses them), so exporting skips those, reported.
//!   `sent_files` (an upload cache) and `takeout_id` are not kept by
//!   peerlog: reported and skipped. Telethon has no test-mode column: it
//!   is set when the address is the well-known test DC address (as for
//!   Telethon session strings). `name` (a display name) is kept as the
//!   peer's first name. Telethon keeps one username per peer, lowercased:
//!   further usernames are reported on export.
//! - **Pyrogram / Kurigram.** The `type` column must agree with the id's
//!   kind (a `"user"` row with a channel id is skipped, reported).
//!   `"forum"`, `"direct"` and `"community"` (Kurigram) have no peerlog
//!   channel kind: `"forum"` is kept as a supergroup, the others as a
//!   channel of unknown kind, both reported. A channel of unknown kind is
//!   written as `"channel"`, a gigagroup as `"supergroup"` (as Pyrogram
//!   itself does), reported. Min peers are skipped on export (Pyrogram
//!   would send their hash alone), reported. Pyrogram 2.0.106 keeps no
//!   update state and one username: exporting to it reports both.
//!   Kurigram's `update_state` rows are keyed `0` (the account) or a
//!   channel's Bot API id; NULL columns (Kurigram writes NULL for qts)
//!   read as 0; a channel row's qts, date and seq are not kept by peerlog
//!   (only its pts), reported, and written back as NULL.
//! - **grammers.** `dc_option` rows keep both addresses; they go into the
//!   account's metadata `grammers/dc/<id>` in the layout of peerlog's
//!   grammers adapter (feature `grammers`), the keys into [`DcAuth`]s, so
//!   the account opens as the same grammers session. grammers' "community"
//!   channel subtype has no peerlog kind (imported as unknown, reported);
//!   a min peer is written with a NULL hash (as grammers itself does).
//!
//! # Safety of the files
//!
//! Importing reads the whole file and checks it (`PRAGMA quick_check`,
//! schema, every value) before it writes anything, then writes the account
//! in one atomic commit: a bad file leaves the account untouched. The
//! account must be empty (no session, DC keys, peers, update state or
//! channel pts), so nothing is merged by accident. A [`crate::PoolHandle`]
//! derefs to its [`Account`], so a pooled store imports the same way.
//!
//! The source file is opened read-only; a file in WAL mode is read with
//! the commits still in its `-wal` file. Close the bot that uses it first:
//! rows it has not committed yet are not there to read.
//!
//! Exporting refuses a destination that exists, writes under a temporary
//! name in the same directory with mode 0600, syncs it, moves it into
//! place (a hard link, which unlike a rename never replaces a file that
//! appeared meanwhile; a rename after a check where the filesystem has no
//! hard links) and syncs the directory: there is never a half-written
//! file at the destination name.
//!
//! Auth keys are credentials: they never appear in errors, reports or
//! `Debug` output.

mod grammers;
mod pyrogram;
mod telethon;

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use crate::sys::staged::Staged;
use crate::{Account, AuthKey, ChannelState, DcAuth, Error, Peer, PeerId, Result, Session};
use crate::{Storage, UpdateState};

/// A library whose `.session` files this module reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "lowercase")
)]
#[non_exhaustive]
pub enum SessionFileFormat {
    /// Telethon's `SQLiteSession` (schema version 7).
    Telethon,
    /// Pyrogram's `FileStorage` (schema version 3; version 2 is read too).
    /// Kurigram opens and upgrades these files.
    Pyrogram,
    /// Kurigram's (KurimuzonAkuma/pyrogram) `FileStorage`, schema versions
    /// 4 to 7 (usernames and update state tables); writes version 7.
    Kurigram,
    /// grammers-session 0.11's `SqliteSession` (`user_version` 1).
    Grammers,
}

impl SessionFileFormat {
    /// Every format, in the order [`SessionFileFormat::detect`] tries them.
    pub const ALL: [SessionFileFormat; 4] = [
        SessionFileFormat::Telethon,
        SessionFileFormat::Pyrogram,
        SessionFileFormat::Kurigram,
        SessionFileFormat::Grammers,
    ];

    /// The lowercase name (`"telethon"`, `"pyrogram"`, `"kurigram"`,
    /// `"grammers"`), as a command line would take it.
    pub const fn name(self) -> &'static str {
        match self {
            SessionFileFormat::Telethon => "telethon",
            SessionFileFormat::Pyrogram => "pyrogram",
            SessionFileFormat::Kurigram => "kurigram",
            SessionFileFormat::Grammers => "grammers",
        }
    }

    /// Parses [`SessionFileFormat::name`] (ASCII case-insensitive).
    pub fn from_name(name: &str) -> Option<SessionFileFormat> {
        Self::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
    }

    /// Recognises a session file by its schema (tables, version), not by
    /// its name. A Pyrogram-layout file of version 4 or later (or with a
    /// `usernames` table) is [`SessionFileFormat::Kurigram`].
    ///
    /// Errors: [`SessionFileError::NotSqlite`], [`SessionFileError::Corrupt`],
    /// or [`SessionFileError::UnknownSchema`] listing the tables found.
    pub fn detect(path: &Path) -> Result<SessionFileFormat> {
        let conn = open_source(path)?;
        detect_conn(&conn, path)
    }
}

impl std::str::FromStr for SessionFileFormat {
    type Err = Error;
    /// [`SessionFileFormat::from_name`], with an error listing the names.
    fn from_str(s: &str) -> Result<Self> {
        Self::from_name(s).ok_or_else(|| {
            Error::Invalid(format!(
                "unknown session file format {s:?}: expected telethon, pyrogram, kurigram or grammers"
            ))
        })
    }
}

impl fmt::Display for SessionFileFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SessionFileFormat::Telethon => "Telethon",
            SessionFileFormat::Pyrogram => "Pyrogram",
            SessionFileFormat::Kurigram => "Kurigram",
            SessionFileFormat::Grammers => "grammers",
        })
    }
}

/// Why a session file could not be imported or exported. Reached through
/// [`Error::SessionFile`]. No variant carries key bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionFileError {
    /// The file does not start with SQLite's header: it is not a
    /// `.session` file of any supported library (a session *string* is
    /// imported with [`Session::from_session_string`]).
    #[error(
        "{path} is not a SQLite database, so not a Telethon, Pyrogram, Kurigram or grammers .session file"
    )]
    NotSqlite {
        /// The file.
        path: PathBuf,
    },
    /// SQLite found the file damaged. Nothing was imported; use a backup
    /// of the session file (or log in again).
    #[error("{path} is a damaged SQLite database: {detail}; nothing was imported")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What SQLite reported.
        detail: String,
    },
    /// The tables are none of the supported layouts.
    #[error(
        "{path} is a SQLite database but not a session file of Telethon, Pyrogram, Kurigram or grammers (tables: {tables})"
    )]
    UnknownSchema {
        /// The file.
        path: PathBuf,
        /// The tables found, comma-separated.
        tables: String,
    },
    /// A table or column the format needs is missing.
    #[error("{path}: {format} session file without {what}; nothing was imported")]
    Missing {
        /// The file.
        path: PathBuf,
        /// The format it was read as.
        format: SessionFileFormat,
        /// The table or column.
        what: String,
    },
    /// The file's schema version is one this build does not read.
    #[error(
        "{path}: {format} session schema version {found} is not supported (this build reads {supported}){hint}"
    )]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The format.
        format: SessionFileFormat,
        /// The version in the file.
        found: i64,
        /// The versions read, e.g. `"7"` or `"2 to 7"`.
        supported: &'static str,
        /// What to do, e.g. open it once with the library to upgrade it.
        hint: &'static str,
    },
    /// A value in the file cannot be what the format says (an auth key of
    /// the wrong length, a DC id out of range, an address that is not an IP
    /// address).
    #[error("{path}: {what}; nothing was imported")]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The table, column and problem (never a key's bytes).
        what: String,
    },
    /// The account to import into already holds data.
    #[error(
        "account {account:?} is not empty ({holds}); import into a new account, or remove this one first"
    )]
    AccountNotEmpty {
        /// The account's name.
        account: String,
        /// What it holds.
        holds: String,
    },
    /// The account to export has no session.
    #[error("account {account:?} has no session to export")]
    NoSession {
        /// The account's name.
        account: String,
    },
    /// The export destination exists; it is never overwritten.
    #[error("{path} exists; choose another name or move it away first (exports never overwrite)")]
    DestinationExists {
        /// The destination.
        path: PathBuf,
    },
    /// SQLite failed on a file that passed its checks (e.g. the disk is
    /// full while exporting).
    #[error("{path}: SQLite error while {context}: {source}")]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// What was being done.
        context: &'static str,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
}

/// What one side could not hold: counted by kind, with a few examples.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Skipped {
    /// What was skipped, e.g. `"sent_files rows"`.
    pub what: String,
    /// How many.
    pub count: u64,
    /// Why.
    pub reason: String,
    /// Up to [`Skipped::MAX_EXAMPLES`] of them (ids, names; never secrets).
    pub examples: Vec<String>,
}

impl Skipped {
    /// The most examples kept per kind.
    pub const MAX_EXAMPLES: usize = 5;
}

/// How many of each kind of record came across.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Counts {
    /// Sessions (0 or 1).
    pub sessions: u64,
    /// Per-DC auth keys (grammers' `dc_option` rows with a key; the home
    /// DC's key counts here too when the format lists DCs).
    pub dc_auths: u64,
    /// DC address rows (grammers' `dc_option`).
    pub dc_options: u64,
    /// Peers.
    pub peers: u64,
    /// Usernames (primary and others).
    pub usernames: u64,
    /// Phone numbers.
    pub phones: u64,
    /// Account-wide update states (0 or 1).
    pub update_states: u64,
    /// Per-channel pts.
    pub channel_pts: u64,
}

/// The outcome of [`import_session_file`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ImportReport {
    /// The format read.
    pub format: SessionFileFormat,
    /// The schema version of the file.
    pub version: i64,
    /// What was written to the account.
    pub counts: Counts,
    /// What the file held that the account does not keep.
    pub skipped: Vec<Skipped>,
}

/// The outcome of [`export_session_file`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ExportReport {
    /// The format written.
    pub format: SessionFileFormat,
    /// The schema version written.
    pub version: i64,
    /// What was written to the file.
    pub counts: Counts,
    /// What the account held that the file does not keep.
    pub skipped: Vec<Skipped>,
}

fn fmt_report(
    f: &mut fmt::Formatter<'_>,
    verb: &str,
    format: SessionFileFormat,
    version: i64,
    c: &Counts,
    skipped: &[Skipped],
) -> fmt::Result {
    writeln!(
        f,
        "{verb} {format} session file (schema version {version}): {} session, {} DC keys, {} DC addresses, {} peers, {} usernames, {} phones, {} update state, {} channel pts",
        c.sessions,
        c.dc_auths,
        c.dc_options,
        c.peers,
        c.usernames,
        c.phones,
        c.update_states,
        c.channel_pts
    )?;
    for s in skipped {
        write!(f, "  skipped {} {}: {}", s.count, s.what, s.reason)?;
        if !s.examples.is_empty() {
            write!(f, " (e.g. {})", s.examples.join(", "))?;
        }
        writeln!(f)?;
    }
    Ok(())
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (fm, v) = (self.format, self.version);
        fmt_report(f, "imported", fm, v, &self.counts, &self.skipped)
    }
}

impl fmt::Display for ExportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (fm, v) = (self.format, self.version);
        fmt_report(f, "exported", fm, v, &self.counts, &self.skipped)
    }
}

/// Skips, aggregated by (what, reason).
#[derive(Debug, Default)]
pub(crate) struct Skips(Vec<Skipped>);

impl Skips {
    pub(crate) fn add(&mut self, what: &str, reason: &str, example: impl fmt::Display) {
        self.add_n(what, reason, 1, Some(example.to_string()));
    }
    pub(crate) fn add_n(&mut self, what: &str, reason: &str, n: u64, example: Option<String>) {
        if n == 0 {
            return;
        }
        let entry = match self
            .0
            .iter_mut()
            .find(|s| s.what == what && s.reason == reason)
        {
            Some(e) => e,
            None => {
                self.0.push(Skipped {
                    what: what.to_owned(),
                    count: 0,
                    reason: reason.to_owned(),
                    examples: Vec::new(),
                });
                self.0.last_mut().expect("just pushed")
            }
        };
        entry.count += n;
        if let Some(e) = example
            && entry.examples.len() < Skipped::MAX_EXAMPLES
        {
            entry.examples.push(e);
        }
    }
}

/// Everything a session file and an account have in common: what an
/// import writes and an export reads.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub(crate) session: Option<Session>,
    pub(crate) dc_auths: Vec<DcAuth>,
    /// grammers' DC address rows (kept in the account's metadata).
    pub(crate) dc_options: Vec<grammers::DcOpt>,
    pub(crate) peers: Vec<Peer>,
    pub(crate) update_state: Option<UpdateState>,
    pub(crate) channels: Vec<ChannelState>,
}

impl Snapshot {
    fn counts(&self) -> Counts {
        Counts {
            sessions: u64::from(self.session.is_some()),
            dc_auths: self.dc_auths.len() as u64,
            dc_options: self.dc_options.len() as u64,
            peers: self.peers.len() as u64,
            usernames: self
                .peers
                .iter()
                .map(|p| u64::from(p.username.is_some()) + p.usernames.len() as u64)
                .sum(),
            phones: self.peers.iter().filter(|p| p.phone.is_some()).count() as u64,
            update_states: u64::from(self.update_state.is_some()),
            channel_pts: self.channels.len() as u64,
        }
    }
}

// --- Reading -----------------------------------------------------------------

/// The 16 bytes every SQLite 3 database starts with.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

pub(crate) fn sqlite_err(
    path: &Path,
    context: &'static str,
) -> impl FnOnce(rusqlite::Error) -> Error {
    let path = path.to_path_buf();
    move |source| {
        use rusqlite::ffi::ErrorCode;
        if let rusqlite::Error::InvalidColumnType(_, name, ty) = &source {
            return SessionFileError::BadValue {
                what: format!(
                    "column `{name}` holds {ty} while {context}, which the format never writes"
                ),
                path,
            }
            .into();
        }
        match source.sqlite_error_code() {
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
                SessionFileError::Corrupt {
                    path,
                    detail: source.to_string(),
                }
                .into()
            }
            _ => SessionFileError::Sqlite {
                path,
                context,
                source,
            }
            .into(),
        }
    }
}

pub(crate) fn bad_value(path: &Path, what: impl Into<String>) -> Error {
    SessionFileError::BadValue {
        path: path.to_path_buf(),
        what: what.into(),
    }
    .into()
}

/// Opens a session file read-only after checking SQLite's header, and runs
/// `PRAGMA quick_check`.
fn open_source(path: &Path) -> Result<Connection> {
    use std::io::Read;
    let mut head = [0u8; 16];
    let mut f =
        std::fs::File::open(path).map_err(Error::io_at("opening the session file", path))?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io_at("reading the session file", path)(e)),
        }
    }
    if n < head.len() || &head != SQLITE_MAGIC {
        return Err(SessionFileError::NotSqlite {
            path: path.to_path_buf(),
        }
        .into());
    }
    drop(f);
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite_err(path, "opening the session file"))?;
    let check: String = conn
        .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
        .map_err(sqlite_err(path, "checking the session file"))?;
    if check != "ok" {
        return Err(SessionFileError::Corrupt {
            path: path.to_path_buf(),
            detail: check,
        }
        .into());
    }
    Ok(conn)
}

/// The names of the tables of a database, sorted.
pub(crate) fn tables(conn: &Connection, path: &Path) -> Result<Vec<String>> {
    let err = sqlite_err(path, "listing the tables");
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .map_err(sqlite_err(path, "listing the tables"))?;
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<String>>>());
    rows.map_err(err)
}

/// The column names of a table.
pub(crate) fn columns(conn: &Connection, path: &Path, table: &str) -> Result<Vec<String>> {
    let sql = format!("PRAGMA table_info({table})");
    let mut stmt = conn
        .prepare(&sql)
        .map_err(sqlite_err(path, "reading a table's columns"))?;
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(1))
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<String>>>());
    rows.map_err(sqlite_err(path, "reading a table's columns"))
}

fn detect_conn(conn: &Connection, path: &Path) -> Result<SessionFileFormat> {
    let t = tables(conn, path)?;
    let has = |name: &str| t.iter().any(|x| x == name);
    if has("entities") && has("sessions") && has("version") {
        return Ok(SessionFileFormat::Telethon);
    }
    if has("peers") && has("sessions") && has("version") {
        let version: Option<i64> = conn
            .query_row("SELECT max(number) FROM version", [], |r| r.get(0))
            .map_err(sqlite_err(path, "reading the schema version"))?;
        return Ok(if has("usernames") || version.unwrap_or(0) >= 4 {
            SessionFileFormat::Kurigram
        } else {
            SessionFileFormat::Pyrogram
        });
    }
    if has("dc_home") && has("dc_option") && has("peer_info") {
        return Ok(SessionFileFormat::Grammers);
    }
    Err(SessionFileError::UnknownSchema {
        path: path.to_path_buf(),
        tables: if t.is_empty() {
            "none".to_owned()
        } else {
            t.join(", ")
        },
    }
    .into())
}

/// Checks that the tables a format needs are there.
pub(crate) fn require_tables(
    conn: &Connection,
    path: &Path,
    format: SessionFileFormat,
    needed: &[&str],
) -> Result<Vec<String>> {
    let t = tables(conn, path)?;
    for name in needed {
        if !t.iter().any(|x| x == name) {
            return Err(SessionFileError::Missing {
                path: path.to_path_buf(),
                format,
                what: format!("table `{name}`"),
            }
            .into());
        }
    }
    Ok(t)
}

/// An auth key column: NULL or empty is none; otherwise exactly 256 bytes.
pub(crate) fn auth_key(path: &Path, what: &str, v: Option<Vec<u8>>) -> Result<Option<AuthKey>> {
    match v {
        None => Ok(None),
        Some(b) if b.is_empty() => Ok(None),
        Some(mut b) => {
            let key = AuthKey::from_slice(&b);
            let len = b.len();
            b.fill(0);
            match key {
                Some(k) => Ok(Some(k)),
                None => Err(bad_value(
                    path,
                    format!("{what} is {len} bytes; an MTProto auth key is 256"),
                )),
            }
        }
    }
}

/// A DC id column: 1..=i32::MAX.
pub(crate) fn dc_id(path: &Path, what: &str, v: i64) -> Result<i32> {
    i32::try_from(v)
        .ok()
        .filter(|d| *d > 0)
        .ok_or_else(|| bad_value(path, format!("{what} is {v}, not a DC id")))
}

/// An i32 counter column (pts, qts, date, seq); NULL reads as 0.
pub(crate) fn int32(path: &Path, what: &str, v: rusqlite::types::Value) -> Result<i32> {
    use rusqlite::types::Value;
    let n = match v {
        Value::Null => return Ok(0),
        Value::Integer(n) => n,
        // Telethon writes dates as `datetime.timestamp()`, a float.
        Value::Real(x) if x.is_finite() && x.abs() < 1e15 => x.floor() as i64,
        Value::Real(x) => {
            return Err(bad_value(
                path,
                format!("{what} is {x:e}, out of the 32-bit range"),
            ));
        }
        other => {
            return Err(bad_value(
                path,
                format!("{what} is {}, not a number", value_kind(&other)),
            ));
        }
    };
    i32::try_from(n).map_err(|_| bad_value(path, format!("{what} is {n}, out of the 32-bit range")))
}

pub(crate) fn value_kind(v: &rusqlite::types::Value) -> &'static str {
    use rusqlite::types::Value;
    match v {
        Value::Null => "NULL",
        Value::Integer(_) => "an integer",
        Value::Real(_) => "a real",
        Value::Text(_) => "text",
        Value::Blob(_) => "a blob",
    }
}

/// An optional text-or-integer column as text (Telethon's `phone` is an
/// INTEGER column holding digits).
pub(crate) fn text_or_int(v: rusqlite::types::Value) -> Option<String> {
    use rusqlite::types::Value;
    match v {
        Value::Integer(n) => Some(n.to_string()),
        Value::Text(s) if !s.is_empty() => Some(s),
        Value::Real(x) if x.is_finite() && x.fract() == 0.0 => Some(format!("{x:.0}")),
        _ => None,
    }
}

/// Sets a peer's username(s) and phone, skipping (and reporting) what
/// peerlog refuses.
pub(crate) fn set_names(
    peer: &mut Peer,
    names: impl IntoIterator<Item = String>,
    phone: Option<String>,
    skips: &mut Skips,
) {
    for name in names {
        if crate::normalize_username(&name).is_none() {
            skips.add(
                "usernames",
                "not a username Telegram issues (peerlog's normalize_username refuses it); the peer is kept without it",
                format!("{name:?} of {}", peer.id),
            );
            continue;
        }
        let dup = peer
            .username
            .iter()
            .chain(&peer.usernames)
            .any(|u| u.eq_ignore_ascii_case(&name));
        if dup {
            continue;
        }
        if peer.username.is_none() {
            peer.username = Some(name);
        } else {
            peer.usernames.push(name);
        }
    }
    if let Some(phone) = phone {
        if crate::normalize_phone(&phone).is_some() {
            peer.phone = Some(phone);
        } else {
            skips.add(
                "phones",
                "not a phone number peerlog's normalize_phone accepts; the peer is kept without it",
                format!("{phone:?} of {}", peer.id),
            );
        }
    }
}

/// A marked (Bot API) id, or a report of why not.
pub(crate) fn peer_id(id: i64, table: &str, skips: &mut Skips) -> Option<PeerId> {
    let p = PeerId::from_bot_api(id);
    if p.is_none() {
        skips.add(
            &format!("{table} rows"),
            "the id is not the Bot API id of a user, basic chat or channel (a secret chat, a monoforum or out of range): peerlog's peer table cannot hold it",
            id,
        );
    }
    p
}

/// True if `addr` is the well-known address of test DC `dc`.
pub(crate) fn is_test_address(dc: i32, addr: Option<IpAddr>) -> bool {
    match (crate::dc_address(dc, true), addr) {
        (Some((ip, _)), Some(a)) => ip == a,
        _ => false,
    }
}

/// Imports a `.session` file into an empty account, in one atomic commit.
///
/// `format: None` detects it ([`SessionFileFormat::detect`]). The file is
/// only read. Every row is read and checked before anything is written: on
/// any error the account is untouched. See the [module docs](self) for
/// what comes across and what is reported as skipped.
///
/// Errors: [`Error::SessionFile`] (not SQLite, damaged, unknown schema or
/// version, a bad value, an account that is not empty), [`Error::Io`].
pub fn import_session_file(
    path: &Path,
    format: Option<SessionFileFormat>,
    account: &Account,
) -> Result<ImportReport> {
    let conn = open_source(path)?;
    let format = match format {
        Some(f) => f,
        None => detect_conn(&conn, path)?,
    };
    let mut skips = Skips::default();
    let (version, snap) = match format {
        SessionFileFormat::Telethon => telethon::read(&conn, path, &mut skips)?,
        SessionFileFormat::Pyrogram | SessionFileFormat::Kurigram => {
            pyrogram::read(&conn, path, format, &mut skips)?
        }
        SessionFileFormat::Grammers => grammers::read(&conn, path, &mut skips)?,
    };
    drop(conn);
    let mut snap = snap;
    one_owner_per_name(&mut snap.peers, &mut skips);
    let counts = snap.counts();
    write_account(account, &snap)?;
    Ok(ImportReport {
        format,
        version,
        counts,
        skipped: skips.0,
    })
}

/// A username or phone held by two peers of the file (the libraries do not
/// prevent it) stays with the most recently updated one, as Telethon's
/// and Kurigram's lookups resolve it (ties: the first by id); the others
/// lose it, reported. peerlog holds each name once.
fn one_owner_per_name(peers: &mut [Peer], skips: &mut Skips) {
    use std::collections::HashMap;
    let mut user_owner: HashMap<String, usize> = HashMap::new();
    let mut phone_owner: HashMap<String, usize> = HashMap::new();
    let better =
        |peers: &[Peer], new: usize, old: usize| peers[new].updated_at > peers[old].updated_at;
    for i in 0..peers.len() {
        for u in peers[i].username.iter().chain(&peers[i].usernames) {
            let key = u.trim_start_matches('@').to_ascii_lowercase();
            match user_owner.get(&key) {
                Some(&j) if !better(peers, i, j) => {}
                _ => {
                    user_owner.insert(key, i);
                }
            }
        }
        if let Some(d) = peers[i].phone.as_deref().and_then(crate::normalize_phone) {
            match phone_owner.get(&d) {
                Some(&j) if !better(peers, i, j) => {}
                _ => {
                    phone_owner.insert(d, i);
                }
            }
        }
    }
    for (i, p) in peers.iter_mut().enumerate() {
        let id = p.id;
        let mut keep = |u: &String| {
            let key = u.trim_start_matches('@').to_ascii_lowercase();
            let mine = user_owner.get(&key) == Some(&i);
            if !mine {
                skips.add(
                    "usernames",
                    "held by two peers in the file: kept on the most recently updated one",
                    format!("{u:?} of {id}"),
                );
            }
            mine
        };
        if let Some(u) = p.username.take()
            && keep(&u)
        {
            p.username = Some(u);
        }
        p.usernames.retain(|u| keep(u));
        if p.username.is_none() && !p.usernames.is_empty() {
            p.username = Some(p.usernames.remove(0));
        }
        if let Some(d) = p.phone.as_deref().and_then(crate::normalize_phone)
            && phone_owner.get(&d) != Some(&i)
        {
            skips.add(
                "phones",
                "held by two peers in the file: kept on the most recently updated one",
                format!("{d} of {id}"),
            );
            p.phone = None;
        }
    }
}

/// Writes a snapshot into an empty account, in one commit.
fn write_account(account: &Account, snap: &Snapshot) -> Result<()> {
    account.write(|tx| {
        let mut holds = Vec::new();
        if tx.session()?.is_some() {
            holds.push("a session".to_owned());
        }
        let peers = account.peer_count()?;
        if peers > 0 {
            holds.push(format!("{peers} peers"));
        }
        if tx.update_state()?.is_some() {
            holds.push("an update state".to_owned());
        }
        let channels = tx.stored_channel_states()?.len();
        if channels > 0 {
            holds.push(format!("{channels} channel states"));
        }
        let auths = tx.stored_dc_auths()?.len();
        if auths > 0 {
            holds.push(format!("{auths} DC auth keys"));
        }
        if !holds.is_empty() {
            return Err(SessionFileError::AccountNotEmpty {
                account: account.name().to_owned(),
                holds: holds.join(", "),
            }
            .into());
        }
        if let Some(s) = &snap.session {
            tx.save_session(s)?;
        }
        for a in &snap.dc_auths {
            tx.save_dc_auth(a)?;
        }
        for o in &snap.dc_options {
            tx.set_meta(&grammers::dc_key(o.id), &o.encode())?;
        }
        tx.save_peers(&snap.peers)?;
        if let Some(u) = &snap.update_state {
            tx.save_update_state(u)?;
        }
        for c in &snap.channels {
            tx.save_channel_pts(c.channel_id, c.pts)?;
        }
        Ok(())
    })
}

// --- Writing -----------------------------------------------------------------

/// Everything of an account an export needs, read in one consistent view.
fn read_account(account: &Account) -> Result<Snapshot> {
    let mut snap = account.view(|tx| {
        Ok(Snapshot {
            session: tx.session()?,
            dc_auths: tx.stored_dc_auths()?,
            dc_options: grammers::stored_options(tx)?,
            peers: tx.stored_peers()?,
            update_state: tx.update_state()?,
            channels: tx.stored_channel_states()?,
        })
    })?;
    snap.peers.sort_by_key(|p| p.id);
    Ok(snap)
}

/// Writes an account as a `.session` file of `format` at `path`.
///
/// `path` must not exist: the file is written under a temporary name in
/// the same directory (mode 0600), synced, renamed to `path` and the
/// directory synced, so a crash leaves either no file at `path` or the
/// whole one. The account is read in one consistent view. What the format
/// cannot hold is in [`ExportReport::skipped`].
///
/// Errors: [`SessionFileError::DestinationExists`],
/// [`SessionFileError::NoSession`], [`Error::Io`], SQLite failures.
pub fn export_session_file(
    account: &Account,
    format: SessionFileFormat,
    path: &Path,
) -> Result<ExportReport> {
    if std::fs::symlink_metadata(path).is_ok() {
        return Err(SessionFileError::DestinationExists {
            path: path.to_path_buf(),
        }
        .into());
    }
    let snap = read_account(account)?;
    let Some(session) = snap.session.clone() else {
        return Err(SessionFileError::NoSession {
            account: account.name().to_owned(),
        }
        .into());
    };
    let mut skips = Skips::default();
    let (tmp, file) = Staged::beside(path, "tmp")
        .map_err(|e| Error::io_at("creating the session file", path)(e))?;
    drop(file);
    let conn =
        Connection::open(tmp.path()).map_err(sqlite_err(path, "creating the session file"))?;
    // One journal-less transaction: the temporary file is ours alone, and
    // is either renamed whole or removed.
    conn.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;")
        .map_err(sqlite_err(path, "creating the session file"))?;
    let (version, counts) = match format {
        SessionFileFormat::Telethon => telethon::write(&conn, path, &session, &snap, &mut skips)?,
        SessionFileFormat::Pyrogram | SessionFileFormat::Kurigram => {
            pyrogram::write(&conn, path, format, &session, &snap, &mut skips)?
        }
        SessionFileFormat::Grammers => grammers::write(&conn, path, &session, &snap, &mut skips)?,
    };
    conn.close()
        .map_err(|(_, e)| sqlite_err(path, "closing the session file")(e))?;
    persist(tmp, path)?;
    Ok(ExportReport {
        format,
        version,
        counts,
        skipped: skips.0,
    })
}

/// Syncs the staged session file and puts it at `dest`, never over a
/// file that appeared there meanwhile.
fn persist(tmp: Staged, dest: &Path) -> Result<()> {
    let io = |e| Error::io_at("writing the session file", dest)(e);
    std::fs::File::open(tmp.path())
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    if !tmp.place(dest, false).map_err(io)? {
        return Err(SessionFileError::DestinationExists {
            path: dest.to_path_buf(),
        }
        .into());
    }
    Ok(())
}

/// The display name Telethon keeps (`utils.get_display_name`): first and
/// last name joined by a space, or the title.
pub(crate) fn display_name(p: &Peer) -> Option<String> {
    match (&p.first_name, &p.last_name) {
        (Some(f), Some(l)) if !l.is_empty() => Some(format!("{f} {l}")),
        (Some(f), _) if !f.is_empty() => Some(f.clone()),
        (None, Some(l)) if !l.is_empty() => Some(l.clone()),
        _ => None,
    }
}

/// Peers an export to a format without min peers leaves out (reported).
pub(crate) fn skip_min(p: &Peer, format: SessionFileFormat, skips: &mut Skips) -> bool {
    if p.min {
        skips.add(
            "min peers",
            &format!("{format} keeps no min peers: their access hash is not usable on its own"),
            p.id,
        );
    }
    p.min
}

/// How a format's peer rows keep a peer's first and last name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Names {
    /// Not at all.
    None,
    /// Joined into one display name (read back as the first name).
    Display,
}

/// The peer fields, beyond id, hash, usernames and phone, that a format's
/// peer rows hold: what [`skip_unheld`] does not report.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Holds {
    pub names: Names,
    pub bot_flag: bool,
    pub channel_kind: bool,
    pub updated_at: bool,
}

/// Reports each field of `p` the format's rows cannot hold (its names, bot
/// flag, channel kind, update time, photo id, language), so that no value
/// is dropped on export without a line in the report.
pub(crate) fn skip_unheld(p: &Peer, format: SessionFileFormat, holds: Holds, skips: &mut Skips) {
    let named = p.first_name.is_some() || p.last_name.is_some();
    match holds.names {
        Names::None if named => skips.add(
            "peer names",
            &format!("{format} keeps no first or last names"),
            p.id,
        ),
        Names::Display if p.last_name.is_some() => skips.add(
            "last names",
            &format!(
                "{format} keeps one display name: first and last name are written joined, and read back as a first name"
            ),
            p.id,
        ),
        _ => {}
    }
    if p.is_bot && !holds.bot_flag {
        skips.add(
            "bot flags",
            &format!("{format} keeps no bot flag per peer"),
            p.id,
        );
    }
    if p.channel_kind.is_some() && !holds.channel_kind {
        skips.add(
            "channel kinds",
            &format!("{format} keeps no broadcast/megagroup/gigagroup kind"),
            p.id,
        );
    }
    if p.updated_at != 0 && !holds.updated_at {
        skips.add(
            "update times",
            &format!("{format} keeps no time a peer was last seen"),
            p.id,
        );
    }
    if p.photo_id.is_some() {
        skips.add("photo ids", &format!("{format} keeps no photo ids"), p.id);
    }
    if p.language.is_some() {
        skips.add(
            "languages",
            &format!("{format} keeps no peer languages"),
            p.id,
        );
    }
}

/// Usernames beyond the first, for formats that keep one.
pub(crate) fn skip_extra_usernames(p: &Peer, format: SessionFileFormat, skips: &mut Skips) {
    let extra = (u64::from(p.username.is_some()) + p.usernames.len() as u64).saturating_sub(1);
    if extra > 0 {
        skips.add_n(
            "usernames",
            &format!("{format} keeps one username per peer"),
            extra,
            Some(p.id.to_string()),
        );
    }
}

/// A peer's first username (primary, else the first other one), lowercased
/// as the Python libraries store them.
pub(crate) fn first_username(p: &Peer) -> Option<String> {
    p.username
        .as_ref()
        .or(p.usernames.first())
        .map(|u| u.trim_start_matches('@').to_ascii_lowercase())
}

/// The digits of a phone as peerlog stores them.
pub(crate) fn phone_digits(p: &Peer) -> Option<String> {
    p.phone.as_deref().and_then(crate::normalize_phone)
}

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for f in SessionFileFormat::ALL {
            assert_eq!(SessionFileFormat::from_name(f.name()), Some(f));
            assert_eq!(
                SessionFileFormat::from_name(&f.name().to_uppercase()),
                Some(f)
            );
        }
        assert_eq!(SessionFileFormat::from_name("gramjs"), None);
        let e = "gramjs"
            .parse::<SessionFileFormat>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("gramjs") && e.contains("kurigram"), "{e}");
        assert_eq!(
            "Telethon".parse::<SessionFileFormat>().unwrap(),
            SessionFileFormat::Telethon
        );
    }

    #[test]
    fn skips_aggregate_and_cap_examples() {
        let mut s = Skips::default();
        for i in 0..10 {
            s.add("peers", "why", i);
        }
        s.add("peers", "other", 1);
        assert_eq!(s.0.len(), 2);
        assert_eq!(s.0[0].count, 10);
        assert_eq!(s.0[0].examples.len(), Skipped::MAX_EXAMPLES);
    }

    #[test]
    fn int32_reads_reals_and_nulls() {
        use rusqlite::types::Value;
        let p = Path::new("x");
        assert_eq!(
            int32(p, "d", Value::Real(1_700_000_000.75)).unwrap(),
            1_700_000_000
        );
        assert_eq!(int32(p, "d", Value::Null).unwrap(), 0);
        assert!(int32(p, "d", Value::Integer(1 << 40)).is_err());
        assert!(int32(p, "d", Value::Text("x".into())).is_err());
    }

    /// A destination that appears while an export runs is never replaced,
    /// and the temporary file goes away.
    #[test]
    fn persist_never_replaces_a_file_that_appeared_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("bot.session");
        let (tmp, _) = Staged::beside(&dest, "tmp").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(tmp.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(tmp.path(), b"new").unwrap();
        std::fs::write(&dest, b"someone else's").unwrap();
        let e = persist(tmp, &dest).unwrap_err();
        assert!(matches!(
            e,
            Error::SessionFile(SessionFileError::DestinationExists { .. })
        ));
        assert_eq!(std::fs::read(&dest).unwrap(), b"someone else's");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        let dest = dir.path().join("other.session");
        let (tmp, _) = Staged::beside(&dest, "tmp").unwrap();
        std::fs::write(tmp.path(), b"new").unwrap();
        persist(tmp, &dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn auth_key_lengths() {
        let p = Path::new("x");
        assert!(auth_key(p, "k", None).unwrap().is_none());
        assert!(auth_key(p, "k", Some(vec![])).unwrap().is_none());
        assert!(auth_key(p, "k", Some(vec![1; 256])).unwrap().is_some());
        let e = auth_key(p, "k", Some(vec![9; 17])).unwrap_err().to_string();
        assert!(e.contains("17 bytes") && !e.contains('9'), "{e}");
    }
}
