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
//!    Nor is a region with a hole in it (a sparse copy of a store, a
//!    filesystem that lost blocks): it is read into memory instead, where
//!    its zeros fail the region's checks like any other damage.
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

    /// True when the bytes are a mapping of the file (not a copy).
    #[cfg(test)]
    pub(crate) fn is_mapped(&self) -> bool {
        matches!(self.0, Repr::Mapped(_))
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
    let size = usize::try_from(len)
        .map_err(|_| std::io::Error::other("region larger than the address space"))?;
    if holds_hole(file, offset, len) {
        // A page fault on a hole needs a fresh page, and a full tmpfs has
        // none to give: the process would die of SIGBUS on a lookup. Read
        // instead (a hole reads as zeros without taking space; past the
        // end of the file, the read fails).
        use std::os::unix::fs::FileExt;
        let mut bytes = vec![0; size];
        file.read_exact_at(&mut bytes, offset)?;
        return Ok(Region::heap(bytes));
    }
    // SAFETY: the region is immutable for the life of this mapping (see the
    // module docs: written before mapping, never rewritten or
    // truncated while mapped, file held under an exclusive flock).
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(offset)
            .len(size)
            .map(file)?
    };
    #[cfg(unix)]
    {
        // Lookups jump around the index: readahead would only waste memory.
        let _ = map.advise(memmap2::Advice::Random);
    }
    Ok(Region(Repr::Mapped(map)))
}

/// True when `[offset, offset + len)` of `file` is not all data: a hole,
/// or the end of the file (a virtual hole). One `lseek`; where the
/// filesystem cannot tell, it reports no hole.
#[cfg(target_os = "linux")]
fn holds_hole(file: &File, offset: u64, len: u64) -> bool {
    use std::os::fd::AsRawFd;
    let (Ok(start), Some(end)) = (libc::off_t::try_from(offset), offset.checked_add(len)) else {
        return true;
    };
    // SAFETY: `lseek` on a descriptor `file` keeps open for the call. It
    // moves the descriptor's file position, which nothing in peerlog uses
    // (every read and write is positioned: pread, pwrite).
    let hole = unsafe { libc::lseek(file.as_raw_fd(), start, libc::SEEK_HOLE) };
    // An error (ENXIO: `offset` at or past the end) counts as a hole.
    hole < 0 || (hole as u64) < end
}

/// Elsewhere: no portable way to ask; a hole there is mapped as before.
#[cfg(not(target_os = "linux"))]
fn holds_hole(_file: &File, _offset: u64, _len: u64) -> bool {
    false
}
