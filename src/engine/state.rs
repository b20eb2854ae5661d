//! The in-memory side of an open store: generic buckets as ordered maps
//! (with what the writer tracks of them to decide a checkpoint), and the
//! peer table ([`crate::peers::table::PeerState`]).

use crate::error::Result;
use crate::format::NUM_BUCKETS;
use crate::format::commit::Op;
use crate::format::segment;
use crate::peers::generation::PeerGen;
use crate::peers::table::PeerState;
use crate::sys::bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// What the writer tracks per generic bucket to decide compaction.
#[derive(Debug, Default, Clone)]
pub(crate) struct BucketTrack {
    /// Keys changed since the segment: their segment entry size (0 if the
    /// key was not in the segment).
    pub dirty: HashMap<Vec<u8>, u32>,
    /// Segment bytes superseded by later changes.
    pub seg_dead: u64,
    /// Bytes of live entries.
    pub live_bytes: u64,
    /// Log bytes written for this bucket since the last checkpoint.
    pub log_bytes: u64,
    /// What carrying `dirty` into a new log takes: each key's put (10 +
    /// key + value bytes) or, for a key gone from the segment, its delete
    /// (6 + key bytes). Kept up to date so a checkpoint need not look up
    /// every dirty key to decide between carrying and rewriting.
    pub carry_bytes: u64,
}

impl BucketTrack {
    /// First change to `key` since the segment: remember what the segment
    /// held. Returns whether `key` had changed before, and the size of its
    /// segment entry (0: none).
    fn touch(&mut self, map: &BTreeMap<Bytes, Bytes>, key: &[u8]) -> (bool, u32) {
        if let Some(&in_seg) = self.dirty.get(key) {
            return (true, in_seg);
        }
        let seg = map
            .get(key)
            .map_or(0, |v| segment::entry_len(key, v) as u32);
        self.seg_dead += seg as u64;
        self.dirty.insert(key.to_vec(), seg);
        (false, seg)
    }

    /// A change to a key of `key_len` bytes, from `old` to `new` (values;
    /// `None`: absent): keeps [`BucketTrack::carry_bytes`] in step.
    fn carry_change(
        &mut self,
        changed: (bool, u32),
        key_len: usize,
        old: Option<usize>,
        new: Option<usize>,
    ) {
        let (had, in_seg) = changed;
        let before = if had {
            carry_size(key_len, old, in_seg)
        } else {
            0
        };
        self.carry_bytes = self.carry_bytes - before + carry_size(key_len, new, in_seg);
    }
}

/// What carrying a changed key takes: its put (10 + key + value bytes), or
/// its delete (6 + key bytes) if the segment holds it, else nothing.
pub(crate) fn carry_size(key_len: usize, value_len: Option<usize>, in_seg: u32) -> u64 {
    match value_len {
        Some(v) => 10 + (key_len + v) as u64,
        None if in_seg > 0 => 6 + key_len as u64,
        None => 0,
    }
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Tracking {
    pub buckets: [BucketTrack; NUM_BUCKETS],
    /// Peer segment bytes superseded by the overlay.
    pub peer_seg_dead: u64,
}

#[derive(Debug)]
pub(crate) struct State {
    pub maps: [BTreeMap<Bytes, Bytes>; NUM_BUCKETS],
    pub peers: PeerState,
}

impl State {
    pub fn new(table: Arc<PeerGen>) -> State {
        State {
            maps: Default::default(),
            peers: PeerState::new(table),
        }
    }

    /// Applies one op (already validated and resolved by the writer).
    pub fn apply(&mut self, op: Op, track: &mut Tracking) -> Result<()> {
        let op_len = op.encoded_len() as u64;
        match op {
            Op::Put { bucket, key, value } => {
                let b = bucket as usize;
                let t = &mut track.buckets[b];
                let changed = t.touch(&self.maps[b], &key);
                t.log_bytes += op_len;
                t.live_bytes += segment::entry_len(&key, &value) as u64;
                let (klen, vlen) = (key.len(), value.len());
                let old = self.maps[b].insert(Bytes::from(key), Bytes::from(value));
                if let Some(old) = &old {
                    t.live_bytes -= (8 + klen + old.len()) as u64;
                }
                t.carry_change(changed, klen, old.map(|v| v.len()), Some(vlen));
            }
            Op::Delete { bucket, key } => {
                let b = bucket as usize;
                let t = &mut track.buckets[b];
                let changed = t.touch(&self.maps[b], &key);
                t.log_bytes += op_len;
                let old = self.maps[b].remove(key.as_slice());
                if let Some(old) = &old {
                    t.live_bytes -= segment::entry_len(&key, old) as u64;
                }
                t.carry_change(changed, key.len(), old.map(|v| v.len()), None);
            }
            Op::PutPeer(bytes) => self.peers.put(bytes, &mut track.peer_seg_dead)?,
            Op::DeletePeer(key) => self.peers.delete(key, &mut track.peer_seg_dead)?,
        }
        Ok(())
    }
}
