//! Reopen returns exactly what was committed, in every bucket and every
//! durability mode, across checkpoints and compactions.

mod common;
use common::*;
use peerlog::{Durability, Store};
use std::collections::BTreeMap;
use std::time::Duration;

fn workload(store: &Store, model: &mut BTreeMap<(String, Vec<u8>), Vec<u8>>, round: u32) {
    for i in 0..300u32 {
        let bucket = format!("b{}", i % 3);
        let key = format!("key-{}", (i * 7 + round) % 97).into_bytes();
        if i % 5 == 4 {
            store.bucket(&bucket).unwrap().delete(&key).unwrap();
            model.remove(&(bucket, key));
        } else {
            let value = vec![(i + round) as u8; (i as usize * 13) % 700];
            let mut b = store.batch();
            b.put(&bucket, &key, &value).unwrap();
            b.put("mirror", &key, &value).unwrap();
            b.commit().unwrap();
            model.insert((bucket, key.clone()), value.clone());
            model.insert(("mirror".into(), key), value);
        }
    }
    let peers: Vec<_> = (1..=200)
        .map(|i| {
            rec(
                round % 2,
                i * 11,
                i * 1000 + round as i64,
                &[&format!("user{i}")],
            )
        })
        .collect();
    store.put_peer_records(peers).unwrap();
}

fn check(store: &Store, model: &BTreeMap<(String, Vec<u8>), Vec<u8>>, rounds: u32) {
    for ((bucket, key), value) in model {
        assert_eq!(
            store.bucket(bucket).unwrap().get(key).unwrap().as_ref(),
            Some(value),
            "{bucket}/{key:?}"
        );
    }
    for name in ["b0", "b1", "b2", "mirror"] {
        let n = model.keys().filter(|(b, _)| b == name).count();
        assert_eq!(store.bucket(name).unwrap().len(), n, "bucket {name} size");
    }
    for acc in 0..2u32.min(rounds) {
        let last = (0..rounds).filter(|r| r % 2 == acc).max().unwrap();
        for i in 1..=200i64 {
            assert_eq!(
                store.peer_access_hash(acc, i * 11).unwrap(),
                Some(Some(i * 1000 + last as i64))
            );
            assert_eq!(
                store.peer_id_by_username(acc, &format!("USER{i}")).unwrap(),
                Some(i * 11)
            );
        }
    }
    let report = store.verify().unwrap();
    assert!(report.is_ok(), "{report}");
}

#[test]
fn reopen_every_durability_mode() {
    for d in [
        Durability::Immediate,
        Durability::Batched(Duration::from_millis(2)),
        Durability::None,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.peerlog");
        let mut model = BTreeMap::new();
        for round in 0..4 {
            let store = Store::open_with(&path, small_opts(d)).unwrap();
            if round > 0 {
                check(&store, &model, round);
            }
            workload(&store, &mut model, round);
            if round == 2 {
                store.compact().unwrap();
            }
            check(&store, &model, round + 1);
        }
        let store = Store::open_with(&path, small_opts(d)).unwrap();
        check(&store, &model, 4);
        assert!(store.stats().checkpoints == 0 && store.stats().recovered_bytes == 0);
    }
}

#[test]
fn process_crash_loses_no_returned_commit() {
    // The live image is what a kill -9 leaves: every returned commit is in
    // the page cache even with Durability::None.
    let (file, store) = mem_store(small_opts(Durability::None));
    let mut model = BTreeMap::new();
    workload(&store, &mut model, 0);
    workload(&store, &mut model, 1);
    let img = file.live();
    std::mem::forget(store); // no drop-time sync
    let again = reopen_image(img, small_opts(Durability::None)).unwrap();
    check(&again, &model, 2);
}

#[test]
fn memory_store_behaves_the_same() {
    let store = Store::memory();
    let mut model = BTreeMap::new();
    workload(&store, &mut model, 0);
    store.compact().unwrap();
    workload(&store, &mut model, 1);
    check(&store, &model, 2);
}

#[test]
fn oversized_and_invalid_input_is_rejected_without_writing() {
    let store = Store::memory();
    let b = store.bucket("x").unwrap();
    let big = vec![0u8; peerlog::MAX_KEY_LEN + 1];
    assert!(matches!(
        b.put(&big, b"v"),
        Err(peerlog::Error::TooLarge { what: "key", .. })
    ));
    assert!(matches!(store.bucket(""), Err(peerlog::Error::Invalid(_))));
    assert!(matches!(
        store.bucket(&"n".repeat(256)),
        Err(peerlog::Error::Invalid(_))
    ));
    let mut bad = rec(0, 0, 1, &[]);
    assert!(store.put_peer_records(vec![bad.clone()]).is_err());
    bad.peer_id = 1 << 45;
    assert!(store.put_peer_records(vec![bad]).is_err());
    assert_eq!(store.stats().commits, 0);
}

#[test]
fn usernames_move_and_min_peers_keep_hashes() {
    let store = Store::memory();
    store
        .put_peer_records(vec![rec(0, 1, 100, &["alice"]), rec(0, 2, 200, &["bob"])])
        .unwrap();
    store.compact().unwrap();
    // "alice" moves from peer 1 to peer 3.
    store
        .put_peer_records(vec![rec(0, 3, 300, &["Alice"])])
        .unwrap();
    assert_eq!(store.peer_id_by_username(0, "ALICE").unwrap(), Some(3));
    assert!(
        store
            .peer_record(0, 1)
            .unwrap()
            .unwrap()
            .usernames
            .is_empty()
    );
    // A min record never replaces a full hash; other fields update.
    let mut min = rec(0, 2, 999, &["bobby"]);
    min.min = true;
    store.put_peer_records(vec![min]).unwrap();
    let got = store.peer_record(0, 2).unwrap().unwrap();
    assert_eq!(
        (got.access_hash, got.min, got.usernames.clone()),
        (Some(200), false, vec!["bobby".to_string()])
    );
    assert_eq!(store.peer_id_by_username(0, "bob").unwrap(), None);
    // Unchanged records cost no commit.
    let commits = store.stats().commits;
    store
        .put_peer_records(vec![rec(0, 3, 300, &["Alice"])])
        .unwrap();
    assert_eq!(store.stats().commits, commits);
    for _ in 0..2 {
        assert_eq!(store.peer_id_by_username(0, "alice").unwrap(), Some(3));
        assert_eq!(store.peer_id_by_username(0, "bobby").unwrap(), Some(2));
        assert!(store.verify().unwrap().is_ok());
        store.compact().unwrap();
    }
    assert!(store.delete_peer_record(0, 3).unwrap());
    assert!(!store.delete_peer_record(0, 3).unwrap());
    assert_eq!(store.peer_id_by_username(0, "alice").unwrap(), None);
    assert_eq!(store.peer_ids(0).unwrap().len(), 2);
    assert_eq!(store.peer_record_count(0).unwrap(), 2);
}

/// Regression: compacting a peer table that became empty wrote an index
/// naming a released segment region; the next open called it stale and
/// failed to rebuild it.
#[test]
fn compacting_an_emptied_peer_table_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.peerlog");
    {
        let s = Store::open(&path).unwrap();
        s.put_peer_records(vec![rec(0, 1, 10, &["a"]), rec(0, 2, 20, &[])])
            .unwrap();
        s.compact().unwrap();
        assert!(s.delete_peer_record(0, 1).unwrap() && s.delete_peer_record(0, 2).unwrap());
        s.compact().unwrap();
        assert!(s.verify().unwrap().is_ok());
    }
    let s = Store::open(&path).unwrap();
    assert!(!s.stats().index_rebuilt);
    assert_eq!(s.peer_ids(0).unwrap(), Vec::<i64>::new());
    assert!(s.verify().unwrap().is_ok());
}
