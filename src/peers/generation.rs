//! One immutable generation of the peer table: the mapped segment of
//! records and the index over it (ids and names), as a checkpoint wrote
//! them. Built by [`PeerGen::new`] (or [`PeerGen::empty`]) only.

use crate::error::{Error, Result};
use crate::format::index::{self, IndexView, NameKind};
use crate::format::peer_record::PeerRecordRef;
use crate::format::segment;
use crate::format::superblock::{Extent, SegmentRef};
use crate::sys::mmap::Region;

/// One immutable generation of the peer table: segment plus index.
#[derive(Debug)]
pub(crate) struct PeerGen {
    pub seg: Region,
    pub index: Region,
    pub header: index::Header,
    pub seg_ref: SegmentRef,
    /// Where the index lives in the file (len 0: only in memory).
    pub index_extent: Extent,
}

impl PeerGen {
    /// The one constructor: a segment and the index a checkpoint wrote (or
    /// built) over it.
    pub fn new(
        seg: Region,
        index: Region,
        header: index::Header,
        seg_ref: SegmentRef,
        index_extent: Extent,
    ) -> PeerGen {
        PeerGen {
            seg,
            index,
            header,
            seg_ref,
            index_extent,
        }
    }

    /// No peers: an empty segment and an index built over nothing.
    pub fn empty(load: f64) -> PeerGen {
        let region = index::build(std::iter::empty(), 0, 0, load);
        let header = index::Header::decode(&region).expect("a freshly built index is valid");
        PeerGen::new(
            Region::heap(vec![]),
            Region::heap(region),
            header,
            SegmentRef::default(),
            Extent::default(),
        )
    }

    /// A segment whose index is missing, stale or damaged (or of an older
    /// version): the index is built again in memory over its records.
    pub fn rebuilt(
        seg: Region,
        seg_ref: SegmentRef,
        index_extent: Extent,
        load: f64,
    ) -> Result<PeerGen> {
        let mut g = PeerGen::new(
            seg,
            Region::heap(vec![]),
            index::Header::default(),
            seg_ref,
            index_extent,
        );
        let mut recs = Vec::new();
        for e in g.records() {
            recs.push(e?);
        }
        let count = recs.len();
        let built = index::build(recs.into_iter(), count, seg_ref.offset, load);
        g.header =
            index::Header::decode(&built).map_err(|e| Error::corrupt(index_extent.offset, e))?;
        g.index = Region::heap(built);
        Ok(g)
    }

    #[inline]
    pub fn view(&self) -> IndexView<'_> {
        IndexView::trusted(&self.index, self.header)
    }

    /// The error for a slot of this generation's index that failed its
    /// check byte.
    #[cold]
    pub fn damaged(&self, d: index::Damaged) -> Error {
        damaged_error(d, self.damaged_offset(d))
    }

    /// The file offset of a damaged slot of this generation's index.
    #[cold]
    pub fn damaged_offset(&self, d: index::Damaged) -> u64 {
        self.index_extent.offset + d.offset_in(&self.header)
    }

    /// The record an id slot points at, checked against the slot's `key`.
    pub fn record_at(&self, off: u64, key: u64) -> Result<PeerRecordRef<'_>> {
        let bad =
            |what: &str| Error::corrupt(self.seg_ref.offset + off, format!("peer segment: {what}"));
        let bytes = segment::peer_at(&self.seg, off as usize).map_err(|e| bad(e.what))?;
        let rec = PeerRecordRef::parse(bytes).map_err(|_| bad("malformed peer record"))?;
        if key != rec.key() {
            return Err(bad("index slot points at another peer"));
        }
        Ok(rec)
    }

    /// The record at `off` with its bounds checked but not its contents
    /// ([`PeerRecordRef::checked_before`]), for name lookups: they compare
    /// bytes and read fixed fields, which needs neither valid UTF-8 nor
    /// ids in range, and full parsing was a fifth of their time.
    pub fn record_bounds_at(&self, off: u64) -> Result<PeerRecordRef<'_>> {
        let bad =
            |what: &str| Error::corrupt(self.seg_ref.offset + off, format!("peer segment: {what}"));
        let bytes = segment::peer_at(&self.seg, off as usize).map_err(|e| bad(e.what))?;
        PeerRecordRef::checked_before(bytes).map_err(|_| bad("malformed peer record"))
    }

    /// The record holding a name in this generation: the first of the name
    /// table's candidates for `hash` (the name's [`crate::format::index::name_hash`]) with the
    /// account and the name.
    pub fn name_owner(
        &self,
        hash: u64,
        kind: NameKind,
        account: u32,
        name: &str,
    ) -> Result<Option<PeerRecordRef<'_>>> {
        for off in self.view().names(kind, hash) {
            let rec = self.record_bounds_at(off.map_err(|d| self.damaged(d))?)?;
            if rec.account() == account && has_name(&rec, kind, name) {
                return Ok(Some(rec));
            }
        }
        Ok(None)
    }

    /// Every record in segment order.
    pub fn records(&self) -> impl Iterator<Item = Result<(u64, PeerRecordRef<'_>)>> + '_ {
        let base = self.seg_ref.offset;
        segment::peers(&self.seg).map(move |e| {
            let (off, bytes) = e.map_err(|(at, e)| {
                Error::corrupt(base + at as u64, format!("peer segment: {}", e.what))
            })?;
            let rec = PeerRecordRef::parse(bytes)
                .map_err(|_| Error::corrupt(base + off as u64, "malformed peer record"))?;
            Ok((off as u64, rec))
        })
    }
}

/// The error for an index slot that failed its check byte, at `offset`.
#[cold]
#[inline(never)]
pub(crate) fn damaged_error(d: index::Damaged, offset: u64) -> Error {
    Error::corrupt(
        offset,
        format!(
            "peer index: {:?} slot {} fails its check byte; Store::repair() rebuilds the index from the peer records",
            d.table, d.slot
        ),
    )
}

pub(crate) fn same(kind: NameKind, a: &[u8], b: &[u8]) -> bool {
    match kind {
        NameKind::Username => a == b || a.eq_ignore_ascii_case(b),
        NameKind::Phone => a == b,
    }
}

/// True when `r` holds the name (as [`same`] compares).
pub(crate) fn has_name(r: &PeerRecordRef<'_>, kind: NameKind, name: &str) -> bool {
    match kind {
        NameKind::Username => r.has_username(name),
        NameKind::Phone => r.has_phone(name),
    }
}
