//! The public conformance suite on every backend the crate ships: the file
//! store (each run a new account of one shared file, so accounts must stay
//! isolated too), `Store::memory` accounts and `MemoryStorage`; plus the
//! persistence checks on files (each durability mode, with and without a
//! compaction at every reopen) and on a reopened in-memory image.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use peerlog::conformance::{self, Config};
use peerlog::io::MemFile;
use peerlog::{Durability, MemoryStorage, Options, Storage, Store};

mod common;

const MAX_KEYS: usize = 64;

fn opts() -> Options {
    Options {
        dedup_max_keys: MAX_KEYS,
        ..Options::default()
    }
}

fn config() -> Config {
    Config {
        dedup_max_keys: Some(MAX_KEYS),
    }
}

/// A factory handing out a new account of `store` on every call.
fn accounts_of(store: &Store) -> impl Fn() -> Box<dyn Storage> + '_ {
    let n = AtomicUsize::new(0);
    move || {
        let name = format!("account-{}", n.fetch_add(1, Ordering::Relaxed));
        Box::new(store.account(&name).unwrap())
    }
}

#[test]
fn file_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path().join("c.peerlog"), opts()).unwrap();
    conformance::run_with(&accounts_of(&store), &config());
    assert!(store.accounts().unwrap().len() > 8);
    let report = store.verify().unwrap();
    assert!(report.is_ok(), "{report:?}");
}

#[test]
fn store_memory_accounts() {
    let store = Store::memory();
    conformance::run(&accounts_of(&store));
}

#[test]
fn memory_backend() {
    conformance::run_with(
        &|| Box::new(MemoryStorage::with_options(opts()).unwrap()),
        &config(),
    );
    conformance::run(&|| Box::new(MemoryStorage::new()));
}

fn open_file(path: &Path, opts: &Options) -> Store {
    Store::open_with(path, opts.clone()).unwrap()
}

#[test]
fn file_store_persists() {
    for durability in [
        Durability::Batched(Duration::from_millis(10)),
        Durability::Immediate,
        Durability::None,
    ] {
        for compact in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("p.peerlog");
            let opts = Options {
                durability,
                ..opts()
            };
            conformance::run_persistent(&|| {
                let store = open_file(&path, &opts);
                if compact {
                    store.compact().unwrap();
                }
                Box::new(store.account("main").unwrap())
            });
            let report = peerlog::verify_file(&path).unwrap();
            assert!(report.is_ok(), "{durability:?} {compact}: {report:?}");
        }
    }
}

#[test]
fn memory_image_persists() {
    let file = MemFile::new();
    conformance::run_persistent(&|| {
        let store = Store::open_backend(Arc::new(file.clone()), opts()).unwrap();
        Box::new(store.account("main").unwrap())
    });
}
