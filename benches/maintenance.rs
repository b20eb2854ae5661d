//! The other durable structures, and compaction:
//!
//! * `queue`: one durable enqueue of a 512-byte payload plus its ack, each
//!   durable before it returns (as `Storage::enqueue` and `ack` promise):
//!   peerlog against SQLite (WAL, `synchronous=FULL`, each statement its
//!   own transaction, as a bot that acknowledges one update at a time).
//! * `dedup_insert`: remembering one new update key (8 bytes) with 100,000
//!   remembered (peerlog's default retention, so each insert also drops
//!   the oldest key); `dedup_check`: asking about a remembered one. No
//!   fsync: peerlog with `Durability::None`, SQLite with `synchronous=OFF`
//!   (`INSERT OR IGNORE` into a `WITHOUT ROWID` table keyed by the update
//!   key; SQLite keeps every key, it has no retention), and a hashbrown
//!   `HashSet<u64>` as the floor.
//! * `compaction`: `Store::compact` of N peers after 30% of them were
//!   re-saved with a new access hash (30% dead records); one iteration =
//!   one compaction, the re-save is not timed. peerlog only: the
//!   references have no equivalent step. Lookups while a compaction runs:
//!   `examples/compaction.rs`.
//!
//! The queue and dedup groups take 100000 as their parameter (the keys
//! remembered), so every result reads back from
//! `target/criterion/<group>/<engine>/<N>/new/estimates.json`.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use rusqlite::Connection;

use common::peerlog_ref::{PeerlogRef, build_peerlog};
use common::refs::tempdir;
use common::{Dataset, Rng, SEED};
use peerlog::{Durability, Storage};

/// Keys remembered before the dedup groups run.
const DEDUP_KEYS: u64 = 100_000;
/// Bytes per queued payload.
const PAYLOAD: usize = 512;

fn sqlite(dir: &std::path::Path, sync: &str, schema: &str) -> Connection {
    let conn = Connection::open(dir.join("bench.sqlite")).expect("sqlite open");
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("sqlite wal");
    conn.pragma_update(None, "synchronous", sync)
        .expect("sqlite synchronous");
    conn.execute_batch(schema).expect("sqlite schema");
    conn
}

fn queue(c: &mut Criterion) {
    let mut g = c.benchmark_group("queue");
    g.throughput(Throughput::Elements(1))
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    let payload = vec![0x5a; PAYLOAD];
    {
        let dir = tempdir();
        let db = PeerlogRef::open(dir.path(), Durability::Immediate);
        let mut i = 0u64;
        g.bench_function(BenchmarkId::new("peerlog", DEDUP_KEYS), |b| {
            b.iter(|| {
                i += 1;
                let id = format!("u{i}");
                assert!(db.account.enqueue(&id, &payload).expect("enqueue"));
                assert!(db.account.ack(&id).expect("ack"));
            })
        });
    }
    {
        let dir = tempdir();
        let conn = sqlite(
            dir.path(),
            "FULL",
            "CREATE TABLE queue(id TEXT PRIMARY KEY, payload BLOB, attempts INTEGER, \
                                created INTEGER);",
        );
        let mut i = 0u64;
        g.bench_function(BenchmarkId::new("sqlite", DEDUP_KEYS), |b| {
            b.iter(|| {
                i += 1;
                let id = format!("u{i}");
                let mut put = conn
                    .prepare_cached("INSERT INTO queue VALUES (?1, ?2, 0, ?3)")
                    .expect("sqlite prepare");
                put.execute(rusqlite::params![id, payload, i as i64])
                    .expect("sqlite enqueue");
                let mut del = conn
                    .prepare_cached("DELETE FROM queue WHERE id = ?1")
                    .expect("sqlite prepare");
                assert_eq!(del.execute([&id]).expect("sqlite ack"), 1);
            })
        });
    }
    g.finish();
}

/// The dedup groups for one engine: `insert(k)` remembers key `k` and says
/// whether it was new; `has(k)` asks. Keys `0..DEDUP_KEYS` are remembered
/// first; checks ask for those in random order, inserts add new ones.
fn dedup_engine(
    c: &mut Criterion,
    engine: &str,
    mut insert: impl FnMut(u64) -> bool,
    has: impl Fn(u64) -> bool,
) {
    for k in 0..DEDUP_KEYS {
        assert!(insert(k), "{engine}: key {k} was not new");
    }
    let mut rng = Rng::new(SEED);
    let asks: Vec<u64> = (0..1 << 16).map(|_| rng.below(DEDUP_KEYS)).collect();
    let mut g = c.benchmark_group("dedup_check");
    g.throughput(Throughput::Elements(1));
    let mut at = 0;
    g.bench_function(BenchmarkId::new(engine, DEDUP_KEYS), |b| {
        b.iter(|| {
            at = (at + 1) % asks.len();
            assert!(has(black_box(asks[at])));
        })
    });
    g.finish();
    let mut g = c.benchmark_group("dedup_insert");
    g.throughput(Throughput::Elements(1));
    let mut next = DEDUP_KEYS;
    g.bench_function(BenchmarkId::new(engine, DEDUP_KEYS), |b| {
        b.iter(|| {
            next += 1;
            assert!(insert(black_box(next)));
        })
    });
    g.finish();
}

fn dedup(c: &mut Criterion) {
    {
        let dir = tempdir();
        let db = PeerlogRef::open(dir.path(), Durability::None);
        let a = &db.account;
        dedup_engine(
            c,
            "peerlog",
            |k| a.insert_dedup_key(&k.to_be_bytes()).expect("insert"),
            |k| a.has_dedup_key(&k.to_be_bytes()).expect("has"),
        );
    }
    {
        let dir = tempdir();
        let conn = sqlite(
            dir.path(),
            "OFF",
            "CREATE TABLE dedup(key BLOB PRIMARY KEY, at INTEGER) WITHOUT ROWID;",
        );
        dedup_engine(
            c,
            "sqlite",
            |k| {
                conn.prepare_cached("INSERT OR IGNORE INTO dedup VALUES (?1, 0)")
                    .and_then(|mut s| s.execute([k.to_be_bytes()]))
                    .expect("sqlite insert")
                    == 1
            },
            |k| {
                conn.prepare_cached("SELECT 1 FROM dedup WHERE key = ?1")
                    .and_then(|mut s| s.exists([k.to_be_bytes()]))
                    .expect("sqlite select")
            },
        );
    }
    {
        let set = std::cell::RefCell::new(hashbrown::HashSet::<u64>::new());
        dedup_engine(
            c,
            "hashbrown",
            |k| set.borrow_mut().insert(k),
            |k| set.borrow().contains(&k),
        );
    }
}

/// Re-saves every peer whose index ends in 0, 1 or 2 (30%) with a new
/// access hash, so that 30% of the segment's records are dead.
fn dirty(db: &PeerlogRef, ds: &Dataset, round: i64) {
    let changed: Vec<common::Peer> = ds
        .peers
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 10 < 3)
        .map(|(_, p)| common::Peer {
            hash: p.hash ^ (round << 1),
            ..p.clone()
        })
        .collect();
    for chunk in changed.chunks(1000) {
        db.save(chunk);
    }
}

fn compaction(c: &mut Criterion, n: usize) {
    let ds = Dataset::generate(n, SEED);
    let db = build_peerlog(&ds, Durability::None);
    let mut g = c.benchmark_group("compaction");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .throughput(Throughput::Elements(n as u64));
    let mut round = 0;
    g.bench_function(BenchmarkId::new("peerlog", n), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                dirty(&db, &ds, round);
                let t = Instant::now();
                db.store.compact().expect("compact");
                total += t.elapsed();
            }
            total
        })
    });
    g.finish();
    let last = db.store.stats();
    let peers = last.buckets.iter().find(|b| b.name == "peers");
    assert_eq!(
        peers.map(|b| b.entries),
        Some(n as u64),
        "peers after compaction"
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    queue(&mut c);
    dedup(&mut c);
    for n in common::bench_ns() {
        compaction(&mut c, n);
    }
    c.final_summary();
}
