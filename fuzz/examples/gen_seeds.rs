//! Recreates the checked-in seed stores and seed corpora:
//!
//! ```sh
//! cargo run --manifest-path fuzz/Cargo.toml --example gen_seeds
//! ```
//!
//! The generator avoids clock- and pid-dependent values, so the stores hold
//! the same data every time; their bytes can still differ between runs,
//! because a checkpoint carries changed keys into the new log in hash-map
//! order. Only regenerate when the format or the generator changed.

use peerlog::format::frame;
use peerlog::format::peer_record::PeerRecord;
use peerlog::format::superblock::{self, Superblock};
use peerlog::{AuthKey, Conversation, DcAuth, DurableUpdate, Session, UpdateState};
use peerlog_fuzz::seed_stores;
use std::fs;
use std::path::{Path, PathBuf};

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

/// The live superblock of a seed image.
fn live_superblock(img: &[u8]) -> Superblock {
    [0usize, 4096]
        .iter()
        .filter_map(|&at| {
            let slot: &[u8; superblock::SIZE] = img[at..at + superblock::SIZE].try_into().ok()?;
            Superblock::decode(slot).ok()
        })
        .max_by_key(|sb| sb.generation)
        .expect("a seed has a valid superblock")
}

fn region(img: &[u8], offset: u64, len: u64) -> &[u8] {
    &img[offset as usize..(offset + len) as usize]
}

/// A tiny deterministic generator for the model corpus.
fn lcg(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect()
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let stores = root.join("seeds/stores");
    let corpus = root.join("corpus");
    let seeds = seed_stores();

    // (b) the stores themselves, embedded by mutate_store.
    for (name, img) in &seeds {
        write(&stores, name, img);
    }

    // (a) open_bytes: each store (last byte: options, 0 = writable), an
    // empty file, and a bare header.
    let dir = corpus.join("open_bytes");
    for (name, img) in &seeds {
        let mut v = img.clone();
        v.push(0);
        write(&dir, name, &v);
    }
    write(&dir, "empty", &[0]);
    write(&dir, "header_only", &{
        let mut v = seeds[0].1[..8192].to_vec();
        v.push(1);
        v
    });

    // mutate_store: each seed unmodified (seed index, writable, no edits).
    let dir = corpus.join("mutate_store");
    for i in 0..seeds.len() as u8 {
        write(&dir, &format!("seed{i}"), &[i, 0]);
        write(&dir, &format!("seed{i}_ro"), &[i, 1]);
    }

    // (c) decoders: real structures cut out of the seeds, each behind its
    // selector byte.
    let dir = corpus.join("decoders");
    for (name, img) in &seeds {
        let stem = name.trim_end_matches(".plg");
        let sb = live_superblock(img);
        let log = region(img, sb.log.offset, sb.log.len);
        if let Ok(f) = frame::decode(log) {
            write(
                &dir,
                &format!("frame_{stem}"),
                &[&[0u8][..], &log[..f.len()]].concat(),
            );
            write(
                &dir,
                &format!("commit_{stem}"),
                &[&[1u8][..], f.payload].concat(),
            );
        }
        let slot = Superblock::slot_offset(sb.generation) as usize;
        write(
            &dir,
            &format!("superblock_{stem}"),
            &[&[2u8][..], &img[slot..slot + 512]].concat(),
        );
        if sb.index.len > 0 {
            let idx = region(img, sb.index.offset, sb.index.len);
            write(&dir, &format!("index_{stem}"), &[&[3u8][..], idx].concat());
        }
        for (b, s) in sb.segments.iter().enumerate() {
            if s.len > 0 && s.len < 4096 {
                let seg = region(img, s.offset, s.len);
                write(
                    &dir,
                    &format!("segment{b}_{stem}"),
                    &[&[5u8][..], seg].concat(),
                );
            }
        }
    }
    let rec = PeerRecord {
        account: 1,
        peer_id: -1_000_000_000_005,
        access_hash: Some(-7),
        min: false,
        primary: true,
        usernames: vec!["chan".into(), "Other".into()],
        phone: Some("15550100".into()),
        tail: vec![1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    };
    write(&dir, "peer_record", &[&[4u8][..], &rec.encode()].concat());
    let mut s = Session::new(2, false);
    s.auth_key = Some(AuthKey::new([3; 256]));
    s.user_id = Some(42);
    s.username = Some("me".into());
    let typed: [(u8, Vec<u8>); 6] = [
        (0, s.encode()),
        (
            1,
            DcAuth {
                dc_id: 4,
                auth_key: AuthKey::new([5; 256]),
                server_salt: 9,
                server_addr: None,
                port: 443,
            }
            .encode(),
        ),
        (
            2,
            UpdateState {
                pts: 1,
                qts: 2,
                date: 3,
                seq: 4,
            }
            .encode(),
        ),
        (
            3,
            peerlog::ChannelState {
                channel_id: 5,
                pts: 6,
            }
            .encode(),
        ),
        (
            4,
            DurableUpdate {
                id: "u1".into(),
                payload: vec![1, 2, 3],
                attempts: 2,
                last_error: Some("boom".into()),
                created_at: 10,
                updated_at: 11,
            }
            .encode(),
        ),
        (
            5,
            Conversation {
                chat_id: -5,
                user_id: 6,
                name: "signup".into(),
                step: "email".into(),
                data: vec![7; 4],
                created_at: 1,
                updated_at: 2,
            }
            .encode(),
        ),
    ];
    for (t, bytes) in typed {
        write(
            &dir,
            &format!("typed{t}"),
            &[&[6 + 8 * t][..], &bytes].concat(),
        );
    }

    // (d) session strings: one of each format as text (mode 3), and raw
    // layouts for the encoded modes.
    let dir = corpus.join("session_strings");
    let mut s = Session::new(2, false);
    s.auth_key = Some(AuthKey::new([0x5a; 256]));
    s.api_id = 12345;
    s.user_id = Some(777);
    let text = [
        ("telethon", s.to_telethon_string().unwrap()),
        ("pyrogram", s.to_pyrogram_string().unwrap()),
        ("gramjs", s.to_gramjs_string().unwrap()),
        ("telethon_v6", {
            let mut v6 = s.clone();
            v6.server_addr = Some("2001:67c:4e8:f002::a".parse().unwrap());
            v6.to_telethon_string().unwrap()
        }),
    ];
    for (name, t) in &text {
        write(&dir, name, &[&[3u8][..], t.as_bytes()].concat());
    }
    // Pyrogram's oldest layout: dc, test_mode, key, u32 user id, is_bot.
    let mut raw_pyro = vec![2u8, 0];
    raw_pyro.extend_from_slice(&[0x5a; 256]);
    raw_pyro.extend_from_slice(&777u32.to_be_bytes());
    raw_pyro.push(0);
    write(&dir, "pyrogram_263_raw", &[&[1u8][..], &raw_pyro].concat());

    // (e) model: pseudo-random operation sequences.
    let dir = corpus.join("model");
    for i in 0..8u64 {
        write(&dir, &format!("ops{i}"), &lcg(i, 64 + 64 * i as usize));
    }
    eprintln!("seeds written under {}", root.display());
}
