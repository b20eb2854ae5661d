//! The store handle: open, read, transact, append. One file, one writer,
//! many readers.
//!
//! Write path: a commit is encoded as one frame and appended to the log
//! region (one `pwrite`), synced according to [`Durability`], then applied to
//! the in-memory state under a short write lock. Readers only ever take the
//! state's read lock, so they never wait for a disk write, a sync or a
//! checkpoint's I/O. When the log is full the writer checkpoints
//! ([`crate::engine::checkpoint`]).

use crate::engine::state::State;
use crate::error::{Error, Result};
use crate::format::bucket::MAX_COMMIT_LEN;
use crate::format::commit::{self, Op};
use crate::format::frame;
use crate::format::peer_record::peer_key;
use crate::format::superblock::{self};
use crate::peers::merge::{Change, resolve};
use crate::sys::io::{FileBackend, MemFile, RawFile};
use parking_lot::{Mutex, RwLock};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::engine::Inner;
use crate::engine::checkpoint::{Mode, RELOCATE_ABOVE};
pub use crate::engine::options::{Durability, Options};
use crate::engine::writer::*;

/// A handle to an open store. Cheap to clone; all clones share one file,
/// one lock and one writer.
///
/// Dropping the last clone syncs what was written, but a drop cannot
/// report a failed sync: call [`crate::Store::close`] to get that error.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens or creates the store at `path` with default [`Options`].
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        Self::open_with(path, Options::default())
    }

    /// Opens or creates the store at `path`.
    ///
    /// Takes an exclusive lock on the file for the life of the store: a
    /// second open, from this process or another, fails with
    /// [`Error::Locked`]. New files are created with mode 0600, complete,
    /// under a temporary name linked into place (FORMAT.md, "New files"),
    /// so a crash never leaves an empty file at `path`; an empty file
    /// there is an error. I/O errors name `path`.
    pub fn open_with(path: impl AsRef<Path>, opts: Options) -> Result<Store> {
        let path = path.as_ref().to_path_buf();
        let (file, mark) = crate::engine::open::open_locked(&path, &opts)?;
        let mode_warning = crate::engine::open::mode_warning(&file, &path);
        Self::open_inner(
            Arc::new(FileBackend::with_mark(file, mark)),
            opts,
            Some(path),
            mode_warning,
        )
    }

    /// A store that lives in memory only: same behaviour, nothing on disk.
    pub fn memory() -> Store {
        let opts = Options {
            durability: Durability::None,
            ..Options::default()
        };
        Self::open_backend(Arc::new(MemFile::new()), opts)
            .expect("an empty in-memory store always opens")
    }

    /// Opens a store on any [`RawFile`] (memory, crash simulation, faults).
    pub fn open_backend(file: Arc<dyn RawFile>, opts: Options) -> Result<Store> {
        Self::open_inner(file, opts, None, None)
    }

    fn open_inner(
        file: Arc<dyn RawFile>,
        opts: Options,
        path: Option<PathBuf>,
        mode_warning: Option<String>,
    ) -> Result<Store> {
        let (state, writer) =
            crate::engine::open::load(&*file, &opts, path.as_deref()).map_err(|e| match &path {
                Some(p) => e.at_path(p),
                None => e,
            })?;
        let heal = writer.index_unsaved && !opts.read_only;
        let mut view = WriterView::default();
        view.update(&writer);
        let inner = Arc::new(Inner {
            file,
            lookup: state.peers.lookup.clone(),
            state: RwLock::new(state),
            writer: Arc::new(Mutex::new(writer)),
            view: Arc::new(Mutex::new(view)),
            mode_warning,
            opts,
            path,
            flusher: Mutex::new(None),
            syncer: Mutex::new(None),
            writing_thread: std::sync::atomic::AtomicUsize::new(0),
        });
        let upgrade = !inner.opts.read_only && {
            let w = inner.lock_writer();
            w.sb.version < superblock::FORMAT_VERSION
        };
        if heal || upgrade {
            // An upgrade rewrites every region in the current format (a
            // version 1 peer segment has no per-entry checksums).
            let mut w = inner.lock_writer();
            inner.checkpoint(&mut w, if upgrade { Mode::Compact } else { Mode::Auto }, 0)?;
        }
        if let Durability::Batched(window) = inner.opts.durability
            && !inner.opts.read_only
        {
            *inner.flusher.lock() = spawn_flusher(
                inner.file.clone(),
                inner.writer.clone(),
                inner.view.clone(),
                window,
            );
        }
        Ok(Store { inner })
    }

    /// The file behind the store, if any.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// Makes every returned commit durable now.
    ///
    /// Inside a write closure ([`crate::Account::write`]) this returns
    /// [`Error::Invalid`]: the closure's own commit is not written yet.
    pub fn sync(&self) -> Result<()> {
        self.inner.not_in_write("Store::sync")?;
        let mut w = self.inner.lock_writer();
        if w.read_only {
            return Ok(());
        }
        w.check()?;
        self.inner.sync_now(&mut w)?;
        self.inner.prove_synced(&mut w)
    }

    /// A future that resolves once every commit returned before this call
    /// is durable (fsynced), without blocking the thread that awaits it:
    /// the fsync runs on the store's sync thread (started on first use),
    /// and concurrent waiters share one fsync. This is how an async
    /// program makes writes durable: commit without a sync (e.g. with
    /// [`crate::Account::write_async`]), then `.await` this. Readers and
    /// other writers do not wait for that fsync either.
    ///
    /// Resolves at once when there is nothing to sync or the store is
    /// read-only, and to [`Error::Poisoned`] when the store is poisoned or
    /// the fsync fails (then every waiter gets that error). Unlike
    /// [`Store::sync`] it does not write the proof commit; the sync mark
    /// is written as after every sync (FORMAT.md, "Sync mark").
    pub fn synced(&self) -> crate::Synced {
        use crate::engine::syncer::{Synced, Syncer};
        let target = {
            let w = self.inner.writer.lock();
            if w.read_only {
                return Synced::ready(Ok(()));
            }
            if let Err(e) = w.check() {
                return Synced::ready(Err(e));
            }
            let last = w.next_seq.saturating_sub(1);
            if w.synced_seq >= last {
                return Synced::ready(Ok(()));
            }
            last
        };
        let mut s = self.inner.syncer.lock();
        if s.is_none() {
            *s = Syncer::start(
                self.inner.file.clone(),
                self.inner.writer.clone(),
                self.inner.view.clone(),
            );
        }
        match &*s {
            Some(syncer) => syncer.wait(target),
            // No thread to be had: sync here rather than not at all.
            None => Synced::ready(
                sync_unlocked(&*self.inner.file, &self.inner.writer, &self.inner.view).map(|_| ()),
            ),
        }
    }

    /// Closes this handle: makes every returned commit durable and returns
    /// the error of that final sync, which dropping a store cannot report
    /// (drop syncs too, but has to ignore a failure). The file and its lock
    /// are released when the last clone of the store is gone; other
    /// clones keep working.
    ///
    /// Inside a write closure this returns [`Error::Invalid`] (and the
    /// handle is dropped).
    pub fn close(self) -> Result<()> {
        self.sync()
    }

    /// Rewrites every bucket with changes or dead bytes into fresh segments
    /// and a new peer index generation, and empties the log.
    ///
    /// Inside a write closure ([`crate::Account::write`]) this returns
    /// [`Error::Invalid`].
    pub fn compact(&self) -> Result<()> {
        self.inner.not_in_write("Store::compact")?;
        let mut w = self.inner.lock_writer();
        w.check()?;
        // Small files are rewritten in place first-fit; for large ones the
        // rewrite goes behind everything live and, when that left much of
        // the file free, once more first-fit so the live data moves into the
        // front and the tail goes back to the filesystem.
        let large = w.file_len > RELOCATE_ABOVE;
        self.inner.checkpoint(
            &mut w,
            if large { Mode::Evacuate } else { Mode::Compact },
            0,
        )?;
        if large && w.free.iter().map(|e| e.len).sum::<u64>() > w.file_len / 4 {
            self.inner.checkpoint(&mut w, Mode::Relocate, 0)?;
        }
        Ok(())
    }

    /// Runs `f` with the current state under the read lock.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.inner.state.read())
    }

    /// Read-modify-write: `f` sees the state with the writer lock held (no
    /// other commit can interleave) and returns the changes to commit.
    pub(crate) fn transact<R>(
        &self,
        sync: bool,
        f: impl FnOnce(&State) -> Result<(Vec<Change>, R)>,
    ) -> Result<R> {
        self.transact_with(if sync { SyncNow::Force } else { SyncNow::Mode }, f)
    }

    /// [`Store::transact`] with the sync policy spelled out.
    pub(crate) fn transact_with<R>(
        &self,
        sync: SyncNow,
        f: impl FnOnce(&State) -> Result<(Vec<Change>, R)>,
    ) -> Result<R> {
        use std::sync::atomic::Ordering;
        let inner = &*self.inner;
        let me = thread_mark();
        if inner.writing_thread.load(Ordering::Relaxed) == me {
            return Err(Error::Invalid(
                "a write was started inside another write of the same store; use the transaction instead".into(),
            ));
        }
        let mut w = inner.lock_writer();
        w.check()?;
        inner.writing_thread.store(me, Ordering::Relaxed);
        struct Clear<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for Clear<'_> {
            fn drop(&mut self) {
                self.0.store(0, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let _clear = Clear(&inner.writing_thread);
        let (ops, r) = {
            let st = inner.state.read();
            let (changes, r) = f(&st)?;
            (resolve(&st.peers, changes)?, r)
        };
        inner.append_with(&mut w, ops, sync)?;
        Ok(r)
    }

    /// The lock-free lookups (ids, and names that did not change since
    /// the generation).
    #[inline]
    pub(crate) fn lookup(&self) -> &crate::peers::lookup::Lookup {
        &self.inner.lookup
    }

    /// The engine's view of a peer's access hash and flags (hot path).
    #[inline]
    pub(crate) fn peer_hash(
        &self,
        account: u32,
        peer_id: i64,
    ) -> Result<Option<(Option<i64>, u8)>> {
        self.inner.lookup.checked(peer_key(account, peer_id))
    }

    /// [`Store::peer_hash`] without the flags.
    #[inline]
    pub(crate) fn peer_hash_only(&self, account: u32, peer_id: i64) -> Result<Option<i64>> {
        self.inner.lookup.access_hash(peer_key(account, peer_id))
    }
}

/// When a commit is synced on the calling thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SyncNow {
    /// As the store's [`Durability`] says.
    Mode,
    /// Before the call returns, whatever the mode.
    Force,
    /// Never on the calling thread: the caller awaits
    /// [`Store::synced`] if it needs the commit durable, and in Batched
    /// mode the flusher syncs it within the window.
    Defer,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The sync thread serves its waiters before it stops.
        drop(self.syncer.get_mut().take());
        if let Some(f) = self.flusher.get_mut().take() {
            *f.stop.0.lock() = true;
            f.stop.1.notify_all();
            let _ = f.thread.join();
        }
        let mut w = self.writer.lock();
        if w.poisoned.is_none()
            && !w.read_only
            && sync_writer(&*self.file, &mut w).is_ok()
            && self.prove_synced(&mut w).is_ok()
        {
            let _ = sync_writer(&*self.file, &mut w);
        }
    }
}

impl Inner {
    /// Takes the writer lock; the writer's numbers are published for
    /// [`crate::Store::stats`] when it is released.
    pub(crate) fn lock_writer(&self) -> WriterGuard<'_> {
        WriterGuard {
            guard: self.writer.lock(),
            view: &self.view,
        }
    }

    /// Refuses a call that needs the writer lock on the thread that holds
    /// it inside a write closure: waiting for it would never end.
    pub(crate) fn not_in_write(&self, what: &str) -> Result<()> {
        if self
            .writing_thread
            .load(std::sync::atomic::Ordering::Relaxed)
            == thread_mark()
        {
            return Err(Error::Invalid(format!(
                "{what} was called inside a write closure of the same store, which holds the writer lock; call it after the closure returns"
            )));
        }
        Ok(())
    }

    pub(crate) fn sync_now(&self, w: &mut Writer) -> Result<()> {
        sync_writer(&*self.file, w)
    }

    /// After a sync: when the last commits in the log are not yet proven
    /// synced by a later frame, appends an empty commit whose
    /// `synced_through` says they are (not synced itself: if it is lost,
    /// nothing is lost but the proof). Recovery then reports damage to
    /// those commits as corruption instead of dropping them as a torn
    /// tail (FORMAT.md, "The log and recovery"). Skipped when the log has
    /// no room: the next commit carries the same proof.
    pub(super) fn prove_synced(&self, w: &mut Writer) -> Result<()> {
        if w.read_only || w.poisoned.is_some() {
            return Ok(());
        }
        let real = w.last_real_synced();
        if w.proven_seq >= real {
            return Ok(());
        }
        if w.synced_seq < w.sb.next_seq || w.next_seq != w.synced_seq + 1 {
            return Ok(());
        }
        let need = frame::framed_len(commit::HEADER_LEN);
        if w.log_pos + need as u64 > w.sb.log.end() || w.room(0, 1).is_err() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(need);
        frame::encode_with(frame::KIND_COMMIT, &mut buf, |out| {
            commit::encode_into(w.next_seq, w.synced_seq, &[], out)
        });
        self.file
            .write_at(&buf, w.log_pos)
            .map_err(w.poison("appending to the log"))?;
        w.log_pos += buf.len() as u64;
        w.proven_seq = w.synced_seq;
        w.marker_seq = w.next_seq;
        w.next_seq += 1;
        w.dirty = true;
        Ok(())
    }

    /// Appends one commit and applies it, synced as `sync` says
    /// ([`SyncNow::Force`]: durable before returning whatever the
    /// durability mode).
    pub(crate) fn append_with(&self, w: &mut Writer, ops: Vec<Op>, sync: SyncNow) -> Result<()> {
        let force_sync = sync == SyncNow::Force;
        if ops.is_empty() {
            return if force_sync { self.sync_now(w) } else { Ok(()) };
        }
        let payload_len = commit::HEADER_LEN + ops.iter().map(Op::encoded_len).sum::<usize>();
        if payload_len > MAX_COMMIT_LEN {
            return Err(Error::TooLarge {
                what: "commit",
                len: payload_len,
                max: MAX_COMMIT_LEN,
            });
        }
        let need = frame::framed_len(payload_len);
        if w.log_pos + need as u64 > w.sb.log.end() {
            self.checkpoint(w, Mode::Auto, need)?;
        }
        w.room(0, 1)?;
        let mut buf = Vec::with_capacity(need);
        frame::encode_with(frame::KIND_COMMIT, &mut buf, |out| {
            commit::encode_into(w.next_seq, w.synced_seq, &ops, out)
        });
        let at = w.log_pos;
        self.file
            .write_at(&buf, at)
            .map_err(w.poison("appending to the log"))?;
        w.log_pos += buf.len() as u64;
        w.proven_seq = w.synced_seq;
        w.next_seq += 1;
        w.dirty = true;
        w.stats.commits += 1;
        let sync = force_sync
            || sync == SyncNow::Mode
                && match self.opts.durability {
                    Durability::Immediate => true,
                    Durability::Batched(window) => w.last_sync.elapsed() >= window,
                    Durability::None => false,
                };
        if sync {
            self.sync_now(w)?;
        }
        {
            let mut st = self.state.write();
            for op in ops {
                st.apply(op, &mut w.track)?;
            }
        }
        if self.peers_need_fold(w) {
            // The commit above is written and applied: it stands whatever
            // happens to this index switch, and the caller must not be
            // told otherwise (an error would say "not committed" while
            // reads show it). An I/O failure here poisons the store, so
            // the next write reports it; any other failure leaves the
            // overlay for a later checkpoint.
            let _ = self.checkpoint(w, Mode::Auto, 0);
        }
        self.lookup.reclaim();
        Ok(())
    }
}
