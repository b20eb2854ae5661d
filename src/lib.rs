//! peerlog: an embedded single-file storage engine for Telegram clients.
//!
//! One file holds sessions, the peer cache (access hashes by peer id and by
//! username, through mapped hash indexes), update state, dedup keys, a
//! durable queue and raw buckets. See FORMAT.md for the bytes on disk.
#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod account;
pub mod bucket;
mod bytes;
pub mod codec;
pub mod conformance;
mod error;
pub mod format;
#[cfg(feature = "grammers")]
pub mod grammers;
pub mod io;
mod logscan;
mod lookup;
mod mmap;
mod peers;
pub mod pool;
#[cfg(feature = "postgres")]
pub mod postgres;
mod rcu;
mod recovery;
mod state;
mod stats;
mod storage;
mod store;
mod verify;

pub use account::{Account, MemoryStorage, Transaction};
pub use bucket::{Batch, Bucket};
pub use error::{Error, Result};
pub use format::peer_record::PeerRecord;
pub use mmap::Region;
pub use pool::{AsPoolKey, MAX_POOL_NAME_LEN, Pool, PoolHandle, PoolKey, PoolOptions, PoolStats};
pub use stats::{BucketStats, Stats};
pub use storage::Storage;
pub use store::{
    BUCKET_NAMES, Compaction, Durability, MAX_COMMIT_LEN, MAX_KEY_LEN, MAX_VALUE_LEN, Options,
    Store,
};
pub use verify::{Problem, RepairReport, VerifyReport, verify_file};
pub mod session;
pub mod types;

pub use session::*;
pub use types::*;
