//! What [`crate::Store::stats`] reports.

use crate::engine::store::Store;
use crate::engine::writer::Compaction;
use crate::format::NUM_BUCKETS;
use crate::format::bucket::{BUCKET_NAMES, DEDUP, PEERS, QUEUE};

/// Sizes of one bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketStats {
    /// Bucket name.
    pub name: &'static str,
    /// Live entries (peers, for the peer bucket).
    pub entries: u64,
    /// Bytes of live data.
    pub live_bytes: u64,
    /// Bytes of the bucket's segment superseded by later changes; a
    /// checkpoint rewrites the segment when this passes the thresholds in
    /// [`crate::Options`].
    pub dead_bytes: u64,
    /// Bytes of its current segment.
    pub segment_bytes: u64,
    /// Log bytes written for it since the last checkpoint.
    pub log_bytes: u64,
}

/// A snapshot of a store's size and health.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Stats {
    /// Bytes of the file.
    pub file_size: u64,
    /// Superblock generation (checkpoints so far, over the file's life).
    pub generation: u64,
    /// Per bucket.
    pub buckets: Vec<BucketStats>,
    /// Live peers, all accounts.
    pub peer_count: u64,
    /// Peers changed since the current index generation (held in memory).
    pub overlay_peers: usize,
    /// Load factor of the id index.
    pub id_index_load: f64,
    /// Load factor of the username index.
    pub username_index_load: f64,
    /// Bytes of torn log tail dropped when this handle opened.
    pub recovered_bytes: u64,
    /// The peer index failed its check on open and was rebuilt.
    pub index_rebuilt: bool,
    /// Copies of the newest superblock that this handle's open found
    /// damaged or torn and rewrote from the other, intact copy.
    pub superblock_copies_repaired: u64,
    /// [`crate::Store::repair`] calls by this handle that completed.
    pub repairs: u64,
    /// Peer records those repairs rebuilt from their index slots (access
    /// hash kept, names lost; [`crate::RepairReport::salvaged`] lists them).
    pub records_salvaged: u64,
    /// The last checkpoint or compaction of this handle.
    pub last_compaction: Option<Compaction>,
    /// Checkpoints run by this handle.
    pub checkpoints: u64,
    /// Time this handle spent in checkpoints.
    pub checkpoint_time: std::time::Duration,
    /// Commits written by this handle.
    pub commits: u64,
    /// fdatasync calls made for commits by this handle.
    pub syncs: u64,
    /// Log bytes in use.
    pub log_used: u64,
    /// Log region capacity.
    pub log_capacity: u64,
    /// Free bytes inside the file, reusable by later regions.
    pub free_bytes: u64,
    /// Live peers, all accounts, counted as a user counts them: peers
    /// changed since the last index generation (held in memory, not yet
    /// folded into the segment) included, deleted ones not. Equal to
    /// [`Stats::peer_count`].
    pub peers: u64,
    /// Dedup keys, all accounts (each is two rows of the dedup bucket).
    pub dedup_keys: u64,
    /// Durable queue items, all accounts (each is two rows of the queue
    /// bucket).
    pub queue_items: u64,
    /// Set when group or others may read the file (it holds auth keys):
    /// what is wrong and how to fix it. `None` for stores not opened by
    /// path.
    pub mode_warning: Option<String>,
}

/// Rows of a typed bucket whose tag (the byte after the 4-byte account
/// prefix, FORMAT.md "Typed keys and values") is `tag`.
pub(crate) fn count_tag<'a>(keys: impl Iterator<Item = &'a [u8]>, tag: u8) -> u64 {
    keys.filter(|k| k.len() > 4 && k[4] == tag).count() as u64
}

impl Store {
    /// Sizes, counts and health of the store.
    ///
    /// Never waits for the writer: the writer's numbers are a copy taken
    /// when it last released its lock (after a commit, a sync or a
    /// checkpoint), so a commit in progress, a slow fsync or a compaction
    /// does not delay this. Works inside a write closure too.
    pub fn stats(&self) -> Stats {
        let w = self.inner.view.lock().clone();
        let st = self.inner.state.read();
        let file_size = self.inner.file.len().unwrap_or(0);
        let table = &st.peers.table;
        let mut buckets = Vec::with_capacity(NUM_BUCKETS);
        for (b, name) in BUCKET_NAMES.iter().enumerate() {
            let (t_live, t_dead, t_log) = w.buckets[b];
            let seg = w.sb.segments[b];
            buckets.push(if b == PEERS as usize {
                let overlay: u64 = st
                    .peers
                    .overlay
                    .values()
                    .flatten()
                    .map(|r| crate::format::segment::peer_entry_len(r.len()) as u64)
                    .sum();
                BucketStats {
                    name,
                    entries: st.peers.live,
                    live_bytes: seg.len.saturating_sub(w.peer_seg_dead) + overlay,
                    dead_bytes: w.peer_seg_dead,
                    segment_bytes: seg.len,
                    log_bytes: 0,
                }
            } else {
                BucketStats {
                    name,
                    entries: st.maps[b].len() as u64,
                    live_bytes: t_live,
                    dead_bytes: t_dead,
                    segment_bytes: seg.len,
                    log_bytes: t_log,
                }
            });
        }
        let h = table.header;
        let load = |used: u64, slots: u64| {
            if slots == 0 {
                0.0
            } else {
                used as f64 / slots as f64
            }
        };
        let view = table.view();
        let names_used = view
            .name_slots(crate::format::index::NameKind::Username)
            .iter()
            .filter(|s| s.hash() != 0)
            .count() as u64;
        Stats {
            file_size,
            generation: w.sb.generation,
            buckets,
            peer_count: st.peers.live,
            overlay_peers: st.peers.overlay.len(),
            id_index_load: load(h.peer_count, h.id_slots),
            username_index_load: load(names_used, h.name_slots),
            recovered_bytes: w.stats.recovered_bytes,
            index_rebuilt: w.stats.index_rebuilt,
            superblock_copies_repaired: w.stats.superblock_copies_repaired,
            repairs: w.stats.repairs,
            records_salvaged: w.stats.records_salvaged,
            last_compaction: w.stats.last_compaction,
            checkpoints: w.stats.checkpoints,
            checkpoint_time: w.stats.checkpoint_time,
            commits: w.stats.commits,
            syncs: w.stats.syncs,
            log_used: w.log_pos - w.sb.log.offset,
            log_capacity: w.sb.log.len,
            free_bytes: w.free_bytes,
            peers: st.peers.live,
            dedup_keys: count_tag(st.maps[DEDUP as usize].keys().map(|k| &k[..]), b'k'),
            queue_items: count_tag(st.maps[QUEUE as usize].keys().map(|k| &k[..]), b'q'),
            mode_warning: self.inner.mode_warning.clone(),
        }
    }
}
