//! Size on disk per peer after compaction (indexes included) and heap
//! memory of an open store, on the benchmark data set:
//!
//! ```text
//! cargo run --release --example footprint [N=1000000]
//! ```
//!
//! Heap is measured with a counting global allocator: bytes live after
//! `Store::open` and a first lookup, minus bytes live before. Peer data
//! stays in the mapped file, so it should not show up here.

#[path = "../benches/common/mod.rs"]
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use common::peerlog_ref::{PeerlogRef, build_peerlog};
use common::{Dataset, SEED};
use peerlog::Durability;

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(1_000_000, |s| s.parse().expect("N"));
    let ds = Dataset::generate(n, SEED);
    let dir = build_peerlog(&ds, Durability::Immediate).close();
    let file = PeerlogRef::file(dir.path());
    let bytes = std::fs::metadata(&file).expect("store file").len();
    println!("peers: {n}");
    println!(
        "file: {bytes} bytes = {:.1} bytes/peer (compacted, indexes and log included)",
        bytes as f64 / n as f64
    );

    let before = LIVE.load(Ordering::Relaxed);
    let r = PeerlogRef::open(dir.path(), Durability::Immediate);
    assert!(r.get(ds.peers[n / 2].id).is_some());
    let heap = LIVE.load(Ordering::Relaxed) - before;
    println!(
        "heap of the open store: {heap} bytes = {:.2} MiB",
        heap as f64 / (1 << 20) as f64
    );
    let s = r.store.stats();
    println!(
        "id index load {:.2}, username index load {:.2}, free bytes {}",
        s.id_index_load, s.username_index_load, s.free_bytes
    );
}
