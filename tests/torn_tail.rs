//! Torn tails are truncated back to the last whole commit and reported;
//! damage followed by commits that prove it was synced is `Corrupt`.

mod common;
use common::*;
use peerlog::io::{Fate, Pending};
use peerlog::{Durability, Error, Store};

fn setup() -> (peerlog::io::MemFile, Store) {
    let (file, store) = mem_store(small_opts(Durability::None));
    for i in 0..20u8 {
        store.bucket("b").unwrap().put(&[i], &[i; 40]).unwrap();
    }
    store
        .put_peer_records(vec![rec(0, 5, 55, &["five"])])
        .unwrap();
    store.sync().unwrap();
    // The first sync appends an empty commit proving the others synced
    // and writes the sync mark; the second makes those durable too, so
    // that the tests below see only their own writes pending.
    store.sync().unwrap();
    (file, store)
}

fn holds_earlier(s: &Store) {
    for i in 0..20u8 {
        assert_eq!(s.bucket("b").unwrap().get(&[i]).unwrap(), Some(vec![i; 40]));
    }
    assert_eq!(s.peer_access_hash(0, 5).unwrap(), Some(Some(55)));
    let r = s.verify().unwrap();
    assert!(r.is_ok(), "{r}");
}

#[test]
fn every_tear_and_flip_of_the_last_commit() {
    let (file, store) = setup();
    let mut b = store.batch();
    b.put("b", b"last", &[7; 100])
        .unwrap()
        .put("c", b"other", b"x")
        .unwrap();
    b.commit().unwrap();
    store.put_peer_records(vec![]).unwrap();
    let pending = file.pending();
    assert_eq!(pending.len(), 1, "the last commit is one write");
    let Pending::Write { offset, data } = &pending[0] else {
        panic!()
    };
    let len = data.len();
    let mut tears = 0;
    for n in 0..=len {
        let img = file.crash_image(|_, _| Fate::Tear(n));
        let s = reopen_image(img, small_opts(Durability::None)).unwrap();
        holds_earlier(&s);
        let got = s.bucket("b").unwrap().get(b"last").unwrap();
        if n == len {
            assert_eq!(got, Some(vec![7; 100]));
        } else {
            assert_eq!(got, None, "torn at {n} of {len}");
            assert_eq!(
                s.bucket("c").unwrap().get(b"other").unwrap(),
                None,
                "atomic commit"
            );
            tears += (s.stats().recovered_bytes > 0) as usize;
        }
    }
    assert!(tears >= len - 8, "torn tails are reported");
    for i in 0..len {
        let mut img = file.live();
        img[*offset as usize + i] ^= 0x5a;
        let s = reopen_image(img, small_opts(Durability::None)).unwrap();
        holds_earlier(&s);
        assert_eq!(
            s.bucket("b").unwrap().get(b"last").unwrap(),
            None,
            "flip at {i}"
        );
        assert!(s.stats().recovered_bytes > 0);
    }
}

#[test]
fn damage_followed_by_synced_commits_is_corruption() {
    let (file, store) = mem_store(small_opts(Durability::Immediate));
    let b = store.bucket("b").unwrap();
    b.put(b"one", b"1").unwrap();
    let before = file.live();
    b.put(b"two", b"2").unwrap();
    let after = file.live();
    b.put(b"three", b"3").unwrap();
    // The first change in the log (the header's sync mark changes too).
    let start = first_log_change(&before, &after);
    let mut img = file.live();
    img[start + 20] ^= 1;
    match reopen_image(img, small_opts(Durability::Immediate)) {
        Err(Error::Corrupt { offset, what }) => {
            assert_eq!(offset, start as u64, "{what}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn unsynced_commits_lost_out_of_order_are_a_torn_tail() {
    // Batched/None: a later commit may reach the disk while an earlier,
    // unsynced one does not. That is power loss, not corruption.
    let (file, store) = setup();
    let b = store.bucket("b").unwrap();
    b.put(b"x", b"1").unwrap();
    b.put(b"y", b"2").unwrap();
    assert_eq!(file.pending().len(), 2);
    let img = file.crash_image(|i, _| if i == 0 { Fate::Drop } else { Fate::Keep });
    let s = reopen_image(img, small_opts(Durability::None)).unwrap();
    holds_earlier(&s);
    assert_eq!(
        s.bucket("b").unwrap().get(b"y").unwrap(),
        None,
        "y must not outlive x"
    );
    // After recovery the stale commit is gone for good, even when a new
    // commit of the same length takes x's place.
    s.bucket("b").unwrap().put(b"z", b"3").unwrap();
    drop(s);
}

#[test]
fn truncated_and_foreign_files_give_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.peerlog");
    {
        let s = Store::open(&path).unwrap();
        s.put_peer_records((1..500).map(|i| rec(0, i, i, &[])).collect())
            .unwrap();
        s.compact().unwrap();
    }
    let full = std::fs::read(&path).unwrap();
    for cut in [
        1usize,
        100,
        511,
        4096,
        4600,
        8192,
        9000,
        full.len() / 2,
        full.len() - 1,
    ] {
        std::fs::write(&path, &full[..cut]).unwrap();
        match Store::open(&path) {
            Err(Error::Corrupt { .. } | Error::NotPeerlog { .. }) => {}
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
    std::fs::write(
        &path,
        b"SQLite format 3\0 and then some bytes that are not ours",
    )
    .unwrap();
    assert!(matches!(Store::open(&path), Err(Error::NotPeerlog { .. })));
    std::fs::write(&path, &full).unwrap();
    let s = Store::open(&path).unwrap();
    assert_eq!(s.peer_ids(0).unwrap().len(), 499);
}

#[test]
fn newer_version_is_refused() {
    let (file, store) = setup();
    drop(store);
    let mut img = file.live();
    for slot in [0usize, 2048, 4096, 6144] {
        if img[slot..slot + 8] == peerlog::format::superblock::MAGIC {
            img[slot + 8..slot + 12].copy_from_slice(&9u32.to_le_bytes());
            let crc = peerlog::format::masked_crc(&img[slot..slot + 508]);
            img[slot + 508..slot + 512].copy_from_slice(&crc.to_le_bytes());
        }
    }
    match reopen_image(img, small_opts(Durability::None)) {
        Err(Error::UnsupportedVersion {
            found: 9,
            supported: peerlog::format::superblock::FORMAT_VERSION,
        }) => {}
        other => panic!("{other:?}"),
    }
}

/// The sync mark is written after every sync of the log, not only by
/// `sync()` and a close: a process that dies after a durable commit (no
/// close, nothing after it) still leaves the proof, so a damaged last
/// commit is `Corrupt`, never dropped as a torn tail.
#[test]
fn damage_to_the_last_durable_commit_of_a_dead_process_is_corruption() {
    let (file, store) = mem_store(small_opts(Durability::Immediate));
    let b = store.bucket("b").unwrap();
    b.put(b"one", b"1").unwrap();
    let before = file.live();
    b.put(b"two", b"2").unwrap();
    // The process dies here: the image is taken with the store open.
    let mut img = file.live();
    let start = first_log_change(&before, &img);
    img[start + 20] ^= 1;
    match reopen_image(img, small_opts(Durability::Immediate)) {
        Err(Error::Corrupt { what, .. }) => assert!(what.contains("sync mark"), "{what}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    drop((b, store));
}

/// The first byte past the header (where the log of a new store starts)
/// that differs between two images.
fn first_log_change(before: &[u8], after: &[u8]) -> usize {
    let header = 8192;
    before[header..]
        .iter()
        .zip(&after[header..])
        .position(|(x, y)| x != y)
        .unwrap()
        + header
}
