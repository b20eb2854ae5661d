//! Many stores in one process: one file per bot or account, opened on
//! demand, shared by concurrent callers, closed when idle.
//!
//! A service that hosts many bots keeps one store per bot. It cannot hold
//! thousands of files open, and it must never open one file twice (the
//! second open fails with [`Error::Locked`]). A [`Pool`] owns those stores:
//!
//! - [`Pool::get`] parses a [`PoolKey`] (an account name or a bot token),
//!   opens `<dir>/<name>.peerlog` on first use and returns a [`PoolHandle`].
//!   Concurrent callers for the same key share one open; if that open fails,
//!   every caller waiting for it gets the error and a later call tries
//!   again.
//! - A store is *in use* while a handle to it (or a clone of its
//!   [`Store`], [`Account`] or a bucket made from them) is alive. Nothing in
//!   the pool ever closes a store in use.
//! - [`Pool::gc`] (or a [`Pool::spawn_reaper`] thread) closes stores idle
//!   for at least [`PoolOptions::idle_timeout`]; [`Pool::close`] and
//!   [`Pool::close_all`] close explicitly. Every close syncs first.
//! - At most [`PoolOptions::max_open`] stores are open (or opening): the
//!   least recently used idle one is closed before a new one opens, and if
//!   every store is in use, [`Pool::get`] fails with [`Error::PoolFull`]
//!   rather than wait.
//!
//! Bot tokens (`123456789:AA…`) are secrets: only the numeric bot id names
//! the file, and no file name, error, log line or `Debug` output of this
//! module ever contains the part after the colon.
//!
//! ```
//! use peerlog::{Peer, PeerId, Pool, PoolOptions, Storage};
//!
//! let dir = tempfile::tempdir()?;
//! let pool = Pool::new(PoolOptions {
//!     dir: Some(dir.path().to_path_buf()),
//!     ..PoolOptions::default()
//! })?;
//! let bot = pool.get("123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_x")?;
//! bot.save_peer(&Peer::user(42, 0xABCD))?;
//! assert_eq!(bot.access_hash(PeerId::user(42))?, Some(0xABCD));
//! assert!(dir.path().join("123456789.peerlog").exists());
//! drop(bot);
//! assert!(pool.close("123456789")?); // the bot id names the same store
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Memory pools
//!
//! With [`PoolOptions::dir`] set to `None`, every store lives in memory.
//! Its data is gone for good when the pool closes it: by [`Pool::gc`], an
//! eviction, [`Pool::close`] or dropping the pool. Use it for tests and
//! throwaway bots, with `idle_timeout` and `max_open` set so that nothing
//! you need is reaped.

use crate::account::Account;
use crate::engine::options::{Durability, Options};
use crate::engine::store::Store;
use crate::error::{Error, Result};
use crate::sys::io::MemFile;
use parking_lot::{Condvar, Mutex, MutexGuard};
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest account name a [`PoolKey`] accepts.
pub const MAX_POOL_NAME_LEN: usize = 128;
/// Shortest secret part of a bot token.
const MIN_SECRET_LEN: usize = 30;

// --- Keys -------------------------------------------------------------

/// What names a pooled store: an account name or a bot token, reduced to
/// its safe part.
///
/// - A bot token `digits:secret` (the secret is at least 30 characters of
///   `A-Z a-z 0-9 _ -`) becomes its bot id: `123456789:AA…` names
///   `123456789.peerlog`. The secret is checked, then forgotten.
/// - Any other key is an account name: 1 to [`MAX_POOL_NAME_LEN`]
///   characters of `A-Z a-z 0-9 . _ -`, not starting with `.` and without
///   `..`, so it can never leave the pool's directory.
///
/// A bot token and its bare bot id name the same store, and compare equal.
/// `Display` and `Debug` show only the safe name. A rejected key is an
/// [`Error::Invalid`] that says why without quoting the key, which may hold
/// a secret.
///
/// ```
/// use peerlog::PoolKey;
/// let bot = PoolKey::parse("123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_x")?;
/// assert_eq!(bot.to_string(), "123456789");
/// assert_eq!(bot.bot_id(), Some(123456789));
/// assert_eq!(bot.file_name(), "123456789.peerlog");
/// assert!(!format!("{bot:?}").contains("AAHdq"));
/// assert_eq!(PoolKey::parse("shop-bot_2")?.name(), "shop-bot_2");
/// assert!(PoolKey::parse("../etc/passwd").is_err());
/// assert!(PoolKey::parse("123:short").is_err());
/// # Ok::<(), peerlog::Error>(())
/// ```
#[derive(Clone)]
pub struct PoolKey {
    name: Arc<str>,
    bot: bool,
}

impl PoolKey {
    /// Parses an account name or a bot token (see the type's docs).
    pub fn parse(key: &str) -> Result<PoolKey> {
        let (name, bot) = parse_key(key)?;
        Ok(PoolKey {
            name: name.into(),
            bot,
        })
    }

    /// The safe name: the bot id of a token, or the account name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bot id, if the key was a bot token.
    pub fn bot_id(&self) -> Option<u64> {
        if self.bot {
            self.name.parse().ok()
        } else {
            None
        }
    }

    /// The store's file name inside the pool's directory: `<name>.peerlog`.
    pub fn file_name(&self) -> String {
        format!("{}.peerlog", self.name)
    }
}

impl std::str::FromStr for PoolKey {
    type Err = Error;
    fn from_str(s: &str) -> Result<PoolKey> {
        PoolKey::parse(s)
    }
}

impl fmt::Display for PoolKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl fmt::Debug for PoolKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.bot {
            f.debug_struct("PoolKey")
                .field("bot_id", &&*self.name)
                .finish()
        } else {
            f.debug_struct("PoolKey")
                .field("name", &&*self.name)
                .finish()
        }
    }
}

impl PartialEq for PoolKey {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for PoolKey {}
impl std::hash::Hash for PoolKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state)
    }
}
impl PartialOrd for PoolKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for PoolKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.name.cmp(&other.name)
    }
}

fn bad_key(why: &str) -> Error {
    Error::Invalid(format!(
        "bad pool key: {why} (the key is not shown: it may hold a bot token)"
    ))
}

/// The safe name of `key` and whether it was a bot token; never allocates.
fn parse_key(key: &str) -> Result<(&str, bool)> {
    if let Some((id, secret)) = key.split_once(':') {
        if id.is_empty() || id.len() > 20 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad_key(
                "a key with ':' is a bot token and must start with the numeric bot id",
            ));
        }
        if id.starts_with('0') || id.parse::<u64>().is_err() {
            return Err(bad_key(
                "a bot token's id must be a positive number without leading zeros",
            ));
        }
        let token_char = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
        if secret.len() < MIN_SECRET_LEN || !secret.bytes().all(token_char) {
            return Err(bad_key(
                "a bot token's secret must be at least 30 characters of A-Z a-z 0-9 _ -",
            ));
        }
        return Ok((id, true));
    }
    if key.is_empty() || key.len() > MAX_POOL_NAME_LEN {
        return Err(bad_key("an account name must be 1 to 128 characters"));
    }
    let name_char = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    if !key.bytes().all(name_char) {
        return Err(bad_key(
            "an account name may only hold A-Z a-z 0-9 . _ - (no path separators)",
        ));
    }
    if key.starts_with('.') || key.contains("..") {
        return Err(bad_key(
            "an account name may not start with '.' or contain '..'",
        ));
    }
    Ok((key, false))
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for str {}
    impl Sealed for String {}
    impl Sealed for super::PoolKey {}
}

/// What [`Pool::get`] and friends accept as a key: `str`, `String` (parsed
/// as a [`PoolKey`] on each call, without allocating) or a [`PoolKey`].
pub trait AsPoolKey: sealed::Sealed {
    /// The safe name and whether the key is a bot token.
    #[doc(hidden)]
    fn safe_name(&self) -> Result<(&str, bool)>;
}

impl AsPoolKey for str {
    fn safe_name(&self) -> Result<(&str, bool)> {
        parse_key(self)
    }
}
impl AsPoolKey for String {
    fn safe_name(&self) -> Result<(&str, bool)> {
        parse_key(self)
    }
}
impl AsPoolKey for PoolKey {
    fn safe_name(&self) -> Result<(&str, bool)> {
        Ok((&self.name, self.bot))
    }
}

// --- Options and stats ------------------------------------------------

/// Settings for [`Pool::new`].
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Where the store files live (created if missing), one
    /// `<name>.peerlog` per key. `None`: stores live in memory and their
    /// data is lost when the pool closes them (see the module docs).
    pub dir: Option<PathBuf>,
    /// [`Pool::gc`] closes stores idle for at least this long.
    pub idle_timeout: Duration,
    /// Most stores open (or being opened) at once; at least 1. Each open
    /// store holds one file descriptor, plus a sync thread with
    /// [`Durability::Batched`].
    pub max_open: usize,
    /// Options every store is opened with. Memory pools always use
    /// [`Durability::None`].
    pub store: Options,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            dir: None,
            idle_timeout: Duration::from_secs(600),
            max_open: 256,
            store: Options::default(),
        }
    }
}

/// Counters of a [`Pool`], from [`Pool::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Stores open now.
    pub open: usize,
    /// Open stores in use (held by a handle or a clone).
    pub in_use: usize,
    /// Stores being opened now.
    pub opening: usize,
    /// Callers blocked now on another caller's open of the same key.
    pub waiting: usize,
    /// Opens that succeeded.
    pub opens: u64,
    /// Opens that failed (each counted once, however many callers waited).
    pub open_errors: u64,
    /// `get` calls served by an open store.
    pub hits: u64,
    /// `get` calls that waited for another caller's open of the same key
    /// and shared its outcome, success or error.
    pub joined: u64,
    /// Stores closed by [`Pool::gc`] or the reaper for being idle.
    pub reaps: u64,
    /// Idle stores closed to make room under [`PoolOptions::max_open`].
    pub evictions: u64,
    /// Stores closed by [`Pool::close`] or [`Pool::close_all`].
    pub closes: u64,
}

// --- The pool ---------------------------------------------------------

/// A pool of stores, one per key: see the [module docs](self).
///
/// Cheap to clone; clones share the stores. Dropping the last clone stops
/// the reaper threads and closes every store not in use (a store still held
/// by a handle closes when its last handle drops).
#[derive(Clone)]
pub struct Pool {
    shared: Arc<Shared>,
}

/// One open store, shared by the map and every handle. In use while any
/// handle holds it (`Arc::strong_count > 1`) or anything outside the pool
/// holds a clone of its store.
struct Entry {
    key: PoolKey,
    account: Account,
    epoch: Instant,
    /// Nanoseconds from `epoch` to the last `get` or handle drop.
    last_used: AtomicU64,
}

impl Entry {
    fn touch(&self) {
        let now = self.epoch.elapsed().as_nanos() as u64;
        self.last_used.fetch_max(now, Ordering::Relaxed);
    }
}

/// The outcome of one open, seen by the opener and every waiter.
struct Opening {
    result: OnceLock<Result<Arc<Entry>, Error>>,
}

enum Slot {
    /// Someone is opening the store; waiters block on `Shared::changed`.
    Opening(Arc<Opening>),
    Open(Arc<Entry>),
    /// Being synced and closed outside the lock; a `get` for it waits, so
    /// the file is never opened while the old handle still holds its lock.
    Closing,
}

#[derive(Default)]
struct Table {
    slots: HashMap<Arc<str>, Slot>,
    waiting: usize,
    opens: u64,
    open_errors: u64,
    hits: u64,
    joined: u64,
    reaps: u64,
    evictions: u64,
    closes: u64,
}

#[derive(Clone, Copy)]
enum Why {
    Reap,
    Evict,
    Close,
}

impl Table {
    fn count(&mut self, why: Why) {
        match why {
            Why::Reap => self.reaps += 1,
            Why::Evict => self.evictions += 1,
            Why::Close => self.closes += 1,
        }
    }
}

struct Shared {
    opts: PoolOptions,
    epoch: Instant,
    table: Mutex<Table>,
    /// Notified whenever an open finishes or a close completes.
    changed: Condvar,
    stop: Arc<(Mutex<bool>, Condvar)>,
    reapers: Mutex<Vec<JoinHandle<()>>>,
}

/// True if nothing but the pool's map holds the store.
fn idle(e: &Arc<Entry>) -> bool {
    Arc::strong_count(e) == 1 && Arc::strong_count(&e.account.store().inner) == 1
}

impl Pool {
    /// The account every pooled store holds its data in ([`Store::account`]
    /// with this name), so a pooled file also opens as a plain store.
    pub const ACCOUNT: &'static str = "default";

    /// A pool with `opts`; creates the directory if it is missing.
    pub fn new(opts: PoolOptions) -> Result<Pool> {
        if opts.max_open == 0 {
            return Err(Error::Invalid(
                "PoolOptions::max_open must be at least 1".into(),
            ));
        }
        if let Some(dir) = &opts.dir {
            std::fs::create_dir_all(dir).map_err(Error::io("creating the pool directory"))?;
        }
        Ok(Pool {
            shared: Arc::new(Shared {
                opts,
                epoch: Instant::now(),
                table: Mutex::new(Table::default()),
                changed: Condvar::new(),
                stop: Arc::new((Mutex::new(false), Condvar::new())),
                reapers: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The options the pool was made with.
    pub fn options(&self) -> &PoolOptions {
        &self.shared.opts
    }

    /// A handle to the store of `key`, opened on first use (a new file is
    /// created, and the [`Pool::ACCOUNT`] account in it).
    ///
    /// - Concurrent callers for a key that is being opened wait for that one
    ///   open. If it fails, each of them gets a copy of its error (same
    ///   variant and fields; an [`Error::Io`] keeps its kind and message),
    ///   and the next call tries again.
    /// - With [`PoolOptions::max_open`] stores open, the least recently used
    ///   idle one is synced and closed first. If every one is in use (or
    ///   being opened), this fails at once with [`Error::PoolFull`],
    ///   without waiting: drop handles, or raise `max_open`.
    /// - A bad key is an [`Error::Invalid`] that does not quote the key.
    pub fn get<K: AsPoolKey + ?Sized>(&self, key: &K) -> Result<PoolHandle> {
        let (name, bot) = key.safe_name()?;
        self.shared.get(name, bot)
    }

    /// Runs `f` on the account of `key` (see [`Pool::get`]); the store is
    /// in use while `f` runs.
    pub fn with<K: AsPoolKey + ?Sized, R>(
        &self,
        key: &K,
        f: impl FnOnce(&Account) -> Result<R>,
    ) -> Result<R> {
        let h = self.get(key)?;
        f(h.account())
    }

    /// Syncs and closes every store idle for at least
    /// [`PoolOptions::idle_timeout`]; returns how many it closed. Stores in
    /// use are never closed. If a sync fails, the store is closed anyway
    /// and the first such error is returned after all are closed.
    pub fn gc(&self) -> Result<usize> {
        self.shared.gc()
    }

    /// Starts a thread that runs [`Pool::gc`] every `interval` (errors are
    /// dropped: a failed sync still closes the store). It stops when the
    /// last clone of the pool is dropped. `interval` must not be zero.
    pub fn spawn_reaper(&self, interval: Duration) -> Result<()> {
        if interval.is_zero() {
            return Err(Error::Invalid(
                "the reaper interval must not be zero".into(),
            ));
        }
        let weak: Weak<Shared> = Arc::downgrade(&self.shared);
        let stop = self.shared.stop.clone();
        let thread = std::thread::Builder::new()
            .name("peerlog-pool-reaper".into())
            .spawn(move || {
                loop {
                    {
                        let mut stopped = stop.0.lock();
                        if !*stopped {
                            stop.1.wait_for(&mut stopped, interval);
                        }
                        if *stopped {
                            return;
                        }
                    }
                    match weak.upgrade() {
                        Some(shared) => {
                            let _ = shared.gc();
                        }
                        None => return,
                    }
                }
            })
            .map_err(Error::io("starting the pool reaper"))?;
        self.shared.reapers.lock().push(thread);
        Ok(())
    }

    /// Syncs and closes the store of `key`. `Ok(false)` if it was not
    /// open; [`Error::Invalid`] if it is in use (or being opened), in which
    /// case it stays open. A failed sync still closes it and is returned.
    pub fn close<K: AsPoolKey + ?Sized>(&self, key: &K) -> Result<bool> {
        let (name, _) = key.safe_name()?;
        self.shared.close(name)
    }

    /// Syncs and closes every store not in use; returns how many it
    /// closed. Stores in use stay open, and then this returns
    /// [`Error::Invalid`] saying how many (after closing the others). A
    /// failed sync still closes its store and is returned first.
    pub fn close_all(&self) -> Result<usize> {
        self.shared.close_all()
    }

    /// Keys of the open stores, sorted by name.
    pub fn keys(&self) -> Vec<PoolKey> {
        let t = self.shared.table.lock();
        let mut keys: Vec<PoolKey> = t
            .slots
            .values()
            .filter_map(|s| match s {
                Slot::Open(e) => Some(e.key.clone()),
                _ => None,
            })
            .collect();
        keys.sort();
        keys
    }

    /// Current counts and totals.
    pub fn stats(&self) -> PoolStats {
        let t = self.shared.table.lock();
        let mut s = PoolStats {
            waiting: t.waiting,
            opens: t.opens,
            open_errors: t.open_errors,
            hits: t.hits,
            joined: t.joined,
            reaps: t.reaps,
            evictions: t.evictions,
            closes: t.closes,
            ..PoolStats::default()
        };
        for slot in t.slots.values() {
            match slot {
                Slot::Open(e) => {
                    s.open += 1;
                    s.in_use += usize::from(!idle(e));
                }
                Slot::Opening(_) => s.opening += 1,
                Slot::Closing => {}
            }
        }
        s
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.shared.opts;
        f.debug_struct("Pool")
            .field("dir", &o.dir)
            .field("max_open", &o.max_open)
            .field("idle_timeout", &o.idle_timeout)
            .field("open", &self.stats().open)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn handle(e: &Arc<Entry>) -> PoolHandle {
        e.touch();
        PoolHandle { entry: e.clone() }
    }

    fn get(&self, name: &str, bot: bool) -> Result<PoolHandle> {
        let mut t = self.table.lock();
        let victim = loop {
            match t.slots.get(name) {
                Some(Slot::Open(e)) => {
                    let h = Self::handle(e);
                    t.hits += 1;
                    return Ok(h);
                }
                Some(Slot::Opening(op)) => {
                    let op = op.clone();
                    t.waiting += 1;
                    while op.result.get().is_none() {
                        self.changed.wait(&mut t);
                    }
                    t.waiting -= 1;
                    t.joined += 1;
                    return match op.result.get() {
                        Some(Ok(e)) => Ok(Self::handle(e)),
                        Some(Err(err)) => Err(share(err)),
                        None => unreachable!("waited for the result"),
                    };
                }
                Some(Slot::Closing) => {
                    self.changed.wait(&mut t);
                    continue;
                }
                None => {}
            }
            if t.slots.len() < self.opts.max_open {
                break None;
            }
            // Least recently used idle store.
            let lru = t
                .slots
                .iter()
                .filter_map(|(n, s)| match s {
                    Slot::Open(e) if idle(e) => Some((e.last_used.load(Ordering::Relaxed), n)),
                    _ => None,
                })
                .min()
                .map(|(_, n)| n.clone());
            if let Some(v) = lru {
                let Some(Slot::Open(e)) = t.slots.insert(v.clone(), Slot::Closing) else {
                    unreachable!("the victim was open");
                };
                break Some((v, e));
            }
            if t.slots.values().any(|s| matches!(s, Slot::Closing)) {
                // Room is being made by someone else's close.
                self.changed.wait(&mut t);
                continue;
            }
            return Err(Error::PoolFull {
                max_open: self.opts.max_open,
            });
        };
        let name: Arc<str> = name.into();
        let op = Arc::new(Opening {
            result: OnceLock::new(),
        });
        t.slots.insert(name.clone(), Slot::Opening(op.clone()));
        drop(t);

        let mut guard = OpenGuard {
            shared: self,
            name,
            op,
            done: false,
        };
        if let Some((v, e)) = victim {
            // Closed before the new file opens, so at most `max_open` files
            // are ever open; the error belongs to the victim, not to us.
            let _ = self.finish_close(v, e, Why::Evict);
        }
        let opened = self.open(&guard.name, bot);
        guard.publish(opened)
    }

    fn open(&self, name: &Arc<str>, bot: bool) -> Result<Arc<Entry>> {
        let key = PoolKey {
            name: name.clone(),
            bot,
        };
        let store = match &self.opts.dir {
            Some(dir) => Store::open_with(dir.join(key.file_name()), self.opts.store.clone())?,
            None => Store::open_backend(
                Arc::new(MemFile::new()),
                Options {
                    durability: Durability::None,
                    ..self.opts.store.clone()
                },
            )?,
        };
        let account = store.account(Pool::ACCOUNT)?;
        drop(store);
        Ok(Arc::new(Entry {
            key,
            account,
            epoch: self.epoch,
            last_used: AtomicU64::new(self.now()),
        }))
    }

    /// Syncs and drops `e` (whose slot is `Closing`), then frees the slot.
    fn finish_close(&self, name: Arc<str>, e: Arc<Entry>, why: Why) -> Result<()> {
        let synced = e.account.store().sync();
        // The last reference: the file closes and its lock is released here.
        drop(e);
        let mut t = self.table.lock();
        if matches!(t.slots.get(&name), Some(Slot::Closing)) {
            t.slots.remove(&name);
        }
        t.count(why);
        drop(t);
        self.changed.notify_all();
        synced
    }

    fn close_each(&self, victims: Vec<(Arc<str>, Arc<Entry>)>, why: Why) -> Result<usize> {
        let n = victims.len();
        let mut first = None;
        for (name, e) in victims {
            if let Err(err) = self.finish_close(name, e, why) {
                first.get_or_insert(err);
            }
        }
        first.map_or(Ok(n), Err)
    }

    /// Marks the idle open stores that `pick` selects as closing.
    fn take_idle(
        &self,
        t: &mut MutexGuard<'_, Table>,
        pick: impl Fn(&Entry) -> bool,
    ) -> Vec<(Arc<str>, Arc<Entry>)> {
        let names: Vec<Arc<str>> = t
            .slots
            .iter()
            .filter(|(_, s)| matches!(s, Slot::Open(e) if idle(e) && pick(e)))
            .map(|(n, _)| n.clone())
            .collect();
        names
            .into_iter()
            .filter_map(|n| match t.slots.insert(n.clone(), Slot::Closing) {
                Some(Slot::Open(e)) => Some((n, e)),
                _ => None,
            })
            .collect()
    }

    fn gc(&self) -> Result<usize> {
        let timeout = self.opts.idle_timeout.as_nanos().min(u64::MAX as u128) as u64;
        let mut t = self.table.lock();
        let now = self.now();
        let victims = self.take_idle(&mut t, |e| {
            now.saturating_sub(e.last_used.load(Ordering::Relaxed)) >= timeout
        });
        drop(t);
        self.close_each(victims, Why::Reap)
    }

    fn close(&self, name: &str) -> Result<bool> {
        let mut t = self.table.lock();
        loop {
            match t.slots.get(name) {
                None => return Ok(false),
                Some(Slot::Closing) => self.changed.wait(&mut t),
                Some(Slot::Opening(_)) => {
                    return Err(Error::Invalid(format!(
                        "pooled store {name} is being opened; it stays open"
                    )));
                }
                Some(Slot::Open(e)) if !idle(e) => {
                    return Err(Error::Invalid(format!(
                        "pooled store {name} is in use; it stays open"
                    )));
                }
                Some(Slot::Open(_)) => {
                    let name: Arc<str> = name.into();
                    let Some(Slot::Open(e)) = t.slots.insert(name.clone(), Slot::Closing) else {
                        unreachable!("checked above");
                    };
                    drop(t);
                    self.finish_close(name, e, Why::Close)?;
                    return Ok(true);
                }
            }
        }
    }

    fn close_all(&self) -> Result<usize> {
        let mut t = self.table.lock();
        let victims = self.take_idle(&mut t, |_| true);
        let busy = t
            .slots
            .values()
            .filter(|s| matches!(s, Slot::Open(_) | Slot::Opening(_)))
            .count();
        drop(t);
        let n = self.close_each(victims, Why::Close)?;
        if busy > 0 {
            return Err(Error::Invalid(format!(
                "closed {n} pooled stores; {busy} are in use or being opened and stay open"
            )));
        }
        Ok(n)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        *self.stop.0.lock() = true;
        self.stop.1.notify_all();
        let me = std::thread::current().id();
        for r in self.reapers.get_mut().drain(..) {
            // The reaper itself may drop the last reference mid-gc.
            if r.thread().id() != me {
                let _ = r.join();
            }
        }
        // The map drops next: every store not held by a handle closes.
    }
}

/// Publishes the outcome of an open exactly once, also if the open
/// panicked, so waiters never hang.
struct OpenGuard<'a> {
    shared: &'a Shared,
    name: Arc<str>,
    op: Arc<Opening>,
    done: bool,
}

impl OpenGuard<'_> {
    fn publish(&mut self, opened: Result<Arc<Entry>>) -> Result<PoolHandle> {
        self.done = true;
        let mut t = self.shared.table.lock();
        let out = match opened {
            Ok(e) => {
                t.opens += 1;
                t.slots.insert(self.name.clone(), Slot::Open(e.clone()));
                let _ = self.op.result.set(Ok(e.clone()));
                Ok(PoolHandle { entry: e })
            }
            Err(err) => {
                t.open_errors += 1;
                t.slots.remove(&self.name);
                let _ = self.op.result.set(Err(share(&err)));
                Err(err)
            }
        };
        drop(t);
        self.shared.changed.notify_all();
        out
    }
}

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.publish(Err(Error::Invalid(
                "opening a pooled store panicked".into(),
            )));
        }
    }
}

/// A copy of an open error for each caller that waited on the open.
fn share(e: &Error) -> Error {
    match e {
        Error::Io {
            context,
            path,
            source,
        } => Error::Io {
            context,
            path: path.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        Error::Poisoned { first } => Error::Poisoned {
            first: first.clone(),
        },
        Error::Locked {
            path,
            pid,
            same_process,
            read_only_holder,
            holder,
        } => Error::Locked {
            path: path.clone(),
            pid: *pid,
            same_process: *same_process,
            read_only_holder: *read_only_holder,
            holder: holder.clone(),
        },
        Error::Database { context, message } => Error::Database {
            context: context.clone(),
            message: message.clone(),
        },
        Error::LeaseLost { account, reason } => Error::LeaseLost {
            account: account.clone(),
            reason: reason.clone(),
        },
        Error::NotPeerlog { path } => Error::NotPeerlog { path: path.clone() },
        Error::UnsupportedVersion { found, supported } => Error::UnsupportedVersion {
            found: *found,
            supported: *supported,
        },
        Error::Corrupt { offset, what } => Error::Corrupt {
            offset: *offset,
            what: what.clone(),
        },
        Error::TooLarge { what, len, max } => Error::TooLarge {
            what,
            len: *len,
            max: *max,
        },
        Error::Invalid(s) => Error::Invalid(s.clone()),
        Error::ReadOnly => Error::ReadOnly,
        Error::PoolFull { max_open } => Error::PoolFull {
            max_open: *max_open,
        },
        Error::SessionString(e) => Error::SessionString(e.clone()),
        // Not an error an open returns.
        #[cfg(feature = "migrate")]
        Error::SessionFile(e) => Error::Invalid(e.to_string()),
    }
}

// --- Handles ----------------------------------------------------------

/// A pooled store in use: it stays open while this handle (or a clone)
/// lives. Derefs to the store's [`Account`] (named [`Pool::ACCOUNT`]), so
/// every [`crate::Storage`] method works on it directly.
///
/// Clones of the [`Store`] or [`Account`] taken from a handle also keep the
/// store in use, and so does a bucket made from them: the pool never closes
/// a file something still refers to.
#[derive(Clone)]
pub struct PoolHandle {
    entry: Arc<Entry>,
}

impl PoolHandle {
    /// The store's account (also reachable through `Deref`).
    pub fn account(&self) -> &Account {
        &self.entry.account
    }

    /// The store, for raw buckets, batches, [`Store::sync`] and the like.
    pub fn store(&self) -> &Store {
        self.entry.account.store()
    }

    /// The key this store was opened under (its safe name only).
    pub fn key(&self) -> &PoolKey {
        &self.entry.key
    }
}

impl std::ops::Deref for PoolHandle {
    type Target = Account;
    fn deref(&self) -> &Account {
        &self.entry.account
    }
}

impl Drop for PoolHandle {
    fn drop(&mut self) {
        // Before the reference goes: once the count drops the entry may be
        // closed, and its idle time starts now.
        self.entry.touch();
    }
}

impl fmt::Debug for PoolHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolHandle")
            .field("key", &self.entry.key)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_x";

    #[test]
    fn keys_parse() {
        let k = PoolKey::parse(TOKEN).unwrap();
        assert_eq!((k.name(), k.bot_id()), ("123456789", Some(123456789)));
        assert_eq!(k, PoolKey::parse("123456789").unwrap());
        for good in ["a", "A.b_c-9", "x.", &"n".repeat(128)] {
            assert_eq!(PoolKey::parse(good).unwrap().name(), good);
        }
        let long_id = format!("{}:{}", "9".repeat(21), "a".repeat(30));
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a..b",
            "a/b",
            "a\\b",
            "/etc",
            "a b",
            "é",
            "a\0b",
            &"n".repeat(129),
            ":AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_x",
            "0123:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_x",
            "12a:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_x",
            "123:short",
            "123:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/x",
            &long_id,
            "123:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_x:more",
        ] {
            let e = PoolKey::parse(bad).unwrap_err().to_string();
            assert!(
                e.starts_with("invalid argument: bad pool key"),
                "{bad:?}: {e}"
            );
            if bad.len() > 3 {
                assert!(!e.contains(bad), "{e}");
            }
        }
    }

    #[test]
    fn waiters_get_a_faithful_copy() {
        let e = Error::Io {
            context: "opening the store file",
            path: Some("/x/bot.peerlog".into()),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        let c = share(&e);
        assert_eq!(c.to_string(), e.to_string());
        assert!(
            matches!(c, Error::Io { ref source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied)
        );
    }
}
