//! Segment entries: the compacted contents of one bucket.
//!
//! A bucket segment is a run of entries with no gaps; its length, entry count
//! and masked CRC32 sit in the superblock's [`super::superblock::SegmentRef`].
//!
//! Generic bucket entry:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | key_len |
//! | 4 | 4 | value_len |
//! | 8 | key_len | key |
//! | 8+key_len | value_len | value |
//!
//! Peer segment entry (format version 2):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 2 | len |
//! | 2 | 4 | check: [`peer_check`] of `len` and the record |
//! | 6 | len | peer record ([`super::peer_record`]) |
//!
//! Every read of a record checks it, so a lookup, a `peer()` read or a
//! fold never trusts a damaged record. The check is not a CRC: name
//! lookups read a record each, and a CRC-32 of a short record costs them
//! several times what the word check does (figures: benches/README.md,
//! "Figures behind design choices"), which still catches every change
//! confined to one byte. Version 1 entries had no CRC
//! ([`legacy_peers`]); they are converted when such a file is opened.

use crate::format::codec::DecodeError;

/// Where a bucket entry's key length lives (u32).
pub const KEY_LEN_OFFSET: usize = 0;
/// Where a bucket entry's value length lives (u32).
pub const VALUE_LEN_OFFSET: usize = 4;
/// Bytes before a bucket entry's key.
pub const ENTRY_HEAD: usize = 8;

/// One decoded entry, or where and why decoding stopped.
pub type EntryResult<'a> = Result<(&'a [u8], &'a [u8]), (usize, DecodeError)>;
/// One peer entry (offset, record), or where and why decoding stopped.
pub type PeerEntryResult<'a> = Result<(usize, &'a [u8]), (usize, DecodeError)>;

const ERR: DecodeError = DecodeError {
    what: "segment entry",
};

/// Appends a generic entry.
pub fn put_entry(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(value);
}

/// Size of a generic entry.
pub fn entry_len(key: &[u8], value: &[u8]) -> usize {
    ENTRY_HEAD + key.len() + value.len()
}

/// Iterates the generic entries of `seg`; the first malformed entry yields
/// an error with its offset and ends the iteration.
#[expect(
    clippy::indexing_slicing,
    reason = "`head` is 8 bytes, taken with `get`"
)]
pub fn entries(seg: &[u8]) -> impl Iterator<Item = EntryResult<'_>> {
    let mut at = 0usize;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || at == seg.len() {
            return None;
        }
        let start = at;
        let parsed = (|| {
            let head = seg.get(at..at + 8).ok_or(ERR)?;
            let k = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
            let v = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
            let key = seg
                .get(at + 8..(at + 8).checked_add(k).ok_or(ERR)?)
                .ok_or(ERR)?;
            let vs = at + 8 + k;
            let value = seg.get(vs..vs.checked_add(v).ok_or(ERR)?).ok_or(ERR)?;
            at = vs + v;
            Ok((key, value))
        })();
        if parsed.is_err() {
            failed = true;
        }
        Some(parsed.map_err(|e| (start, e)))
    })
}

/// Where a peer entry's record length lives (u16).
pub const PEER_LEN_OFFSET: usize = 0;
/// Where a peer entry's check lives (u32, [`peer_check`]).
pub const PEER_CHECK_OFFSET: usize = 2;
/// Bytes before the record in a peer entry: `u16 len`, `u32 check`.
pub const PEER_HEAD: usize = 6;

/// Size of the peer entry holding a record of `len` bytes.
pub fn peer_entry_len(len: usize) -> usize {
    PEER_HEAD + len
}

/// The check of a peer entry: the record read as little-endian 64-bit
/// words (the last one zero-padded), word `i` (from 1) rotated left by `i`
/// bits, all XORed into `len ^ 0x9e3779b97f4a7c15`, then the two 32-bit
/// halves XORed. A change confined to one byte touches 8 consecutive bits
/// (modulo 64) of one rotated word, never two bits 32 apart, so it always
/// changes the check; an all-zero entry fails it too. Random damage
/// passes with probability 2^-32.
#[expect(
    clippy::indexing_slicing,
    reason = "`rest` is the remainder of `chunks_exact(8)`: shorter than `w`"
)]
pub fn peer_check(len: [u8; 2], record: &[u8]) -> u32 {
    let mut h = u16::from_le_bytes(len) as u64 ^ 0x9e37_79b9_7f4a_7c15;
    let mut chunks = record.chunks_exact(8);
    let mut i = 1u32;
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h ^= u64::from_le_bytes(w).rotate_left(i);
        i += 1;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h ^= u64::from_le_bytes(w).rotate_left(i);
    }
    (h ^ (h >> 32)) as u32
}

/// Appends a peer entry.
pub fn put_peer(out: &mut Vec<u8>, record: &[u8]) {
    let len = (record.len() as u16).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&peer_check(len, record).to_le_bytes());
    out.extend_from_slice(record);
}

const BOUNDS: DecodeError = DecodeError {
    what: "peer entry out of bounds",
};
const CRC: DecodeError = DecodeError {
    what: "peer entry fails its check",
};

/// The peer record whose entry starts at `at` (the offset an index slot
/// holds), after checking its CRC.
#[inline]
#[expect(
    clippy::indexing_slicing,
    reason = "`head` is PEER_HEAD bytes, taken with `get`"
)]
pub fn peer_at(seg: &[u8], at: usize) -> Result<&[u8], DecodeError> {
    let head = seg
        .get(at..at.checked_add(PEER_HEAD).ok_or(BOUNDS)?)
        .ok_or(BOUNDS)?;
    let len = [head[0], head[1]];
    let crc = u32::from_le_bytes([head[2], head[3], head[4], head[5]]);
    let start = at + PEER_HEAD;
    let rec = seg
        .get(start..start + u16::from_le_bytes(len) as usize)
        .ok_or(BOUNDS)?;
    if peer_check(len, rec) != crc {
        return Err(CRC);
    }
    Ok(rec)
}

/// Iterates `(offset, record bytes)` over a peer segment, checking every
/// entry's CRC; the first bad entry yields an error and ends it.
pub fn peers(
    seg: &[u8],
) -> impl Iterator<Item = Result<(usize, &[u8]), (usize, DecodeError)>> + Clone {
    walk(seg, PEER_HEAD, peer_at)
}

/// Iterates a version 1 peer segment (`u16 len`, record; no per-entry
/// CRC: the caller checks the whole segment's CRC first).
#[expect(
    clippy::indexing_slicing,
    reason = "`head` is 2 bytes, taken with `get`"
)]
pub fn legacy_peers(
    seg: &[u8],
) -> impl Iterator<Item = Result<(usize, &[u8]), (usize, DecodeError)>> + Clone {
    walk(seg, 2, |seg, at| {
        let head = seg
            .get(at..at.checked_add(2).ok_or(BOUNDS)?)
            .ok_or(BOUNDS)?;
        let len = u16::from_le_bytes([head[0], head[1]]) as usize;
        seg.get(at + 2..at + 2 + len).ok_or(BOUNDS)
    })
}

fn walk<'a>(
    seg: &'a [u8],
    head: usize,
    at: impl Fn(&'a [u8], usize) -> Result<&'a [u8], DecodeError> + Clone,
) -> impl Iterator<Item = Result<(usize, &'a [u8]), (usize, DecodeError)>> + Clone {
    let mut pos = 0usize;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || pos == seg.len() {
            return None;
        }
        let start = pos;
        match at(seg, pos) {
            Ok(r) => {
                pos += head + r.len();
                Some(Ok((start, r)))
            }
            Err(e) => {
                failed = true;
                Some(Err((start, e)))
            }
        }
    })
}

#[cfg(test)]
#[expect(clippy::indexing_slicing, reason = "tests: a panic is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let mut seg = vec![];
        put_entry(&mut seg, b"k1", b"v1");
        put_entry(&mut seg, b"", b"");
        assert_eq!(seg.len(), entry_len(b"k1", b"v1") + 8);
        let got: Vec<_> = entries(&seg).map(Result::unwrap).collect();
        assert_eq!(got, vec![(&b"k1"[..], &b"v1"[..]), (&b""[..], &b""[..])]);
        let mut ps = vec![];
        put_peer(&mut ps, b"abc");
        put_peer(&mut ps, b"de");
        let got: Vec<_> = peers(&ps).map(Result::unwrap).collect();
        assert_eq!(got, vec![(0, &b"abc"[..]), (9, &b"de"[..])]);
        // Every single-bit flip of a peer entry is caught.
        for i in 0..ps.len() * 8 {
            let mut bad = ps.clone();
            bad[i / 8] ^= 1 << (i % 8);
            let got: Vec<_> = peers(&bad).collect();
            assert!(
                got.iter().any(|e| e.is_err()) || got.len() != 2,
                "flip of bit {i} passed"
            );
        }
    }

    /// Every change confined to one byte of a peer entry (any position,
    /// any of the 255 other values) fails its check, at every record
    /// length a word boundary can fall in.
    #[test]
    fn every_single_byte_change_of_an_entry_is_caught() {
        for n in [0usize, 1, 7, 8, 9, 23, 40, 64, 255] {
            let rec: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            let mut e = vec![];
            put_peer(&mut e, &rec);
            assert_eq!(peer_at(&e, 0), Ok(&rec[..]));
            for at in 0..e.len() {
                for d in 1..=255u8 {
                    let mut bad = e.clone();
                    bad[at] ^= d;
                    assert!(
                        peer_at(&bad, 0).is_err(),
                        "len {n}: byte {at} ^ {d:#x} passed"
                    );
                }
            }
        }
    }

    #[test]
    fn detects_corruption() {
        let mut seg = vec![];
        put_entry(&mut seg, b"key", b"value");
        for cut in 1..seg.len() {
            assert!(entries(&seg[..cut]).any(|e| e.is_err()), "cut {cut}");
        }
        let huge = [0xff; 8];
        assert_eq!(entries(&huge).next(), Some(Err((0, ERR))));
        assert!(peer_at(&[5, 0, 1], 0).is_err());
        assert!(peer_at(&[0; 6], 0).is_err(), "zeros are not an entry");
        assert!(peer_at(&[], 7).is_err());
    }
}
