//! peerlog as a grammers session: a differential test against grammers' own
//! `MemorySession`, persistence across reopen, use from tokio tasks, and
//! migration from `SessionData` and from a grammers SQLite file.
#![cfg(feature = "grammers")]

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use grammers_session::storages::{ErasedSession, MemorySession, erase};
use grammers_session::types::{
    ChannelKind, ChannelState, DcOption, PeerAuth, PeerId, PeerInfo, PeerRef, UpdateState,
    UpdatesState,
};
use grammers_session::{Session, SessionData};
use peerlog::grammers::PeerlogSession;
use peerlog::{AuthKey, DcAuth, Durability, Options, Peer, Storage, Store};

#[path = "common/grammers_sqlite.rs"]
mod grammers_sqlite;

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
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

// Id pools: the edges of each range, and monoforum channels (outside every
// range of peerlog's own `PeerId`).
const USERS: [i64; 8] = [1, 2, 3, 4, 5, 777, 123_456_789, 0xff_ffff_ffff];
const CHATS: [i64; 4] = [1, 2, 4242, 999_999_999_999];
const CHANNELS: [i64; 7] = [
    1,
    2,
    3,
    997_852_516_352,
    1_002_147_483_649,
    2_500_000_000_000,
    3_000_000_000_000,
];
const DC_IDS: [i32; 10] = [-3, 0, 1, 2, 3, 4, 5, 6, 7, 203];
const HASHES: [i64; 6] = [0, 1, -1, 42, i64::MIN, i64::MAX];

fn user(id: i64) -> PeerId {
    PeerId::user(id).unwrap()
}
fn chat(id: i64) -> PeerId {
    PeerId::chat(id).unwrap()
}
fn channel(id: i64) -> PeerId {
    PeerId::channel(id).unwrap()
}

fn all_ids() -> Vec<PeerId> {
    let mut ids: Vec<PeerId> = USERS.iter().map(|&i| user(i)).collect();
    ids.extend(CHATS.iter().map(|&i| chat(i)));
    ids.extend(CHANNELS.iter().map(|&i| channel(i)));
    ids.push(PeerId::self_user());
    ids
}

fn tri(rng: &mut Rng) -> Option<bool> {
    match rng.below(3) {
        0 => None,
        1 => Some(false),
        _ => Some(true),
    }
}

fn auth(rng: &mut Rng) -> Option<PeerAuth> {
    rng.percent(60)
        .then(|| PeerAuth::from_hash(rng.pick(&HASHES)))
}

fn random_info(rng: &mut Rng) -> PeerInfo {
    match rng.below(5) {
        0 | 1 => PeerInfo::User {
            id: rng.pick(&USERS),
            auth: auth(rng),
            bot: tri(rng),
            is_self: match rng.below(100) {
                0..8 => Some(true),
                8..40 => Some(false),
                _ => None,
            },
        },
        2 => PeerInfo::Chat {
            id: rng.pick(&CHATS),
        },
        _ => PeerInfo::Channel {
            id: rng.pick(&CHANNELS),
            auth: auth(rng),
            kind: match rng.below(6) {
                0 | 1 => None,
                2 => Some(ChannelKind::Broadcast),
                3 => Some(ChannelKind::Megagroup),
                4 => Some(ChannelKind::Gigagroup),
                _ => Some(ChannelKind::Community),
            },
        },
    }
}

fn random_dc(rng: &mut Rng) -> DcOption {
    let key = match rng.below(3) {
        0 => None,
        1 => Some([rng.next() as u8; 256]),
        _ => {
            let mut k = [0u8; 256];
            k.iter_mut().for_each(|b| *b = rng.next() as u8);
            Some(k)
        }
    };
    DcOption {
        id: rng.pick(&DC_IDS),
        ipv4: SocketAddrV4::new(Ipv4Addr::from(rng.next() as u32), rng.next() as u16),
        ipv6: SocketAddrV6::new(
            Ipv6Addr::from(((rng.next() as u128) << 64) | rng.next() as u128),
            rng.next() as u16,
            rng.next() as u32,
            rng.next() as u32,
        ),
        auth_key: key,
    }
}

fn random_update(rng: &mut Rng) -> UpdateState {
    let ids = [1i64, 2, 3, 4, 5, 6, 1_002_147_483_649];
    match rng.below(4) {
        0 => {
            let mut channels = Vec::new();
            for &id in &ids {
                if rng.percent(40) {
                    channels.push(ChannelState {
                        id,
                        pts: rng.next() as i32,
                    });
                }
            }
            // grammers keeps the order it was given.
            if rng.percent(50) {
                channels.reverse();
            }
            UpdateState::All(UpdatesState {
                pts: rng.next() as i32,
                qts: rng.next() as i32,
                date: rng.next() as i32,
                seq: rng.next() as i32,
                channels,
            })
        }
        1 => UpdateState::Primary {
            pts: rng.next() as i32,
            date: rng.next() as i32,
            seq: rng.next() as i32,
        },
        2 => UpdateState::Secondary {
            qts: rng.next() as i32,
        },
        _ => UpdateState::Channel {
            id: rng.pick(&ids),
            pts: rng.next() as i32,
        },
    }
}

/// Channel order is unspecified (peerlog and `SqliteSession` give channel
/// id order, `MemorySession` the order of the last changes).
fn sorted(mut s: UpdatesState) -> UpdatesState {
    s.channels.sort_by_key(|c| c.id);
    s
}

/// What `MemorySession` cannot answer: which user is the self user. The
/// rules peerlog documents: the user most recently cached with
/// `is_self: Some(true)`; if it is then cached with `Some(false)`, the
/// lowest-id user still marked self.
#[derive(Default)]
struct Model {
    peers: HashMap<PeerId, PeerInfo>,
    self_user: Option<i64>,
}

impl Model {
    fn cache(&mut self, info: &PeerInfo) {
        self.peers
            .entry(info.id())
            .or_insert_with(|| info.clone())
            .extend_info(info);
        if let PeerInfo::User {
            id,
            is_self: Some(is_self),
            ..
        } = info
        {
            if *is_self {
                self.self_user = Some(*id);
            } else if self.self_user == Some(*id) {
                self.self_user = self
                    .peers
                    .values()
                    .filter_map(|p| match p {
                        PeerInfo::User {
                            id,
                            is_self: Some(true),
                            ..
                        } => Some(*id),
                        _ => None,
                    })
                    .min();
            }
        }
    }

    fn self_info(&self) -> Option<PeerInfo> {
        let info = self.peers.get(&user(self.self_user?))?.clone();
        assert!(matches!(
            info,
            PeerInfo::User {
                is_self: Some(true),
                ..
            }
        ));
        Some(info)
    }
}

/// The expected answers for `id`: grammers' `MemorySession`, except for the
/// self user, which it never answers.
async fn expected_peer(mem: &MemorySession, model: &Model, id: PeerId) -> Option<PeerInfo> {
    let from_memory = mem.peer(id).await.unwrap();
    if id == PeerId::self_user() {
        assert_eq!(from_memory, None, "MemorySession answers no self query");
        model.self_info()
    } else {
        assert_eq!(from_memory.as_ref(), model.peers.get(&id));
        from_memory
    }
}

async fn expected_ref(mem: &MemorySession, model: &Model, id: PeerId) -> Option<PeerRef> {
    if id == PeerId::self_user() {
        let auth = model.self_info()?.auth()?;
        Some(PeerRef { id, auth })
    } else {
        mem.peer_ref(id).await.unwrap()
    }
}

/// Compares every answer of `pl` with `mem` (and the model).
async fn check_all(mem: &MemorySession, model: &Model, pl: &PeerlogSession, when: &str) {
    assert_eq!(
        pl.home_dc_id().unwrap(),
        mem.home_dc_id().unwrap(),
        "{when}"
    );
    for id in DC_IDS.into_iter().chain([8, 100, i32::MIN, i32::MAX]) {
        assert_eq!(
            pl.dc_option(id).unwrap(),
            mem.dc_option(id).unwrap(),
            "dc {id}, {when}"
        );
    }
    for id in all_ids() {
        assert_eq!(
            pl.peer(id).await.unwrap(),
            expected_peer(mem, model, id).await,
            "peer {id}, {when}"
        );
        assert_eq!(
            pl.peer_ref(id).await.unwrap(),
            expected_ref(mem, model, id).await,
            "peer_ref {id}, {when}"
        );
    }
    assert_eq!(
        sorted(pl.updates_state().await.unwrap()),
        sorted(mem.updates_state().await.unwrap()),
        "{when}"
    );
    let exported = pl.export().unwrap();
    assert_eq!(exported.peer_infos, model.peers, "{when}");
}

/// Runs `ops` random trait calls against `MemorySession` and peerlog,
/// comparing every answer. With a path, peerlog is a file that is closed
/// and reopened every `reopen_every` calls.
async fn differential(seed: u64, ops: usize, file: Option<(&Path, usize)>) -> usize {
    let mut rng = Rng(seed);
    let mem = MemorySession::default();
    let mut model = Model::default();
    let opts = Options {
        durability: Durability::None,
        ..Options::default()
    };
    let open = |path: &Path| PeerlogSession::open_with(path, opts.clone()).unwrap();
    let mut pl = Some(match file {
        Some((path, _)) => open(path),
        None => PeerlogSession::memory().unwrap(),
    });
    let mut compared = 0;
    check_all(&mem, &model, pl.as_ref().unwrap(), "fresh").await;
    for op in 0..ops {
        let s = pl.as_ref().unwrap();
        let when = format!("op {op}, seed {seed}");
        match rng.below(100) {
            0..25 => {
                let info = random_info(&mut rng);
                model.cache(&info);
                mem.cache_peer(info.clone()).await.unwrap();
                s.cache_peer(info).await.unwrap();
            }
            25..40 => {
                let batch: Vec<PeerInfo> = (0..1 + rng.below(8))
                    .map(|_| random_info(&mut rng))
                    .collect();
                batch.iter().for_each(|i| model.cache(i));
                mem.cache_peers(batch.clone()).await.unwrap();
                s.cache_peers(batch).await.unwrap();
            }
            40..55 => {
                let id = if rng.percent(15) {
                    PeerId::self_user()
                } else {
                    rng.pick(&all_ids())
                };
                let got = s.peer(id).await.unwrap();
                assert_eq!(
                    got,
                    expected_peer(&mem, &model, id).await,
                    "peer {id}, {when}"
                );
                compared += 1;
            }
            55..65 => {
                let id = if rng.percent(15) {
                    PeerId::self_user()
                } else {
                    rng.pick(&all_ids())
                };
                let got = s.peer_ref(id).await.unwrap();
                assert_eq!(
                    got,
                    expected_ref(&mem, &model, id).await,
                    "ref {id}, {when}"
                );
                compared += 1;
            }
            65..70 => {
                let id = rng.pick(&DC_IDS);
                assert_eq!(s.home_dc_id().unwrap(), mem.home_dc_id().unwrap(), "{when}");
                assert_eq!(
                    s.dc_option(id).unwrap(),
                    mem.dc_option(id).unwrap(),
                    "{when}"
                );
                compared += 2;
            }
            70..77 => {
                let option = random_dc(&mut rng);
                mem.set_dc_option(&option).await.unwrap();
                s.set_dc_option(&option).await.unwrap();
            }
            77..82 => {
                let id = rng.pick(&DC_IDS);
                mem.set_home_dc_id(id).await.unwrap();
                s.set_home_dc_id(id).await.unwrap();
            }
            82..94 => {
                let update = random_update(&mut rng);
                let again = match &update {
                    UpdateState::All(all) => UpdateState::All(all.clone()),
                    UpdateState::Primary { pts, date, seq } => UpdateState::Primary {
                        pts: *pts,
                        date: *date,
                        seq: *seq,
                    },
                    UpdateState::Secondary { qts } => UpdateState::Secondary { qts: *qts },
                    UpdateState::Channel { id, pts } => UpdateState::Channel { id: *id, pts: *pts },
                };
                mem.set_update_state(update).await.unwrap();
                s.set_update_state(again).await.unwrap();
            }
            94..97 => {
                assert_eq!(
                    sorted(s.updates_state().await.unwrap()),
                    sorted(mem.updates_state().await.unwrap()),
                    "{when}"
                );
                compared += 1;
            }
            _ => {
                // A checkpoint: peers unchanged since are then read from
                // the mapped table without a lock (`peer`'s hot path).
                s.account().store().compact().unwrap();
            }
        }
        if let Some((path, every)) = file
            && (op + 1) % every == 0
        {
            drop(pl.take());
            pl = Some(open(path));
            check_all(
                &mem,
                &model,
                pl.as_ref().unwrap(),
                &format!("reopen after {when}"),
            )
            .await;
        }
    }
    check_all(&mem, &model, pl.as_ref().unwrap(), "end").await;
    compared
}

// --- Differential --------------------------------------------------------------

#[tokio::test]
async fn differential_against_memory_session() {
    let mut compared = 0;
    for seed in [1, 2, 3] {
        compared += differential(seed, 1500, None).await;
    }
    assert!(compared > 1000, "only {compared} answers compared");
}

#[tokio::test]
async fn differential_on_a_file_reopened_every_100_calls() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grammers.peerlog");
    let compared = differential(0xC0FFEE, 1200, Some((&path, 100))).await;
    assert!(compared > 300);
}

#[tokio::test]
async fn a_new_session_answers_like_a_new_memory_session() {
    let mem = MemorySession::default();
    let pl = PeerlogSession::memory().unwrap();
    check_all(&mem, &Model::default(), &pl, "new").await;
    assert_eq!(pl.home_dc_id().unwrap(), 2);
    assert_eq!(
        (1..=5)
            .filter(|&id| pl.dc_option(id).unwrap().is_some())
            .count(),
        5
    );
    assert_eq!(pl.dc_option(6).unwrap(), None);
}

// --- Semantics called out in the docs -----------------------------------------

#[tokio::test]
async fn merges_never_erase_known_fields_and_self_user_answers() {
    let pl = PeerlogSession::memory().unwrap();
    let me = PeerInfo::User {
        id: 10,
        auth: Some(PeerAuth::from_hash(100)),
        bot: Some(false),
        is_self: Some(true),
    };
    pl.cache_peer(me.clone()).await.unwrap();
    // An unknown-everything sighting (e.g. `userEmpty`) changes nothing.
    pl.cache_peer(PeerInfo::User {
        id: 10,
        auth: None,
        bot: None,
        is_self: None,
    })
    .await
    .unwrap();
    assert_eq!(pl.peer(user(10)).await.unwrap(), Some(me.clone()));
    assert_eq!(
        pl.peer(PeerId::self_user()).await.unwrap(),
        Some(me.clone())
    );
    assert_eq!(
        pl.peer_ref(PeerId::self_user()).await.unwrap(),
        Some(PeerRef {
            id: PeerId::self_user(),
            auth: PeerAuth::from_hash(100)
        })
    );
    // Through the Storage view: the session knows its user.
    let session = pl.account().session().unwrap().unwrap();
    assert_eq!((session.user_id, session.is_bot), (Some(10), false));

    // Channel kinds, including grammers' `Community`, and unknown ones.
    let community = PeerInfo::Channel {
        id: 5,
        auth: None,
        kind: Some(ChannelKind::Community),
    };
    pl.cache_peer(community.clone()).await.unwrap();
    pl.cache_peer(PeerInfo::Channel {
        id: 5,
        auth: Some(PeerAuth::from_hash(-5)),
        kind: None,
    })
    .await
    .unwrap();
    assert_eq!(
        pl.peer(channel(5)).await.unwrap(),
        Some(PeerInfo::Channel {
            id: 5,
            auth: Some(PeerAuth::from_hash(-5)),
            kind: Some(ChannelKind::Community)
        })
    );
    // Chats need no access hash.
    pl.cache_peer(PeerInfo::Chat { id: 3 }).await.unwrap();
    assert_eq!(
        pl.peer_ref(chat(3)).await.unwrap(),
        Some(PeerRef {
            id: chat(3),
            auth: PeerAuth::default()
        })
    );
    // A user without a hash has no PeerRef (grammers falls back to
    // `to_ambient_ref`).
    pl.cache_peer(PeerInfo::User {
        id: 11,
        auth: None,
        bot: Some(true),
        is_self: Some(false),
    })
    .await
    .unwrap();
    assert_eq!(pl.peer_ref(user(11)).await.unwrap(), None);
    assert!(pl.peer(user(11)).await.unwrap().is_some());
}

#[tokio::test]
async fn recaching_known_peers_writes_nothing_and_dc_writes_are_durable() {
    let dir = tempfile::tempdir().unwrap();
    let pl = PeerlogSession::open(dir.path().join("s.peerlog")).unwrap();
    let peers: Vec<PeerInfo> = (1..=100)
        .map(|i| PeerInfo::User {
            id: i,
            auth: Some(PeerAuth::from_hash(i * 7)),
            bot: Some(false),
            is_self: Some(false),
        })
        .collect();
    pl.cache_peers(peers.clone()).await.unwrap();
    let store = pl.account().store().clone();
    let before = store.stats();
    pl.cache_peers(peers).await.unwrap();
    pl.set_update_state(UpdateState::Secondary { qts: 0 })
        .await
        .unwrap();
    let zero = store.stats();
    assert_eq!(zero.commits, before.commits + 1, "only the new qts commits");
    pl.set_update_state(UpdateState::Secondary { qts: 0 })
        .await
        .unwrap();
    assert_eq!(store.stats().commits, zero.commits, "an unchanged state");

    let syncs = store.stats().syncs;
    let mut option = pl.dc_option(4).unwrap().unwrap();
    option.auth_key = Some([9; 256]);
    pl.set_dc_option(&option).await.unwrap();
    assert!(store.stats().syncs > syncs, "set_dc_option syncs");
    let syncs = store.stats().syncs;
    pl.set_home_dc_id(4).await.unwrap();
    assert!(store.stats().syncs > syncs, "set_home_dc_id syncs");
}

// --- Persistence ----------------------------------------------------------------

#[tokio::test]
async fn everything_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bot.peerlog");
    let data = sample_data();
    {
        let pl = PeerlogSession::open(&path).unwrap();
        data.import_to(&pl).await.unwrap();
        pl.set_update_state(UpdateState::Channel { id: 99, pts: 9 })
            .await
            .unwrap();
    }
    let pl = PeerlogSession::open(&path).unwrap();
    let mut expected = sample_data();
    expected
        .updates_state
        .channels
        .push(ChannelState { id: 99, pts: 9 });
    assert_same_data(&pl.export().unwrap(), &expected);
    assert_eq!(pl.home_dc_id().unwrap(), 4);
    assert_eq!(pl.dc_option(4).unwrap().unwrap().auth_key, Some([4; 256]));
    assert_eq!(
        pl.peer(PeerId::self_user()).await.unwrap(),
        data.peer_infos.get(&user(1000)).cloned()
    );
    // The peerlog view of the same data.
    let account = pl.account();
    let session = account.session().unwrap().unwrap();
    assert_eq!(session.dc_id, 4);
    assert_eq!(session.auth_key, Some(AuthKey::new([4; 256])));
    assert_eq!(session.user_id, Some(1000));
    assert_eq!(
        account.dc_auth(4).unwrap().unwrap().server_addr,
        Some(IpAddr::V4(Ipv4Addr::new(149, 154, 167, 92)))
    );
    assert_eq!(
        account.access_hash(peerlog::PeerId::user(1000)).unwrap(),
        Some(1)
    );
}

#[tokio::test]
async fn an_existing_peerlog_account_is_a_grammers_session() {
    // E.g. imported from a Telethon/Pyrogram string: a session, a DC auth
    // and peers saved through `Storage`.
    let store = Store::memory();
    let account = store.account("main").unwrap();
    let mut session = peerlog::Session::new(4, false);
    session.auth_key = Some(AuthKey::new([3; 256]));
    session.user_id = Some(99);
    account.save_session(&session).unwrap();
    account
        .save_dc_auth(&DcAuth {
            dc_id: 2,
            auth_key: AuthKey::new([2; 256]),
            server_salt: 5,
            server_addr: None,
            port: 443,
        })
        .unwrap();
    let mut me = Peer::user(99, 0x99).with_username("itsme");
    me.is_self = true;
    account.save_peer(&me).unwrap();

    let pl = PeerlogSession::from_account(account.clone()).unwrap();
    assert_eq!(pl.home_dc_id().unwrap(), 4);
    let dc4 = pl.dc_option(4).unwrap().unwrap();
    assert_eq!(dc4.auth_key, Some([3; 256]));
    assert_eq!(dc4.ipv4, "149.154.167.91:443".parse().unwrap());
    let dc2 = pl.dc_option(2).unwrap().unwrap();
    assert_eq!(dc2.auth_key, Some([2; 256]));
    assert_eq!(dc2.ipv4, "149.154.167.41:443".parse().unwrap());
    assert_eq!(
        pl.peer(PeerId::self_user()).await.unwrap(),
        Some(PeerInfo::User {
            id: 99,
            auth: Some(PeerAuth::from_hash(0x99)),
            bot: Some(false),
            is_self: Some(true)
        })
    );
    // Rewriting the key keeps the server salt; grammers' writes keep the
    // names saved through `Storage`.
    let mut dc2 = dc2;
    dc2.auth_key = Some([22; 256]);
    pl.set_dc_option(&dc2).await.unwrap();
    assert_eq!(account.dc_auth(2).unwrap().unwrap().server_salt, 5);
    pl.cache_peer(PeerInfo::User {
        id: 99,
        auth: Some(PeerAuth::from_hash(0x100)),
        bot: None,
        is_self: Some(true),
    })
    .await
    .unwrap();
    let stored = account.peer(peerlog::PeerId::user(99)).unwrap().unwrap();
    assert_eq!(stored.username.as_deref(), Some("itsme"));
    assert_eq!(stored.access_hash, Some(0x100));
}

// --- tokio ----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shared_by_tokio_tasks_as_grammers_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let concrete = Arc::new(PeerlogSession::open(dir.path().join("t.peerlog")).unwrap());
    let erased: Arc<ErasedSession> = erase(concrete.clone());
    let direct: Arc<dyn Session<Error = peerlog::Error>> = concrete.clone();
    const TASKS: i64 = 8;
    const ROUNDS: i64 = 100;
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..TASKS {
        let erased = erased.clone();
        let direct = direct.clone();
        tasks.spawn(async move {
            for i in 0..ROUNDS {
                let id = 1 + t * 1000 + i;
                erased
                    .cache_peers(vec![
                        PeerInfo::User {
                            id,
                            auth: Some(PeerAuth::from_hash(id * 3)),
                            bot: Some(t % 2 == 0),
                            is_self: Some(false),
                        },
                        // Every task merges into the same channel: task 0
                        // knows its hash, task 1 its kind. No merge may be
                        // lost.
                        PeerInfo::Channel {
                            id: 77,
                            auth: (t == 0).then(|| PeerAuth::from_hash(7777)),
                            kind: (t == 1).then_some(ChannelKind::Megagroup),
                        },
                    ])
                    .await
                    .unwrap();
                let got = direct.peer_ref(user(id)).await.unwrap().unwrap();
                assert_eq!(got.auth, PeerAuth::from_hash(id * 3));
                direct
                    .set_update_state(UpdateState::Channel {
                        id: t + 1, // a bare channel id: 0 is refused
                        pts: i as i32,
                    })
                    .await
                    .unwrap();
                assert!(erased.home_dc_id().unwrap() > 0);
                if i % 25 == 0 {
                    let mut option = erased.dc_option(2).unwrap().unwrap();
                    option.auth_key = Some([t as u8; 256]);
                    erased.set_dc_option(&option).await.unwrap();
                }
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    assert_eq!(
        concrete.peer(channel(77)).await.unwrap(),
        Some(PeerInfo::Channel {
            id: 77,
            auth: Some(PeerAuth::from_hash(7777)),
            kind: Some(ChannelKind::Megagroup)
        })
    );
    let state = concrete.updates_state().await.unwrap();
    assert_eq!(
        state.channels,
        (1..=TASKS)
            .map(|id| ChannelState {
                id,
                pts: ROUNDS as i32 - 1
            })
            .collect::<Vec<_>>()
    );
    assert_eq!(
        concrete.account().peer_count().unwrap(),
        (TASKS * ROUNDS + 1) as u64
    );
    // The cache and the file agree on the last key written.
    let key = concrete.dc_option(2).unwrap().unwrap().auth_key;
    drop((erased, direct));
    let path = concrete.account().store().path().unwrap().to_owned();
    drop(concrete);
    let reopened = PeerlogSession::open(path).unwrap();
    assert_eq!(reopened.dc_option(2).unwrap().unwrap().auth_key, key);
}

// --- Migration ------------------------------------------------------------------

/// A session with some of everything: a home DC with a key, a new DC, the
/// self user, a bot with unknown fields, every channel kind, a monoforum,
/// a chat, and update state.
fn sample_data() -> SessionData {
    let mut d = SessionData {
        home_dc: 4,
        ..SessionData::default()
    };
    d.dc_options.get_mut(&4).unwrap().auth_key = Some([4; 256]);
    d.dc_options.insert(
        6,
        DcOption {
            id: 6,
            ipv4: "10.0.0.6:8443".parse().unwrap(),
            ipv6: "[2001:db8::6]:8443".parse().unwrap(),
            auth_key: Some([6; 256]),
        },
    );
    let peers = [
        PeerInfo::User {
            id: 1000,
            auth: Some(PeerAuth::from_hash(1)),
            bot: Some(false),
            is_self: Some(true),
        },
        PeerInfo::User {
            id: 1001,
            auth: Some(PeerAuth::from_hash(-2)),
            bot: Some(true),
            is_self: None,
        },
        PeerInfo::User {
            id: 1002,
            auth: None,
            bot: None,
            is_self: None,
        },
        PeerInfo::Chat { id: 2000 },
        PeerInfo::Channel {
            id: 3000,
            auth: Some(PeerAuth::from_hash(3)),
            kind: Some(ChannelKind::Broadcast),
        },
        PeerInfo::Channel {
            id: 3001,
            auth: Some(PeerAuth::from_hash(4)),
            kind: Some(ChannelKind::Megagroup),
        },
        PeerInfo::Channel {
            id: 3002,
            auth: None,
            kind: Some(ChannelKind::Gigagroup),
        },
        PeerInfo::Channel {
            id: 3003,
            auth: Some(PeerAuth::from_hash(5)),
            kind: Some(ChannelKind::Community),
        },
        PeerInfo::Channel {
            id: 3004,
            auth: Some(PeerAuth::from_hash(6)),
            kind: None,
        },
        PeerInfo::Channel {
            id: 1_002_147_483_650,
            auth: Some(PeerAuth::from_hash(7)),
            kind: Some(ChannelKind::Megagroup),
        },
    ];
    d.peer_infos = peers.into_iter().map(|p| (p.id(), p)).collect();
    d.updates_state = UpdatesState {
        pts: 10,
        qts: 20,
        date: 1_700_000_000,
        seq: 30,
        channels: vec![
            ChannelState { id: 3000, pts: 31 },
            ChannelState { id: 3001, pts: 32 },
        ],
    };
    d
}

fn assert_same_data(a: &SessionData, b: &SessionData) {
    assert_eq!(a.home_dc, b.home_dc);
    assert_eq!(a.dc_options, b.dc_options);
    assert_eq!(a.peer_infos, b.peer_infos);
    assert_eq!(
        sorted(a.updates_state.clone()),
        sorted(b.updates_state.clone())
    );
}

/// Every answer of `a` equals `b`'s for the ids of `data` and the pools.
async fn same_answers<A: Session, B: Session>(a: &A, b: &B, ids: &[PeerId])
where
    A::Error: std::fmt::Debug,
    B::Error: std::fmt::Debug,
{
    assert_eq!(a.home_dc_id().unwrap(), b.home_dc_id().unwrap());
    for dc in -1..=10 {
        assert_eq!(
            a.dc_option(dc).unwrap(),
            b.dc_option(dc).unwrap(),
            "dc {dc}"
        );
    }
    for &id in ids {
        assert_eq!(a.peer(id).await.unwrap(), b.peer(id).await.unwrap(), "{id}");
        assert_eq!(
            a.peer_ref(id).await.unwrap(),
            b.peer_ref(id).await.unwrap(),
            "{id}"
        );
    }
    assert_eq!(
        sorted(a.updates_state().await.unwrap()),
        sorted(b.updates_state().await.unwrap())
    );
}

#[tokio::test]
async fn session_data_and_memory_session_import_through_the_trait() {
    let mem = MemorySession::from(sample_data());
    let pl = PeerlogSession::memory().unwrap();
    sample_data().import_to(&pl).await.unwrap();
    let ids: Vec<PeerId> = sample_data()
        .peer_infos
        .keys()
        .copied()
        .chain(
            all_ids()
                .into_iter()
                .filter(|&id| id != PeerId::self_user()),
        )
        .collect();
    same_answers(&pl, &mem, &ids).await;
    assert_same_data(&pl.export().unwrap(), &sample_data());
    assert_eq!(
        pl.peer(PeerId::self_user()).await.unwrap(),
        sample_data().peer_infos.get(&user(1000)).cloned()
    );

    // A MemorySession's contents, read back through the trait, import too.
    let copy = PeerlogSession::memory().unwrap();
    let mut data = SessionData {
        home_dc: mem.home_dc_id().unwrap(),
        ..SessionData::default()
    };
    for dc in 1..=10 {
        if let Some(o) = mem.dc_option(dc).unwrap() {
            data.dc_options.insert(dc, o);
        }
    }
    for &id in &ids {
        if let Some(info) = mem.peer(id).await.unwrap() {
            data.peer_infos.insert(id, info);
        }
    }
    data.updates_state = mem.updates_state().await.unwrap();
    data.import_to(&copy).await.unwrap();
    same_answers(&copy, &mem, &ids).await;

    // The one-commit import gives the same, and the export goes back.
    let atomic = PeerlogSession::memory().unwrap();
    atomic.import(&sample_data()).unwrap();
    assert_same_data(&atomic.export().unwrap(), &pl.export().unwrap());
    let back = MemorySession::from(atomic.export().unwrap());
    same_answers(&back, &mem, &ids).await;
}

/// What the migration test writes as a grammers SQLite file: the sample,
/// plus the channel state a later `set_update_state(Channel { .. })` adds.
fn sqlite_sample() -> SessionData {
    let mut d = sample_data();
    d.updates_state
        .channels
        .push(ChannelState { id: 3002, pts: 33 });
    d
}

/// [`sqlite_sample`] as `SqliteSession` answers it: two peers lose what its
/// `subtype` column cannot hold.
fn sqlite_sample_as_read() -> SessionData {
    let mut d = sqlite_sample();
    let Some(PeerInfo::User { is_self, .. }) = d.peer_infos.get_mut(&user(1001)) else {
        unreachable!()
    };
    *is_self = Some(false); // unknown, stored as a bot that is not self
    let Some(PeerInfo::Channel { kind, .. }) = d.peer_infos.get_mut(&channel(3003)) else {
        unreachable!()
    };
    *kind = None; // `Community` (16), read back as unknown
    d
}

#[tokio::test]
async fn a_grammers_sqlite_file_arrives_in_peerlog() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite_path = dir.path().join("grammers.session");
    let written = sqlite_sample();
    grammers_sqlite::write_grammers_sqlite(&sqlite_path, &written).unwrap();

    // The file holds grammers' rows: its version, Bot API dialog ids, NULL
    // for an unknown hash (0 for a chat), and `PeerSubtype` bits (unknown
    // `bot`/`is_self` stored as `false`, both `false` as NULL; `Community`
    // as 16).
    {
        let conn = rusqlite::Connection::open(&sqlite_path).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, 1);
        let mut stmt = conn
            .prepare("SELECT peer_id, hash, subtype FROM peer_info ORDER BY peer_id")
            .unwrap();
        let rows: Vec<(i64, Option<i64>, Option<i64>)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                (-2_002_147_483_650, Some(7), Some(4)), // monoforum range
                (-1_000_000_003_004, Some(6), None),
                (-1_000_000_003_003, Some(5), Some(16)),
                (-1_000_000_003_002, None, Some(12)),
                (-1_000_000_003_001, Some(4), Some(4)),
                (-1_000_000_003_000, Some(3), Some(8)),
                (-2000, Some(0), None), // a chat's `auth()` is the default
                (1000, Some(1), Some(1)),
                (1001, Some(-2), Some(2)),
                (1002, None, None),
            ]
        );
        let (ipv4, ipv6, key): (String, String, Vec<u8>) = conn
            .query_row(
                "SELECT ipv4, ipv6, auth_key FROM dc_option WHERE dc_id = 6",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(
            (ipv4.as_str(), ipv6.as_str(), key),
            ("10.0.0.6:8443", "[2001:db8::6]:8443", vec![6; 256])
        );
        let unkeyed: Option<Vec<u8>> = conn
            .query_row("SELECT auth_key FROM dc_option WHERE dc_id = 1", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(unkeyed, None);
    }

    // Read the file's tables (what the example does to migrate).
    let data = grammers_sqlite::read_grammers_sqlite(&sqlite_path).unwrap();

    // Field by field, what was written comes back (as `SqliteSession` would
    // answer it).
    let expected = sqlite_sample_as_read();
    assert_eq!(data.home_dc, written.home_dc);
    assert_eq!(data.dc_options.len(), written.dc_options.len());
    for (dc, option) in &written.dc_options {
        let got = &data.dc_options[dc];
        assert_eq!(got.id, option.id);
        assert_eq!(got.ipv4, option.ipv4, "dc {dc}");
        assert_eq!(got.ipv6, option.ipv6, "dc {dc}");
        assert_eq!(got.auth_key, option.auth_key, "dc {dc}");
    }
    assert_eq!(data.peer_infos.len(), written.peer_infos.len());
    for (id, info) in &expected.peer_infos {
        assert_eq!(data.peer_infos.get(id), Some(info), "peer {id}");
    }
    let (got, want) = (&data.updates_state, &written.updates_state);
    assert_eq!(
        (got.pts, got.qts, got.date, got.seq),
        (want.pts, want.qts, want.date, want.seq)
    );
    assert_eq!(got.channels, sorted(want.clone()).channels);

    let peerlog_path: PathBuf = dir.path().join("bot.peerlog");
    {
        let pl = PeerlogSession::open(&peerlog_path).unwrap();
        data.import_to(&pl).await.unwrap();
    }
    // peerlog, reopened, answers what the file holds (the same data in a
    // `MemorySession` answers every query but the self user's).
    let pl = PeerlogSession::open(&peerlog_path).unwrap();
    assert_same_data(&pl.export().unwrap(), &expected);
    let mut ids: Vec<PeerId> = expected.peer_infos.keys().copied().collect();
    ids.push(user(5)); // never cached
    same_answers(&pl, &MemorySession::from(sqlite_sample_as_read()), &ids).await;
    assert_eq!(pl.dc_option(4).unwrap().unwrap().auth_key, Some([4; 256]));
    assert_eq!(pl.dc_option(6).unwrap().unwrap().auth_key, Some([6; 256]));
    assert_eq!(
        pl.peer(PeerId::self_user()).await.unwrap(),
        expected.peer_infos.get(&user(1000)).cloned()
    );
    let seen: HashSet<i64> = pl
        .updates_state()
        .await
        .unwrap()
        .channels
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(seen, HashSet::from([3000, 3001, 3002]));

    // Not a grammers file: a clear error.
    let Err(err) = grammers_sqlite::read_grammers_sqlite(&peerlog_path) else {
        panic!("a peerlog file read as a grammers session");
    };
    assert!(!err.to_string().is_empty());
    // Nor is an empty SQLite database (`user_version` 0).
    let empty = dir.path().join("empty.sqlite");
    rusqlite::Connection::open(&empty)
        .unwrap()
        .execute_batch("CREATE TABLE t (x INTEGER)")
        .unwrap();
    let Err(err) = grammers_sqlite::read_grammers_sqlite(&empty) else {
        panic!("an empty SQLite file read as a grammers session");
    };
    assert!(err.to_string().contains("user_version 0"), "{err}");
}
