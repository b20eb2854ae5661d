//! Online backup (`Store::backup_to`): copies taken while a writer commits
//! without pause (with checkpoints, peer folds and compactions reusing
//! freed space all the while) each open, verify, and hold every commit
//! acknowledged before the backup began, consistently (the update state,
//! the newest peer and a churned peer all from one commit). A process
//! killed mid-backup leaves nothing at the destination or a whole store.
//! The entry points on `Account`, `PoolHandle` and `Pool`, and the
//! refusals (an existing destination, a call inside a write closure).
//!
//! `PEERLOG_BACKUPS=N` sets the number of backups under the writer
//! (default 200).

use peerlog::{
    Durability, Error, Options, Peer, PeerId, Pool, PoolOptions, Storage, Store, UpdateState,
};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The kill test's spawns, and opens that expect a lock just released:
/// a child between fork and exec holds copies of this process's
/// descriptors, and with them the `flock` of a store another test has
/// just dropped (Linux lets the parent go on before the child has closed
/// them).
static SPAWN: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// [`Store::open_with`], waiting (up to 10 s) while a lock is held by
/// such a child only.
fn open_settled(path: &std::path::Path, opts: Options) -> Store {
    let started = Instant::now();
    loop {
        let r = {
            let _g = SPAWN.lock().unwrap_or_else(|e| e.into_inner());
            Store::open_with(path, opts.clone())
        };
        match r {
            Err(Error::Locked { .. }) if started.elapsed().as_secs() < 10 => {
                std::thread::sleep(Duration::from_millis(10));
            }
            r => return r.unwrap(),
        }
    }
}

fn opts() -> Options {
    Options {
        durability: Durability::None,
        // Small log and fold thresholds: a checkpoint every few dozen
        // commits, so regions are freed and reused during every backup.
        log_size: 16 << 10,
        peer_fold_min: 64,
        compact_min_dead: 4 << 10,
        ..Options::default()
    }
}

fn hash(i: u64) -> i64 {
    (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 1) as i64 - (1 << 40)
}

/// Churned peers: ids 1,000,001..=1,000,050, each re-saved every 50
/// commits with the commit's number as its access hash.
fn churn_id(i: u64) -> i64 {
    1_000_000 + (i % 50) as i64 + 1
}

/// Commit `i` (from 1): a new peer `i`, a churned peer, a meta value and
/// the update state `pts = i`, in one atomic write.
fn commit(acct: &peerlog::Account, i: u64) {
    let mut new = Peer::user(i as i64, hash(i));
    if i.is_multiple_of(5) {
        new = new.with_username(format!("user_{i}"));
    }
    let churn = Peer::user(churn_id(i), i as i64);
    acct.write(|tx| {
        tx.save_peers(&[new.clone(), churn.clone()])?;
        tx.set_meta(&format!("k{}", i % 20), &vec![i as u8; (i % 700) as usize])?;
        tx.save_update_state(&UpdateState {
            pts: i as i32,
            qts: 0,
            date: 1_700_000_000,
            seq: 0,
        })
    })
    .unwrap();
}

/// Checks a backup against the commits: returns the last commit it holds.
fn check_backup(path: &std::path::Path, acked: u64, salt: u64) -> u64 {
    let report = peerlog::verify_file(path).unwrap();
    assert!(report.is_ok(), "{}: {report}", path.display());
    let store = open_settled(
        path,
        Options {
            read_only: true,
            create: false,
            ..Options::default()
        },
    );
    let acct = store.account("bot").unwrap();
    let last = acct.update_state().unwrap().map_or(0, |s| s.pts as u64);
    assert!(
        last >= acked,
        "backup holds commits up to {last}, but {acked} were acknowledged before it began"
    );
    if last == 0 {
        return 0;
    }
    // All from commit `last`: its peer, its churned peer, its meta value.
    assert_eq!(
        acct.access_hash(PeerId::user(last as i64)).unwrap(),
        Some(hash(last))
    );
    assert_eq!(
        acct.access_hash(PeerId::user(last as i64 + 1)).unwrap(),
        None
    );
    assert_eq!(
        acct.access_hash(PeerId::user(churn_id(last))).unwrap(),
        Some(last as i64)
    );
    assert_eq!(
        acct.meta(&format!("k{}", last % 20)).unwrap(),
        Some(vec![last as u8; (last % 700) as usize])
    );
    assert_eq!(acct.peer_count().unwrap(), last + last.min(50));
    // A sample of older peers, and a username.
    for k in 0..16u64 {
        let id = 1 + (salt.wrapping_mul(31).wrapping_add(k * 7919)) % last;
        assert_eq!(
            acct.access_hash(PeerId::user(id as i64)).unwrap(),
            Some(hash(id)),
            "peer {id}"
        );
    }
    if last >= 5 {
        let u = last / 5 * 5;
        assert_eq!(
            acct.resolve_username(&format!("@USER_{u}")).unwrap(),
            Some((PeerId::user(u as i64), Some(hash(u))))
        );
    }
    last
}

#[test]
fn backups_under_a_running_writer_hold_every_acknowledged_commit() {
    let n: u64 = std::env::var("PEERLOG_BACKUPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path().join("live.peerlog"), opts()).unwrap();
    let acct = store.account("bot").unwrap();
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acct, acked, stop) = (acct.clone(), acked.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                commit(&acct, i);
                acked.store(i, Ordering::Release);
                if i.is_multiple_of(400) {
                    acct.store().compact().unwrap();
                }
            }
            i
        })
    };
    let started = Instant::now();
    let mut advanced = 0;
    let mut prev = 0;
    for b in 0..n {
        let before = acked.load(Ordering::Acquire);
        let to = dir.path().join(format!("b{b}.peerlog"));
        let report = store.backup_to(&to).unwrap();
        assert_eq!(report.path, to);
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&to).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
        let last = check_backup(&to, before, b);
        if last > prev {
            advanced += 1;
        }
        prev = last;
        std::fs::remove_file(&to).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let commits = writer.join().unwrap();
    // The writer really ran alongside: most backups saw new commits.
    assert!(
        advanced > n / 2,
        "only {advanced} of {n} backups saw new commits"
    );
    let stats = store.stats();
    assert!(stats.checkpoints > 10, "{stats:?}");
    // No temporary file is left behind, and the held regions went back.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec!["live.peerlog".to_string()]);
    eprintln!(
        "{n} backups in {:?} beside {commits} commits, {} checkpoints",
        started.elapsed(),
        stats.checkpoints
    );
    assert!(store.verify().unwrap().is_ok());
}

/// Round `r` re-saves block `r % BLOCKS` of the peers with hash
/// `rhash(i, r)` and sets pts = r, in one commit.
const BLOCKS: u64 = 30;
const BLOCK: u64 = 2000;

fn rhash(i: u64, r: u64) -> i64 {
    hash(i ^ (r << 32))
}

#[test]
fn backups_during_compactions_that_relocate() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(
        dir.path().join("live.peerlog"),
        Options {
            durability: Durability::None,
            peer_fold_min: 1024,
            ..Options::default()
        },
    )
    .unwrap();
    let acct = store.account("bot").unwrap();
    let round = |acct: &peerlog::Account, r: u64| {
        let b = r % BLOCKS;
        let peers: Vec<Peer> = (b * BLOCK + 1..=(b + 1) * BLOCK)
            .map(|i| Peer::user(i as i64, rhash(i, r)))
            .collect();
        let state = UpdateState {
            pts: r as i32,
            qts: 0,
            date: 0,
            seq: 0,
        };
        acct.save_peers_and_state(&peers, Some(&state), &[])
            .unwrap();
    };
    for r in 0..BLOCKS {
        round(&acct, r);
    }
    store.compact().unwrap();
    // Over 4 MiB, so `compact` moves every region to the end and then
    // relocates them into the space that frees.
    assert!(store.stats().file_size > 4 << 20, "{:?}", store.stats());
    let acked = Arc::new(AtomicU64::new(BLOCKS - 1));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acct, acked, stop) = (acct.clone(), acked.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut r = BLOCKS;
            while !stop.load(Ordering::Relaxed) {
                round(&acct, r);
                acked.store(r, Ordering::Release);
                if r.is_multiple_of(3) {
                    acct.store().compact().unwrap();
                }
                r += 1;
            }
        })
    };
    for b in 0..20u64 {
        let before = acked.load(Ordering::Acquire);
        let to = dir.path().join(format!("b{b}.peerlog"));
        store.backup_to(&to).unwrap();
        assert!(peerlog::verify_file(&to).unwrap().is_ok());
        let copy = open_settled(&to, Options::default());
        let a = copy.account("bot").unwrap();
        let last = a.update_state().unwrap().unwrap().pts as u64;
        assert!(last >= before, "backup at {last}, {before} acknowledged");
        assert_eq!(a.peer_count().unwrap(), BLOCKS * BLOCK);
        for k in 0..64u64 {
            let i = 1 + (k * 7_919 + b * 104_729) % (BLOCKS * BLOCK);
            let blk = (i - 1) / BLOCK;
            // The last round up to `last` that wrote this block.
            let r = last - (last + BLOCKS - blk) % BLOCKS;
            assert_eq!(
                a.access_hash(PeerId::user(i as i64)).unwrap(),
                Some(rhash(i, r)),
                "peer {i} in the backup at round {last}"
            );
        }
        drop(copy);
        std::fs::remove_file(&to).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(store.verify().unwrap().is_ok());
}

#[test]
fn concurrent_backups_of_one_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path().join("live.peerlog"), opts()).unwrap();
    let acct = store.account("bot").unwrap();
    for i in 1..=300 {
        commit(&acct, i);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acct, stop) = (acct.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 300;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                commit(&acct, i);
            }
        })
    };
    let threads: Vec<_> = (0..3)
        .map(|t| {
            let (store, path) = (store.clone(), dir.path().to_path_buf());
            std::thread::spawn(move || {
                for b in 0..15 {
                    let to = path.join(format!("t{t}-{b}.peerlog"));
                    store.backup_to(&to).unwrap();
                    check_backup(&to, 300, b);
                    std::fs::remove_file(&to).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(store.verify().unwrap().is_ok());
}

#[test]
fn an_existing_destination_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("live.peerlog")).unwrap();
    commit(&store.account("bot").unwrap(), 1);
    let to = dir.path().join("taken");
    std::fs::write(&to, b"mine").unwrap();
    let e = store.backup_to(&to).unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e:?}");
    assert!(e.to_string().contains("taken"), "{e}");
    assert_eq!(std::fs::read(&to).unwrap(), b"mine");
    // A store is a destination that exists too.
    let e = store
        .backup_to(dir.path().join("live.peerlog"))
        .unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e:?}");
    // A missing directory: an I/O error naming it, nothing created.
    let e = store
        .backup_to(dir.path().join("no/such/dir/b.peerlog"))
        .unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

#[test]
fn a_backup_inside_a_write_closure_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("live.peerlog")).unwrap();
    let acct = store.account("bot").unwrap();
    let to = dir.path().join("b.peerlog");
    let e = acct.write(|_| acct.backup_to(&to)).unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e:?}");
    assert!(!to.exists());
}

#[test]
fn account_pool_handle_pool_and_read_only_entry_points() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::new(PoolOptions {
        dir: Some(dir.path().join("bots")),
        ..PoolOptions::default()
    })
    .unwrap();
    let token = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_x";
    let h = pool.get(token).unwrap();
    h.save_peer(&Peer::from_bot_api(-1001234567890, Some(77)).unwrap())
        .unwrap();
    // Through the handle (it derefs to the Account).
    let a = dir.path().join("a.peerlog");
    h.backup_to(&a).unwrap();
    // Through the pool, by key.
    let b = dir.path().join("b.peerlog");
    pool.backup_to(token, &b).unwrap();
    drop(h);
    for p in [&a, &b] {
        let s = open_settled(p, Options::default());
        let acct = s.account(Pool::ACCOUNT).unwrap();
        assert_eq!(
            acct.access_hash(PeerId::from_bot_api(-1001234567890).unwrap())
                .unwrap(),
            Some(77)
        );
    }
    // A memory pool's store goes to a file too.
    let mem = Pool::new(PoolOptions::default()).unwrap();
    mem.with("bot-one", |acct| acct.save_peer(&Peer::user(5, 6)))
        .unwrap();
    let c = dir.path().join("c.peerlog");
    mem.backup_to("bot-one", &c).unwrap();
    let s = open_settled(&c, Options::default());
    assert_eq!(
        s.account(Pool::ACCOUNT)
            .unwrap()
            .access_hash(PeerId::user(5))
            .unwrap(),
        Some(6)
    );
    // A read-only handle can be backed up.
    drop(s);
    let ro = open_settled(
        &c,
        Options {
            read_only: true,
            create: false,
            ..Options::default()
        },
    );
    let d = dir.path().join("d.peerlog");
    ro.backup_to(&d).unwrap();
    assert!(peerlog::verify_file(&d).unwrap().is_ok());
}

/// A read-only handle on a format version 1 file reads it without
/// upgrading: its backup is the whole file as it is, and reads the same.
#[test]
fn read_only_handles_on_version_1_files_copy_them_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (mut peers, mut entries) = (0, 0);
    for name in [
        "empty",
        "log-only",
        "compacted-with-tail",
        "many-generations",
    ] {
        let src = dir.path().join(format!("{name}.peerlog"));
        std::fs::copy(
            format!(
                "{}/tests/golden/v1/{name}.peerlog",
                env!("CARGO_MANIFEST_DIR")
            ),
            &src,
        )
        .unwrap();
        let original = std::fs::read(&src).unwrap();
        let ro = Options {
            read_only: true,
            create: false,
            ..Options::default()
        };
        let store = open_settled(&src, ro.clone());
        let to = dir.path().join(format!("{name}.backup"));
        store.backup_to(&to).unwrap();
        let copy = open_settled(&to, ro.clone());
        {
            let (a, b) = (&store, &copy);
            assert_eq!(a.stats().peer_count, b.stats().peer_count, "{name}");
            assert_eq!(a.peer_ids(0).unwrap(), b.peer_ids(0).unwrap(), "{name}");
            for id in a.peer_ids(0).unwrap() {
                assert_eq!(
                    a.peer_record(0, id).unwrap(),
                    b.peer_record(0, id).unwrap(),
                    "{name}: peer {id}"
                );
            }
            peers += a.peer_ids(0).unwrap().len();
            let names = a.bucket_names().unwrap();
            assert_eq!(names, b.bucket_names().unwrap(), "{name}");
            for bucket in &names {
                entries += a.bucket(bucket).unwrap().len();
                assert_eq!(
                    a.bucket(bucket).unwrap().scan_prefix(b"").unwrap(),
                    b.bucket(bucket).unwrap().scan_prefix(b"").unwrap(),
                    "{name}: bucket {bucket}"
                );
            }
        }
        drop(store);
        // The source was not written.
        assert!(std::fs::read(&src).unwrap() == original, "{name} changed");
        assert!(peerlog::verify_file(&to).unwrap().is_ok(), "{name}");
    }
    assert!(
        peers > 40 && entries > 10,
        "{peers} peers, {entries} entries"
    );
}

const CHILD_ENV: &str = "PEERLOG_BACKUP_CHILD";

/// The child of the kill test: backs up a store in a loop to `b0`, `b1`,
/// … while committing, until killed.
#[test]
fn backup_kill_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let store = Store::open_with(dir.join("live.peerlog"), opts()).unwrap();
    let acct = store.account("bot").unwrap();
    let start = acct.update_state().unwrap().map_or(0, |s| s.pts as u64);
    let mut i = start;
    for b in 0u64.. {
        for _ in 0..20 {
            i += 1;
            commit(&acct, i);
        }
        let to = dir.join(format!("b{b}.peerlog"));
        if to.exists() {
            continue;
        }
        store.backup_to(&to).unwrap();
    }
}

#[test]
fn a_killed_backup_leaves_nothing_or_a_whole_store_at_the_destination() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let dir = match std::fs::metadata("/dev/shm") {
        Ok(m) if m.is_dir() => tempfile::tempdir_in("/dev/shm").unwrap(),
        _ => tempfile::tempdir().unwrap(),
    };
    {
        let store = Store::open_with(dir.path().join("live.peerlog"), opts()).unwrap();
        let acct = store.account("bot").unwrap();
        for i in 1..=2000 {
            commit(&acct, i);
        }
    }
    let mut checked = 0;
    let mut temps = 0;
    for round in 0..12u64 {
        let guard = SPAWN.lock().unwrap_or_else(|e| e.into_inner());
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "backup_kill_child", "--nocapture"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        drop(guard);
        std::thread::sleep(Duration::from_millis(30 + round * 37 % 200));
        child.kill().unwrap();
        child.wait().unwrap();
        for e in std::fs::read_dir(dir.path()).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            if name.starts_with('b') && name.ends_with(".peerlog") {
                // Whatever is at a destination name is a whole store.
                check_backup(&dir.path().join(&name), 0, round);
                checked += 1;
            } else if name.contains(".backup-") {
                // A backup the kill interrupted: only its temporary name.
                temps += 1;
                std::fs::remove_file(dir.path().join(&name)).unwrap();
            }
        }
    }
    eprintln!("{checked} finished backups checked, {temps} interrupted ones left a temporary file");
    assert!(checked > 0, "no backup finished before a kill");
    assert!(temps > 0, "no kill landed inside a backup");
    assert!(
        peerlog::verify_file(dir.path().join("live.peerlog"))
            .unwrap()
            .is_ok()
    );
}
