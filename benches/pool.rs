//! `Pool::get`: of a store that is already open (a map lookup and a
//! handle), and of a cold one that the pool must open from disk (the file
//! is in the page cache; closing it between iterations is not timed).
//! Both stores hold a session-sized account with 1,000 peers, opened with
//! default `Options`.

use criterion::{BatchSize, Criterion};
use peerlog::{Peer, Pool, PoolOptions, Storage};
use std::hint::black_box;

fn fill(pool: &Pool, key: &str) {
    let h = pool.get(key).unwrap();
    let peers: Vec<Peer> = (1..=1000)
        .map(|i| Peer::user(i, i * 31).with_username(format!("user{i}")))
        .collect();
    h.save_peers(&peers).unwrap();
    h.set_meta("bot", key.as_bytes()).unwrap();
    h.store().sync().unwrap();
}

fn pool_get(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::new(PoolOptions {
        dir: Some(dir.path().to_path_buf()),
        ..PoolOptions::default()
    })
    .unwrap();
    let hot = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_x";
    fill(&pool, hot);
    fill(&pool, "cold");

    let mut g = c.benchmark_group("pool_get");
    g.bench_function("open", |b| {
        b.iter(|| black_box(pool.get(black_box(hot)).unwrap()))
    });
    g.bench_function("cold", |b| {
        b.iter_batched(
            || {
                pool.close("cold").unwrap();
            },
            |()| pool.get(black_box("cold")).unwrap(),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    pool_get(&mut c);
    c.final_summary();
}
