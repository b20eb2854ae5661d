//! A [`grammers_session::Session`] backed by a peerlog account (feature
//! `grammers`): the pure-Rust replacement for grammers' libsql storage.
//!
//! ```
//! use std::sync::Arc;
//! use grammers_session::Session;
//! use grammers_session::types::{PeerAuth, PeerId, PeerInfo};
//! use peerlog::grammers::PeerlogSession;
//!
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("bot.peerlog");
//! // Before: Arc::new(SqliteSession::open("bot.session").await?)
//! let session = Arc::new(PeerlogSession::open(&path)?);
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! assert_eq!(session.home_dc_id()?, 2);
//! session
//!     .cache_peer(PeerInfo::User { id: 7, auth: Some(PeerAuth::from_hash(77)), bot: Some(false), is_self: Some(true) })
//!     .await?;
//! let me = session.peer_ref(PeerId::self_user()).await?.unwrap();
//! assert_eq!(me.auth, PeerAuth::from_hash(77));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Semantics
//!
//! The answers equal those of grammers' own storages (`MemorySession`,
//! `SqliteSession`), call for call:
//! - [`home_dc_id`](Session::home_dc_id) and
//!   [`dc_option`](Session::dc_option) answer from memory (loaded at open):
//!   DC 2 and the five statically known options until set.
//!   [`set_home_dc_id`](Session::set_home_dc_id) and
//!   [`set_dc_option`](Session::set_dc_option) are durable (fsynced) before
//!   their future resolves, whatever the store's [`crate::Durability`].
//! - [`cache_peer`](Session::cache_peer) /
//!   [`cache_peers`](Session::cache_peers) merge with
//!   [`PeerInfo::extend_info`]: a known field is never erased by an unknown
//!   one. A batch is one atomic commit, and a batch that changes nothing
//!   (the common case: the same users and chats in update after update)
//!   takes no writer lock and writes nothing.
//! - [`PeerId::self_user`](GPeerId::self_user) queries answer the user
//!   most recently cached with `is_self: Some(true)`; if that user is later
//!   cached with `is_self: Some(false)`, the lowest-id user still marked
//!   self answers, if any. grammers' `MemorySession` never answers them,
//!   and `SqliteSession` answers the lowest-id user marked self: with one
//!   self user, as a signed-in client has, it agrees.
//! - Update state: [`UpdateState::All`](GUpdateState::All) replaces
//!   everything (channels not listed are forgotten), `Primary`,
//!   `Secondary` and `Channel` change only their part. `channels` come back
//!   by channel id ascending (as from `SqliteSession`; `MemorySession`
//!   keeps the order of the last changes); `All` with a channel listed
//!   twice keeps the last pts.
//!
//! No future blocks the thread that polls it on the disk. The writing
//! calls commit when called and their future then waits, if the call is
//! durable (`set_home_dc_id`, `set_dc_option`, and every write of a store
//! opened with [`crate::Durability::Immediate`]), for the fsync run by the
//! store's sync thread, shared with every other waiter
//! ([`Account::write_async`]); in Batched mode the others are synced by
//! the background flusher within the window. The reads resolve on their
//! first poll. No particular runtime is needed.
//!
//! # Where grammers' data lives
//!
//! Everything is in the peerlog [`Account`], so the same data is readable
//! through [`Storage`]:
//! - home DC: [`Session::dc_id`](crate::Session::dc_id) of the account's
//!   session, which also mirrors the home DC's IPv4 address, port and auth
//!   key (so e.g. [`crate::Session::to_telethon_string`] exports it);
//! - auth keys: one [`DcAuth`] per DC that has one (its IPv4 address and
//!   port too, and the server salt is kept when grammers rewrites the key);
//! - DC addresses: grammers keeps an IPv4 *and* an IPv6 socket address per
//!   DC, with or without a key, and [`DcAuth`] has room for one address and
//!   needs a key, so both addresses are in the metadata key
//!   `grammers/dc/<id>`;
//! - peers: in the peer table as [`Peer`]s (access hash, `is_bot`,
//!   `is_self`, `channel_kind`; names, usernames and phones written through
//!   [`Storage`] are kept). `Peer` has plain booleans and no "community"
//!   channel kind, so the cases it cannot say (`bot: None`,
//!   `is_self: None`, [`ChannelKind::Community`](GChannelKind::Community))
//!   are one byte in the metadata key `grammers/mark/<bot api id>`, written
//!   only for peers that need it. A `true` in the `Peer` always wins over a
//!   mark, so a later write through [`Storage`] is never hidden by one.
//!   Monoforum channels have ids outside every range of [`PeerId`]; they
//!   are kept whole in `grammers/peer/<bot api id>`;
//! - the self user: [`Session::user_id`](crate::Session::user_id) (and
//!   `is_bot`);
//! - update state: [`UpdateState`] and the per-channel pts.
//!
//! A peer with a `min` access hash (saved through [`Storage`]) has
//! `auth: None` for grammers, as grammers' own `From<tl::types::User>` does.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4, SocketAddrV6};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use grammers_session::types::{
    ChannelKind as GChannelKind, ChannelState as GChannelState, DcOption, PeerAuth,
    PeerId as GPeerId, PeerInfo, PeerKind as GPeerKind, PeerRef, UpdateState as GUpdateState,
    UpdatesState,
};
use grammers_session::{BoxFuture, Session, SessionData};
use parking_lot::{Mutex, RwLock};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::Durable;
use crate::account::{Account, Transaction};
use crate::engine::options::Options;
use crate::engine::store::Store;
use crate::error::{Error, Result};
use crate::format::codec::{DecodeError, Reader, Writer};
use crate::format::peer_record::MIN;
use crate::grammers_meta::{DC_PREFIX, dc_key, decode_dc_addrs, encode_dc_addrs};
use crate::session::{AuthKey, DcAuth, Session as PeerlogSessionRecord};
use crate::types::{
    ChannelKind, Peer, PeerId, PeerKind, UpdateState, normalize_phone, normalize_username,
};

#[cfg(doc)]
use crate::Storage;

/// The account [`PeerlogSession::open`] uses in its file.
pub const ACCOUNT: &str = "default";
/// The home DC of a new session, as in grammers.
pub const DEFAULT_DC: i32 = 2;

const MARK_PREFIX: &str = "grammers/mark/";
const PEER_PREFIX: &str = "grammers/peer/";

/// Mark bits: what a [`Peer`] cannot say.
const BOT_UNKNOWN: u8 = 1;
const SELF_UNKNOWN: u8 = 2;
const COMMUNITY: u8 = 4;
const MARK_BITS: u8 = BOT_UNKNOWN | SELF_UNKNOWN | COMMUNITY;

/// A grammers [`Session`] stored in one account of a peerlog file.
///
/// Cheap to share: hold it as `Arc<PeerlogSession>` (or erase it with
/// `grammers_session::storages::erase`), as grammers' client does.
pub struct PeerlogSession {
    account: Account,
    dc: RwLock<DcCache>,
    /// Serializes DC writes, so the cache follows the commit order.
    dc_writes: Mutex<()>,
    marked: Marked,
}

/// Bot API ids of the peers that may carry a mark: every one marked since
/// the session was opened (a superset that never shrinks while open, so
/// that a check inside a read's view is never stale). Marks are rare, and
/// most lookups skip the metadata read.
#[derive(Default)]
struct Marked {
    ids: RwLock<HashSet<i64>>,
    /// True once any id was added: most sessions never mark a peer, and
    /// their reads then skip the lock and the hash.
    any: AtomicBool,
}

impl Marked {
    fn new(ids: HashSet<i64>) -> Marked {
        Marked {
            any: AtomicBool::new(!ids.is_empty()),
            ids: RwLock::new(ids),
        }
    }

    fn may_have(&self, bot_api_id: i64) -> bool {
        self.any.load(Ordering::Acquire) && self.ids.read().contains(&bot_api_id)
    }

    /// Called before the commit that writes the mark.
    fn add(&self, bot_api_id: i64) {
        if !self.may_have(bot_api_id) {
            self.ids.write().insert(bot_api_id);
            self.any.store(true, Ordering::Release);
        }
    }
}

struct DcCache {
    home: i32,
    options: HashMap<i32, DcOption>,
}

impl std::fmt::Debug for PeerlogSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerlogSession")
            .field("account", &self.account)
            .field("home_dc", &self.dc.read().home)
            .finish_non_exhaustive()
    }
}

impl PeerlogSession {
    /// Opens (or creates) the peerlog file at `path` with default
    /// [`Options`] and uses its account [`ACCOUNT`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, Options::default())
    }

    /// [`PeerlogSession::open`] with explicit [`Options`].
    pub fn open_with(path: impl AsRef<Path>, opts: Options) -> Result<Self> {
        Self::from_account(Store::open_with(path, opts)?.account(ACCOUNT)?)
    }

    /// A session in a fresh in-memory store (nothing on disk).
    pub fn memory() -> Result<Self> {
        Self::from_account(Store::memory().account(ACCOUNT)?)
    }

    /// A session over any account, e.g. one account per bot in a shared
    /// file. Reads the home DC and the DC options into memory.
    ///
    /// An account that already holds a [`crate::Session`] and [`DcAuth`]s
    /// (imported from a Telethon, Pyrogram or GramJS session string, say)
    /// is usable as it is: its DC and auth keys become grammers' home DC
    /// and DC options.
    ///
    /// Use one `PeerlogSession` per account at a time: like grammers'
    /// `SqliteSession`, it keeps the DC options in memory (and which peers
    /// carry a mark), so a second one would not see the first's writes.
    /// Reads and writes through [`Storage`] on the same account are fine.
    pub fn from_account(account: Account) -> Result<Self> {
        let (dc, marked) = account.view(|tx| {
            let marked = tx
                .stored_meta_prefix(MARK_PREFIX)?
                .into_iter()
                .map(|(k, _)| parse_id(&k))
                .collect::<Result<HashSet<i64>>>()?;
            Ok((load_dc(tx)?, marked))
        })?;
        Ok(PeerlogSession {
            account,
            dc: RwLock::new(dc),
            dc_writes: Mutex::new(()),
            marked: Marked::new(marked),
        })
    }

    /// The account behind the session.
    pub fn account(&self) -> &Account {
        &self.account
    }

    /// Everything grammers stored, as a [`SessionData`] (to move it to
    /// another storage with [`SessionData::import_to`], or to compare).
    pub fn export(&self) -> Result<SessionData> {
        let (home_dc, dc_options) = {
            let c = self.dc.read();
            (c.home, c.options.clone())
        };
        self.account.view(|tx| {
            let marks: HashMap<i64, u8> = tx
                .stored_meta_prefix(MARK_PREFIX)?
                .into_iter()
                .map(|(k, v)| Ok((parse_id::<i64>(&k)?, decode_marks(&v)?)))
                .collect::<Result<_>>()?;
            let mut peer_infos = HashMap::new();
            for p in tx.stored_peers()? {
                let info = info_of(&p, marks.get(&p.id.bot_api()).copied().unwrap_or(0));
                peer_infos.insert(info.id(), info);
            }
            for (k, v) in tx.stored_meta_prefix(PEER_PREFIX)? {
                let id = GPeerId::from_bot_api_dialog_id(parse_id(&k)?)
                    .ok_or_else(|| bad("grammers peer key"))?;
                peer_infos.insert(id, decode_info(&v, id)?);
            }
            Ok(SessionData {
                home_dc,
                dc_options,
                peer_infos,
                updates_state: read_state(tx)?,
            })
        })
    }

    /// Imports a [`SessionData`] (e.g. read from grammers' SQLite or memory
    /// session) in one atomic, durable commit. The result is the same as
    /// [`SessionData::import_to`], which makes one call per DC and per peer.
    pub fn import(&self, data: &SessionData) -> Result<()> {
        let _order = self.dc_writes.lock();
        let home_opt = data
            .dc_options
            .get(&data.home_dc)
            .or(self.dc.read().options.get(&data.home_dc))
            .cloned();
        let mut options: Vec<&DcOption> = data.dc_options.values().collect();
        options.sort_by_key(|o| o.id);
        let mut infos: Vec<&PeerInfo> = data.peer_infos.values().collect();
        infos.sort_by_key(|i| i.id().bot_api_dialog_id());
        self.account.write(|tx| {
            write_home(tx, data.home_dc, home_opt.as_ref())?;
            for o in &options {
                write_dc_option(tx, o, data.home_dc)?;
            }
            let home = (data.home_dc, home_opt.as_ref());
            write_peers(tx, &self.marked, infos.iter().copied(), home)?;
            write_state(tx, GUpdateState::All(data.updates_state.clone()))
        })?;
        // Durable even when the data has no DC option (whose writes sync).
        self.account.store().sync()?;
        let mut c = self.dc.write();
        c.home = data.home_dc;
        for o in options {
            c.options.insert(o.id, o.clone());
        }
        Ok(())
    }

    // --- The trait's work, synchronously --------------------------------

    fn save_home_dc(&self, dc_id: i32) -> Durable<()> {
        let _order = self.dc_writes.lock();
        let opt = self.dc.read().options.get(&dc_id).cloned();
        let done = self
            .account
            .write_async(|tx| write_home(tx, dc_id, opt.as_ref()));
        if done.committed() {
            self.dc.write().home = dc_id;
        }
        done
    }

    fn save_dc_option(&self, option: &DcOption) -> Durable<()> {
        let _order = self.dc_writes.lock();
        let home = self.dc.read().home;
        let done = self
            .account
            .write_async(|tx| write_dc_option(tx, option, home));
        if done.committed() {
            self.dc.write().options.insert(option.id, option.clone());
        }
        done
    }

    fn info(&self, id: GPeerId) -> Result<Option<PeerInfo>> {
        self.account.view(|tx| match id.bot_api_dialog_id() {
            None => self_info(tx, &self.marked),
            Some(_) => read_info(tx, &self.marked, id),
        })
    }

    fn peer_ref_of(&self, id: GPeerId) -> Result<Option<PeerRef>> {
        let auth = match id.bot_api_dialog_id().and_then(PeerId::from_bot_api) {
            // The hot path: the access hash and flags straight from the
            // peer index, without decoding the record.
            Some(pid) => self
                .account
                .peer_hash(pid)?
                .and_then(|(hash, flags)| match id.kind() {
                    GPeerKind::Chat => Some(PeerAuth::default()),
                    _ if flags & MIN != 0 => None,
                    _ => hash.map(PeerAuth::from_hash),
                }),
            None => self.info(id)?.and_then(|i| i.auth()),
        };
        Ok(auth.map(|auth| PeerRef { id, auth }))
    }

    fn cache(&self, infos: &[PeerInfo]) -> Durable<()> {
        match self.account.view(|tx| needs_write(tx, &self.marked, infos)) {
            _ if infos.is_empty() => return Durable::new(Ok(()), None),
            Ok(false) => return Durable::new(Ok(()), None),
            Err(e) => return Durable::new(Err(e), None),
            Ok(true) => {}
        }
        let (home, home_opt) = {
            let c = self.dc.read();
            (c.home, c.options.get(&c.home).cloned())
        };
        self.account.write_async(|tx| {
            write_peers(tx, &self.marked, infos.iter(), (home, home_opt.as_ref()))
        })
    }

    fn updates(&self) -> Result<UpdatesState> {
        self.account.view(read_state)
    }

    fn save_update(&self, update: GUpdateState) -> Durable<()> {
        match self.account.view(|tx| state_unchanged(tx, &update)) {
            Ok(true) => Durable::new(Ok(()), None),
            Err(e) => Durable::new(Err(e), None),
            Ok(false) => self.account.write_async(|tx| write_state(tx, update)),
        }
    }
}

impl Session for PeerlogSession {
    type Error = Error;

    fn home_dc_id(&self) -> Result<i32> {
        Ok(self.dc.read().home)
    }

    fn set_home_dc_id(&self, dc_id: i32) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.save_home_dc(dc_id))
    }

    fn dc_option(&self, dc_id: i32) -> Result<Option<DcOption>> {
        Ok(self.dc.read().options.get(&dc_id).cloned())
    }

    fn set_dc_option(&self, dc_option: &DcOption) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.save_dc_option(dc_option))
    }

    fn peer(&self, peer: GPeerId) -> BoxFuture<'_, Result<Option<PeerInfo>>> {
        Box::pin(async move { self.info(peer) })
    }

    fn peer_ref(&self, peer: GPeerId) -> BoxFuture<'_, Result<Option<PeerRef>>> {
        Box::pin(async move { self.peer_ref_of(peer) })
    }

    fn cache_peer(&self, peer: PeerInfo) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.cache(std::slice::from_ref(&peer)))
    }

    fn cache_peers(&self, peers: Vec<PeerInfo>) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.cache(&peers))
    }

    fn updates_state(&self) -> BoxFuture<'_, Result<UpdatesState>> {
        Box::pin(async move { self.updates() })
    }

    fn set_update_state(&self, update: GUpdateState) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.save_update(update))
    }
}

// --- Encodings -------------------------------------------------------------

fn bad(what: &str) -> Error {
    Error::corrupt(0, format!("invalid {what} in the account metadata"))
}

fn decode_err(e: DecodeError) -> Error {
    bad(e.what)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The number at the end of a metadata key.
fn parse_id<T: std::str::FromStr>(rest: &[u8]) -> Result<T> {
    std::str::from_utf8(rest)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("grammers key"))
}

fn mark_key(bot_api_id: i64) -> String {
    format!("{MARK_PREFIX}{bot_api_id}")
}

fn peer_key(bot_api_id: i64) -> String {
    format!("{PEER_PREFIX}{bot_api_id}")
}

/// `grammers/mark/<id>`: version 1, then the mark bits.
fn decode_marks(buf: &[u8]) -> Result<u8> {
    match buf {
        [1, bits] if bits & !MARK_BITS == 0 => Ok(*bits),
        _ => Err(bad("grammers peer mark")),
    }
}

fn tri_code(v: Option<bool>) -> u8 {
    match v {
        None => 0,
        Some(false) => 1,
        Some(true) => 2,
    }
}

fn tri_decode(c: u8) -> std::result::Result<Option<bool>, DecodeError> {
    match c {
        0 => Ok(None),
        1 => Ok(Some(false)),
        2 => Ok(Some(true)),
        _ => Err(DecodeError {
            what: "grammers peer",
        }),
    }
}

/// `grammers/peer/<id>`, a whole [`PeerInfo`]: version 1, kind (1 user,
/// 2 chat, 3 channel), bare id, then for users auth, bot, is_self and for
/// channels auth, kind (0 unknown, else grammers' discriminant). Auth is
/// 0, or 1 and the hash; booleans are 0 unknown, 1 false, 2 true.
fn encode_info(info: &PeerInfo) -> Vec<u8> {
    fn auth(w: &mut Writer, a: Option<PeerAuth>) {
        match a {
            Some(a) => w.u8(1).i64(a.hash()),
            None => w.u8(0),
        };
    }
    let mut w = Writer::new();
    w.u8(1);
    match info {
        PeerInfo::User {
            id,
            auth: a,
            bot,
            is_self,
        } => {
            w.u8(1).i64(*id);
            auth(&mut w, *a);
            w.u8(tri_code(*bot)).u8(tri_code(*is_self));
        }
        PeerInfo::Chat { id } => {
            w.u8(2).i64(*id);
        }
        PeerInfo::Channel { id, auth: a, kind } => {
            w.u8(3).i64(*id);
            auth(&mut w, *a);
            w.u8(kind.map_or(0, |k| k as u8));
        }
    }
    w.buf
}

fn decode_info(buf: &[u8], expect: GPeerId) -> Result<PeerInfo> {
    const WHAT: &str = "grammers peer";
    let err = DecodeError { what: WHAT };
    let mut r = Reader::new(buf, WHAT);
    let auth = |r: &mut Reader<'_>| -> std::result::Result<Option<PeerAuth>, DecodeError> {
        Ok(if r.bool()? {
            Some(PeerAuth::from_hash(r.i64()?))
        } else {
            None
        })
    };
    let info = (|| {
        if r.u8()? != 1 {
            return Err(err);
        }
        let kind = r.u8()?;
        let id = r.i64()?;
        let info = match (kind, expect.kind()) {
            (1, GPeerKind::User) => PeerInfo::User {
                id,
                auth: auth(&mut r)?,
                bot: tri_decode(r.u8()?)?,
                is_self: tri_decode(r.u8()?)?,
            },
            (2, GPeerKind::Chat) => PeerInfo::Chat { id },
            (3, GPeerKind::Channel) => PeerInfo::Channel {
                id,
                auth: auth(&mut r)?,
                kind: match r.u8()? {
                    0 => None,
                    1 => Some(GChannelKind::Broadcast),
                    2 => Some(GChannelKind::Megagroup),
                    3 => Some(GChannelKind::Gigagroup),
                    4 => Some(GChannelKind::Community),
                    _ => return Err(err),
                },
            },
            _ => return Err(err),
        };
        if expect.bare_id() != Some(id) {
            return Err(err);
        }
        r.finish()?;
        Ok(info)
    })()
    .map_err(decode_err)?;
    Ok(info)
}

// --- Peer mapping ------------------------------------------------------------

fn tri(flag: bool, unknown: bool) -> Option<bool> {
    if flag {
        Some(true)
    } else if unknown {
        None
    } else {
        Some(false)
    }
}

fn to_grammers_kind(k: ChannelKind) -> GChannelKind {
    match k {
        ChannelKind::Broadcast => GChannelKind::Broadcast,
        ChannelKind::Megagroup => GChannelKind::Megagroup,
        ChannelKind::Gigagroup => GChannelKind::Gigagroup,
    }
}

fn to_peerlog_kind(k: GChannelKind) -> Option<ChannelKind> {
    match k {
        GChannelKind::Broadcast => Some(ChannelKind::Broadcast),
        GChannelKind::Megagroup => Some(ChannelKind::Megagroup),
        GChannelKind::Gigagroup => Some(ChannelKind::Gigagroup),
        GChannelKind::Community => None,
    }
}

/// What grammers sees of a stored peer and its mark bits.
fn info_of(p: &Peer, marks: u8) -> PeerInfo {
    let auth = if p.min {
        None
    } else {
        p.access_hash.map(PeerAuth::from_hash)
    };
    let id = p.id.bare_id();
    match p.id.kind() {
        PeerKind::User => PeerInfo::User {
            id,
            auth,
            bot: tri(p.is_bot, marks & BOT_UNKNOWN != 0),
            is_self: tri(p.is_self, marks & SELF_UNKNOWN != 0),
        },
        PeerKind::Chat => PeerInfo::Chat { id },
        PeerKind::Channel => PeerInfo::Channel {
            id,
            auth,
            kind: match p.channel_kind {
                Some(k) => Some(to_grammers_kind(k)),
                None => (marks & COMMUNITY != 0).then_some(GChannelKind::Community),
            },
        },
    }
}

/// Writes what grammers knows into a peer (new or stored; its other fields
/// stay) and returns the mark bits it needs.
fn fill_peer(p: &mut Peer, info: &PeerInfo) -> u8 {
    let mut set_auth = |auth: &Option<PeerAuth>| {
        if let Some(a) = auth {
            p.access_hash = Some(a.hash());
            p.min = false;
        }
    };
    match info {
        PeerInfo::User {
            auth, bot, is_self, ..
        } => {
            set_auth(auth);
            p.is_bot = *bot == Some(true);
            p.is_self = *is_self == Some(true);
            (u8::from(bot.is_none()) * BOT_UNKNOWN) | (u8::from(is_self.is_none()) * SELF_UNKNOWN)
        }
        PeerInfo::Chat { .. } => 0,
        PeerInfo::Channel { auth, kind, .. } => {
            set_auth(auth);
            p.channel_kind = kind.and_then(to_peerlog_kind);
            u8::from(*kind == Some(GChannelKind::Community)) * COMMUNITY
        }
    }
}

/// The stored peer behind a grammers id (not the self user), and what
/// grammers sees of it.
fn read_stored(
    tx: &Transaction<'_>,
    marked: &Marked,
    id: GPeerId,
) -> Result<(Option<Peer>, Option<PeerInfo>)> {
    let api = id.bot_api_dialog_id().ok_or_else(|| bad("self-user id"))?;
    match PeerId::from_bot_api(api) {
        Some(pid) => {
            let Some(p) = tx.stored_peer(pid)? else {
                return Ok((None, None));
            };
            let marks = match marked.may_have(api) {
                true => tx
                    .meta(&mark_key(api))?
                    .map_or(Ok(0), |v| decode_marks(&v))?,
                false => 0,
            };
            let info = info_of(&p, marks);
            Ok((Some(p), Some(info)))
        }
        None => Ok((
            None,
            tx.meta(&peer_key(api))?
                .map(|v| decode_info(&v, id))
                .transpose()?,
        )),
    }
}

/// What grammers sees of the stored peer behind `id` (not the self user):
/// [`read_stored`]'s answer without decoding names, usernames or phone.
fn read_info(tx: &Transaction<'_>, marked: &Marked, id: GPeerId) -> Result<Option<PeerInfo>> {
    let api = id.bot_api_dialog_id().ok_or_else(|| bad("self-user id"))?;
    match PeerId::from_bot_api(api) {
        Some(pid) => {
            let Some(p) = tx.stored_peer_kind(pid)? else {
                return Ok(None);
            };
            let marks = match marked.may_have(api) {
                true => tx
                    .meta(&mark_key(api))?
                    .map_or(Ok(0), |v| decode_marks(&v))?,
                false => 0,
            };
            Ok(Some(info_of(&p, marks)))
        }
        None => read_stored(tx, marked, id).map(|(_, info)| info),
    }
}

/// The self user's id, as stored.
fn self_pointer(tx: &Transaction<'_>) -> Result<Option<i64>> {
    Ok(tx.session()?.and_then(|s| s.user_id))
}

/// The answer to a [`GPeerId::self_user`] query.
fn self_info(tx: &Transaction<'_>, marked: &Marked) -> Result<Option<PeerInfo>> {
    let Some(id) = self_pointer(tx)?.and_then(GPeerId::user) else {
        return Ok(None);
    };
    Ok(read_info(tx, marked, id)?.filter(|i| {
        matches!(
            i,
            PeerInfo::User {
                is_self: Some(true),
                ..
            }
        )
    }))
}

/// True if caching `infos` would change anything (a peer, or which user is
/// the self user).
fn needs_write(tx: &Transaction<'_>, marked: &Marked, infos: &[PeerInfo]) -> Result<bool> {
    let mut pointer = None;
    for info in infos {
        match read_info(tx, marked, info.id())? {
            None => return Ok(true),
            Some(stored) => {
                let mut merged = stored.clone();
                merged.extend_info(info);
                if merged != stored {
                    return Ok(true);
                }
            }
        }
        if let PeerInfo::User {
            id,
            is_self: Some(is_self),
            ..
        } = info
        {
            let current = match pointer {
                Some(p) => p,
                None => *pointer.insert(self_pointer(tx)?),
            };
            if *is_self != (current == Some(*id)) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// One peer of a batch being cached.
struct Pending {
    id: GPeerId,
    stored: Option<Peer>,
    info: PeerInfo,
    dirty: bool,
}

/// Caches peers in `tx`: merges each with what is stored (and with earlier
/// ones of the batch), writes the changed ones, and moves the self user.
fn write_peers<'i>(
    tx: &mut Transaction<'_>,
    marked: &Marked,
    infos: impl IntoIterator<Item = &'i PeerInfo>,
    (home, home_opt): (i32, Option<&DcOption>),
) -> Result<()> {
    let mut slots: HashMap<GPeerId, usize> = HashMap::new();
    let mut pending: Vec<Pending> = Vec::new();
    let initial = self_pointer(tx)?;
    let mut pointer = initial;
    for info in infos {
        let id = info.id();
        match slots.get(&id) {
            Some(&i) => {
                let slot = &mut pending[i];
                let mut merged = slot.info.clone();
                merged.extend_info(info);
                if merged != slot.info {
                    slot.info = merged;
                    slot.dirty = true;
                }
            }
            None => {
                let (stored, current) = read_stored(tx, marked, id)?;
                let (info, dirty) = match current {
                    Some(current) => {
                        let mut merged = current.clone();
                        merged.extend_info(info);
                        let dirty = merged != current;
                        (merged, dirty)
                    }
                    None => (info.clone(), true),
                };
                slots.insert(id, pending.len());
                pending.push(Pending {
                    id,
                    stored,
                    info,
                    dirty,
                });
            }
        }
        if let PeerInfo::User {
            id: user,
            is_self: Some(is_self),
            ..
        } = info
        {
            if *is_self {
                pointer = Some(*user);
            } else if pointer == Some(*user) {
                pointer = lowest_self(tx, &pending, &slots)?;
            }
        }
    }

    let now = unix_now();
    let mut peers = Vec::new();
    for slot in pending.iter().filter(|s| s.dirty) {
        let api = slot
            .id
            .bot_api_dialog_id()
            .ok_or_else(|| bad("self-user id"))?;
        match PeerId::from_bot_api(api) {
            Some(pid) => {
                let mut p = slot.stored.clone().unwrap_or_else(|| Peer::new(pid));
                drop_unsavable_names(&mut p);
                let marks = fill_peer(&mut p, &slot.info);
                p.updated_at = now;
                peers.push(p);
                if marks != 0 {
                    marked.add(api);
                    tx.set_meta(&mark_key(api), &[1, marks])?;
                } else if marked.may_have(api) {
                    tx.delete_meta(&mark_key(api))?;
                }
            }
            None => tx.set_meta(&peer_key(api), &encode_info(&slot.info))?,
        }
    }
    tx.save_peers(&peers)?;

    if pointer != initial {
        let is_bot = match pointer.and_then(GPeerId::user) {
            Some(id) => {
                let info = match slots.get(&id) {
                    Some(&i) => Some(pending[i].info.clone()),
                    None => read_stored(tx, marked, id)?.1,
                };
                matches!(
                    info,
                    Some(PeerInfo::User {
                        bot: Some(true),
                        ..
                    })
                )
            }
            None => false,
        };
        let mut s = match tx.session()? {
            Some(s) => s,
            None => new_session(home, home_opt),
        };
        s.user_id = pointer;
        s.is_bot = is_bot;
        tx.save_session(&s)?;
    }
    Ok(())
}

/// Drops the names of a stored peer that saving now refuses (written before
/// names were checked, or through the engine-level API): no lookup finds
/// them any more, and keeping them would fail every later save of the peer.
fn drop_unsavable_names(p: &mut Peer) {
    p.username.take_if(|u| normalize_username(u).is_none());
    p.usernames.retain(|u| normalize_username(u).is_some());
    p.phone.take_if(|x| normalize_phone(x).is_none());
}

/// The lowest-id user marked `is_self: Some(true)`, stored or in the batch.
fn lowest_self(
    tx: &Transaction<'_>,
    pending: &[Pending],
    slots: &HashMap<GPeerId, usize>,
) -> Result<Option<i64>> {
    let stored = tx.stored_peers()?.into_iter().filter_map(|p| {
        let id = GPeerId::user(p.id.bare_id())?;
        (p.id.kind() == PeerKind::User && p.is_self && !slots.contains_key(&id))
            .then_some(p.id.bare_id())
    });
    let batch = pending.iter().filter_map(|s| match s.info {
        PeerInfo::User {
            id,
            is_self: Some(true),
            ..
        } => Some(id),
        _ => None,
    });
    Ok(stored.chain(batch).min())
}

// --- DCs ---------------------------------------------------------------------

/// A session record for `home` without a logged-in user.
fn new_session(home: i32, option: Option<&DcOption>) -> PeerlogSessionRecord {
    let mut s = PeerlogSessionRecord::new(home, false);
    mirror(&mut s, option);
    s
}

/// Copies the home DC's IPv4 address, port and key into the session record.
fn mirror(s: &mut PeerlogSessionRecord, option: Option<&DcOption>) {
    match option {
        Some(o) => {
            s.server_addr = Some(IpAddr::V4(*o.ipv4.ip()));
            s.port = o.ipv4.port();
            s.auth_key = o.auth_key.map(AuthKey::new);
        }
        None => {
            s.server_addr = None;
            s.port = 0;
            s.auth_key = None;
        }
    }
}

fn write_home(tx: &mut Transaction<'_>, dc_id: i32, option: Option<&DcOption>) -> Result<()> {
    let stored = tx.session()?;
    let mut s = stored
        .clone()
        .unwrap_or_else(|| PeerlogSessionRecord::new(dc_id, false));
    s.dc_id = dc_id;
    mirror(&mut s, option);
    if stored.as_ref() != Some(&s) {
        tx.save_session(&s)?;
    }
    Ok(())
}

fn write_dc_option(tx: &mut Transaction<'_>, o: &DcOption, home: i32) -> Result<()> {
    tx.set_meta(&dc_key(o.id), &encode_dc_addrs(o.ipv4, o.ipv6))?;
    // Both make the commit durable, even when nothing was stored.
    match o.auth_key {
        Some(key) => {
            let server_salt = tx.dc_auth(o.id)?.map_or(0, |a| a.server_salt);
            tx.save_dc_auth(&DcAuth {
                dc_id: o.id,
                auth_key: AuthKey::new(key),
                server_salt,
                server_addr: Some(IpAddr::V4(*o.ipv4.ip())),
                port: o.ipv4.port(),
            })?;
        }
        None => {
            tx.delete_dc_auth(o.id)?;
        }
    }
    if o.id == home {
        write_home(tx, home, Some(o))?;
    }
    Ok(())
}

/// A DC option for a key saved without grammers' addresses: the stored
/// address if any, else the statically known one.
fn synth_option(id: i32, addr: Option<IpAddr>, port: u16, known: Option<&DcOption>) -> DcOption {
    let ipv4 = match (addr, known) {
        (Some(IpAddr::V4(a)), _) => SocketAddrV4::new(a, port),
        (_, Some(k)) => k.ipv4,
        _ => SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port),
    };
    let ipv6 = match (addr, known) {
        (Some(IpAddr::V6(a)), _) => SocketAddrV6::new(a, port, 0, 0),
        (_, Some(k)) => k.ipv6,
        _ => SocketAddrV6::new(ipv4.ip().to_ipv6_mapped(), ipv4.port(), 0, 0),
    };
    DcOption {
        id,
        ipv4,
        ipv6,
        auth_key: None,
    }
}

fn load_dc(tx: &Transaction<'_>) -> Result<DcCache> {
    let session = tx.session()?;
    let home = session.as_ref().map_or(DEFAULT_DC, |s| s.dc_id);
    let known = SessionData::default().dc_options;
    let mut options = known.clone();
    let mut addressed = HashSet::new();
    for (k, v) in tx.stored_meta_prefix(DC_PREFIX)? {
        let id = parse_id(&k)?;
        let (ipv4, ipv6) = decode_dc_addrs(&v).map_err(decode_err)?;
        addressed.insert(id);
        options.insert(
            id,
            DcOption {
                id,
                ipv4,
                ipv6,
                auth_key: None,
            },
        );
    }
    let mut keyed = HashSet::new();
    let auths = tx.stored_dc_auths()?;
    let session_key = session.as_ref().and_then(|s| {
        let key = s.auth_key.as_ref()?;
        Some((s.dc_id, key, s.server_addr, s.port))
    });
    let keys = auths
        .iter()
        .map(|a| (a.dc_id, &a.auth_key, a.server_addr, a.port))
        .chain(session_key);
    for (id, key, addr, port) in keys {
        if !keyed.insert(id) {
            continue; // a DC auth wins over the session's copy
        }
        if !addressed.contains(&id) {
            options.insert(id, synth_option(id, addr, port, known.get(&id)));
        }
        if let Some(o) = options.get_mut(&id) {
            o.auth_key = Some(*key.as_bytes());
        }
    }
    Ok(DcCache { home, options })
}

// --- Update state --------------------------------------------------------------

fn read_state(tx: &Transaction<'_>) -> Result<UpdatesState> {
    let s = tx.update_state()?.unwrap_or_default();
    let channels = tx
        .stored_channel_states()?
        .into_iter()
        .map(|c| GChannelState {
            id: c.channel_id,
            pts: c.pts,
        })
        .collect();
    Ok(UpdatesState {
        pts: s.pts,
        qts: s.qts,
        date: s.date,
        seq: s.seq,
        channels,
    })
}

/// True if `update` would change nothing that is stored.
fn state_unchanged(tx: &Transaction<'_>, update: &GUpdateState) -> Result<bool> {
    Ok(match update {
        GUpdateState::All(_) => false,
        GUpdateState::Primary { pts, date, seq } => tx
            .update_state()?
            .is_some_and(|s| (s.pts, s.date, s.seq) == (*pts, *date, *seq)),
        GUpdateState::Secondary { qts } => tx.update_state()?.is_some_and(|s| s.qts == *qts),
        GUpdateState::Channel { id, pts } => tx.channel_pts(*id)? == Some(*pts),
    })
}

fn write_state(tx: &mut Transaction<'_>, update: GUpdateState) -> Result<()> {
    match update {
        GUpdateState::All(all) => {
            tx.save_update_state(&UpdateState {
                pts: all.pts,
                qts: all.qts,
                date: all.date,
                seq: all.seq,
            })?;
            let listed: HashSet<i64> = all.channels.iter().map(|c| c.id).collect();
            for c in tx.stored_channel_states()? {
                if !listed.contains(&c.channel_id) {
                    tx.delete_channel_state(c.channel_id)?;
                }
            }
            for c in &all.channels {
                tx.save_channel_pts(c.id, c.pts)?;
            }
        }
        GUpdateState::Primary { pts, date, seq } => {
            let mut s = tx.update_state()?.unwrap_or_default();
            (s.pts, s.date, s.seq) = (pts, date, seq);
            tx.save_update_state(&s)?;
        }
        GUpdateState::Secondary { qts } => {
            let mut s = tx.update_state()?.unwrap_or_default();
            s.qts = qts;
            tx.save_update_state(&s)?;
        }
        GUpdateState::Channel { id, pts } => tx.save_channel_pts(id, pts)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_roundtrip_and_reject_garbage() {
        let o = DcOption {
            id: 4,
            ipv4: "1.2.3.4:5".parse().unwrap(),
            ipv6: SocketAddrV6::new(std::net::Ipv6Addr::LOCALHOST, 6, 7, 8),
            auth_key: None,
        };
        assert_eq!(
            decode_dc_addrs(&encode_dc_addrs(o.ipv4, o.ipv6)),
            Ok((o.ipv4, o.ipv6))
        );
        assert!(decode_dc_addrs(&encode_dc_addrs(o.ipv4, o.ipv6)[1..]).is_err());

        let monoforum = GPeerId::channel(2_000_000_000_000).unwrap();
        for info in [
            PeerInfo::Channel {
                id: 2_000_000_000_000,
                auth: Some(PeerAuth::from_hash(-5)),
                kind: Some(GChannelKind::Community),
            },
            PeerInfo::Channel {
                id: 2_000_000_000_000,
                auth: None,
                kind: None,
            },
        ] {
            let buf = encode_info(&info);
            assert_eq!(decode_info(&buf, monoforum).unwrap(), info);
            for cut in 0..buf.len() {
                assert!(decode_info(&buf[..cut], monoforum).is_err());
            }
            // The id must be the one asked for.
            assert!(decode_info(&buf, GPeerId::channel(5).unwrap()).is_err());
            assert!(decode_info(&buf, GPeerId::user(5).unwrap()).is_err());
        }
        let user = PeerInfo::User {
            id: 9,
            auth: None,
            bot: None,
            is_self: Some(false),
        };
        assert_eq!(
            decode_info(&encode_info(&user), GPeerId::user(9).unwrap()).unwrap(),
            user
        );
        assert_eq!(decode_marks(&[1, 7]).unwrap(), 7);
        assert!(decode_marks(&[1, 8]).is_err());
        assert!(decode_marks(&[2, 1]).is_err());
        assert!(decode_marks(&[1]).is_err());
    }

    #[test]
    fn peer_mapping_keeps_unknowns_and_other_fields() {
        let mut p = Peer::user(5, 1).with_username("five");
        p.min = true;
        // A min hash is no auth for grammers.
        assert!(matches!(info_of(&p, 0), PeerInfo::User { auth: None, .. }));
        let info = PeerInfo::User {
            id: 5,
            auth: Some(PeerAuth::from_hash(2)),
            bot: None,
            is_self: Some(true),
        };
        let marks = fill_peer(&mut p, &info);
        assert_eq!(marks, BOT_UNKNOWN);
        assert_eq!((p.access_hash, p.min), (Some(2), false));
        assert_eq!(p.username.as_deref(), Some("five"));
        assert_eq!(info_of(&p, marks), info);
        // A `true` written later through `Storage` beats the mark.
        p.is_bot = true;
        assert!(matches!(
            info_of(&p, marks),
            PeerInfo::User {
                bot: Some(true),
                ..
            }
        ));

        let mut c = Peer::new(PeerId::channel(3));
        let community = PeerInfo::Channel {
            id: 3,
            auth: None,
            kind: Some(GChannelKind::Community),
        };
        let marks = fill_peer(&mut c, &community);
        assert_eq!((marks, c.channel_kind), (COMMUNITY, None));
        assert_eq!(info_of(&c, marks), community);
    }
}
