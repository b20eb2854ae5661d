//! The writer: the one thread at a time that appends to the log. Its
//! state ([`Writer`]: superblock, log position, free-space allocator,
//! poison latch, the counters stats reports), the lock that publishes its
//! numbers, and the syncs (the Batched-mode flusher thread, the sync mark).

use crate::engine::state::Tracking;
use crate::error::{Error, Result};
use crate::format::DATA_START;
use crate::format::superblock::{self, COUNTER_LIMIT, Extent, Superblock};
use crate::format::{NUM_BUCKETS, masked_crc, page_round};
use crate::peers::generation::PeerGen;
use crate::sys::io::RawFile;
use parking_lot::Mutex;
use std::sync::{Arc, Weak};
use std::time::SystemTime;
use std::time::{Duration, Instant};

/// The writer's numbers that [`crate::Store::stats`] reports.
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
    pub(super) fn update(&mut self, w: &Writer) {
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
/// [`crate::engine::Inner::view`] when it is released.
pub(crate) struct WriterGuard<'a> {
    pub(super) guard: parking_lot::MutexGuard<'a, Writer>,
    pub(super) view: &'a Mutex<WriterView>,
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
pub(super) fn thread_mark() -> usize {
    thread_local!(static MARK: u8 = const { 0 });
    MARK.with(|m| m as *const u8 as usize)
}

/// The Batched-mode background sync. It holds the writer and the file,
/// never the store, so dropping the last `Store` stops and joins it before
/// the file (and its lock) is closed.
pub(crate) struct Flusher {
    pub stop: Arc<(Mutex<bool>, parking_lot::Condvar)>,
    pub thread: std::thread::JoinHandle<()>,
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
    pub(super) fn clone_counters(&self) -> WriterStats {
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
    pub pins: super::pins::Pins,
    pub file_len: u64,
    pub track: Tracking,
    pub stats: WriterStats,
    pub read_only: bool,
    /// The in-memory index must be written out at the next checkpoint.
    pub index_unsaved: bool,
    /// Set by [`crate::Store::repair`] for one fold: the old peer table is read
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
    /// Serializes fsyncs and latches a failed one, so that a sync run
    /// without the writer lock ([`sync_unlocked`]) and one run under it
    /// never let a later success hide an earlier failure.
    pub gate: Arc<SyncGate>,
}

/// See [`Writer::gate`].
#[derive(Default)]
pub(crate) struct SyncGate {
    /// Held across every fsync of the log.
    pub lock: Mutex<()>,
    /// The first failed fsync, as text: set before `lock` is released.
    pub failed: std::sync::OnceLock<String>,
}

impl Writer {
    /// The writer of a store just opened: the log replayed through `pos`
    /// (bytes of the log region), `seq` the next commit's seq, `mark` the
    /// sync mark found. No free space yet: [`Writer::release_unused`].
    #[expect(clippy::too_many_arguments, reason = "one call, at open")]
    pub(crate) fn opened(
        sb: Superblock,
        pos: usize,
        seq: u64,
        track: Tracking,
        stats: WriterStats,
        read_only: bool,
        index_unsaved: bool,
        mark: Option<u64>,
    ) -> Writer {
        Writer {
            sb,
            log_pos: sb.log.offset + pos as u64,
            next_seq: seq,
            synced_seq: seq - 1,
            last_sync: Instant::now(),
            dirty: false,
            poisoned: None,
            free: Vec::new(),
            quarantine: Vec::new(),
            pins: Default::default(),
            file_len: sb.file_len,
            track,
            stats,
            read_only,
            index_unsaved,
            salvage: None,
            marked_seq: mark.unwrap_or(0),
            marker_seq: 0,
            proven_seq: 0,
            gate: Arc::default(),
        }
    }

    /// Gives the allocator every gap between the superblock's regions, and
    /// the space after the last one.
    pub(crate) fn release_unused(&mut self) {
        let sb = self.sb;
        let mut used = sb.regions();
        used.sort_by_key(|e| e.offset);
        let mut at = DATA_START;
        for e in used {
            if e.offset > at {
                self.release(Extent {
                    offset: at,
                    len: e.offset - at,
                });
            }
            at = at.max(e.end());
        }
        if at < sb.file_len {
            self.release(Extent {
                offset: at,
                len: sb.file_len - at,
            });
        }
    }

    /// The highest synced commit that is not an empty proof commit (which
    /// proves nothing new itself).
    pub(super) fn last_real_synced(&self) -> u64 {
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
        match self.poisoned.as_ref().or(self.gate.failed.get()) {
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
    pub(super) fn room(&self, generations: u64, commits: u64) -> Result<()> {
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
    pub(super) fn poison(
        &mut self,
        context: &'static str,
    ) -> impl FnOnce(std::io::Error) -> Error + '_ {
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
    pub(super) fn poison_with(&mut self, e: &Error) {
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
    pub(super) fn alloc(&mut self, len: u64, at_end: bool) -> (Extent, bool) {
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
    pub(crate) fn free_now(&mut self, e: Extent) {
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

pub(super) fn spawn_flusher(
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
                // Appends go on while the disk flushes.
                let _ = sync_unlocked(&*file, &writer, &view);
            }
        })
        .ok()?;
    Some(Flusher { stop, thread })
}

/// Syncs the file if commits were written since the last sync.
pub(super) fn sync_writer(file: &dyn RawFile, w: &mut Writer) -> Result<()> {
    if !w.dirty {
        return Ok(());
    }
    let gate = w.gate.clone();
    let _serial = gate.lock.lock();
    if let Some(first) = gate.failed.get() {
        return Err(Error::Poisoned {
            first: first.clone(),
        });
    }
    if let Err(e) = file.sync() {
        let _ = gate.failed.set(format!("syncing the log: {e}"));
        return Err(w.poison("syncing the log")(e));
    }
    w.dirty = false;
    w.synced_seq = w.next_seq.saturating_sub(1);
    w.last_sync = Instant::now();
    w.stats.syncs += 1;
    write_sync_mark(file, w);
    Ok(())
}

/// Makes every commit appended before the call durable, without holding
/// the writer lock during the fsync: commits go on meanwhile, and only the
/// seq captured before the fsync is marked synced. Returns the highest
/// synced seq. A failed fsync poisons the store (and every later sync
/// reports it, whichever thread runs it).
pub(crate) fn sync_unlocked(
    file: &dyn RawFile,
    writer: &Mutex<Writer>,
    view: &Mutex<WriterView>,
) -> Result<u64> {
    let (target, gate) = {
        let w = writer.lock();
        if w.read_only {
            return Ok(w.synced_seq);
        }
        w.check()?;
        let last = w.next_seq.saturating_sub(1);
        if !w.dirty || w.synced_seq >= last {
            return Ok(w.synced_seq);
        }
        (last, w.gate.clone())
    };
    let r = {
        let _serial = gate.lock.lock();
        match gate.failed.get() {
            Some(first) => Err(Error::Poisoned {
                first: first.clone(),
            }),
            None => file.sync().map_err(|e| {
                let _ = gate.failed.set(format!("syncing the log: {e}"));
                Error::Io {
                    context: "syncing the log",
                    path: None,
                    source: e,
                }
            }),
        }
    };
    let mut w = WriterGuard {
        guard: writer.lock(),
        view,
    };
    if let Err(e) = r {
        w.poison_with(&e);
        return Err(e);
    }
    if w.synced_seq < target {
        w.synced_seq = target;
        w.last_sync = Instant::now();
        w.stats.syncs += 1;
        if w.next_seq.saturating_sub(1) == target {
            w.dirty = false;
        }
        write_sync_mark(file, &mut w);
    }
    Ok(w.synced_seq)
}

/// After a sync: the sync mark names the highest commit now synced (not
/// synced itself: if it is lost, nothing is lost but the proof). Every
/// sync writes it, a background one and a durable commit's included, so
/// that damage to the last synced commits is reported even when the
/// process then dies without `sync()` or a close (FORMAT.md, "Sync
/// mark"). One 12-byte write per sync. Best effort: the commits are
/// already durable, so a failed write only loses the proof (the next
/// write to the file reports the trouble).
pub(super) fn write_sync_mark(file: &dyn RawFile, w: &mut Writer) {
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
