//! Session files of Telethon, Pyrogram, Kurigram and grammers moved into a
//! peerlog account and back (feature `migrate`).
//!
//! The fixtures in `tests/fixtures/session_files/` are built by `make.sh`
//! from the `.sql` scripts beside them, whose DDL is copied verbatim from
//! each library's source (see the README there). Each test here checks
//! every value against numbers written down independently of the
//! importer; the round trips compare every row of every table.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use peerlog::migrate::{
    ImportReport, SessionFileError, SessionFileFormat, export_session_file, import_session_file,
};
use peerlog::{Account, ChannelKind, ChannelState, Error, PeerId, Storage, Store, UpdateState};
use rusqlite::Connection;
use rusqlite::types::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/session_files");

fn fixture(name: &str) -> PathBuf {
    Path::new(FIXTURES).join(name)
}

/// The auth key bytes the `.sql` scripts write: `(i * 7 + seed) % 256`.
fn key(seed: u32) -> [u8; 256] {
    std::array::from_fn(|i| ((i as u32 * 7 + seed) % 256) as u8)
}

fn account() -> Account {
    Store::memory().account("bot").unwrap()
}

fn skipped(report: &ImportReport, what: &str) -> u64 {
    report
        .skipped
        .iter()
        .filter(|s| s.what == what)
        .map(|s| s.count)
        .sum()
}

/// A copy of a fixture in a fresh directory (the fixtures stay untouched).
fn copy(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join(name);
    std::fs::copy(fixture(name), &to).unwrap();
    (dir, to)
}

/// Every row of every table (sorted), and the schema version.
fn dump(path: &Path) -> Vec<(String, Vec<Vec<Value>>)> {
    let conn =
        Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut out = Vec::new();
    let uv: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    out.push(("user_version".to_owned(), vec![vec![Value::Integer(uv)]]));
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap();
    let tables: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for t in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM {t}")).unwrap();
        let n = stmt.column_count();
        let mut rows: Vec<Vec<Value>> = stmt
            .query_map([], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect())
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        rows.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
        out.push((t, rows));
    }
    out
}

fn table<'a>(d: &'a [(String, Vec<Vec<Value>>)], name: &str) -> &'a Vec<Vec<Value>> {
    &d.iter().find(|(t, _)| t == name).unwrap().1
}

fn schema(path: &Path) -> Vec<String> {
    let conn = Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT type || ' ' || name FROM sqlite_master ORDER BY name")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn i(v: i64) -> Value {
    Value::Integer(v)
}
fn t(v: &str) -> Value {
    Value::Text(v.to_owned())
}
const N: Value = Value::Null;

/// Exports `account` as `format` into a new temporary directory.
fn export(account: &Account, format: SessionFileFormat) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.session");
    export_session_file(account, format, &path).unwrap();
    (dir, path)
}

/// file → peerlog → file → peerlog → file: the second and third files are
/// the same, row for row (what peerlog keeps is a fixed point).
fn second_pass_is_identical(first: &Path, format: SessionFileFormat) {
    let a = account();
    import_session_file(first, Some(format), &a).unwrap();
    let (_d, again) = export(&a, format);
    assert_eq!(
        dump(first),
        dump(&again),
        "{format}: second pass changed rows"
    );
}

// --- Telethon ------------------------------------------------------------

#[test]
fn telethon_import_every_value() {
    let path = fixture("telethon.session");
    assert_eq!(
        SessionFileFormat::detect(&path).unwrap(),
        SessionFileFormat::Telethon
    );
    let a = account();
    let r = import_session_file(&path, None, &a).unwrap();
    assert_eq!(r.format, SessionFileFormat::Telethon);
    assert_eq!(r.version, 7);

    let s = a.session().unwrap().unwrap();
    assert_eq!(s.dc_id, 2);
    assert_eq!(s.server_addr, Some("149.154.167.51".parse().unwrap()));
    assert_eq!(s.port, 443);
    assert_eq!(s.auth_key.as_ref().unwrap().as_bytes(), &key(1));
    assert!(!s.test_mode);
    assert_eq!(s.user_id, Some(777000111));
    assert_eq!(s.date, 1700000000);

    let alice = a.peer(PeerId::user(123456789)).unwrap().unwrap();
    assert_eq!(alice.access_hash, Some(-4242424242424242));
    assert_eq!(alice.username.as_deref(), Some("alice"));
    assert_eq!(alice.phone.as_deref(), Some("15551234567"));
    assert_eq!(alice.first_name.as_deref(), Some("Alice Liddell"));
    assert_eq!(alice.updated_at, 1700000001);
    assert_eq!(
        a.peer_by_phone("+1 555 123 4567").unwrap().unwrap().id,
        alice.id
    );
    assert_eq!(a.peer_by_username("@ALICE").unwrap().unwrap().id, alice.id);

    // An id above 2^32 stays a user.
    assert_eq!(a.access_hash(PeerId::user(5000000001)).unwrap(), Some(1));
    assert_eq!(a.access_hash(PeerId::user(987654321)).unwrap(), Some(4660));
    // hash 0 of a user is kept as the value Telethon would send.
    assert_eq!(a.access_hash(PeerId::user(222222222)).unwrap(), Some(0));
    let chat = a.peer(PeerId::chat(456789)).unwrap().unwrap();
    assert_eq!(chat.access_hash, None);
    assert_eq!(chat.first_name.as_deref(), Some("Old Group"));
    // -100… is a channel, never user 1234567890.
    assert_eq!(a.peer(PeerId::user(1234567890)).unwrap(), None);
    let ch = a.peer(PeerId::channel(1234567890)).unwrap().unwrap();
    assert_eq!(ch.access_hash, Some(7777));
    assert_eq!(ch.username.as_deref(), Some("somechannel"));
    assert_eq!(
        a.resolve_username("SomeChannel").unwrap(),
        Some((PeerId::channel(1234567890), Some(7777)))
    );
    let mega = a.peer(PeerId::channel(9876543210)).unwrap().unwrap();
    assert_eq!((mega.access_hash, mega.updated_at), (Some(-1), 0));
    // The refused username is dropped, the peer and its phone kept.
    let short = a.peer(PeerId::user(333333333)).unwrap().unwrap();
    assert_eq!(
        (short.username, short.phone.as_deref()),
        (None, Some("447700900123"))
    );
    assert_eq!(a.peer_count().unwrap(), 8);

    assert_eq!(
        a.update_state().unwrap(),
        Some(UpdateState {
            pts: 1000,
            qts: 20,
            date: 1700000123,
            seq: 300
        })
    );
    assert_eq!(
        a.channel_states().unwrap(),
        vec![
            ChannelState {
                channel_id: 1234567890,
                pts: 55
            },
            ChannelState {
                channel_id: 9876543210,
                pts: 66
            }
        ]
    );

    assert_eq!(r.counts.sessions, 1);
    assert_eq!(r.counts.peers, 8);
    assert_eq!(r.counts.usernames, 4);
    assert_eq!(r.counts.phones, 2);
    assert_eq!(r.counts.update_states, 1);
    assert_eq!(r.counts.channel_pts, 2);
    assert_eq!(skipped(&r, "sent_files rows"), 2);
    assert_eq!(skipped(&r, "entities rows"), 1);
    assert_eq!(skipped(&r, "usernames"), 1);
    let text = r.to_string();
    assert!(text.contains("skipped 2 sent_files rows"), "{text}");
    assert!(text.contains("-2000000000000"), "{text}");
}

#[test]
fn telethon_round_trip_every_row() {
    let a = account();
    let src = fixture("telethon.session");
    import_session_file(&src, None, &a).unwrap();
    let (_d, out) = export(&a, SessionFileFormat::Telethon);
    assert_eq!(schema(&src), schema(&out));
    let (before, after) = (dump(&src), dump(&out));
    assert_eq!(table(&before, "version"), table(&after, "version"));
    assert_eq!(table(&before, "sessions"), table(&after, "sessions"));
    // Entities: every row but the reported ones (the id peerlog cannot
    // hold; the username it refuses).
    let mut want: Vec<Vec<Value>> = table(&before, "entities")
        .iter()
        .filter(|r| r[0] != i(-2000000000000))
        .cloned()
        .map(|mut r| {
            if r[0] == i(333333333) {
                r[2] = N;
            }
            r
        })
        .collect();
    want.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    assert_eq!(&want, table(&after, "entities"));
    // sent_files: reported and skipped.
    assert_eq!(table(&after, "sent_files").len(), 0);
    // update_state: the account's row whole; a channel's id and pts (its
    // qts, date and seq are not kept: Telethon reads only the pts).
    let ub = table(&before, "update_state");
    let ua = table(&after, "update_state");
    assert_eq!(ub.len(), ua.len());
    for (b, a) in ub.iter().zip(ua) {
        if b[0] == i(0) {
            assert_eq!(b, a);
        } else {
            assert_eq!((&b[0], &b[1], &b[2], &b[4]), (&a[0], &a[1], &a[2], &a[4]));
        }
    }
    second_pass_is_identical(&out, SessionFileFormat::Telethon);
}

// --- Pyrogram / Kurigram --------------------------------------------------

#[test]
fn pyrogram_import_every_value() {
    let path = fixture("pyrogram.session");
    assert_eq!(
        SessionFileFormat::detect(&path).unwrap(),
        SessionFileFormat::Pyrogram
    );
    let a = account();
    let r = import_session_file(&path, None, &a).unwrap();
    assert_eq!((r.format, r.version), (SessionFileFormat::Pyrogram, 3));
    let s = a.session().unwrap().unwrap();
    assert_eq!((s.dc_id, s.api_id, s.test_mode), (2, 12345, false));
    assert_eq!(s.auth_key.as_ref().unwrap().as_bytes(), &key(2));
    assert_eq!(
        (s.date, s.user_id, s.is_bot),
        (1700000000, Some(777000111), true)
    );
    // No address in the file: the DC's well-known one, as Pyrogram uses.
    assert_eq!(s.server_addr, Some("149.154.167.51".parse().unwrap()));
    assert_eq!(s.port, 443);

    let me = a.peer(PeerId::user(777000111)).unwrap().unwrap();
    assert!(me.is_self && me.is_bot);
    assert_eq!(me.username.as_deref(), Some("my_own_bot"));
    let alice = a.peer(PeerId::user(123456789)).unwrap().unwrap();
    assert_eq!(alice.access_hash, Some(-4242424242424242));
    assert!(!alice.is_bot);
    assert_eq!(
        (alice.phone.as_deref(), alice.updated_at),
        (Some("15551234567"), 1700000011)
    );
    assert!(a.peer(PeerId::user(987654321)).unwrap().unwrap().is_bot);
    assert_eq!(
        a.peer(PeerId::chat(456789)).unwrap().unwrap().access_hash,
        None
    );
    let ch = a.peer(PeerId::channel(1234567890)).unwrap().unwrap();
    assert_eq!(ch.channel_kind, Some(ChannelKind::Broadcast));
    assert_eq!(ch.access_hash, Some(7777));
    let mega = a.peer(PeerId::channel(9876543210)).unwrap().unwrap();
    assert_eq!(mega.channel_kind, Some(ChannelKind::Megagroup));
    assert_eq!(mega.username.as_deref(), Some("mega_group"));
    let big = a.peer(PeerId::user(5000000001)).unwrap().unwrap();
    assert_eq!(
        (big.access_hash, big.phone.as_deref()),
        (None, Some("447700900123"))
    );
    // "user" with a channel id: neither a user nor a channel, reported.
    assert_eq!(a.peer(PeerId::channel(5555555555)).unwrap(), None);
    assert_eq!(skipped(&r, "peers rows"), 1);
    assert_eq!(a.peer_count().unwrap(), 7);
    assert_eq!(a.update_state().unwrap(), None);
    assert_eq!(
        (r.counts.peers, r.counts.usernames, r.counts.phones),
        (7, 5, 2)
    );
}

#[test]
fn pyrogram_round_trip_every_row() {
    let a = account();
    let src = fixture("pyrogram.session");
    import_session_file(&src, None, &a).unwrap();
    let (_d, out) = export(&a, SessionFileFormat::Pyrogram);
    assert_eq!(schema(&src), schema(&out));
    let (before, after) = (dump(&src), dump(&out));
    assert_eq!(table(&before, "version"), table(&after, "version"));
    assert_eq!(table(&before, "sessions"), table(&after, "sessions"));
    let want: Vec<Vec<Value>> = table(&before, "peers")
        .iter()
        .filter(|r| r[0] != i(-1005555555555))
        .cloned()
        .collect();
    assert_eq!(&want, table(&after, "peers"));
    second_pass_is_identical(&out, SessionFileFormat::Pyrogram);
}

#[test]
fn kurigram_import_every_value() {
    let path = fixture("kurigram.session");
    assert_eq!(
        SessionFileFormat::detect(&path).unwrap(),
        SessionFileFormat::Kurigram
    );
    let a = account();
    let r = import_session_file(&path, None, &a).unwrap();
    assert_eq!((r.format, r.version), (SessionFileFormat::Kurigram, 7));
    let s = a.session().unwrap().unwrap();
    assert_eq!((s.dc_id, s.api_id, s.port), (4, 24680, 443));
    assert_eq!(s.server_addr, Some("149.154.167.91".parse().unwrap()));
    assert_eq!(s.auth_key.as_ref().unwrap().as_bytes(), &key(3));
    assert_eq!(
        (s.user_id, s.is_bot, s.test_mode),
        (Some(123456789), false, false)
    );

    let alice = a.peer(PeerId::user(123456789)).unwrap().unwrap();
    assert!(alice.is_self);
    assert_eq!(alice.username.as_deref(), Some("alice"));
    assert_eq!(alice.usernames, vec!["alice_collectible".to_owned()]);
    assert_eq!(
        a.resolve_username("Alice_Collectible").unwrap().unwrap().0,
        alice.id
    );
    let forum = a.peer(PeerId::channel(1111111111)).unwrap().unwrap();
    assert_eq!(forum.channel_kind, Some(ChannelKind::Megagroup));
    assert_eq!(forum.username.as_deref(), Some("the_forum"));
    // A phone in the form a user types is stored as its digits.
    let big = a.peer(PeerId::user(5000000001)).unwrap().unwrap();
    assert_eq!(a.peer_by_phone("447700900123").unwrap().unwrap().id, big.id);
    assert_eq!(
        a.update_state().unwrap(),
        Some(UpdateState {
            pts: 1000,
            qts: 0,
            date: 1700000123,
            seq: 300
        })
    );
    // Kurigram keys channel rows by the Bot API id; peerlog by the bare id.
    assert_eq!(a.channel_pts(1234567890).unwrap(), Some(55));
    assert_eq!(a.channel_pts(9876543210).unwrap(), Some(66));
    assert_eq!(r.counts.usernames, 5);
    assert_eq!(skipped(&r, "peer types"), 1);
    assert_eq!(skipped(&r, "channel update_state qts/date/seq"), 1);
}

#[test]
fn kurigram_round_trip_every_row() {
    let a = account();
    let src = fixture("kurigram.session");
    import_session_file(&src, None, &a).unwrap();
    let (_d, out) = export(&a, SessionFileFormat::Kurigram);
    assert_eq!(schema(&src), schema(&out));
    let (before, after) = (dump(&src), dump(&out));
    for t in ["version", "sessions", "usernames"] {
        assert_eq!(table(&before, t), table(&after, t), "table {t}");
    }
    // Peers: the forum comes back a supergroup, the typed phone as digits
    // (both reported / documented).
    let want: Vec<Vec<Value>> = table(&before, "peers")
        .iter()
        .cloned()
        .map(|mut r| {
            if r[2] == t("forum") {
                r[2] = t("supergroup");
            }
            if r[3] == t("+44 7700 900123") {
                r[3] = t("447700900123");
            }
            r
        })
        .collect();
    assert_eq!(&want, table(&after, "peers"));
    // update_state: NULL qts reads as 0; a channel row keeps id and pts.
    assert_eq!(
        table(&after, "update_state"),
        &vec![
            vec![i(-1001234567890), i(55), N, N, N],
            vec![i(-1009876543210), i(66), N, N, N],
            vec![i(0), i(1000), i(0), i(1700000123), i(300)],
        ]
    );
    second_pass_is_identical(&out, SessionFileFormat::Kurigram);
}

#[test]
fn kurigram_v5_upgraded_file() {
    let path = fixture("kurigram_v5.session");
    assert_eq!(
        SessionFileFormat::detect(&path).unwrap(),
        SessionFileFormat::Kurigram
    );
    let a = account();
    let r = import_session_file(&path, None, &a).unwrap();
    assert_eq!(r.version, 5);
    let s = a.session().unwrap().unwrap();
    // Test servers, DC 1: the address Kurigram's version 7 upgrade would fill.
    assert!(s.test_mode);
    assert_eq!(s.server_addr, Some("149.154.175.10".parse().unwrap()));
    assert_eq!(s.port, 80);
    assert_eq!(s.auth_key.as_ref().unwrap().as_bytes(), &key(4));
    let me = a.peer(PeerId::user(555000555)).unwrap().unwrap();
    assert_eq!(
        (me.username.as_deref(), me.is_self),
        (Some("me_myself"), true)
    );
    // peers.username (NULL) and the usernames table together.
    let g = a.peer(PeerId::channel(1234567890)).unwrap().unwrap();
    assert_eq!(g.username.as_deref(), Some("group_one"));
    assert_eq!(g.usernames, vec!["group_two".to_owned()]);
    assert_eq!(a.update_state().unwrap().unwrap().pts, 10);
    // Out as version 7 and back: the same account.
    let (_d, out) = export(&a, SessionFileFormat::Kurigram);
    let b = account();
    import_session_file(&out, None, &b).unwrap();
    assert_eq!(a.session().unwrap(), b.session().unwrap());
    assert_eq!(a.peers().unwrap(), b.peers().unwrap());
    assert_eq!(a.update_state().unwrap(), b.update_state().unwrap());
}

// --- grammers -----------------------------------------------------------

#[test]
fn grammers_import_every_value() {
    let path = fixture("grammers.session");
    assert_eq!(
        SessionFileFormat::detect(&path).unwrap(),
        SessionFileFormat::Grammers
    );
    let a = account();
    let r = import_session_file(&path, None, &a).unwrap();
    assert_eq!((r.format, r.version), (SessionFileFormat::Grammers, 1));
    let s = a.session().unwrap().unwrap();
    assert_eq!(s.dc_id, 2);
    assert_eq!(s.server_addr, Some("149.154.167.41".parse().unwrap()));
    assert_eq!(s.port, 443);
    assert_eq!(s.auth_key.as_ref().unwrap().as_bytes(), &key(5));
    assert_eq!((s.user_id, s.is_bot), (Some(777000111), true));
    let auths = a.dc_auths().unwrap();
    assert_eq!(
        auths.iter().map(|x| x.dc_id).collect::<Vec<_>>(),
        vec![2, 4]
    );
    assert_eq!(auths[1].auth_key.as_bytes(), &key(6));
    assert_eq!(
        auths[1].server_addr,
        Some("149.154.167.92".parse().unwrap())
    );
    assert_eq!((r.counts.dc_options, r.counts.dc_auths), (5, 2));

    let me = a.peer(PeerId::user(777000111)).unwrap().unwrap();
    assert!(me.is_self && me.is_bot);
    assert_eq!(me.access_hash, Some(1111));
    let alice = a.peer(PeerId::user(123456789)).unwrap().unwrap();
    assert!(!alice.is_self && !alice.is_bot);
    assert!(a.peer(PeerId::user(987654321)).unwrap().unwrap().is_bot);
    assert_eq!(
        a.peer(PeerId::user(5000000001))
            .unwrap()
            .unwrap()
            .access_hash,
        None
    );
    assert_eq!(
        a.peer(PeerId::chat(456789)).unwrap().unwrap().access_hash,
        None
    );
    let kind = |id| a.peer(PeerId::channel(id)).unwrap().unwrap().channel_kind;
    assert_eq!(kind(1234567890), Some(ChannelKind::Broadcast));
    assert_eq!(kind(9876543210), Some(ChannelKind::Megagroup));
    assert_eq!(kind(2222222222), Some(ChannelKind::Gigagroup));
    assert_eq!(kind(3333333333), None);
    assert_eq!(kind(4444444444), None);
    assert_eq!(skipped(&r, "peer subtypes"), 1);
    assert_eq!(a.peer_count().unwrap(), 10);
    assert_eq!(
        a.update_state().unwrap(),
        Some(UpdateState {
            pts: 1000,
            qts: 20,
            date: 1700000123,
            seq: 300
        })
    );
    assert_eq!(a.channel_pts(1234567890).unwrap(), Some(55));
    assert_eq!(a.channel_pts(9876543210).unwrap(), Some(66));
}

#[test]
fn grammers_round_trip_every_row() {
    let a = account();
    let src = fixture("grammers.session");
    import_session_file(&src, None, &a).unwrap();
    let (_d, out) = export(&a, SessionFileFormat::Grammers);
    assert_eq!(schema(&src), schema(&out));
    let (before, after) = (dump(&src), dump(&out));
    for t in [
        "user_version",
        "dc_home",
        "dc_option",
        "update_state",
        "channel_state",
    ] {
        assert_eq!(table(&before, t), table(&after, t), "table {t}");
    }
    // Every peer row; the community subtype (reported) comes back NULL.
    let want: Vec<Vec<Value>> = table(&before, "peer_info")
        .iter()
        .cloned()
        .map(|mut r| {
            if r[2] == i(16) {
                r[2] = N;
            }
            r
        })
        .collect();
    assert_eq!(&want, table(&after, "peer_info"));
    second_pass_is_identical(&out, SessionFileFormat::Grammers);
}

#[cfg(feature = "grammers")]
#[path = "common/grammers_sqlite.rs"]
#[allow(dead_code)]
mod grammers_sqlite;

/// An account imported from a grammers file opens, through peerlog's
/// grammers adapter, as the session grammers itself reads from that file
/// (`common/grammers_sqlite.rs` decodes it as `SqliteSession` does).
#[cfg(feature = "grammers")]
#[test]
fn grammers_import_opens_in_the_adapter_as_grammers_reads_it() {
    use grammers_session::types::PeerInfo;
    let path = fixture("grammers.session");
    let want = grammers_sqlite::read_grammers_sqlite(&path).unwrap();
    let a = account();
    import_session_file(&path, None, &a).unwrap();
    let got = peerlog::grammers::PeerlogSession::from_account(a)
        .unwrap()
        .export()
        .unwrap();
    assert_eq!(got.home_dc, want.home_dc);
    assert_eq!(got.dc_options, want.dc_options);
    assert_eq!(got.updates_state, want.updates_state);
    assert_eq!(got.peer_infos.len(), want.peer_infos.len());
    for (id, w) in &want.peer_infos {
        let g = &got.peer_infos[id];
        // grammers reads a NULL user subtype as "unknown"; peerlog keeps
        // plain booleans, so the adapter says "no".
        let w = match w.clone() {
            PeerInfo::User {
                id,
                auth,
                bot,
                is_self,
            } => PeerInfo::User {
                id,
                auth,
                bot: Some(bot.unwrap_or(false)),
                is_self: Some(is_self.unwrap_or(false)),
            },
            other => other,
        };
        assert_eq!(g, &w, "peer {id:?}");
    }
}

// --- Across formats -----------------------------------------------------

/// Telethon → peerlog → Kurigram → peerlog: what both formats hold is the
/// same account.
#[test]
fn telethon_to_kurigram_keeps_the_account() {
    let a = account();
    import_session_file(&fixture("telethon.session"), None, &a).unwrap();
    let (_d, out) = export(&a, SessionFileFormat::Kurigram);
    let b = account();
    let r = import_session_file(&out, None, &b).unwrap();
    assert_eq!(r.format, SessionFileFormat::Kurigram);
    let (sa, sb) = (a.session().unwrap().unwrap(), b.session().unwrap().unwrap());
    assert_eq!(sa.auth_key, sb.auth_key);
    assert_eq!(
        (sa.dc_id, sa.server_addr, sa.port),
        (sb.dc_id, sb.server_addr, sb.port)
    );
    assert_eq!(sa.user_id, sb.user_id);
    for p in a.peers().unwrap() {
        let q = b.peer(p.id).unwrap().unwrap();
        assert_eq!(
            (p.access_hash, &p.username, &p.phone),
            (q.access_hash, &q.username, &q.phone)
        );
    }
    assert_eq!(a.peer_count().unwrap(), b.peer_count().unwrap());
    assert_eq!(a.update_state().unwrap(), b.update_state().unwrap());
    assert_eq!(a.channel_states().unwrap(), b.channel_states().unwrap());
}

/// What a format cannot hold is reported on export, never dropped quietly.
#[test]
fn export_reports_what_the_format_cannot_hold() {
    let a = account();
    import_session_file(&fixture("kurigram.session"), None, &a).unwrap();
    a.save_peer(&peerlog::Peer {
        min: true,
        ..peerlog::Peer::user(42424242, 99)
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let r = export_session_file(
        &a,
        SessionFileFormat::Pyrogram,
        &dir.path().join("p.session"),
    )
    .unwrap();
    let what: Vec<&str> = r.skipped.iter().map(|s| s.what.as_str()).collect();
    for w in ["min peers", "usernames", "update state", "channel pts"] {
        assert!(what.contains(&w), "{w} not in {what:?}");
    }
    let r = export_session_file(
        &a,
        SessionFileFormat::Grammers,
        &dir.path().join("g.session"),
    )
    .unwrap();
    let what: Vec<&str> = r.skipped.iter().map(|s| s.what.as_str()).collect();
    for w in ["min access hashes", "usernames", "phones", "DC addresses"] {
        assert!(what.contains(&w), "{w} not in {what:?}");
    }
    let r = export_session_file(
        &a,
        SessionFileFormat::Telethon,
        &dir.path().join("t.session"),
    )
    .unwrap();
    let what: Vec<&str> = r.skipped.iter().map(|s| s.what.as_str()).collect();
    for w in ["min peers", "usernames", "api_id/api_hash"] {
        assert!(what.contains(&w), "{w} not in {what:?}");
    }
    // The peer without an access hash (Telethon keeps none such).
    assert!(
        r.skipped
            .iter()
            .any(|s| s.what == "peers" && s.examples.contains(&"5000000001".to_owned()))
    );
}

// --- Bad input ------------------------------------------------------------

fn assert_untouched(a: &Account) {
    assert_eq!(a.session().unwrap(), None);
    assert_eq!(a.peer_count().unwrap(), 0);
    assert_eq!(a.update_state().unwrap(), None);
    assert!(a.channel_states().unwrap().is_empty());
    assert!(a.dc_auths().unwrap().is_empty());
}

fn file_error(e: Error) -> SessionFileError {
    match e {
        Error::SessionFile(e) => e,
        other => panic!("not a session file error: {other:?}"),
    }
}

#[test]
fn not_sqlite_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("empty.session", &b""[..]),
        (
            "text.session",
            b"1BVtsOKABu2hjPhkUHK3p... a session string, not a file",
        ),
        ("short.session", b"SQLite format"),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let a = account();
        let e = import_session_file(&p, None, &a).unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(file_error(e), SessionFileError::NotSqlite { .. }),
            "{msg}"
        );
        assert!(
            msg.contains(name) && msg.contains("not a SQLite database"),
            "{msg}"
        );
        assert_untouched(&a);
        assert!(SessionFileFormat::detect(&p).is_err());
    }
    let e = import_session_file(&dir.path().join("missing.session"), None, &account()).unwrap_err();
    assert!(
        matches!(e, Error::Io { .. }) && e.to_string().contains("missing.session"),
        "{e}"
    );
}

#[test]
fn damaged_files_are_refused_and_nothing_is_written() {
    for name in [
        "telethon.session",
        "pyrogram.session",
        "kurigram.session",
        "grammers.session",
    ] {
        let orig = std::fs::read(fixture(name)).unwrap();
        let page = 4096;
        // Every page after the header page, in turn, filled with garbage;
        // and the file cut short.
        let mut cases: Vec<Vec<u8>> = (1..orig.len() / page)
            .map(|p| {
                let mut b = orig.clone();
                for (k, x) in b[p * page..(p + 1) * page].iter_mut().enumerate() {
                    *x = (k * 37 + p) as u8;
                }
                b
            })
            .collect();
        cases.push(orig[..orig.len() / 2].to_vec());
        for (n, bytes) in cases.into_iter().enumerate() {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join(name);
            std::fs::write(&p, &bytes).unwrap();
            let a = account();
            match import_session_file(&p, None, &a) {
                Ok(r) => panic!("{name} case {n}: damaged file imported: {r}"),
                Err(e) => {
                    let msg = e.to_string();
                    assert!(msg.contains(name), "{msg}");
                    assert!(matches!(e, Error::SessionFile(_)), "{msg}");
                }
            }
            assert_untouched(&a);
        }
    }
}

#[test]
fn unknown_schema_versions_name_the_version_and_the_file() {
    let cases: [(&str, &str, i64); 4] = [
        ("telethon.session", "UPDATE version SET version = 8", 8),
        ("telethon.session", "UPDATE version SET version = 6", 6),
        ("kurigram.session", "UPDATE version SET number = 99", 99),
        ("grammers.session", "PRAGMA user_version = 2", 2),
    ];
    for (name, sql, v) in cases {
        let (_d, p) = copy(name);
        Connection::open(&p).unwrap().execute_batch(sql).unwrap();
        let a = account();
        let e = import_session_file(&p, None, &a).unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(file_error(e), SessionFileError::UnsupportedVersion { found, .. } if found == v),
            "{msg}"
        );
        assert!(
            msg.contains(&format!("version {v} ")) && msg.contains(name),
            "{msg}"
        );
        assert_untouched(&a);
    }
}

#[test]
fn missing_tables_and_foreign_databases_are_refused() {
    for (name, sql, want) in [
        (
            "telethon.session",
            "DROP TABLE update_state",
            "table `update_state`",
        ),
        (
            "telethon.session",
            "DROP TABLE sent_files",
            "table `sent_files`",
        ),
        (
            "kurigram.session",
            "DROP INDEX idx_peers_phone_number; ALTER TABLE peers DROP COLUMN phone_number",
            "column `peers.phone_number`",
        ),
        (
            "grammers.session",
            "DROP TABLE channel_state",
            "table `channel_state`",
        ),
    ] {
        let (_d, p) = copy(name);
        Connection::open(&p).unwrap().execute_batch(sql).unwrap();
        let a = account();
        let e = import_session_file(&p, None, &a).unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(file_error(e), SessionFileError::Missing { .. }),
            "{msg}"
        );
        assert!(msg.contains(want), "{msg}");
        assert_untouched(&a);
    }
    // Some other SQLite database.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("places.sqlite");
    Connection::open(&p)
        .unwrap()
        .execute_batch("CREATE TABLE moz_places (id INTEGER, url TEXT)")
        .unwrap();
    let e = import_session_file(&p, None, &account()).unwrap_err();
    assert!(e.to_string().contains("moz_places"), "{e}");
    // A format forced on the wrong file.
    let e = import_session_file(
        &fixture("grammers.session"),
        Some(SessionFileFormat::Telethon),
        &account(),
    )
    .unwrap_err();
    assert!(matches!(file_error(e), SessionFileError::Missing { .. }));
}

#[test]
fn bad_values_are_refused_without_printing_keys() {
    for (name, sql, want) in [
        (
            "telethon.session",
            "UPDATE sessions SET auth_key = X'0102030405'",
            "5 bytes",
        ),
        (
            "telethon.session",
            "UPDATE sessions SET server_address = 'dc2.example.org'",
            "dc2.example.org",
        ),
        ("telethon.session", "UPDATE sessions SET dc_id = -3", "-3"),
        (
            "pyrogram.session",
            "UPDATE sessions SET user_id = -1001234567890",
            "-1001234567890",
        ),
        (
            "grammers.session",
            "UPDATE dc_option SET ipv4 = 'nowhere' WHERE dc_id = 3",
            "nowhere",
        ),
        (
            "grammers.session",
            "UPDATE update_state SET pts = 4294967296",
            "4294967296",
        ),
    ] {
        let (_d, p) = copy(name);
        Connection::open(&p).unwrap().execute_batch(sql).unwrap();
        let a = account();
        let e = import_session_file(&p, None, &a).unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(file_error(e), SessionFileError::BadValue { .. }),
            "{msg}"
        );
        assert!(msg.contains(want) && msg.contains(name), "{msg}");
        assert_untouched(&a);
    }
}

#[test]
fn import_refuses_an_account_that_is_not_empty() {
    let a = account();
    a.save_peer(&peerlog::Peer::user(1, 2)).unwrap();
    let e = import_session_file(&fixture("telethon.session"), None, &a).unwrap_err();
    assert!(matches!(
        file_error(e),
        SessionFileError::AccountNotEmpty { .. }
    ));
    assert_eq!(a.peer_count().unwrap(), 1);
    assert_eq!(a.session().unwrap(), None);
}

#[test]
fn export_refuses_an_existing_destination_and_leaves_nothing_behind() {
    let a = account();
    import_session_file(&fixture("telethon.session"), None, &a).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("bot.session");
    std::fs::write(&dest, b"keep me").unwrap();
    let e = export_session_file(&a, SessionFileFormat::Telethon, &dest).unwrap_err();
    assert!(matches!(
        file_error(e),
        SessionFileError::DestinationExists { .. }
    ));
    assert_eq!(std::fs::read(&dest).unwrap(), b"keep me");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");

    // A fresh destination: mode 0600, no temporary file left.
    let dest = dir.path().join("new.session");
    export_session_file(&a, SessionFileFormat::Kurigram, &dest).unwrap();
    let mode = std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    // No session, nothing to export; no file.
    let empty = account();
    let e = export_session_file(
        &empty,
        SessionFileFormat::Telethon,
        &dir.path().join("x.session"),
    )
    .unwrap_err();
    assert!(matches!(file_error(e), SessionFileError::NoSession { .. }));
    assert!(!dir.path().join("x.session").exists());
    // A missing directory: an I/O error naming the destination.
    let e = export_session_file(
        &a,
        SessionFileFormat::Telethon,
        &dir.path().join("no/such/dir.session"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("dir.session"), "{e}");
}

/// Auth keys never appear in reports or errors.
#[test]
fn reports_never_show_keys() {
    let a = account();
    let r = import_session_file(&fixture("grammers.session"), None, &a).unwrap();
    let text = format!("{r}{r:?}");
    let hex: String = key(5)[..8].iter().map(|b| format!("{b:02x}")).collect();
    assert!(!text.contains(&hex), "{text}");
    assert!(!text.contains(&format!("{:?}", &key(5)[..8])), "{text}");
}

// --- Large files -----------------------------------------------------------

/// A Telethon file with `n` entities (users, chats and channels, every
/// fourth with a username, every fifth with a phone), built with Telethon's
/// DDL.
fn big_telethon(path: &Path, n: i64) {
    let mut conn = Connection::open(path).unwrap();
    let sql = std::fs::read_to_string(fixture("telethon.sql")).unwrap();
    let ddl: String = sql
        .lines()
        .take_while(|l| !l.starts_with("insert"))
        .collect::<Vec<_>>()
        .join("\n");
    let tx = conn.transaction().unwrap();
    tx.execute_batch(&ddl).unwrap();
    tx.execute("insert into version values (7)", []).unwrap();
    tx.execute(
        "insert into sessions values (2, '149.154.167.51', 443, ?, NULL)",
        [key(9).to_vec()],
    )
    .unwrap();
    {
        let mut ins = tx
            .prepare("insert into entities values (?,?,?,?,?,?)")
            .unwrap();
        for k in 1..=n {
            let (id, hash) = match k % 3 {
                0 => (k, k * 7919),
                1 => (-1_000_000_000_000 - k, k * 31),
                _ => (-k, 0),
            };
            let username = (k % 4 == 0).then(|| format!("user_{k}"));
            let phone = (k % 5 == 0).then(|| 15_550_000_000 + k);
            ins.execute(rusqlite::params![
                id,
                hash,
                username,
                phone,
                format!("Peer {k}"),
                1_700_000_000 + k
            ])
            .unwrap();
        }
        let mut ins = tx
            .prepare("insert into update_state values (?,?,0,1700000000.0,0)")
            .unwrap();
        for k in 1..=1000 {
            ins.execute(rusqlite::params![k, k]).unwrap();
        }
    }
    tx.commit().unwrap();
}

/// Import and export of a 100,000-peer Telethon file, timed. Run in
/// release: `cargo test --release --features migrate --test migrate --
/// --ignored --nocapture`.
#[test]
#[ignore]
fn hundred_thousand_peers_timed() {
    let n: i64 = std::env::var("PEERLOG_MIGRATE_PEERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big.session");
    big_telethon(&src, n);
    let store = Store::open_with(
        dir.path().join("big.peerlog"),
        peerlog::Options {
            create: true,
            ..Default::default()
        },
    )
    .unwrap();
    let a = store.account("bot").unwrap();
    let t = std::time::Instant::now();
    let r = import_session_file(&src, None, &a).unwrap();
    let import = t.elapsed();
    assert_eq!(r.counts.peers, n as u64);
    assert_eq!(a.peer_count().unwrap(), n as u64);
    for format in SessionFileFormat::ALL {
        let out = dir.path().join(format!("out-{}.session", format.name()));
        let t = std::time::Instant::now();
        let e = export_session_file(&a, format, &out).unwrap();
        let took = t.elapsed();
        println!(
            "export {n} peers as {format}: {:.2} s ({} peers written)",
            took.as_secs_f64(),
            e.counts.peers
        );
    }
    println!(
        "import {n} peers from Telethon: {:.2} s",
        import.as_secs_f64()
    );
    // Each exported file imported again, into a file-backed store.
    for format in SessionFileFormat::ALL {
        let store = Store::open_with(
            dir.path().join(format!("again-{}.peerlog", format.name())),
            peerlog::Options {
                create: true,
                ..Default::default()
            },
        )
        .unwrap();
        let b = store.account("b").unwrap();
        let out = dir.path().join(format!("out-{}.session", format.name()));
        let t = std::time::Instant::now();
        let r = import_session_file(&out, None, &b).unwrap();
        println!(
            "import {n} peers from the {format} file: {:.2} s",
            t.elapsed().as_secs_f64()
        );
        assert_eq!(r.format, format);
        assert_eq!(b.peer_count().unwrap(), n as u64);
    }
}

/// The same, small, in every run.
#[test]
fn a_few_thousand_peers() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big.session");
    big_telethon(&src, 3000);
    let a = account();
    let r = import_session_file(&src, None, &a).unwrap();
    assert_eq!(
        (r.counts.peers, r.counts.usernames, r.counts.phones),
        (3000, 750, 600)
    );
    assert_eq!(r.counts.channel_pts, 1000);
    assert_eq!(a.access_hash(PeerId::user(3)).unwrap(), Some(3 * 7919));
    assert_eq!(a.access_hash(PeerId::channel(1)).unwrap(), Some(31));
    let (_d, out) = export(&a, SessionFileFormat::Telethon);
    let (x, y) = (dump(&src), dump(&out));
    assert_eq!(table(&x, "entities"), table(&y, "entities"));
}

/// Values no library writes, put where a hand-edited or damaged file
/// could have them: each is skipped and reported or refused with a typed
/// error, never a panic, and a refused file leaves the account untouched.
#[test]
fn hostile_values_never_panic() {
    let cases = [
        (
            "telethon.session",
            "INSERT INTO entities VALUES (-9223372036854775808, 1, NULL, NULL, NULL, NULL)",
        ),
        (
            "telethon.session",
            "INSERT INTO entities VALUES (9223372036854775807, 1, NULL, NULL, NULL, NULL)",
        ),
        (
            "telethon.session",
            "INSERT INTO entities VALUES (77, 'not a number', NULL, NULL, NULL, NULL)",
        ),
        (
            "telethon.session",
            "INSERT INTO entities VALUES (78, 1, X'00ff', 1e300, X'01', 'x')",
        ),
        (
            "telethon.session",
            "UPDATE entities SET username = '@Alice' WHERE id = 123456789",
        ),
        (
            "telethon.session",
            "UPDATE entities SET phone = '+1 (555) 123-4567' WHERE id = 123456789",
        ),
        (
            "telethon.session",
            "INSERT INTO update_state VALUES (-1001234567890, 1, 0, 0, 0)",
        ),
        (
            "telethon.session",
            "INSERT INTO update_state VALUES (-5, 1, 0, 0, 0)",
        ),
        (
            "telethon.session",
            "UPDATE update_state SET date = 1e300 WHERE id = 0",
        ),
        (
            "telethon.session",
            "UPDATE sessions SET auth_key = NULL, port = 70000",
        ),
        (
            "telethon.session",
            "INSERT INTO sessions VALUES (4, '149.154.167.91', 443, X'', NULL)",
        ),
        (
            "pyrogram.session",
            "UPDATE peers SET type = 42 WHERE id = 123456789",
        ),
        (
            "pyrogram.session",
            "UPDATE peers SET type = 'secret' WHERE id = 123456789",
        ),
        (
            "pyrogram.session",
            "UPDATE peers SET username = 'Way_Too_Long_Username_For_Telegram_1' WHERE id = 123456789",
        ),
        ("pyrogram.session", "DELETE FROM sessions"),
        ("pyrogram.session", "DELETE FROM version"),
        (
            "kurigram.session",
            "INSERT INTO usernames VALUES (31337, 'nobody_home')",
        ),
        (
            "kurigram.session",
            "INSERT INTO usernames VALUES (NULL, NULL)",
        ),
        (
            "kurigram.session",
            "INSERT INTO update_state VALUES (123456789, 1, 1, 1, 1)",
        ),
        (
            "kurigram.session",
            "UPDATE sessions SET server_address = '::1'",
        ),
        (
            "grammers.session",
            "INSERT INTO peer_info VALUES (0, NULL, NULL)",
        ),
        (
            "grammers.session",
            "INSERT INTO channel_state VALUES (-1001234567890, 5)",
        ),
        ("grammers.session", "DELETE FROM dc_home"),
        (
            "grammers.session",
            "UPDATE dc_option SET auth_key = X'00' WHERE dc_id = 1",
        ),
        (
            "grammers.session",
            "UPDATE peer_info SET subtype = 255 WHERE peer_id = -1009876543210",
        ),
    ];
    for (name, sql) in cases {
        let (_d, p) = copy(name);
        // No foreign key checks: the point is rows a library would not write.
        Connection::open(&p)
            .unwrap()
            .execute_batch(&format!("PRAGMA foreign_keys = OFF; {sql}"))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let a = account();
        match import_session_file(&p, None, &a) {
            Ok(r) => {
                // Whatever was left out is in the report.
                println!("{sql}\n  -> {r}");
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    matches!(
                        e,
                        Error::SessionFile(
                            SessionFileError::BadValue { .. } | SessionFileError::Missing { .. }
                        )
                    ),
                    "{sql}: {msg}"
                );
                assert!(msg.contains(name), "{sql}: {msg}");
                println!("{sql}\n  -> error: {msg}");
                assert_untouched(&a);
            }
        }
    }
    // The forms users type are read as such.
    let (_d, p) = copy("telethon.session");
    Connection::open(&p)
        .unwrap()
        .execute_batch(
            "UPDATE entities SET username = '@Alice', phone = '+1 (555) 123-4567' WHERE id = 123456789",
        )
        .unwrap();
    let a = account();
    import_session_file(&p, None, &a).unwrap();
    let alice = a.peer_by_username("alice").unwrap().unwrap();
    assert_eq!(alice.id, PeerId::user(123456789));
    assert_eq!(
        a.peer_by_phone("15551234567").unwrap().unwrap().id,
        alice.id
    );
}

/// Kurigram can keep its file in WAL mode (`use_wal=True`); such a file,
/// closed or with its `-wal` still beside it (a bot that was killed),
/// imports with every committed row.
#[test]
fn wal_mode_files_import_whole() {
    let (_d, p) = copy("kurigram.session");
    let conn = Connection::open(&p).unwrap();
    conn.execute_batch("PRAGMA journal_mode = WAL").unwrap();
    drop(conn);
    let a = account();
    import_session_file(&p, None, &a).unwrap();
    assert_eq!(a.peer_count().unwrap(), 7);

    // A writer still open: its committed rows are in the -wal file only.
    let conn = Connection::open(&p).unwrap();
    conn.execute_batch("PRAGMA wal_autocheckpoint = 0; INSERT INTO peers VALUES (42, 4242, 'user', NULL, 1700000099)")
        .unwrap();
    assert!(p.with_extension("session-wal").exists());
    let b = account();
    import_session_file(&p, None, &b).unwrap();
    assert_eq!(b.access_hash(PeerId::user(42)).unwrap(), Some(4242));
    drop(conn);
}

/// Telethon and Pyrogram do not stop two rows from holding one username
/// or phone; peerlog holds each once. The most recently updated row keeps
/// it (as Telethon's and Kurigram's lookups answer), the other is reported.
#[test]
fn a_name_held_twice_stays_with_the_newest_row() {
    let (_d, p) = copy("telethon.session");
    Connection::open(&p)
        .unwrap()
        .execute_batch(
            "INSERT INTO entities VALUES (11, 1, 'alice', '15551234567', 'Old Alice', 1600000000);
             INSERT INTO entities VALUES (12, 2, 'helper_bot', NULL, 'New Helper', 1800000000);",
        )
        .unwrap();
    let a = account();
    let r = import_session_file(&p, None, &a).unwrap();
    assert_eq!(
        a.resolve_username("alice").unwrap().unwrap().0,
        PeerId::user(123456789)
    );
    assert_eq!(
        a.peer_by_phone("15551234567").unwrap().unwrap().id,
        PeerId::user(123456789)
    );
    assert_eq!(
        a.resolve_username("helper_bot").unwrap().unwrap().0,
        PeerId::user(12)
    );
    let old = a.peer(PeerId::user(11)).unwrap().unwrap();
    assert_eq!((old.username, old.phone), (None, None));
    assert_eq!(
        a.peer(PeerId::user(987654321)).unwrap().unwrap().username,
        None
    );
    assert!(
        r.skipped
            .iter()
            .any(|s| s.what == "usernames" && s.count == 2 && s.reason.contains("two peers"))
    );
    assert!(r.skipped.iter().any(|s| s.what == "phones" && s.count == 1));
}

/// Every peer field a format's rows cannot hold is reported on export,
/// per format, and none that it can.
#[test]
fn export_reports_the_peer_fields_each_format_cannot_hold() {
    let a = account();
    import_session_file(&fixture("kurigram.session"), None, &a).unwrap();
    let bot = peerlog::Peer {
        is_bot: true,
        photo_id: Some(7),
        language: Some("en".into()),
        updated_at: 1_700_000_000,
        ..peerlog::Peer::user(777_001, 5).with_names("Ada", Some("Lovelace"))
    };
    let channel =
        peerlog::Peer::channel(777_002, 6, ChannelKind::Broadcast).with_names("News", None);
    a.save_peers(&[bot, channel]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (format, reported, not_reported) in [
        (
            SessionFileFormat::Telethon,
            &[
                "last names",
                "bot flags",
                "channel kinds",
                "photo ids",
                "languages",
            ][..],
            &["peer names", "update times"][..],
        ),
        (
            SessionFileFormat::Pyrogram,
            &["peer names", "photo ids", "languages"][..],
            &["bot flags", "channel kinds", "update times"][..],
        ),
        (
            SessionFileFormat::Grammers,
            &["peer names", "update times", "photo ids", "languages"][..],
            &["bot flags", "channel kinds"][..],
        ),
    ] {
        let r =
            export_session_file(&a, format, &dir.path().join(format!("{format}.session"))).unwrap();
        let has = |w: &str, id: &str| {
            r.skipped
                .iter()
                .any(|s| s.what == w && s.examples.iter().any(|e| e == id))
        };
        for w in reported {
            let id = match *w {
                "channel kinds" => "-1000000777002",
                _ => "777001",
            };
            assert!(
                has(w, id),
                "{format}: {w} of {id} not reported: {:?}",
                r.skipped
            );
        }
        for w in not_reported {
            assert!(
                !r.skipped.iter().any(|s| s.what == *w),
                "{format}: {w} reported but held: {:?}",
                r.skipped
            );
        }
    }
}
