//! A local peerlog file as a write-through cache of a PostgreSQL account's
//! peers, so the hot path of every send (`access_hash`,
//! `resolve_username`) is a mapped index probe instead of a round trip.

use crate::Store;
use crate::account::Account;
use crate::error::Result;
use crate::session::{DcAuth, Session};
use crate::storage::Storage;
use crate::types::{ChannelState, Conversation, DurableUpdate, Peer, PeerId, UpdateState};

use super::PgStorage;

/// The metadata key of the cache account that holds the lease epoch the
/// cached peers are valid for.
const EPOCH_KEY: &str = "peerlog.pg_cache.epoch";

/// A [`PgStorage`] whose peers are cached in a local peerlog file: peer
/// writes go to PostgreSQL first, then to the file; peer lookups answer
/// from the file and fall back to PostgreSQL (filling the file) on a miss.
/// Everything else goes to PostgreSQL only.
///
/// Only the lease holder writes an account, so while this handle holds the
/// lease its file is exact. On open, the cache is kept only if no other
/// owner held the lease since it was last written (the lease epoch it
/// records is the one just before this handle's); otherwise it starts
/// empty. If a write to the file fails after PostgreSQL took it, the cache
/// is switched off for the life of the handle (every lookup goes to
/// PostgreSQL), never left stale.
///
/// Listing calls (`peers`, `peer_count`) go to PostgreSQL: the cache holds
/// only the peers this machine saw.
///
/// ```no_run
/// use peerlog::postgres::{PgCached, PgStorage};
/// use peerlog::{PeerId, Storage, Store};
/// let pg = PgStorage::open("host=db user=bots", "my-bot")?;
/// let cache = Store::open("/var/cache/bots/my-bot.peerlog")?;
/// let bot = PgCached::new(pg, &cache)?;
/// let hash = bot.access_hash(PeerId::user(42))?; // no round trip once cached
/// # Ok::<(), peerlog::Error>(())
/// ```
#[derive(Debug)]
pub struct PgCached {
    pg: PgStorage,
    local: Account,
    off: std::sync::atomic::AtomicBool,
}

impl PgCached {
    /// Puts `cache` (a peerlog file of this machine, one account per
    /// cached PostgreSQL account, named like it) in front of `pg`.
    pub fn new(pg: PgStorage, cache: &Store) -> Result<PgCached> {
        let mut local = cache.account(pg.name())?;
        let valid = local.meta(EPOCH_KEY)?.is_some_and(|v| {
            v.as_slice()
                .try_into()
                .is_ok_and(|b| i64::from_le_bytes(b) == pg.epoch() - 1)
        });
        if !valid {
            cache.remove_account(pg.name())?;
            local = cache.account(pg.name())?;
        }
        local.set_meta(EPOCH_KEY, &pg.epoch().to_le_bytes())?;
        cache.sync()?;
        Ok(PgCached {
            pg,
            local,
            off: false.into(),
        })
    }

    /// The PostgreSQL account.
    pub fn pg(&self) -> &PgStorage {
        &self.pg
    }

    /// Takes the PostgreSQL account back (the cache file keeps what it
    /// holds, valid for the next open by this owner).
    pub fn into_inner(self) -> PgStorage {
        self.pg
    }

    /// The local cache account.
    pub fn local(&self) -> &Account {
        &self.local
    }

    fn on(&self) -> bool {
        !self.off.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Applies a write to the cache; a failure switches the cache off.
    fn mirror(&self, f: impl FnOnce(&Account) -> Result<()>) {
        if self.on() && f(&self.local).is_err() {
            self.off.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Caches a peer fetched from PostgreSQL.
    fn fill(&self, p: &Option<Peer>) {
        if let Some(p) = p {
            self.mirror(|l| l.save_peer(p));
        }
    }
}

impl Storage for PgCached {
    fn session(&self) -> Result<Option<Session>> {
        self.pg.session()
    }
    fn save_session(&self, session: &Session) -> Result<()> {
        self.pg.save_session(session)
    }
    fn delete_session(&self) -> Result<bool> {
        self.pg.delete_session()
    }
    fn dc_auth(&self, dc_id: i32) -> Result<Option<DcAuth>> {
        self.pg.dc_auth(dc_id)
    }
    fn save_dc_auth(&self, auth: &DcAuth) -> Result<()> {
        self.pg.save_dc_auth(auth)
    }
    fn dc_auths(&self) -> Result<Vec<DcAuth>> {
        self.pg.dc_auths()
    }
    fn delete_dc_auth(&self, dc_id: i32) -> Result<bool> {
        self.pg.delete_dc_auth(dc_id)
    }

    fn save_peers(&self, peers: &[Peer]) -> Result<()> {
        self.pg.save_peers(peers)?;
        self.mirror(|l| l.save_peers(peers));
        Ok(())
    }
    fn peer(&self, id: PeerId) -> Result<Option<Peer>> {
        if self.on()
            && let Ok(Some(p)) = self.local.peer(id)
        {
            return Ok(Some(p));
        }
        let p = self.pg.peer(id)?;
        self.fill(&p);
        Ok(p)
    }
    fn delete_peer(&self, id: PeerId) -> Result<bool> {
        let r = self.pg.delete_peer(id)?;
        self.mirror(|l| l.delete_peer(id).map(drop));
        Ok(r)
    }
    fn peers(&self) -> Result<Vec<Peer>> {
        self.pg.peers()
    }
    fn peer_count(&self) -> Result<u64> {
        self.pg.peer_count()
    }
    fn access_hash(&self, id: PeerId) -> Result<Option<i64>> {
        if self.on()
            && let Ok(Some(hash)) = self
                .local
                .store()
                .peer_access_hash(self.local.number(), id.bot_api())
        {
            return Ok(hash);
        }
        let p = self.pg.peer(id)?;
        self.fill(&p);
        Ok(p.and_then(|p| p.access_hash))
    }
    fn peer_by_username(&self, username: &str) -> Result<Option<Peer>> {
        if self.on()
            && let Ok(Some(p)) = self.local.peer_by_username(username)
        {
            return Ok(Some(p));
        }
        let p = self.pg.peer_by_username(username)?;
        self.fill(&p);
        Ok(p)
    }
    fn peer_by_phone(&self, phone: &str) -> Result<Option<Peer>> {
        if self.on()
            && let Ok(Some(p)) = self.local.peer_by_phone(phone)
        {
            return Ok(Some(p));
        }
        let p = self.pg.peer_by_phone(phone)?;
        self.fill(&p);
        Ok(p)
    }
    fn resolve_username(&self, username: &str) -> Result<Option<(PeerId, Option<i64>)>> {
        if self.on()
            && let Ok(Some(r)) = self.local.resolve_username(username)
        {
            return Ok(Some(r));
        }
        let p = self.pg.peer_by_username(username)?;
        self.fill(&p);
        Ok(p.map(|p| (p.id, p.access_hash)))
    }

    fn update_state(&self) -> Result<Option<UpdateState>> {
        self.pg.update_state()
    }
    fn save_update_state(&self, state: &UpdateState) -> Result<()> {
        self.pg.save_update_state(state)
    }
    fn channel_pts(&self, channel_id: i64) -> Result<Option<i32>> {
        self.pg.channel_pts(channel_id)
    }
    fn save_channel_pts(&self, channel_id: i64, pts: i32) -> Result<()> {
        self.pg.save_channel_pts(channel_id, pts)
    }
    fn channel_states(&self) -> Result<Vec<ChannelState>> {
        self.pg.channel_states()
    }
    fn delete_channel_state(&self, channel_id: i64) -> Result<bool> {
        self.pg.delete_channel_state(channel_id)
    }
    fn save_peers_and_state(
        &self,
        peers: &[Peer],
        state: Option<&UpdateState>,
        channels: &[ChannelState],
    ) -> Result<()> {
        self.pg.save_peers_and_state(peers, state, channels)?;
        self.mirror(|l| l.save_peers(peers));
        Ok(())
    }

    fn insert_dedup_key(&self, key: &[u8]) -> Result<bool> {
        self.pg.insert_dedup_key(key)
    }
    fn has_dedup_key(&self, key: &[u8]) -> Result<bool> {
        self.pg.has_dedup_key(key)
    }
    fn enqueue(&self, id: &str, payload: &[u8]) -> Result<bool> {
        self.pg.enqueue(id, payload)
    }
    fn pending(&self, limit: usize) -> Result<Vec<DurableUpdate>> {
        self.pg.pending(limit)
    }
    fn ack(&self, id: &str) -> Result<bool> {
        self.pg.ack(id)
    }
    fn mark_failed(&self, id: &str, error: &str) -> Result<u32> {
        self.pg.mark_failed(id, error)
    }
    fn conversation(&self, chat_id: i64, user_id: i64) -> Result<Option<Conversation>> {
        self.pg.conversation(chat_id, user_id)
    }
    fn save_conversation(&self, conversation: &Conversation) -> Result<()> {
        self.pg.save_conversation(conversation)
    }
    fn delete_conversation(&self, chat_id: i64, user_id: i64) -> Result<bool> {
        self.pg.delete_conversation(chat_id, user_id)
    }
    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.pg.meta(key)
    }
    fn set_meta(&self, key: &str, value: &[u8]) -> Result<()> {
        self.pg.set_meta(key, value)
    }
    fn delete_meta(&self, key: &str) -> Result<bool> {
        self.pg.delete_meta(key)
    }
}
