//! Telethon's `SQLiteSession` files, schema version 7.
//!
//! Source: Telethon 1.37.0, `telethon/sessions/sqlite.py` on the `v1`
//! branch (commit `85c4a9131727663a596b8daabcc71c86a9bb4380`,
//! 2024-10-24), and `telethon/client/telegrambaseclient.py` for what the
//! rows mean:
//! - `sessions`: one row, `(dc_id, server_address, port, auth_key,
//!   takeout_id)`; `auth_key` is `b''` when there is none;
//! - `entities`: `(id, hash, username, phone, name, date)`, `id` the marked
//!   (Bot API) id, `hash` 0 for basic chats, `username` lowercased; the row
//!   `id = 0` holds the logged-in user's id in `hash`;
//! - `update_state`: `(id, pts, qts, date, seq)`, `id = 0` the account's
//!   state, any other id a channel's bare id (only its pts matters);
//!   `date` is written as `datetime.timestamp()`, a REAL;
//! - `sent_files`: the upload cache, which peerlog does not keep.

use std::net::IpAddr;
use std::path::Path;

use rusqlite::types::Value;
use rusqlite::{Connection, params};

use super::{
    Counts, Holds, Names, SessionFileError, SessionFileFormat, Skips, Snapshot, auth_key,
    bad_value, dc_id, display_name, first_username, int32, is_test_address, peer_id, phone_digits,
    require_tables, set_names, skip_extra_usernames, skip_min, skip_unheld, sqlite_err,
    text_or_int,
};
use crate::{ChannelState, Peer, PeerKind, Result, Session, UpdateState};

const F: SessionFileFormat = SessionFileFormat::Telethon;

/// `CURRENT_VERSION` of `sqlite.py`.
pub(crate) const VERSION: i64 = 7;

/// The tables `SQLiteSession` creates (`'create table {}'.format(...)` of
/// each), verbatim.
pub(crate) const SCHEMA: [&str; 5] = [
    "version (version integer primary key)",
    "sessions (
                    dc_id integer primary key,
                    server_address text,
                    port integer,
                    auth_key blob,
                    takeout_id integer
                )",
    "entities (
                    id integer primary key,
                    hash integer not null,
                    username text,
                    phone integer,
                    name text,
                    date integer
                )",
    "sent_files (
                    md5_digest blob,
                    file_size integer,
                    type integer,
                    id integer,
                    hash integer,
                    primary key(md5_digest, file_size, type)
                )",
    "update_state (
                    id integer primary key,
                    pts integer,
                    qts integer,
                    date integer,
                    seq integer
                )",
];

pub(crate) fn read(conn: &Connection, path: &Path, skips: &mut Skips) -> Result<(i64, Snapshot)> {
    let q = |ctx| sqlite_err(path, ctx);
    require_tables(conn, path, F, &["version"])?;
    let version: Option<i64> = conn
        .query_row("SELECT max(version) FROM version", [], |r| r.get(0))
        .map_err(q("reading the schema version"))?;
    let version = version.ok_or_else(|| SessionFileError::Missing {
        path: path.to_path_buf(),
        format: F,
        what: "a row in table `version`".into(),
    })?;
    if version != VERSION {
        return Err(SessionFileError::UnsupportedVersion {
            path: path.to_path_buf(),
            format: F,
            found: version,
            supported: "7",
            hint: if version < VERSION {
                "; open it once with Telethon 1.x, which upgrades it to 7, then import it"
            } else {
                ""
            },
        }
        .into());
    }
    require_tables(
        conn,
        path,
        F,
        &["sessions", "entities", "sent_files", "update_state"],
    )?;
    let mut snap = Snapshot::default();

    // sessions
    let mut stmt = conn
        .prepare("SELECT dc_id, server_address, port, auth_key, takeout_id FROM sessions")
        .map_err(q("reading table sessions"))?;
    let mut rows = stmt.query([]).map_err(q("reading table sessions"))?;
    let mut n = 0;
    while let Some(r) = rows.next().map_err(q("reading table sessions"))? {
        n += 1;
        if n > 1 {
            return Err(bad_value(
                path,
                "table sessions has more than one row; Telethon keeps one",
            ));
        }
        let err = q("reading table sessions");
        let dc: i64 = r.get(0).map_err(err)?;
        let dc = dc_id(path, "sessions.dc_id", dc)?;
        let addr: Option<String> = r.get(1).map_err(q("reading table sessions"))?;
        let server_addr = match addr.as_deref() {
            None | Some("") => None,
            Some(a) => Some(a.parse::<IpAddr>().map_err(|_| {
                bad_value(
                    path,
                    format!("sessions.server_address {a:?} is not an IP address"),
                )
            })?),
        };
        let port: Option<i64> = r.get(2).map_err(q("reading table sessions"))?;
        let port = match port {
            None => 0,
            Some(p) => u16::try_from(p)
                .map_err(|_| bad_value(path, format!("sessions.port {p} is not a port")))?,
        };
        let key: Option<Vec<u8>> = r.get(3).map_err(q("reading table sessions"))?;
        let key = auth_key(path, "sessions.auth_key", key)?;
        let takeout: Option<i64> = r.get(4).map_err(q("reading table sessions"))?;
        if let Some(t) = takeout {
            skips.add(
                "takeout_id",
                "peerlog keeps no takeout session; start a new takeout after the move",
                t,
            );
        }
        let mut s = Session::new(dc, is_test_address(dc, server_addr));
        s.server_addr = server_addr;
        s.port = port;
        s.auth_key = key;
        snap.session = Some(s);
    }
    drop(rows);
    drop(stmt);

    // entities
    let mut stmt = conn
        .prepare("SELECT id, hash, username, phone, name, date FROM entities ORDER BY id")
        .map_err(q("reading table entities"))?;
    let mut rows = stmt.query([]).map_err(q("reading table entities"))?;
    while let Some(r) = rows.next().map_err(q("reading table entities"))? {
        let e = |e| q("reading table entities")(e);
        let id: i64 = r.get(0).map_err(e)?;
        let hash: i64 = r.get(1).map_err(e)?;
        let username: Option<String> = r.get(2).map_err(e)?;
        let phone: Value = r.get(3).map_err(e)?;
        let name: Option<String> = r.get(4).map_err(e)?;
        let date: Value = r.get(5).map_err(e)?;
        if id == 0 {
            // Telethon's record of the logged-in user; its date (when the
            // client last saved itself) is kept as the session's date.
            match (&mut snap.session, crate::PeerId::try_user(hash)) {
                (Some(s), Some(_)) => {
                    s.user_id = Some(hash);
                    s.date = i64::from(int32(path, "entities.date", date)?);
                }
                _ => skips.add(
                    "entities rows",
                    "the self-user row (id 0) names no valid user id, or the file has no session",
                    hash,
                ),
            }
            continue;
        }
        let Some(pid) = peer_id(id, "entities", skips) else {
            continue;
        };
        let mut p = Peer::new(pid);
        match pid.kind() {
            PeerKind::Chat => {
                if hash != 0 {
                    skips.add(
                        "access hashes",
                        "a basic chat has no access hash (Telethon writes 0)",
                        pid,
                    );
                }
            }
            PeerKind::User | PeerKind::Channel => p.access_hash = Some(hash),
        }
        p.first_name = name.filter(|n| !n.is_empty());
        p.updated_at = i64::from(int32(path, "entities.date", date)?);
        set_names(&mut p, username, text_or_int(phone), skips);
        snap.peers.push(p);
    }
    drop(rows);
    drop(stmt);
    if let Some(me) = snap.session.as_ref().and_then(|s| s.user_id) {
        for p in snap.peers.iter_mut().filter(|p| p.id.bot_api() == me) {
            p.is_self = true;
        }
    }

    // sent_files
    let files: i64 = conn
        .query_row("SELECT count(*) FROM sent_files", [], |r| r.get(0))
        .map_err(q("reading table sent_files"))?;
    skips.add_n(
        "sent_files rows",
        "peerlog keeps no cache of uploaded files; Telethon uploads such a file again on its next send",
        files as u64,
        None,
    );

    // update_state
    let mut stmt = conn
        .prepare("SELECT id, pts, qts, date, seq FROM update_state ORDER BY id")
        .map_err(q("reading table update_state"))?;
    let mut rows = stmt.query([]).map_err(q("reading table update_state"))?;
    while let Some(r) = rows.next().map_err(q("reading table update_state"))? {
        let e = |e| q("reading table update_state")(e);
        let id: i64 = r.get(0).map_err(e)?;
        let pts = int32(path, "update_state.pts", r.get(1).map_err(e)?)?;
        let qts = int32(path, "update_state.qts", r.get(2).map_err(e)?)?;
        let raw_date: Value = r.get(3).map_err(e)?;
        if id == 0 && matches!(raw_date, Value::Real(x) if x.fract() != 0.0) {
            skips.add(
                "update_state.date fraction",
                "peerlog keeps the date in whole seconds (as Telegram sends it)",
                0,
            );
        }
        let date = int32(path, "update_state.date", raw_date)?;
        let seq = int32(path, "update_state.seq", r.get(4).map_err(e)?)?;
        if id == 0 {
            snap.update_state = Some(UpdateState {
                pts,
                qts,
                date,
                seq,
            });
        } else if crate::types::check_channel_id(id).is_ok() && id > 0 {
            snap.channels.push(ChannelState {
                channel_id: id,
                pts,
            });
        } else {
            skips.add(
                "update_state rows",
                "the id is neither 0 (the account) nor a bare channel id",
                id,
            );
        }
    }
    if !snap.channels.is_empty() {
        skips.add_n(
            "channel update_state qts/date/seq",
            "peerlog keeps only a channel's pts (Telethon reads only that too)",
            snap.channels.len() as u64,
            None,
        );
    }
    Ok((version, snap))
}

pub(crate) fn write(
    conn: &Connection,
    path: &Path,
    session: &Session,
    snap: &Snapshot,
    skips: &mut Skips,
) -> Result<(i64, Counts)> {
    let q = |ctx| sqlite_err(path, ctx);
    let mut counts = Counts::default();
    let tx = conn
        .unchecked_transaction()
        .map_err(q("writing the session file"))?;
    for ddl in SCHEMA {
        tx.execute(&format!("create table {ddl}"), [])
            .map_err(q("creating the tables"))?;
    }
    tx.execute("insert into version values (?)", [VERSION])
        .map_err(q("writing table version"))?;

    // sessions
    let known = crate::dc_address(session.dc_id, session.test_mode);
    let addr = match (session.server_addr, known) {
        (Some(a), _) => Some(a),
        (None, Some((a, _))) => {
            skips.add(
                "server address",
                "the session had none; the well-known address of its DC was written (Telethon needs one)",
                a,
            );
            Some(a)
        }
        (None, None) => None,
    };
    let port = match (session.port, known) {
        (0, Some((_, p))) => p,
        (p, _) => p,
    };
    if session.test_mode && !super::is_test_address(session.dc_id, addr) {
        skips.add(
            "test_mode",
            "Telethon has no test-mode flag and the address is not a well-known test DC's",
            session.dc_id,
        );
    }
    let key: Vec<u8> = session
        .auth_key
        .as_ref()
        .map_or_else(Vec::new, |k| k.as_bytes().to_vec());
    tx.execute(
        "insert or replace into sessions values (?,?,?,?,?)",
        params![
            session.dc_id,
            addr.map(|a| a.to_string()),
            port,
            key,
            Option::<i64>::None
        ],
    )
    .map_err(q("writing table sessions"))?;
    counts.sessions = 1;
    if session.api_id != 0 || session.api_hash.is_some() {
        skips.add(
            "api_id/api_hash",
            "Telethon keeps them in code, not in the session file",
            "session",
        );
    }
    if session.is_bot {
        skips.add(
            "bot flag",
            "Telethon's session file does not say whether the account is a bot (it asks Telegram)",
            "session",
        );
    }

    // entities
    let mut ins = tx
        .prepare("insert or replace into entities values (?,?,?,?,?,?)")
        .map_err(q("writing table entities"))?;
    if let Some(me) = session.user_id {
        ins.execute(params![
            0i64,
            me,
            Option::<String>::None,
            Option::<String>::None,
            Option::<String>::None,
            (session.date != 0).then_some(session.date)
        ])
        .map_err(q("writing table entities"))?;
    }
    for p in &snap.peers {
        if skip_min(p, F, skips) {
            continue;
        }
        let hash = match p.id.kind() {
            PeerKind::Chat => 0,
            _ => match p.access_hash {
                Some(h) => h,
                None => {
                    skips.add(
                        "peers",
                        "no access hash: Telethon keeps no user or channel without one",
                        p.id,
                    );
                    continue;
                }
            },
        };
        skip_extra_usernames(p, F, skips);
        skip_unheld(p, F, HOLDS, skips);
        let username = first_username(p);
        let phone = phone_digits(p);
        counts.peers += 1;
        counts.usernames += u64::from(username.is_some());
        counts.phones += u64::from(phone.is_some());
        ins.execute(params![
            p.id.bot_api(),
            hash,
            username,
            phone,
            display_name(p),
            (p.updated_at != 0).then_some(p.updated_at)
        ])
        .map_err(q("writing table entities"))?;
    }
    drop(ins);

    // update_state
    let date = snap.update_state.map_or(0, |u| u.date);
    if let Some(u) = &snap.update_state {
        tx.execute(
            "insert or replace into update_state values (?,?,?,?,?)",
            params![0i64, u.pts, u.qts, f64::from(u.date), u.seq],
        )
        .map_err(q("writing table update_state"))?;
        counts.update_states = 1;
    }
    let mut ins = tx
        .prepare("insert or replace into update_state values (?,?,?,?,?)")
        .map_err(q("writing table update_state"))?;
    for c in &snap.channels {
        if c.channel_id <= 0 {
            continue;
        }
        ins.execute(params![c.channel_id, c.pts, 0, f64::from(date), 0])
            .map_err(q("writing table update_state"))?;
        counts.channel_pts += 1;
    }
    drop(ins);
    skip_unexported_extras(snap, skips);
    tx.commit().map_err(q("writing the session file"))?;
    Ok((VERSION, counts))
}

/// What an `entities` row keeps besides id, hash, username and phone: a
/// display name and a date.
const HOLDS: Holds = Holds {
    names: Names::Display,
    bot_flag: false,
    channel_kind: false,
    updated_at: true,
};

/// Per-DC keys other than the home DC's: Telethon keeps one.
fn skip_unexported_extras(snap: &Snapshot, skips: &mut Skips) {
    let home = snap.session.as_ref().map(|s| s.dc_id);
    for a in &snap.dc_auths {
        if Some(a.dc_id) != home {
            skips.add(
                "DC auth keys",
                "Telethon keeps the home DC's key only; other DCs get a new key when used",
                a.dc_id,
            );
        }
    }
}
