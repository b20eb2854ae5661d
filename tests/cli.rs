//! The `peerlog` tool run as a process on real store files: every
//! subcommand, its output (text and `--json`) and exit code; `dump` never
//! prints auth key bytes (hex or base64) or the api hash without
//! `--show-secrets`; bad input (a session string with one character
//! changed, a store held by another handle, a destination that exists, a
//! file that is not a store) gets a clear message, a non-zero exit and
//! nothing written. Session files of Telethon, Pyrogram, Kurigram and
//! grammers (`import --file`, `export --file`) in and out.

use base64::Engine;
use peerlog::{
    AuthKey, ChannelKind, Conversation, DcAuth, Peer, Session, Storage, Store, UpdateState,
};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const API_HASH: &str = "5e1f0c8a9b7d6e4f3a2b1c0d9e8f7a6b";

fn key_bytes(seed: u8) -> [u8; 256] {
    let mut k = [0u8; 256];
    for (i, b) in k.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37).wrapping_add(seed) ^ 0x5c;
    }
    k
}

fn session() -> Session {
    let mut s = Session::new(2, false);
    s.auth_key = Some(AuthKey::new(key_bytes(1)));
    s.api_id = 611335;
    s.api_hash = Some(API_HASH.into());
    s.user_id = Some(777000111);
    s.is_bot = true;
    s.username = Some("cli_test_bot".into());
    s
}

/// A store with two accounts and something in every bucket.
fn make_store(dir: &Path) -> PathBuf {
    // No child may inherit this store's lock: spawns wait.
    let _g = no_spawns();
    let path = dir.join("bot.peerlog");
    let store = Store::open(&path).unwrap();
    let bot = store.account("bot").unwrap();
    bot.save_session(&session()).unwrap();
    bot.save_dc_auth(&DcAuth {
        dc_id: 4,
        auth_key: AuthKey::new(key_bytes(9)),
        server_salt: 12345,
        server_addr: None,
        port: 443,
    })
    .unwrap();
    let mut peers = vec![
        Peer::user(1001, -5_000_001)
            .with_username("alice_cli")
            .with_phone("+1 555 123 4567")
            .with_names("Alice", Some("Cli")),
        Peer::from_bot_api(-1001234567890, Some(987654321)).unwrap(),
        Peer::channel(42, 4242, ChannelKind::Broadcast).with_username("news_cli"),
        Peer::chat(42),
        Peer::user(42, 4200),
    ];
    let mut b = Peer::user(2002, 22).with_username("helper_bot");
    b.is_bot = true;
    peers.push(b);
    for i in 0..200 {
        peers.push(Peer::user(100_000 + i, i * 3 + 1));
    }
    bot.save_peers(&peers).unwrap();
    bot.save_update_state(&UpdateState {
        pts: 101,
        qts: 7,
        date: 1_700_000_000,
        seq: 12,
    })
    .unwrap();
    bot.save_channel_pts(1234567890, 55).unwrap();
    bot.enqueue("upd-1", b"payload one").unwrap();
    bot.insert_dedup_key(b"dedup-1").unwrap();
    bot.save_conversation(&Conversation {
        chat_id: -1001234567890,
        user_id: 1001,
        name: "order".into(),
        step: "address".into(),
        data: vec![1, 2, 3],
        created_at: 1,
        updated_at: 2,
    })
    .unwrap();
    bot.set_meta("greeting", b"hello").unwrap();
    let user = store.account("user").unwrap();
    user.save_peer(&Peer::user(1001, 111).with_username("alice_other"))
        .unwrap();
    store
        .bucket("settings")
        .unwrap()
        .put(b"lang", b"en")
        .unwrap();
    store.close().unwrap();
    path
}

/// Spawns are serialized against code that has a store open: a child
/// between fork and exec holds copies of this process's descriptors, and
/// with them the `flock` of any store open at that moment. Linux lets the
/// parent go on before the child has closed them (`Command::spawn` can
/// return first), so for a moment after a test drops a store, a child of
/// another test may still hold its lock.
static SPAWN: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn no_spawns() -> std::sync::MutexGuard<'static, ()> {
    SPAWN.lock().unwrap_or_else(|e| e.into_inner())
}

/// [`Store::open_with`], waiting (up to 10 s) while a lock is held by
/// such a child only.
fn open_settled(path: &Path, opts: peerlog::Options) -> Store {
    let started = std::time::Instant::now();
    loop {
        let r = {
            let _g = no_spawns();
            Store::open_with(path, opts.clone())
        };
        match r {
            Err(peerlog::Error::Locked { .. }) if started.elapsed().as_secs() < 10 => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            r => return r.unwrap(),
        }
    }
}

fn run(args: &[&str]) -> Output {
    run_stdin(args, None)
}

fn run_stdin(args: &[&str], stdin: Option<&str>) -> Output {
    let guard = no_spawns();
    let mut child = Command::new(env!("CARGO_BIN_EXE_peerlog"))
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(guard);
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", out(o)))
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Every encoding of a key a dump could leak.
fn key_forms(k: &[u8]) -> Vec<String> {
    let hex: String = k.iter().map(|b| format!("{b:02x}")).collect();
    vec![
        hex[..64].to_string(),
        hex[..64].to_uppercase(),
        base64::engine::general_purpose::STANDARD.encode(k)[..40].to_string(),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(k)[..40].to_string(),
        format!("{:?}", &k[..16]),
    ]
}

#[test]
fn info_accounts_peers_get() {
    let dir = tempfile::tempdir().unwrap();
    let s = make_store(dir.path());

    let o = run(&["info", p(&s)]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let t = out(&o);
    assert!(t.contains("accounts      2"), "{t}");
    assert!(
        t.contains("\"bot\": 206 peers (203 users, 1 chats, 2 channels), session"),
        "{t}"
    );
    assert!(!t.contains("WARNING"), "{t}");
    let j = json(&run(&["--json", "stats", p(&s)]));
    assert_eq!(j["peers"], 207);
    assert_eq!(j["channels"], 2);
    assert_eq!(j["accounts"][1]["name"], "user");

    // A file others may read is pointed out.
    std::fs::set_permissions(&s, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = run(&["info", p(&s)]);
    assert!(
        out(&o).contains("WARNING") && out(&o).contains("chmod 600"),
        "{}",
        out(&o)
    );
    std::fs::set_permissions(&s, std::fs::Permissions::from_mode(0o600)).unwrap();

    let o = run(&["accounts", p(&s)]);
    assert_eq!(code(&o), 0);
    let t = out(&o);
    assert!(
        t.contains("\"bot\"  206 peers  session: dc 2, auth key, bot 777000111 @cli_test_bot"),
        "{t}"
    );
    assert!(t.contains("\"user\"  1 peers  no session"), "{t}");

    // Several accounts: peers needs --account.
    let o = run(&["peers", p(&s)]);
    assert_eq!(code(&o), 2, "{}", err(&o));
    assert!(
        err(&o).contains("--account") && err(&o).contains("\"bot\", \"user\""),
        "{}",
        err(&o)
    );
    let o = run(&["peers", p(&s), "--account", "nobody"]);
    assert_eq!(code(&o), 5);
    assert!(err(&o).contains("no account \"nobody\""), "{}", err(&o));

    let o = run(&["peers", p(&s), "-a", "bot", "--kind", "channel"]);
    assert_eq!(code(&o), 0);
    let text = out(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines.iter().all(|l| l.starts_with("channel")));
    let j = json(&run(&[
        "--json",
        "peers",
        p(&s),
        "-a",
        "bot",
        "--username",
        "@ALICE",
    ]));
    assert_eq!(j["count"], 1);
    assert_eq!(j["peers"][0]["access_hash"], -5_000_001);
    assert_eq!(j["peers"][0]["phone"], "15551234567");
    let j = json(&run(&[
        "--json",
        "peers",
        p(&s),
        "-a",
        "bot",
        "--kind",
        "bot",
    ]));
    assert_eq!(j["count"], 1);
    assert_eq!(j["peers"][0]["username"], "helper_bot");
    let j = json(&run(&[
        "--json",
        "peers",
        p(&s),
        "-a",
        "bot",
        "--limit",
        "5",
    ]));
    assert_eq!(j["count"], 5);

    // get: each form a user holds.
    for (q, id) in [
        ("-1001234567890", -1001234567890i64),
        ("@Alice_CLI", 1001),
        ("+1 (555) 123-4567", 1001),
        ("alice_cli", 1001),
        ("channel:42", -1000000000042),
        ("-42", -42),
    ] {
        let o = run(&["--json", "get", p(&s), q, "-a", "bot"]);
        assert_eq!(code(&o), 0, "{q}: {}", err(&o));
        let j = json(&o);
        assert_eq!(j["peers"].as_array().unwrap().len(), 1, "{q}: {j}");
        assert_eq!(j["peers"][0]["id"], id, "{q}");
    }
    // A bare 42 is a user, a chat and a channel here.
    let o = run(&["get", p(&s), "42", "-a", "bot"]);
    assert_eq!(code(&o), 0);
    assert_eq!(out(&o).lines().count(), 3, "{}", out(&o));
    // The other account's own hash.
    let o = run(&["--json", "get", p(&s), "@alice_other", "-a", "user"]);
    assert_eq!(json(&o)["peers"][0]["access_hash"], 111);
    // Not found: 1. Not a query: 5.
    let o = run(&["get", p(&s), "@nobody_here", "-a", "bot"]);
    assert_eq!(code(&o), 1);
    assert!(err(&o).contains("no peer matches"), "{}", err(&o));
    for bad in ["-1000000000000", "@a", "+12", "thing:1", "not a name"] {
        let o = run(&["get", p(&s), bad, "-a", "bot"]);
        assert_eq!(code(&o), 5, "{bad}: {}", err(&o));
        assert!(!err(&o).is_empty());
    }
}

#[test]
fn dump_redacts_secrets_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let s = make_store(dir.path());
    let secrets: Vec<String> = key_forms(&key_bytes(1))
        .into_iter()
        .chain(key_forms(&key_bytes(9)))
        .chain([
            API_HASH.to_string(),
            session().to_telethon_string().unwrap()[1..41].to_string(),
        ])
        .collect();
    for args in [
        vec!["dump"],
        vec!["--json", "dump"],
        vec!["dump", "-a", "bot"],
    ] {
        let mut a = args.clone();
        a.push(p(&s));
        let o = run(&a);
        assert_eq!(code(&o), 0, "{}", err(&o));
        let all = format!("{}{}", out(&o), err(&o));
        for secret in &secrets {
            assert!(
                !all.contains(secret.as_str()),
                "{args:?} printed a secret: {secret}"
            );
        }
        assert!(all.contains("redacted"), "{all}");
        assert!(
            all.contains("alice_cli") && all.contains("greeting"),
            "{all}"
        );
    }
    let j = json(&run(&["--json", "dump", p(&s)]));
    let bot = &j["accounts"][0];
    assert_eq!(bot["update_state"]["pts"], 101);
    assert_eq!(bot["channel_states"][0]["pts"], 55);
    assert_eq!(bot["queue"][0]["payload"]["text"], "payload one");
    assert_eq!(bot["conversations"][0]["step"], "address");
    assert_eq!(bot["meta"]["greeting"]["text"], "hello");
    assert_eq!(bot["dedup_keys"], 1);
    assert_eq!(bot["peers"].as_array().unwrap().len(), 206);
    assert_eq!(j["raw_buckets"]["settings"][0]["value"]["text"], "en");
    assert_eq!(j["secrets_shown"], false);

    // Asked for: the key in hex and the api hash.
    let o = run(&["--json", "dump", p(&s), "--show-secrets"]);
    let j = json(&o);
    let hex: String = key_bytes(1).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(j["accounts"][0]["session"]["auth_key"], hex.as_str());
    assert_eq!(j["accounts"][0]["session"]["api_hash"], API_HASH);
    let o = run(&["dump", p(&s), "--show-secrets"]);
    assert!(out(&o).contains(&hex));
}

#[test]
fn verify_compact_repair_backup() {
    let dir = tempfile::tempdir().unwrap();
    let s = make_store(dir.path());
    let o = run(&["verify", p(&s)]);
    assert_eq!(code(&o), 0, "{}{}", out(&o), err(&o));
    assert!(out(&o).contains(": ok (207 peers"), "{}", out(&o));
    // No progress line: stderr is not a terminal here.
    assert_eq!(err(&o), "");

    let o = run(&["compact", p(&s)]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(out(&o).contains("->"), "{}", out(&o));
    let j = json(&run(&["--json", "verify", p(&s)]));
    assert_eq!(j["ok"], true);

    // Backup: a verified copy, mode 0600; never over a file.
    let b = dir.path().join("copy.peerlog");
    let o = run(&["backup", p(&s), p(&b)]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(
        out(&o).contains("207 peers") && out(&o).contains("verified"),
        "{}",
        out(&o)
    );
    assert_eq!(
        std::fs::metadata(&b).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(peerlog::verify_file(&b).unwrap().is_ok());
    let before = std::fs::read(&b).unwrap();
    let o = run(&["backup", p(&s), p(&b)]);
    assert_eq!(code(&o), 6);
    assert!(err(&o).contains("exists"), "{}", err(&o));
    assert!(std::fs::read(&b).unwrap() == before);

    // Damage a peer record in the compacted segment: verify lists it (1),
    // repair salvages it (0), verify is clean again.
    let mut bytes = std::fs::read(&s).unwrap();
    // Every copy (the live segment's, and stale ones in free space).
    let at: Vec<usize> = (0..bytes.len() - 9)
        .filter(|&i| &bytes[i..i + 9] == b"alice_cli")
        .collect();
    assert!(!at.is_empty(), "the username is in the file");
    for i in at {
        bytes[i] ^= 0x20;
    }
    std::fs::write(&s, &bytes).unwrap();
    let o = run(&["verify", p(&s)]);
    assert_eq!(code(&o), 1, "{}{}", out(&o), err(&o));
    assert!(out(&o).contains("PROBLEM at byte"), "{}", out(&o));
    let j = json(&run(&["--json", "verify", p(&s)]));
    assert_eq!(j["ok"], false);
    assert!(!j["problems"].as_array().unwrap().is_empty());
    let o = run(&["repair", p(&s)]);
    assert_eq!(code(&o), 0, "{}{}", out(&o), err(&o));
    assert!(out(&o).contains("salvaged peer 1001"), "{}", out(&o));
    assert_eq!(code(&run(&["verify", p(&s)])), 0);
    let o = run(&["--json", "get", p(&s), "1001", "-a", "bot"]);
    assert_eq!(json(&o)["peers"][0]["access_hash"], -5_000_001);
}

#[test]
fn export_and_import_session_strings() {
    let dir = tempfile::tempdir().unwrap();
    let s = make_store(dir.path());
    let mut strings = Vec::new();
    for fmt in ["telethon", "pyrogram", "gramjs"] {
        let o = run(&["export", p(&s), "-a", "bot", "--string", fmt]);
        assert_eq!(code(&o), 0, "{fmt}: {}", err(&o));
        let text = out(&o).trim().to_string();
        let back = Session::from_session_string(&text).unwrap();
        assert_eq!(back.auth_key, session().auth_key, "{fmt}");
        assert_eq!(back.dc_id, 2);
        let j = json(&run(&[
            "--json",
            "export",
            p(&s),
            "-a",
            "bot",
            "--string",
            fmt,
        ]));
        assert_eq!(j["session_string"], text.as_str());
        strings.push(text);
    }
    // To a new file, 0600; never over one.
    let f = dir.path().join("bot.string");
    let o = run(&[
        "export",
        p(&s),
        "-a",
        "bot",
        "--string",
        "telethon",
        "-o",
        p(&f),
    ]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert_eq!(std::fs::read_to_string(&f).unwrap().trim(), strings[0]);
    assert_eq!(
        std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!out(&o).contains(&strings[0]));
    let o = run(&[
        "export",
        p(&s),
        "-a",
        "bot",
        "--string",
        "telethon",
        "-o",
        p(&f),
    ]);
    assert_eq!(code(&o), 6);
    // No session: 5.
    let o = run(&["export", p(&s), "-a", "user", "--string", "telethon"]);
    assert_eq!(code(&o), 5);
    assert!(err(&o).contains("has no session"), "{}", err(&o));

    // Import from stdin into a new store: created, default account.
    for (i, text) in strings.iter().enumerate() {
        let n = dir.path().join(format!("new{i}.peerlog"));
        let o = run_stdin(
            &["import", p(&n), "--string", "-"],
            Some(&format!("{text}\n")),
        );
        assert_eq!(code(&o), 0, "{}", err(&o));
        assert!(!out(&o).contains(text.as_str()) && !err(&o).contains(text.as_str()));
        {
            // Open only while no child can inherit it: the CLI runs next.
            let _g = no_spawns();
            let store = Store::open(&n).unwrap();
            let got = store.account("default").unwrap().session().unwrap();
            assert_eq!(got.unwrap().auth_key, session().auth_key);
        }
        // Again: the account has a session now.
        let before = std::fs::read(&n).unwrap();
        let o = run_stdin(&["import", p(&n), "--string", "-"], Some(text));
        assert_eq!(code(&o), 6, "{}", err(&o));
        assert!(err(&o).contains("--replace"));
        assert!(
            std::fs::read(&n).unwrap() == before,
            "the refused import wrote"
        );
        let o = run_stdin(&["import", p(&n), "--string", "-", "--replace"], Some(text));
        assert_eq!(code(&o), 0, "{}", err(&o));
    }
    // As an argument: works, with a note about shell history.
    let n = dir.path().join("arg.peerlog");
    let o = run(&["import", p(&n), "-a", "main", "--string", &strings[0]]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(err(&o).contains("shell history"));
}

#[test]
fn a_damaged_session_string_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let existing = make_store(dir.path());
    let good = session().to_telethon_string().unwrap();
    let mut bad: Vec<String> = Vec::new();
    // The version prefix, a character outside the alphabet, one dropped,
    // one added, and the DC id byte (the first after the prefix) changed.
    bad.push(format!("2{}", &good[1..]));
    for at in [1, good.len() / 2, good.len() - 2] {
        let mut b = good.clone().into_bytes();
        b[at] = b'!';
        bad.push(String::from_utf8(b).unwrap());
        let mut d = good.clone();
        d.remove(at);
        bad.push(d);
        let mut a = good.clone();
        a.insert(at, 'A');
        bad.push(a);
    }
    bad.push(format!("1/{}", &good[2..]));
    let before = std::fs::read(&existing).unwrap();
    for (i, b) in bad.iter().enumerate() {
        if Session::from_session_string(b).is_ok() {
            panic!("case {i} decodes; pick another change");
        }
        let n = dir.path().join(format!("never{i}.peerlog"));
        let o = run_stdin(&["import", p(&n), "--string", "-"], Some(b));
        assert_eq!(code(&o), 5, "case {i}: {}", err(&o));
        assert!(err(&o).contains("session string"), "{}", err(&o));
        assert!(!err(&o).contains(b.as_str()));
        assert!(!n.exists(), "case {i} created a store");
        let o = run_stdin(
            &["import", p(&existing), "-a", "user", "--string", "-"],
            Some(b),
        );
        assert_eq!(code(&o), 5);
    }
    let o = run_stdin(&["import", p(&existing), "--string", "-"], Some("  \n"));
    assert_eq!(code(&o), 5);
    assert!(
        std::fs::read(&existing).unwrap() == before,
        "a refused import wrote"
    );
}

#[test]
fn a_store_held_by_a_running_bot() {
    let dir = tempfile::tempdir().unwrap();
    let s = make_store(dir.path());
    // This test process is the bot: it holds the store open for writing.
    let held = open_settled(&s, Default::default());
    let pid = std::process::id().to_string();
    let b = dir.path().join("b.peerlog");
    for args in [
        vec!["info", p(&s)],
        vec!["verify", p(&s)],
        vec!["dump", p(&s)],
        vec!["compact", p(&s)],
        vec!["repair", p(&s)],
        vec!["backup", p(&s), p(&b)],
    ] {
        let o = run(&args);
        assert_eq!(code(&o), 3, "{args:?}: {}{}", out(&o), err(&o));
        let e = err(&o);
        assert!(e.contains(&pid), "{args:?}: {e}");
        assert!(e.contains("backup_to"), "{args:?}: {e}");
    }
    let o = run_stdin(
        &["import", p(&s), "-a", "user", "--string", "-"],
        Some(&session().to_telethon_string().unwrap()),
    );
    assert_eq!(code(&o), 3);
    assert!(!b.exists());
    // The way out the message names.
    held.backup_to(&b).unwrap();
    drop(held);
    let o = run(&["--json", "info", p(&b)]);
    assert_eq!(json(&o)["peers"], 207);

    // A read-only holder (another peerlog reading it) blocks writes only.
    let ro = open_settled(
        &s,
        peerlog::Options {
            read_only: true,
            create: false,
            ..Default::default()
        },
    );
    assert_eq!(code(&run(&["info", p(&s)])), 0);
    let o = run(&["compact", p(&s)]);
    assert_eq!(code(&o), 3);
    assert!(err(&o).contains("read-only"), "{}", err(&o));
    drop(ro);
}

#[test]
fn not_a_store_missing_files_and_usage() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "hello, not a store\n").unwrap();
    let before = std::fs::read(&text).unwrap();
    let b = dir.path().join("b.peerlog");
    for args in [
        vec!["info", p(&text)],
        vec!["verify", p(&text)],
        vec!["dump", p(&text)],
        vec!["compact", p(&text)],
        vec!["repair", p(&text)],
        vec!["backup", p(&text), p(&b)],
    ] {
        let o = run(&args);
        assert_eq!(code(&o), 4, "{args:?}: {}{}", out(&o), err(&o));
        assert!(err(&o).contains("is not a peerlog store"), "{}", err(&o));
    }
    let o = run_stdin(
        &["import", p(&text), "--string", "-"],
        Some(&session().to_telethon_string().unwrap()),
    );
    assert_eq!(code(&o), 4, "{}", err(&o));
    assert!(std::fs::read(&text).unwrap() == before);
    assert!(!b.exists());

    // Missing: never created by a read or maintenance command.
    let missing = dir.path().join("missing.peerlog");
    for args in [
        vec!["info", p(&missing)],
        vec!["verify", p(&missing)],
        vec!["compact", p(&missing)],
        vec!["export", p(&missing), "--string", "telethon"],
    ] {
        let o = run(&args);
        assert_eq!(code(&o), 4, "{args:?}");
        assert!(err(&o).contains("no such file"), "{}", err(&o));
        assert!(!missing.exists());
    }
    let j = json(&run(&["--json", "info", p(&missing)]));
    assert_eq!(j["exit_code"], 4);

    // Usage: 2, and --help lists the exit codes.
    assert_eq!(code(&run(&[])), 2);
    assert_eq!(code(&run(&["frobnicate"])), 2);
    assert_eq!(code(&run(&["export", "x.peerlog", "--string", "yaml"])), 2);
    let o = run(&["--help"]);
    assert_eq!(code(&o), 0);
    assert!(out(&o).contains("Exit codes:"));
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/session_files")
        .join(name)
}

/// Peer lines of `peerlog peers`, sorted: what two stores are compared by.
fn peer_lines(store: &Path) -> Vec<String> {
    let o = run(&["peers", p(store)]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let mut v: Vec<String> = out(&o).lines().map(str::to_string).collect();
    v.sort();
    v
}

/// `import --file` of each library's `.session` fixture, then `export
/// --file` in every format and the export imported again: the same peers.
#[test]
fn session_files_in_and_out() {
    let dir = tempfile::tempdir().unwrap();
    for (fixture_name, format) in [
        ("telethon.session", "Telethon"),
        ("pyrogram.session", "Pyrogram"),
        ("kurigram.session", "Kurigram"),
        ("grammers.session", "grammers"),
    ] {
        let store = dir.path().join(format!("{fixture_name}.peerlog"));
        let o = run(&["import", p(&store), "--file", p(&fixture(fixture_name))]);
        assert_eq!(code(&o), 0, "{fixture_name}: {}{}", out(&o), err(&o));
        assert!(out(&o).contains(format), "{fixture_name}: {}", out(&o));
        assert_eq!(
            std::fs::metadata(&store).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let lines = peer_lines(&store);
        assert!(!lines.is_empty(), "{fixture_name}");
        if fixture_name == "telethon.session" {
            // Bot API ids, usernames and phones as users hold them.
            let o = run(&["get", p(&store), "-1001234567890"]);
            assert_eq!(code(&o), 0, "{}", err(&o));
            assert!(out(&o).contains("@somechannel"), "{}", out(&o));
            assert_eq!(code(&run(&["get", p(&store), "@ALICE"])), 0);
            assert_eq!(code(&run(&["get", p(&store), "+1 555 123 4567"])), 0);
        }
        for to in ["telethon", "pyrogram", "kurigram", "grammers"] {
            let file = dir.path().join(format!("{fixture_name}.{to}.session"));
            let o = run(&[
                "--json",
                "export",
                p(&store),
                "--file",
                p(&file),
                "--format",
                to,
            ]);
            assert_eq!(code(&o), 0, "{fixture_name} -> {to}: {}", err(&o));
            assert_eq!(json(&o)["format"], to);
            assert_eq!(
                std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
                0o600
            );
            // Never overwritten.
            let before = std::fs::read(&file).unwrap();
            let o = run(&["export", p(&store), "--file", p(&file), "--format", to]);
            assert_eq!(code(&o), 6, "{}", err(&o));
            assert_eq!(std::fs::read(&file).unwrap(), before);
            // Back in: the peers each format can hold come back. Telethon
            // and grammers keep every peer of these fixtures; Pyrogram's
            // schema has one username per peer, like the others here.
            let again = dir.path().join(format!("{fixture_name}.{to}.peerlog"));
            let o = run(&["--json", "import", p(&again), "--file", p(&file)]);
            assert_eq!(code(&o), 0, "{fixture_name} -> {to} -> back: {}", err(&o));
            let back = json(&o);
            assert_eq!(back["format"], to);
            let back_lines = peer_lines(&again);
            if to != "telethon" {
                // Telethon keeps no min peers and no hashless peers.
                assert_eq!(back_lines.len(), lines.len(), "{fixture_name} -> {to}");
            }
        }
    }
}

/// Bad session files: a clear message, the documented exit code, and
/// nothing written (no new store, an existing one unchanged).
#[test]
fn bad_session_files_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.session");
    std::fs::write(&text, "this is not SQLite").unwrap();
    let fresh = dir.path().join("fresh.peerlog");
    let o = run(&["import", p(&fresh), "--file", p(&text)]);
    assert_eq!(code(&o), 5, "{}", err(&o));
    assert!(err(&o).contains("not a SQLite"), "{}", err(&o));
    assert!(!fresh.exists());

    // An unknown schema version: the fixture with its version row changed.
    let newer = dir.path().join("newer.session");
    std::fs::copy(fixture("telethon.session"), &newer).unwrap();
    let _ = std::fs::set_permissions(&newer, std::fs::Permissions::from_mode(0o600));
    let st = Command::new("sqlite3")
        .arg(&newer)
        .arg("UPDATE version SET version = 99;")
        .status();
    if st.is_ok_and(|s| s.success()) {
        let o = run(&["import", p(&fresh), "--file", p(&newer)]);
        assert_eq!(code(&o), 5, "{}", err(&o));
        assert!(err(&o).contains("99"), "{}", err(&o));
        assert!(!fresh.exists());
    } else {
        println!("skipped the version case: no sqlite3 command");
    }

    // Into an account that holds data; and a store held by a running bot.
    let s = make_store(dir.path());
    let o = run(&[
        "import",
        p(&s),
        "-a",
        "bot",
        "--file",
        p(&fixture("telethon.session")),
    ]);
    assert_eq!(code(&o), 6, "{}", err(&o));
    assert!(err(&o).contains("not empty"), "{}", err(&o));
    let held = open_settled(&s, Default::default());
    let o = run(&[
        "import",
        p(&s),
        "-a",
        "new",
        "--file",
        p(&fixture("pyrogram.session")),
    ]);
    assert_eq!(code(&o), 3, "{}", err(&o));
    drop(held);
    let o = run(&["--json", "accounts", p(&s)]);
    assert_eq!(code(&o), 0);
    assert!(!out(&o).contains("\"new\""), "{}", out(&o));

    // Usage: both or neither of --string / --file.
    assert_eq!(code(&run(&["import", p(&fresh)])), 2);
    assert_eq!(
        code(&run(&[
            "import",
            p(&fresh),
            "--string",
            "-",
            "--file",
            p(&text)
        ])),
        2
    );
    assert_eq!(
        code(&run(&["export", p(&s), "--file", "x.session"])),
        2,
        "--format is required with --file"
    );
}

/// `copy-to-pg` and `copy-from-pg` against a real server (from
/// `PEERLOG_PG_URL`, which scripts/with-postgres.sh sets; skipped without
/// it, a failure with `PEERLOG_PG_REQUIRED=1`): the peers come back the
/// same; a copy into an account that holds data is refused (exit 6).
#[test]
fn accounts_to_postgres_and_back() {
    let url = match std::env::var("PEERLOG_PG_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => {
            assert!(
                std::env::var("PEERLOG_PG_REQUIRED").as_deref() != Ok("1"),
                "PEERLOG_PG_REQUIRED=1 but PEERLOG_PG_URL is not set"
            );
            println!("skipped: PEERLOG_PG_URL is not set (run under scripts/with-postgres.sh)");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let s = make_store(dir.path());
    let name = format!("cli-{}-{}", std::process::id(), line!());
    let o = run(&[
        "--json",
        "copy-to-pg",
        p(&s),
        "-a",
        "bot",
        "--to",
        &name,
        "--url",
        &url,
    ]);
    assert_eq!(code(&o), 0, "{}{}", out(&o), err(&o));
    assert_eq!(json(&o)["peers"], 206);
    // Again: the PostgreSQL account now holds data.
    let o = run(&[
        "copy-to-pg",
        p(&s),
        "-a",
        "bot",
        "--to",
        &name,
        "--url",
        &url,
    ]);
    assert_eq!(code(&o), 6, "{}", err(&o));

    let back = dir.path().join("back.peerlog");
    let o = run(&["copy-from-pg", p(&back), "--from", &name, "--url", &url]);
    assert_eq!(code(&o), 0, "{}{}", out(&o), err(&o));
    let a = run(&["peers", p(&s), "-a", "bot"]);
    let b = run(&["peers", p(&back), "-a", &name]);
    assert_eq!(code(&b), 0, "{}", err(&b));
    let (mut a, mut b): (Vec<String>, Vec<String>) = (
        out(&a).lines().map(str::to_string).collect(),
        out(&b).lines().map(str::to_string).collect(),
    );
    a.sort();
    b.sort();
    assert_eq!(a, b);
    // An account the server does not have: an error, and nothing created.
    let none = dir.path().join("none.peerlog");
    let o = run(&[
        "copy-from-pg",
        p(&none),
        "--from",
        &format!("{name}-missing"),
        "--url",
        &url,
    ]);
    assert_eq!(code(&o), 5, "{}", err(&o));
    assert!(!none.exists());
    // No server: a usage error naming what to do.
    let o = Command::new(env!("CARGO_BIN_EXE_peerlog"))
        .args(["copy-from-pg", p(&none), "--from", "x"])
        .env_remove("PEERLOG_PG_URL")
        .output()
        .unwrap();
    assert_eq!(code(&o), 2, "{}", err(&o));
    assert!(err(&o).contains("PEERLOG_PG_URL"), "{}", err(&o));
}

// --- Session files (import/export --file) --------------------------------

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/session_files");
const FILE_FORMATS: [&str; 4] = ["telethon", "pyrogram", "kurigram", "grammers"];

fn fixture_of(format: &str) -> PathBuf {
    Path::new(FIXTURES).join(format!("{format}.session"))
}

/// `peers --json` of a store, keyed by Bot API id.
fn peers_of(store: &Path) -> std::collections::BTreeMap<i64, serde_json::Value> {
    let o = run(&["--json", "peers", p(store)]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    json(&o)["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["id"].as_i64().unwrap(), v.clone()))
        .collect()
}

/// The files of a directory (temporary files an export left would show).
fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn import_session_files_of_each_library() {
    let dir = tempfile::tempdir().unwrap();
    for format in FILE_FORMATS {
        let before = std::fs::read(fixture_of(format)).unwrap();
        let s = dir.path().join(format!("{format}.peerlog"));
        // Format recognised from the tables.
        let o = run(&["import", p(&s), "--file", p(&fixture_of(format))]);
        assert_eq!(code(&o), 0, "{format}: {}", err(&o));
        let t = out(&o);
        assert!(
            t.to_lowercase()
                .contains(&format!("imported {format} session file")),
            "{t}"
        );
        assert!(t.contains("into account \"default\""), "{t}");
        assert!(
            std::fs::read(fixture_of(format)).unwrap() == before,
            "the import wrote to its source"
        );
        // The Bot API channel id, with its access hash, in every format.
        let o = run(&["get", p(&s), "-1001234567890"]);
        assert_eq!(code(&o), 0, "{format}: {}", err(&o));
        assert!(
            out(&o).contains("channel  -1001234567890  hash 7777"),
            "{}",
            out(&o)
        );
        // A user with a negative access hash; a basic chat by its Bot API id.
        let o = run(&["get", p(&s), "123456789"]);
        assert!(out(&o).contains("hash -4242424242424242"), "{}", out(&o));
        assert_eq!(code(&run(&["get", p(&s), "-456789"])), 0, "{format}");
        // Usernames and phones where the format keeps them (grammers' does not).
        if format != "grammers" {
            let o = run(&["get", p(&s), "@helper_bot"]);
            assert_eq!(code(&o), 0, "{format}: {}", err(&o));
            assert!(out(&o).contains("987654321  hash 4660"), "{}", out(&o));
            let o = run(&["get", p(&s), "+1 555 123 4567"]);
            assert_eq!(code(&o), 0, "{format}: {}", err(&o));
            assert!(out(&o).contains("123456789"), "{}", out(&o));
            let o = run(&["peers", p(&s), "--username", "@HELPER"]);
            assert!(out(&o).contains("@helper_bot"), "{}", out(&o));
        }
        // The session came across (no secrets in the listing).
        let j = json(&run(&["--json", "accounts", p(&s)]));
        assert_eq!(
            j["accounts"][0]["session"]["has_auth_key"], true,
            "{format}"
        );
        // --json: the report, parsed.
        let s2 = dir.path().join(format!("{format}-json.peerlog"));
        let o = run(&[
            "--json",
            "import",
            p(&s2),
            "-a",
            "main",
            "--file",
            p(&fixture_of(format)),
            "--format",
            format,
        ]);
        assert_eq!(code(&o), 0, "{format}: {}", err(&o));
        let j = json(&o);
        assert_eq!(j["format"], format);
        assert_eq!(j["account"], "main");
        assert_eq!(j["counts"]["sessions"], 1);
        assert_eq!(
            j["counts"]["peers"].as_u64().unwrap(),
            peers_of(&s).len() as u64
        );
        assert!(j["skipped"].is_array());
        assert_eq!(peers_of(&s), peers_of(&s2), "{format}");
    }
    // What is skipped is said, with the reason.
    let o = run(&[
        "import",
        p(&dir.path().join("t2.peerlog")),
        "--file",
        p(&fixture_of("telethon")),
    ]);
    assert!(out(&o).contains("skipped 2 sent_files rows"), "{}", out(&o));
    // A Kurigram file read as Kurigram: several usernames per peer.
    let o = run(&[
        "get",
        p(&dir.path().join("kurigram.peerlog")),
        "@alice_collectible",
    ]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    // No auth key bytes in any output.
    let key: Vec<u8> = (0..256u32).map(|i| ((i * 7 + 1) % 256) as u8).collect();
    let o = run(&[
        "--json",
        "import",
        p(&dir.path().join("t3.peerlog")),
        "--file",
        p(&fixture_of("telethon")),
    ]);
    for f in key_forms(&key) {
        assert!(!out(&o).contains(&f) && !err(&o).contains(&f));
    }
}

#[test]
fn export_session_files_and_import_them_again() {
    let dir = tempfile::tempdir().unwrap();
    for src in FILE_FORMATS {
        let a = dir.path().join(format!("{src}.peerlog"));
        let o = run(&["import", p(&a), "--file", p(&fixture_of(src))]);
        assert_eq!(code(&o), 0, "{src}: {}", err(&o));
        let peers_a = peers_of(&a);
        for dst in FILE_FORMATS {
            let f = dir.path().join(format!("{src}-to-{dst}.session"));
            let o = run(&["export", p(&a), "--file", p(&f), "--format", dst]);
            assert_eq!(code(&o), 0, "{src} -> {dst}: {}", err(&o));
            assert!(
                out(&o)
                    .to_lowercase()
                    .contains(&format!("exported {dst} session file")),
                "{}",
                out(&o)
            );
            assert_eq!(
                std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
                0o600
            );
            let j = json(&run(&[
                "--json",
                "export",
                p(&a),
                "--file",
                p(&dir.path().join(format!("{src}-to-{dst}-j.session"))),
                "--format",
                dst,
            ]));
            assert_eq!(j["format"], dst);
            // Peers the format cannot hold are reported, by count.
            let skipped_peers: u64 = j["skipped"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["what"] == "peers")
                .map(|s| s["count"].as_u64().unwrap())
                .sum();
            assert_eq!(
                j["counts"]["peers"].as_u64().unwrap() + skipped_peers,
                peers_a.len() as u64,
                "{src} -> {dst}"
            );

            let b = dir.path().join(format!("{src}-to-{dst}.peerlog"));
            let o = run(&["import", p(&b), "--file", p(&f)]);
            assert_eq!(code(&o), 0, "{src} -> {dst}: {}", err(&o));
            let peers_b = peers_of(&b);
            if src == dst {
                // Back to its own format: every peer, every field.
                assert_eq!(peers_a, peers_b, "{src} -> {dst}");
                continue;
            }
            // Another format: every peer it holds has its id, kind and
            // access hash; usernames and phones where it keeps them.
            assert_eq!(peers_b.len() as u64 + skipped_peers, peers_a.len() as u64);
            for (id, pb) in &peers_b {
                let pa = &peers_a[id];
                for field in ["kind", "access_hash", "min"] {
                    assert_eq!(pa[field], pb[field], "{src} -> {dst}: {id} {field}");
                }
                if dst != "grammers" {
                    for field in ["username", "phone"] {
                        assert_eq!(pa[field], pb[field], "{src} -> {dst}: {id} {field}");
                    }
                }
            }
        }
    }
}

#[test]
fn bad_session_files_of_every_kind_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let existing = make_store(dir.path());
    let before = std::fs::read(&existing).unwrap();
    // A text file, a session string in a file, an empty file, a SQLite
    // database cut in half, a damaged page, and unknown schema versions
    // (built as tests/migrate.rs does: the fixture with its version changed).
    let mut cases: Vec<(String, Vec<u8>, &str)> = vec![
        (
            "notes.session".into(),
            b"hello, not a database\n".to_vec(),
            "not a SQLite database",
        ),
        (
            "string.session".into(),
            session().to_telethon_string().unwrap().into_bytes(),
            "not a SQLite database",
        ),
        ("empty.session".into(), Vec::new(), "not a SQLite database"),
    ];
    let orig = std::fs::read(fixture_of("telethon")).unwrap();
    cases.push((
        "half.session".into(),
        orig[..orig.len() / 2].to_vec(),
        "damaged",
    ));
    let mut damaged = orig.clone();
    for (k, x) in damaged[4096..8192].iter_mut().enumerate() {
        *x = (k * 37 + 1) as u8;
    }
    cases.push(("damaged.session".into(), damaged, "damaged"));
    for (i, (format, sql, v)) in [
        ("telethon", "UPDATE version SET version = 8", 8),
        ("kurigram", "UPDATE version SET number = 99", 99),
        ("grammers", "PRAGMA user_version = 2", 2),
    ]
    .into_iter()
    .enumerate()
    {
        let f = dir.path().join(format!("v{i}.session"));
        std::fs::copy(fixture_of(format), &f).unwrap();
        rusqlite::Connection::open(&f)
            .unwrap()
            .execute_batch(sql)
            .unwrap();
        let bytes = std::fs::read(&f).unwrap();
        std::fs::remove_file(&f).unwrap();
        let want: &'static str =
            Box::leak(format!("schema version {v} is not supported").into_boxed_str());
        cases.push((format!("version{v}.session"), bytes, want));
    }
    for (name, bytes, want) in &cases {
        let f = dir.path().join(name);
        std::fs::write(&f, bytes).unwrap();
        // Into a new store: refused, and no store created.
        let n = dir.path().join(format!("never-{name}.peerlog"));
        let o = run(&["import", p(&n), "--file", p(&f)]);
        assert_eq!(code(&o), 5, "{name}: {}{}", out(&o), err(&o));
        let e = err(&o);
        assert!(
            e.contains(name.as_str()) && e.to_lowercase().contains(&want.to_lowercase()),
            "{name}: {e}"
        );
        assert!(!n.exists(), "{name}: a store was created");
        // Into an existing store's new account: refused, the store unchanged.
        let o = run(&[
            "--json",
            "import",
            p(&existing),
            "-a",
            "new",
            "--file",
            p(&f),
        ]);
        assert_eq!(code(&o), 5, "{name}: {}", err(&o));
        assert_eq!(json(&o)["exit_code"], 5);
        assert!(
            std::fs::read(&existing).unwrap() == before,
            "{name}: the store changed"
        );
    }
    // A missing session file.
    let o = run(&[
        "import",
        p(&existing),
        "-a",
        "new",
        "--file",
        p(&dir.path().join("nope.session")),
    ]);
    assert_eq!(code(&o), 5);
    assert!(err(&o).contains("no such session file"), "{}", err(&o));
    // The wrong format forced: the file does not have its tables.
    let o = run(&[
        "import",
        p(&existing),
        "-a",
        "new",
        "--file",
        p(&fixture_of("telethon")),
        "--format",
        "grammers",
    ]);
    assert_eq!(code(&o), 5, "{}", err(&o));
    // An account that already holds peers or a session: 6.
    for acct in ["bot", "user"] {
        let o = run(&[
            "import",
            p(&existing),
            "-a",
            acct,
            "--file",
            p(&fixture_of("pyrogram")),
        ]);
        assert_eq!(code(&o), 6, "{acct}: {}", err(&o));
        assert!(err(&o).contains("is not empty"), "{}", err(&o));
    }
    assert!(
        std::fs::read(&existing).unwrap() == before,
        "a refused import wrote"
    );

    // Export: an existing destination is never replaced (6), nothing left.
    let sub = dir.path().join("out");
    std::fs::create_dir(&sub).unwrap();
    let dest = sub.join("bot.session");
    std::fs::write(&dest, b"keep me").unwrap();
    for format in FILE_FORMATS {
        let o = run(&[
            "export",
            p(&existing),
            "-a",
            "bot",
            "--file",
            p(&dest),
            "--format",
            format,
        ]);
        assert_eq!(code(&o), 6, "{format}: {}", err(&o));
        assert!(err(&o).contains("exists"), "{}", err(&o));
    }
    assert_eq!(std::fs::read(&dest).unwrap(), b"keep me");
    assert_eq!(files_in(&sub), vec!["bot.session".to_string()]);
    // An account without a session: 5, no file.
    let d2 = sub.join("user.session");
    let o = run(&[
        "export",
        p(&existing),
        "-a",
        "user",
        "--file",
        p(&d2),
        "--format",
        "telethon",
    ]);
    assert_eq!(code(&o), 5, "{}", err(&o));
    assert!(err(&o).contains("no session"), "{}", err(&o));
    assert!(!d2.exists());
    // A missing store: 4, nothing created.
    let o = run(&[
        "export",
        p(&dir.path().join("missing.peerlog")),
        "--file",
        p(&d2),
        "--format",
        "telethon",
    ]);
    assert_eq!(code(&o), 4);
    assert_eq!(files_in(&sub), vec!["bot.session".to_string()]);

    // Usage: both --string and --file, neither, --file without --format
    // on export, --format without --file, --replace with --file.
    for args in [
        vec!["import", p(&existing), "--string", "-", "--file", p(&dest)],
        vec!["import", p(&existing)],
        vec!["export", p(&existing), "--file", p(&d2)],
        vec![
            "export",
            p(&existing),
            "--string",
            "telethon",
            "--format",
            "telethon",
        ],
        vec!["import", p(&existing), "--file", p(&dest), "--replace"],
        vec![
            "import",
            p(&existing),
            "--file",
            p(&dest),
            "--format",
            "yaml",
        ],
    ] {
        let o = run(&args);
        assert_eq!(code(&o), 2, "{args:?}: {}", err(&o));
    }
    assert!(std::fs::read(&existing).unwrap() == before);
    assert!(!d2.exists());
}

#[test]
fn session_files_and_a_store_held_by_a_running_bot() {
    let dir = tempfile::tempdir().unwrap();
    let s = make_store(dir.path());
    let held = open_settled(&s, Default::default());
    let before = std::fs::read(&s).unwrap();
    let pid = std::process::id().to_string();
    let dest = dir.path().join("bot.session");
    let o = run(&[
        "import",
        p(&s),
        "-a",
        "new",
        "--file",
        p(&fixture_of("telethon")),
    ]);
    assert_eq!(code(&o), 3, "{}", err(&o));
    assert!(
        err(&o).contains(&pid) && err(&o).contains("backup_to"),
        "{}",
        err(&o)
    );
    let o = run(&[
        "--json",
        "export",
        p(&s),
        "-a",
        "bot",
        "--file",
        p(&dest),
        "--format",
        "telethon",
    ]);
    assert_eq!(code(&o), 3, "{}", err(&o));
    assert_eq!(json(&o)["exit_code"], 3);
    assert!(!dest.exists());
    assert!(
        std::fs::read(&s).unwrap() == before,
        "the held store changed"
    );
    drop(held);
    // Once the bot has stopped: both work.
    let o = run(&[
        "export",
        p(&s),
        "-a",
        "bot",
        "--file",
        p(&dest),
        "--format",
        "telethon",
    ]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let o = run(&["import", p(&s), "-a", "new", "--file", p(&dest)]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    // The bot's peers that Telethon keeps came back into the new account.
    let o = run(&["get", p(&s), "-a", "new", "-1001234567890"]);
    assert!(out(&o).contains("hash 987654321"), "{}", out(&o));
    let o = run(&["get", p(&s), "-a", "new", "+15551234567"]);
    assert!(out(&o).contains("@alice_cli"), "{}", out(&o));
}
