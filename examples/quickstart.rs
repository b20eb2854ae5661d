//! Quickstart: open a store file, save a session, save the peers of an
//! update together with the update state in one atomic write, resolve an
//! access hash and a username, export a Telethon session string, and print
//! the store's stats.
//!
//! ```text
//! cargo run --example quickstart [path/to/file.peerlog]
//! ```
//!
//! Without a path it uses `peerlog-quickstart.peerlog` in the temp
//! directory. Run it twice: the second run finds everything already there.

use std::path::PathBuf;

use peerlog::{AuthKey, ChannelKind, Peer, PeerId, Session, Storage, Store, UpdateState};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("peerlog-quickstart.peerlog"));
    let store = Store::open(&path)?;
    // One file, any number of isolated accounts: one per bot or user.
    let bot = store.account("my-bot")?;

    // The session: durable before save_session returns.
    let mut session = Session::new(2, false);
    session.auth_key = Some(AuthKey::new([0x42; 256])); // a fake key
    session.api_id = 12345;
    session.user_id = Some(7_000_000_001);
    session.is_bot = true;
    bot.save_session(&session)?;

    // An update arrives with its users and chats: save them with the state
    // it advances to, atomically, once per update id.
    let peers = [
        Peer::user(1001, -5_000_001)
            .with_username("alice")
            .with_names("Alice", None),
        Peer::user(1002, 6_000_002).with_names("Bob", Some("Smith")),
        Peer::channel(2001, 9_000_003, ChannelKind::Megagroup)
            .with_username("peerlog_chat")
            .with_names("peerlog chat", None),
    ];
    let state = UpdateState {
        pts: 101,
        qts: 0,
        date: 1_700_000_000,
        seq: 12,
    };
    let fresh = bot.write(|tx| {
        if !tx.insert_dedup_key(b"update:101")? {
            return Ok(false); // seen before (e.g. on a second run)
        }
        tx.save_peers(&peers)?;
        tx.save_update_state(&state)?;
        tx.save_channel_pts(2001, 55)?;
        Ok(true)
    })?;
    println!(
        "update 101: {}",
        if fresh { "stored" } else { "already seen" }
    );

    // Resolve: the access hash hot path, and a username lookup.
    let hash = bot.access_hash(PeerId::user(1001))?;
    println!("access hash of user 1001: {hash:?}");
    if let Some(p) = bot.peer_by_username("@PeerLog_Chat")? {
        println!(
            "@peerlog_chat is {} ({:?}), access hash {:?}",
            p.id,
            p.first_name.as_deref().unwrap_or(""),
            p.access_hash
        );
    }
    println!("update state: {:?}", bot.update_state()?);

    // Export the session for Telethon. A session string is a credential:
    // this one holds a fake key; never print a real one.
    let saved = bot.session()?.ok_or("the session was just saved")?;
    println!("telethon session string: {}", saved.to_telethon_string()?);

    let stats = store.stats();
    println!(
        "\n{}: {} bytes, generation {}, {} peers, {} commits and {} syncs by this handle, log {}/{} bytes",
        path.display(),
        stats.file_size,
        stats.generation,
        stats.peer_count,
        stats.commits,
        stats.syncs,
        stats.log_used,
        stats.log_capacity
    );
    for b in &stats.buckets {
        println!(
            "  {:<14} {:>5} entries {:>8} live bytes",
            b.name, b.entries, b.live_bytes
        );
    }
    Ok(())
}
