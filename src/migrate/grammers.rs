//! grammers' `SqliteSession` files (grammers-session 0.11.0, crates.io,
//! `src/storages/sqlite.rs`; `PRAGMA user_version` 1).
//!
//! - `dc_home (dc_id)`: one row, the home DC;
//! - `dc_option (dc_id, ipv4, ipv6, auth_key)`: socket addresses as text
//!   (`"149.154.167.51:443"`, `"[2001:67c:4e8:f002::a]:443"`), the key NULL
//!   or 256 bytes;
//! - `peer_info (peer_id, hash, subtype)`: the Bot API dialog id; the
//!   access hash (NULL unknown, 0 for basic chats); `subtype` bits: users 1
//!   self, 2 bot; channels 4 megagroup, 8 broadcast, 12 gigagroup, 16
//!   community;
//! - `update_state (pts, qts, date, seq)`: one row;
//! - `channel_state (peer_id, pts)`: the bare channel id.
//!
//! In the account, DC addresses live in the metadata key `grammers/dc/<id>`
//! with the layout peerlog's grammers adapter (`src/grammers.rs`,
//! `encode_addrs`) uses, so an imported account opens as the same grammers
//! session.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use super::{
    Counts, Holds, Names, SessionFileError, SessionFileFormat, Skips, Snapshot, auth_key,
    bad_value, dc_id, is_test_address, peer_id, require_tables, skip_unheld, sqlite_err,
};

/// What a `peer_info` row keeps besides id and hash: the subtype (bot,
/// self, channel kind).
const HOLDS: Holds = Holds {
    names: Names::None,
    bot_flag: true,
    channel_kind: true,
    updated_at: false,
};
pub(crate) use crate::grammers_meta::{DC_PREFIX, dc_key};
use crate::{
    AuthKey, ChannelKind, ChannelState, DcAuth, Error, Peer, PeerKind, Result, Session,
    Transaction, UpdateState,
};

const F: SessionFileFormat = SessionFileFormat::Grammers;

/// grammers' `VERSION`, in `PRAGMA user_version`.
pub(crate) const VERSION: i64 = 1;

/// The tables `SqliteSession` creates (`migrate_v0_to_v1`), verbatim.
pub(crate) const SCHEMA: [&str; 5] = [
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

const USER_SELF: i64 = 1;
const USER_BOT: i64 = 2;
const MEGAGROUP: i64 = 4;
const BROADCAST: i64 = 8;
const GIGAGROUP: i64 = 12;

/// grammers' two addresses of one DC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DcOpt {
    pub(crate) id: i32,
    pub(crate) ipv4: SocketAddrV4,
    pub(crate) ipv6: SocketAddrV6,
}

impl DcOpt {
    /// Version 1, IPv4 address and port, IPv6 address, port, flow info and
    /// scope id (little-endian): the grammers adapter's `encode_addrs`.
    pub(crate) fn encode(&self) -> Vec<u8> {
        crate::grammers_meta::encode_dc_addrs(self.ipv4, self.ipv6)
    }

    fn decode(id: i32, buf: &[u8]) -> Option<DcOpt> {
        let (ipv4, ipv6) = crate::grammers_meta::decode_dc_addrs(buf).ok()?;
        Some(DcOpt { id, ipv4, ipv6 })
    }
}

/// The DC addresses an account keeps for grammers, by id.
pub(crate) fn stored_options(tx: &Transaction<'_>) -> Result<Vec<DcOpt>> {
    let mut out = Vec::new();
    for (k, v) in tx.stored_meta_prefix(DC_PREFIX)? {
        let key = String::from_utf8_lossy(&k).into_owned();
        let opt = key
            .parse::<i32>()
            .ok()
            .and_then(|id| DcOpt::decode(id, &v))
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "metadata key {DC_PREFIX}{key} does not hold grammers DC addresses"
                ))
            })?;
        out.push(opt);
    }
    out.sort_by_key(|o| o.id);
    Ok(out)
}

/// grammers' statically known production DCs (`KNOWN_DC_OPTIONS` of
/// grammers-session 0.11 `src/dc_options.rs`).
fn known_option(id: i32) -> Option<DcOpt> {
    let v4 = |a, b, c, d| SocketAddrV4::new(Ipv4Addr::new(a, b, c, d), 443);
    let v6 = |b: u16, c: u16, d: u16| {
        SocketAddrV6::new(Ipv6Addr::new(0x2001, b, c, d, 0, 0, 0, 0xa), 443, 0, 0)
    };
    let (ipv4, ipv6) = match id {
        1 => (v4(149, 154, 175, 53), v6(0xb28, 0xf23d, 0xf001)),
        2 => (v4(149, 154, 167, 41), v6(0x67c, 0x4e8, 0xf002)),
        3 => (v4(149, 154, 175, 100), v6(0xb28, 0xf23d, 0xf003)),
        4 => (v4(149, 154, 167, 92), v6(0x67c, 0x4e8, 0xf004)),
        5 => (v4(91, 108, 56, 104), v6(0xb28, 0xf23f, 0xf005)),
        _ => return None,
    };
    Some(DcOpt { id, ipv4, ipv6 })
}

fn parse_v4(path: &Path, id: i32, s: &str) -> Result<SocketAddrV4> {
    match s.parse::<SocketAddr>() {
        Ok(SocketAddr::V4(a)) => Ok(a),
        _ => Err(bad_value(
            path,
            format!("dc_option.ipv4 {s:?} of DC {id} is not an IPv4 socket address"),
        )),
    }
}

fn parse_v6(path: &Path, id: i32, s: &str) -> Result<SocketAddrV6> {
    match s.parse::<SocketAddr>() {
        Ok(SocketAddr::V6(a)) => Ok(a),
        _ => Err(bad_value(
            path,
            format!("dc_option.ipv6 {s:?} of DC {id} is not an IPv6 socket address"),
        )),
    }
}

pub(crate) fn read(conn: &Connection, path: &Path, skips: &mut Skips) -> Result<(i64, Snapshot)> {
    let q = |ctx| sqlite_err(path, ctx);
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(q("reading the schema version"))?;
    if version != VERSION {
        return Err(SessionFileError::UnsupportedVersion {
            path: path.to_path_buf(),
            format: F,
            found: version,
            supported: "1 (grammers-session 0.11)",
            hint: "",
        }
        .into());
    }
    require_tables(
        conn,
        path,
        F,
        &[
            "dc_home",
            "dc_option",
            "peer_info",
            "update_state",
            "channel_state",
        ],
    )?;
    let mut snap = Snapshot::default();

    let home: Option<i64> = conn
        .query_row("SELECT dc_id FROM dc_home LIMIT 1", [], |r| r.get(0))
        .optional()
        .map_err(q("reading table dc_home"))?;

    let mut keys: Vec<(i32, AuthKey)> = Vec::new();
    let mut stmt = conn
        .prepare("SELECT dc_id, ipv4, ipv6, auth_key FROM dc_option ORDER BY dc_id")
        .map_err(q("reading table dc_option"))?;
    let mut rows = stmt.query([]).map_err(q("reading table dc_option"))?;
    while let Some(r) = rows.next().map_err(q("reading table dc_option"))? {
        let e = |e| q("reading table dc_option")(e);
        let id = dc_id(path, "dc_option.dc_id", r.get(0).map_err(e)?)?;
        let ipv4 = parse_v4(path, id, &r.get::<_, String>(1).map_err(e)?)?;
        let ipv6 = parse_v6(path, id, &r.get::<_, String>(2).map_err(e)?)?;
        let key = auth_key(path, "dc_option.auth_key", r.get(3).map_err(e)?)?;
        snap.dc_options.push(DcOpt { id, ipv4, ipv6 });
        if let Some(k) = key {
            keys.push((id, k));
        }
    }
    drop(rows);
    drop(stmt);

    // The session: the home DC, with its IPv4 address and key mirrored, as
    // the grammers adapter keeps it. A file without `dc_home` row is a
    // session that never chose a home: grammers uses DC 2.
    let home = match home {
        Some(h) => dc_id(path, "dc_home.dc_id", h)?,
        None => 2,
    };
    let home_opt = snap.dc_options.iter().find(|o| o.id == home).copied();
    let addr = home_opt.map(|o| IpAddr::V4(*o.ipv4.ip()));
    let mut s = Session::new(home, is_test_address(home, addr));
    s.server_addr = addr;
    s.port = home_opt.map_or(0, |o| o.ipv4.port());
    s.auth_key = keys
        .iter()
        .find(|(id, _)| *id == home)
        .map(|(_, k)| k.clone());
    for (id, key) in keys {
        let o = snap.dc_options.iter().find(|o| o.id == id).copied();
        snap.dc_auths.push(DcAuth {
            dc_id: id,
            auth_key: key,
            server_salt: 0,
            server_addr: o.map(|o| IpAddr::V4(*o.ipv4.ip())),
            port: o.map_or(0, |o| o.ipv4.port()),
        });
    }

    let mut stmt = conn
        .prepare("SELECT peer_id, hash, subtype FROM peer_info ORDER BY peer_id")
        .map_err(q("reading table peer_info"))?;
    let mut rows = stmt.query([]).map_err(q("reading table peer_info"))?;
    let mut selves = Vec::new();
    while let Some(r) = rows.next().map_err(q("reading table peer_info"))? {
        let e = |e| q("reading table peer_info")(e);
        let id: i64 = r.get(0).map_err(e)?;
        let hash: Option<i64> = r.get(1).map_err(e)?;
        let subtype: Option<i64> = r.get(2).map_err(e)?;
        let Some(pid) = peer_id(id, "peer_info", skips) else {
            continue;
        };
        let mut p = Peer::new(pid);
        match pid.kind() {
            PeerKind::User => {
                p.access_hash = hash;
                let st = subtype.unwrap_or(0);
                p.is_bot = st & USER_BOT != 0;
                p.is_self = st & USER_SELF != 0;
                if p.is_self {
                    selves.push((pid.bare_id(), p.is_bot));
                }
            }
            PeerKind::Chat => {
                if hash.is_some_and(|h| h != 0) {
                    skips.add(
                        "access hashes",
                        "a basic chat has no access hash (grammers writes 0)",
                        pid,
                    );
                }
            }
            PeerKind::Channel => {
                p.access_hash = hash;
                p.channel_kind = match subtype {
                    None => None,
                    Some(st) if st & GIGAGROUP == GIGAGROUP => Some(ChannelKind::Gigagroup),
                    Some(st) if st & BROADCAST != 0 => Some(ChannelKind::Broadcast),
                    Some(st) if st & MEGAGROUP != 0 => Some(ChannelKind::Megagroup),
                    Some(st) => {
                        skips.add(
                            "peer subtypes",
                            "a channel subtype peerlog has no kind for (grammers' community, 16): kept as unknown, written back as NULL",
                            format!("{pid} ({st})"),
                        );
                        None
                    }
                };
            }
        }
        snap.peers.push(p);
    }
    drop(rows);
    drop(stmt);
    // grammers' own rule for the self user: the lowest id marked self.
    if let Some(&(me, bot)) = selves.iter().min() {
        s.user_id = Some(me);
        s.is_bot = bot;
    }
    snap.session = Some(s);

    let state: Option<(i64, i64, i64, i64)> = conn
        .query_row(
            "SELECT pts, qts, date, seq FROM update_state LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()
        .map_err(q("reading table update_state"))?;
    if let Some((pts, qts, date, seq)) = state {
        let i = |what: &str, v: i64| {
            i32::try_from(v)
                .map_err(|_| bad_value(path, format!("update_state.{what} {v} is out of range")))
        };
        snap.update_state = Some(UpdateState {
            pts: i("pts", pts)?,
            qts: i("qts", qts)?,
            date: i("date", date)?,
            seq: i("seq", seq)?,
        });
    }
    let mut stmt = conn
        .prepare("SELECT peer_id, pts FROM channel_state ORDER BY peer_id")
        .map_err(q("reading table channel_state"))?;
    let mut rows = stmt.query([]).map_err(q("reading table channel_state"))?;
    while let Some(r) = rows.next().map_err(q("reading table channel_state"))? {
        let e = |e| q("reading table channel_state")(e);
        let id: i64 = r.get(0).map_err(e)?;
        let pts: i64 = r.get(1).map_err(e)?;
        let pts = i32::try_from(pts)
            .map_err(|_| bad_value(path, format!("channel_state.pts {pts} is out of range")))?;
        if crate::types::check_channel_id(id).is_ok() && id > 0 {
            snap.channels.push(ChannelState {
                channel_id: id,
                pts,
            });
        } else {
            skips.add("channel_state rows", "not a bare channel id", id);
        }
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
        tx.execute(ddl, []).map_err(q("creating the tables"))?;
    }
    tx.pragma_update(None, "user_version", VERSION)
        .map_err(q("writing the schema version"))?;
    tx.execute("INSERT INTO dc_home VALUES (?1)", [session.dc_id])
        .map_err(q("writing table dc_home"))?;

    // DC options: the stored addresses; else the key's address; else
    // grammers' known ones. Keys: the DC auths, and the session's for home.
    let mut opts: Vec<DcOpt> = snap.dc_options.clone();
    let mut filled = Vec::new();
    let mut add_from = |id: i32, addr: Option<IpAddr>, port: u16, opts: &mut Vec<DcOpt>| {
        if opts.iter().any(|o| o.id == id) {
            return;
        }
        let known = known_option(id).filter(|_| !session.test_mode);
        let ipv4 = match (addr, known) {
            (Some(IpAddr::V4(a)), _) => SocketAddrV4::new(a, port),
            (_, Some(k)) => k.ipv4,
            _ => SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port),
        };
        let ipv6 = match (addr, known) {
            (Some(IpAddr::V6(a)), _) => SocketAddrV6::new(a, port, 0, 0),
            (_, Some(k)) => k.ipv6,
            _ => SocketAddrV6::new(ipv4.ip().to_ipv6_mapped(), ipv4.port(), 0, 0),
        };
        filled.push(id);
        opts.push(DcOpt { id, ipv4, ipv6 });
    };
    add_from(session.dc_id, session.server_addr, session.port, &mut opts);
    for a in &snap.dc_auths {
        add_from(a.dc_id, a.server_addr, a.port, &mut opts);
    }
    if snap.dc_options.is_empty() && !session.test_mode {
        // A grammers session lists every DC (SessionData::default()).
        for id in 1..=5 {
            add_from(id, None, 443, &mut opts);
        }
    }
    opts.sort_by_key(|o| o.id);
    if !filled.is_empty() {
        skips.add_n(
            "DC addresses",
            "the account kept no grammers addresses for these DCs: written from the session's address, else grammers' known ones",
            filled.len() as u64,
            Some(format!("{filled:?}")),
        );
    }
    let mut ins = tx
        .prepare("INSERT OR REPLACE INTO dc_option VALUES (?1, ?2, ?3, ?4)")
        .map_err(q("writing table dc_option"))?;
    for o in &opts {
        let key = snap
            .dc_auths
            .iter()
            .find(|a| a.dc_id == o.id)
            .map(|a| &a.auth_key)
            .or(if o.id == session.dc_id {
                session.auth_key.as_ref()
            } else {
                None
            })
            .map(|k| k.as_bytes().to_vec());
        counts.dc_auths += u64::from(key.is_some());
        counts.dc_options += 1;
        ins.execute(params![o.id, o.ipv4.to_string(), o.ipv6.to_string(), key])
            .map_err(q("writing table dc_option"))?;
    }
    drop(ins);
    counts.sessions = 1;
    if session.api_id != 0 || session.api_hash.is_some() {
        skips.add(
            "api_id/api_hash",
            "grammers keeps them in code, not in the session file",
            "session",
        );
    }

    let mut ins = tx
        .prepare("INSERT OR REPLACE INTO peer_info VALUES (?1, ?2, ?3)")
        .map_err(q("writing table peer_info"))?;
    for p in &snap.peers {
        skip_unheld(p, F, HOLDS, skips);
        let (hash, subtype) = match p.id.kind() {
            PeerKind::User => {
                let me = p.is_self || session.user_id == Some(p.id.bare_id());
                let st = i64::from(p.is_bot) * USER_BOT + i64::from(me) * USER_SELF;
                (p.access_hash, (st != 0).then_some(st))
            }
            PeerKind::Chat => (Some(0), None),
            PeerKind::Channel => (
                p.access_hash,
                p.channel_kind.map(|k| match k {
                    ChannelKind::Megagroup => MEGAGROUP,
                    ChannelKind::Broadcast => BROADCAST,
                    ChannelKind::Gigagroup => GIGAGROUP,
                }),
            ),
        };
        let hash = if p.min {
            skips.add(
                "min access hashes",
                "grammers keeps no min hash (its own rule): the peer is written with a NULL hash",
                p.id,
            );
            None
        } else {
            hash
        };
        let names = u64::from(p.username.is_some()) + p.usernames.len() as u64;
        skips.add_n(
            "usernames",
            "grammers' session file keeps no usernames",
            names,
            (names > 0).then(|| p.id.to_string()),
        );
        skips.add_n(
            "phones",
            "grammers' session file keeps no phone numbers",
            u64::from(p.phone.is_some()),
            p.phone.is_some().then(|| p.id.to_string()),
        );
        ins.execute(params![p.id.bot_api(), hash, subtype])
            .map_err(q("writing table peer_info"))?;
        counts.peers += 1;
    }
    drop(ins);

    if let Some(u) = &snap.update_state {
        tx.execute(
            "INSERT INTO update_state VALUES (?1, ?2, ?3, ?4)",
            params![u.pts, u.qts, u.date, u.seq],
        )
        .map_err(q("writing table update_state"))?;
        counts.update_states = 1;
    }
    let mut ins = tx
        .prepare("INSERT OR REPLACE INTO channel_state VALUES (?1, ?2)")
        .map_err(q("writing table channel_state"))?;
    for c in &snap.channels {
        ins.execute(params![c.channel_id, c.pts])
            .map_err(q("writing table channel_state"))?;
        counts.channel_pts += 1;
    }
    drop(ins);
    tx.commit().map_err(q("writing the session file"))?;
    Ok((VERSION, counts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dc_opt_round_trip() {
        let o = known_option(2).unwrap();
        assert_eq!(DcOpt::decode(2, &o.encode()), Some(o));
        assert_eq!(DcOpt::decode(2, &o.encode()[1..]), None);
    }
}
