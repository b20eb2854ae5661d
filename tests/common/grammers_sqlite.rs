//! grammers' SQLite session files (grammers-session 0.11, `SqliteSession`,
//! schema `user_version` 1), read and written with rusqlite.
//!
//! - [`read_grammers_sqlite`] reads a file into a `SessionData`, straight
//!   from its tables, decoding them as `SqliteSession` does.
//!   `SqliteSession` cannot list its peers through the `Session` trait, so
//!   a migration reads the tables.
//! - [`write_grammers_sqlite`] creates a file with `SqliteSession`'s schema
//!   and the rows `data.import_to(&SqliteSession::open(path).await?)` would
//!   leave in it.
//!
//! Neither uses `SqliteSession` itself: its `sqlite-storage` feature
//! (libsql) bundles SQLite's C code, as rusqlite's `bundled` feature (used
//! by the reference benchmarks) does, and the two copies of SQLite do not
//! link into one binary. The DDL, the `PRAGMA user_version` and the column
//! encodings below are copied from grammers-session 0.11's
//! `src/storages/sqlite.rs`.
//!
//! Shared by `tests/grammers.rs` and `examples/grammers_switch.rs`.

use std::path::Path;

use grammers_session::SessionData;
use grammers_session::types::{
    ChannelKind, ChannelState, DcOption, PeerAuth, PeerId, PeerInfo, PeerKind,
};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

/// Any error of the reader or the writer.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// grammers' `VERSION`, kept in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

/// The tables `SqliteSession` creates (its `migrate_v0_to_v1`), verbatim.
const SCHEMA: [&str; 5] = [
    "CREATE TABLE dc_home (
                dc_id INTEGER NOT NULL,
                PRIMARY KEY(dc_id))",
    "CREATE TABLE dc_option (
                dc_id INTEGER NOT NULL,
                ipv4 TEXT NOT NULL,
                ipv6 TEXT NOT NULL,
                auth_key BLOB,
                PRIMARY KEY (dc_id))",
    "CREATE TABLE peer_info (
                peer_id INTEGER NOT NULL,
                hash INTEGER,
                subtype INTEGER,
                PRIMARY KEY (peer_id))",
    "CREATE TABLE update_state (
                pts INTEGER NOT NULL,
                qts INTEGER NOT NULL,
                date INTEGER NOT NULL,
                seq INTEGER NOT NULL)",
    "CREATE TABLE channel_state (
                peer_id INTEGER NOT NULL,
                pts INTEGER NOT NULL,
                PRIMARY KEY (peer_id))",
];

// grammers' `PeerSubtype`, the `peer_info.subtype` column.
const USER_SELF: u8 = 1;
const USER_BOT: u8 = 2;
const USER_SELF_BOT: u8 = 3;
const MEGAGROUP: u8 = 4;
const BROADCAST: u8 = 8;
const GIGAGROUP: u8 = 12;
const COMMUNITY: u8 = 16;

/// `peer_info.subtype` as `SqliteSession::cache_peer` writes it: a user's
/// `bot` and `is_self` as bits (unknown counts as `false`, and a user that
/// is neither gets NULL); a channel's kind, NULL if unknown; NULL for chats.
fn peer_subtype(info: &PeerInfo) -> Option<i64> {
    let subtype = match info {
        PeerInfo::User { bot, is_self, .. } => {
            match (bot.unwrap_or_default(), is_self.unwrap_or_default()) {
                (true, true) => Some(USER_SELF_BOT),
                (true, false) => Some(USER_BOT),
                (false, true) => Some(USER_SELF),
                (false, false) => None,
            }
        }
        PeerInfo::Chat { .. } => None,
        PeerInfo::Channel { kind, .. } => kind.map(|kind| match kind {
            ChannelKind::Megagroup => MEGAGROUP,
            ChannelKind::Broadcast => BROADCAST,
            ChannelKind::Gigagroup => GIGAGROUP,
            ChannelKind::Community => COMMUNITY,
        }),
    };
    subtype.map(i64::from)
}

/// Creates `path` as grammers' `SqliteSession` would (schema and
/// `user_version`), holding what `data.import_to(&session)` writes into it:
/// the home DC, every DC option, every peer (Bot API dialog id; access hash,
/// NULL if unknown and 0 for a chat, as `PeerInfo::auth()` gives it;
/// [`peer_subtype`]) and the update state with its channel states.
///
/// `path` must not exist: the rows are those of a new session, with no
/// earlier rows to merge into.
pub fn write_grammers_sqlite(path: &Path, data: &SessionData) -> Result<(), BoxError> {
    if path.exists() {
        return Err(format!("{} exists", path.display()).into());
    }
    let mut conn = Connection::open(path)?;

    // `Database::init` of a new file: the tables in one transaction, then
    // the version.
    let tx = conn.transaction()?;
    for ddl in SCHEMA {
        tx.execute(ddl, [])?;
    }
    tx.commit()?;
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;

    // `set_home_dc_id`.
    let tx = conn.transaction()?;
    tx.execute("DELETE FROM dc_home", [])?;
    tx.execute("INSERT INTO dc_home VALUES (?1)", [data.home_dc])?;
    tx.commit()?;

    // `set_dc_option` of each.
    for o in data.dc_options.values() {
        conn.execute(
            "INSERT OR REPLACE INTO dc_option VALUES (?1, ?2, ?3, ?4)",
            params![
                o.id,
                o.ipv4.to_string(),
                o.ipv6.to_string(),
                o.auth_key.map(|k| k.to_vec())
            ],
        )?;
    }

    // `cache_peer` of each (one transaction, as `cache_peers` writes; the
    // rows are the same).
    let tx = conn.transaction()?;
    for info in data.peer_infos.values() {
        let dialog_id = info
            .id()
            .bot_api_dialog_id()
            .ok_or("the self-user sentinel as a peer id")?;
        tx.execute(
            "INSERT OR REPLACE INTO peer_info VALUES (?1, ?2, ?3)",
            params![dialog_id, info.auth().map(|a| a.hash()), peer_subtype(info)],
        )?;
    }
    tx.commit()?;

    // `set_update_state(UpdateState::All(..))`.
    let state = &data.updates_state;
    let tx = conn.transaction()?;
    tx.execute("DELETE FROM update_state", [])?;
    tx.execute(
        "INSERT INTO update_state VALUES (?1, ?2, ?3, ?4)",
        params![state.pts, state.qts, state.date, state.seq],
    )?;
    tx.execute("DELETE FROM channel_state", [])?;
    for c in &state.channels {
        tx.execute(
            "INSERT INTO channel_state VALUES (?1, ?2)",
            params![c.id, c.pts],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Everything a grammers SQLite session file holds, decoded as
/// `SqliteSession` decodes it (so a user's `bot`/`is_self` come back as
/// stored by [`peer_subtype`], and a `Community` channel's kind as unknown).
/// The file is opened read-only.
pub fn read_grammers_sqlite(path: &Path) -> Result<SessionData, BoxError> {
    if !path.is_file() {
        return Err(format!("{} is not a file", path.display()).into());
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;

    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version != SCHEMA_VERSION {
        return Err(format!("not a grammers 0.11 session (user_version {version})").into());
    }

    let mut data = SessionData::default();
    if let Some(home) = conn
        .query_row("SELECT dc_id FROM dc_home LIMIT 1", [], |row| row.get(0))
        .optional()?
    {
        data.home_dc = home;
    }

    let mut stmt = conn.prepare("SELECT dc_id, ipv4, ipv6, auth_key FROM dc_option")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let auth_key = match row.get::<_, Option<Vec<u8>>>(3)? {
            None => None,
            Some(key) => Some(
                <[u8; 256]>::try_from(key.as_slice())
                    .map_err(|_| format!("auth key of {} bytes", key.len()))?,
            ),
        };
        let option = DcOption {
            id: row.get(0)?,
            ipv4: row.get::<_, String>(1)?.parse()?,
            ipv6: row.get::<_, String>(2)?.parse()?,
            auth_key,
        };
        data.dc_options.insert(option.id, option);
    }

    let mut stmt = conn.prepare("SELECT peer_id, hash, subtype FROM peer_info")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let dialog_id: i64 = row.get(0)?;
        let id = PeerId::from_bot_api_dialog_id(dialog_id)
            .ok_or_else(|| format!("peer id {dialog_id} out of range"))?;
        let bare = id.bare_id().ok_or("self-user sentinel stored")?;
        let auth = row.get::<_, Option<i64>>(1)?.map(PeerAuth::from_hash);
        // `SqliteSession` reads the column as a `u8`.
        let subtype = row.get::<_, Option<i64>>(2)?.map(|s| s as u8);
        let info = match id.kind() {
            PeerKind::User => PeerInfo::User {
                id: bare,
                auth,
                bot: subtype.map(|s| s & USER_BOT != 0),
                is_self: subtype.map(|s| s & USER_SELF != 0),
            },
            PeerKind::Chat => PeerInfo::Chat { id: bare },
            PeerKind::Channel => PeerInfo::Channel {
                id: bare,
                auth,
                // `Community` (16) has none of these bits: unknown.
                kind: subtype.and_then(|s| {
                    if s & GIGAGROUP == GIGAGROUP {
                        Some(ChannelKind::Gigagroup)
                    } else if s & BROADCAST != 0 {
                        Some(ChannelKind::Broadcast)
                    } else if s & MEGAGROUP != 0 {
                        Some(ChannelKind::Megagroup)
                    } else {
                        None
                    }
                }),
            },
        };
        data.peer_infos.insert(id, info);
    }

    if let Some((pts, qts, date, seq)) = conn
        .query_row(
            "SELECT pts, qts, date, seq FROM update_state LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .optional()?
    {
        let s = &mut data.updates_state;
        (s.pts, s.qts, s.date, s.seq) = (pts, qts, date, seq);
    }
    let mut stmt = conn.prepare("SELECT peer_id, pts FROM channel_state ORDER BY peer_id")?;
    data.updates_state.channels = stmt
        .query_map([], |row| {
            Ok(ChannelState {
                id: row.get(0)?,
                pts: row.get(1)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(data)
}
