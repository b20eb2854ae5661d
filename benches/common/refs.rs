//! Reference engines: hashbrown (in-memory floor), LMDB (heed), redb and
//! SQLite (rusqlite, bundled). Each one stores the same thing:
//!
//! * peer id -> (access hash, kind, username, phone)
//! * username -> peer id
//! * phone -> peer id
//!
//! Lookups by id return `(hash, kind)`; lookups by username/phone return the
//! whole resolved peer `(id, hash, kind)` (what a client needs to build an
//! input peer), i.e. an index probe plus a record read.
//!
//! Saving is an upsert that keeps the username/phone indexes right (a
//! changed username drops the old mapping), written blindly even when the
//! row is unchanged, as typical clients do (`INSERT OR REPLACE`-style).

use std::path::Path;

use heed::byteorder::BigEndian;
use heed::types::{Bytes, I64, Str};
use heed::{CommitOrAbort, EnvFlags, EnvOpenOptions};
use redb::{ReadableDatabase, TableDefinition};
use rusqlite::{Connection, OptionalExtension, params};
use tempfile::TempDir;

use super::{Dataset, Peer, decode_head, decode_names, encode_value};

/// Result of a lookup by id: `(access hash, kind)`.
pub type Resolved = (i64, u8);
/// Result of a lookup by username or phone: `(id, access hash, kind)`.
pub type ResolvedPeer = (i64, i64, u8);

/// Durability of write transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// The engine's durable default: a commit is on disk when it returns
    /// (LMDB: fsync per commit; redb: `Durability::Immediate`; SQLite: WAL +
    /// `synchronous=FULL`).
    Durable,
    /// No fsync on commit (LMDB: `MDB_NOSYNC`; redb: `Durability::None`;
    /// SQLite: WAL + `synchronous=OFF`). Crash may lose recent commits.
    NoSync,
}

/// A fresh temporary directory for one engine's files.
pub fn tempdir() -> TempDir {
    tempfile::Builder::new()
        .prefix("peerlog-bench-")
        .tempdir()
        .expect("tempdir")
}

// ---------------------------------------------------------------------------
// hashbrown
// ---------------------------------------------------------------------------

/// In-memory maps: the floor any on-disk engine is compared with.
pub struct HashbrownRef {
    /// id -> (hash, kind)
    pub by_id: hashbrown::HashMap<i64, (i64, u8)>,
    /// username -> id
    pub by_username: hashbrown::HashMap<String, i64>,
    /// phone -> id
    pub by_phone: hashbrown::HashMap<String, i64>,
}

impl HashbrownRef {
    /// `(hash, kind)` of `id`.
    #[inline]
    pub fn get(&self, id: i64) -> Option<Resolved> {
        self.by_id.get(&id).copied()
    }

    /// Peer with `username`.
    #[inline]
    pub fn get_username(&self, username: &str) -> Option<ResolvedPeer> {
        let id = *self.by_username.get(username)?;
        self.by_id.get(&id).map(|&(h, k)| (id, h, k))
    }

    /// Peer with `phone`.
    #[inline]
    pub fn get_phone(&self, phone: &str) -> Option<ResolvedPeer> {
        let id = *self.by_phone.get(phone)?;
        self.by_id.get(&id).map(|&(h, k)| (id, h, k))
    }
}

/// Builds the hashbrown maps for `ds`.
pub fn build_hashbrown(ds: &Dataset) -> HashbrownRef {
    let mut r = HashbrownRef {
        by_id: hashbrown::HashMap::with_capacity(ds.peers.len()),
        by_username: hashbrown::HashMap::new(),
        by_phone: hashbrown::HashMap::new(),
    };
    for p in &ds.peers {
        r.by_id.insert(p.id, (p.hash, p.kind));
        if let Some(u) = &p.username {
            r.by_username.insert(u.clone(), p.id);
        }
        if let Some(ph) = &p.phone {
            r.by_phone.insert(ph.clone(), p.id);
        }
    }
    r
}

// ---------------------------------------------------------------------------
// LMDB (heed)
// ---------------------------------------------------------------------------

// Peer keys are `id.to_be_bytes()` through `Bytes`: heed's `I64` key codec
// allocates a Vec per encode, which would tax every lookup.
type LmdbPeers = heed::Database<'static, Bytes, Bytes>;
type LmdbIndex = heed::Database<'static, Str, I64<BigEndian>>;

/// LMDB read transaction.
pub type LmdbTxn<'e> = heed::RoTxn<'e, heed::WithTls>;

/// Map size: virtual, the file only grows as written.
const LMDB_MAP_SIZE: usize = 16 << 30;

/// An LMDB environment with three named databases.
pub struct LmdbRef {
    /// The environment.
    pub env: heed::Env,
    peers: LmdbPeers,
    usernames: LmdbIndex,
    phones: LmdbIndex,
    dir: Option<TempDir>,
}

impl LmdbRef {
    /// Opens (or creates, with `create`) the environment in directory `path`.
    pub fn open(path: &Path, mode: SyncMode, create: bool) -> Self {
        let mut opts = EnvOpenOptions::new();
        opts.map_size(LMDB_MAP_SIZE).max_dbs(4);
        if mode == SyncMode::NoSync {
            // SAFETY: MDB_NOSYNC only drops the fsync at commit: a system crash
            // may lose the last commits, memory safety is unaffected.
            unsafe { opts.flags(EnvFlags::NO_SYNC) };
        }
        // SAFETY: the environment is private to this process and directory;
        // nothing else maps or modifies the file while it is open.
        let env = unsafe { opts.open(path) }.expect("lmdb open");
        let (peers, usernames, phones) = if create {
            let wtxn = env.write_txn().expect("lmdb write txn");
            env.create_databases_and_commit(wtxn, |dbo, wtxn| -> heed::Result<_> {
                let peers = dbo.create_database(wtxn, Some("peers"))?;
                let usernames = dbo.create_database(wtxn, Some("usernames"))?;
                let phones = dbo.create_database(wtxn, Some("phones"))?;
                Ok(CommitOrAbort::<_, ()>::Commit((
                    Some(peers),
                    Some(usernames),
                    Some(phones),
                )))
            })
            .expect("lmdb create databases")
            .unwrap_commit()
        } else {
            let rtxn = env.read_txn().expect("lmdb read txn");
            env.open_databases_and_commit(rtxn, |dbo, rtxn| -> heed::Result<_> {
                let peers = dbo.open_database(rtxn, Some("peers"))?;
                let usernames = dbo.open_database(rtxn, Some("usernames"))?;
                let phones = dbo.open_database(rtxn, Some("phones"))?;
                Ok(CommitOrAbort::<_, ()>::Commit((peers, usernames, phones)))
            })
            .expect("lmdb open databases")
            .unwrap_commit()
        };
        LmdbRef {
            env,
            peers: peers.expect("peers db"),
            usernames: usernames.expect("usernames db"),
            phones: phones.expect("phones db"),
            dir: None,
        }
    }

    /// Closes the environment, handing back its directory.
    pub fn close(mut self) -> TempDir {
        self.dir.take().expect("owned tempdir")
    }

    /// A read transaction.
    #[inline]
    pub fn read_txn(&self) -> LmdbTxn<'_> {
        self.env.read_txn().expect("lmdb read txn")
    }

    /// `(hash, kind)` of `id` in `txn`.
    #[inline]
    pub fn get_in(&self, txn: &LmdbTxn<'_>, id: i64) -> Option<Resolved> {
        self.peers
            .get(txn, &id.to_be_bytes())
            .expect("lmdb get")
            .map(decode_head)
    }

    fn by_index(&self, txn: &LmdbTxn<'_>, index: &LmdbIndex, key: &str) -> Option<ResolvedPeer> {
        let id = index.get(txn, key).expect("lmdb get")?;
        let (h, k) = self.get_in(txn, id)?;
        Some((id, h, k))
    }

    /// Peer with `username` in `txn`.
    #[inline]
    pub fn get_username_in(&self, txn: &LmdbTxn<'_>, username: &str) -> Option<ResolvedPeer> {
        self.by_index(txn, &self.usernames, username)
    }

    /// Peer with `phone` in `txn`.
    #[inline]
    pub fn get_phone_in(&self, txn: &LmdbTxn<'_>, phone: &str) -> Option<ResolvedPeer> {
        self.by_index(txn, &self.phones, phone)
    }

    /// `(hash, kind)` of `id`, in its own read transaction.
    #[inline]
    pub fn get(&self, id: i64) -> Option<Resolved> {
        self.get_in(&self.read_txn(), id)
    }

    /// Peer with `username`, in its own read transaction.
    #[inline]
    pub fn get_username(&self, username: &str) -> Option<ResolvedPeer> {
        self.get_username_in(&self.read_txn(), username)
    }

    /// Peer with `phone`, in its own read transaction.
    #[inline]
    pub fn get_phone(&self, phone: &str) -> Option<ResolvedPeer> {
        self.get_phone_in(&self.read_txn(), phone)
    }

    /// Upserts `peers` in one write transaction.
    pub fn save(&self, peers: &[Peer]) {
        let mut wtxn = self.env.write_txn().expect("lmdb write txn");
        let mut buf = Vec::with_capacity(64);
        let mut old_names = Vec::with_capacity(64);
        for p in peers {
            let key = p.id.to_be_bytes();
            let old = self.peers.get(&wtxn, &key).expect("lmdb get");
            old_names.clear();
            let old_ulen = old.map(|v| {
                let (u, ph) = decode_names(v);
                old_names.extend_from_slice(u);
                old_names.extend_from_slice(ph);
                u.len()
            });
            encode_value(p, &mut buf);
            self.peers.put(&mut wtxn, &key, &buf).expect("lmdb put");
            let (old_u, old_ph) = old_names.split_at(old_ulen.unwrap_or(0));
            for (index, old, new) in [
                (&self.usernames, old_u, p.username.as_deref()),
                (&self.phones, old_ph, p.phone.as_deref()),
            ] {
                let new_b = new.unwrap_or("").as_bytes();
                if !old.is_empty() && old != new_b {
                    let old = std::str::from_utf8(old).expect("utf8");
                    index.delete(&mut wtxn, old).expect("lmdb delete");
                }
                if let Some(new) = new {
                    index.put(&mut wtxn, new, &p.id).expect("lmdb put");
                }
            }
        }
        wtxn.commit().expect("lmdb commit");
    }
}

/// Builds an LMDB environment holding `ds` in a fresh temporary directory.
pub fn build_lmdb(ds: &Dataset, mode: SyncMode) -> LmdbRef {
    let dir = tempdir();
    let mut r = LmdbRef::open(dir.path(), mode, true);
    r.dir = Some(dir);
    for chunk in ds.peers.chunks(50_000) {
        r.save(chunk);
    }
    r
}

// ---------------------------------------------------------------------------
// redb
// ---------------------------------------------------------------------------

const REDB_PEERS: TableDefinition<i64, &[u8]> = TableDefinition::new("peers");
const REDB_USERNAMES: TableDefinition<&str, i64> = TableDefinition::new("usernames");
const REDB_PHONES: TableDefinition<&str, i64> = TableDefinition::new("phones");

/// redb read-only table handle (keeps its read transaction alive).
pub type RedbTable<K, V> = redb::ReadOnlyTable<K, V>;

/// A redb database file.
pub struct RedbRef {
    /// The database.
    pub db: redb::Database,
    mode: SyncMode,
    dir: Option<TempDir>,
}

impl RedbRef {
    const FILE: &'static str = "peers.redb";

    /// Opens (or creates, with `create`) `peers.redb` in directory `path`.
    pub fn open(path: &Path, mode: SyncMode, create: bool) -> Self {
        let file = path.join(Self::FILE);
        let db = if create {
            redb::Database::create(file)
        } else {
            redb::Database::open(file)
        }
        .expect("redb open");
        RedbRef {
            db,
            mode,
            dir: None,
        }
    }

    /// Closes the database, handing back its directory.
    pub fn close(mut self) -> TempDir {
        self.dir.take().expect("owned tempdir")
    }

    /// A read transaction with the peers table open.
    #[inline]
    pub fn peers_table(&self) -> RedbTable<i64, &'static [u8]> {
        let txn = self.db.begin_read().expect("redb read txn");
        txn.open_table(REDB_PEERS).expect("redb open table")
    }

    /// A read transaction with the peers and username tables open.
    #[inline]
    pub fn username_tables(&self) -> (RedbTable<&'static str, i64>, RedbTable<i64, &'static [u8]>) {
        let txn = self.db.begin_read().expect("redb read txn");
        let index = txn.open_table(REDB_USERNAMES).expect("redb open table");
        (index, txn.open_table(REDB_PEERS).expect("redb open table"))
    }

    /// A read transaction with the peers and phone tables open.
    #[inline]
    pub fn phone_tables(&self) -> (RedbTable<&'static str, i64>, RedbTable<i64, &'static [u8]>) {
        let txn = self.db.begin_read().expect("redb read txn");
        let index = txn.open_table(REDB_PHONES).expect("redb open table");
        (index, txn.open_table(REDB_PEERS).expect("redb open table"))
    }

    /// `(hash, kind)` of `id` in an open peers table.
    #[inline]
    pub fn get_in(peers: &RedbTable<i64, &'static [u8]>, id: i64) -> Option<Resolved> {
        peers
            .get(id)
            .expect("redb get")
            .map(|v| decode_head(v.value()))
    }

    /// Peer by username or phone in open `(index, peers)` tables.
    #[inline]
    pub fn get_indexed_in(
        tables: &(RedbTable<&'static str, i64>, RedbTable<i64, &'static [u8]>),
        key: &str,
    ) -> Option<ResolvedPeer> {
        let id = tables.0.get(key).expect("redb get")?.value();
        let (h, k) = Self::get_in(&tables.1, id)?;
        Some((id, h, k))
    }

    /// `(hash, kind)` of `id`, in its own read transaction.
    #[inline]
    pub fn get(&self, id: i64) -> Option<Resolved> {
        Self::get_in(&self.peers_table(), id)
    }

    /// Peer with `username`, in its own read transaction.
    #[inline]
    pub fn get_username(&self, username: &str) -> Option<ResolvedPeer> {
        Self::get_indexed_in(&self.username_tables(), username)
    }

    /// Peer with `phone`, in its own read transaction.
    #[inline]
    pub fn get_phone(&self, phone: &str) -> Option<ResolvedPeer> {
        Self::get_indexed_in(&self.phone_tables(), phone)
    }

    /// Upserts `peers` in one write transaction.
    pub fn save(&self, peers: &[Peer]) {
        let mut wtxn = self.db.begin_write().expect("redb write txn");
        if self.mode == SyncMode::NoSync {
            wtxn.set_durability(redb::Durability::None)
                .expect("redb durability");
        }
        {
            let mut table = wtxn.open_table(REDB_PEERS).expect("redb open table");
            let mut usernames = wtxn.open_table(REDB_USERNAMES).expect("redb open table");
            let mut phones = wtxn.open_table(REDB_PHONES).expect("redb open table");
            let mut buf = Vec::with_capacity(64);
            let mut old_names = Vec::with_capacity(64);
            for p in peers {
                encode_value(p, &mut buf);
                old_names.clear();
                let old_ulen = table
                    .insert(p.id, buf.as_slice())
                    .expect("redb insert")
                    .map(|old| {
                        let (u, ph) = decode_names(old.value());
                        old_names.extend_from_slice(u);
                        old_names.extend_from_slice(ph);
                        u.len()
                    });
                let (old_u, old_ph) = old_names.split_at(old_ulen.unwrap_or(0));
                for (index, old, new) in [
                    (&mut usernames, old_u, p.username.as_deref()),
                    (&mut phones, old_ph, p.phone.as_deref()),
                ] {
                    let new_b = new.unwrap_or("").as_bytes();
                    if !old.is_empty() && old != new_b {
                        let old = std::str::from_utf8(old).expect("utf8");
                        index.remove(old).expect("redb remove");
                    }
                    if let Some(new) = new {
                        index.insert(new, p.id).expect("redb insert");
                    }
                }
            }
        }
        wtxn.commit().expect("redb commit");
    }
}

/// Builds a redb database holding `ds` in a fresh temporary directory.
pub fn build_redb(ds: &Dataset, mode: SyncMode) -> RedbRef {
    let dir = tempdir();
    let mut r = RedbRef::open(dir.path(), mode, true);
    r.dir = Some(dir);
    for chunk in ds.peers.chunks(50_000) {
        r.save(chunk);
    }
    r
}

// ---------------------------------------------------------------------------
// SQLite
// ---------------------------------------------------------------------------

const SQL_GET: &str = "SELECT hash, kind FROM peer WHERE id = ?1";
const SQL_GET_USERNAME: &str = "SELECT id, hash, kind FROM peer WHERE username = ?1";
const SQL_GET_PHONE: &str = "SELECT id, hash, kind FROM peer WHERE phone = ?1";
const SQL_UPSERT: &str = "INSERT INTO peer(id, hash, kind, username, phone) \
     VALUES (?1, ?2, ?3, ?4, ?5) \
     ON CONFLICT(id) DO UPDATE SET hash = excluded.hash, kind = excluded.kind, \
     username = excluded.username, phone = excluded.phone";

/// A SQLite database (WAL) with one `peer` table.
pub struct SqliteRef {
    /// The connection.
    pub conn: Connection,
    dir: Option<TempDir>,
}

/// An explicit read transaction (`BEGIN` ... `COMMIT` on drop).
pub struct SqliteTxn<'c>(&'c Connection);

impl Drop for SqliteTxn<'_> {
    fn drop(&mut self) {
        self.0
            .prepare_cached("COMMIT")
            .and_then(|mut s| s.execute([]))
            .expect("sqlite commit");
    }
}

impl SqliteRef {
    const FILE: &'static str = "peers.sqlite";

    /// Opens (or creates the schema, with `create`) `peers.sqlite` in
    /// directory `path`.
    pub fn open(path: &Path, mode: SyncMode, create: bool) -> Self {
        let conn = Connection::open(path.join(Self::FILE)).expect("sqlite open");
        let sync = match mode {
            SyncMode::Durable => "FULL",
            SyncMode::NoSync => "OFF",
        };
        conn.pragma_update(None, "journal_mode", "WAL")
            .expect("sqlite wal");
        conn.pragma_update(None, "synchronous", sync)
            .expect("sqlite synchronous");
        if create {
            conn.execute_batch(
                "CREATE TABLE peer(id INTEGER PRIMARY KEY, hash INTEGER, kind INTEGER, \
                                   username TEXT, phone TEXT);
                 CREATE INDEX peer_username ON peer(username);
                 CREATE INDEX peer_phone ON peer(phone);",
            )
            .expect("sqlite schema");
        }
        SqliteRef { conn, dir: None }
    }

    /// Opens `peers.sqlite` in `path` the way a client starting up does (the
    /// file is already in WAL mode) and resolves `id`: the `open` benchmark.
    pub fn open_and_get(path: &Path, id: i64) -> (Connection, Option<Resolved>) {
        let conn = Connection::open(path.join(Self::FILE)).expect("sqlite open");
        let r = Self::get_on(&conn, id);
        (conn, r)
    }

    /// Closes the connection, handing back its directory.
    pub fn close(mut self) -> TempDir {
        self.dir.take().expect("owned tempdir")
    }

    /// Begins an explicit read transaction.
    #[inline]
    pub fn read_txn(&self) -> SqliteTxn<'_> {
        self.conn
            .prepare_cached("BEGIN")
            .and_then(|mut s| s.execute([]))
            .expect("sqlite begin");
        SqliteTxn(&self.conn)
    }

    #[inline]
    fn get_on(conn: &Connection, id: i64) -> Option<Resolved> {
        conn.prepare_cached(SQL_GET)
            .expect("sqlite prepare")
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .expect("sqlite query")
    }

    #[inline]
    fn by_index(&self, sql: &str, key: &str) -> Option<ResolvedPeer> {
        self.conn
            .prepare_cached(sql)
            .expect("sqlite prepare")
            .query_row([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()
            .expect("sqlite query")
    }

    /// `(hash, kind)` of `id` (autocommit: its own read transaction, or part
    /// of an open [`SqliteTxn`]).
    #[inline]
    pub fn get(&self, id: i64) -> Option<Resolved> {
        Self::get_on(&self.conn, id)
    }

    /// Peer with `username`.
    #[inline]
    pub fn get_username(&self, username: &str) -> Option<ResolvedPeer> {
        self.by_index(SQL_GET_USERNAME, username)
    }

    /// Peer with `phone`.
    #[inline]
    pub fn get_phone(&self, phone: &str) -> Option<ResolvedPeer> {
        self.by_index(SQL_GET_PHONE, phone)
    }

    /// Upserts `peers` in one write transaction.
    pub fn save(&self, peers: &[Peer]) {
        let tx = rusqlite::Transaction::new_unchecked(
            &self.conn,
            rusqlite::TransactionBehavior::Immediate,
        )
        .expect("sqlite begin");
        {
            let mut st = tx.prepare_cached(SQL_UPSERT).expect("sqlite prepare");
            for p in peers {
                st.execute(params![p.id, p.hash, p.kind, p.username, p.phone])
                    .expect("sqlite upsert");
            }
        }
        tx.commit().expect("sqlite commit");
    }
}

/// Builds a SQLite database holding `ds` in a fresh temporary directory
/// (bulk-loaded with `synchronous=OFF`, then switched to `mode`).
pub fn build_sqlite(ds: &Dataset, mode: SyncMode) -> SqliteRef {
    let dir = tempdir();
    let mut r = SqliteRef::open(dir.path(), SyncMode::NoSync, true);
    for chunk in ds.peers.chunks(50_000) {
        r.save(chunk);
    }
    // Leave a small WAL behind, as after a normal session.
    r.conn
        .pragma_update(None, "wal_checkpoint", "TRUNCATE")
        .expect("sqlite checkpoint");
    if mode == SyncMode::Durable {
        r.conn
            .pragma_update(None, "synchronous", "FULL")
            .expect("sqlite synchronous");
    }
    r.dir = Some(dir);
    r
}

// ---------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------

/// Checks an engine against the data set (first 2000 peers, 2000 absent
/// ids); panics on the first wrong answer.
pub fn verify(
    engine: &str,
    ds: &Dataset,
    mut get: impl FnMut(i64) -> Option<Resolved>,
    mut get_username: impl FnMut(&str) -> Option<ResolvedPeer>,
    mut get_phone: impl FnMut(&str) -> Option<ResolvedPeer>,
) {
    for p in ds.peers.iter().take(2000) {
        assert_eq!(get(p.id), Some((p.hash, p.kind)), "{engine}: id {}", p.id);
        if let Some(u) = &p.username {
            assert_eq!(
                get_username(u),
                Some((p.id, p.hash, p.kind)),
                "{engine}: username {u}"
            );
        }
        if let Some(ph) = &p.phone {
            assert_eq!(
                get_phone(ph),
                Some((p.id, p.hash, p.kind)),
                "{engine}: phone {ph}"
            );
        }
    }
    for id in ds.absent_ids(2000, 0xab5e) {
        assert_eq!(get(id), None, "{engine}: absent id {id}");
    }
    assert_eq!(get_username("no-such-username"), None, "{engine}");
}
