//! The PostgreSQL backend against a real server: the conformance suite and
//! its persistence variant, unchanged; the owner lease across processes
//! (a second owner, kill -9, a terminated connection); fencing; several
//! queue workers; bad input.
//!
//! The server comes from `PEERLOG_PG_URL` (scripts/with-postgres.sh starts
//! one and sets it). Without it every test prints why it skips; with
//! `PEERLOG_PG_REQUIRED=1` (set by .ci/run) a skip is a failure. Each test
//! works in its own accounts (and, where it needs one, its own schema).

use peerlog::postgres::{PgOptions, PgStorage};
use peerlog::{Storage, conformance};
use std::sync::atomic::{AtomicU32, Ordering};

/// The server's connection string, or `None` (after saying why) when the
/// test should skip.
fn url(test: &str) -> Option<String> {
    match std::env::var("PEERLOG_PG_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            if std::env::var("PEERLOG_PG_REQUIRED").is_ok_and(|v| v == "1") {
                panic!(
                    "{test}: PEERLOG_PG_REQUIRED=1 but PEERLOG_PG_URL is not set: run under scripts/with-postgres.sh"
                );
            }
            eprintln!(
                "{test}: skipped: PEERLOG_PG_URL is not set (run `scripts/with-postgres.sh cargo test --all-features --test postgres` to start a private server)"
            );
            None
        }
    }
}

/// An account name no other test or run uses.
fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn opts() -> PgOptions {
    PgOptions {
        dedup_max_keys: 16,
        ..PgOptions::default()
    }
}

#[test]
fn conformance_suite() {
    let Some(url) = url("conformance_suite") else {
        return;
    };
    conformance::run_with(
        &|| {
            Box::new(PgStorage::open_with(&url, &unique("conf"), opts()).unwrap())
                as Box<dyn Storage>
        },
        &conformance::Config {
            dedup_max_keys: Some(16),
        },
    );
}

#[test]
fn conformance_persistence() {
    let Some(url) = url("conformance_persistence") else {
        return;
    };
    let name = unique("persist");
    conformance::run_persistent(&|| {
        Box::new(PgStorage::open_with(&url, &name, opts()).unwrap()) as Box<dyn Storage>
    });
}

/// A plain client for administering the test server.
fn admin(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).expect("admin connection")
}

// --- Child processes -----------------------------------------------------

/// What a child process started by [`spawn_child`] does, from its env.
const CHILD_ENV: &str = "PEERLOG_PG_CHILD";

/// Not a test of its own: the entry point of the child processes the lease
/// and queue tests spawn (this same binary, run with `PEERLOG_PG_CHILD`).
/// `hold ACCOUNT`: takes the lease, saves a session, says `ready EPOCH` and
/// waits to be killed. `claim ACCOUNT`: claims one queued item, says
/// `claimed ID` and waits to be killed.
#[test]
fn child_process_entry() {
    let Ok(what) = std::env::var(CHILD_ENV) else {
        return;
    };
    let url = std::env::var("PEERLOG_PG_URL").unwrap();
    let mut words = what.splitn(2, ' ');
    let (verb, account) = (words.next().unwrap(), words.next().unwrap());
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match verb {
        "hold" => {
            let s = PgStorage::open_with(&url, account, opts()).unwrap();
            s.set_meta("holder", b"child").unwrap();
            writeln!(out, "\nready {}", s.epoch()).unwrap();
            out.flush().unwrap();
            std::thread::sleep(std::time::Duration::from_secs(600));
        }
        "claim" => {
            let mut q = peerlog::postgres::PgQueue::connect(&url, account, opts()).unwrap();
            let c = q.claim().unwrap().expect("an item to claim");
            writeln!(out, "\nclaimed {}", c.update().id).unwrap();
            out.flush().unwrap();
            std::thread::sleep(std::time::Duration::from_secs(600));
        }
        other => panic!("unknown child verb {other}"),
    }
}

struct Child {
    child: std::process::Child,
    out: std::io::BufReader<std::process::ChildStdout>,
}

impl Child {
    /// The next line the child prints.
    fn line(&mut self) -> String {
        use std::io::BufRead;
        let mut l = String::new();
        self.out.read_line(&mut l).unwrap();
        assert!(!l.is_empty(), "the child exited early");
        l.trim().to_owned()
    }
    fn kill9(&mut self) {
        // Child::kill sends SIGKILL on Unix.
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_child(url: &str, what: &str) -> Child {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, what)
        .env("PEERLOG_PG_URL", url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let out = std::io::BufReader::new(child.stdout.take().unwrap());
    Child { child, out }
}

/// What follows `marker` in the first line of the child's output that has
/// it (libtest prints its own text first, on the same line too).
fn wait_for(c: &mut Child, marker: &str) -> String {
    loop {
        let l = c.line();
        if let Some(at) = l.find(marker) {
            return l[at + marker.len()..].trim().to_owned();
        }
    }
}

// --- The owner lease -----------------------------------------------------

/// How long a new owner may wait for the lease of a holder killed with
/// kill -9: PostgreSQL ends the session as soon as the socket closes. The
/// module docs promise this bound.
const TAKEOVER_BOUND: std::time::Duration = std::time::Duration::from_secs(2);

#[test]
fn a_second_owner_is_locked_and_a_killed_holder_frees_the_lease() {
    let Some(url) = url("a_second_owner_is_locked_and_a_killed_holder_frees_the_lease") else {
        return;
    };
    let account = unique("lease");
    let mut holder = spawn_child(&url, &format!("hold {account}"));
    let child_epoch: i64 = wait_for(&mut holder, "ready").parse().unwrap();
    let child_pid = holder.child.id();

    // Another process: refused, naming the holder's host, pid and since.
    let e = PgStorage::open_with(&url, &account, opts()).unwrap_err();
    let msg = e.to_string();
    match &e {
        peerlog::Error::Locked {
            holder: Some(h),
            same_process: false,
            ..
        } => {
            assert!(h.contains(&format!("pid {child_pid}")), "{msg}");
            assert!(h.contains("host ") && h.contains("since 20"), "{msg}");
        }
        other => panic!("want Locked naming the holder, got {other:?}"),
    }
    assert!(msg.contains(&account) && msg.contains("lease"), "{msg}");
    // The same again: nothing changed by a refused open.
    assert!(matches!(
        PgStorage::open_with(&url, &account, opts()),
        Err(peerlog::Error::Locked { .. })
    ));

    // kill -9: the lease is free within the bound.
    holder.kill9();
    let killed = std::time::Instant::now();
    let owner = loop {
        match PgStorage::open_with(&url, &account, opts()) {
            Ok(s) => break s,
            Err(peerlog::Error::Locked { .. }) if killed.elapsed() < TAKEOVER_BOUND * 5 => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("taking over after kill -9: {e}"),
        }
    };
    let took = killed.elapsed();
    eprintln!("lease taken over {took:?} after kill -9 of the holder");
    assert!(took < TAKEOVER_BOUND, "takeover took {took:?}");
    assert!(owner.epoch() > child_epoch, "epoch must grow");
    assert_eq!(
        owner.meta("holder").unwrap().as_deref(),
        Some(&b"child"[..])
    );

    // In this process too: a second handle is Locked, same_process.
    match PgStorage::open_with(&url, &account, opts()) {
        Err(peerlog::Error::Locked {
            same_process: true, ..
        }) => {}
        other => panic!("want Locked (same process), got {other:?}"),
    }
    drop(owner);
    // Dropping frees the lease at once.
    PgStorage::open_with(&url, &account, opts()).unwrap();
}

fn session(key: u8) -> peerlog::Session {
    let mut s = peerlog::Session::new(2, false);
    s.auth_key = Some(peerlog::AuthKey::new([key; 256]));
    s
}

fn is_lost<T: std::fmt::Debug>(r: peerlog::Result<T>, what: &str) -> String {
    match r {
        Err(e @ peerlog::Error::LeaseLost { .. }) => e.to_string(),
        other => panic!("{what}: want LeaseLost, got {other:?}"),
    }
}

#[test]
fn a_terminated_holder_never_overwrites_the_new_owner() {
    let Some(url) = url("a_terminated_holder_never_overwrites_the_new_owner") else {
        return;
    };
    let account = unique("fence");
    let old = PgStorage::open_with(&url, &account, opts()).unwrap();
    old.save_session(&session(1)).unwrap();
    old.save_peer(&peerlog::Peer::user(5, 50)).unwrap();
    let pid = old.backend_pid().unwrap();
    let mut admin = admin(&url);
    admin
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .unwrap();

    // A new owner takes over (the session ends as the backend exits).
    let start = std::time::Instant::now();
    let new = loop {
        match PgStorage::open_with(&url, &account, opts()) {
            Ok(s) => break s,
            Err(peerlog::Error::Locked { .. }) if start.elapsed() < TAKEOVER_BOUND => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("taking over: {e}"),
        }
    };
    new.save_session(&session(2)).unwrap();
    new.save_peer(&peerlog::Peer::user(5, 51)).unwrap();
    new.save_update_state(&peerlog::UpdateState {
        pts: 2,
        ..Default::default()
    })
    .unwrap();

    // The old holder: every call fails, nothing of it lands.
    let msg = is_lost(old.save_session(&session(9)), "save_session");
    assert!(
        msg.contains(&account) && msg.contains("connection"),
        "{msg}"
    );
    is_lost(old.save_peer(&peerlog::Peer::user(5, 99)), "save_peer");
    is_lost(
        old.save_update_state(&peerlog::UpdateState {
            pts: 99,
            ..Default::default()
        }),
        "save_update_state",
    );
    is_lost(old.session(), "a read");
    assert_eq!(new.session().unwrap(), Some(session(2)));
    assert_eq!(new.access_hash(peerlog::PeerId::user(5)).unwrap(), Some(51));
    assert_eq!(new.update_state().unwrap().unwrap().pts, 2);
}

#[test]
fn a_write_checks_the_epoch_in_the_same_statement() {
    let Some(url) = url("a_write_checks_the_epoch_in_the_same_statement") else {
        return;
    };
    let account = unique("epoch");
    let s = PgStorage::open_with(&url, &account, opts()).unwrap();
    s.save_session(&session(1)).unwrap();
    // Another owner's takeover, as the lease row records it (its connection
    // is alive, so only the epoch can stop its writes).
    let mut admin = admin(&url);
    admin
        .execute(
            "UPDATE peerlog.leases SET epoch = epoch + 1, host = 'other-host', pid = 4242
             WHERE account_id = (SELECT id FROM peerlog.accounts WHERE name = $1)",
            &[&account],
        )
        .unwrap();
    let msg = is_lost(s.save_session(&session(2)), "save_session");
    assert!(msg.contains("other-host") && msg.contains("4242"), "{msg}");
    is_lost(
        s.save_peers_and_state(
            &[peerlog::Peer::user(7, 70)],
            Some(&peerlog::UpdateState::default()),
            &[],
        ),
        "save_peers_and_state",
    );
    is_lost(s.set_meta("k", b"v"), "set_meta (fenced for good)");
    let row = admin
        .query_one(
            "SELECT (SELECT count(*) FROM peerlog.peers p JOIN peerlog.accounts a ON a.id = p.account_id WHERE a.name = $1),
                    (SELECT data FROM peerlog.sessions s JOIN peerlog.accounts a ON a.id = s.account_id WHERE a.name = $1)",
            &[&account],
        )
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 0, "a fenced batch wrote peers");
    assert_eq!(
        peerlog::Session::decode(row.get(1)).unwrap(),
        session(1),
        "a fenced write replaced the session"
    );
}

// --- Queue workers --------------------------------------------------------

#[test]
fn several_workers_never_take_one_item_twice() {
    let Some(url) = url("several_workers_never_take_one_item_twice") else {
        return;
    };
    let account = unique("queue");
    let owner = PgStorage::open_with(&url, &account, opts()).unwrap();
    const N: usize = 300;
    for i in 0..N {
        assert!(owner.enqueue(&format!("u{i}"), &[i as u8]).unwrap());
    }
    let done = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for w in 0..4 {
            let (url, account, done) = (&url, &account, &done);
            s.spawn(move || {
                let mut q = peerlog::postgres::PgQueue::connect(url, account, opts()).unwrap();
                let mut mine = Vec::new();
                while let Some(c) = q.claim().unwrap() {
                    let id = c.update().id.clone();
                    // Every fifth item of worker 0 fails once, then is
                    // handled by whoever claims it next.
                    if w == 0 && mine.len() % 5 == 0 && c.update().attempts == 0 {
                        assert_eq!(c.fail("transient").unwrap(), 1);
                        continue;
                    }
                    c.ack().unwrap();
                    mine.push(id);
                }
                done.lock().unwrap().push((w, mine));
            });
        }
    });
    let done = done.into_inner().unwrap();
    let mut all: Vec<String> = done.iter().flat_map(|(_, m)| m.clone()).collect();
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(total, all.len(), "an item was handled twice");
    assert_eq!(all.len(), N, "an item was lost");
    assert!(
        done.iter().filter(|(_, m)| !m.is_empty()).count() >= 2,
        "only one worker got items: {:?}",
        done.iter().map(|(w, m)| (w, m.len())).collect::<Vec<_>>()
    );
    assert!(owner.pending(10).unwrap().is_empty());
}

#[test]
fn an_item_whose_worker_dies_is_handed_out_again() {
    let Some(url) = url("an_item_whose_worker_dies_is_handed_out_again") else {
        return;
    };
    let account = unique("dies");
    let owner = PgStorage::open_with(&url, &account, opts()).unwrap();
    owner.enqueue("first", b"1").unwrap();
    owner.enqueue("second", b"2").unwrap();
    let mut child = spawn_child(&url, &format!("claim {account}"));
    assert_eq!(wait_for(&mut child, "claimed"), "first");
    // While the child holds it, another worker gets the next item.
    let mut q = peerlog::postgres::PgQueue::connect(&url, &account, opts()).unwrap();
    {
        let c = q.claim().unwrap().unwrap();
        assert_eq!(c.update().id, "second", "SKIP LOCKED");
        drop(c); // rolled back: stays queued
    }
    child.kill9();
    // The dead worker's item comes back, attempts unchanged.
    let start = std::time::Instant::now();
    loop {
        let c = q.claim().unwrap().unwrap();
        if c.update().id == "first" {
            assert_eq!(c.update().attempts, 0);
            c.ack().unwrap();
            break;
        }
        drop(c);
        assert!(start.elapsed() < TAKEOVER_BOUND, "the item never came back");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let left: Vec<_> = owner
        .pending(10)
        .unwrap()
        .into_iter()
        .map(|u| u.id)
        .collect();
    assert_eq!(left, ["second"]);
}

// --- Bad input ------------------------------------------------------------

#[test]
fn unreachable_server_and_wrong_password_are_clear_errors() {
    let Some(_url) = url("unreachable_server_and_wrong_password_are_clear_errors") else {
        return;
    };
    let o = PgOptions {
        connect_timeout: std::time::Duration::from_secs(3),
        ..opts()
    };
    let e =
        PgStorage::open_with("host=127.0.0.1 port=1 user=x dbname=x", "a", o.clone()).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, peerlog::Error::Database { .. })
            && msg.contains("connecting to PostgreSQL 127.0.0.1:1/x")
            && msg.contains("refused"),
        "{msg}"
    );
    let e = PgStorage::open_with("host=/nonexistent/dir user=x", "a", o.clone()).unwrap_err();
    assert!(matches!(e, peerlog::Error::Database { .. }), "{e:?}");
    let e = PgStorage::open_with("port=notanumber", "a", o.clone()).unwrap_err();
    assert!(matches!(e, peerlog::Error::Invalid(_)), "{e:?}");

    match std::env::var("PEERLOG_PG_TCP_URL") {
        Ok(tcp) => {
            let secret = "wrong-Pa55word";
            let e = PgStorage::open_with(&format!("{tcp} password={secret}"), "a", o.clone())
                .unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.contains("password authentication failed")
                    && msg.contains("check the user and password")
                    && !msg.contains(secret),
                "{msg}"
            );
            let good = std::env::var("PEERLOG_PG_PASSWORD").unwrap();
            PgStorage::open_with(&format!("{tcp} password={good}"), &unique("tcp"), o).unwrap();
        }
        Err(_) => eprintln!(
            "wrong password: skipped: PEERLOG_PG_TCP_URL is not set (scripts/with-postgres.sh sets it)"
        ),
    }
}

#[test]
fn a_newer_schema_is_refused_and_left_alone() {
    let Some(url) = url("a_newer_schema_is_refused_and_left_alone") else {
        return;
    };
    let schema = format!("t_newer_{}", std::process::id());
    let o = PgOptions {
        schema: schema.clone(),
        ..opts()
    };
    let mut admin = admin(&url);
    admin
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .unwrap();
    PgStorage::open_with(&url, "a", o.clone())
        .unwrap()
        .set_meta("k", b"v")
        .unwrap();
    admin
        .batch_execute(&format!("UPDATE {schema}.schema_version SET version = 99"))
        .unwrap();
    let e = PgStorage::open_with(&url, "a", o.clone()).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, peerlog::Error::Database { .. })
            && msg.contains("version 99")
            && msg.contains("newer")
            && msg.contains(&schema),
        "{msg}"
    );
    let e = peerlog::postgres::PgQueue::connect(&url, "a", o.clone()).unwrap_err();
    assert!(e.to_string().contains("version 99"), "{e}");
    let v: i32 = admin
        .query_one(&format!("SELECT version FROM {schema}.schema_version"), &[])
        .unwrap()
        .get(0);
    assert_eq!(v, 99, "a refused schema was changed");
    // Bad schema names never reach SQL.
    for bad in ["Peerlog", "a;drop table x", ""] {
        let o = PgOptions {
            schema: bad.into(),
            ..opts()
        };
        assert!(matches!(
            PgStorage::open_with(&url, "a", o),
            Err(peerlog::Error::Invalid(_))
        ));
    }
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .unwrap();
}

#[test]
fn oversized_values_are_refused_and_nothing_is_half_written() {
    let Some(url) = url("oversized_values_are_refused_and_nothing_is_half_written") else {
        return;
    };
    let s = PgStorage::open_with(&url, &unique("big"), opts()).unwrap();
    let too_long_key = "k".repeat(peerlog::MAX_KEY_LEN + 1);
    for r in [
        s.set_meta(&too_long_key, b"v").map(|_| ()),
        s.enqueue(&too_long_key, b"v").map(|_| ()),
        s.insert_dedup_key(too_long_key.as_bytes()).map(|_| ()),
    ] {
        assert!(matches!(r, Err(peerlog::Error::TooLarge { .. })), "{r:?}");
    }
    let huge = vec![7u8; peerlog::MAX_VALUE_LEN + 1];
    assert!(matches!(
        s.set_meta("k", &huge),
        Err(peerlog::Error::TooLarge { .. })
    ));
    // The largest key and a large value are kept whole (B-tree entries
    // could not hold the key: the index is on its hash).
    let longest = "k".repeat(peerlog::MAX_KEY_LEN);
    s.set_meta(&longest, &vec![1u8; 1 << 20]).unwrap();
    assert_eq!(s.meta(&longest).unwrap().unwrap().len(), 1 << 20);
    assert!(s.insert_dedup_key(longest.as_bytes()).unwrap());
    assert!(s.has_dedup_key(longest.as_bytes()).unwrap());
    assert!(s.enqueue(&longest, b"x").unwrap());
    assert!(!s.enqueue(&longest, b"y").unwrap());
    // A NUL byte in keys, errors and names: bytes, not text.
    s.set_meta("a\0b", b"\0").unwrap();
    assert_eq!(s.meta("a\0b").unwrap().as_deref(), Some(&b"\0"[..]));
    assert!(s.meta("a").unwrap().is_none());
    let named = peerlog::Peer::user(3, 3).with_names("nul\0name", None);
    s.save_peer(&named).unwrap();
    assert_eq!(s.peer(named.id).unwrap(), Some(named));
    // A peer record the file format cannot hold fails the whole batch.
    let big_name = peerlog::Peer::user(4, 4).with_names("x".repeat(70_000), None);
    let r = s.save_peers(&[peerlog::Peer::user(1, 1), big_name]);
    assert!(matches!(r, Err(peerlog::Error::Invalid(_))), "{r:?}");
    assert!(s.peer(peerlog::PeerId::user(1)).unwrap().is_none());
    // Bot API ids and names in the forms users hold.
    let chan = peerlog::Peer::from_bot_api(-1_001_234_567_890, Some(-5))
        .unwrap()
        .with_username("@Chan_Name");
    s.save_peer(&chan).unwrap();
    assert_eq!(
        s.resolve_username("chan_NAME").unwrap(),
        Some((peerlog::PeerId::channel(1_234_567_890), Some(-5)))
    );
    s.save_peer(&peerlog::Peer::user(9, 9).with_phone("+1 555 010-0000"))
        .unwrap();
    assert_eq!(
        s.peer_by_phone("15550100000").unwrap().map(|p| p.id),
        Some(peerlog::PeerId::user(9))
    );
}

// --- Copies and the pool --------------------------------------------------

#[test]
fn an_account_copies_between_a_file_and_postgres_both_ways() {
    let Some(url) = url("an_account_copies_between_a_file_and_postgres_both_ways") else {
        return;
    };
    use peerlog::postgres::{copy_from_postgres, copy_to_postgres};
    use peerlog::{Conversation, Peer, PeerId, Store, UpdateState};
    let dir = tempfile::tempdir().unwrap();
    let file = Store::open(dir.path().join("a.peerlog")).unwrap();
    let src = file.account("bot").unwrap();
    src.save_session(&session(3)).unwrap();
    src.save_dc_auth(&peerlog::DcAuth {
        dc_id: 4,
        auth_key: peerlog::AuthKey::new([4; 256]),
        server_salt: -4,
        server_addr: None,
        port: 443,
    })
    .unwrap();
    let peers = [
        Peer::user(1, -1)
            .with_username("Alice")
            .with_phone("+44 20 7946 0000"),
        Peer::from_bot_api(-1_001_234_567_890, Some(9)).unwrap(),
        Peer {
            min: true,
            ..Peer::user(2, 2)
        },
    ];
    src.save_peers_and_state(
        &peers,
        Some(&UpdateState {
            pts: 1,
            qts: 2,
            date: 3,
            seq: 4,
        }),
        &[peerlog::ChannelState {
            channel_id: 1_234_567_890,
            pts: 77,
        }],
    )
    .unwrap();
    for k in [&b"k1"[..], b"\0k2"] {
        src.insert_dedup_key(k).unwrap();
    }
    src.enqueue("q1", b"p1").unwrap();
    src.enqueue("q2", b"p2").unwrap();
    src.mark_failed("q2", "boom").unwrap();
    src.mark_failed("q2", "bang").unwrap();
    let conv = Conversation {
        chat_id: -100,
        user_id: 5,
        name: "signup".into(),
        step: "email".into(),
        data: b"{}".to_vec(),
        created_at: 1,
        updated_at: 2,
    };
    src.save_conversation(&conv).unwrap();
    src.set_meta("m", b"v").unwrap();

    let pg = PgStorage::open_with(&url, &unique("copy"), opts()).unwrap();
    let report = copy_to_postgres(&src, &pg).unwrap();
    assert_eq!(
        (report.peers, report.queued, report.dedup_keys, report.meta),
        (3, 2, 2, 1)
    );
    // A second copy into the now full account is refused, changing nothing.
    assert!(matches!(
        copy_to_postgres(&src, &pg),
        Err(peerlog::Error::Invalid(_))
    ));

    let same = |a: &dyn Storage, b: &dyn Storage| {
        assert_eq!(a.session().unwrap(), b.session().unwrap());
        assert_eq!(a.dc_auths().unwrap(), b.dc_auths().unwrap());
        assert_eq!(a.peers().unwrap(), b.peers().unwrap());
        assert_eq!(a.update_state().unwrap(), b.update_state().unwrap());
        assert_eq!(a.channel_states().unwrap(), b.channel_states().unwrap());
        assert_eq!(a.pending(10).unwrap(), b.pending(10).unwrap());
        assert_eq!(
            a.conversation(-100, 5).unwrap(),
            b.conversation(-100, 5).unwrap()
        );
        assert_eq!(a.meta("m").unwrap(), b.meta("m").unwrap());
        for k in [&b"k1"[..], b"\0k2"] {
            assert!(b.has_dedup_key(k).unwrap());
        }
        assert_eq!(
            b.resolve_username("@alice").unwrap(),
            Some((PeerId::user(1), Some(-1)))
        );
        assert_eq!(
            b.peer_by_phone("442079460000").unwrap().map(|p| p.id),
            Some(PeerId::user(1))
        );
    };
    same(&src, &pg);

    // And back into a fresh file.
    let back_file = Store::open(dir.path().join("b.peerlog")).unwrap();
    let back = back_file.account("bot").unwrap();
    copy_from_postgres(&pg, &back).unwrap();
    same(&src, &back);
    assert!(matches!(
        copy_from_postgres(&pg, &back),
        Err(peerlog::Error::Invalid(_))
    ));
}

#[test]
fn a_pg_pool_keeps_bots_in_postgres() {
    let Some(url) = url("a_pg_pool_keeps_bots_in_postgres") else {
        return;
    };
    let schema = format!("t_pool_{}", std::process::id());
    let o = PgOptions {
        schema: schema.clone(),
        ..opts()
    };
    let pool = peerlog::postgres::PgPool::new(&url, o.clone())
        .with_idle_timeout(std::time::Duration::ZERO);
    let token = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_x";
    let bot = pool.get(token).unwrap();
    bot.save_peer(&peerlog::Peer::user(42, 0xABCD)).unwrap();
    // The same bot through its id: the same handle.
    assert!(std::sync::Arc::ptr_eq(
        &bot,
        &pool.get("123456789").unwrap()
    ));
    assert!(!format!("{pool:?}").contains("AAHdq"));
    assert_eq!(pool.keys(), ["123456789"]);
    // Owned: another process (here another pool) cannot open it.
    let other = peerlog::postgres::PgPool::new(&url, o.clone());
    assert!(matches!(
        other.get("123456789"),
        Err(peerlog::Error::Locked { .. })
    ));
    assert!(matches!(
        pool.get("../etc"),
        Err(peerlog::Error::Invalid(_))
    ));
    // In use: gc keeps it; idle: gc closes it and frees the lease.
    assert_eq!(pool.gc(), 0);
    drop(bot);
    assert_eq!(pool.gc(), 1);
    let moved = other.get("123456789").unwrap();
    assert_eq!(
        moved.access_hash(peerlog::PeerId::user(42)).unwrap(),
        Some(0xABCD)
    );
    assert_eq!(
        peerlog::postgres::accounts(&url, &o).unwrap(),
        ["123456789"]
    );
    drop(moved);
    drop(other);
    admin(&url)
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .unwrap();
}

#[test]
fn re_saving_unchanged_peers_writes_no_row() {
    let Some(url) = url("re_saving_unchanged_peers_writes_no_row") else {
        return;
    };
    let account = unique("unchanged");
    let s = PgStorage::open_with(&url, &account, opts()).unwrap();
    let batch: Vec<_> = (1..=50)
        .map(|i| {
            peerlog::Peer::user(i, i * 7)
                .with_username(format!("user_{i}"))
                .with_phone(format!("+1 555 000 {i:04}"))
        })
        .collect();
    s.save_peers(&batch).unwrap();
    let mut admin = admin(&url);
    // Row versions (xmin, ctid) of every row of the account's peers, names
    // and lease: an unchanged save must leave all of them alone.
    let versions = |admin: &mut postgres::Client| -> Vec<String> {
        admin
            .query(
                "SELECT t || ':' || xmin::text || ctid::text FROM (
                   SELECT 'p' AS t, p.xmin, p.ctid FROM peerlog.peers p JOIN peerlog.accounts a ON a.id = p.account_id WHERE a.name = $1
                   UNION ALL SELECT 'n', n.xmin, n.ctid FROM peerlog.peer_names n JOIN peerlog.accounts a ON a.id = n.account_id WHERE a.name = $1
                   UNION ALL SELECT 'l', l.xmin, l.ctid FROM peerlog.leases l JOIN peerlog.accounts a ON a.id = l.account_id WHERE a.name = $1
                 ) x ORDER BY 1",
                &[&account],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    let before = versions(&mut admin);
    assert_eq!(before.len(), 50 + 100 + 1);
    s.save_peers(&batch).unwrap();
    // The same peers in another order, with a duplicate: still nothing.
    let mut shuffled: Vec<_> = batch.iter().rev().cloned().collect();
    shuffled.push(batch[3].clone());
    s.save_peers(&shuffled).unwrap();
    assert_eq!(versions(&mut admin), before, "an unchanged save wrote rows");
    // One changed peer rewrites that row only.
    let mut changed = batch.clone();
    changed[0].access_hash = Some(-1);
    s.save_peers(&changed).unwrap();
    let after = versions(&mut admin);
    let differ = after.iter().filter(|v| !before.contains(v)).count();
    assert_eq!(differ, 1, "{before:?} -> {after:?}");
}

#[test]
fn a_local_file_caches_the_peers_of_a_pg_account() {
    let Some(url) = url("a_local_file_caches_the_peers_of_a_pg_account") else {
        return;
    };
    use peerlog::postgres::PgCached;
    use peerlog::{Peer, PeerId, Store};
    let dir = tempfile::tempdir().unwrap();
    let account = unique("cached");
    let cache = Store::open(dir.path().join("cache.peerlog")).unwrap();
    let bot = PgCached::new(
        PgStorage::open_with(&url, &account, opts()).unwrap(),
        &cache,
    )
    .unwrap();
    bot.save_peers(&[Peer::user(1, 11).with_username("Alice"), Peer::user(2, 22)])
        .unwrap();
    // Written through: both have it; the hot path answers from the file.
    assert_eq!(bot.local().access_hash(PeerId::user(1)).unwrap(), Some(11));
    assert_eq!(bot.access_hash(PeerId::user(1)).unwrap(), Some(11));
    assert_eq!(
        bot.resolve_username("@alice").unwrap(),
        Some((PeerId::user(1), Some(11)))
    );
    // A name moves in both.
    bot.save_peer(&Peer::user(2, 22).with_username("alice"))
        .unwrap();
    assert_eq!(
        bot.resolve_username("alice").unwrap().map(|r| r.0),
        Some(PeerId::user(2))
    );
    assert_eq!(
        bot.pg().resolve_username("alice").unwrap().map(|r| r.0),
        Some(PeerId::user(2))
    );
    // Reopened by the same owner next: the cache stays.
    drop(bot);
    let bot = PgCached::new(
        PgStorage::open_with(&url, &account, opts()).unwrap(),
        &cache,
    )
    .unwrap();
    assert_eq!(bot.local().access_hash(PeerId::user(2)).unwrap(), Some(22));
    drop(bot);
    // Another owner (another machine) wrote in between: the cache is dropped,
    // and a miss fills it from PostgreSQL.
    PgStorage::open_with(&url, &account, opts())
        .unwrap()
        .save_peer(&Peer::user(2, 99))
        .unwrap();
    let bot = PgCached::new(
        PgStorage::open_with(&url, &account, opts()).unwrap(),
        &cache,
    )
    .unwrap();
    assert_eq!(bot.local().peer_count().unwrap(), 0);
    assert_eq!(bot.access_hash(PeerId::user(2)).unwrap(), Some(99));
    assert_eq!(bot.local().access_hash(PeerId::user(2)).unwrap(), Some(99));
    assert_eq!(bot.access_hash(PeerId::user(3)).unwrap(), None);
}
