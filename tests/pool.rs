//! `Pool`: one open per key however many callers race for it, open errors
//! shared with every waiter, reaping and eviction that never close a store
//! in use, explicit closes that release the file at once, and bot token
//! secrets that never reach a file name, an error or `Debug` output.

use peerlog::{
    Durability, Error, Options, Peer, PeerId, Pool, PoolKey, PoolOptions, Storage, Store,
};
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

const SECRET: &str = "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_x";

fn token(id: u64) -> String {
    format!("{id}:{SECRET}")
}

fn opts(dir: &Path) -> PoolOptions {
    PoolOptions {
        dir: Some(dir.to_path_buf()),
        idle_timeout: Duration::ZERO,
        max_open: 16,
        store: Options {
            durability: Durability::None,
            log_size: 16 << 10,
            ..Options::default()
        },
    }
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn names(pool: &Pool) -> Vec<String> {
    pool.keys().iter().map(|k| k.to_string()).collect()
}

#[test]
fn racing_gets_on_a_cold_key_open_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::new(opts(dir.path())).unwrap();
    for round in 0..5 {
        let key = format!("cold-{round}");
        let start = Arc::new(Barrier::new(32));
        let handles: Vec<_> = (0..32)
            .map(|_| {
                let (pool, start, key) = (pool.clone(), start.clone(), key.clone());
                std::thread::spawn(move || {
                    start.wait();
                    pool.get(&key).unwrap()
                })
            })
            .collect();
        let handles: Vec<_> = handles.into_iter().map(|t| t.join().unwrap()).collect();
        for h in &handles {
            assert!(std::ptr::eq(h.store(), handles[0].store()));
        }
        let s = pool.stats();
        assert_eq!(s.opens, round + 1, "{s:?}");
        assert_eq!(s.open_errors, 0);
        assert_eq!(s.hits + s.joined + s.opens, 32 * (round + 1));
        assert_eq!((s.in_use, s.waiting, s.opening), (1, 0, 0));
    }
}

/// A FIFO in place of the store file: a read-only open blocks until a
/// writer shows up, so every other caller is waiting when it fails.
#[test]
fn an_open_error_reaches_every_waiter_and_the_next_call_retries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fifo.peerlog");
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let mut o = opts(dir.path());
    o.store.read_only = true;
    let pool = Pool::new(o).unwrap();

    let callers: Vec<_> = (0..32)
        .map(|_| {
            let pool = pool.clone();
            std::thread::spawn(move || pool.get("fifo").map(|_| ()).unwrap_err())
        })
        .collect();
    wait_until("31 waiters behind one open", || {
        let s = pool.stats();
        s.opening == 1 && s.waiting == 31
    });
    // Unblock the opener; the FIFO is no store, so its open fails.
    drop(std::fs::OpenOptions::new().write(true).open(&path).unwrap());
    let errors: Vec<Error> = callers.into_iter().map(|t| t.join().unwrap()).collect();
    let first = errors[0].to_string();
    for e in &errors {
        assert_eq!(e.to_string(), first);
        assert_eq!(
            std::mem::discriminant(e),
            std::mem::discriminant(&errors[0])
        );
    }
    let s = pool.stats();
    assert_eq!((s.opens, s.open_errors, s.joined), (0, 1, 31));
    assert_eq!((s.waiting, s.opening), (0, 0));

    // A later call opens again: now there is a real store.
    std::fs::remove_file(&path).unwrap();
    let store = Store::open(&path).unwrap();
    store
        .account(Pool::ACCOUNT)
        .unwrap()
        .set_meta("k", b"v")
        .unwrap();
    drop(store);
    let h = pool.get("fifo").unwrap();
    assert_eq!(h.meta("k").unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(pool.stats().opens, 1);
}

#[test]
fn a_failed_open_is_retried_by_the_next_get() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::new(opts(dir.path())).unwrap();
    std::fs::write(dir.path().join("junk.peerlog"), vec![0xA5; 20_000]).unwrap();
    for _ in 0..3 {
        assert!(matches!(pool.get("junk"), Err(Error::NotPeerlog { .. })));
    }
    assert_eq!(pool.stats().open_errors, 3);
    std::fs::remove_file(dir.path().join("junk.peerlog")).unwrap();
    pool.get("junk").unwrap().set_meta("k", b"v").unwrap();
    assert!(pool.keys().contains(&PoolKey::parse("junk").unwrap()));
}

#[test]
fn reaping_never_closes_a_store_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::new(opts(dir.path())).unwrap();
    let held = pool.get("held").unwrap();
    let store_clone = pool.get("cloned").unwrap().store().clone();
    let bucket = pool.get("bucket").unwrap().store().bucket("raw").unwrap();
    let account_clone = (*pool.get("account").unwrap()).clone();
    for k in ["idle-1", "idle-2"] {
        pool.get(k).unwrap().set_meta("k", b"v").unwrap();
    }
    assert_eq!(pool.gc().unwrap(), 2);
    assert_eq!(names(&pool), ["account", "bucket", "cloned", "held"]);
    assert_eq!(pool.stats().in_use, 4);
    // What is held still works, and reaping again changes nothing.
    held.set_meta("k", b"v").unwrap();
    store_clone.sync().unwrap();
    bucket.put(b"k", b"v").unwrap();
    account_clone.set_meta("k", b"v").unwrap();
    assert_eq!(pool.gc().unwrap(), 0);
    drop((held, store_clone, bucket, account_clone));
    assert_eq!(pool.gc().unwrap(), 4);
    assert!(pool.keys().is_empty());
    assert_eq!(pool.stats().reaps, 6);
    // Closed means the file is free: a plain open works and sees the data.
    let s = Store::open(dir.path().join("idle-1.peerlog")).unwrap();
    assert_eq!(
        s.account(Pool::ACCOUNT).unwrap().meta("k").unwrap(),
        Some(b"v".to_vec())
    );
}

#[test]
fn idle_timeout_and_the_reaper_thread() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    o.idle_timeout = Duration::from_millis(100);
    let pool = Pool::new(o).unwrap();
    let held = pool.get("held").unwrap();
    pool.get("idle").unwrap();
    assert_eq!(pool.gc().unwrap(), 0, "not idle long enough yet");
    assert!(pool.spawn_reaper(Duration::ZERO).is_err());
    pool.spawn_reaper(Duration::from_millis(10)).unwrap();
    wait_until("the reaper closes the idle store", || {
        names(&pool) == ["held"]
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(names(&pool), ["held"]);
    held.set_meta("k", b"v").unwrap();
    // Dropping the pool stops the reaper; the handle keeps its store.
    drop(pool);
    held.set_meta("k", b"w").unwrap();
    assert!(matches!(
        Store::open(dir.path().join("held.peerlog")),
        Err(Error::Locked { .. })
    ));
    drop(held);
    Store::open(dir.path().join("held.peerlog")).unwrap();
}

#[test]
fn eviction_closes_the_least_recently_used_idle_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    o.max_open = 2;
    o.idle_timeout = Duration::from_secs(3600);
    let pool = Pool::new(o).unwrap();
    pool.get("a").unwrap().set_meta("k", b"a").unwrap();
    pool.get("b").unwrap().set_meta("k", b"b").unwrap();
    drop(pool.get("a").unwrap());
    let c = pool.get("c").unwrap();
    assert_eq!(names(&pool), ["a", "c"]);
    let a = pool.get("a").unwrap();
    assert_eq!(pool.stats().evictions, 1);
    // Both open stores are in use: no room, and nothing was closed.
    let e = pool.get("b").unwrap_err();
    assert!(matches!(e, Error::PoolFull { max_open: 2 }), "{e:?}");
    assert!(
        e.to_string().contains("pool full: all 2 stores are in use"),
        "{e}"
    );
    assert_eq!(names(&pool), ["a", "c"]);
    drop(c);
    assert_eq!(
        pool.get("b").unwrap().meta("k").unwrap(),
        Some(b"b".to_vec())
    );
    assert_eq!(a.meta("k").unwrap(), Some(b"a".to_vec()));
    let s = pool.stats();
    assert_eq!((s.evictions, s.open, s.opens), (2, 2, 4));
}

#[test]
fn close_and_close_all_sync_and_release_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::new(opts(dir.path())).unwrap();
    let h = pool.get("busy").unwrap();
    pool.get("x").unwrap().set_meta("k", b"x").unwrap();
    pool.get("y").unwrap();
    let e = pool.close("busy").unwrap_err();
    assert!(e.to_string().contains("in use"), "{e}");
    assert!(pool.close("x").unwrap());
    assert!(!pool.close("x").unwrap());
    assert!(!pool.close("never").unwrap());
    assert!(pool.close("../x").is_err());
    Store::open(dir.path().join("x.peerlog")).unwrap();

    let e = pool.close_all().unwrap_err();
    assert!(e.to_string().contains("1 are in use"), "{e}");
    assert_eq!(names(&pool), ["busy"]);
    drop(h);
    assert_eq!(pool.close_all().unwrap(), 1);
    assert!(pool.keys().is_empty());
    assert_eq!(pool.stats().closes, 3);
    // Reopened from disk, the data is there.
    assert_eq!(
        pool.get("x").unwrap().meta("k").unwrap(),
        Some(b"x".to_vec())
    );
}

#[test]
fn with_runs_on_the_account() {
    let pool = Pool::new(PoolOptions::default()).unwrap();
    pool.with("bot", |a| a.save_peer(&Peer::user(7, 77)))
        .unwrap();
    let hash = pool
        .with("bot", |a| {
            assert_eq!(a.name(), Pool::ACCOUNT);
            a.access_hash(PeerId::user(7))
        })
        .unwrap();
    assert_eq!(hash, Some(77));
    assert!(pool.with("a/b", |_| Ok(())).is_err());
}

#[test]
fn a_memory_pool_forgets_what_it_closes() {
    let pool = Pool::new(PoolOptions {
        dir: None,
        max_open: 1,
        ..PoolOptions::default()
    })
    .unwrap();
    pool.get("a").unwrap().set_meta("k", b"v").unwrap();
    assert_eq!(
        pool.get("a").unwrap().meta("k").unwrap(),
        Some(b"v".to_vec())
    );
    assert!(pool.get("a").unwrap().store().path().is_none());
    pool.get("b").unwrap(); // evicts "a"
    assert_eq!(pool.get("a").unwrap().meta("k").unwrap(), None);
}

#[test]
fn token_secrets_never_leak() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::new(opts(dir.path())).unwrap();
    let mut seen = Vec::new();
    for id in [1u64, 42, 123456789, u64::MAX] {
        let t = token(id);
        let h = pool.get(&t).unwrap();
        h.set_meta("id", id.to_string().as_bytes()).unwrap();
        assert_eq!(h.key().bot_id(), Some(id));
        seen.push(format!("{h:?} {:?} {} {:?}", h.key(), h.key(), h.account()));
        // A token and its bare id name the same store.
        assert!(std::ptr::eq(
            h.store(),
            pool.get(&id.to_string()).unwrap().store()
        ));
        // An open error names the file, which holds only the id.
        drop(h);
        assert!(pool.close(&t).unwrap());
        let lock = Store::open(dir.path().join(format!("{id}.peerlog"))).unwrap();
        seen.push(format!("{0} {0:?}", pool.get(&t).unwrap_err()));
        drop(lock);
        let key = PoolKey::parse(&t).unwrap();
        seen.push(format!("{key} {key:?} {}", key.file_name()));
        assert_eq!(
            pool.get(&key).unwrap().meta("id").unwrap(),
            Some(id.to_string().into_bytes())
        );
    }
    // Malformed tokens are rejected without quoting them.
    for bad in [
        format!("12:{}", &SECRET[..20]),
        format!("12:{SECRET}/"),
        format!("012:{SECRET}"),
        format!("x12:{SECRET}"),
        format!("12:{SECRET}:{SECRET}"),
        format!("{SECRET}/../x"),
    ] {
        let e = pool.get(&bad).unwrap_err();
        seen.push(format!("{e} {e:?}"));
        seen.push(format!("{:?}", PoolKey::parse(&bad)));
    }
    seen.push(format!("{pool:?} {:?} {:?}", pool.stats(), pool.keys()));
    for s in &seen {
        assert!(!s.contains(&SECRET[..12]), "secret in {s}");
        assert!(!s.contains(&SECRET[20..]), "secret in {s}");
    }
    let mut files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "1.peerlog",
            "123456789.peerlog",
            "18446744073709551615.peerlog",
            "42.peerlog"
        ]
    );
}

/// Threads share a few slots among many keys: eviction and reopening
/// under contention lose no update and never trip over a file lock.
#[test]
fn contended_eviction_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    o.max_open = 4;
    o.idle_timeout = Duration::from_millis(1);
    let pool = Pool::new(o).unwrap();
    pool.spawn_reaper(Duration::from_millis(1)).unwrap();
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                for i in 0..150u64 {
                    let key = format!("k{}", (i * 7 + t * 3) % 12);
                    let h = pool.get(&key).unwrap();
                    h.write(|tx| {
                        let n = tx
                            .meta("n")?
                            .map_or(0, |v| u64::from_le_bytes(v.try_into().unwrap()));
                        tx.set_meta("n", &(n + 1).to_le_bytes())
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let total: u64 = (0..12)
        .map(|k| {
            pool.get(&format!("k{k}"))
                .unwrap()
                .meta("n")
                .unwrap()
                .map_or(0, |v| u64::from_le_bytes(v.try_into().unwrap()))
        })
        .sum();
    assert_eq!(total, 600);
    let s = pool.stats();
    assert!(s.evictions + s.reaps > 0, "{s:?}");
    assert_eq!(s.open_errors, 0);
}
