//! A conformance suite for [`Storage`] backends.
//!
//! Every backend must behave the same; this module checks it, edge cases
//! included (min peers, moved usernames, idempotent enqueue, dedup
//! retention, persistence across reopen). A third-party backend runs the
//! whole suite in one line from a test:
//!
//! ```
//! use peerlog::{MemoryStorage, Storage, conformance};
//! conformance::run(&|| Box::new(MemoryStorage::new()) as Box<dyn Storage>);
//! ```
//!
//! The factory must return a fresh, empty storage on every call. Checks
//! panic with a message naming the area and the rule that failed, like
//! `assert!`, so the suite belongs in `#[test]` functions.
//!
//! The sub-suites ([`session`], [`peers`], [`update_state`], [`dedup`],
//! [`queue`], [`conversations`], [`meta`], [`ids_and_names`]) can run on
//! their own;
//! [`run_persistent`] checks that data survives a reopen, for backends
//! that persist.

use crate::error::{Error, Result};
use crate::session::{AuthKey, DcAuth, Session};
use crate::storage::Storage;
use crate::types::{
    ChannelKind, ChannelState, Conversation, MAX_CHANNEL_ID, MAX_USER_ID, Peer, PeerId, UpdateState,
};

/// A function returning a fresh, empty storage on every call.
pub type Factory<'a> = &'a dyn Fn() -> Box<dyn Storage>;

/// What the suite needs to know about the backend under test.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The backend's dedup count bound (e.g.
    /// [`Options::dedup_max_keys`](crate::Options::dedup_max_keys)). When
    /// set, [`dedup`] inserts about twice as many keys and checks that
    /// exactly the newest ones remain; keep it small (say 64) for speed.
    /// `None` skips that check.
    pub dedup_max_keys: Option<usize>,
}

/// Runs every sub-suite with [`Config::default`] (no retention bound
/// check).
pub fn run(factory: Factory<'_>) {
    run_with(factory, &Config::default());
}

/// Runs every sub-suite.
///
/// ```
/// use peerlog::conformance::{self, Config};
/// use peerlog::{MemoryStorage, Options, Storage};
/// let opts = Options { dedup_max_keys: 16, ..Options::default() };
/// conformance::run_with(
///     &|| Box::new(MemoryStorage::with_options(opts.clone()).unwrap()) as Box<dyn Storage>,
///     &Config { dedup_max_keys: Some(16) },
/// );
/// ```
pub fn run_with(factory: Factory<'_>, config: &Config) {
    empty(factory);
    session(factory);
    peers(factory);
    update_state(factory);
    dedup(factory, config);
    queue(factory);
    conversations(factory);
    meta(factory);
    ids_and_names(factory);
}

#[track_caller]
fn ok<T>(r: Result<T>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("conformance: {what} failed: {e}"),
    }
}

/// A fresh storage holds nothing.
pub fn empty(factory: Factory<'_>) {
    assert_empty(&*factory(), "empty");
}

fn assert_empty(s: &dyn Storage, w: &str) {
    assert!(ok(s.session(), w).is_none(), "{w}: a session exists");
    assert!(ok(s.dc_auths(), w).is_empty(), "{w}: DC auths exist");
    assert!(ok(s.peers(), w).is_empty(), "{w}: peers exist");
    assert_eq!(ok(s.peer_count(), w), 0, "{w}: peer_count");
    assert!(ok(s.update_state(), w).is_none(), "{w}: update state");
    assert!(ok(s.channel_states(), w).is_empty(), "{w}: channel states");
    assert!(ok(s.pending(usize::MAX), w).is_empty(), "{w}: queue");
    assert!(!ok(s.has_dedup_key(b"k"), w), "{w}: dedup key");
    assert!(ok(s.meta("k"), w).is_none(), "{w}: meta");
    assert!(ok(s.conversation(1, 1), w).is_none(), "{w}: conversation");
}

fn sample_session(dc_id: i32, key: u8) -> Session {
    let mut s = Session::new(dc_id, false);
    s.auth_key = Some(AuthKey::new([key; 256]));
    s.api_id = 12345;
    s.api_hash = Some("0123456789abcdef".into());
    s.user_id = Some(777);
    s.first_name = Some("Ann".into());
    s.username = Some("ann".into());
    s.date = 1_700_000_000;
    s
}

fn sample_dc(dc_id: i32, key: u8) -> DcAuth {
    DcAuth {
        dc_id,
        auth_key: AuthKey::new([key; 256]),
        server_salt: -(key as i64),
        server_addr: Some([149, 154, 167, 51].into()),
        port: 443,
    }
}

/// Session and per-DC auth: save, replace, delete.
pub fn session(factory: Factory<'_>) {
    const W: &str = "session";
    let s = factory();
    assert!(!ok(s.delete_session(), W), "{W}: deleting no session");
    let a = sample_session(2, 1);
    ok(s.save_session(&a), W);
    assert_eq!(ok(s.session(), W), Some(a), "{W}: saved session");
    let b = sample_session(4, 2);
    ok(s.save_session(&b), W);
    assert_eq!(ok(s.session(), W), Some(b), "{W}: replaced session");

    assert!(ok(s.dc_auth(2), W).is_none(), "{W}: unknown DC auth");
    let dcs = [
        sample_dc(4, 4),
        sample_dc(-1, 9),
        sample_dc(2, 2),
        sample_dc(10_002, 3),
    ];
    for d in &dcs {
        ok(s.save_dc_auth(d), W);
    }
    assert_eq!(ok(s.dc_auth(2), W), Some(dcs[2].clone()), "{W}: DC 2 auth");
    let mut sorted = dcs.to_vec();
    sorted.sort_by_key(|d| d.dc_id);
    assert_eq!(ok(s.dc_auths(), W), sorted, "{W}: dc_auths by dc_id");
    let newer = sample_dc(2, 7);
    ok(s.save_dc_auth(&newer), W);
    assert_eq!(ok(s.dc_auth(2), W), Some(newer), "{W}: replaced DC auth");
    assert!(ok(s.delete_dc_auth(4), W), "{W}: deleting DC 4");
    assert!(!ok(s.delete_dc_auth(4), W), "{W}: deleting DC 4 twice");
    assert_eq!(ok(s.dc_auths(), W).len(), 3, "{W}: DC auths after delete");

    assert!(ok(s.delete_session(), W), "{W}: deleting the session");
    assert!(ok(s.session(), W).is_none(), "{W}: session after delete");
    assert_eq!(
        ok(s.dc_auths(), W).len(),
        3,
        "{W}: delete_session must keep DC auths"
    );
}

fn ids(peers: &[Peer]) -> Vec<PeerId> {
    peers.iter().map(|p| p.id).collect()
}

#[track_caller]
fn by_username(s: &dyn Storage, name: &str) -> Option<PeerId> {
    ok(s.peer_by_username(name), "peers: peer_by_username").map(|p| p.id)
}

/// Peers: round trip, indexes, normalization, min peers, moved usernames
/// and phones, delete.
pub fn peers(factory: Factory<'_>) {
    const W: &str = "peers";
    let s = factory();
    let s = &*s;
    let alice = Peer::user(100, 1001)
        .with_username("Alice")
        .with_names("Alice", Some("Liddell"))
        .with_phone("15550100")
        .with_updated_at(5);
    assert!(ok(s.peer(alice.id), W).is_none(), "{W}: unknown peer");
    assert_eq!(ok(s.access_hash(alice.id), W), None, "{W}: unknown hash");
    ok(s.save_peer(&alice), W);
    assert_eq!(
        ok(s.peer(alice.id), W),
        Some(alice.clone()),
        "{W}: round trip"
    );
    assert_eq!(
        ok(s.access_hash(alice.id), W),
        Some(1001),
        "{W}: access_hash"
    );
    for name in ["Alice", "alice", "ALICE", "@alice"] {
        assert_eq!(
            by_username(s, name),
            Some(alice.id),
            "{W}: username {name:?}"
        );
    }
    assert_eq!(by_username(s, "alic"), None, "{W}: username prefix");
    assert_eq!(by_username(s, ""), None, "{W}: empty username");
    for phone in ["15550100", "+1 555 0100", "+1 (555) 01-00"] {
        let found = ok(s.peer_by_phone(phone), W).map(|p| p.id);
        assert_eq!(found, Some(alice.id), "{W}: phone {phone:?}");
    }
    assert_eq!(ok(s.peer_by_phone("1555"), W), None, "{W}: phone prefix");

    // A batch of every kind, with usernames to normalize.
    let chat = Peer::chat(200).with_names("Group", None);
    let mut chan =
        Peer::channel(MAX_CHANNEL_ID, -3003, ChannelKind::Megagroup).with_username("news");
    chan.usernames = vec!["news_alt".into(), "NEWS".into(), "@news_alt".into()];
    let bot = Peer {
        is_bot: true,
        language: Some("en".into()),
        ..Peer::user(MAX_USER_ID, i64::MIN)
    };
    ok(s.save_peers(&[chat.clone(), chan.clone(), bot.clone()]), W);
    assert_eq!(ok(s.peer_count(), W), 4, "{W}: peer_count");
    assert_eq!(
        ids(&ok(s.peers(), W)),
        [chan.id, chat.id, alice.id, bot.id],
        "{W}: peers() by id"
    );
    assert_eq!(ok(s.access_hash(chat.id), W), None, "{W}: chat has no hash");
    assert_eq!(ok(s.peer(chat.id), W), Some(chat), "{W}: chat round trip");
    assert_eq!(
        ok(s.access_hash(bot.id), W),
        Some(i64::MIN),
        "{W}: bot hash"
    );
    assert_eq!(ok(s.peer(bot.id), W), Some(bot), "{W}: bot round trip");
    let stored = ok(s.peer(chan.id), W).expect("channel stored");
    assert_eq!(
        stored.username.as_deref(),
        Some("news"),
        "{W}: primary username"
    );
    assert_eq!(
        stored.usernames,
        ["news_alt"],
        "{W}: usernames lose '@' and repeats"
    );
    assert_eq!(
        by_username(s, "NEWS_ALT"),
        Some(chan.id),
        "{W}: other username"
    );

    // Min peers never overwrite a known full hash; other fields update.
    let mut min = alice.clone();
    min.min = true;
    min.access_hash = Some(999);
    min.first_name = Some("Alicia".into());
    ok(s.save_peer(&min), W);
    let got = ok(s.peer(alice.id), W).expect("alice");
    assert_eq!(
        got.access_hash,
        Some(1001),
        "{W}: min peer overwrote a full hash"
    );
    assert!(!got.min, "{W}: min peer made a full peer min");
    assert_eq!(
        got.first_name.as_deref(),
        Some("Alicia"),
        "{W}: min peer fields"
    );
    assert_eq!(ok(s.access_hash(alice.id), W), Some(1001), "{W}: min hash");
    let mut no_hash = alice.clone();
    no_hash.access_hash = None;
    ok(s.save_peer(&no_hash), W);
    assert_eq!(
        ok(s.access_hash(alice.id), W),
        Some(1001),
        "{W}: hashless peer"
    );
    let mut full = alice.clone();
    full.access_hash = Some(1002);
    ok(s.save_peer(&full), W);
    assert_eq!(
        ok(s.access_hash(alice.id), W),
        Some(1002),
        "{W}: new full hash"
    );
    // A peer first seen as min is stored as min until a full one arrives.
    let seen_min = Peer {
        min: true,
        ..Peer::user(101, 5)
    };
    ok(s.save_peer(&seen_min), W);
    assert_eq!(
        ok(s.peer(seen_min.id), W),
        Some(seen_min),
        "{W}: min round trip"
    );
    ok(s.save_peer(&Peer::user(101, 6)), W);
    let got = ok(s.peer(PeerId::user(101)), W).expect("user 101");
    assert_eq!(
        (got.access_hash, got.min),
        (Some(6), false),
        "{W}: full after min"
    );

    // Deleting.
    assert!(ok(s.delete_peer(alice.id), W), "{W}: delete");
    assert!(!ok(s.delete_peer(alice.id), W), "{W}: delete twice");
    assert!(ok(s.peer(alice.id), W).is_none(), "{W}: deleted peer");
    assert_eq!(ok(s.access_hash(alice.id), W), None, "{W}: deleted hash");
    assert_eq!(by_username(s, "alice"), None, "{W}: deleted username");
    assert_eq!(
        ok(s.peer_by_phone("15550100"), W),
        None,
        "{W}: deleted phone"
    );
    assert_eq!(ok(s.peer_count(), W), 4, "{W}: peer_count after delete");

    moved_names(&*factory());
}

/// Usernames and phones that move to another peer resolve to the new owner
/// only.
fn moved_names(s: &dyn Storage) {
    const W: &str = "peers/moved";
    let mut a = Peer::user(1, 11).with_username("handle");
    a.usernames = vec!["other".into()];
    ok(s.save_peer(&a), W);
    let b = Peer::user(2, 22).with_username("HANDLE");
    ok(s.save_peer(&b), W);
    assert_eq!(by_username(s, "handle"), Some(b.id), "{W}: moved username");
    let a_now = ok(s.peer(a.id), W).expect("a");
    assert_eq!(
        a_now.username, None,
        "{W}: old owner keeps a moved username"
    );
    assert_eq!(a_now.usernames, ["other"], "{W}: old owner's other names");
    assert_eq!(
        by_username(s, "other"),
        Some(a.id),
        "{W}: old owner's other name"
    );
    // Moving back.
    let a2 = Peer::user(1, 11).with_username("handle");
    ok(s.save_peer(&a2), W);
    assert_eq!(by_username(s, "handle"), Some(a.id), "{W}: moved back");
    assert_eq!(
        ok(s.peer(b.id), W).expect("b").username,
        None,
        "{W}: b lost it"
    );
    // Within one batch the later peer wins.
    let c = Peer::user(3, 33).with_username("same");
    let d = Peer::user(4, 44).with_username("same");
    ok(s.save_peers(&[c.clone(), d.clone()]), W);
    assert_eq!(by_username(s, "same"), Some(d.id), "{W}: in one batch");
    assert_eq!(
        ok(s.peer(c.id), W).expect("c").username,
        None,
        "{W}: batch loser"
    );
    // Phones move too.
    ok(s.save_peer(&Peer::user(5, 55).with_phone("+7 900 000")), W);
    ok(s.save_peer(&Peer::user(6, 66).with_phone("7900000")), W);
    let found = ok(s.peer_by_phone("7900000"), W).map(|p| p.id);
    assert_eq!(found, Some(PeerId::user(6)), "{W}: moved phone");
    let old = ok(s.peer(PeerId::user(5)), W).expect("user 5");
    assert_eq!(old.phone, None, "{W}: old owner keeps a moved phone");
}

/// Update state and channel pts, alone and together with peers.
pub fn update_state(factory: Factory<'_>) {
    const W: &str = "update_state";
    let s = factory();
    let a = UpdateState {
        pts: 10,
        qts: 2,
        date: 1_700_000_000,
        seq: 7,
    };
    ok(s.save_update_state(&a), W);
    assert_eq!(ok(s.update_state(), W), Some(a), "{W}: saved");
    let b = UpdateState { pts: 11, ..a };
    ok(s.save_update_state(&b), W);
    assert_eq!(ok(s.update_state(), W), Some(b), "{W}: replaced");

    assert_eq!(ok(s.channel_pts(5), W), None, "{W}: unknown channel");
    for (id, pts) in [(5, 10), (1, 20), (MAX_CHANNEL_ID, 30), (300, -1)] {
        ok(s.save_channel_pts(id, pts), W);
    }
    ok(s.save_channel_pts(5, 11), W);
    assert_eq!(ok(s.channel_pts(5), W), Some(11), "{W}: replaced pts");
    let want = |v: &[(i64, i32)]| {
        v.iter()
            .map(|&(channel_id, pts)| ChannelState { channel_id, pts })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ok(s.channel_states(), W),
        want(&[(1, 20), (5, 11), (300, -1), (MAX_CHANNEL_ID, 30)]),
        "{W}: channel_states by id"
    );
    assert!(ok(s.delete_channel_state(5), W), "{W}: delete");
    assert!(!ok(s.delete_channel_state(5), W), "{W}: delete twice");
    assert_eq!(ok(s.channel_pts(5), W), None, "{W}: deleted pts");

    let peer = Peer::channel(77, 7700, ChannelKind::Broadcast);
    let c = UpdateState { pts: 12, ..b };
    let ch = ChannelState {
        channel_id: 77,
        pts: 700,
    };
    ok(
        s.save_peers_and_state(std::slice::from_ref(&peer), Some(&c), &[ch]),
        W,
    );
    assert_eq!(ok(s.update_state(), W), Some(c), "{W}: state of a batch");
    assert_eq!(ok(s.channel_pts(77), W), Some(700), "{W}: pts of a batch");
    assert_eq!(ok(s.peer(peer.id), W), Some(peer), "{W}: peer of a batch");
    ok(s.save_peers_and_state(&[], None, &[]), W);
    assert_eq!(ok(s.update_state(), W), Some(c), "{W}: empty batch");
}

/// Dedup keys: new/seen, and (with [`Config::dedup_max_keys`]) bounded
/// retention that drops the oldest keys first.
pub fn dedup(factory: Factory<'_>, config: &Config) {
    const W: &str = "dedup";
    let s = factory();
    assert!(ok(s.insert_dedup_key(b"a"), W), "{W}: new key");
    assert!(!ok(s.insert_dedup_key(b"a"), W), "{W}: seen key");
    assert!(ok(s.has_dedup_key(b"a"), W), "{W}: has");
    assert!(!ok(s.has_dedup_key(b"b"), W), "{W}: has unknown");
    assert!(
        !ok(s.has_dedup_key(b"A"), W),
        "{W}: keys are bytes, not case-folded"
    );
    for key in [&b""[..], &[0, 255, 0], &[0xff; 64]] {
        assert!(ok(s.insert_dedup_key(key), W), "{W}: new binary key");
        assert!(ok(s.has_dedup_key(key), W), "{W}: has binary key");
    }
    for i in 0u32..8 {
        assert!(ok(s.insert_dedup_key(&i.to_le_bytes()), W), "{W}: key {i}");
        assert!(
            ok(s.has_dedup_key(&i.to_le_bytes()), W),
            "{W}: the newest key is always kept"
        );
    }

    let Some(max) = config.dedup_max_keys else {
        return;
    };
    let s = factory();
    let key = |i: usize| format!("update-{i}").into_bytes();
    let total = 2 * max + 3;
    for i in 0..total {
        assert!(ok(s.insert_dedup_key(&key(i)), W), "{W}: new key {i}");
        assert!(
            ok(s.has_dedup_key(&key(i)), W),
            "{W}: newest key {i} dropped"
        );
    }
    for i in 0..total {
        assert_eq!(
            ok(s.has_dedup_key(&key(i)), W),
            i >= total - max,
            "{W}: with max {max}, after {total} keys, key {i}: exactly the newest {max} must remain"
        );
    }
    // A dropped key is new again, and pushes out the oldest one.
    assert!(
        ok(s.insert_dedup_key(&key(0)), W),
        "{W}: dropped key is new"
    );
    assert!(
        !ok(s.has_dedup_key(&key(total - max)), W),
        "{W}: the oldest key must go first"
    );
    assert!(
        ok(s.has_dedup_key(&key(total - 1)), W),
        "{W}: recent key dropped"
    );
}

/// The durable queue: idempotent enqueue, order, failures, ack.
pub fn queue(factory: Factory<'_>) {
    const W: &str = "queue";
    let s = factory();
    let order = |s: &dyn Storage, limit| {
        ok(s.pending(limit), W)
            .into_iter()
            .map(|u| u.id)
            .collect::<Vec<_>>()
    };
    for (id, payload) in [("a", &b"1"[..]), ("b", b"2"), ("c", b"")] {
        assert!(ok(s.enqueue(id, payload), W), "{W}: enqueue {id}");
    }
    assert!(
        !ok(s.enqueue("a", b"other"), W),
        "{W}: enqueue is idempotent"
    );
    let all = ok(s.pending(10), W);
    assert_eq!(order(&*s, 10), ["a", "b", "c"], "{W}: enqueue order");
    assert_eq!(
        all[0].payload, b"1",
        "{W}: a duplicate enqueue changed the payload"
    );
    assert_eq!(
        (all[1].attempts, &all[1].last_error),
        (0, &None),
        "{W}: fresh"
    );
    assert!(all[0].created_at > 0, "{W}: created_at is set");
    assert_eq!(order(&*s, 2), ["a", "b"], "{W}: pending limit");
    assert!(order(&*s, 0).is_empty(), "{W}: pending(0)");

    assert_eq!(ok(s.mark_failed("b", "boom"), W), 1, "{W}: first failure");
    assert_eq!(ok(s.mark_failed("b", "bang"), W), 2, "{W}: second failure");
    assert_eq!(
        ok(s.mark_failed("zz", "x"), W),
        0,
        "{W}: failing an unknown id"
    );
    let b = &ok(s.pending(10), W)[1];
    assert_eq!(b.id, "b", "{W}: a failure must not reorder");
    assert_eq!(b.attempts, 2, "{W}: attempts");
    assert_eq!(b.last_error.as_deref(), Some("bang"), "{W}: last error");
    assert_eq!(b.payload, b"2", "{W}: payload after failures");

    assert!(ok(s.ack("a"), W), "{W}: ack");
    assert!(!ok(s.ack("a"), W), "{W}: ack twice");
    assert!(!ok(s.ack("nope"), W), "{W}: ack unknown");
    assert_eq!(order(&*s, 10), ["b", "c"], "{W}: after ack");
    assert!(
        ok(s.enqueue("a", b"again"), W),
        "{W}: an acked id can return"
    );
    assert_eq!(
        order(&*s, 10),
        ["b", "c", "a"],
        "{W}: re-enqueued goes last"
    );
    for id in ["b", "c", "a"] {
        assert!(ok(s.ack(id), W), "{W}: ack {id}");
    }
    assert!(order(&*s, 10).is_empty(), "{W}: drained");
    assert!(ok(s.enqueue("d", b"4"), W), "{W}: enqueue after draining");
    assert!(ok(s.enqueue("e", b"5"), W), "{W}: enqueue after draining");
    assert_eq!(order(&*s, 10), ["d", "e"], "{W}: order after draining");
}

/// Conversations keyed by (chat, user).
pub fn conversations(factory: Factory<'_>) {
    const W: &str = "conversations";
    let s = factory();
    let c = Conversation {
        chat_id: -100,
        user_id: 5,
        name: "signup".into(),
        step: "email".into(),
        data: b"{}".to_vec(),
        created_at: 1,
        updated_at: 2,
    };
    assert!(ok(s.conversation(-100, 5), W).is_none(), "{W}: unknown");
    ok(s.save_conversation(&c), W);
    assert_eq!(
        ok(s.conversation(-100, 5), W),
        Some(c.clone()),
        "{W}: saved"
    );
    let next = Conversation {
        step: "done".into(),
        updated_at: 3,
        ..c.clone()
    };
    ok(s.save_conversation(&next), W);
    assert_eq!(
        ok(s.conversation(-100, 5), W),
        Some(next.clone()),
        "{W}: replaced"
    );
    assert!(ok(s.conversation(-100, 6), W).is_none(), "{W}: other user");
    assert!(ok(s.conversation(100, 5), W).is_none(), "{W}: other chat");
    let other = Conversation {
        chat_id: -1_000_000_000_001,
        ..c.clone()
    };
    ok(s.save_conversation(&other), W);
    assert!(ok(s.delete_conversation(-100, 5), W), "{W}: delete");
    assert!(!ok(s.delete_conversation(-100, 5), W), "{W}: delete twice");
    assert!(ok(s.conversation(-100, 5), W).is_none(), "{W}: deleted");
    assert_eq!(
        ok(s.conversation(other.chat_id, 5), W),
        Some(other),
        "{W}: delete touched another conversation"
    );
}

/// The per-account metadata map.
pub fn meta(factory: Factory<'_>) {
    const W: &str = "meta";
    let s = factory();
    assert!(ok(s.meta("k"), W).is_none(), "{W}: unknown");
    ok(s.set_meta("k", b"v"), W);
    ok(s.set_meta("kk", b"w"), W);
    assert_eq!(ok(s.meta("k"), W).as_deref(), Some(&b"v"[..]), "{W}: set");
    ok(s.set_meta("k", b""), W);
    assert_eq!(
        ok(s.meta("k"), W).as_deref(),
        Some(&b""[..]),
        "{W}: empty value"
    );
    assert!(ok(s.delete_meta("k"), W), "{W}: delete");
    assert!(!ok(s.delete_meta("k"), W), "{W}: delete twice");
    assert!(ok(s.meta("k"), W).is_none(), "{W}: deleted");
    assert_eq!(
        ok(s.meta("kk"), W).as_deref(),
        Some(&b"w"[..]),
        "{W}: other key"
    );
}

/// An `Error::Invalid` whose message names `value`.
#[track_caller]
fn refused<T: std::fmt::Debug>(r: Result<T>, value: &str, what: &str) {
    match r {
        Err(Error::Invalid(m)) if m.contains(value) => {}
        other => panic!("conformance: {what}: want Error::Invalid naming {value}, got {other:?}"),
    }
}

/// The id and name rules of [`Storage`] (its "Ids" and "Normalization"
/// sections): Bot API and zero ids where a bare one belongs are refused
/// naming the value, invalid usernames and phones are refused on save
/// (the whole batch) and find nothing on lookup, and saves and lookups
/// share one normalization.
pub fn ids_and_names(factory: Factory<'_>) {
    const W: &str = "ids_and_names";
    let s = factory();
    let s = &*s;

    // Channel pts take the bare channel id.
    for bad in [-1_001_234_567_890, 0, -5, MAX_CHANNEL_ID + 1] {
        let v = bad.to_string();
        refused(s.save_channel_pts(bad, 1), &v, "save_channel_pts");
        refused(s.channel_pts(bad), &v, "channel_pts");
    }
    ok(s.save_channel_pts(1_234_567_890, 3), W);
    assert_eq!(
        ok(s.channel_states(), W),
        [ChannelState {
            channel_id: 1_234_567_890,
            pts: 3
        }],
        "{W}: refused channel ids saved nothing"
    );
    let bad_state = ChannelState {
        channel_id: -1_000_000_000_077,
        pts: 1,
    };
    refused(
        s.save_peers_and_state(&[Peer::user(31, 1)], None, &[bad_state]),
        "-1000000000077",
        "save_peers_and_state with a Bot API channel id",
    );
    assert!(ok(s.peer(PeerId::user(31)), W).is_none(), "{W}: atomic");

    // Conversations: chat_id a Bot API id, user_id a user id.
    let conv = |chat_id, user_id| Conversation {
        chat_id,
        user_id,
        name: "flow".into(),
        ..Conversation::default()
    };
    refused(s.save_conversation(&conv(0, 5)), "0", "conversation chat 0");
    refused(
        s.save_conversation(&conv(-100, -5)),
        "-5",
        "conversation user -5",
    );
    refused(
        s.save_conversation(&conv(-100, 0)),
        "0",
        "conversation user 0",
    );
    refused(s.conversation(-100, -5), "-5", "conversation lookup");
    ok(s.save_conversation(&conv(-1_001_234_567_890, 5)), W);
    assert!(
        ok(s.conversation(-1_001_234_567_890, 5), W).is_some(),
        "{W}: conversation in a channel"
    );

    // Bot API ids go through Peer::from_bot_api, to the right kind.
    let chan = ok(Peer::from_bot_api(-1_001_234_567_890, Some(77)), W);
    let chat = ok(Peer::from_bot_api(-100, None), W);
    ok(s.save_peers(&[chan.clone(), chat.clone()]), W);
    assert_eq!(
        ok(s.access_hash(PeerId::channel(1_234_567_890)), W),
        Some(77),
        "{W}: Bot API channel id"
    );
    assert!(
        ok(s.peer(PeerId::user(1_234_567_890)), W).is_none(),
        "{W}: a channel became a user"
    );
    assert_eq!(ok(s.peer(PeerId::chat(100)), W), Some(chat), "{W}: chat");
    assert!(
        ok(s.peer(PeerId::user(100)), W).is_none(),
        "{W}: chat as user"
    );

    // Usernames: one leading '@', 4..=32 of [A-Za-z0-9_], a letter first.
    ok(s.save_peer(&Peer::user(40, 4).with_username("@Alice")), W);
    for q in ["alice", "ALICE", "@alice", "Alice"] {
        assert_eq!(by_username(s, q), Some(PeerId::user(40)), "{W}: {q:?}");
    }
    assert_eq!(
        ok(s.peer(PeerId::user(40)), W).and_then(|p| p.username),
        Some("Alice".into()),
        "{W}: stored without '@', case kept"
    );
    let long = "a".repeat(33);
    for bad in [
        "a b",
        "@@double",
        "",
        "@",
        "abc",
        "1abc",
        "ünïcode",
        "tab\tname",
        &long,
    ] {
        let shown = format!("{bad:?}");
        let peer = Peer::user(41, 4).with_username(bad);
        refused(s.save_peer(&peer), &shown, "invalid username");
        let mut other = Peer::user(41, 4);
        other.usernames = vec!["valid_one".into(), bad.into()];
        refused(
            s.save_peers(&[Peer::user(42, 4), other]),
            &shown,
            "invalid other username",
        );
        assert_eq!(by_username(s, bad), None, "{W}: lookup of {bad:?}");
        assert_eq!(
            ok(s.resolve_username(bad), W),
            None,
            "{W}: resolve of {bad:?}"
        );
    }
    assert!(ok(s.peer(PeerId::user(41)), W).is_none(), "{W}: refused");
    assert!(ok(s.peer(PeerId::user(42)), W).is_none(), "{W}: batch");
    assert_eq!(by_username(s, "valid_one"), None, "{W}: batch names");
    let edge = ["abcd", &"b".repeat(32), "old__name_", "x_bot"];
    for (i, name) in edge.into_iter().enumerate() {
        let id = 50 + i as i64;
        ok(s.save_peer(&Peer::user(id, 5).with_username(name)), W);
        assert_eq!(by_username(s, name), Some(PeerId::user(id)), "{W}: {name}");
    }

    // Phones: one normalization, 5..=20 digits.
    ok(
        s.save_peer(&Peer::user(60, 6).with_phone("+1 555 123-4567")),
        W,
    );
    assert_eq!(
        ok(s.peer(PeerId::user(60)), W).and_then(|p| p.phone),
        Some("15551234567".into()),
        "{W}: stored phone"
    );
    for q in ["15551234567", "+1 (555) 123 4567", "+1.555.123.4567"] {
        let found = ok(s.peer_by_phone(q), W).map(|p| p.id);
        assert_eq!(found, Some(PeerId::user(60)), "{W}: phone {q:?}");
    }
    for bad in ["", "n/a", "1234", "+1 555 CALL NOW", &"9".repeat(21)] {
        let shown = format!("{bad:?}");
        refused(
            s.save_peer(&Peer::user(61, 6).with_phone(bad)),
            &shown,
            "invalid phone",
        );
        assert!(ok(s.peer_by_phone(bad), W).is_none(), "{W}: phone {bad:?}");
    }
    assert!(
        ok(s.peer(PeerId::user(61)), W).is_none(),
        "{W}: refused phone"
    );
}

/// Checks that everything survives a reopen. `open` must return a handle to
/// the same persistent storage on every call, empty on the first; the
/// suite drops each handle before asking for the next (a backend that locks
/// its file can therefore reopen it).
///
/// ```
/// # fn main() -> peerlog::Result<()> {
/// use peerlog::{Storage, Store, conformance};
/// let dir = std::env::temp_dir().join(format!("peerlog-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("conformance.peerlog");
/// let _ = std::fs::remove_file(&path);
/// let opts = peerlog::Options { durability: peerlog::Durability::None, ..Default::default() };
/// conformance::run_persistent(&|| {
///     let store = Store::open_with(&path, opts.clone()).unwrap();
///     Box::new(store.account("main").unwrap()) as Box<dyn Storage>
/// });
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok(()) }
/// ```
pub fn run_persistent(open: Factory<'_>) {
    const W: &str = "persistence";
    let session = sample_session(2, 5);
    let dc = sample_dc(4, 6);
    let alice = Peer::user(10, 1010)
        .with_username("alice")
        .with_phone("440044");
    let carol = Peer::user(12, 1212).with_username("bobby");
    let chan = Peer::channel(99, 9900, ChannelKind::Broadcast);
    let state = UpdateState {
        pts: 5,
        qts: 6,
        date: 7,
        seq: 8,
    };
    let conv = Conversation {
        chat_id: 10,
        user_id: 10,
        name: "flow".into(),
        ..Conversation::default()
    };
    {
        let s = open();
        assert_empty(&*s, "persistence: the first open");
        ok(s.save_session(&session), W);
        ok(s.save_dc_auth(&dc), W);
        ok(
            s.save_peers(&[alice.clone(), Peer::user(11, 1111).with_username("bobby")]),
            W,
        );
        ok(s.save_peer(&carol), W);
        let min = Peer {
            min: true,
            ..Peer::user(10, 42)
                .with_username("alice")
                .with_phone("440044")
        };
        ok(s.save_peer(&min), W);
        ok(
            s.save_peers_and_state(std::slice::from_ref(&chan), Some(&state), &[]),
            W,
        );
        ok(s.save_channel_pts(99, 990), W);
        for i in 0u8..10 {
            ok(s.insert_dedup_key(&[i]), W);
        }
        for id in ["a", "b", "c"] {
            ok(s.enqueue(id, id.as_bytes()), W);
        }
        ok(s.mark_failed("b", "e1"), W);
        ok(s.ack("a"), W);
        ok(s.save_conversation(&conv), W);
        ok(s.set_meta("m", b"1"), W);
    }
    {
        let s = open();
        assert_eq!(ok(s.session(), W), Some(session), "{W}: session");
        assert_eq!(ok(s.dc_auths(), W), [dc], "{W}: DC auths");
        assert_eq!(ok(s.peer(alice.id), W), Some(alice.clone()), "{W}: peer");
        assert_eq!(ok(s.access_hash(alice.id), W), Some(1010), "{W}: min rule");
        assert_eq!(
            by_username(&*s, "BOBBY"),
            Some(carol.id),
            "{W}: moved username"
        );
        let old = ok(s.peer(PeerId::user(11)), W).expect("user 11");
        assert_eq!(old.username, None, "{W}: moved username's old owner");
        let phone = ok(s.peer_by_phone("+44 00 44"), W).map(|p| p.id);
        assert_eq!(phone, Some(alice.id), "{W}: phone index");
        assert_eq!(ok(s.peer_count(), W), 4, "{W}: peer_count");
        assert_eq!(ok(s.access_hash(chan.id), W), Some(9900), "{W}: batch peer");
        assert_eq!(ok(s.update_state(), W), Some(state), "{W}: update state");
        assert_eq!(ok(s.channel_pts(99), W), Some(990), "{W}: channel pts");
        for i in 0u8..10 {
            assert!(ok(s.has_dedup_key(&[i]), W), "{W}: dedup key {i}");
        }
        assert!(!ok(s.insert_dedup_key(&[3]), W), "{W}: dedup key is seen");
        let q = ok(s.pending(10), W);
        let ids: Vec<_> = q.iter().map(|u| u.id.as_str()).collect();
        assert_eq!(ids, ["b", "c"], "{W}: queue");
        assert_eq!(q[0].attempts, 1, "{W}: attempts");
        assert_eq!(q[0].last_error.as_deref(), Some("e1"), "{W}: last error");
        assert!(!ok(s.enqueue("b", b"x"), W), "{W}: idempotent enqueue");
        assert_eq!(
            ok(s.conversation(10, 10), W),
            Some(conv),
            "{W}: conversation"
        );
        assert_eq!(ok(s.meta("m"), W).as_deref(), Some(&b"1"[..]), "{W}: meta");

        // Changes after a reopen persist too.
        ok(s.enqueue("d", b"d"), W);
        ok(s.ack("b"), W);
        ok(s.delete_peer(alice.id), W);
        ok(s.delete_session(), W);
        ok(s.delete_channel_state(99), W);
        ok(s.set_meta("m", b"2"), W);
    }
    {
        let s = open();
        assert!(ok(s.session(), W).is_none(), "{W}: deleted session");
        assert!(ok(s.peer(alice.id), W).is_none(), "{W}: deleted peer");
        assert_eq!(ok(s.peer_by_phone("440044"), W), None, "{W}: deleted phone");
        assert_eq!(ok(s.peer_count(), W), 3, "{W}: peer_count after delete");
        assert_eq!(ok(s.channel_pts(99), W), None, "{W}: deleted pts");
        let ids: Vec<_> = ok(s.pending(10), W).into_iter().map(|u| u.id).collect();
        assert_eq!(ids, ["c", "d"], "{W}: queue after reopen");
        assert_eq!(ok(s.meta("m"), W).as_deref(), Some(&b"2"[..]), "{W}: meta");
    }
}
