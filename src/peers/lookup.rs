//! Lock-free access-hash lookups by peer id, the hot path of every update
//! and every send.
//!
//! A [`View`] pairs the mapped peer generation with [`Recent`]: the access
//! hash and flags of each peer changed since that generation, in a table
//! of atomics that the writer updates in place while readers probe it.
//! The view itself sits in an [`Rcu`] cell, replaced when a checkpoint
//! installs a new generation or `Recent` grows, so a reader takes no lock.
//!
//! Each entry is a small seqlock: the writer makes `meta` odd, writes the
//! hash, and makes `meta` even again; a reader retries if `meta` changed
//! under it. A reader sees every peer individually as of some commit; a
//! commit that changes several peers is not atomic across them here (the
//! state's read lock gives that, for readers who need it).
//!
//! Names resolve without a lock too, through the generation's name tables,
//! unless [`ChangedNames`] says the name's owner may have changed since the
//! generation: then the caller asks the state under its read lock. The
//! writer adds a name there before the state changes its owner, so a
//! reader that does not find it there reads an owner that was right as of
//! some commit. (Every reader writes the read lock's counter, so readers
//! on several threads contend on its cache line; figures:
//! benches/README.md, "Figures behind design choices".)

use crate::format::index::{Damaged, IdAnswer, IdTable, NameKind, id_hash};
use crate::peers::generation::PeerGen;
use crate::sys::rcu::Rcu;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering, fence};

/// What a lookup answers: access hash (if the record has one) and flags.
pub(crate) type Found = (Option<i64>, u8);

/// `key` of an empty entry: no peer key has all 64 bits set (the account
/// number is below 2^22).
const EMPTY: u64 = u64::MAX;
const DELETED: u64 = 1 << 8;
const HAS_HASH: u64 = crate::format::peer_record::HAS_HASH as u64;
const VERSION: u64 = 1 << 32;

#[derive(Debug)]
struct Entry {
    key: AtomicU64,
    hash: AtomicU64,
    /// Flags (bits 0..8), deleted (bit 8), version (bits 32..64, odd while
    /// the writer changes the entry).
    meta: AtomicU64,
}

/// Peers changed since the generation: open addressing, linear probing,
/// power-of-two size, at most half full, never shrinks (a new generation
/// comes with a new, empty table).
///
/// A bit array in front of the entries (four bits per slot, one set per
/// key, never cleared) answers most lookups of unchanged peers: a bot that
/// re-saves peers all day keeps this table large, and probing it cost
/// every id lookup a second cache miss (figures: benches/README.md,
/// "Figures behind design choices").
#[derive(Debug)]
pub(crate) struct Recent {
    entries: Box<[Entry]>,
    filter: Box<[AtomicU64]>,
    len: AtomicUsize,
}

impl Recent {
    fn with_capacity(slots: usize) -> Recent {
        let slots = slots.next_power_of_two().max(16);
        Recent {
            entries: (0..slots)
                .map(|_| Entry {
                    key: AtomicU64::new(EMPTY),
                    hash: AtomicU64::new(0),
                    meta: AtomicU64::new(0),
                })
                .collect(),
            // 4 bits per slot: 64 bits per 16 slots.
            filter: (0..slots / 16).map(|_| AtomicU64::new(0)).collect(),
            len: AtomicUsize::new(0),
        }
    }

    fn slot(&self, hash: u64) -> usize {
        hash as usize & (self.entries.len() - 1)
    }

    /// The word and bit in the filter of a key with this [`id_hash`],
    /// from the hash bits the slot does not use (the table has far fewer
    /// than 2^32 slots).
    #[inline]
    fn filter_bit(&self, hash: u64) -> (&AtomicU64, u64) {
        // The word from bits 32.., the bit from the top six.
        let word = (hash >> 32) as usize & (self.filter.len() - 1);
        (&self.filter[word], 1 << (hash >> 58))
    }

    /// `None`: not changed since the generation; `Some(None)`: deleted.
    #[inline]
    pub fn get(&self, key: u64) -> Option<Option<Found>> {
        self.get_hashed(key, id_hash(key))
    }

    /// [`Recent::get`] given the key's [`id_hash`], which the caller
    /// shares with the generation's probe.
    #[inline(always)]
    fn get_hashed(&self, key: u64, hash: u64) -> Option<Option<Found>> {
        if self.len.load(Ordering::Relaxed) == 0 {
            return None;
        }
        // The writer sets the bit before it publishes the entry, so a
        // clear bit is an entry this reader could not have seen anyway.
        let (word, bit) = self.filter_bit(hash);
        if word.load(Ordering::Relaxed) & bit == 0 {
            return None;
        }
        let mask = self.entries.len() - 1;
        let mut i = self.slot(hash);
        loop {
            let e = &self.entries[i];
            match e.key.load(Ordering::Acquire) {
                k if k == key => return Some(e.read()),
                EMPTY => return None,
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Writer only: sets a peer's entry (`None`: deleted). Returns false
    /// when the table is too full to insert; the caller grows it.
    fn set(&self, key: u64, value: Option<Found>) -> bool {
        // The flags' HAS_HASH bit says whether the hash is there, as in
        // the record the value came from.
        let (hash, meta) = match value {
            None => (0, DELETED),
            Some((h, flags)) => (h.unwrap_or(0) as u64, flags as u64),
        };
        let hashed = id_hash(key);
        let mask = self.entries.len() - 1;
        let mut i = self.slot(hashed);
        loop {
            let e = &self.entries[i];
            match e.key.load(Ordering::Relaxed) {
                k if k == key => {
                    let v = e.meta.load(Ordering::Relaxed) & !(VERSION - 1);
                    e.meta.store(v + VERSION, Ordering::Relaxed);
                    fence(Ordering::Release);
                    e.hash.store(hash, Ordering::Relaxed);
                    e.meta.store((v + 2 * VERSION) | meta, Ordering::Release);
                    return true;
                }
                EMPTY => {
                    if (self.len.load(Ordering::Relaxed) + 1) * 2 > self.entries.len() {
                        return false;
                    }
                    let (word, bit) = self.filter_bit(hashed);
                    word.store(word.load(Ordering::Relaxed) | bit, Ordering::Relaxed);
                    e.hash.store(hash, Ordering::Relaxed);
                    e.meta.store(meta, Ordering::Relaxed);
                    // Publishes the filter bit, hash and meta with the key.
                    e.key.store(key, Ordering::Release);
                    // One writer: a store, not a locked read-modify-write.
                    let len = self.len.load(Ordering::Relaxed);
                    self.len.store(len + 1, Ordering::Relaxed);
                    return true;
                }
                _ => i = (i + 1) & mask,
            }
        }
    }

    fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    fn entries(&self) -> impl Iterator<Item = (u64, Option<Found>)> + '_ {
        self.entries.iter().filter_map(|e| {
            let k = e.key.load(Ordering::Relaxed);
            (k != EMPTY).then(|| (k, e.read()))
        })
    }
}

impl Entry {
    #[inline]
    fn read(&self) -> Option<Found> {
        loop {
            let m1 = self.meta.load(Ordering::Acquire);
            let hash = self.hash.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            let m2 = self.meta.load(Ordering::Relaxed);
            if m1 == m2 && m1 & VERSION == 0 {
                if m1 & DELETED != 0 {
                    return None;
                }
                let flags = m1 as u8;
                return Some(((m1 & HAS_HASH != 0).then_some(hash as i64), flags));
            }
            std::hint::spin_loop();
        }
    }
}

/// Hashes ([`crate::format::index::name_hash`]) of the names whose owner
/// may have changed since the generation: a set under the same rules as
/// [`Recent`] (the writer inserts, readers probe; at most half full; 0, a
/// hash no name has, marks an empty slot). Two names with one hash share
/// an entry, which only sends both to the locked path.
#[derive(Debug)]
struct ChangedNames {
    slots: Box<[AtomicU64]>,
    len: AtomicUsize,
}

impl ChangedNames {
    fn with_capacity(slots: usize) -> ChangedNames {
        let slots = slots.next_power_of_two().max(16);
        ChangedNames {
            slots: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            len: AtomicUsize::new(0),
        }
    }

    #[inline]
    fn contains(&self, hash: u64) -> bool {
        if self.len.load(Ordering::Acquire) == 0 {
            return false;
        }
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            match self.slots[i].load(Ordering::Acquire) {
                h if h == hash => return true,
                0 => return false,
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Writer only. False when the set is too full to insert.
    fn insert(&self, hash: u64) -> bool {
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            match self.slots[i].load(Ordering::Relaxed) {
                h if h == hash => return true,
                0 => {
                    if (self.len.load(Ordering::Relaxed) + 1) * 2 > self.slots.len() {
                        return false;
                    }
                    self.slots[i].store(hash, Ordering::Release);
                    // One writer: a store, not a locked read-modify-write.
                    let len = self.len.load(Ordering::Relaxed);
                    self.len.store(len + 1, Ordering::Release);
                    return true;
                }
                _ => i = (i + 1) & mask,
            }
        }
    }

    fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    fn hashes(&self) -> impl Iterator<Item = u64> + '_ {
        self.slots
            .iter()
            .map(|h| h.load(Ordering::Relaxed))
            .filter(|&h| h != 0)
    }
}

/// A generation and the changes since it.
#[derive(Debug)]
pub(crate) struct View {
    table: Arc<PeerGen>,
    /// The id table's bytes within `table.index`, found once.
    ids: Range<usize>,
    /// Slots in the id table.
    slots: usize,
    /// Shared with the view that replaces this one when only the other
    /// table grows: growing one must not copy the other.
    recent: Arc<Recent>,
    names: Arc<ChangedNames>,
}

impl View {
    fn new(table: Arc<PeerGen>, recent: Arc<Recent>, names: Arc<ChangedNames>) -> View {
        let t = table.view().id_table();
        View {
            ids: t.range_in(&table.index),
            slots: t.range_in(&table.index).len()
                / std::mem::size_of::<crate::format::index::IdSlot>(),
            table,
            recent,
            names,
        }
    }

    /// A damaged slot answers [`DAMAGED`] in the flags (a bit no record
    /// has): the hot path keeps the small answer it had, and the caller
    /// asks [`Lookup::damage`] for the error.
    #[inline(always)]
    fn get(&self, key: u64) -> IdAnswer {
        let hash = id_hash(key);
        if let Some(found) = self.recent.get_hashed(key, hash) {
            return IdAnswer::from_found(found);
        }
        match self.table.index.get(self.ids.clone()) {
            Some(ids) => IdTable::new(ids).found_hashed(key, hash, self.slots),
            None => IdAnswer::ABSENT,
        }
    }

    fn damage(&self, key: u64) -> Option<(Damaged, u64)> {
        let ids = self.table.index.get(self.ids.clone())?;
        let d = IdTable::new(ids).get(key).err()?;
        Some((d, self.table.damaged_offset(d)))
    }
}

/// The flag bit [`Lookup::get`] sets for a slot that failed its check
/// (records' flags use bits 0–2).
pub(crate) const DAMAGED: u8 = crate::format::index::DAMAGED_FLAG;

/// The cell readers probe. Written only under the store's state write
/// lock (one writer at a time).
#[derive(Debug)]
pub(crate) struct Lookup {
    cell: Rcu<View>,
}

impl Lookup {
    pub fn new(table: Arc<PeerGen>) -> Lookup {
        Lookup {
            cell: Rcu::new(fresh(table)),
        }
    }

    /// Access hash and flags of a peer key, as of the latest commit.
    #[inline(always)]
    /// Answers with [`DAMAGED`] set in the flags when the slot failed its
    /// check; [`Lookup::checked`] turns that into the error.
    pub fn get(&self, key: u64) -> Option<Found> {
        self.cell.read(|v| v.get(key)).found()
    }

    /// [`Lookup::get`], with a damaged slot as [`crate::Error::Corrupt`].
    #[inline(always)]
    pub fn checked(&self, key: u64) -> crate::Result<Option<Found>> {
        match self.get(key) {
            Some((_, f)) if f & DAMAGED != 0 => Err(self.damage(key)),
            found => Ok(found),
        }
    }

    /// The access hash alone, as [`Lookup::checked`] would answer it: the
    /// path of every `Account::access_hash`, kept apart so the answer
    /// goes back as one small `Result` without a second repacking.
    #[inline(always)]
    pub fn access_hash(&self, key: u64) -> crate::Result<Option<i64>> {
        let p = self.cell.read(|v| v.get(key));
        if p.meta & DAMAGED as u64 != 0 {
            return Err(self.damage(key));
        }
        Ok((p.meta & HAS_HASH != 0).then_some(p.hash as i64))
    }

    #[cold]
    #[inline(never)]
    fn damage(&self, key: u64) -> crate::Error {
        match self.cell.read(|v| v.damage(key)) {
            Some((d, at)) => crate::peers::generation::damaged_error(d, at),
            // Replaced by a new generation meanwhile.
            None => crate::Error::corrupt(0, "peer index slot failed its check byte"),
        }
    }

    /// The owner of a name (its key and access hash) as of the latest
    /// commit, without a lock. `None`: the name's owner may have changed
    /// since the generation (or a corrupt record was met); ask the state.
    #[inline]
    pub fn name(
        &self,
        hash: u64,
        kind: NameKind,
        account: u32,
        name: &str,
    ) -> Option<Option<(u64, Option<i64>)>> {
        self.cell.read(|v| {
            if v.names.contains(hash) {
                return None;
            }
            match v.table.name_owner(hash, kind, account, name) {
                Ok(Some(rec)) => {
                    let key = rec.key();
                    match v.recent.get(key) {
                        None => Some(Some((key, rec.access_hash()))),
                        Some(Some((h, _))) => Some(Some((key, h))),
                        // Deleted since, after `contains`: the state answers.
                        Some(None) => None,
                    }
                }
                Ok(None) => Some(None),
                Err(_) => None,
            }
        })
    }

    /// Writer: a peer was put (`Some`) or deleted (`None`).
    pub fn set(&self, key: u64, value: Option<Found>) {
        if !self.cell.writer_view().recent.set(key, value) {
            // Full: a table twice the size.
            self.set_many(vec![(key, value)]);
        }
    }

    /// Writer: the owner of the name with this hash is about to change.
    /// Called before the state changes it (see the module docs).
    pub fn name_changed(&self, hash: u64) {
        if !self.cell.writer_view().names.insert(hash) {
            // Full: a set twice the size.
            self.names_changed(std::iter::once(hash));
        }
    }

    /// Writer: [`Lookup::set`] for many peers at once (later entries win),
    /// in a new table of the right size (at least twice what a full one
    /// holds).
    pub fn set_many(&self, changes: Vec<(u64, Option<Found>)>) {
        if changes.is_empty() {
            return;
        }
        let view = self.cell.writer_view();
        let recent = Recent::with_capacity(2 * (view.recent.len() + changes.len()) + 1);
        for (k, v) in view.recent.entries().chain(changes) {
            recent.set(k, v);
        }
        let names = view.names.clone();
        self.cell
            .replace(View::new(view.table.clone(), Arc::new(recent), names));
    }

    /// Writer: [`Lookup::name_changed`] for many names at once, in a new
    /// set of the right size (at least twice what a full one holds).
    pub fn names_changed(&self, hashes: impl ExactSizeIterator<Item = u64>) {
        let view = self.cell.writer_view();
        let names = ChangedNames::with_capacity(2 * (view.names.len() + hashes.len()) + 1);
        for h in view.names.hashes().chain(hashes) {
            names.insert(h);
        }
        let recent = view.recent.clone();
        self.cell
            .replace(View::new(view.table.clone(), recent, Arc::new(names)));
    }

    /// Writer: a new generation holds every change so far.
    pub fn install(&self, table: Arc<PeerGen>) {
        self.cell.replace(fresh(table));
    }

    /// Writer: frees views no reader can see any more.
    pub fn reclaim(&self) {
        self.cell.reclaim();
    }
}

fn fresh(table: Arc<PeerGen>) -> View {
    View::new(
        table,
        Arc::new(Recent::with_capacity(0)),
        Arc::new(ChangedNames::with_capacity(0)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_set_get_update_delete_and_grow() {
        let l = Lookup::new(Arc::new(PeerGen::empty(0.75)));
        assert_eq!(l.checked(5).unwrap(), None);
        for k in 0..1000u64 {
            l.set(k, Some((Some(k as i64 * 7), 1)));
        }
        for k in 0..1000u64 {
            assert_eq!(l.checked(k).unwrap(), Some((Some(k as i64 * 7), 1)));
        }
        l.set(3, Some((None, 0)));
        l.set(4, None);
        l.set(5, Some((Some(-1), 0x21)));
        assert_eq!(l.checked(3).unwrap(), Some((None, 0)));
        assert_eq!(l.checked(4).unwrap(), None);
        assert_eq!(l.checked(5).unwrap(), Some((Some(-1), 0x21)));
        assert_eq!(l.checked(1000).unwrap(), None);
        l.install(Arc::new(PeerGen::empty(0.75)));
        assert_eq!(l.checked(5).unwrap(), None);
    }

    /// The filter answers most lookups of peers that did not change
    /// without a probe, and never hides one that did.
    #[test]
    fn recent_filter_passes_changed_peers_and_few_others() {
        let r = Recent::with_capacity(1 << 12);
        for k in 1..=1000u64 {
            assert!(r.set(k * 7919, Some((Some(1), HAS_HASH as u8))));
        }
        let passes = |k: u64| {
            let (word, bit) = r.filter_bit(id_hash(k));
            word.load(Ordering::Relaxed) & bit != 0
        };
        assert!((1..=1000u64).all(|k| passes(k * 7919)));
        let others = (1..=10_000u64).filter(|&k| passes(k * 7919 + 1)).count();
        // 1000 keys in 16,384 bits: about 6% of other keys pass.
        assert!(
            others < 1_000,
            "{others} of 10,000 unchanged keys pass the filter"
        );
        assert_eq!(r.get(7919 + 1), None);
    }

    /// Growing either table keeps the other's entries; a new generation
    /// empties both.
    #[test]
    fn changed_names_grow_with_and_apart_from_recent() {
        let l = Lookup::new(Arc::new(PeerGen::empty(0.75)));
        let names = |l: &Lookup, h: u64| l.cell.read(|v| v.names.contains(h));
        for i in 1..=1000u64 {
            l.name_changed(i * 0x9e37_79b9);
            if i % 3 == 0 {
                l.set(i, Some((Some(i as i64), 1)));
            }
        }
        for i in 1..=1000u64 {
            assert!(names(&l, i * 0x9e37_79b9), "name {i} lost");
            assert!(!names(&l, i * 0x9e37_79b9 + 1));
            let want = (i % 3 == 0).then_some((Some(i as i64), 1));
            assert_eq!(l.checked(i).unwrap(), want, "peer {i}");
        }
        // Unchanged names are answered from the (empty) generation.
        assert_eq!(l.name(7, NameKind::Username, 0, "x"), Some(None));
        assert_eq!(l.name(0x9e37_79b9, NameKind::Username, 0, "x"), None);
        l.install(Arc::new(PeerGen::empty(0.75)));
        assert!(!names(&l, 0x9e37_79b9));
        assert_eq!(l.checked(3).unwrap(), None);
    }

    #[test]
    fn readers_see_whole_entries_while_the_writer_updates() {
        let l = Arc::new(Lookup::new(Arc::new(PeerGen::empty(0.75))));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (l, stop) = (l.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        // Keys from 1: a peer key is never 0 (`found_in`
                        // asserts it in debug builds).
                        for k in 1..=64u64 {
                            // The writer always stores hash = key * round
                            // with flags = round: a torn read breaks that.
                            if let Ok(Some((Some(h), f))) = l.checked(k) {
                                assert_eq!(h as u64, k.wrapping_mul(f as u64), "torn entry");
                            }
                        }
                    }
                })
            })
            .collect();
        for round in 0..20_000u64 {
            let f = (round % 255 + 1) as u8 | HAS_HASH as u8;
            for k in 1..=64u64 {
                l.set(k, Some((Some(k.wrapping_mul(f as u64) as i64), f)));
            }
            if round % 1000 == 999 {
                l.install(Arc::new(PeerGen::empty(0.75)));
            }
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            r.join().unwrap();
        }
    }
}
