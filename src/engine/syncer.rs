//! Awaitable durability: a sync thread per store (started on first use)
//! and [`Synced`], the future that resolves once the store is durable
//! through a given commit. Group commit: one fsync covers every waiter
//! whose commit it reaches. No runtime dependency: the future is woken by
//! the sync thread through its [`Waker`].

use crate::engine::writer::{Writer, WriterView, sync_unlocked};
use crate::error::{Error, Result};
use crate::sys::io::RawFile;
use parking_lot::{Condvar, Mutex};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// An fsync's outcome: the first failure as text on error.
type Outcome = std::result::Result<(), String>;

/// One waiter's outcome and waker.
#[derive(Default)]
struct Slot {
    state: Mutex<(Option<Outcome>, Option<Waker>)>,
}

impl Slot {
    fn complete(&self, r: Outcome) {
        let waker = {
            let mut s = self.state.lock();
            s.0 = Some(r);
            s.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

#[derive(Default)]
struct Queue {
    waiters: Vec<(u64, Arc<Slot>)>,
    stop: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    cv: Condvar,
}

/// The sync thread of one store. It holds the file and the writer, never
/// the store, so dropping the last `Store` stops and joins it (after it
/// served every waiter) before the file is closed.
pub(crate) struct Syncer {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Syncer {
    /// Starts the thread; `None` if the system refused one.
    pub(crate) fn start(
        file: Arc<dyn RawFile>,
        writer: Arc<Mutex<Writer>>,
        view: Arc<Mutex<WriterView>>,
    ) -> Option<Syncer> {
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("peerlog-sync".into())
            .spawn(move || {
                loop {
                    let batch = {
                        let mut q = s.queue.lock();
                        while q.waiters.is_empty() && !q.stop {
                            s.cv.wait(&mut q);
                        }
                        if q.waiters.is_empty() {
                            return;
                        }
                        std::mem::take(&mut q.waiters)
                    };
                    // One fsync for the whole batch (group commit): it
                    // covers every commit appended before it started.
                    let r = sync_unlocked(&*file, &writer, &view);
                    for (target, slot) in batch {
                        match &r {
                            Ok(synced) if *synced >= target => slot.complete(Ok(())),
                            // Cannot happen (a waiter's commit was appended
                            // before it queued), but never report a commit
                            // durable that is not: wait for the next fsync.
                            Ok(_) => s.queue.lock().waiters.push((target, slot)),
                            Err(e) => slot.complete(Err(match e {
                                Error::Poisoned { first } => first.clone(),
                                e => e.to_string(),
                            })),
                        }
                    }
                }
            })
            .ok()?;
        Some(Syncer {
            shared,
            thread: Some(thread),
        })
    }

    /// A future resolving once the store is durable through `target`.
    pub(crate) fn wait(&self, target: u64) -> Synced {
        let slot = Arc::new(Slot::default());
        self.shared
            .queue
            .lock()
            .waiters
            .push((target, slot.clone()));
        self.shared.cv.notify_one();
        Synced(Pending::Waiting(slot))
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.shared.queue.lock().stop = true;
        self.shared.cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

enum Pending {
    Done(Option<Result<()>>),
    Waiting(Arc<Slot>),
}

/// A future that resolves when the commits it covers are durable
/// (fsynced), from [`crate::Store::synced`] or the `*_async` writes. The
/// fsync runs on the store's sync thread, never on the thread that polls,
/// and one fsync serves every waiter it covers. It needs no particular
/// runtime: any executor (tokio, async-std, `block_on`) can poll it.
///
/// Resolves to `Err(Error::Poisoned)` naming the failure if the fsync
/// failed: then the store is poisoned and every waiter gets the error.
/// Dropping it does not cancel the sync.
#[must_use = "the commit is durable only once the future resolves"]
pub struct Synced(Pending);

impl std::fmt::Debug for Synced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Synced").finish_non_exhaustive()
    }
}

impl Synced {
    pub(crate) fn ready(r: Result<()>) -> Synced {
        Synced(Pending::Done(Some(r)))
    }
}

impl Future for Synced {
    type Output = Result<()>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        match &mut self.get_mut().0 {
            Pending::Done(r) => Poll::Ready(r.take().unwrap_or(Ok(()))),
            Pending::Waiting(slot) => {
                let mut s = slot.state.lock();
                match s.0.take() {
                    Some(r) => Poll::Ready(r.map_err(|first| Error::Poisoned { first })),
                    None => {
                        match &mut s.1 {
                            Some(w) if w.will_wake(cx.waker()) => {}
                            w => *w = Some(cx.waker().clone()),
                        }
                        Poll::Pending
                    }
                }
            }
        }
    }
}

/// The future of [`crate::Account::write_async`]: the write's result,
/// once the commit is durable. Polling it never blocks.
#[must_use = "the commit is durable only once the future resolves"]
pub struct Durable<R> {
    value: Option<Result<R>>,
    synced: Option<Synced>,
}

// The value is moved out, never pinned.
impl<R> Unpin for Durable<R> {}

impl<R> std::fmt::Debug for Durable<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Durable").finish_non_exhaustive()
    }
}

impl<R> Durable<R> {
    pub(crate) fn new(value: Result<R>, synced: Option<Synced>) -> Self {
        Durable {
            value: Some(value),
            synced,
        }
    }
}

impl<R> Durable<R> {
    /// True unless the write failed (the commit is written and applied;
    /// it may still await its fsync).
    #[cfg(feature = "grammers")]
    pub(crate) fn committed(&self) -> bool {
        matches!(self.value, Some(Ok(_)))
    }
}

impl<R> Future for Durable<R> {
    type Output = Result<R>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<R>> {
        let this = self.get_mut();
        if let Some(Ok(_)) = &this.value
            && let Some(s) = &mut this.synced
        {
            match Pin::new(s).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => {
                    this.synced = None;
                    this.value = None;
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(Ok(())) => this.synced = None,
            }
        }
        Poll::Ready(this.value.take().unwrap_or_else(|| {
            Err(Error::Invalid(
                "a peerlog write future was polled after it completed".into(),
            ))
        }))
    }
}
