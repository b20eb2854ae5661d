//! Checkpoint (also "compaction"): when the log region is full, a bucket
//! has too many dead bytes, or on [`crate::Store::compact`], the writer rewrites
//! the buckets that need it into new segments (the others carry their few
//! changed keys into the new log), folds the peer overlay into a new peer
//! segment and index, writes a new log region, syncs, and only then flips
//! the superblock and syncs again. A crash at any point reopens to the old
//! superblock or the new one.

use crate::engine::state::carry_size;
use crate::error::{Error, Result};
use crate::format::bucket::{BUCKET_NAMES, PEERS};
use crate::format::commit::{self, OpRef};
use crate::format::frame;
use crate::format::index;
use crate::format::peer_record::{MIN, PeerRecordRef};
use crate::format::segment;
use crate::format::superblock::{Extent, SegmentRef, Superblock};
use crate::format::{DATA_START, NUM_BUCKETS, PAGE, mask, masked_crc, page_round};
use crate::peers::generation::PeerGen;
use crate::peers::table::PeerState;
use crate::sys::io::RawFile;
use crate::sys::mmap::Region;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::engine::Inner;
use crate::engine::writer::*;

/// What a peer segment is written through: [`crate::engine::Inner::write_peer_segment`].
/// (Small in unit tests, so that their segments take several writes.)
pub(super) const SEGMENT_CHUNK: usize = if cfg!(test) { 4096 } else { 1 << 20 };

/// A peer segment being written front to back through a small buffer,
/// its CRC taken on the way.
pub(super) struct SegmentOut<'f> {
    file: &'f dyn RawFile,
    /// Where the segment starts in the file.
    at: u64,
    buf: Vec<u8>,
    /// Bytes written to the file so far.
    len: u64,
    count: u64,
    crc: crc32fast::Hasher,
}

impl SegmentOut<'_> {
    pub(super) fn put(&mut self, record: &[u8]) -> Result<()> {
        segment::put_peer(&mut self.buf, record);
        self.count += 1;
        if self.buf.len() >= SEGMENT_CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    pub(super) fn flush(&mut self) -> Result<()> {
        self.crc.update(&self.buf);
        self.file
            .write_at(&self.buf, self.at + self.len)
            .map_err(Error::io("writing the peer segment"))?;
        self.len += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }
}

/// Files larger than this get a relocating pass from [`crate::Store::compact`].
pub(super) const RELOCATE_ABOVE: u64 = 4 << 20;

/// What a checkpoint must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Rewrite only what passed its thresholds; carry the rest.
    Auto,
    /// Rewrite everything that changed or has dead bytes.
    Compact,
    /// As `Compact`, placing the new regions behind every live one.
    Evacuate,
    /// Rewrite every region, so free space ends up at the end of the file.
    Relocate,
}

/// What [`Inner::plan`] decided.
struct Plan {
    /// The commit carrying the changes of the buckets not rewritten (and
    /// of the peers, when the table does not fold) into the new log.
    carry_frame: Vec<u8>,
    /// Buckets to rewrite: number, segment bytes, entry count.
    new_segs: Vec<(usize, Vec<u8>, u64)>,
    /// The folded peer segment, already written.
    new_peers: Option<(SegmentRef, Region)>,
    /// Log bytes carried per bucket.
    carried_bytes: [u64; NUM_BUCKETS],
}

/// What a checkpoint has written so far, for [`Compaction`].
struct Done {
    written: u64,
    /// Regions of the current superblock the new one no longer uses.
    freed: Vec<Extent>,
    rewritten: Vec<&'static str>,
}

/// Repair ([`crate::Store::repair`]): the old table's records as its sound
/// id slots find them, in id-hash order of the slots. A record that fails
/// its check is rebuilt from its slot (key, access hash, flags) into
/// `rebuilt`, and its key noted in `salvaged`.
fn salvage_records<'t>(
    table: &'t PeerGen,
    salvaged: &mut Vec<u64>,
    rebuilt: &mut Vec<(u64, Vec<u8>)>,
) -> Result<Vec<(u64, PeerRecordRef<'t>)>> {
    let mut v: Vec<(u64, PeerRecordRef<'t>)> = Vec::new();
    for (i, s) in table.view().id_slots().iter().enumerate() {
        if !s.is_sound() {
            return Err(table.damaged(index::Damaged {
                table: index::Table::Id,
                slot: i,
            }));
        }
        if s.key() == 0 {
            continue;
        }
        match table.record_at(s.offset(), s.key()) {
            Ok(r) => v.push((index::id_hash(s.key()), r)),
            Err(_) => {
                let (account, peer_id) = crate::format::peer_record::split_key(s.key());
                let rec = crate::format::peer_record::PeerRecord {
                    account,
                    peer_id,
                    access_hash: s.access_hash(),
                    min: s.flags() & MIN != 0,
                    tail: vec![1, 0],
                    ..Default::default()
                };
                rebuilt.push((s.key(), rec.encode()));
                salvaged.push(s.key());
            }
        }
    }
    Ok(v)
}

impl Inner {
    pub(super) fn peers_need_fold(&self, w: &Writer) -> bool {
        self.enough_changed_peers(&self.state.read().peers) || w.index_unsaved
    }

    /// The peers changed since the generation reach
    /// [`crate::Options::peer_fold_min`] or half the table: time for a new one.
    pub(super) fn enough_changed_peers(&self, p: &PeerState) -> bool {
        p.overlay.len()
            >= self
                .opts
                .peer_fold_min
                .max(p.table.header.peer_count as usize / 2)
    }

    /// Writes new segments / index / log region, syncs, flips the
    /// superblock, syncs, then frees what the old superblock used.
    pub(crate) fn checkpoint(&self, w: &mut Writer, mode: Mode, need: usize) -> Result<()> {
        let at_end = mode == Mode::Evacuate;
        w.check()?;
        // One more generation, and perhaps a commit carrying the log.
        w.room(1, 1)?;
        let started = Instant::now();
        let Plan {
            carry_frame,
            new_segs,
            new_peers,
            carried_bytes,
        } = self.plan(w, mode)?;

        // Allocate and write every new region. Nothing the current
        // superblock references is touched.
        let mut new_sb = w.sb;
        new_sb.generation += 1;
        let mut done = Done {
            written: 0,
            freed: vec![w.sb.log],
            rewritten: Vec::new(),
        };
        self.write_bucket_segments(w, &new_segs, &mut new_sb, at_end, &mut done)?;
        let old_table = self.state.read().peers.table.clone();
        let new_index = self.write_peer_index(w, &new_peers, &mut new_sb, at_end, &mut done)?;
        let log = self.write_log(w, &carry_frame, need, at_end, &mut done)?;
        new_sb.log = log;
        new_sb.log_durable = carry_frame.len() as u64;
        new_sb.next_seq = w.next_seq;
        new_sb.file_len = new_sb
            .regions()
            .iter()
            .map(Extent::end)
            .max()
            .unwrap_or(DATA_START)
            .max(DATA_START);
        self.flip(w, &new_sb)?;

        // Durable. Switch memory over to the new generation.
        self.install_peer_gen(w, new_peers, new_index, &new_sb, old_table)?;
        for (b, _, _) in &new_segs {
            let t = &mut w.track.buckets[*b];
            t.dirty.clear();
            t.seg_dead = 0;
            t.carry_bytes = 0;
        }
        for (b, t) in w.track.buckets.iter_mut().enumerate() {
            t.log_bytes = carried_bytes[b];
        }
        w.sb = new_sb;
        w.log_pos = log.offset + carry_frame.len() as u64;
        if !carry_frame.is_empty() {
            w.next_seq += 1;
        }
        w.synced_seq = w.next_seq - 1;
        w.dirty = false;
        w.last_sync = Instant::now();
        for e in done.freed {
            w.release(e);
        }
        self.reclaim(w);
        w.stats.checkpoints += 1;
        w.stats.checkpoint_time += started.elapsed();
        w.stats.last_compaction = Some(Compaction {
            at: SystemTime::now(),
            duration: started.elapsed(),
            rewritten: done.rewritten,
            bytes_written: done.written,
        });
        Ok(())
    }

    /// What a checkpoint writes, decided under the state's read lock: the
    /// buckets to rewrite, the peer segment if the table folds (written
    /// here, through [`Inner::write_peer_segment`]), and the commit that
    /// carries every other change into the new log.
    fn plan(&self, w: &mut Writer, mode: Mode) -> Result<Plan> {
        let force = mode != Mode::Auto;
        let relocate = mode == Mode::Relocate;
        let at_end = mode == Mode::Evacuate;
        let opts = &self.opts;
        let over = |dead: u64, len: u64| {
            dead > opts
                .compact_min_dead
                .max((opts.compact_dead_ratio * len as f64) as u64)
        };
        let mut carry_frame = Vec::new();
        let mut new_segs: Vec<(usize, Vec<u8>, u64)> = Vec::new();
        let mut new_peers: Option<(SegmentRef, Region)> = None;
        let mut carried_bytes = [0u64; NUM_BUCKETS];
        {
            let st = self.state.read();
            let p = &st.peers;
            let table = &p.table;
            let fold = w.index_unsaved
                || relocate
                || (force && (!p.overlay.is_empty() || w.track.peer_seg_dead > 0))
                || self.enough_changed_peers(p)
                || over(w.track.peer_seg_dead, table.seg_ref.len);
            if fold {
                new_peers = Some(self.write_peer_segment(w, p, at_end)?);
            }
            // What the new log must carry, borrowed from the state (copying
            // each record into an op first was a third of a checkpoint).
            let mut carry: Vec<OpRef<'_>> = Vec::new();
            for b in (0..NUM_BUCKETS).filter(|&b| b != PEERS as usize) {
                let t = &w.track.buckets[b];
                let seg = w.sb.segments[b];
                if t.dirty.is_empty() && !(force && t.seg_dead > 0) && !(relocate && seg.len > 0) {
                    continue;
                }
                let map = &st.maps[b];
                let carry_len = t.carry_bytes;
                debug_assert_eq!(
                    carry_len,
                    t.dirty
                        .iter()
                        .map(|(k, &in_seg)| carry_size(
                            k.len(),
                            map.get(k.as_slice()).map(|v| v.len()),
                            in_seg
                        ))
                        .sum::<u64>(),
                    "bucket {b}: carry size out of step with its changes"
                );
                if force || over(t.seg_dead, seg.len) || carry_len > opts.log_size / 4 {
                    let mut bytes = Vec::with_capacity(t.live_bytes as usize);
                    for (k, v) in map {
                        segment::put_entry(&mut bytes, k, v);
                    }
                    new_segs.push((b, bytes, map.len() as u64));
                } else {
                    for (k, &in_seg) in &t.dirty {
                        match map.get(k.as_slice()) {
                            Some(v) => carry.push(OpRef::Put {
                                bucket: b as u8,
                                key: k,
                                value: v,
                            }),
                            None if in_seg > 0 => carry.push(OpRef::Delete {
                                bucket: b as u8,
                                key: k,
                            }),
                            None => {}
                        }
                    }
                    carried_bytes[b] = carry_len;
                }
            }
            if !fold {
                for (k, v) in &p.overlay {
                    match v {
                        Some(r) => carry.push(OpRef::PutPeer(r)),
                        None if table
                            .view()
                            .get(*k)
                            .map_err(|d| table.damaged(d))?
                            .is_some() =>
                        {
                            carry.push(OpRef::DeletePeer(*k))
                        }
                        None => {}
                    }
                }
            }
            if !carry.is_empty() {
                let seq = w.next_seq;
                frame::encode_with(frame::KIND_COMMIT, &mut carry_frame, |out| {
                    commit::encode_refs_into(seq, seq - 1, carry.into_iter(), out)
                });
            }
        }
        Ok(Plan {
            carry_frame,
            new_segs,
            new_peers,
            carried_bytes,
        })
    }

    /// Writes the rewritten buckets' segments to newly allocated regions.
    fn write_bucket_segments(
        &self,
        w: &mut Writer,
        new_segs: &[(usize, Vec<u8>, u64)],
        new_sb: &mut Superblock,
        at_end: bool,
        done: &mut Done,
    ) -> Result<()> {
        for (b, bytes, count) in new_segs {
            done.freed.push(w.sb.segments[*b].extent());
            new_sb.segments[*b] = if bytes.is_empty() {
                SegmentRef::default()
            } else {
                let (ext, _) = w.alloc(bytes.len() as u64, at_end);
                self.file
                    .write_at(bytes, ext.offset)
                    .map_err(w.poison("writing a bucket segment"))?;
                done.written += bytes.len() as u64;
                SegmentRef {
                    offset: ext.offset,
                    len: bytes.len() as u64,
                    count: *count,
                    crc: masked_crc(bytes),
                }
            };
            done.rewritten.push(BUCKET_NAMES[*b]);
        }
        Ok(())
    }

    /// Builds the index over a folded peer segment (read back from the
    /// file) and writes it; the new superblock names both.
    fn write_peer_index(
        &self,
        w: &mut Writer,
        new_peers: &Option<(SegmentRef, Region)>,
        new_sb: &mut Superblock,
        at_end: bool,
        done: &mut Done,
    ) -> Result<Option<Vec<u8>>> {
        let opts = &self.opts;
        let mut new_index: Option<Vec<u8>> = None;
        if let Some((seg_ref, seg)) = new_peers {
            // Every record here was checked: the old segment's as the
            // fold read them, the overlay's when they were committed.
            // The segment is read back from the file: a record that fails
            // now stops the checkpoint rather than vanish from the index.
            let mut bad = None;
            let index_bytes = index::build(
                segment::peers(seg).map_while(|e| {
                    let parsed = e.ok().and_then(|(off, b)| {
                        Some((off as u64, PeerRecordRef::checked_before(b).ok()?))
                    });
                    if parsed.is_none() {
                        bad = Some(());
                    }
                    parsed
                }),
                seg_ref.count as usize,
                seg_ref.offset,
                opts.index_load,
            );
            if bad.is_some() {
                let e = Error::corrupt(seg_ref.offset, "the new peer segment reads back damaged");
                w.poison_with(&e);
                return Err(e);
            }
            let (idx_ext, _) = w.alloc(index_bytes.len() as u64, at_end);
            self.file
                .write_at(&index_bytes, idx_ext.offset)
                .map_err(w.poison("writing the peer index"))?;
            done.written += seg_ref.len + index_bytes.len() as u64;
            new_sb.segments[PEERS as usize] = *seg_ref;
            new_sb.index = Extent {
                offset: idx_ext.offset,
                len: index_bytes.len() as u64,
            };
            new_index = Some(index_bytes);
            done.rewritten.push(BUCKET_NAMES[PEERS as usize]);
        }
        Ok(new_index)
    }

    /// Allocates the new log region (zeroed if reused) and writes the
    /// carried commit at its start.
    fn write_log(
        &self,
        w: &mut Writer,
        carry_frame: &[u8],
        need: usize,
        at_end: bool,
        done: &mut Done,
    ) -> Result<Extent> {
        let opts = &self.opts;
        let log_len = page_round(
            opts.log_size
                .max((2 * carry_frame.len() + need) as u64 + PAGE),
        );
        let (log, fresh) = w.alloc(log_len, at_end);
        if !fresh {
            // A reused region holds old bytes; the log must start zeroed so
            // recovery can tell a torn tail from leftovers.
            let zeros = vec![0u8; (log.len as usize).min(1 << 20)];
            let mut at = log.offset;
            while at < log.end() {
                let n = zeros.len().min((log.end() - at) as usize);
                self.file
                    .write_at(&zeros[..n], at)
                    .map_err(w.poison("zeroing a log region"))?;
                at += n as u64;
            }
        }
        if !carry_frame.is_empty() {
            self.file
                .write_at(carry_frame, log.offset)
                .map_err(w.poison("writing the carried log"))?;
            done.written += carry_frame.len() as u64;
        }
        Ok(log)
    }

    /// The new regions are written: make them durable, then flip the
    /// superblock and make that durable.
    fn flip(&self, w: &mut Writer, new_sb: &Superblock) -> Result<()> {
        // The file must cover every region before the superblock names it.
        self.file
            .set_len(w.file_len)
            .map_err(w.poison("extending the file"))?;
        self.file.sync().map_err(w.poison("syncing new regions"))?;
        crate::engine::open::write_superblock(&*self.file, new_sb)
            .map_err(w.poison("writing the superblock"))?;
        self.file
            .sync()
            .map_err(w.poison("syncing the superblock"))?;
        Ok(())
    }

    /// After the flip: readers switch to the new peer generation; the old
    /// one's regions wait in quarantine until its last reader is gone.
    fn install_peer_gen(
        &self,
        w: &mut Writer,
        new_peers: Option<(SegmentRef, Region)>,
        new_index: Option<Vec<u8>>,
        new_sb: &Superblock,
        old_table: Arc<PeerGen>,
    ) -> Result<()> {
        let new_table = match new_peers.zip(new_index) {
            Some(((seg_ref, seg), index_bytes)) => {
                let header = index::Header::decode(&index_bytes)
                    .map_err(|e| Error::corrupt(new_sb.index.offset, e))?;
                let index = match self.file.map(new_sb.index.offset, new_sb.index.len) {
                    Ok(Some(m)) => m,
                    _ => Region::heap(index_bytes),
                };
                Some(Arc::new(PeerGen::new(
                    seg,
                    index,
                    header,
                    seg_ref,
                    new_sb.index,
                )))
            }
            None => None,
        };
        if let Some(table) = new_table {
            let old_index = Extent {
                offset: old_table.index_extent.offset,
                len: page_round(old_table.index_extent.len),
            };
            let old_seg = old_table.seg_ref.extent();
            self.state.write().peers.install_gen(table);
            w.track.peer_seg_dead = 0;
            w.index_unsaved = false;
            w.quarantine.push((old_seg, Arc::downgrade(&old_table)));
            w.quarantine.push((old_index, Arc::downgrade(&old_table)));
        }
        drop(old_table);
        Ok(())
    }

    /// Writes the peers' next segment: the generation's records with the
    /// overlay merged in. They go out in id-hash order, the order the index
    /// build places them in (see `index::fill`); the old segment is in that
    /// order already, so the changed peers are sorted and merged into it.
    ///
    /// The bytes pass through a buffer of [`SEGMENT_CHUNK`], not one the
    /// size of the segment: fresh pages cost more to fault in than the copy
    /// into the file does (figures: benches/README.md, "Figures behind
    /// design choices"). The new generation, and the index build before
    /// it, read the segment back from the file's mapping.
    pub(super) fn write_peer_segment(
        &self,
        w: &mut Writer,
        p: &PeerState,
        at_end: bool,
    ) -> Result<(SegmentRef, Region)> {
        let table = &p.table;
        let mut changed: Vec<(u64, &[u8])> = p
            .overlay
            .iter()
            .filter_map(|(&k, r)| Some((index::id_hash(k), r.as_deref()?)))
            .collect();
        changed.sort_unstable_by_key(|e| e.0);
        // At most this much: the old segment without the records the
        // overlay replaces or deletes, plus the overlay's.
        let bound = table.seg.len() as u64
            + changed
                .iter()
                .map(|(_, r)| segment::peer_entry_len(r.len()) as u64)
                .sum::<u64>();
        if bound == 0 {
            return Ok((SegmentRef::default(), Region::heap(Vec::new())));
        }
        let (ext, _) = w.alloc(bound, at_end);
        let mut out = SegmentOut {
            file: &*self.file,
            at: ext.offset,
            buf: Vec::with_capacity(SEGMENT_CHUNK + segment::peer_entry_len(u16::MAX as usize)),
            len: 0,
            count: 0,
            crc: crc32fast::Hasher::new(),
        };
        // Repair: the old table's records as its sound id slots find them,
        // a damaged record rebuilt from its slot.
        let mut rebuilt: Vec<(u64, Vec<u8>)> = Vec::new();
        let from_slots = match w.salvage.as_mut() {
            None => None,
            Some(salvaged) => Some(salvage_records(table, salvaged, &mut rebuilt)?),
        };
        let mut from_slots = from_slots.map(|mut v| {
            for (k, b) in &rebuilt {
                if let Ok(r) = PeerRecordRef::parse(b) {
                    v.push((index::id_hash(*k), r));
                }
            }
            v.sort_unstable_by_key(|e| e.0);
            v.into_iter().map(|(_, r)| Ok((0, r)))
        });
        let mut walk = table.records();
        let mut changed = changed.into_iter().peekable();
        let merged = (|| {
            while let Some(e) = match from_slots.as_mut() {
                Some(it) => it.next(),
                None => walk.next(),
            } {
                let (_, r) = e?;
                if p.overlay.contains_key(&r.key()) {
                    continue;
                }
                let h = index::id_hash(r.key());
                while let Some((_, c)) = changed.next_if(|&(ch, _)| ch < h) {
                    out.put(c)?;
                }
                out.put(r.bytes())?;
            }
            for (_, c) in changed {
                out.put(c)?;
            }
            out.flush()?;
            if out.len > index::MAX_SEGMENT {
                return Err(Error::TooLarge {
                    what: "peer table",
                    len: out.len as usize,
                    max: index::MAX_SEGMENT as usize,
                });
            }
            Ok(())
        })();
        // What the segment did not need goes back (all of it when it is
        // empty: an empty table has no segment region, and its index names
        // offset 0 as the superblock's empty segment reference does).
        let used = if merged.is_ok() {
            page_round(out.len)
        } else {
            0
        };
        w.release(Extent {
            offset: ext.offset + used,
            len: ext.len - used,
        });
        if let Err(e) = merged {
            w.poison_with(&e);
            return Err(e);
        }
        if out.len == 0 {
            return Ok((SegmentRef::default(), Region::heap(Vec::new())));
        }
        let seg_ref = SegmentRef {
            offset: ext.offset,
            len: out.len,
            count: out.count,
            crc: mask(out.crc.finalize()),
        };
        let seg = self.read_back(w, &seg_ref)?;
        Ok((seg_ref, seg))
    }

    /// The new peer segment as the next generation reads it: mapped, or
    /// read back where the backend cannot map.
    fn read_back(&self, w: &mut Writer, seg_ref: &SegmentRef) -> Result<Region> {
        Ok(match self.file.map(seg_ref.offset, seg_ref.len) {
            Ok(Some(m)) => m,
            Ok(None) => {
                let mut bytes = vec![0; seg_ref.len as usize];
                self.file
                    .read_at(&mut bytes, seg_ref.offset)
                    .map_err(w.poison("reading the peer segment back"))?;
                Region::heap(bytes)
            }
            Err(e) => return Err(w.poison("mapping the peer segment")(e)),
        })
    }

    /// Frees quarantined regions no mapping can see any more, and gives
    /// free space at the end of the file back to the filesystem.
    pub(super) fn reclaim(&self, w: &mut Writer) {
        let (dead, alive): (Vec<_>, Vec<_>) = w
            .quarantine
            .drain(..)
            .partition(|(_, g)| g.strong_count() == 0);
        w.quarantine = alive;
        for (e, _) in dead {
            w.release(e);
        }
        for e in w.pins.expired() {
            w.free_now(e);
        }
        let floor = w
            .quarantine
            .iter()
            .map(|(e, _)| e.end())
            .max()
            .unwrap_or(0)
            .max(w.sb.file_len);
        if let Some(last) = w.free.last().copied()
            && last.end() == w.file_len
        {
            let new_len = last.offset.max(floor);
            if new_len < w.file_len && self.file.set_len(new_len).is_ok() {
                w.free.pop();
                if new_len > last.offset {
                    w.free.push(Extent {
                        offset: last.offset,
                        len: new_len - last.offset,
                    });
                }
                w.file_len = new_len;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Storage;
    use crate::engine::options::{Durability, Options};
    use crate::engine::store::Store;
    use crate::format::index;
    use crate::sys::io::MemFile;
    use crate::types::{Peer, PeerId};

    /// Reopens what `file` holds (as after a process crash) on a new file.
    fn reopen(file: &MemFile, opts: &Options) -> (MemFile, Store) {
        let file = MemFile::from_bytes(file.live());
        let store = Store::open_backend(Arc::new(file.clone()), opts.clone()).expect("reopen");
        (file, store)
    }

    /// Which names resolve without the lock after a compaction: one whose
    /// holder was re-saved with new fields but the same names still does;
    /// a name that moved to another peer, and the name it replaced, do not.
    #[test]
    fn names_stay_lock_free_until_their_owner_changes() {
        use crate::format::index::{NameKind, name_hash};
        use crate::format::peer_record::{PeerRecord, peer_key};
        let store = Store::memory();
        let rec = |id: i64, hash: i64, name: &str| PeerRecord {
            peer_id: id,
            access_hash: Some(hash),
            usernames: vec![name.into()],
            ..Default::default()
        };
        store
            .put_peer_records(vec![rec(1, 10, "alice"), rec(2, 20, "bob")])
            .unwrap();
        store.compact().unwrap();
        let lock_free = |name: &str| {
            let h = name_hash(NameKind::Username, 0, name);
            store.lookup().name(h, NameKind::Username, 0, name)
        };
        assert_eq!(lock_free("alice"), Some(Some((peer_key(0, 1), Some(10)))));
        // Same name, new access hash (and case): still lock-free, new hash.
        store.put_peer_records(vec![rec(1, 11, "Alice")]).unwrap();
        assert_eq!(lock_free("alice"), Some(Some((peer_key(0, 1), Some(11)))));
        // Peer 2 takes a new name: both names go to the locked path, which
        // answers from the state.
        store.put_peer_records(vec![rec(2, 20, "carol")]).unwrap();
        assert_eq!(lock_free("bob"), None);
        assert_eq!(lock_free("carol"), None);
        assert_eq!(store.peer_id_by_username(0, "bob").unwrap(), None);
        assert_eq!(store.peer_id_by_username(0, "carol").unwrap(), Some(2));
        assert_eq!(
            store.resolve_username(0, "ALICE").unwrap(),
            Some((1, Some(11)))
        );
    }

    /// Every fold writes the peer segment in id-hash order (the merge and
    /// the index build rely on it for speed only), keeping every peer's
    /// newest record once: peers changed in between, new ones, deleted ones.
    #[test]
    fn folds_write_the_peer_segment_in_id_hash_order() {
        use crate::format::peer_record::PeerRecord;
        let store = Store::memory();
        let rec = |id: i64, hash: i64| PeerRecord {
            peer_id: id,
            access_hash: Some(hash),
            ..Default::default()
        };
        let in_order = |store: &Store| {
            let st = store.inner.state.read();
            let keys: Vec<(u64, i64)> = st
                .peers
                .table
                .records()
                .map(|e| e.map(|(_, r)| (index::id_hash(r.key()), r.access_hash().unwrap())))
                .collect::<Result<_>>()
                .unwrap();
            assert!(
                keys.is_sorted_by_key(|k| k.0),
                "segment not in id-hash order"
            );
            keys.len()
        };
        store
            .put_peer_records((1..=500).map(|i| rec(i, i)).collect())
            .unwrap();
        store.compact().unwrap();
        assert_eq!(in_order(&store), 500);
        store
            .put_peer_records((250..=750).map(|i| rec(i, -i)).collect())
            .unwrap();
        for i in 1..=100 {
            store.delete_peer_record(0, i).unwrap();
        }
        store.compact().unwrap();
        assert_eq!(in_order(&store), 650);
        for i in 101..=750 {
            let want = if i < 250 { i } else { -i };
            assert_eq!(
                store.peer_access_hash(0, i).unwrap(),
                Some(Some(want)),
                "peer {i}"
            );
        }
        assert!(store.verify().unwrap().is_ok());
    }

    /// A fold allocates its segment for the most it can need (the old
    /// segment plus every changed record) and gives back what it did not
    /// use: re-saving every peer changed, fold after fold, keeps the file
    /// at the same size, and the free list never overlaps live data
    /// (`verify` checks that).
    #[test]
    fn folds_give_back_the_segment_space_they_did_not_use() {
        let opts = Options {
            durability: Durability::None,
            peer_fold_min: 1,
            ..Options::default()
        };
        let file = MemFile::new();
        let store = Store::open_backend(Arc::new(file.clone()), opts.clone()).unwrap();
        let a = store.account("a").unwrap();
        let mut peers: Vec<Peer> = (1..=3000).map(|i| Peer::user(i, i)).collect();
        let mut sizes = Vec::new();
        for round in 0..12 {
            for p in &mut peers {
                p.access_hash = Some(p.id.bare_id() * 1000 + round);
            }
            a.save_peers(&peers).unwrap();
            store.compact().unwrap();
            assert!(store.verify().unwrap().is_ok(), "round {round}");
            sizes.push(store.stats().file_size);
        }
        assert!(
            sizes[11] <= sizes[2],
            "the file grew from {} to {} bytes",
            sizes[2],
            sizes[11]
        );
        drop((a, store));
        let (_, store) = reopen(&file, &opts);
        let a = store.account("a").unwrap();
        assert_eq!(a.access_hash(PeerId::user(7)).unwrap(), Some(7011));
    }

    /// Regression (found by fuzzing): a checkpoint that folded the peer
    /// table down to zero peers wrote an index naming the offset of a
    /// segment it never kept, next to an all-zero segment reference. The
    /// next open took the index for stale, tried to rebuild it from the
    /// (absent) segment and failed its checksum: the store no longer opened.
    #[test]
    fn folding_the_last_peer_away_keeps_the_store_openable() {
        let opts = Options {
            durability: Durability::Immediate,
            log_size: 8192,
            peer_fold_min: 1,
            ..Options::default()
        };
        let file = MemFile::new();
        let store = Store::open_backend(Arc::new(file.clone()), opts.clone()).unwrap();
        let a = store.account("a").unwrap();
        a.save_peer(&Peer::chat(1)).unwrap();
        assert!(a.delete_peer(PeerId::chat(1)).unwrap());
        assert!(store.verify().unwrap().is_ok());
        drop((a, store));
        let (file, store) = reopen(&file, &opts);
        assert!(!store.stats().index_rebuilt);
        assert!(store.verify().unwrap().is_ok());
        let a = store.account("a").unwrap();
        assert_eq!(a.peer_count().unwrap(), 0);
        a.save_peer(&Peer::chat(2)).unwrap();
        store.compact().unwrap();
        drop((a, store));
        let (_, store) = reopen(&file, &opts);
        assert!(store.verify().unwrap().is_ok());
        let a = store.account("a").unwrap();
        assert!(a.peer(PeerId::chat(2)).unwrap().is_some());
    }
}
