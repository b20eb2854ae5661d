//! Damage to the peer table is never served, never laundered by a
//! compaction, and `Store::repair` rebuilds what can be rebuilt.
//!
//! A store of a few hundred peers is folded into a segment and an index,
//! then one bit of one peer's access hash is flipped where it lies on
//! disk: in the segment record, then in the index slot. Each time every
//! answer must be right or an error; a `compact()` must fail rather than
//! copy the damage into a new generation; and `repair()` must leave a
//! store whose every answer is right (the index rebuilt from the records,
//! or the record rebuilt from its index slot) and whose `verify()` is
//! clean.

use peerlog::{Options, Peer, PeerId, Storage, Store};

const N: i64 = 300;

fn hash_of(i: i64) -> i64 {
    0x5eed_0000_0000_0000 ^ (i * 0x1234_5678_9abc)
}

fn build(path: &std::path::Path) {
    let store = Store::open_with(path, Options::default()).unwrap();
    let a = store.account("bot").unwrap();
    let peers: Vec<Peer> = (1..=N)
        .map(|i| Peer::user(i, hash_of(i)).with_username(format!("user{i}")))
        .collect();
    a.save_peers(&peers).unwrap();
    store.compact().unwrap();
}

/// Every answer right, or an error; never a wrong value.
fn answers_right_or_error(store: &Store) -> (usize, usize) {
    let a = store.account("bot").unwrap();
    let (mut right, mut errors) = (0, 0);
    for i in 1..=N {
        match a.access_hash(PeerId::user(i)) {
            Ok(Some(h)) => assert_eq!(h, hash_of(i), "peer {i}: wrong access hash"),
            Ok(None) => panic!("peer {i} reported absent"),
            Err(_) => {
                errors += 1;
                continue;
            }
        }
        match a.peer(PeerId::user(i)) {
            Ok(Some(p)) => assert_eq!(p.access_hash, Some(hash_of(i)), "peer {i}"),
            Ok(None) => panic!("peer {i} read as absent"),
            Err(_) => {
                errors += 1;
                continue;
            }
        }
        right += 1;
    }
    (right, errors)
}

fn occurrences(img: &[u8], needle: &[u8]) -> Vec<usize> {
    img.windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn a_flipped_access_hash_is_never_served_nor_laundered_and_repair_restores() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bot.peerlog");
    build(&path);
    let clean = std::fs::read(&path).unwrap();
    let victim = 123;
    let at = occurrences(&clean, &hash_of(victim).to_le_bytes());
    assert!(
        at.len() >= 2,
        "expected the hash in the segment and the index: {at:?}"
    );
    let mut salvaged = 0;
    for &pos in &at {
        for bit in [0u8, 5] {
            let mut img = clean.clone();
            img[pos] ^= 1 << bit;
            std::fs::write(&path, &img).unwrap();
            let store = Store::open(&path).unwrap();
            // (Some occurrences are stale copies in free space or an old
            // log: those change nothing.)
            answers_right_or_error(&store);
            // A compaction must not turn the damage into the truth.
            let compacted = store.compact();
            let (_, errors_after) = answers_right_or_error(&store);
            let report = store.verify().unwrap();
            assert!(
                compacted.is_err() || errors_after > 0 || !report.is_ok() || {
                    // Or every answer is right again (the fold repaired
                    // nothing silently: all answers checked above).
                    errors_after == 0
                },
                "flip at {pos}"
            );
            drop(store);
            // Repair: every answer right, verify clean, also after reopen.
            let store = Store::open(&path).unwrap();
            let r = store.repair().unwrap();
            assert!(r.after.is_ok(), "flip at {pos}: {r}");
            let st = store.stats();
            assert_eq!(st.repairs, 1);
            assert_eq!(st.records_salvaged, r.salvaged.len() as u64);
            salvaged += r.salvaged.len();
            let (right, errors) = answers_right_or_error(&store);
            assert_eq!((right as i64, errors), (N, 0), "flip at {pos}: {r}");
            drop(store);
            let store = Store::open(&path).unwrap();
            assert_eq!(answers_right_or_error(&store), (N as usize, 0));
            assert!(store.verify().unwrap().is_ok());
        }
    }
    // The flip in the segment record took the salvage path.
    assert!(salvaged > 0, "no flip reached a peer record");
}
