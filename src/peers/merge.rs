//! The merge rules a save goes through before it reaches the log: a
//! requested [`Change`] becomes log ops in [`resolve`], which keeps a known
//! full access hash over a min one or none ([`merge_min`]), drops records
//! stored unchanged, and takes a username or phone from the peer that held
//! it.

use crate::error::{Error, Result};
use crate::format::bucket::{check_key, check_put};
use crate::format::commit::Op;
use crate::format::index::{NameKind, name_hash};
use crate::format::peer_record::{
    HAS_HASH, MIN, PeerRecordRef, flags_of, hash_and_flags, key_of, set_access_hash,
};
use crate::peers::table::{FastMap, NameOwners, OldNames, PeerState, names_of, old_names};

/// One peer table change a caller asks for; the writer resolves it (merge
/// rules, unchanged records, moved usernames) into log ops.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    Op(Op),
    /// Encoded records that passed the format's limits
    /// ([`crate::format::peer_record::RecordBuf::finish`]).
    Peers(RecordList),
    DeletePeer(u64),
}

/// Encoded peer records back to back: one allocation for a whole
/// `save_peers` call rather than one per peer, since most of a client's
/// saves are of peers stored unchanged and are dropped at commit.
#[derive(Debug, Clone, Default)]
pub(crate) struct RecordList {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl RecordList {
    pub fn with_capacity(records: usize) -> RecordList {
        RecordList {
            bytes: Vec::with_capacity(records * 64),
            ends: Vec::with_capacity(records),
        }
    }

    pub fn push(&mut self, record: &[u8]) {
        self.bytes.extend_from_slice(record);
        self.ends.push(self.bytes.len());
    }

    fn record_mut(&mut self, i: usize) -> &mut [u8] {
        let start = i.checked_sub(1).map_or(0, |j| self.ends[j]);
        &mut self.bytes[start..self.ends[i]]
    }

    pub(crate) fn records(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(a, &b)| &self.bytes[a..b])
    }
}

/// Peers and names changed earlier in the same batch.
#[derive(Default)]
struct BatchPeers {
    /// Peer key -> index in the batch's ops of its latest record
    /// (`None`: deleted).
    records: FastMap<u64, Option<usize>>,
    owners: NameOwners,
}

/// The record of a `PutPeer` op the batch made (always valid: the batch
/// encoded or checked it).
fn batch_record(ops: &[Op], at: usize) -> Result<PeerRecordRef<'_>> {
    match &ops[at] {
        Op::PutPeer(b) => PeerRecordRef::checked_before(b)
            .map_err(|_| Error::Invalid("malformed peer record".into())),
        _ => unreachable!("batch records point at PutPeer ops"),
    }
}

impl BatchPeers {
    fn current<'a>(
        &self,
        st: &'a PeerState,
        ops: &'a [Op],
        key: u64,
    ) -> Result<Option<PeerRecordRef<'a>>> {
        self.current_at(st, ops, key, None)
    }

    /// True when `rec` (checked, its merge rules applied here) equals the
    /// peer's current record byte for byte: the common re-save, decided
    /// without parsing the stored record (equal bytes are sound bytes).
    fn unchanged(
        &self,
        st: &PeerState,
        ops: &[Op],
        key: u64,
        slot: Option<Option<u64>>,
        rec: &mut [u8],
    ) -> bool {
        let cur = match (self.records.get(&key), slot) {
            (Some(Some(at)), _) => match &ops[*at] {
                Op::PutPeer(b) => Some(&b[..]),
                _ => None,
            },
            (None, Some(slot)) => st.record_bytes_in_slot(key, slot),
            _ => None,
        };
        let Some(cur) = cur else { return false };
        let (hash, flags) = hash_and_flags(cur);
        merge_min(rec, hash, flags & MIN != 0);
        *rec == *cur
    }

    /// [`BatchPeers::current`], given the key's index slot in the
    /// generation when [`PeerState::prefetch`] already found it.
    fn current_at<'a>(
        &self,
        st: &'a PeerState,
        ops: &'a [Op],
        key: u64,
        slot: Option<Option<u64>>,
    ) -> Result<Option<PeerRecordRef<'a>>> {
        match (self.records.get(&key), slot) {
            (Some(Some(at)), _) => batch_record(ops, *at).map(Some),
            (Some(None), _) => Ok(None),
            (None, Some(slot)) => st.record_in_slot(key, slot),
            (None, None) => st.record(key),
        }
    }

    fn owner(
        &self,
        st: &PeerState,
        hash: u64,
        kind: NameKind,
        account: u32,
        name: &str,
    ) -> Result<Option<u64>> {
        match self.owners.get(hash, kind, account, name) {
            Some(o) => Ok(o),
            None => Ok(st
                .resolve_name_hashed(hash, kind, account, name)?
                .map(|(key, _)| key)),
        }
    }

    /// `key` changes from a record with `old` names to `new`: the index
    /// of its op and the record (`None`: deleted).
    fn set(
        &mut self,
        st: &PeerState,
        key: u64,
        old: Option<OldNames>,
        new: Option<(usize, PeerRecordRef<'_>)>,
    ) -> Result<()> {
        if let Some((account, names)) = old {
            for (kind, name) in names {
                let hash = name_hash(kind, account, &name);
                if self.owner(st, hash, kind, account, &name)? == Some(key) {
                    self.owners.set(hash, kind, account, &name, None);
                }
            }
        }
        if let Some((_, r)) = &new {
            for (kind, name) in names_of(r) {
                let hash = name_hash(kind, r.account(), name);
                self.owners.set(hash, kind, r.account(), name, Some(key));
            }
        }
        self.records.insert(key, new.map(|(at, _)| at));
        Ok(())
    }
}

/// The min rule, on an encoded record: a full access hash already known
/// is kept over a min one or none, and a record saved without a hash
/// keeps the stored one.
fn merge_min(rec: &mut [u8], cur_hash: Option<i64>, cur_min: bool) {
    let flags = flags_of(rec);
    let (has, min) = (flags & HAS_HASH != 0, flags & MIN != 0);
    let known_full = cur_hash.is_some() && !cur_min;
    if known_full && (min || !has) {
        set_access_hash(rec, cur_hash, false);
    } else if !has {
        set_access_hash(rec, cur_hash, cur_min);
    }
}

/// Turns requested changes into log ops: applies the peer merge rules,
/// drops writes that change nothing, and moves usernames and phones that a
/// peer takes from another peer (the loser is rewritten without them).
pub(crate) fn resolve(st: &PeerState, changes: Vec<Change>) -> Result<Vec<Op>> {
    let keys: Vec<u64> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Peers(list) => Some(list.records().map(key_of)),
            _ => None,
        })
        .flatten()
        .collect();
    let mut ops = Vec::with_capacity(changes.len() + keys.len());
    let mut local = BatchPeers::default();
    local.records.reserve(keys.len());
    let mut slots = st.prefetch(&keys)?.into_iter();
    let malformed = |_| Error::Invalid("malformed peer record".into());
    for c in changes {
        match c {
            Change::Op(op) => {
                match &op {
                    Op::Put { key, value, .. } => check_put(key, value)?,
                    Op::Delete { key, .. } => check_key(key)?,
                    _ => {}
                }
                ops.push(op);
            }
            Change::DeletePeer(key) => {
                let Some(old) = local.current(st, &ops, key)? else {
                    continue;
                };
                let old = old_names(&old);
                ops.push(Op::DeletePeer(key));
                local.set(st, key, Some(old), None)?;
            }
            Change::Peers(mut list) => {
                for i in 0..list.ends.len() {
                    let bytes = list.record_mut(i);
                    let key = key_of(bytes);
                    let slot = slots.next();
                    // Re-saving a stored peer unchanged is the common case (a
                    // client saves the peers of every update): compare the
                    // encodings, without decoding the stored record.
                    if local.unchanged(st, &ops, key, slot, bytes) {
                        continue;
                    }
                    // Changed, or new. (`unchanged` applied the merge rules
                    // when it found the record; again here is a no-op.)
                    let old = match local.current_at(st, &ops, key, slot)? {
                        Some(cur) => {
                            merge_min(bytes, cur.access_hash(), cur.is_min());
                            Some(old_names(&cur))
                        }
                        None => None,
                    };
                    let rec = PeerRecordRef::checked_before(bytes).map_err(malformed)?;
                    let account = rec.account();
                    for (kind, name) in names_of(&rec) {
                        let hash = name_hash(kind, account, name);
                        let Some(other) = local.owner(st, hash, kind, account, name)? else {
                            continue;
                        };
                        if other == key {
                            continue;
                        }
                        let Some(loser) = local.current(st, &ops, other)? else {
                            continue;
                        };
                        let loser_old = old_names(&loser);
                        let mut loser = loser.to_owned();
                        match kind {
                            NameKind::Username => {
                                if loser.primary
                                    && loser
                                        .usernames
                                        .first()
                                        .is_some_and(|u| u.eq_ignore_ascii_case(name))
                                {
                                    loser.primary = false;
                                }
                                loser.usernames.retain(|u| !u.eq_ignore_ascii_case(name));
                            }
                            NameKind::Phone => loser.phone = None,
                        }
                        ops.push(Op::PutPeer(loser.encode()));
                        let at = ops.len() - 1;
                        local.set(
                            st,
                            other,
                            Some(loser_old),
                            Some((at, batch_record(&ops, at)?)),
                        )?;
                    }
                    ops.push(Op::PutPeer(bytes.to_vec()));
                    local.set(st, key, old, Some((ops.len() - 1, rec)))?;
                }
            }
        }
    }
    Ok(ops)
}
