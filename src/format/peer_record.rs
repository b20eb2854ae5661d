//! Peer record: how the engine stores one peer, in the log and in the peer
//! segment. The engine owns the fields its indexes need; the typed layer owns
//! an opaque tail.
//!
//! | offset | size | field | meaning |
//! |---|---|---|---|
//! | 0 | 4 | account | account number |
//! | 4 | 8 | peer_id | Bot API dialog id, non-zero, within ±2^41 |
//! | 12 | 8 | access_hash | 0 when `flags & HAS_HASH == 0` |
//! | 20 | 1 | flags | bit 0 has access hash, bit 1 min, bit 2 first username is the primary one |
//! | 21 | 1 | n_usernames | |
//! | 22 | 1 | phone_len | 0: no phone |
//! | 23 | … | usernames | n × (`u8 len` (1..=255), UTF-8 bytes) |
//! | … | phone_len | phone | UTF-8 |
//! | … | rest | tail | owned by the typed layer |

use crate::format::codec::DecodeError;
use std::ops::Range;

/// Where the account number lives (u32).
pub const ACCOUNT: Range<usize> = 0..4;
/// Where the Bot API peer id lives (i64).
pub const PEER_ID: Range<usize> = 4..12;
/// Where the access hash lives (i64; 0 without [`HAS_HASH`]).
pub const ACCESS_HASH: Range<usize> = 12..20;
/// The flags byte ([`HAS_HASH`], [`MIN`], [`PRIMARY`]).
pub const FLAGS: usize = 20;
/// The number of usernames.
pub const N_USERNAMES: usize = 21;
/// The phone's length (0: no phone).
pub const PHONE_LEN: usize = 22;
/// Bytes before the usernames.
pub const FIXED_LEN: usize = 23;
const _: () = assert!(ACCOUNT.end == PEER_ID.start && PEER_ID.end == ACCESS_HASH.start);
const _: () = assert!(ACCESS_HASH.end == FLAGS && PHONE_LEN + 1 == FIXED_LEN);
/// Largest encoded record (the peer segment frames records with a u16).
pub const MAX_LEN: usize = u16::MAX as usize;
/// Flag: the access hash field is meaningful.
pub const HAS_HASH: u8 = 1;
/// Flag: the peer was seen only through a "min" constructor.
pub const MIN: u8 = 2;
/// Flag: the first username is the primary (`username`) one.
pub const PRIMARY: u8 = 4;
/// Largest account number (accounts share the index key with the peer id).
pub const MAX_ACCOUNT: u32 = (1 << 22) - 1;
/// Peer ids must lie in `-PEER_ID_LIMIT .. PEER_ID_LIMIT`, and not be 0.
pub const PEER_ID_LIMIT: i64 = 1 << 41;

/// The engine's key for a peer: account and peer id packed in 64 bits
/// (account in the top 22 bits, the id's low 42 bits below).
pub fn peer_key(account: u32, peer_id: i64) -> u64 {
    ((account as u64) << 42) | (peer_id as u64 & ((1 << 42) - 1))
}

/// Splits a [`peer_key`] again.
pub fn split_key(key: u64) -> (u32, i64) {
    let account = (key >> 42) as u32;
    let id = ((key << 22) as i64) >> 22;
    (account, id)
}

/// The flags byte of an encoded record (at least [`FIXED_LEN`] bytes).
#[expect(
    clippy::indexing_slicing,
    reason = "callers pass an encoded record (at least FIXED_LEN bytes), as `RecordBuf` builds and `PeerRecordRef::checked_before` accepts"
)]
pub fn flags_of(rec: &[u8]) -> u8 {
    rec[FLAGS]
}

/// Sets the access hash and the min flag of an encoded record.
#[expect(
    clippy::indexing_slicing,
    reason = "callers pass an encoded record (at least FIXED_LEN bytes), as `RecordBuf` builds and `PeerRecordRef::checked_before` accepts"
)]
pub fn set_access_hash(rec: &mut [u8], hash: Option<i64>, min: bool) {
    rec[ACCESS_HASH].copy_from_slice(&hash.unwrap_or(0).to_le_bytes());
    rec[FLAGS] = (rec[FLAGS] & !(HAS_HASH | MIN))
        | (u8::from(hash.is_some()) * HAS_HASH)
        | (u8::from(min) * MIN);
}

/// An owned peer record, as the writer builds it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerRecord {
    /// Account number.
    pub account: u32,
    /// Bot API dialog id.
    pub peer_id: i64,
    /// Access hash, if known.
    pub access_hash: Option<i64>,
    /// Seen only through a min constructor.
    pub min: bool,
    /// The first username is the primary one.
    pub primary: bool,
    /// Usernames as given (matched ASCII case-insensitively).
    pub usernames: Vec<String>,
    /// Phone number, if known.
    pub phone: Option<String>,
    /// The typed layer's bytes.
    pub tail: Vec<u8>,
}

impl PeerRecord {
    /// Checks the limits the format imposes.
    pub fn validate(&self) -> Result<(), String> {
        self.encode_checked().map(drop)
    }

    /// Encodes, checking the format's limits.
    pub fn encode_checked(&self) -> Result<Vec<u8>, String> {
        let mut b = RecordBuf::new(self.account, self.peer_id, self.access_hash, self.min);
        b.primary(self.primary);
        for u in &self.usernames {
            b.username(u);
        }
        if let Some(p) = &self.phone {
            if p.is_empty() {
                return Err("empty phone (use None)".into());
            }
            b.phone(p.bytes());
        }
        b.tail().extend_from_slice(&self.tail);
        b.finish()
    }

    /// Encodes a record that passed [`PeerRecord::validate`].
    ///
    /// # Panics
    /// If the record breaks the format's limits.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_checked()
            .unwrap_or_else(|e| panic!("encoding an invalid peer record: {e}"))
    }
}

/// Encodes a record field by field into one buffer, without building a
/// [`PeerRecord`] first (the typed layer saves peers this way). Fields go
/// in format order: usernames, then the phone, then the tail.
pub(crate) struct RecordBuf {
    buf: Vec<u8>,
    usernames: usize,
    error: Option<String>,
}

impl RecordBuf {
    /// The fixed fields.
    pub fn new(account: u32, peer_id: i64, access_hash: Option<i64>, min: bool) -> RecordBuf {
        Self::reuse(Vec::with_capacity(64), account, peer_id, access_hash, min)
    }

    /// [`RecordBuf::new`] in the allocation of `buf` (cleared first), so a
    /// batch encodes all its records in one buffer.
    pub fn reuse(
        mut buf: Vec<u8>,
        account: u32,
        peer_id: i64,
        access_hash: Option<i64>,
        min: bool,
    ) -> RecordBuf {
        // The fixed fields in one copy rather than four growth checks.
        let mut fixed = [0u8; FIXED_LEN];
        fixed[ACCOUNT].copy_from_slice(&account.to_le_bytes());
        fixed[PEER_ID].copy_from_slice(&peer_id.to_le_bytes());
        fixed[ACCESS_HASH].copy_from_slice(&access_hash.unwrap_or(0).to_le_bytes());
        fixed[FLAGS] = (u8::from(access_hash.is_some()) * HAS_HASH) | (u8::from(min) * MIN);
        buf.clear();
        buf.extend_from_slice(&fixed);
        let mut error = None;
        if account > MAX_ACCOUNT {
            error = Some(format!("account number {account} exceeds {MAX_ACCOUNT}"));
        } else if peer_id == 0 || !(-PEER_ID_LIMIT..PEER_ID_LIMIT).contains(&peer_id) {
            error = Some(format!("peer id {peer_id} is outside Telegram's ranges"));
        }
        RecordBuf {
            buf,
            usernames: 0,
            error,
        }
    }

    fn fail(&mut self, e: impl FnOnce() -> String) {
        if self.error.is_none() {
            self.error = Some(e());
        }
    }

    /// Marks the first username as the primary one.
    #[expect(
        clippy::indexing_slicing,
        reason = "`buf` starts with the FIXED_LEN fixed bytes (`RecordBuf::new`)"
    )]
    pub fn primary(&mut self, primary: bool) {
        self.buf[FLAGS] = (self.buf[FLAGS] & !PRIMARY) | (u8::from(primary) * PRIMARY);
    }

    /// Appends a username.
    #[expect(
        clippy::indexing_slicing,
        reason = "`buf` starts with the FIXED_LEN fixed bytes (`RecordBuf::new`)"
    )]
    pub fn username(&mut self, name: &str) {
        if name.is_empty() || name.len() > 255 {
            self.fail(|| format!("username of {} bytes (1..=255 allowed)", name.len()));
            return;
        }
        self.usernames += 1;
        if self.usernames > 255 {
            self.fail(|| "more than 255 usernames".into());
            return;
        }
        self.buf[N_USERNAMES] = self.usernames as u8;
        self.buf.push(name.len() as u8);
        self.buf.extend_from_slice(name.as_bytes());
    }

    /// Sets the phone (after the usernames, before the tail); empty
    /// means none.
    #[expect(
        clippy::indexing_slicing,
        reason = "`buf` starts with the FIXED_LEN fixed bytes (`RecordBuf::new`), and `start` is its length before the phone"
    )]
    pub fn phone(&mut self, phone: impl Iterator<Item = u8>) {
        let start = self.buf.len();
        self.buf.extend(phone);
        let len = self.buf.len() - start;
        if len > 255 {
            self.fail(|| format!("phone of {len} bytes (at most 255)"));
        } else if std::str::from_utf8(&self.buf[start..]).is_err() {
            self.fail(|| "phone is not UTF-8".into());
        }
        self.buf[PHONE_LEN] = len as u8;
    }

    /// The bytes so far, for the caller to append the tail to.
    pub fn tail(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// The encoded record, or what breaks the format's limits.
    pub fn finish(self) -> Result<Vec<u8>, String> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.buf.len() > MAX_LEN {
            return Err(format!(
                "peer record of {} bytes exceeds {MAX_LEN}",
                self.buf.len()
            ));
        }
        Ok(self.buf)
    }
}

/// Names are almost always ASCII, which is checked inline; the full
/// UTF-8 check is a call per name.
#[inline]
fn is_utf8(b: &[u8]) -> bool {
    b.is_ascii() || std::str::from_utf8(b).is_ok()
}

/// `names`: `count` length-prefixed names (lengths already checked to fit)
/// from 0 to `names_end`, then the phone. True when each is UTF-8.
#[cold]
#[expect(
    clippy::indexing_slicing,
    reason = "called by `parse` after `checked_before` proved every length byte and `names_end` fit inside `names`"
)]
fn names_are_utf8(names: &[u8], count: u8, names_end: usize) -> bool {
    let mut at = 0;
    for _ in 0..count {
        let len = names[at] as usize;
        if !is_utf8(&names[at + 1..at + 1 + len]) {
            return false;
        }
        at += 1 + len;
    }
    is_utf8(&names[names_end..])
}

/// The key of an encoded record that [`RecordBuf`] built or
/// [`PeerRecordRef::parse`] accepted.
#[expect(
    clippy::indexing_slicing,
    reason = "callers pass an encoded record (at least FIXED_LEN bytes), as `RecordBuf` builds and `PeerRecordRef::checked_before` accepts"
)]
pub(crate) fn key_of(rec: &[u8]) -> u64 {
    let mut id = [0u8; 8];
    id.copy_from_slice(&rec[PEER_ID]);
    peer_key(
        u32::from_le_bytes([rec[0], rec[1], rec[2], rec[3]]),
        i64::from_le_bytes(id),
    )
}

/// Access hash and flags of an encoded record (as [`key_of`] requires).
#[inline]
#[expect(
    clippy::indexing_slicing,
    reason = "callers pass an encoded record (at least FIXED_LEN bytes), as `RecordBuf` builds and `PeerRecordRef::checked_before` accepts"
)]
pub(crate) fn hash_and_flags(rec: &[u8]) -> (Option<i64>, u8) {
    let mut h = [0u8; 8];
    h.copy_from_slice(&rec[ACCESS_HASH]);
    let flags = rec[FLAGS];
    (
        (flags & HAS_HASH != 0).then(|| i64::from_le_bytes(h)),
        flags,
    )
}

/// A validated, borrowed view of an encoded record.
#[derive(Debug, Clone, Copy)]
pub struct PeerRecordRef<'a> {
    bytes: &'a [u8],
    /// The first `FIXED_LEN` bytes of `bytes`: the fixed fields, read
    /// without a bounds check each.
    fixed: &'a [u8; FIXED_LEN],
    names_end: usize,
    phone_end: usize,
}

const ERR: DecodeError = DecodeError {
    what: "peer record",
};

impl<'a> PeerRecordRef<'a> {
    /// Checks the layout of `bytes` (lengths, UTF-8, id range) without copying.
    #[expect(
        clippy::indexing_slicing,
        reason = "`checked_before` proved FIXED_LEN <= names_end <= phone_end <= bytes.len()"
    )]
    pub fn parse(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_LEN {
            return Err(ERR);
        }
        let r = Self::checked_before(bytes)?;
        // Names and phone with their length bytes: usually all ASCII, and
        // then every name is UTF-8 without looking at each one.
        let names = &bytes[FIXED_LEN..r.phone_end];
        if !names.is_ascii() && !names_are_utf8(names, bytes[N_USERNAMES], r.names_end - FIXED_LEN)
        {
            return Err(ERR);
        }
        if r.flags() & !(HAS_HASH | MIN | PRIMARY) != 0
            || r.account() > MAX_ACCOUNT
            || r.peer_id() == 0
            || !(-PEER_ID_LIMIT..PEER_ID_LIMIT).contains(&r.peer_id())
        {
            return Err(ERR);
        }
        Ok(r)
    }

    /// A view of bytes that [`PeerRecordRef::parse`] (or [`RecordBuf`])
    /// accepted before, such as the state's overlay records and the ops
    /// of a decoded commit: finds the field boundaries without checking
    /// UTF-8, flags or id ranges again (`parse` is this plus those
    /// checks). Bounds and empty names are still checked, so bytes that
    /// were never checked give an error or a view whose accessors return
    /// wrong values, never a panic.
    pub fn checked_before(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let fixed = bytes.first_chunk::<FIXED_LEN>().ok_or(ERR)?;
        let mut at = FIXED_LEN;
        for _ in 0..fixed[N_USERNAMES] {
            let len = *bytes.get(at).ok_or(ERR)? as usize;
            if len == 0 {
                return Err(ERR);
            }
            at += 1 + len;
        }
        let phone_end = at + fixed[PHONE_LEN] as usize;
        if phone_end > bytes.len() {
            return Err(ERR);
        }
        Ok(PeerRecordRef {
            bytes,
            fixed,
            names_end: at,
            phone_end,
        })
    }

    /// The encoded bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
    /// Account number.
    pub fn account(&self) -> u32 {
        let [a, b, c, d, ..] = *self.fixed;
        u32::from_le_bytes([a, b, c, d])
    }
    /// Bot API dialog id.
    pub fn peer_id(&self) -> i64 {
        let f = self.fixed;
        i64::from_le_bytes([f[4], f[5], f[6], f[7], f[8], f[9], f[10], f[11]])
    }
    /// The engine key.
    pub fn key(&self) -> u64 {
        peer_key(self.account(), self.peer_id())
    }
    /// Flag byte.
    pub fn flags(&self) -> u8 {
        self.fixed[FLAGS]
    }
    /// Access hash, if known.
    pub fn access_hash(&self) -> Option<i64> {
        let f = self.fixed;
        (self.flags() & HAS_HASH != 0)
            .then(|| i64::from_le_bytes([f[12], f[13], f[14], f[15], f[16], f[17], f[18], f[19]]))
    }
    /// Seen only through a min constructor.
    pub fn is_min(&self) -> bool {
        self.flags() & MIN != 0
    }
    /// Usernames, in stored order.
    #[expect(
        clippy::indexing_slicing,
        reason = "a `PeerRecordRef` exists only once `checked_before` proved every username length fits before `names_end`"
    )]
    pub fn usernames(&self) -> impl Iterator<Item = &'a str> + 'a {
        let bytes = self.bytes;
        let mut at = FIXED_LEN;
        (0..bytes[N_USERNAMES]).map(move |_| {
            let len = bytes[at] as usize;
            let s = &bytes[at + 1..at + 1 + len];
            at += 1 + len;
            std::str::from_utf8(s).unwrap_or_default()
        })
    }
    /// True when one of the usernames equals `name`, ASCII case-insensitively.
    #[expect(
        clippy::indexing_slicing,
        reason = "a `PeerRecordRef` exists only once `checked_before` proved every username length fits before `names_end`"
    )]
    pub fn has_username(&self, name: &str) -> bool {
        let (bytes, name) = (self.bytes, name.as_bytes());
        let mut at = FIXED_LEN;
        (0..bytes[N_USERNAMES]).any(|_| {
            let len = bytes[at] as usize;
            let u = &bytes[at + 1..at + 1 + len];
            at += 1 + len;
            // Bytes, not `&str`: a byte comparison with a `&str` needs no
            // UTF-8 check of the stored name. Names are usually asked for
            // as stored, so exact equality first.
            u == name || u.eq_ignore_ascii_case(name)
        })
    }
    /// True when the phone is exactly `phone`.
    #[expect(
        clippy::indexing_slicing,
        reason = "`checked_before` proved names_end <= phone_end <= bytes.len()"
    )]
    pub fn has_phone(&self, phone: &str) -> bool {
        let p = &self.bytes[self.names_end..self.phone_end];
        !p.is_empty() && p == phone.as_bytes()
    }
    /// Phone, if any.
    #[expect(
        clippy::indexing_slicing,
        reason = "`checked_before` proved names_end <= phone_end <= bytes.len()"
    )]
    pub fn phone(&self) -> Option<&'a str> {
        let p = &self.bytes[self.names_end..self.phone_end];
        (!p.is_empty()).then(|| std::str::from_utf8(p).unwrap_or_default())
    }
    /// The typed layer's bytes.
    #[expect(
        clippy::indexing_slicing,
        reason = "`checked_before` proved phone_end <= bytes.len()"
    )]
    pub fn tail(&self) -> &'a [u8] {
        &self.bytes[self.phone_end..]
    }
    /// An owned copy.
    pub fn to_owned(&self) -> PeerRecord {
        PeerRecord {
            account: self.account(),
            peer_id: self.peer_id(),
            access_hash: self.access_hash(),
            min: self.is_min(),
            primary: self.flags() & PRIMARY != 0,
            usernames: self.usernames().map(str::to_owned).collect(),
            phone: self.phone().map(str::to_owned),
            tail: self.tail().to_vec(),
        }
    }
}

#[cfg(test)]
#[expect(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    reason = "tests: a panic is a failed test"
)]
mod tests {
    use super::*;

    fn sample() -> PeerRecord {
        PeerRecord {
            account: 3,
            peer_id: -1_000_000_000_123,
            access_hash: Some(-77),
            min: true,
            primary: true,
            usernames: vec!["Durov".into(), "tg".into()],
            phone: Some("42777".into()),
            tail: vec![1, 2, 3],
        }
    }

    /// `parse` checks all names at once when they are ASCII and one by one
    /// otherwise (a non-ASCII name, or a length byte of 128 or more).
    #[test]
    fn parse_checks_every_name_is_utf8() {
        let mut r = sample();
        r.usernames = vec!["ünïcode".into(), "x".repeat(200), "tg".into()];
        r.phone = Some("+7 ☎".into());
        let bytes = r.encode();
        assert_eq!(PeerRecordRef::parse(&bytes).unwrap().to_owned(), r);
        let at = |s: &str| {
            bytes
                .windows(s.len())
                .position(|w| w == s.as_bytes())
                .unwrap()
        };
        for (what, pos) in [
            ("first name", at("ünïcode")),
            ("long name", at("xxxx")),
            ("last name", at("tg") + 1),
            ("phone", at("☎")),
        ] {
            let mut bad = bytes.clone();
            bad[pos] = 0xff;
            assert!(PeerRecordRef::parse(&bad).is_err(), "{what}");
        }
    }

    /// `checked_before` reads a checked record as `parse` does, and bytes
    /// that were never checked (any prefix, any byte flipped) give an error
    /// or a view whose accessors do not panic.
    #[test]
    fn checked_before_agrees_with_parse_and_never_panics() {
        let mut r = sample();
        r.usernames.push("ünïcode".into());
        let bytes = r.encode();
        let v = PeerRecordRef::checked_before(&bytes).unwrap();
        assert_eq!(v.to_owned(), r);
        let touch = |b: &[u8]| {
            if let Ok(v) = PeerRecordRef::checked_before(b) {
                let _ = (v.key(), v.access_hash(), v.phone(), v.tail());
                let _ = (
                    v.usernames().count(),
                    v.has_username("tg"),
                    v.has_phone("1"),
                );
            }
        };
        for n in 0..bytes.len() {
            touch(&bytes[..n]);
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0xff;
            touch(&b);
        }
    }

    #[test]
    fn roundtrip() {
        let r = sample();
        r.validate().unwrap();
        let bytes = r.encode();
        let v = PeerRecordRef::parse(&bytes).unwrap();
        assert_eq!(v.to_owned(), r);
        assert!(v.has_username("durov") && !v.has_username("duro"));
        assert!(v.has_username("Durov") && v.has_username("TG") && !v.has_username("tgx"));
        assert!(v.has_phone("42777") && !v.has_phone("4277") && !v.has_phone(""));
        assert_eq!(split_key(v.key()), (3, -1_000_000_000_123));
        assert_eq!(
            split_key(peer_key(MAX_ACCOUNT, PEER_ID_LIMIT - 1)),
            (MAX_ACCOUNT, PEER_ID_LIMIT - 1)
        );
        assert_eq!(split_key(peer_key(0, -PEER_ID_LIMIT)), (0, -PEER_ID_LIMIT));
    }

    #[test]
    fn detects_corruption() {
        let bytes = sample().encode();
        for cut in 0..FIXED_LEN + 6 {
            assert!(PeerRecordRef::parse(&bytes[..cut]).is_err(), "cut {cut}");
        }
        for i in 0..bytes.len() {
            for v in [0u8, 0xff, 0x80] {
                let mut b = bytes.clone();
                b[i] = v;
                // Must never panic; accessors on a parsed view must not either.
                if let Ok(r) = PeerRecordRef::parse(&b) {
                    let _ = (r.usernames().count(), r.phone(), r.tail(), r.to_owned());
                }
            }
        }
    }

    #[test]
    fn validate_limits() {
        let mut r = sample();
        r.peer_id = 0;
        assert!(r.validate().is_err());
        let mut r = sample();
        r.account = MAX_ACCOUNT + 1;
        assert!(r.validate().is_err());
        let mut r = sample();
        r.usernames = vec![String::new()];
        assert!(r.validate().is_err());
        let mut r = sample();
        r.tail = vec![0; MAX_LEN];
        assert!(r.validate().is_err());
        let mut r = sample();
        r.phone = Some(String::new());
        assert!(r.validate().is_err());
        let mut r = sample();
        r.phone = Some("1".repeat(256));
        assert!(r.validate().is_err());
        let mut r = sample();
        r.usernames = (0..256).map(|i| format!("u{i}")).collect();
        assert!(r.validate().is_err());
        // The primary flag stands on its own, as the record gives it.
        let mut r = sample();
        r.usernames.clear();
        assert_eq!(PeerRecordRef::parse(&r.encode()).unwrap().to_owned(), r);
    }
}
