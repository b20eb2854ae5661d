//! Superblock: the root of the file, written alternately to two slots, and
//! each time in two copies.
//!
//! The primary copy of generation `g` lives at `(g % 2) * 4096`, its mirror
//! at `((g + 1) % 2) * 4096 + 2048`: the other page, so no single damaged
//! byte, sector or page takes both copies of one generation. Open reads all
//! four places and takes the newest generation with at least one valid
//! copy. A torn write of both copies (the checkpoint never returned) leaves
//! the previous generation in charge; damage to one copy is repaired from
//! the other. Version 1 files have no mirrors.
//!
//! | offset | size | field | meaning |
//! |---|---|---|---|
//! | 0 | 8 | magic | `89 50 4C 47 0D 0A 1A 0A` |
//! | 8 | 4 | version | format version |
//! | 12 | 4 | size | bytes of this structure (512) |
//! | 16 | 8 | generation | bumped by every checkpoint |
//! | 24 | 8 | next_seq | sequence number of the first commit in the log |
//! | 32 | 8 | log_offset | start of the log region |
//! | 40 | 8 | log_len | capacity of the log region |
//! | 48 | 8 | file_len | bytes of the file that regions may use |
//! | 56 | 16 | index | peer index region: offset u64, len u64 |
//! | 72 | 8 | log_durable | bytes at the log start synced before this superblock |
//! | 80 | 48 | reserved | zero |
//! | 128 | 256 | segments | 8 × [`SegmentRef`], one per bucket |
//! | 384 | 124 | reserved | zero |
//! | 508 | 4 | crc | `masked_crc(bytes 0..508)` |

use super::{NUM_BUCKETS, PAGE, le_u32, le_u64, masked_crc};

/// The magic bytes, PNG-style: high bit, name, CR LF, ^Z, LF catch transfers
/// that mangle line endings or bytes.
pub const MAGIC: [u8; 8] = [0x89, b'P', b'L', b'G', b'\r', b'\n', 0x1a, b'\n'];
/// The magic as written in FORMAT.md.
pub const MAGIC_HEX: &str = "89 50 4C 47 0D 0A 1A 0A";
/// The format version this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 2;
/// The oldest format version this build reads (and upgrades on the first
/// writable open).
pub const OLDEST_VERSION: u32 = 1;
/// Offset of a mirror copy within its page.
pub const MIRROR_IN_PAGE: u64 = 2048;
/// Encoded size of a superblock.
pub const SIZE: usize = 512;
/// `generation` and `next_seq` start at 1 and grow by one per checkpoint
/// and per commit; a slot with either outside `1..COUNTER_LIMIT` is
/// corrupt (such values would overflow as they grow).
pub const COUNTER_LIMIT: u64 = 1 << 62;
/// Writers refuse to grow a counter to [`COUNTER_LIMIT`]. `verify`
/// reports a counter within this distance of the limit, which no store
/// reaches by counting (2^62 commits at a million a second take 146,000
/// years): its superblock was damaged or forged.
pub const COUNTER_HEADROOM: u64 = 1 << 32;
/// Offset of `generation`.
pub const GENERATION_OFFSET: usize = 16;
/// Offset of `next_seq`.
pub const NEXT_SEQ_OFFSET: usize = 24;
/// Offset of `log_offset`.
pub const LOG_OFFSET_OFFSET: usize = 32;
/// Offset of `file_len`.
pub const FILE_LEN_OFFSET: usize = 48;
/// Offset of `log_durable`.
pub const LOG_DURABLE_OFFSET: usize = 72;
/// Offset of the peer index reference.
pub const INDEX_OFFSET: usize = 56;
/// Offset of the segment table.
pub const SEGMENTS_OFFSET: usize = 128;
/// Offset of the checksum.
pub const CRC_OFFSET: usize = 508;
const _: () = assert!(SEGMENTS_OFFSET + NUM_BUCKETS * SegmentRef::SIZE == 384);
const _: () = assert!(CRC_OFFSET + 4 == SIZE);

/// A region of the file: `len` bytes at `offset` (both page multiples for
/// allocated regions; `len == 0` means none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Extent {
    /// Start offset in the file.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
}

impl Extent {
    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.len)
    }
}

/// One bucket's compacted segment.
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 8 | offset |
/// | 8 | 8 | len (bytes used; the region is page-rounded) |
/// | 16 | 8 | count of entries |
/// | 24 | 4 | crc: `masked_crc` of the `len` bytes |
/// | 28 | 4 | reserved, zero |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SegmentRef {
    /// Where the segment starts.
    pub offset: u64,
    /// Bytes of segment data.
    pub len: u64,
    /// Number of entries.
    pub count: u64,
    /// Masked CRC32 of the data.
    pub crc: u32,
}

impl SegmentRef {
    /// Encoded size.
    pub const SIZE: usize = 32;
    /// The allocated region (page-rounded).
    pub fn extent(&self) -> Extent {
        Extent {
            offset: self.offset,
            len: super::page_round(self.len),
        }
    }
}

/// The decoded superblock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Superblock {
    /// The format version it was read with ([`Superblock::encode`] always
    /// writes [`FORMAT_VERSION`]).
    pub version: u32,
    /// Bumped by every checkpoint; picks the slot.
    pub generation: u64,
    /// Sequence number of the first commit in the log region.
    pub next_seq: u64,
    /// The log region.
    pub log: Extent,
    /// Bytes of the file in use by regions.
    pub file_len: u64,
    /// The peer index region (len 0: none).
    pub index: Extent,
    /// Bytes at the start of the log that were synced before this
    /// superblock was written (the carried-over commit): damage there is
    /// corruption, never a torn tail.
    pub log_durable: u64,
    /// One segment per bucket (len 0: empty).
    pub segments: [SegmentRef; NUM_BUCKETS],
}

/// Why a slot did not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotError {
    /// Not peerlog's magic.
    NotPeerlog,
    /// A newer format.
    Version(u32),
    /// Magic fine, contents wrong.
    Corrupt(&'static str),
}

#[expect(
    clippy::indexing_slicing,
    reason = "callers pass constant offsets at least 8 bytes before the end of the SIZE-byte slot"
)]
fn u64_at(b: &[u8; SIZE], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    le_u64(&a)
}

impl Superblock {
    /// File offset of the slot this superblock belongs in (its primary copy).
    pub fn slot_offset(generation: u64) -> u64 {
        (generation % 2) * PAGE
    }

    /// File offset of the mirror copy (format version 2): in the other
    /// slot's page, 2048 bytes in.
    pub fn mirror_offset(generation: u64) -> u64 {
        ((generation + 1) % 2) * PAGE + MIRROR_IN_PAGE
    }

    /// Both places a superblock of this generation is written to.
    pub fn copy_offsets(generation: u64) -> [u64; 2] {
        [
            Self::slot_offset(generation),
            Self::mirror_offset(generation),
        ]
    }

    /// Encodes into the 512-byte slot image.
    #[expect(
        clippy::indexing_slicing,
        reason = "constant offsets inside the SIZE-byte slot (the segment references end at 384, asserted at compile time, before CRC_OFFSET)"
    )]
    pub fn encode(&self) -> [u8; SIZE] {
        let mut b = [0u8; SIZE];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(SIZE as u32).to_le_bytes());
        let words = [
            self.generation,
            self.next_seq,
            self.log.offset,
            self.log.len,
            self.file_len,
            self.index.offset,
            self.index.len,
            self.log_durable,
        ];
        for (i, w) in words.iter().enumerate() {
            b[16 + 8 * i..24 + 8 * i].copy_from_slice(&w.to_le_bytes());
        }
        for (i, s) in self.segments.iter().enumerate() {
            let at = SEGMENTS_OFFSET + i * SegmentRef::SIZE;
            b[at..at + 8].copy_from_slice(&s.offset.to_le_bytes());
            b[at + 8..at + 16].copy_from_slice(&s.len.to_le_bytes());
            b[at + 16..at + 24].copy_from_slice(&s.count.to_le_bytes());
            b[at + 24..at + 28].copy_from_slice(&s.crc.to_le_bytes());
        }
        let crc = masked_crc(&b[..CRC_OFFSET]);
        b[CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks one slot image: magic, version, size, CRC, and that
    /// every region lies inside `file_len`, page-aligned, without overlap.
    #[expect(
        clippy::indexing_slicing,
        reason = "constant offsets inside the SIZE-byte slot (the segment references end at 384, asserted at compile time, before CRC_OFFSET)"
    )]
    pub fn decode(b: &[u8; SIZE]) -> Result<Superblock, SlotError> {
        if b[0..8] != MAGIC {
            return Err(SlotError::NotPeerlog);
        }
        let mut w4 = [0u8; 4];
        w4.copy_from_slice(&b[CRC_OFFSET..]);
        let crc_ok = le_u32(&w4) == masked_crc(&b[..CRC_OFFSET]);
        w4.copy_from_slice(&b[8..12]);
        let version = le_u32(&w4);
        if version > FORMAT_VERSION && crc_ok {
            return Err(SlotError::Version(version));
        }
        if !crc_ok {
            return Err(SlotError::Corrupt("superblock checksum mismatch"));
        }
        if version == 0 {
            return Err(SlotError::Corrupt("superblock version 0"));
        }
        w4.copy_from_slice(&b[12..16]);
        if le_u32(&w4) as usize != SIZE {
            return Err(SlotError::Corrupt("superblock size field"));
        }
        let mut segments = [SegmentRef::default(); NUM_BUCKETS];
        for (i, s) in segments.iter_mut().enumerate() {
            let at = SEGMENTS_OFFSET + i * SegmentRef::SIZE;
            w4.copy_from_slice(&b[at + 24..at + 28]);
            *s = SegmentRef {
                offset: u64_at(b, at),
                len: u64_at(b, at + 8),
                count: u64_at(b, at + 16),
                crc: le_u32(&w4),
            };
        }
        let sb = Superblock {
            version,
            generation: u64_at(b, 16),
            next_seq: u64_at(b, 24),
            log: Extent {
                offset: u64_at(b, 32),
                len: u64_at(b, 40),
            },
            file_len: u64_at(b, 48),
            index: Extent {
                offset: u64_at(b, 56),
                len: u64_at(b, 64),
            },
            log_durable: u64_at(b, 72),
            segments,
        };
        if !(1..COUNTER_LIMIT).contains(&sb.generation)
            || !(1..COUNTER_LIMIT).contains(&sb.next_seq)
        {
            return Err(SlotError::Corrupt("generation or next_seq out of range"));
        }
        sb.check_regions()?;
        Ok(sb)
    }

    /// Every region this superblock keeps alive (non-empty ones).
    pub fn regions(&self) -> Vec<Extent> {
        // Regions occupy whole pages, whatever length a (hostile) slot
        // gives the log: free space starts on a page boundary.
        let mut v = vec![
            Extent {
                offset: self.log.offset,
                len: super::page_round(self.log.len),
            },
            Extent {
                offset: self.index.offset,
                len: super::page_round(self.index.len),
            },
        ];
        v.extend(self.segments.iter().map(|s| s.extent()));
        v.retain(|e| e.len > 0);
        v
    }

    #[expect(
        clippy::indexing_slicing,
        reason = "`windows(2)` yields slices of exactly two"
    )]
    fn check_regions(&self) -> Result<(), SlotError> {
        if !self.file_len.is_multiple_of(PAGE) || self.file_len < super::DATA_START {
            return Err(SlotError::Corrupt(
                "file_len not a page multiple past the header",
            ));
        }
        if self.log_durable > self.log.len {
            return Err(SlotError::Corrupt("log_durable beyond the log region"));
        }
        if self.log.len == 0 {
            return Err(SlotError::Corrupt("no log region"));
        }
        // Before any length is rounded to pages (which would overflow on
        // hostile values) or sizes a read.
        let mut lens = [self.log.len, self.index.len]
            .into_iter()
            .chain(self.segments.iter().map(|s| s.len));
        if lens.any(|l| l > self.file_len) {
            return Err(SlotError::Corrupt("region longer than the file"));
        }
        let mut regions = self.regions();
        for r in &regions {
            if !r.offset.is_multiple_of(PAGE)
                || r.offset < super::DATA_START
                || r.end() > self.file_len
                || r.end() < r.offset
            {
                return Err(SlotError::Corrupt("region outside the file or misaligned"));
            }
        }
        regions.sort_by_key(|r| r.offset);
        if regions.windows(2).any(|w| w[0].end() > w[1].offset) {
            return Err(SlotError::Corrupt("regions overlap"));
        }
        Ok(())
    }
}

#[cfg(test)]
#[expect(clippy::indexing_slicing, reason = "tests: a panic is a failed test")]
mod tests {
    use super::*;

    fn sample() -> Superblock {
        let mut sb = Superblock {
            generation: 7,
            next_seq: 99,
            log: Extent {
                offset: 8192,
                len: 4096 * 4,
            },
            file_len: 8192 + 4096 * 10,
            index: Extent {
                offset: 8192 + 4096 * 4,
                len: 5000,
            },
            ..Default::default()
        };
        sb.segments[3] = SegmentRef {
            offset: 8192 + 4096 * 6,
            len: 100,
            count: 3,
            crc: 42,
        };
        sb.version = FORMAT_VERSION;
        sb
    }

    #[test]
    fn roundtrip() {
        let sb = sample();
        assert_eq!(Superblock::decode(&sb.encode()), Ok(sb));
    }

    /// Every single-bit flip is caught (CRC) and none panics.
    #[test]
    fn detects_corruption() {
        let img = sample().encode();
        for i in 0..SIZE {
            let mut bad = img;
            bad[i] ^= 0x10;
            assert!(Superblock::decode(&bad).is_err(), "flip at {i} passed");
        }
    }

    #[test]
    fn rejects_foreign_and_newer() {
        assert_eq!(Superblock::decode(&[0u8; SIZE]), Err(SlotError::NotPeerlog));
        let mut img = sample().encode();
        img[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        let crc = masked_crc(&img[..CRC_OFFSET]);
        img[CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            Superblock::decode(&img),
            Err(SlotError::Version(FORMAT_VERSION + 1))
        );
    }

    /// Regression: a superblock with a valid CRC and a region length near
    /// u64::MAX overflowed the page rounding (a panic in debug builds; in
    /// release the region wrapped to length 0, passed the checks, and open
    /// then tried to allocate the whole length).
    #[test]
    fn rejects_huge_lengths() {
        for len in [u64::MAX, u64::MAX - 10, u64::MAX - PAGE, 1 << 63] {
            let mut sb = sample();
            sb.index.len = len;
            assert!(Superblock::decode(&sb.encode()).is_err(), "index len {len}");
            let mut sb = sample();
            sb.segments[3].len = len;
            assert!(
                Superblock::decode(&sb.encode()).is_err(),
                "segment len {len}"
            );
            let mut sb = sample();
            sb.log.len = len;
            assert!(Superblock::decode(&sb.encode()).is_err(), "log len {len}");
        }
    }

    /// Regression (found by fuzzing): a segment or index length within a
    /// page of `u64::MAX` overflowed `page_round` while the regions were
    /// checked: a panic with overflow checks, and without them a region
    /// rounded to length 0, which the check skipped, so that open then
    /// tried to allocate the whole length.
    #[test]
    fn rejects_lengths_that_overflow_page_rounding() {
        for len in [u64::MAX, u64::MAX - 100, u64::MAX - PAGE + 2] {
            let mut sb = sample();
            sb.segments[5] = SegmentRef {
                offset: 8192 + 4096 * 8,
                len,
                count: 1,
                crc: 0,
            };
            assert!(matches!(
                Superblock::decode(&sb.encode()),
                Err(SlotError::Corrupt(_))
            ));
            let mut sb = sample();
            sb.index.len = len;
            assert!(matches!(
                Superblock::decode(&sb.encode()),
                Err(SlotError::Corrupt(_))
            ));
        }
    }

    /// Regression (found by fuzzing): a slot with generation `u64::MAX`
    /// (valid CRC) was picked, and the next checkpoint overflowed
    /// `generation + 1` (a panic with overflow checks, without them a
    /// superblock of generation 0 that lost to the old one at the next
    /// open). `next_seq` 0 underflowed `seq - 1` at open, and values near
    /// `u64::MAX` overflow during replay or the next commit.
    #[test]
    fn rejects_counters_out_of_range() {
        for v in [0, COUNTER_LIMIT, u64::MAX - 1, u64::MAX] {
            let mut sb = sample();
            sb.generation = v;
            assert!(
                matches!(Superblock::decode(&sb.encode()), Err(SlotError::Corrupt(_))),
                "generation {v}"
            );
            let mut sb = sample();
            sb.next_seq = v;
            assert!(
                matches!(Superblock::decode(&sb.encode()), Err(SlotError::Corrupt(_))),
                "next_seq {v}"
            );
        }
        let mut sb = sample();
        sb.generation = COUNTER_LIMIT - 1;
        sb.next_seq = COUNTER_LIMIT - 1;
        assert_eq!(Superblock::decode(&sb.encode()), Ok(sb));
    }

    /// Regression (found by fuzzing): a slot whose log length is not a
    /// page multiple (valid: only the offset must be aligned) made free
    /// space start mid-page, and the next checkpoint wrote a segment at a
    /// misaligned offset that no open accepted.
    #[test]
    fn regions_are_whole_pages_whatever_the_log_length() {
        let mut sb = sample();
        sb.log.len = 4096 + 100;
        let log = sb.regions()[0];
        assert_eq!((log.offset, log.len), (sb.log.offset, 2 * PAGE));
    }

    #[test]
    fn rejects_overlapping_regions() {
        let mut sb = sample();
        sb.segments[1] = SegmentRef {
            offset: 8192,
            len: 10,
            count: 1,
            crc: 0,
        };
        assert!(matches!(
            Superblock::decode(&sb.encode()),
            Err(SlotError::Corrupt(_))
        ));
    }
}
