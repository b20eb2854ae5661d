//! A file written under a temporary name beside its destination, then put
//! in place whole: what every new file peerlog writes goes through (a new
//! store, a backup, an exported session file), so that a crash leaves
//! either nothing at the destination or the whole file, never a part of it.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Temporary names taken by this process: with the pid, unique on the
/// machine.
static SEQ: AtomicU64 = AtomicU64::new(0);

/// A new file, mode 0600, under the temporary name
/// `.<name>.<tag>-<pid>-<n>` in the destination's directory (so that it
/// can be linked or renamed into place on the same filesystem). Removed
/// when dropped unless [`Staged::place`] put it in place.
#[derive(Debug)]
pub(crate) struct Staged {
    path: PathBuf,
    dir: PathBuf,
    placed: bool,
}

impl Staged {
    /// Creates the file beside `dest`, open for reading and writing. It is
    /// created new (`O_EXCL`): a file or symlink already at a temporary
    /// name is never followed or reused, the next name is tried instead.
    pub fn beside(dest: &Path, tag: &str) -> io::Result<(Staged, File)> {
        let name = dest
            .file_name()
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        let dir = match dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut last = io::Error::from(io::ErrorKind::AlreadyExists);
        for _ in 0..100 {
            let n = SEQ.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!(
                ".{}.{tag}-{}-{n}",
                name.to_string_lossy(),
                std::process::id()
            ));
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(file) => {
                    let staged = Staged {
                        path,
                        dir,
                        placed: false,
                    };
                    return Ok((staged, file));
                }
                // Left behind by a process that died (pids come back).
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    /// The temporary name.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Puts the file, written and synced by the caller, at `dest`, removes
    /// the temporary name and syncs the directory (where it can be opened),
    /// so the new entry is durable. Without `replace` it never replaces a file at `dest`: a
    /// hard link, which fails if one is there (`Ok(false)`, the temporary
    /// file removed), or where the filesystem has no hard links (EPERM:
    /// FAT and the like) a rename after checking that `dest` is free.
    /// With `replace`, a rename over whatever is at `dest`.
    pub fn place(mut self, dest: &Path, replace: bool) -> io::Result<bool> {
        let linked = if replace {
            std::fs::rename(&self.path, dest)?;
            false
        } else {
            match std::fs::hard_link(&self.path, dest) {
                Ok(()) => true,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Unsupported || e.raw_os_error() == Some(1) => {
                    if std::fs::symlink_metadata(dest).is_ok() {
                        return Ok(false);
                    }
                    std::fs::rename(&self.path, dest)?;
                    false
                }
                Err(e) => return Err(e),
            }
        };
        self.placed = true;
        if linked {
            // A second name of the placed file; failing to remove it does
            // not undo the placing.
            let _ = std::fs::remove_file(&self.path);
        }
        // A directory this process may write but not read (mode 0300)
        // cannot be opened to sync: the entry is then as durable as the
        // filesystem makes it, as before this helper; a failed sync is an
        // error.
        if let Ok(d) = File::open(&self.dir) {
            d.sync_all()?;
        }
        Ok(true)
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.placed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn placed_whole_never_over_a_file_and_gone_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        let (s, mut f) = Staged::beside(&dest, "tmp").unwrap();
        assert_eq!(f.metadata().unwrap().permissions().mode() & 0o777, 0o600);
        f.write_all(b"one").unwrap();
        assert!(s.place(&dest, false).unwrap());
        assert_eq!(std::fs::read(&dest).unwrap(), b"one");

        // A file there: not replaced, and the temporary name is gone.
        let (s, mut f) = Staged::beside(&dest, "tmp").unwrap();
        f.write_all(b"two").unwrap();
        assert!(!s.place(&dest, false).unwrap());
        assert_eq!(std::fs::read(&dest).unwrap(), b"one");

        // Replacing.
        let (s, mut f) = Staged::beside(&dest, "tmp").unwrap();
        f.write_all(b"three").unwrap();
        assert!(s.place(&dest, true).unwrap());
        assert_eq!(std::fs::read(&dest).unwrap(), b"three");

        // Dropped unplaced.
        let (s, _f) = Staged::beside(&dest, "tmp").unwrap();
        let tmp = s.path().to_path_buf();
        assert!(tmp.exists());
        drop(s);
        assert!(!tmp.exists());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["out"]);
    }

    /// A symlink planted at the next temporary name is never followed.
    #[test]
    fn a_planted_symlink_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        let target = dir.path().join("target");
        let n = SEQ.load(Ordering::Relaxed);
        for k in n..n + 4 {
            let name = format!(".out.tmp-{}-{k}", std::process::id());
            let _ = std::os::unix::fs::symlink(&target, dir.path().join(name));
        }
        let (s, mut f) = Staged::beside(&dest, "tmp").unwrap();
        f.write_all(b"secret").unwrap();
        assert!(s.place(&dest, false).unwrap());
        assert!(!target.exists());
        assert_eq!(std::fs::read(&dest).unwrap(), b"secret");
    }
}
