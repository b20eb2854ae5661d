//! The PostgreSQL backend beside the file store and SQLite, in one run:
//!
//! - `pg_save_peers_new`: `save_peers` of 100 peers never seen before;
//! - `pg_save_peers_unchanged`: the same 100 peers again (what a client
//!   does for the users and chats of most updates: no row is written);
//! - `pg_access_hash`, `pg_resolve_username`: lookups of stored peers;
//! - `pg_queue`: `enqueue` then `ack` of one update (both durable).
//!
//! Functions: `file` (a peerlog file, default durability: peers batched,
//! queue operations fsynced), `sqlite` (rusqlite, WAL, `synchronous=FULL`,
//! one transaction per call, an upsert that skips unchanged rows) and
//! `postgres` (a [`PgStorage`] over the server's Unix socket) and
//! `postgres_cached` (the same behind a local peerlog file, [`PgCached`]), when
//! `PEERLOG_PG_URL` names a server; without it the PostgreSQL functions
//! are skipped, saying why, and the others still run.
//!
//! ```sh
//! PEERLOG_PG_FSYNC=on scripts/with-postgres.sh cargo bench --bench postgres --features postgres -- --quick
//! ```
//!
//! `PEERLOG_PG_FSYNC=on`: with-postgres.sh otherwise runs its throw-away
//! server with fsync off, which flatters the durable queue.
// `criterion_group!` generates an undocumented function.
#![allow(missing_docs)]

use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use peerlog::postgres::{PgCached, PgOptions, PgStorage};
use peerlog::{Peer, PeerId, Storage, Store};
use rusqlite::{Connection, params};

const PEERS: i64 = 100;

/// 100 users from `first`, each with a username and names.
fn batch(first: i64) -> Vec<Peer> {
    (first..first + PEERS)
        .map(|id| {
            Peer::user(id, id.wrapping_mul(0x9E37_79B9))
                .with_username(format!("user_{id}"))
                .with_names("First", Some("Last"))
        })
        .collect()
}

/// The operations benchmarked, on SQLite: a schema like the backend's.
struct Sqlite {
    conn: Connection,
}

impl Sqlite {
    fn open(path: &std::path::Path) -> Sqlite {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
             CREATE TABLE peers (id INTEGER PRIMARY KEY, access_hash INTEGER, min INTEGER NOT NULL,
                 username TEXT, phone TEXT, tail BLOB NOT NULL);
             CREATE INDEX peers_username ON peers (lower(username));
             CREATE TABLE queue (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, payload BLOB NOT NULL,
                 attempts INTEGER NOT NULL DEFAULT 0);",
        )
        .unwrap();
        Sqlite { conn }
    }

    fn save_peers(&mut self, peers: &[Peer]) {
        let tx = self.conn.transaction().unwrap();
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO peers (id, access_hash, min, username, phone, tail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (id) DO UPDATE SET access_hash = excluded.access_hash, min = excluded.min,
                         username = excluded.username, phone = excluded.phone, tail = excluded.tail
                     WHERE (access_hash, min, username, phone, tail)
                         IS NOT (excluded.access_hash, excluded.min, excluded.username, excluded.phone, excluded.tail)",
                )
                .unwrap();
            for p in peers {
                let tail = format!("{:?}{:?}", p.first_name, p.last_name);
                st.execute(params![
                    p.id.bot_api(),
                    p.access_hash,
                    p.min,
                    p.username,
                    p.phone,
                    tail.as_bytes()
                ])
                .unwrap();
            }
        }
        tx.commit().unwrap();
    }

    fn access_hash(&self, id: i64) -> Option<i64> {
        self.conn
            .prepare_cached("SELECT access_hash FROM peers WHERE id = ?1")
            .unwrap()
            .query_row([id], |r| r.get(0))
            .unwrap()
    }

    fn resolve(&self, name: &str) -> Option<(i64, Option<i64>)> {
        let mut st = self
            .conn
            .prepare_cached("SELECT id, access_hash FROM peers WHERE lower(username) = lower(?1)")
            .unwrap();
        let mut rows = st.query([name]).unwrap();
        rows.next()
            .unwrap()
            .map(|r| (r.get(0).unwrap(), r.get(1).unwrap()))
    }

    fn enqueue_ack(&self, id: &str) {
        self.conn
            .prepare_cached(
                "INSERT INTO queue (id, payload) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            )
            .unwrap()
            .execute(params![id, b"payload".as_slice()])
            .unwrap();
        self.conn
            .prepare_cached("DELETE FROM queue WHERE id = ?1")
            .unwrap()
            .execute([id])
            .unwrap();
    }
}

fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    g
}

fn postgres() -> Option<PgStorage> {
    let Ok(url) = std::env::var("PEERLOG_PG_URL") else {
        eprintln!(
            "postgres bench: the PostgreSQL functions are skipped: PEERLOG_PG_URL is not set (run under scripts/with-postgres.sh)"
        );
        return None;
    };
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("bench-{}-{n}", std::process::id());
    Some(PgStorage::open_with(&url, &name, PgOptions::default()).unwrap())
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("bench.peerlog")).unwrap();
    let file = store.account("bench").unwrap();
    let mut sqlite = Sqlite::open(&dir.path().join("bench.sqlite"));
    let pg = postgres();
    let cache = Store::open(dir.path().join("cache.peerlog")).unwrap();
    let cached = postgres().map(|p| PgCached::new(p, &cache).unwrap());
    let storages: Vec<(&str, &dyn Storage)> = std::iter::once(("file", &file as &dyn Storage))
        .chain(pg.as_ref().map(|p| ("postgres", p as &dyn Storage)))
        .chain(
            cached
                .as_ref()
                .map(|p| ("postgres_cached", p as &dyn Storage)),
        )
        .collect();

    let mut g = group(c, "pg_save_peers_new");
    g.throughput(Throughput::Elements(PEERS as u64));
    for (name, s) in &storages {
        let mut next = 1_000_000;
        g.bench_function(*name, |b| {
            b.iter(|| {
                next += PEERS;
                s.save_peers(&batch(next)).unwrap()
            })
        });
    }
    let mut next = 1_000_000;
    g.bench_function("sqlite", |b| {
        b.iter(|| {
            next += PEERS;
            sqlite.save_peers(&batch(next))
        })
    });
    g.finish();

    let known = batch(1);
    let mut g = group(c, "pg_save_peers_unchanged");
    g.throughput(Throughput::Elements(PEERS as u64));
    for (name, s) in &storages {
        s.save_peers(&known).unwrap();
        g.bench_function(*name, |b| b.iter(|| s.save_peers(&known).unwrap()));
    }
    sqlite.save_peers(&known);
    g.bench_function("sqlite", |b| b.iter(|| sqlite.save_peers(&known)));
    g.finish();

    let mut g = group(c, "pg_access_hash");
    for (name, s) in &storages {
        let mut i = 0;
        g.bench_function(*name, |b| {
            b.iter(|| {
                i = i % PEERS + 1;
                assert!(s.access_hash(PeerId::user(i)).unwrap().is_some())
            })
        });
    }
    let mut i = 0;
    g.bench_function("sqlite", |b| {
        b.iter(|| {
            i = i % PEERS + 1;
            assert!(sqlite.access_hash(i).is_some())
        })
    });
    g.finish();

    let names: Vec<String> = (1..=PEERS).map(|i| format!("@User_{i}")).collect();
    let mut g = group(c, "pg_resolve_username");
    for (name, s) in &storages {
        let mut i = 0;
        g.bench_function(*name, |b| {
            b.iter(|| {
                i = (i + 1) % names.len();
                assert!(s.resolve_username(&names[i]).unwrap().is_some())
            })
        });
    }
    let mut i = 0;
    g.bench_function("sqlite", |b| {
        b.iter(|| {
            i = (i + 1) % names.len();
            assert!(sqlite.resolve(&names[i][1..]).is_some())
        })
    });
    g.finish();

    let mut g = group(c, "pg_queue");
    for (name, s) in &storages {
        let mut n = 0u64;
        g.bench_function(*name, |b| {
            b.iter(|| {
                n += 1;
                let id = format!("u{n}");
                assert!(s.enqueue(&id, b"payload").unwrap());
                assert!(s.ack(&id).unwrap());
            })
        });
    }
    let mut n = 0u64;
    g.bench_function("sqlite", |b| {
        b.iter(|| {
            n += 1;
            sqlite.enqueue_ack(&format!("u{n}"))
        })
    });
    g.finish();

    drop(storages);
    if let Some(pg) = pg {
        pg.remove().unwrap();
    }
    if let Some(c) = cached {
        c.into_inner().remove().unwrap();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
