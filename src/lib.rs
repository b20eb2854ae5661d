//! peerlog: an embedded single-file storage engine for Telegram clients.
//!
//! One file holds sessions, the peer cache (access hashes by peer id and by
//! username, through mapped hash indexes), update state, dedup keys, a
//! durable queue and raw buckets. See FORMAT.md for the bytes on disk.
#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod account;
mod backup;
pub mod bucket;
pub mod conformance;
mod engine;
mod error;
#[cfg(feature = "ferogram")]
pub mod ferogram;
/// The on-disk format, one module per structure. Public for the fuzz
/// targets and the damage tests only: hidden from the docs and not part of
/// the stable API (FORMAT.md is the spec).
#[doc(hidden)]
pub mod format;
#[cfg(feature = "grammers")]
pub mod grammers;
#[cfg(any(feature = "grammers", feature = "migrate"))]
mod grammers_meta;
mod inspect;
#[cfg(feature = "migrate")]
pub mod migrate;
mod peers;
pub mod pool;
#[cfg(feature = "postgres")]
pub mod postgres;
mod storage;
mod sys;

pub use account::{Account, MemoryStorage, Transaction};
pub use backup::BackupReport;
pub use bucket::{Batch, Bucket};
pub use engine::options::{Durability, Options};
pub use engine::stats::{BucketStats, Stats};
pub use engine::store::Store;
pub use engine::syncer::{Durable, Synced};
pub use engine::verify::{Problem, RepairReport, VerifyReport, verify_file};
pub use engine::writer::Compaction;
pub use error::{Error, Result};
pub use format::bucket::{BUCKET_NAMES, MAX_COMMIT_LEN, MAX_KEY_LEN, MAX_VALUE_LEN};
pub use format::codec;
#[doc(hidden)]
pub use format::peer_record::PeerRecord;
pub use pool::{AsPoolKey, MAX_POOL_NAME_LEN, Pool, PoolHandle, PoolKey, PoolOptions, PoolStats};
pub use storage::Storage;
pub use sys::io;
mod session;
mod types;

pub use session::*;
pub use types::*;
