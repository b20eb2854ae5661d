//! Pyrogram's and Kurigram's `FileStorage` / `SQLiteStorage` files.
//!
//! Sources:
//! - Pyrogram 2.0.106 (pyrogram/pyrogram commit
//!   `30de1e21e3e8b5949971ba0bba56bb818ba43b71`, 2024-12-23),
//!   `pyrogram/storage/sqlite_storage.py` (`SCHEMA`, `VERSION = 3`) and
//!   `file_storage.py` (`update`: version 1 → 2 empties `peers`, 2 → 3
//!   adds `sessions.api_id`);
//! - Kurigram (KurimuzonAkuma/pyrogram), `pyrogram/storage/sqlite_storage.py`:
//!   2.1.35 (commit `e29c7bcfcf03dc6579f8545a8226db9ce5c8097d`,
//!   2025-01-02, `VERSION = 6`) and the later version 7 (commit
//!   `3b048b4d42521e239c2f893c0ad6dcc388b635b5`). Its `update`: 3 → 4 adds
//!   `usernames`, 4 → 5 `update_state`, 5 → 6 an index, 6 → 7
//!   `sessions.server_address` and `port` (filled from the well-known DC
//!   addresses). Files it creates have no `peers.username` column.
//!
//! `peers.id` is the marked (Bot API) id; `type` is text (`"user"`, `"bot"`,
//! `"group"`, `"channel"`, `"supergroup"`; Kurigram adds `"forum"`,
//! `"direct"`, `"community"`). Usernames are lowercased. Kurigram's
//! `update_state.id` is 0 for the account and a channel's Bot API id
//! (`utils.get_channel_id`) for a channel.

use std::net::IpAddr;
use std::path::Path;

use rusqlite::types::Value;
use rusqlite::{Connection, params};

use super::{
    Counts, Holds, Names, SessionFileError, SessionFileFormat, Skips, Snapshot, auth_key,
    bad_value, columns, dc_id, first_username, int32, peer_id, phone_digits, require_tables,
    set_names, skip_extra_usernames, skip_min, skip_unheld, sqlite_err,
};

/// What a `peers` row keeps besides id, hash, username and phone: the
/// type (user or bot, group, supergroup or channel) and the update time.
const HOLDS: Holds = Holds {
    names: Names::None,
    bot_flag: true,
    channel_kind: true,
    updated_at: true,
};
use crate::{ChannelKind, ChannelState, Peer, PeerId, PeerKind, Result, Session, UpdateState};

/// Pyrogram 2.0.106's `SCHEMA` (version 3), verbatim.
pub(crate) const PYROGRAM_SCHEMA: &str = "
CREATE TABLE sessions
(
    dc_id     INTEGER PRIMARY KEY,
    api_id    INTEGER,
    test_mode INTEGER,
    auth_key  BLOB,
    date      INTEGER NOT NULL,
    user_id   INTEGER,
    is_bot    INTEGER
);

CREATE TABLE peers
(
    id             INTEGER PRIMARY KEY,
    access_hash    INTEGER,
    type           INTEGER NOT NULL,
    username       TEXT,
    phone_number   TEXT,
    last_update_on INTEGER NOT NULL DEFAULT (CAST(STRFTIME('%s', 'now') AS INTEGER))
);

CREATE TABLE version
(
    number INTEGER PRIMARY KEY
);

CREATE INDEX idx_peers_id ON peers (id);
CREATE INDEX idx_peers_username ON peers (username);
CREATE INDEX idx_peers_phone_number ON peers (phone_number);

CREATE TRIGGER trg_peers_last_update_on
    AFTER UPDATE
    ON peers
BEGIN
    UPDATE peers
    SET last_update_on = CAST(STRFTIME('%s', 'now') AS INTEGER)
    WHERE id = NEW.id;
END;
";

/// Kurigram's `SCHEMA` at version 7, verbatim.
pub(crate) const KURIGRAM_SCHEMA: &str = "
CREATE TABLE sessions
(
    dc_id          INTEGER PRIMARY KEY,
    server_address TEXT,
    port           INTEGER,
    api_id         INTEGER,
    test_mode      INTEGER,
    auth_key       BLOB,
    date           INTEGER NOT NULL,
    user_id        INTEGER,
    is_bot         INTEGER
);

CREATE TABLE peers
(
    id             INTEGER PRIMARY KEY,
    access_hash    INTEGER,
    type           INTEGER NOT NULL,
    phone_number   TEXT,
    last_update_on INTEGER NOT NULL DEFAULT (CAST(STRFTIME('%s', 'now') AS INTEGER))
);

CREATE TABLE usernames
(
    id       INTEGER,
    username TEXT,
    FOREIGN KEY (id) REFERENCES peers(id)
);

CREATE TABLE update_state
(
    id   INTEGER PRIMARY KEY,
    pts  INTEGER,
    qts  INTEGER,
    date INTEGER,
    seq  INTEGER
);

CREATE TABLE version
(
    number INTEGER PRIMARY KEY
);

CREATE INDEX idx_peers_id ON peers (id);
CREATE INDEX idx_peers_phone_number ON peers (phone_number);
CREATE INDEX idx_usernames_id ON usernames (id);
CREATE INDEX idx_usernames_username ON usernames (username);

CREATE TRIGGER trg_peers_last_update_on
    AFTER UPDATE
    ON peers
BEGIN
    UPDATE peers
    SET last_update_on = CAST(STRFTIME('%s', 'now') AS INTEGER)
    WHERE id = NEW.id;
END;
";

/// The version Pyrogram 2.0.106 writes.
pub(crate) const PYROGRAM_VERSION: i64 = 3;
/// The newest Kurigram version, which the export writes.
pub(crate) const KURIGRAM_VERSION: i64 = 7;

/// Which `type` strings mean which peer, and what peerlog keeps of them.
fn kind_of(t: &str) -> Option<(PeerKind, bool, Option<ChannelKind>)> {
    Some(match t {
        "user" => (PeerKind::User, false, None),
        "bot" => (PeerKind::User, true, None),
        "group" => (PeerKind::Chat, false, None),
        "channel" => (PeerKind::Channel, false, Some(ChannelKind::Broadcast)),
        "supergroup" | "forum" => (PeerKind::Channel, false, Some(ChannelKind::Megagroup)),
        "direct" | "community" => (PeerKind::Channel, false, None),
        _ => return None,
    })
}

pub(crate) fn read(
    conn: &Connection,
    path: &Path,
    format: SessionFileFormat,
    skips: &mut Skips,
) -> Result<(i64, Snapshot)> {
    let q = |ctx| sqlite_err(path, ctx);
    require_tables(conn, path, format, &["version"])?;
    let version: Option<i64> = conn
        .query_row("SELECT max(number) FROM version", [], |r| r.get(0))
        .map_err(q("reading the schema version"))?;
    let version = version.ok_or_else(|| SessionFileError::Missing {
        path: path.to_path_buf(),
        format,
        what: "a row in table `version`".into(),
    })?;
    if !(2..=KURIGRAM_VERSION).contains(&version) {
        return Err(SessionFileError::UnsupportedVersion {
            path: path.to_path_buf(),
            format,
            found: version,
            supported: "2 to 7 (Pyrogram 2 and 3, Kurigram 4 to 7)",
            hint: if version < 2 {
                "; open it once with Pyrogram 2 or Kurigram, which upgrade it, then import it"
            } else {
                ""
            },
        }
        .into());
    }
    let tables = require_tables(conn, path, format, &["sessions", "peers"])?;
    let has_table = |t: &str| tables.iter().any(|x| x == t);
    let need = |cols: &[String], table: &str, col: &str| -> Result<()> {
        if cols.iter().any(|c| c == col) {
            Ok(())
        } else {
            Err(SessionFileError::Missing {
                path: path.to_path_buf(),
                format,
                what: format!("column `{table}.{col}`"),
            }
            .into())
        }
    };
    let mut snap = Snapshot::default();

    // sessions
    let scols = columns(conn, path, "sessions")?;
    for c in [
        "dc_id",
        "test_mode",
        "auth_key",
        "date",
        "user_id",
        "is_bot",
    ] {
        need(&scols, "sessions", c)?;
    }
    let has_col = |c: &str| scols.iter().any(|x| x == c);
    let sel = |c: &str| {
        if has_col(c) {
            c.to_owned()
        } else {
            "NULL".to_owned()
        }
    };
    let sql = format!(
        "SELECT dc_id, test_mode, auth_key, date, user_id, is_bot, {}, {}, {} FROM sessions",
        sel("api_id"),
        sel("server_address"),
        sel("port")
    );
    let mut stmt = conn.prepare(&sql).map_err(q("reading table sessions"))?;
    let mut rows = stmt.query([]).map_err(q("reading table sessions"))?;
    let mut n = 0;
    while let Some(r) = rows.next().map_err(q("reading table sessions"))? {
        n += 1;
        if n > 1 {
            return Err(bad_value(
                path,
                format!("table sessions has more than one row; {format} keeps one"),
            ));
        }
        let e = |e| q("reading table sessions")(e);
        let dc = dc_id(path, "sessions.dc_id", r.get(0).map_err(e)?)?;
        let test: Option<i64> = r.get(1).map_err(e)?;
        let key = auth_key(path, "sessions.auth_key", r.get(2).map_err(e)?)?;
        let date: Option<i64> = r.get(3).map_err(e)?;
        let user: Option<i64> = r.get(4).map_err(e)?;
        let bot: Option<i64> = r.get(5).map_err(e)?;
        let api_id: Option<i64> = r.get(6).map_err(e)?;
        let addr: Option<String> = r.get(7).map_err(e)?;
        let port: Option<i64> = r.get(8).map_err(e)?;
        let test_mode = test.unwrap_or(0) != 0;
        let mut s = Session::new(dc, test_mode);
        // `Session::new` fills the well-known address, as Kurigram's
        // version 7 upgrade does; a stored one wins.
        if let Some(a) = addr.filter(|a| !a.is_empty()) {
            s.server_addr = Some(a.parse::<IpAddr>().map_err(|_| {
                bad_value(
                    path,
                    format!("sessions.server_address {a:?} is not an IP address"),
                )
            })?);
        }
        if let Some(p) = port {
            s.port = u16::try_from(p)
                .map_err(|_| bad_value(path, format!("sessions.port {p} is not a port")))?;
        }
        s.auth_key = key;
        s.date = date.unwrap_or(0);
        s.user_id = match user {
            None | Some(0) => None,
            Some(u) if PeerId::try_user(u).is_some() => Some(u),
            Some(u) => {
                return Err(bad_value(
                    path,
                    format!("sessions.user_id {u} is not a user id"),
                ));
            }
        };
        s.is_bot = bot.unwrap_or(0) != 0;
        s.api_id = match api_id {
            None => 0,
            Some(a) => i32::try_from(a)
                .map_err(|_| bad_value(path, format!("sessions.api_id {a} is out of range")))?,
        };
        snap.session = Some(s);
    }
    drop(rows);
    drop(stmt);

    // peers
    let pcols = columns(conn, path, "peers")?;
    for c in [
        "id",
        "access_hash",
        "type",
        "phone_number",
        "last_update_on",
    ] {
        need(&pcols, "peers", c)?;
    }
    let has_username = pcols.iter().any(|c| c == "username");
    let sql = format!(
        "SELECT id, access_hash, type, {}, phone_number, last_update_on FROM peers ORDER BY id",
        if has_username { "username" } else { "NULL" }
    );
    let mut stmt = conn.prepare(&sql).map_err(q("reading table peers"))?;
    let mut rows = stmt.query([]).map_err(q("reading table peers"))?;
    let mut peers: Vec<(Peer, Option<String>, Option<String>)> = Vec::new();
    while let Some(r) = rows.next().map_err(q("reading table peers"))? {
        let e = |e| q("reading table peers")(e);
        let id: i64 = r.get(0).map_err(e)?;
        let hash: Option<i64> = r.get(1).map_err(e)?;
        let ty: Value = r.get(2).map_err(e)?;
        let username: Option<String> = r.get(3).map_err(e)?;
        let phone: Option<String> = r.get(4).map_err(e)?;
        let updated: Value = r.get(5).map_err(e)?;
        let Some(pid) = peer_id(id, "peers", skips) else {
            continue;
        };
        let ty = match ty {
            Value::Text(t) => t,
            other => {
                skips.add(
                    "peers rows",
                    "the type column is not text",
                    format!("{id} ({})", super::value_kind(&other)),
                );
                continue;
            }
        };
        let Some((kind, is_bot, channel_kind)) = kind_of(&ty) else {
            skips.add("peers rows", "unknown peer type", format!("{id} ({ty:?})"));
            continue;
        };
        if kind != pid.kind() {
            skips.add(
                "peers rows",
                "the type contradicts the id's kind (peerlog takes the kind from the id and will not guess)",
                format!("{id} ({ty:?})"),
            );
            continue;
        }
        match ty.as_str() {
            "forum" => skips.add(
                "peer types",
                "peerlog has no forum flag: kept as a supergroup (exported back as \"supergroup\")",
                id,
            ),
            "direct" | "community" => skips.add(
                "peer types",
                "peerlog has no such channel kind: kept as a channel of unknown kind (exported back as \"channel\")",
                format!("{id} ({ty:?})"),
            ),
            _ => {}
        }
        let mut p = Peer::new(pid);
        p.is_bot = is_bot;
        p.channel_kind = channel_kind;
        match kind {
            PeerKind::Chat => {
                if hash.is_some_and(|h| h != 0) {
                    skips.add(
                        "access hashes",
                        "a basic chat has no access hash (Pyrogram writes 0)",
                        pid,
                    );
                }
            }
            _ => p.access_hash = hash,
        }
        p.updated_at = i64::from(int32(path, "peers.last_update_on", updated)?);
        if snap.session.as_ref().is_some_and(|s| s.user_id == Some(id)) {
            p.is_self = true;
        }
        peers.push((p, username, phone));
    }
    drop(rows);
    drop(stmt);

    // usernames (Kurigram)
    let mut names: std::collections::HashMap<i64, Vec<String>> = Default::default();
    if has_table("usernames") {
        let mut stmt = conn
            .prepare("SELECT id, username FROM usernames ORDER BY rowid")
            .map_err(q("reading table usernames"))?;
        let mut rows = stmt.query([]).map_err(q("reading table usernames"))?;
        while let Some(r) = rows.next().map_err(q("reading table usernames"))? {
            let e = |e| q("reading table usernames")(e);
            let id: Option<i64> = r.get(0).map_err(e)?;
            let name: Option<String> = r.get(1).map_err(e)?;
            if let (Some(id), Some(name)) = (id, name) {
                names.entry(id).or_default().push(name);
            }
        }
    }
    for (mut p, username, phone) in peers {
        let extra = names.remove(&p.id.bot_api()).unwrap_or_default();
        set_names(&mut p, username.into_iter().chain(extra), phone, skips);
        snap.peers.push(p);
    }
    let mut orphans: Vec<i64> = names.into_keys().collect();
    orphans.sort_unstable();
    for id in orphans {
        skips.add(
            "usernames rows",
            "no peers row has this id (Kurigram cannot use them either)",
            id,
        );
    }

    // update_state (Kurigram)
    if has_table("update_state") {
        let mut stmt = conn
            .prepare("SELECT id, pts, qts, date, seq FROM update_state ORDER BY id")
            .map_err(q("reading table update_state"))?;
        let mut rows = stmt.query([]).map_err(q("reading table update_state"))?;
        let mut extras = 0u64;
        while let Some(r) = rows.next().map_err(q("reading table update_state"))? {
            let e = |e| q("reading table update_state")(e);
            let id: i64 = r.get(0).map_err(e)?;
            let pts = int32(path, "update_state.pts", r.get(1).map_err(e)?)?;
            let qts = int32(path, "update_state.qts", r.get(2).map_err(e)?)?;
            let date = int32(path, "update_state.date", r.get(3).map_err(e)?)?;
            let seq = int32(path, "update_state.seq", r.get(4).map_err(e)?)?;
            if id == 0 {
                snap.update_state = Some(UpdateState {
                    pts,
                    qts,
                    date,
                    seq,
                });
                continue;
            }
            match PeerId::from_bot_api(id) {
                Some(c) if c.kind() == PeerKind::Channel => {
                    snap.channels.push(ChannelState {
                        channel_id: c.bare_id(),
                        pts,
                    });
                    extras += u64::from(qts != 0 || date != 0 || seq != 0);
                }
                _ => skips.add(
                    "update_state rows",
                    "the id is neither 0 (the account) nor a channel's Bot API id",
                    id,
                ),
            }
        }
        snap.channels.sort_by_key(|c| c.channel_id);
        skips.add_n(
            "channel update_state qts/date/seq",
            "peerlog keeps only a channel's pts (written back as NULL)",
            extras,
            None,
        );
    }
    Ok((version, snap))
}

pub(crate) fn write(
    conn: &Connection,
    path: &Path,
    format: SessionFileFormat,
    session: &Session,
    snap: &Snapshot,
    skips: &mut Skips,
) -> Result<(i64, Counts)> {
    let q = |ctx| sqlite_err(path, ctx);
    let kuri = format == SessionFileFormat::Kurigram;
    let version = if kuri {
        KURIGRAM_VERSION
    } else {
        PYROGRAM_VERSION
    };
    let mut counts = Counts::default();
    let tx = conn
        .unchecked_transaction()
        .map_err(q("writing the session file"))?;
    tx.execute_batch(if kuri {
        KURIGRAM_SCHEMA
    } else {
        PYROGRAM_SCHEMA
    })
    .map_err(q("creating the tables"))?;
    tx.execute("INSERT INTO version VALUES (?)", [version])
        .map_err(q("writing table version"))?;

    // sessions
    let key: Option<Vec<u8>> = session.auth_key.as_ref().map(|k| k.as_bytes().to_vec());
    let user = session.user_id;
    if kuri {
        let known = crate::dc_address(session.dc_id, session.test_mode);
        let addr = session.server_addr.or(known.map(|k| k.0));
        let port = match (session.port, known) {
            (0, Some((_, p))) => p,
            (p, _) => p,
        };
        tx.execute(
            "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            params![
                session.dc_id,
                addr.map(|a| a.to_string()),
                port,
                session.api_id,
                session.test_mode,
                key,
                session.date,
                user,
                session.is_bot
            ],
        )
        .map_err(q("writing table sessions"))?;
    } else {
        let known = crate::dc_address(session.dc_id, session.test_mode);
        if let Some(a) = session.server_addr
            && known.map(|k| k.0) != Some(a)
        {
            skips.add(
                "server address",
                "Pyrogram keeps no address: it connects to the well-known address of the DC",
                a,
            );
        }
        tx.execute(
            "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?)",
            params![
                session.dc_id,
                session.api_id,
                session.test_mode,
                key,
                session.date,
                user,
                session.is_bot
            ],
        )
        .map_err(q("writing table sessions"))?;
    }
    counts.sessions = 1;
    if session.api_hash.is_some() {
        skips.add(
            "api_hash",
            &format!("{format} keeps it in code, not in the session file"),
            "session",
        );
    }
    for a in &snap.dc_auths {
        if a.dc_id != session.dc_id {
            skips.add(
                "DC auth keys",
                &format!(
                    "{format} keeps the home DC's key only; other DCs get a new key when used"
                ),
                a.dc_id,
            );
        }
    }

    // peers and usernames
    let mut ins = tx
        .prepare(if kuri {
            "INSERT INTO peers (id, access_hash, type, phone_number, last_update_on) VALUES (?, ?, ?, ?, ?)"
        } else {
            "INSERT INTO peers (id, access_hash, type, username, phone_number, last_update_on) VALUES (?, ?, ?, ?, ?, ?)"
        })
        .map_err(q("writing table peers"))?;
    let mut ins_name = if kuri {
        Some(
            tx.prepare("INSERT INTO usernames (id, username) VALUES (?, ?)")
                .map_err(q("writing table usernames"))?,
        )
    } else {
        None
    };
    let now = super::unix_now();
    for p in &snap.peers {
        if skip_min(p, format, skips) {
            continue;
        }
        skip_unheld(p, format, HOLDS, skips);
        let ty = match (p.id.kind(), p.channel_kind) {
            (PeerKind::User, _) => {
                if p.is_bot {
                    "bot"
                } else {
                    "user"
                }
            }
            (PeerKind::Chat, _) => "group",
            (PeerKind::Channel, Some(ChannelKind::Broadcast)) => "channel",
            (PeerKind::Channel, Some(ChannelKind::Megagroup)) => "supergroup",
            (PeerKind::Channel, Some(ChannelKind::Gigagroup)) => {
                skips.add(
                    "peer types",
                    "Pyrogram has no gigagroup type: written as \"supergroup\", as Pyrogram does",
                    p.id,
                );
                "supergroup"
            }
            (PeerKind::Channel, None) => {
                skips.add(
                    "peer types",
                    "the channel's kind is unknown: written as \"channel\"",
                    p.id,
                );
                "channel"
            }
        };
        let hash = match p.id.kind() {
            PeerKind::Chat => Some(0),
            _ => p.access_hash,
        };
        let phone = phone_digits(p);
        let updated = if p.updated_at != 0 { p.updated_at } else { now };
        counts.peers += 1;
        counts.phones += u64::from(phone.is_some());
        match &mut ins_name {
            Some(ins_name) => {
                ins.execute(params![p.id.bot_api(), hash, ty, phone, updated])
                    .map_err(q("writing table peers"))?;
                for u in p.username.iter().chain(&p.usernames) {
                    ins_name
                        .execute(params![p.id.bot_api(), u.to_ascii_lowercase()])
                        .map_err(q("writing table usernames"))?;
                    counts.usernames += 1;
                }
            }
            None => {
                skip_extra_usernames(p, format, skips);
                let username = first_username(p);
                counts.usernames += u64::from(username.is_some());
                ins.execute(params![p.id.bot_api(), hash, ty, username, phone, updated])
                    .map_err(q("writing table peers"))?;
            }
        }
    }
    drop(ins);
    drop(ins_name);

    // update_state
    if kuri {
        if let Some(u) = &snap.update_state {
            tx.execute(
                "INSERT INTO update_state (id, pts, qts, date, seq) VALUES (?, ?, ?, ?, ?)",
                params![0i64, u.pts, u.qts, u.date, u.seq],
            )
            .map_err(q("writing table update_state"))?;
            counts.update_states = 1;
        }
        let mut ins = tx
            .prepare("INSERT INTO update_state (id, pts, qts, date, seq) VALUES (?, ?, NULL, NULL, NULL)")
            .map_err(q("writing table update_state"))?;
        for c in &snap.channels {
            match PeerId::try_channel(c.channel_id) {
                Some(id) => {
                    ins.execute(params![id.bot_api(), c.pts])
                        .map_err(q("writing table update_state"))?;
                    counts.channel_pts += 1;
                }
                None => skips.add(
                    "channel pts",
                    "the channel id has no Bot API id (a monoforum)",
                    c.channel_id,
                ),
            }
        }
    } else {
        skips.add_n(
            "update state",
            "Pyrogram 2.0.106 keeps no update state (export as Kurigram to keep it)",
            u64::from(snap.update_state.is_some()),
            None,
        );
        skips.add_n(
            "channel pts",
            "Pyrogram 2.0.106 keeps no update state (export as Kurigram to keep it)",
            snap.channels.len() as u64,
            None,
        );
    }
    tx.commit().map_err(q("writing the session file"))?;
    Ok((version, counts))
}
