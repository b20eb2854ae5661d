//! (b) A valid store (one of the checked-in seeds in `fuzz/seeds/stores/`),
//! damaged by fuzzer-chosen edits, then opened, verified and read in full.
//!
//! Besides raw byte edits, the fuzzer can re-seal what it damaged (fix a
//! superblock, segment, index or log frame checksum), so that mutations
//! reach the decoders and the replay behind the checksums.
//!
//! Checks: no panic, hang or huge allocation anywhere. An unmodified seed
//! opens, verifies clean and reads in full. A store that opens and
//! verifies clean takes a write and a compaction, reopens, and verifies
//! clean again; if no checksum was forged, all its keys also read.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use peerlog::Options;
use peerlog::format::masked_crc;
use peerlog_fuzz::{open_bytes, read_everything, seed_options, write_compact_reopen};

const SEEDS: [&[u8]; 3] = [
    include_bytes!("../seeds/stores/compacted.plg"),
    include_bytes!("../seeds/stores/log_only.plg"),
    include_bytes!("../seeds/stores/churn.plg"),
];

#[derive(Arbitrary, Debug)]
enum Edit {
    Set {
        at: u32,
        byte: u8,
    },
    Xor {
        at: u32,
        mask: u8,
    },
    SetU32 {
        at: u32,
        value: u32,
    },
    SetU64 {
        at: u32,
        value: u64,
    },
    Fill {
        at: u32,
        len: u16,
        byte: u8,
    },
    Copy {
        from: u32,
        to: u32,
        len: u16,
    },
    Truncate {
        len: u32,
    },
    Extend {
        len: u16,
        byte: u8,
    },
    /// Superblock field `field` (one of its u64 words) of a slot.
    Field {
        slot: bool,
        field: u8,
        value: u64,
    },
    FixSuperblock {
        slot: bool,
    },
    FixIndex {
        slot: bool,
    },
    FixSegment {
        slot: bool,
        bucket: u8,
    },
    FixLog {
        slot: bool,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    seed: u8,
    read_only: bool,
    edits: Vec<Edit>,
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn put(b: &mut [u8], at: usize, v: &[u8]) {
    let end = (at + v.len()).min(b.len());
    if at < end {
        b[at..end].copy_from_slice(&v[..end - at]);
    }
}

fn slot_base(slot: bool) -> usize {
    if slot { 4096 } else { 0 }
}

fn fix_superblock(b: &mut [u8], slot: bool) {
    let at = slot_base(slot);
    if b.len() >= at + 512 {
        let crc = masked_crc(&b[at..at + 508]);
        b[at + 508..at + 512].copy_from_slice(&crc.to_le_bytes());
    }
}

/// `(offset, len)` of a region named by a slot, if it lies in the file.
fn region(b: &[u8], slot: bool, field_at: usize) -> Option<(usize, usize)> {
    let at = slot_base(slot) + field_at;
    let off = usize::try_from(u64_at(b, at)?).ok()?;
    let len = usize::try_from(u64_at(b, at + 8)?).ok()?;
    (off.checked_add(len)? <= b.len()).then_some((off, len))
}

fn fix_index(b: &mut [u8], slot: bool) {
    let Some((off, len)) = region(b, slot, 56) else {
        return;
    };
    if len < 64 {
        return;
    }
    let slots = masked_crc(&b[off + 64..off + len]);
    b[off + 56..off + 60].copy_from_slice(&slots.to_le_bytes());
    let head = masked_crc(&b[off..off + 60]);
    b[off + 60..off + 64].copy_from_slice(&head.to_le_bytes());
}

fn fix_segment(b: &mut [u8], slot: bool, bucket: u8) {
    let field = 128 + 32 * (bucket as usize % 8);
    let Some((off, len)) = region(b, slot, field) else {
        return;
    };
    let crc = masked_crc(&b[off..off + len]);
    put(b, slot_base(slot) + field + 24, &crc.to_le_bytes());
    fix_superblock(b, slot);
}

/// Re-seals the frames of a log region: length checks and CRCs.
fn fix_log(b: &mut [u8], slot: bool) {
    let Some((off, len)) = region(b, slot, 32) else {
        return;
    };
    let log = &mut b[off..off + len];
    let mut pos = 0usize;
    for _ in 0..256 {
        let Some(head) = log.get(pos..pos + 8) else {
            return;
        };
        if head.iter().all(|&x| x == 0) {
            return;
        }
        let n = u32::from_le_bytes(head[..4].try_into().unwrap());
        let check = masked_crc(&n.to_le_bytes()) as u16;
        log[pos + 4..pos + 6].copy_from_slice(&check.to_le_bytes());
        let end = pos + 8 + n as usize;
        if end + 4 > log.len() {
            return;
        }
        let crc = masked_crc(&log[pos..end]);
        log[end..end + 4].copy_from_slice(&crc.to_le_bytes());
        pos = end + 4;
    }
}

fn apply(b: &mut Vec<u8>, e: &Edit) -> bool {
    let at = |x: u32, b: &Vec<u8>| (x as usize) % b.len().max(1);
    match *e {
        Edit::Set { at: x, byte } => {
            let i = at(x, b);
            put(b, i, &[byte]);
        }
        Edit::Xor { at: x, mask } => {
            let i = at(x, b);
            if let Some(v) = b.get_mut(i) {
                *v ^= mask;
            }
        }
        Edit::SetU32 { at: x, value } => {
            let i = at(x, b);
            put(b, i, &value.to_le_bytes());
        }
        Edit::SetU64 { at: x, value } => {
            let i = at(x, b);
            put(b, i, &value.to_le_bytes());
        }
        Edit::Fill { at: x, len, byte } => {
            let i = at(x, b);
            let end = (i + len as usize).min(b.len());
            b[i.min(end)..end].fill(byte);
        }
        Edit::Copy { from, to, len } => {
            let (f, t) = (at(from, b), at(to, b));
            let n = (len as usize).min(b.len() - f).min(b.len() - t);
            b.copy_within(f..f + n, t);
        }
        Edit::Truncate { len } => {
            let n = at(len, b);
            b.truncate(n);
        }
        Edit::Extend { len, byte } => b.resize(b.len() + len as usize, byte),
        Edit::Field { slot, field, value } => {
            put(
                b,
                slot_base(slot) + 16 + 8 * (field as usize % 46),
                &value.to_le_bytes(),
            );
        }
        Edit::FixSuperblock { slot } => {
            fix_superblock(b, slot);
            return true;
        }
        Edit::FixIndex { slot } => {
            fix_index(b, slot);
            return true;
        }
        Edit::FixSegment { slot, bucket } => {
            fix_segment(b, slot, bucket);
            return true;
        }
        Edit::FixLog { slot } => {
            fix_log(b, slot);
            return true;
        }
    }
    false
}

fuzz_target!(|input: Input| {
    let mut bytes = SEEDS[input.seed as usize % SEEDS.len()].to_vec();
    let mut forged = false;
    for e in input.edits.iter().take(64) {
        forged |= apply(&mut bytes, e);
    }
    let opts = Options {
        read_only: input.read_only,
        ..seed_options()
    };
    let pristine = input.edits.is_empty();
    let (mem, store) = open_bytes(bytes, opts.clone());
    let store = match store {
        Ok(s) => s,
        Err(e) if pristine => panic!("a seed store does not open: {e}"),
        Err(_) => return,
    };
    let read = read_everything(&store);
    // `verify` reports problems, or fails outright on some corruption.
    let report = store.verify();
    let clean = report.as_ref().is_ok_and(|r| r.is_ok());
    if pristine {
        assert!(clean, "a seed store verifies: {report:?}");
    }
    if clean && !forged {
        read.expect("every key of a clean store reads");
    }
    if opts.read_only {
        return;
    }
    if let Some(again) = write_compact_reopen(mem, store, opts, clean) {
        let after = read_everything(&again);
        if !forged {
            after.expect("every key reads after reopen");
        }
    }
});
