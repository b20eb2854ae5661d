//! The peer table as the engine holds it in memory: the mapped generation
//! ([`PeerGen`]), the overlay of peers changed since it was written, the
//! owners of the names changed since, and applying a peer op to them.

use crate::error::{Error, Result};
use crate::format::index::{self, NameKind, name_hash};
use crate::format::peer_record::{self, PeerRecordRef};
use crate::format::segment;
use crate::peers::generation::{PeerGen, has_name, same};
use crate::peers::lookup::{Found, Lookup};
use crate::sys::bytes::Bytes;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

/// Hasher for keys that are already well-mixed or small integers.
#[derive(Default, Clone, Copy)]
pub(crate) struct MixHasher(u64);

impl Hasher for MixHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0 ^ u64::from_le_bytes(w))
                .rotate_left(29)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
        let mut tail = [0u8; 8];
        tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        self.0 = index::fmix64(self.0 ^ u64::from_le_bytes(tail) ^ bytes.len() as u64);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = index::fmix64(self.0 ^ n);
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(n as u64)
    }
}

pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<MixHasher>>;

/// Owners of names (usernames, phones) changed since a point: since the
/// generation in [`PeerState`], since the batch start in the writer.
#[derive(Debug, Default)]
pub(crate) struct NameOwners(FastMap<u64, NameEntry>);

/// One name and its owner; names whose hashes collide are chained.
#[derive(Debug)]
struct NameEntry {
    kind: NameKind,
    account: u32,
    /// As given; compared per [`same`]. Inline when short (most names
    /// are), saving an allocation per changed name.
    name: Bytes,
    owner: Option<u64>,
    next: Option<Box<NameEntry>>,
}

impl NameEntry {
    fn is(&self, kind: NameKind, account: u32, name: &str) -> bool {
        self.kind == kind && self.account == account && same(kind, &self.name, name.as_bytes())
    }
}

impl NameOwners {
    /// The hashes of every name here.
    pub fn hashes(&self) -> impl ExactSizeIterator<Item = u64> + '_ {
        self.0.keys().copied()
    }

    /// `None`: not changed here; `Some(None)`: released. `hash` is
    /// [`name_hash`] of the other arguments.
    #[inline]
    pub fn get(&self, hash: u64, kind: NameKind, account: u32, name: &str) -> Option<Option<u64>> {
        if self.0.is_empty() {
            return None;
        }
        let mut e = self.0.get(&hash)?;
        loop {
            if e.is(kind, account, name) {
                return Some(e.owner);
            }
            e = e.next.as_deref()?;
        }
    }

    pub fn set(&mut self, hash: u64, kind: NameKind, account: u32, name: &str, owner: Option<u64>) {
        let new = || NameEntry {
            kind,
            account,
            name: name.as_bytes().into(),
            owner,
            next: None,
        };
        let mut e = match self.0.entry(hash) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(new());
                return;
            }
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
        };
        loop {
            if e.is(kind, account, name) {
                e.owner = owner;
                return;
            }
            e = e.next.get_or_insert_with(|| Box::new(new()));
        }
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }
}

/// A record's account and names, copied out of it.
pub(crate) type OldNames = (u32, Vec<(NameKind, Box<str>)>);

pub(crate) fn old_names(r: &PeerRecordRef<'_>) -> OldNames {
    (
        r.account(),
        names_of(r).map(|(k, n)| (k, n.into())).collect(),
    )
}

/// Names a record answers to.
pub(crate) fn names_of<'a>(
    r: &PeerRecordRef<'a>,
) -> impl Iterator<Item = (NameKind, &'a str)> + 'a {
    r.usernames()
        .map(|u| (NameKind::Username, u))
        .chain(r.phone().map(|p| (NameKind::Phone, p)))
}

#[derive(Debug)]
pub(crate) struct PeerState {
    pub table: Arc<PeerGen>,
    /// Peers changed since `table`: the new record, or `None` if deleted.
    pub overlay: FastMap<u64, Option<Box<[u8]>>>,
    names: NameOwners,
    /// While the log is replayed at open (no reader exists yet), changed
    /// peers (collected here) and names are given to `lookup` once at the
    /// end rather than one by one.
    replaying: bool,
    replayed: Vec<(u64, Option<Found>)>,
    pub live: u64,
    /// Peers per account, counted on first use, then kept up to date; a
    /// mutex so counting needs only the state's read lock.
    pub per_account: parking_lot::Mutex<Option<FastMap<u32, u64>>>,
    /// `table` and the access hashes of `overlay`, for lock-free lookups.
    pub lookup: Arc<Lookup>,
}

impl PeerState {
    pub fn new(table: Arc<PeerGen>) -> PeerState {
        let live = table.header.peer_count;
        PeerState {
            lookup: Arc::new(Lookup::new(table.clone())),
            table,
            overlay: FastMap::default(),
            names: NameOwners::default(),
            replaying: false,
            replayed: Vec::new(),
            live,
            per_account: parking_lot::Mutex::new(None),
        }
    }

    /// A peer's overlay entry: `None` when it has not changed since the
    /// generation, `Some(None)` when it was deleted since.
    #[inline]
    pub fn changed(&self, key: u64) -> Option<Option<&[u8]>> {
        if self.overlay.is_empty() {
            return None;
        }
        self.overlay.get(&key).map(|e| e.as_deref())
    }

    /// The current record of a peer.
    pub fn record(&self, key: u64) -> Result<Option<PeerRecordRef<'_>>> {
        let table = &self.table;
        let slot = table.view().get(key).map_err(|d| table.damaged(d))?;
        self.record_in_slot(key, slot.map(|s| s.offset()))
    }

    /// The stored bytes of a peer's current record, unchecked: `None` when
    /// there is none or it is too short to hold `key`. For comparing with
    /// a checked record, which proves the stored one sound when equal.
    pub fn record_bytes_in_slot(&self, key: u64, slot: Option<u64>) -> Option<&[u8]> {
        let p = self;
        if let Some(e) = p.changed(key) {
            return e;
        }
        let b = segment::peer_at(&p.table.seg, slot? as usize).ok()?;
        (b.len() >= peer_record::FIXED_LEN && peer_record::key_of(b) == key).then_some(b)
    }

    /// [`PeerState::record`], given where the generation's index put `key`
    /// (as [`PeerState::prefetch`] found it).
    pub fn record_in_slot(&self, key: u64, slot: Option<u64>) -> Result<Option<PeerRecordRef<'_>>> {
        let p = self;
        if let Some(e) = p.changed(key) {
            return Ok(e.and_then(|b| PeerRecordRef::checked_before(b).ok()));
        }
        match slot {
            Some(off) => p.table.record_at(off, key).map(Some),
            None => Ok(None),
        }
    }

    /// Brings the index slots and segment records of `keys` into cache,
    /// all misses of a pass in flight at once; the batch's probes then
    /// find them there instead of waiting for each miss in turn.
    ///
    /// Returns where the generation's index puts each key, for
    /// [`PeerState::record_in_slot`], so that the batch probes once per peer.
    pub fn prefetch(&self, keys: &[u64]) -> Result<Vec<Option<u64>>> {
        let table = &self.table;
        let ids = table.view().id_table();
        let mut acc = 0u64;
        if keys.len() > 1 {
            for &k in keys {
                acc ^= ids.touch(k);
            }
        }
        let slots = keys
            .iter()
            .map(|&k| {
                let Some(slot) = ids.get(k).map_err(|d| table.damaged(d))? else {
                    return Ok(None);
                };
                let off = slot.offset();
                acc ^= table.seg.get(off as usize).copied().unwrap_or(0) as u64;
                Ok(Some(off))
            })
            .collect();
        std::hint::black_box(acc);
        slots
    }

    /// The hot path: access hash and flags straight from the id slot (or
    /// the overlay record), without parsing or allocating.
    #[inline]
    pub fn hash_of(&self, key: u64) -> Result<Option<(Option<i64>, u8)>> {
        let p = self;
        if let Some(e) = p.changed(key) {
            return Ok(e.map(peer_record::hash_and_flags));
        }
        match p.table.view().get(key) {
            Ok(s) => Ok(s.map(|s| (s.access_hash(), s.flags()))),
            Err(d) => Err(p.table.damaged(d)),
        }
    }

    /// The peer key that currently owns a username or phone.
    pub fn owner(&self, kind: NameKind, account: u32, name: &str) -> Result<Option<u64>> {
        Ok(self.resolve_name(kind, account, name)?.map(|(key, _)| key))
    }

    /// The peer key owning a name, with that peer's access hash, from one
    /// probe of the name table and the record it points at.
    pub fn resolve_name(
        &self,
        kind: NameKind,
        account: u32,
        name: &str,
    ) -> Result<Option<(u64, Option<i64>)>> {
        self.resolve_name_hashed(name_hash(kind, account, name), kind, account, name)
    }

    /// [`PeerState::resolve_name`] with the name's hash already computed.
    pub fn resolve_name_hashed(
        &self,
        hash: u64,
        kind: NameKind,
        account: u32,
        name: &str,
    ) -> Result<Option<(u64, Option<i64>)>> {
        let p = self;
        if let Some(owner) = p.names.get(hash, kind, account, name) {
            return match owner {
                Some(key) => Ok(Some((key, self.hash_of(key)?.and_then(|(h, _)| h)))),
                None => Ok(None),
            };
        }
        let Some(rec) = p.table.name_owner(hash, kind, account, name)? else {
            return Ok(None);
        };
        let key = rec.key();
        // The generation says `key` had the name; the overlay may have
        // changed that peer since.
        Ok(match p.changed(key) {
            None => Some((key, rec.access_hash())),
            Some(now) => now
                .and_then(|b| PeerRecordRef::checked_before(b).ok())
                .filter(|r| has_name(r, kind, name))
                .map(|r| (key, r.access_hash())),
        })
    }

    fn set_owner(&mut self, kind: NameKind, account: u32, name: &str, owner: Option<u64>) {
        let hash = name_hash(kind, account, name);
        // Lock-free readers stop trusting the generation for this name
        // before its owner changes.
        if !self.replaying {
            self.lookup.name_changed(hash);
        }
        self.names.set(hash, kind, account, name, owner);
    }

    /// Applies a peer record (already validated and resolved by the writer):
    /// its names, the lock-free lookups, the overlay. `seg_dead` counts the
    /// generation's bytes the change supersedes.
    pub fn put(&mut self, bytes: Vec<u8>, seg_dead: &mut u64) -> Result<()> {
        let new = PeerRecordRef::checked_before(&bytes)
            .map_err(|_| Error::Invalid("malformed peer record".into()))?;
        let key = new.key();
        let old = self.before_change(key, seg_dead)?;
        self.release_names(key, old.as_ref(), Some(&new))?;
        for (kind, name) in names_of(&new) {
            // A name the peer already had stays its own (the writer
            // takes a name from its old holder in the same commit):
            // leaving it alone keeps it resolving without a lock.
            let had = old.as_ref().is_some_and(|(_, names)| {
                names
                    .iter()
                    .any(|(k, n)| *k == kind && same(kind, n.as_bytes(), name.as_bytes()))
            });
            if !had {
                self.set_owner(kind, new.account(), name, Some(key));
            }
        }
        self.publish(key, Some((new.access_hash(), new.flags())));
        self.overlay.insert(key, Some(bytes.into_boxed_slice()));
        Ok(())
    }

    /// Applies the deletion of a peer (nothing if it does not exist).
    pub fn delete(&mut self, key: u64, seg_dead: &mut u64) -> Result<()> {
        let Some(old) = self.before_change(key, seg_dead)? else {
            return Ok(());
        };
        self.release_names(key, Some(&old), None)?;
        self.publish(key, None);
        self.overlay.insert(key, None);
        self.live -= 1;
        let account = crate::format::peer_record::split_key(key).0;
        if let Some(c) = self
            .per_account
            .get_mut()
            .as_mut()
            .and_then(|m| m.get_mut(&account))
        {
            *c -= 1;
        }
        Ok(())
    }

    /// The account and names `key` has before a change (`None`: no such
    /// peer), found with one probe; the first change since the
    /// generation also marks the peer's segment bytes dead.
    fn before_change(&self, key: u64, seg_dead: &mut u64) -> Result<Option<OldNames>> {
        let p = self;
        let rec = match p.changed(key) {
            Some(e) => e.and_then(|b| PeerRecordRef::checked_before(b).ok()),
            None => match p.table.view().get(key).map_err(|d| p.table.damaged(d))? {
                Some(slot) => {
                    let rec = p.table.record_at(slot.offset(), key)?;
                    *seg_dead += segment::peer_entry_len(rec.bytes().len()) as u64;
                    Some(rec)
                }
                None => None,
            },
        };
        Ok(rec.map(|r| old_names(&r)))
    }

    /// Before `key` changes to `new` (or is deleted): names it held and
    /// no longer holds stop resolving to it; a new peer is counted.
    fn release_names(
        &mut self,
        key: u64,
        old: Option<&OldNames>,
        new: Option<&PeerRecordRef<'_>>,
    ) -> Result<()> {
        let Some((account, names)) = old else {
            if new.is_some() {
                self.live += 1;
                let account = crate::format::peer_record::split_key(key).0;
                if let Some(m) = self.per_account.get_mut().as_mut() {
                    *m.entry(account).or_default() += 1;
                }
            }
            return Ok(());
        };
        for (kind, name) in names {
            let kept = new.is_some_and(|r| has_name(r, *kind, name));
            // A name the peer lost to another peer in the same commit is
            // already that peer's.
            if !kept && self.owner(*kind, *account, name)? == Some(key) {
                self.set_owner(*kind, *account, name, None);
            }
        }
        Ok(())
    }

    /// Brackets the replay of the log at open: until `false`, changed names
    /// are only kept in the state, then handed to the lock-free lookups in
    /// one table of the right size (growing it name by name was a visible
    /// share of an open with a long log tail, the peers' table likewise;
    /// benches/README.md, "Figures behind design choices").
    pub fn replaying(&mut self, on: bool) {
        let p = self;
        if p.replaying && !on {
            p.lookup.set_many(std::mem::take(&mut p.replayed));
            p.lookup.names_changed(p.names.hashes());
        }
        p.replaying = on;
    }

    /// A peer's new access hash and flags (`None`: deleted) for the
    /// lock-free lookups.
    fn publish(&mut self, key: u64, value: Option<Found>) {
        if self.replaying {
            self.replayed.push((key, value));
        } else {
            self.lookup.set(key, value);
        }
    }

    /// Drops the overlay once a new generation holds all of it.
    pub fn install_gen(&mut self, table: Arc<PeerGen>) {
        self.lookup.install(table.clone());
        self.table = table;
        self.overlay.clear();
        self.names.clear();
    }

    /// Peer count per account, computed on first use and then maintained.
    pub fn account_peer_count(&self, account: u32) -> Result<u64> {
        let mut counts = self.per_account.lock();
        if counts.is_none() {
            let mut m = FastMap::<u32, u64>::default();
            for key in self.peer_keys(None)? {
                *m.entry(crate::format::peer_record::split_key(key).0)
                    .or_default() += 1;
            }
            *counts = Some(m);
        }
        Ok(counts
            .as_ref()
            .and_then(|m| m.get(&account))
            .copied()
            .unwrap_or(0))
    }

    /// Keys of every live peer (of one account, if given).
    pub fn peer_keys(&self, account: Option<u32>) -> Result<Vec<u64>> {
        let p = self;
        let mut out = Vec::new();
        for e in p.table.records() {
            let (_, r) = e?;
            if account.is_none_or(|a| a == r.account()) && !p.overlay.contains_key(&r.key()) {
                out.push(r.key());
            }
        }
        for (k, v) in &p.overlay {
            if v.is_some()
                && account.is_none_or(|a| a == crate::format::peer_record::split_key(*k).0)
            {
                out.push(*k);
            }
        }
        Ok(out)
    }
}
