//! No id becomes another peer; names are normalised one way.
//!
//! The story: most users hold Bot API ids (`-1001234567890` for a channel,
//! `-100` for a basic chat), while `Peer::channel`, `Peer::chat` and
//! `Peer::user` take bare MTProto ids. Handing one form to the other used
//! to reinterpret it silently in release builds: `Peer::channel(-1001234567890,
//! ..)` was saved as *user* 1234567890 carrying the channel's access hash,
//! `Peer::chat(-100)` as user 100, `Peer::user(-5, ..)` as chat 5 (debug
//! builds panicked without naming the value). Now every bare-id constructor
//! panics in every build with a message naming the value and the
//! constructor to use, and `Peer::from_bot_api` / `PeerId::from_bot_api`
//! take Bot API ids explicitly. The other id-taking calls pick one form
//! each and refuse the other: channel pts take the bare channel id,
//! conversations a Bot API `chat_id` and a user id.
//!
//! Names: `"a b"` and `"@@double"` used to be stored and could never be
//! found. A username is now checked on save (one leading `@`, 4..=32 ASCII
//! letters, digits and underscores, a letter first) and the same
//! normalisation runs on every lookup; phones go through one
//! `normalize_phone` on save and on every lookup, the typed API's and the
//! engine-level `Store::peer_id_by_phone` alike. Every refusal is
//! `Error::Invalid` naming the value.
//!
//! The id cases run in debug and release builds
//! (`cargo test --release --test ids_names`): the point is that release
//! builds no longer differ.

use std::panic::{AssertUnwindSafe, catch_unwind};

use peerlog::{
    ChannelKind, ChannelState, Conversation, Error, MemoryStorage, Peer, PeerId, PeerKind, Storage,
    Store, normalize_phone, normalize_username,
};

/// The message of the panic `f` raises (it must raise one).
fn panic_message(f: impl FnOnce()) -> String {
    let payload = catch_unwind(AssertUnwindSafe(f)).expect_err("no panic");
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(p) => p
            .downcast::<&str>()
            .map(|s| s.to_string())
            .unwrap_or_default(),
    }
}

/// `r` is `Error::Invalid` and its message names every one of `parts`.
#[track_caller]
fn invalid_naming<T: std::fmt::Debug>(r: peerlog::Result<T>, parts: &[&str]) -> String {
    match r {
        Err(Error::Invalid(m)) => {
            for p in parts {
                assert!(m.contains(p), "{m:?} does not name {p:?}");
            }
            m
        }
        other => panic!("want Error::Invalid naming {parts:?}, got {other:?}"),
    }
}

fn backends() -> Vec<(&'static str, Box<dyn Storage>)> {
    let store = Store::memory();
    vec![
        ("account", Box::new(store.account("a").unwrap())),
        ("memory", Box::new(MemoryStorage::new())),
    ]
}

// --- Ids -------------------------------------------------------------------

#[test]
fn bot_api_channel_id_in_peer_channel_panics_naming_it() {
    let m = panic_message(|| {
        Peer::channel(-1_001_234_567_890, 77, ChannelKind::Broadcast);
    });
    assert!(m.contains("Peer::channel(-1001234567890)"), "{m}");
    assert!(m.contains("Peer::from_bot_api"), "{m}");
}

#[test]
fn bot_api_chat_id_in_peer_chat_panics_naming_it() {
    let m = panic_message(|| {
        Peer::chat(-100);
    });
    assert!(m.contains("Peer::chat(-100)"), "{m}");
    assert!(m.contains("Peer::from_bot_api"), "{m}");
}

#[test]
fn negative_user_id_panics_naming_it() {
    let m = panic_message(|| {
        Peer::user(-5, 1);
    });
    assert!(m.contains("Peer::user(-5)"), "{m}");
    assert!(m.contains("Peer::from_bot_api"), "{m}");
    for bad in [0, 1 << 40, i64::MIN, i64::MAX] {
        let m = panic_message(|| {
            Peer::user(bad, 1);
        });
        assert!(m.contains(&format!("Peer::user({bad})")), "{m}");
    }
}

#[test]
fn peer_id_constructors_panic_naming_the_value_in_every_build() {
    let cases: [(&str, fn()); 6] = [
        ("PeerId::user(-5)", || {
            PeerId::user(-5);
        }),
        ("PeerId::user(0)", || {
            PeerId::user(0);
        }),
        ("PeerId::chat(-100)", || {
            PeerId::chat(-100);
        }),
        ("PeerId::chat(1000000000000)", || {
            PeerId::chat(1_000_000_000_000);
        }),
        ("PeerId::channel(-1001234567890)", || {
            PeerId::channel(-1_001_234_567_890);
        }),
        ("PeerId::channel(-9223372036854775808)", || {
            PeerId::channel(i64::MIN);
        }),
    ];
    for (want, f) in cases {
        let m = panic_message(f);
        assert!(m.contains(want), "{m:?} does not name {want}");
        assert!(m.contains("PeerId::from_bot_api"), "{m}");
    }
    // The fallible forms answer None instead, and never cross kinds.
    assert_eq!(PeerId::try_user(-5), None);
    assert_eq!(PeerId::try_chat(-100), None);
    assert_eq!(PeerId::try_channel(-1_001_234_567_890), None);
    // Valid bare ids keep their kind.
    assert_eq!(PeerId::user(5).kind(), PeerKind::User);
    assert_eq!(PeerId::chat(5).kind(), PeerKind::Chat);
    assert_eq!(PeerId::chat(5).bot_api(), -5);
    assert_eq!(PeerId::channel(1_234_567_890).bot_api(), -1_001_234_567_890);
}

#[test]
fn bot_api_ids_go_through_from_bot_api_to_the_right_kind() {
    for (api, kind, bare) in [
        (-1_001_234_567_890, PeerKind::Channel, 1_234_567_890),
        (-100, PeerKind::Chat, 100),
        (5, PeerKind::User, 5),
    ] {
        let id = PeerId::from_bot_api(api).unwrap();
        assert_eq!((id.kind(), id.bare_id(), id.bot_api()), (kind, bare, api));
        let p = Peer::from_bot_api(api, Some(9)).unwrap();
        assert_eq!(p.id, id);
        assert_eq!(p.access_hash, Some(9));
    }
    for bad in [0, -1_000_000_000_000, -2_000_000_000_000, 1 << 40, i64::MIN] {
        assert_eq!(PeerId::from_bot_api(bad), None);
        invalid_naming(Peer::from_bot_api(bad, None), &[&bad.to_string()]);
    }

    for (name, s) in backends() {
        let chan = Peer::from_bot_api(-1_001_234_567_890, Some(77)).unwrap();
        let chat = Peer::from_bot_api(-100, None).unwrap();
        let user = Peer::from_bot_api(5, Some(55)).unwrap();
        s.save_peers(&[chan, chat, user]).unwrap();
        assert_eq!(
            s.access_hash(PeerId::channel(1_234_567_890)).unwrap(),
            Some(77),
            "{name}"
        );
        assert!(s.peer(PeerId::chat(100)).unwrap().is_some(), "{name}");
        assert_eq!(s.access_hash(PeerId::user(5)).unwrap(), Some(55), "{name}");
        // Nothing landed on another kind's id.
        assert_eq!(s.peer(PeerId::user(1_234_567_890)).unwrap(), None, "{name}");
        assert_eq!(s.peer(PeerId::user(100)).unwrap(), None, "{name}");
        assert_eq!(s.peer(PeerId::chat(5)).unwrap(), None, "{name}");
        assert_eq!(s.peer_count().unwrap(), 3, "{name}");
    }
}

#[test]
fn channel_pts_take_the_bare_id_only() {
    for (name, s) in backends() {
        let m = invalid_naming(
            s.save_channel_pts(-1_001_234_567_890, 5),
            &["-1001234567890"],
        );
        assert!(m.contains("pass 1234567890"), "{m}");
        invalid_naming(s.save_channel_pts(0, 5), &["channel id 0"]);
        invalid_naming(s.channel_pts(-1_001_234_567_890), &["-1001234567890"]);
        invalid_naming(
            s.save_peers_and_state(
                &[Peer::user(1, 1)],
                None,
                &[ChannelState {
                    channel_id: -1_001_234_567_890,
                    pts: 5,
                }],
            ),
            &["-1001234567890"],
        );
        assert!(s.channel_states().unwrap().is_empty(), "{name}");
        assert_eq!(s.peer_count().unwrap(), 0, "{name}: all or nothing");
        // The bare id works, and so does a monoforum's (grammers keeps them).
        s.save_channel_pts(1_234_567_890, 5).unwrap();
        s.save_channel_pts(2_500_000_000_000, 6).unwrap();
        assert_eq!(s.channel_pts(1_234_567_890).unwrap(), Some(5), "{name}");
        // Deletes take any id, so entries an older version saved under a
        // wrong one can be removed.
        assert!(!s.delete_channel_state(-1_001_234_567_890).unwrap());
    }
}

#[test]
fn conversation_ids_are_checked() {
    let conv = |chat_id, user_id| Conversation {
        chat_id,
        user_id,
        name: "signup".into(),
        ..Conversation::default()
    };
    for (name, s) in backends() {
        invalid_naming(s.save_conversation(&conv(0, 5)), &["chat_id 0"]);
        invalid_naming(s.save_conversation(&conv(-100, -5)), &["user_id -5"]);
        invalid_naming(s.save_conversation(&conv(-100, 0)), &["user_id 0"]);
        invalid_naming(
            s.save_conversation(&conv(-3_000_000_000_000, 5)),
            &["chat_id -3000000000000"],
        );
        invalid_naming(s.conversation(0, 5), &["chat_id 0"]);
        // Bot API chat ids of every kind.
        for chat in [5, -100, -1_001_234_567_890] {
            s.save_conversation(&conv(chat, 5)).unwrap();
            assert!(s.conversation(chat, 5).unwrap().is_some(), "{name} {chat}");
        }
        assert!(!s.delete_conversation(0, 0).unwrap(), "{name}");
    }
}

// --- Usernames ----------------------------------------------------------------

#[test]
fn usernames_one_normalisation_for_save_and_lookup() {
    for (name, s) in backends() {
        s.save_peer(&Peer::user(1, 11).with_username("@Alice"))
            .unwrap();
        for q in ["alice", "ALICE", "@alice", "@Alice"] {
            let p = s.peer_by_username(q).unwrap();
            assert_eq!(p.map(|p| p.id), Some(PeerId::user(1)), "{name} {q}");
            assert_eq!(
                s.resolve_username(q).unwrap(),
                Some((PeerId::user(1), Some(11))),
                "{name} {q}"
            );
        }
        let stored = s.peer(PeerId::user(1)).unwrap().unwrap();
        assert_eq!(stored.username.as_deref(), Some("Alice"), "{name}");
        // Lookups of names no one can hold find nothing.
        for q in ["@@alice", "al ice", "", "@"] {
            assert_eq!(s.peer_by_username(q).unwrap(), None, "{name} {q:?}");
            assert_eq!(s.resolve_username(q).unwrap(), None, "{name} {q:?}");
        }
    }
}

#[test]
fn invalid_usernames_are_refused_naming_them() {
    let long = "a".repeat(33);
    for (name, s) in backends() {
        for bad in [
            "a b",
            "@@double",
            "",
            &long,
            "ålice",
            "алиса",
            "abc",
            "_alice",
        ] {
            let shown = format!("{bad:?}");
            let m = invalid_naming(
                s.save_peer(&Peer::user(2, 22).with_username(bad)),
                &[&shown],
            );
            assert!(m.contains("4..=32"), "{m}");
            let mut other = Peer::user(3, 33).with_username("valid_name");
            other.usernames = vec![bad.to_string()];
            invalid_naming(s.save_peers(&[Peer::user(4, 44), other]), &[&shown]);
            assert_eq!(s.peer_by_username(bad).unwrap(), None, "{name} {bad:?}");
        }
        // Nothing of a refused batch was stored.
        assert_eq!(s.peer_count().unwrap(), 0, "{name}");
        assert_eq!(s.peer_by_username("valid_name").unwrap(), None, "{name}");
        // The edges that are accepted: 4 and 32 characters, old names with
        // trailing or doubled underscores, bots.
        let b32 = "b".repeat(32);
        for (i, ok) in ["abcd", &b32, "old__name_", "some_bot"]
            .into_iter()
            .enumerate()
        {
            let id = 10 + i as i64;
            s.save_peer(&Peer::user(id, 1).with_username(ok)).unwrap();
            let found = s.peer_by_username(&ok.to_uppercase()).unwrap();
            assert_eq!(found.map(|p| p.id), Some(PeerId::user(id)), "{name} {ok}");
        }
    }
    assert_eq!(normalize_username("@Alice"), Some("Alice"));
    assert_eq!(normalize_username("@@double"), None);
}

// --- Phones -------------------------------------------------------------------

#[test]
fn phones_one_normalisation_via_account_and_store() {
    let store = Store::memory();
    let acct = store.account("a").unwrap();
    let mem = MemoryStorage::new();
    for s in [&acct as &dyn Storage, &mem] {
        s.save_peer(&Peer::user(7, 70).with_phone("+1 555 123-4567"))
            .unwrap();
        let stored = s.peer(PeerId::user(7)).unwrap().unwrap();
        assert_eq!(stored.phone.as_deref(), Some("15551234567"));
        for q in ["15551234567", "+1 (555) 123 4567", "+1 555 123-4567"] {
            let found = s.peer_by_phone(q).unwrap().map(|p| p.id);
            assert_eq!(found, Some(PeerId::user(7)), "{q}");
        }
    }
    // The engine-level lookup normalises the same way.
    for q in ["15551234567", "+1 (555) 123 4567", "+1 555 123-4567"] {
        assert_eq!(
            store.peer_id_by_phone(acct.number(), q).unwrap(),
            Some(7),
            "{q}"
        );
        assert_eq!(
            store.resolve_phone(acct.number(), q).unwrap(),
            Some((7, Some(70))),
            "{q}"
        );
    }
    assert_eq!(store.peer_id_by_phone(acct.number(), "n/a").unwrap(), None);
    assert_eq!(
        normalize_phone("+1 (555) 123 4567").as_deref(),
        Some("15551234567")
    );
}

#[test]
fn invalid_phones_are_refused_naming_them() {
    let long = "1".repeat(21);
    for (name, s) in backends() {
        for bad in ["", "n/a", "1234", "+1 555 CALL", "+1_555_1234567", &long] {
            let shown = format!("{bad:?}");
            let m = invalid_naming(s.save_peer(&Peer::user(8, 80).with_phone(bad)), &[&shown]);
            assert!(m.contains("5..=20 digits"), "{m}");
            assert_eq!(s.peer_by_phone(bad).unwrap(), None, "{name} {bad:?}");
        }
        assert_eq!(s.peer_count().unwrap(), 0, "{name}");
        // Short service numbers (Telegram's own is 42777) are accepted.
        s.save_peer(&Peer::user(777_000, 1).with_phone("42777"))
            .unwrap();
        let found = s.peer_by_phone("+42777").unwrap().map(|p| p.id);
        assert_eq!(found, Some(PeerId::user(777_000)), "{name}");
    }
}

// --- Names stored before they were checked --------------------------------------

/// A peer whose stored names predate the checks (here put through the
/// engine-level API, as older versions of the typed API could) is no
/// obstacle: a save through `Storage` names the bad value, and the grammers
/// adapter, which re-saves stored peers it merges into, drops such names
/// (no lookup could find them) instead of failing every later batch.
#[cfg(feature = "grammers")]
#[test]
fn grammers_adapter_drops_names_stored_before_the_checks() {
    use grammers_session::Session as _;
    use grammers_session::types::{PeerAuth, PeerInfo};
    use peerlog::PeerRecord;
    use peerlog::grammers::PeerlogSession;

    let store = Store::memory();
    let acct = store.account("a").unwrap();
    store
        .put_peer_records(vec![PeerRecord {
            account: acct.number(),
            peer_id: 5,
            access_hash: Some(1),
            primary: true,
            usernames: vec!["bob".into(), "good_name".into()],
            phone: Some("4400".into()),
            ..Default::default()
        }])
        .unwrap();
    let old = acct.peer(PeerId::user(5)).unwrap().unwrap();
    invalid_naming(acct.save_peer(&old), &["\"bob\""]);

    let session = PeerlogSession::from_account(acct.clone()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(session.cache_peer(PeerInfo::User {
        id: 5,
        auth: Some(PeerAuth::from_hash(2)),
        bot: Some(false),
        is_self: Some(false),
    }))
    .unwrap();
    let now = acct.peer(PeerId::user(5)).unwrap().unwrap();
    assert_eq!(now.access_hash, Some(2));
    assert_eq!(now.username, None);
    assert_eq!(now.usernames, ["good_name"]);
    assert_eq!(now.phone, None);
    let found = acct.peer_by_username("GOOD_NAME").unwrap().map(|p| p.id);
    assert_eq!(found, Some(PeerId::user(5)));
}
