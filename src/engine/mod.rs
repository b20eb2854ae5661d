//! The engine: one file, one writer, many readers.
//!
//! [`store`] is the handle (open, read, transact, append); [`options`] what
//! it is opened with; [`writer`] the writer's state (allocator, poison
//! latch, flusher, sync mark); [`checkpoint`] the fold of the log into new
//! segments; [`open`] reading a file back (locking, superblock choice, log
//! replay, was `recovery`); [`logscan`] the log reader it uses; [`verify`]
//! and [`stats`] the checks and numbers; [`peers`] the engine-level peer
//! record calls. [`state`] is the in-memory state the writer applies ops
//! to. [`Inner`] is what they share.

pub(crate) mod checkpoint;
pub(crate) mod logscan;
pub(crate) mod open;
pub(crate) mod options;
pub(crate) mod peers;
pub(crate) mod pins;
pub(crate) mod state;
pub(crate) mod stats;
pub(crate) mod store;
pub(crate) mod syncer;
pub(crate) mod verify;
pub(crate) mod writer;

use crate::engine::options::Options;
use crate::engine::state::State;
use crate::engine::writer::{Flusher, Writer, WriterView};
use crate::sys::io::RawFile;
use parking_lot::{Mutex, RwLock};
use std::path::PathBuf;
use std::sync::Arc;

/// What every clone of a [`crate::Store`] shares: the file, the state, the
/// writer. The engine's modules each add their own methods to it.
pub(crate) struct Inner {
    pub file: Arc<dyn RawFile>,
    pub state: RwLock<State>,
    /// Lock-free access-hash lookups (`state.peers.lookup`).
    pub lookup: Arc<crate::peers::lookup::Lookup>,
    pub writer: Arc<Mutex<Writer>>,
    /// What [`crate::Store::stats`] reports of the writer, copied whenever the
    /// writer lock is released ([`crate::engine::writer::WriterGuard`]), so that stats never
    /// waits for a commit, an fsync or a checkpoint.
    pub view: Arc<Mutex<WriterView>>,
    /// A warning about the file's permissions, found at open.
    pub mode_warning: Option<String>,
    pub opts: Options,
    pub path: Option<PathBuf>,
    pub(crate) flusher: Mutex<Option<Flusher>>,
    /// The sync thread behind [`crate::Store::synced`], started on first use.
    pub(crate) syncer: Mutex<Option<crate::engine::syncer::Syncer>>,
    /// The thread inside `transact`, so a nested write is an error rather
    /// than a deadlock on the writer lock.
    pub writing_thread: std::sync::atomic::AtomicUsize,
}
