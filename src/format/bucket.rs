//! The eight buckets of the format and the limits on what they hold (see
//! FORMAT.md, "Buckets"). The checks answer [`TooLarge`], a value of this
//! module: `format/` imports nothing from the layers above it, and
//! `crate::Error` wraps it (`Error::TooLarge`).

use super::NUM_BUCKETS;

/// Bucket numbers of the format.
pub const META: u8 = 0;
/// The session and the per-DC auth keys.
pub const SESSION: u8 = 1;
/// The peer table (records in the log and the peer segment).
pub const PEERS: u8 = 2;
/// Update state and channel pts.
pub const STATE: u8 = 3;
/// Dedup keys and their insertion order.
pub const DEDUP: u8 = 4;
/// The durable update queue.
pub const QUEUE: u8 = 5;
/// Conversations.
pub const CONVERSATIONS: u8 = 6;
/// Raw buckets (`Store::bucket`).
pub const RAW: u8 = 7;
/// Bucket names, by number.
pub const BUCKET_NAMES: [&str; NUM_BUCKETS] = [
    "meta",
    "session",
    "peers",
    "state",
    "dedup",
    "queue",
    "conversations",
    "raw",
];

/// Largest key in a bucket.
pub const MAX_KEY_LEN: usize = 4096;
/// Largest value in a bucket.
pub const MAX_VALUE_LEN: usize = 64 << 20;
/// Largest commit (all its ops encoded).
pub const MAX_COMMIT_LEN: usize = 1 << 30;

/// Stored keys carry an internal prefix (bucket name, account) on top of
/// the caller's key.
const MAX_STORED_KEY: usize = MAX_KEY_LEN + 512;

/// A key or value over a limit of the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge {
    /// Which kind of input.
    pub what: &'static str,
    /// Its length.
    pub len: usize,
    /// The limit.
    pub max: usize,
}

/// A stored key within the limit.
pub fn check_key(key: &[u8]) -> Result<(), TooLarge> {
    if key.len() > MAX_STORED_KEY {
        return Err(TooLarge {
            what: "key",
            len: key.len(),
            max: MAX_KEY_LEN,
        });
    }
    Ok(())
}

/// A stored key and value within the limits.
pub fn check_put(key: &[u8], value: &[u8]) -> Result<(), TooLarge> {
    check_key(key)?;
    if value.len() > MAX_VALUE_LEN {
        return Err(TooLarge {
            what: "value",
            len: value.len(),
            max: MAX_VALUE_LEN,
        });
    }
    Ok(())
}
