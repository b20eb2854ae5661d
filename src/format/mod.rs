//! The on-disk format, one module per structure. FORMAT.md is the spec;
//! `tests::format_md_matches_constants` keeps the two in step.
//!
//! Every integer is little-endian. Every structure that is read straight out
//! of a mapping is a `#[repr(C)]` struct of byte arrays (align 1, no padding).

pub mod bucket;
pub mod codec;
pub mod commit;
pub mod frame;
pub mod index;
pub mod peer_record;
pub mod segment;
pub mod superblock;

/// Allocation unit for every region after the header.
pub const PAGE: u64 = 4096;
/// The two superblock slots take the first two pages; regions start here.
pub const DATA_START: u64 = 2 * PAGE;
/// Where the advisory owner record (pid of the lock holder) lives.
pub const OWNER_OFFSET: u64 = 1024;

/// Where the sync mark lives: the highest commit seq known synced (u64)
/// and `masked_crc` of those 8 bytes (u32), written after a sync.
pub const SYNC_MARK_OFFSET: u64 = 1056;

/// Number of physical buckets; fixed by the format.
pub const NUM_BUCKETS: usize = 8;

/// Masked CRC32 (crc32fast, IEEE), snappy-style: data that embeds CRCs of
/// itself cannot collide with itself, and all-zero input never masks to 0.
pub fn masked_crc(data: &[u8]) -> u32 {
    mask(crc32fast::hash(data))
}

/// Applies the mask to a raw CRC32.
pub fn mask(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Rounds `n` up to a whole number of pages. Lengths read from a file can
/// be anything: past the last page boundary it saturates at `u64::MAX`,
/// which no region inside a file can have.
pub fn page_round(n: u64) -> u64 {
    n.div_ceil(PAGE).saturating_mul(PAGE)
}

pub(crate) fn le_u64(b: &[u8; 8]) -> u64 {
    u64::from_le_bytes(*b)
}

pub(crate) fn le_u32(b: &[u8; 4]) -> u32 {
    u32::from_le_bytes(*b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FORMAT.md tables name each field with its offset; the constants must
    /// agree, so neither can drift alone.
    #[test]
    fn format_md_matches_constants() {
        let doc = include_str!("../../FORMAT.md");
        let expect = [
            format!("| {} | 4 | len", 0),
            format!("| {} | 2 | len_check", frame::LEN_CHECK_OFFSET),
            format!("| {} | 1 | kind", frame::KIND_OFFSET),
            format!("| {} | n | payload", frame::HEADER_LEN),
            format!("| {} | 8 | generation", superblock::GENERATION_OFFSET),
            format!("| {} | 8 | next_seq", superblock::NEXT_SEQ_OFFSET),
            format!("| {} | 8 | log_offset", superblock::LOG_OFFSET_OFFSET),
            format!("| {} | 8 | file_len", superblock::FILE_LEN_OFFSET),
            format!("| {} | 16 | index", superblock::INDEX_OFFSET),
            format!("| {} | 8 | log_durable", superblock::LOG_DURABLE_OFFSET),
            format!("| {} | 256 | segments", superblock::SEGMENTS_OFFSET),
            format!("| {} | 4 | crc", superblock::CRC_OFFSET),
            format!("| {} | 8 | key", 0),
            format!("| {} | 8 | access_hash", 8),
            format!("| {} | 8 | loc", 16),
            format!("| {} | 8 | segment_offset", index::SEGMENT_OFFSET_OFFSET),
            format!("| {} | 4 | header_crc", index::HEADER_CRC_OFFSET),
        ];
        for line in expect {
            assert!(
                doc.contains(&line),
                "FORMAT.md lacks the row starting `{line}`"
            );
        }
        assert!(doc.contains(&format!("`{}`", superblock::MAGIC_HEX)));
        assert!(doc.contains(&format!("Format version: {}", superblock::FORMAT_VERSION)));
    }

    #[test]
    fn page_round_saturates() {
        assert_eq!(page_round(0), 0);
        assert_eq!(page_round(1), PAGE);
        assert_eq!(page_round(PAGE), PAGE);
        assert_eq!(page_round(u64::MAX - PAGE + 1), u64::MAX - PAGE + 1);
        assert_eq!(page_round(u64::MAX - PAGE + 2), u64::MAX);
        assert_eq!(page_round(u64::MAX), u64::MAX);
    }

    #[test]
    fn zeros_never_check() {
        assert_ne!(masked_crc(&[0; 4]) as u16, 0);
        assert_ne!(masked_crc(&[]), 0);
    }
}
