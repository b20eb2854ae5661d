#![allow(dead_code)]
//! Shared helpers for the engine tests.

use peerlog::io::MemFile;
use peerlog::{Durability, Options, PeerRecord, Store};
use std::sync::Arc;

pub fn rec(account: u32, id: i64, hash: i64, names: &[&str]) -> PeerRecord {
    PeerRecord {
        account,
        peer_id: id,
        access_hash: Some(hash),
        usernames: names.iter().map(|s| s.to_string()).collect(),
        primary: !names.is_empty(),
        tail: format!("tail-{id}").into_bytes(),
        ..Default::default()
    }
}

pub fn small_opts(d: Durability) -> Options {
    Options {
        durability: d,
        log_size: 64 << 10,
        peer_fold_min: 64,
        ..Options::default()
    }
}

pub fn mem_store(opts: Options) -> (MemFile, Store) {
    let f = MemFile::new();
    let s = Store::open_backend(Arc::new(f.clone()), opts).unwrap();
    (f, s)
}

pub fn reopen_image(img: Vec<u8>, opts: Options) -> peerlog::Result<Store> {
    Store::open_backend(Arc::new(MemFile::from_bytes(img)), opts)
}

pub mod model;
