//! Peer index region: open-addressing hash tables over the peer segment,
//! read in place from a mapping.
//!
//! Header (64 bytes):
//!
//! | offset | size | field | meaning |
//! |---|---|---|---|
//! | 0 | 8 | magic | `PLGINDEX` |
//! | 8 | 4 | version | 1 |
//! | 12 | 4 | hash_id | 5: Robin Hood order, [`name_hash`], stored probe distances, a check byte in every slot (1–4: earlier schemes, rebuilt on open) |
//! | 16 | 8 | id_slots | slots in the id table |
//! | 24 | 8 | name_slots | slots in the username table |
//! | 32 | 8 | phone_slots | slots in the phone table |
//! | 40 | 8 | peer_count | records in the segment |
//! | 48 | 8 | segment_offset | file offset of the peer segment it indexes |
//! | 56 | 4 | slots_crc | `masked_crc` of every slot byte (checked by verify) |
//! | 60 | 4 | header_crc | `masked_crc(bytes 0..60)` (checked on open) |
//!
//! Then `id_slots` [`IdSlot`]s, `name_slots` [`NameSlot`]s, `phone_slots`
//! [`NameSlot`]s, back to back; the region's length is exactly that.
//!
//! Probing: slot `i0 = (hash * slots) >> 64` (128-bit product), then
//! `i0+1, i0+2, …` wrapping, until the key or an empty slot. Every table
//! keeps at least one empty slot, so a probe always ends.
//!
//! Every slot, empty ones included, carries a check byte: the XOR of all
//! its bytes is [`ID_CHECK`] (id slots) or [`NAME_CHECK`] (name slots). Any
//! change confined to one byte of a slot breaks that, and so does an
//! all-zero or all-ones slot. A lookup checks the slot it answers from,
//! and an answer "absent" is given only after checking every slot from the
//! key's home to the one that ended the probe, so damage to a slot can
//! never turn into a wrong access hash or a peer reported absent: the
//! lookup returns [`Damaged`] instead. Cost: a few ALU operations on bytes
//! the probe has already loaded.

use super::{le_u32, le_u64, masked_crc, peer_record::PeerRecordRef};
use bytemuck::{Pod, Zeroable};

/// Index magic.
pub const MAGIC: [u8; 8] = *b"PLGINDEX";
/// Index layout version.
pub const VERSION: u32 = 1;
/// The hash scheme id stored in the header: Robin Hood order, names by
/// [`name_hash`], stored probe distances, check bytes. Indexes with an
/// earlier scheme (1 to 4, without check bytes) are rebuilt on open.
pub const HASH_ID: u32 = 5;
/// Stored id distance meaning "this far or farther" (hash the key to know).
const ID_DIST_SATURATED: u64 = 0xFF;
/// Stored name distance meaning "this far or farther".
const NAME_DIST_SATURATED: u64 = 0xFFFF;
/// The flag bit [`IdTable::found`] sets for a slot that failed its check
/// (records' flags use bits 0–2).
pub const DAMAGED_FLAG: u8 = 0x80;
/// XOR of all 24 bytes of a sound id slot.
pub const ID_CHECK: u8 = 0x5A;
/// XOR of all 16 bytes of a sound name slot.
pub const NAME_CHECK: u8 = 0xA5;
/// Header bytes.
pub const HEADER_LEN: usize = 64;
/// Offset of `segment_offset`.
pub const SEGMENT_OFFSET_OFFSET: usize = 48;
/// Offset of `header_crc`.
pub const HEADER_CRC_OFFSET: usize = 60;
/// Bytes of one id slot (FORMAT.md, "Id slot").
pub const ID_SLOT_LEN: usize = ID;
/// Bytes of one name slot (FORMAT.md, "Name slot").
pub const NAME_SLOT_LEN: usize = NAME;

/// Id table slot, 24 bytes.
///
/// | offset | size | field | meaning |
/// |---|---|---|---|
/// | 0 | 8 | key | [`super::peer_record::peer_key`]; 0 = empty |
/// | 8 | 8 | access_hash | valid when `loc` flag bit 0 is set |
/// | 16 | 8 | loc | bits 0–39 record offset in the segment, bits 40–47 record flags, bits 48–55 check byte, bits 56–63 probe distance (0xFF: at least that) |
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, PartialEq, Eq)]
pub struct IdSlot {
    /// Packed account and peer id.
    pub key: [u8; 8],
    /// Access hash.
    pub access_hash: [u8; 8],
    /// Record offset and flags.
    pub loc: [u8; 8],
}

/// Username or phone slot, 16 bytes.
///
/// | offset | size | field | meaning |
/// |---|---|---|---|
/// | 0 | 8 | hash | [`name_hash`]; 0 = empty |
/// | 8 | 8 | loc | bits 0–39 record offset in the segment, bits 40–47 check byte, bits 48–63 probe distance (0xFFFF: at least that) |
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, PartialEq, Eq)]
pub struct NameSlot {
    /// Hash of account and normalized name.
    pub hash: [u8; 8],
    /// Record offset.
    pub loc: [u8; 8],
}

const _: () = assert!(std::mem::size_of::<IdSlot>() == 24 && std::mem::align_of::<IdSlot>() == 1);
const _: () =
    assert!(std::mem::size_of::<NameSlot>() == 16 && std::mem::align_of::<NameSlot>() == 1);

const OFFSET_MASK: u64 = (1 << 40) - 1;
/// Largest peer segment an index can address.
pub const MAX_SEGMENT: u64 = OFFSET_MASK;

impl IdSlot {
    /// The packed key (0 for an empty slot).
    pub fn key(&self) -> u64 {
        le_u64(&self.key)
    }
    /// Access hash, when the record has one.
    pub fn access_hash(&self) -> Option<i64> {
        (self.flags() & super::peer_record::HAS_HASH != 0).then(|| le_u64(&self.access_hash) as i64)
    }
    /// Record offset within the segment.
    pub fn offset(&self) -> u64 {
        le_u64(&self.loc) & OFFSET_MASK
    }
    /// The record's flag byte.
    pub fn flags(&self) -> u8 {
        (le_u64(&self.loc) >> 40) as u8
    }
    /// Stored distance from the slot's home, saturating at 0xFF.
    pub fn distance(&self) -> u64 {
        le_u64(&self.loc) >> 56
    }
    /// True when the slot's bytes XOR to [`ID_CHECK`].
    #[inline]
    pub fn is_sound(&self) -> bool {
        fold8(le_u64(&self.key) ^ le_u64(&self.access_hash) ^ le_u64(&self.loc)) == ID_CHECK
    }
    fn seal(&mut self) {
        let loc = le_u64(&self.loc) & !(0xFF << 48);
        let f = fold8(le_u64(&self.key) ^ le_u64(&self.access_hash) ^ loc) ^ ID_CHECK;
        self.loc = (loc | (f as u64) << 48).to_le_bytes();
    }
}

impl NameSlot {
    /// The stored hash (0 for empty).
    pub fn hash(&self) -> u64 {
        le_u64(&self.hash)
    }
    /// Record offset within the segment.
    pub fn offset(&self) -> u64 {
        le_u64(&self.loc) & OFFSET_MASK
    }
    /// Stored distance from the slot's home, saturating at 0xFFFF.
    pub fn distance(&self) -> u64 {
        le_u64(&self.loc) >> 48
    }
    /// True when the slot's bytes XOR to [`NAME_CHECK`].
    #[inline]
    pub fn is_sound(&self) -> bool {
        fold8(le_u64(&self.hash) ^ le_u64(&self.loc)) == NAME_CHECK
    }
    fn seal(&mut self) {
        let loc = le_u64(&self.loc) & !(0xFF << 40);
        let f = fold8(le_u64(&self.hash) ^ loc) ^ NAME_CHECK;
        self.loc = (loc | (f as u64) << 40).to_le_bytes();
    }
}

/// XOR of the eight bytes of `x`.
#[inline]
fn fold8(mut x: u64) -> u8 {
    x ^= x >> 32;
    x ^= x >> 16;
    x ^= x >> 8;
    x as u8
}

/// A slot failed its check byte: the index is damaged there. `slot` counts
/// from the start of its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Damaged {
    /// Which table.
    pub table: Table,
    /// Slot number within it.
    pub slot: usize,
}

/// The three tables of an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// Peer ids.
    Id,
    /// Usernames.
    Username,
    /// Phones.
    Phone,
}

impl Damaged {
    /// Offset of the damaged slot from the start of the index region.
    pub fn offset_in(&self, header: &Header) -> u64 {
        let (base, size) = match self.table {
            Table::Id => (0, 24),
            Table::Username => (header.id_slots * 24, 16),
            Table::Phone => (header.id_slots * 24 + header.name_slots * 16, 16),
        };
        HEADER_LEN as u64 + base + self.slot as u64 * size
    }
}

/// murmur3's 64-bit finalizer: a full-avalanche mix.
pub fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// Hash of an id key.
pub fn id_hash(key: u64) -> u64 {
    fmix64(key ^ 0x9e37_79b9_7f4a_7c15)
}

/// Which name table a hash is for (keeps the two domains apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// Usernames, matched ASCII case-insensitively.
    Username = 1,
    /// Phone numbers, matched exactly.
    Phone = 2,
}

/// Hash of `(account, name)`, never 0: the name's bytes
/// ASCII-lowercased and read as little-endian 8-byte words, each folded
/// into the state with a 64x64->128-bit multiply, then [`fmix64`].
///
/// State: `account | kind << 32 | len << 40` (len = name bytes, its low 24
/// bits). Words: a name of 1 to 7 bytes is one word, zero-padded; a longer
/// one is the words at offsets 0, 8, 16, ... that end before its last
/// byte, then the 8 bytes that end at its last byte (overlapping the word
/// before). Fold of word `w` into state `h`: `p = (h ^ K1) * (w ^ K2)` as
/// 128-bit, `h = low64(p) ^ high64(p)`, with `K1 = 0x243f_6a88_85a3_08d3`
/// and `K2 = 0x9e37_79b9_7f4a_7c15`. The lowercasing is done eight bytes at
/// a time, and the folds do not wait on each other's carries one byte at a
/// time as the FNV hash of earlier schemes did: a quarter of a username
/// lookup's time.
#[expect(
    clippy::indexing_slicing,
    reason = "`word(at)` is called only with `at + 8 <= b.len()`"
)]
pub fn name_hash(kind: NameKind, account: u32, name: &str) -> u64 {
    const K1: u64 = 0x243f_6a88_85a3_08d3;
    const K2: u64 = 0x9e37_79b9_7f4a_7c15;
    let fold = |h: u64, w: u64| {
        let p = (h ^ K1) as u128 * (lower_ascii(w) ^ K2) as u128;
        p as u64 ^ (p >> 64) as u64
    };
    let b = name.as_bytes();
    let word = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default());
    let mut h = account as u64 | (kind as u64) << 32 | (b.len() as u64 & 0xFF_FFFF) << 40;
    let mut at = 0;
    while at + 8 < b.len() {
        h = fold(h, word(at));
        at += 8;
    }
    if b.len() >= 8 {
        h = fold(h, word(b.len() - 8));
    } else if !b.is_empty() {
        let w = b.iter().rev().fold(0u64, |w, &x| w << 8 | x as u64);
        h = fold(h, w);
    }
    fmix64(h).max(1)
}

/// ASCII `A`-`Z` to `a`-`z` in each byte of `w`, other bytes unchanged.
fn lower_ascii(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    // Per byte, with its top bit cleared (so no sum carries into the next
    // byte): top bit of `ge_a` set when >= 'A', of `gt_z` when > 'Z'.
    let low7 = w & (0x7f * ONES);
    let ge_a = low7 + (0x80 - b'A' as u64) * ONES;
    let gt_z = low7 + (0x80 - b'Z' as u64 - 1) * ONES;
    let upper = ge_a & !gt_z & !w & (0x80 * ONES);
    w | upper >> 2
}

/// How far slot `i` is from `home`, probing forward with wrap-around.
#[inline]
fn distance(i: usize, home: usize, n: usize) -> usize {
    if i >= home { i - home } else { i + n - home }
}

/// Robin Hood insertion: the entry travelling forward takes the place of
/// any resident that is closer to its own home, which then travels on.
#[expect(
    clippy::indexing_slicing,
    reason = "`i` starts at `start(h, n) < n` and wraps at `n`; tables are never empty (`slots_for` gives at least one slot)"
)]
fn robin_hood_insert<T: Copy>(table: &mut [T], mut entry: T, hash_of: impl Fn(&T) -> Option<u64>) {
    let n = table.len();
    let Some(h) = hash_of(&entry) else { return };
    let mut i = start(h, n);
    let mut d = 0;
    loop {
        let Some(resident) = hash_of(&table[i]) else {
            table[i] = entry;
            return;
        };
        let rd = distance(i, start(resident, n), n);
        if rd < d {
            std::mem::swap(&mut table[i], &mut entry);
            d = rd;
        }
        i = if i + 1 == n { 0 } else { i + 1 };
        d += 1;
    }
}

/// Fills an empty `table` with `(hash, entry)` pairs in Robin Hood order.
///
/// `start` is monotone in the hash, so in hash order the entries' homes
/// never decrease, and each one belongs in the first free slot at or
/// after its home: one sequential pass instead of a probe walk (and a
/// cache miss) per entry. Checkpoints write the peer segment in id-hash
/// order, so the ids arrive sorted; names are sorted here. The few
/// entries that run past the last slot wrap to the front through
/// [`robin_hood_insert`], which keeps the order.
#[expect(
    clippy::indexing_slicing,
    reason = "`at < n` is checked before the store"
)]
fn fill<T: Copy>(table: &mut [T], mut entries: Vec<(u64, T)>, hash_of: impl Fn(&T) -> Option<u64>) {
    if !entries.is_sorted_by_key(|e| e.0) {
        entries.sort_unstable_by_key(|e| e.0);
    }
    let n = table.len();
    let mut free = 0;
    let mut wrapped = Vec::new();
    for (h, entry) in entries {
        let at = start(h, n).max(free);
        if at < n {
            table[at] = entry;
            free = at + 1;
        } else {
            wrapped.push(entry);
        }
    }
    for entry in wrapped {
        robin_hood_insert(table, entry, &hash_of);
    }
}

fn start(hash: u64, slots: usize) -> usize {
    ((hash as u128 * slots as u128) >> 64) as usize
}

/// The decoded index header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    /// Id table slots.
    pub id_slots: u64,
    /// Username table slots.
    pub name_slots: u64,
    /// Phone table slots.
    pub phone_slots: u64,
    /// Records in the segment.
    pub peer_count: u64,
    /// Which segment it indexes.
    pub segment_offset: u64,
    /// CRC of all slots.
    pub slots_crc: u32,
    /// [`HASH_ID`].
    pub hash_id: u32,
}

impl Header {
    /// Exact region length for this header.
    pub fn region_len(&self) -> Option<u64> {
        let id = self.id_slots.checked_mul(24)?;
        let names = self
            .name_slots
            .checked_add(self.phone_slots)?
            .checked_mul(16)?;
        id.checked_add(names)?.checked_add(HEADER_LEN as u64)
    }

    #[expect(
        clippy::indexing_slicing,
        reason = "constant offsets inside the HEADER_LEN-byte array"
    )]
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&self.hash_id.to_le_bytes());
        let words = [
            self.id_slots,
            self.name_slots,
            self.phone_slots,
            self.peer_count,
            self.segment_offset,
        ];
        for (i, w) in words.iter().enumerate() {
            b[16 + 8 * i..24 + 8 * i].copy_from_slice(&w.to_le_bytes());
        }
        b[56..60].copy_from_slice(&self.slots_crc.to_le_bytes());
        let crc = masked_crc(&b[..HEADER_CRC_OFFSET]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Cheap open-time check: magic, version, hash id, CRC, exact length,
    /// non-empty tables with a free slot each.
    #[expect(
        clippy::indexing_slicing,
        reason = "`b` is the first HEADER_LEN bytes, taken with `get`; every offset read is a constant below HEADER_LEN"
    )]
    pub fn decode(region: &[u8]) -> Result<Header, &'static str> {
        let b = region
            .get(..HEADER_LEN)
            .ok_or("index shorter than its header")?;
        if b[0..8] != MAGIC {
            return Err("index magic");
        }
        let w4 = |at: usize| le_u32(&[b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let w8 = |at: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[at..at + 8]);
            le_u64(&a)
        };
        if w4(60) != masked_crc(&b[..HEADER_CRC_OFFSET]) {
            return Err("index header checksum");
        }
        if w4(8) != VERSION || w4(12) != HASH_ID {
            return Err("index version or hash scheme");
        }
        let h = Header {
            id_slots: w8(16),
            name_slots: w8(24),
            phone_slots: w8(32),
            peer_count: w8(40),
            segment_offset: w8(48),
            slots_crc: w4(56),
            hash_id: w4(12),
        };
        if h.region_len() != Some(region.len() as u64) {
            return Err("index length does not match its header");
        }
        if h.id_slots <= h.peer_count || h.name_slots == 0 || h.phone_slots == 0 {
            return Err("index tables have no free slot");
        }
        Ok(h)
    }
}

/// A read-only view of an index region (mapped or in memory).
///
/// The tables are kept as byte slices and one slot is viewed at a time with
/// `bytemuck::from_bytes` (a constant size check): casting a whole table
/// would divide by the slot size on every lookup.
#[derive(Debug, Clone, Copy)]
pub struct IndexView<'a> {
    /// The decoded header.
    pub header: Header,
    ids: &'a [u8],
    names: &'a [u8],
    phones: &'a [u8],
}

const ID: usize = std::mem::size_of::<IdSlot>();
const FAST: usize = 4;
const NAME: usize = std::mem::size_of::<NameSlot>();

impl<'a> IndexView<'a> {
    /// Checks the header and splits the tables. Slots are not trusted:
    /// every offset read from them is bounds-checked by the caller.
    pub fn new(region: &'a [u8]) -> Result<Self, &'static str> {
        let header = Header::decode(region)?;
        Ok(Self::trusted(region, header))
    }

    /// Splits a region whose header was already checked by
    /// [`Header::decode`] (the hot path skips the CRC). A header that does
    /// not fit the region gives an empty view.
    #[inline]
    pub fn trusted(region: &'a [u8], header: Header) -> Self {
        let parts = (|| {
            let body = region.get(HEADER_LEN..)?;
            let id_len = (header.id_slots as usize).checked_mul(ID)?;
            let name_len = (header.name_slots as usize).checked_mul(NAME)?;
            let phone_len = (header.phone_slots as usize).checked_mul(NAME)?;
            let (ids, rest) = body.split_at_checked(id_len)?;
            let (names, rest) = rest.split_at_checked(name_len)?;
            Some((ids, names, rest.get(..phone_len)?))
        })();
        match parts {
            Some((ids, names, phones)) => IndexView {
                header,
                ids,
                names,
                phones,
            },
            None => IndexView::empty(),
        }
    }

    /// An empty view (no peers).
    pub fn empty() -> IndexView<'static> {
        IndexView {
            header: Header::default(),
            ids: &[],
            names: &[],
            phones: &[],
        }
    }

    /// The id slot holding `key`. A corrupt table that is full ends the probe
    /// after one lap instead of looping.
    #[inline]
    pub fn get(&self, key: u64) -> IdProbe<'a> {
        self.id_table().get(key)
    }

    /// The id table alone, for callers that keep it across lookups.
    #[inline]
    pub fn id_table(&self) -> IdTable<'a> {
        IdTable::new(self.ids)
    }

    /// Record offsets whose name hash equals `hash`, in probe order; the
    /// caller confirms each against the record. Every slot the probe reads
    /// is checked first: a damaged one ends the iteration with
    /// [`Damaged`], so a name is never reported absent because of it.
    #[expect(
        clippy::indexing_slicing,
        reason = "`i` starts below `n` and wraps at `n`; the loop indexes only while `d < n`, so an empty table is never indexed"
    )]
    pub fn names(
        &self,
        kind: NameKind,
        hash: u64,
    ) -> impl Iterator<Item = Result<u64, Damaged>> + 'a {
        let table = self.name_slots(kind);
        let which = match kind {
            NameKind::Username => Table::Username,
            NameKind::Phone => Table::Phone,
        };
        let n = table.len();
        let mut i = if n == 0 { 0 } else { start(hash, n) };
        let mut d = 0;
        std::iter::from_fn(move || {
            while d < n {
                let s = &table[i];
                let here = i;
                i = if i + 1 == n { 0 } else { i + 1 };
                d += 1;
                if !s.is_sound() {
                    d = n;
                    return Some(Err(Damaged {
                        table: which,
                        slot: here,
                    }));
                }
                let resident = |h| match s.distance() {
                    dist if dist < NAME_DIST_SATURATED => dist as usize,
                    _ => distance(here, start(h, n), n),
                };
                match s.hash() {
                    0 => d = n,
                    h if h == hash => return Some(Ok(s.offset())),
                    h if resident(h) < d - 1 => d = n,
                    _ => {}
                }
            }
            None
        })
    }

    /// All id slots (for verify).
    pub fn id_slots(&self) -> &'a [IdSlot] {
        bytemuck::cast_slice(self.ids)
    }
    /// All username and phone slots (for verify).
    pub fn name_slots(&self, kind: NameKind) -> &'a [NameSlot] {
        bytemuck::cast_slice(match kind {
            NameKind::Username => self.names,
            NameKind::Phone => self.phones,
        })
    }
}

/// The id table of an index: slots as bytes, viewed one at a time.
#[derive(Debug, Clone, Copy)]
pub struct IdTable<'a> {
    ids: &'a [u8],
}

/// What an id probe answers: the slot holding the key, none, or the slot
/// that failed its check.
pub type IdProbe<'a> = Result<Option<&'a IdSlot>, Damaged>;

/// An id lookup's answer in two words, so that it comes back from the
/// probe in registers: an `Option<(Option<i64>, u8)>` is three words,
/// returned through memory, which cost every lookup a store and a reload
/// of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdAnswer {
    /// The slot's access hash word (meaningful with `HAS_HASH` in `meta`).
    pub hash: u64,
    /// 0: absent; else [`IdAnswer::PRESENT`] with the record's flags in
    /// the low byte, [`DAMAGED_FLAG`] set when a slot failed its check.
    pub meta: u64,
}

impl IdAnswer {
    /// Set in `meta` of every answer but "absent".
    pub const PRESENT: u64 = 1 << 8;
    /// No such key.
    pub const ABSENT: IdAnswer = IdAnswer { hash: 0, meta: 0 };
    /// A slot on the probe failed its check.
    pub const DAMAGED: IdAnswer = IdAnswer {
        hash: 0,
        meta: IdAnswer::PRESENT | DAMAGED_FLAG as u64,
    };

    /// As an access hash (when the flags have `HAS_HASH`) and flags;
    /// a damaged slot answers no hash.
    #[inline(always)]
    pub fn found(self) -> Option<(Option<i64>, u8)> {
        let flags = self.meta as u8;
        let has =
            flags & (super::peer_record::HAS_HASH | DAMAGED_FLAG) == super::peer_record::HAS_HASH;
        (self.meta != 0).then_some((has.then_some(self.hash as i64), flags))
    }

    /// From a found peer's access hash and flags, or `None`.
    #[inline(always)]
    pub fn from_found(found: Option<(Option<i64>, u8)>) -> IdAnswer {
        match found {
            None => IdAnswer::ABSENT,
            Some((h, flags)) => IdAnswer {
                hash: h.unwrap_or(0) as u64,
                meta: IdAnswer::PRESENT | flags as u64,
            },
        }
    }
}

impl<'a> IdTable<'a> {
    /// The table over `ids` (whole slots).
    pub fn new(ids: &'a [u8]) -> IdTable<'a> {
        IdTable { ids }
    }

    /// Where the slots lie within `region` (the index they came from).
    pub fn range_in(&self, region: &[u8]) -> std::ops::Range<usize> {
        let at = (self.ids.as_ptr() as usize).wrapping_sub(region.as_ptr() as usize);
        if self.ids.is_empty() || at > region.len() {
            return 0..0;
        }
        at..at + self.ids.len()
    }

    #[inline]
    fn at(&self, i: usize) -> Option<&'a IdSlot> {
        self.ids.get(i * ID..i * ID + ID).map(bytemuck::from_bytes)
    }

    /// Loads the first word of `key`'s home slot and returns it. A batch
    /// touches all its keys before probing any, so that their cache
    /// misses overlap instead of queueing one behind the other.
    #[inline]
    pub fn touch(&self, key: u64) -> u64 {
        let n = self.ids.len() / ID;
        if n == 0 {
            return 0;
        }
        let i = start(id_hash(key), n);
        self.ids
            .get(i * ID..i * ID + 8)
            .map_or(0, |w| u64::from_le_bytes(w.try_into().unwrap_or_default()))
    }

    /// The slot holding `key`: the checked walk from the key's home, where
    /// every slot read is checked before it decides anything (a damaged
    /// one is [`Damaged`]), so an answer "absent" means every slot that
    /// could have held the key is sound. A corrupt table that is full ends
    /// the probe after one lap instead of looping. Lookups of access
    /// hashes take [`IdTable::found`], which checks less for the same
    /// guarantee.
    pub fn get(&self, key: u64) -> IdProbe<'a> {
        let n = self.ids.len() / ID;
        if n == 0 || key == 0 {
            return Ok(None);
        }
        self.probe(key, start(id_hash(key), n), 0, n)
    }

    /// [`IdTable::get`] for the hot path: the access hash and flags, with
    /// [`DAMAGED_FLAG`] set (and no hash) when a slot failed its check. The
    /// hit's check is folded into the flags without a branch, so the
    /// lookups of a loop stay in flight together.
    #[inline]
    pub fn found(&self, key: u64) -> Option<(Option<i64>, u8)> {
        self.found_in(key, self.ids.len() / ID)
    }

    /// [`IdTable::found`] given the table's slot count `n` (a caller
    /// that probes often keeps it, rather than divide on every lookup).
    /// `key` is a peer key, never 0 (peer ids are non-zero in 42 bits).
    #[inline]
    pub fn found_in(&self, key: u64, n: usize) -> Option<(Option<i64>, u8)> {
        self.found_hashed(key, id_hash(key), n).found()
    }

    /// [`IdTable::found_in`] given `hash`, the key's [`id_hash`] (which
    /// the caller computed for its own table of recent changes).
    #[inline]
    #[expect(
        clippy::indexing_slicing,
        reason = "the hot path: `win` is FAST whole id slots taken with `get`, and `at` a constant offset inside it; a checked read here would cost every lookup (benches/README.md)"
    )]
    pub fn found_hashed(&self, key: u64, hash: u64, n: usize) -> IdAnswer {
        debug_assert_eq!(n, self.ids.len() / ID);
        debug_assert_ne!(key, 0);
        debug_assert_eq!(hash, id_hash(key));
        if n == 0 {
            return IdAnswer::ABSENT;
        }
        let i = start(hash, n);
        // Almost every probe run ends within a few slots, so the first FAST
        // slots are examined without a branch per slot (a branch on freshly
        // missed memory mispredicts often and stalls the next lookup behind
        // it). A hit checks only its own slot: keys are unique, so a
        // damaged slot passed on the way cannot have hidden the key while a
        // later slot holds it. An answer "absent" checks every slot passed.
        if let Some(win) = self.ids.get(i * ID..(i + FAST) * ID) {
            let word =
                |at: usize| u64::from_le_bytes(win[at..at + 8].try_into().unwrap_or_default());
            // Hits and run ends are found separately, so a hit does not
            // wait for the distance words. Bit `j` of `hits`: slot `j`
            // holds the key (keys are unique: at most one bit).
            let mut hits = 1u32 << FAST;
            for j in 0..FAST {
                hits |= ((word(j * ID) == key) as u32) << j;
            }
            let before = hits.trailing_zeros() as usize;
            if before < FAST {
                let at = before * ID;
                let (ah, loc) = (word(at + 8), word(at + 16));
                let sound = fold8(key ^ ah ^ loc) == ID_CHECK;
                let flags = (loc >> 40) as u8 | (!sound as u8) << 7;
                return IdAnswer {
                    hash: ah,
                    meta: IdAnswer::PRESENT | flags as u64,
                };
            }
            // Bit `j` set: the run ends at slot `j` (empty, or a resident
            // closer to its home than `j`). Computed without a branch per
            // slot: for absent keys those branches mispredict.
            let mut ends = 0u64;
            for j in 0..FAST {
                let k = word(j * ID);
                let empty = !(k | k.wrapping_neg());
                let short = (word(j * ID + 16) >> 56).wrapping_sub(j as u64);
                ends |= ((empty | short) >> 63) << j;
            }
            if ends != 0 {
                // Absent, if every slot up to the end is sound. All FAST
                // slots are checked and the ones past the end masked off:
                // a loop to the end, of a length known only now, cost a
                // mispredicted branch on most absent keys.
                let mut bad = 0u64;
                for j in 0..FAST {
                    let at = j * ID;
                    let x = fold8(word(at) ^ word(at + 8) ^ word(at + 16));
                    bad |= ((x != ID_CHECK) as u64) << j;
                }
                // The lowest set bit of `ends` and every bit below it.
                let upto = ends ^ ends.wrapping_sub(1);
                return match bad & upto {
                    0 => IdAnswer::ABSENT,
                    _ => IdAnswer::DAMAGED,
                };
            }
            // A longer run: on past the window (the window fit, so
            // `i + FAST <= n`), checking the window before a miss.
            let next = if i + FAST == n { 0 } else { i + FAST };
            return Self::answer(match self.probe(key, next, FAST, n) {
                Ok(None) => self.check_window(i),
                other => other,
            });
        }
        self.found_slow(key)
    }

    #[cold]
    #[inline(never)]
    fn answer(r: IdProbe<'_>) -> IdAnswer {
        match r {
            Ok(None) => IdAnswer::ABSENT,
            Ok(Some(s)) => IdAnswer {
                hash: le_u64(&s.access_hash),
                meta: IdAnswer::PRESENT | s.flags() as u64,
            },
            Err(_) => IdAnswer::DAMAGED,
        }
    }

    /// [`IdTable::found`] past the fast window (and for absent keys):
    /// out of line, so that the hot path keeps a small frame.
    #[cold]
    #[inline(never)]
    fn found_slow(&self, key: u64) -> IdAnswer {
        Self::answer(self.get(key))
    }

    /// Before a miss past the fast window is answered: the window's
    /// slots, passed unchecked, must be sound.
    #[cold]
    #[inline(never)]
    fn check_window(&self, i: usize) -> IdProbe<'a> {
        for j in i..i + FAST {
            if !self.at(j).is_some_and(IdSlot::is_sound) {
                return Err(Damaged {
                    table: Table::Id,
                    slot: j,
                });
            }
        }
        Ok(None)
    }

    /// The checked walk: from slot `i`, `skipped` slots past the key's
    /// home, every slot read is checked before it decides anything.
    #[cold]
    #[inline(never)]
    fn probe(&self, key: u64, mut i: usize, skipped: usize, n: usize) -> IdProbe<'a> {
        for d in skipped..n {
            let Some(s) = self.at(i) else { return Ok(None) };
            if !s.is_sound() {
                return Err(Damaged {
                    table: Table::Id,
                    slot: i,
                });
            }
            let resident = |k| match s.distance() {
                stored if stored < ID_DIST_SATURATED => stored as usize,
                _ => distance(i, start(id_hash(k), n), n),
            };
            match s.key() {
                k if k == key => return Ok(Some(s)),
                0 => return Ok(None),
                k if resident(k) < d => return Ok(None),
                _ => i = if i + 1 == n { 0 } else { i + 1 },
            }
        }
        Ok(None)
    }
}

/// The distance an id slot at `i` holding `key` stores.
pub fn stored_distance(i: usize, key: u64, slots: usize) -> u64 {
    (distance(i, start(id_hash(key), slots), slots) as u64).min(ID_DIST_SATURATED)
}

/// The distance a name slot at `i` holding `hash` stores.
pub fn stored_name_distance(i: usize, hash: u64, slots: usize) -> u64 {
    (distance(i, start(hash, slots), slots) as u64).min(NAME_DIST_SATURATED)
}

fn slots_for(count: usize, load: f64) -> usize {
    ((count as f64 / load).ceil() as usize)
        .max(count + 1)
        .max(1)
}

/// Builds an index region for the records of a peer segment.
/// `records` yields `(offset in segment, record)`; keys must be unique.
/// `count` is how many it will yield, if known (a capacity hint, 0 if not).
/// Each record is read once; the tables are sized from what was gathered.
#[expect(
    clippy::indexing_slicing,
    reason = "`region` is `region_len()` bytes, exactly the header and the slots the splits take (counts of entries held in memory cannot overflow it)"
)]
pub fn build<'r>(
    records: impl Iterator<Item = (u64, PeerRecordRef<'r>)>,
    count: usize,
    segment_offset: u64,
    load: f64,
) -> Vec<u8> {
    let load = load.clamp(0.1, 0.95);
    let hash = name_hash;
    // `count` (the caller's record count) sizes the id list once: growing
    // it by doubling copies and page-faults it again at each step.
    let mut ids: Vec<(u64, IdSlot)> = Vec::with_capacity(count);
    let mut names: Vec<(u64, NameSlot)> = Vec::new();
    let mut phones: Vec<(u64, NameSlot)> = Vec::new();
    let name_slot = |hash: u64, off: u64| {
        (
            hash,
            NameSlot {
                hash: hash.to_le_bytes(),
                loc: off.to_le_bytes(),
            },
        )
    };
    for (off, r) in records {
        ids.push((
            id_hash(r.key()),
            IdSlot {
                key: r.key().to_le_bytes(),
                access_hash: r.access_hash().unwrap_or(0).to_le_bytes(),
                loc: ((off & OFFSET_MASK) | ((r.flags() as u64) << 40)).to_le_bytes(),
            },
        ));
        names.extend(
            r.usernames()
                .map(|u| name_slot(hash(NameKind::Username, r.account(), u), off)),
        );
        phones.extend(
            r.phone()
                .map(|p| name_slot(hash(NameKind::Phone, r.account(), p), off)),
        );
    }
    let mut header = Header {
        id_slots: slots_for(ids.len(), load) as u64,
        name_slots: slots_for(names.len(), load) as u64,
        phone_slots: slots_for(phones.len(), load) as u64,
        peer_count: ids.len() as u64,
        segment_offset,
        slots_crc: 0,
        hash_id: HASH_ID,
    };
    let total = header.region_len().unwrap_or(0) as usize;
    let mut region = vec![0u8; total];
    {
        let (id_bytes, rest) = region[HEADER_LEN..].split_at_mut(header.id_slots as usize * 24);
        let (nm, ph) = rest.split_at_mut(header.name_slots as usize * 16);
        let table: &mut [IdSlot] = bytemuck::cast_slice_mut(id_bytes);
        fill(table, ids, |s| (s.key() != 0).then(|| id_hash(s.key())));
        let n = table.len();
        for (i, s) in table.iter_mut().enumerate() {
            if s.key() != 0 {
                s.loc = (le_u64(&s.loc) | stored_distance(i, s.key(), n) << 56).to_le_bytes();
            }
            s.seal();
        }
        for (bytes, entries) in [(nm, names), (ph, phones)] {
            let table: &mut [NameSlot] = bytemuck::cast_slice_mut(bytes);
            fill(table, entries, |s| (s.hash() != 0).then(|| s.hash()));
            let n = table.len();
            for (i, s) in table.iter_mut().enumerate() {
                if s.hash() != 0 {
                    let d = stored_name_distance(i, s.hash(), n);
                    s.loc = (le_u64(&s.loc) | d << 48).to_le_bytes();
                }
                s.seal();
            }
        }
    }
    header.slots_crc = masked_crc(&region[HEADER_LEN..]);
    region[..HEADER_LEN].copy_from_slice(&header.encode());
    region
}

/// Full check of the slot bytes against the header's CRC.
pub fn slots_crc_ok(region: &[u8], header: &Header) -> bool {
    region
        .get(HEADER_LEN..)
        .is_some_and(|s| masked_crc(s) == header.slots_crc)
}

#[cfg(test)]
#[expect(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    reason = "tests: a panic is a failed test"
)]
mod tests {
    use super::super::{peer_record::PeerRecord, segment};
    use super::*;

    fn segment_of(n: i64) -> Vec<u8> {
        let mut seg = vec![];
        for i in 1..=n {
            let r = PeerRecord {
                account: (i % 3) as u32,
                peer_id: i * 7919,
                access_hash: Some(i * 31),
                usernames: if i % 2 == 0 {
                    vec![format!("User{i}")]
                } else {
                    vec![]
                },
                phone: (i % 5 == 0).then(|| format!("+{i}")),
                ..Default::default()
            };
            segment::put_peer(&mut seg, &r.encode());
        }
        seg
    }

    fn recs(seg: &[u8]) -> impl Iterator<Item = (u64, PeerRecordRef<'_>)> {
        segment::peers(seg).map(|e| {
            let (off, b) = e.unwrap();
            (off as u64, PeerRecordRef::parse(b).unwrap())
        })
    }

    #[test]
    fn roundtrip() {
        let seg = segment_of(1000);
        let region = build(recs(&seg), 0, 8192, 0.75);
        let v = IndexView::new(&region).unwrap();
        assert!(slots_crc_ok(&region, &v.header));
        for (off, r) in recs(&seg) {
            let s = v.get(r.key()).unwrap().unwrap();
            assert_eq!((s.offset(), s.access_hash()), (off, r.access_hash()));
            for u in r.usernames() {
                let h = name_hash(NameKind::Username, r.account(), &u.to_uppercase());
                assert!(v.names(NameKind::Username, h).any(|o| o == Ok(off)));
            }
        }
        assert_eq!(v.get(super::super::peer_record::peer_key(0, 5)), Ok(None));
        assert_eq!(IndexView::empty().get(1), Ok(None));
    }

    #[test]
    fn detects_corruption() {
        let seg = segment_of(50);
        let region = build(recs(&seg), 0, 8192, 0.75);
        for i in 0..HEADER_LEN {
            let mut bad = region.clone();
            bad[i] ^= 4;
            assert!(IndexView::new(&bad).is_err(), "header flip at {i} passed");
        }
        let mut bad = region.clone();
        *bad.last_mut().unwrap() ^= 1;
        let h = Header::decode(&bad).unwrap();
        assert!(!slots_crc_ok(&bad, &h));
        assert!(IndexView::new(&region[..region.len() - 1]).is_err());
        // A table with every slot taken must not loop forever.
        let mut full = region.clone();
        let ids = &mut full[HEADER_LEN..HEADER_LEN + h.id_slots as usize * 24];
        ids.iter_mut().for_each(|b| *b = 0xee);
        let v = IndexView::new(&full).unwrap();
        assert!(v.get(12345).is_err());
    }

    /// Every single-byte change of any slot (any value) is caught by the
    /// lookups that read it: a present key answers right or `Damaged`, an
    /// absent key is never reported present, and no present key is
    /// reported absent.
    #[test]
    fn every_slot_byte_change_is_caught() {
        let seg = segment_of(200);
        let region = build(recs(&seg), 0, 8192, 0.9);
        let good = IndexView::new(&region).unwrap();
        let want: Vec<_> = recs(&seg)
            .map(|(off, r)| {
                (
                    r.key(),
                    off,
                    r.access_hash(),
                    r.usernames().next().map(str::to_owned),
                    r.account(),
                )
            })
            .collect();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for at in HEADER_LEN..region.len() {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let delta = ((x >> 56) as u8).max(1);
            let mut bad = region.clone();
            bad[at] ^= delta;
            let v = IndexView::trusted(&bad, good.header);
            let ids = v.id_table();
            for (key, _, hash, _, _) in &want {
                match ids.found(*key) {
                    Some((_, f)) if f & DAMAGED_FLAG != 0 => {}
                    Some((h, _)) => assert_eq!(h, *hash, "byte {at}: found"),
                    None => panic!("byte {at}: key {key} found absent"),
                }
            }
            for k in 1..50 {
                let key = super::super::peer_record::peer_key(9, k);
                assert!(
                    ids.found(key).is_none_or(|(_, f)| f & DAMAGED_FLAG != 0),
                    "byte {at}: absent key found"
                );
            }
            for (key, off, hash, name, account) in &want {
                match v.get(*key) {
                    Ok(Some(s)) => {
                        assert_eq!((s.offset(), s.access_hash()), (*off, *hash), "byte {at}")
                    }
                    Ok(None) => panic!("byte {at}: key {key} reported absent"),
                    Err(_) => {}
                }
                if let Some(u) = name {
                    let h = name_hash(NameKind::Username, *account, u);
                    let got: Vec<_> = v.names(NameKind::Username, h).collect();
                    assert!(
                        got.contains(&Ok(*off)) || got.iter().any(Result::is_err),
                        "byte {at}: name {u} lost"
                    );
                }
            }
            for k in 1..50 {
                let key = super::super::peer_record::peer_key(9, k);
                assert!(
                    !matches!(v.get(key), Ok(Some(_))),
                    "byte {at}: absent key found"
                );
            }
        }
    }

    /// `fill` gives Robin Hood order (each used slot at most one further
    /// from its home than the slot before it, at its home after an empty
    /// one) with every entry present, sorted input or not, including
    /// entries whose homes crowd the end of the table and wrap.
    #[test]
    fn fill_places_in_robin_hood_order_and_wraps() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for (count, slots, crowd) in [(90, 100, 0), (90, 100, 40), (50, 51, 50), (1, 1, 1)] {
            // `crowd` entries hash into the last tenth of the table.
            let mut hashes: Vec<u64> = (0..count)
                .map(|i| match next() {
                    h if i < crowd => h | 0xF000_0000_0000_0000,
                    h => h.max(1),
                })
                .collect();
            for sorted in [false, true] {
                if sorted {
                    hashes.sort_unstable();
                }
                let mut table = vec![0u64; slots];
                fill(&mut table, hashes.iter().map(|&h| (h, h)).collect(), |&h| {
                    (h != 0).then_some(h)
                });
                let dist = |i: usize| distance(i, start(table[i], slots), slots);
                for i in 0..slots {
                    let prev = (i + slots - 1) % slots;
                    if table[i] != 0 {
                        let limit = if table[prev] == 0 { 0 } else { dist(prev) + 1 };
                        assert!(dist(i) <= limit, "slot {i} out of order ({count}/{slots})");
                    }
                }
                let mut placed: Vec<u64> = table.iter().copied().filter(|&h| h != 0).collect();
                let mut want = hashes.clone();
                placed.sort_unstable();
                want.sort_unstable();
                assert_eq!(placed, want);
            }
        }
    }

    /// Tables are written in Robin Hood order with each slot's distance and
    /// check byte, and lookups that stop early on that order still find
    /// every key and name and miss every absent one.
    #[test]
    fn robin_hood_order() {
        let seg = segment_of(3000);
        let region = build(recs(&seg), 0, 8192, 0.9);
        let v = IndexView::new(&region).unwrap();
        assert_eq!(v.header.hash_id, HASH_ID);
        let ids = v.id_slots();
        let n = ids.len();
        assert!(ids.iter().all(IdSlot::is_sound));
        for (i, s) in ids.iter().enumerate().filter(|(_, s)| s.key() != 0) {
            let d = distance(i, start(id_hash(s.key()), n), n) as u64;
            assert_eq!(s.distance(), d.min(ID_DIST_SATURATED));
        }
        for kind in [NameKind::Username, NameKind::Phone] {
            let names = v.name_slots(kind);
            assert!(names.iter().all(NameSlot::is_sound));
            let n = names.len();
            for (i, s) in names.iter().enumerate().filter(|(_, s)| s.hash() != 0) {
                let d = distance(i, start(s.hash(), n), n) as u64;
                assert_eq!(s.distance(), d);
            }
        }
        for i in 0..n {
            let (a, b) = (&ids[if i == 0 { n - 1 } else { i - 1 }], &ids[i]);
            if a.key() != 0 && b.key() != 0 {
                let da = distance(
                    if i == 0 { n - 1 } else { i - 1 },
                    start(id_hash(a.key()), n),
                    n,
                );
                let db = distance(i, start(id_hash(b.key()), n), n);
                assert!(db <= da + 1, "slot {i}: distance {db} after {da}");
            }
        }
        let find = |kind, account, name: &str| {
            v.names(kind, name_hash(kind, account, name))
                .map(Result::unwrap)
                .collect::<Vec<_>>()
        };
        for (off, r) in recs(&seg) {
            assert_eq!(v.get(r.key()).unwrap().map(|s| s.offset()), Some(off));
            for u in r.usernames() {
                assert!(find(NameKind::Username, r.account(), &u.to_uppercase()).contains(&off));
            }
            if let Some(p) = r.phone() {
                assert!(find(NameKind::Phone, r.account(), p).contains(&off));
            }
        }
        for k in 1..20_000u64 {
            let key = super::super::peer_record::peer_key(7, k as i64);
            assert_eq!(v.get(key), Ok(None));
            assert!(find(NameKind::Username, 7, &format!("user{k}")).is_empty());
            assert!(find(NameKind::Phone, 0, &format!("+{k}x")).is_empty());
        }
    }

    /// `lower_ascii` lowercases exactly what `to_ascii_lowercase` does, in
    /// every byte position.
    #[test]
    fn lower_ascii_is_bytewise_to_ascii_lowercase() {
        for b in 0..=255u8 {
            for pos in 0..8 {
                let w = u64::from_le_bytes(std::array::from_fn(|i| {
                    if i == pos {
                        b
                    } else {
                        b'Q'.wrapping_add((i as u8).wrapping_mul(37))
                    }
                }));
                let want = u64::from_le_bytes(w.to_le_bytes().map(|x| x.to_ascii_lowercase()));
                assert_eq!(lower_ascii(w), want, "byte {b:#x} at {pos}");
            }
        }
    }

    /// The name hash is part of the file format: these values must never
    /// change (a new hash needs a new `hash_id`). Also: ASCII case does not
    /// matter, every name length takes the padding and overlap paths
    /// apart, and kind and account keep domains apart.
    #[test]
    fn name_hash_is_stable_and_case_insensitive() {
        let pinned = [
            (NameKind::Username, 0, "", PIN[0]),
            (NameKind::Username, 0, "a", PIN[1]),
            (NameKind::Username, 1, "durov", PIN[2]),
            (NameKind::Username, 1, "telegram_bot", PIN[3]),
            (
                NameKind::Username,
                7,
                "abcdefghijklmnopqrstuvwxyz012345",
                PIN[4],
            ),
            (NameKind::Phone, 1, "15551234567", PIN[5]),
        ];
        for (kind, account, name, want) in pinned {
            assert_eq!(
                name_hash(kind, account, name),
                want,
                "{kind:?} {account} {name:?}"
            );
        }
        let long = "AbCdEfGhIjKlMnOpQrStUvWxYz_0123456789";
        let mut seen = std::collections::HashSet::new();
        for len in 0..=long.len() {
            let (upper, lower) = (&long[..len], long[..len].to_ascii_lowercase());
            let h = name_hash(NameKind::Username, 3, upper);
            assert_eq!(h, name_hash(NameKind::Username, 3, &lower));
            assert_ne!(h, 0);
            assert!(seen.insert(h), "length {len} collides");
            assert!(seen.insert(name_hash(NameKind::Phone, 3, upper)));
            assert!(seen.insert(name_hash(NameKind::Username, 4, upper)));
        }
        // A zero byte at the end is not the padding.
        assert_ne!(
            name_hash(NameKind::Username, 0, "ab"),
            name_hash(NameKind::Username, 0, "ab\0")
        );
    }

    /// Computed independently from FORMAT.md's definition (a Python
    /// transcription), not from this code.
    const PIN: [u64; 6] = [
        0xba3a_9e16_0a5f_1419,
        0x4554_5825_6146_6eb5,
        0xa4a0_725b_920b_87ab,
        0x659d_05b1_b051_e878,
        0x2231_5295_19d2_ff79,
        0x81b9_b748_c631_fdb3,
    ];

    /// Views work at any alignment of the underlying bytes.
    #[test]
    fn any_alignment() {
        let seg = segment_of(100);
        let region = build(recs(&seg), 0, 8192, 0.75);
        for shift in 0..8 {
            let mut buf = vec![0u8; shift];
            buf.extend_from_slice(&region);
            let v = IndexView::new(&buf[shift..]).unwrap();
            assert_eq!(
                v.get(recs(&seg).next().unwrap().1.key())
                    .unwrap()
                    .unwrap()
                    .offset(),
                0
            );
        }
    }
}
