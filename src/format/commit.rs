//! Commit payload: what one log frame of kind `COMMIT` carries.
//!
//! | offset | size | field | meaning |
//! |---|---|---|---|
//! | 0 | 8 | seq | commit sequence number, +1 per commit |
//! | 8 | 8 | synced_through | highest seq known durable when written |
//! | 16 | 4 | op_count | |
//! | 20 | … | ops | `op_count` ops |
//!
//! Ops (first byte is the op code):
//! - `1` put: `u8 bucket, u32 key_len, key, u32 value_len, value`
//! - `2` delete: `u8 bucket, u32 key_len, key`
//! - `3` put peer: `u32 len, peer record`
//! - `4` delete peer: `u64 peer key`

use super::NUM_BUCKETS;
use super::peer_record::PeerRecordRef;
use crate::format::codec::{DecodeError, Reader, Writer};

/// Where the commit's seq lives (u64).
pub const SEQ_OFFSET: usize = 0;
/// Where `synced_through` lives (u64).
pub const SYNCED_THROUGH_OFFSET: usize = 8;
/// Where the op count lives (u32).
pub const OP_COUNT_OFFSET: usize = 16;
/// Bytes before the ops.
pub const HEADER_LEN: usize = 20;

/// One change inside a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Sets `key` in a generic bucket.
    Put {
        /// Bucket number.
        bucket: u8,
        /// Key.
        key: Vec<u8>,
        /// Value.
        value: Vec<u8>,
    },
    /// Removes `key` from a generic bucket.
    Delete {
        /// Bucket number.
        bucket: u8,
        /// Key.
        key: Vec<u8>,
    },
    /// Stores an encoded, validated peer record.
    PutPeer(Vec<u8>),
    /// Removes a peer by its packed key.
    DeletePeer(u64),
}

impl Op {
    /// Encoded size.
    pub fn encoded_len(&self) -> usize {
        self.as_ref().encoded_len()
    }

    /// The op with its bytes borrowed.
    pub fn as_ref(&self) -> OpRef<'_> {
        match self {
            Op::Put { bucket, key, value } => OpRef::Put {
                bucket: *bucket,
                key,
                value,
            },
            Op::Delete { bucket, key } => OpRef::Delete {
                bucket: *bucket,
                key,
            },
            Op::PutPeer(r) => OpRef::PutPeer(r),
            Op::DeletePeer(k) => OpRef::DeletePeer(*k),
        }
    }
}

/// An [`Op`] whose bytes are borrowed, for writers that encode what they
/// already hold (a checkpoint carrying its changes into the new log) without
/// copying each key, value and record into an `Op` first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpRef<'a> {
    /// [`Op::Put`].
    Put {
        /// Bucket number.
        bucket: u8,
        /// Key.
        key: &'a [u8],
        /// Value.
        value: &'a [u8],
    },
    /// [`Op::Delete`].
    Delete {
        /// Bucket number.
        bucket: u8,
        /// Key.
        key: &'a [u8],
    },
    /// [`Op::PutPeer`].
    PutPeer(&'a [u8]),
    /// [`Op::DeletePeer`].
    DeletePeer(u64),
}

impl OpRef<'_> {
    /// Encoded size.
    pub fn encoded_len(&self) -> usize {
        match self {
            OpRef::Put { key, value, .. } => 10 + key.len() + value.len(),
            OpRef::Delete { key, .. } => 6 + key.len(),
            OpRef::PutPeer(r) => 5 + r.len(),
            OpRef::DeletePeer(_) => 9,
        }
    }
}

/// A decoded commit header plus its ops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// Sequence number.
    pub seq: u64,
    /// Highest seq durable when this commit was written.
    pub synced_through: u64,
    /// The changes.
    pub ops: Vec<Op>,
}

/// Encodes a commit payload.
pub fn encode(seq: u64, synced_through: u64, ops: &[Op]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + ops.iter().map(Op::encoded_len).sum::<usize>());
    encode_into(seq, synced_through, ops, &mut out);
    out
}

/// Appends a commit payload to `out`.
pub fn encode_into(seq: u64, synced_through: u64, ops: &[Op], out: &mut Vec<u8>) {
    encode_refs_into(seq, synced_through, ops.iter().map(Op::as_ref), out)
}

/// [`encode_into`] for borrowed ops.
pub fn encode_refs_into<'a>(
    seq: u64,
    synced_through: u64,
    ops: impl ExactSizeIterator<Item = OpRef<'a>>,
    out: &mut Vec<u8>,
) {
    let mut w = Writer {
        buf: std::mem::take(out),
    };
    w.u64(seq).u64(synced_through).u32(ops.len() as u32);
    for op in ops {
        match op {
            OpRef::Put { bucket, key, value } => w.u8(1).u8(bucket).bytes(key).bytes(value),
            OpRef::Delete { bucket, key } => w.u8(2).u8(bucket).bytes(key),
            OpRef::PutPeer(r) => w.u8(3).bytes(r),
            OpRef::DeletePeer(k) => w.u8(4).u64(k),
        };
    }
    *out = w.buf;
}

/// Reads only the header fields (seq, synced_through).
pub fn peek(payload: &[u8]) -> Result<(u64, u64), DecodeError> {
    let mut r = Reader::new(payload, "commit header");
    Ok((r.u64()?, r.u64()?))
}

/// Decodes a commit payload. Every op is checked (bucket numbers, peer
/// records); op_count cannot make it allocate past the payload's size.
pub fn decode(payload: &[u8]) -> Result<Commit, DecodeError> {
    let mut r = Reader::new(payload, "commit");
    let seq = r.u64()?;
    let synced_through = r.u64()?;
    let count = r.u32()? as usize;
    let mut ops = Vec::with_capacity(count.min(payload.len() / 9));
    let bad = DecodeError { what: "commit op" };
    for _ in 0..count {
        let op = match r.u8()? {
            c @ (1 | 2) => {
                let bucket = r.u8()?;
                if bucket as usize >= NUM_BUCKETS || bucket == super::bucket::PEERS {
                    return Err(bad);
                }
                let key = r.bytes()?.to_vec();
                if c == 1 {
                    Op::Put {
                        bucket,
                        key,
                        value: r.bytes()?.to_vec(),
                    }
                } else {
                    Op::Delete { bucket, key }
                }
            }
            3 => {
                let rec = r.bytes()?;
                PeerRecordRef::parse(rec)?;
                Op::PutPeer(rec.to_vec())
            }
            4 => Op::DeletePeer(r.u64()?),
            _ => return Err(bad),
        };
        ops.push(op);
    }
    r.finish()?;
    Ok(Commit {
        seq,
        synced_through,
        ops,
    })
}

#[cfg(test)]
#[expect(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    reason = "tests: a panic is a failed test"
)]
mod tests {
    use super::super::peer_record::PeerRecord;
    use super::*;

    fn sample() -> Vec<Op> {
        let rec = PeerRecord {
            account: 1,
            peer_id: 5,
            access_hash: Some(9),
            ..Default::default()
        };
        vec![
            Op::Put {
                bucket: 0,
                key: b"k".to_vec(),
                value: b"v".to_vec(),
            },
            Op::Delete {
                bucket: 7,
                key: b"gone".to_vec(),
            },
            Op::PutPeer(rec.encode()),
            Op::DeletePeer(77),
        ]
    }

    #[test]
    fn roundtrip() {
        let ops = sample();
        let p = encode(42, 41, &ops);
        assert_eq!(
            p.len(),
            HEADER_LEN + ops.iter().map(Op::encoded_len).sum::<usize>()
        );
        assert_eq!(
            decode(&p).unwrap(),
            Commit {
                seq: 42,
                synced_through: 41,
                ops
            }
        );
        assert_eq!(peek(&p).unwrap(), (42, 41));
    }

    #[test]
    fn detects_corruption() {
        let p = encode(42, 41, &sample());
        for cut in 0..p.len() {
            assert!(decode(&p[..cut]).is_err(), "cut {cut}");
        }
        let mut extra = p.clone();
        extra.push(0);
        assert!(decode(&extra).is_err());
        // A huge op count in a tiny payload is an error, not an allocation.
        let mut huge = encode(1, 0, &[]);
        huge[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&huge).is_err());
        // Ops naming the peer bucket or an unknown bucket are rejected.
        let bad = encode(
            1,
            0,
            &[Op::Put {
                bucket: 2,
                key: vec![],
                value: vec![],
            }],
        );
        assert!(decode(&bad).is_err());
    }
}
