//! Id lookups while a compaction runs, on the benchmark data set:
//!
//! ```text
//! cargo run --profile bench --example compaction [N=1000000] [ROUNDS=3]
//! ```
//!
//! Loads N peers and compacts, then per round re-saves 30% of them with a
//! new access hash (30% dead records) and compacts on another thread while
//! this one resolves ids from the uniform lookup stream, in chunks of
//! 1,000, until the compaction ends. Prints the compaction's time and the
//! mean time per lookup of the same stream with nothing else running
//! (before the re-save, and after it with the re-saved peers pending in
//! the table of changes since the generation), during the compaction, and
//! in the slowest chunk. Every answer
//! is checked against the access hash the peer was last saved with.

#[path = "../benches/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::peerlog_ref::{PeerlogRef, build_peerlog};
use common::{Dataset, SEED};
use peerlog::Durability;

const CHUNK: usize = 1000;

/// Resolves `CHUNK` ids of `stream` (id, hash before the round's re-save,
/// hash after it) from `*at` on, checking each against the hash after the
/// re-save if `saved`, else before; returns the time taken.
fn chunk(db: &PeerlogRef, stream: &[(i64, i64, i64)], at: &mut usize, saved: bool) -> Duration {
    let t = Instant::now();
    for _ in 0..CHUNK {
        let (id, old, new) = stream[*at];
        *at = (*at + 1) % stream.len();
        let want = if saved { new } else { old };
        let got = db.get(id).map(|(h, _)| h);
        assert_eq!(got, Some(want), "peer {id}");
    }
    t.elapsed()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(1_000_000, |s| s.parse().expect("N"));
    let rounds: i64 = args.next().map_or(3, |s| s.parse().expect("ROUNDS"));
    let ds = Dataset::generate(n, SEED);
    let db = build_peerlog(&ds, Durability::None);
    let hot: Vec<usize> = (0..n).filter(|i| i % 10 < 3).collect();
    let index: std::collections::HashMap<i64, usize> = ds
        .peers
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id, i))
        .collect();
    let uniform = ds.streams().uniform;
    println!("{n} peers; each round re-saves {} of them", hot.len());
    for round in 1..=rounds {
        let hash = |i: usize, r: i64| match i % 10 < 3 {
            true if r > 0 => ds.peers[i].hash ^ (r << 1),
            _ => ds.peers[i].hash,
        };
        let stream: Vec<(i64, i64, i64)> = uniform
            .iter()
            .map(|id| {
                let i = index[id];
                (*id, hash(i, round - 1), hash(i, round))
            })
            .collect();
        let mut at = 0;
        // Nothing else running (the previous round's hashes are current).
        let idle_chunks = 2000;
        let idle: Duration = (0..idle_chunks)
            .map(|_| chunk(&db, &stream, &mut at, false))
            .sum();
        let changed: Vec<common::Peer> = hot
            .iter()
            .map(|&i| common::Peer {
                hash: hash(i, round),
                ..ds.peers[i].clone()
            })
            .collect();
        for c in changed.chunks(1000) {
            db.save(c);
        }
        // Nothing else running, with the re-saved peers in the lock-free
        // table of changes since the generation, as during the compaction.
        let pending: Duration = (0..idle_chunks)
            .map(|_| chunk(&db, &stream, &mut at, true))
            .sum();
        let done = AtomicBool::new(false);
        let (took, during) = std::thread::scope(|s| {
            let compactor = s.spawn(|| {
                let t = Instant::now();
                db.store.compact().expect("compact");
                let took = t.elapsed();
                done.store(true, Ordering::Release);
                took
            });
            let mut during = Vec::new();
            while !done.load(Ordering::Acquire) {
                during.push(chunk(&db, &stream, &mut at, true));
            }
            (compactor.join().expect("compaction thread"), during)
        });
        let per = |d: Duration, chunks: usize| d.as_nanos() as f64 / (chunks * CHUNK) as f64;
        let total: Duration = during.iter().sum();
        let worst = during.iter().max().copied().unwrap_or_default();
        println!(
            "round {round}: compaction {:.1} ms; lookups idle {:.1} ns, idle with the \
             re-saves pending {:.1} ns, during {:.1} ns ({} lookups), slowest chunk {:.1} ns \
             per lookup",
            took.as_secs_f64() * 1e3,
            per(idle, idle_chunks),
            per(pending, idle_chunks),
            per(total, during.len()),
            during.len() * CHUNK,
            per(worst, 1),
        );
    }
}
