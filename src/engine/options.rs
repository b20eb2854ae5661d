//! What a store is opened with: [`Options`] and [`Durability`].

use std::time::Duration;

/// When a commit is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fdatasync before every commit returns: survives power loss.
    Immediate,
    /// Group commit: commits within the window share one fdatasync, run by
    /// the first commit after the window or by a background thread.
    /// A power loss can lose at most the last window; a process crash loses
    /// nothing that returned.
    Batched(Duration),
    /// Never sync except at checkpoints and on [`crate::Store::sync`]; left to the
    /// OS. A process crash loses nothing that returned.
    None,
}

/// Settings for [`crate::Store::open_with`].
#[derive(Debug, Clone)]
pub struct Options {
    /// When commits become durable. Session and queue writes of the typed
    /// layer are always synced, whatever this says.
    pub durability: Durability,
    /// Create the file if it does not exist.
    pub create: bool,
    /// Open without writing anything (no recovery truncation, no repair).
    pub read_only: bool,
    /// Capacity of a fresh log region; it grows when one commit needs more.
    pub log_size: u64,
    /// A bucket's segment is rewritten when its dead bytes exceed both this
    /// fraction of the segment and [`crate::Options::compact_min_dead`].
    pub compact_dead_ratio: f64,
    /// See [`crate::Options::compact_dead_ratio`].
    pub compact_min_dead: u64,
    /// The peer table gets a new generation when this many peers changed
    /// since the last one (or half the table, if larger).
    pub peer_fold_min: usize,
    /// Maximum load factor of the hash indexes.
    pub index_load: f64,
    /// Most dedup keys kept per account: inserting into a full set drops
    /// the oldest key first (see [`crate::Storage::insert_dedup_key`]).
    /// Values below 1 count as 1.
    pub dedup_max_keys: usize,
    /// Dedup keys older than this are dropped, oldest first, at the next
    /// insert of the account. `None`: no age limit.
    pub dedup_max_age: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            durability: Durability::Batched(Duration::from_millis(10)),
            create: true,
            read_only: false,
            log_size: 512 << 10,
            compact_dead_ratio: 0.5,
            compact_min_dead: 64 << 10,
            peer_fold_min: 16_384,
            index_load: 0.75,
            dedup_max_keys: 100_000,
            dedup_max_age: None,
        }
    }
}
