//! The damage property, shared by `tests/damage.rs` and the `damage` fuzz
//! target (which includes this file through `#[path]`, so it uses nothing
//! but peerlog's public API and std).
//!
//! [`build`] writes a store through the typed API, recording in a [`Want`]
//! everything that was synced. [`judge`] opens a (damaged) image and
//! classifies it: every answer exactly as synced ([`Outcome::Whole`]), the
//! damage reported ([`Outcome::Refused`]: an error at open or at a read,
//! or a problem in `verify()`), or a wrong answer nobody reported
//! ([`Outcome::Wrong`]).
#![allow(dead_code)]

use peerlog::UpdateState;
use peerlog::io::MemFile;
use peerlog::{AuthKey, ChannelKind, Durability, Options, Peer, PeerId, Session, Storage, Store};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The account every built store keeps its data in.
pub const ACCOUNT: &str = "bot";
/// Raw bucket the builder writes to.
pub const RAW: &str = "files";
/// The first 8 bytes of every superblock copy (FORMAT.md).
pub const MAGIC: [u8; 8] = peerlog::format::superblock::MAGIC;

/// splitmix64, as in `common/model.rs` (repeated so the fuzz crate can use
/// this file on its own).
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// What the store was told, and synced: every answer a reader may get.
#[derive(Debug, Clone, Default)]
pub struct Want {
    pub session: Option<Session>,
    pub state: Option<UpdateState>,
    pub channels: BTreeMap<i64, i32>,
    /// Stored peers by Bot API id, as `peer()` must return them.
    pub peers: BTreeMap<i64, Peer>,
    /// Ids that were never saved or were deleted: must stay absent.
    pub absent: BTreeSet<i64>,
    /// Every username (lowercase) and phone ever saved; those no stored
    /// peer holds now must not resolve.
    pub names_seen: BTreeSet<String>,
    pub phones_seen: BTreeSet<String>,
    /// Raw bucket [`RAW`]: key -> value (None: deleted, must be absent).
    pub raw: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

fn names_of(p: &Peer) -> impl Iterator<Item = &String> {
    p.username.iter().chain(p.usernames.iter())
}

impl Want {
    /// The merge rules of `Storage::save_peers` for the peers the builder
    /// writes (never min, never a re-save without an access hash): the peer
    /// replaces the stored one, and a username or phone it takes leaves
    /// its previous owner.
    pub fn save_peer(&mut self, p: &Peer) {
        let id = p.id.bot_api();
        for (other_id, o) in self.peers.iter_mut() {
            if *other_id == id {
                continue;
            }
            for n in names_of(p) {
                if o.username
                    .as_ref()
                    .is_some_and(|u| u.eq_ignore_ascii_case(n))
                {
                    o.username = None;
                }
                o.usernames.retain(|u| !u.eq_ignore_ascii_case(n));
            }
            if p.phone.is_some() && o.phone == p.phone {
                o.phone = None;
            }
        }
        for n in names_of(p) {
            self.names_seen.insert(n.to_ascii_lowercase());
        }
        if let Some(ph) = &p.phone {
            self.phones_seen.insert(ph.clone());
        }
        self.absent.remove(&id);
        self.peers.insert(id, p.clone());
    }

    pub fn delete_peer(&mut self, id: PeerId) {
        self.peers.remove(&id.bot_api());
        self.absent.insert(id.bot_api());
    }
}

/// How much of a store [`judge`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Everything: `peer()` of every peer, `peer_by_username` and
    /// `peer_by_phone` returning whole peers, `verify()` always.
    Full,
    /// Every access hash, username (`resolve_username`) and phone owner,
    /// but `peer()` read whole only for every `n`-th peer; `verify()`
    /// only when an answer was wrong.
    Sampled(usize),
}

/// Why a damaged image was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Open(String),
    Read(String),
    /// The answers were wrong, but `verify()` reported the damage.
    Verify(String),
}

/// What came of one damaged image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every answer exactly as synced. `flagged`: `verify()` still
    /// reported a problem (damage that changed no answer).
    Whole {
        flagged: bool,
    },
    Refused(Refusal),
    /// A wrong answer, no error anywhere, and a clean `verify()`.
    Wrong(String),
}

impl Outcome {
    pub fn is_wrong(&self) -> bool {
        matches!(self, Outcome::Wrong(_))
    }
}

/// One wrong answer, or a read error.
enum Bad {
    Wrong(String),
    Err(peerlog::Error),
}

impl From<peerlog::Error> for Bad {
    fn from(e: peerlog::Error) -> Bad {
        Bad::Err(e)
    }
}

fn same<T: PartialEq + std::fmt::Debug>(
    what: impl FnOnce() -> String,
    got: T,
    want: T,
) -> Result<(), Bad> {
    if got == want {
        Ok(())
    } else {
        Err(Bad::Wrong(format!(
            "{}: got {got:?}, want {want:?}",
            what()
        )))
    }
}

/// A session's identity without key bytes (`Session`'s Debug hides them,
/// so a mismatch is described by dc and a key fingerprint).
fn describe(s: &Option<Session>) -> String {
    match s {
        None => "no session".into(),
        Some(s) => {
            let fp = s.auth_key.as_ref().map(|k| {
                k.as_bytes()
                    .iter()
                    .fold(0u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
            });
            format!(
                "dc {} user {:?} key fingerprint {fp:x?}",
                s.dc_id, s.user_id
            )
        }
    }
}

fn compare(store: &Store, want: &Want, depth: Depth) -> Result<(), Bad> {
    let accounts = store.accounts()?;
    if !accounts.iter().any(|a| a == ACCOUNT) {
        return Err(Bad::Wrong(format!(
            "account {ACCOUNT:?} is gone: {accounts:?}"
        )));
    }
    let acct = store.account(ACCOUNT)?;
    let session = acct.session()?;
    if session != want.session {
        return Err(Bad::Wrong(format!(
            "session: got {}, want {}",
            describe(&session),
            describe(&want.session)
        )));
    }
    same(|| "update state".into(), acct.update_state()?, want.state)?;
    for (&ch, &pts) in &want.channels {
        same(
            || format!("pts of channel {ch}"),
            acct.channel_pts(ch)?,
            Some(pts),
        )?;
    }
    let channels: BTreeMap<i64, i32> = acct
        .channel_states()?
        .into_iter()
        .map(|c| (c.channel_id, c.pts))
        .collect();
    same(|| "channel states".into(), &channels, &want.channels)?;
    same(
        || "peer_count".into(),
        acct.peer_count()?,
        want.peers.len() as u64,
    )?;
    let bucket = store.bucket(RAW)?;
    for (k, v) in &want.raw {
        same(|| format!("raw {RAW}/{k:?}"), bucket.get(k)?, v.clone())?;
    }
    // Access hashes first: the hot path, and cheap.
    for (&id, p) in &want.peers {
        same(
            || format!("access_hash({id})"),
            acct.access_hash(p.id)?,
            p.access_hash,
        )?;
    }
    for &id in &want.absent {
        let pid = PeerId::from_bot_api(id).expect("valid id");
        same(
            || format!("access_hash({id}) of an absent peer"),
            acct.access_hash(pid)?,
            None,
        )?;
    }
    let mut held_names = BTreeSet::new();
    let mut held_phones = BTreeSet::new();
    for (i, (&id, p)) in want.peers.iter().enumerate() {
        let whole = match depth {
            Depth::Full => true,
            Depth::Sampled(n) => i % n.max(1) == 0,
        };
        if whole {
            same(|| format!("peer({id})"), acct.peer(p.id)?.as_ref(), Some(p))?;
        }
        for n in names_of(p) {
            held_names.insert(n.to_ascii_lowercase());
            let upper = n.to_ascii_uppercase();
            same(
                || format!("resolve_username({upper:?})"),
                acct.resolve_username(&upper)?,
                Some((p.id, p.access_hash)),
            )?;
            if depth == Depth::Full {
                same(
                    || format!("peer_by_username({n:?})"),
                    acct.peer_by_username(&format!("@{n}"))?.as_ref(),
                    Some(p),
                )?;
            }
        }
        if let Some(ph) = &p.phone {
            held_phones.insert(ph.clone());
            let got = acct.peer_by_phone(ph)?;
            if whole {
                same(|| format!("peer_by_phone({ph})"), got.as_ref(), Some(p))?;
            } else {
                same(
                    || format!("peer_by_phone({ph})"),
                    got.map(|g| g.id),
                    Some(p.id),
                )?;
            }
        }
    }
    for &id in &want.absent {
        let pid = PeerId::from_bot_api(id).expect("valid id");
        same(
            || format!("peer({id}) of an absent peer"),
            acct.peer(pid)?,
            None,
        )?;
    }
    for n in want.names_seen.difference(&held_names) {
        same(
            || format!("resolve_username({n:?}), held by no one"),
            acct.resolve_username(n)?,
            None,
        )?;
    }
    for ph in want.phones_seen.difference(&held_phones) {
        same(
            || format!("peer_by_phone({ph}), held by no one"),
            acct.peer_by_phone(ph)?.map(|p| p.id),
            None,
        )?;
    }
    Ok(())
}

/// `Some(description)` if `verify()` fails or reports a problem.
pub fn verify_flags(store: &Store) -> Option<String> {
    match store.verify() {
        Err(e) => Some(format!("verify failed: {e}")),
        Ok(r) if !r.is_ok() => Some(format!(
            "verify: {}",
            r.to_string().lines().next().unwrap_or("")
        )),
        Ok(_) => None,
    }
}

/// Classifies an open store against `want`.
pub fn judge_store(store: &Store, want: &Want, depth: Depth) -> Outcome {
    let answers = compare(store, want, depth);
    let flagged = match (&answers, depth) {
        (Ok(()), Depth::Sampled(_)) => None,
        _ => verify_flags(store),
    };
    match answers {
        Err(Bad::Err(e)) => Outcome::Refused(Refusal::Read(e.to_string())),
        Ok(()) => Outcome::Whole {
            flagged: flagged.is_some(),
        },
        Err(Bad::Wrong(w)) => match flagged {
            Some(v) => Outcome::Refused(Refusal::Verify(format!("{w}; {v}"))),
            None => Outcome::Wrong(w),
        },
    }
}

/// Opens `img` in memory and classifies it.
pub fn judge(img: Vec<u8>, opts: &Options, want: &Want, depth: Depth) -> Outcome {
    match Store::open_backend(Arc::new(MemFile::from_bytes(img)), opts.clone()) {
        Err(e) => Outcome::Refused(Refusal::Open(e.to_string())),
        Ok(store) => judge_store(&store, want, depth),
    }
}

/// Offsets of every superblock copy: 512-byte-aligned occurrences of the
/// magic in the first 16 KiB.
pub fn superblock_slots(img: &[u8]) -> Vec<usize> {
    (0..img.len().min(16 << 10))
        .step_by(512)
        .filter(|&at| img.get(at..at + 8) == Some(&MAGIC[..]))
        .collect()
}

/// What [`build`] writes.
#[derive(Debug, Clone)]
pub struct Spec {
    pub peers: usize,
    pub durability: Durability,
    pub log_size: u64,
    pub seed: u64,
}

pub fn opts(spec: &Spec) -> Options {
    Options {
        durability: spec.durability,
        log_size: spec.log_size,
        ..Options::default()
    }
}

fn auth_key(b: u8) -> AuthKey {
    let mut k = [0u8; 256];
    for (i, x) in k.iter_mut().enumerate() {
        *x = (i as u8).wrapping_mul(101).wrapping_add(b);
    }
    AuthKey::new(k)
}

fn session(dc: i32, key: u8, user: i64) -> Session {
    let mut s = Session::new(dc, false);
    s.auth_key = Some(auth_key(key));
    s.user_id = Some(user);
    s.api_id = 611_335;
    s.api_hash = Some("d524b414d21f4d37f08684c1df41ac9c".into());
    s.is_bot = true;
    s.username = Some("damage_bot".into());
    s.date = 1_700_000_000 + key as i64;
    s
}

/// Peer number `i`: users (most with a username, some with several, some
/// with a phone), channels with a username, and basic chats (no hash).
pub fn peer(rng: &mut SplitMix, i: usize) -> Peer {
    let n = i as i64;
    let hash = (rng.next_u64() | 1) as i64;
    let mut p = match i % 10 {
        9 => Peer::chat(1_000 + n).with_names(format!("Chat {i}"), None),
        8 => Peer::channel(1_000_000 + n, hash, ChannelKind::Megagroup)
            .with_names(format!("Group {i}"), None)
            .with_username(format!("group_{i}")),
        _ => {
            let mut p = Peer::user(10_000 + n, hash)
                .with_names(format!("User{i}"), i.is_multiple_of(2).then_some("Last"));
            if !i.is_multiple_of(3) {
                p = p.with_username(format!("User_{i}"));
            }
            if i % 7 == 1 {
                p.usernames = vec![format!("alt_{i}"), format!("Alt2_{i}")];
            }
            if i % 4 == 1 {
                p = p.with_phone(format!("1555{i:07}"));
            }
            p.is_bot = i.is_multiple_of(11);
            p.language = i.is_multiple_of(5).then(|| "en".to_string());
            p
        }
    };
    p.photo_id = i.is_multiple_of(6).then_some(hash.rotate_left(7));
    p.updated_at = 1_700_000_000 + n;
    p
}

fn state(pts: i32) -> UpdateState {
    UpdateState {
        pts,
        qts: pts / 10,
        date: 1_700_000_000 + pts,
        seq: pts / 3,
    }
}

struct Builder {
    store: Store,
    acct: peerlog::Account,
    rng: SplitMix,
    w: Want,
}

impl Builder {
    fn save(&mut self, peers: &[Peer], st: Option<UpdateState>, chans: &[(i64, i32)]) {
        self.acct
            .write(|tx| {
                tx.save_peers(peers)?;
                if let Some(s) = &st {
                    tx.save_update_state(s)?;
                }
                for &(c, pts) in chans {
                    tx.save_channel_pts(c, pts)?;
                }
                Ok(())
            })
            .expect("commit");
        for p in peers {
            self.w.save_peer(p);
        }
        if st.is_some() {
            self.w.state = st;
        }
        for &(c, pts) in chans {
            self.w.channels.insert(c, pts);
        }
    }

    fn put_raw(&mut self, k: &[u8], v: Option<&[u8]>) {
        let raw = self.store.bucket(RAW).expect("raw bucket");
        match v {
            Some(v) => raw.put(k, v).expect("raw put"),
            None => drop(raw.delete(k).expect("raw delete")),
        }
        self.w.raw.insert(k.to_vec(), v.map(<[u8]>::to_vec));
    }

    fn set_session(&mut self, s: Session) {
        self.acct.save_session(&s).expect("save session");
        self.w.session = Some(s);
    }

    /// A changed copy of a stored peer: a new hash (if it has one) and time.
    fn changed(&mut self, id: i64, t: i64) -> Option<Peer> {
        let mut p = self.w.peers.get(&id)?.clone();
        if p.access_hash.is_some() {
            p.access_hash = Some((self.rng.next_u64() | 1) as i64);
        }
        p.updated_at += t;
        Some(p)
    }

    fn pick(&mut self) -> i64 {
        let n = self.w.peers.len() as u64;
        let i = self.rng.below(n) as usize;
        *self.w.peers.keys().nth(i).expect("a peer")
    }

    /// `k` new hashes (in commits of 6), `k / 3` usernames (with phones)
    /// taken from one peer by another, `k / 4` deletes (one commit).
    fn churn(&mut self, k: usize, t: i64) {
        for _ in 0..k / 6 {
            let mut batch: Vec<Peer> = Vec::new();
            for _ in 0..6 {
                let id = self.pick();
                if batch.iter().all(|p| p.id.bot_api() != id)
                    && let Some(p) = self.changed(id, t)
                {
                    batch.push(p);
                }
            }
            self.save(&batch, None, &[]);
        }
        let mut moved = 0;
        for _ in 0..50 * k {
            if moved >= k / 3 {
                break;
            }
            let (from, to) = (self.pick(), self.pick());
            let (a, b) = (&self.w.peers[&from], &self.w.peers[&to]);
            if from == to || b.access_hash.is_none() {
                continue;
            }
            let Some(name) = a.username.clone() else {
                continue;
            };
            let phone = a.phone.clone();
            let mut b = self.changed(to, t).expect("stored");
            b.username = Some(name);
            if phone.is_some() {
                b.phone = phone;
            }
            self.save(&[b], None, &[]);
            moved += 1;
        }
        let doomed: BTreeSet<i64> = (0..k / 4).map(|_| self.pick()).collect();
        self.acct
            .write(|tx| {
                for &id in &doomed {
                    tx.delete_peer(PeerId::from_bot_api(id).expect("valid id"))?;
                }
                Ok(())
            })
            .expect("delete peers");
        for &id in &doomed {
            self.w
                .delete_peer(PeerId::from_bot_api(id).expect("valid id"));
        }
    }
}

/// Builds a store: a session, peers, update state, channel pts and raw
/// values, a first `compact()`, more of each (new peers, changed hashes,
/// usernames and phones moving, deletes, a new session and state), a
/// second `compact()`, then a few more commits of each kind that stay in
/// the log; `sync()`, close. Returns the synced image and what it holds.
pub fn build(spec: &Spec) -> (Vec<u8>, Want) {
    let file = MemFile::new();
    let store = Store::open_backend(Arc::new(file.clone()), opts(spec)).expect("open a new store");
    let acct = store.account(ACCOUNT).expect("account");
    let mut b = Builder {
        store: store.clone(),
        acct,
        rng: SplitMix(spec.seed),
        w: Want::default(),
    };
    for k in 0..8i64 {
        b.w.absent.insert(PeerId::user(900_000 + k).bot_api());
    }
    b.w.absent.insert(PeerId::channel(900_000).bot_api());
    let n = spec.peers.max(20);
    let half = n / 2;

    // Phase A: before the first checkpoint.
    b.set_session(session(2, 1, 777));
    for (k, chunk) in (0..half).collect::<Vec<_>>().chunks(200).enumerate() {
        let peers: Vec<Peer> = chunk.iter().map(|&i| peer(&mut b.rng, i)).collect();
        let chans = [(1_000_000 + k as i64, 100 + k as i32)];
        b.save(&peers, Some(state(10 + k as i32)), &chans);
    }
    for k in 0..6u8 {
        b.put_raw(&[b'f', k], Some(&vec![k; 30 + 20 * k as usize]));
    }
    store.compact().expect("first compact");

    // Phase B: between the checkpoints.
    for (k, chunk) in (half..n).collect::<Vec<_>>().chunks(200).enumerate() {
        let peers: Vec<Peer> = chunk.iter().map(|&i| peer(&mut b.rng, i)).collect();
        let chans = [(1_000_000 + k as i64, 200 + k as i32), (77, k as i32)];
        b.save(&peers, Some(state(1_000 + k as i32)), &chans);
    }
    b.set_session(session(4, 2, 777));
    b.churn(30, 1);
    b.put_raw(b"f\x01", None);
    b.put_raw(b"between", Some(b"checkpoints"));
    store.compact().expect("second compact");

    // Phase C: after the last checkpoint, in the log.
    b.set_session(session(1, 3, 778));
    b.churn(12, 2);
    let fresh: Vec<Peer> = (n..n + 12).map(|i| peer(&mut b.rng, i)).collect();
    b.save(&fresh, Some(state(5_000)), &[(1_000_000, 9_999), (88, 1)]);
    b.put_raw(b"after", Some(b"the last checkpoint"));
    b.save(&[], Some(state(5_001)), &[]);
    store.sync().expect("sync");
    let want = b.w;
    drop(b.store);
    drop(b.acct);
    drop(store);
    (file.durable(), want)
}
