//! Accounts: one file holds any number of fully isolated accounts (one per
//! bot or logged-in user), each a [`Storage`].
//!
//! An access hash is valid only for the account that saw it, so peers, state
//! and everything else are kept per account. [`Store::account`] creates an
//! account on first use, [`Store::remove_account`] deletes all of its data in
//! one atomic commit.
//!
//! ```
//! use peerlog::{Peer, PeerId, Storage, Store};
//! let store = Store::memory();
//! let alice = store.account("alice")?;
//! let bob = store.account("bob")?;
//! alice.save_peer(&Peer::user(7, 111))?;
//! bob.save_peer(&Peer::user(7, 222))?;
//! assert_eq!(alice.access_hash(PeerId::user(7))?, Some(111));
//! assert_eq!(bob.access_hash(PeerId::user(7))?, Some(222));
//! assert_eq!(store.accounts()?, ["alice", "bob"]);
//! assert!(store.remove_account("bob")?);
//! assert_eq!(store.accounts()?, ["alice"]);
//! # Ok::<(), peerlog::Error>(())
//! ```
//!
//! # Keys
//!
//! The key layout and value encodings are part of the file format: see
//! FORMAT.md, "Typed keys and values".
//!
//! Live dedup sequence numbers form one contiguous run (keys are only ever
//! dropped oldest first), so the count is `last - first + 1` without a
//! counter. Queue and dedup sequence numbers continue from the largest live
//! one.

use crate::sys::bytes::Bytes;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::engine::options::Options;
use crate::engine::state::State;
use crate::engine::store::Store;
use crate::error::{Error, Result};
use crate::format::NUM_BUCKETS;
use crate::format::bucket::{CONVERSATIONS, DEDUP, MAX_KEY_LEN, META, QUEUE, SESSION, STATE};
use crate::format::codec::{DecodeError, Reader, Writer};
use crate::format::commit::Op;
use crate::format::index::NameKind;
use crate::format::peer_record::{MAX_ACCOUNT, PRIMARY, PeerRecordRef, RecordBuf, peer_key};
use crate::peers::merge::{Change, RecordList};
use crate::session::{DcAuth, Session};
use crate::storage::Storage;
use crate::sys::io::MemFile;
use crate::types::{
    ChannelState, Conversation, DurableUpdate, PHONE_RULE, Peer, PeerId, USERNAME_RULE,
    UpdateState, check_channel_id, check_conversation_ids, normalize_phone, normalize_username,
    phone_digits,
};

const REGISTRY: &[u8] = b"acct/";
const NEXT_ACCOUNT: &[u8] = b"acct#next";
/// The generic buckets that hold per-account keys.
const ACCOUNT_BUCKETS: [u8; 6] = [META, SESSION, STATE, DEDUP, QUEUE, CONVERSATIONS];

const T_SESSION: u8 = b's';
const T_DC: u8 = b'd';
const T_UPDATE: u8 = b'u';
const T_CHANNEL: u8 = b'c';
const T_DEDUP_KEY: u8 = b'k';
const T_DEDUP_ORDER: u8 = b'o';
const T_QUEUE_ID: u8 = b'i';
const T_QUEUE: u8 = b'q';
const T_CONVERSATION: u8 = b'v';
const T_META: u8 = b'm';

fn flip64(v: i64) -> [u8; 8] {
    ((v as u64) ^ (1 << 63)).to_be_bytes()
}

fn flip32(v: i32) -> [u8; 4] {
    ((v as u32) ^ (1 << 31)).to_be_bytes()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A stored value that does not decode.
fn corrupt(e: DecodeError) -> Error {
    Error::corrupt(0, format!("{e} in an account bucket"))
}

fn check_len(what: &'static str, bytes: &[u8]) -> Result<()> {
    if bytes.len() > MAX_KEY_LEN {
        return Err(Error::TooLarge {
            what,
            len: bytes.len(),
            max: MAX_KEY_LEN,
        });
    }
    Ok(())
}

/// The first key after every key starting with `prefix` (`None`: no end).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Every entry of `bucket` whose key starts with `prefix`, in key order.
fn prefixed<'s>(
    st: &'s State,
    bucket: u8,
    prefix: &[u8],
) -> std::collections::btree_map::Range<'s, Bytes, Bytes> {
    let end = prefix_end(prefix);
    let hi = match &end {
        Some(e) => Bound::Excluded(e.as_slice()),
        None => Bound::Unbounded,
    };
    st.maps[bucket as usize].range::<[u8], _>((Bound::Included(prefix), hi))
}

/// The sequence number that ends a dedup-order or queue key. They count
/// up from 0, one per insert, so one from 2^63 on is damage (and would
/// overflow when the next number is computed from it).
fn seq_of(key: &[u8]) -> Result<u64> {
    key.get(5..)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
        .filter(|&seq| seq < 1 << 63)
        .ok_or_else(|| {
            corrupt(DecodeError {
                what: "sequence key",
            })
        })
}

// --- Registry ------------------------------------------------------------

fn registry_key(name: &str) -> Result<Vec<u8>> {
    if name.is_empty() || name.len() > 255 {
        return Err(Error::Invalid(format!(
            "account names are 1..=255 bytes, got {}",
            name.len()
        )));
    }
    let mut k = REGISTRY.to_vec();
    k.extend_from_slice(name.as_bytes());
    Ok(k)
}

fn le_u32(v: &[u8], what: &'static str) -> Result<u32> {
    <[u8; 4]>::try_from(v)
        .map(u32::from_le_bytes)
        .map_err(|_| corrupt(DecodeError { what }))
}

fn registered(st: &State, key: &[u8]) -> Result<Option<u32>> {
    st.maps[META as usize]
        .get(key)
        .map(|v| le_u32(v, "account number"))
        .transpose()
}

impl Store {
    /// The account called `name`, created on first use (one small commit).
    ///
    /// Names are 1..=255 bytes of UTF-8; up to
    /// [`MAX_ACCOUNT`](crate::format::peer_record::MAX_ACCOUNT) + 1 accounts
    /// can ever be created in one file.
    ///
    /// ```
    /// let store = peerlog::Store::memory();
    /// let a = store.account("main")?;
    /// assert_eq!(a.name(), "main");
    /// assert_eq!(store.account("main")?.number(), a.number());
    /// assert!(store.account("").is_err());
    /// # Ok::<(), peerlog::Error>(())
    /// ```
    pub fn account(&self, name: &str) -> Result<Account> {
        let key = registry_key(name)?;
        let number = match self.read(|st| registered(st, &key))? {
            Some(n) => n,
            None => self.transact(false, |st| {
                if let Some(n) = registered(st, &key)? {
                    return Ok((vec![], n));
                }
                let n = match st.maps[META as usize].get(NEXT_ACCOUNT) {
                    Some(v) => le_u32(v, "next account number")?,
                    None => 0,
                };
                if n > MAX_ACCOUNT {
                    return Err(Error::Invalid(format!(
                        "no account numbers left (at most {} accounts per file)",
                        MAX_ACCOUNT as u64 + 1
                    )));
                }
                let put = |key: &[u8], v: u32| {
                    Change::Op(Op::Put {
                        bucket: META,
                        key: key.to_vec(),
                        value: v.to_le_bytes().to_vec(),
                    })
                };
                Ok((vec![put(&key, n), put(NEXT_ACCOUNT, n + 1)], n))
            })?,
        };
        Ok(Account {
            store: self.clone(),
            name: name.into(),
            number,
            registry_key: key.into(),
        })
    }

    /// Names of every account, in byte order.
    pub fn accounts(&self) -> Result<Vec<String>> {
        self.read(|st| {
            prefixed(st, META, REGISTRY)
                .map(|(k, _)| {
                    String::from_utf8(k[REGISTRY.len()..].to_vec()).map_err(|_| {
                        corrupt(DecodeError {
                            what: "account name",
                        })
                    })
                })
                .collect()
        })
    }

    /// Deletes an account and all of its data (session, peers, state,
    /// dedup keys, queue, conversations, metadata) in one atomic, durable
    /// commit; true if it existed. Handles to it still open fail on every
    /// later write, and a new account of the same name starts empty.
    pub fn remove_account(&self, name: &str) -> Result<bool> {
        let key = registry_key(name)?;
        self.transact(true, |st| {
            let Some(n) = registered(st, &key)? else {
                return Ok((vec![], false));
            };
            let prefix = n.to_be_bytes();
            let mut changes = Vec::new();
            for b in ACCOUNT_BUCKETS {
                changes.extend(prefixed(st, b, &prefix).map(|(k, _)| {
                    Change::Op(Op::Delete {
                        bucket: b,
                        key: k.to_vec(),
                    })
                }));
            }
            changes.extend(
                st.peers
                    .peer_keys(Some(n))?
                    .into_iter()
                    .map(Change::DeletePeer),
            );
            changes.push(Change::Op(Op::Delete {
                bucket: META,
                key: key.clone(),
            }));
            Ok((changes, true))
        })
    }
}

// --- Peer mapping --------------------------------------------------------

/// A username of a peer being saved, checked (see [`normalize_username`]).
fn saved_username(u: &str) -> Result<&str> {
    normalize_username(u).ok_or_else(|| Error::Invalid(format!("username {u:?}: {USERNAME_RULE}")))
}

/// The engine record of a peer, encoded (see [`Storage`] for the
/// normalization): usernames and the phone checked and normalized
/// ([`normalize_username`], [`normalize_phone`]), usernames deduplicated
/// ASCII case-insensitively. `buf` lends its allocation (the batch's
/// previous record).
pub(crate) fn peer_record(buf: Vec<u8>, account: u32, p: &Peer) -> Result<Vec<u8>> {
    // Every `PeerId` is valid by construction (its constructors check), so
    // the id needs no check here.
    let mut b = RecordBuf::reuse(buf, account, p.id.bot_api(), p.access_hash, p.min);
    let primary = p.username.as_deref().map(saved_username).transpose()?;
    b.primary(primary.is_some());
    if let Some(u) = primary {
        b.username(u);
    }
    for (i, u) in p.usernames.iter().enumerate() {
        let u = saved_username(u)?;
        let seen = |x: &str| x.eq_ignore_ascii_case(u);
        let mut earlier = p.usernames[..i]
            .iter()
            .filter_map(|x| normalize_username(x));
        if !primary.is_some_and(seen) && !earlier.any(seen) {
            b.username(u);
        }
    }
    if let Some(phone) = &p.phone {
        let digits = phone_digits(phone)
            .ok_or_else(|| Error::Invalid(format!("phone {phone:?}: {PHONE_RULE}")))?;
        b.phone(digits);
    }
    let mut tail = Writer {
        buf: std::mem::take(b.tail()),
    };
    p.encode_tail(&mut tail);
    *b.tail() = tail.buf;
    b.finish().map_err(Error::Invalid)
}

fn record_peer(r: &PeerRecordRef<'_>) -> Result<Peer> {
    let id = PeerId::from_bot_api(r.peer_id()).ok_or_else(|| {
        Error::Invalid(format!(
            "stored peer id {} is not a Telegram id",
            r.peer_id()
        ))
    })?;
    let mut p = Peer::new(id);
    p.access_hash = r.access_hash();
    p.min = r.is_min();
    let mut names = r.usernames();
    if r.flags() & PRIMARY != 0 {
        p.username = names.next().map(str::to_owned);
    }
    p.usernames = names.map(str::to_owned).collect();
    p.phone = r.phone().map(str::to_owned);
    // Records written through the engine API may carry no tail.
    if !r.tail().is_empty() {
        let mut rd = Reader::new(r.tail(), "peer tail");
        Peer::decode_tail(&mut rd, &mut p).map_err(corrupt)?;
        rd.finish().map_err(corrupt)?;
    }
    Ok(p)
}

// --- Account -------------------------------------------------------------

/// One account of a store: a [`Storage`] whose data is isolated from every
/// other account of the file. Cheap to clone; get one from
/// [`Store::account`].
///
/// Besides the [`Storage`] methods (import the trait to call them), an
/// account offers [`Account::write`]: several changes in one atomic commit.
#[derive(Clone)]
pub struct Account {
    store: Store,
    name: Arc<str>,
    number: u32,
    registry_key: Arc<[u8]>,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("name", &self.name)
            .field("number", &self.number)
            .finish_non_exhaustive()
    }
}

impl Account {
    /// The account's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The account's number in the file (its key prefix; engine-level peer
    /// calls such as [`Store::peer_record`] take it).
    pub fn number(&self) -> u32 {
        self.number
    }

    /// The store the account lives in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs `f` on a [`Transaction`] and commits everything it did as one
    /// atomic commit if it returns `Ok` (nothing at all if it returns
    /// `Err`). If the transaction touched the session, a DC auth or the
    /// queue, the commit is durable before `write` returns.
    ///
    /// `f` runs under the store's writer lock, so its reads and writes are
    /// atomic with respect to every other writer. Keep it short. Reads
    /// through the store or an account work inside `f`; a write through
    /// them returns [`Error::Invalid`]: write through the transaction.
    ///
    /// ```
    /// use peerlog::{Peer, PeerId, Storage, Store, UpdateState};
    /// let store = Store::memory();
    /// let bot = store.account("bot")?;
    /// let state = UpdateState { pts: 10, qts: 0, date: 1_700_000_000, seq: 1 };
    /// // The peers of an update and the state it advances to, atomically,
    /// // once per update id.
    /// let fresh = bot.write(|tx| {
    ///     if !tx.insert_dedup_key(b"update 10")? {
    ///         return Ok(false);
    ///     }
    ///     tx.save_peers(&[Peer::user(1, 11), Peer::user(2, 22)])?;
    ///     tx.save_update_state(&state)?;
    ///     Ok(true)
    /// })?;
    /// assert!(fresh);
    /// assert_eq!(bot.update_state()?, Some(state));
    /// assert_eq!(bot.access_hash(PeerId::user(2))?, Some(22));
    /// # Ok::<(), peerlog::Error>(())
    /// ```
    pub fn write<R>(&self, f: impl FnOnce(&mut Transaction<'_>) -> Result<R>) -> Result<R> {
        self.tx(false, f)
    }

    /// Read-modify-write under the writer lock; `sync` makes the commit
    /// durable (a transaction that needs it syncs anyway).
    fn tx<R>(&self, sync: bool, f: impl FnOnce(&mut Transaction<'_>) -> Result<R>) -> Result<R> {
        let (r, needs_sync) = self.tx_with(
            if sync {
                crate::engine::store::SyncNow::Force
            } else {
                crate::engine::store::SyncNow::Mode
            },
            f,
        )?;
        if needs_sync && !sync {
            self.store.sync()?;
        }
        Ok(r)
    }

    /// [`Account::write`] for async code: the commit is written and
    /// applied now (readers see it at once), but no fsync runs on the
    /// calling thread. The returned future resolves to `f`'s result once
    /// the commit is as durable as [`Account::write`] would have made it
    /// before returning: fsynced when the transaction holds a durable
    /// write (a session or auth-key save, `enqueue`, `ack`,
    /// `mark_failed`) or the store is [`crate::Durability::Immediate`],
    /// by the store's sync thread ([`Store::synced`]); at once otherwise
    /// (in Batched mode the background flusher syncs it within the
    /// window). An error from `f` or from writing the commit resolves
    /// the future with it and nothing is committed.
    ///
    /// ```
    /// # let store = peerlog::Store::memory();
    /// # let bot = store.account("bot")?;
    /// # let run = async {
    /// // In a tokio task: durable, and the worker thread never waits
    /// // for the disk.
    /// bot.write_async(|tx| tx.enqueue("update-1", b"payload")).await?;
    /// # Ok::<(), peerlog::Error>(())
    /// # };
    /// # Ok::<(), peerlog::Error>(())
    /// ```
    pub fn write_async<R>(
        &self,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<R>,
    ) -> crate::engine::syncer::Durable<R> {
        let durable = |needs_sync: bool| {
            needs_sync || self.store.inner.opts.durability == crate::Durability::Immediate
        };
        match self.tx_with(crate::engine::store::SyncNow::Defer, f) {
            Ok((r, needs_sync)) => crate::engine::syncer::Durable::new(
                Ok(r),
                durable(needs_sync).then(|| self.store.synced()),
            ),
            Err(e) => crate::engine::syncer::Durable::new(Err(e), None),
        }
    }

    /// The transaction and whether it holds a write that must be durable.
    fn tx_with<R>(
        &self,
        sync: crate::engine::store::SyncNow,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<R>,
    ) -> Result<(R, bool)> {
        let mut needs_sync = false;
        let r = self.store.transact_with(sync, |st| {
            if registered(st, &self.registry_key)? != Some(self.number) {
                return Err(Error::Invalid(format!(
                    "account {:?} was removed",
                    &*self.name
                )));
            }
            let mut tx = Transaction::new(self, st);
            let r = f(&mut tx)?;
            needs_sync = tx.sync;
            Ok((tx.changes, r))
        })?;
        Ok((r, needs_sync))
    }

    /// Reads through a transaction view of the committed state (one read
    /// lock: every read in `f` sees the same commit).
    pub(crate) fn view<R>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<R>) -> Result<R> {
        self.store.read(|st| f(&Transaction::new(self, st)))
    }

    fn key(&self, tag: u8, rest: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(5 + rest.len());
        k.extend_from_slice(&self.number.to_be_bytes());
        k.push(tag);
        k.extend_from_slice(rest);
        k
    }

    /// Decodes every value under `tag`, in key order.
    fn scan<T>(
        &self,
        bucket: u8,
        tag: u8,
        limit: usize,
        decode: impl Fn(&[u8]) -> std::result::Result<T, DecodeError>,
    ) -> Result<Vec<T>> {
        let prefix = self.key(tag, &[]);
        self.store.read(|st| {
            prefixed(st, bucket, &prefix)
                .take(limit)
                .map(|(_, v)| decode(v).map_err(corrupt))
                .collect()
        })
    }

    /// The engine's view of a peer's access hash and record flags, without
    /// decoding the record (see [`Store::peer_access_hash`]).
    #[cfg(any(feature = "grammers", feature = "ferogram"))]
    #[inline]
    pub(crate) fn peer_hash(&self, id: PeerId) -> Result<Option<(Option<i64>, u8)>> {
        self.store.peer_hash(self.number, id.bot_api())
    }

    /// The peer an index entry names, decoded.
    fn peer_at(&self, kind: NameKind, name: &str) -> Result<Option<Peer>> {
        self.store.read(|st| {
            let Some(key) = st.peers.owner(kind, self.number, name)? else {
                return Ok(None);
            };
            st.peers.record(key)?.map(|r| record_peer(&r)).transpose()
        })
    }
}

// --- Transaction ---------------------------------------------------------

/// The changes of one [`Account::write`]: everything done through it is
/// committed atomically, and its reads see its own earlier writes.
///
/// Peer changes are resolved at commit (merge rules, moved usernames), so
/// the transaction offers no peer reads.
pub struct Transaction<'a> {
    account: &'a Account,
    st: &'a State,
    changes: Vec<Change>,
    /// Generic keys written so far, per bucket: the index of their last
    /// change in `changes`.
    written: [BTreeMap<Vec<u8>, usize>; NUM_BUCKETS],
    /// Next queue sequence number, once known.
    queue_next: Option<u64>,
    /// Live dedup sequence numbers `first..next`, once known.
    dedup: Option<(u64, u64)>,
    /// The commit must be durable before returning.
    sync: bool,
}

impl<'a> Transaction<'a> {
    fn new(account: &'a Account, st: &'a State) -> Self {
        Transaction {
            account,
            st,
            changes: Vec::new(),
            written: Default::default(),
            queue_next: None,
            dedup: None,
            sync: false,
        }
    }

    fn key(&self, tag: u8, rest: &[u8]) -> Vec<u8> {
        self.account.key(tag, rest)
    }

    fn get(&self, bucket: u8, key: &[u8]) -> Option<&[u8]> {
        match self.written[bucket as usize].get(key) {
            Some(&i) => match &self.changes[i] {
                Change::Op(Op::Put { value, .. }) => Some(value),
                _ => None,
            },
            None => self.st.maps[bucket as usize].get(key).map(|v| &**v),
        }
    }

    fn decode<T>(
        &self,
        bucket: u8,
        key: &[u8],
        decode: impl FnOnce(&[u8]) -> std::result::Result<T, DecodeError>,
    ) -> Result<Option<T>> {
        self.get(bucket, key)
            .map(|v| decode(v).map_err(corrupt))
            .transpose()
    }

    fn put(&mut self, bucket: u8, key: Vec<u8>, value: Vec<u8>) {
        self.written[bucket as usize].insert(key.clone(), self.changes.len());
        self.changes
            .push(Change::Op(Op::Put { bucket, key, value }));
    }

    /// Deletes `key`; true if it existed.
    fn delete(&mut self, bucket: u8, key: Vec<u8>) -> bool {
        if self.get(bucket, &key).is_none() {
            return false;
        }
        self.written[bucket as usize].insert(key.clone(), self.changes.len());
        self.changes.push(Change::Op(Op::Delete { bucket, key }));
        true
    }

    // Committed-state reads for adapters built inside the crate. Peer
    // changes are resolved at commit, so these never see this transaction's
    // own peer writes (generic keys, read with `get`, do).

    /// The stored peer, as committed before this transaction.
    #[cfg(any(feature = "grammers", feature = "ferogram"))]
    pub(crate) fn stored_peer(&self, id: PeerId) -> Result<Option<Peer>> {
        let key = peer_key(self.account.number, id.bot_api());
        self.st
            .peers
            .record(key)?
            .map(|r| record_peer(&r))
            .transpose()
    }

    /// [`Transaction::stored_peer`] without the names, usernames and phone
    /// (left empty): what the grammers adapter answers from, checked as
    /// fully, with no allocation.
    #[cfg(feature = "grammers")]
    pub(crate) fn stored_peer_kind(&self, id: PeerId) -> Result<Option<Peer>> {
        let key = peer_key(self.account.number, id.bot_api());
        let Some(r) = self.st.peers.record(key)? else {
            return Ok(None);
        };
        let mut p = Peer::new(id);
        p.access_hash = r.access_hash();
        p.min = r.is_min();
        if !r.tail().is_empty() {
            (p.is_bot, p.is_self, p.channel_kind) =
                Peer::decode_tail_kind(r.tail()).map_err(corrupt)?;
        }
        Ok(Some(p))
    }

    /// Every peer of the account, as committed before this transaction, by
    /// Bot API id ascending.
    #[cfg(any(feature = "grammers", feature = "migrate", feature = "ferogram"))]
    pub(crate) fn stored_peers(&self) -> Result<Vec<Peer>> {
        let mut keys = self.st.peers.peer_keys(Some(self.account.number))?;
        keys.sort_unstable_by_key(|&k| crate::format::peer_record::split_key(k).1);
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            if let Some(r) = self.st.peers.record(k)? {
                out.push(record_peer(&r)?);
            }
        }
        Ok(out)
    }

    /// Every committed channel state, by channel id ascending.
    #[cfg(any(feature = "grammers", feature = "migrate", feature = "ferogram"))]
    pub(crate) fn stored_channel_states(&self) -> Result<Vec<ChannelState>> {
        prefixed(self.st, STATE, &self.key(T_CHANNEL, &[]))
            .map(|(_, v)| ChannelState::decode(v).map_err(corrupt))
            .collect()
    }

    /// Every committed DC auth, by `dc_id` ascending.
    #[cfg(any(feature = "grammers", feature = "migrate", feature = "ferogram"))]
    pub(crate) fn stored_dc_auths(&self) -> Result<Vec<DcAuth>> {
        prefixed(self.st, SESSION, &self.key(T_DC, &[]))
            .map(|(_, v)| DcAuth::decode(v).map_err(corrupt))
            .collect()
    }

    /// Every committed metadata entry whose key starts with `prefix`, in key
    /// order, keys without the prefix.
    #[cfg(any(feature = "grammers", feature = "migrate", feature = "ferogram"))]
    pub(crate) fn stored_meta_prefix(&self, prefix: &str) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let p = self.meta_key(prefix)?;
        Ok(prefixed(self.st, META, &p)
            .map(|(k, v)| (k[p.len()..].to_vec(), v.to_vec()))
            .collect())
    }

    // Session.

    /// See [`Storage::session`].
    pub fn session(&self) -> Result<Option<Session>> {
        self.decode(SESSION, &self.key(T_SESSION, &[]), Session::decode)
    }
    /// See [`Storage::save_session`].
    pub fn save_session(&mut self, session: &Session) -> Result<()> {
        self.sync = true;
        self.put(SESSION, self.key(T_SESSION, &[]), session.encode());
        Ok(())
    }
    /// See [`Storage::delete_session`].
    pub fn delete_session(&mut self) -> Result<bool> {
        self.sync = true;
        Ok(self.delete(SESSION, self.key(T_SESSION, &[])))
    }
    /// See [`Storage::dc_auth`].
    pub fn dc_auth(&self, dc_id: i32) -> Result<Option<DcAuth>> {
        self.decode(SESSION, &self.key(T_DC, &flip32(dc_id)), DcAuth::decode)
    }
    /// See [`Storage::save_dc_auth`].
    pub fn save_dc_auth(&mut self, auth: &DcAuth) -> Result<()> {
        self.sync = true;
        self.put(SESSION, self.key(T_DC, &flip32(auth.dc_id)), auth.encode());
        Ok(())
    }
    /// See [`Storage::delete_dc_auth`].
    pub fn delete_dc_auth(&mut self, dc_id: i32) -> Result<bool> {
        self.sync = true;
        Ok(self.delete(SESSION, self.key(T_DC, &flip32(dc_id))))
    }

    // Peers.

    /// See [`Storage::save_peers`]; merged and resolved at commit.
    pub fn save_peers(&mut self, peers: &[Peer]) -> Result<()> {
        let n = self.account.number;
        // All or none: a peer the format cannot hold fails the whole call.
        let mut records = RecordList::with_capacity(peers.len());
        let mut buf = Vec::new();
        for p in peers {
            buf = peer_record(buf, n, p)?;
            records.push(&buf);
        }
        self.changes.push(Change::Peers(records));
        Ok(())
    }
    /// See [`Storage::save_peer`].
    pub fn save_peer(&mut self, peer: &Peer) -> Result<()> {
        self.save_peers(std::slice::from_ref(peer))
    }
    /// Deletes a peer at commit (nothing if it does not exist then).
    pub fn delete_peer(&mut self, id: PeerId) -> Result<()> {
        self.changes.push(Change::DeletePeer(peer_key(
            self.account.number,
            id.bot_api(),
        )));
        Ok(())
    }

    // Update state.

    /// See [`Storage::update_state`].
    pub fn update_state(&self) -> Result<Option<UpdateState>> {
        self.decode(STATE, &self.key(T_UPDATE, &[]), UpdateState::decode)
    }
    /// See [`Storage::save_update_state`].
    pub fn save_update_state(&mut self, state: &UpdateState) -> Result<()> {
        self.put(STATE, self.key(T_UPDATE, &[]), state.encode());
        Ok(())
    }
    /// See [`Storage::channel_pts`].
    pub fn channel_pts(&self, channel_id: i64) -> Result<Option<i32>> {
        check_channel_id(channel_id)?;
        let s = self.decode(
            STATE,
            &self.key(T_CHANNEL, &flip64(channel_id)),
            ChannelState::decode,
        )?;
        Ok(s.map(|s| s.pts))
    }
    /// See [`Storage::save_channel_pts`].
    pub fn save_channel_pts(&mut self, channel_id: i64, pts: i32) -> Result<()> {
        check_channel_id(channel_id)?;
        let v = ChannelState { channel_id, pts }.encode();
        self.put(STATE, self.key(T_CHANNEL, &flip64(channel_id)), v);
        Ok(())
    }
    /// See [`Storage::delete_channel_state`].
    pub fn delete_channel_state(&mut self, channel_id: i64) -> Result<bool> {
        Ok(self.delete(STATE, self.key(T_CHANNEL, &flip64(channel_id))))
    }

    // Dedup.

    /// See [`Storage::has_dedup_key`].
    pub fn has_dedup_key(&self, key: &[u8]) -> Result<bool> {
        check_len("dedup key", key)?;
        Ok(self.get(DEDUP, &self.key(T_DEDUP_KEY, key)).is_some())
    }

    /// See [`Storage::insert_dedup_key`]. Drops the oldest keys first when
    /// [`Options::dedup_max_keys`] is reached, and every key older than
    /// [`Options::dedup_max_age`].
    pub fn insert_dedup_key(&mut self, key: &[u8]) -> Result<bool> {
        check_len("dedup key", key)?;
        let k = self.key(T_DEDUP_KEY, key);
        if self.get(DEDUP, &k).is_some() {
            return Ok(false);
        }
        let opts = &self.account.store.inner.opts;
        let max = opts.dedup_max_keys.max(1) as u64;
        let now = unix_now();
        let cutoff = opts
            .dedup_max_age
            .map(|a| now.saturating_sub(i64::try_from(a.as_secs()).unwrap_or(i64::MAX)));
        let (mut first, next) = self.dedup_range()?;
        while first < next {
            let order = self.key(T_DEDUP_ORDER, &first.to_be_bytes());
            let Some(v) = self.get(DEDUP, &order) else {
                first += 1;
                continue;
            };
            let at = v
                .first_chunk::<8>()
                .map(|b| i64::from_le_bytes(*b))
                .ok_or_else(|| {
                    corrupt(DecodeError {
                        what: "dedup entry",
                    })
                })?;
            if next - first < max && cutoff.is_none_or(|c| at >= c) {
                break;
            }
            let old = self.key(T_DEDUP_KEY, &v[8..]);
            self.delete(DEDUP, old);
            self.delete(DEDUP, order);
            first += 1;
        }
        let mut entry = Vec::with_capacity(8 + key.len());
        entry.extend_from_slice(&now.to_le_bytes());
        entry.extend_from_slice(key);
        self.put(DEDUP, k, next.to_le_bytes().to_vec());
        self.put(DEDUP, self.key(T_DEDUP_ORDER, &next.to_be_bytes()), entry);
        self.dedup = Some((first, next + 1));
        Ok(true)
    }

    /// Live dedup sequence numbers as `first..next`.
    fn dedup_range(&self) -> Result<(u64, u64)> {
        if let Some(r) = self.dedup {
            return Ok(r);
        }
        let mut live = prefixed(self.st, DEDUP, &self.key(T_DEDUP_ORDER, &[]));
        let Some((first, _)) = live.next() else {
            return Ok((0, 0));
        };
        let first = seq_of(first)?;
        let last = match live.next_back() {
            Some((k, _)) => seq_of(k)?,
            None => first,
        };
        Ok((first, last + 1))
    }

    // Queue.

    /// See [`Storage::enqueue`].
    pub fn enqueue(&mut self, id: &str, payload: &[u8]) -> Result<bool> {
        check_len("queue id", id.as_bytes())?;
        let ik = self.key(T_QUEUE_ID, id.as_bytes());
        if self.get(QUEUE, &ik).is_some() {
            return Ok(false);
        }
        self.sync = true;
        let seq = match self.queue_next {
            Some(n) => n,
            None => match prefixed(self.st, QUEUE, &self.key(T_QUEUE, &[])).next_back() {
                Some((k, _)) => seq_of(k)? + 1,
                None => 0,
            },
        };
        let now = unix_now();
        let update = DurableUpdate {
            id: id.to_owned(),
            payload: payload.to_vec(),
            attempts: 0,
            last_error: None,
            created_at: now,
            updated_at: now,
        };
        self.put(QUEUE, ik, seq.to_be_bytes().to_vec());
        self.put(
            QUEUE,
            self.key(T_QUEUE, &seq.to_be_bytes()),
            update.encode(),
        );
        self.queue_next = Some(seq + 1);
        Ok(true)
    }

    /// The queue key of an id, if it is queued.
    fn queued(&self, id: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        check_len("queue id", id.as_bytes())?;
        let ik = self.key(T_QUEUE_ID, id.as_bytes());
        Ok(self.get(QUEUE, &ik).map(|seq| {
            let qk = self.key(T_QUEUE, seq);
            (ik, qk)
        }))
    }

    /// See [`Storage::ack`].
    pub fn ack(&mut self, id: &str) -> Result<bool> {
        let Some((ik, qk)) = self.queued(id)? else {
            return Ok(false);
        };
        self.sync = true;
        self.delete(QUEUE, ik);
        self.delete(QUEUE, qk);
        Ok(true)
    }

    /// See [`Storage::mark_failed`].
    pub fn mark_failed(&mut self, id: &str, error: &str) -> Result<u32> {
        let Some((_, qk)) = self.queued(id)? else {
            return Ok(0);
        };
        let Some(mut u) = self.decode(QUEUE, &qk, DurableUpdate::decode)? else {
            return Err(corrupt(DecodeError {
                what: "queue entry (id without update)",
            }));
        };
        self.sync = true;
        u.attempts = u.attempts.saturating_add(1);
        u.last_error = Some(error.to_owned());
        u.updated_at = unix_now();
        self.put(QUEUE, qk, u.encode());
        Ok(u.attempts)
    }

    // Conversations.

    fn conversation_key(&self, chat_id: i64, user_id: i64) -> Vec<u8> {
        let mut rest = [0u8; 16];
        rest[..8].copy_from_slice(&flip64(chat_id));
        rest[8..].copy_from_slice(&flip64(user_id));
        self.key(T_CONVERSATION, &rest)
    }
    /// See [`Storage::conversation`].
    pub fn conversation(&self, chat_id: i64, user_id: i64) -> Result<Option<Conversation>> {
        check_conversation_ids(chat_id, user_id)?;
        let k = self.conversation_key(chat_id, user_id);
        self.decode(CONVERSATIONS, &k, Conversation::decode)
    }
    /// See [`Storage::save_conversation`].
    pub fn save_conversation(&mut self, conversation: &Conversation) -> Result<()> {
        check_conversation_ids(conversation.chat_id, conversation.user_id)?;
        let k = self.conversation_key(conversation.chat_id, conversation.user_id);
        self.put(CONVERSATIONS, k, conversation.encode());
        Ok(())
    }
    /// See [`Storage::delete_conversation`].
    pub fn delete_conversation(&mut self, chat_id: i64, user_id: i64) -> Result<bool> {
        let k = self.conversation_key(chat_id, user_id);
        Ok(self.delete(CONVERSATIONS, k))
    }

    // Metadata.

    fn meta_key(&self, key: &str) -> Result<Vec<u8>> {
        check_len("meta key", key.as_bytes())?;
        Ok(self.key(T_META, key.as_bytes()))
    }
    /// See [`Storage::meta`].
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.get(META, &self.meta_key(key)?).map(<[u8]>::to_vec))
    }
    /// See [`Storage::set_meta`].
    pub fn set_meta(&mut self, key: &str, value: &[u8]) -> Result<()> {
        let k = self.meta_key(key)?;
        self.put(META, k, value.to_vec());
        Ok(())
    }
    /// See [`Storage::delete_meta`].
    pub fn delete_meta(&mut self, key: &str) -> Result<bool> {
        let k = self.meta_key(key)?;
        Ok(self.delete(META, k))
    }
}

impl Storage for Account {
    fn session(&self) -> Result<Option<Session>> {
        self.view(|tx| tx.session())
    }
    fn save_session(&self, session: &Session) -> Result<()> {
        self.tx(true, |tx| tx.save_session(session))
    }
    fn delete_session(&self) -> Result<bool> {
        self.tx(true, |tx| tx.delete_session())
    }
    fn dc_auth(&self, dc_id: i32) -> Result<Option<DcAuth>> {
        self.view(|tx| tx.dc_auth(dc_id))
    }
    fn save_dc_auth(&self, auth: &DcAuth) -> Result<()> {
        self.tx(true, |tx| tx.save_dc_auth(auth))
    }
    fn dc_auths(&self) -> Result<Vec<DcAuth>> {
        self.scan(SESSION, T_DC, usize::MAX, DcAuth::decode)
    }
    fn delete_dc_auth(&self, dc_id: i32) -> Result<bool> {
        self.tx(true, |tx| tx.delete_dc_auth(dc_id))
    }

    fn save_peers(&self, peers: &[Peer]) -> Result<()> {
        self.tx(false, |tx| tx.save_peers(peers))
    }
    fn peer(&self, id: PeerId) -> Result<Option<Peer>> {
        let key = peer_key(self.number, id.bot_api());
        self.store
            .read(|st| st.peers.record(key)?.map(|r| record_peer(&r)).transpose())
    }
    fn delete_peer(&self, id: PeerId) -> Result<bool> {
        self.tx(false, |tx| {
            let existed = tx
                .st
                .peers
                .record(peer_key(self.number, id.bot_api()))?
                .is_some();
            tx.delete_peer(id)?;
            Ok(existed)
        })
    }
    fn peers(&self) -> Result<Vec<Peer>> {
        self.store.read(|st| {
            let mut keys = st.peers.peer_keys(Some(self.number))?;
            keys.sort_unstable_by_key(|&k| crate::format::peer_record::split_key(k).1);
            let mut out = Vec::with_capacity(keys.len());
            for k in keys {
                if let Some(r) = st.peers.record(k)? {
                    out.push(record_peer(&r)?);
                }
            }
            Ok(out)
        })
    }
    fn peer_count(&self) -> Result<u64> {
        self.store.peer_record_count(self.number)
    }
    #[inline]
    fn access_hash(&self, id: PeerId) -> Result<Option<i64>> {
        self.store.peer_hash_only(self.number, id.bot_api())
    }
    fn peer_by_username(&self, username: &str) -> Result<Option<Peer>> {
        match normalize_username(username) {
            Some(name) => self.peer_at(NameKind::Username, name),
            None => Ok(None),
        }
    }
    fn peer_by_phone(&self, phone: &str) -> Result<Option<Peer>> {
        match normalize_phone(phone) {
            Some(p) => self.peer_at(NameKind::Phone, &p),
            None => Ok(None),
        }
    }
    fn resolve_username(&self, username: &str) -> Result<Option<(PeerId, Option<i64>)>> {
        let Some(name) = normalize_username(username) else {
            return Ok(None);
        };
        Ok(self
            .store
            .resolve_username(self.number, name)?
            .and_then(|(id, h)| Some((PeerId::from_bot_api(id)?, h))))
    }

    fn update_state(&self) -> Result<Option<UpdateState>> {
        self.view(|tx| tx.update_state())
    }
    fn save_update_state(&self, state: &UpdateState) -> Result<()> {
        self.tx(false, |tx| tx.save_update_state(state))
    }
    fn channel_pts(&self, channel_id: i64) -> Result<Option<i32>> {
        self.view(|tx| tx.channel_pts(channel_id))
    }
    fn save_channel_pts(&self, channel_id: i64, pts: i32) -> Result<()> {
        self.tx(false, |tx| tx.save_channel_pts(channel_id, pts))
    }
    fn channel_states(&self) -> Result<Vec<ChannelState>> {
        self.scan(STATE, T_CHANNEL, usize::MAX, ChannelState::decode)
    }
    fn delete_channel_state(&self, channel_id: i64) -> Result<bool> {
        self.tx(false, |tx| tx.delete_channel_state(channel_id))
    }
    fn save_peers_and_state(
        &self,
        peers: &[Peer],
        state: Option<&UpdateState>,
        channels: &[ChannelState],
    ) -> Result<()> {
        self.tx(false, |tx| {
            tx.save_peers(peers)?;
            if let Some(s) = state {
                tx.save_update_state(s)?;
            }
            for c in channels {
                tx.save_channel_pts(c.channel_id, c.pts)?;
            }
            Ok(())
        })
    }

    fn insert_dedup_key(&self, key: &[u8]) -> Result<bool> {
        // Saves a writer lock round trip for keys already seen.
        if self.has_dedup_key(key)? {
            return Ok(false);
        }
        self.tx(false, |tx| tx.insert_dedup_key(key))
    }
    fn has_dedup_key(&self, key: &[u8]) -> Result<bool> {
        self.view(|tx| tx.has_dedup_key(key))
    }

    fn enqueue(&self, id: &str, payload: &[u8]) -> Result<bool> {
        self.tx(true, |tx| tx.enqueue(id, payload))
    }
    fn pending(&self, limit: usize) -> Result<Vec<DurableUpdate>> {
        self.scan(QUEUE, T_QUEUE, limit, DurableUpdate::decode)
    }
    fn ack(&self, id: &str) -> Result<bool> {
        self.tx(true, |tx| tx.ack(id))
    }
    fn mark_failed(&self, id: &str, error: &str) -> Result<u32> {
        self.tx(true, |tx| tx.mark_failed(id, error))
    }

    fn conversation(&self, chat_id: i64, user_id: i64) -> Result<Option<Conversation>> {
        self.view(|tx| tx.conversation(chat_id, user_id))
    }
    fn save_conversation(&self, conversation: &Conversation) -> Result<()> {
        self.tx(false, |tx| tx.save_conversation(conversation))
    }
    fn delete_conversation(&self, chat_id: i64, user_id: i64) -> Result<bool> {
        self.tx(false, |tx| tx.delete_conversation(chat_id, user_id))
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.view(|tx| tx.meta(key))
    }
    fn set_meta(&self, key: &str, value: &[u8]) -> Result<()> {
        self.tx(false, |tx| tx.set_meta(key, value))
    }
    fn delete_meta(&self, key: &str) -> Result<bool> {
        self.tx(false, |tx| tx.delete_meta(key))
    }
}

// --- Copies between backends (feature `postgres`) -------------------------

/// What an account holds that [`Storage`] cannot list: dedup keys
/// (inserted at, key; oldest first), conversations, metadata entries.
#[cfg(feature = "postgres")]
pub(crate) type Extras = (
    Vec<(i64, Vec<u8>)>,
    Vec<Conversation>,
    Vec<(Vec<u8>, Vec<u8>)>,
);

#[cfg(feature = "postgres")]
impl Account {
    /// The account's [`Extras`], from one consistent view.
    pub(crate) fn extras(&self) -> Result<Extras> {
        self.store.read(|st| {
            let dedup = prefixed(st, DEDUP, &self.key(T_DEDUP_ORDER, &[]))
                .map(|(_, v)| {
                    let v: &[u8] = v;
                    let at = v.first_chunk::<8>().map(|b| i64::from_le_bytes(*b));
                    at.map(|at| (at, v[8..].to_vec())).ok_or_else(|| {
                        corrupt(DecodeError {
                            what: "dedup entry",
                        })
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let conversations = prefixed(st, CONVERSATIONS, &self.key(T_CONVERSATION, &[]))
                .map(|(_, v)| Conversation::decode(v).map_err(corrupt))
                .collect::<Result<Vec<_>>>()?;
            let prefix = self.key(T_META, &[]);
            let meta = prefixed(st, META, &prefix)
                .map(|(k, v)| (k[prefix.len()..].to_vec(), v.to_vec()))
                .collect();
            Ok((dedup, conversations, meta))
        })
    }
}

#[cfg(feature = "postgres")]
impl Transaction<'_> {
    /// Adds a dedup key with its original insertion time, after every
    /// live one, without a retention pass (copies between backends).
    pub(crate) fn import_dedup_key(&mut self, at: i64, key: &[u8]) -> Result<()> {
        check_len("dedup key", key)?;
        let k = self.key(T_DEDUP_KEY, key);
        if self.get(DEDUP, &k).is_some() {
            return Ok(());
        }
        let (first, next) = self.dedup_range()?;
        let mut entry = Vec::with_capacity(8 + key.len());
        entry.extend_from_slice(&at.to_le_bytes());
        entry.extend_from_slice(key);
        self.put(DEDUP, k, next.to_le_bytes().to_vec());
        self.put(DEDUP, self.key(T_DEDUP_ORDER, &next.to_be_bytes()), entry);
        self.dedup = Some((first, next + 1));
        Ok(())
    }

    /// Queues an update with its attempts, last error and times (copies
    /// between backends); false if its id is already queued.
    pub(crate) fn import_queued(&mut self, u: &DurableUpdate) -> Result<bool> {
        if !self.enqueue(&u.id, &u.payload)? {
            return Ok(false);
        }
        let seq = self.queue_next.map_or(0, |n| n - 1);
        self.put(QUEUE, self.key(T_QUEUE, &seq.to_be_bytes()), u.encode());
        Ok(true)
    }
}

// --- Memory backend ------------------------------------------------------

/// The memory backend: a [`Storage`] with nothing on disk, for tests and
/// short-lived clients. It is one account of an in-memory [`Store`], so it
/// behaves exactly like a file-backed [`Account`] (durability aside).
///
/// ```
/// use peerlog::{MemoryStorage, Storage};
/// let mem = MemoryStorage::new();
/// assert!(mem.enqueue("u1", b"payload")?);
/// assert!(!mem.enqueue("u1", b"payload")?);
/// assert_eq!(mem.pending(10)?.len(), 1);
/// # Ok::<(), peerlog::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct MemoryStorage {
    account: Account,
}

impl MemoryStorage {
    /// An empty memory storage with default [`Options`].
    pub fn new() -> Self {
        Self::from_store(Store::memory()).expect("a fresh in-memory store has room for an account")
    }

    /// An empty memory storage with `opts` (e.g. a small
    /// [`Options::dedup_max_keys`]). Durability settings only decide when
    /// the in-memory image counts as synced.
    pub fn with_options(opts: Options) -> Result<Self> {
        Self::from_store(Store::open_backend(Arc::new(MemFile::new()), opts)?)
    }

    fn from_store(store: Store) -> Result<Self> {
        Ok(MemoryStorage {
            account: store.account("default")?,
        })
    }

    /// The account behind it, e.g. for [`Account::write`].
    pub fn account(&self) -> &Account {
        &self.account
    }
}

impl Default for MemoryStorage {
    fn default() -> Self {
        Self::new()
    }
}

macro_rules! forward {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        impl Storage for MemoryStorage {
            $(
                #[inline]
                fn $name(&self, $($arg: $ty),*) -> Result<$ret> {
                    self.account.$name($($arg),*)
                }
            )*
        }
    };
}

forward! {
    session() -> Option<Session>;
    save_session(session: &Session) -> ();
    delete_session() -> bool;
    dc_auth(dc_id: i32) -> Option<DcAuth>;
    save_dc_auth(auth: &DcAuth) -> ();
    dc_auths() -> Vec<DcAuth>;
    delete_dc_auth(dc_id: i32) -> bool;
    save_peers(peers: &[Peer]) -> ();
    save_peer(peer: &Peer) -> ();
    peer(id: PeerId) -> Option<Peer>;
    delete_peer(id: PeerId) -> bool;
    peers() -> Vec<Peer>;
    peer_count() -> u64;
    access_hash(id: PeerId) -> Option<i64>;
    peer_by_username(username: &str) -> Option<Peer>;
    peer_by_phone(phone: &str) -> Option<Peer>;
    resolve_username(username: &str) -> Option<(PeerId, Option<i64>)>;
    update_state() -> Option<UpdateState>;
    save_update_state(state: &UpdateState) -> ();
    channel_pts(channel_id: i64) -> Option<i32>;
    save_channel_pts(channel_id: i64, pts: i32) -> ();
    channel_states() -> Vec<ChannelState>;
    delete_channel_state(channel_id: i64) -> bool;
    save_peers_and_state(
        peers: &[Peer],
        state: Option<&UpdateState>,
        channels: &[ChannelState]
    ) -> ();
    insert_dedup_key(key: &[u8]) -> bool;
    has_dedup_key(key: &[u8]) -> bool;
    enqueue(id: &str, payload: &[u8]) -> bool;
    pending(limit: usize) -> Vec<DurableUpdate>;
    ack(id: &str) -> bool;
    mark_failed(id: &str, error: &str) -> u32;
    conversation(chat_id: i64, user_id: i64) -> Option<Conversation>;
    save_conversation(conversation: &Conversation) -> ();
    delete_conversation(chat_id: i64, user_id: i64) -> bool;
    meta(key: &str) -> Option<Vec<u8>>;
    set_meta(key: &str, value: &[u8]) -> ();
    delete_meta(key: &str) -> bool;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored dedup-order or queue key with a sequence number of
    /// `u64::MAX` (only damage, with valid checksums, makes one) used to
    /// overflow `seq + 1` on the next insert; it is corruption instead.
    #[test]
    fn sequence_numbers_from_damaged_keys_do_not_overflow() {
        let store = Store::memory();
        let a = store.account("a").unwrap();
        let damaged = |bucket: u8, tag: u8| {
            store
                .transact(false, |_| {
                    Ok((
                        vec![Change::Op(Op::Put {
                            bucket,
                            key: a.key(tag, &u64::MAX.to_be_bytes()),
                            value: vec![0; 9],
                        })],
                        (),
                    ))
                })
                .unwrap()
        };
        damaged(QUEUE, T_QUEUE);
        damaged(DEDUP, T_DEDUP_ORDER);
        assert!(matches!(a.enqueue("x", b"p"), Err(Error::Corrupt { .. })));
        assert!(matches!(
            a.insert_dedup_key(b"k"),
            Err(Error::Corrupt { .. })
        ));
    }
}
