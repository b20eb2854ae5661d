//! A failure or power loss at every write and sync of a checkpoint (bucket
//! segments, peer index switch, log switch, superblock flip) reopens to a
//! consistent store holding every commit acknowledged before it.

mod common;
use common::*;
use peerlog::io::{Fate, FaultOn, MemFile};
use peerlog::{Durability, Options, Store};
use std::io::ErrorKind;
use std::sync::Arc;

fn fill(store: &Store, round: i64) {
    let mut b = store.batch();
    for i in 0..50u8 {
        b.put("q", &[i], &[round as u8; 64]).unwrap();
    }
    b.commit().unwrap();
    store
        .put_peer_records(
            (1..=120)
                .map(|i| rec(0, i, i * 10 + round, &[&format!("p{i}")]))
                .collect(),
        )
        .unwrap();
}

fn check(s: &Store, round: i64) {
    for i in 0..50u8 {
        assert_eq!(
            s.bucket("q").unwrap().get(&[i]).unwrap(),
            Some(vec![round as u8; 64])
        );
    }
    for i in 1..=120 {
        assert_eq!(
            s.peer_access_hash(0, i).unwrap(),
            Some(Some(i * 10 + round)),
            "peer {i}"
        );
        assert_eq!(s.peer_id_by_username(0, &format!("p{i}")).unwrap(), Some(i));
    }
    let r = s.verify().unwrap();
    assert!(r.is_ok(), "{r}");
}

fn opts() -> Options {
    small_opts(Durability::Immediate)
}

#[test]
fn failure_at_every_step_of_compaction() {
    let mut images = 0;
    for on in [FaultOn::Write, FaultOn::Sync, FaultOn::SetLen] {
        for n in 0.. {
            let file = MemFile::new();
            let store = Store::open_backend(Arc::new(file.clone()), opts()).unwrap();
            fill(&store, 1);
            store.compact().unwrap();
            fill(&store, 2);
            file.fail(on, n, ErrorKind::Other, true);
            let res = store.compact();
            if res.is_ok() {
                // n is past the last call of that kind in a compaction.
                file.heal();
                check(&store, 2);
                break;
            }
            // Failed and latched: later writes error, reads still work.
            assert!(matches!(
                store.bucket("q").unwrap().put(b"z", b"z"),
                Err(peerlog::Error::Poisoned { .. })
            ));
            check_readonly(&store);
            drop(store);
            file.heal();
            for img in [
                file.durable(),
                file.live(),
                file.crash_image(|_, _| Fate::Keep),
                file.crash_image(|i, _| if i % 2 == 0 { Fate::Keep } else { Fate::Drop }),
                file.crash_image(|_, p| match p {
                    peerlog::io::Pending::Write { data, .. } => Fate::Tear(data.len() / 2),
                    _ => Fate::Keep,
                }),
            ] {
                let s = reopen_image(img, opts()).unwrap();
                check(&s, 2);
                images += 1;
            }
        }
    }
    assert!(images > 20, "only {images} crash images");
}

fn check_readonly(s: &Store) {
    for i in 1..=120 {
        assert_eq!(s.peer_access_hash(0, i).unwrap(), Some(Some(i * 10 + 2)));
    }
}

#[test]
fn failure_at_every_step_of_an_automatic_index_switch() {
    // peer_fold_min = 64: saving 120 new peers switches index generations
    // inside the commit that crosses the threshold.
    for n in 0..12 {
        let file = MemFile::new();
        let store = Store::open_backend(Arc::new(file.clone()), opts()).unwrap();
        fill(&store, 1);
        let before = store.stats().generation;
        file.fail(FaultOn::Write, n, ErrorKind::StorageFull, true);
        let res = store.put_peer_records((1000..1100).map(|i| rec(0, i, i, &[])).collect());
        let acked = res.is_ok();
        // The commit stands even when the switch after it fails; the
        // failure then poisons the store.
        let switched = store.stats().generation > before;
        if acked && !switched {
            assert!(matches!(
                store.bucket("q").unwrap().put(b"z", b"z"),
                Err(peerlog::Error::Poisoned { .. })
            ));
        }
        drop(store);
        file.heal();
        for img in [file.durable(), file.live()] {
            let s = reopen_image(img, opts()).unwrap();
            check(&s, 1);
            if acked {
                assert_eq!(s.peer_access_hash(0, 1050).unwrap(), Some(Some(1050)));
            }
            if switched {
                assert!(s.stats().generation > before);
            }
        }
    }
}
