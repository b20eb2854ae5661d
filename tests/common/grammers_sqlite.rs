//! Reads a grammers `SqliteSession` file (grammers-session 0.11, schema
//! `user_version` 1) into a `SessionData`, straight from its tables, the way
//! `SqliteSession` itself reads them. `SqliteSession` cannot list its peers
//! through the `Session` trait, so a migration reads the tables.
//!
//! Shared by `tests/grammers.rs` and `examples/grammers_switch.rs`.

use std::path::Path;

use grammers_session::SessionData;
use grammers_session::types::{
    ChannelKind, ChannelState, DcOption, PeerAuth, PeerId, PeerInfo, PeerKind,
};

/// Any error of the reader.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

// `PeerSubtype` bits of grammers' SQLite storage.
const USER_SELF: i64 = 1;
const USER_BOT: i64 = 2;
const MEGAGROUP: i64 = 4;
const BROADCAST: i64 = 8;
const GIGAGROUP: i64 = 12;

/// Everything a grammers SQLite session file holds.
pub async fn read_grammers_sqlite(path: &Path) -> Result<SessionData, BoxError> {
    if !path.is_file() {
        return Err(format!("{} is not a file", path.display()).into());
    }
    let db = libsql::Builder::new_local(path).build().await?;
    let conn = db.connect()?;

    let mut rows = conn.query("PRAGMA user_version", ()).await?;
    let version: i64 = match rows.next().await? {
        Some(row) => row.get(0)?,
        None => 0,
    };
    if version != 1 {
        return Err(format!("not a grammers 0.11 session (user_version {version})").into());
    }

    let mut data = SessionData::default();
    let mut rows = conn.query("SELECT dc_id FROM dc_home LIMIT 1", ()).await?;
    if let Some(row) = rows.next().await? {
        data.home_dc = row.get(0)?;
    }

    let mut rows = conn
        .query("SELECT dc_id, ipv4, ipv6, auth_key FROM dc_option", ())
        .await?;
    while let Some(row) = rows.next().await? {
        let auth_key = match row.get::<Option<Vec<u8>>>(3)? {
            None => None,
            Some(key) => Some(
                <[u8; 256]>::try_from(key.as_slice())
                    .map_err(|_| format!("auth key of {} bytes", key.len()))?,
            ),
        };
        let option = DcOption {
            id: row.get(0)?,
            ipv4: row.get::<String>(1)?.parse()?,
            ipv6: row.get::<String>(2)?.parse()?,
            auth_key,
        };
        data.dc_options.insert(option.id, option);
    }

    let mut rows = conn
        .query("SELECT peer_id, hash, subtype FROM peer_info", ())
        .await?;
    while let Some(row) = rows.next().await? {
        let dialog_id: i64 = row.get(0)?;
        let id = PeerId::from_bot_api_dialog_id(dialog_id)
            .ok_or_else(|| format!("peer id {dialog_id} out of range"))?;
        let bare = id.bare_id().ok_or("self-user sentinel stored")?;
        let auth = row.get::<Option<i64>>(1)?.map(PeerAuth::from_hash);
        let subtype = row.get::<Option<i64>>(2)?;
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
                // As `SqliteSession` reads it (it stores `Community` as 16
                // and reads that back as unknown).
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

    let mut rows = conn
        .query("SELECT pts, qts, date, seq FROM update_state LIMIT 1", ())
        .await?;
    if let Some(row) = rows.next().await? {
        data.updates_state.pts = row.get(0)?;
        data.updates_state.qts = row.get(1)?;
        data.updates_state.date = row.get(2)?;
        data.updates_state.seq = row.get(3)?;
    }
    let mut rows = conn
        .query(
            "SELECT peer_id, pts FROM channel_state ORDER BY peer_id",
            (),
        )
        .await?;
    while let Some(row) = rows.next().await? {
        data.updates_state.channels.push(ChannelState {
            id: row.get(0)?,
            pts: row.get(1)?,
        });
    }
    Ok(data)
}
