//! One of the crate's two `unsafe` modules (with `rcu`): mapping immutable
//! regions of the store file.
//!
//! Soundness argument (also in FORMAT.md, "Mapped regions"):
//! 1. Only the peer segment and the peer index are mapped, and only after
//!    they were written; peerlog never writes a byte of a region
//!    while any mapping of it exists: a region freed by a checkpoint is
//!    reused only once every `Arc` of the generation that mapped it is gone.
//!    The log is never mapped: it is read with `pread` (a new log region
//!    is a hole, and a page fault on a hole of a full tmpfs is a SIGBUS).
//! 2. The file is held under an exclusive `flock` for the life of the store,
//!    so cooperating processes (peerlog) cannot write it meanwhile.
//! 3. The file is never truncated below a mapped region (same rule as 1).
//!
//! What remains outside peerlog's control: a process that ignores the lock
//! and writes or truncates the file. That is undefined behaviour for any
//! mmap reader (memmap2 documents it); do not edit a store file by hand.

use std::fs::File;
use std::ops::Deref;

/// Bytes of an immutable region: a read-only mapping, or a heap copy for
/// backends that cannot map (memory, crash simulation). Opaque: what maps
/// it (memmap2) is no part of the public API, and a [`crate::io::RawFile`]
/// outside this crate has no mapping to offer (its `map` answers `None`).
#[derive(Debug)]
pub struct Region(Repr);

#[derive(Debug)]
enum Repr {
    /// Mapped from the store file.
    Mapped(memmap2::Mmap),
    /// Read into memory.
    Heap(Vec<u8>),
}

impl Region {
    /// Bytes read into memory.
    pub(crate) fn heap(bytes: Vec<u8>) -> Region {
        Region(Repr::Heap(bytes))
    }
}

impl Deref for Region {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Mapped(m) => m,
            Repr::Heap(v) => v,
        }
    }
}

/// Maps `len` bytes of `file` at `offset` read-only.
pub(crate) fn map(file: &File, offset: u64, len: u64) -> std::io::Result<Region> {
    if len == 0 {
        return Ok(Region::heap(Vec::new()));
    }
    let len = usize::try_from(len)
        .map_err(|_| std::io::Error::other("region larger than the address space"))?;
    // SAFETY: the region is immutable for the life of this mapping (see the
    // module docs: written before mapping, never rewritten or
    // truncated while mapped, file held under an exclusive flock).
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(offset)
            .len(len)
            .map(file)?
    };
    #[cfg(unix)]
    {
        // Lookups jump around the index: readahead would only waste memory.
        let _ = map.advise(memmap2::Advice::Random);
    }
    Ok(Region(Repr::Mapped(map)))
}
