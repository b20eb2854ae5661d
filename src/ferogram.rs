//! A [`ferogram_session::SessionBackend`] backed by a peerlog account
//! (feature `ferogram`): ferogram's session in one peerlog file, beside
//! every other bot's, with no C code.
//!
//! ```
//! use ferogram_session::{CachedPeer, SessionBackend, UpdateStateChange};
//! use peerlog::ferogram::PeerlogBackend;
//!
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("bot.peerlog");
//! // Before: Box::new(BinaryFileBackend::new("bot.session"))
//! let backend = PeerlogBackend::open(&path)?;
//! assert!(backend.load()?.is_none());
//! backend.set_home_dc(2)?;
//! backend.cache_peer(&CachedPeer {
//!     id: 1234567890,
//!     access_hash: 77,
//!     is_channel: true,
//!     is_chat: false,
//!     channel_kind: None,
//!     is_community: false,
//! })?;
//! backend.apply_update_state(UpdateStateChange::Channel { id: 1234567890, pts: 9 })?;
//! let s = backend.load()?.unwrap();
//! assert_eq!((s.home_dc_id, s.peers[0].access_hash), (2, 77));
//! assert_eq!(s.updates_state.channel_pts(1234567890), 9);
//!
//! // The channel is in peerlog's peer table, under its Bot API id.
//! use peerlog::{PeerId, Storage};
//! let hash = backend.account().access_hash(PeerId::from_bot_api(-1001234567890).unwrap())?;
//! assert_eq!(hash, Some(77));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Semantics
//!
//! [`PeerlogBackend::load`] answers what ferogram-session's own
//! `InMemoryBackend` answers after the same calls, field for field and in
//! the same order (`tests/ferogram.rs` checks thousands of random calls,
//! with reopens): `None` until the first call that writes (unless the
//! account holds another client's session: see
//! [`PeerlogBackend::from_account`]), `None` again after
//! [`delete`](SessionBackend::delete); the granular calls create a
//! default session first, as ferogram's do. In particular ferogram keys its
//! peer cache by *bare* id: [`cache_peer`](SessionBackend::cache_peer) of a
//! peer whose bare id is cached already replaces that entry, in place, even
//! if its kind differs (a channel replacing a user of the same bare id).
//! The replaced peer's record stays in the peer table, out of ferogram's
//! list: its access hash is still true. Records leave the table through
//! [`delete`](SessionBackend::delete) (every listed peer) and
//! [`save`](SessionBackend::save) (a listed peer whose bare id the new
//! session does not list at all).
//!
//! Writes:
//! - [`cache_peer`](SessionBackend::cache_peer) of a known peer that
//!   changes nothing takes no writer lock and writes nothing (one lookup in
//!   the mapped peer index, under a mutex of the backend; a channel's
//!   record is decoded for its kind); a new or changed
//!   peer is one commit of its peer record and, for a new one or a changed
//!   kind, one small metadata record (its place in ferogram's list).
//! - [`apply_update_state`](SessionBackend::apply_update_state) writes the
//!   update state, or one channel's pts, only if it changes; a channel seen
//!   for the first time also rewrites the (small) list of ferogram's
//!   channels, which keeps their order.
//! - [`update_dc`](SessionBackend::update_dc) rewrites ferogram's DC table
//!   (a few hundred bytes) and the DC's auth key only if they change;
//!   [`set_home_dc`](SessionBackend::set_home_dc) the session record only.
//! - [`save`](SessionBackend::save) writes the differences to what is
//!   stored, in one atomic commit.
//!
//! `save`, `delete`, `update_dc` and `set_home_dc` are durable (fsynced)
//! before they return, whatever the store's [`crate::Durability`]: they
//! carry auth keys and the home DC. `cache_peer` and `apply_update_state`
//! follow the store's `Durability` (the default, `Batched`, may lose the
//! last few milliseconds at a power cut, never tear a commit): a lost peer
//! or pts is fetched again from Telegram.
//!
//! `SessionBackend` is a synchronous trait, and ferogram calls it from its
//! async tasks: every call does its work on the calling thread, and a
//! durable call blocks it for one fsync (about a millisecond on an SSD).
//! The hot calls (`cache_peer` of known peers, `load`) never wait for the
//! disk.
//!
//! # Where ferogram's data lives
//!
//! Everything is in the peerlog [`Account`], so what peerlog has a place
//! for is readable (and writable) through [`crate::Storage`]:
//! - home DC: [`Session::dc_id`](crate::Session::dc_id) of the account's
//!   session, which also mirrors the home DC's address, port and auth key
//!   (so e.g. [`crate::Session::to_telethon_string`] exports it);
//! - auth keys: one [`DcAuth`] per DC that has one (the server salt is
//!   ferogram's `first_salt`, the address its own when it parses);
//! - peers: in the peer table as [`Peer`]s (access hash, channel kind;
//!   names written through `Storage` are kept), under their Bot API ids
//!   (ferogram's ids are bare: a channel `1234567890` is peerlog's
//!   `-1001234567890`, never a user);
//! - update state: [`UpdateState`] and the per-channel pts.
//!
//! What peerlog has no field for is in the account metadata under
//! `ferogram/`, and comes back exactly: the DC table (its order, address
//! strings, DC flags such as IPv6 or media-only, salts, time offsets; a
//! second, different key for one DC), the order of the peers and their
//! `is_community` flag, the order of the channels, the min-peer contexts
//! and the future auth token. So are the values peerlog's tables cannot
//! hold: ids outside a kind's range (a Bot API id given as a bare one, 0),
//! a second entry for one bare id (possible through `save`), a channel
//! kind on a user. Such entries are kept whole in the metadata, and come
//! back, but are not in the peer table.
//!
//! A peer or channel that ferogram listed and that is deleted through
//! `Storage` leaves ferogram's view too; a peer saved through `Storage`
//! alone is not in ferogram's list.
//!
//! # Migration
//!
//! [`PeerlogBackend::import_file`] and [`PeerlogBackend::import_string`]
//! read ferogram's session file (any version it reads) and its native
//! session string; [`PeerlogBackend::export_file`] and
//! [`PeerlogBackend::export_string`] write them back, byte for byte what
//! ferogram-session itself writes for the same session (version 8).
//! The compact strings (ferogram's `StringSession`: DC, address, user id
//! and key) go through [`PeerlogBackend::import_compact_string`] and
//! [`PeerlogBackend::export_compact_string`].

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use ferogram_session::{
    CachedMinPeer, CachedPeer, ChannelKind as FChannelKind, DcEntry, DcFlags, PersistedSession,
    SessionBackend, StringSession, UpdateStateChange, UpdatesStateSnap,
};
use parking_lot::Mutex;

use crate::account::{Account, Transaction};
use crate::codec::{DecodeError, Reader, Writer};
use crate::error::{Error, Result};
use crate::session::{AuthKey, DcAuth, Session as PeerlogSessionRecord, dc_address};
use crate::types::{
    ChannelKind, Peer, PeerId, PeerKind, UpdateState, check_channel_id, normalize_phone,
    normalize_username,
};
use crate::{Options, Store};

/// The account [`PeerlogBackend::open`] uses in its file.
pub const ACCOUNT: &str = "default";

/// Present while a session exists: the min-peer contexts and the future
/// auth token.
const SESSION_KEY: &str = "ferogram/session";
/// The DC table, without the keys that are in [`DcAuth`]s.
const DCS_KEY: &str = "ferogram/dcs";
/// The per-channel pts list: order, and the entries the table cannot hold.
const CHANNELS_KEY: &str = "ferogram/channels";
/// One key per cached peer, `ferogram/peer/<position, 16 hex digits>`.
const PEER_PREFIX: &str = "ferogram/peer/";
/// The compact string's fields that are nowhere else (seq_no, layer).
const COMPACT_KEY: &str = "ferogram/compact";

/// Version byte of every `ferogram/` value.
const V1: u8 = 1;

// Peer entry flags.
const F_CHANNEL: u8 = 1;
const F_CHAT: u8 = 2;
const F_COMMUNITY: u8 = 4;
/// Everything is in the entry; the peer table holds nothing for it.
const F_WHOLE: u8 = 8;
const F_ALL: u8 = F_CHANNEL | F_CHAT | F_COMMUNITY | F_WHOLE;

/// No channel kind (ferogram's own encoding).
const NO_KIND: u8 = 0xFF;

/// A ferogram [`SessionBackend`] stored in one account of a peerlog file.
///
/// Cheap to share behind an `Arc`; ferogram takes it as
/// `Arc<dyn SessionBackend>`.
pub struct PeerlogBackend {
    account: Account,
    /// Serializes writes (so the index follows the commit order) and holds
    /// where each bare id sits in ferogram's peer list.
    index: Mutex<Index>,
}

impl std::fmt::Debug for PeerlogBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerlogBackend")
            .field("account", &self.account)
            .field("peers", &self.index.lock().by_id.len())
            .finish_non_exhaustive()
    }
}

/// The first entry of ferogram's peer list for each bare id (the one its
/// `cache_peer` replaces), and the next free position.
#[derive(Default)]
struct Index {
    by_id: HashMap<i64, (u64, Entry)>,
    next: u64,
    /// ferogram's session marker is committed (else a write first checks
    /// for an account session to adopt).
    has_session: bool,
}

impl Index {
    fn rebuild(entries: &[(u64, Entry)]) -> Index {
        let mut ix = Index {
            has_session: true,
            ..Index::default()
        };
        for &(pos, e) in entries {
            ix.by_id.entry(e.id).or_insert((pos, e));
            ix.next = ix.next.max(pos + 1);
        }
        ix
    }
}

/// One entry of ferogram's peer list, as stored in `ferogram/peer/<pos>`.
/// For an entry in the peer table, the table holds the access hash of a
/// user or channel and the kind of a channel; the entry holds the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    id: i64,
    flags: u8,
    /// Channel kind byte, when the table does not hold it.
    kind: u8,
    /// Access hash, when the table does not hold it.
    hash: i64,
}

impl Entry {
    fn of(p: &CachedPeer, first: bool) -> Entry {
        let flags = (u8::from(p.is_channel) * F_CHANNEL)
            | (u8::from(p.is_chat) * F_CHAT)
            | (u8::from(p.is_community) * F_COMMUNITY);
        let kind = kind_byte(p.channel_kind);
        let table = if first { table_id(p) } else { None };
        match table.map(PeerId::kind) {
            None => Entry {
                id: p.id,
                flags: flags | F_WHOLE,
                kind,
                hash: p.access_hash,
            },
            Some(PeerKind::Channel) => Entry {
                id: p.id,
                flags,
                kind: NO_KIND,
                hash: 0,
            },
            Some(PeerKind::User) => Entry {
                id: p.id,
                flags,
                kind,
                hash: 0,
            },
            Some(PeerKind::Chat) => Entry {
                id: p.id,
                flags,
                kind,
                hash: p.access_hash,
            },
        }
    }

    /// The peer-table id, unless the entry is whole.
    fn table_id(&self) -> Option<PeerId> {
        if self.flags & F_WHOLE != 0 {
            return None;
        }
        if self.flags & F_CHAT != 0 {
            PeerId::try_chat(self.id)
        } else if self.flags & F_CHANNEL != 0 {
            PeerId::try_channel(self.id)
        } else {
            PeerId::try_user(self.id)
        }
    }

    /// ferogram's peer, given the table's record (`None` if the entry is
    /// in the table and the record is gone).
    fn view(&self, table: Option<&Peer>) -> Option<CachedPeer> {
        let mut p = CachedPeer {
            id: self.id,
            access_hash: self.hash,
            is_channel: self.flags & F_CHANNEL != 0,
            is_chat: self.flags & F_CHAT != 0,
            channel_kind: kind_of(self.kind),
            is_community: self.flags & F_COMMUNITY != 0,
        };
        if let Some(pid) = self.table_id() {
            let t = table?;
            match pid.kind() {
                PeerKind::User => p.access_hash = t.access_hash.unwrap_or(0),
                PeerKind::Channel => {
                    p.access_hash = t.access_hash.unwrap_or(0);
                    p.channel_kind = t.channel_kind.map(to_ferogram_kind);
                }
                PeerKind::Chat => {}
            }
        }
        Some(p)
    }

    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(V1)
            .u8(self.flags)
            .i64(self.id)
            .u8(self.kind)
            .i64(self.hash);
        w.buf
    }

    fn decode(buf: &[u8]) -> std::result::Result<Entry, DecodeError> {
        const WHAT: &str = "ferogram peer entry";
        let mut r = Reader::new(buf, WHAT);
        let err = DecodeError { what: WHAT };
        if r.u8()? != V1 {
            return Err(err);
        }
        let flags = r.u8()?;
        let e = Entry {
            flags,
            id: r.i64()?,
            kind: r.u8()?,
            hash: r.i64()?,
        };
        r.finish()?;
        if flags & !F_ALL != 0 {
            return Err(err);
        }
        Ok(e)
    }
}

/// The peer-table id ferogram's peer maps to (bare id and kind, as
/// ferogram's file encodes the kind: chat before channel before user).
fn table_id(p: &CachedPeer) -> Option<PeerId> {
    if p.is_chat {
        PeerId::try_chat(p.id)
    } else if p.is_channel {
        PeerId::try_channel(p.id)
    } else {
        PeerId::try_user(p.id)
    }
}

fn kind_byte(k: Option<FChannelKind>) -> u8 {
    k.map_or(NO_KIND, FChannelKind::to_byte)
}

/// A kind byte as ferogram reads it (an unknown byte is no kind).
fn kind_of(b: u8) -> Option<FChannelKind> {
    FChannelKind::from_byte(b)
}

fn to_ferogram_kind(k: ChannelKind) -> FChannelKind {
    match k {
        ChannelKind::Broadcast => FChannelKind::Broadcast,
        ChannelKind::Megagroup => FChannelKind::Megagroup,
        ChannelKind::Gigagroup => FChannelKind::Gigagroup,
    }
}

fn to_peerlog_kind(k: FChannelKind) -> ChannelKind {
    match k {
        FChannelKind::Broadcast => ChannelKind::Broadcast,
        FChannelKind::Megagroup => ChannelKind::Megagroup,
        FChannelKind::Gigagroup => ChannelKind::Gigagroup,
    }
}

impl PeerlogBackend {
    /// Opens (or creates) the peerlog file at `path` with default
    /// [`Options`] and uses its account [`ACCOUNT`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, Options::default())
    }

    /// [`PeerlogBackend::open`] with explicit [`Options`].
    pub fn open_with(path: impl AsRef<Path>, opts: Options) -> Result<Self> {
        Self::from_account(Store::open_with(path, opts)?.account(ACCOUNT)?)
    }

    /// A backend over a fresh in-memory store (nothing on disk).
    pub fn memory() -> Result<Self> {
        Self::from_account(Store::memory().account(ACCOUNT)?)
    }

    /// A backend over any account, e.g. one account per bot in a shared
    /// file. Reads where ferogram's peers sit in its list into memory.
    ///
    /// An account that holds a peerlog [`crate::Session`] but no ferogram
    /// session (imported from a Telethon, Pyrogram or GramJS string, or
    /// used by the grammers adapter) loads as a ferogram session made of
    /// it: its home DC, a DC entry per [`DcAuth`] (and the session's own
    /// key), its update state and channel pts, its peers by Bot API id. The
    /// first write through the backend adopts it (one durable commit).
    ///
    /// Use one `PeerlogBackend` per account at a time (it keeps that list
    /// in memory, so a second one would not see the first's writes). Reads
    /// and writes through [`crate::Storage`] on the same account are fine.
    pub fn from_account(account: Account) -> Result<Self> {
        let (entries, has_session) =
            account.view(|tx| Ok((stored_entries(tx)?, tx.meta(SESSION_KEY)?.is_some())))?;
        let mut ix = Index::rebuild(&entries);
        ix.has_session = has_session;
        Ok(PeerlogBackend {
            account,
            index: Mutex::new(ix),
        })
    }

    /// The account behind the backend.
    pub fn account(&self) -> &Account {
        &self.account
    }

    // --- Migration -------------------------------------------------------

    /// Imports ferogram's session file (written by its `BinaryFileBackend`
    /// or `PersistedSession::save`, any version it reads), replacing what
    /// the account holds for ferogram, in one durable commit.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the file cannot be read, [`Error::Invalid`] naming
    /// the file if it is not a ferogram session; nothing is written then.
    pub fn import_file(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            context: "reading a ferogram session file",
            path: Some(path.to_path_buf()),
            source,
        })?;
        let s = PersistedSession::from_bytes(&bytes).map_err(|e| {
            Error::Invalid(format!(
                "{} is not a ferogram session file ({e}); pass the file ferogram's \
                 BinaryFileBackend writes",
                path.display()
            ))
        })?;
        self.write_all(&s)
    }

    /// Imports ferogram's native session string
    /// (`PersistedSession::to_string`, `export_native_session_string`).
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] if `s` is not one (a compact string goes through
    /// [`PeerlogBackend::import_compact_string`]); nothing is written then.
    pub fn import_string(&self, s: &str) -> Result<()> {
        let session = PersistedSession::from_string(s).map_err(|e| {
            Error::Invalid(format!(
                "not a ferogram native session string ({e}); a compact one goes through \
                 import_compact_string"
            ))
        })?;
        self.write_all(&session)
    }

    /// Imports ferogram's compact session string (`StringSession`, version
    /// 1 or 2): a session whose home DC is the string's, with its address
    /// and key, and the string's user id as the peerlog session's
    /// [`user_id`](crate::Session::user_id). Replaces what the account
    /// holds for ferogram.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] if `s` is not one; nothing is written then.
    pub fn import_compact_string(&self, s: &str) -> Result<()> {
        let decoded = StringSession::decode(s).map_err(|e| {
            Error::Invalid(format!(
                "not a ferogram compact session string ({e}); a native one goes through \
                 import_string"
            ))
        })?;
        let c = decoded.session();
        let flags = if c.ip.is_ipv6() {
            DcFlags::IPV6
        } else {
            DcFlags::NONE
        };
        let mut dc = DcEntry::from_parts(i32::from(c.dc_id), &c.ip.to_string(), c.port, flags);
        dc.auth_key = Some(c.auth_key);
        let full = decoded.full_session();
        dc.first_salt = full.map_or(0, |f| f.server_salt);
        let session = PersistedSession {
            home_dc_id: dc.dc_id,
            dcs: vec![dc],
            ..PersistedSession::default()
        };
        let extra = full.map(|f| {
            let mut w = Writer::new();
            w.u8(V1).u32(f.seq_no).u32(f.layer);
            w.buf
        });
        let user_id = c.user_id;
        let mut ix = self.index.lock();
        *ix = self.durable(|tx| {
            let ix = save_all(tx, &session)?;
            let mut rec = tx
                .session()?
                .unwrap_or_else(|| PeerlogSessionRecord::new(session.home_dc_id, false));
            rec.user_id = (user_id != 0).then_some(user_id);
            tx.save_session(&rec)?;
            match &extra {
                Some(v) => tx.set_meta(COMPACT_KEY, v)?,
                None => {
                    tx.delete_meta(COMPACT_KEY)?;
                }
            }
            Ok(ix)
        })?;
        Ok(())
    }

    /// Writes the session as ferogram's session file (version 8): the
    /// bytes ferogram-session's own `BinaryFileBackend` writes for it.
    /// Written to a temporary file (mode 0600 on Unix), fsynced, renamed.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] if there is no session, or it holds more than
    /// ferogram's format can (255 DCs, 65,535 peers, channels or min
    /// peers, a 255-byte address, a 65,535-byte token).
    pub fn export_file(&self, path: impl AsRef<Path>) -> Result<()> {
        let bytes = self.export_bytes()?;
        write_atomic(path.as_ref(), &bytes)
    }

    /// The session in ferogram's file format (version 8), as
    /// [`PersistedSession::to_bytes`] writes it. Errors as
    /// [`PeerlogBackend::export_file`].
    pub fn export_bytes(&self) -> Result<Vec<u8>> {
        let s = self
            .read()?
            .ok_or_else(|| Error::Invalid("no ferogram session to export".into()))?;
        check_encodable(&s)?;
        Ok(s.to_bytes())
    }

    /// The session as ferogram's native session string. Errors as
    /// [`PeerlogBackend::export_file`].
    pub fn export_string(&self) -> Result<String> {
        use base64::Engine as _;
        Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.export_bytes()?))
    }

    /// The session as ferogram's compact string: version 1 if the account's
    /// last compact import was one (with its seq_no and layer, which only
    /// that import and `delete` change), else version 2. It
    /// carries the home DC's (IPv4 preferred) address and key and the
    /// peerlog session's user id (0 if none).
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] if there is no session, the home DC has no entry
    /// with a key and a parsable address, or its id does not fit a byte.
    pub fn export_compact_string(&self) -> Result<String> {
        let (s, user, extra) = self.account.view(|tx| {
            let s = read_session(tx)?;
            let user = tx.session()?.and_then(|r| r.user_id).unwrap_or(0);
            Ok((s, user, tx.meta(COMPACT_KEY)?))
        })?;
        let s = s.ok_or_else(|| Error::Invalid("no ferogram session to export".into()))?;
        let none = || {
            Error::Invalid(format!(
                "home DC {} has no entry with an auth key and an ip:port address",
                s.home_dc_id
            ))
        };
        let dc = s.dc_for(s.home_dc_id, false).ok_or_else(none)?;
        let key = dc.auth_key.ok_or_else(none)?;
        let addr: SocketAddr = dc.addr.parse().map_err(|_| none())?;
        let dc_id = u8::try_from(dc.dc_id)
            .map_err(|_| Error::Invalid(format!("DC id {} does not fit a byte", dc.dc_id)))?;
        let session = ferogram_session::Session {
            dc_id,
            ip: addr.ip(),
            port: addr.port(),
            auth_key: key,
            user_id: user,
        };
        Ok(match extra {
            Some(v) => {
                let (seq_no, layer) = decode_compact(&v).map_err(decode_err)?;
                StringSession::V1(ferogram_session::FullSession {
                    dc_id,
                    ip: session.ip,
                    port: session.port,
                    auth_key: key,
                    user_id: user,
                    server_salt: dc.first_salt,
                    seq_no,
                    layer,
                })
                .encode_v1()
            }
            None => StringSession::V2(session).encode(),
        })
    }

    // --- The trait's work ------------------------------------------------

    /// Reads ferogram's session in one consistent view.
    fn read(&self) -> Result<Option<PersistedSession>> {
        self.account.view(read_session)
    }

    /// Runs `f` in one commit, then makes it durable: a no-op when the
    /// commit synced already (it touched the session or a DC auth).
    fn durable<R>(&self, f: impl FnOnce(&mut Transaction<'_>) -> Result<R>) -> Result<R> {
        let r = self.account.write(f)?;
        self.account.store().sync()?;
        Ok(r)
    }

    fn write_all(&self, s: &PersistedSession) -> Result<()> {
        let mut ix = self.index.lock();
        *ix = self.account.write(|tx| save_all(tx, s))?;
        drop(ix);
        self.account.store().sync()
    }

    /// Before a granular write: makes an account session that is not yet
    /// ferogram's (see [`PeerlogBackend::from_account`]) ferogram's, in
    /// its own durable commit, so the write applies to what `load` showed.
    fn adopt(&self, ix: &mut Index) -> Result<()> {
        if ix.has_session {
            return Ok(());
        }
        let found = self.account.view(|tx| {
            if tx.meta(SESSION_KEY)?.is_some() {
                return Ok(None);
            }
            synth_session(tx)
        })?;
        if let Some(s) = found {
            *ix = self.account.write(|tx| save_all(tx, &s))?;
            self.account.store().sync()?;
        }
        Ok(())
    }

    fn remove(&self) -> Result<()> {
        let mut ix = self.index.lock();
        self.adopt(&mut ix)?;
        self.account.write(delete_all)?;
        *ix = Index::default();
        drop(ix);
        self.account.store().sync()
    }

    fn put_dc(&self, entry: &DcEntry) -> Result<()> {
        let mut ix = self.index.lock();
        self.adopt(&mut ix)?;
        self.durable(|tx| {
            ensure_session(tx)?;
            let mut dcs = read_dcs(tx)?;
            match dcs
                .iter_mut()
                .find(|d| d.dc_id == entry.dc_id && d.is_ipv6() == entry.is_ipv6())
            {
                Some(d) => *d = entry.clone(),
                None => dcs.push(entry.clone()),
            }
            write_dcs(tx, &dcs)?;
            write_home(tx, None, &dcs)
        })?;
        ix.has_session = true;
        Ok(())
    }

    fn put_home(&self, dc_id: i32) -> Result<()> {
        // `set_home_dc` to the stored home, on an existing session, changes
        // nothing (the commonest call after a restart).
        let unchanged = self.account.view(|tx| {
            Ok(tx.meta(SESSION_KEY)?.is_some() && tx.session()?.is_some_and(|s| s.dc_id == dc_id))
        })?;
        if unchanged {
            return Ok(());
        }
        let mut ix = self.index.lock();
        self.adopt(&mut ix)?;
        self.durable(|tx| {
            ensure_session(tx)?;
            let dcs = read_dcs(tx)?;
            write_home(tx, Some(dc_id), &dcs)
        })?;
        ix.has_session = true;
        Ok(())
    }

    fn put_update(&self, change: &UpdateStateChange) -> Result<()> {
        let unchanged = self.account.view(|tx| {
            if tx.meta(SESSION_KEY)?.is_none() {
                return Ok(false);
            }
            let s = tx.update_state()?.unwrap_or_default();
            Ok(match change {
                UpdateStateChange::All(_) => false,
                UpdateStateChange::Primary { pts, date, seq } => {
                    (s.pts, s.date, s.seq) == (*pts, *date, *seq)
                }
                UpdateStateChange::Secondary { qts } => s.qts == *qts,
                UpdateStateChange::Channel { id, pts } => {
                    let list = read_channel_list(tx)?;
                    match list.iter().find(|c| c.id == *id) {
                        Some(c) => match c.inline {
                            Some(p) => p == *pts,
                            None => tx.channel_pts(*id)? == Some(*pts),
                        },
                        None => false,
                    }
                }
            })
        })?;
        if unchanged {
            return Ok(());
        }
        let mut ix = self.index.lock();
        self.adopt(&mut ix)?;
        self.account.write(|tx| {
            ensure_session(tx)?;
            match change {
                UpdateStateChange::All(snap) => write_update_state(tx, snap),
                UpdateStateChange::Primary { pts, date, seq } => {
                    let mut s = tx.update_state()?.unwrap_or_default();
                    (s.pts, s.date, s.seq) = (*pts, *date, *seq);
                    put_state(tx, &s)
                }
                UpdateStateChange::Secondary { qts } => {
                    let mut s = tx.update_state()?.unwrap_or_default();
                    s.qts = *qts;
                    put_state(tx, &s)
                }
                UpdateStateChange::Channel { id, pts } => {
                    let list = read_channel_list(tx)?;
                    let mut view = channels_view(tx, &list)?;
                    match view.iter_mut().find(|c| c.0 == *id) {
                        Some(c) => c.1 = *pts,
                        None => view.push((*id, *pts)),
                    }
                    write_channels(tx, &list, &view)
                }
            }
        })?;
        ix.has_session = true;
        Ok(())
    }

    fn put_peer(&self, peer: &CachedPeer) -> Result<()> {
        let mut ix = self.index.lock();
        self.adopt(&mut ix)?;
        let new = Entry::of(peer, true);
        if let Some(&(_, old)) = ix.by_id.get(&peer.id)
            && old == new
            && self.table_matches(new, peer)?
        {
            return Ok(());
        }
        let slot = ix.by_id.get(&peer.id).copied();
        let pos = slot.map_or(ix.next, |(pos, _)| pos);
        self.account.write(|tx| {
            ensure_session(tx)?;
            if slot.map(|(_, old)| old) != Some(new) {
                tx.set_meta(&peer_key(pos), &new.encode())?;
            }
            if let Some(pid) = new.table_id() {
                let stored = tx.stored_peer(pid)?;
                if let Some(p) = table_peer(pid, stored, peer) {
                    tx.save_peer(&p)?;
                }
            }
            Ok(())
        })?;
        ix.has_session = true;
        ix.by_id.insert(peer.id, (pos, new));
        if slot.is_none() {
            ix.next = pos + 1;
        }
        Ok(())
    }

    /// True if the peer table holds what `peer` says (for an entry in the
    /// table; a whole entry has nothing there).
    fn table_matches(&self, e: Entry, peer: &CachedPeer) -> Result<bool> {
        let Some(pid) = e.table_id() else {
            return Ok(true);
        };
        Ok(match pid.kind() {
            PeerKind::Chat => self.account.peer_hash(pid)?.is_some(),
            PeerKind::User => self
                .account
                .peer_hash(pid)?
                .is_some_and(|(h, _)| h.unwrap_or(0) == peer.access_hash),
            PeerKind::Channel => {
                use crate::Storage as _;
                self.account.peer(pid)?.is_some_and(|p| {
                    p.access_hash.unwrap_or(0) == peer.access_hash
                        && p.channel_kind == peer.channel_kind.map(to_peerlog_kind)
                })
            }
        })
    }
}

fn io_err(e: Error) -> io::Error {
    let kind = match &e {
        Error::Io { source, .. } => source.kind(),
        Error::Invalid(_) => io::ErrorKind::InvalidInput,
        Error::Corrupt { .. } => io::ErrorKind::InvalidData,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e)
}

impl SessionBackend for PeerlogBackend {
    /// Replaces the session (differences only, one durable commit).
    fn save(&self, session: &PersistedSession) -> io::Result<()> {
        self.write_all(session).map_err(io_err)
    }

    fn load(&self) -> io::Result<Option<PersistedSession>> {
        self.read().map_err(io_err)
    }

    /// Removes ferogram's session from the account: the session record,
    /// the DC auth keys, the listed peers and channel states, the
    /// `ferogram/` metadata; the update state is reset to zero (durable).
    fn delete(&self) -> io::Result<()> {
        self.remove().map_err(io_err)
    }

    fn name(&self) -> &str {
        "peerlog"
    }

    fn update_dc(&self, entry: &DcEntry) -> io::Result<()> {
        self.put_dc(entry).map_err(io_err)
    }

    fn set_home_dc(&self, dc_id: i32) -> io::Result<()> {
        self.put_home(dc_id).map_err(io_err)
    }

    fn apply_update_state(&self, update: UpdateStateChange) -> io::Result<()> {
        self.put_update(&update).map_err(io_err)
    }

    fn cache_peer(&self, peer: &CachedPeer) -> io::Result<()> {
        self.put_peer(peer).map_err(io_err)
    }
}

// --- Encodings ---------------------------------------------------------------

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

/// Writes `bytes` to a new temporary file beside `path` (mode 0600: a
/// session file holds auth keys), fsyncs it, renames it over `path` and
/// fsyncs the directory.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let io = |context: &'static str| {
        move |source| Error::Io {
            context,
            path: Some(path.to_path_buf()),
            source,
        }
    };
    // A new file under a unique name (never one an attacker planted), then
    // renamed over the old export, as ferogram's own save does.
    let (tmp, mut f) = crate::sys::staged::Staged::beside(path, "tmp")
        .map_err(io("creating the exported session file"))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(io("writing the exported session file"))?;
    drop(f);
    tmp.place(path, true)
        .map_err(io("renaming the exported session file"))?;
    Ok(())
}

fn peer_key(pos: u64) -> String {
    format!("{PEER_PREFIX}{pos:016x}")
}

/// Refuses what ferogram's file format cannot hold (its encoder would
/// write a count or length modulo 256 or 65,536: a file it cannot read).
fn check_encodable(s: &PersistedSession) -> Result<()> {
    let over = |what: &str, n: usize, max: usize| {
        Error::Invalid(format!(
            "the ferogram session has {n} {what}; its file format holds at most {max}"
        ))
    };
    let u16max = usize::from(u16::MAX);
    if s.dcs.len() > 255 {
        return Err(over("DC entries", s.dcs.len(), 255));
    }
    if let Some(d) = s.dcs.iter().find(|d| d.addr.len() > 255) {
        return Err(over("address bytes", d.addr.len(), 255));
    }
    for (what, n) in [
        ("peers", s.peers.len()),
        ("channel pts entries", s.updates_state.channels.len()),
        ("min peers", s.min_peers.len()),
        (
            "future auth token bytes",
            s.future_auth_token.as_ref().map_or(0, Vec::len),
        ),
    ] {
        if n > u16max {
            return Err(over(what, n, u16max));
        }
    }
    Ok(())
}

/// `ferogram/compact`: version 1, seq_no, layer.
fn decode_compact(buf: &[u8]) -> std::result::Result<(u32, u32), DecodeError> {
    const WHAT: &str = "ferogram compact fields";
    let mut r = Reader::new(buf, WHAT);
    if r.u8()? != V1 {
        return Err(DecodeError { what: WHAT });
    }
    let v = (r.u32()?, r.u32()?);
    r.finish()?;
    Ok(v)
}

/// `ferogram/session`: version 1, min peers (count, then user id, peer id,
/// message id each), then the token (0, or 1 and its bytes).
fn encode_session_extra(min: &[CachedMinPeer], token: Option<&[u8]>) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(V1).u32(min.len() as u32);
    for m in min {
        w.i64(m.user_id).i64(m.peer_id).i32(m.msg_id);
    }
    match token {
        Some(t) => w.u8(1).bytes(t),
        None => w.u8(0),
    };
    w.buf
}

type SessionExtra = (Vec<CachedMinPeer>, Option<Vec<u8>>);

fn decode_session_extra(buf: &[u8]) -> std::result::Result<SessionExtra, DecodeError> {
    const WHAT: &str = "ferogram session";
    let mut r = Reader::new(buf, WHAT);
    if r.u8()? != V1 {
        return Err(DecodeError { what: WHAT });
    }
    let n = r.u32()? as usize;
    let mut min = Vec::with_capacity(n.min(buf.len() / 20));
    for _ in 0..n {
        min.push(CachedMinPeer {
            user_id: r.i64()?,
            peer_id: r.i64()?,
            msg_id: r.i32()?,
        });
    }
    let token = if r.bool()? {
        Some(r.bytes()?.to_vec())
    } else {
        None
    };
    r.finish()?;
    Ok((min, token))
}

/// Where a DC entry's key is.
const KEY_NONE: u8 = 0;
/// In the [`DcAuth`] of its DC id.
const KEY_AUTH: u8 = 1;
/// In the entry (a second, different key for the same DC id).
const KEY_INLINE: u8 = 2;

/// `ferogram/dcs`: version 1, count, then per entry: DC id, flags, first
/// salt, time offset, address, key place (and the key if inline).
fn encode_dcs(dcs: &[DcEntry], places: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(V1).u32(dcs.len() as u32);
    for (d, &place) in dcs.iter().zip(places) {
        w.i32(d.dc_id)
            .u8(d.flags.0)
            .i64(d.first_salt)
            .i32(d.time_offset)
            .str(&d.addr)
            .u8(place);
        if place == KEY_INLINE
            && let Some(k) = &d.auth_key
        {
            w.raw(k);
        }
    }
    w.buf
}

/// The entries (keys in [`DcAuth`]s not filled in) and key places.
fn decode_dcs(buf: &[u8]) -> std::result::Result<(Vec<DcEntry>, Vec<u8>), DecodeError> {
    const WHAT: &str = "ferogram DC table";
    let err = DecodeError { what: WHAT };
    let mut r = Reader::new(buf, WHAT);
    if r.u8()? != V1 {
        return Err(err);
    }
    let n = r.u32()? as usize;
    let (mut dcs, mut places) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let dc_id = r.i32()?;
        let flags = DcFlags(r.u8()?);
        let first_salt = r.i64()?;
        let time_offset = r.i32()?;
        let addr = r.str()?.to_owned();
        let place = r.u8()?;
        let auth_key = match place {
            KEY_NONE | KEY_AUTH => None,
            KEY_INLINE => Some(r.array::<256>()?),
            _ => return Err(err),
        };
        dcs.push(DcEntry {
            dc_id,
            addr,
            auth_key,
            first_salt,
            time_offset,
            flags,
        });
        places.push(place);
    }
    r.finish()?;
    Ok((dcs, places))
}

/// One entry of `ferogram/channels`: the pts is in the channel-state table
/// (`inline: None`) or here (an id the table refuses, or a second entry
/// for one id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ChannelEntry {
    id: i64,
    inline: Option<i32>,
}

fn encode_channels(list: &[ChannelEntry]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(V1).u32(list.len() as u32);
    for c in list {
        w.i64(c.id);
        match c.inline {
            Some(p) => w.u8(1).i32(p),
            None => w.u8(0),
        };
    }
    w.buf
}

fn decode_channels(buf: &[u8]) -> std::result::Result<Vec<ChannelEntry>, DecodeError> {
    const WHAT: &str = "ferogram channel list";
    let mut r = Reader::new(buf, WHAT);
    if r.u8()? != V1 {
        return Err(DecodeError { what: WHAT });
    }
    let n = r.u32()? as usize;
    let mut out = Vec::with_capacity(n.min(buf.len() / 9));
    for _ in 0..n {
        let id = r.i64()?;
        let inline = if r.bool()? { Some(r.i32()?) } else { None };
        out.push(ChannelEntry { id, inline });
    }
    r.finish()?;
    Ok(out)
}

// --- Reads -------------------------------------------------------------------

/// ferogram's peer list, by position.
fn stored_entries(tx: &Transaction<'_>) -> Result<Vec<(u64, Entry)>> {
    tx.stored_meta_prefix(PEER_PREFIX)?
        .into_iter()
        .map(|(k, v)| {
            let pos = std::str::from_utf8(&k)
                .ok()
                .filter(|s| s.len() == 16)
                .and_then(|s| u64::from_str_radix(s, 16).ok())
                .ok_or_else(|| bad("ferogram peer key"))?;
            Ok((pos, Entry::decode(&v).map_err(decode_err)?))
        })
        .collect()
}

fn read_dcs(tx: &Transaction<'_>) -> Result<Vec<DcEntry>> {
    let Some(buf) = tx.meta(DCS_KEY)? else {
        return Ok(Vec::new());
    };
    let (mut dcs, places) = decode_dcs(&buf).map_err(decode_err)?;
    let mut auths: HashMap<i32, Option<DcAuth>> = HashMap::new();
    for (d, place) in dcs.iter_mut().zip(places) {
        if place == KEY_AUTH {
            let auth = match auths.get(&d.dc_id) {
                Some(a) => a.clone(),
                None => {
                    let a = tx.dc_auth(d.dc_id)?;
                    auths.insert(d.dc_id, a.clone());
                    a
                }
            };
            d.auth_key = auth.map(|a| *a.auth_key.as_bytes());
        }
    }
    Ok(dcs)
}

fn read_channel_list(tx: &Transaction<'_>) -> Result<Vec<ChannelEntry>> {
    match tx.meta(CHANNELS_KEY)? {
        Some(buf) => decode_channels(&buf).map_err(decode_err),
        None => Ok(Vec::new()),
    }
}

/// ferogram's `(channel id, pts)` list (entries whose table state is gone
/// are left out).
fn channels_view(tx: &Transaction<'_>, list: &[ChannelEntry]) -> Result<Vec<(i64, i32)>> {
    let mut out = Vec::with_capacity(list.len());
    for c in list {
        match c.inline {
            Some(p) => out.push((c.id, p)),
            None => {
                if let Some(p) = tx.channel_pts(c.id)? {
                    out.push((c.id, p));
                }
            }
        }
    }
    Ok(out)
}

fn read_session(tx: &Transaction<'_>) -> Result<Option<PersistedSession>> {
    let Some(extra) = tx.meta(SESSION_KEY)? else {
        return synth_session(tx);
    };
    let (min_peers, future_auth_token) = decode_session_extra(&extra).map_err(decode_err)?;
    let home_dc_id = tx.session()?.map_or(0, |s| s.dc_id);
    let state = tx.update_state()?.unwrap_or_default();
    let channels = channels_view(tx, &read_channel_list(tx)?)?;
    let mut peers = Vec::new();
    for (_, e) in stored_entries(tx)? {
        let table = match e.table_id() {
            Some(pid) => tx.stored_peer(pid)?,
            None => None,
        };
        if let Some(p) = e.view(table.as_ref()) {
            peers.push(p);
        }
    }
    Ok(Some(PersistedSession {
        home_dc_id,
        dcs: read_dcs(tx)?,
        updates_state: UpdatesStateSnap {
            pts: state.pts,
            qts: state.qts,
            date: state.date,
            seq: state.seq,
            channels,
        },
        peers,
        min_peers,
        future_auth_token,
    }))
}

/// ferogram's view of an account session that is not ferogram's (see
/// [`PeerlogBackend::from_account`]); `None` without a session record.
fn synth_session(tx: &Transaction<'_>) -> Result<Option<PersistedSession>> {
    let Some(rec) = tx.session()? else {
        return Ok(None);
    };
    let addr_of = |dc_id: i32, addr: Option<IpAddr>, port: u16| {
        let known = dc_address(dc_id, rec.test_mode);
        match (addr, known) {
            (Some(ip), _) => SocketAddr::new(ip, port),
            (None, Some((ip, port))) => SocketAddr::new(ip, port),
            (None, None) => SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), port),
        }
    };
    let entry = |dc_id: i32, addr: SocketAddr, key: &AuthKey, salt: i64| DcEntry {
        dc_id,
        addr: addr.to_string(),
        auth_key: Some(*key.as_bytes()),
        first_salt: salt,
        time_offset: 0,
        flags: if addr.is_ipv6() {
            DcFlags::IPV6
        } else {
            DcFlags::NONE
        },
    };
    let auths = tx.stored_dc_auths()?;
    let mut dcs: Vec<DcEntry> = auths
        .iter()
        .map(|a| {
            let (addr, port) = match a.server_addr {
                Some(ip) => (Some(ip), a.port),
                None if a.dc_id == rec.dc_id => (rec.server_addr, rec.port),
                None => (None, a.port),
            };
            entry(
                a.dc_id,
                addr_of(a.dc_id, addr, port),
                &a.auth_key,
                a.server_salt,
            )
        })
        .collect();
    if let Some(key) = &rec.auth_key
        && !auths.iter().any(|a| a.dc_id == rec.dc_id)
    {
        let addr = addr_of(rec.dc_id, rec.server_addr, rec.port);
        dcs.insert(0, entry(rec.dc_id, addr, key, 0));
    }
    let state = tx.update_state()?.unwrap_or_default();
    let channels = tx
        .stored_channel_states()?
        .into_iter()
        .map(|c| (c.channel_id, c.pts))
        .collect();
    let peers = tx
        .stored_peers()?
        .into_iter()
        .map(|p| CachedPeer {
            id: p.id.bare_id(),
            access_hash: match p.id.kind() {
                PeerKind::Chat => 0,
                _ => p.access_hash.unwrap_or(0),
            },
            is_channel: p.id.kind() == PeerKind::Channel,
            is_chat: p.id.kind() == PeerKind::Chat,
            channel_kind: p.channel_kind.map(to_ferogram_kind),
            is_community: false,
        })
        .collect();
    Ok(Some(PersistedSession {
        home_dc_id: rec.dc_id,
        dcs,
        updates_state: UpdatesStateSnap {
            pts: state.pts,
            qts: state.qts,
            date: state.date,
            seq: state.seq,
            channels,
        },
        peers,
        min_peers: Vec::new(),
        future_auth_token: None,
    }))
}

// --- Writes ------------------------------------------------------------------

/// Creates the session marker if there is no session (as ferogram's
/// granular calls start from a default session).
fn ensure_session(tx: &mut Transaction<'_>) -> Result<()> {
    if tx.meta(SESSION_KEY)?.is_none() {
        tx.set_meta(SESSION_KEY, &encode_session_extra(&[], None))?;
    }
    Ok(())
}

fn set_meta_if_changed(tx: &mut Transaction<'_>, key: &str, value: &[u8]) -> Result<()> {
    if tx.meta(key)?.as_deref() != Some(value) {
        tx.set_meta(key, value)?;
    }
    Ok(())
}

/// Stores the DC table: the first key of each DC id in its [`DcAuth`], a
/// different key for the same id inline; only what changed.
fn write_dcs(tx: &mut Transaction<'_>, dcs: &[DcEntry]) -> Result<()> {
    let old_auth_ids: HashSet<i32> = match tx.meta(DCS_KEY)? {
        Some(buf) => {
            let (old, places) = decode_dcs(&buf).map_err(decode_err)?;
            old.iter()
                .zip(places)
                .filter(|(_, p)| *p == KEY_AUTH)
                .map(|(d, _)| d.dc_id)
                .collect()
        }
        None => HashSet::new(),
    };
    let mut placed: HashMap<i32, &DcEntry> = HashMap::new();
    let mut places = Vec::with_capacity(dcs.len());
    for d in dcs {
        let place = match &d.auth_key {
            None => KEY_NONE,
            Some(k) => match placed.get(&d.dc_id) {
                None => {
                    placed.insert(d.dc_id, d);
                    KEY_AUTH
                }
                Some(first) if first.auth_key.as_ref() == Some(k) => KEY_AUTH,
                Some(_) => KEY_INLINE,
            },
        };
        places.push(place);
    }
    for (&id, d) in &placed {
        let (server_addr, port) = parse_addr(&d.addr);
        let Some(key) = d.auth_key else { continue };
        let auth = DcAuth {
            dc_id: id,
            auth_key: AuthKey::new(key),
            server_salt: d.first_salt,
            server_addr,
            port,
        };
        if tx.dc_auth(id)?.as_ref() != Some(&auth) {
            tx.save_dc_auth(&auth)?;
        }
    }
    for id in old_auth_ids {
        if !placed.contains_key(&id) {
            tx.delete_dc_auth(id)?;
        }
    }
    set_meta_if_changed(tx, DCS_KEY, &encode_dcs(dcs, &places))
}

fn parse_addr(addr: &str) -> (Option<IpAddr>, u16) {
    match addr.parse::<SocketAddr>() {
        Ok(a) => (Some(a.ip()), a.port()),
        Err(_) => (None, 0),
    }
}

/// Writes the session record if the home DC (`Some` to change it) or its
/// mirrored address, port and key change.
fn write_home(tx: &mut Transaction<'_>, home: Option<i32>, dcs: &[DcEntry]) -> Result<()> {
    let stored = tx.session()?;
    let dc_id = home.unwrap_or_else(|| stored.as_ref().map_or(0, |s| s.dc_id));
    let mut s = stored.clone().unwrap_or_else(|| PeerlogSessionRecord {
        dc_id,
        ..PeerlogSessionRecord::default()
    });
    s.dc_id = dc_id;
    let lookup = PersistedSession {
        dcs: dcs.to_vec(),
        ..PersistedSession::default()
    };
    match lookup.dc_for(dc_id, false) {
        Some(d) => {
            (s.server_addr, s.port) = parse_addr(&d.addr);
            s.auth_key = d.auth_key.map(AuthKey::new);
        }
        None if stored.is_none() => {}
        None => {
            s.server_addr = None;
            s.port = 0;
            s.auth_key = None;
        }
    }
    if stored.as_ref() != Some(&s) {
        tx.save_session(&s)?;
    }
    Ok(())
}

fn put_state(tx: &mut Transaction<'_>, s: &UpdateState) -> Result<()> {
    if tx.update_state()?.unwrap_or_default() != *s {
        tx.save_update_state(s)?;
    }
    Ok(())
}

fn write_update_state(tx: &mut Transaction<'_>, snap: &UpdatesStateSnap) -> Result<()> {
    put_state(
        tx,
        &UpdateState {
            pts: snap.pts,
            qts: snap.qts,
            date: snap.date,
            seq: snap.seq,
        },
    )?;
    let list = read_channel_list(tx)?;
    write_channels(tx, &list, &snap.channels)
}

/// Replaces the channel list `old` (as stored) by `view`: the first entry
/// of each id the table accepts goes to the table, the rest inline; only
/// what changed is written, and table states no longer listed are deleted.
fn write_channels(
    tx: &mut Transaction<'_>,
    old: &[ChannelEntry],
    view: &[(i64, i32)],
) -> Result<()> {
    let mut seen = HashSet::new();
    let mut list = Vec::with_capacity(view.len());
    for &(id, pts) in view {
        let table = seen.insert(id) && check_channel_id(id).is_ok();
        if table {
            if tx.channel_pts(id)? != Some(pts) {
                tx.save_channel_pts(id, pts)?;
            }
            list.push(ChannelEntry { id, inline: None });
        } else {
            list.push(ChannelEntry {
                id,
                inline: Some(pts),
            });
        }
    }
    for c in old.iter() {
        if c.inline.is_none() && !list.iter().any(|n| n.inline.is_none() && n.id == c.id) {
            tx.delete_channel_state(c.id)?;
        }
    }
    if old != list.as_slice() || tx.meta(CHANNELS_KEY)?.is_none() {
        set_meta_if_changed(tx, CHANNELS_KEY, &encode_channels(&list))?;
    }
    Ok(())
}

/// The table record for ferogram's peer: the stored one (its names and
/// other fields kept) with ferogram's access hash and kind; `None` if the
/// stored record already says that.
fn table_peer(pid: PeerId, stored: Option<Peer>, peer: &CachedPeer) -> Option<Peer> {
    let mut p = stored.clone().unwrap_or_else(|| Peer::new(pid));
    drop_unsavable_names(&mut p);
    // A stored peer without a hash is hash 0 to ferogram: left as it is.
    let keep = p.access_hash.is_none() && peer.access_hash == 0;
    if pid.kind() != PeerKind::Chat && !keep {
        p.access_hash = Some(peer.access_hash);
        p.min = false;
    }
    if pid.kind() == PeerKind::Channel {
        p.channel_kind = peer.channel_kind.map(to_peerlog_kind);
    }
    if stored.as_ref() == Some(&p) {
        return None;
    }
    p.updated_at = unix_now();
    Some(p)
}

/// Drops the names of a stored peer that saving now refuses (see the
/// grammers adapter): keeping them would fail every later save of it.
fn drop_unsavable_names(p: &mut Peer) {
    p.username.take_if(|u| normalize_username(u).is_none());
    p.usernames.retain(|u| normalize_username(u).is_some());
    p.phone.take_if(|x| normalize_phone(x).is_none());
}

/// Replaces ferogram's whole session with `s`, writing the differences.
fn save_all(tx: &mut Transaction<'_>, s: &PersistedSession) -> Result<Index> {
    set_meta_if_changed(
        tx,
        SESSION_KEY,
        &encode_session_extra(&s.min_peers, s.future_auth_token.as_deref()),
    )?;
    write_dcs(tx, &s.dcs)?;
    write_home(tx, Some(s.home_dc_id), &s.dcs)?;
    write_update_state(tx, &s.updates_state)?;

    let old = stored_entries(tx)?;
    let mut seen = HashSet::new();
    let mut entries = Vec::with_capacity(s.peers.len());
    for (i, p) in s.peers.iter().enumerate() {
        entries.push((i as u64, Entry::of(p, seen.insert(p.id))));
    }
    let old_at: HashMap<u64, Entry> = old.iter().copied().collect();
    let listed: HashSet<i64> = s.peers.iter().map(|p| p.id).collect();
    for (pos, e) in &old {
        if *pos >= entries.len() as u64 {
            tx.delete_meta(&peer_key(*pos))?;
        }
        if let Some(id) = e.table_id()
            && !listed.contains(&e.id)
        {
            tx.delete_peer(id)?;
        }
    }
    let mut records = Vec::new();
    for ((pos, e), p) in entries.iter().zip(&s.peers) {
        if old_at.get(pos) != Some(e) {
            tx.set_meta(&peer_key(*pos), &e.encode())?;
        }
        if let Some(pid) = e.table_id() {
            let stored = tx.stored_peer(pid)?;
            records.extend(table_peer(pid, stored, p));
        }
    }
    tx.save_peers(&records)?;
    Ok(Index::rebuild(&entries))
}

/// Removes ferogram's session (see [`SessionBackend::delete`] above).
fn delete_all(tx: &mut Transaction<'_>) -> Result<()> {
    if tx.meta(SESSION_KEY)?.is_none() {
        return Ok(());
    }
    for (pos, e) in stored_entries(tx)? {
        if let Some(id) = e.table_id() {
            tx.delete_peer(id)?;
        }
        tx.delete_meta(&peer_key(pos))?;
    }
    write_dcs(tx, &[])?;
    for c in read_channel_list(tx)? {
        if c.inline.is_none() {
            tx.delete_channel_state(c.id)?;
        }
    }
    if tx
        .update_state()?
        .is_some_and(|s| s != UpdateState::default())
    {
        tx.save_update_state(&UpdateState::default())?;
    }
    tx.delete_session()?;
    for key in [SESSION_KEY, DCS_KEY, CHANNELS_KEY, COMPACT_KEY] {
        tx.delete_meta(key)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_roundtrip_and_reject_garbage() {
        let e = Entry {
            id: -1001234567890,
            flags: F_CHANNEL | F_WHOLE,
            kind: 1,
            hash: -5,
        };
        let buf = e.encode();
        assert_eq!(Entry::decode(&buf), Ok(e));
        for cut in 0..buf.len() {
            assert!(Entry::decode(&buf[..cut]).is_err());
        }
        let mut bad_flags = buf.clone();
        bad_flags[1] = 0x10;
        assert!(Entry::decode(&bad_flags).is_err());

        let min = vec![CachedMinPeer {
            user_id: 1,
            peer_id: -1001,
            msg_id: 3,
        }];
        let buf = encode_session_extra(&min, Some(b"tok"));
        let (m, t) = decode_session_extra(&buf).unwrap();
        assert_eq!(
            (m.len(), m[0].peer_id, t.as_deref()),
            (1, -1001, Some(&b"tok"[..]))
        );
        for cut in 0..buf.len() {
            assert!(decode_session_extra(&buf[..cut]).is_err());
        }

        let list = vec![
            ChannelEntry {
                id: 5,
                inline: None,
            },
            ChannelEntry {
                id: -1000000000005,
                inline: Some(7),
            },
        ];
        let buf = encode_channels(&list);
        assert_eq!(decode_channels(&buf), Ok(list));
        for cut in 0..buf.len() {
            assert!(decode_channels(&buf[..cut]).is_err());
        }

        let dcs = vec![DcEntry {
            dc_id: 2,
            addr: "[2001:b28:f23d:f001::a]:443".into(),
            auth_key: Some([9; 256]),
            first_salt: 4,
            time_offset: -3,
            flags: DcFlags::IPV6 | DcFlags::MEDIA_ONLY,
        }];
        let buf = encode_dcs(&dcs, &[KEY_INLINE]);
        let (back, places) = decode_dcs(&buf).unwrap();
        assert_eq!(places, [KEY_INLINE]);
        assert_eq!(format!("{back:?}"), format!("{dcs:?}"));
        for cut in 0..buf.len() {
            assert!(decode_dcs(&buf[..cut]).is_err());
        }
    }

    #[test]
    fn ids_keep_their_kind() {
        let mut p = CachedPeer {
            id: 1234567890,
            access_hash: 1,
            is_channel: true,
            is_chat: false,
            channel_kind: None,
            is_community: false,
        };
        assert_eq!(table_id(&p), Some(PeerId::channel(1234567890)));
        // A Bot API id given as a bare channel id: no table entry, never a
        // user.
        p.id = -1001234567890;
        assert_eq!(table_id(&p), None);
        assert_eq!(Entry::of(&p, true).flags & F_WHOLE, F_WHOLE);
        p.is_chat = true;
        p.id = 5;
        assert_eq!(table_id(&p), Some(PeerId::chat(5)));
        // A second entry for one bare id is whole.
        assert_eq!(Entry::of(&p, false).table_id(), None);
    }
}
