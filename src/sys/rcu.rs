//! A read-mostly cell whose readers take no lock and execute no atomic
//! read-modify-write or memory fence (read-copy-update).
//!
//! Why: a peer lookup is a few dozen nanoseconds of work. A reader-writer
//! lock adds two locked instructions to each, and those are full barriers
//! that stop consecutive lookups from overlapping their cache misses.
//!
//! How: every thread that reads a cell owns a [`Slot`] holding a sequence
//! number, odd while the thread is inside a read. A reader bumps it with
//! plain stores around its read. The writer replaces the value with one
//! atomic swap and keeps the old value until every slot that was odd after
//! the swap has moved on; only then is the old value dropped.
//!
//! The reader's slot store and its load of the pointer may be reordered by
//! the CPU (store-load reordering). On Linux the writer closes that window
//! with `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`, which executes a
//! full barrier on every CPU running this process, so readers need only a
//! compiler fence (the scheme of liburcu's "memb" flavour and folly's
//! asymmetric fences). Where membarrier is unavailable, readers use a real
//! `SeqCst` fence instead.
//!
//! This is one of the crate's two `unsafe` modules (with `mmap`): the
//! reader dereferences the raw pointer, and the writer frees values.
//!
//! # Why neither Miri nor loom checks this module
//!
//! The argument this module rests on is the asymmetric fence: a reader's
//! `compiler_fence` is made a full barrier by the writer's
//! `membarrier(PRIVATE_EXPEDITED)`, which interrupts every CPU running the
//! process. Neither tool can model that, so neither can check the path
//! that runs in production:
//! - Miri does not implement the `membarrier` syscall (`libc::syscall`
//!   with an unknown number stops the interpreter), and it has no notion
//!   of a fence executed on another thread's behalf. Under Miri only the
//!   fallback could run (readers with a real `SeqCst` fence, `register`
//!   answering false), and CI runs on stable, which has no Miri.
//! - loom replaces `std::sync::atomic`, `thread_local!` and the locks
//!   with its own types (a `cfg(loom)` copy of the module), and explores
//!   interleavings under the C++ memory model, which has no membarrier
//!   either: the same fallback, in a copy, with `parking_lot` swapped for
//!   loom's mutexes.
//!
//! A check of the fallback would test code that differs from the shipped
//! path in exactly the place that needs checking, so it would not be worth
//! its `cfg` plumbing. What checks this module instead: the argument above
//! and in each `// SAFETY:` comment; the scheme's provenance (liburcu's
//! "memb" flavour, folly's `asymmetricLightBarrier`); and the stress tests
//! below, run by CI (`cargo test`) on real hardware, with membarrier
//! where the host allows it (a seccomp filter may refuse it: then the
//! fallback runs). `readers_never_see_a_freed_value_under_churn` replaces
//! values 20,000 times under three looping readers; its values clear an
//! `alive` flag when dropped, so a read of a dropped value is likely (not
//! certain: the memory may be reused) to fail an assertion.

use parking_lot::Mutex;
use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering, compiler_fence, fence};

/// One thread's read sequence for one cell (its own cache line, so readers
/// on different cores never share a line).
#[repr(align(64))]
#[derive(Debug, Default)]
struct Slot {
    /// Odd while the owning thread is inside a read. Written only by the
    /// owning thread.
    seq: AtomicU64,
}

/// A value replaced whose readers may still be reading it.
struct Retired<T> {
    /// Held only to be dropped once `busy` is empty.
    _value: Box<T>,
    /// Slots that may still read the value, with the sequence each must
    /// reach first (the end of the read it was in).
    busy: Vec<(Arc<Slot>, u64)>,
}

/// The cell. `T` is dropped on the writer's thread.
pub(crate) struct Rcu<T> {
    current: AtomicPtr<T>,
    id: u64,
    slots: Mutex<Vec<Arc<Slot>>>,
    retired: Mutex<Vec<Retired<T>>>,
    /// Readers without a thread-local slot (thread teardown, nested reads)
    /// take this lock; the writer frees nothing while it is held.
    slow: parking_lot::RwLock<()>,
    /// Readers on other threads get `&T` (needs `T: Sync`), and values are
    /// dropped on the writer's thread (needs `T: Send`, via `retired`).
    _shares: std::marker::PhantomData<T>,
}

impl<T> std::fmt::Debug for Rcu<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rcu")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// This thread's slots, by cell id.
struct Owned(RefCell<Vec<(u64, Arc<Slot>)>>);

impl Drop for Owned {
    fn drop(&mut self) {
        // LAST must not outlive the slot it points at.
        let _ = LAST.try_with(|l| l.set(NONE));
    }
}

const NONE: (u64, *const Slot) = (0, std::ptr::null());

thread_local! {
    static SLOTS: Owned = const { Owned(RefCell::new(Vec::new())) };
    /// The cell this thread read last and its slot, owned by SLOTS: a
    /// plain thread-local without destructor, so the fast path is one load.
    static LAST: Cell<(u64, *const Slot)> = const { Cell::new(NONE) };
}

impl<T> Rcu<T> {
    pub fn new(value: T) -> Rcu<T> {
        asymmetric::init();
        Rcu {
            current: AtomicPtr::new(Box::into_raw(Box::new(value))),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            slots: Mutex::new(Vec::new()),
            retired: Mutex::new(Vec::new()),
            slow: parking_lot::RwLock::new(()),
            _shares: std::marker::PhantomData,
        }
    }

    /// Runs `f` on the current value. `f` must not read this cell again.
    #[inline(always)]
    pub fn read<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        let (id, slot) = LAST.with(Cell::get);
        if id == self.id {
            // SAFETY: LAST names a slot owned by this thread's SLOTS. SLOTS
            // drops a slot only when its cell is gone (ids are never reused,
            // so `id` would not match) or when SLOTS itself is dropped,
            // which resets LAST first.
            return self.read_in(unsafe { &*slot }, f);
        }
        self.read_other(f)
    }

    /// The first read of this cell by this thread since it read another.
    #[cold]
    fn read_other<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        let found = SLOTS.try_with(|slots| {
            let mut slots = slots.0.try_borrow_mut().ok()?;
            let slot = self.register(&mut slots);
            LAST.with(|l| l.set((self.id, slot)));
            Some(slot)
        });
        match found {
            // SAFETY: as in `read`: owned by SLOTS, which is alive.
            Ok(Some(slot)) => self.read_in(unsafe { &*slot }, f),
            _ => self.read_slow(f),
        }
    }

    #[inline(always)]
    fn read_in<R>(&self, slot: &Slot, f: impl FnOnce(&T) -> R) -> R {
        let seq = slot.seq.load(Ordering::Relaxed);
        // Odd: a nested read of the same cell, which the outer one
        // protects; it leaves the sequence alone.
        let outer = seq & 1 == 0;
        if outer {
            slot.seq.store(seq + 1, Ordering::Relaxed);
            asymmetric::light();
        }
        struct Leave<'a>(&'a Slot, u64, bool);
        impl Drop for Leave<'_> {
            #[inline(always)]
            fn drop(&mut self) {
                if self.2 {
                    self.0.seq.store(self.1 + 2, Ordering::Release);
                }
            }
        }
        let _leave = Leave(slot, seq, outer);
        let p = self.current.load(Ordering::Acquire);
        // SAFETY: `p` came from `Box::into_raw` and is freed only after
        // `replace` has seen this slot leave the read it is in now (odd
        // sequence, published before the load above by `light` plus the
        // writer's `heavy`), see `reclaim`; a nested read is inside the
        // outer one's. `f` is called from this one place so that the
        // compiler inlines it into the caller's loop.
        f(unsafe { &*p })
    }

    /// A read without a thread-local slot (thread teardown, or a read
    /// nested in the registration of another).
    #[cold]
    fn read_slow<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        let _g = self.slow.read();
        // SAFETY: `reclaim` frees nothing while a slow reader holds `slow`.
        f(unsafe { &*self.current.load(Ordering::Acquire) })
    }

    /// This thread's slot for the cell, created and registered on first
    /// use; drops the thread's slots of dropped cells.
    fn register(&self, slots: &mut Vec<(u64, Arc<Slot>)>) -> *const Slot {
        if let Some((_, s)) = slots.iter().find(|(id, _)| *id == self.id) {
            return Arc::as_ptr(s);
        }
        // A slot only this thread still holds belongs to a dropped cell.
        slots.retain(|(_, s)| Arc::strong_count(s) > 1);
        let slot = Arc::new(Slot::default());
        let mut all = self.slots.lock();
        all.retain(|s| Arc::strong_count(s) > 1 || s.seq.load(Ordering::Relaxed) & 1 == 1);
        all.push(slot.clone());
        drop(all);
        let p = Arc::as_ptr(&slot);
        slots.push((self.id, slot));
        p
    }

    /// The current value, for the writer (who alone replaces it).
    pub fn writer_view(&self) -> &T {
        // SAFETY: only the writer replaces or frees values, and the caller
        // is the writer, so the value lives at least as long as this borrow
        // of `self` is not used to call `replace`.
        unsafe { &*self.current.load(Ordering::Acquire) }
    }

    /// Publishes `value`; the old one is dropped once no reader can see it
    /// (maybe later, during a following `replace` or `reclaim`). Only one
    /// thread may write at a time (the store's writer lock).
    pub fn replace(&self, value: T) {
        let old = self
            .current
            .swap(Box::into_raw(Box::new(value)), Ordering::AcqRel);
        // With the barrier, a slot showing an even sequence now is outside
        // any read, and its next read loads the new pointer. Without it (it
        // cannot fail once registered, but if it did) an even slot might be
        // in a read whose first store is not visible yet: wait for that
        // read to end too.
        let ordered = asymmetric::heavy();
        let busy = self
            .slots
            .lock()
            .iter()
            .filter_map(|s| {
                let seq = s.seq.load(Ordering::Acquire);
                match (seq & 1 == 1, ordered) {
                    (true, _) => Some((s.clone(), seq + 1)),
                    (false, true) => None,
                    (false, false) => Some((s.clone(), seq + 2)),
                }
            })
            .collect();
        self.retired.lock().push(Retired {
            // SAFETY: `old` came from `Box::into_raw` and was swapped out,
            // so this is the only owner.
            _value: unsafe { Box::from_raw(old) },
            busy,
        });
        self.reclaim();
    }

    /// Drops retired values that no reader can still see.
    pub fn reclaim(&self) {
        let mut retired = self.retired.lock();
        if retired.is_empty() {
            return;
        }
        let Some(_no_slow) = self.slow.try_write() else {
            return;
        };
        retired.retain(|r| {
            r.busy
                .iter()
                .any(|(s, until)| s.seq.load(Ordering::Acquire) < *until)
        });
    }

    /// Values replaced but not yet dropped (tests).
    #[cfg(test)]
    fn pending(&self) -> usize {
        self.retired.lock().len()
    }
}

impl<T> Drop for Rcu<T> {
    fn drop(&mut self) {
        // No reader can exist: they all borrow the cell.
        // SAFETY: the pointer came from `Box::into_raw` and is owned here.
        drop(unsafe { Box::from_raw(*self.current.get_mut()) });
    }
}

/// Light (reader) and heavy (writer) fences that together order a
/// reader's slot store before its pointer load, as seen by the writer.
mod asymmetric {
    use super::*;

    /// Whether the process is registered for expedited membarrier.
    static MEMBARRIER: AtomicBool = AtomicBool::new(false);
    static INIT: std::sync::Once = std::sync::Once::new();

    /// Registers for membarrier (once per process), before any reader of
    /// any cell can run: light() must agree with heavy() from the start.
    pub fn init() {
        INIT.call_once(|| MEMBARRIER.store(register(), Ordering::SeqCst));
    }

    #[inline]
    pub fn light() {
        if MEMBARRIER.load(Ordering::Relaxed) {
            compiler_fence(Ordering::SeqCst);
        } else {
            fence(Ordering::SeqCst);
        }
    }

    /// A full fence here; with membarrier also on every other thread of
    /// the process. Returns whether readers' light fences are ordered by it.
    pub fn heavy() -> bool {
        fence(Ordering::SeqCst);
        !MEMBARRIER.load(Ordering::Relaxed) || barrier()
    }

    #[cfg(target_os = "linux")]
    const QUERY: libc::c_long = 0;
    #[cfg(target_os = "linux")]
    const PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
    #[cfg(target_os = "linux")]
    const REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

    #[cfg(target_os = "linux")]
    fn membarrier(cmd: libc::c_long) -> libc::c_long {
        // SAFETY: membarrier takes integer arguments only and touches no
        // memory of ours.
        unsafe {
            libc::syscall(
                libc::SYS_membarrier,
                cmd,
                0 as libc::c_long,
                0 as libc::c_long,
            )
        }
    }

    #[cfg(target_os = "linux")]
    fn register() -> bool {
        let cmds = membarrier(QUERY);
        cmds >= 0
            && cmds & PRIVATE_EXPEDITED != 0
            && membarrier(REGISTER_PRIVATE_EXPEDITED) == 0
            && membarrier(PRIVATE_EXPEDITED) == 0
    }

    #[cfg(target_os = "linux")]
    fn barrier() -> bool {
        // Registered at init, and init tried one barrier: this does not fail.
        membarrier(PRIVATE_EXPEDITED) == 0
    }

    #[cfg(not(target_os = "linux"))]
    fn register() -> bool {
        false
    }

    #[cfg(not(target_os = "linux"))]
    fn barrier() -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts live values; a value checks it was not dropped while read.
    struct Probe {
        live: Arc<AtomicUsize>,
        alive: AtomicBool,
        n: u64,
    }
    impl Probe {
        fn new(live: &Arc<AtomicUsize>, n: u64) -> Probe {
            live.fetch_add(1, Ordering::SeqCst);
            Probe {
                live: live.clone(),
                alive: AtomicBool::new(true),
                n,
            }
        }
    }
    impl Drop for Probe {
        fn drop(&mut self) {
            self.alive.store(false, Ordering::SeqCst);
            self.live.fetch_sub(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn replace_frees_when_no_reader() {
        let live = Arc::new(AtomicUsize::new(0));
        let cell = Rcu::new(Probe::new(&live, 0));
        assert_eq!(cell.read(|p| p.n), 0);
        for n in 1..100 {
            cell.replace(Probe::new(&live, n));
            assert_eq!(cell.read(|p| p.n), n);
        }
        assert_eq!(cell.pending(), 0);
        assert_eq!(live.load(Ordering::SeqCst), 1);
        drop(cell);
        assert_eq!(live.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn value_outlives_a_read_in_progress() {
        let live = Arc::new(AtomicUsize::new(0));
        let cell = Arc::new(Rcu::new(Probe::new(&live, 0)));
        let (inside_tx, inside_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let reader = {
            let cell = cell.clone();
            std::thread::spawn(move || {
                cell.read(|p| {
                    inside_tx.send(()).unwrap();
                    go_rx.recv().unwrap();
                    // The writer replaced (and tried to free) meanwhile.
                    assert!(p.alive.load(Ordering::SeqCst));
                    p.n
                })
            })
        };
        inside_rx.recv().unwrap();
        cell.replace(Probe::new(&live, 1));
        cell.replace(Probe::new(&live, 2));
        assert_eq!(cell.pending(), 2, "the reader still sees the first value");
        assert_eq!(live.load(Ordering::SeqCst), 3);
        go_tx.send(()).unwrap();
        assert_eq!(reader.join().unwrap(), 0);
        cell.reclaim();
        assert_eq!(cell.pending(), 0);
        assert_eq!(live.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn nested_and_many_cells_per_thread() {
        let live = Arc::new(AtomicUsize::new(0));
        let a = Rcu::new(Probe::new(&live, 1));
        let b = Rcu::new(Probe::new(&live, 2));
        // b read inside a, a inside a: both fall back or nest safely.
        let got = a.read(|x| x.n + b.read(|y| y.n) + a.read(|z| z.n));
        assert_eq!(got, 4);
        for _ in 0..3 {
            assert_eq!(a.read(|x| x.n) + b.read(|y| y.n), 3);
        }
        drop(b);
        // A new cell on this thread drops the dead cell's slot.
        let c = Rcu::new(Probe::new(&live, 3));
        assert_eq!(c.read(|x| x.n), 3);
        SLOTS.with(|s| assert_eq!(s.0.borrow().len(), 2));
    }

    #[test]
    fn readers_never_see_a_freed_value_under_churn() {
        let live = Arc::new(AtomicUsize::new(0));
        let cell = Arc::new(Rcu::new(Probe::new(&live, 0)));
        let stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (cell, stop) = (cell.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut last = 0;
                    let mut reads = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let n = cell.read(|p| {
                            assert!(p.alive.load(Ordering::SeqCst), "read a dropped value");
                            p.n
                        });
                        assert!(n >= last, "values go back in time: {n} after {last}");
                        last = n;
                        reads += 1;
                    }
                    reads
                })
            })
            .collect();
        for n in 1..=20_000 {
            cell.replace(Probe::new(&live, n));
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            assert!(r.join().unwrap() > 0);
        }
        cell.reclaim();
        assert_eq!(cell.pending(), 0);
        assert_eq!(live.load(Ordering::SeqCst), 1);
    }
}
