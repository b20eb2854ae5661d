//! One owner per file: a second open fails with `Locked`, also while a
//! compaction runs; a dead owner's lock never blocks; files are 0600.

mod common;
use common::*;
use peerlog::{Error, Store};
use std::os::unix::fs::PermissionsExt;

#[test]
fn second_open_is_locked_with_pid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.peerlog");
    let s = Store::open(&path).unwrap();
    match Store::open(&path) {
        Err(Error::Locked {
            path: p,
            pid,
            same_process,
            read_only_holder,
            ..
        }) => {
            assert_eq!(p, path);
            assert_eq!(pid, Some(std::process::id()));
            assert!(same_process && !read_only_holder);
        }
        other => panic!("{other:?}"),
    }
    let msg = Store::open(&path).unwrap_err().to_string();
    assert!(msg.contains("l.peerlog") && msg.contains("locked"), "{msg}");
    drop(s);
    Store::open(&path).unwrap();
}

#[test]
fn lock_holds_across_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.peerlog");
    let s = Store::open(&path).unwrap();
    s.put_peer_records((1..20_000).map(|i| rec(0, i, i, &[])).collect())
        .unwrap();
    let t = {
        let s = s.clone();
        std::thread::spawn(move || {
            for i in 0..10 {
                s.put_peer_records((1..2000).map(|j| rec(0, j, j + i, &[])).collect())
                    .unwrap();
                s.compact().unwrap();
            }
        })
    };
    let mut tries = 0;
    while !t.is_finished() {
        assert!(matches!(Store::open(&path), Err(Error::Locked { .. })));
        tries += 1;
    }
    t.join().unwrap();
    assert!(tries > 0);
    assert!(matches!(Store::open(&path), Err(Error::Locked { .. })));
}

#[test]
fn created_files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.peerlog");
    let _s = Store::open(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn lock_of_a_dead_process_never_blocks() {
    // A child process opens the store and is killed while holding it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.peerlog");
    Store::open(&path)
        .unwrap()
        .bucket("b")
        .unwrap()
        .put(b"k", b"v")
        .unwrap();
    let mut child = std::process::Command::new("flock")
        .arg("-o")
        .arg(&path)
        .arg("sleep")
        .arg("30")
        .spawn()
        .expect("flock(1) is part of util-linux");
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(matches!(Store::open(&path), Err(Error::Locked { .. })));
    child.kill().unwrap();
    child.wait().unwrap();
    let s = Store::open(&path).unwrap();
    assert_eq!(
        s.bucket("b").unwrap().get(b"k").unwrap(),
        Some(b"v".to_vec())
    );
}

#[test]
fn verify_file_needs_the_file_closed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.peerlog");
    let s = Store::open(&path).unwrap();
    s.put_peer_records(vec![rec(0, 1, 2, &["x"])]).unwrap();
    assert!(matches!(
        peerlog::verify_file(&path),
        Err(Error::Locked { .. })
    ));
    drop(s);
    let r = peerlog::verify_file(&path).unwrap();
    assert!(r.is_ok(), "{r}");
}
