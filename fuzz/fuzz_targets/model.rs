//! (e) Model-based: a fuzzer-chosen sequence of operations on a store,
//! checked after every step against a plain in-memory model.
//!
//! Operations go through the typed API ([`Account`]: peers, session, DC
//! auth, update state, dedup, queue, conversations, metadata, multi-op
//! transactions, account removal) and raw buckets, plus `Compact`, `Reopen`
//! (process crash: reopen what was written), `PowerLoss` (reopen the
//! durable image plus fuzzer-chosen fates for unsynced writes: kept,
//! dropped or torn) and `Fail` (inject a sticky I/O fault into the `n`-th
//! next write, sync or set_len).
//!
//! The store runs with `Durability::Immediate`, so every acknowledged
//! operation is durable and the model is simply "what was acknowledged".
//! Once an injected fault makes an operation fail, its outcome is unknown:
//! the model keeps both candidates (before and after) until the next reopen
//! decides, every later write must fail, and reads are not checked. After
//! each reopen (and at the end) `verify` must be clean.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use peerlog::io::{Fate, FaultOn, MemFile, RawFile};
use peerlog::{
    Account, AuthKey, ChannelKind, ChannelState, Conversation, DcAuth, Durability, Error, Options,
    Peer, PeerId, Session, Storage, Store, UpdateState,
};
use peerlog_fuzz::RAW_BUCKETS;
use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

const ACCOUNTS: [&str; 2] = ["a", "b"];
// Saved names are valid (an invalid one fails the save: tests/ids_names.rs);
// lookups also try the `NOT_*` ones, which find nothing.
const USERNAMES: [&str; 7] = [
    "alice", "@Alice", "BOBBY", "bobby", "@bobby", "carol_x", "Carol_X",
];
const PHONES: [&str; 5] = [
    "+1 555 0100",
    "15550100",
    "+1 (555) 01-00",
    "44 20 7946",
    "442079460",
];
const NOT_USERNAMES: [&str; 4] = ["@", "", "bob", "@@alice"];
const NOT_PHONES: [&str; 3] = ["", "n/a", "0100"];
const FIRST: [&str; 3] = ["Ann", "Bo", "Ünïcode"];
const META_KEYS: [&str; 3] = ["lang", "theme", "x"];
const CHATS: [i64; 3] = [-100, 5, 7];
const DEDUP_MAX: usize = 4;

// --- Fuzzer input ----------------------------------------------------------

#[derive(Arbitrary, Debug, Clone)]
struct PeerSpec {
    kind: u8,
    n: u8,
    hash: Option<i8>,
    min: bool,
    username: Option<u8>,
    usernames: Vec<u8>,
    phone: Option<u8>,
    first: Option<u8>,
    bot: bool,
    photo: Option<i8>,
    updated: u8,
}

#[derive(Arbitrary, Debug, Clone)]
struct SessionSpec {
    dc: u8,
    user: Option<i16>,
    bot: bool,
    first: Option<u8>,
    key: u8,
    v6: bool,
    port: u16,
    date: i32,
}

#[derive(Arbitrary, Debug, Clone)]
enum TxOp {
    SavePeer(PeerSpec),
    DeletePeer(u8, u8),
    State(i32),
    ChannelPts(u8, i32),
    Dedup(u8),
    Enqueue(u8, u8),
    Ack(u8),
    SetMeta(u8, u8),
    DeleteMeta(u8),
}

#[derive(Arbitrary, Debug, Clone)]
enum Op {
    SavePeers(bool, Vec<PeerSpec>),
    DeletePeer(bool, u8, u8),
    SaveSession(bool, SessionSpec),
    DeleteSession(bool),
    SaveDc(bool, u8, i64, u8),
    DeleteDc(bool, u8),
    SaveState(bool, i32, i32),
    SaveChannelPts(bool, u8, i32),
    DeleteChannel(bool, u8),
    PeersAndState(bool, Vec<PeerSpec>, Option<i32>, Vec<(u8, i32)>),
    Dedup(bool, u8),
    Enqueue(bool, u8, Vec<u8>),
    Ack(bool, u8),
    MarkFailed(bool, u8, u8),
    SaveConversation(bool, u8, u8, u8, Vec<u8>),
    DeleteConversation(bool, u8, u8),
    SetMeta(bool, u8, Vec<u8>),
    DeleteMeta(bool, u8),
    RawPut(u8, u8, u16, u8),
    RawDelete(u8, u8),
    Tx(bool, Vec<TxOp>),
    RemoveAccount(bool),
    Compact,
    Reopen,
    PowerLoss(u64),
    Fail(u8, u8),
}

#[derive(Arbitrary, Debug)]
struct Input {
    log_pages: u8,
    fold: u8,
    load: u8,
    ops: Vec<Op>,
}

// --- Building values from the input --------------------------------------

fn peer_id(kind: u8, n: u8) -> PeerId {
    match kind % 3 {
        0 => PeerId::user(i64::from(n % 6) + 1),
        1 => PeerId::chat(i64::from(n % 3) + 1),
        _ => PeerId::channel(i64::from(n % 3) + 1),
    }
}

fn peer(s: &PeerSpec) -> Peer {
    let id = peer_id(s.kind, s.n);
    let mut p = Peer::new(id);
    p.access_hash = s.hash.map(i64::from);
    p.min = s.min;
    p.username = s
        .username
        .map(|u| USERNAMES[u as usize % USERNAMES.len()].to_owned());
    p.usernames = s
        .usernames
        .iter()
        .take(3)
        .map(|&u| USERNAMES[u as usize % USERNAMES.len()].to_owned())
        .collect();
    p.phone = s
        .phone
        .map(|x| PHONES[x as usize % PHONES.len()].to_owned());
    p.first_name = s.first.map(|x| FIRST[x as usize % FIRST.len()].to_owned());
    p.is_bot = s.bot;
    p.photo_id = s.photo.map(i64::from);
    p.updated_at = i64::from(s.updated);
    if id.bot_api() < -1_000_000_000_000 {
        p.channel_kind = Some(ChannelKind::Broadcast);
    }
    p
}

fn session(s: &SessionSpec) -> Session {
    let mut x = Session::new(i32::from(s.dc % 5) + 1, false);
    x.auth_key = Some(AuthKey::new([s.key; 256]));
    x.user_id = s.user.map(i64::from);
    x.is_bot = s.bot;
    x.first_name = s.first.map(|f| FIRST[f as usize % FIRST.len()].to_owned());
    if s.v6 {
        x.server_addr = Some(IpAddr::V6(Ipv6Addr::new(
            0x2001, 0xb28, 0xf23d, 0xf001, 0, 0, 0, 0xa,
        )));
    }
    x.port = s.port;
    x.date = i64::from(s.date);
    x
}

fn dc_auth(dc: u8, salt: i64, key: u8) -> DcAuth {
    DcAuth {
        dc_id: i32::from(dc % 5) + 1,
        auth_key: AuthKey::new([key; 256]),
        server_salt: salt,
        server_addr: (salt & 1 == 0).then_some(IpAddr::V4(Ipv4Addr::new(149, 154, 175, 50))),
        port: 443,
    }
}

fn dedup_key(k: u8) -> Vec<u8> {
    vec![b'k', k % 8]
}

fn queue_id(q: u8) -> String {
    format!("q{}", q % 6)
}

fn payload(p: &[u8]) -> Vec<u8> {
    p.iter().take(64).copied().collect()
}

fn conversation(c: u8, u: u8, step: u8, data: &[u8]) -> Conversation {
    Conversation {
        chat_id: CHATS[c as usize % 3],
        user_id: i64::from(u % 2) + 1,
        name: "flow".into(),
        step: format!("s{step}"),
        data: payload(data),
        created_at: 1,
        updated_at: i64::from(step),
    }
}

fn raw_value(len: u16, fill: u8) -> Vec<u8> {
    vec![fill; len as usize % 9000]
}

// --- The model -------------------------------------------------------------

#[derive(Clone, Debug, Default, PartialEq)]
struct Queued {
    id: String,
    payload: Vec<u8>,
    attempts: u32,
    last_error: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Acct {
    session: Option<Session>,
    dcs: BTreeMap<i32, DcAuth>,
    peers: BTreeMap<i64, Peer>,
    state: Option<UpdateState>,
    channels: BTreeMap<i64, i32>,
    dedup: VecDeque<Vec<u8>>,
    queue: Vec<Queued>,
    convs: BTreeMap<(i64, i64), Conversation>,
    meta: BTreeMap<String, Vec<u8>>,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Model {
    accts: [Acct; 2],
    raw: BTreeMap<(usize, Vec<u8>), Vec<u8>>,
}

/// What an operation returned.
#[derive(Debug, Clone, PartialEq)]
enum Ret {
    Unit,
    Bool(bool),
    U32(u32),
    Many(Vec<Ret>),
}

fn clean_username(u: &str) -> Option<&str> {
    peerlog::normalize_username(u)
}

fn clean_phone(p: &str) -> Option<String> {
    peerlog::normalize_phone(p)
}

/// A peer as the store hands it back (see `Storage`'s normalization).
fn normalized(p: &Peer) -> Peer {
    let mut n = p.clone();
    n.username = p
        .username
        .as_deref()
        .and_then(clean_username)
        .map(str::to_owned);
    let mut all: Vec<String> = n.username.iter().cloned().collect();
    for u in p.usernames.iter().filter_map(|u| clean_username(u)) {
        if !all.iter().any(|x| x.eq_ignore_ascii_case(u)) {
            all.push(u.to_owned());
        }
    }
    n.usernames = all.split_off(usize::from(n.username.is_some()));
    n.phone = p.phone.as_deref().and_then(clean_phone);
    n
}

fn holds(p: &Peer, name: &str) -> bool {
    p.username
        .iter()
        .chain(&p.usernames)
        .any(|u| u.eq_ignore_ascii_case(name))
}

impl Acct {
    fn save_peer(&mut self, p: &Peer) {
        let mut rec = normalized(p);
        let id = rec.id.bot_api();
        if let Some(cur) = self.peers.get(&id) {
            let known_full = cur.access_hash.is_some() && !cur.min;
            if known_full && (rec.min || rec.access_hash.is_none()) {
                rec.access_hash = cur.access_hash;
                rec.min = false;
            } else if rec.access_hash.is_none() {
                rec.access_hash = cur.access_hash;
                rec.min = cur.min;
            }
            if *cur == rec {
                return;
            }
        }
        let names: Vec<String> = rec.username.iter().chain(&rec.usernames).cloned().collect();
        for (&other, q) in self.peers.iter_mut() {
            if other == id {
                continue;
            }
            for name in &names {
                if q.username
                    .as_deref()
                    .is_some_and(|u| u.eq_ignore_ascii_case(name))
                {
                    q.username = None;
                }
                q.usernames.retain(|u| !u.eq_ignore_ascii_case(name));
            }
            if rec.phone.is_some() && q.phone == rec.phone {
                q.phone = None;
            }
        }
        self.peers.insert(id, rec);
    }

    fn by_username(&self, q: &str) -> Option<&Peer> {
        let name = clean_username(q)?;
        let mut hits = self.peers.values().filter(|p| holds(p, name));
        let hit = hits.next();
        assert!(hits.next().is_none(), "model: a username has two owners");
        hit
    }

    fn by_phone(&self, q: &str) -> Option<&Peer> {
        let phone = clean_phone(q)?;
        self.peers
            .values()
            .find(|p| p.phone.as_ref() == Some(&phone))
    }

    fn dedup(&mut self, key: Vec<u8>) -> bool {
        if self.dedup.contains(&key) {
            return false;
        }
        while self.dedup.len() >= DEDUP_MAX {
            self.dedup.pop_front();
        }
        self.dedup.push_back(key);
        true
    }

    fn enqueue(&mut self, id: String, payload: Vec<u8>) -> bool {
        if self.queue.iter().any(|q| q.id == id) {
            return false;
        }
        self.queue.push(Queued {
            id,
            payload,
            ..Queued::default()
        });
        true
    }

    fn ack(&mut self, id: &str) -> bool {
        let before = self.queue.len();
        self.queue.retain(|q| q.id != id);
        self.queue.len() != before
    }

    fn mark_failed(&mut self, id: &str, err: String) -> u32 {
        match self.queue.iter_mut().find(|q| q.id == id) {
            Some(q) => {
                q.attempts += 1;
                q.last_error = Some(err);
                q.attempts
            }
            None => 0,
        }
    }

    fn state(pts: i32, qts: i32) -> UpdateState {
        UpdateState {
            pts,
            qts,
            date: 1_700_000_000,
            seq: pts.wrapping_sub(qts),
        }
    }

    fn tx_op(&mut self, op: &TxOp) -> Ret {
        match op {
            TxOp::SavePeer(p) => {
                self.save_peer(&peer(p));
                Ret::Unit
            }
            TxOp::DeletePeer(k, n) => {
                self.peers.remove(&peer_id(*k, *n).bot_api());
                Ret::Unit
            }
            TxOp::State(pts) => {
                self.state = Some(Self::state(*pts, 0));
                Ret::Unit
            }
            TxOp::ChannelPts(c, pts) => {
                self.channels.insert(i64::from(*c % 4) + 1, *pts);
                Ret::Unit
            }
            TxOp::Dedup(k) => Ret::Bool(self.dedup(dedup_key(*k))),
            TxOp::Enqueue(q, p) => Ret::Bool(self.enqueue(queue_id(*q), vec![*p; 3])),
            TxOp::Ack(q) => Ret::Bool(self.ack(&queue_id(*q))),
            TxOp::SetMeta(k, v) => {
                self.meta
                    .insert(META_KEYS[*k as usize % 3].into(), vec![*v; 2]);
                Ret::Unit
            }
            TxOp::DeleteMeta(k) => {
                Ret::Bool(self.meta.remove(META_KEYS[*k as usize % 3]).is_some())
            }
        }
    }
}

fn ai(a: bool) -> usize {
    usize::from(a)
}

impl Model {
    /// Applies a write op; returns what the store must return.
    fn apply(&mut self, op: &Op) -> Ret {
        match op {
            Op::SavePeers(a, ps) => {
                for p in ps.iter().take(4) {
                    self.accts[ai(*a)].save_peer(&peer(p));
                }
                Ret::Unit
            }
            Op::DeletePeer(a, k, n) => Ret::Bool(
                self.accts[ai(*a)]
                    .peers
                    .remove(&peer_id(*k, *n).bot_api())
                    .is_some(),
            ),
            Op::SaveSession(a, s) => {
                self.accts[ai(*a)].session = Some(session(s));
                Ret::Unit
            }
            Op::DeleteSession(a) => Ret::Bool(self.accts[ai(*a)].session.take().is_some()),
            Op::SaveDc(a, dc, salt, key) => {
                let d = dc_auth(*dc, *salt, *key);
                self.accts[ai(*a)].dcs.insert(d.dc_id, d);
                Ret::Unit
            }
            Op::DeleteDc(a, dc) => Ret::Bool(
                self.accts[ai(*a)]
                    .dcs
                    .remove(&(i32::from(*dc % 5) + 1))
                    .is_some(),
            ),
            Op::SaveState(a, pts, qts) => {
                self.accts[ai(*a)].state = Some(Acct::state(*pts, *qts));
                Ret::Unit
            }
            Op::SaveChannelPts(a, c, pts) => {
                self.accts[ai(*a)]
                    .channels
                    .insert(i64::from(*c % 4) + 1, *pts);
                Ret::Unit
            }
            Op::DeleteChannel(a, c) => Ret::Bool(
                self.accts[ai(*a)]
                    .channels
                    .remove(&(i64::from(*c % 4) + 1))
                    .is_some(),
            ),
            Op::PeersAndState(a, ps, st, chans) => {
                let acct = &mut self.accts[ai(*a)];
                for p in ps.iter().take(4) {
                    acct.save_peer(&peer(p));
                }
                if let Some(pts) = st {
                    acct.state = Some(Acct::state(*pts, 1));
                }
                for (c, pts) in chans.iter().take(3) {
                    acct.channels.insert(i64::from(*c % 4) + 1, *pts);
                }
                Ret::Unit
            }
            Op::Dedup(a, k) => Ret::Bool(self.accts[ai(*a)].dedup(dedup_key(*k))),
            Op::Enqueue(a, q, p) => Ret::Bool(self.accts[ai(*a)].enqueue(queue_id(*q), payload(p))),
            Op::Ack(a, q) => Ret::Bool(self.accts[ai(*a)].ack(&queue_id(*q))),
            Op::MarkFailed(a, q, e) => {
                Ret::U32(self.accts[ai(*a)].mark_failed(&queue_id(*q), format!("err{e}")))
            }
            Op::SaveConversation(a, c, u, step, data) => {
                let conv = conversation(*c, *u, *step, data);
                self.accts[ai(*a)]
                    .convs
                    .insert((conv.chat_id, conv.user_id), conv);
                Ret::Unit
            }
            Op::DeleteConversation(a, c, u) => {
                let k = (CHATS[*c as usize % 3], i64::from(*u % 2) + 1);
                Ret::Bool(self.accts[ai(*a)].convs.remove(&k).is_some())
            }
            Op::SetMeta(a, k, v) => {
                self.accts[ai(*a)]
                    .meta
                    .insert(META_KEYS[*k as usize % 3].into(), payload(v));
                Ret::Unit
            }
            Op::DeleteMeta(a, k) => Ret::Bool(
                self.accts[ai(*a)]
                    .meta
                    .remove(META_KEYS[*k as usize % 3])
                    .is_some(),
            ),
            Op::RawPut(b, k, len, fill) => {
                self.raw
                    .insert((*b as usize % 3, vec![*k % 6]), raw_value(*len, *fill));
                Ret::Unit
            }
            Op::RawDelete(b, k) => {
                Ret::Bool(self.raw.remove(&(*b as usize % 3, vec![*k % 6])).is_some())
            }
            Op::Tx(a, ops) => {
                let acct = &mut self.accts[ai(*a)];
                Ret::Many(ops.iter().take(6).map(|o| acct.tx_op(o)).collect())
            }
            Op::RemoveAccount(a) => {
                self.accts[ai(*a)] = Acct::default();
                Ret::Bool(true)
            }
            Op::Compact | Op::Reopen | Op::PowerLoss(_) | Op::Fail(..) => Ret::Unit,
        }
    }
}

// --- The store side --------------------------------------------------------

/// What a check after an operation covers.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scope {
    All,
    Account(usize),
    Raw,
}

/// The part of the store an operation can change.
fn scope(op: &Op) -> Scope {
    match op {
        Op::SavePeers(a, ..)
        | Op::DeletePeer(a, ..)
        | Op::SaveSession(a, ..)
        | Op::DeleteSession(a)
        | Op::SaveDc(a, ..)
        | Op::DeleteDc(a, ..)
        | Op::SaveState(a, ..)
        | Op::SaveChannelPts(a, ..)
        | Op::DeleteChannel(a, ..)
        | Op::PeersAndState(a, ..)
        | Op::Dedup(a, ..)
        | Op::Enqueue(a, ..)
        | Op::Ack(a, ..)
        | Op::MarkFailed(a, ..)
        | Op::SaveConversation(a, ..)
        | Op::DeleteConversation(a, ..)
        | Op::SetMeta(a, ..)
        | Op::DeleteMeta(a, ..)
        | Op::Tx(a, ..) => Scope::Account(ai(*a)),
        Op::RawPut(..) | Op::RawDelete(..) => Scope::Raw,
        // Removal, compaction (and any checkpoint it implies) can touch
        // everything.
        _ => Scope::All,
    }
}

struct Sut {
    file: MemFile,
    store: Store,
    accts: Vec<Account>,
}

fn open(bytes: Vec<u8>, opts: &Options) -> Sut {
    let file = MemFile::from_bytes(bytes);
    let store = Store::open_backend(Arc::new(file.clone()) as Arc<dyn RawFile>, opts.clone())
        .unwrap_or_else(|e| panic!("reopen failed: {e}"));
    let accts = ACCOUNTS
        .iter()
        .map(|n| {
            store
                .account(n)
                .unwrap_or_else(|e| panic!("account {n}: {e}"))
        })
        .collect();
    Sut { file, store, accts }
}

fn tx_op(tx: &mut peerlog::Transaction<'_>, op: &TxOp) -> peerlog::Result<Ret> {
    Ok(match op {
        TxOp::SavePeer(p) => {
            tx.save_peer(&peer(p))?;
            Ret::Unit
        }
        TxOp::DeletePeer(k, n) => {
            tx.delete_peer(peer_id(*k, *n))?;
            Ret::Unit
        }
        TxOp::State(pts) => {
            tx.save_update_state(&Acct::state(*pts, 0))?;
            Ret::Unit
        }
        TxOp::ChannelPts(c, pts) => {
            tx.save_channel_pts(i64::from(*c % 4) + 1, *pts)?;
            Ret::Unit
        }
        TxOp::Dedup(k) => Ret::Bool(tx.insert_dedup_key(&dedup_key(*k))?),
        TxOp::Enqueue(q, p) => Ret::Bool(tx.enqueue(&queue_id(*q), &[*p; 3])?),
        TxOp::Ack(q) => Ret::Bool(tx.ack(&queue_id(*q))?),
        TxOp::SetMeta(k, v) => {
            tx.set_meta(META_KEYS[*k as usize % 3], &[*v; 2])?;
            Ret::Unit
        }
        TxOp::DeleteMeta(k) => Ret::Bool(tx.delete_meta(META_KEYS[*k as usize % 3])?),
    })
}

impl Sut {
    fn apply(&mut self, op: &Op) -> peerlog::Result<Ret> {
        let unit = |r: peerlog::Result<()>| r.map(|()| Ret::Unit);
        let bucket = |b: u8| self.store.bucket(RAW_BUCKETS[b as usize % 3]);
        match op {
            Op::SavePeers(a, ps) => {
                let ps: Vec<Peer> = ps.iter().take(4).map(peer).collect();
                unit(self.accts[ai(*a)].save_peers(&ps))
            }
            Op::DeletePeer(a, k, n) => self.accts[ai(*a)]
                .delete_peer(peer_id(*k, *n))
                .map(Ret::Bool),
            Op::SaveSession(a, s) => unit(self.accts[ai(*a)].save_session(&session(s))),
            Op::DeleteSession(a) => self.accts[ai(*a)].delete_session().map(Ret::Bool),
            Op::SaveDc(a, dc, salt, key) => {
                unit(self.accts[ai(*a)].save_dc_auth(&dc_auth(*dc, *salt, *key)))
            }
            Op::DeleteDc(a, dc) => self.accts[ai(*a)]
                .delete_dc_auth(i32::from(*dc % 5) + 1)
                .map(Ret::Bool),
            Op::SaveState(a, pts, qts) => {
                unit(self.accts[ai(*a)].save_update_state(&Acct::state(*pts, *qts)))
            }
            Op::SaveChannelPts(a, c, pts) => {
                unit(self.accts[ai(*a)].save_channel_pts(i64::from(*c % 4) + 1, *pts))
            }
            Op::DeleteChannel(a, c) => self.accts[ai(*a)]
                .delete_channel_state(i64::from(*c % 4) + 1)
                .map(Ret::Bool),
            Op::PeersAndState(a, ps, st, chans) => {
                let ps: Vec<Peer> = ps.iter().take(4).map(peer).collect();
                let st = st.map(|pts| Acct::state(pts, 1));
                let chans: Vec<ChannelState> = chans
                    .iter()
                    .take(3)
                    .map(|(c, pts)| ChannelState {
                        channel_id: i64::from(*c % 4) + 1,
                        pts: *pts,
                    })
                    .collect();
                unit(self.accts[ai(*a)].save_peers_and_state(&ps, st.as_ref(), &chans))
            }
            Op::Dedup(a, k) => self.accts[ai(*a)]
                .insert_dedup_key(&dedup_key(*k))
                .map(Ret::Bool),
            Op::Enqueue(a, q, p) => self.accts[ai(*a)]
                .enqueue(&queue_id(*q), &payload(p))
                .map(Ret::Bool),
            Op::Ack(a, q) => self.accts[ai(*a)].ack(&queue_id(*q)).map(Ret::Bool),
            Op::MarkFailed(a, q, e) => self.accts[ai(*a)]
                .mark_failed(&queue_id(*q), &format!("err{e}"))
                .map(Ret::U32),
            Op::SaveConversation(a, c, u, step, data) => {
                unit(self.accts[ai(*a)].save_conversation(&conversation(*c, *u, *step, data)))
            }
            Op::DeleteConversation(a, c, u) => self.accts[ai(*a)]
                .delete_conversation(CHATS[*c as usize % 3], i64::from(*u % 2) + 1)
                .map(Ret::Bool),
            Op::SetMeta(a, k, v) => {
                unit(self.accts[ai(*a)].set_meta(META_KEYS[*k as usize % 3], &payload(v)))
            }
            Op::DeleteMeta(a, k) => self.accts[ai(*a)]
                .delete_meta(META_KEYS[*k as usize % 3])
                .map(Ret::Bool),
            Op::RawPut(b, k, len, fill) => {
                unit(bucket(*b)?.put(&[*k % 6], &raw_value(*len, *fill)))
            }
            Op::RawDelete(b, k) => bucket(*b)?.delete(&[*k % 6]).map(Ret::Bool),
            Op::Tx(a, ops) => self.accts[ai(*a)].write(|tx| {
                let mut out = Vec::new();
                for o in ops.iter().take(6) {
                    out.push(tx_op(tx, o)?);
                }
                Ok(Ret::Many(out))
            }),
            // Re-created by `Run::step` once the removal is acknowledged.
            Op::RemoveAccount(a) => self.store.remove_account(ACCOUNTS[ai(*a)]).map(Ret::Bool),
            Op::Compact => unit(self.store.compact()),
            Op::Reopen | Op::PowerLoss(_) | Op::Fail(..) => unreachable!(),
        }
    }

    /// Compares everything the store answers with one model; the first
    /// difference, if any.
    fn diff(&self, m: &Model) -> Result<(), String> {
        self.diff_only(m, Scope::All)
    }

    /// [`Sut::diff`] restricted to what one operation can change.
    fn diff_only(&self, m: &Model, scope: Scope) -> Result<(), String> {
        macro_rules! same {
            ($what:expr, $got:expr, $want:expr) => {{
                let got = $got.map_err(|e| format!("{}: error {e}", $what))?;
                let want = $want;
                if got != want {
                    return Err(format!("{}: store {:?}, model {:?}", $what, got, want));
                }
            }};
        }
        same!(
            "accounts",
            self.store.accounts(),
            vec!["a".to_string(), "b".to_string()]
        );
        for (i, (a, ma)) in self.accts.iter().zip(&m.accts).enumerate() {
            if !matches!(scope, Scope::All) && scope != Scope::Account(i) {
                continue;
            }
            same!(format!("{i} session"), a.session(), ma.session.clone());
            same!(
                format!("{i} dc_auths"),
                a.dc_auths(),
                ma.dcs.values().cloned().collect::<Vec<_>>()
            );
            same!(
                format!("{i} peers"),
                a.peers(),
                ma.peers.values().cloned().collect::<Vec<_>>()
            );
            same!(
                format!("{i} peer_count"),
                a.peer_count(),
                ma.peers.len() as u64
            );
            for kind in 0..3u8 {
                for n in 0..6u8 {
                    let id = peer_id(kind, n);
                    let want = ma.peers.get(&id.bot_api());
                    same!(format!("{i} peer {id:?}"), a.peer(id), want.cloned());
                    same!(
                        format!("{i} access_hash {id:?}"),
                        a.access_hash(id),
                        want.and_then(|p| p.access_hash)
                    );
                }
            }
            for u in USERNAMES.into_iter().chain(NOT_USERNAMES) {
                same!(
                    format!("{i} username {u:?}"),
                    a.peer_by_username(u),
                    ma.by_username(u).cloned()
                );
            }
            for p in PHONES.into_iter().chain(NOT_PHONES) {
                same!(
                    format!("{i} phone {p:?}"),
                    a.peer_by_phone(p),
                    ma.by_phone(p).cloned()
                );
            }
            same!(format!("{i} update_state"), a.update_state(), ma.state);
            same!(
                format!("{i} channels"),
                a.channel_states().map(|v| v
                    .into_iter()
                    .map(|c| (c.channel_id, c.pts))
                    .collect::<Vec<_>>()),
                ma.channels
                    .iter()
                    .map(|(k, v)| (*k, *v))
                    .collect::<Vec<_>>()
            );
            for k in 0..8u8 {
                let key = dedup_key(k);
                same!(
                    format!("{i} dedup {k}"),
                    a.has_dedup_key(&key),
                    ma.dedup.contains(&key)
                );
            }
            same!(
                format!("{i} queue"),
                a.pending(usize::MAX).map(|v| v
                    .into_iter()
                    .map(|u| Queued {
                        id: u.id,
                        payload: u.payload,
                        attempts: u.attempts,
                        last_error: u.last_error,
                    })
                    .collect::<Vec<_>>()),
                ma.queue.clone()
            );
            for c in 0..3u8 {
                for u in 0..2u8 {
                    let (chat, user) = (CHATS[c as usize], i64::from(u) + 1);
                    same!(
                        format!("{i} conversation {chat} {user}"),
                        a.conversation(chat, user),
                        ma.convs.get(&(chat, user)).cloned()
                    );
                }
            }
            for k in META_KEYS {
                same!(format!("{i} meta {k}"), a.meta(k), ma.meta.get(k).cloned());
            }
        }
        if !matches!(scope, Scope::All | Scope::Raw) {
            return Ok(());
        }
        for (b, name) in RAW_BUCKETS.iter().enumerate() {
            let bucket = self.store.bucket(name).map_err(|e| e.to_string())?;
            let want: Vec<(Vec<u8>, Vec<u8>)> = m
                .raw
                .iter()
                .filter(|((mb, _), _)| *mb == b)
                .map(|((_, k), v)| (k.clone(), v.clone()))
                .collect();
            same!(
                format!("raw {name} len"),
                Ok::<_, Error>(bucket.len()),
                want.len()
            );
            same!(format!("raw {name}"), bucket.scan_prefix(b""), want);
        }
        Ok(())
    }

    fn verify(&self) {
        let r = self.store.verify().expect("verify runs");
        assert!(r.is_ok(), "verify: {r}");
    }
}

/// Picks the fate of each unsynced write at a power loss from `seed`.
fn fates(seed: u64) -> impl FnMut(usize, &peerlog::io::Pending) -> Fate {
    let mut x = seed | 1;
    move |_, _| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        match x % 4 {
            0 | 1 => Fate::Keep,
            2 => Fate::Drop,
            _ => Fate::Tear((x >> 8) as usize % 5000),
        }
    }
}

struct Run {
    opts: Options,
    sut: Option<Sut>,
    model: Model,
    /// The outcome of the failed operation, had it been applied.
    alt: Option<Model>,
    /// An injected fault is pending or fired.
    armed: bool,
    /// An operation failed: every later write must fail until reopen.
    poisoned: bool,
    /// Checkpoints the open store has run.
    checkpoints: u64,
}

impl Run {
    fn sut(&self) -> &Sut {
        self.sut.as_ref().expect("open")
    }

    fn sut_mut(&mut self) -> &mut Sut {
        self.sut.as_mut().expect("open")
    }

    fn reopen(&mut self, image: impl FnOnce(&MemFile) -> Vec<u8>) {
        let old = self.sut.take().expect("open");
        old.file.heal();
        let file = old.file.clone();
        // Dropping the store may sync; take the image after.
        drop(old);
        self.sut = Some(open(image(&file), &self.opts));
        let alt = self.alt.take();
        let sut = self.sut();
        match (sut.diff(&self.model), alt) {
            (Ok(()), _) => {}
            (Err(e), None) => panic!("after reopen: {e}"),
            (Err(e), Some(alt)) => match sut.diff(&alt) {
                Ok(()) => self.model = alt,
                Err(e2) => panic!("after reopen, neither outcome: {e} / {e2}"),
            },
        }
        self.sut().verify();
        self.armed = false;
        self.poisoned = false;
        self.checkpoints = self.sut().store.stats().checkpoints;
    }

    fn step(&mut self, op: &Op) {
        match op {
            Op::Reopen => return self.reopen(MemFile::live),
            Op::PowerLoss(seed) => {
                let seed = *seed;
                return self.reopen(move |f| f.crash_image(fates(seed)));
            }
            Op::Fail(on, n) => {
                let on = [FaultOn::Write, FaultOn::Sync, FaultOn::SetLen][*on as usize % 3];
                self.sut()
                    .file
                    .fail(on, u64::from(*n % 4), std::io::ErrorKind::Other, true);
                self.armed = true;
                return;
            }
            _ => {}
        }
        let mut next = self.model.clone();
        let want = next.apply(op);
        let got = self.sut_mut().apply(op);
        if self.poisoned {
            match (&got, op) {
                (Err(_), _) => {}
                // A dedup key already present is answered from memory.
                (Ok(Ret::Bool(false)), Op::Dedup(..)) => {}
                (Ok(r), _) => panic!("{op:?} succeeded ({r:?}) on a store whose writes failed"),
            }
            return;
        }
        match got {
            Ok(r) => {
                assert_eq!(r, want, "{op:?} returned");
                self.model = next;
                if let Op::RemoveAccount(a) = op {
                    // The removal is acknowledged; re-creating the account
                    // is a commit of its own (empty either way).
                    let name = ACCOUNTS[ai(*a)];
                    match self.sut().store.account(name) {
                        Ok(h) => self.sut_mut().accts[ai(*a)] = h,
                        Err(_) if self.armed => {
                            self.poisoned = true;
                            return;
                        }
                        Err(e) => panic!("re-creating account {name}: {e}"),
                    }
                }
                // A check of what the operation could change; of
                // everything when a checkpoint ran (inside any write).
                let checkpoints = self.sut().store.stats().checkpoints;
                let scope = if checkpoints != self.checkpoints {
                    self.checkpoints = checkpoints;
                    Scope::All
                } else {
                    scope(op)
                };
                if let Err(e) = self.sut().diff_only(&self.model, scope) {
                    panic!("after {op:?}: {e}");
                }
            }
            Err(_) if self.armed => {
                self.poisoned = true;
                self.alt = Some(next);
            }
            Err(e) => panic!("{op:?} failed without an injected fault: {e}"),
        }
    }
}

fuzz_target!(|input: Input| {
    let opts = Options {
        durability: Durability::Immediate,
        log_size: 4096 * (1 + u64::from(input.log_pages % 3)),
        compact_min_dead: 512,
        compact_dead_ratio: 0.5,
        peer_fold_min: [1, 3, 16][input.fold as usize % 3],
        index_load: [0.5, 0.75, 0.95][input.load as usize % 3],
        dedup_max_keys: DEDUP_MAX,
        ..Options::default()
    };
    let sut = open(Vec::new(), &opts);
    let mut run = Run {
        opts,
        sut: Some(sut),
        model: Model::default(),
        alt: None,
        armed: false,
        poisoned: false,
        checkpoints: 0,
    };
    for op in input.ops.iter().take(128) {
        run.step(op);
    }
    // End: a crash-free reopen must show the model (or the failed op's
    // outcome), and verify clean.
    run.reopen(MemFile::live);
});
