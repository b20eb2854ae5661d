//! Deep checks: every checksum, every index slot against the records it
//! points at, every record against the index, and the file against the
//! open store's memory.

use crate::engine::options::Options;
use crate::engine::state::State;
use crate::engine::stats::count_tag;
use crate::engine::store::Store;
use crate::engine::writer::Writer;
use crate::error::{Error, Result};
use crate::format::bucket::{BUCKET_NAMES, DEDUP, PEERS, QUEUE};
use crate::format::index::{self, NameKind, name_hash};
use crate::format::masked_crc;
use crate::format::superblock::{
    COUNTER_HEADROOM, COUNTER_LIMIT, Extent, GENERATION_OFFSET, NEXT_SEQ_OFFSET, Superblock,
};
use crate::peers::generation::PeerGen;
use crate::sys::io::{FileBackend, RawFile};
use std::path::Path;

/// One thing [`crate::Store::verify`] found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// File offset of the bad bytes (0 when not tied to one place).
    pub offset: u64,
    /// What is wrong.
    pub what: String,
}

/// The result of a verification.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Everything found wrong; empty when the store is sound.
    pub problems: Vec<Problem>,
    /// Peer records checked.
    pub peers_checked: u64,
    /// Index slots checked.
    pub slots_checked: u64,
    /// Generic bucket entries checked (internal rows: a dedup key or a
    /// queue item is two of them).
    pub entries_checked: u64,
    /// Live peers as a user counts them: for [`crate::Store::verify`], those
    /// changed since the last index generation (not yet folded into the
    /// segment) included; [`Self::peers_checked`] counts segment records.
    pub peers: u64,
    /// Dedup keys, all accounts.
    pub dedup_keys: u64,
    /// Durable queue items, all accounts.
    pub queue_items: u64,
    /// Things worth fixing that are not damage, such as a file that group
    /// or others may read. They do not make [`Self::is_ok`] false: the
    /// store is sound, and a permission is not the file's content.
    pub warnings: Vec<String>,
}

impl VerifyReport {
    /// True when nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
    fn push(&mut self, offset: u64, what: impl Into<String>) {
        self.problems.push(Problem {
            offset,
            what: what.into(),
        });
    }
    fn push_err(&mut self, e: Error) {
        match e {
            Error::Corrupt { offset, what } => self.push(offset, what),
            other => self.push(0, other.to_string()),
        }
    }
}

impl std::fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let counts = format!(
            "{} peers, {} dedup keys, {} queue items ({} peer records, {} index slots, {} entries checked)",
            self.peers,
            self.dedup_keys,
            self.queue_items,
            self.peers_checked,
            self.slots_checked,
            self.entries_checked
        );
        if self.is_ok() {
            write!(f, "ok: {counts}")?;
        } else {
            write!(f, "{} problem(s) in {counts}:", self.problems.len())?;
            for p in &self.problems {
                write!(f, "\n  at byte {}: {}", p.offset, p.what)?;
            }
        }
        for w in &self.warnings {
            write!(f, "\nwarning: {w}")?;
        }
        Ok(())
    }
}

/// Checks the peer generation slot by slot: the segment's and the slots'
/// checksums, every id and name slot, every record's reachability.
fn check_table(g: &PeerGen, from_file: bool, r: &mut VerifyReport) {
    let base = g.index_extent.offset;
    if from_file && g.seg_ref.len > 0 && masked_crc(&g.seg) != g.seg_ref.crc {
        r.push(g.seg_ref.offset, "peer segment checksum mismatch");
    }
    if from_file && !index::slots_crc_ok(&g.index, &g.header) {
        r.push(base, "peer index slot checksum mismatch");
    }
    let used = check_id_slots(g, r);
    check_name_slots(g, r);
    if used != g.header.peer_count {
        r.push(
            base,
            format!(
                "index holds {used} peers, header says {}",
                g.header.peer_count
            ),
        );
    }
    if !check_records(g, r) {
        return;
    }
    if r.peers_checked > 0 && g.header.peer_count != g.seg_ref.count {
        r.push(g.seg_ref.offset, "segment count and index disagree");
    }
}

/// File offset of id slot `i` of the generation's index.
fn id_slot_at(g: &PeerGen, i: usize) -> u64 {
    g.index_extent.offset + (index::HEADER_LEN + index::ID_SLOT_LEN * i) as u64
}

/// Each id slot: its check byte, its probe distance, its record. Returns
/// the number of slots in use.
fn check_id_slots(g: &PeerGen, r: &mut VerifyReport) -> u64 {
    let view = g.view();
    let mut used = 0u64;
    let slots = view.id_slots();
    for (i, s) in slots.iter().enumerate() {
        if !s.is_sound() {
            r.push(
                id_slot_at(g, i),
                "id slot fails its check byte (Store::repair() rebuilds the index)",
            );
            continue;
        }
        if s.key() == 0 {
            continue;
        }
        used += 1;
        r.slots_checked += 1;
        if s.distance() != index::stored_distance(i, s.key(), slots.len()) {
            r.push(id_slot_at(g, i), "id slot stores a wrong probe distance");
        }
        match g.record_at(s.offset(), s.key()) {
            Ok(rec) if rec.access_hash() == s.access_hash() && rec.flags() == s.flags() => {}
            Ok(_) => r.push(id_slot_at(g, i), "id slot disagrees with its record"),
            Err(e) => r.push_err(e),
        }
    }
    used
}

/// Each name slot (usernames, then phones): its check byte and its probe
/// distance.
fn check_name_slots(g: &PeerGen, r: &mut VerifyReport) {
    let view = g.view();
    let mut at = id_slot_at(g, view.id_slots().len());
    for kind in [NameKind::Username, NameKind::Phone] {
        let names = view.name_slots(kind);
        for (i, s) in names.iter().enumerate() {
            let stored = index::stored_name_distance(i, s.hash(), names.len());
            let slot_at = at + (index::NAME_SLOT_LEN * i) as u64;
            if !s.is_sound() {
                r.push(
                    slot_at,
                    "name slot fails its check byte (Store::repair() rebuilds the index)",
                );
            } else if s.hash() != 0 && s.distance() != stored {
                r.push(slot_at, "name slot stores a wrong probe distance");
            }
        }
        at += (index::NAME_SLOT_LEN * names.len()) as u64;
    }
}

/// Each record of the segment: reachable through the id index and through
/// the name tables under each of its names. False if the segment could not
/// be read to its end.
fn check_records(g: &PeerGen, r: &mut VerifyReport) -> bool {
    let view = g.view();
    for e in g.records() {
        let (off, rec) = match e {
            Ok(x) => x,
            Err(e) => {
                r.push_err(e);
                return false;
            }
        };
        r.peers_checked += 1;
        let at = g.seg_ref.offset + off;
        if view.get(rec.key()).ok().flatten().map(|s| s.offset()) != Some(off) {
            r.push(at, "peer record not reachable through the id index");
        }
        let names = rec
            .usernames()
            .map(|u| (NameKind::Username, u))
            .chain(rec.phone().map(|p| (NameKind::Phone, p)));
        for (kind, name) in names {
            if !view
                .names(kind, name_hash(kind, rec.account(), name))
                .any(|o| o == Ok(off))
            {
                r.push(
                    at,
                    format!(
                        "{kind:?} of peer {} not reachable through its index",
                        rec.peer_id()
                    ),
                );
            }
        }
    }
    true
}

fn check_file(file: &dyn RawFile, path: Option<&Path>, r: &mut VerifyReport) -> Option<State> {
    let opts = Options {
        read_only: true,
        create: false,
        ..Options::default()
    };
    match crate::engine::open::load(file, &opts, path) {
        Ok((state, w)) => {
            if w.stats.index_rebuilt {
                r.push(
                    w.sb.index.offset,
                    "peer index missing, stale or failing its header check",
                );
            }
            for &at in &w.stats.superblock_copies_damaged {
                r.push(
                    at,
                    "superblock copy damaged; the other copy is intact (a writable open rewrites it)",
                );
            }
            if w.stats.recovered_bytes > 0 {
                r.push(
                    w.log_pos,
                    format!("{} bytes of torn log tail", w.stats.recovered_bytes),
                );
            }
            let slot = Superblock::slot_offset(w.sb.generation);
            for (value, at, what) in [
                (w.sb.generation, GENERATION_OFFSET, "checkpoint generation"),
                (w.next_seq, NEXT_SEQ_OFFSET, "commit sequence"),
            ] {
                if value >= COUNTER_LIMIT - COUNTER_HEADROOM {
                    r.push(
                        slot + at as u64,
                        format!(
                            "{what} {value} is within 2^32 of its limit: no store counts that far"
                        ),
                    );
                }
            }
            check_table(&state.peers.table, !w.index_unsaved, r);
            r.entries_checked += state.maps.iter().map(|m| m.len() as u64).sum::<u64>();
            count(&state, r);
            Some(state)
        }
        Err(e) => {
            r.push_err(e);
            None
        }
    }
}

/// The counts a user counts (live peers, dedup keys, queue items).
fn count(st: &State, r: &mut VerifyReport) {
    r.peers = st.peers.live;
    r.dedup_keys = count_tag(st.maps[DEDUP as usize].keys().map(|k| &k[..]), b'k');
    r.queue_items = count_tag(st.maps[QUEUE as usize].keys().map(|k| &k[..]), b'q');
}

fn same_peers(a: &State, b: &State, r: &mut VerifyReport) -> Result<()> {
    let mut ka = a.peers.peer_keys(None)?;
    let mut kb = b.peers.peer_keys(None)?;
    ka.sort_unstable();
    kb.sort_unstable();
    if ka != kb {
        r.push(
            0,
            format!("file holds {} peers, memory {}", ka.len(), kb.len()),
        );
        return Ok(());
    }
    for k in ka {
        let x = a.peers.record(k)?.map(|r| r.bytes().to_vec());
        let y = b.peers.record(k)?.map(|r| r.bytes().to_vec());
        if x != y {
            let (acc, id) = crate::format::peer_record::split_key(k);
            r.push(
                0,
                format!("peer {id} of account {acc} differs between file and memory"),
            );
        }
    }
    Ok(())
}

impl Store {
    /// Checks every checksum, every index slot against the log and
    /// segments, every invariant, and that the file holds exactly what
    /// this handle serves. Writers wait while it runs; readers do not.
    ///
    /// Inside a write closure ([`crate::Account::write`]) this returns
    /// [`Error::Invalid`]: the closure holds the writer lock.
    pub fn verify(&self) -> Result<VerifyReport> {
        self.inner.not_in_write("Store::verify")?;
        let w = self.inner.lock_writer();
        let mut r = VerifyReport::default();
        r.warnings.extend(self.inner.mode_warning.clone());
        check_space(&w, &mut r);
        if let Some(fresh) = check_file(&*self.inner.file, self.inner.path.as_deref(), &mut r) {
            let live = self.inner.state.read();
            count(&live, &mut r);
            for (b, name) in BUCKET_NAMES.iter().enumerate() {
                if b != PEERS as usize && fresh.maps[b] != live.maps[b] {
                    r.push(0, format!("bucket {name} differs between file and memory"));
                }
            }
            // Damage that stops the comparison is a finding, not a
            // failure of verify itself.
            if let Err(e) = same_peers(&fresh, &live, &mut r) {
                r.push_err(e);
            }
            check_table(&live.peers.table, false, &mut r);
            r.peers_checked /= 2;
        }
        Ok(r)
    }
}

/// The writer's free list: every free extent lies inside the file and
/// apart from every other one, from every region the superblock names and
/// from every region a reader may still map (a bad free list would let a
/// checkpoint overwrite live data).
fn check_space(w: &Writer, r: &mut VerifyReport) {
    let mut spans: Vec<(Extent, &str)> =
        w.sb.regions()
            .into_iter()
            .map(|e| (e, "a live region"))
            .collect();
    spans.extend(w.free.iter().map(|&e| (e, "a free extent")));
    spans.extend(
        w.quarantine
            .iter()
            .map(|(e, _)| (*e, "a region readers may map")),
    );
    spans.retain(|(e, _)| e.len > 0);
    spans.sort_by_key(|(e, _)| e.offset);
    for pair in spans.windows(2) {
        let ((a, what_a), (b, what_b)) = (pair[0], pair[1]);
        if a.end() > b.offset {
            r.push(
                b.offset,
                format!("{what_b} overlaps {what_a} at {}", a.offset),
            );
        }
    }
    for e in &w.free {
        if e.end() > w.file_len {
            r.push(e.offset, "a free extent runs past the end of the file");
        }
    }
}

/// What [`crate::Store::repair`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepairReport {
    /// Peers whose record failed its checksum and was rebuilt from its
    /// index slot, as `(account number, Bot API peer id)`: their access
    /// hash and min flag are kept; usernames, phone, names and the rest of
    /// the profile are lost until the peer is saved again.
    pub salvaged: Vec<(u32, i64)>,
    /// A [`crate::Store::verify`] run after the repair: what is still wrong.
    pub after: VerifyReport,
}

impl std::fmt::Display for RepairReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "peer table and index rewritten from the sound records")?;
        if !self.salvaged.is_empty() {
            writeln!(
                f,
                "{} damaged peer record(s) rebuilt from the index (access hash kept, names lost):",
                self.salvaged.len()
            )?;
            for (acc, id) in &self.salvaged {
                writeln!(f, "  account {acc}, peer {id}")?;
            }
        }
        write!(f, "after the repair: {}", self.after)
    }
}

impl Store {
    /// Rebuilds what the store can rebuild from what it still trusts, and
    /// says what it did.
    ///
    /// * The peer table and its index are written anew (a full
    ///   compaction) from the records, each checked against its check: a
    ///   damaged index (a slot failing its check byte, reported by
    ///   lookups and [`crate::Store::verify`]) is replaced.
    /// * A peer record that fails its check is rebuilt from its id slot
    ///   (which holds the key, access hash and flags): the access hash is
    ///   kept, its names and profile are lost and listed in
    ///   [`RepairReport::salvaged`].
    /// * Superblock copies are repaired by every writable open.
    ///
    /// Damage that leaves no intact copy (a bucket segment, the synced
    /// log, both superblock copies) makes open fail with
    /// [`Error::Corrupt`]; restore such a file from a backup.
    pub fn repair(&self) -> Result<RepairReport> {
        self.inner.not_in_write("Store::repair")?;
        let salvaged = {
            let mut w = self.inner.lock_writer();
            w.check()?;
            let records_ok = self
                .inner
                .state
                .read()
                .peers
                .table
                .records()
                .all(|e| e.is_ok());
            w.salvage = (!records_ok).then(Vec::new);
            // The peer table and its index are written anew whatever
            // else the checkpoint decides.
            w.index_unsaved = true;
            let done = self
                .inner
                .checkpoint(&mut w, crate::engine::checkpoint::Mode::Compact, 0);
            let salvaged = w.salvage.take().unwrap_or_default();
            done?;
            w.stats.repairs += 1;
            w.stats.records_salvaged += salvaged.len() as u64;
            salvaged
        };
        Ok(RepairReport {
            salvaged: salvaged
                .into_iter()
                .map(crate::format::peer_record::split_key)
                .collect(),
            after: self.verify()?,
        })
    }
}

/// Verifies a store file that no process has open, without keeping it
/// open and without changing a byte. A store open elsewhere gives
/// [`Error::Locked`].
pub fn verify_file(path: impl AsRef<Path>) -> Result<VerifyReport> {
    let opts = Options {
        read_only: true,
        create: false,
        ..Options::default()
    };
    let path = path.as_ref();
    let (file, mark) = crate::engine::open::open_locked(path, &opts)?;
    let mut r = VerifyReport::default();
    r.warnings
        .extend(crate::engine::open::mode_warning(&file, path));
    check_file(&FileBackend::with_mark(file, mark), Some(path), &mut r);
    Ok(r)
}
