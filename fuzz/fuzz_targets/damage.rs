//! (f) Bit rot in a synced store: the fuzzer's input is a list of at most
//! four damages, 5 bytes each: a file offset (u32 LE, taken modulo the file
//! length) and a byte XORed into the file there. The store is built once
//! from a fixed seed through the typed API (`tests/common/damage.rs`: a
//! session, peers with usernames and phones, update state, channel pts, raw
//! values, two compactions, commits after the last one, synced).
//!
//! The property of `tests/damage.rs`: `open` fails, or a read fails, or
//! `verify()` reports the damage, or every answer is exactly what was
//! synced. Panics only on a silently wrong answer (and on an undamaged
//! store that does not read back whole). A read may fail; it may not lie.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerlog::{Durability, Options};
use peerlog_fuzz::damage::{Depth, Outcome, Spec, Want, build, judge, opts};
use std::sync::OnceLock;

fn base() -> &'static (Vec<u8>, Want, Options) {
    static BASE: OnceLock<(Vec<u8>, Want, Options)> = OnceLock::new();
    BASE.get_or_init(|| {
        let spec = Spec {
            peers: 60,
            durability: Durability::Immediate,
            log_size: 8 << 10,
            seed: 0xDA_4A6E,
        };
        let (img, want) = build(&spec);
        (img, want, opts(&spec))
    })
}

fuzz_target!(|data: &[u8]| {
    let (img, want, opts) = base();
    let mut bytes = img.clone();
    let mut damaged = false;
    for d in data.chunks_exact(5).take(4) {
        let at = u32::from_le_bytes(d[..4].try_into().unwrap()) as usize % bytes.len();
        bytes[at] ^= d[4];
        damaged |= d[4] != 0;
    }
    damaged &= bytes != *img;
    match judge(bytes, opts, want, Depth::Full) {
        Outcome::Wrong(w) => panic!("silently wrong after damage {data:02x?}: {w}"),
        Outcome::Whole { .. } => {}
        other if !damaged => panic!("the undamaged store does not read back whole: {other:?}"),
        _ => {}
    }
});
