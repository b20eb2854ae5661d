//! Engine-level peer table calls: records as the engine stores them, by
//! account number and Bot API id. Hidden from the docs: the one public
//! peer API is [`crate::Account`]'s (typed [`crate::PeerId`], the same
//! answers). These stay callable for the engine's own tests, the fuzz
//! targets and the benchmarks, which work below the typed layer.

use crate::engine::store::Store;
use crate::error::{Error, Result};
use crate::format::index::{NameKind, name_hash};
use crate::format::peer_record::{PeerRecord, peer_key, split_key};
use crate::peers::merge::{Change, RecordList};
use crate::types::normalize_phone;

impl Store {
    /// Saves engine peer records in one atomic commit. Merge rules: a min
    /// record or one without an access hash never replaces a known full
    /// access hash; a record equal to the stored one writes nothing; a
    /// username or phone taken from another peer is removed from it.
    #[doc(hidden)]
    pub fn put_peer_records(&self, records: Vec<PeerRecord>) -> Result<()> {
        self.put_peer_records_with(records, false)
    }

    pub(crate) fn put_peer_records_with(&self, records: Vec<PeerRecord>, sync: bool) -> Result<()> {
        let mut list = RecordList::with_capacity(records.len());
        for r in &records {
            list.push(&r.encode_checked().map_err(Error::Invalid)?);
        }
        self.transact(sync, |_| Ok((vec![Change::Peers(list)], ())))
    }

    /// Deletes a peer; true if it existed.
    #[doc(hidden)]
    pub fn delete_peer_record(&self, account: u32, peer_id: i64) -> Result<bool> {
        let key = peer_key(account, peer_id);
        self.transact(false, |st| {
            let exists = st.peers.record(key)?.is_some();
            Ok((
                if exists {
                    vec![Change::DeletePeer(key)]
                } else {
                    vec![]
                },
                exists,
            ))
        })
    }

    /// The stored record of a peer.
    #[doc(hidden)]
    pub fn peer_record(&self, account: u32, peer_id: i64) -> Result<Option<PeerRecord>> {
        self.read(|st| {
            Ok(st
                .peers
                .record(peer_key(account, peer_id))?
                .map(|r| r.to_owned()))
        })
    }

    /// The access hash of a peer: `None` if the peer is unknown,
    /// `Some(None)` if it is known without one. The hot path: no
    /// allocation, no syscall.
    #[inline]
    ///
    /// An index slot that fails its check gives [`crate::Error::Corrupt`]
    /// (see [`crate::Store::repair`]), never a wrong answer.
    #[doc(hidden)]
    pub fn peer_access_hash(&self, account: u32, peer_id: i64) -> Result<Option<Option<i64>>> {
        Ok(self.peer_hash(account, peer_id)?.map(|(h, _)| h))
    }

    /// The peer id owning a username (ASCII case-insensitive).
    #[doc(hidden)]
    pub fn peer_id_by_username(&self, account: u32, username: &str) -> Result<Option<i64>> {
        Ok(self
            .name_owner(NameKind::Username, account, username)?
            .map(|(k, _)| split_key(k).1))
    }

    /// The peer id owning a username and its access hash, from one index
    /// probe: what an outgoing call needs, without decoding the peer.
    #[doc(hidden)]
    pub fn resolve_username(
        &self,
        account: u32,
        username: &str,
    ) -> Result<Option<(i64, Option<i64>)>> {
        Ok(self
            .name_owner(NameKind::Username, account, username)?
            .map(|(k, h)| (split_key(k).1, h)))
    }

    /// The peer id owning a phone number and its access hash. The query
    /// goes through [`normalize_phone`] first, as on every typed lookup
    /// (the typed API stores phones normalized), so `"+1 (555) 123 4567"`
    /// finds `"15551234567"`; a record whose phone is stored otherwise (put
    /// through [`crate::Store::put_peer_records`]) is still found by its exact
    /// bytes.
    #[doc(hidden)]
    pub fn resolve_phone(&self, account: u32, phone: &str) -> Result<Option<(i64, Option<i64>)>> {
        if let Some(n) = normalize_phone(phone).filter(|n| n != phone)
            && let Some((k, h)) = self.name_owner(NameKind::Phone, account, &n)?
        {
            return Ok(Some((split_key(k).1, h)));
        }
        Ok(self
            .name_owner(NameKind::Phone, account, phone)?
            .map(|(k, h)| (split_key(k).1, h)))
    }

    /// The peer id owning a phone number: see [`crate::Store::resolve_phone`] for
    /// how the query is normalized.
    #[doc(hidden)]
    pub fn peer_id_by_phone(&self, account: u32, phone: &str) -> Result<Option<i64>> {
        Ok(self.resolve_phone(account, phone)?.map(|(id, _)| id))
    }

    /// The key owning a name and its access hash: without a lock when the
    /// name's owner has not changed since the generation, else under the
    /// state's read lock.
    fn name_owner(
        &self,
        kind: NameKind,
        account: u32,
        name: &str,
    ) -> Result<Option<(u64, Option<i64>)>> {
        let hash = name_hash(kind, account, name);
        match self.lookup().name(hash, kind, account, name) {
            Some(found) => Ok(found),
            None => self.read(|st| st.peers.resolve_name_hashed(hash, kind, account, name)),
        }
    }

    /// Ids of every peer of an account.
    #[doc(hidden)]
    pub fn peer_ids(&self, account: u32) -> Result<Vec<i64>> {
        self.read(|st| {
            Ok(st
                .peers
                .peer_keys(Some(account))?
                .into_iter()
                .map(|k| split_key(k).1)
                .collect())
        })
    }

    /// Number of peers of an account (counted once, then kept up to date).
    #[doc(hidden)]
    pub fn peer_record_count(&self, account: u32) -> Result<u64> {
        self.read(|st| st.peers.account_peer_count(account))
    }
}
