//! Switching a ferogram client from its session file to peerlog, and
//! moving an existing ferogram session file over.
//!
//! ```sh
//! # Demo: writes a ferogram session file with ferogram-session's own
//! # BinaryFileBackend, migrates it, shows the result, exports it back.
//! cargo run --example ferogram_switch --features ferogram
//! # Migrate your own ferogram session file into a peerlog file.
//! cargo run --example ferogram_switch --features ferogram -- bot.session bot.peerlog
//! ```
//!
//! The switch in a ferogram client is one line:
//!
//! ```ignore
//! // Before: ferogram's default, a binary file rewritten on every save.
//! // .session_backend(Arc::new(BinaryFileBackend::new("bot.session")))
//! // After: one pure-Rust peerlog file (many bots can share one).
//! let (client, _) = Client::builder()
//!     .api_id(api_id)
//!     .api_hash(api_hash)
//!     .session_backend(Arc::new(peerlog::ferogram::PeerlogBackend::open("bot.peerlog")?))
//!     .connect()
//!     .await?;
//! ```

use std::path::{Path, PathBuf};

use ferogram_session::{
    BinaryFileBackend, CachedPeer, ChannelKind, DcEntry, DcFlags, PersistedSession, SessionBackend,
    UpdateStateChange,
};
use peerlog::ferogram::PeerlogBackend;
use peerlog::{PeerId, Storage};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn main() -> Result<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let demo = tempfile::tempdir()?;
    let (file, peerlog_path) = match args.as_slice() {
        [from, to] => (from.clone(), to.clone()),
        [from] => (from.clone(), from.with_extension("peerlog")),
        [] => {
            let from = demo.path().join("bot.session");
            write_demo_session(&from)?;
            (from, demo.path().join("bot.peerlog"))
        }
        _ => return Err("usage: ferogram_switch [FEROGRAM.session [OUT.peerlog]]".into()),
    };

    // 1. What ferogram's file holds, read by ferogram-session itself.
    let theirs = BinaryFileBackend::new(&file)
        .load()?
        .ok_or("no session in the file")?;
    println!(
        "{}: home DC {}, {} DC entries ({} with an auth key), {} peers, pts {}",
        file.display(),
        theirs.home_dc_id,
        theirs.dcs.len(),
        theirs.dcs.iter().filter(|d| d.auth_key.is_some()).count(),
        theirs.peers.len(),
        theirs.updates_state.pts,
    );

    // 2. Import it into peerlog in one atomic, durable commit.
    let backend = PeerlogBackend::open(&peerlog_path)?;
    backend.import_file(&file)?;

    // 3. From here on the client uses `backend` as it used the file. The
    //    peers are in peerlog's peer table too, under their Bot API ids.
    backend.apply_update_state(UpdateStateChange::Secondary { qts: 1 })?;
    let ours = backend.load()?.ok_or("the import wrote no session")?;
    println!(
        "{}: home DC {}, {} peers ({} in the peer table), qts {}",
        peerlog_path.display(),
        ours.home_dc_id,
        ours.peers.len(),
        backend.account().peer_count()?,
        ours.updates_state.qts,
    );
    if let Some(c) = ours.peers.iter().find(|p| p.is_channel && !p.is_chat)
        && let Some(id) = PeerId::try_channel(c.id)
    {
        println!(
            "channel {} is Bot API id {}, access hash {:?}",
            c.id,
            id.bot_api(),
            backend.account().access_hash(id)?
        );
    }

    // 4. And back: the bytes ferogram itself writes for this session.
    let back = demo.path().join("back.session");
    backend.export_file(&back)?;
    let same = std::fs::read(&back)? == ours.to_bytes();
    println!("exported {} (byte-exact: {same})", back.display());
    Ok(())
}

/// A small session as a ferogram bot would have it: DC 2 with a key, in
/// both address families, some peers and update state.
fn write_demo_session(path: &Path) -> Result<()> {
    let mut v4 = DcEntry::from_parts(2, "149.154.167.51", 443, DcFlags::NONE);
    v4.auth_key = Some([0x42; 256]);
    let mut v6 = DcEntry::from_parts(2, "2001:67c:4e8:f002::a", 443, DcFlags::IPV6);
    v6.auth_key = v4.auth_key;
    let mut s = PersistedSession {
        home_dc_id: 2,
        dcs: vec![v4, v6],
        ..PersistedSession::default()
    };
    s.updates_state.pts = 100;
    s.updates_state.channels.push((1_234_567_890, 7));
    s.peers.push(CachedPeer {
        id: 777_000,
        access_hash: 0x1234,
        is_channel: false,
        is_chat: false,
        channel_kind: None,
        is_community: false,
    });
    s.peers.push(CachedPeer {
        id: 1_234_567_890,
        access_hash: -99,
        is_channel: true,
        is_chat: false,
        channel_kind: Some(ChannelKind::Megagroup),
        is_community: false,
    });
    BinaryFileBackend::new(path).save(&s)?;
    Ok(())
}
