//! Helpers shared by the fuzz targets and the seed generator
//! (`examples/gen_seeds.rs`): the deterministic seed stores, and a reader
//! that touches every key of a store through the public API.

use peerlog::io::{MemFile, RawFile};
use peerlog::{
    AuthKey, ChannelKind, Conversation, DcAuth, Durability, Options, Peer, PeerId, Session,
    Storage, Store, UpdateState,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// Raw bucket names the seeds and the model use (raw buckets cannot be
/// listed through the API, so readers probe these).
pub const RAW_BUCKETS: [&str; 3] = ["files", "cache", "x"];

/// Options of the seed stores: tiny log regions, so that the stores are a
/// few pages and checkpoints happen often.
pub fn seed_options() -> Options {
    Options {
        durability: Durability::None,
        log_size: 4096,
        compact_min_dead: 256,
        peer_fold_min: 4,
        dedup_max_keys: 8,
        ..Options::default()
    }
}

fn key(b: u8) -> AuthKey {
    let mut k = [0u8; 256];
    for (i, x) in k.iter_mut().enumerate() {
        *x = (i as u8).wrapping_mul(31).wrapping_add(b);
    }
    AuthKey::new(k)
}

fn session(dc: i32, user: i64) -> Session {
    let mut s = Session::new(dc, false);
    s.auth_key = Some(key(dc as u8));
    s.user_id = Some(user);
    s.api_id = 12345;
    s.api_hash = Some("0123456789abcdef".into());
    s.first_name = Some("Seed".into());
    s.username = Some("seed_user".into());
    s.date = 1_700_000_000;
    s
}

fn peers(base: i64, n: i64) -> Vec<Peer> {
    let mut v = Vec::new();
    for i in 0..n {
        let id = base + i;
        let mut p = Peer::user(id, id * 7919)
            .with_names(format!("User{id}"), (i % 2 == 0).then_some("Last"))
            .with_updated_at(1_700_000_000 + i);
        if i % 3 != 2 {
            p = p.with_username(format!("user_{id}"));
        }
        if i % 4 == 1 {
            p = p.with_phone(format!("+1 555 {id:04}"));
        }
        if i % 5 == 3 {
            p.min = true;
            p.usernames = vec![format!("alt_{id}"), format!("Alt2_{id}")];
        }
        v.push(p);
    }
    v.push(
        Peer::channel(base + 100, -5, ChannelKind::Megagroup)
            .with_names("A group", None)
            .with_username(format!("group{base}")),
    );
    v.push(Peer::chat(base + 200).with_names("Old chat", None));
    v
}

fn conversation(chat: i64, user: i64, step: &str) -> Conversation {
    Conversation {
        chat_id: chat,
        user_id: user,
        name: "signup".into(),
        step: step.into(),
        data: vec![chat as u8; 20],
        created_at: 1_700_000_000,
        updated_at: 1_700_000_100,
    }
}

/// The file image of a closed store, with the (pid-dependent) owner record
/// zeroed so that generation is deterministic.
fn image(store: Store, file: &MemFile) -> Vec<u8> {
    store.sync().expect("sync");
    drop(store);
    let mut img = file.live();
    if img.len() >= 1032 {
        img[1024..1032].fill(0);
    }
    img
}

fn open(file: &MemFile) -> Store {
    Store::open_backend(Arc::new(file.clone()), seed_options()).expect("open a seed store")
}

/// Every bucket in use, compacted into segments and a peer index, then a
/// few commits in the log on top.
fn seed_compacted() -> Vec<u8> {
    let file = MemFile::new();
    let store = open(&file);
    let a = store.account("alice").unwrap();
    let b = store.account("bob").unwrap();
    a.save_session(&session(2, 1001)).unwrap();
    a.save_dc_auth(&DcAuth {
        dc_id: 4,
        auth_key: key(4),
        server_salt: 77,
        server_addr: Some(IpAddr::V4(Ipv4Addr::new(149, 154, 167, 91))),
        port: 443,
    })
    .unwrap();
    b.save_session(&session(5, 2002)).unwrap();
    a.save_peers(&peers(1, 8)).unwrap();
    b.save_peers(&peers(500, 3)).unwrap();
    a.save_update_state(&UpdateState {
        pts: 10,
        qts: 2,
        date: 1_700_000_000,
        seq: 5,
    })
    .unwrap();
    a.save_channel_pts(1234, 99).unwrap();
    a.save_channel_pts(5678, -1).unwrap();
    a.save_conversation(&conversation(-42, 7, "email")).unwrap();
    a.set_meta("lang", b"en").unwrap();
    b.set_meta("theme", b"dark").unwrap();
    let files = store.bucket("files").unwrap();
    for i in 0..6u8 {
        files.put(&[b'f', i], &vec![i; 40 + i as usize]).unwrap();
    }
    store.bucket("cache").unwrap().put(b"k", b"v").unwrap();
    store.compact().unwrap();
    // A few commits in the log after the checkpoint.
    a.save_peer(&Peer::user(3, 42).with_username("user_1").with_updated_at(5))
        .unwrap();
    a.delete_peer(PeerId::user(2)).unwrap();
    files.delete(&[b'f', 0]).unwrap();
    files.put(b"new", b"value").unwrap();
    a.delete_meta("lang").unwrap();
    a.save_conversation(&conversation(-42, 7, "done")).unwrap();
    image(store, &file)
}

/// Nothing but the first log region: no checkpoint ever ran.
fn seed_log_only() -> Vec<u8> {
    let file = MemFile::new();
    let store = open(&file);
    let a = store.account("alice").unwrap();
    a.save_session(&session(1, 77)).unwrap();
    a.save_peers(&peers(10, 2)).unwrap();
    a.save_update_state(&UpdateState {
        pts: 1,
        qts: 0,
        date: 2,
        seq: 3,
    })
    .unwrap();
    store.bucket("x").unwrap().put(b"key", b"value").unwrap();
    image(store, &file)
}

/// Churn: many checkpoints (log switches, peer folds, segment rewrites),
/// so regions were freed and reused; deletes in segments and in the log.
fn seed_churn() -> Vec<u8> {
    let file = MemFile::new();
    let store = open(&file);
    let a = store.account("alice").unwrap();
    let b = store.account("bob").unwrap();
    let cache = store.bucket("cache").unwrap();
    for round in 0..12i64 {
        a.save_peers(&peers(1 + round % 5, 3)).unwrap();
        if round % 3 == 0 {
            a.delete_peer(PeerId::user(1 + round % 4)).unwrap();
        }
        b.save_channel_pts(round, round as i32).unwrap();
        cache
            .put(&[b'c', (round % 4) as u8], &vec![round as u8; 300])
            .unwrap();
        if round % 4 == 3 {
            cache.delete(&[b'c', 0]).unwrap();
        }
        b.save_conversation(&conversation(round, round + 1, "s"))
            .unwrap();
    }
    b.save_session(&{
        let mut s = session(3, 3003);
        s.server_addr = Some(IpAddr::V6(Ipv6Addr::LOCALHOST));
        s.port = 8443;
        s
    })
    .unwrap();
    store.remove_account("alice").unwrap();
    let c = store.account("carol").unwrap();
    c.save_peers(&peers(900, 2)).unwrap();
    image(store, &file)
}

/// The seed stores, by name. Their contents are deterministic (their bytes
/// not quite: see `examples/gen_seeds.rs`); `gen_seeds` writes them to
/// `fuzz/seeds/stores/` and `mutate_store` embeds those files.
pub fn seed_stores() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("compacted.plg", seed_compacted()),
        ("log_only.plg", seed_log_only()),
        ("churn.plg", seed_churn()),
    ]
}

/// Reads every key of `store` through the public API (accounts and all
/// their data, engine peer records, the probed raw buckets, stats).
/// Returns how many items were read, or the first error.
pub fn read_everything(store: &Store) -> peerlog::Result<u64> {
    let mut n = 0u64;
    let _ = store.stats();
    for name in store.accounts()? {
        let a = store.account(&name)?;
        n += u64::from(a.session()?.is_some());
        n += a.dc_auths()?.len() as u64;
        let peers = a.peers()?;
        if a.peer_count()? != peers.len() as u64 {
            return Err(peerlog::Error::Invalid("peer count".into()));
        }
        for p in &peers {
            n += 1;
            a.peer(p.id)?;
            a.access_hash(p.id)?;
            for u in p.username.iter().chain(&p.usernames) {
                a.peer_by_username(u)?;
            }
            if let Some(ph) = &p.phone {
                a.peer_by_phone(ph)?;
            }
        }
        for id in store.peer_ids(a.number())? {
            store.peer_record(a.number(), id)?;
        }
        n += u64::from(a.update_state()?.is_some());
        n += a.channel_states()?.len() as u64;
        n += a.pending(usize::MAX)?.len() as u64;
        a.has_dedup_key(b"k")?;
        a.conversation(-42, 7)?;
        a.meta("lang")?;
    }
    for b in RAW_BUCKETS {
        n += store.bucket(b)?.scan_prefix(b"")?.len() as u64;
    }
    Ok(n)
}

/// A store on `bytes`, as a crash-free in-memory file.
pub fn open_bytes(bytes: Vec<u8>, opts: Options) -> (MemFile, peerlog::Result<Store>) {
    let file = MemFile::from_bytes(bytes);
    let store = Store::open_backend(Arc::new(file.clone()) as Arc<dyn RawFile>, opts);
    (file, store)
}

/// The write half of a store-level target: a write and a compaction, then
/// a reopen of the resulting bytes. A store that verified `clean` must take
/// both, reopen, verify clean and keep the write; the reopened store is
/// returned for further checks. Anything else may fail, but not panic.
pub fn write_compact_reopen(
    mem: MemFile,
    store: Store,
    opts: Options,
    clean: bool,
) -> Option<Store> {
    let wrote = store.bucket("x").and_then(|b| b.put(b"fuzz", b"value"));
    let compacted = store.compact();
    if clean {
        wrote.expect("write to a clean store");
        compacted.expect("compact a clean store");
    }
    drop(store);
    let (_, again) = open_bytes(mem.live(), opts);
    if !clean {
        return None;
    }
    let again = again.expect("reopen after a write and a compaction");
    let r = again.verify().expect("verify");
    assert!(r.is_ok(), "verify after reopen: {r}");
    assert_eq!(
        again.bucket("x").unwrap().get(b"fuzz").unwrap().as_deref(),
        Some(&b"value"[..])
    );
    Some(again)
}

/// The damage property of `tests/damage.rs` (the same file): a store built
/// through the typed API, its model, and the judge of a damaged image.
#[path = "../../tests/common/damage.rs"]
pub mod damage;
