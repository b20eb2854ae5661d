//! Shared benchmark support: deterministic data sets, lookup streams, run
//! configuration and iteration helpers. The reference engines live in
//! [`refs`].
//!
//! Included by every bench target with `mod common;` and by
//! `examples/lookup_instructions.rs` through `#[path]`; each includes only
//! what it uses, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod peerlog_ref;
pub mod refs;

use std::collections::HashSet;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Bencher;

/// Seed of every data set and stream used by the benchmarks.
pub const SEED: u64 = 0x7065_6572_6c6f_6721; // "peerlog!"

/// Length of every lookup stream (lookups cycle through it).
pub const STREAM_LEN: usize = 1 << 16;

/// Lookups per read transaction in the `<engine>_tx100` variants.
pub const TX_BATCH: usize = 100;

/// Peers per write transaction in the ingest benchmarks.
pub const INGEST_BATCH: usize = 100;

/// Peer kinds, as stored (`u8`).
pub const KIND_USER: u8 = 0;
/// Basic group chat.
pub const KIND_CHAT: u8 = 1;
/// Channel or supergroup.
pub const KIND_CHANNEL: u8 = 2;

/// Largest user id (Bot API id == bare id): 2^40 - 1.
pub const MAX_USER_ID: i64 = (1 << 40) - 1;
/// Largest bare id of a basic chat (Bot API id is `-bare`).
pub const MAX_CHAT_ID: i64 = 999_999_999_999;
/// Largest bare id of a channel (Bot API id is `-(1e12 + bare)`).
pub const MAX_CHANNEL_ID: i64 = 997_852_516_352;
/// Offset of channel ids in the Bot API id space.
pub const CHANNEL_OFFSET: i64 = 1_000_000_000_000;

// ---------------------------------------------------------------------------
// Run configuration
// ---------------------------------------------------------------------------

/// True when criterion runs in smoke mode (`cargo bench -- --test`): every
/// benchmark runs once.
pub fn smoke_mode() -> bool {
    std::env::args().any(|a| a == "--test")
}

/// True in criterion's `--quick` mode.
pub fn quick_mode() -> bool {
    std::env::args().any(|a| a == "--quick")
}

/// The peer counts to benchmark.
///
/// `PEERLOG_BENCH_N` (comma separated, `_` allowed: `100_000,1_000_000`)
/// wins; otherwise 100k and 1M, except in smoke mode (`--test`) where only
/// 100k runs so CI stays fast.
pub fn bench_ns() -> Vec<usize> {
    if let Ok(v) = std::env::var("PEERLOG_BENCH_N") {
        let ns: Vec<usize> = v
            .split(',')
            .map(|s| s.trim().replace('_', ""))
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse()
                    .unwrap_or_else(|_| panic!("PEERLOG_BENCH_N: bad number {s:?}"))
            })
            .collect();
        assert!(!ns.is_empty(), "PEERLOG_BENCH_N is empty");
        return ns;
    }
    if smoke_mode() {
        vec![100_000]
    } else {
        vec![100_000, 1_000_000]
    }
}

/// Warm-up and measurement times for the lookup groups (criterion's
/// defaults are 3 s + 5 s; lookups are stable enough for less).
pub fn lookup_times() -> (Duration, Duration) {
    (Duration::from_secs(1), Duration::from_secs(3))
}

// ---------------------------------------------------------------------------
// PRNG
// ---------------------------------------------------------------------------

/// splitmix64: tiny, fast, deterministic, good enough for test data.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (multiply-shift; the bias is irrelevant here).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo) as u64 + 1) as i64
    }

    /// True with probability `pct`%.
    pub fn percent(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

// ---------------------------------------------------------------------------
// Peers and data sets
// ---------------------------------------------------------------------------

/// One cached peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Bot API id (users > 0, chats -bare, channels -(1e12 + bare)).
    pub id: i64,
    /// Access hash, never 0.
    pub hash: i64,
    /// [`KIND_USER`], [`KIND_CHAT`] or [`KIND_CHANNEL`].
    pub kind: u8,
    /// Lowercase username, unique in the data set.
    pub username: Option<String>,
    /// Phone number (digits), users only, unique in the data set.
    pub phone: Option<String>,
}

/// A random valid-looking Bot API id of `kind`.
pub fn random_id(rng: &mut Rng, kind: u8) -> i64 {
    match kind {
        KIND_USER => rng.range(1, MAX_USER_ID),
        KIND_CHAT => -rng.range(1, MAX_CHAT_ID),
        _ => -(CHANNEL_OFFSET + rng.range(1, MAX_CHANNEL_ID)),
    }
}

/// Kind drawn with the data set's mix: 70% users, 25% channels, 5% chats.
pub fn random_kind(rng: &mut Rng) -> u8 {
    match rng.below(100) {
        0..70 => KIND_USER,
        70..95 => KIND_CHANNEL,
        _ => KIND_CHAT,
    }
}

/// Generates peers that are unique (id, username, phone) with respect to
/// everything it generated before, including the data set it came from.
#[derive(Clone, Debug)]
pub struct PeerGen {
    rng: Rng,
    ids: HashSet<i64>,
    usernames: HashSet<String>,
    phones: HashSet<String>,
}

impl PeerGen {
    fn new(seed: u64, capacity: usize) -> Self {
        PeerGen {
            rng: Rng::new(seed),
            ids: HashSet::with_capacity(capacity),
            usernames: HashSet::with_capacity(capacity / 2),
            phones: HashSet::with_capacity(capacity / 8),
        }
    }

    /// A new peer of `kind`: 40% get a username, 10% of users a phone.
    pub fn peer(&mut self, kind: u8) -> Peer {
        let id = loop {
            let id = random_id(&mut self.rng, kind);
            if self.ids.insert(id) {
                break id;
            }
        };
        let hash = loop {
            let h = self.rng.next_u64() as i64;
            if h != 0 {
                break h;
            }
        };
        let username = self.rng.percent(40).then(|| {
            loop {
                let len = 5 + self.rng.below(16) as usize;
                let name: String = (0..len)
                    .map(|_| char::from(b'a' + self.rng.below(26) as u8))
                    .collect();
                if self.usernames.insert(name.clone()) {
                    break name;
                }
            }
        });
        let phone = (kind == KIND_USER && self.rng.percent(10)).then(|| {
            loop {
                let mut phone = String::with_capacity(11);
                phone.push(char::from(b'1' + self.rng.below(9) as u8));
                for _ in 0..10 {
                    phone.push(char::from(b'0' + self.rng.below(10) as u8));
                }
                if self.phones.insert(phone.clone()) {
                    break phone;
                }
            }
        });
        Peer {
            id,
            hash,
            kind,
            username,
            phone,
        }
    }

    /// A new peer with a random kind (70/25/5).
    pub fn random_peer(&mut self) -> Peer {
        let kind = random_kind(&mut self.rng);
        self.peer(kind)
    }

    /// `k` new peers.
    pub fn batch(&mut self, k: usize) -> Vec<Peer> {
        (0..k).map(|_| self.random_peer()).collect()
    }
}

/// A deterministic peer set: `n` peers, 70% users, 25% channels, 5% basic
/// chats, in random order.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Number of peers.
    pub n: usize,
    /// Seed it was generated from.
    pub seed: u64,
    /// The peers, shuffled.
    pub peers: Vec<Peer>,
    pgen: PeerGen,
}

impl Dataset {
    /// Generates `n` peers from `seed`.
    pub fn generate(n: usize, seed: u64) -> Self {
        let users = n * 70 / 100;
        let channels = n * 25 / 100;
        let mut kinds = Vec::with_capacity(n);
        kinds.resize(users, KIND_USER);
        kinds.resize(users + channels, KIND_CHANNEL);
        kinds.resize(n, KIND_CHAT);
        let mut pgen = PeerGen::new(seed, n);
        pgen.rng.shuffle(&mut kinds);
        let peers = kinds.into_iter().map(|k| pgen.peer(k)).collect();
        Dataset {
            n,
            seed,
            peers,
            pgen,
        }
    }

    /// A generator of peers that are all absent from this data set (and
    /// unique among themselves), for ingest benchmarks.
    pub fn fresh_peers(&self, seed: u64) -> PeerGen {
        let mut pgen = self.pgen.clone();
        pgen.rng = Rng::new(seed);
        pgen
    }

    /// Whether `id` is in the data set.
    pub fn contains_id(&self, id: i64) -> bool {
        self.pgen.ids.contains(&id)
    }

    /// Valid-looking ids (same kind mix) that are not in the data set.
    pub fn absent_ids(&self, len: usize, seed: u64) -> Vec<i64> {
        let mut rng = Rng::new(seed);
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let kind = random_kind(&mut rng);
            let id = random_id(&mut rng, kind);
            if !self.pgen.ids.contains(&id) {
                out.push(id);
            }
        }
        out
    }

    /// The lookup streams, [`STREAM_LEN`] entries each.
    pub fn streams(&self) -> Streams {
        let n = self.peers.len() as u64;
        let mut rng = Rng::new(self.seed ^ 0x5354_5245_414d_5331);
        let uniform = (0..STREAM_LEN)
            .map(|_| self.peers[rng.below(n) as usize].id)
            .collect();
        // 90% of the lookups hit the first 1% of the (shuffled) peers.
        let hot = (n / 100).max(1);
        let skewed = (0..STREAM_LEN)
            .map(|_| {
                let i = if rng.percent(90) || hot == n {
                    rng.below(hot)
                } else {
                    hot + rng.below(n - hot)
                };
                self.peers[i as usize].id
            })
            .collect();
        let absent = self.absent_ids(STREAM_LEN, self.seed ^ 0x4142_5345_4e54_2121);
        let named: Vec<&str> = self
            .peers
            .iter()
            .filter_map(|p| p.username.as_deref())
            .collect();
        let usernames = (0..STREAM_LEN)
            .map(|_| named[rng.below(named.len() as u64) as usize].to_owned())
            .collect();
        let phoned: Vec<&str> = self
            .peers
            .iter()
            .filter_map(|p| p.phone.as_deref())
            .collect();
        let phones = (0..STREAM_LEN)
            .map(|_| phoned[rng.below(phoned.len() as u64) as usize].to_owned())
            .collect();
        Streams {
            uniform,
            skewed,
            absent,
            usernames,
            phones,
        }
    }
}

/// Lookup streams over a [`Dataset`].
#[derive(Clone, Debug)]
pub struct Streams {
    /// Ids of existing peers, uniformly drawn.
    pub uniform: Vec<i64>,
    /// Ids of existing peers, 90% of them drawn from 1% of the peers.
    pub skewed: Vec<i64>,
    /// Valid-looking ids that are not in the data set.
    pub absent: Vec<i64>,
    /// Existing usernames, uniformly drawn.
    pub usernames: Vec<String>,
    /// Existing phone numbers, uniformly drawn.
    pub phones: Vec<String>,
}

// ---------------------------------------------------------------------------
// Value encoding shared by the key-value references (LMDB, redb)
// ---------------------------------------------------------------------------

/// Encodes a peer record: `hash: i64 LE | kind: u8 | ulen: u8 | username | phone`.
pub fn encode_value(p: &Peer, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&p.hash.to_le_bytes());
    out.push(p.kind);
    let u = p.username.as_deref().unwrap_or("");
    out.push(u.len() as u8);
    out.extend_from_slice(u.as_bytes());
    out.extend_from_slice(p.phone.as_deref().unwrap_or("").as_bytes());
}

/// `(hash, kind)` of an encoded record.
#[inline]
pub fn decode_head(v: &[u8]) -> (i64, u8) {
    let mut h = [0u8; 8];
    h.copy_from_slice(&v[..8]);
    (i64::from_le_bytes(h), v[8])
}

/// `(username, phone)` of an encoded record (empty when absent).
pub fn decode_names(v: &[u8]) -> (&[u8], &[u8]) {
    let ulen = usize::from(v[9]);
    (&v[10..10 + ulen], &v[10 + ulen..])
}

// ---------------------------------------------------------------------------
// Iteration helpers
// ---------------------------------------------------------------------------

/// One iteration = one call of `f` on the next stream element (cycling).
pub fn iter_cycle<T, R>(b: &mut Bencher<'_>, stream: &[T], mut f: impl FnMut(&T) -> R) {
    let mut i = 0;
    b.iter(|| {
        let x = &stream[i];
        i += 1;
        if i == stream.len() {
            i = 0;
        }
        f(black_box(x))
    });
}

/// One iteration = one call of `get` on the next stream element, with a
/// read transaction from `begin` shared by [`TX_BATCH`] consecutive
/// iterations (its begin/end cost is included, amortised). Criterion's
/// estimate is thus per lookup, like [`iter_cycle`].
pub fn iter_cycle_tx<T, X, R>(
    b: &mut Bencher<'_>,
    stream: &[T],
    mut begin: impl FnMut() -> X,
    mut get: impl FnMut(&X, &T) -> R,
) {
    let mut i = 0;
    b.iter_custom(|iters| {
        let start = Instant::now();
        let mut left = iters;
        while left > 0 {
            let k = left.min(TX_BATCH as u64);
            let txn = begin();
            for _ in 0..k {
                let x = &stream[i];
                i += 1;
                if i == stream.len() {
                    i = 0;
                }
                black_box(get(&txn, black_box(x)));
            }
            drop(txn);
            left -= k;
        }
        start.elapsed()
    });
}
