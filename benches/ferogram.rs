//! peerlog as a ferogram session backend against ferogram-session's own
//! `InMemoryBackend`, through the `SessionBackend` trait, in the same run:
//!
//! - `ferogram_cache_peer_known`: `cache_peer` of a peer already cached,
//!   unchanged (what a client does for the users and chats of most
//!   updates), in a session of 1,000 peers;
//! - `ferogram_cache_peer_new`: `cache_peer` of a peer not cached yet, in
//!   a session of 1,000 to 2,000 peers (reset, untimed, every 1,000 calls);
//! - `ferogram_load`: `load` of a session of 1,000 peers, 10 DC entries with
//!   keys and 50 channel pts.
//!
//! Functions: `peerlog` (a file with the default batched durability),
//! `peerlog_immediate` (fsync per commit) and `memory` (`InMemoryBackend`).
//!
//! No `sqlite` (ferogram-session's `SqliteBackend`) here: its
//! `sqlite-session` feature needs rusqlite 0.40 (libsqlite3-sys 0.38), the
//! reference benchmarks (`lookup`, `ingest`, `open`) rusqlite 0.41
//! (libsqlite3-sys 0.39), and both declare `links = "sqlite3"`: cargo
//! refuses to resolve a graph with the two ("only one package in the
//! dependency graph may specify the same links value"), even with the
//! feature in dev-dependencies only.
//!
//! ```sh
//! cargo bench --bench ferogram --features ferogram
//! ```
// `criterion_group!` generates an undocumented function.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use ferogram_session::{
    CachedPeer, ChannelKind, DcEntry, DcFlags, InMemoryBackend, PersistedSession, SessionBackend,
};
use peerlog::ferogram::PeerlogBackend;
use peerlog::{Durability, Options};

const PEERS: i64 = 1000;
const BASE: i64 = 1_000_000;

/// Two users for each channel; hashes derived from the id.
fn peer(i: i64) -> CachedPeer {
    let id = BASE + i;
    CachedPeer {
        id,
        access_hash: id.wrapping_mul(1_000_003),
        is_channel: i % 3 == 0,
        is_chat: false,
        channel_kind: (i % 3 == 0).then_some(ChannelKind::Megagroup),
        is_community: false,
    }
}

fn session() -> PersistedSession {
    let mut s = PersistedSession {
        home_dc_id: 2,
        ..PersistedSession::default()
    };
    for id in 1..=5 {
        let mut v4 = DcEntry::from_parts(id, &format!("149.154.167.{id}"), 443, DcFlags::NONE);
        v4.auth_key = Some([id as u8; 256]);
        let mut v6 = DcEntry::from_parts(id, "2001:67c:4e8:f002::a", 443, DcFlags::IPV6);
        v6.auth_key = v4.auth_key;
        s.dcs.extend([v4, v6]);
    }
    s.peers = (1..=PEERS).map(peer).collect();
    s.updates_state.pts = 1000;
    s.updates_state.channels = (1..=50).map(|c| (BASE + c * 3, c as i32)).collect();
    s
}

fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    g
}

fn backends(dir: &tempfile::TempDir) -> Vec<(&'static str, Box<dyn SessionBackend>)> {
    let immediate = Options {
        durability: Durability::Immediate,
        ..Options::default()
    };
    let list: Vec<(&'static str, Box<dyn SessionBackend>)> = vec![
        (
            "peerlog",
            Box::new(PeerlogBackend::open(dir.path().join("bench.peerlog")).unwrap()),
        ),
        (
            "peerlog_immediate",
            Box::new(
                PeerlogBackend::open_with(dir.path().join("immediate.peerlog"), immediate).unwrap(),
            ),
        ),
        ("memory", Box::new(InMemoryBackend::new())),
    ];
    let base = session();
    for (_, b) in &list {
        b.save(&base).unwrap();
    }
    list
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let list = backends(&dir);
    let base = session();

    let mut g = group(c, "ferogram_cache_peer_known");
    for (name, b) in list.iter().filter(|(n, _)| *n != "peerlog_immediate") {
        let mut i = 0;
        g.bench_function(*name, |bch| {
            bch.iter(|| {
                i = i % PEERS + 1;
                b.cache_peer(&peer(i)).unwrap();
            })
        });
    }
    g.finish();

    let mut g = group(c, "ferogram_cache_peer_new");
    for (name, b) in &list {
        let mut n = 0;
        g.bench_function(*name, |bch| {
            bch.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    if n == PEERS {
                        b.save(&base).unwrap();
                        n = 0;
                    }
                    n += 1;
                    let p = peer(PEERS + n);
                    let t = Instant::now();
                    b.cache_peer(&p).unwrap();
                    spent += t.elapsed();
                }
                spent
            })
        });
        b.save(&base).unwrap();
    }
    g.finish();

    let mut g = group(c, "ferogram_load");
    for (name, b) in list.iter().filter(|(n, _)| *n != "peerlog_immediate") {
        g.bench_function(*name, |bch| {
            bch.iter(|| assert_eq!(b.load().unwrap().unwrap().peers.len(), PEERS as usize))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
