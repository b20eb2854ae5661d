//! Instruction-count harness for id lookups, to run under callgrind:
//!
//! ```text
//! cargo build --profile bench --example lookup_instructions
//! valgrind --tool=callgrind --collect-atstart=no \
//!     --toggle-collect=peerlog_bench_lookups \
//!     target/release/examples/lookup_instructions sqlite 100000 100000
//! ```
//!
//! Only `peerlog_bench_lookups` (the lookup loop) is counted, not the
//! data-set or database build; instructions per lookup = collected Ir /
//! lookups. Usage: `lookup_instructions ENGINE [N=100000] [LOOKUPS=100000]`
//! with ENGINE one of hashbrown, lmdb, redb, sqlite, lmdb_tx100,
//! redb_tx100, sqlite_tx100, peerlog. Lookups cycle through the
//! uniform stream of the benchmarks (same seed). A `_absent` suffix
//! (`peerlog_absent`, `sqlite_absent`, ...) looks up the `lookup_absent`
//! stream instead. `hashbrown_username` and `peerlog_username` count
//! lookups by username (the `lookup_username` stream: username -> id,
//! hash, kind). Prints a checksum.

#[path = "../benches/common/mod.rs"]
mod common;

use std::hint::black_box;

use common::peerlog_ref::{PeerlogRef, build_peerlog};
use common::refs::{self, HashbrownRef, LmdbRef, RedbRef, SqliteRef, SyncMode};
use common::{Dataset, SEED, TX_BATCH};

enum Engine {
    Hashbrown(HashbrownRef),
    Lmdb(LmdbRef, bool),
    Redb(RedbRef, bool),
    Sqlite(SqliteRef, bool),
    Peerlog(PeerlogRef),
}

#[inline(always)]
fn fold(sum: u64, r: Option<(i64, u8)>) -> u64 {
    match r {
        Some((h, k)) => sum.rotate_left(5) ^ (h as u64) ^ u64::from(k),
        None => sum.rotate_left(5) ^ 1,
    }
}

/// `count` lookups of ids from `stream` (cycling), a read transaction from
/// `begin` shared by `batch` consecutive lookups.
#[inline(always)]
fn run<X>(
    stream: &[i64],
    count: usize,
    batch: usize,
    mut begin: impl FnMut() -> X,
    mut get: impl FnMut(&X, i64) -> Option<(i64, u8)>,
) -> u64 {
    let (mut sum, mut done, mut pos) = (0, 0, 0);
    while done < count {
        let k = (count - done).min(batch);
        let t = begin();
        for _ in 0..k {
            sum = fold(sum, get(&t, black_box(stream[pos])));
            pos += 1;
            if pos == stream.len() {
                pos = 0;
            }
        }
        done += k;
    }
    sum
}

/// `count` lookups by username from `stream` (cycling).
#[inline(always)]
fn run_names(stream: &[String], count: usize, get: impl Fn(&str) -> Option<(i64, i64, u8)>) -> u64 {
    let mut sum = 0;
    for i in 0..count {
        let r = get(black_box(&stream[i % stream.len()]));
        sum = fold(sum, r.map(|(id, h, k)| (id ^ h, k)));
    }
    sum
}

/// The lookups `engine` is counted on.
enum Stream {
    Ids(Vec<i64>),
    Usernames(Vec<String>),
}

#[inline(never)]
fn run_lookups(engine: &Engine, stream: &Stream, count: usize) -> u64 {
    let stream = match stream {
        Stream::Ids(ids) => ids,
        Stream::Usernames(names) => {
            return match engine {
                Engine::Hashbrown(h) => run_names(names, count, |u| h.get_username(u)),
                Engine::Peerlog(h) => run_names(names, count, |u| h.get_username(u)),
                _ => unreachable!("username lookups are counted for hashbrown and peerlog"),
            };
        }
    };
    match engine {
        Engine::Hashbrown(h) => run(stream, count, usize::MAX, || (), |_, id| h.get(id)),
        // One read transaction per lookup for the plain engines: `get` opens
        // its own (begin is a no-op), as in the criterion benchmarks.
        Engine::Lmdb(h, false) => run(stream, count, 1, || (), |_, id| h.get(id)),
        Engine::Lmdb(h, true) => run(
            stream,
            count,
            TX_BATCH,
            || h.read_txn(),
            |t, id| h.get_in(t, id),
        ),
        Engine::Redb(h, false) => run(stream, count, 1, || (), |_, id| h.get(id)),
        Engine::Redb(h, true) => run(stream, count, TX_BATCH, || h.peers_table(), RedbRef::get_in),
        Engine::Sqlite(h, false) => run(stream, count, 1, || (), |_, id| h.get(id)),
        Engine::Sqlite(h, true) => run(stream, count, TX_BATCH, || h.read_txn(), |_, id| h.get(id)),
        Engine::Peerlog(h) => run(stream, count, usize::MAX, || (), |_, id| h.get(id)),
    }
}

/// The counted entry point. The symbol is kept unmangled so that
/// callgrind's `--toggle-collect` can name it.
#[unsafe(no_mangle)]
#[inline(never)]
fn peerlog_bench_lookups(engine: &Engine, stream: &Stream, count: usize) -> u64 {
    run_lookups(engine, stream, count)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: lookup_instructions ENGINE [N] [LOOKUPS]";
    let arg = args.first().expect(usage).as_str();
    let n: usize = args.get(1).map_or(100_000, |s| s.parse().expect(usage));
    let count: usize = args.get(2).map_or(100_000, |s| s.parse().expect(usage));

    let ds = Dataset::generate(n, SEED);
    let (engine, stream) = if let Some(base) = arg.strip_suffix("_username") {
        (base, Stream::Usernames(ds.streams().usernames))
    } else if let Some(base) = arg.strip_suffix("_absent") {
        (base, Stream::Ids(ds.streams().absent))
    } else {
        (arg, Stream::Ids(ds.streams().uniform))
    };
    let (base, tx100) = match engine.strip_suffix("_tx100") {
        Some(base) => (base, true),
        None => (engine, false),
    };
    if matches!(stream, Stream::Usernames(_)) && !matches!(base, "hashbrown" | "peerlog") {
        panic!("username lookups are counted for hashbrown and peerlog only; {usage}");
    }
    let e = match base {
        "hashbrown" if !tx100 => Engine::Hashbrown(refs::build_hashbrown(&ds)),
        "lmdb" => Engine::Lmdb(refs::build_lmdb(&ds, SyncMode::Durable), tx100),
        "redb" => Engine::Redb(refs::build_redb(&ds, SyncMode::Durable), tx100),
        "sqlite" => Engine::Sqlite(refs::build_sqlite(&ds, SyncMode::Durable), tx100),
        "peerlog" if !tx100 => Engine::Peerlog(build_peerlog(&ds, peerlog::Durability::Immediate)),
        _ => panic!("unknown engine {engine:?}; {usage}"),
    };
    // Warm the engine (page cache, statement cache) outside the counted
    // function, then count.
    black_box(run_lookups(&e, &stream, 1000));
    let sum = peerlog_bench_lookups(&e, &stream, count);
    println!("engine={arg} n={n} lookups={count} checksum={sum:016x}");
}
