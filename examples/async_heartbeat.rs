//! Prints the worst heartbeat gap of a current-thread tokio runtime while
//! it runs durable writes: 1,000 enqueues through `Account::write_async`
//! and 1,000 `set_update_state` calls through the grammers adapter on a
//! store in `Durability::Immediate` (each fsynced before its future
//! resolves), beside the same enqueues made with the blocking call.
//!
//! `cargo run --release --example async_heartbeat --features grammers [DIR]`
//! (DIR: where to put the store, default a temporary directory; put it on
//! the disk you care about, since /tmp may be memory).

use grammers_session::Session;
use grammers_session::types::UpdateState;
use peerlog::grammers::PeerlogSession;
use peerlog::{Durability, Options};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn heartbeat<F: std::future::Future<Output = ()>>(work: F) -> (Duration, Duration) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let done = Arc::new(AtomicBool::new(false));
    rt.block_on(async {
        let d = done.clone();
        let beat = tokio::spawn(async move {
            let mut last = Instant::now();
            let mut worst = Duration::ZERO;
            while !d.load(Ordering::Relaxed) {
                tokio::task::yield_now().await;
                let now = Instant::now();
                worst = worst.max(now - last);
                last = now;
            }
            worst
        });
        let t = Instant::now();
        work.await;
        let took = t.elapsed();
        done.store(true, Ordering::Relaxed);
        (beat.await.expect("the heartbeat task"), took)
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let path = dir.join("async_heartbeat.peerlog");
    let _ = std::fs::remove_file(&path);
    let opts = Options {
        durability: Durability::Immediate,
        ..Options::default()
    };
    let session = PeerlogSession::open_with(&path, opts)?;
    let account = session.account().clone();
    let n: i32 = 1_000;
    let (gap, took) = heartbeat(async {
        for i in 0..n {
            let id = format!("update-{i}");
            account
                .write_async(|tx| tx.enqueue(&id, b"payload"))
                .await
                .expect("enqueue");
        }
    });
    println!(
        "{n} durable enqueues (write_async): worst heartbeat gap {gap:?}, {:?} per enqueue",
        took / n as u32
    );
    let (gap, took) = heartbeat(async {
        for i in 0..n {
            session
                .set_update_state(UpdateState::Primary {
                    pts: i + 1,
                    date: 1_700_000_000 + i,
                    seq: i,
                })
                .await
                .expect("set_update_state");
        }
    });
    println!(
        "{n} durable set_update_state (grammers): worst heartbeat gap {gap:?}, {:?} per call",
        took / n as u32
    );
    let (gap, took) = heartbeat(async {
        for i in 0..n {
            account
                .write(|tx| tx.enqueue(&format!("blocking-{i}"), b"payload"))
                .expect("enqueue");
            tokio::task::yield_now().await;
        }
    });
    println!(
        "{n} durable enqueues (blocking write): worst heartbeat gap {gap:?}, {:?} per enqueue",
        took / n as u32
    );
    drop(session);
    let _ = std::fs::remove_file(&path);
    Ok(())
}
