//! A PostgreSQL backend (feature `postgres`): accounts kept in a server
//! that bots on several machines share, with an owner lease and fencing.
//!
//! [`PgStorage`] implements [`Storage`] with the file store's semantics
//! (it passes [`crate::conformance`] unchanged): the min rule, unchanged
//! peers cost no write, usernames and phones move between peers, dedup
//! retention by count and age, the durable queue with attempts and last
//! error, conversations, metadata, any number of accounts by name. The
//! client is the pure-Rust `postgres` crate: no libpq, no C code.
//!
//! ```no_run
//! use peerlog::postgres::PgStorage;
//! use peerlog::{Peer, PeerId, Storage};
//! let bot = PgStorage::open("host=db.internal user=bots dbname=bots", "my-bot")?;
//! bot.save_peer(&Peer::user(42, 0xABCD))?;
//! assert_eq!(bot.access_hash(PeerId::user(42))?, Some(0xABCD));
//! # Ok::<(), peerlog::Error>(())
//! ```
//!
//! # Schema
//!
//! [`PgStorage::open`] creates the schema (`peerlog` unless
//! [`PgOptions::schema`] says otherwise) on first use and migrates it, in
//! one transaction, serialized by an advisory lock; a schema newer than
//! this build is refused with [`Error::Database`] before anything changes.
//! See `schema.rs` for the tables: every row is keyed by account,
//! `peer_names` is the index by lowercased username and by phone.
//!
//! # One round trip per write
//!
//! Each [`Storage`] call is one prepared statement, which PostgreSQL runs
//! as one transaction: `save_peers` and `save_peers_and_state` pass the
//! batch as arrays (`unnest`), merge in SQL (`ON CONFLICT DO UPDATE …
//! WHERE … IS DISTINCT FROM …`, so an unchanged peer writes no row), move
//! names from their previous owners and update the state, all in that one
//! statement. Unchanged peers are filtered out before the upsert, so they
//! lock and write no row (and the transaction commits without a WAL flush). The batch is validated, deduplicated by id (the later record
//! merged over the earlier, as the file store does) and sorted by id
//! first, so two batches lock rows in the same order and cannot deadlock.
//!
//! # The owner lease: why an advisory lock, and fencing
//!
//! Two processes using one MTProto session get `AUTH_KEY_DUPLICATED`, so an
//! account has one owner, across machines. Opening a [`PgStorage`] takes
//! the account's lease:
//!
//! 1. a session-level advisory lock (`pg_try_advisory_lock`) on the
//!    handle's one connection; a second owner anywhere gets
//!    [`Error::Locked`] naming the holder from the `leases` row (host, pid,
//!    since when);
//! 2. once it holds the lock, the new owner increments the lease's
//!    **epoch** in that row and records itself.
//!
//! The lock, not a row with an expiry, decides who owns the account,
//! because PostgreSQL ends it exactly when the holder's session ends: a
//! holder killed with `kill -9` closes its socket, the server ends the
//! session at once and a new owner gets the lease within milliseconds (the
//! tests check under two seconds), with no heartbeat thread to keep alive,
//! no clock to trust and no expiry to tune (too short and a slow holder
//! loses its lease, too long and a crash blocks the account). A holder
//! whose machine or network dies cannot close its socket: the server
//! notices through TCP keepalives, which the connection sets to
//! [`PgOptions::keepalive_idle`] plus 3 probes 5 s apart (25 s by default),
//! after which the lease is free. The cost: the connection must reach the
//! server directly or through session pooling (a transaction-pooling
//! proxy such as PgBouncer in transaction mode would drop the lock between
//! statements).
//!
//! **Fencing.** Every write is one statement on the connection that holds
//! the advisory lock, and it writes only if, in that same statement, the
//! lock is still this session's (`pg_try_advisory_xact_lock`, in memory:
//! no write, so an unchanged batch still writes nothing) and the lease row
//! still has this handle's epoch. While that session lives no other can
//! take the lease; once it is gone (dropped, or ended with
//! `pg_terminate_backend`) the handle cannot write through it, and it never
//! reconnects: every later call returns [`Error::LeaseLost`]. A takeover
//! forced by an operator (bumping `leases.epoch` by hand) is caught by the
//! epoch check and fences the handle the same way. So a holder that lost
//! its lease can never again overwrite the auth key, the update state or
//! peers.
//!
//! # Many workers on one queue
//!
//! [`PgQueue`] drains an account's durable queue from any number of
//! processes at once, without the lease: each claim locks one item with
//! `FOR UPDATE SKIP LOCKED` inside a transaction that the acknowledgement
//! commits. No item goes to two workers, and an item whose worker dies
//! mid-item (its transaction rolls back) is handed out again.

/// Opens a fenced statement: `fence` holds a row only while the lease is
/// this handle's (`$1` account, `$2` epoch): the session holds the
/// account's advisory lock (re-asserted for the transaction, in memory,
/// no write) and the lease row still has this handle's epoch.
macro_rules! fence {
    () => {
        "WITH fence AS (SELECT 1 FROM leases WHERE account_id = $1 AND epoch = $2 \
         AND pg_try_advisory_xact_lock(hashtext('peerlog:' || current_schema()), $1)), "
    };
}

mod cache;
mod copy;
mod pool;
mod queue;
pub(crate) mod schema;

pub use cache::PgCached;
pub use copy::{CopyReport, copy_from_postgres, copy_to_postgres};
pub use pool::PgPool;
pub use queue::{Claim, PgQueue};
pub use schema::SCHEMA_VERSION;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ::postgres::types::ToSql;
use ::postgres::{Client, NoTls, Row, Statement};
use parking_lot::Mutex;

use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::session::{DcAuth, Session};
use crate::storage::Storage;
use crate::types::{
    ChannelState, Conversation, DurableUpdate, Peer, PeerId, UpdateState, check_channel_id,
    check_conversation_ids, normalize_phone, normalize_username,
};
use crate::{MAX_KEY_LEN, MAX_VALUE_LEN};

/// Settings of a PostgreSQL connection.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// The schema peerlog's tables live in (created if missing): 1..=63 of
    /// `[a-z0-9_]`, starting with a letter. Default `peerlog`.
    pub schema: String,
    /// Dedup retention by count, as [`crate::Options::dedup_max_keys`].
    pub dedup_max_keys: usize,
    /// Dedup retention by age, as [`crate::Options::dedup_max_age`].
    pub dedup_max_age: Option<Duration>,
    /// How long connecting may take. Default 10 s.
    pub connect_timeout: Duration,
    /// Idle time before the server probes a silent client (TCP keepalive,
    /// then 3 probes 5 s apart): bounds how long a holder whose machine
    /// died keeps its lease. Default 10 s. Not used over a Unix socket,
    /// where a dead process's socket closes at once.
    pub keepalive_idle: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        let file = crate::Options::default();
        PgOptions {
            schema: "peerlog".into(),
            dedup_max_keys: file.dedup_max_keys,
            dedup_max_age: file.dedup_max_age,
            connect_timeout: Duration::from_secs(10),
            keepalive_idle: Duration::from_secs(10),
        }
    }
}

/// An [`Error::Database`] from a client error: the server's message with
/// its detail and hint, or the client's (connection refused, timeout).
pub(crate) fn db_error(context: String, e: ::postgres::Error) -> Error {
    let message = match e.as_db_error() {
        Some(d) => {
            let mut m = format!("{} (SQLSTATE {})", d.message(), d.code().code());
            if let Some(detail) = d.detail() {
                m.push_str(": ");
                m.push_str(detail);
            }
            if let Some(hint) = d.hint() {
                m.push_str("; ");
                m.push_str(hint);
            }
            if d.code() == &::postgres::error::SqlState::INVALID_PASSWORD {
                m.push_str("; check the user and password of the connection string");
            }
            m
        }
        None => {
            let mut m = e.to_string();
            if let Some(src) = std::error::Error::source(&e) {
                let s = src.to_string();
                if !m.contains(&s) {
                    m.push_str(": ");
                    m.push_str(&s);
                }
            }
            if e.is_closed() {
                m.push_str(" (the connection is closed)");
            } else if m.contains("refused") || m.contains("timed out") || m.contains("No such file")
            {
                m.push_str("; is the server running, and are host and port right?");
            }
            m
        }
    };
    Error::Database { context, message }
}

/// Connects, with keepalives and the schema on the search path, and
/// migrates the schema. Returns the client and a description of the
/// database (host, port, database; never the password).
pub(crate) fn connect(url: &str, opts: &PgOptions, role: &str) -> Result<(Client, String)> {
    schema::check_schema_name(&opts.schema)?;
    let mut config: ::postgres::Config = url.parse().map_err(|e| {
        Error::Invalid(format!(
            "PostgreSQL connection string: {e} (use key=value pairs or a postgresql:// URL)"
        ))
    })?;
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            ::postgres::config::Host::Tcp(h) => h.clone(),
            #[cfg(unix)]
            ::postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .collect();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let dbname = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres")
        .to_owned();
    let where_ = format!("PostgreSQL {}:{port}/{dbname}", hosts.join(","));
    config
        .connect_timeout(opts.connect_timeout)
        .keepalives(true)
        .keepalives_idle(opts.keepalive_idle)
        .application_name(&format!("peerlog {role}"));
    let mut client = config
        .connect(NoTls)
        .map_err(|e| db_error(format!("connecting to {where_}"), e))?;
    let idle = opts.keepalive_idle.as_secs().max(1);
    // (The batch statement also drives each lookup from the batch's keys,
    // `LATERAL (… OFFSET 0)`, so no plan can scan an account's names.)
    // Every statement peerlog sends looks rows up by key, a batch at most
    // some thousand keys: per-key index lookups are always right. The
    // planner, whose statistics lag (an account that just grew) or mix
    // accounts of very different sizes, otherwise picks hash joins over a
    // whole account's rows (measured: 100 unchanged peers in an account of
    // 30,000 took 45 ms instead of 1 ms). So this session plans each
    // execution with its parameters and without hash or merge joins or
    // bitmap scans.
    client
        .batch_execute(&format!(
            "SET search_path = {s}; SET tcp_keepalives_idle = {idle}; \
             SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3; \
             SET plan_cache_mode = force_custom_plan; SET enable_hashjoin = off; \
             SET enable_mergejoin = off; SET enable_bitmapscan = off;",
            s = opts.schema
        ))
        .map_err(|e| db_error(format!("setting up the session on {where_}"), e))?;
    schema::migrate(&mut client, &opts.schema, &where_)?;
    Ok((client, where_))
}

/// The names of every account in the schema, sorted.
pub fn accounts(url: &str, opts: &PgOptions) -> Result<Vec<String>> {
    let (mut client, where_) = connect(url, opts, "accounts")?;
    let rows = client
        .query("SELECT name FROM accounts ORDER BY name", &[])
        .map_err(|e| db_error(format!("listing the accounts of {where_}"), e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

fn check_account_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 255 || name.contains('\0') {
        return Err(Error::Invalid(format!(
            "account names are 1..=255 bytes without NUL, got {name:?}"
        )));
    }
    Ok(())
}

/// The account's row, created on first use, and its lease row.
pub(crate) fn account_id(client: &mut Client, name: &str, where_: &str) -> Result<i32> {
    check_account_name(name)?;
    let ctx = || format!("opening account {name:?} of {where_}");
    let row = client
        .query_one(
            "WITH ins AS (INSERT INTO accounts (name) VALUES ($1) ON CONFLICT (name) DO NOTHING RETURNING id),
                  id AS (SELECT id FROM ins UNION ALL SELECT id FROM accounts WHERE name = $1),
                  l AS (INSERT INTO leases (account_id) SELECT id FROM ins)
             SELECT id FROM id LIMIT 1",
            &[&name],
        )
        .map_err(|e| db_error(ctx(), e))?;
    Ok(row.get(0))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// This machine's name, for the lease row.
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}

fn too_large(what: &'static str, len: usize, max: usize) -> Result<()> {
    if len > max {
        return Err(Error::TooLarge { what, len, max });
    }
    Ok(())
}

/// The holder of an account's lease as recorded, for errors.
fn holder_of(client: &mut Client, account_id: i32) -> Result<(String, bool)> {
    let row = client
        .query_opt(
            "SELECT host, pid, to_char(to_timestamp(since) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC', epoch
             FROM leases WHERE account_id = $1",
            &[&account_id],
        )
        .map_err(|e| db_error("reading the lease holder".into(), e))?;
    Ok(match row {
        Some(r) => {
            let host: Option<String> = r.get(0);
            let pid: Option<i64> = r.get(1);
            let since: Option<String> = r.get(2);
            let epoch: i64 = r.get(3);
            let same = host.as_deref() == Some(host_name().as_str())
                && pid == Some(i64::from(std::process::id()));
            (
                format!(
                    "host {}, pid {}, since {} (lease epoch {epoch})",
                    host.as_deref().unwrap_or("?"),
                    pid.map_or("?".into(), |p| p.to_string()),
                    since.as_deref().unwrap_or("?"),
                ),
                same,
            )
        }
        None => ("an unknown holder (no lease row)".into(), false),
    })
}

struct Conn {
    client: Client,
    stmts: HashMap<&'static str, Statement>,
    /// Why the lease is lost; set once, never cleared.
    lost: Option<String>,
}

/// One account in PostgreSQL, holding its owner lease: a [`Storage`]
/// (see the [module docs](self) for the lease and fencing).
///
/// Calls go over one connection, one at a time. Dropping the handle ends
/// the connection and so frees the lease.
pub struct PgStorage {
    conn: Mutex<Conn>,
    name: String,
    account_id: i32,
    epoch: i64,
    place: String,
    opts: PgOptions,
}

impl std::fmt::Debug for PgStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStorage")
            .field("account", &self.place)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl Drop for PgStorage {
    /// Frees the lease before the connection closes, so that a new owner
    /// can take it as soon as this returns (the server ends a closed
    /// session a moment later).
    fn drop(&mut self) {
        let conn = self.conn.get_mut();
        if conn.lost.is_none() {
            let _ = conn.client.batch_execute("SELECT pg_advisory_unlock_all()");
        }
    }
}

/// Rows and their first column, `fence_ok`.
type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

impl PgStorage {
    /// Opens (creating on first use) account `name` with default
    /// [`PgOptions`]; see [`PgStorage::open_with`].
    pub fn open(url: &str, name: &str) -> Result<PgStorage> {
        Self::open_with(url, name, PgOptions::default())
    }

    /// Connects to `url` (a `key=value` connection string or a
    /// `postgresql://` URL), creates or migrates the schema, and takes the
    /// owner lease of account `name`. Fails with [`Error::Locked`] naming
    /// the holder while another handle, anywhere, holds it; with
    /// [`Error::Database`] when the server cannot be reached, refuses the
    /// login, or holds a newer schema.
    pub fn open_with(url: &str, name: &str, opts: PgOptions) -> Result<PgStorage> {
        check_account_name(name)?;
        let (mut client, where_) = connect(url, &opts, "owner")?;
        let place = format!("{where_}, schema {}, account {name:?}", opts.schema);
        let account_id = account_id(&mut client, name, &where_)?;
        let got: bool = client
            .query_one(
                &format!("SELECT pg_try_advisory_lock({}, $2)", schema::LOCK_SPACE),
                &[&opts.schema, &account_id],
            )
            .map_err(|e| db_error(format!("taking the owner lease of {place}"), e))?
            .get(0);
        if !got {
            let (holder, same_process) = holder_of(&mut client, account_id)?;
            return Err(Error::Locked {
                path: PathBuf::from(place),
                pid: None,
                same_process,
                read_only_holder: false,
                holder: Some(holder),
            });
        }
        let epoch: i64 = client
            .query_one(
                "UPDATE leases SET epoch = epoch + 1, host = $2, pid = $3, backend_pid = pg_backend_pid(),
                        since = extract(epoch FROM now())::bigint
                 WHERE account_id = $1 RETURNING epoch",
                &[
                    &account_id,
                    &host_name(),
                    &i64::from(std::process::id()),
                ],
            )
            .map_err(|e| db_error(format!("recording the owner lease of {place}"), e))?
            .get(0);
        Ok(PgStorage {
            conn: Mutex::new(Conn {
                client,
                stmts: HashMap::new(),
                lost: None,
            }),
            name: name.to_owned(),
            account_id,
            epoch,
            place,
            opts,
        })
    }

    /// The account's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The lease epoch this handle holds: each new owner of the account
    /// gets a larger one.
    pub fn epoch(&self) -> i64 {
        self.epoch
    }

    /// The server's process id of this handle's connection, the session
    /// that holds the lease (what `pg_terminate_backend` takes).
    pub fn backend_pid(&self) -> Result<i32> {
        Ok(self.run("reading the backend pid", "SELECT pg_backend_pid()", &[])?[0].get(0))
    }

    /// Deletes the account and everything in it, then drops the handle
    /// (and with it the lease). Fenced like every write.
    pub fn remove(self) -> Result<()> {
        self.write(
            "removing the account",
            concat!(
                fence!(),
                "d AS (DELETE FROM accounts WHERE id = $1 AND EXISTS (SELECT 1 FROM fence) RETURNING 1)
                 SELECT EXISTS (SELECT 1 FROM fence), (SELECT count(*) FROM d)"
            ),
            &[],
        )?;
        Ok(())
    }

    fn lost_error(&self, reason: String) -> Error {
        Error::LeaseLost {
            account: self.place.clone(),
            reason,
        }
    }

    /// Runs a prepared statement; a closed connection loses the lease.
    fn run(&self, what: &'static str, sql: &'static str, params: Params<'_>) -> Result<Vec<Row>> {
        let mut guard = self.conn.lock();
        let conn = &mut *guard;
        if let Some(reason) = &conn.lost {
            return Err(self.lost_error(reason.clone()));
        }
        let stmt = match conn.stmts.get(sql) {
            Some(s) => s.clone(),
            None => {
                let s = conn.client.prepare(sql);
                match s {
                    Ok(s) => {
                        conn.stmts.insert(sql, s.clone());
                        s
                    }
                    Err(e) => return Err(self.fail(conn, what, e)),
                }
            }
        };
        conn.client
            .query(&stmt, params)
            .map_err(|e| self.fail(conn, what, e))
    }

    fn fail(&self, conn: &mut Conn, what: &'static str, e: ::postgres::Error) -> Error {
        if conn.client.is_closed() || e.is_closed() {
            let reason = format!("its connection to the server is gone: {e}");
            conn.lost = Some(reason.clone());
            return self.lost_error(reason);
        }
        db_error(format!("{what} ({})", self.place), e)
    }

    fn read(&self, what: &'static str, sql: &'static str, params: Params<'_>) -> Result<Vec<Row>> {
        let mut all: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(params.len() + 1);
        all.push(&self.account_id);
        all.extend_from_slice(params);
        self.run(what, sql, &all)
    }

    /// Runs a fenced write: `$1` is the account, `$2` the epoch, the first
    /// column of the one row answered says whether the lease held.
    fn write(&self, what: &'static str, sql: &'static str, params: Params<'_>) -> Result<Row> {
        let mut all: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(params.len() + 2);
        all.push(&self.account_id);
        all.push(&self.epoch);
        all.extend_from_slice(params);
        let mut rows = self.run(what, sql, &all)?;
        let row = rows.pop().ok_or_else(|| Error::Database {
            context: format!("{what} ({})", self.place),
            message: "the statement answered no row".into(),
        })?;
        if row.get::<_, bool>(0) {
            return Ok(row);
        }
        // Someone else holds the lease now: fenced for good.
        let mut guard = self.conn.lock();
        let now = holder_of(&mut guard.client, self.account_id)
            .map(|(h, _)| {
                format!(
                    "the lease is now held by {h}; this handle had epoch {}",
                    self.epoch
                )
            })
            .unwrap_or_else(|e| format!("another owner took the lease ({e})"));
        guard.lost = Some(now.clone());
        Err(self.lost_error(now))
    }

    /// A fenced write answering a count in its second column.
    fn write_count(
        &self,
        what: &'static str,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<i64> {
        Ok(self.write(what, sql, params)?.get(1))
    }

    fn save_batch(
        &self,
        peers: &[Peer],
        state: Option<&UpdateState>,
        channels: &[ChannelState],
    ) -> Result<()> {
        for c in channels {
            check_channel_id(c.channel_id)?;
        }
        let batch = Batch::new(peers)?;
        // Channels: the last pts of each id wins, as consecutive saves would.
        let mut chans: Vec<(i64, i32)> = Vec::with_capacity(channels.len());
        for c in channels {
            match chans.iter_mut().find(|(id, _)| *id == c.channel_id) {
                Some(slot) => slot.1 = c.pts,
                None => chans.push((c.channel_id, c.pts)),
            }
        }
        chans.sort_unstable_by_key(|c| c.0);
        let (chan_ids, chan_pts): (Vec<i64>, Vec<i32>) = chans.into_iter().unzip();
        let st = state.copied().unwrap_or_default();
        let has_state = state.is_some();
        if batch.ids.is_empty() && !has_state && chan_ids.is_empty() {
            // Nothing to write; the lease is still checked on the next write.
            return Ok(());
        }
        self.write(
            "saving peers",
            SAVE_PEERS,
            &[
                &batch.ids,
                &batch.hashes,
                &batch.mins,
                &batch.usernames,
                &batch.others,
                &batch.phones,
                &batch.tails,
                &has_state,
                &st.pts,
                &st.qts,
                &st.date,
                &st.seq,
                &chan_ids,
                &chan_pts,
                &batch.name_peers,
                &batch.name_kinds,
                &batch.names,
            ],
        )?;
        Ok(())
    }

    fn peer_from(row: &Row) -> Result<Peer> {
        let id: i64 = row.get("peer_id");
        let pid = PeerId::from_bot_api(id).ok_or_else(|| Error::Database {
            context: "reading a peer".into(),
            message: format!("stored peer id {id} is not a Telegram id"),
        })?;
        let mut p = Peer::new(pid);
        p.access_hash = row.get("access_hash");
        p.min = row.get("min");
        p.username = row.get("username");
        p.usernames = row.get("usernames");
        p.phone = row.get("phone");
        let tail: &[u8] = row.get("tail");
        if !tail.is_empty() {
            let mut rd = Reader::new(tail, "peer tail");
            let bad = |e: crate::codec::DecodeError| Error::Database {
                context: format!("reading peer {id}"),
                message: format!("{e} in the stored peer"),
            };
            Peer::decode_tail(&mut rd, &mut p).map_err(bad)?;
            rd.finish().map_err(bad)?;
        }
        Ok(p)
    }
}

const SAVE_PEERS: &str = concat!(
    fence!(),
    r"i AS (
    SELECT t.* FROM unnest($3::int8[], $4::int8[], $5::bool[], $6::text[], $7::text[], $8::text[], $9::bytea[])
        AS t(peer_id, access_hash, min, username, others, phone, tail)
    WHERE EXISTS (SELECT 1 FROM fence)
),
m AS (
    SELECT i.peer_id,
        CASE WHEN c.access_hash IS NOT NULL AND NOT c.min AND (i.min OR i.access_hash IS NULL) THEN c.access_hash
             WHEN i.access_hash IS NULL AND c.peer_id IS NOT NULL THEN c.access_hash
             ELSE i.access_hash END AS access_hash,
        CASE WHEN c.access_hash IS NOT NULL AND NOT c.min AND (i.min OR i.access_hash IS NULL) THEN false
             WHEN i.access_hash IS NULL AND c.peer_id IS NOT NULL THEN c.min
             ELSE i.min END AS min,
        i.username, string_to_array(i.others, ' ') AS usernames, i.phone, i.tail,
        c.peer_id IS NOT NULL AS known,
        (c.access_hash, c.min, c.username, c.usernames, c.phone, c.tail) AS cur
    FROM i LEFT JOIN LATERAL (
        SELECT * FROM peers c WHERE c.account_id = $1 AND c.peer_id = i.peer_id OFFSET 0
    ) c ON true
),
up AS (
    INSERT INTO peers AS p (account_id, peer_id, access_hash, min, username, usernames, phone, tail)
    SELECT $1, peer_id, access_hash, min, username, usernames, phone, tail FROM m
    WHERE NOT known OR cur IS DISTINCT FROM (access_hash, min, username, usernames, phone, tail)
    ORDER BY peer_id
    ON CONFLICT (account_id, peer_id) DO UPDATE SET access_hash = excluded.access_hash,
        min = excluded.min, username = excluded.username, usernames = excluded.usernames,
        phone = excluded.phone, tail = excluded.tail
    WHERE (p.access_hash, p.min, p.username, p.usernames, p.phone, p.tail)
        IS DISTINCT FROM (excluded.access_hash, excluded.min, excluded.username,
                          excluded.usernames, excluded.phone, excluded.tail)
    RETURNING 1
),
nn AS (
    SELECT t.* FROM unnest($17::int8[], $18::int2[], $19::text[]) AS t(peer_id, kind, name)
    WHERE EXISTS (SELECT 1 FROM fence)
),
lose AS (
    SELECT n.peer_id,
        coalesce(array_agg(n.name) FILTER (WHERE n.kind = 1), '{}') AS unames,
        coalesce(bool_or(n.kind = 2), false) AS phone
    FROM nn CROSS JOIN LATERAL (
        SELECT o.peer_id, o.kind, o.name FROM peer_names o
        WHERE o.account_id = $1 AND o.kind = nn.kind AND o.name = nn.name OFFSET 0
    ) n
    WHERE n.peer_id <> nn.peer_id AND n.peer_id <> ALL($3::int8[])
    GROUP BY n.peer_id
),
lu AS (
    UPDATE peers p SET
        username = CASE WHEN lower(p.username) = ANY(l.unames) THEN NULL ELSE p.username END,
        usernames = ARRAY(SELECT x.u FROM unnest(p.usernames) WITH ORDINALITY AS x(u, o)
                          WHERE NOT (lower(x.u) = ANY(l.unames)) ORDER BY x.o),
        phone = CASE WHEN l.phone THEN NULL ELSE p.phone END
    FROM lose l WHERE p.account_id = $1 AND p.peer_id = l.peer_id
    RETURNING 1
),
dn AS (
    DELETE FROM peer_names n
    WHERE n.account_id = $1 AND n.peer_id = ANY($3::int8[]) AND EXISTS (SELECT 1 FROM fence)
      AND NOT EXISTS (SELECT 1 FROM nn WHERE nn.kind = n.kind AND nn.name = n.name)
    RETURNING 1
),
un AS (
    INSERT INTO peer_names AS n (account_id, kind, name, peer_id)
    SELECT $1, nn.kind, nn.name, nn.peer_id FROM nn
    WHERE NOT EXISTS (SELECT 1 FROM (
        SELECT o.peer_id FROM peer_names o
        WHERE o.account_id = $1 AND o.kind = nn.kind AND o.name = nn.name OFFSET 0
    ) o WHERE o.peer_id = nn.peer_id)
    ORDER BY nn.kind, nn.name
    ON CONFLICT (account_id, kind, name) DO UPDATE SET peer_id = excluded.peer_id
    WHERE n.peer_id <> excluded.peer_id
    RETURNING 1
),
st AS (
    INSERT INTO update_state (account_id, pts, qts, date, seq)
    SELECT $1, $11, $12, $13, $14 WHERE $10 AND EXISTS (SELECT 1 FROM fence)
    ON CONFLICT (account_id) DO UPDATE SET pts = excluded.pts, qts = excluded.qts,
        date = excluded.date, seq = excluded.seq
    RETURNING 1
),
ch AS (
    INSERT INTO channel_pts (account_id, channel_id, pts)
    SELECT $1, t.c, t.p FROM unnest($15::int8[], $16::int4[]) AS t(c, p)
    WHERE EXISTS (SELECT 1 FROM fence)
    ON CONFLICT (account_id, channel_id) DO UPDATE SET pts = excluded.pts
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM fence)"
);

const PEER_COLUMNS: &str = "peer_id, access_hash, min, username, usernames, phone, tail";

/// Name kinds of `peer_names`.
const USERNAME: i16 = 1;
const PHONE: i16 = 2;

/// A validated batch, merged by id (later over earlier), names moved
/// within the batch, sorted by id, as columns.
#[derive(Default)]
struct Batch {
    ids: Vec<i64>,
    hashes: Vec<Option<i64>>,
    mins: Vec<bool>,
    usernames: Vec<Option<String>>,
    others: Vec<String>,
    phones: Vec<Option<String>>,
    tails: Vec<Vec<u8>>,
    name_peers: Vec<i64>,
    name_kinds: Vec<i16>,
    names: Vec<String>,
}

/// One peer as stored.
struct Rec {
    id: i64,
    hash: Option<i64>,
    min: bool,
    username: Option<String>,
    others: Vec<String>,
    phone: Option<String>,
    tail: Vec<u8>,
}

impl Rec {
    fn names(&self) -> impl Iterator<Item = (i16, String)> + '_ {
        self.username
            .iter()
            .chain(&self.others)
            .map(|u| (USERNAME, u.to_ascii_lowercase()))
            .chain(self.phone.iter().map(|p| (PHONE, p.clone())))
    }

    fn drop_name(&mut self, kind: i16, name: &str) {
        if kind == PHONE {
            self.phone = None;
            return;
        }
        if self
            .username
            .as_deref()
            .is_some_and(|u| u.eq_ignore_ascii_case(name))
        {
            self.username = None;
        }
        self.others.retain(|u| !u.eq_ignore_ascii_case(name));
    }
}

impl Batch {
    fn new(peers: &[Peer]) -> Result<Batch> {
        let mut recs: Vec<Rec> = Vec::with_capacity(peers.len());
        let mut at: HashMap<i64, usize> = HashMap::with_capacity(peers.len());
        let mut owners: HashMap<(i16, String), usize> = HashMap::new();
        for p in peers {
            // The file store's checks, so both refuse the same peers.
            crate::account::peer_record(Vec::new(), 0, p)?;
            let username = p
                .username
                .as_deref()
                .and_then(normalize_username)
                .map(str::to_owned);
            let mut others: Vec<String> = Vec::new();
            for u in &p.usernames {
                let Some(u) = normalize_username(u) else {
                    continue;
                };
                let seen = |x: &str| x.eq_ignore_ascii_case(u);
                if !username.as_deref().is_some_and(seen) && !others.iter().any(|x| seen(x)) {
                    others.push(u.to_owned());
                }
            }
            let phone = p.phone.as_deref().and_then(normalize_phone);
            let mut tail = Writer { buf: Vec::new() };
            p.encode_tail(&mut tail);
            let mut rec = Rec {
                id: p.id.bot_api(),
                hash: p.access_hash,
                min: p.min,
                username,
                others,
                phone,
                tail: tail.buf,
            };
            let slot = match at.get(&rec.id) {
                Some(&i) => {
                    // The min rule against the earlier record of the batch.
                    let cur = &recs[i];
                    let known_full = cur.hash.is_some() && !cur.min;
                    if known_full && (rec.min || rec.hash.is_none()) {
                        rec.hash = cur.hash;
                        rec.min = false;
                    } else if rec.hash.is_none() {
                        rec.hash = cur.hash;
                        rec.min = cur.min;
                    }
                    let old: Vec<_> = recs[i].names().collect();
                    for n in old {
                        if owners.get(&n) == Some(&i) {
                            owners.remove(&n);
                        }
                    }
                    recs[i] = rec;
                    i
                }
                None => {
                    recs.push(rec);
                    at.insert(recs[recs.len() - 1].id, recs.len() - 1);
                    recs.len() - 1
                }
            };
            let names: Vec<_> = recs[slot].names().collect();
            for n in names {
                if let Some(&other) = owners.get(&n)
                    && other != slot
                {
                    recs[other].drop_name(n.0, &n.1);
                }
                owners.insert(n, slot);
            }
        }
        recs.sort_unstable_by_key(|r| r.id);
        let mut b = Batch::default();
        for r in recs {
            for (kind, name) in r.names() {
                b.name_peers.push(r.id);
                b.name_kinds.push(kind);
                b.names.push(name);
            }
            b.ids.push(r.id);
            b.hashes.push(r.hash);
            b.mins.push(r.min);
            b.usernames.push(r.username);
            b.others.push(r.others.join(" "));
            b.phones.push(r.phone);
            b.tails.push(r.tail);
        }
        Ok(b)
    }
}

fn corrupt(what: &str, e: crate::codec::DecodeError) -> Error {
    Error::Database {
        context: format!("reading the {what}"),
        message: format!("{e}: the stored value does not decode"),
    }
}

impl Storage for PgStorage {
    fn session(&self) -> Result<Option<Session>> {
        let rows = self.read(
            "reading the session",
            "SELECT data FROM sessions WHERE account_id = $1",
            &[],
        )?;
        rows.first()
            .map(|r| Session::decode(r.get(0)).map_err(|e| corrupt("session", e)))
            .transpose()
    }
    fn save_session(&self, session: &Session) -> Result<()> {
        self.write(
            "saving the session",
            concat!(
                fence!(),
                "w AS (INSERT INTO sessions (account_id, data) SELECT $1, $3 WHERE EXISTS (SELECT 1 FROM fence)
                 ON CONFLICT (account_id) DO UPDATE SET data = excluded.data RETURNING 1)
                 SELECT EXISTS (SELECT 1 FROM fence), (SELECT count(*) FROM w)"
            ),
            &[&session.encode()],
        )?;
        Ok(())
    }
    fn delete_session(&self) -> Result<bool> {
        Ok(self.write_count(
            "deleting the session",
            concat!(
                fence!(),
                "w AS (DELETE FROM sessions WHERE account_id = $1 AND EXISTS (SELECT 1 FROM fence) RETURNING 1)
                 SELECT EXISTS (SELECT 1 FROM fence), (SELECT count(*) FROM w)"
            ),
            &[],
        )? > 0)
    }
    fn dc_auth(&self, dc_id: i32) -> Result<Option<DcAuth>> {
        let rows = self.read(
            "reading a DC auth",
            "SELECT data FROM dc_auths WHERE account_id = $1 AND dc_id = $2",
            &[&dc_id],
        )?;
        rows.first()
            .map(|r| DcAuth::decode(r.get(0)).map_err(|e| corrupt("DC auth", e)))
            .transpose()
    }
    fn save_dc_auth(&self, auth: &DcAuth) -> Result<()> {
        self.write(
            "saving a DC auth",
            concat!(
                fence!(),
                "w AS (INSERT INTO dc_auths (account_id, dc_id, data) SELECT $1, $3, $4 WHERE EXISTS (SELECT 1 FROM fence)
                 ON CONFLICT (account_id, dc_id) DO UPDATE SET data = excluded.data RETURNING 1)
                 SELECT EXISTS (SELECT 1 FROM fence), (SELECT count(*) FROM w)"
            ),
            &[&auth.dc_id, &auth.encode()],
        )?;
        Ok(())
    }
    fn dc_auths(&self) -> Result<Vec<DcAuth>> {
        self.read(
            "reading the DC auths",
            "SELECT data FROM dc_auths WHERE account_id = $1 ORDER BY dc_id",
            &[],
        )?
        .iter()
        .map(|r| DcAuth::decode(r.get(0)).map_err(|e| corrupt("DC auth", e)))
        .collect()
    }
    fn delete_dc_auth(&self, dc_id: i32) -> Result<bool> {
        Ok(self.write_count(
            "deleting a DC auth",
            concat!(
                fence!(),
                "w AS (DELETE FROM dc_auths WHERE account_id = $1 AND dc_id = $3 AND EXISTS (SELECT 1 FROM fence) RETURNING 1)
                 SELECT EXISTS (SELECT 1 FROM fence), (SELECT count(*) FROM w)"
            ),
            &[&dc_id],
        )? > 0)
    }

    fn save_peers(&self, peers: &[Peer]) -> Result<()> {
        self.save_batch(peers, None, &[])
    }
    fn peer(&self, id: PeerId) -> Result<Option<Peer>> {
        const SQL: &str = "SELECT peer_id, access_hash, min, username, usernames, phone, tail FROM peers WHERE account_id = $1 AND peer_id = $2";
        let rows = self.read("reading a peer", SQL, &[&id.bot_api()])?;
        rows.first().map(Self::peer_from).transpose()
    }
    fn delete_peer(&self, id: PeerId) -> Result<bool> {
        Ok(self.write_count(
            "deleting a peer",
            concat!(
                fence!(),
                "d AS (DELETE FROM peers WHERE account_id = $1 AND peer_id = $3 AND EXISTS (SELECT 1 FROM fence) RETURNING 1),
                 dn AS (DELETE FROM peer_names WHERE account_id = $1 AND peer_id = $3 AND EXISTS (SELECT 1 FROM fence))
                 SELECT EXISTS (SELECT 1 FROM fence), (SELECT count(*) FROM d)"
            ),
            &[&id.bot_api()],
        )? > 0)
    }
    fn peers(&self) -> Result<Vec<Peer>> {
        const SQL: &str = "SELECT peer_id, access_hash, min, username, usernames, phone, tail FROM peers WHERE account_id = $1 ORDER BY peer_id";
        debug_assert!(SQL.contains(PEER_COLUMNS));
        self.read("reading the peers", SQL, &[])?
            .iter()
            .map(Self::peer_from)
            .collect()
    }
    fn peer_count(&self) -> Result<u64> {
        let n: i64 = self.read(
            "counting the peers",
            "SELECT count(*) FROM peers WHERE account_id = $1",
            &[],
        )?[0]
            .get(0);
        Ok(n as u64)
    }
    fn access_hash(&self, id: PeerId) -> Result<Option<i64>> {
        let rows = self.read(
            "reading an access hash",
            "SELECT access_hash FROM peers WHERE account_id = $1 AND peer_id = $2",
            &[&id.bot_api()],
        )?;
        Ok(rows.first().and_then(|r| r.get(0)))
    }
    fn peer_by_username(&self, username: &str) -> Result<Option<Peer>> {
        let Some(u) = normalize_username(username) else {
            return Ok(None);
        };
        const SQL: &str =
            "SELECT p.peer_id, p.access_hash, p.min, p.username, p.usernames, p.phone, p.tail
             FROM peer_names n JOIN peers p ON p.account_id = n.account_id AND p.peer_id = n.peer_id
             WHERE n.account_id = $1 AND n.kind = 1 AND n.name = $2";
        let rows = self.read("looking up a username", SQL, &[&u.to_ascii_lowercase()])?;
        rows.first().map(Self::peer_from).transpose()
    }
    fn peer_by_phone(&self, phone: &str) -> Result<Option<Peer>> {
        let Some(p) = normalize_phone(phone) else {
            return Ok(None);
        };
        const SQL: &str =
            "SELECT p.peer_id, p.access_hash, p.min, p.username, p.usernames, p.phone, p.tail
             FROM peer_names n JOIN peers p ON p.account_id = n.account_id AND p.peer_id = n.peer_id
             WHERE n.account_id = $1 AND n.kind = 2 AND n.name = $2";
        let rows = self.read("looking up a phone", SQL, &[&p])?;
        rows.first().map(Self::peer_from).transpose()
    }
    fn resolve_username(&self, username: &str) -> Result<Option<(PeerId, Option<i64>)>> {
        let Some(u) = normalize_username(username) else {
            return Ok(None);
        };
        let rows = self.read(
            "resolving a username",
            "SELECT p.peer_id, p.access_hash FROM peer_names n
             JOIN peers p ON p.account_id = n.account_id AND p.peer_id = n.peer_id
             WHERE n.account_id = $1 AND n.kind = 1 AND n.name = $2",
            &[&u.to_ascii_lowercase()],
        )?;
        rows.first()
            .map(|r| {
                let id: i64 = r.get(0);
                let pid = PeerId::from_bot_api(id).ok_or_else(|| Error::Database {
                    context: "resolving a username".into(),
                    message: format!("stored peer id {id} is not a Telegram id"),
                })?;
                Ok((pid, r.get(1)))
            })
            .transpose()
    }

    fn update_state(&self) -> Result<Option<UpdateState>> {
        let rows = self.read(
            "reading the update state",
            "SELECT pts, qts, date, seq FROM update_state WHERE account_id = $1",
            &[],
        )?;
        Ok(rows.first().map(|r| UpdateState {
            pts: r.get(0),
            qts: r.get(1),
            date: r.get(2),
            seq: r.get(3),
        }))
    }
    fn save_update_state(&self, state: &UpdateState) -> Result<()> {
        self.save_batch(&[], Some(state), &[])
    }
    fn channel_pts(&self, channel_id: i64) -> Result<Option<i32>> {
        check_channel_id(channel_id)?;
        let rows = self.read(
            "reading a channel's pts",
            "SELECT pts FROM channel_pts WHERE account_id = $1 AND channel_id = $2",
            &[&channel_id],
        )?;
        Ok(rows.first().map(|r| r.get(0)))
    }
    fn save_channel_pts(&self, channel_id: i64, pts: i32) -> Result<()> {
        self.save_batch(&[], None, &[ChannelState { channel_id, pts }])
    }
    fn channel_states(&self) -> Result<Vec<ChannelState>> {
        Ok(self
            .read(
                "reading the channel states",
                "SELECT channel_id, pts FROM channel_pts WHERE account_id = $1 ORDER BY channel_id",
                &[],
            )?
            .iter()
            .map(|r| ChannelState {
                channel_id: r.get(0),
                pts: r.get(1),
            })
            .collect())
    }
    fn delete_channel_state(&self, channel_id: i64) -> Result<bool> {
        Ok(self.write_count(
            "deleting a channel state",
            concat!(
                fence!(),
                "w AS (DELETE FROM channel_pts WHERE account_id = $1 AND channel_id = $3 AND EXISTS (SELECT 1 FROM fence) RETURNING 1)
                 SELECT EXISTS (SELECT 1 FROM fence), (SELECT count(*) FROM w)"
            ),
            &[&channel_id],
        )? > 0)
    }
    fn save_peers_and_state(
        &self,
        peers: &[Peer],
        state: Option<&UpdateState>,
        channels: &[ChannelState],
    ) -> Result<()> {
        self.save_batch(peers, state, channels)
    }

    fn insert_dedup_key(&self, key: &[u8]) -> Result<bool> {
        too_large("dedup key", key.len(), MAX_KEY_LEN)?;
        let keep = (self.opts.dedup_max_keys.max(1) - 1).min(i64::MAX as usize) as i64;
        let cutoff: Option<i64> = self
            .opts
            .dedup_max_age
            .map(|a| unix_now().saturating_sub(i64::try_from(a.as_secs()).unwrap_or(i64::MAX)));
        Ok(self.write_count(
            "inserting a dedup key",
            concat!(
                fence!(),
                "ins AS (INSERT INTO dedup (account_id, key, at) SELECT $1, $3, $4 WHERE EXISTS (SELECT 1 FROM fence)
                    ON CONFLICT (account_id, sha256(key)) DO NOTHING RETURNING seq),
                 del AS (DELETE FROM dedup d WHERE d.account_id = $1 AND EXISTS (SELECT 1 FROM ins) AND (
                    d.seq <= (SELECT seq FROM dedup WHERE account_id = $1 ORDER BY seq DESC OFFSET $5 LIMIT 1)
                    OR ($6::int8 IS NOT NULL AND d.seq < coalesce(
                        (SELECT min(seq) FROM dedup WHERE account_id = $1 AND at >= $6::int8),
                        9223372036854775807))))
                 SELECT EXISTS (SELECT 1 FROM fence), (SELECT count(*) FROM ins)"
            ),
            &[&key, &unix_now(), &keep, &cutoff],
        )? > 0)
    }
    fn has_dedup_key(&self, key: &[u8]) -> Result<bool> {
        too_large("dedup key", key.len(), MAX_KEY_LEN)?;
        Ok(self.read(
            "reading a dedup key",
            "SELECT EXISTS (SELECT 1 FROM dedup WHERE account_id = $1 AND sha256(key) = sha256($2) AND key = $2)",
            &[&key],
        )?[0]
            .get(0))
    }

    fn enqueue(&self, id: &str, payload: &[u8]) -> Result<bool> {
        too_large("queue id", id.len(), MAX_KEY_LEN)?;
        too_large("queue payload", payload.len(), MAX_VALUE_LEN)?;
        Ok(self.write_count(
            "enqueueing",
            concat!(
                fence!(),
                "w AS (INSERT INTO queue (account_id, id, payload, created_at, updated_at)
                    SELECT $1, $3, $4, $5, $5 WHERE EXISTS (SELECT 1 FROM fence)
                    ON CONFLICT (account_id, sha256(id)) DO NOTHING RETURNING 1)
                 SELECT EXISTS (SELECT 1 FROM fence), (SELECT count(*) FROM w)"
            ),
            &[&id.as_bytes(), &payload, &unix_now()],
        )? > 0)
    }
    fn pending(&self, limit: usize) -> Result<Vec<DurableUpdate>> {
        let limit = limit.min(i64::MAX as usize) as i64;
        self.read(
            "reading the queue",
            "SELECT id, payload, attempts, last_error, created_at, updated_at FROM queue
             WHERE account_id = $1 ORDER BY seq LIMIT $2",
            &[&limit],
        )?
        .iter()
        .map(queue::update_from)
        .collect()
    }
    fn ack(&self, id: &str) -> Result<bool> {
        too_large("queue id", id.len(), MAX_KEY_LEN)?;
        Ok(self.write_count(
            "acknowledging a queued update",
            concat!(
                fence!(),
                "w AS (DELETE FROM queue WHERE account_id = $1 AND sha256(id) = sha256($3) AND id = $3
                    AND EXISTS (SELECT 1 FROM fence) RETURNING 1)
                 SELECT EXISTS (SELECT 1 FROM fence), (SELECT count(*) FROM w)"
            ),
            &[&id.as_bytes()],
        )? > 0)
    }
    fn mark_failed(&self, id: &str, error: &str) -> Result<u32> {
        too_large("queue id", id.len(), MAX_KEY_LEN)?;
        too_large("queue error", error.len(), MAX_VALUE_LEN)?;
        let row = self.write(
            "recording a failed attempt",
            concat!(
                fence!(),
                "w AS (UPDATE queue SET attempts = least(attempts + 1, 4294967295), last_error = $4, updated_at = $5
                    WHERE account_id = $1 AND sha256(id) = sha256($3) AND id = $3
                    AND EXISTS (SELECT 1 FROM fence) RETURNING attempts)
                 SELECT EXISTS (SELECT 1 FROM fence), coalesce((SELECT attempts FROM w), 0)"
            ),
            &[&id.as_bytes(), &error.as_bytes(), &unix_now()],
        )?;
        Ok(row.get::<_, i64>(1) as u32)
    }

    fn conversation(&self, chat_id: i64, user_id: i64) -> Result<Option<Conversation>> {
        check_conversation_ids(chat_id, user_id)?;
        let rows = self.read(
            "reading a conversation",
            "SELECT data FROM conversations WHERE account_id = $1 AND chat_id = $2 AND user_id = $3",
            &[&chat_id, &user_id],
        )?;
        rows.first()
            .map(|r| Conversation::decode(r.get(0)).map_err(|e| corrupt("conversation", e)))
            .transpose()
    }
    fn save_conversation(&self, c: &Conversation) -> Result<()> {
        check_conversation_ids(c.chat_id, c.user_id)?;
        let data = c.encode();
        too_large("conversation", data.len(), MAX_VALUE_LEN)?;
        self.write(
            "saving a conversation",
            concat!(
                fence!(),
                "w AS (INSERT INTO conversations (account_id, chat_id, user_id, data)
                    SELECT $1, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM fence)
                    ON CONFLICT (account_id, chat_id, user_id) DO UPDATE SET data = excluded.data RETURNING 1)
                 SELECT EXISTS (SELECT 1 FROM fence), (SELECT count(*) FROM w)"
            ),
            &[&c.chat_id, &c.user_id, &data],
        )?;
        Ok(())
    }
    fn delete_conversation(&self, chat_id: i64, user_id: i64) -> Result<bool> {
        Ok(self.write_count(
            "deleting a conversation",
            concat!(
                fence!(),
                "w AS (DELETE FROM conversations WHERE account_id = $1 AND chat_id = $3 AND user_id = $4
                    AND EXISTS (SELECT 1 FROM fence) RETURNING 1)
                 SELECT EXISTS (SELECT 1 FROM fence), (SELECT count(*) FROM w)"
            ),
            &[&chat_id, &user_id],
        )? > 0)
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        too_large("meta key", key.len(), MAX_KEY_LEN)?;
        let rows = self.read(
            "reading a metadata value",
            "SELECT value FROM meta WHERE account_id = $1 AND sha256(key) = sha256($2) AND key = $2",
            &[&key.as_bytes()],
        )?;
        Ok(rows.first().map(|r| r.get(0)))
    }
    fn set_meta(&self, key: &str, value: &[u8]) -> Result<()> {
        too_large("meta key", key.len(), MAX_KEY_LEN)?;
        too_large("meta value", value.len(), MAX_VALUE_LEN)?;
        self.write(
            "setting a metadata value",
            concat!(
                fence!(),
                "w AS (INSERT INTO meta (account_id, key, value) SELECT $1, $3, $4 WHERE EXISTS (SELECT 1 FROM fence)
                    ON CONFLICT (account_id, sha256(key)) DO UPDATE SET value = excluded.value RETURNING 1)
                 SELECT EXISTS (SELECT 1 FROM fence), (SELECT count(*) FROM w)"
            ),
            &[&key.as_bytes(), &value],
        )?;
        Ok(())
    }
    fn delete_meta(&self, key: &str) -> Result<bool> {
        too_large("meta key", key.len(), MAX_KEY_LEN)?;
        Ok(self.write_count(
            "deleting a metadata value",
            concat!(
                fence!(),
                "w AS (DELETE FROM meta WHERE account_id = $1 AND sha256(key) = sha256($3) AND key = $3
                    AND EXISTS (SELECT 1 FROM fence) RETURNING 1)
                 SELECT EXISTS (SELECT 1 FROM fence), (SELECT count(*) FROM w)"
            ),
            &[&key.as_bytes()],
        )? > 0)
    }
}
