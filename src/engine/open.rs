//! Opening a store: lock, pick the superblock, load segments, map the peer
//! generation, replay the log written since the last checkpoint, and tell a
//! torn tail (truncated and reported) from corruption (an error).

use crate::engine::logscan::{LogReader, later_commit_proving};
use crate::engine::options::Options;
use crate::engine::state::{State, Tracking};
use crate::engine::writer::{Writer, WriterStats};
use crate::error::{Error, Result};
use crate::format::bucket::{BUCKET_NAMES, PEERS};
use crate::format::commit;
use crate::format::frame;
use crate::format::index;
use crate::format::segment;
use crate::format::superblock::{self, Extent, SegmentRef, SlotError, Superblock};
use crate::format::{DATA_START, NUM_BUCKETS, OWNER_MAGIC, OWNER_OFFSET, PAGE, masked_crc};
use crate::peers::generation::PeerGen;
use crate::sys::bytes::Bytes;
use crate::sys::io::RawFile;
use crate::sys::io::{OpenMark, open_in_this_process};
use crate::sys::mmap::Region;
use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// What to do about a truncated store.
const RESTORE: &str = "restore it from a backup (a copy of the file taken while no process had it open), or copy it again from where it came from";

/// True unless `pid` is known to be gone (`/proc` on Linux; elsewhere the
/// record is believed).
fn alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") && Path::new("/proc/self").exists() {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

/// Opens the file and takes the lock (exclusive, or shared when read-only).
/// I/O errors name `path`.
///
/// A missing file is created first, complete, under a temporary name
/// ([`create_new`]), so a crash never leaves an empty or half-made file at
/// `path`.
pub(crate) fn open_locked(path: &Path, opts: &Options) -> Result<(File, Option<OpenMark>)> {
    let context = if opts.read_only {
        crate::error::OPENING_RO
    } else {
        crate::error::OPENING_RW
    };
    if opts.create && !opts.read_only {
        match std::fs::symlink_metadata(path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_new(path, opts)?,
            Err(e) => return Err(Error::io_at(context, path)(e)),
        }
    }
    let file = OpenOptions::new()
        .read(true)
        .write(!opts.read_only)
        .open(path)
        .map_err(Error::io_at(context, path))?;
    let meta = file.metadata().map_err(Error::io_at(context, path))?;
    if !meta.is_file() {
        let e = if meta.is_dir() {
            std::io::Error::from(std::io::ErrorKind::IsADirectory)
        } else {
            std::io::Error::other("not a regular file")
        };
        return Err(Error::io_at(context, path)(e));
    }
    let locked = if opts.read_only {
        file.try_lock_shared()
    } else {
        file.try_lock()
    };
    match locked {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Err(locked_error(&file, path, opts)),
        Err(TryLockError::Error(e)) => {
            return Err(Error::io_at("locking the store file", path)(e));
        }
    }
    let mark = OpenMark::new(&file);
    Ok((file, mark))
}

/// Creates a new store at `path` (FORMAT.md, "New files"): a complete
/// file, mode 0600, under a temporary name `.<name>.tmp-<pid>-<n>` in the
/// same directory; every byte of it written (so a full filesystem is an
/// error now, not at the first commit) and synced; then hard-linked to
/// `path`, which never replaces a file there. If another process created
/// `path` meanwhile, that file is left alone and opened. Where hard links
/// are unsupported it is renamed into place instead, after checking that
/// `path` is still free. The directory is synced, so the new entry is
/// durable; the temporary name is removed.
fn create_new(path: &Path, opts: &Options) -> Result<()> {
    let fail = |e| Error::io_at(crate::error::CREATING, path)(e);
    let (temp, file) = crate::sys::staged::Staged::beside(path, "tmp").map_err(fail)?;
    // Every byte `init` sizes, written: holes would only fail later.
    let len = DATA_START + crate::format::page_round(opts.log_size.max(PAGE));
    let zeros = vec![0u8; len.min(1 << 20) as usize];
    let mut at = 0;
    while at < len {
        let n = zeros.len().min((len - at) as usize);
        file.write_all_at(&zeros[..n], at).map_err(fail)?;
        at += n as u64;
    }
    let backend = crate::sys::io::FileBackend::new(file);
    init(&backend, opts).map_err(|e| e.at_path(path))?;
    drop(backend);
    // `false`: someone else made it first; theirs is opened.
    temp.place(path, false).map_err(fail)?;
    Ok(())
}

/// What is true about the holder of a lock we could not take: this
/// process or another; a read-only (shared) holder or a writable one; and
/// the writable holder's pid, from the owner record, if that process lives.
fn locked_error(file: &File, path: &Path, opts: &Options) -> Error {
    let same_process = open_in_this_process(file);
    // A writable open failed: if a shared lock can be had, every holder
    // is read-only (it cannot have written the owner record). A read-only
    // open failed: the holder is exclusive, a writable handle.
    let read_only_holder = !opts.read_only && file.try_lock_shared().is_ok();
    let _ = file.unlock();
    let mut pid = None;
    if !read_only_holder {
        let mut b = [0u8; 8];
        pid = file.read_exact_at(&mut b, OWNER_OFFSET).ok().and_then(|_| {
            let pid = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let check = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
            (check == pid ^ OWNER_MAGIC && pid != 0).then_some(pid)
        });
        // The record of a writer that is gone (its lock went with it, so
        // the holder is someone else) names nobody.
        pid = pid.filter(|&p| alive(p));
        if same_process {
            pid = pid.filter(|&p| p == std::process::id());
        }
    }
    Error::Locked {
        path: path.to_path_buf(),
        pid,
        same_process,
        read_only_holder,
        holder: None,
    }
}

/// A warning when group or others may read the file: it holds auth keys.
pub(crate) fn mode_warning(file: &File, path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = file.metadata().ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!(
            "{} has mode {mode:03o}: group or others may read it, and it holds auth keys; chmod 600 it",
            path.display()
        )
    })
}

fn write_owner(file: &dyn RawFile) {
    let pid = std::process::id();
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&pid.to_le_bytes());
    b[4..].copy_from_slice(&(pid ^ OWNER_MAGIC).to_le_bytes());
    let _ = file.write_at(&b, OWNER_OFFSET);
}

fn read(file: &dyn RawFile, offset: u64, len: u64, what: &'static str) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; len as usize];
    file.read_at(&mut buf, offset).map_err(Error::io(what))?;
    Ok(buf)
}

fn init(file: &dyn RawFile, opts: &Options) -> Result<()> {
    let log_len = crate::format::page_round(opts.log_size.max(PAGE));
    let sb = Superblock {
        generation: 1,
        next_seq: 1,
        log: Extent {
            offset: DATA_START,
            len: log_len,
        },
        file_len: DATA_START + log_len,
        ..Default::default()
    };
    // The length must be durable before a superblock names it; a crash
    // in between leaves zeros, which `unfinished_init` recognises.
    file.set_len(sb.file_len)
        .map_err(Error::io("sizing a new store"))?;
    file.sync().map_err(Error::io("syncing a new store"))?;
    write_superblock(file, &sb).map_err(Error::io("writing the superblock"))?;
    file.sync().map_err(Error::io("syncing a new store"))
}

/// True when a file without a valid superblock is what a crash during
/// [`init`] leaves (in place on a backend, or at a store's path by builds
/// before [`create_new`]; a store created by path now crashes only
/// at its temporary name): zeros everywhere, except that a superblock slot may
/// hold the start of a torn superblock write (beginning with the magic, or
/// a prefix of it). Such a file holds no commit, so it is initialised
/// again. Anything else, a foreign file in particular, is left alone.
fn unfinished_init(file: &dyn RawFile, len: u64) -> Result<bool> {
    // `init` syncs the full length before writing anything: a shorter or
    // odd-sized file (a truncated copy, say) is something else.
    if len < DATA_START + PAGE || !len.is_multiple_of(PAGE) {
        return Ok(false);
    }
    let mut buf = vec![0u8; 1 << 16];
    let mut at = 0u64;
    while at < len {
        let n = (len - at).min(buf.len() as u64) as usize;
        file.read_at(&mut buf[..n], at)
            .map_err(Error::io("reading the file"))?;
        for (i, &b) in buf[..n].iter().enumerate() {
            let pos = at + i as u64;
            let in_page = pos % superblock::MIRROR_IN_PAGE;
            let in_slot = in_page < superblock::SIZE as u64 && pos < 2 * PAGE;
            if b == 0 || in_slot && in_page >= superblock::MAGIC.len() as u64 {
                continue;
            }
            // A non-zero byte outside the slots, or one that breaks the
            // magic before the magic is complete: not ours to reset.
            if !in_slot || b != superblock::MAGIC[in_page as usize] {
                return Ok(false);
            }
        }
        at += n as u64;
    }
    Ok(true)
}

/// The superblock open picked, and the places where a copy of it should be
/// but is not (damaged or torn): a writable open rewrites them.
pub(crate) struct Picked {
    pub sb: Superblock,
    pub bad_copies: Vec<u64>,
}

/// Reads the four superblock places (two slots, two mirrors) and picks the
/// newest generation with a valid copy.
///
/// Why this is never a silent rollback: a checkpoint writes both copies of
/// generation `g + 1` (one primary, one mirror, in different pages) and
/// syncs them before anything is written under it. If one copy is valid,
/// `g + 1` is in charge; no single damaged byte, sector or page reaches both
/// copies, so `g` is picked only when both copies of `g + 1` failed, which
/// is what a crash during that write leaves, and then nothing was
/// acknowledged after `g + 1` (the checkpoint had not returned).
pub(crate) fn pick_superblock(file: &dyn RawFile, len: u64, path: Option<&Path>) -> Result<Picked> {
    let not_peerlog = || Error::NotPeerlog {
        path: path.map(Path::to_path_buf).unwrap_or_default(),
    };
    let places = [
        (0, false),
        (PAGE, false),
        (superblock::MIRROR_IN_PAGE, true),
        (PAGE + superblock::MIRROR_IN_PAGE, true),
    ];
    let mut results = Vec::new();
    for (at, mirror) in places {
        if len < at + superblock::SIZE as u64 {
            results.push((at, [0u8; superblock::SIZE], Err(SlotError::NotPeerlog)));
            continue;
        }
        let mut img = [0u8; superblock::SIZE];
        file.read_at(&mut img, at)
            .map_err(Error::io("reading the superblock"))?;
        let r = Superblock::decode(&img).and_then(|sb| {
            let home = if mirror {
                Superblock::mirror_offset(sb.generation)
            } else {
                Superblock::slot_offset(sb.generation)
            };
            if home != at {
                Err(SlotError::Corrupt(
                    "superblock generation does not match its slot",
                ))
            } else if mirror && sb.version < 2 {
                Err(SlotError::Corrupt("a version 1 superblock has no mirror"))
            } else {
                Ok(sb)
            }
        });
        results.push((at, img, r));
    }
    if let Some((_, _, Err(SlotError::Version(v)))) = results
        .iter()
        .find(|(_, _, r)| matches!(r, Err(SlotError::Version(_))))
    {
        return Err(Error::UnsupportedVersion {
            found: *v,
            supported: superblock::FORMAT_VERSION,
        });
    }
    let best = results
        .iter()
        .filter_map(|(_, img, r)| r.as_ref().ok().map(|sb| (sb, img)))
        .max_by_key(|(sb, _)| sb.generation);
    if let Some((sb, img)) = best {
        let sb = *sb;
        // Two valid copies of one generation with different contents: no
        // crash or single damage makes that, so nothing here can be trusted
        // to be the newest.
        if results.iter().any(|(_, other, r)| {
            r.as_ref()
                .is_ok_and(|o| o.generation == sb.generation && other != img)
        }) {
            return Err(Error::corrupt(
                Superblock::slot_offset(sb.generation),
                format!(
                    "the two copies of superblock generation {} disagree",
                    sb.generation
                ),
            ));
        }
        let mut bad_copies = Vec::new();
        if sb.version >= 2 {
            for at in Superblock::copy_offsets(sb.generation) {
                let holds = results.iter().any(|(place, other, r)| {
                    *place == at
                        && r.as_ref().is_ok_and(|o| o.generation == sb.generation)
                        && other == img
                });
                if !holds {
                    bad_copies.push(at);
                }
            }
        }
        return Ok(Picked { sb, bad_copies });
    }
    match results.iter().find_map(|(at, _, r)| match r {
        Err(SlotError::Corrupt(what)) => Some((*at, *what)),
        _ => None,
    }) {
        Some((at, what)) => Err(Error::corrupt(at, what)),
        None => Err(not_peerlog()),
    }
}

/// Writes both copies of `sb` (primary and mirror); the caller syncs.
pub(crate) fn write_superblock(file: &dyn RawFile, sb: &Superblock) -> std::io::Result<()> {
    let img = sb.encode();
    for at in Superblock::copy_offsets(sb.generation) {
        file.write_at(&img, at)?;
    }
    Ok(())
}

/// Loads an opened (and locked) file into memory, recovering its log.
pub(crate) fn load(
    file: &dyn RawFile,
    opts: &Options,
    path: Option<&Path>,
) -> Result<(State, Writer)> {
    let (sb, len, stats) = open_superblock(file, opts, path)?;
    let mut track = Tracking::default();
    let maps = load_buckets(file, &sb, &mut track)?;

    // The peer generation: map it; check the index header; rebuild it from
    // the segment if it is missing, stale or damaged.
    let (table, rebuilt) = load_peer_gen(file, &sb, opts)?;
    let mut stats = stats;
    // A version 1 table is always rebuilt (converted): that is the
    // upgrade, not damage.
    stats.index_rebuilt = rebuilt && sb.version >= 2;
    let mut state = State::new(Arc::new(table));
    state.maps = maps;

    let Replayed { pos, seq, mark } =
        replay(file, opts, &sb, len, &mut state, &mut track, &mut stats)?;
    let mut writer = Writer::opened(sb, pos, seq, track, stats, opts.read_only, rebuilt, mark);
    writer.release_unused();
    if !opts.read_only {
        write_owner(file);
    }
    Ok((state, writer))
}

/// The file's length checked, created if it is new and may be, and the
/// newest valid superblock picked (a damaged copy of it rewritten, or
/// reported when read-only). Regions past the superblock's file length (a
/// checkpoint that never committed) are dropped.
fn open_superblock(
    file: &dyn RawFile,
    opts: &Options,
    path: Option<&Path>,
) -> Result<(Superblock, u64, WriterStats)> {
    let mut len = file.len().map_err(Error::io("reading the file length"))?;
    if len == 0
        && let Some(path) = path
    {
        // A store by path is created complete under another name and
        // linked in place (`create_new`): an empty file there is not one.
        return Err(Error::corrupt(
            0,
            format!(
                "{} is empty: not a store (a 0-byte backup, or a file another program created?); remove it to create a new store",
                path.display()
            ),
        ));
    }
    if len == 0 {
        if opts.read_only || !opts.create {
            return Err(Error::NotPeerlog {
                path: path.map(Path::to_path_buf).unwrap_or_default(),
            });
        }
        init(file, opts)?;
        len = file.len().map_err(Error::io("reading the file length"))?;
    }
    if len < superblock::SIZE as u64 {
        // Too short for a superblock: a prefix of a store (which starts
        // with the magic) is a truncated store, not a foreign file.
        let mut head = vec![0u8; len as usize];
        file.read_at(&mut head, 0)
            .map_err(Error::io("reading the superblock"))?;
        let n = head.len().min(superblock::MAGIC.len());
        if n > 0 && head[..n] == superblock::MAGIC[..n] {
            return Err(Error::corrupt(
                len,
                format!(
                    "file is {len} bytes: it starts like a peerlog store but is shorter than one superblock ({} bytes), so it was truncated (a partial copy?); {RESTORE}",
                    superblock::SIZE
                ),
            ));
        }
    }
    let picked = match pick_superblock(file, len, path) {
        Ok(p) => p,
        Err(Error::NotPeerlog { .. } | Error::Corrupt { .. })
            if !opts.read_only && opts.create && unfinished_init(file, len)? =>
        {
            // A crash while the file was being created: no superblock ever
            // became valid and nothing else was written. Start over.
            file.set_len(0)
                .map_err(Error::io("restarting an unfinished creation"))?;
            init(file, opts)?;
            len = file.len().map_err(Error::io("reading the file length"))?;
            pick_superblock(file, len, path)?
        }
        Err(e) => return Err(e),
    };
    let sb = picked.sb;
    if len < sb.file_len {
        return Err(Error::corrupt(
            len,
            format!(
                "file is {len} bytes but its superblock needs {}: {} bytes missing, the file was cut short (a partial copy, or a copy to a full disk?); {RESTORE}",
                sb.file_len,
                sb.file_len - len
            ),
        ));
    }
    if len > sb.file_len && !opts.read_only {
        // Regions of a checkpoint that never committed.
        file.set_len(sb.file_len)
            .map_err(Error::io("dropping an unfinished checkpoint"))?;
    }
    let mut stats = WriterStats::default();
    if !picked.bad_copies.is_empty() {
        // One copy of the newest superblock is damaged or torn: rewrite it
        // from the intact one, so that the file again holds two.
        if opts.read_only {
            stats.superblock_copies_damaged = picked.bad_copies.clone();
        } else {
            let img = sb.encode();
            for &at in &picked.bad_copies {
                file.write_at(&img, at)
                    .map_err(Error::io("repairing a superblock copy"))?;
            }
            file.sync()
                .map_err(Error::io("syncing a repaired superblock copy"))?;
            stats.superblock_copies_repaired = picked.bad_copies.len() as u64;
        }
    }
    Ok((sb, len, stats))
}

/// The generic buckets, each segment read and checked (CRC, entry count).
fn load_buckets(
    file: &dyn RawFile,
    sb: &Superblock,
    track: &mut Tracking,
) -> Result<[std::collections::BTreeMap<Bytes, Bytes>; NUM_BUCKETS]> {
    // Generic buckets: read and check every segment.
    let mut maps: [std::collections::BTreeMap<Bytes, Bytes>; NUM_BUCKETS] = Default::default();
    for b in (0..NUM_BUCKETS).filter(|&b| b != PEERS as usize) {
        let s = sb.segments[b];
        if s.len == 0 {
            continue;
        }
        let bytes = read(file, s.offset, s.len, "reading a bucket segment")?;
        if masked_crc(&bytes) != s.crc {
            return Err(Error::corrupt(
                s.offset,
                format!("{} segment checksum mismatch", BUCKET_NAMES[b]),
            ));
        }
        for e in segment::entries(&bytes) {
            let (k, v) = e.map_err(|(at, _)| {
                Error::corrupt(s.offset + at as u64, "malformed segment entry")
            })?;
            track.buckets[b].live_bytes += segment::entry_len(k, v) as u64;
            maps[b].insert(Bytes::from(k), Bytes::from(v));
        }
        if maps[b].len() as u64 != s.count {
            return Err(Error::corrupt(
                s.offset,
                format!("{} segment entry count mismatch", BUCKET_NAMES[b]),
            ));
        }
    }
    Ok(maps)
}

/// Where the replay of the log stopped.
struct Replayed {
    /// Bytes of the log region replayed.
    pos: usize,
    /// The next commit's seq.
    seq: u64,
    /// The sync mark, if any.
    mark: Option<u64>,
}

/// Replays the log into `state`, then tells a torn tail (zeroed, unless
/// read-only) from damage to commits that were synced (the sync mark, the
/// superblock's durable length, a later commit proving an earlier one).
fn replay(
    file: &dyn RawFile,
    opts: &Options,
    sb: &Superblock,
    len: u64,
    state: &mut State,
    track: &mut Tracking,
    stats: &mut WriterStats,
) -> Result<Replayed> {
    // Replay the log. It is read with pread through a small window, not
    // mapped: a new log region is a hole, and faulting a hole in on a full
    // tmpfs kills the process with SIGBUS (see `logscan`).
    let mut log = LogReader::new(file, sb.log.offset, sb.log.len)?;
    let mut pos = 0usize;
    let mut seq = sb.next_seq;
    state.peers.replaying(true);
    while let Some(f) = log.frame(pos)? {
        if f.kind != frame::KIND_COMMIT || commit::peek(f.payload).map(|(s, _)| s) != Ok(seq) {
            break;
        }
        let c = commit::decode(f.payload).map_err(|e| {
            Error::corrupt(
                sb.log.offset + pos as u64,
                format!("commit {seq} has a valid checksum but {e}"),
            )
        })?;
        let n = f.len();
        for op in c.ops {
            state.apply(op, track).map_err(|e| match e {
                Error::Invalid(what) => Error::corrupt(sb.log.offset + pos as u64, what),
                other => other,
            })?;
        }
        pos += n;
        seq += 1;
    }
    state.peers.replaying(false);
    // The sync mark: commits through `mark` were synced, so a log that
    // ends before them was damaged, not torn.
    let mark = read_sync_mark(file, len)?;
    if let Some(m) = mark
        && m >= seq
    {
        return Err(Error::corrupt(
            sb.log.offset + pos as u64,
            format!(
                "the log ends at commit {} but commits through {m} were synced (sync mark at byte {}): damaged log",
                seq - 1,
                crate::format::SYNC_MARK_OFFSET
            ),
        ));
    }
    let durable_end = sb.log_durable as usize;
    if pos < durable_end {
        return Err(Error::corrupt(
            sb.log.offset + pos as u64,
            "damaged record in the synced part of the log",
        ));
    }
    let garbage_end = log.nonzero_end(pos)?;
    if garbage_end > 0 {
        // Damage: a torn tail, unless a later commit proves that the
        // missing one had been synced.
        // All of the rest of the region: a frame may end in zeros (a
        // value of zeros, a CRC with a zero byte) past the last non-zero
        // byte.
        let rest = log.bytes(pos, sb.log.len as usize - pos)?;
        if let Some(later) = later_commit_proving(&rest, seq) {
            return Err(Error::corrupt(
                sb.log.offset + pos as u64,
                format!(
                    "damaged commit {seq} is followed by commit {later} written after it was synced"
                ),
            ));
        }
    }
    drop(log);
    if garbage_end > 0 {
        stats.recovered_bytes = garbage_end as u64;
        if !opts.read_only {
            let zeros = vec![0u8; garbage_end];
            file.write_at(&zeros, sb.log.offset + pos as u64)
                .map_err(Error::io("truncating a torn log tail"))?;
            file.sync()
                .map_err(Error::io("syncing the truncated log"))?;
        }
    }

    if !opts.read_only && garbage_end == 0 && pos > 0 {
        // What replay found is now the store's word: make it durable
        // before anything is written after it.
        file.sync().map_err(Error::io("syncing the replayed log"))?;
    }
    Ok(Replayed { pos, seq, mark })
}

/// The sync mark, when it is there and passes its CRC.
fn read_sync_mark(file: &dyn RawFile, len: u64) -> Result<Option<u64>> {
    let at = crate::format::SYNC_MARK_OFFSET;
    if len < at + 12 {
        return Ok(None);
    }
    let mut b = [0u8; 12];
    file.read_at(&mut b, at)
        .map_err(Error::io("reading the sync mark"))?;
    let seq = u64::from_le_bytes(b[..8].try_into().unwrap_or_default());
    let crc = u32::from_le_bytes(b[8..].try_into().unwrap_or_default());
    Ok((crc == masked_crc(&b[..8]) && seq > 0).then_some(seq))
}

fn map_or_read(file: &dyn RawFile, offset: u64, len: u64, what: &'static str) -> Result<Region> {
    match file.map(offset, len) {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Ok(Region::heap(read(file, offset, len, what)?)),
        Err(e) => Err(Error::io(what)(e)),
    }
}

fn load_peer_gen(file: &dyn RawFile, sb: &Superblock, opts: &Options) -> Result<(PeerGen, bool)> {
    let seg_ref: SegmentRef = sb.segments[PEERS as usize];
    let seg = map_or_read(
        file,
        seg_ref.offset,
        seg_ref.len,
        "mapping the peer segment",
    )?;
    if sb.version < 2 {
        return legacy_peer_gen(seg, seg_ref, sb, opts).map(|g| (g, true));
    }
    if sb.index.len > 0 {
        let index = map_or_read(
            file,
            sb.index.offset,
            sb.index.len,
            "mapping the peer index",
        )?;
        if let Ok(header) = index::Header::decode(&index)
            && header.segment_offset == seg_ref.offset
            && header.peer_count == seg_ref.count
        {
            return Ok((PeerGen::new(seg, index, header, seg_ref, sb.index), false));
        }
    }
    // Missing, stale or damaged: rebuild from the segment, which must then
    // pass its checksum (it is the only copy of the peers).
    if seg_ref.len == 0 && sb.index.len == 0 {
        let mut g = PeerGen::empty(opts.index_load);
        g.index_extent = sb.index;
        return Ok((g, false));
    }
    // A zero-length reference means there is no segment (FORMAT.md), so
    // there is no checksum to check: the rebuilt index is empty. (Earlier
    // builds wrote a stale index next to an emptied peer table.)
    if seg_ref.len > 0 && masked_crc(&seg) != seg_ref.crc {
        return Err(Error::corrupt(
            seg_ref.offset,
            "peer segment checksum mismatch",
        ));
    }
    Ok((
        PeerGen::rebuilt(seg, seg_ref, sb.index, opts.index_load)?,
        true,
    ))
}

/// A version 1 peer table, converted in memory: its entries carry no CRC
/// of their own, so the whole segment's CRC is checked first, then each
/// record is re-framed with one and a new index is built over them. A
/// writable open then writes both out through a checkpoint (the upgrade).
fn legacy_peer_gen(
    seg: Region,
    seg_ref: SegmentRef,
    sb: &Superblock,
    opts: &Options,
) -> Result<PeerGen> {
    if seg_ref.len > 0 && masked_crc(&seg) != seg_ref.crc {
        return Err(Error::corrupt(
            seg_ref.offset,
            "peer segment checksum mismatch",
        ));
    }
    let mut bytes = Vec::with_capacity(seg.len() + seg.len() / 8);
    for e in segment::legacy_peers(if seg_ref.len > 0 { &seg } else { &[] }) {
        let (_, rec) = e.map_err(|(at, e)| Error::corrupt(seg_ref.offset + at as u64, e.what))?;
        segment::put_peer(&mut bytes, rec);
    }
    PeerGen::rebuilt(Region::heap(bytes), seg_ref, sb.index, opts.index_load)
}

#[cfg(test)]
mod tests {
    use crate::Storage;
    use crate::engine::options::{Durability, Options};
    use crate::engine::store::Store;
    use crate::format::bucket::PEERS;
    use crate::format::superblock::{self, Superblock};
    use crate::format::{index, masked_crc};
    use crate::sys::io::MemFile;
    use crate::types::{Peer, PeerId};
    use std::sync::Arc;

    /// A sound store on disk has no hole in its mapped regions: open and
    /// a checkpoint map them (a region with a hole is read into memory
    /// instead, which would cost a large store its size in heap).
    #[test]
    fn a_sound_store_maps_its_regions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.peerlog");
        let mapped = |store: &Store| {
            let st = store.inner.state.read();
            let t = &st.peers.table;
            (t.seg.is_mapped(), t.index.is_mapped())
        };
        let store = Store::open(&path).unwrap();
        let bot = store.account("bot").unwrap();
        let peers: Vec<Peer> = (1..=5000).map(|i| Peer::user(i, i)).collect();
        bot.save_peers(&peers).unwrap();
        store.compact().unwrap();
        assert_eq!(mapped(&store), (true, true), "after a checkpoint");
        bot.save_peer(&Peer::user(9999, 1)).unwrap();
        drop(bot);
        store.close().unwrap();
        let store = Store::open(&path).unwrap();
        assert_eq!(mapped(&store), (true, true), "after open");
        let bot = store.account("bot").unwrap();
        assert_eq!(bot.access_hash(PeerId::user(77)).unwrap(), Some(77));
    }

    /// Regression (found by fuzzing): files written by earlier builds after
    /// the peer table was folded down to zero peers hold an index whose
    /// `segment_offset` is non-zero next to an all-zero peer segment
    /// reference. Open found the index stale, then failed the checksum of
    /// the absent segment. It must rebuild an empty index instead.
    #[test]
    fn stale_index_over_an_empty_peer_table_is_rebuilt() {
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
        a.delete_peer(PeerId::chat(1)).unwrap();
        drop((a, store));
        // Make the file look like the old writer's: the index names a
        // segment offset, the superblock's peer segment is all zero.
        let mut img = file.live();
        let sb = [0usize, 4096]
            .iter()
            .filter_map(|&at| {
                let slot: &[u8; superblock::SIZE] =
                    img[at..at + superblock::SIZE].try_into().ok()?;
                Superblock::decode(slot).ok()
            })
            .max_by_key(|sb| sb.generation)
            .unwrap();
        assert_eq!(sb.segments[PEERS as usize].len, 0);
        assert!(sb.index.len > 0);
        let at = sb.index.offset as usize;
        img[at + index::SEGMENT_OFFSET_OFFSET..at + index::SEGMENT_OFFSET_OFFSET + 8]
            .copy_from_slice(&(sb.index.offset + 4096).to_le_bytes());
        let crc = masked_crc(&img[at..at + index::HEADER_CRC_OFFSET]);
        img[at + index::HEADER_CRC_OFFSET..at + index::HEADER_CRC_OFFSET + 4]
            .copy_from_slice(&crc.to_le_bytes());

        let store = Store::open_backend(Arc::new(MemFile::from_bytes(img)), opts).unwrap();
        assert!(store.stats().index_rebuilt);
        assert!(store.verify().unwrap().is_ok());
        assert_eq!(store.account("a").unwrap().peer_count().unwrap(), 0);
    }
}
