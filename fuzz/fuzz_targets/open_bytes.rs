//! (a) Arbitrary bytes opened as a store file. Open must return an error or
//! a store; a store must then answer every read, `verify`, a write and a
//! compaction without panicking, and a writable store must reopen.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerlog::{Durability, Options};
use peerlog_fuzz::{open_bytes, read_everything, write_compact_reopen};

fuzz_target!(|data: &[u8]| {
    // The last byte picks the options, the rest is the file.
    let (mode, file) = match data.split_last() {
        Some((m, f)) => (*m, f),
        None => (0, data),
    };
    let opts = Options {
        durability: Durability::None,
        read_only: mode & 1 != 0,
        log_size: 4096,
        peer_fold_min: 4,
        ..Options::default()
    };
    let (mem, store) = open_bytes(file.to_vec(), opts.clone());
    let Ok(store) = store else { return };
    let _ = read_everything(&store);
    let clean = store.verify().map(|r| r.is_ok()).unwrap_or(false);
    if opts.read_only {
        return;
    }
    // A store that verifies clean takes writes, compacts and reopens.
    if let Some(again) = write_compact_reopen(mem, store, opts, clean) {
        // Typed values may still be garbage under valid checksums (the
        // fuzzer can splice checksummed pieces): reads may fail, not panic.
        let _ = read_everything(&again);
    }
});
