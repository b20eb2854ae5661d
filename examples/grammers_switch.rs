//! Switching a grammers client from its SQLite (libsql) session to peerlog,
//! and moving an existing grammers session file over.
//!
//! ```sh
//! # Demo: writes a grammers SQLite session (with rusqlite, in the layout
//! # grammers' `SqliteSession` uses), migrates it, shows the result.
//! cargo run --example grammers_switch --features grammers
//! # Migrate your own grammers session file into a peerlog file.
//! cargo run --example grammers_switch --features grammers -- bot.session bot.peerlog
//! ```
//!
//! The switch in a grammers client is one line:
//!
//! ```ignore
//! // Before: grammers' default storage, SQLite through libsql (C code).
//! let session = Arc::new(SqliteSession::open("bot.session").await?);
//! // After: one pure-Rust peerlog file.
//! let session = Arc::new(peerlog::grammers::PeerlogSession::open("bot.peerlog")?);
//!
//! let SenderPool { runner, handle, .. } = SenderPool::new(Arc::clone(&session), api_id);
//! let client = Client::new(handle);
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use grammers_session::types::{ChannelKind, ChannelState, PeerAuth, PeerId, PeerInfo};
use grammers_session::{Session, SessionData};
use peerlog::Storage;
use peerlog::grammers::PeerlogSession;

#[path = "../tests/common/grammers_sqlite.rs"]
mod grammers_sqlite;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let demo = tempfile::tempdir()?;
    let (sqlite_path, peerlog_path) = match args.as_slice() {
        [from, to] => (from.clone(), to.clone()),
        [from] => (from.clone(), from.with_extension("peerlog")),
        [] => {
            let from = demo.path().join("bot.session");
            write_demo_grammers_session(&from)?;
            (from, demo.path().join("bot.peerlog"))
        }
        _ => return Err("usage: grammers_switch [GRAMMERS.session [OUT.peerlog]]".into()),
    };

    // 1. Read everything the grammers SQLite file holds. (`SqliteSession`
    //    cannot list its peers through the `Session` trait, so this reads
    //    the tables, decoding them as `SqliteSession` does.)
    let data = grammers_sqlite::read_grammers_sqlite(&sqlite_path)?;
    println!(
        "{}: home DC {}, {} DC options ({} with an auth key), {} peers, pts {}",
        sqlite_path.display(),
        data.home_dc,
        data.dc_options.len(),
        data.dc_options
            .values()
            .filter(|o| o.auth_key.is_some())
            .count(),
        data.peer_infos.len(),
        data.updates_state.pts,
    );

    // 2. Import it into peerlog in one atomic, durable commit.
    //    (`data.import_to(&session).await?` does the same call by call.)
    let session = Arc::new(PeerlogSession::open(&peerlog_path)?);
    session.import(&data)?;

    // 3. From here on the client uses `session` as it used the SQLite one.
    let me = session.peer(PeerId::self_user()).await?;
    println!(
        "{}: home DC {}, self user {:?}, {} peers",
        peerlog_path.display(),
        session.home_dc_id()?,
        me.map(|m| m.id()),
        session.account().peer_count()?,
    );
    // The same data, through peerlog's own API: the session (with the home
    // DC's auth key) exports to other libraries' session strings.
    if let Some(s) = session.account().session()?
        && s.auth_key.is_some()
    {
        let telethon = s.to_telethon_string()?;
        println!(
            "as a Telethon session string: {} characters",
            telethon.len()
        );
    }
    Ok(())
}

/// What a grammers client leaves in its SQLite session after signing in,
/// written as grammers' `SqliteSession` writes it. (Not through
/// `SqliteSession`: its libsql bundles a second copy of SQLite's C code,
/// which does not link next to rusqlite's.)
fn write_demo_grammers_session(path: &Path) -> Result<()> {
    let mut data = SessionData {
        home_dc: 4,
        ..SessionData::default()
    };
    data.dc_options
        .get_mut(&4)
        .ok_or("DC 4 is statically known")?
        .auth_key = Some([0x42; 256]);
    let peers = [
        PeerInfo::User {
            id: 123_456,
            auth: Some(PeerAuth::from_hash(0x1234)),
            bot: Some(true),
            is_self: Some(true),
        },
        PeerInfo::User {
            id: 777,
            auth: Some(PeerAuth::from_hash(-77)),
            bot: Some(false),
            is_self: Some(false),
        },
        PeerInfo::Channel {
            id: 1_500_000_000,
            auth: Some(PeerAuth::from_hash(99)),
            kind: Some(ChannelKind::Megagroup),
        },
        PeerInfo::Chat { id: 4242 },
    ];
    data.peer_infos = peers.into_iter().map(|p| (p.id(), p)).collect();
    let state = &mut data.updates_state;
    (state.pts, state.date, state.seq) = (100, 1_700_000_000, 5);
    state.channels.push(ChannelState {
        id: 1_500_000_000,
        pts: 7,
    });
    grammers_sqlite::write_grammers_sqlite(path, &data)
}
