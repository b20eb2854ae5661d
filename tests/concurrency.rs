//! Readers resolving peers on several threads while a writer appends,
//! switches index generations and compacts: every read sees a committed
//! value, never a torn or stale-after-commit one.

mod common;
use common::*;
use peerlog::{Durability, Options, Store};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

const PEERS: i64 = 2_000;

/// The hash of peer `i` at version `v`: readers can tell which commit a
/// value came from and that it was whole.
fn hash(i: i64, v: i64) -> i64 {
    i * 1_000_000 + v
}

#[test]
fn readers_see_only_committed_values() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        durability: Durability::None,
        peer_fold_min: 500,
        log_size: 128 << 10,
        ..Options::default()
    };
    let store = Store::open_with(dir.path().join("c.peerlog"), opts).unwrap();
    store
        .put_peer_records(
            (1..=PEERS)
                .map(|i| rec(0, i, hash(i, 0), &[&format!("u{i}")]))
                .collect(),
        )
        .unwrap();
    let version = Arc::new(AtomicI64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|t| {
            let (store, version, done) = (store.clone(), version.clone(), done.clone());
            std::thread::spawn(move || {
                let mut reads = 0u64;
                let mut i = t as i64 + 1;
                while !done.load(Ordering::Acquire) {
                    // Every version <= committed is visible once its commit returned.
                    let floor = version.load(Ordering::Acquire);
                    let h = store
                        .peer_access_hash(0, i)
                        .unwrap()
                        .expect("peer vanished")
                        .expect("hash lost");
                    let v = h - i * 1_000_000;
                    assert!(
                        h / 1_000_000 == i && v >= floor,
                        "peer {i}: read version {v} after {floor} committed"
                    );
                    if i % 7 == 0 {
                        assert_eq!(
                            store.peer_id_by_username(0, &format!("U{i}")).unwrap(),
                            Some(i)
                        );
                    }
                    i = i % PEERS + 1;
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for v in 1..=60 {
        for chunk in (1..=PEERS).collect::<Vec<_>>().chunks(250) {
            store
                .put_peer_records(
                    chunk
                        .iter()
                        .map(|&i| rec(0, i, hash(i, v), &[&format!("u{i}")]))
                        .collect(),
                )
                .unwrap();
        }
        version.store(v, Ordering::Release);
        if v % 10 == 0 {
            store.compact().unwrap();
        }
    }
    done.store(true, Ordering::Release);
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    let s = store.stats();
    assert!(s.generation > 20, "index generations switched: {s:#?}");
    assert!(reads > 10_000, "readers made progress: {reads}");
    assert!(store.verify().unwrap().is_ok());
}

/// Usernames moving between peers, every name in every commit, while
/// readers resolve them (lock-free for names unchanged since the index
/// generation, under the read lock for the others): every answer is the
/// owner as of a commit no older than the last one that returned, and a
/// name is never without an owner, across generation switches.
#[test]
fn readers_follow_usernames_that_move() {
    const N: i64 = 300;
    let dir = tempfile::tempdir().unwrap();
    // Room for the moves to stay in the overlay between compactions: a log
    // that does not fill, and many more peers than move.
    let opts = Options {
        durability: Durability::None,
        log_size: 16 << 20,
        ..Options::default()
    };
    let store = Store::open_with(dir.path().join("n.peerlog"), opts).unwrap();
    store
        .put_peer_records(
            (N + 1..=20 * N)
                .map(|i| rec(0, i, hash(i, 0), &[]))
                .collect(),
        )
        .unwrap();
    // At version v, peer i (1..=N) holds name n{(i + v) % N}.
    let round = |v: i64| -> Vec<_> {
        (1..=N)
            .map(|i| rec(0, i, hash(i, v), &[&format!("n{}", (i + v) % N)]))
            .collect()
    };
    store.put_peer_records(round(0)).unwrap();
    store.compact().unwrap();
    let version = Arc::new(AtomicI64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|t| {
            let (store, version, done) = (store.clone(), version.clone(), done.clone());
            std::thread::spawn(move || {
                let (mut reads, mut j) = (0u64, t as i64);
                while !done.load(Ordering::Acquire) {
                    let floor = version.load(Ordering::Acquire);
                    let name = format!("N{j}");
                    let (id, h) = store
                        .resolve_username(0, &name)
                        .unwrap()
                        .unwrap_or_else(|| panic!("{name} has no owner after version {floor}"));
                    // The version whose commit gave `name` to `id`.
                    let v = (j - id).rem_euclid(N);
                    assert!(
                        v >= floor && v <= version.load(Ordering::Acquire) + 1,
                        "{name}: owner {id} of version {v}, {floor} committed before"
                    );
                    let hv = h.expect("hash lost") - id * 1_000_000;
                    assert!(hv >= floor, "{name}: hash of version {hv} after {floor}");
                    if j % 5 == 0 {
                        assert!(store.peer_id_by_username(0, &name).unwrap().is_some());
                    }
                    j = (j + 7) % N;
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for v in 1..N {
        store.put_peer_records(round(v)).unwrap();
        version.store(v, Ordering::Release);
        if v % 25 == 0 {
            store.compact().unwrap();
        }
    }
    done.store(true, Ordering::Release);
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(reads > 1_000, "readers made progress: {reads}");
    assert!(store.stats().generation > 10);
    assert!(store.verify().unwrap().is_ok());
}

/// The handles cross threads: a compile-time check.
#[test]
fn handles_are_send_sync_clone() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<Store>();
    check::<peerlog::Account>();
    check::<peerlog::Bucket>();
    check::<peerlog::Pool>();
    fn object_safe(_: &dyn peerlog::Storage) {}
    let _ = object_safe;
}
