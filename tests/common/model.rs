//! A deterministic workload over the engine API (raw buckets and peer
//! records) and an independent model of what the store must hold after
//! each step. Shared by the power-loss and I/O-error tests.

use peerlog::{Batch, PeerRecord, Store};
use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

/// splitmix64: a tiny seeded PRNG, so runs are reproducible without extra
/// crates.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// True with probability `pct` percent.
    pub fn pct(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}

/// Raw bucket names the workload uses.
pub const BUCKETS: [&str; 4] = ["a", "settings", "q", "a-rather-long-bucket-name"];
/// Accounts the workload uses.
pub const ACCOUNTS: [u32; 3] = [0, 1, 7];

/// What the store must hold: raw buckets and peers, by value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Model {
    pub raw: BTreeMap<(String, Vec<u8>), Vec<u8>>,
    pub peers: BTreeMap<(u32, i64), PeerRecord>,
}

impl Model {
    pub fn fingerprint(&self) -> u64 {
        let mut h = DefaultHasher::new();
        self.raw.hash(&mut h);
        for (k, r) in &self.peers {
            k.hash(&mut h);
            r.encode().hash(&mut h);
        }
        h.finish()
    }

    /// The engine's merge rules for saved peers (see `put_peer_records`),
    /// written independently of the engine.
    pub fn put_peers(&mut self, recs: &[PeerRecord]) {
        for rec in recs {
            let mut rec = rec.clone();
            let key = (rec.account, rec.peer_id);
            if let Some(cur) = self.peers.get(&key) {
                let known_full = cur.access_hash.is_some() && !cur.min;
                if known_full && (rec.min || rec.access_hash.is_none()) {
                    rec.access_hash = cur.access_hash;
                    rec.min = false;
                } else if rec.access_hash.is_none() {
                    rec.access_hash = cur.access_hash;
                    rec.min = cur.min;
                }
                if *cur == rec {
                    continue;
                }
            }
            for (k, other) in self.peers.iter_mut() {
                if *k == key || k.0 != rec.account {
                    continue;
                }
                for u in &rec.usernames {
                    if other.primary
                        && other
                            .usernames
                            .first()
                            .is_some_and(|f| f.eq_ignore_ascii_case(u))
                    {
                        other.primary = false;
                    }
                    other.usernames.retain(|o| !o.eq_ignore_ascii_case(u));
                }
                if rec.phone.is_some() && other.phone == rec.phone {
                    other.phone = None;
                }
            }
            self.peers.insert(key, rec);
        }
    }

    /// Reads everything the workload can have written out of `store`.
    pub fn read(store: &Store) -> Model {
        let mut m = Model::default();
        for name in BUCKETS {
            for (k, v) in store.bucket(name).unwrap().scan_prefix(b"").unwrap() {
                m.raw.insert((name.to_string(), k), v);
            }
        }
        for acc in ACCOUNTS {
            for id in store.peer_ids(acc).unwrap() {
                let r = store.peer_record(acc, id).unwrap().expect("listed peer");
                m.peers.insert((acc, id), r);
            }
        }
        m
    }

    /// Checks every lookup path of `store` against this model: bucket
    /// gets, access hashes, usernames (in another case too) and phones.
    pub fn check_lookups(&self, store: &Store) -> Result<(), String> {
        for ((b, k), v) in &self.raw {
            let got = store.bucket(b).unwrap().get(k).unwrap();
            if got.as_ref() != Some(v) {
                return Err(format!("{b}/{k:?}: {got:?}"));
            }
        }
        for ((acc, id), r) in &self.peers {
            let h = store.peer_access_hash(*acc, *id).unwrap();
            if h != Some(r.access_hash) {
                return Err(format!(
                    "peer {acc}/{id}: hash {h:?}, want {:?}",
                    r.access_hash
                ));
            }
            for u in &r.usernames {
                let got = store
                    .peer_id_by_username(*acc, &u.to_ascii_uppercase())
                    .unwrap();
                if got != Some(*id) {
                    return Err(format!("username {u} of {acc}/{id}: {got:?}"));
                }
            }
            if let Some(p) = &r.phone {
                let got = store.peer_id_by_phone(*acc, p).unwrap();
                if got != Some(*id) {
                    return Err(format!("phone {p} of {acc}/{id}: {got:?}"));
                }
            }
        }
        Ok(())
    }
}

/// One step of the workload.
#[derive(Debug, Clone)]
pub enum Step {
    Put(String, Vec<u8>, Vec<u8>),
    Delete(String, Vec<u8>),
    /// (bucket, key, Some(value) = put / None = delete), durable flag.
    Batch(Vec<(String, Vec<u8>, Option<Vec<u8>>)>, bool),
    Peers(Vec<PeerRecord>),
    DeletePeer(u32, i64),
    Compact,
    Sync,
    /// Close the handle and open the same file again.
    Reopen,
}

impl Step {
    /// True if the step is (at most) one commit.
    pub fn commits(&self) -> bool {
        !matches!(self, Step::Compact | Step::Sync | Step::Reopen)
    }
}

const NAMES: [&str; 24] = [
    "alice",
    "bob",
    "carol",
    "dave",
    "eve",
    "frank",
    "grace",
    "heidi",
    "ivan",
    "judy",
    "mallory",
    "niaj",
    "olivia",
    "peggy",
    "rupert",
    "sybil",
    "trent",
    "victor",
    "walter",
    "news",
    "chat",
    "durov",
    "telegram",
    "botfather",
];

fn peer_id(rng: &mut Rng) -> i64 {
    let i = rng.below(90) as i64 + 1;
    match i % 3 {
        0 => i * 1_000_003,
        1 => -(i * 17),
        _ => -1_000_000_000_000 - i,
    }
}

fn key(rng: &mut Rng) -> Vec<u8> {
    let i = rng.below(48);
    if i.is_multiple_of(5) {
        vec![i as u8, 0, 0xff]
    } else {
        format!("k{i}").into_bytes()
    }
}

fn value(rng: &mut Rng, big: bool) -> Vec<u8> {
    let len = match rng.below(100) {
        0..70 => rng.below(100),
        70..96 => 100 + rng.below(1400),
        96..99 if big => 3000 + rng.below(6000),
        _ if big && rng.pct(50) => 17_000 + rng.below(4000),
        _ => rng.below(50),
    } as usize;
    let b = rng.next_u64() as u8;
    (0..len).map(|i| b.wrapping_add(i as u8)).collect()
}

fn random_peer(rng: &mut Rng) -> PeerRecord {
    let account = if rng.pct(70) { 0 } else { *rng.pick(&ACCOUNTS) };
    let n = match rng.below(10) {
        0..4 => 0,
        4..8 => 1,
        8 => 2,
        _ => 3,
    };
    let mut usernames: Vec<String> = Vec::new();
    for _ in 0..n {
        let mut u = rng.pick(&NAMES).to_string();
        if rng.pct(30) {
            u = u.to_ascii_uppercase();
        }
        if !usernames.iter().any(|x| x.eq_ignore_ascii_case(&u)) {
            usernames.push(u);
        }
    }
    let hash = rng.next_u64() as i64;
    let (access_hash, min) = match rng.below(10) {
        0 => (None, false),
        1 => (Some(hash), true),
        2 => (None, true),
        _ => (Some(hash), false),
    };
    PeerRecord {
        account,
        peer_id: peer_id(rng),
        access_hash,
        min,
        primary: !usernames.is_empty() && rng.pct(70),
        usernames,
        phone: rng.pct(20).then(|| format!("+{}", 100 + rng.below(12))),
        tail: (0..rng.below(40)).map(|i| i as u8 ^ 0x5a).collect(),
    }
}

/// The next step. `durable_batches` allows `Batch::durable` steps.
pub fn next_step(rng: &mut Rng, durable_batches: bool, big_values: bool) -> Step {
    match rng.below(100) {
        0..28 => Step::Put(
            rng.pick(&BUCKETS).to_string(),
            key(rng),
            value(rng, big_values),
        ),
        28..38 => Step::Delete(rng.pick(&BUCKETS).to_string(), key(rng)),
        38..53 => {
            let n = 2 + rng.below(7);
            let ops = (0..n)
                .map(|_| {
                    let b = rng.pick(&BUCKETS).to_string();
                    let k = key(rng);
                    let v = (!rng.pct(25)).then(|| value(rng, false));
                    (b, k, v)
                })
                .collect();
            Step::Batch(ops, durable_batches && rng.pct(15))
        }
        53..80 => {
            let n = 1 + rng.below(6);
            Step::Peers((0..n).map(|_| random_peer(rng)).collect())
        }
        80..88 => Step::DeletePeer(
            if rng.pct(80) { 0 } else { *rng.pick(&ACCOUNTS) },
            peer_id(rng),
        ),
        88..92 => Step::Compact,
        92..98 => Step::Sync,
        _ => Step::Reopen,
    }
}

/// Applies a step to the model.
pub fn apply_model(m: &mut Model, step: &Step) {
    match step {
        Step::Put(b, k, v) => {
            m.raw.insert((b.clone(), k.clone()), v.clone());
        }
        Step::Delete(b, k) => {
            m.raw.remove(&(b.clone(), k.clone()));
        }
        Step::Batch(ops, _) => {
            for (b, k, v) in ops {
                match v {
                    Some(v) => m.raw.insert((b.clone(), k.clone()), v.clone()),
                    None => m.raw.remove(&(b.clone(), k.clone())),
                };
            }
        }
        Step::Peers(recs) => m.put_peers(recs),
        Step::DeletePeer(acc, id) => {
            m.peers.remove(&(*acc, *id));
        }
        Step::Compact | Step::Sync | Step::Reopen => {}
    }
}

/// Runs a step on the store (`Reopen` is the caller's job).
pub fn apply_store(store: &Store, step: &Step) -> peerlog::Result<()> {
    match step {
        Step::Put(b, k, v) => store.bucket(b)?.put(k, v),
        Step::Delete(b, k) => store.bucket(b)?.delete(k).map(drop),
        Step::Batch(ops, durable) => {
            let mut batch: Batch = store.batch();
            for (b, k, v) in ops {
                match v {
                    Some(v) => batch.put(b, k, v)?,
                    None => batch.delete(b, k)?,
                };
            }
            if *durable {
                batch.durable();
            }
            batch.commit()
        }
        Step::Peers(recs) => store.put_peer_records(recs.clone()),
        Step::DeletePeer(acc, id) => store.delete_peer_record(*acc, *id).map(drop),
        Step::Compact => store.compact(),
        Step::Sync => store.sync(),
        Step::Reopen => Ok(()),
    }
}
