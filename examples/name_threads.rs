//! Username lookups from several threads at once, against one store:
//!
//! ```text
//! cargo run --profile bench --example name_threads -- 2
//! ```
//!
//! Builds the benchmarks' 100k-peer data set (compacted), then each of
//! THREADS (argument, default 2) threads resolves the `lookup_username`
//! stream through `Storage::resolve_username` for two seconds and prints
//! its time per lookup. Names unchanged since the index generation resolve
//! without a lock; when every lookup took the state's read lock, two
//! threads on this 2-core machine took 330-390 ns per lookup each (the
//! lock's cache line moving between the cores) against 75 ns for one.

#[path = "../benches/common/mod.rs"]
mod common;

use common::peerlog_ref::build_peerlog;
use common::{Dataset, SEED};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let threads: usize = std::env::args()
        .nth(1)
        .map_or(2, |a| a.parse().expect("THREADS is a number"));
    let ds = Dataset::generate(100_000, SEED);
    let names = Arc::new(ds.streams().usernames);
    let store = Arc::new(build_peerlog(&ds, peerlog::Durability::None));
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (store, names) = (store.clone(), names.clone());
            std::thread::spawn(move || {
                let start = Instant::now();
                let (mut done, mut i, mut sum) = (0u64, t * 997, 0i64);
                while start.elapsed() < Duration::from_secs(2) {
                    for _ in 0..1000 {
                        let (id, hash, _) = store
                            .get_username(&names[i % names.len()])
                            .expect("every streamed username exists");
                        sum ^= id ^ hash;
                        i += 1;
                    }
                    done += 1000;
                }
                (start.elapsed().as_nanos() as f64 / done as f64, sum)
            })
        })
        .collect();
    for (t, w) in workers.into_iter().enumerate() {
        let (ns, sum) = w.join().expect("worker");
        println!("thread {t}: {ns:.1} ns per username lookup (checksum {sum:x})");
    }
}
