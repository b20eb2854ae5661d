//! Helpers shared by the integration tests.

use std::time::{Duration, Instant};

use peerlog::Error;

/// Retries `f` while a just-dropped handle still holds the file lock: the
/// batched-durability flusher thread can own the last reference to a store
/// for the length of an fsync after the caller dropped its handles.
pub fn unlocked<T>(f: impl Fn() -> peerlog::Result<T>) -> T {
    let start = Instant::now();
    loop {
        match f() {
            Err(Error::Locked { .. }) if start.elapsed() < Duration::from_secs(5) => {
                std::thread::sleep(Duration::from_millis(2))
            }
            r => return r.unwrap(),
        }
    }
}
