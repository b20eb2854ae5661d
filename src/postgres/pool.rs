//! Many bots in PostgreSQL: the [`crate::Pool`] of the PostgreSQL backend.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::{PgOptions, PgStorage};
use crate::error::Result;
use crate::pool::AsPoolKey;

/// Many bots kept in PostgreSQL, each account opened on first use with
/// its owner lease and shared by every caller: what [`crate::Pool`] is for
/// files. Keys are parsed like the file pool's ([`crate::PoolKey`]): a bot
/// token names the account by its bot id (the secret is never stored or
/// shown), so a file pool's bots and a `PgPool`'s have the same names
/// (see [`super::copy_to_postgres`] to move them).
///
/// A handle is in use while an `Arc` of it is held outside the pool;
/// [`PgPool::gc`] closes handles idle for the idle timeout, which frees
/// their leases for another machine. Opens are serialized (one connect at
/// a time per pool).
///
/// ```no_run
/// use peerlog::postgres::{PgOptions, PgPool};
/// use peerlog::{Peer, Storage};
/// let pool = PgPool::new("host=db user=bots", PgOptions::default());
/// let bot = pool.get("123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_x")?;
/// bot.save_peer(&Peer::user(42, 0xABCD))?;
/// # Ok::<(), peerlog::Error>(())
/// ```
pub struct PgPool {
    url: String,
    opts: PgOptions,
    idle_timeout: Duration,
    open: Mutex<HashMap<String, (Arc<PgStorage>, Instant)>>,
}

impl std::fmt::Debug for PgPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The connection string may hold a password: not shown.
        f.debug_struct("PgPool")
            .field("schema", &self.opts.schema)
            .field("open", &self.open.lock().len())
            .finish_non_exhaustive()
    }
}

impl PgPool {
    /// A pool of accounts in the database `url` names; nothing connects
    /// until [`PgPool::get`]. Idle timeout 5 minutes.
    pub fn new(url: &str, opts: PgOptions) -> PgPool {
        PgPool {
            url: url.to_owned(),
            opts,
            idle_timeout: Duration::from_secs(300),
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Sets how long an unused handle stays open before [`PgPool::gc`]
    /// closes it.
    pub fn with_idle_timeout(mut self, idle_timeout: Duration) -> PgPool {
        self.idle_timeout = idle_timeout;
        self
    }

    /// The account of `key` (an account name or a bot token), opened with
    /// its lease on first use. Fails with [`crate::Error::Locked`] while
    /// another machine owns it. A handle whose lease was lost is replaced
    /// by a fresh open.
    pub fn get<K: AsPoolKey + ?Sized>(&self, key: &K) -> Result<Arc<PgStorage>> {
        let (name, _) = key.safe_name()?;
        let mut open = self.open.lock();
        if let Some((s, used)) = open.get_mut(name)
            && s.conn.lock().lost.is_none()
        {
            *used = Instant::now();
            return Ok(s.clone());
        }
        if let Some((old, _)) = open.remove(name) {
            drop(old);
        }
        let s = Arc::new(PgStorage::open_with(&self.url, name, self.opts.clone())?);
        open.insert(name.to_owned(), (s.clone(), Instant::now()));
        Ok(s)
    }

    /// Closes every handle not in use and idle for the idle timeout (its
    /// lease is freed once the last outside `Arc` is gone); returns how
    /// many.
    pub fn gc(&self) -> usize {
        let mut open = self.open.lock();
        let before = open.len();
        open.retain(|_, (s, used)| Arc::strong_count(s) > 1 || used.elapsed() < self.idle_timeout);
        before - open.len()
    }

    /// Drops the pool's handle of `key`; true if it had one. Callers that
    /// still hold an `Arc` keep the lease until they drop it.
    pub fn close<K: AsPoolKey + ?Sized>(&self, key: &K) -> Result<bool> {
        let (name, _) = key.safe_name()?;
        Ok(self.open.lock().remove(name).is_some())
    }

    /// Drops every handle of the pool; returns how many.
    pub fn close_all(&self) -> usize {
        let mut open = self.open.lock();
        let n = open.len();
        open.clear();
        n
    }

    /// The names of the open accounts, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut k: Vec<String> = self.open.lock().keys().cloned().collect();
        k.sort();
        k
    }
}
