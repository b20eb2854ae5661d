//! I/O errors and full disks.
//!
//! A seeded workload (raw buckets, batches, peers, compactions and the
//! automatic checkpoints they cause) runs on a [`MemFile`] that fails the
//! n-th write, sync or set_len with ENOSPC or EIO, once or for good, for
//! every n the workload reaches. At the failure: the call returns an I/O
//! error; reads still return what was committed before it; every later
//! write, sync and compaction returns `Error::Poisoned` (the failure is
//! latched, never retried as a success, even when the disk works again);
//! and reopening the synced image or everything written recovers a
//! consistent store holding every commit acknowledged before the failure.
//!
//! Then the same on a real file: a child process (this test binary,
//! re-executed) lowers `RLIMIT_FSIZE` so the filesystem refuses to grow
//! the file (EFBIG), fills the store until a write fails, and reports each
//! acknowledged commit; the parent reopens the file and checks them all.
//!
//! `PEERLOG_IO_FAULT_STRIDE=1` tries every op (the default skips some in
//! debug builds to keep CI fast).

mod common;
use common::model::*;
use common::reopen_image;
use peerlog::io::{FaultOn, MemFile};
use peerlog::{Durability, Error, Options, Store};
use std::collections::BTreeSet;
use std::io::{self, BufRead, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn opts(d: Durability) -> Options {
    Options {
        durability: d,
        log_size: 16 << 10,
        peer_fold_min: 32,
        compact_min_dead: 2 << 10,
        ..Options::default()
    }
}

fn steps(seed: u64, n: usize, durable_batches: bool) -> Vec<Step> {
    let mut rng = Rng(seed);
    let mut out = Vec::new();
    while out.len() < n {
        match next_step(&mut rng, durable_batches, true) {
            Step::Reopen => {}
            s => out.push(s),
        }
    }
    out
}

/// Contexts of the I/O errors seen, to show which code paths failed.
#[derive(Default)]
struct Seen {
    contexts: BTreeSet<String>,
    failures: u64,
    images: u64,
}

/// Runs `steps` with the `n`-th `on` call failing. Returns false when the
/// workload finished without reaching the fault.
fn run_with_fault(
    d: Durability,
    steps: &[Step],
    on: FaultOn,
    n: u64,
    kind: io::ErrorKind,
    sticky: bool,
    seen: &mut Seen,
) -> bool {
    let label = format!("{d:?} {on:?} #{n} {kind:?} sticky={sticky}");
    let o = opts(d);
    let file = MemFile::new();
    let store = Store::open_backend(Arc::new(file.clone()), o.clone()).unwrap();
    file.fail(on, n, kind, sticky);
    let immediate = d == Durability::Immediate;
    let mut model = Model::default();
    // States since the last point everything was durable.
    let mut durable_floor = model.clone();
    let mut states = vec![model.clone()];
    for (i, step) in steps.iter().enumerate() {
        let mut next = model.clone();
        apply_model(&mut next, step);
        match apply_store(&store, step) {
            Ok(()) => {
                model = next;
                states.push(model.clone());
                if immediate && step.commits()
                    || matches!(step, Step::Compact | Step::Sync | Step::Batch(_, true))
                {
                    durable_floor = model.clone();
                    states = vec![model.clone()];
                }
            }
            Err(e @ (Error::Io { .. } | Error::Poisoned { .. })) => {
                let next = match e {
                    Error::Io {
                        context, source, ..
                    } => {
                        // With a sticky fault the first failure may have
                        // been swallowed where it is harmless (giving file
                        // space back), and the dead disk fails the next op.
                        assert!(
                            source.kind() == kind || sticky,
                            "{label}: step {i}: {source}"
                        );
                        seen.contexts.insert(context.to_string());
                        next
                    }
                    Error::Poisoned { first } => {
                        // The fault hit the index switch that follows an
                        // acknowledged commit (see the regression test
                        // below): that step returned Ok, this one is the
                        // first to report the latched failure.
                        let context = first.split(':').next().unwrap().to_string();
                        seen.contexts.insert(context);
                        model.clone()
                    }
                    _ => unreachable!(),
                };
                seen.failures += 1;
                after_failure(&label, &store, &model, i, step);
                drop(store);
                file.heal();
                // The synced image may be at any state from the last
                // durable point on; everything written holds every
                // acknowledged commit. Either may hold the failed commit.
                let (durable, live) = (file.durable(), file.live());
                for (what, img, allowed) in [
                    ("durable", durable, &states[..]),
                    ("live", live, std::slice::from_ref(&model)),
                ] {
                    let s = reopen_image(img, o.clone())
                        .unwrap_or_else(|e| panic!("{label}: {what} image: {e}"));
                    let r = s.verify().unwrap();
                    assert!(r.is_ok(), "{label}: {what} image: {r}");
                    let got = Model::read(&s);
                    assert!(
                        got == next || allowed.contains(&got),
                        "{label}: {what} image after failing step {i} {step:?} lost data \
                         (durable floor has {} raw keys, got {})",
                        durable_floor.raw.len(),
                        got.raw.len()
                    );
                    got.check_lookups(&s).unwrap();
                    // The recovered store takes new commits.
                    s.bucket("q").unwrap().put(b"after", b"fault").unwrap();
                    s.compact().unwrap();
                    assert!(s.verify().unwrap().is_ok());
                    seen.images += 1;
                }
                return true;
            }
            Err(e) => panic!("{label}: step {i} {step:?}: expected an I/O error, got {e}"),
        }
    }
    drop(store);
    false
}

/// The store after a failed call: readable, unchanged, latched.
fn after_failure(label: &str, store: &Store, model: &Model, i: usize, step: &Step) {
    let got = Model::read(store);
    if &got != model {
        panic!(
            "{label}: after step {i} {step:?} failed, reads do not return the state before it \
             ({} raw keys / {} peers, want {} / {})",
            got.raw.len(),
            got.peers.len(),
            model.raw.len(),
            model.peers.len()
        );
    }
    model.check_lookups(store).unwrap();
    let poisoned = |r: peerlog::Result<()>, what: &str| match r {
        Err(Error::Poisoned { .. }) => {}
        other => panic!("{label}: {what} after a failure: {other:?}"),
    };
    poisoned(store.bucket("q").unwrap().put(b"x", b"y"), "put");
    poisoned(store.sync(), "sync");
    poisoned(store.compact(), "compact");
    poisoned(
        store.put_peer_records(vec![common::rec(0, 424242, 1, &["late"])]),
        "put_peer_records",
    );
    let mut b = store.batch();
    b.put("a", b"x", b"y").unwrap();
    poisoned(b.commit(), "batch");
    assert!(matches!(
        store.delete_peer_record(0, 424242),
        Ok(false) | Err(Error::Poisoned { .. })
    ));
    assert_eq!(
        &Model::read(store),
        model,
        "{label}: a poisoned write changed reads"
    );
}

fn stride() -> u64 {
    std::env::var("PEERLOG_IO_FAULT_STRIDE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) { 3 } else { 1 })
}

fn sweep(d: Durability, seed: u64, faults: &[(FaultOn, io::ErrorKind, bool)]) -> Seen {
    let steps = steps(seed, 90, d != Durability::Immediate);
    let mut seen = Seen::default();
    for &(on, kind, sticky) in faults {
        let mut n = seed % stride();
        while run_with_fault(d, &steps, on, n, kind, sticky, &mut seen) {
            n += stride();
        }
        assert!(n > 0, "{on:?} never reached");
    }
    seen
}

const FAULTS: [(FaultOn, io::ErrorKind, bool); 6] = [
    (FaultOn::Write, io::ErrorKind::StorageFull, true),
    (FaultOn::Write, io::ErrorKind::Other, false),
    (FaultOn::Sync, io::ErrorKind::Other, true),
    (FaultOn::Sync, io::ErrorKind::StorageFull, false),
    (FaultOn::SetLen, io::ErrorKind::StorageFull, true),
    (FaultOn::SetLen, io::ErrorKind::Other, false),
];

fn report(d: Durability, seen: &Seen, t: Instant) {
    eprintln!(
        "io_errors {d:?}: {} injected failures, {} recovered images, {:.1?}; failing paths: {:?}",
        seen.failures,
        seen.images,
        t.elapsed(),
        seen.contexts
    );
    let mut required = vec![
        "appending to the log",
        "syncing the log",
        "writing the superblock",
        "syncing new regions",
        "syncing the superblock",
        "extending the file",
    ];
    if stride() == 1 {
        required.extend([
            "writing a bucket segment",
            "writing the peer segment",
            "writing the peer index",
        ]);
    } else {
        assert!(
            [
                "writing a bucket segment",
                "writing the peer segment",
                "writing the peer index"
            ]
            .iter()
            .any(|c| seen.contexts.contains(*c)),
            "no failure hit a segment or index write"
        );
    }
    for ctx in required {
        assert!(seen.contexts.contains(ctx), "no failure hit {ctx:?}");
    }
}

#[test]
fn faults_immediate() {
    let t = Instant::now();
    let seen = sweep(Durability::Immediate, 11, &FAULTS);
    report(Durability::Immediate, &seen, t);
}

#[test]
fn faults_none() {
    let t = Instant::now();
    let seen = sweep(Durability::None, 12, &FAULTS);
    report(Durability::None, &seen, t);
}

#[test]
fn faults_batched() {
    let t = Instant::now();
    let seen = sweep(Durability::Batched(Duration::from_secs(3600)), 13, &FAULTS);
    report(Durability::Batched(Duration::from_secs(3600)), &seen, t);
}

/// The Batched background sync failing latches the store too.
#[test]
fn failed_background_sync_poisons() {
    let file = MemFile::new();
    let store = Store::open_backend(
        Arc::new(file.clone()),
        opts(Durability::Batched(Duration::from_millis(2))),
    )
    .unwrap();
    store.bucket("a").unwrap().put(b"k", b"1").unwrap();
    store.sync().unwrap();
    file.fail(FaultOn::Sync, 0, io::ErrorKind::Other, false);
    // The write returns (group commit); the flusher's sync fails.
    let mut acked = 1;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match store
            .bucket("a")
            .unwrap()
            .put(b"k", format!("{}", acked + 1).as_bytes())
        {
            Ok(()) => acked += 1,
            Err(Error::Poisoned { .. }) => break,
            Err(Error::Io { .. }) => {} // the commit's own sync hit it
            Err(e) => panic!("{e}"),
        }
        assert!(
            Instant::now() < deadline,
            "the failed sync was never reported"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(matches!(store.sync(), Err(Error::Poisoned { .. })));
    drop(store);
    let s = reopen_image(file.live(), opts(Durability::Immediate)).unwrap();
    let v = s.bucket("a").unwrap().get(b"k").unwrap().unwrap();
    let v: u64 = String::from_utf8(v).unwrap().parse().unwrap();
    assert!(v >= acked as u64, "live image lost an acknowledged commit");
    assert!(s.verify().unwrap().is_ok());
}

// ---------------------------------------------------------------------------
// A real filesystem refusing to grow the file: RLIMIT_FSIZE in a child.

const CHILD_ENV: &str = "PEERLOG_FSIZE_CHILD";
const LIMIT: u64 = 320 << 10;

fn child_value(i: u64) -> Vec<u8> {
    let len = 200 + (i * 131) % 1800;
    (0..len).map(|j| (i + j) as u8).collect()
}

/// The child: runs only when re-executed by `full_disk_on_a_real_file`.
#[test]
fn fsize_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    // SAFETY: plain libc calls with valid arguments; ignoring SIGXFSZ makes
    // writes past the limit fail with EFBIG instead of killing the process.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let lim = libc::rlimit {
            rlim_cur: LIMIT,
            rlim_max: LIMIT,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0);
    }
    let mut out = io::stdout().lock();
    let o = Options {
        durability: Durability::Immediate,
        log_size: 32 << 10,
        peer_fold_min: 64,
        ..Options::default()
    };
    let store = Store::open_with(&path, o).unwrap();
    let b = store.bucket("fill").unwrap();
    let mut i = 0u64;
    let err = loop {
        let r = if i % 4 == 3 {
            store.put_peer_records(vec![common::rec(
                0,
                i as i64 + 1,
                i as i64,
                &[&format!("user{i}")],
            )])
        } else {
            b.put(&i.to_le_bytes(), &child_value(i))
        };
        match r {
            Ok(()) => writeln!(out, "ack {i}").unwrap(),
            Err(e) => break e,
        }
        out.flush().unwrap();
        i += 1;
        assert!(i < 100_000, "the file limit never hit");
    };
    writeln!(out, "error {err}").unwrap();
    if let Error::Io { source, .. } = &err {
        writeln!(out, "errno {}", source.raw_os_error().unwrap_or(-1)).unwrap();
    }
    // Still readable, and latched.
    if i > 0 {
        assert_eq!(b.get(&0u64.to_le_bytes()).unwrap(), Some(child_value(0)));
    }
    match b.put(b"more", b"x") {
        Err(Error::Poisoned { .. }) => writeln!(out, "poisoned").unwrap(),
        other => writeln!(out, "not poisoned: {other:?}").unwrap(),
    }
    out.flush().unwrap();
}

#[test]
fn full_disk_on_a_real_file() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let t = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.peerlog");
    let mut rounds = 0;
    let mut acked: Vec<u64> = Vec::new();
    for round in 0..3 {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "fsize_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &path)
            .stderr(std::process::Stdio::inherit())
            .output()
            .unwrap();
        assert!(out.status.success(), "child failed: {:?}", out.status);
        let mut errno = None;
        let mut poisoned = false;
        let mut this_round = Vec::new();
        for line in out.stdout.lines() {
            let line = line.unwrap();
            if let Some(i) = line.strip_prefix("ack ") {
                this_round.push(i.parse::<u64>().unwrap());
            } else if let Some(e) = line.strip_prefix("errno ") {
                errno = Some(e.parse::<i32>().unwrap());
            } else if line == "poisoned" {
                poisoned = true;
            } else if line.starts_with("not poisoned") {
                panic!("{line}");
            }
        }
        assert_eq!(errno, Some(libc::EFBIG), "round {round}: the write failure");
        assert!(poisoned, "round {round}: later writes must be refused");
        if round == 0 {
            assert!(
                this_round.len() > 50,
                "filled only {} commits",
                this_round.len()
            );
        }
        acked = this_round;
        // The parent has no limit: reopen, check, and make room.
        let s = Store::open(&path).unwrap();
        let b = s.bucket("fill").unwrap();
        for &i in &acked {
            if i % 4 == 3 {
                assert_eq!(
                    s.peer_access_hash(0, i as i64 + 1).unwrap(),
                    Some(Some(i as i64))
                );
                assert_eq!(
                    s.peer_id_by_username(0, &format!("user{i}")).unwrap(),
                    Some(i as i64 + 1)
                );
            } else {
                assert_eq!(
                    b.get(&i.to_le_bytes()).unwrap(),
                    Some(child_value(i)),
                    "commit {i}"
                );
            }
        }
        let r = s.verify().unwrap();
        assert!(r.is_ok(), "round {round}: {r}");
        // Free space for the next child: drop most keys and compact.
        let mut batch = s.batch();
        for &i in acked.iter().filter(|i| *i % 4 != 3 && **i > 20) {
            batch.delete("fill", &i.to_le_bytes()).unwrap();
        }
        batch.commit().unwrap();
        s.compact().unwrap();
        drop(s);
        rounds += 1;
    }
    eprintln!(
        "io_errors: {rounds} children filled a real file to RLIMIT_FSIZE ({} KiB), last one \
         acknowledged {} commits, all present after reopen; {:.1?}",
        LIMIT >> 10,
        acked.len(),
        t.elapsed()
    );
}

/// Regression: a commit that crossed the peer fold threshold was written
/// (and under Immediate synced) and applied, then the index switch that
/// followed it failed, and `put_peer_records` returned that I/O error:
/// the caller was told "not committed" while reads (and a reopen) showed
/// the commit. The commit now returns Ok; the failure poisons the store
/// so the next write reports it.
#[test]
fn failed_index_switch_after_a_commit_does_not_fail_the_commit() {
    for on in [FaultOn::Write, FaultOn::Sync, FaultOn::SetLen] {
        let file = MemFile::new();
        let o = opts(Durability::Immediate);
        let store = Store::open_backend(Arc::new(file.clone()), o.clone()).unwrap();
        store
            .put_peer_records((1..=10).map(|i| common::rec(0, i, i, &[])).collect())
            .unwrap();
        // Immediate: the commit is one write and one sync; the next call
        // of each kind belongs to the index switch.
        let n = if on == FaultOn::SetLen { 0 } else { 1 };
        file.fail(on, n, io::ErrorKind::StorageFull, true);
        let before = store.stats().generation;
        store
            .put_peer_records((11..=60).map(|i| common::rec(0, i, i, &["x"])).collect())
            .unwrap_or_else(|e| panic!("{on:?}: the commit itself succeeded: {e}"));
        assert_eq!(
            store.stats().generation,
            before,
            "{on:?}: the switch failed"
        );
        assert_eq!(store.peer_access_hash(0, 60).unwrap(), Some(Some(60)));
        assert!(matches!(
            store.bucket("a").unwrap().put(b"k", b"v"),
            Err(Error::Poisoned { .. })
        ));
        drop(store);
        file.heal();
        let s = reopen_image(file.durable(), o).unwrap();
        assert_eq!(s.peer_access_hash(0, 60).unwrap(), Some(Some(60)), "{on:?}");
        assert_eq!(s.peer_id_by_username(0, "X").unwrap(), Some(60));
        assert!(s.verify().unwrap().is_ok());
    }
}
