//! The on-disk format, one module per structure. FORMAT.md is the spec;
//! `tests::format_md_matches_constants` keeps the two in step.
//!
//! Every integer is little-endian. Every structure that is read straight out
//! of a mapping is a `#[repr(C)]` struct of byte arrays (align 1, no padding).
//!
//! Decoding is panic-free: indexing, slicing and `unwrap` are denied in
//! this module tree, and each exception is an `#[expect]` saying why the
//! index cannot be out of bounds.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

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
/// Where the advisory owner record (pid of the lock holder) lives:
/// `pid u32, pid ^ OWNER_MAGIC u32`.
pub const OWNER_OFFSET: u64 = 1024;
/// What the owner record's pid is XORed with for its check.
pub const OWNER_MAGIC: u32 = 0x504c_4f47;

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

    /// A table row: `| offset | size | field`, the start of a row of
    /// FORMAT.md and of the module's own `//!` table.
    fn row(offset: impl std::fmt::Display, size: impl std::fmt::Display, field: &str) -> String {
        format!("| {offset} | {size} | {field}")
    }

    /// FORMAT.md tables name each field with its offset; the constants must
    /// agree, so neither can drift alone. Where a module repeats a table in
    /// its `//!` docs, the same rows must be there too.
    #[test]
    fn format_md_matches_constants() {
        use peer_record as pr;
        use std::mem::offset_of;
        let doc = include_str!("../../FORMAT.md");
        // (the module's source, or "" where FORMAT.md alone has the table;
        // rows).
        let tables: Vec<(&str, Vec<String>)> = vec![
            (
                include_str!("frame.rs"),
                vec![
                    row(0, 4, "len"),
                    row(frame::LEN_CHECK_OFFSET, 2, "len_check"),
                    row(frame::KIND_OFFSET, 1, "kind"),
                    row(frame::HEADER_LEN, "n", "payload"),
                    row(
                        format!("{}+n", frame::HEADER_LEN),
                        frame::TRAILER_LEN,
                        "crc",
                    ),
                ],
            ),
            (
                include_str!("superblock.rs"),
                vec![
                    row(superblock::GENERATION_OFFSET, 8, "generation"),
                    row(superblock::NEXT_SEQ_OFFSET, 8, "next_seq"),
                    row(superblock::LOG_OFFSET_OFFSET, 8, "log_offset"),
                    row(superblock::FILE_LEN_OFFSET, 8, "file_len"),
                    row(superblock::INDEX_OFFSET, 16, "index"),
                    row(superblock::LOG_DURABLE_OFFSET, 8, "log_durable"),
                    row(
                        superblock::SEGMENTS_OFFSET,
                        NUM_BUCKETS * superblock::SegmentRef::SIZE,
                        "segments",
                    ),
                    row(superblock::CRC_OFFSET, 4, "crc"),
                ],
            ),
            (
                include_str!("commit.rs"),
                vec![
                    row(commit::SEQ_OFFSET, 8, "seq"),
                    row(commit::SYNCED_THROUGH_OFFSET, 8, "synced_through"),
                    row(commit::OP_COUNT_OFFSET, 4, "op_count"),
                    row(commit::HEADER_LEN, "…", "ops"),
                ],
            ),
            (
                include_str!("segment.rs"),
                vec![
                    // Bucket segment entry.
                    row(segment::KEY_LEN_OFFSET, 4, "key_len"),
                    row(segment::VALUE_LEN_OFFSET, 4, "value_len"),
                    row(segment::ENTRY_HEAD, "key_len", "key"),
                    row(
                        format!("{}+key_len", segment::ENTRY_HEAD),
                        "value_len",
                        "value",
                    ),
                    // Peer segment entry.
                    row(segment::PEER_LEN_OFFSET, 2, "len"),
                    row(segment::PEER_CHECK_OFFSET, 4, "check"),
                    row(segment::PEER_HEAD, "len", "peer record"),
                ],
            ),
            (
                include_str!("peer_record.rs"),
                vec![
                    row(pr::ACCOUNT.start, pr::ACCOUNT.len(), "account"),
                    row(pr::PEER_ID.start, pr::PEER_ID.len(), "peer_id"),
                    row(pr::ACCESS_HASH.start, pr::ACCESS_HASH.len(), "access_hash"),
                    row(pr::FLAGS, 1, "flags"),
                    row(pr::N_USERNAMES, 1, "n_usernames"),
                    row(pr::PHONE_LEN, 1, "phone_len"),
                    row(
                        pr::FIXED_LEN,
                        "…",
                        "usernames | n × (`u8 len` (1..=255), UTF-8 bytes)",
                    ),
                    row("…", "phone_len", "phone | UTF-8"),
                ],
            ),
            (
                include_str!("index.rs"),
                vec![
                    row(index::SEGMENT_OFFSET_OFFSET, 8, "segment_offset"),
                    row(index::HEADER_CRC_OFFSET, 4, "header_crc"),
                ],
            ),
            (
                "",
                vec![
                    // Id slot.
                    row(offset_of!(index::IdSlot, key), 8, "key"),
                    row(offset_of!(index::IdSlot, access_hash), 8, "access_hash"),
                    row(offset_of!(index::IdSlot, loc), 8, "loc"),
                    format!("Id slot ({} bytes)", index::ID_SLOT_LEN),
                    // Username and phone slot.
                    row(offset_of!(index::NameSlot, hash), 8, "hash"),
                    row(offset_of!(index::NameSlot, loc), 8, "loc"),
                    format!("Username and phone slot ({} bytes)", index::NAME_SLOT_LEN),
                    format!(
                        "`{} + {}·id_slots + {}·(name_slots + phone_slots)`",
                        index::HEADER_LEN,
                        index::ID_SLOT_LEN,
                        index::NAME_SLOT_LEN
                    ),
                    // Owner record and sync mark.
                    format!(
                        "At offset {OWNER_OFFSET}, 8 bytes: `pid u32, pid ^ 0x{OWNER_MAGIC:08X} u32`"
                    ),
                    format!("At offset {SYNC_MARK_OFFSET}, 12 bytes"),
                ],
            ),
        ];
        for (source, rows) in &tables {
            for line in rows {
                assert!(doc.contains(line), "FORMAT.md lacks `{line}`");
                if !source.is_empty() {
                    let in_docs = source
                        .lines()
                        .filter(|l| l.starts_with("//!"))
                        .any(|l| l.contains(line));
                    assert!(in_docs, "a `//!` table in format/ lacks `{line}`");
                }
            }
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
