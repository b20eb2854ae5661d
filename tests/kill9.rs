//! kill -9: a child process (this test binary, re-executed) opens a real
//! store file with `Durability::Immediate` and commits in a loop (raw
//! bucket batches with deletes, peer records whose usernames move between
//! peers, compactions), printing one line per acknowledged commit. The
//! parent kills it with SIGKILL at a seeded random moment (sometimes
//! while it is still opening the store), reopens the file, checks that it
//! holds exactly the state after some commit at or past the last one
//! acknowledged, and that `verify()` is clean, then starts the next child
//! on the same file.
//!
//! `PEERLOG_KILLS=N` sets the number of kills (default 200),
//! `PEERLOG_KILL9_SEED` the seed.

mod common;
use common::model::{Model, Rng, Step, apply_model, apply_store};
use common::rec;
use peerlog::{Durability, Options, Store};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "PEERLOG_KILL9_CHILD";
const START_ENV: &str = "PEERLOG_KILL9_START";

fn opts() -> Options {
    Options {
        durability: Durability::Immediate,
        log_size: 16 << 10,
        peer_fold_min: 24,
        compact_min_dead: 4 << 10,
        ..Options::default()
    }
}

/// Commit number `i`: a function of `i` only, so the parent can replay
/// any prefix.
fn commit(i: u64) -> Step {
    if i % 3 == 2 {
        let id = (i / 3 % 97) as i64 + 1;
        Step::Peers(vec![rec(0, id, i as i64, &[&format!("u{}", i % 41)])])
    } else {
        let key = |k: u64| format!("k{}", k % 50).into_bytes();
        let len = (i * 37 % 900) as usize;
        let value: Vec<u8> = (0..len).map(|j| (i as usize + j) as u8).collect();
        let mut ops = vec![
            ("a".to_string(), key(i), Some(value)),
            (
                "a".to_string(),
                b"last".to_vec(),
                Some(i.to_le_bytes().to_vec()),
            ),
        ];
        if i.is_multiple_of(7) {
            ops.push(("a".to_string(), key(i * 3), None));
        }
        Step::Batch(ops, false)
    }
}

/// The child: runs only when re-executed by the parent.
#[test]
fn kill9_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let start: u64 = std::env::var(START_ENV).unwrap().parse().unwrap();
    let store = Store::open_with(&path, opts()).unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "open").unwrap();
    out.flush().unwrap();
    for i in start.. {
        apply_store(&store, &commit(i)).unwrap();
        writeln!(out, "ack {i}").unwrap();
        out.flush().unwrap();
        if i % 61 == 60 {
            store.compact().unwrap();
        }
    }
}

/// The last commit a recovered store holds: `last` in bucket `a` and the
/// peers' access hashes are commit numbers.
fn last_commit(s: &Store) -> Option<u64> {
    let raw = s
        .bucket("a")
        .unwrap()
        .get(b"last")
        .unwrap()
        .map(|v| u64::from_le_bytes(v.try_into().unwrap()));
    let peers = s
        .peer_ids(0)
        .unwrap()
        .into_iter()
        .filter_map(|id| s.peer_access_hash(0, id).unwrap().flatten())
        .map(|h| h as u64)
        .max();
    raw.max(peers)
}

#[test]
fn kill9_loses_nothing_acknowledged() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let kills: u64 = std::env::var("PEERLOG_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let seed: u64 = std::env::var("PEERLOG_KILL9_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(9);
    let mut rng = Rng(seed);
    let started = Instant::now();
    // tmpfs when there is one: a process kill keeps the page cache, so the
    // disk adds nothing here but time.
    let dir = match std::fs::metadata("/dev/shm") {
        Ok(m) if m.is_dir() => tempfile::tempdir_in("/dev/shm").unwrap(),
        _ => tempfile::tempdir().unwrap(),
    };
    let path = dir.path().join("kill9.peerlog");
    let exe = std::env::current_exe().unwrap();
    // `model` is the state after commit `pos - 1` (commits 0..pos).
    let mut model = Model::default();
    let mut pos = 0u64;
    let mut acked_total = 0u64;
    let mut during_open = 0;
    for k in 0..kills {
        let target = match rng.next_u64() % 10 {
            0 => 0, // kill while it opens (or recovers) the store
            1..4 => 1 + rng.next_u64() % 4,
            _ => 1 + rng.next_u64() % 40,
        };
        let delay_us = rng.next_u64() % 2000;
        let mut child = Command::new(&exe)
            .args(["--exact", "kill9_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &path)
            .env(START_ENV, pos.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap());
        let mut acked: Option<u64> = None;
        let mut seen = 0;
        let mut line = String::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while seen < target {
            line.clear();
            if lines.read_line(&mut line).unwrap() == 0 {
                panic!("kill {k}: child exited early: {:?}", child.wait());
            }
            if let Some(i) = line.trim().strip_prefix("ack ") {
                acked = Some(i.parse().unwrap());
                seen += 1;
            }
            assert!(Instant::now() < deadline, "child too slow");
        }
        if target == 0 {
            during_open += 1;
        } else {
            std::thread::sleep(Duration::from_micros(delay_us));
        }
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "kill {k}: the child must die by the signal"
        );
        // Lines printed before the kill were acknowledged too.
        for l in lines.lines() {
            if let Some(i) = l.unwrap().trim().strip_prefix("ack ") {
                acked = Some(i.parse().unwrap());
            }
        }
        let s = Store::open_with(&path, opts())
            .unwrap_or_else(|e| panic!("kill {k}: reopen after SIGKILL failed: {e}"));
        let last = last_commit(&s);
        if let Some(a) = acked {
            acked_total += a + 1 - pos;
            assert!(
                last.is_some_and(|l| l >= a),
                "kill {k}: commit {a} was acknowledged, the store holds up to {last:?}"
            );
        }
        let upto = last.map_or(0, |l| l + 1);
        assert!(
            upto >= pos,
            "kill {k}: the store went back from {pos} to {upto}"
        );
        while pos < upto {
            apply_model(&mut model, &commit(pos));
            pos += 1;
        }
        let got = Model::read(&s);
        assert!(
            got == model,
            "kill {k}: the store does not hold exactly commits 0..{pos}"
        );
        model.check_lookups(&s).unwrap();
        let r = s.verify().unwrap();
        assert!(r.is_ok(), "kill {k}: {r}");
        drop(s);
    }
    eprintln!(
        "kill9: {kills} kills survived ({during_open} during open), {pos} commits in the file, \
         {acked_total} acknowledged and all present; {:.1?}",
        started.elapsed()
    );
}
