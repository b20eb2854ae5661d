//! The Telegram surface beyond the conformance suite: accounts (isolation,
//! removal, names), atomic write batches, the access-hash hot path, peer
//! merge rules across accounts, commit and sync accounting, dedup age
//! retention, and use through `Arc<dyn Storage>` from several threads.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use peerlog::{
    ChannelKind, Conversation, Durability, Error, MemoryStorage, Options, Peer, PeerId, PeerRecord,
    Storage, Store, UpdateState,
};

mod common;

/// Counts this thread's allocations, to check the hot path makes none.
struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; the
// counter is a const-initialized thread local, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(Cell::get)
}

fn state(pts: i32) -> UpdateState {
    UpdateState {
        pts,
        qts: 0,
        date: 1_700_000_000,
        seq: 1,
    }
}

fn file_store(opts: Options) -> (tempfile::TempDir, std::path::PathBuf, Store) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.peerlog");
    let store = Store::open_with(&path, opts).unwrap();
    (dir, path, store)
}

#[test]
fn accounts_are_isolated() {
    let store = Store::memory();
    let a = store.account("alice-bot").unwrap();
    let b = store.account("bob-bot").unwrap();
    assert_ne!(a.number(), b.number());
    assert_eq!(store.account("alice-bot").unwrap().number(), a.number());

    let id = PeerId::user(42);
    a.save_peer(
        &Peer::user(42, 111)
            .with_username("shared")
            .with_phone("10000"),
    )
    .unwrap();
    b.save_peer(
        &Peer::user(42, 222)
            .with_username("shared")
            .with_phone("10000"),
    )
    .unwrap();
    b.save_peer(&Peer::user(43, 333)).unwrap();
    assert_eq!(a.access_hash(id).unwrap(), Some(111));
    assert_eq!(b.access_hash(id).unwrap(), Some(222));
    assert_eq!(a.access_hash(PeerId::user(43)).unwrap(), None);
    assert_eq!(a.peer_count().unwrap(), 1);
    assert_eq!(b.peer_count().unwrap(), 2);
    // The same username in two accounts: each resolves within its own.
    let pa = a.peer_by_username("SHARED").unwrap().unwrap();
    let pb = b.peer_by_username("shared").unwrap().unwrap();
    assert_eq!((pa.access_hash, pb.access_hash), (Some(111), Some(222)));
    assert_eq!(
        a.peer_by_phone("10000").unwrap().unwrap().access_hash,
        Some(111)
    );
    assert_eq!(
        b.peer_by_phone("10000").unwrap().unwrap().access_hash,
        Some(222)
    );

    a.save_update_state(&state(1)).unwrap();
    a.save_channel_pts(5, 50).unwrap();
    a.set_meta("k", b"a").unwrap();
    a.enqueue("u1", b"a").unwrap();
    a.insert_dedup_key(b"d").unwrap();
    a.save_conversation(&Conversation {
        chat_id: 1,
        user_id: 1,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(b.update_state().unwrap(), None);
    assert!(b.channel_states().unwrap().is_empty());
    assert_eq!(b.meta("k").unwrap(), None);
    assert!(b.pending(10).unwrap().is_empty());
    assert!(b.enqueue("u1", b"b").unwrap(), "queue ids are per account");
    assert!(
        b.insert_dedup_key(b"d").unwrap(),
        "dedup keys are per account"
    );
    assert_eq!(b.conversation(1, 1).unwrap(), None);
    assert_eq!(store.accounts().unwrap(), ["alice-bot", "bob-bot"]);
}

#[test]
fn account_names_are_checked() {
    let store = Store::memory();
    assert!(matches!(store.account(""), Err(Error::Invalid(_))));
    assert!(matches!(
        store.account(&"x".repeat(256)),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(store.remove_account(""), Err(Error::Invalid(_))));
    store.account(&"x".repeat(255)).unwrap();
    store.account("приём ✓").unwrap();
    let names = store.accounts().unwrap();
    assert_eq!(names, ["x".repeat(255), "приём ✓".to_string()]);
}

fn fill(s: &dyn Storage, tag: u8) {
    let mut session = peerlog::Session::new(2, false);
    session.auth_key = Some(peerlog::AuthKey::new([tag; 256]));
    s.save_session(&session).unwrap();
    s.save_dc_auth(&peerlog::DcAuth {
        dc_id: 2,
        auth_key: peerlog::AuthKey::new([tag; 256]),
        server_salt: 1,
        server_addr: None,
        port: 443,
    })
    .unwrap();
    s.save_peers(&[
        Peer::user(1, 10 + tag as i64).with_username("oneone"),
        Peer::channel(2, 20, ChannelKind::Broadcast).with_phone("55555"),
    ])
    .unwrap();
    s.save_update_state(&state(tag as i32)).unwrap();
    s.save_channel_pts(2, 7).unwrap();
    s.insert_dedup_key(b"seen").unwrap();
    s.enqueue("job", b"x").unwrap();
    s.save_conversation(&Conversation {
        chat_id: 1,
        user_id: 1,
        ..Default::default()
    })
    .unwrap();
    s.set_meta("m", &[tag]).unwrap();
}

#[test]
fn remove_account_deletes_everything_and_only_that() {
    let (_dir, path, store) = file_store(Options::default());
    let a = store.account("a").unwrap();
    let b = store.account("b").unwrap();
    fill(&a, 1);
    fill(&b, 2);
    let peers_before = store.stats().peer_count;
    let commits = store.stats().commits;
    assert!(store.remove_account("b").unwrap());
    assert_eq!(store.stats().commits, commits + 1, "one atomic commit");
    assert_eq!(store.stats().peer_count, peers_before - 2);
    assert!(!store.remove_account("b").unwrap());
    assert_eq!(store.accounts().unwrap(), ["a"]);

    // The stale handle can no longer write.
    assert!(matches!(
        b.save_update_state(&state(9)),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        b.save_peer(&Peer::user(5, 5)),
        Err(Error::Invalid(_))
    ));
    assert_eq!(b.update_state().unwrap(), None);
    assert_eq!(b.access_hash(PeerId::user(1)).unwrap(), None);

    // A new account of the same name starts empty; "a" is untouched.
    let b2 = store.account("b").unwrap();
    assert_ne!(b2.number(), b.number());
    let check = |b2: &dyn Storage, a: &dyn Storage| {
        assert_eq!(b2.session().unwrap(), None);
        assert!(b2.dc_auths().unwrap().is_empty());
        assert_eq!(b2.peer_count().unwrap(), 0);
        assert_eq!(b2.peer_by_username("oneone").unwrap(), None);
        assert_eq!(b2.peer_by_phone("55555").unwrap(), None);
        assert_eq!(b2.update_state().unwrap(), None);
        assert!(b2.channel_states().unwrap().is_empty());
        assert!(!b2.has_dedup_key(b"seen").unwrap());
        assert!(b2.pending(10).unwrap().is_empty());
        assert_eq!(b2.conversation(1, 1).unwrap(), None);
        assert_eq!(b2.meta("m").unwrap(), None);
        assert_eq!(a.meta("m").unwrap(), Some(vec![1]));
        assert_eq!(a.access_hash(PeerId::user(1)).unwrap(), Some(11));
        assert_eq!(a.peer_count().unwrap(), 2);
        assert_eq!(a.pending(10).unwrap().len(), 1);
        assert!(a.session().unwrap().is_some());
    };
    check(&b2, &a);
    drop((a, b, b2, store));
    let store = Store::open(&path).unwrap();
    assert_eq!(store.accounts().unwrap(), ["a", "b"]);
    check(&store.account("b").unwrap(), &store.account("a").unwrap());
}

#[test]
fn write_batch_is_one_atomic_commit() {
    let store = Store::memory();
    let acct = store.account("bot").unwrap();
    let peers = [
        Peer::user(1, 11).with_username("user1"),
        Peer::channel(2, 22, ChannelKind::Megagroup),
    ];
    let commits = store.stats().commits;
    let fresh = acct
        .write(|tx| {
            assert!(tx.insert_dedup_key(b"upd-1")?);
            assert!(!tx.insert_dedup_key(b"upd-1")?, "sees its own insert");
            tx.save_peers(&peers)?;
            tx.save_update_state(&state(5))?;
            assert_eq!(tx.update_state()?, Some(state(5)), "sees its own write");
            tx.save_channel_pts(2, 9)?;
            assert!(tx.enqueue("upd-1", b"payload")?);
            assert!(!tx.enqueue("upd-1", b"again")?);
            assert_eq!(tx.mark_failed("upd-1", "retry")?, 1);
            tx.set_meta("cursor", b"5")?;
            Ok(true)
        })
        .unwrap();
    assert!(fresh);
    assert_eq!(store.stats().commits, commits + 1);
    assert_eq!(acct.update_state().unwrap(), Some(state(5)));
    assert_eq!(acct.channel_pts(2).unwrap(), Some(9));
    assert_eq!(acct.access_hash(PeerId::channel(2)).unwrap(), Some(22));
    assert_eq!(acct.pending(10).unwrap()[0].attempts, 1);

    // An error inside the closure commits nothing at all.
    let commits = store.stats().commits;
    let r: peerlog::Result<()> = acct.write(|tx| {
        tx.save_peer(&Peer::user(3, 33))?;
        tx.save_update_state(&state(6))?;
        tx.insert_dedup_key(b"upd-2")?;
        Err(Error::Invalid("handler failed".into()))
    });
    assert!(r.is_err());
    assert_eq!(store.stats().commits, commits);
    assert_eq!(acct.update_state().unwrap(), Some(state(5)));
    assert_eq!(acct.peer(PeerId::user(3)).unwrap(), None);
    assert!(!acct.has_dedup_key(b"upd-2").unwrap());

    // So does a peer the engine rejects, even after valid changes.
    let mut bad = Peer::user(4, 44);
    bad.usernames = vec!["x".repeat(300)];
    let r = acct.save_peers_and_state(&[Peer::user(5, 55), bad], Some(&state(7)), &[]);
    assert!(matches!(r, Err(Error::Invalid(_))), "{r:?}");
    assert_eq!(acct.update_state().unwrap(), Some(state(5)));
    assert_eq!(acct.peer(PeerId::user(5)).unwrap(), None);
}

#[test]
fn access_hash_hot_path() {
    let (_dir, path, store) = file_store(Options {
        peer_fold_min: 8,
        ..Options::default()
    });
    let acct = store.account("main").unwrap();
    let mut peers = Vec::new();
    for i in 1..=50i64 {
        peers.push(Peer::user(i, i * 1000 - 7));
        peers.push(Peer::channel(i, -i, ChannelKind::Broadcast));
        peers.push(Peer::chat(i));
    }
    acct.save_peers(&peers).unwrap();
    let check = |acct: &peerlog::Account| {
        for i in 1..=50i64 {
            assert_eq!(
                acct.access_hash(PeerId::user(i)).unwrap(),
                Some(i * 1000 - 7)
            );
            assert_eq!(acct.access_hash(PeerId::channel(i)).unwrap(), Some(-i));
            assert_eq!(acct.access_hash(PeerId::chat(i)).unwrap(), None);
            assert!(acct.peer(PeerId::chat(i)).unwrap().is_some());
        }
        assert_eq!(acct.access_hash(PeerId::user(51)).unwrap(), None);
        assert_eq!(acct.peer_count().unwrap(), 150);
    };
    check(&acct); // partly from the overlay, partly from a folded generation
    store.compact().unwrap();
    check(&acct); // from the mapped index
    // Changed after the compaction: answered from the overlay.
    acct.save_peer(&Peer::user(60, 60)).unwrap();
    let dynamic: &dyn Storage = &acct;
    let before = allocs();
    drop(std::hint::black_box(vec![0u8; 8]));
    assert_eq!(allocs(), before + 1, "the counter counts");
    let before = allocs();
    let mut sum = 0i64;
    for _ in 0..100 {
        for i in 1..=60i64 {
            sum = sum.wrapping_add(dynamic.access_hash(PeerId::user(i)).unwrap().unwrap_or(0));
            sum = sum.wrapping_add(acct.access_hash(PeerId::channel(i)).unwrap().unwrap_or(0));
        }
    }
    assert_eq!(allocs(), before, "access_hash allocated");
    assert_ne!(sum, 0);
    assert!(acct.delete_peer(PeerId::user(60)).unwrap());
    drop((acct, store));
    let store = Store::open(&path).unwrap();
    check(&store.account("main").unwrap());
}

#[test]
fn usernames_are_case_insensitive_and_move() {
    let store = Store::memory();
    let acct = store.account("main").unwrap();
    let mut p = Peer::user(1, 1).with_username("Durov");
    p.usernames = vec!["TeleGram".into()];
    acct.save_peer(&p).unwrap();
    for name in ["durov", "DUROV", "@Durov", "telegram", "@TELEGRAM"] {
        assert_eq!(
            acct.peer_by_username(name).unwrap().map(|p| p.id),
            Some(p.id),
            "{name}"
        );
    }
    // The collectible username moves to another peer, then is compacted.
    let q = Peer::user(2, 2).with_username("telegram");
    acct.save_peer(&q).unwrap();
    store.compact().unwrap();
    assert_eq!(
        acct.peer_by_username("TELEGRAM").unwrap().map(|p| p.id),
        Some(q.id)
    );
    let old = acct.peer(p.id).unwrap().unwrap();
    assert_eq!(old.username.as_deref(), Some("Durov"));
    assert!(old.usernames.is_empty());
    // The old owner re-saved without it (as Telegram now reports) changes
    // nothing; re-saved with it, it takes it back.
    let mut p2 = p.clone();
    p2.usernames.clear();
    acct.save_peer(&p2).unwrap();
    assert_eq!(
        acct.peer_by_username("telegram").unwrap().map(|p| p.id),
        Some(q.id)
    );
    acct.save_peer(&p).unwrap();
    assert_eq!(
        acct.peer_by_username("telegram").unwrap().map(|p| p.id),
        Some(p.id)
    );
    assert_eq!(acct.peer(q.id).unwrap().unwrap().username, None);
}

#[test]
fn min_peers_keep_full_hashes() {
    let store = Store::memory();
    let acct = store.account("main").unwrap();
    let full = Peer::user(9, 900).with_names("Full", None);
    acct.save_peer(&full).unwrap();
    let min = Peer {
        min: true,
        access_hash: Some(1),
        first_name: Some("Renamed".into()),
        ..full.clone()
    };
    acct.save_peers(&[min]).unwrap();
    let got = acct.peer(full.id).unwrap().unwrap();
    assert_eq!((got.access_hash, got.min), (Some(900), false));
    assert_eq!(got.first_name.as_deref(), Some("Renamed"));
    assert_eq!(acct.access_hash(full.id).unwrap(), Some(900));
    // Engine-level view agrees.
    let rec = store.peer_record(acct.number(), full.id.bot_api()).unwrap();
    assert_eq!(
        rec.map(|r| (r.access_hash, r.min)),
        Some((Some(900), false))
    );
}

#[test]
fn unchanged_peers_cost_no_commit() {
    let store = Store::memory();
    let acct = store.account("main").unwrap();
    let peers: Vec<Peer> = (1..=20)
        .map(|i| Peer::user(i, i).with_username(format!("user{i}")))
        .collect();
    acct.save_peers(&peers).unwrap();
    let commits = store.stats().commits;
    acct.save_peers(&peers).unwrap();
    acct.save_peer(&peers[3]).unwrap();
    // A min copy of a full peer changes nothing either.
    acct.save_peer(&Peer {
        min: true,
        access_hash: Some(-1),
        ..peers[4].clone()
    })
    .unwrap();
    assert_eq!(store.stats().commits, commits, "unchanged peers wrote");
    let mut changed = peers[5].clone();
    changed.first_name = Some("New".into());
    acct.save_peers(&[peers[0].clone(), changed]).unwrap();
    assert_eq!(store.stats().commits, commits + 1);
}

#[test]
fn session_and_queue_writes_are_synced() {
    let (_dir, _path, store) = file_store(Options {
        durability: Durability::None,
        ..Options::default()
    });
    let acct = store.account("main").unwrap();
    let syncs = || store.stats().syncs;
    let s0 = syncs();
    acct.save_peer(&Peer::user(1, 1)).unwrap();
    acct.save_update_state(&state(1)).unwrap();
    assert_eq!(syncs(), s0, "plain writes follow the durability mode");
    let mut session = peerlog::Session::new(2, false);
    session.auth_key = Some(peerlog::AuthKey::new([3; 256]));
    acct.save_session(&session).unwrap();
    assert_eq!(syncs(), s0 + 1, "save_session");
    acct.enqueue("a", b"").unwrap();
    assert_eq!(syncs(), s0 + 2, "enqueue");
    assert_eq!(acct.mark_failed("a", "e").unwrap(), 1);
    assert_eq!(syncs(), s0 + 3, "mark_failed");
    assert!(acct.ack("a").unwrap());
    assert_eq!(syncs(), s0 + 4, "ack");
    acct.write(|tx| {
        tx.save_update_state(&state(2))?;
        tx.enqueue("b", b"")
    })
    .unwrap();
    assert_eq!(syncs(), s0 + 5, "a batch with an enqueue");
}

#[test]
fn dedup_retention_within_one_batch_and_by_age() {
    let mem = MemoryStorage::with_options(Options {
        dedup_max_keys: 10,
        ..Options::default()
    })
    .unwrap();
    mem.account()
        .write(|tx| {
            for i in 0u32..35 {
                assert!(tx.insert_dedup_key(&i.to_be_bytes())?);
            }
            Ok(())
        })
        .unwrap();
    for i in 0u32..35 {
        assert_eq!(mem.has_dedup_key(&i.to_be_bytes()).unwrap(), i >= 25, "{i}");
    }

    let mem = MemoryStorage::with_options(Options {
        dedup_max_age: Some(Duration::ZERO),
        ..Options::default()
    })
    .unwrap();
    assert!(mem.insert_dedup_key(b"old").unwrap());
    std::thread::sleep(Duration::from_millis(1100));
    assert!(mem.insert_dedup_key(b"new").unwrap());
    assert!(!mem.has_dedup_key(b"old").unwrap(), "expired key kept");
    assert!(mem.has_dedup_key(b"new").unwrap());
}

#[test]
fn shared_across_threads_as_dyn_storage() {
    let store = Store::memory();
    let storage: Arc<dyn Storage> = Arc::new(store.account("bot").unwrap());
    let handles: Vec<_> = (0..4i64)
        .map(|t| {
            let s = Arc::clone(&storage);
            std::thread::spawn(move || {
                for i in 0..50i64 {
                    let id = t * 1000 + i + 1;
                    s.save_peer(&Peer::user(id, id)).unwrap();
                    assert!(s.insert_dedup_key(&id.to_be_bytes()).unwrap());
                    assert!(s.enqueue(&id.to_string(), b"").unwrap());
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(storage.peer_count().unwrap(), 200);
    assert_eq!(storage.pending(usize::MAX).unwrap().len(), 200);
    assert_eq!(storage.access_hash(PeerId::user(3050)).unwrap(), Some(3050));
}

#[test]
fn engine_records_without_tail_decode() {
    let store = Store::memory();
    let acct = store.account("main").unwrap();
    store
        .put_peer_records(vec![PeerRecord {
            account: acct.number(),
            peer_id: 77,
            access_hash: Some(7),
            primary: true,
            usernames: vec!["rawname".into()],
            ..Default::default()
        }])
        .unwrap();
    let p = acct.peer_by_username("rawname").unwrap().unwrap();
    assert_eq!(p, Peer::user(77, 7).with_username("rawname"));
}

#[test]
fn nested_writes_error_instead_of_deadlocking() {
    let store = Store::memory();
    let acc = store.account("a").unwrap();
    acc.save_peer(&Peer::user(5, 50)).unwrap();
    let r = acc.write(|tx| {
        // Reads through the account are fine inside a transaction.
        assert_eq!(acc.peer_count()?, 1);
        assert_eq!(acc.access_hash(PeerId::user(5))?, Some(50));
        tx.save_peer(&Peer::user(6, 60))?;
        // A write that bypasses the transaction is refused, not a deadlock.
        assert!(matches!(
            acc.save_peer(&Peer::user(7, 70)),
            Err(peerlog::Error::Invalid(_))
        ));
        Ok(())
    });
    r.unwrap();
    assert_eq!(acc.peer_count().unwrap(), 2);
    acc.save_peer(&Peer::user(7, 70)).unwrap();
}

#[test]
fn resolve_username_matches_peer_by_username() {
    let store = Store::memory();
    let acc = store.account("a").unwrap();
    let mut p = Peer::user(42, 4200);
    p.username = Some("Durov".into());
    p.usernames = vec!["tg_alias".into()];
    acc.save_peer(&p).unwrap();
    for round in 0..2 {
        for name in ["durov", "@DUROV", "tg_alias"] {
            assert_eq!(
                acc.resolve_username(name).unwrap(),
                Some((PeerId::user(42), Some(4200))),
                "{name} {round}"
            );
        }
        assert_eq!(acc.resolve_username("nobody").unwrap(), None);
        store.compact().unwrap();
    }
    // Moved to another peer: resolves to the new one only.
    let mut q = Peer::user(43, 4300);
    q.username = Some("tg_alias".into());
    acc.save_peer(&q).unwrap();
    assert_eq!(
        acc.resolve_username("tg_alias").unwrap(),
        Some((PeerId::user(43), Some(4300)))
    );
    let m = peerlog::MemoryStorage::new();
    m.save_peer(&p).unwrap();
    assert_eq!(
        m.resolve_username("durov").unwrap(),
        Some((PeerId::user(42), Some(4200)))
    );
}

/// A peer the format cannot hold (a username over 255 bytes) fails the
/// whole `save_peers` call, not just its own entry: a transaction that
/// goes on and commits stores none of that call's peers.
#[test]
fn save_peers_with_an_invalid_peer_saves_none_of_them() {
    let store = Store::memory();
    let a = store.account("a").unwrap();
    let mut bad = Peer::user(2, 22);
    bad.username = Some("x".repeat(256));
    let err = a.save_peers(&[Peer::user(1, 11), bad.clone()]).unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");
    a.write(|tx| {
        assert!(tx.save_peers(&[Peer::user(1, 11), bad.clone()]).is_err());
        tx.save_peers(&[Peer::user(3, 33)])
    })
    .unwrap();
    assert_eq!(a.access_hash(PeerId::user(1)).unwrap(), None);
    assert_eq!(a.access_hash(PeerId::user(2)).unwrap(), None);
    assert_eq!(a.access_hash(PeerId::user(3)).unwrap(), Some(33));
}
