//! Damage to durable bytes: bit rot, a zeroed sector, a flipped superblock.
//!
//! FORMAT.md promises "Durable data does not change silently. Bit rot is
//! detected". Power loss (`power_loss.rs`) tears only what was never
//! synced; here the damage hits bytes that *were* synced, so the engine
//! may not answer from an older generation, drop a commit as a torn tail,
//! or serve a flipped access hash as if it were the stored one.
//!
//! Every test builds a store through the typed API (`common/damage.rs`:
//! a session, peers with usernames and phones, update state, channel pts,
//! raw values, two `compact()`s with commits between them, and commits
//! after the last one), syncs and closes it, and keeps what it wrote in a
//! model. Then it damages copies of the file and opens each one in memory.
//! The property, for every damaged image:
//!
//! > `open` returns a typed error, or a read returns an error, or
//! > `verify()` reports the damage, or every answer is exactly what was
//! > synced.
//!
//! "Every answer": the session (auth key, dc), the update state, every
//! channel pts, `peer_count`, every access hash by id, every peer read
//! whole, every username resolving to its peer, every phone, the raw
//! values; a saved peer is never absent, an absent id never appears, a
//! name no one holds never resolves. Each image is counted as *read back
//! whole*, *refused* (at open, at a read, or by `verify()`), or *silently
//! wrong*; a test fails if any image is silently wrong (or panics), and
//! prints the counts, and for wrong ones the region of the file the damage
//! hit and the first few wrong answers.
//!
//! * `superblock_slots_every_byte`: two bit flips of every byte of every
//!   superblock copy, and each copy zeroed, per durability mode.
//! * `single_bit_flips_seeded`: seeded single-bit flips anywhere in a
//!   6,500-peer store.
//! * `compaction_after_segment_damage`: a flipped access hash (in the peer
//!   segment, in the index, anywhere it is stored), then `compact()`: the
//!   damage must not become the truth.
//! * `zeroed_sectors`: every 512-byte sector of a 500-peer store zeroed
//!   in turn.
//!
//! Only the public API is used to damage and judge. The peerlog format
//! module is used for one thing: naming the region a damaged byte lies in,
//! in the printed report.

#[path = "common/damage.rs"]
mod damage;

use damage::{Depth, Outcome, Refusal, Spec, Want, build, judge, judge_store, opts};
use peerlog::format::superblock::{self, Superblock};
use peerlog::io::MemFile;
use peerlog::{BUCKET_NAMES, Durability, Options, Store};
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Counts per outcome, with the regions and first examples of wrong ones.
#[derive(Default)]
struct Tally {
    images: usize,
    whole: usize,
    whole_flagged: usize,
    at_open: usize,
    at_read: usize,
    by_verify: usize,
    wrong: usize,
    panicked: usize,
    wrong_by_region: BTreeMap<String, usize>,
    images_by_region: BTreeMap<String, usize>,
    examples: Vec<String>,
}

impl Tally {
    fn add(&mut self, case: &str, region: &str, o: Result<Outcome, String>) {
        self.images += 1;
        // Strict: wrong answers that only `verify()` noticed count as
        // silently wrong (a client does not run verify before each read).
        let o = match o {
            Ok(Outcome::Refused(Refusal::Verify(w))) if strict() => {
                Ok(Outcome::Wrong(format!("{w} (only verify noticed)")))
            }
            o => o,
        };
        *self.images_by_region.entry(region.into()).or_default() += 1;
        match o {
            Ok(Outcome::Whole { flagged }) => {
                self.whole += 1;
                self.whole_flagged += flagged as usize;
            }
            Ok(Outcome::Refused(Refusal::Open(_))) => self.at_open += 1,
            Ok(Outcome::Refused(Refusal::Read(_))) => self.at_read += 1,
            Ok(Outcome::Refused(Refusal::Verify(_))) => self.by_verify += 1,
            Ok(Outcome::Wrong(w)) => {
                self.wrong += 1;
                let n = self.wrong_by_region.entry(region.into()).or_default();
                *n += 1;
                if *n <= 2 && self.examples.len() < 10 {
                    self.examples.push(format!("{case} ({region}): {w}"));
                }
            }
            Err(p) => {
                self.panicked += 1;
                if self.examples.len() < 8 {
                    self.examples.push(format!("{case} ({region}): PANIC {p}"));
                }
            }
        }
    }

    fn refused(&self) -> usize {
        self.at_open + self.at_read + self.by_verify
    }

    fn report(&self, name: &str, took: Duration) -> String {
        let mut s = format!(
            "{name}: {} images in {:.1} s: {} read back whole ({} of them flagged by verify), \
             {} refused ({} at open, {} at a read, {} by verify), {} silently wrong, {} panics",
            self.images,
            took.as_secs_f64(),
            self.whole,
            self.whole_flagged,
            self.refused(),
            self.at_open,
            self.at_read,
            self.by_verify,
            self.wrong,
            self.panicked,
        );
        if self.wrong > 0 {
            s += "\n  silently wrong by region (wrong / images):";
            for (r, n) in &self.wrong_by_region {
                s += &format!(" {r} {n}/{};", self.images_by_region[r]);
            }
            for e in &self.examples {
                s += &format!("\n  e.g. {e}");
            }
        }
        s
    }

    fn print_and_check(&self, name: &str, took: Duration) {
        let r = self.report(name, took);
        println!("{r}");
        assert!(self.wrong == 0 && self.panicked == 0, "{r}");
    }
}

/// `PEERLOG_DAMAGE_STRICT=1`: wrong answers count as silently wrong even
/// when `verify()` reports the damage.
fn strict() -> bool {
    std::env::var("PEERLOG_DAMAGE_STRICT").is_ok_and(|v| v == "1")
}

/// A case, the region it damaged, and what came of it.
type Judged = (String, String, Result<Outcome, String>);

/// `judge`, with a panic caught and returned as its message.
fn judged(img: Vec<u8>, o: &Options, want: &Want, depth: Depth) -> Result<Outcome, String> {
    catch_unwind(AssertUnwindSafe(|| judge(img, o, want, depth))).map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

/// Names the region of the pristine file each byte lies in, from its
/// newest valid superblock (best effort: "?" if it does not decode).
struct Regions {
    spans: Vec<(u64, u64, String)>,
}

impl Regions {
    fn of(img: &[u8], log_used: u64) -> Regions {
        let mut spans = Vec::new();
        let best = damage::superblock_slots(img)
            .into_iter()
            .filter_map(|at| {
                let b: &[u8; superblock::SIZE] =
                    img.get(at..at + superblock::SIZE)?.try_into().ok()?;
                let sb = Superblock::decode(b).ok()?;
                spans.push((
                    at as u64,
                    superblock::SIZE as u64,
                    format!("superblock@{at}"),
                ));
                Some(sb)
            })
            .max_by_key(|sb| sb.generation);
        if let Some(sb) = best {
            let log = sb.log;
            spans.push((log.offset, log_used.min(log.len), "log (commits)".into()));
            spans.push((
                log.offset + log_used.min(log.len),
                log.len - log_used.min(log.len),
                "log (zero tail)".into(),
            ));
            if sb.index.len > 0 {
                spans.push((sb.index.offset, sb.index.len, "peer index".into()));
            }
            for (b, seg) in sb.segments.iter().enumerate() {
                if seg.len > 0 {
                    let name = if b == 2 {
                        "peer segment".to_string()
                    } else {
                        format!("segment {}", BUCKET_NAMES[b])
                    };
                    spans.push((seg.offset, seg.len, name));
                }
            }
        }
        Regions { spans }
    }

    fn name(&self, at: u64) -> String {
        if let Some((_, _, n)) = self
            .spans
            .iter()
            .find(|(o, l, _)| (*o..o + l).contains(&at))
        {
            return n.clone();
        }
        if at < 8192 {
            "header (zero/owner)".into()
        } else {
            "free or padding".into()
        }
    }
}

/// Builds the store of `spec`, checks that the undamaged image reads back
/// whole and verifies clean, and returns it with its model and regions.
fn pristine(spec: &Spec) -> (Vec<u8>, Want, Regions) {
    let (img, want) = build(spec);
    let o = opts(spec);
    let store = Store::open_backend(Arc::new(MemFile::from_bytes(img.clone())), o.clone())
        .expect("the undamaged store opens");
    let log_used = store.stats().log_used;
    assert_eq!(
        judge_store(&store, &want, Depth::Full),
        Outcome::Whole { flagged: false },
        "the undamaged store must read back whole and verify clean"
    );
    assert!(
        log_used > 0,
        "commits after the last checkpoint are in the log"
    );
    assert!(store.stats().generation >= 3, "two checkpoints at least");
    drop(store);
    let regions = Regions::of(&img, log_used);
    (img, want, regions)
}

fn flip(img: &[u8], at: usize, mask: u8) -> Vec<u8> {
    let mut v = img.to_vec();
    v[at] ^= mask;
    v
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Every byte of every superblock copy, bit 0 and bit 7 flipped separately,
/// and each copy zeroed whole, in each durability mode. On format v1 the
/// damaged newest slot makes open fall back to the older generation.
#[test]
fn superblock_slots_every_byte() {
    let mut failed = Vec::new();
    for (mode, durability) in [
        ("Immediate", Durability::Immediate),
        ("Batched", Durability::Batched(Duration::from_millis(10))),
        ("None", Durability::None),
    ] {
        let t = Instant::now();
        let spec = Spec {
            peers: 300,
            durability,
            log_size: 64 << 10,
            seed: 15,
        };
        let (img, want, regions) = pristine(&spec);
        let o = opts(&spec);
        let slots = damage::superblock_slots(&img);
        assert!(slots.len() >= 2, "superblock copies at {slots:?}");
        let mut tally = Tally::default();
        for &slot in &slots {
            for at in slot..slot + 512 {
                for bit in [0, 7] {
                    let out = judged(flip(&img, at, 1 << bit), &o, &want, Depth::Full);
                    tally.add(
                        &format!("byte {at} bit {bit}"),
                        &regions.name(at as u64),
                        out,
                    );
                }
            }
            let mut z = img.clone();
            z[slot..slot + 512].fill(0);
            let out = judged(z, &o, &want, Depth::Full);
            tally.add(
                &format!("slot {slot} zeroed"),
                &regions.name(slot as u64),
                out,
            );
        }
        let r = tally.report(&format!("superblock_slots_every_byte/{mode}"), t.elapsed());
        println!("{r}");
        if tally.wrong + tally.panicked > 0 {
            failed.push(r);
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// Seeded single-bit flips, uniform over a 6,500-peer store, each on a
/// fresh copy. `PEERLOG_FLIPS` (default 3000) and `PEERLOG_FLIP_SEED`
/// (default 1). Every access hash, username and phone is checked on each
/// image, every 8th peer is read whole, and `verify()` runs when an answer
/// is wrong.
#[test]
fn single_bit_flips_seeded() {
    let t = Instant::now();
    let spec = Spec {
        peers: 6_500,
        durability: Durability::Batched(Duration::from_millis(10)),
        log_size: 64 << 10,
        seed: 6_500,
    };
    let (img, want, regions) = pristine(&spec);
    let o = opts(&spec);
    let flips = env_u64("PEERLOG_FLIPS").unwrap_or(3_000) as usize;
    let seed = env_u64("PEERLOG_FLIP_SEED").unwrap_or(1);
    let mut rng = damage::SplitMix(seed);
    let cases: Vec<(usize, u8)> = (0..flips)
        .map(|_| {
            let at = rng.below(img.len() as u64) as usize;
            (at, 1u8 << rng.below(8))
        })
        .collect();
    let built = t.elapsed();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(2);
    let parts: Vec<Vec<Judged>> = std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .chunks(cases.len().div_ceil(threads).max(1))
            .map(|chunk| {
                let (img, want, o, regions) = (&img, &want, &o, &regions);
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|&(at, mask)| {
                            let out = judged(flip(img, at, mask), o, want, Depth::Sampled(8));
                            (
                                format!("byte {at} ^ {mask:#04x}"),
                                regions.name(at as u64),
                                out,
                            )
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut tally = Tally::default();
    for (case, region, out) in parts.into_iter().flatten() {
        tally.add(&case, &region, out);
    }
    println!(
        "single_bit_flips_seeded: file {} bytes, {} peers, seed {seed}, store built in {:.1} s",
        img.len(),
        want.peers.len(),
        built.as_secs_f64()
    );
    tally.print_and_check("single_bit_flips_seeded", t.elapsed());
}

/// A flipped bit in one stored copy of a distinctive access hash (the peer
/// segment's record, the index slot, any other place it is found), then
/// `compact()`. Nothing may be silently wrong before the compaction, right
/// after it, or after a reopen: `compact()` must fail (or repair from an
/// intact copy), or reads fail, or `verify()` reports it, or every answer
/// is right.
#[test]
fn compaction_after_segment_damage() {
    let t = Instant::now();
    let spec = Spec {
        peers: 2_000,
        durability: Durability::Immediate,
        log_size: 64 << 10,
        seed: 3,
    };
    let (img, want, regions) = pristine(&spec);
    let o = opts(&spec);
    // A peer whose hash is stored in the peer segment (preceded there by
    // its id, FORMAT.md "Peer record"), and found elsewhere too.
    let occurrences = |h: i64| -> Vec<usize> {
        let pat = h.to_le_bytes();
        img.windows(8)
            .enumerate()
            .filter(|(_, w)| *w == pat)
            .map(|(i, _)| i)
            .collect()
    };
    let (peer, found) = want
        .peers
        .values()
        .filter_map(|p| Some((p, occurrences(p.access_hash?))))
        .find(|(p, at)| {
            at.len() >= 2
                && at.iter().any(|&i| {
                    i >= 8
                        && img[i - 8..i] == p.id.bot_api().to_le_bytes()
                        && regions.name(i as u64) == "peer segment"
                })
        })
        .expect("a peer whose hash is in the peer segment and elsewhere");
    println!(
        "compaction_after_segment_damage: peer {} (hash {:#x}) stored at {:?}",
        peer.id.bot_api(),
        peer.access_hash.unwrap(),
        found
            .iter()
            .map(|&i| format!("{i} ({})", regions.name(i as u64)))
            .collect::<Vec<_>>()
    );
    let mut tally = Tally::default();
    let mut lines = Vec::new();
    for &at in &found {
        let region = regions.name(at as u64);
        // Bit 4 of the hash's second byte: another valid-looking hash.
        let file = MemFile::from_bytes(flip(&img, at + 1, 0x10));
        let mut stages = Vec::new();
        let store = match Store::open_backend(Arc::new(file.clone()), o.clone()) {
            Err(e) => {
                stages.push(("open", Outcome::Refused(Refusal::Open(e.to_string()))));
                None
            }
            Ok(s) => Some(s),
        };
        if let Some(store) = store {
            stages.push(("before compact", judge_store(&store, &want, Depth::Full)));
            match store.compact() {
                Err(e) => stages.push((
                    "compact",
                    Outcome::Refused(Refusal::Read(format!("compact: {e}"))),
                )),
                Ok(()) => {
                    stages.push(("after compact", judge_store(&store, &want, Depth::Full)));
                    drop(store);
                    stages.push((
                        "reopened after compact",
                        judge(file.live(), &o, &want, Depth::Full),
                    ));
                }
            }
        }
        for (stage, out) in stages {
            lines.push(format!("  byte {at} ({region}), {stage}: {out:?}"));
            tally.add(&format!("hash byte {at}, {stage}"), &region, Ok(out));
        }
    }
    println!("{}", lines.join("\n"));
    tally.print_and_check("compaction_after_segment_damage", t.elapsed());
}

/// Every 512-byte sector of a 500-peer store zeroed in turn (sectors that
/// are zero already are skipped).
#[test]
fn zeroed_sectors() {
    let t = Instant::now();
    let spec = Spec {
        peers: 500,
        durability: Durability::Batched(Duration::from_millis(10)),
        log_size: 16 << 10,
        seed: 512,
    };
    let (img, want, regions) = pristine(&spec);
    let o = opts(&spec);
    let mut tally = Tally::default();
    let mut skipped = 0;
    for at in (0..img.len()).step_by(512) {
        let end = (at + 512).min(img.len());
        if img[at..end].iter().all(|&b| b == 0) {
            skipped += 1;
            continue;
        }
        let mut z = img.clone();
        z[at..end].fill(0);
        let out = judged(z, &o, &want, Depth::Full);
        tally.add(&format!("sector at {at}"), &regions.name(at as u64), out);
    }
    println!(
        "zeroed_sectors: file {} bytes, {skipped} sectors already zero",
        img.len()
    );
    tally.print_and_check("zeroed_sectors", t.elapsed());
}
