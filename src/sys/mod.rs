//! The operating system and the unsafe code: file I/O behind [`io::RawFile`],
//! read-only mappings, the lock-free publication cell, shared byte buffers.
//! Nothing here knows the file format.

pub(crate) mod bytes;
pub mod io;
pub(crate) mod mmap;
pub(crate) mod rcu;
pub(crate) mod staged;
