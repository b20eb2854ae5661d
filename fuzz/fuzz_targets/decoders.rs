//! (c) Each decoder alone. The first byte picks the decoder, the rest is
//! its input. Besides "no panic", every decoder that accepts its input must
//! re-encode it to an equal value (byte-exact where the encoding is
//! canonical), and index lookups must end.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerlog::codec::Reader;
use peerlog::format::commit;
use peerlog::format::frame;
use peerlog::format::index::{self, IndexView, NameKind};
use peerlog::format::masked_crc;
use peerlog::format::peer_record::PeerRecordRef;
use peerlog::format::segment;
use peerlog::format::superblock::{self, Superblock};
use peerlog::{
    ChannelState, Conversation, DcAuth, DurableUpdate, Peer, PeerId, Session, UpdateState,
};

fn frame(data: &[u8]) {
    if let Ok(f) = frame::decode(data) {
        let mut out = Vec::new();
        frame::encode(f.kind, f.payload, &mut out);
        assert_eq!(&out[..], &data[..f.len()], "frame re-encodes");
    }
}

fn commit(data: &[u8]) {
    let peek = commit::peek(data);
    if let Ok(c) = commit::decode(data) {
        assert_eq!(peek, Ok((c.seq, c.synced_through)));
        let out = commit::encode(c.seq, c.synced_through, &c.ops);
        assert_eq!(out, data, "commit re-encodes");
    }
}

fn superblock(data: &[u8]) {
    let mut img = [0u8; superblock::SIZE];
    let n = data.len().min(img.len());
    img[..n].copy_from_slice(&data[..n]);
    let mut sealed = img;
    let crc = masked_crc(&sealed[..superblock::CRC_OFFSET]);
    sealed[superblock::CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
    // As given, and re-sealed so that every field is reached.
    for img in [img, sealed] {
        if let Ok(sb) = Superblock::decode(&img) {
            // Encoding always writes the current version (an older
            // one is upgraded by the next checkpoint).
            let current = Superblock {
                version: superblock::FORMAT_VERSION,
                ..sb
            };
            assert_eq!(
                Superblock::decode(&sb.encode()),
                Ok(current),
                "superblock re-encodes"
            );
            let _ = sb.regions();
        }
    }
}

fn index(data: &[u8]) {
    if data.len() >= index::HEADER_LEN {
        // Re-sealed header: reach the length and table checks.
        let mut sealed = data.to_vec();
        let crc = masked_crc(&sealed[..index::HEADER_CRC_OFFSET]);
        sealed[index::HEADER_CRC_OFFSET..index::HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
        index_view(&sealed);
    }
    index_view(data);
}

fn index_view(data: &[u8]) {
    let _ = index::Header::decode(data);
    let Ok(view) = IndexView::new(data) else {
        return;
    };
    let _ = index::slots_crc_ok(data, &view.header);
    // Probe with keys and hashes taken from the input itself, so that
    // lookups hit, miss and wrap around full tables.
    for chunk in data.chunks_exact(8).take(64) {
        let k = u64::from_le_bytes(chunk.try_into().unwrap());
        let _ = view.get(k);
        let _ = view.get(k & ((1 << 42) - 1));
        for kind in [NameKind::Username, NameKind::Phone] {
            let n = view.names(kind, k).count();
            assert!(n <= view.name_slots(kind).len(), "name probe ends");
        }
    }
    for s in view.id_slots() {
        let _ = (s.key(), s.access_hash(), s.offset(), s.flags());
    }
}

fn peer_record(data: &[u8]) {
    let Ok(r) = PeerRecordRef::parse(data) else {
        return;
    };
    let _ = (r.key(), r.flags(), r.access_hash(), r.is_min(), r.phone());
    let names: Vec<&str> = r.usernames().collect();
    for n in &names {
        assert!(r.has_username(n));
    }
    let owned = r.to_owned();
    assert_eq!(owned.usernames, names);
    owned.validate().expect("a parsed record validates");
    // The one non-canonical field: without the has-hash flag, the hash
    // bytes are ignored (written as 0).
    let mut canonical = data.to_vec();
    if r.access_hash().is_none() {
        canonical[12..20].fill(0);
    }
    assert_eq!(owned.encode(), canonical, "peer record re-encodes");
    // The typed tail, as the account layer reads it.
    let mut p = Peer::new(PeerId::user(1));
    let mut rd = Reader::new(r.tail(), "peer tail");
    if Peer::decode_tail(&mut rd, &mut p).is_ok() && rd.finish().is_ok() {
        let mut w = peerlog::codec::Writer::new();
        p.encode_tail(&mut w);
        assert_eq!(w.buf, r.tail(), "peer tail re-encodes");
    }
    // The index builder over the record, then lookups through it.
    let bytes = index::build(std::iter::once((0u64, r)), 1, 8192, 0.75);
    let view = IndexView::new(&bytes).expect("a built index decodes");
    assert!(index::slots_crc_ok(&bytes, &view.header));
    assert!(
        matches!(view.get(r.key()), Ok(Some(_))),
        "a built index finds its record"
    );
}

fn segments(data: &[u8]) {
    let mut at = 0usize;
    for e in segment::entries(data) {
        match e {
            Ok((k, v)) => at += segment::entry_len(k, v),
            Err((pos, _)) => {
                assert_eq!(pos, at);
                break;
            }
        }
    }
    for e in segment::peers(data) {
        if let Ok((off, rec)) = e {
            assert_eq!(segment::peer_at(data, off), Ok(rec));
        }
    }
    // Offsets taken from the input.
    for chunk in data.chunks_exact(8).take(16) {
        let off = u64::from_le_bytes(chunk.try_into().unwrap()) & ((1 << 40) - 1);
        let _ = segment::peer_at(data, off as usize);
    }
}

macro_rules! roundtrip {
    ($t:ty, $data:expr) => {
        if let Ok(v) = <$t>::decode($data) {
            assert_eq!(v.encode(), $data, concat!(stringify!($t), " re-encodes"));
        }
    };
}

fn typed(sel: u8, data: &[u8]) {
    match sel % 6 {
        0 => roundtrip!(Session, data),
        1 => roundtrip!(DcAuth, data),
        2 => roundtrip!(UpdateState, data),
        3 => roundtrip!(ChannelState, data),
        4 => roundtrip!(DurableUpdate, data),
        _ => roundtrip!(Conversation, data),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    match sel % 8 {
        0 => frame(rest),
        1 => commit(rest),
        2 => superblock(rest),
        3 => index(rest),
        4 => peer_record(rest),
        5 => segments(rest),
        6 => typed(sel / 8, rest),
        _ => {
            // Every decoder on the same bytes.
            frame(rest);
            commit(rest);
            superblock(rest);
            index(rest);
            peer_record(rest);
            segments(rest);
            for t in 0..6 {
                typed(t, rest);
            }
        }
    }
});
