//! The store: one file, one writer, many readers.
//!
//! Write path: a commit is encoded as one frame and appended to the log
//! region (one `pwrite`), synced according to [`Durability`], then applied to
//! the in-memory state under a short write lock. Readers only ever take the
//! state's read lock, so they never wait for a disk write, a sync or a
//! checkpoint's I/O.
//!
//! Checkpoint (also "compaction"): when the log region is full, a bucket has
//! too many dead bytes, or on [`Store::compact`], the writer rewrites the
//! buckets that need it into new segments (the others carry their few
//! changed keys into the new log), writes a new log region, syncs, and only
//! then flips the superblock and syncs again. A crash at any point reopens to
//! the old superblock or the new one.

use crate::error::{Error, Result};
use crate::format::commit::{self, Op, OpRef};
use crate::format::frame;
use crate::format::index::name_hash;
use crate::format::index::{self, NameKind};
use crate::format::peer_record::{
    HAS_HASH, MIN, PeerRecordRef, hash_and_flags, key_of, peer_key, set_access_hash,
};
use crate::format::segment;
use crate::format::superblock::{self, COUNTER_LIMIT, Extent, SegmentRef, Superblock};
use crate::format::{DATA_START, NUM_BUCKETS, PAGE, mask, masked_crc, page_round};
use crate::io::{FileBackend, MemFile, RawFile};
use crate::mmap::Region;
use crate::state::{
    FastMap, NameOwners, OldNames, PeerGen, PeerState, State, Tracking, carry_size, names_of,
    old_names,
};
use parking_lot::{Mutex, RwLock};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

/// Bucket numbers of the format (see FORMAT.md, "Buckets").
pub(crate) const META: u8 = 0;
pub(crate) const SESSION: u8 = 1;
pub(crate) const PEERS: u8 = 2;
pub(crate) const STATE: u8 = 3;
pub(crate) const DEDUP: u8 = 4;
pub(crate) const QUEUE: u8 = 5;
pub(crate) const CONVERSATIONS: u8 = 6;
pub(crate) const RAW: u8 = 7;
/// Bucket names, by number.
pub const BUCKET_NAMES: [&str; NUM_BUCKETS] = [
    "meta",
    "session",
    "peers",
    "state",
    "dedup",
    "queue",
    "conversations",
    "raw",
];

/// Largest key in a bucket.
pub const MAX_KEY_LEN: usize = 4096;
/// Largest value in a bucket.
pub const MAX_VALUE_LEN: usize = 64 << 20;
/// Largest commit (all its ops encoded).
pub const MAX_COMMIT_LEN: usize = 1 << 30;

/// When a commit is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fdatasync before every commit returns: survives power loss.
    Immediate,
    /// Group commit: commits within the window share one fdatasync, run by
    /// the first commit after the window or by a background thread.
    /// A power loss can lose at most the last window; a process crash loses
    /// nothing that returned.
    Batched(Duration),
    /// Never sync except at checkpoints and on [`Store::sync`]; left to the
    /// OS. A process crash loses nothing that returned.
    None,
}

/// Settings for [`Store::open_with`].
#[derive(Debug, Clone)]
pub struct Options {
    /// When commits become durable. Session and queue writes of the typed
    /// layer are always synced, whatever this says.
    pub durability: Durability,
    /// Create the file if it does not exist.
    pub create: bool,
    /// Open without writing anything (no recovery truncation, no repair).
    pub read_only: bool,
    /// Capacity of a fresh log region; it grows when one commit needs more.
    pub log_size: u64,
    /// A bucket's segment is rewritten when its dead bytes exceed both this
    /// fraction of the segment and [`Options::compact_min_dead`].
    pub compact_dead_ratio: f64,
    /// See [`Options::compact_dead_ratio`].
    pub compact_min_dead: u64,
    /// The peer table gets a new generation when this many peers changed
    /// since the last one (or half the table, if larger).
    pub peer_fold_min: usize,
    /// Maximum load factor of the hash indexes.
    pub index_load: f64,
    /// Most dedup keys kept per account: inserting into a full set drops
    /// the oldest key first (see [`crate::Storage::insert_dedup_key`]).
    /// Values below 1 count as 1.
    pub dedup_max_keys: usize,
    /// Dedup keys older than this are dropped, oldest first, at the next
    /// insert of the account. `None`: no age limit.
    pub dedup_max_age: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            durability: Durability::Batched(Duration::from_millis(10)),
            create: true,
            read_only: false,
            log_size: 512 << 10,
            compact_dead_ratio: 0.5,
            compact_min_dead: 64 << 10,
            peer_fold_min: 16_384,
            index_load: 0.75,
            dedup_max_keys: 100_000,
            dedup_max_age: None,
        }
    }
}

/// A handle to an open store. Cheap to clone; all clones share one file,
/// one lock and one writer.
///
/// Dropping the last clone syncs what was written, but a drop cannot
/// report a failed sync: call [`Store::close`] to get that error.
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

pub(crate) struct Inner {
    pub file: Arc<dyn RawFile>,
    pub state: RwLock<State>,
    /// Lock-free access-hash lookups (`state.peers.lookup`).
    lookup: Arc<crate::lookup::Lookup>,
    pub writer: Arc<Mutex<Writer>>,
    /// What [`Store::stats`] reports of the writer, copied whenever the
    /// writer lock is released ([`WriterGuard`]), so that stats never
    /// waits for a commit, an fsync or a checkpoint.
    pub view: Arc<Mutex<WriterView>>,
    /// A warning about the file's permissions, found at open.
    pub mode_warning: Option<String>,
    pub opts: Options,
    pub path: Option<PathBuf>,
    flusher: Mutex<Option<Flusher>>,
    /// The thread inside `transact`, so a nested write is an error rather
    /// than a deadlock on the writer lock.
    writing_thread: std::sync::atomic::AtomicUsize,
}

/// The writer's numbers that [`Store::stats`] reports.
#[derive(Debug, Clone, Default)]
pub(crate) struct WriterView {
    pub sb: Superblock,
    /// Per bucket: live bytes, dead segment bytes, log bytes.
    pub buckets: [(u64, u64, u64); NUM_BUCKETS],
    pub peer_seg_dead: u64,
    pub log_pos: u64,
    pub free_bytes: u64,
    pub stats: WriterStats,
}

impl WriterView {
    fn update(&mut self, w: &Writer) {
        self.sb = w.sb;
        for (v, t) in self.buckets.iter_mut().zip(&w.track.buckets) {
            *v = (t.live_bytes, t.seg_dead, t.log_bytes);
        }
        self.peer_seg_dead = w.track.peer_seg_dead;
        self.log_pos = w.log_pos;
        self.free_bytes = w.free.iter().map(|e| e.len).sum();
        // The last compaction changes only with the checkpoint count: no
        // allocation per commit.
        let old = std::mem::take(&mut self.stats.last_compaction);
        let changed = old.is_none() != w.stats.last_compaction.is_none()
            || self.stats.checkpoints != w.stats.checkpoints;
        self.stats = WriterStats {
            last_compaction: if changed {
                w.stats.last_compaction.clone()
            } else {
                old
            },
            ..w.stats.clone_counters()
        };
    }
}

/// The writer lock, which publishes the writer's numbers to
/// [`Inner::view`] when it is released.
pub(crate) struct WriterGuard<'a> {
    guard: parking_lot::MutexGuard<'a, Writer>,
    view: &'a Mutex<WriterView>,
}

impl std::ops::Deref for WriterGuard<'_> {
    type Target = Writer;
    fn deref(&self) -> &Writer {
        &self.guard
    }
}

impl std::ops::DerefMut for WriterGuard<'_> {
    fn deref_mut(&mut self) -> &mut Writer {
        &mut self.guard
    }
}

impl Drop for WriterGuard<'_> {
    fn drop(&mut self) {
        self.view.lock().update(&self.guard);
    }
}

/// A value unique to the calling thread (the address of a thread-local).
fn thread_mark() -> usize {
    thread_local!(static MARK: u8 = const { 0 });
    MARK.with(|m| m as *const u8 as usize)
}

/// The Batched-mode background sync. It holds the writer and the file,
/// never the store, so dropping the last `Store` stops and joins it before
/// the file (and its lock) is closed.
struct Flusher {
    stop: Arc<(Mutex<bool>, parking_lot::Condvar)>,
    thread: std::thread::JoinHandle<()>,
}

/// One peer table change a caller asks for; the writer resolves it (merge
/// rules, unchanged records, moved usernames) into log ops.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    Op(Op),
    /// Encoded records that passed the format's limits
    /// ([`crate::format::peer_record::RecordBuf::finish`]).
    Peers(RecordList),
    DeletePeer(u64),
}

/// Encoded peer records back to back: one allocation for a whole
/// `save_peers` call rather than one per peer, since most of a client's
/// saves are of peers stored unchanged and are dropped at commit.
#[derive(Debug, Clone, Default)]
pub(crate) struct RecordList {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl RecordList {
    pub fn with_capacity(records: usize) -> RecordList {
        RecordList {
            bytes: Vec::with_capacity(records * 64),
            ends: Vec::with_capacity(records),
        }
    }

    pub fn push(&mut self, record: &[u8]) {
        self.bytes.extend_from_slice(record);
        self.ends.push(self.bytes.len());
    }

    fn record_mut(&mut self, i: usize) -> &mut [u8] {
        let start = i.checked_sub(1).map_or(0, |j| self.ends[j]);
        &mut self.bytes[start..self.ends[i]]
    }

    fn records(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(a, &b)| &self.bytes[a..b])
    }
}

/// What a peer segment is written through: [`Inner::write_peer_segment`].
/// (Small in unit tests, so that their segments take several writes.)
const SEGMENT_CHUNK: usize = if cfg!(test) { 4096 } else { 1 << 20 };

/// A peer segment being written front to back through a small buffer,
/// its CRC taken on the way.
struct SegmentOut<'f> {
    file: &'f dyn RawFile,
    /// Where the segment starts in the file.
    at: u64,
    buf: Vec<u8>,
    /// Bytes written to the file so far.
    len: u64,
    count: u64,
    crc: crc32fast::Hasher,
}

impl SegmentOut<'_> {
    fn put(&mut self, record: &[u8]) -> Result<()> {
        segment::put_peer(&mut self.buf, record);
        self.count += 1;
        if self.buf.len() >= SEGMENT_CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.crc.update(&self.buf);
        self.file
            .write_at(&self.buf, self.at + self.len)
            .map_err(Error::io("writing the peer segment"))?;
        self.len += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct WriterStats {
    pub checkpoints: u64,
    pub last_compaction: Option<Compaction>,
    pub recovered_bytes: u64,
    pub index_rebuilt: bool,
    /// Superblock copies rewritten at open from the intact copy.
    pub superblock_copies_repaired: u64,
    /// `Store::repair` calls that completed, and records they rebuilt
    /// from index slots.
    pub repairs: u64,
    pub records_salvaged: u64,
    /// Offsets of superblock copies found damaged by a read-only open.
    pub superblock_copies_damaged: Vec<u64>,
    pub commits: u64,
    pub syncs: u64,
    pub checkpoint_time: Duration,
}

impl WriterStats {
    /// Everything but `last_compaction`, which is left `None`.
    fn clone_counters(&self) -> WriterStats {
        WriterStats {
            checkpoints: self.checkpoints,
            last_compaction: None,
            recovered_bytes: self.recovered_bytes,
            index_rebuilt: self.index_rebuilt,
            superblock_copies_repaired: self.superblock_copies_repaired,
            repairs: self.repairs,
            records_salvaged: self.records_salvaged,
            superblock_copies_damaged: Vec::new(),
            commits: self.commits,
            syncs: self.syncs,
            checkpoint_time: self.checkpoint_time,
        }
    }
}

/// What the last checkpoint did.
#[derive(Debug, Clone, PartialEq)]
pub struct Compaction {
    /// When it finished.
    pub at: SystemTime,
    /// How long it took.
    pub duration: Duration,
    /// Buckets whose segment was rewritten.
    pub rewritten: Vec<&'static str>,
    /// Bytes written (segments, index, carried log).
    pub bytes_written: u64,
}

pub(crate) struct Writer {
    pub sb: Superblock,
    pub log_pos: u64,
    pub next_seq: u64,
    pub synced_seq: u64,
    pub last_sync: Instant,
    pub dirty: bool,
    pub poisoned: Option<String>,
    pub free: Vec<Extent>,
    pub quarantine: Vec<(Extent, Weak<PeerGen>)>,
    /// Regions that running backups may still be copying (src/backup.rs).
    pub pins: crate::backup::Pins,
    pub file_len: u64,
    pub track: Tracking,
    pub stats: WriterStats,
    pub read_only: bool,
    /// The in-memory index must be written out at the next checkpoint.
    pub index_unsaved: bool,
    /// Set by [`Store::repair`] for one fold: the old peer table is read
    /// through its sound id slots instead of front to back, and a record
    /// that fails its CRC is rebuilt from its slot (key, access hash,
    /// flags). The keys of the records so rebuilt are left here.
    pub salvage: Option<Vec<u64>>,
    /// The seq the sync mark in the header holds.
    pub marked_seq: u64,
    /// The seq of the last empty commit written to prove others synced.
    pub marker_seq: u64,
    /// The highest seq that a frame in the log says was synced (its
    /// `synced_through`): damage to a commit up to here is reported,
    /// never taken for a torn tail.
    pub proven_seq: u64,
}

impl Writer {
    /// The highest synced commit that is not an empty proof commit (which
    /// proves nothing new itself).
    fn last_real_synced(&self) -> u64 {
        if self.synced_seq == self.marker_seq {
            self.synced_seq.saturating_sub(1)
        } else {
            self.synced_seq
        }
    }

    pub(crate) fn check(&self) -> Result<()> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        match &self.poisoned {
            Some(first) => Err(Error::Poisoned {
                first: first.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Refuses a write that would grow the checkpoint generation or the
    /// commit sequence to [`COUNTER_LIMIT`]: a superblock holding such a
    /// value does not open. Counting that far takes millennia, so only a
    /// damaged or forged superblock gets here; nothing is written.
    fn room(&self, generations: u64, commits: u64) -> Result<()> {
        let slot = Superblock::slot_offset(self.sb.generation);
        let (at, what) = if self.sb.generation + generations >= COUNTER_LIMIT {
            (superblock::GENERATION_OFFSET, "checkpoint generation")
        } else if self.next_seq + commits >= COUNTER_LIMIT {
            (superblock::NEXT_SEQ_OFFSET, "commit sequence")
        } else {
            return Ok(());
        };
        Err(Error::corrupt(
            slot + at as u64,
            format!("{what} has reached its limit (2^62); the superblock was damaged or forged"),
        ))
    }

    /// Records the first failure: every later write sees it.
    fn poison(&mut self, context: &'static str) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |e| {
            let e = Error::Io {
                context,
                path: None,
                source: e,
            };
            self.poison_with(&e);
            e
        }
    }

    /// [`Writer::poison`] for an error made elsewhere (an I/O one).
    fn poison_with(&mut self, e: &Error) {
        if let Error::Io {
            context, source, ..
        } = e
            && self.poisoned.is_none()
        {
            self.poisoned = Some(format!("{context}: {source}"));
        }
    }

    /// First-fit allocation; `at_end` skips the free list so the region
    /// lands behind everything live (the first pass of a compaction).
    fn alloc(&mut self, len: u64, at_end: bool) -> (Extent, bool) {
        let len = page_round(len.max(1));
        if let Some(i) = self
            .free
            .iter()
            .position(|e| e.len >= len)
            .filter(|_| !at_end)
        {
            let e = self.free[i];
            if e.len == len {
                self.free.remove(i);
            } else {
                self.free[i] = Extent {
                    offset: e.offset + len,
                    len: e.len - len,
                };
            }
            return (
                Extent {
                    offset: e.offset,
                    len,
                },
                false,
            );
        }
        let e = Extent {
            offset: self.file_len,
            len,
        };
        self.file_len += len;
        (e, true)
    }

    pub(crate) fn release(&mut self, e: Extent) {
        if let Some(e) = self.pins.hold(e) {
            self.free_now(e);
        }
    }

    /// [`Writer::release`] without the backup pins' say.
    fn free_now(&mut self, e: Extent) {
        if e.len == 0 {
            return;
        }
        let at = self.free.partition_point(|f| f.offset < e.offset);
        self.free.insert(at, e);
        let mut merged: Vec<Extent> = Vec::with_capacity(self.free.len());
        for f in self.free.drain(..) {
            match merged.last_mut() {
                Some(m) if m.end() == f.offset => m.len += f.len,
                _ => merged.push(f),
            }
        }
        self.free = merged;
    }
}

/// Stored keys carry an internal prefix (bucket name, account) on top of
/// the caller's key.
const MAX_STORED_KEY: usize = MAX_KEY_LEN + 512;

pub(crate) fn check_key(key: &[u8]) -> Result<()> {
    if key.len() > MAX_STORED_KEY {
        return Err(Error::TooLarge {
            what: "key",
            len: key.len(),
            max: MAX_KEY_LEN,
        });
    }
    Ok(())
}

pub(crate) fn check_put(key: &[u8], value: &[u8]) -> Result<()> {
    check_key(key)?;
    if value.len() > MAX_VALUE_LEN {
        return Err(Error::TooLarge {
            what: "value",
            len: value.len(),
            max: MAX_VALUE_LEN,
        });
    }
    Ok(())
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
        let (file, mark) = crate::recovery::open_locked(&path, &opts)?;
        let mode_warning = crate::recovery::mode_warning(&file, &path);
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
            crate::recovery::load(&*file, &opts, path.as_deref()).map_err(|e| match &path {
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

    /// A named raw bucket: the escape hatch for anything the typed API does
    /// not cover. Names are 1..=255 bytes.
    pub fn bucket(&self, name: &str) -> Result<crate::bucket::Bucket> {
        crate::bucket::Bucket::new(self.clone(), name)
    }

    /// A batch of puts and deletes across raw buckets, committed atomically.
    pub fn batch(&self) -> crate::bucket::Batch {
        crate::bucket::Batch::new(self.clone())
    }

    /// Runs `f` on a batch and commits it atomically if `f` succeeds.
    pub fn write<R>(&self, f: impl FnOnce(&mut crate::bucket::Batch) -> Result<R>) -> Result<R> {
        let mut b = self.batch();
        let r = f(&mut b)?;
        b.commit()?;
        Ok(r)
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
            (resolve(&st, changes)?, r)
        };
        inner.append(&mut w, ops, sync)?;
        Ok(r)
    }

    /// The lock-free lookups (ids, and names that did not change since
    /// the generation).
    #[inline]
    pub(crate) fn lookup(&self) -> &crate::lookup::Lookup {
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
}

fn spawn_flusher(
    file: Arc<dyn RawFile>,
    writer: Arc<Mutex<Writer>>,
    view: Arc<Mutex<WriterView>>,
    window: Duration,
) -> Option<Flusher> {
    let window = window.max(Duration::from_millis(1));
    let stop = Arc::new((Mutex::new(false), parking_lot::Condvar::new()));
    let signal = stop.clone();
    let thread = std::thread::Builder::new()
        .name("peerlog-flush".into())
        .spawn(move || {
            let (flag, cv) = &*signal;
            loop {
                {
                    let mut stopped = flag.lock();
                    if !*stopped {
                        cv.wait_for(&mut stopped, window);
                    }
                    if *stopped {
                        return;
                    }
                }
                let mut w = WriterGuard {
                    guard: writer.lock(),
                    view: &view,
                };
                if w.dirty && w.poisoned.is_none() {
                    let _ = sync_writer(&*file, &mut w);
                }
            }
        })
        .ok()?;
    Some(Flusher { stop, thread })
}

impl Drop for Inner {
    fn drop(&mut self) {
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

/// Syncs the file if commits were written since the last sync.
fn sync_writer(file: &dyn RawFile, w: &mut Writer) -> Result<()> {
    if !w.dirty {
        return Ok(());
    }
    file.sync().map_err(w.poison("syncing the log"))?;
    w.dirty = false;
    w.synced_seq = w.next_seq.saturating_sub(1);
    w.last_sync = Instant::now();
    w.stats.syncs += 1;
    write_sync_mark(file, w);
    Ok(())
}

/// After a sync: the sync mark names the highest commit now synced (not
/// synced itself: if it is lost, nothing is lost but the proof). Every
/// sync writes it, a background one and a durable commit's included, so
/// that damage to the last synced commits is reported even when the
/// process then dies without `sync()` or a close (FORMAT.md, "Sync
/// mark"). One 12-byte write per sync. Best effort: the commits are
/// already durable, so a failed write only loses the proof (the next
/// write to the file reports the trouble).
fn write_sync_mark(file: &dyn RawFile, w: &mut Writer) {
    let real = w.last_real_synced();
    if real == 0 || w.marked_seq >= real {
        return;
    }
    let mut mark = [0u8; 12];
    mark[..8].copy_from_slice(&real.to_le_bytes());
    let crc = masked_crc(&mark[..8]);
    mark[8..].copy_from_slice(&crc.to_le_bytes());
    if file
        .write_at(&mark, crate::format::SYNC_MARK_OFFSET)
        .is_ok()
    {
        w.marked_seq = real;
    }
}

/// Files larger than this get a relocating pass from [`Store::compact`].
const RELOCATE_ABOVE: u64 = 4 << 20;

/// What a checkpoint must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Rewrite only what passed its thresholds; carry the rest.
    Auto,
    /// Rewrite everything that changed or has dead bytes.
    Compact,
    /// As `Compact`, placing the new regions behind every live one.
    Evacuate,
    /// Rewrite every region, so free space ends up at the end of the file.
    Relocate,
}

/// Peers and names changed earlier in the same batch.
#[derive(Default)]
struct BatchPeers {
    /// Peer key -> index in the batch's ops of its latest record
    /// (`None`: deleted).
    records: FastMap<u64, Option<usize>>,
    owners: NameOwners,
}

/// The record of a `PutPeer` op the batch made (always valid: the batch
/// encoded or checked it).
fn batch_record(ops: &[Op], at: usize) -> Result<PeerRecordRef<'_>> {
    match &ops[at] {
        Op::PutPeer(b) => PeerRecordRef::checked_before(b)
            .map_err(|_| Error::Invalid("malformed peer record".into())),
        _ => unreachable!("batch records point at PutPeer ops"),
    }
}

impl BatchPeers {
    fn current<'a>(
        &self,
        st: &'a State,
        ops: &'a [Op],
        key: u64,
    ) -> Result<Option<PeerRecordRef<'a>>> {
        self.current_at(st, ops, key, None)
    }

    /// True when `rec` (checked, its merge rules applied here) equals the
    /// peer's current record byte for byte: the common re-save, decided
    /// without parsing the stored record (equal bytes are sound bytes).
    fn unchanged(
        &self,
        st: &State,
        ops: &[Op],
        key: u64,
        slot: Option<Option<u64>>,
        rec: &mut [u8],
    ) -> bool {
        let cur = match (self.records.get(&key), slot) {
            (Some(Some(at)), _) => match &ops[*at] {
                Op::PutPeer(b) => Some(&b[..]),
                _ => None,
            },
            (None, Some(slot)) => st.record_bytes_in_slot(key, slot),
            _ => None,
        };
        let Some(cur) = cur else { return false };
        let (hash, flags) = hash_and_flags(cur);
        merge_min(rec, hash, flags & MIN != 0);
        *rec == *cur
    }

    /// [`BatchPeers::current`], given the key's index slot in the
    /// generation when [`State::prefetch`] already found it.
    fn current_at<'a>(
        &self,
        st: &'a State,
        ops: &'a [Op],
        key: u64,
        slot: Option<Option<u64>>,
    ) -> Result<Option<PeerRecordRef<'a>>> {
        match (self.records.get(&key), slot) {
            (Some(Some(at)), _) => batch_record(ops, *at).map(Some),
            (Some(None), _) => Ok(None),
            (None, Some(slot)) => st.record_in_slot(key, slot),
            (None, None) => st.record(key),
        }
    }

    fn owner(
        &self,
        st: &State,
        hash: u64,
        kind: NameKind,
        account: u32,
        name: &str,
    ) -> Result<Option<u64>> {
        match self.owners.get(hash, kind, account, name) {
            Some(o) => Ok(o),
            None => Ok(st
                .resolve_name_hashed(hash, kind, account, name)?
                .map(|(key, _)| key)),
        }
    }

    /// `key` changes from a record with `old` names to `new`: the index
    /// of its op and the record (`None`: deleted).
    fn set(
        &mut self,
        st: &State,
        key: u64,
        old: Option<OldNames>,
        new: Option<(usize, PeerRecordRef<'_>)>,
    ) -> Result<()> {
        if let Some((account, names)) = old {
            for (kind, name) in names {
                let hash = name_hash(kind, account, &name);
                if self.owner(st, hash, kind, account, &name)? == Some(key) {
                    self.owners.set(hash, kind, account, &name, None);
                }
            }
        }
        if let Some((_, r)) = &new {
            for (kind, name) in names_of(r) {
                let hash = name_hash(kind, r.account(), name);
                self.owners.set(hash, kind, r.account(), name, Some(key));
            }
        }
        self.records.insert(key, new.map(|(at, _)| at));
        Ok(())
    }
}

/// The min rule, on an encoded record: a full access hash already known
/// is kept over a min one or none, and a record saved without a hash
/// keeps the stored one.
fn merge_min(rec: &mut [u8], cur_hash: Option<i64>, cur_min: bool) {
    let (has, min) = (rec[20] & HAS_HASH != 0, rec[20] & MIN != 0);
    let known_full = cur_hash.is_some() && !cur_min;
    if known_full && (min || !has) {
        set_access_hash(rec, cur_hash, false);
    } else if !has {
        set_access_hash(rec, cur_hash, cur_min);
    }
}

/// Turns requested changes into log ops: applies the peer merge rules,
/// drops writes that change nothing, and moves usernames and phones that a
/// peer takes from another peer (the loser is rewritten without them).
fn resolve(st: &State, changes: Vec<Change>) -> Result<Vec<Op>> {
    let keys: Vec<u64> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Peers(list) => Some(list.records().map(key_of)),
            _ => None,
        })
        .flatten()
        .collect();
    let mut ops = Vec::with_capacity(changes.len() + keys.len());
    let mut local = BatchPeers::default();
    local.records.reserve(keys.len());
    let mut slots = st.prefetch(&keys)?.into_iter();
    let malformed = |_| Error::Invalid("malformed peer record".into());
    for c in changes {
        match c {
            Change::Op(op) => {
                match &op {
                    Op::Put { key, value, .. } => check_put(key, value)?,
                    Op::Delete { key, .. } => check_key(key)?,
                    _ => {}
                }
                ops.push(op);
            }
            Change::DeletePeer(key) => {
                let Some(old) = local.current(st, &ops, key)? else {
                    continue;
                };
                let old = old_names(&old);
                ops.push(Op::DeletePeer(key));
                local.set(st, key, Some(old), None)?;
            }
            Change::Peers(mut list) => {
                for i in 0..list.ends.len() {
                    let bytes = list.record_mut(i);
                    let key = key_of(bytes);
                    let slot = slots.next();
                    // Re-saving a stored peer unchanged is the common case (a
                    // client saves the peers of every update): compare the
                    // encodings, without decoding the stored record.
                    if local.unchanged(st, &ops, key, slot, bytes) {
                        continue;
                    }
                    // Changed, or new. (`unchanged` applied the merge rules
                    // when it found the record; again here is a no-op.)
                    let old = match local.current_at(st, &ops, key, slot)? {
                        Some(cur) => {
                            merge_min(bytes, cur.access_hash(), cur.is_min());
                            Some(old_names(&cur))
                        }
                        None => None,
                    };
                    let rec = PeerRecordRef::checked_before(bytes).map_err(malformed)?;
                    let account = rec.account();
                    for (kind, name) in names_of(&rec) {
                        let hash = name_hash(kind, account, name);
                        let Some(other) = local.owner(st, hash, kind, account, name)? else {
                            continue;
                        };
                        if other == key {
                            continue;
                        }
                        let Some(loser) = local.current(st, &ops, other)? else {
                            continue;
                        };
                        let loser_old = old_names(&loser);
                        let mut loser = loser.to_owned();
                        match kind {
                            NameKind::Username => {
                                if loser.primary
                                    && loser
                                        .usernames
                                        .first()
                                        .is_some_and(|u| u.eq_ignore_ascii_case(name))
                                {
                                    loser.primary = false;
                                }
                                loser.usernames.retain(|u| !u.eq_ignore_ascii_case(name));
                            }
                            NameKind::Phone => loser.phone = None,
                        }
                        ops.push(Op::PutPeer(loser.encode()));
                        let at = ops.len() - 1;
                        local.set(
                            st,
                            other,
                            Some(loser_old),
                            Some((at, batch_record(&ops, at)?)),
                        )?;
                    }
                    ops.push(Op::PutPeer(bytes.to_vec()));
                    local.set(st, key, old, Some((ops.len() - 1, rec)))?;
                }
            }
        }
    }
    Ok(ops)
}

impl Inner {
    /// Takes the writer lock; the writer's numbers are published for
    /// [`Store::stats`] when it is released.
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
    fn prove_synced(&self, w: &mut Writer) -> Result<()> {
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

    /// Appends one commit and applies it. `force_sync` makes it durable
    /// before returning whatever the durability mode.
    pub(crate) fn append(&self, w: &mut Writer, ops: Vec<Op>, force_sync: bool) -> Result<()> {
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
            || match self.opts.durability {
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

    fn peers_need_fold(&self, w: &Writer) -> bool {
        self.enough_changed_peers(&self.state.read().peers) || w.index_unsaved
    }

    /// The peers changed since the generation reach
    /// [`Options::peer_fold_min`] or half the table: time for a new one.
    fn enough_changed_peers(&self, p: &PeerState) -> bool {
        p.overlay.len()
            >= self
                .opts
                .peer_fold_min
                .max(p.table.header.peer_count as usize / 2)
    }

    /// Writes new segments / index / log region, syncs, flips the
    /// superblock, syncs, then frees what the old superblock used.
    pub(crate) fn checkpoint(&self, w: &mut Writer, mode: Mode, need: usize) -> Result<()> {
        let force = mode != Mode::Auto;
        let relocate = mode == Mode::Relocate;
        let at_end = mode == Mode::Evacuate;
        w.check()?;
        // One more generation, and perhaps a commit carrying the log.
        w.room(1, 1)?;
        let started = Instant::now();
        let opts = &self.opts;
        let over = |dead: u64, len: u64| {
            dead > opts
                .compact_min_dead
                .max((opts.compact_dead_ratio * len as f64) as u64)
        };
        let mut carry_frame = Vec::new();
        let mut new_segs: Vec<(usize, Vec<u8>, u64)> = Vec::new();
        let mut new_peers: Option<(SegmentRef, Region)> = None;
        let mut carried_bytes = [0u64; NUM_BUCKETS];
        {
            let st = self.state.read();
            let p = &st.peers;
            let table = &p.table;
            let fold = w.index_unsaved
                || relocate
                || (force && (!p.overlay.is_empty() || w.track.peer_seg_dead > 0))
                || self.enough_changed_peers(p)
                || over(w.track.peer_seg_dead, table.seg_ref.len);
            if fold {
                new_peers = Some(self.write_peer_segment(w, p, at_end)?);
            }
            // What the new log must carry, borrowed from the state (copying
            // each record into an op first was a third of a checkpoint).
            let mut carry: Vec<OpRef<'_>> = Vec::new();
            for b in (0..NUM_BUCKETS).filter(|&b| b != PEERS as usize) {
                let t = &w.track.buckets[b];
                let seg = w.sb.segments[b];
                if t.dirty.is_empty() && !(force && t.seg_dead > 0) && !(relocate && seg.len > 0) {
                    continue;
                }
                let map = &st.maps[b];
                let carry_len = t.carry_bytes;
                debug_assert_eq!(
                    carry_len,
                    t.dirty
                        .iter()
                        .map(|(k, &in_seg)| carry_size(
                            k.len(),
                            map.get(k.as_slice()).map(|v| v.len()),
                            in_seg
                        ))
                        .sum::<u64>(),
                    "bucket {b}: carry size out of step with its changes"
                );
                if force || over(t.seg_dead, seg.len) || carry_len > opts.log_size / 4 {
                    let mut bytes = Vec::with_capacity(t.live_bytes as usize);
                    for (k, v) in map {
                        segment::put_entry(&mut bytes, k, v);
                    }
                    new_segs.push((b, bytes, map.len() as u64));
                } else {
                    for (k, &in_seg) in &t.dirty {
                        match map.get(k.as_slice()) {
                            Some(v) => carry.push(OpRef::Put {
                                bucket: b as u8,
                                key: k,
                                value: v,
                            }),
                            None if in_seg > 0 => carry.push(OpRef::Delete {
                                bucket: b as u8,
                                key: k,
                            }),
                            None => {}
                        }
                    }
                    carried_bytes[b] = carry_len;
                }
            }
            if !fold {
                for (k, v) in &p.overlay {
                    match v {
                        Some(r) => carry.push(OpRef::PutPeer(r)),
                        None if table
                            .view()
                            .get(*k)
                            .map_err(|d| table.damaged(d))?
                            .is_some() =>
                        {
                            carry.push(OpRef::DeletePeer(*k))
                        }
                        None => {}
                    }
                }
            }
            if !carry.is_empty() {
                let seq = w.next_seq;
                frame::encode_with(frame::KIND_COMMIT, &mut carry_frame, |out| {
                    commit::encode_refs_into(seq, seq - 1, carry.into_iter(), out)
                });
            }
        }

        // Allocate and write every new region. Nothing the current
        // superblock references is touched.
        let mut new_sb = w.sb;
        new_sb.generation += 1;
        let mut written = 0u64;
        let mut freed: Vec<Extent> = vec![w.sb.log];
        let mut rewritten: Vec<&'static str> = Vec::new();
        for (b, bytes, count) in &new_segs {
            freed.push(w.sb.segments[*b].extent());
            new_sb.segments[*b] = if bytes.is_empty() {
                SegmentRef::default()
            } else {
                let (ext, _) = w.alloc(bytes.len() as u64, at_end);
                self.file
                    .write_at(bytes, ext.offset)
                    .map_err(w.poison("writing a bucket segment"))?;
                written += bytes.len() as u64;
                SegmentRef {
                    offset: ext.offset,
                    len: bytes.len() as u64,
                    count: *count,
                    crc: masked_crc(bytes),
                }
            };
            rewritten.push(BUCKET_NAMES[*b]);
        }
        let old_table = self.state.read().peers.table.clone();
        let mut new_index: Option<Vec<u8>> = None;
        if let Some((seg_ref, seg)) = &new_peers {
            // Every record here was checked: the old segment's as the
            // fold read them, the overlay's when they were committed.
            // The segment is read back from the file: a record that fails
            // now stops the checkpoint rather than vanish from the index.
            let mut bad = None;
            let index_bytes = index::build(
                segment::peers(seg).map_while(|e| {
                    let parsed = e.ok().and_then(|(off, b)| {
                        Some((off as u64, PeerRecordRef::checked_before(b).ok()?))
                    });
                    if parsed.is_none() {
                        bad = Some(());
                    }
                    parsed
                }),
                seg_ref.count as usize,
                seg_ref.offset,
                opts.index_load,
            );
            if bad.is_some() {
                let e = Error::corrupt(seg_ref.offset, "the new peer segment reads back damaged");
                w.poison_with(&e);
                return Err(e);
            }
            let (idx_ext, _) = w.alloc(index_bytes.len() as u64, at_end);
            self.file
                .write_at(&index_bytes, idx_ext.offset)
                .map_err(w.poison("writing the peer index"))?;
            written += seg_ref.len + index_bytes.len() as u64;
            new_sb.segments[PEERS as usize] = *seg_ref;
            new_sb.index = Extent {
                offset: idx_ext.offset,
                len: index_bytes.len() as u64,
            };
            new_index = Some(index_bytes);
            rewritten.push(BUCKET_NAMES[PEERS as usize]);
        }
        let log_len = page_round(
            opts.log_size
                .max((2 * carry_frame.len() + need) as u64 + PAGE),
        );
        let (log, fresh) = w.alloc(log_len, at_end);
        if !fresh {
            // A reused region holds old bytes; the log must start zeroed so
            // recovery can tell a torn tail from leftovers.
            let zeros = vec![0u8; (log.len as usize).min(1 << 20)];
            let mut at = log.offset;
            while at < log.end() {
                let n = zeros.len().min((log.end() - at) as usize);
                self.file
                    .write_at(&zeros[..n], at)
                    .map_err(w.poison("zeroing a log region"))?;
                at += n as u64;
            }
        }
        if !carry_frame.is_empty() {
            self.file
                .write_at(&carry_frame, log.offset)
                .map_err(w.poison("writing the carried log"))?;
            written += carry_frame.len() as u64;
        }
        new_sb.log = log;
        new_sb.log_durable = carry_frame.len() as u64;
        new_sb.next_seq = w.next_seq;
        new_sb.file_len = new_sb
            .regions()
            .iter()
            .map(Extent::end)
            .max()
            .unwrap_or(DATA_START)
            .max(DATA_START);
        // The file must cover every region before the superblock names it.
        self.file
            .set_len(w.file_len)
            .map_err(w.poison("extending the file"))?;
        self.file.sync().map_err(w.poison("syncing new regions"))?;
        crate::recovery::write_superblock(&*self.file, &new_sb)
            .map_err(w.poison("writing the superblock"))?;
        self.file
            .sync()
            .map_err(w.poison("syncing the superblock"))?;

        // Durable. Switch memory over to the new generation.
        let new_table = match new_peers.zip(new_index) {
            Some(((seg_ref, seg), index_bytes)) => {
                let header = index::Header::decode(&index_bytes)
                    .map_err(|e| Error::corrupt(new_sb.index.offset, e))?;
                let index = match self.file.map(new_sb.index.offset, new_sb.index.len) {
                    Ok(Some(m)) => m,
                    _ => Region::Heap(index_bytes),
                };
                Some(Arc::new(PeerGen {
                    seg,
                    index,
                    header,
                    seg_ref,
                    index_extent: new_sb.index,
                }))
            }
            None => None,
        };
        if let Some(table) = new_table {
            let old_index = Extent {
                offset: old_table.index_extent.offset,
                len: page_round(old_table.index_extent.len),
            };
            let old_seg = old_table.seg_ref.extent();
            self.state.write().install_gen(table);
            w.track.peer_seg_dead = 0;
            w.index_unsaved = false;
            w.quarantine.push((old_seg, Arc::downgrade(&old_table)));
            w.quarantine.push((old_index, Arc::downgrade(&old_table)));
        }
        drop(old_table);
        for (b, _, _) in &new_segs {
            let t = &mut w.track.buckets[*b];
            t.dirty.clear();
            t.seg_dead = 0;
            t.carry_bytes = 0;
        }
        for (b, t) in w.track.buckets.iter_mut().enumerate() {
            t.log_bytes = carried_bytes[b];
        }
        w.sb = new_sb;
        w.log_pos = log.offset + carry_frame.len() as u64;
        if !carry_frame.is_empty() {
            w.next_seq += 1;
        }
        w.synced_seq = w.next_seq - 1;
        w.dirty = false;
        w.last_sync = Instant::now();
        for e in freed {
            w.release(e);
        }
        self.reclaim(w);
        w.stats.checkpoints += 1;
        w.stats.checkpoint_time += started.elapsed();
        w.stats.last_compaction = Some(Compaction {
            at: SystemTime::now(),
            duration: started.elapsed(),
            rewritten,
            bytes_written: written,
        });
        Ok(())
    }

    /// Writes the peers' next segment: the generation's records with the
    /// overlay merged in. They go out in id-hash order, the order the index
    /// build places them in (see `index::fill`); the old segment is in that
    /// order already, so the changed peers are sorted and merged into it.
    ///
    /// The bytes pass through a buffer of [`SEGMENT_CHUNK`], not one the
    /// size of the segment: fresh pages cost more to fault in than the copy
    /// into the file does (about 1.4 µs per 4 KiB page on the benchmark
    /// machine). The new generation, and the index build before it, read
    /// the segment back from the file's mapping.
    fn write_peer_segment(
        &self,
        w: &mut Writer,
        p: &PeerState,
        at_end: bool,
    ) -> Result<(SegmentRef, Region)> {
        let table = &p.table;
        let mut changed: Vec<(u64, &[u8])> = p
            .overlay
            .iter()
            .filter_map(|(&k, r)| Some((index::id_hash(k), r.as_deref()?)))
            .collect();
        changed.sort_unstable_by_key(|e| e.0);
        // At most this much: the old segment without the records the
        // overlay replaces or deletes, plus the overlay's.
        let bound = table.seg.len() as u64
            + changed
                .iter()
                .map(|(_, r)| segment::peer_entry_len(r.len()) as u64)
                .sum::<u64>();
        if bound == 0 {
            return Ok((SegmentRef::default(), Region::Heap(Vec::new())));
        }
        let (ext, _) = w.alloc(bound, at_end);
        let mut out = SegmentOut {
            file: &*self.file,
            at: ext.offset,
            buf: Vec::with_capacity(SEGMENT_CHUNK + segment::peer_entry_len(u16::MAX as usize)),
            len: 0,
            count: 0,
            crc: crc32fast::Hasher::new(),
        };
        // Repair: the old table's records as its sound id slots find them,
        // a damaged record rebuilt from its slot.
        let mut rebuilt: Vec<(u64, Vec<u8>)> = Vec::new();
        let from_slots = match w.salvage.as_mut() {
            None => None,
            Some(salvaged) => {
                let mut v: Vec<(u64, PeerRecordRef<'_>)> = Vec::new();
                for (i, s) in table.view().id_slots().iter().enumerate() {
                    if !s.is_sound() {
                        return Err(table.damaged(index::Damaged {
                            table: index::Table::Id,
                            slot: i,
                        }));
                    }
                    if s.key() == 0 {
                        continue;
                    }
                    match table.record_at(s.offset(), s.key()) {
                        Ok(r) => v.push((index::id_hash(s.key()), r)),
                        Err(_) => {
                            let (account, peer_id) = crate::format::peer_record::split_key(s.key());
                            let rec = crate::format::peer_record::PeerRecord {
                                account,
                                peer_id,
                                access_hash: s.access_hash(),
                                min: s.flags() & MIN != 0,
                                tail: vec![1, 0],
                                ..Default::default()
                            };
                            rebuilt.push((s.key(), rec.encode()));
                            salvaged.push(s.key());
                        }
                    }
                }
                Some(v)
            }
        };
        let mut from_slots = from_slots.map(|mut v| {
            for (k, b) in &rebuilt {
                if let Ok(r) = PeerRecordRef::parse(b) {
                    v.push((index::id_hash(*k), r));
                }
            }
            v.sort_unstable_by_key(|e| e.0);
            v.into_iter().map(|(_, r)| Ok((0, r)))
        });
        let mut walk = table.records();
        let mut changed = changed.into_iter().peekable();
        let merged = (|| {
            while let Some(e) = match from_slots.as_mut() {
                Some(it) => it.next(),
                None => walk.next(),
            } {
                let (_, r) = e?;
                if p.overlay.contains_key(&r.key()) {
                    continue;
                }
                let h = index::id_hash(r.key());
                while let Some((_, c)) = changed.next_if(|&(ch, _)| ch < h) {
                    out.put(c)?;
                }
                out.put(r.bytes())?;
            }
            for (_, c) in changed {
                out.put(c)?;
            }
            out.flush()?;
            if out.len > index::MAX_SEGMENT {
                return Err(Error::TooLarge {
                    what: "peer table",
                    len: out.len as usize,
                    max: index::MAX_SEGMENT as usize,
                });
            }
            Ok(())
        })();
        // What the segment did not need goes back (all of it when it is
        // empty: an empty table has no segment region, and its index names
        // offset 0 as the superblock's empty segment reference does).
        let used = if merged.is_ok() {
            page_round(out.len)
        } else {
            0
        };
        w.release(Extent {
            offset: ext.offset + used,
            len: ext.len - used,
        });
        if let Err(e) = merged {
            w.poison_with(&e);
            return Err(e);
        }
        if out.len == 0 {
            return Ok((SegmentRef::default(), Region::Heap(Vec::new())));
        }
        let seg_ref = SegmentRef {
            offset: ext.offset,
            len: out.len,
            count: out.count,
            crc: mask(out.crc.finalize()),
        };
        let seg = match self.file.map(seg_ref.offset, seg_ref.len) {
            Ok(Some(m)) => m,
            Ok(None) => {
                let mut bytes = vec![0; out.len as usize];
                self.file
                    .read_at(&mut bytes, seg_ref.offset)
                    .map_err(w.poison("reading the peer segment back"))?;
                Region::Heap(bytes)
            }
            Err(e) => return Err(w.poison("mapping the peer segment")(e)),
        };
        Ok((seg_ref, seg))
    }

    /// Frees quarantined regions no mapping can see any more, and gives
    /// free space at the end of the file back to the filesystem.
    fn reclaim(&self, w: &mut Writer) {
        let (dead, alive): (Vec<_>, Vec<_>) = w
            .quarantine
            .drain(..)
            .partition(|(_, g)| g.strong_count() == 0);
        w.quarantine = alive;
        for (e, _) in dead {
            w.release(e);
        }
        for e in w.pins.expired() {
            w.free_now(e);
        }
        let floor = w
            .quarantine
            .iter()
            .map(|(e, _)| e.end())
            .max()
            .unwrap_or(0)
            .max(w.sb.file_len);
        if let Some(last) = w.free.last().copied()
            && last.end() == w.file_len
        {
            let new_len = last.offset.max(floor);
            if new_len < w.file_len && self.file.set_len(new_len).is_ok() {
                w.free.pop();
                if new_len > last.offset {
                    w.free.push(Extent {
                        offset: last.offset,
                        len: new_len - last.offset,
                    });
                }
                w.file_len = new_len;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Storage;
    use crate::types::{Peer, PeerId};

    /// Reopens what `file` holds (as after a process crash) on a new file.
    fn reopen(file: &MemFile, opts: &Options) -> (MemFile, Store) {
        let file = MemFile::from_bytes(file.live());
        let store = Store::open_backend(Arc::new(file.clone()), opts.clone()).expect("reopen");
        (file, store)
    }

    /// Which names resolve without the lock after a compaction: one whose
    /// holder was re-saved with new fields but the same names still does;
    /// a name that moved to another peer, and the name it replaced, do not.
    #[test]
    fn names_stay_lock_free_until_their_owner_changes() {
        use crate::format::index::{NameKind, name_hash};
        use crate::format::peer_record::{PeerRecord, peer_key};
        let store = Store::memory();
        let rec = |id: i64, hash: i64, name: &str| PeerRecord {
            peer_id: id,
            access_hash: Some(hash),
            usernames: vec![name.into()],
            ..Default::default()
        };
        store
            .put_peer_records(vec![rec(1, 10, "alice"), rec(2, 20, "bob")])
            .unwrap();
        store.compact().unwrap();
        let lock_free = |name: &str| {
            let h = name_hash(NameKind::Username, 0, name);
            store.lookup().name(h, NameKind::Username, 0, name)
        };
        assert_eq!(lock_free("alice"), Some(Some((peer_key(0, 1), Some(10)))));
        // Same name, new access hash (and case): still lock-free, new hash.
        store.put_peer_records(vec![rec(1, 11, "Alice")]).unwrap();
        assert_eq!(lock_free("alice"), Some(Some((peer_key(0, 1), Some(11)))));
        // Peer 2 takes a new name: both names go to the locked path, which
        // answers from the state.
        store.put_peer_records(vec![rec(2, 20, "carol")]).unwrap();
        assert_eq!(lock_free("bob"), None);
        assert_eq!(lock_free("carol"), None);
        assert_eq!(store.peer_id_by_username(0, "bob").unwrap(), None);
        assert_eq!(store.peer_id_by_username(0, "carol").unwrap(), Some(2));
        assert_eq!(
            store.resolve_username(0, "ALICE").unwrap(),
            Some((1, Some(11)))
        );
    }

    /// Every fold writes the peer segment in id-hash order (the merge and
    /// the index build rely on it for speed only), keeping every peer's
    /// newest record once: peers changed in between, new ones, deleted ones.
    #[test]
    fn folds_write_the_peer_segment_in_id_hash_order() {
        use crate::format::peer_record::PeerRecord;
        let store = Store::memory();
        let rec = |id: i64, hash: i64| PeerRecord {
            peer_id: id,
            access_hash: Some(hash),
            ..Default::default()
        };
        let in_order = |store: &Store| {
            let st = store.inner.state.read();
            let keys: Vec<(u64, i64)> = st
                .peers
                .table
                .records()
                .map(|e| e.map(|(_, r)| (index::id_hash(r.key()), r.access_hash().unwrap())))
                .collect::<Result<_>>()
                .unwrap();
            assert!(
                keys.is_sorted_by_key(|k| k.0),
                "segment not in id-hash order"
            );
            keys.len()
        };
        store
            .put_peer_records((1..=500).map(|i| rec(i, i)).collect())
            .unwrap();
        store.compact().unwrap();
        assert_eq!(in_order(&store), 500);
        store
            .put_peer_records((250..=750).map(|i| rec(i, -i)).collect())
            .unwrap();
        for i in 1..=100 {
            store.delete_peer_record(0, i).unwrap();
        }
        store.compact().unwrap();
        assert_eq!(in_order(&store), 650);
        for i in 101..=750 {
            let want = if i < 250 { i } else { -i };
            assert_eq!(
                store.peer_access_hash(0, i).unwrap(),
                Some(Some(want)),
                "peer {i}"
            );
        }
        assert!(store.verify().unwrap().is_ok());
    }

    /// A fold allocates its segment for the most it can need (the old
    /// segment plus every changed record) and gives back what it did not
    /// use: re-saving every peer changed, fold after fold, keeps the file
    /// at the same size, and the free list never overlaps live data
    /// (`verify` checks that).
    #[test]
    fn folds_give_back_the_segment_space_they_did_not_use() {
        let opts = Options {
            durability: Durability::None,
            peer_fold_min: 1,
            ..Options::default()
        };
        let file = MemFile::new();
        let store = Store::open_backend(Arc::new(file.clone()), opts.clone()).unwrap();
        let a = store.account("a").unwrap();
        let mut peers: Vec<Peer> = (1..=3000).map(|i| Peer::user(i, i)).collect();
        let mut sizes = Vec::new();
        for round in 0..12 {
            for p in &mut peers {
                p.access_hash = Some(p.id.bare_id() * 1000 + round);
            }
            a.save_peers(&peers).unwrap();
            store.compact().unwrap();
            assert!(store.verify().unwrap().is_ok(), "round {round}");
            sizes.push(store.stats().file_size);
        }
        assert!(
            sizes[11] <= sizes[2],
            "the file grew from {} to {} bytes",
            sizes[2],
            sizes[11]
        );
        drop((a, store));
        let (_, store) = reopen(&file, &opts);
        let a = store.account("a").unwrap();
        assert_eq!(a.access_hash(PeerId::user(7)).unwrap(), Some(7011));
    }

    /// Regression (found by fuzzing): a checkpoint that folded the peer
    /// table down to zero peers wrote an index naming the offset of a
    /// segment it never kept, next to an all-zero segment reference. The
    /// next open took the index for stale, tried to rebuild it from the
    /// (absent) segment and failed its checksum: the store no longer opened.
    #[test]
    fn folding_the_last_peer_away_keeps_the_store_openable() {
        let opts = Options {
            durability: Durability::Immediate,
            log_size: 8192,
            peer_fold_min: 1,
            ..Options::default()
        };
        let file = MemFile::new();
        let store = Store::open_backend(Arc::new(file.clone()), opts.clone()).unwrap();
        let a = store.account("a").unwrap();
        a.save_peer(&Peer::chat(1)).unwrap();
        assert!(a.delete_peer(PeerId::chat(1)).unwrap());
        assert!(store.verify().unwrap().is_ok());
        drop((a, store));
        let (file, store) = reopen(&file, &opts);
        assert!(!store.stats().index_rebuilt);
        assert!(store.verify().unwrap().is_ok());
        let a = store.account("a").unwrap();
        assert_eq!(a.peer_count().unwrap(), 0);
        a.save_peer(&Peer::chat(2)).unwrap();
        store.compact().unwrap();
        drop((a, store));
        let (_, store) = reopen(&file, &opts);
        assert!(store.verify().unwrap().is_ok());
        let a = store.account("a").unwrap();
        assert!(a.peer(PeerId::chat(2)).unwrap().is_some());
    }
}
