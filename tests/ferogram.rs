//! peerlog as a ferogram session backend: a differential test against
//! ferogram-session's own `InMemoryBackend` (thousands of seeded random
//! calls, with reopens), writes that change nothing, where the data lands
//! in peerlog, and migration from and to ferogram's session file and
//! strings, byte for byte.
#![cfg(feature = "ferogram")]

use std::path::Path;

use ferogram_session::{
    BinaryFileBackend, CachedMinPeer, CachedPeer, ChannelKind, DcEntry, DcFlags, FullSession,
    InMemoryBackend, PersistedSession, SessionBackend, StringSession, StringSessionBackend,
    UpdateStateChange, UpdatesStateSnap,
};
use peerlog::ferogram::PeerlogBackend;
use peerlog::{Durability, Error, Options, Peer, PeerId, Storage, Store};

// --- Helpers -----------------------------------------------------------------

/// splitmix64: a seeded generator, so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
    fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize].clone()
    }
}

/// Bare ids, valid and not: the edges of peerlog's ranges, Bot API ids
/// given where ferogram wants bare ones, 0, negatives.
const IDS: [i64; 14] = [
    1,
    2,
    3,
    777,
    1_234_567_890,
    997_852_516_352,
    999_999_999_999,
    0xff_ffff_ffff,
    0x100_0000_0000,
    0,
    -5,
    -1_001_234_567_890,
    -1_234_567_890,
    i64::MAX,
];
/// Channel ids for the update state, with monoforum-range and Bot API ids.
const CHANNEL_IDS: [i64; 8] = [
    1,
    2,
    1_234_567_890,
    997_852_516_352,
    2_500_000_000_000,
    -1_001_234_567_890,
    0,
    -7,
];
const DC_IDS: [i32; 8] = [-1, 0, 1, 2, 3, 4, 5, 203];
const HASHES: [i64; 5] = [0, 1, -1, i64::MIN, 0x1234_5678_9abc_def0];

fn addrs() -> Vec<String> {
    vec![
        "149.154.167.51:443".into(),
        "149.154.175.100:80".into(),
        "[2001:b28:f23d:f001::a]:443".into(),
        String::new(),
        "not an address".into(),
        "é:1".into(),
    ]
}

fn peer(rng: &mut Rng) -> CachedPeer {
    let (is_channel, is_chat) = match rng.below(10) {
        0..=3 => (false, false),
        4..=6 => (true, false),
        7 | 8 => (false, true),
        _ => (true, true),
    };
    CachedPeer {
        id: rng.pick(&IDS),
        access_hash: if rng.percent(80) {
            rng.pick(&HASHES)
        } else {
            rng.next() as i64
        },
        is_channel,
        is_chat,
        channel_kind: match rng.below(5) {
            0 => Some(ChannelKind::Broadcast),
            1 => Some(ChannelKind::Megagroup),
            2 => Some(ChannelKind::Gigagroup),
            _ => None,
        },
        is_community: rng.percent(10),
    }
}

fn dc(rng: &mut Rng) -> DcEntry {
    let flags = match rng.below(4) {
        0 => DcFlags::NONE,
        1 => DcFlags::IPV6,
        2 => DcFlags::IPV6 | DcFlags::MEDIA_ONLY,
        _ => DcFlags(rng.next() as u8),
    };
    DcEntry {
        dc_id: rng.pick(&DC_IDS),
        addr: rng.pick(&addrs()),
        auth_key: match rng.below(4) {
            0 => None,
            b => Some([b as u8 * 37; 256]),
        },
        first_salt: rng.pick(&HASHES),
        time_offset: rng.below(7) as i32 - 3,
        flags,
    }
}

fn channels(rng: &mut Rng) -> Vec<(i64, i32)> {
    (0..rng.below(5))
        .map(|_| (rng.pick(&CHANNEL_IDS), rng.below(1000) as i32))
        .collect()
}

fn snap(rng: &mut Rng) -> UpdatesStateSnap {
    UpdatesStateSnap {
        pts: rng.below(100) as i32,
        qts: rng.below(100) as i32 - 1,
        date: rng.below(2_000_000_000) as i32,
        seq: rng.below(100) as i32,
        channels: channels(rng),
    }
}

fn session(rng: &mut Rng) -> PersistedSession {
    PersistedSession {
        home_dc_id: rng.pick(&DC_IDS),
        dcs: (0..rng.below(5)).map(|_| dc(rng)).collect(),
        updates_state: snap(rng),
        peers: (0..rng.below(9)).map(|_| peer(rng)).collect(),
        min_peers: (0..rng.below(3))
            .map(|_| CachedMinPeer {
                user_id: rng.pick(&IDS),
                peer_id: rng.pick(&IDS),
                msg_id: rng.below(1000) as i32,
            })
            .collect(),
        future_auth_token: match rng.below(3) {
            0 => None,
            1 => Some(Vec::new()),
            _ => Some((0..rng.below(40)).map(|_| rng.next() as u8).collect()),
        },
    }
}

fn change(rng: &mut Rng) -> UpdateStateChange {
    match rng.below(8) {
        0 => UpdateStateChange::All(snap(rng)),
        1 | 2 => UpdateStateChange::Primary {
            pts: rng.below(50) as i32,
            date: rng.below(3) as i32,
            seq: rng.below(3) as i32,
        },
        3 => UpdateStateChange::Secondary {
            qts: rng.below(3) as i32,
        },
        _ => UpdateStateChange::Channel {
            id: rng.pick(&CHANNEL_IDS),
            pts: rng.below(20) as i32,
        },
    }
}

/// A session compared field for field (ferogram's types have no
/// `PartialEq`; their `Debug` shows every field).
fn show(s: &Option<PersistedSession>) -> String {
    format!("{s:?}")
}

fn opts() -> Options {
    Options::default()
}

/// No background syncs: the counters move only for our calls.
fn quiet() -> Options {
    Options {
        durability: Durability::None,
        ..Options::default()
    }
}

// --- Differential ----------------------------------------------------------------

fn differential(seed: u64, calls: usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fero.peerlog");
    let reference = InMemoryBackend::new();
    let mut ours = PeerlogBackend::open_with(&path, opts()).unwrap();
    let mut rng = Rng(seed);
    let mut known: Vec<CachedPeer> = Vec::new();
    let (mut rich, mut reopens) = (0, 0);
    for step in 0..calls {
        let what = rng.below(100);
        let ctx = format!("seed {seed}, step {step}, call {what}");
        match what {
            0..=34 => {
                // Often a peer seen before, unchanged or with a new hash.
                let mut p = if !known.is_empty() && rng.percent(50) {
                    rng.pick(&known)
                } else {
                    peer(&mut rng)
                };
                if rng.percent(20) {
                    p.access_hash = rng.pick(&HASHES);
                }
                known.push(p.clone());
                reference.cache_peer(&p).unwrap();
                ours.cache_peer(&p).expect(&ctx);
            }
            35..=54 => {
                let c = change(&mut rng);
                reference.apply_update_state(c.clone()).unwrap();
                ours.apply_update_state(c).expect(&ctx);
            }
            55..=66 => {
                let d = dc(&mut rng);
                reference.update_dc(&d).unwrap();
                ours.update_dc(&d).expect(&ctx);
            }
            67..=74 => {
                let id = rng.pick(&DC_IDS);
                reference.set_home_dc(id).unwrap();
                ours.set_home_dc(id).expect(&ctx);
            }
            75..=82 => {
                let s = session(&mut rng);
                reference.save(&s).unwrap();
                ours.save(&s).expect(&ctx);
            }
            83..=85 => {
                reference.delete().unwrap();
                ours.delete().expect(&ctx);
            }
            86..=90 => {
                drop(ours);
                ours = PeerlogBackend::open_with(&path, opts()).expect(&ctx);
                reopens += 1;
            }
            _ => {
                // A load through a fresh handle on the same account.
                let other = PeerlogBackend::from_account(ours.account().clone()).unwrap();
                assert_eq!(
                    show(&other.load().unwrap()),
                    show(&reference.load().unwrap()),
                    "{ctx}"
                );
            }
        }
        let expected = reference.load().unwrap();
        assert_eq!(show(&ours.load().expect(&ctx)), show(&expected), "{ctx}");
        if expected.is_some_and(|s| s.peers.len() > 3 && !s.dcs.is_empty()) {
            rich += 1;
        }
    }
    // The walk reached sessions with peers and DCs, and reopened often.
    assert!(rich > calls / 4 && reopens > calls / 40, "{rich} {reopens}");
    // The file verifies and the answers survive a last reopen.
    drop(ours);
    let report = peerlog::verify_file(&path).unwrap();
    assert!(report.is_ok(), "{report:?}");
    let ours = PeerlogBackend::open_with(&path, opts()).unwrap();
    assert_eq!(
        show(&ours.load().unwrap()),
        show(&reference.load().unwrap())
    );
}

#[test]
fn differential_against_in_memory_backend() {
    for seed in 1..=4 {
        differential(seed, 1500);
    }
}

#[test]
fn differential_in_a_memory_store() {
    let reference = InMemoryBackend::new();
    let ours = PeerlogBackend::memory().unwrap();
    let mut rng = Rng(99);
    for step in 0..1000 {
        match rng.below(4) {
            0 => {
                let p = peer(&mut rng);
                reference.cache_peer(&p).unwrap();
                ours.cache_peer(&p).unwrap();
            }
            1 => {
                let c = change(&mut rng);
                reference.apply_update_state(c.clone()).unwrap();
                ours.apply_update_state(c).unwrap();
            }
            2 => {
                let d = dc(&mut rng);
                reference.update_dc(&d).unwrap();
                ours.update_dc(&d).unwrap();
            }
            _ => {
                let s = session(&mut rng);
                reference.save(&s).unwrap();
                ours.save(&s).unwrap();
            }
        }
        assert_eq!(
            show(&ours.load().unwrap()),
            show(&reference.load().unwrap()),
            "step {step}"
        );
    }
}

// --- Writes --------------------------------------------------------------------

fn channel(id: i64, hash: i64) -> CachedPeer {
    CachedPeer {
        id,
        access_hash: hash,
        is_channel: true,
        is_chat: false,
        channel_kind: Some(ChannelKind::Megagroup),
        is_community: false,
    }
}

fn user(id: i64, hash: i64) -> CachedPeer {
    CachedPeer {
        id,
        access_hash: hash,
        is_channel: false,
        is_chat: false,
        channel_kind: None,
        is_community: false,
    }
}

#[test]
fn calls_that_change_nothing_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let b = PeerlogBackend::open_with(dir.path().join("f.peerlog"), quiet()).unwrap();
    let store = b.account().store().clone();
    let counters = || {
        let s = store.stats();
        (s.commits, s.log_used)
    };
    let peers = [
        user(7, 70),
        channel(1_234_567_890, -5),
        CachedPeer {
            is_chat: true,
            ..user(4242, 0)
        },
        // Kept whole in the metadata: a Bot API id where a bare one goes.
        channel(-1_001_234_567_890, 9),
        CachedPeer {
            is_community: true,
            ..channel(55, 1)
        },
    ];
    for p in &peers {
        b.cache_peer(p).unwrap();
    }
    b.set_home_dc(4).unwrap();
    b.apply_update_state(UpdateStateChange::Primary {
        pts: 5,
        date: 6,
        seq: 7,
    })
    .unwrap();
    b.apply_update_state(UpdateStateChange::Channel {
        id: 1_234_567_890,
        pts: 3,
    })
    .unwrap();
    let d = DcEntry::from_parts(4, "149.154.167.91", 443, DcFlags::NONE);
    b.update_dc(&d).unwrap();

    let before = counters();
    for p in &peers {
        b.cache_peer(p).unwrap();
    }
    b.set_home_dc(4).unwrap();
    b.apply_update_state(UpdateStateChange::Primary {
        pts: 5,
        date: 6,
        seq: 7,
    })
    .unwrap();
    b.apply_update_state(UpdateStateChange::Channel {
        id: 1_234_567_890,
        pts: 3,
    })
    .unwrap();
    assert_eq!(counters(), before, "unchanged calls wrote");

    // A changed hash is one commit, and nothing else is rewritten.
    b.cache_peer(&user(7, 71)).unwrap();
    assert_eq!(store.stats().commits, before.0 + 1);
    // A new peer is one commit too.
    b.cache_peer(&user(8, 80)).unwrap();
    assert_eq!(store.stats().commits, before.0 + 2);
    // And a channel's pts.
    b.apply_update_state(UpdateStateChange::Channel {
        id: 1_234_567_890,
        pts: 4,
    })
    .unwrap();
    assert_eq!(store.stats().commits, before.0 + 3);
}

#[test]
fn durable_calls_sync_before_returning() {
    let dir = tempfile::tempdir().unwrap();
    let b = PeerlogBackend::open_with(dir.path().join("f.peerlog"), quiet()).unwrap();
    let store = b.account().store().clone();
    let syncs = || store.stats().syncs;
    let s0 = syncs();
    let mut d = DcEntry::from_parts(2, "149.154.167.51", 443, DcFlags::NONE);
    d.auth_key = Some([3; 256]);
    b.update_dc(&d).unwrap();
    let s1 = syncs();
    assert!(s1 > s0);
    // An address change alone (no key, no session record) syncs too.
    let mut v6 = DcEntry::from_parts(2, "2001:b28:f23d:f001::a", 443, DcFlags::IPV6);
    v6.time_offset = 1;
    b.update_dc(&v6).unwrap();
    let s2 = syncs();
    assert!(s2 > s1);
    b.set_home_dc(5).unwrap();
    let s3 = syncs();
    assert!(s3 > s2);
    b.save(&PersistedSession::default()).unwrap();
    assert!(syncs() > s3);
}

#[test]
fn data_lands_in_peerlogs_tables() {
    let b = PeerlogBackend::memory().unwrap();
    let acc = b.account().clone();
    let mut key4 = DcEntry::from_parts(4, "149.154.167.91", 443, DcFlags::NONE);
    key4.auth_key = Some([4; 256]);
    key4.first_salt = 44;
    b.update_dc(&key4).unwrap();
    b.set_home_dc(4).unwrap();
    b.cache_peer(&channel(1_234_567_890, -5)).unwrap();
    b.cache_peer(&user(1_234_567_890, 6)).unwrap();

    // ferogram keys by bare id: the user replaced the channel, in place.
    // The channel's record stays in the table (its hash is still true).
    let s = b.load().unwrap().unwrap();
    assert_eq!(s.peers.len(), 1);
    assert!(!s.peers[0].is_channel);
    let chan = PeerId::from_bot_api(-1_001_234_567_890).unwrap();
    assert_eq!(acc.access_hash(chan).unwrap(), Some(-5));
    assert_eq!(
        acc.access_hash(PeerId::user(1_234_567_890)).unwrap(),
        Some(6)
    );
    // A save that no longer lists the bare id removes what ferogram listed.
    b.save(&PersistedSession {
        home_dc_id: 4,
        dcs: vec![key4.clone()],
        ..PersistedSession::default()
    })
    .unwrap();
    assert_eq!(acc.access_hash(PeerId::user(1_234_567_890)).unwrap(), None);
    assert_eq!(acc.access_hash(chan).unwrap(), Some(-5));
    acc.delete_peer(chan).unwrap();

    // A channel is the channel, under its Bot API id; never a user.
    b.cache_peer(&channel(77, 70)).unwrap();
    let p = acc
        .peer(PeerId::from_bot_api(-1_000_000_000_077).unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(p.access_hash, Some(70));
    assert_eq!(p.channel_kind, Some(peerlog::ChannelKind::Megagroup));
    assert_eq!(acc.peer(PeerId::user(77)).unwrap(), None);

    // Names written through Storage stay when ferogram updates the hash,
    // and the new hash resolves through the username index.
    acc.save_peer(
        &Peer::from_bot_api(-1_000_000_000_077, Some(70))
            .unwrap()
            .with_username("Chan"),
    )
    .unwrap();
    b.cache_peer(&channel(77, 71)).unwrap();
    assert_eq!(
        acc.resolve_username("@chan").unwrap(),
        Some((PeerId::channel(77), Some(71)))
    );

    // The home DC and its key are the peerlog session's; the key a DcAuth.
    let rec = acc.session().unwrap().unwrap();
    assert_eq!(rec.dc_id, 4);
    assert_eq!(rec.port, 443);
    assert_eq!(rec.auth_key.as_ref().map(|k| k.as_bytes()[0]), Some(4));
    let auth = acc.dc_auth(4).unwrap().unwrap();
    assert_eq!((auth.server_salt, auth.auth_key.as_bytes()[9]), (44, 4));
    assert!(!format!("{rec:?}{auth:?}").contains("4, 4, 4"));

    // Update state and channel pts are peerlog's.
    b.apply_update_state(UpdateStateChange::Primary {
        pts: 10,
        date: 11,
        seq: 12,
    })
    .unwrap();
    b.apply_update_state(UpdateStateChange::Channel { id: 77, pts: 5 })
        .unwrap();
    assert_eq!(acc.update_state().unwrap().unwrap().pts, 10);
    assert_eq!(acc.channel_pts(77).unwrap(), Some(5));

    // A peer deleted through Storage leaves ferogram's view.
    acc.delete_peer(PeerId::channel(77)).unwrap();
    assert!(b.load().unwrap().unwrap().peers.iter().all(|p| p.id != 77));

    // delete() removes the session, its keys and its peers.
    b.delete().unwrap();
    assert!(b.load().unwrap().is_none());
    assert_eq!(acc.session().unwrap(), None);
    assert_eq!(acc.dc_auth(4).unwrap(), None);
    assert_eq!(acc.peer_count().unwrap(), 0);
    assert_eq!(acc.channel_pts(77).unwrap(), None);
}

// --- Migration -------------------------------------------------------------------

/// A random session within what ferogram's file format can hold.
fn encodable(rng: &mut Rng) -> PersistedSession {
    let mut s = session(rng);
    // The file keeps one kind per peer (chat before channel).
    for p in &mut s.peers {
        if p.is_chat {
            p.is_channel = false;
        }
    }
    s
}

fn assert_file_roundtrip(s: &PersistedSession, dir: &Path, n: usize) {
    let theirs = dir.join(format!("theirs{n}.session"));
    BinaryFileBackend::new(&theirs).save(s).unwrap();
    let b = PeerlogBackend::memory().unwrap();
    b.import_file(&theirs).unwrap();
    let ours = dir.join(format!("ours{n}.session"));
    b.export_file(&ours).unwrap();
    let (a, z) = (
        std::fs::read(&theirs).unwrap(),
        std::fs::read(&ours).unwrap(),
    );
    assert_eq!(a, z, "session {n}");
    assert_eq!(b.export_bytes().unwrap(), s.to_bytes());
    // And ferogram reads it back as it wrote it.
    assert_eq!(
        show(&BinaryFileBackend::new(&ours).load().unwrap()),
        show(&BinaryFileBackend::new(&theirs).load().unwrap())
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&ours).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

#[test]
fn session_file_imports_and_exports_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(7);
    for n in 0..200 {
        let s = encodable(&mut rng);
        assert_file_roundtrip(&s, dir.path(), n);
    }
    // A realistic one: five DCs in both families, keys, thousands of peers.
    let mut s = PersistedSession {
        home_dc_id: 2,
        ..PersistedSession::default()
    };
    for id in 1..=5 {
        let mut v4 = DcEntry::from_parts(id, &format!("149.154.167.{id}"), 443, DcFlags::NONE);
        v4.auth_key = Some([id as u8; 256]);
        let mut v6 = DcEntry::from_parts(id, "2001:b28:f23d:f001::a", 443, DcFlags::IPV6);
        v6.auth_key = v4.auth_key;
        s.dcs.extend([v4, v6]);
    }
    for i in 1..3000 {
        s.peers.push(if i % 3 == 0 {
            channel(i, i * 7)
        } else {
            user(i, -i)
        });
    }
    s.updates_state.channels = (1..50).map(|c| (c * 3, c as i32)).collect();
    assert_file_roundtrip(&s, dir.path(), 1000);
}

#[test]
fn session_strings_import_and_export_byte_exact() {
    let mut rng = Rng(11);
    for _ in 0..100 {
        let s = encodable(&mut rng);
        let theirs = StringSessionBackend::new("");
        theirs.save(&s).unwrap();
        let b = PeerlogBackend::memory().unwrap();
        b.import_string(&theirs.current()).unwrap();
        assert_eq!(b.export_string().unwrap(), theirs.current());
        assert_eq!(b.export_string().unwrap(), s.to_string());
    }

    // Compact strings, both versions, both address families.
    for ip in ["149.154.167.51", "2001:b28:f23d:f001::a"] {
        let v2 = StringSession::V2(ferogram_session::Session {
            dc_id: 2,
            ip: ip.parse().unwrap(),
            port: 443,
            auth_key: [5; 256],
            user_id: 123_456_789,
        })
        .encode();
        let b = PeerlogBackend::memory().unwrap();
        b.import_compact_string(&v2).unwrap();
        assert_eq!(b.export_compact_string().unwrap(), v2);
        assert_eq!(
            b.account().session().unwrap().unwrap().user_id,
            Some(123_456_789)
        );
        let s = b.load().unwrap().unwrap();
        assert_eq!((s.home_dc_id, s.dcs[0].auth_key), (2, Some([5; 256])));

        let v1 = StringSession::V1(FullSession {
            dc_id: 4,
            ip: ip.parse().unwrap(),
            port: 80,
            auth_key: [6; 256],
            user_id: 9,
            server_salt: -3,
            seq_no: 17,
            layer: 214,
        })
        .encode_v1();
        b.import_compact_string(&v1).unwrap();
        assert_eq!(b.export_compact_string().unwrap(), v1);
    }
}

#[test]
fn damaged_input_is_a_typed_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let b = PeerlogBackend::memory().unwrap();
    b.set_home_dc(3).unwrap();
    let before = show(&b.load().unwrap());

    let mut s = PersistedSession::default();
    s.peers.push(user(5, 5));
    let good = s.to_bytes();
    let path = dir.path().join("cut.session");
    for cut in [0, 1, 5, good.len() - 1] {
        std::fs::write(&path, &good[..cut]).unwrap();
        let err = b.import_file(&path).unwrap_err();
        assert!(
            matches!(&err, Error::Invalid(m) if m.contains("cut.session")),
            "{err}"
        );
    }
    let err = b.import_file(dir.path().join("missing")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    // ("AAAAAAAAAA", seven zero bytes, is a valid legacy session to ferogram.)
    for s in ["", "!!!", "AAAA", "Bw", "CAAAAAAB"] {
        assert!(matches!(b.import_string(s), Err(Error::Invalid(_))));
        assert!(matches!(b.import_compact_string(s), Err(Error::Invalid(_))));
    }
    assert_eq!(show(&b.load().unwrap()), before);

    // What ferogram's format cannot hold is refused on export, not
    // written as a file ferogram cannot read.
    let mut long = DcEntry::from_parts(2, "1.2.3.4", 1, DcFlags::NONE);
    long.addr = "x".repeat(300);
    b.update_dc(&long).unwrap();
    assert!(matches!(b.export_bytes(), Err(Error::Invalid(m)) if m.contains("300")));
    let empty = PeerlogBackend::memory().unwrap();
    assert!(matches!(empty.export_bytes(), Err(Error::Invalid(_))));
    assert!(matches!(
        empty.export_compact_string(),
        Err(Error::Invalid(_))
    ));
}

#[test]
fn two_accounts_of_one_file_are_separate_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path().join("bots.peerlog"), opts()).unwrap();
    let a = PeerlogBackend::from_account(store.account("a").unwrap()).unwrap();
    let z = PeerlogBackend::from_account(store.account("z").unwrap()).unwrap();
    a.cache_peer(&user(1, 1)).unwrap();
    z.cache_peer(&user(1, 2)).unwrap();
    a.set_home_dc(1).unwrap();
    assert_eq!(a.load().unwrap().unwrap().peers[0].access_hash, 1);
    assert_eq!(z.load().unwrap().unwrap().peers[0].access_hash, 2);
    assert_eq!(z.load().unwrap().unwrap().home_dc_id, 0);
}

#[test]
fn an_account_session_from_elsewhere_is_adopted() {
    use peerlog::{AuthKey, DcAuth, Session, UpdateState};
    let b = PeerlogBackend::memory().unwrap();
    let acc = b.account().clone();
    // As a Telethon string import and a client using Storage leave it.
    let mut rec = Session::new(2, false);
    rec.auth_key = Some(AuthKey::new([2; 256]));
    rec.user_id = Some(777);
    acc.save_session(&rec).unwrap();
    acc.save_dc_auth(&DcAuth {
        dc_id: 4,
        auth_key: AuthKey::new([4; 256]),
        server_salt: 9,
        server_addr: None,
        port: 0,
    })
    .unwrap();
    acc.save_peers(&[
        Peer::user(5, 50),
        Peer::from_bot_api(-1_001_234_567_890, Some(60)).unwrap(),
        Peer::from_bot_api(-4242, None).unwrap(),
    ])
    .unwrap();
    acc.save_update_state(&UpdateState {
        pts: 10,
        qts: 1,
        date: 2,
        seq: 3,
    })
    .unwrap();
    acc.save_channel_pts(1_234_567_890, 8).unwrap();

    let seen = b.load().unwrap().unwrap();
    assert_eq!(seen.home_dc_id, 2);
    assert_eq!(seen.dcs.len(), 2);
    assert_eq!(seen.dc_for(2, false).unwrap().auth_key, Some([2; 256]));
    assert_eq!(seen.dc_for(2, false).unwrap().addr, "149.154.167.51:443");
    assert_eq!(seen.dc_for(4, false).unwrap().first_salt, 9);
    assert_eq!(seen.updates_state.channel_pts(1_234_567_890), 8);
    let kinds: Vec<_> = seen
        .peers
        .iter()
        .map(|p| (p.id, p.access_hash, p.is_channel, p.is_chat))
        .collect();
    assert_eq!(
        kinds,
        [
            (1_234_567_890, 60, true, false),
            (4242, 0, false, true),
            (5, 50, false, false)
        ]
    );
    assert_eq!(acc.dc_auth(2).unwrap(), None);

    // The first write adopts it: what load showed, plus the write.
    b.cache_peer(&user(6, 66)).unwrap();
    let mut expected = seen.clone();
    expected.peers.push(user(6, 66));
    assert_eq!(show(&b.load().unwrap()), show(&Some(expected)));
    assert_eq!(acc.session().unwrap().unwrap().user_id, Some(777));
    assert_eq!(
        StringSession::decode(&b.export_compact_string().unwrap())
            .unwrap()
            .session()
            .user_id,
        777
    );
    // A reopened backend over the same account agrees.
    let again = PeerlogBackend::from_account(acc.clone()).unwrap();
    assert_eq!(show(&again.load().unwrap()), show(&b.load().unwrap()));

    // delete() removes what it showed.
    b.delete().unwrap();
    assert!(b.load().unwrap().is_none());
    assert_eq!(acc.peer_count().unwrap(), 0);
    assert_eq!(acc.dc_auths().unwrap().len(), 0);
    assert_eq!(acc.channel_states().unwrap().len(), 0);
}

#[test]
fn shared_across_threads_as_ferogram_holds_it() {
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("threads.peerlog");
    let b: Arc<dyn SessionBackend> = Arc::new(PeerlogBackend::open_with(&path, opts()).unwrap());
    b.set_home_dc(2).unwrap();
    let workers: Vec<_> = (0..4i64)
        .map(|t| {
            let b = Arc::clone(&b);
            std::thread::spawn(move || {
                for i in 1..=200 {
                    b.cache_peer(&user(t * 1000 + i, i)).unwrap();
                    b.cache_peer(&user(t * 1000 + i, i)).unwrap();
                    b.apply_update_state(UpdateStateChange::Channel {
                        id: t + 1,
                        pts: i as i32,
                    })
                    .unwrap();
                    if i % 50 == 0 {
                        assert!(b.load().unwrap().unwrap().peers.len() >= i as usize);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let s = b.load().unwrap().unwrap();
    assert_eq!(s.peers.len(), 800);
    for t in 0..4 {
        assert_eq!(s.updates_state.channel_pts(t + 1), 200);
    }
    drop(b);
    let again = PeerlogBackend::open_with(&path, opts()).unwrap();
    assert_eq!(again.load().unwrap().unwrap().peers.len(), 800);
}

#[test]
fn older_file_versions_import_as_ferogram_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    // Version 1 (legacy): the home DC's first byte is the version byte's
    // place; one DC with a key, no update state or peers.
    let mut v1 = 1i32.to_le_bytes().to_vec();
    v1.push(1);
    v1.extend_from_slice(&1i32.to_le_bytes());
    v1.push(1);
    v1.extend_from_slice(&[7; 256]);
    v1.extend_from_slice(&5i64.to_le_bytes());
    v1.extend_from_slice(&0i32.to_le_bytes());
    let addr = b"149.154.175.53:443";
    v1.push(addr.len() as u8);
    v1.extend_from_slice(addr);
    // Version 2: v1's DC table with a flags byte missing (added in v3),
    // then update state, peers (id, hash, type) and nothing after.
    let mut v2 = vec![2];
    v2.extend_from_slice(&4i32.to_le_bytes());
    v2.push(0);
    for x in [9i32, 1, 2, 3] {
        v2.extend_from_slice(&x.to_le_bytes());
    }
    v2.extend_from_slice(&1u16.to_le_bytes());
    v2.extend_from_slice(&1_234_567_890i64.to_le_bytes());
    v2.extend_from_slice(&4i32.to_le_bytes());
    v2.extend_from_slice(&1u16.to_le_bytes());
    v2.extend_from_slice(&1_234_567_890i64.to_le_bytes());
    v2.extend_from_slice(&(-8i64).to_le_bytes());
    v2.push(1);
    for (n, bytes) in [v1, v2].iter().enumerate() {
        let path = dir.path().join(format!("old{n}.session"));
        std::fs::write(&path, bytes).unwrap();
        let theirs = BinaryFileBackend::new(&path).load().unwrap();
        assert!(theirs.is_some(), "version {}", n + 1);
        let b = PeerlogBackend::memory().unwrap();
        b.import_file(&path).unwrap();
        assert_eq!(show(&b.load().unwrap()), show(&theirs));
        // Exported as the version 8 file ferogram writes for it.
        assert_eq!(b.export_bytes().unwrap(), theirs.unwrap().to_bytes());
    }
}

#[test]
fn damaged_metadata_is_a_typed_error_not_a_panic() {
    for (key, value) in [
        ("ferogram/session", &b"\x01\xff\xff\xff\xff"[..]),
        ("ferogram/dcs", b"\x01\x01\x00\x00\x00"),
        ("ferogram/channels", b"\x02"),
        ("ferogram/peer/0000000000000000", b"\x01\x00"),
        ("ferogram/peer/not-hex", b""),
    ] {
        let b = PeerlogBackend::memory().unwrap();
        b.cache_peer(&user(1, 1)).unwrap();
        b.account().set_meta(key, value).unwrap();
        let err = b.load().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{key}: {err}");
        assert!(err.to_string().contains("ferogram"), "{key}: {err}");
        let inner = err.into_inner().unwrap();
        assert!(inner.downcast_ref::<Error>().is_some());
    }
}
