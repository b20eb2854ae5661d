//! Point lookups: by id (uniform, skewed, absent), by username, by phone.
//!
//! Every iteration is ONE lookup (the stream is cycled) and the throughput is
//! `Elements(1)`, so criterion's estimate is the time per lookup for every
//! engine, including the `<engine>_tx100` variants, which share one read
//! transaction between 100 consecutive lookups (begin/end amortised into
//! the per-lookup time, see `common::iter_cycle_tx`). The plain `lmdb`,
//! `redb` and `sqlite` functions open one read transaction per lookup, as a
//! client resolving a single peer does.

mod common;

use std::cell::OnceCell;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput};

use common::peerlog_ref::{PeerlogRef, build_peerlog};
use common::refs::{self, HashbrownRef, LmdbRef, RedbRef, SqliteRef, SyncMode};
use common::{Dataset, SEED, Streams, iter_cycle, iter_cycle_tx};

/// Everything one N needs, built lazily so that a filtered run
/// (`cargo bench --bench lookup -- lookup_uniform/hashbrown`) builds only
/// what it uses. Engines are verified against the data set when built.
struct Ctx {
    n: usize,
    ds: OnceCell<Dataset>,
    streams: OnceCell<Streams>,
    hashbrown: OnceCell<HashbrownRef>,
    lmdb: OnceCell<LmdbRef>,
    redb: OnceCell<RedbRef>,
    sqlite: OnceCell<SqliteRef>,
    peerlog: OnceCell<PeerlogRef>,
}

impl Ctx {
    fn new(n: usize) -> Self {
        Ctx {
            n,
            ds: OnceCell::new(),
            streams: OnceCell::new(),
            hashbrown: OnceCell::new(),
            lmdb: OnceCell::new(),
            redb: OnceCell::new(),
            sqlite: OnceCell::new(),
            peerlog: OnceCell::new(),
        }
    }

    fn peerlog(&self) -> &PeerlogRef {
        self.peerlog.get_or_init(|| {
            let h = build_peerlog(self.ds(), peerlog::Durability::Immediate);
            refs::verify(
                "peerlog",
                self.ds(),
                |id| h.get(id),
                |u| h.get_username(u),
                |p| h.get_phone(p),
            );
            h
        })
    }

    fn ds(&self) -> &Dataset {
        self.ds.get_or_init(|| Dataset::generate(self.n, SEED))
    }

    fn streams(&self) -> &Streams {
        self.streams.get_or_init(|| self.ds().streams())
    }

    fn hashbrown(&self) -> &HashbrownRef {
        self.hashbrown.get_or_init(|| {
            let h = refs::build_hashbrown(self.ds());
            refs::verify(
                "hashbrown",
                self.ds(),
                |id| h.get(id),
                |u| h.get_username(u),
                |p| h.get_phone(p),
            );
            h
        })
    }

    fn lmdb(&self) -> &LmdbRef {
        self.lmdb.get_or_init(|| {
            let h = refs::build_lmdb(self.ds(), SyncMode::Durable);
            refs::verify(
                "lmdb",
                self.ds(),
                |id| h.get(id),
                |u| h.get_username(u),
                |p| h.get_phone(p),
            );
            h
        })
    }

    fn redb(&self) -> &RedbRef {
        self.redb.get_or_init(|| {
            let h = refs::build_redb(self.ds(), SyncMode::Durable);
            refs::verify(
                "redb",
                self.ds(),
                |id| h.get(id),
                |u| h.get_username(u),
                |p| h.get_phone(p),
            );
            h
        })
    }

    fn sqlite(&self) -> &SqliteRef {
        self.sqlite.get_or_init(|| {
            let h = refs::build_sqlite(self.ds(), SyncMode::Durable);
            refs::verify(
                "sqlite",
                self.ds(),
                |id| h.get(id),
                |u| h.get_username(u),
                |p| h.get_phone(p),
            );
            h
        })
    }
}

fn group<'c>(c: &'c mut Criterion, name: &str) -> BenchmarkGroup<'c, WallTime> {
    let mut g = c.benchmark_group(name);
    let (warm_up, measurement) = common::lookup_times();
    g.warm_up_time(warm_up)
        .measurement_time(measurement)
        .throughput(Throughput::Elements(1));
    g
}

/// `lookup_uniform`, `lookup_skewed`, `lookup_absent`: id -> (hash, kind).
fn lookup_ids(c: &mut Criterion, ctx: &Ctx, name: &str, pick: fn(&Streams) -> &[i64]) {
    let n = ctx.n;
    let mut g = group(c, name);
    g.bench_function(BenchmarkId::new("hashbrown", n), |b| {
        let (h, s) = (ctx.hashbrown(), pick(ctx.streams()));
        iter_cycle(b, s, |&id| h.get(id));
    });
    g.bench_function(BenchmarkId::new("lmdb", n), |b| {
        let (h, s) = (ctx.lmdb(), pick(ctx.streams()));
        iter_cycle(b, s, |&id| h.get(id));
    });
    g.bench_function(BenchmarkId::new("lmdb_tx100", n), |b| {
        let (h, s) = (ctx.lmdb(), pick(ctx.streams()));
        iter_cycle_tx(b, s, || h.read_txn(), |t, &id| h.get_in(t, id));
    });
    g.bench_function(BenchmarkId::new("redb", n), |b| {
        let (h, s) = (ctx.redb(), pick(ctx.streams()));
        iter_cycle(b, s, |&id| h.get(id));
    });
    g.bench_function(BenchmarkId::new("redb_tx100", n), |b| {
        let (h, s) = (ctx.redb(), pick(ctx.streams()));
        iter_cycle_tx(b, s, || h.peers_table(), |t, &id| RedbRef::get_in(t, id));
    });
    g.bench_function(BenchmarkId::new("sqlite", n), |b| {
        let (h, s) = (ctx.sqlite(), pick(ctx.streams()));
        iter_cycle(b, s, |&id| h.get(id));
    });
    g.bench_function(BenchmarkId::new("sqlite_tx100", n), |b| {
        let (h, s) = (ctx.sqlite(), pick(ctx.streams()));
        iter_cycle_tx(b, s, || h.read_txn(), |_, &id| h.get(id));
    });
    g.bench_function(BenchmarkId::new("peerlog", n), |b| {
        let (h, s) = (ctx.peerlog(), pick(ctx.streams()));
        iter_cycle(b, s, |&id| h.get(id));
    });
    g.finish();
}

/// `lookup_username`: username -> (id, hash, kind).
fn lookup_username(c: &mut Criterion, ctx: &Ctx) {
    let n = ctx.n;
    let mut g = group(c, "lookup_username");
    g.bench_function(BenchmarkId::new("hashbrown", n), |b| {
        let (h, s) = (ctx.hashbrown(), ctx.streams().usernames.as_slice());
        iter_cycle(b, s, |u| h.get_username(u));
    });
    g.bench_function(BenchmarkId::new("lmdb", n), |b| {
        let (h, s) = (ctx.lmdb(), ctx.streams().usernames.as_slice());
        iter_cycle(b, s, |u| h.get_username(u));
    });
    g.bench_function(BenchmarkId::new("lmdb_tx100", n), |b| {
        let (h, s) = (ctx.lmdb(), ctx.streams().usernames.as_slice());
        iter_cycle_tx(b, s, || h.read_txn(), |t, u| h.get_username_in(t, u));
    });
    g.bench_function(BenchmarkId::new("redb", n), |b| {
        let (h, s) = (ctx.redb(), ctx.streams().usernames.as_slice());
        iter_cycle(b, s, |u| h.get_username(u));
    });
    g.bench_function(BenchmarkId::new("redb_tx100", n), |b| {
        let (h, s) = (ctx.redb(), ctx.streams().usernames.as_slice());
        iter_cycle_tx(
            b,
            s,
            || h.username_tables(),
            |t, u| RedbRef::get_indexed_in(t, u),
        );
    });
    g.bench_function(BenchmarkId::new("sqlite", n), |b| {
        let (h, s) = (ctx.sqlite(), ctx.streams().usernames.as_slice());
        iter_cycle(b, s, |u| h.get_username(u));
    });
    g.bench_function(BenchmarkId::new("sqlite_tx100", n), |b| {
        let (h, s) = (ctx.sqlite(), ctx.streams().usernames.as_slice());
        iter_cycle_tx(b, s, || h.read_txn(), |_, u| h.get_username(u));
    });
    g.bench_function(BenchmarkId::new("peerlog", n), |b| {
        let (h, s) = (ctx.peerlog(), ctx.streams().usernames.as_slice());
        iter_cycle(b, s, |u| h.get_username(u));
    });
    g.finish();
}

/// `lookup_phone`: phone -> (id, hash, kind).
fn lookup_phone(c: &mut Criterion, ctx: &Ctx) {
    let n = ctx.n;
    let mut g = group(c, "lookup_phone");
    g.bench_function(BenchmarkId::new("hashbrown", n), |b| {
        let (h, s) = (ctx.hashbrown(), ctx.streams().phones.as_slice());
        iter_cycle(b, s, |p| h.get_phone(p));
    });
    g.bench_function(BenchmarkId::new("sqlite", n), |b| {
        let (h, s) = (ctx.sqlite(), ctx.streams().phones.as_slice());
        iter_cycle(b, s, |p| h.get_phone(p));
    });
    g.bench_function(BenchmarkId::new("peerlog", n), |b| {
        let (h, s) = (ctx.peerlog(), ctx.streams().phones.as_slice());
        iter_cycle(b, s, |p| h.get_phone(p));
    });
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    for n in common::bench_ns() {
        // N outermost: engines are built once per N and shared by all groups,
        // then dropped (temporary files removed) before the next N.
        let ctx = Ctx::new(n);
        lookup_ids(&mut c, &ctx, "lookup_uniform", |s| &s.uniform);
        lookup_ids(&mut c, &ctx, "lookup_skewed", |s| &s.skewed);
        lookup_ids(&mut c, &ctx, "lookup_absent", |s| &s.absent);
        lookup_username(&mut c, &ctx);
        lookup_phone(&mut c, &ctx);
    }
    c.final_summary();
}
