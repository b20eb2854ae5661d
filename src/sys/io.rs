//! Where the store's bytes live. The engine does all file I/O through
//! [`RawFile`], so the same code runs on a real file, in memory, and on a
//! crash simulator that keeps what was synced apart from what was only
//! written.

pub use crate::sys::mmap::Region;
use parking_lot::Mutex;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// Positional file I/O: the whole interface the engine needs.
#[allow(
    clippy::len_without_is_empty,
    reason = "mirrors File; an empty file is a valid state"
)]
pub trait RawFile: Send + Sync + std::fmt::Debug {
    /// Current length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Fills `buf` from `offset`; reading past the end is an error.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset`, growing the file if needed.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Truncates or extends (with zeros) to `len`.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes every earlier write and length change durable.
    fn sync(&self) -> io::Result<()>;
    /// Maps an immutable region, where the backend can.
    fn map(&self, offset: u64, len: u64) -> io::Result<Option<Region>> {
        let _ = (offset, len);
        Ok(None)
    }
}

/// A real file.
#[derive(Debug)]
pub struct FileBackend {
    file: File,
    /// Marks the file open in this process while the backend lives.
    _mark: Option<OpenMark>,
}

impl FileBackend {
    /// Wraps an open file (read-write for a writable store).
    pub fn new(file: File) -> Self {
        Self { file, _mark: None }
    }

    /// [`FileBackend::new`] for a file opened by path, which stays marked
    /// open in this process while the backend lives.
    pub(crate) fn with_mark(file: File, mark: Option<OpenMark>) -> Self {
        Self { file, _mark: mark }
    }
    /// The file.
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl RawFile for FileBackend {
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
    fn map(&self, offset: u64, len: u64) -> io::Result<Option<Region>> {
        crate::sys::mmap::map(&self.file, offset, len).map(Some)
    }
}

/// One write or length change not yet made durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    /// Bytes written at an offset.
    Write {
        /// Offset.
        offset: u64,
        /// Bytes.
        data: Vec<u8>,
    },
    /// A length change.
    SetLen(u64),
}

/// What a simulated power loss does with one pending operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// It reached the disk.
    Keep,
    /// It was lost.
    Drop,
    /// Only its first `n` bytes reached the disk (a torn write).
    Tear(usize),
}

/// Which operation an injected failure hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOn {
    /// `write_at`.
    Write,
    /// `sync`.
    Sync,
    /// `set_len`.
    SetLen,
}

#[derive(Debug, Default)]
struct MemState {
    live: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<Pending>,
    writes: u64,
    syncs: u64,
    fault: Option<(FaultOn, u64, io::ErrorKind)>,
    /// Once a fault fired, every later operation fails too (a dead disk).
    sticky: bool,
    dead: bool,
}

/// An in-memory file that also simulates crashes and I/O errors.
///
/// Clones share the same bytes, so a test can keep a handle while a store
/// owns another, then take [`MemFile::durable`] or
/// [`MemFile::crash_image`] and open a new store on it.
#[derive(Debug, Clone, Default)]
pub struct MemFile {
    inner: Arc<Mutex<MemState>>,
}

fn apply(img: &mut Vec<u8>, op: &Pending, fate: Fate) {
    match (op, fate) {
        (_, Fate::Drop) => {}
        (Pending::SetLen(n), _) => img.resize(*n as usize, 0),
        (Pending::Write { offset, data }, f) => {
            let n = match f {
                Fate::Tear(n) => n.min(data.len()),
                _ => data.len(),
            };
            let end = *offset as usize + n;
            if img.len() < end {
                img.resize(end, 0);
            }
            img[*offset as usize..end].copy_from_slice(&data[..n]);
        }
    }
}

impl MemFile {
    /// An empty file.
    pub fn new() -> Self {
        Self::default()
    }
    /// A file holding `bytes`, all of them durable.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        let f = Self::new();
        {
            let mut s = f.inner.lock();
            s.live = bytes.clone();
            s.durable = bytes;
        }
        f
    }
    /// Everything written (what survives a process crash).
    pub fn live(&self) -> Vec<u8> {
        self.inner.lock().live.clone()
    }
    /// Only what was synced (power loss that dropped every pending write).
    pub fn durable(&self) -> Vec<u8> {
        self.inner.lock().durable.clone()
    }
    /// Operations written since the last sync, oldest first.
    pub fn pending(&self) -> Vec<Pending> {
        self.inner.lock().pending.clone()
    }
    /// The durable image plus each pending operation according to `fate`.
    pub fn crash_image(&self, mut fate: impl FnMut(usize, &Pending) -> Fate) -> Vec<u8> {
        let s = self.inner.lock();
        let mut img = s.durable.clone();
        for (i, op) in s.pending.iter().enumerate() {
            apply(&mut img, op, fate(i, op));
        }
        img
    }
    /// Number of `write_at` calls so far.
    pub fn writes(&self) -> u64 {
        self.inner.lock().writes
    }
    /// Number of `sync` calls so far.
    pub fn syncs(&self) -> u64 {
        self.inner.lock().syncs
    }
    /// Makes the `n`-th next call of `on` (0 = the very next) fail with
    /// `kind`; with `sticky`, every operation after it fails as well.
    pub fn fail(&self, on: FaultOn, n: u64, kind: io::ErrorKind, sticky: bool) {
        let mut s = self.inner.lock();
        s.fault = Some((on, n, kind));
        s.sticky = sticky;
        s.dead = false;
    }
    /// Removes any injected failure.
    pub fn heal(&self) {
        let mut s = self.inner.lock();
        s.fault = None;
        s.dead = false;
    }

    fn check(&self, s: &mut MemState, on: FaultOn) -> io::Result<()> {
        if s.dead {
            return Err(io::Error::other("injected: device failed earlier"));
        }
        if let Some((f, n, kind)) = s.fault
            && f == on
        {
            if n == 0 {
                s.fault = None;
                s.dead = s.sticky;
                return Err(io::Error::new(kind, "injected failure"));
            }
            s.fault = Some((f, n - 1, kind));
        }
        Ok(())
    }
}

impl RawFile for MemFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.inner.lock().live.len() as u64)
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let s = self.inner.lock();
        let end = (offset as usize)
            .checked_add(buf.len())
            .filter(|&e| e <= s.live.len());
        let Some(end) = end else {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past end",
            ));
        };
        buf.copy_from_slice(&s.live[offset as usize..end]);
        Ok(())
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut s = self.inner.lock();
        self.check(&mut s, FaultOn::Write)?;
        s.writes += 1;
        let op = Pending::Write {
            offset,
            data: buf.to_vec(),
        };
        apply(&mut s.live, &op, Fate::Keep);
        s.pending.push(op);
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut s = self.inner.lock();
        self.check(&mut s, FaultOn::SetLen)?;
        let op = Pending::SetLen(len);
        apply(&mut s.live, &op, Fate::Keep);
        s.pending.push(op);
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        let mut s = self.inner.lock();
        self.check(&mut s, FaultOn::Sync)?;
        s.syncs += 1;
        s.durable = s.live.clone();
        s.pending.clear();
        Ok(())
    }
}

/// The files this process holds open as stores, by (device, inode), so
/// that [`crate::Error::Locked`] can say when the holder is this process. A
/// multiset: read-only handles may share a file.
static OPEN_FILES: std::sync::Mutex<Vec<(u64, u64)>> = std::sync::Mutex::new(Vec::new());

/// A store file's entry in [`OPEN_FILES`], removed when dropped (with the
/// file: [`FileBackend`] keeps it).
#[derive(Debug)]
pub(crate) struct OpenMark((u64, u64));

impl OpenMark {
    pub(crate) fn new(file: &File) -> Option<OpenMark> {
        use std::os::unix::fs::MetadataExt;
        let m = file.metadata().ok()?;
        let id = (m.dev(), m.ino());
        OPEN_FILES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(id);
        Some(OpenMark(id))
    }
}

impl Drop for OpenMark {
    fn drop(&mut self) {
        let mut open = OPEN_FILES.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = open.iter().position(|&id| id == self.0) {
            open.swap_remove(i);
        }
    }
}

pub(crate) fn open_in_this_process(file: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = file.metadata() else {
        return false;
    };
    OPEN_FILES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&(m.dev(), m.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_images() {
        let f = MemFile::new();
        f.write_at(b"abcd", 0).unwrap();
        f.sync().unwrap();
        f.write_at(b"XY", 1).unwrap();
        f.write_at(b"zz", 4).unwrap();
        assert_eq!(f.live(), b"aXYdzz");
        assert_eq!(f.durable(), b"abcd");
        assert_eq!(
            f.crash_image(|i, _| if i == 0 { Fate::Tear(1) } else { Fate::Drop }),
            b"aXcd"
        );
        f.fail(FaultOn::Sync, 0, io::ErrorKind::Other, false);
        assert!(f.sync().is_err());
        assert!(f.sync().is_ok());
        f.fail(FaultOn::Write, 1, io::ErrorKind::StorageFull, true);
        f.write_at(b"1", 0).unwrap();
        assert_eq!(
            f.write_at(b"2", 0).unwrap_err().kind(),
            io::ErrorKind::StorageFull
        );
        assert!(f.sync().is_err(), "sticky failure");
    }
}
