//! 10,000 accounts in one process under an open-file limit of 512: a pool
//! with `max_open` 256 writes each one, evicts it, reopens it from disk and
//! reads it back, without ever running out of file descriptors.
//!
//! The only test in this binary, because it lowers the process's
//! `RLIMIT_NOFILE`, which would starve tests running beside it.

use peerlog::{Durability, Options, Peer, PeerId, Pool, PoolOptions, Storage, UpdateState};
use std::time::{Duration, Instant};

const ACCOUNTS: u64 = 10_000;
const MAX_OPEN: usize = 256;
const FD_LIMIT: u64 = 512;

fn key(i: u64) -> String {
    if i.is_multiple_of(4) {
        format!("{}:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_{i}", 1_000_000 + i)
    } else {
        format!("acct-{i}")
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn lower_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit for getrlimit to fill and setrlimit to read.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = FD_LIMIT.min(lim.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
}

/// The test is about descriptors and eviction, not the disk: 30,000 fsyncs
/// (create, directory entry, close) on a real disk take minutes, so use
/// tmpfs where there is one.
fn scratch_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}

#[test]
fn ten_thousand_accounts_under_a_low_fd_limit() {
    let start = Instant::now();
    lower_fd_limit();
    let dir = scratch_dir();
    let pool = Pool::new(PoolOptions {
        dir: Some(dir.path().to_path_buf()),
        idle_timeout: Duration::from_secs(3600),
        max_open: MAX_OPEN,
        store: Options {
            durability: Durability::None,
            log_size: 16 << 10,
            ..Options::default()
        },
    })
    .unwrap();
    let baseline = open_fds();

    for i in 0..ACCOUNTS {
        let h = pool.get(&key(i)).unwrap();
        h.save_peer(&Peer::user(i as i64 + 1, i as i64 * 7).with_username(format!("user{i}")))
            .unwrap();
        h.save_update_state(&UpdateState {
            pts: i as i32,
            qts: 0,
            date: 1_700_000_000,
            seq: 1,
        })
        .unwrap();
        if i % 1000 == 999 {
            assert!(open_fds() <= baseline + MAX_OPEN, "{}", open_fds());
        }
    }
    let s = pool.stats();
    assert_eq!((s.open, s.opens), (MAX_OPEN, ACCOUNTS));
    assert_eq!(s.evictions, ACCOUNTS - MAX_OPEN as u64);

    // Oldest first: every account was evicted and opens again from disk.
    for i in 0..ACCOUNTS {
        let h = pool.get(&key(i)).unwrap();
        assert_eq!(
            h.access_hash(PeerId::user(i as i64 + 1)).unwrap(),
            Some(i as i64 * 7)
        );
        let peer = h.peer_by_username(&format!("user{i}")).unwrap().unwrap();
        assert_eq!(peer.id, PeerId::user(i as i64 + 1));
        assert_eq!(h.update_state().unwrap().unwrap().pts, i as i32);
        assert_eq!(h.peer_count().unwrap(), 1);
    }
    let s = pool.stats();
    assert_eq!((s.opens, s.open_errors, s.hits), (2 * ACCOUNTS, 0, 0));
    assert_eq!(s.evictions, 2 * ACCOUNTS - MAX_OPEN as u64);
    assert!(open_fds() <= baseline + MAX_OPEN);
    assert_eq!(pool.close_all().unwrap(), MAX_OPEN);
    assert_eq!(open_fds(), baseline, "every file is closed");

    let files = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(files as u64, ACCOUNTS);
    eprintln!("10,000 accounts in {:?}", start.elapsed());
}
