//! Reading the log at open, in linear time and without mapping it.
//!
//! * [`LogReader`] reads the log region with `pread` through a small
//!   window. The log used to be mapped; a new log region is a hole in a
//!   sparse file, and on a full tmpfs a page fault on a hole has no page to
//!   give, which kills the process with SIGBUS. `pread` of a hole returns
//!   zeros without allocating anything.
//! * [`later_commit_proving`] looks, after a damaged record, for a valid
//!   commit that proves the damaged one had been synced. It used to decode
//!   a frame at every byte and checksum the whole length each header
//!   announced: quadratic in the tail's length on crafted bytes (over 20 s
//!   for 8 MiB). Now each candidate's checksum is derived from prefix
//!   checksums in constant time, so the search is linear.

use crate::error::{Error, Result};
use crate::format::commit;
use crate::format::frame::{self, HEADER_LEN, TRAILER_LEN};
use crate::format::masked_crc;
use crate::sys::io::RawFile;

/// Bytes read at a time while scanning the log: the whole region is read
/// once, through a buffer this size (larger only for a frame that needs
/// more), so memory stays small whatever the region's size.
const CHUNK: usize = 64 << 10;

/// The log region, read through a window.
pub(crate) struct LogReader<'f> {
    file: &'f dyn RawFile,
    /// File offset of the region.
    offset: u64,
    /// Region length.
    len: usize,
    buf: Vec<u8>,
    /// Region offset of `buf[0]`.
    start: usize,
}

impl<'f> LogReader<'f> {
    pub fn new(file: &'f dyn RawFile, offset: u64, len: u64) -> Result<LogReader<'f>> {
        let len = usize::try_from(len)
            .map_err(|_| Error::corrupt(offset, "log region larger than the address space"))?;
        Ok(LogReader {
            file,
            offset,
            len,
            buf: Vec::new(),
            start: 0,
        })
    }

    /// The region's bytes from `pos`: at least `need` of them, or all up
    /// to the region's end if fewer remain.
    pub fn window(&mut self, pos: usize, need: usize) -> Result<&[u8]> {
        let pos = pos.min(self.len);
        let want_end = pos.saturating_add(need).min(self.len);
        if pos < self.start || want_end > self.start + self.buf.len() {
            let n = (self.len - pos).min(need.max(CHUNK));
            self.buf.clear();
            self.buf.resize(n, 0);
            self.file
                .read_at(&mut self.buf, self.offset + pos as u64)
                .map_err(Error::io("reading the log"))?;
            self.start = pos;
        }
        Ok(&self.buf[pos - self.start..])
    }

    /// The frame at `pos`, if one decodes there.
    pub fn frame(&mut self, pos: usize) -> Result<Option<frame::Frame<'_>>> {
        let Ok((_, len)) = frame::decode_header(self.window(pos, HEADER_LEN)?) else {
            return Ok(None);
        };
        let need = frame::framed_len(len as usize);
        Ok(frame::decode(self.window(pos, need)?).ok())
    }

    /// One past the last non-zero byte of the region at or after `from`,
    /// as an offset from `from` (0: all zero). Reads back to front, a chunk
    /// at a time.
    pub fn nonzero_end(&mut self, from: usize) -> Result<usize> {
        let mut end = self.len;
        while end > from {
            let at = end.saturating_sub(CHUNK).max(from);
            let chunk = self.window(at, end - at)?;
            let n = nonzero_end(&chunk[..end - at]);
            if n > 0 {
                return Ok(at + n - from);
            }
            end = at;
        }
        Ok(0)
    }

    /// The region's bytes `from .. from + n`, copied.
    pub fn bytes(&mut self, from: usize, n: usize) -> Result<Vec<u8>> {
        Ok(self.window(from, n)?[..n].to_vec())
    }
}

/// One past the last non-zero byte (0 if all zero), a word at a time: this
/// runs over the whole unused log on every open.
pub(crate) fn nonzero_end(b: &[u8]) -> usize {
    let words = b.len() / 16;
    let mut end = b.len();
    while end > words * 16 {
        if b[end - 1] != 0 {
            return end;
        }
        end -= 1;
    }
    let mut w = words;
    while w > 0 {
        let mut a = [0u8; 16];
        a.copy_from_slice(&b[(w - 1) * 16..w * 16]);
        if u128::from_le_bytes(a) != 0 {
            let chunk = &b[(w - 1) * 16..w * 16];
            return (w - 1) * 16 + chunk.iter().rposition(|&x| x != 0).map_or(0, |i| i + 1);
        }
        w -= 1;
    }
    0
}

/// A frame start that passes every check short of its CRC.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    /// Offset of the header in the tail.
    start: usize,
    /// Offset of the stored CRC (the end of the checksummed bytes).
    body_end: usize,
    seq: u64,
}

/// A valid commit after `rest[0]` whose seq is greater than the missing
/// one and whose writer had synced through it (FORMAT.md, "The log and
/// recovery", rule 3): the seq of the first one, if any.
///
/// Linear in `rest.len()` on any bytes. The cheap checks (header, kind,
/// the commit's seq and synced_through) run at every offset in O(1). A
/// crafted tail can pass them at a large fraction of its offsets, each
/// announcing a frame that runs to near the end, so checksumming every
/// candidate from scratch costs O(n²): that is what 8 MiB of crafted
/// headers did (over 20 s). Nor may a candidate whose checksum fails be
/// skipped over: it may be a fake header inside a genuine payload (a
/// payload is the user's bytes, or Telegram's), and the proving commit may
/// lie inside the length it announces. So every candidate is checked, each
/// in O(1): with `C[k]` the CRC of `rest[..k]`, the CRC of `rest[a..b]` is
/// `C[b] ^ C[a]·x^(8(b-a))` over GF(2) modulo the CRC polynomial (the
/// identity zlib's `crc32_combine` rests on). One pass over the tail
/// computes `C` at every candidate's start and end, and `x^(8d)` comes
/// from two tables (`d` mod 2^16, and `d` / 2^16) in two multiplications.
/// When the candidates' lengths add up to little (any genuine torn tail),
/// they are checked directly instead.
pub(crate) fn later_commit_proving(rest: &[u8], missing: u64) -> Option<u64> {
    let mut cands = Vec::new();
    let mut direct_work = 0usize;
    for i in 1..rest.len().saturating_sub(HEADER_LEN) {
        let Ok((kind, len)) = frame::decode_header(&rest[i..]) else {
            continue;
        };
        let body_end = i + HEADER_LEN + len as usize;
        if kind != frame::KIND_COMMIT || body_end + TRAILER_LEN > rest.len() {
            continue;
        }
        let Ok((seq, synced)) = commit::peek(&rest[i + HEADER_LEN..body_end]) else {
            continue;
        };
        if seq > missing && synced >= missing {
            direct_work = direct_work.saturating_add(body_end - i);
            cands.push(Candidate {
                start: i,
                body_end,
                seq,
            });
        }
    }
    let stored = |c: &Candidate| {
        let b = &rest[c.body_end..c.body_end + TRAILER_LEN];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    };
    if direct_work <= 4 * rest.len() + (1 << 16) {
        return cands
            .iter()
            .find(|c| masked_crc(&rest[c.start..c.body_end]) == stored(c))
            .map(|c| c.seq);
    }
    let crcs = range_crcs(rest, &cands);
    cands
        .iter()
        .zip(crcs)
        .find(|&(c, crc)| crate::format::mask(crc) == stored(c))
        .map(|(c, _)| c.seq)
}

/// The reflected CRC-32 polynomial.
const POLY: u32 = 0xedb8_8320;
/// `x^0` in the reflected representation.
const ONE: u32 = 1 << 31;

/// `a·b` modulo the CRC polynomial (zlib's `multmodp`).
fn multmodp(a: u32, mut b: u32) -> u32 {
    let mut p = 0u32;
    let mut m = ONE;
    while m != 0 {
        if a & m != 0 {
            p ^= b;
        }
        b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
        m >>= 1;
    }
    p
}

/// `p·x^8`: one step of the byte-wise CRC over a zero byte.
fn times_x8(table: &[u32; 256], p: u32) -> u32 {
    (p >> 8) ^ table[(p & 0xff) as usize]
}

/// Standard CRC-32 (what `crc32fast` computes) of `rest[c.start ..
/// c.body_end]` for every candidate, in O(rest.len() + candidates ·
/// log(candidates)) time, however long the ranges.
fn range_crcs(rest: &[u8], cands: &[Candidate]) -> Vec<u32> {
    // C at every position a candidate starts or ends at, in one pass.
    let mut at: Vec<usize> = cands.iter().flat_map(|c| [c.start, c.body_end]).collect();
    at.sort_unstable();
    at.dedup();
    let mut prefix = Vec::with_capacity(at.len());
    let mut h = crc32fast::Hasher::new();
    let mut done = 0;
    for &p in &at {
        h.update(&rest[done..p]);
        done = p;
        prefix.push(h.clone().finalize());
    }
    let crc_at = |p: usize| prefix[at.binary_search(&p).expect("collected above")];
    // x^(8d) = x^(8(d mod 2^16)) · x^(8·2^16·(d / 2^16)).
    let mut table = [0u32; 256];
    for (b, t) in table.iter_mut().enumerate() {
        let mut c = b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
        }
        *t = c;
    }
    let mut lo = vec![ONE; 1 << 16];
    for v in 1..lo.len() {
        lo[v] = times_x8(&table, lo[v - 1]);
    }
    let step = times_x8(&table, lo[(1 << 16) - 1]);
    let mut hi = vec![ONE; (rest.len() >> 16) + 2];
    for v in 1..hi.len() {
        hi[v] = multmodp(hi[v - 1], step);
    }
    cands
        .iter()
        .map(|c| {
            let d = c.body_end - c.start;
            let shift = multmodp(lo[d & 0xffff], hi[d >> 16]);
            crc_at(c.body_end) ^ multmodp(shift, crc_at(c.start))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::frame::{KIND_COMMIT, encode};

    fn commit_frame(seq: u64, synced: u64, body: &[u8]) -> Vec<u8> {
        let mut payload = Vec::new();
        payload.extend_from_slice(&seq.to_le_bytes());
        payload.extend_from_slice(&synced.to_le_bytes());
        payload.extend_from_slice(body);
        let mut out = Vec::new();
        encode(KIND_COMMIT, &payload, &mut out);
        out
    }

    /// The prefix CRCs give exactly the CRC of every range, for lengths
    /// across both tables.
    #[test]
    fn range_crcs_match_direct_crcs() {
        let mut rest = vec![0u8; 300_000];
        let mut x = 0x1234_5678_u64;
        for b in rest.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let cands: Vec<Candidate> = [
            (1, 9),
            (5, 200_000),
            (77, 299_990),
            (65_536, 131_080),
            (3, 3 + (1 << 16)),
        ]
        .iter()
        .map(|&(start, body_end)| Candidate {
            start,
            body_end,
            seq: 0,
        })
        .collect();
        let got = range_crcs(&rest, &cands);
        for (c, crc) in cands.iter().zip(got) {
            assert_eq!(crc, crc32fast::hash(&rest[c.start..c.body_end]), "{c:?}");
        }
    }

    /// A proving commit is found both ways: among few candidates (direct
    /// CRCs) and behind many crafted ones (prefix CRCs); one that does not
    /// prove (not synced through the missing seq) is not.
    #[test]
    fn finds_the_proving_commit_behind_crafted_headers() {
        for crafted in [0usize, 20_000] {
            let mut rest = vec![0u8; 16];
            rest[0] = 0xff; // the damaged record
            // Crafted headers announcing frames to near the end, failing
            // their CRC.
            let tail = 64 + crafted * 32 + 200;
            for k in 0..crafted {
                let at = rest.len();
                let len = (tail - at - 16) as u32;
                let mut f = commit_frame(10, 9, &vec![7u8; len as usize - 16]);
                f.truncate(32);
                rest.extend_from_slice(&f);
                let _ = k;
            }
            rest.extend(commit_frame(11, 8, b"not synced through 9"));
            rest.extend(commit_frame(12, 9, b"proves it"));
            rest.resize(tail + 64, 0);
            assert_eq!(
                later_commit_proving(&rest, 9),
                Some(12),
                "crafted {crafted}"
            );
            assert_eq!(later_commit_proving(&rest, 10), None, "crafted {crafted}");
        }
    }
}
