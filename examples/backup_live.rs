//! Time to back up a large store while a writer runs, and the writer's
//! worst stall meanwhile:
//!
//! ```text
//! cargo run --release --example backup_live [N=1000000] [DIR]
//! ```
//!
//! Builds a store of N peers (in `DIR`, default a temporary directory on
//! the same filesystem as `std::env::temp_dir()`), compacts it, then
//! starts a writer that commits without pause (each commit re-saves 8 of
//! 64 hot peers with a new access hash and sets the update state, default
//! `Batched` durability; the hot set keeps peer-table folds, which stall
//! the writer for their own reasons, out of the picture) and records
//! every commit's latency. It measures a baseline window with
//! the writer alone, then runs `Store::backup_to` (copy, sync, open and
//! verify of the copy, link) and reports the backup's time and the
//! writer's commits, median and worst commit latency during each window.
//! The backup is then checked: it holds every commit acknowledged before
//! it began.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use peerlog::{Options, Peer, PeerId, Storage, Store};

fn hash(id: u64, round: u64) -> i64 {
    (id.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ round.wrapping_mul(0xbf58_476d_1ce4_e5b9)) as i64
}

/// Commit latencies recorded between `from` and `to`.
fn window(
    lat: &[(Instant, Duration)],
    from: Instant,
    to: Instant,
) -> (usize, Duration, Duration, Duration) {
    let mut v: Vec<Duration> = lat
        .iter()
        .filter(|(t, _)| *t >= from && *t <= to)
        .map(|(_, d)| *d)
        .collect();
    v.sort();
    let med = v.get(v.len() / 2).copied().unwrap_or_default();
    let p999 = v.get(v.len() * 999 / 1000).copied().unwrap_or_default();
    let max = v.last().copied().unwrap_or_default();
    (v.len(), med, p999, max)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map_or(1_000_000, |s| s.parse().expect("N"));
    let tmp;
    let dir = match args.next() {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            tmp = tempfile::tempdir().expect("temp dir");
            tmp.path().to_path_buf()
        }
    };
    let path = dir.join("live.peerlog");
    let dest = dir.join("backup.peerlog");
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&dest);

    let t = Instant::now();
    let store = Store::open_with(
        &path,
        Options {
            durability: peerlog::Durability::None,
            ..Options::default()
        },
    )
    .expect("open");
    let acct = store.account("bot").expect("account");
    let mut id = 1u64;
    while id <= n {
        let end = (id + 10_000).min(n + 1);
        let peers: Vec<Peer> = (id..end)
            .map(|i| {
                let p = Peer::user(i as i64, hash(i, 0));
                if i % 4 == 0 {
                    p.with_username(format!("user_{i}"))
                } else {
                    p
                }
            })
            .collect();
        acct.save_peers(&peers).expect("save");
        id = end;
    }
    store.compact().expect("compact");
    drop(acct);
    store.close().expect("close");
    println!(
        "{n} peers built in {:.1} s; file {} MiB",
        t.elapsed().as_secs_f64(),
        std::fs::metadata(&path).expect("stat").len() >> 20
    );

    let store = Store::open(&path).expect("reopen");
    let acct = store.account("bot").expect("account");
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let writer = {
        let (acct, stop, acked) = (acct.clone(), stop.clone(), acked.clone());
        std::thread::spawn(move || {
            let mut lat: Vec<(Instant, Duration)> = Vec::with_capacity(1 << 20);
            let mut round = 0u64;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                let peers: Vec<Peer> = (0..8)
                    .map(|k| {
                        let i = 1 + (round * 8 + k) % 64 * 15_485_863 % n;
                        Peer::user(i as i64, hash(i, round))
                    })
                    .collect();
                let state = peerlog::UpdateState {
                    pts: round as i32,
                    qts: 0,
                    date: 0,
                    seq: 0,
                };
                let t = Instant::now();
                acct.save_peers_and_state(&peers, Some(&state), &[])
                    .expect("commit");
                let end = Instant::now();
                lat.push((end, end - t));
                acked.store(round, Ordering::Release);
            }
            lat
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let base_from = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let base_to = Instant::now();

    let len = || std::fs::metadata(&path).expect("stat").len() >> 20;
    let size_before = len();
    let acked_before = acked.load(Ordering::Acquire);
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (sampling, path) = (sampling.clone(), path.clone());
        std::thread::spawn(move || {
            let mut max = 0;
            while sampling.load(Ordering::Relaxed) {
                max = max.max(std::fs::metadata(&path).expect("stat").len() >> 20);
                std::thread::sleep(Duration::from_millis(5));
            }
            max
        })
    };
    let from = Instant::now();
    let report = store.backup_to(&dest).expect("backup");
    let to = Instant::now();
    sampling.store(false, Ordering::Relaxed);
    let size_max = sampler.join().expect("sampler");
    let size_after = len();
    std::thread::sleep(Duration::from_millis(200));
    let size_later = len();
    stop.store(true, Ordering::Relaxed);
    let lat = writer.join().expect("writer");

    let took = to - from;
    println!(
        "backup: {:.2} s for {} MiB copied ({} peers, generation {}), including sync, open and verify of the copy",
        took.as_secs_f64(),
        report.bytes_copied >> 20,
        report.peers,
        report.generation
    );
    for (what, (n, med, p999, max)) in [
        ("writer alone (3 s)  ", window(&lat, base_from, base_to)),
        ("writer during backup", window(&lat, from, to)),
    ] {
        println!(
            "{what}: {n} commits, median {:.1} µs, 99.9% {:.2} ms, worst {:.2} ms",
            med.as_secs_f64() * 1e6,
            p999.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        );
    }
    println!(
        "store file: {size_before} MiB before, at most {size_max} MiB during the backup (regions freed while it copies are held), {size_after} MiB when it returned, {size_later} MiB 0.2 s later; {} checkpoints in all",
        store.stats().checkpoints
    );

    // The copy holds every commit acknowledged before the backup began.
    drop(acct);
    drop(store);
    let copy = Store::open(&dest).expect("open the backup");
    let a = copy.account("bot").expect("account");
    let pts = a.update_state().expect("state").map_or(0, |s| s.pts as u64);
    assert!(
        pts >= acked_before,
        "the backup lacks commit {acked_before}"
    );
    let i = 1 + (pts * 8) % 64 * 15_485_863 % n;
    assert_eq!(
        a.access_hash(PeerId::user(i as i64)).expect("lookup"),
        Some(hash(i, pts)),
        "commit {pts} is in the backup only in part"
    );
    println!("backup checked: holds commit {acked_before} (acknowledged before it began)");
}
