//! Online backup: a consistent copy of a live store, taken while readers
//! and the writer go on ([`Store::backup_to`]).
//!
//! Copying the file as it is (`cp`) is not a backup: a checkpoint may
//! write new regions, flip the superblock and reuse freed space while the
//! copy runs, so the copy can name regions it does not hold, or hold
//! regions from two generations. A backup instead copies one generation:
//!
//! 1. Under the writer lock, for a moment (no I/O): the current
//!    superblock, the end of the log (every commit acknowledged so far
//!    lies before it), the next commit seq, and a pin.
//! 2. Without any lock: the regions that superblock names (bucket
//!    segments, peer segment, peer index) and the log up to the captured
//!    end are read with `pread` and written at the same offsets of a new
//!    file. Regions a checkpoint frees while a pin is alive are held
//!    ([`crate::engine::pins::Pins`]), not reused, so nothing a backup reads is rewritten under
//!    it; the writer only ever appends to the log past the captured end.
//! 3. The copy's superblock (the captured one, generation and all, with
//!    the whole copied log marked durable) goes into both of its places,
//!    the file is synced, opened read-only and verified, and its commit
//!    sequence compared with the captured one.
//! 4. Only then is it linked to the destination name, which never
//!    replaces a file there, and the directory is synced.
//!
//! The copy is written under `.<name>.backup-<pid>-<n>` in the
//! destination's directory with mode 0600. A crash at any point leaves
//! nothing at the destination, or a complete, synced, verified store; at
//! most a temporary file stays behind, which can be deleted.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::sys::staged::Staged;

use crate::format::superblock::FORMAT_VERSION;
use crate::io::{FileBackend, RawFile};
use crate::{Account, Error, Options, Pool, Result, Store};

/// What [`Store::backup_to`] copied.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupReport {
    /// The backup file.
    pub path: PathBuf,
    /// Its length (regions sit at the same offsets as in the store, so
    /// free space of the store is a hole in the copy).
    pub file_len: u64,
    /// Bytes copied (regions and log).
    pub bytes_copied: u64,
    /// The sequence number the next commit after the copy would get: the
    /// copy holds every commit below it.
    pub next_seq: u64,
    /// The checkpoint generation copied.
    pub generation: u64,
    /// Peers in the copy, as its verification counted them.
    pub peers: u64,
}

const CONTEXT: &str = "writing a backup";

fn io_at(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io_at(CONTEXT, path)(e)
}

/// Copies `len` bytes at `offset` from the store to the same offset of
/// the backup, through a bounded buffer.
fn copy_range(
    from: &dyn RawFile,
    to: &File,
    tmp: &Path,
    offset: u64,
    len: u64,
    buf: &mut [u8],
) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let mut at = 0;
    while at < len {
        let n = buf.len().min((len - at) as usize);
        from.read_at(&mut buf[..n], offset + at)
            .map_err(Error::io("reading the store for a backup"))?;
        to.write_all_at(&buf[..n], offset + at)
            .map_err(io_at(tmp))?;
        at += n as u64;
    }
    Ok(())
}

impl Store {
    /// Writes a consistent copy of this store to `path`, which must not
    /// exist, while readers and the writer go on, and returns when the
    /// copy is durable, verified and in place.
    ///
    /// The copy holds every commit acknowledged before the call began
    /// (and possibly some made during it). The writer waits only while
    /// the current superblock and log end are noted, never for the copy;
    /// regions a checkpoint frees meanwhile are not reused until the copy
    /// is done (the file may grow by them for that long).
    ///
    /// The file is made under a temporary name in `path`'s directory,
    /// mode 0600, synced, opened read-only and verified, then linked to
    /// `path` (never replacing a file there) and the directory synced: a
    /// crash leaves nothing at `path` or a complete store.
    ///
    /// A read-only handle on a file of an older format version (which it
    /// reads without upgrading) gets a copy of the whole file as it is:
    /// its shared lock keeps writers out, so nothing changes meanwhile.
    ///
    /// Errors: [`Error::Invalid`] when `path` exists or when called inside
    /// a write closure; [`Error::Io`] naming
    /// `path`; [`Error::Poisoned`] after a failed write or fsync of this
    /// handle (reopen, then back up); [`Error::Corrupt`] if the copy fails
    /// its verification (nothing is left at `path` then).
    pub fn backup_to(&self, path: impl AsRef<Path>) -> Result<BackupReport> {
        self.backup_with(path.as_ref(), &mut || {})
    }

    /// [`Store::backup_to`], running `after_pin` once the generation is
    /// pinned and before its regions are read (tests put checkpoints
    /// there).
    fn backup_with(&self, path: &Path, after_pin: &mut dyn FnMut()) -> Result<BackupReport> {
        self.inner.not_in_write("Store::backup_to")?;
        if std::fs::symlink_metadata(path).is_ok() {
            return Err(Error::Invalid(format!(
                "{} exists; a backup never replaces a file: choose a new name or remove it first",
                path.display()
            )));
        }
        if path.file_name().is_none() {
            return Err(Error::Invalid(format!(
                "{} does not name a file",
                path.display()
            )));
        }

        // The short step: what to copy, and a pin on it.
        let (sb, log_end, next_seq, read_only, pin) = {
            let mut w = self.inner.lock_writer();
            if let Some(first) = &w.poisoned {
                return Err(Error::Poisoned {
                    first: first.clone(),
                });
            }
            (w.sb, w.log_pos, w.next_seq, w.read_only, w.pins.pin())
        };
        // An older format is read as it is, never upgraded, by a read-only
        // handle only (a writable open upgrades it at once). Its shared
        // lock keeps every writer out, so the file does not change: it is
        // copied whole, superblocks included.
        let whole = sb.version != FORMAT_VERSION;
        if whole && !read_only {
            return Err(Error::Invalid(format!(
                "a writable handle on a format version {} store; reopen it, which upgrades it, then back it up",
                sb.version
            )));
        }

        after_pin();
        let (temp, file) = Staged::beside(path, "backup").map_err(io_at(path))?;
        let tmp = temp.path();

        let mut copied = 0u64;
        file.set_len(sb.file_len).map_err(io_at(tmp))?;
        let mut buf = vec![0u8; 1 << 20];
        let mut ranges: Vec<(u64, u64)> = sb
            .segments
            .iter()
            .filter(|s| s.len > 0)
            .map(|s| (s.offset, s.len))
            .collect();
        if sb.index.len > 0 {
            ranges.push((sb.index.offset, sb.index.len));
        }
        ranges.push((sb.log.offset, log_end - sb.log.offset));
        if whole {
            ranges = vec![(0, sb.file_len)];
        }
        for (offset, len) in ranges {
            copy_range(&*self.inner.file, &file, tmp, offset, len, &mut buf)?;
            copied += len;
        }
        // Every region is read: the generation may go.
        drop(pin);

        let mut copy_sb = sb;
        // Everything in the copy's log is synced before its superblock
        // names it: damage there is corruption, never a torn tail.
        copy_sb.log_durable = log_end - sb.log.offset;
        file.sync_all().map_err(io_at(tmp))?;
        if !whole {
            let backend = FileBackend::new(file.try_clone().map_err(io_at(tmp))?);
            crate::engine::open::write_superblock(&backend, &copy_sb).map_err(io_at(tmp))?;
            backend.sync().map_err(io_at(tmp))?;
        }
        drop(file);

        let peers = check_copy(tmp, next_seq, sb.generation)?;

        // Into place, never over a file that appeared meanwhile.
        if !temp.place(path, false).map_err(io_at(path))? {
            return Err(Error::Invalid(format!(
                "{} was created by someone else during the backup; the backup was not put there",
                path.display()
            )));
        }
        Ok(BackupReport {
            path: path.to_path_buf(),
            file_len: sb.file_len,
            bytes_copied: copied,
            next_seq,
            generation: sb.generation,
            peers,
        })
    }
}

/// Opens the copy read-only, verifies it, and checks that it replays to
/// exactly the captured commit sequence. Returns its peer count.
fn check_copy(tmp: &Path, next_seq: u64, generation: u64) -> Result<u64> {
    let opts = Options {
        read_only: true,
        create: false,
        ..Options::default()
    };
    let bad = |what: String| Error::Corrupt { offset: 0, what };
    let copy = Store::open_with(tmp, opts).map_err(|e| {
        bad(format!(
            "the backup copy {} does not open ({e}); nothing was put at the destination",
            tmp.display()
        ))
    })?;
    let report = copy.verify()?;
    if !report.is_ok() {
        return Err(bad(format!(
            "the backup copy failed verification, nothing was put at the destination: {report}"
        )));
    }
    let (seq, sb_gen) = {
        let w = copy.inner.lock_writer();
        (w.next_seq, w.sb.generation)
    };
    if seq != next_seq || sb_gen != generation {
        return Err(bad(format!(
            "the backup copy replays to commit {seq} of generation {sb_gen}, not {next_seq} of {generation}; nothing was put at the destination"
        )));
    }
    Ok(report.peers)
}

impl Account {
    /// [`Store::backup_to`] of the store this account lives in (the whole
    /// store, every account).
    pub fn backup_to(&self, path: impl AsRef<Path>) -> Result<BackupReport> {
        self.store().backup_to(path)
    }
}

impl Pool {
    /// [`Store::backup_to`] of the store of `key` (opened if it is not),
    /// while the pool's other callers go on using it. A memory pool's
    /// store is copied to a file too.
    pub fn backup_to<K: crate::AsPoolKey + ?Sized>(
        &self,
        key: &K,
        path: impl AsRef<Path>,
    ) -> Result<BackupReport> {
        self.get(key)?.store().backup_to(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Durability, Peer, PeerId, Storage};

    /// The hazard made certain: between the pin and the copy, the writer
    /// runs compactions and fills the log many times over, so every
    /// region of the pinned generation is freed, and would be reused and
    /// overwritten without the pin. The copy still holds exactly the
    /// pinned state.
    #[test]
    fn checkpoints_between_pin_and_copy_do_not_touch_the_pinned_regions() {
        let dir = tempfile::tempdir().unwrap();
        let opts = Options {
            durability: Durability::None,
            log_size: 16 << 10,
            peer_fold_min: 64,
            ..Options::default()
        };
        let store = Store::open_with(dir.path().join("s.peerlog"), opts).unwrap();
        let acct = store.account("a").unwrap();
        let peers = |v: i64| -> Vec<Peer> {
            (1..=3000)
                .map(|i| Peer::user(i, i * 1000 + v).with_username(format!("u{i}_{v}")))
                .collect()
        };
        acct.save_peers(&peers(1)).unwrap();
        store.compact().unwrap();
        acct.set_meta("v", b"1").unwrap();
        let to = dir.path().join("b.peerlog");
        let writer = acct.clone();
        store
            .backup_with(&to, &mut || {
                for v in 2..6 {
                    writer.save_peers(&peers(v)).unwrap();
                    writer.set_meta("v", &[v as u8; 3000]).unwrap();
                    writer.store().compact().unwrap();
                }
            })
            .unwrap();
        let copy = Store::open(&to).unwrap();
        let a = copy.account("a").unwrap();
        assert_eq!(a.meta("v").unwrap(), Some(b"1".to_vec()));
        for i in (1..=3000).step_by(7) {
            assert_eq!(a.access_hash(PeerId::user(i)).unwrap(), Some(i * 1000 + 1));
        }
        assert_eq!(
            a.resolve_username("u2999_1").unwrap(),
            Some((PeerId::user(2999), Some(2_999_001)))
        );
        assert_eq!(acct.access_hash(PeerId::user(7)).unwrap(), Some(7005));
    }
}
