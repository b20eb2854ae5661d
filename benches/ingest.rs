//! Saving peers: 100-peer batches, one write transaction per batch.
//!
//! * `ingest_new`: every batch holds peers absent from the database (which
//!   starts with N peers and grows by what criterion runs).
//! * `ingest_unchanged`: every batch re-saves 100 stored peers with
//!   identical values (the common case of a client re-saving the peers of
//!   every update it receives).
//!
//! One iteration = one batch = one commit; throughput is
//! `Elements(100)` (peers), so per-peer time = estimate / 100
//! (`benches/report.py` divides).
//!
//! Variants: `<engine>` is the durable default (LMDB: fsync per commit;
//! redb: `Durability::Immediate`; SQLite: WAL + `synchronous=FULL`),
//! `<engine>_nosync` skips the fsync (LMDB: `MDB_NOSYNC`; redb:
//! `Durability::None`; SQLite: WAL + `synchronous=OFF`).

mod common;

use std::cell::OnceCell;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BatchSize, BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput};

use common::peerlog_ref::build_peerlog;
use common::refs::{self, SyncMode};

/// peerlog's durability for a reference sync mode: `Immediate` (fsync per
/// commit) for the durable default, `None` for `_nosync`.
fn durability(mode: SyncMode) -> peerlog::Durability {
    match mode {
        SyncMode::Durable => peerlog::Durability::Immediate,
        SyncMode::NoSync => peerlog::Durability::None,
    }
}
use common::{Dataset, INGEST_BATCH, Peer, SEED};

const ENGINES: [(&str, SyncMode); 2] = [("", SyncMode::Durable), ("_nosync", SyncMode::NoSync)];

fn group<'c>(c: &'c mut Criterion, name: &str) -> BenchmarkGroup<'c, WallTime> {
    let mut g = c.benchmark_group(name);
    // Few, flat samples: durable commits cost milliseconds, and every
    // `ingest_new` iteration grows the database.
    g.sample_size(20)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(INGEST_BATCH as u64));
    g
}

/// Benches saving fresh batches into the engine `build` makes (built only if
/// the benchmark is selected); batch generation is not timed.
fn bench_new<E>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    engine: &str,
    ds: &OnceCell<Dataset>,
    n: usize,
    build: impl FnOnce(&Dataset) -> E,
    save: impl Fn(&E, &[Peer]),
) {
    let mut build = Some(build);
    let mut state = None;
    g.bench_function(BenchmarkId::new(engine, n), |b| {
        let (db, fresh) = state.get_or_insert_with(|| {
            let ds = ds.get_or_init(|| Dataset::generate(n, SEED));
            let build = build.take().expect("built once");
            (build(ds), ds.fresh_peers(SEED ^ 0xf4e5))
        });
        b.iter_batched_ref(
            || fresh.batch(INGEST_BATCH),
            |batch| save(db, batch),
            BatchSize::SmallInput,
        );
    });
}

/// Benches re-saving stored peers (cycling through the data set).
fn bench_unchanged<E>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    engine: &str,
    ds: &OnceCell<Dataset>,
    n: usize,
    build: impl FnOnce(&Dataset) -> E,
    save: impl Fn(&E, &[Peer]),
) {
    let mut build = Some(build);
    let mut db = None;
    let mut next = 0; // first peer of the next batch, kept across samples
    g.bench_function(BenchmarkId::new(engine, n), |b| {
        let ds = ds.get_or_init(|| Dataset::generate(n, SEED));
        let db = db.get_or_insert_with(|| (build.take().expect("built once"))(ds));
        b.iter(|| {
            if next + INGEST_BATCH > ds.peers.len() {
                next = 0;
            }
            save(db, &ds.peers[next..next + INGEST_BATCH]);
            next += INGEST_BATCH;
        });
    });
}

fn ingest_new(c: &mut Criterion, ds: &OnceCell<Dataset>, n: usize) {
    let mut g = group(c, "ingest_new");
    for (suffix, mode) in ENGINES {
        bench_new(
            &mut g,
            &format!("lmdb{suffix}"),
            ds,
            n,
            |ds| refs::build_lmdb(ds, mode),
            |db, b| db.save(b),
        );
        bench_new(
            &mut g,
            &format!("redb{suffix}"),
            ds,
            n,
            |ds| refs::build_redb(ds, mode),
            |db, b| db.save(b),
        );
        bench_new(
            &mut g,
            &format!("sqlite{suffix}"),
            ds,
            n,
            |ds| refs::build_sqlite(ds, mode),
            |db, b| db.save(b),
        );
        bench_new(
            &mut g,
            &format!("peerlog{suffix}"),
            ds,
            n,
            |ds| build_peerlog(ds, durability(mode)),
            |db, b| db.save(b),
        );
    }
    // Group commit: fsync at most every 10 ms, shared by the commits inside.
    bench_new(
        &mut g,
        "peerlog_batched",
        ds,
        n,
        |ds| build_peerlog(ds, peerlog::Durability::Batched(Duration::from_millis(10))),
        |db, b| db.save(b),
    );
    g.finish();
}

fn ingest_unchanged(c: &mut Criterion, ds: &OnceCell<Dataset>, n: usize) {
    let mut g = group(c, "ingest_unchanged");
    for (suffix, mode) in ENGINES {
        bench_unchanged(
            &mut g,
            &format!("lmdb{suffix}"),
            ds,
            n,
            |ds| refs::build_lmdb(ds, mode),
            |db, b| db.save(b),
        );
        bench_unchanged(
            &mut g,
            &format!("redb{suffix}"),
            ds,
            n,
            |ds| refs::build_redb(ds, mode),
            |db, b| db.save(b),
        );
        bench_unchanged(
            &mut g,
            &format!("sqlite{suffix}"),
            ds,
            n,
            |ds| refs::build_sqlite(ds, mode),
            |db, b| db.save(b),
        );
        bench_unchanged(
            &mut g,
            &format!("peerlog{suffix}"),
            ds,
            n,
            |ds| build_peerlog(ds, durability(mode)),
            |db, b| db.save(b),
        );
    }
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    for n in common::bench_ns() {
        let ds = OnceCell::new();
        ingest_new(&mut c, &ds, n);
        ingest_unchanged(&mut c, &ds, n);
    }
    c.final_summary();
}
