//! peerlog as a grammers session against grammers' own storages, through the
//! `grammers_session::Session` trait, in the same run:
//!
//! - `grammers_cache_peers`: `cache_peers` of 100 peers whose access hashes
//!   changed (every call writes all 100);
//! - `grammers_cache_peers_known`: `cache_peers` of the same 100 peers again
//!   (what a client does for the users and chats of most updates);
//! - `grammers_peer`, `grammers_peer_ref`: lookups of cached peers.
//!
//! Functions: `peerlog` (a file with the default batched durability),
//! `peerlog_immediate` (fsync per commit, like SQLite's default) and
//! `memory` (grammers' `MemorySession`).
//!
//! No `sqlite` (grammers' `SqliteSession`) here: its `sqlite-storage`
//! feature (libsql) bundles SQLite's C code, and so does rusqlite's
//! `bundled` feature, which the reference benchmarks (`lookup`, `ingest`,
//! `open`) need. Both in one dev build fail to link (`duplicate symbol:
//! sqlite3_version`). Measured before, in a separate build, on a file:
//! `grammers_cache_peers` 2.74 ms per 100 changed peers,
//! `grammers_cache_peers_known` ~12 ms, `grammers_peer` 13.6 µs,
//! `grammers_peer_ref` 12.3 µs.
//!
//! ```sh
//! cargo bench --bench grammers --features grammers
//! ```
// `criterion_group!` generates an undocumented function.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use grammers_session::Session;
use grammers_session::storages::MemorySession;
use grammers_session::types::{ChannelKind, PeerAuth, PeerId, PeerInfo};
use peerlog::grammers::PeerlogSession;
use peerlog::{Durability, Options};
use tokio::runtime::Runtime;

const PEERS: i64 = 100;

/// 100 peers (two users for each channel), their hashes derived from `round`.
fn batch(round: i64) -> Vec<PeerInfo> {
    (1..=PEERS)
        .map(|i| {
            let auth = Some(PeerAuth::from_hash(round.wrapping_mul(1_000_003) ^ i));
            if i % 3 == 0 {
                PeerInfo::Channel {
                    id: 1_000_000 + i,
                    auth,
                    kind: Some(ChannelKind::Megagroup),
                }
            } else {
                PeerInfo::User {
                    id: 1_000_000 + i,
                    auth,
                    bot: Some(i % 7 == 0),
                    is_self: Some(false),
                }
            }
        })
        .collect()
}

fn ids() -> Vec<PeerId> {
    batch(0).iter().map(PeerInfo::id).collect()
}

struct Sessions {
    peerlog: Arc<PeerlogSession>,
    peerlog_immediate: Arc<PeerlogSession>,
    memory: Arc<MemorySession>,
    _dir: tempfile::TempDir,
}

fn sessions(rt: &Runtime) -> Sessions {
    let dir = tempfile::tempdir().unwrap();
    let immediate = Options {
        durability: Durability::Immediate,
        ..Options::default()
    };
    let s = Sessions {
        peerlog: Arc::new(PeerlogSession::open(dir.path().join("bench.peerlog")).unwrap()),
        peerlog_immediate: Arc::new(
            PeerlogSession::open_with(dir.path().join("immediate.peerlog"), immediate).unwrap(),
        ),
        memory: Arc::new(MemorySession::default()),
        _dir: dir,
    };
    rt.block_on(async {
        s.peerlog.cache_peers(batch(0)).await.unwrap();
        s.peerlog_immediate.cache_peers(batch(0)).await.unwrap();
        s.memory.cache_peers(batch(0)).await.unwrap();
    });
    s
}

fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    g
}

fn cache_changed<S: Session>(g: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime, name: &str, s: &S)
where
    S::Error: std::fmt::Debug,
{
    let mut round = 0;
    g.bench_function(name, |b| {
        b.iter(|| {
            round += 1;
            rt.block_on(s.cache_peers(batch(round))).unwrap()
        })
    });
}

fn cache_known<S: Session>(g: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime, name: &str, s: &S)
where
    S::Error: std::fmt::Debug,
{
    let known = batch(-1);
    rt.block_on(s.cache_peers(known.clone())).unwrap();
    g.bench_function(name, |b| {
        b.iter(|| rt.block_on(s.cache_peers(known.clone())).unwrap())
    });
}

fn lookup<S: Session>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    name: &str,
    s: &S,
    by_ref: bool,
) where
    S::Error: std::fmt::Debug,
{
    let ids = ids();
    let mut i = 0;
    g.bench_function(name, |b| {
        b.iter(|| {
            i = (i + 1) % ids.len();
            if by_ref {
                assert!(rt.block_on(s.peer_ref(ids[i])).unwrap().is_some());
            } else {
                assert!(rt.block_on(s.peer(ids[i])).unwrap().is_some());
            }
        })
    });
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = sessions(&rt);

    let mut g = group(c, "grammers_cache_peers");
    g.throughput(Throughput::Elements(PEERS as u64));
    cache_changed(&mut g, &rt, "peerlog", &*s.peerlog);
    cache_changed(&mut g, &rt, "peerlog_immediate", &*s.peerlog_immediate);
    cache_changed(&mut g, &rt, "memory", &*s.memory);
    g.finish();

    let mut g = group(c, "grammers_cache_peers_known");
    g.throughput(Throughput::Elements(PEERS as u64));
    cache_known(&mut g, &rt, "peerlog", &*s.peerlog);
    cache_known(&mut g, &rt, "memory", &*s.memory);
    g.finish();

    // "peerlog": every peer changed since the last checkpoint (read under
    // the state's lock); "peerlog_checkpointed": after one, as most peers
    // of a long-running session are (read from the mapped table without
    // a lock).
    let checkpointed =
        Arc::new(PeerlogSession::open(s._dir.path().join("checkpointed.peerlog")).unwrap());
    rt.block_on(checkpointed.cache_peers(batch(0))).unwrap();
    checkpointed.account().store().compact().unwrap();
    for (name, by_ref) in [("grammers_peer", false), ("grammers_peer_ref", true)] {
        let mut g = group(c, name);
        lookup(&mut g, &rt, "peerlog", &*s.peerlog, by_ref);
        lookup(&mut g, &rt, "peerlog_checkpointed", &*checkpointed, by_ref);
        lookup(&mut g, &rt, "memory", &*s.memory, by_ref);
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
