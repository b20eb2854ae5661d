//! Cold-ish start: time from opening a prepared database (N peers, closed
//! cleanly) to the first resolved peer. One iteration = open + one lookup
//! by id (cycling through the uniform stream); closing is NOT timed. The
//! files are in the OS page cache (warm cache), so this measures the
//! engines' own open work (file/lock setup, header/meta validation, schema
//! or catalog reads, first B-tree descent), not disk reads.

mod common;

use std::cell::OnceCell;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use tempfile::TempDir;

use common::peerlog_ref::{PeerlogRef, build_peerlog};
use common::refs::{self, LmdbRef, RedbRef, SqliteRef, SyncMode};
use common::{Dataset, SEED};
use peerlog::Durability;

/// Benches `open_get(dir, id)` = open + first lookup; the returned handle is
/// dropped (closed) outside the timed region. `prepare` makes the files.
fn bench_open<H>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    engine: &str,
    ctx: &Ctx,
    prepare: impl FnOnce(&Dataset) -> TempDir,
    open_get: impl Fn(&Path, i64) -> H,
) {
    let mut prepare = Some(prepare);
    let mut dir = None;
    let mut i = 0;
    g.bench_function(BenchmarkId::new(engine, ctx.n), |b| {
        let dir = dir.get_or_insert_with(|| (prepare.take().expect("once"))(ctx.ds()));
        let ids = &ctx.ids();
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let id = ids[i % ids.len()];
                i += 1;
                let start = Instant::now();
                let h = open_get(dir.path(), black_box(id));
                total += start.elapsed();
                drop(black_box(h));
            }
            total
        });
    });
}

struct Ctx {
    n: usize,
    ds: OnceCell<Dataset>,
    ids: OnceCell<Vec<i64>>,
}

impl Ctx {
    fn ds(&self) -> &Dataset {
        self.ds.get_or_init(|| Dataset::generate(self.n, SEED))
    }

    fn ids(&self) -> &[i64] {
        self.ids.get_or_init(|| self.ds().streams().uniform)
    }
}

fn open(c: &mut Criterion, ctx: &Ctx) {
    let mut g = c.benchmark_group("open");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    bench_open(
        &mut g,
        "lmdb",
        ctx,
        |ds| refs::build_lmdb(ds, SyncMode::Durable).close(),
        |path, id| {
            let h = LmdbRef::open(path, SyncMode::Durable, false);
            let r = h.get(id);
            assert!(r.is_some());
            (h, r)
        },
    );
    bench_open(
        &mut g,
        "redb",
        ctx,
        |ds| refs::build_redb(ds, SyncMode::Durable).close(),
        |path, id| {
            let h = RedbRef::open(path, SyncMode::Durable, false);
            let r = h.get(id);
            assert!(r.is_some());
            (h, r)
        },
    );
    bench_open(
        &mut g,
        "sqlite",
        ctx,
        |ds| refs::build_sqlite(ds, SyncMode::Durable).close(),
        |path, id| {
            let (h, r) = SqliteRef::open_and_get(path, id);
            assert!(r.is_some());
            (h, r)
        },
    );
    let open_get = |path: &Path, id: i64| {
        let h = PeerlogRef::open(path, Durability::Immediate);
        let r = h.get(id);
        assert!(r.is_some());
        (h, r)
    };
    bench_open(
        &mut g,
        "peerlog",
        ctx,
        |ds| build_peerlog(ds, Durability::Immediate).close(),
        open_get,
    );
    // The same file with 10,000 peer records written after its last index
    // generation: open replays them from the log into the overlay.
    bench_open(
        &mut g,
        "peerlog_tail10k",
        ctx,
        |ds| {
            let r = build_peerlog(ds, Durability::None);
            let mut fresh = ds.fresh_peers(SEED ^ 0x7a11);
            for _ in 0..10_000 {
                r.save(&fresh.batch(1));
            }
            assert!(
                r.store.stats().overlay_peers >= 10_000,
                "tail stayed in the log"
            );
            r.close()
        },
        open_get,
    );
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    for n in common::bench_ns() {
        let ctx = Ctx {
            n,
            ds: OnceCell::new(),
            ids: OnceCell::new(),
        };
        open(&mut c, &ctx);
    }
    c.final_summary();
}
