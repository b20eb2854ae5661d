//! Record frame: the unit of the log.
//!
//! | offset | size | field | meaning |
//! |---|---|---|---|
//! | 0 | 4 | len | payload length in bytes |
//! | 4 | 2 | len_check | low 16 bits of `masked_crc(len bytes)` |
//! | 6 | 1 | kind | [`KIND_COMMIT`]; 0 is never valid |
//! | 7 | 1 | reserved | 0 |
//! | 8 | n | payload | |
//! | 8+n | 4 | crc | `masked_crc(bytes 0 .. 8+n)` |
//!
//! The separate length check stops a torn or flipped length from steering a
//! read far past the record; zero-filled space fails it.

use super::masked_crc;

/// Bytes before the payload.
pub const HEADER_LEN: usize = 8;
/// Bytes after the payload.
pub const TRAILER_LEN: usize = 4;
/// Offset of the length check.
pub const LEN_CHECK_OFFSET: usize = 4;
/// Offset of the kind byte.
pub const KIND_OFFSET: usize = 6;
/// Kind of a commit frame (the only kind in version 1).
pub const KIND_COMMIT: u8 = 1;

/// Total bytes a frame with `payload_len` bytes of payload takes.
pub const fn framed_len(payload_len: usize) -> usize {
    HEADER_LEN + payload_len + TRAILER_LEN
}

fn len_check(len: u32) -> u16 {
    masked_crc(&len.to_le_bytes()) as u16
}

/// Appends one frame around `payload` to `out`.
pub fn encode(kind: u8, payload: &[u8], out: &mut Vec<u8>) {
    encode_with(kind, out, |o| o.extend_from_slice(payload));
}

/// Appends one frame whose payload `write` appends in place (no copy).
#[expect(
    clippy::indexing_slicing,
    reason = "`out` was just extended by HEADER_LEN bytes at `start`: every index is below `start + HEADER_LEN`"
)]
pub fn encode_with(kind: u8, out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    write(out);
    let len = (out.len() - start - HEADER_LEN) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 6].copy_from_slice(&len_check(len).to_le_bytes());
    out[start + KIND_OFFSET] = kind;
    let crc = masked_crc(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// Why bytes did not parse as a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer bytes than a header, or than the header's length announces.
    Short,
    /// The length check or reserved byte is wrong: not a frame start.
    BadHeader,
    /// Header fine, CRC wrong: a torn or damaged frame.
    BadCrc,
}

/// A parsed frame, borrowing its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The kind byte.
    pub kind: u8,
    /// The payload.
    pub payload: &'a [u8],
}

impl Frame<'_> {
    /// Bytes the whole frame takes.
    pub fn len(&self) -> usize {
        framed_len(self.payload.len())
    }
    /// True for an empty payload.
    pub fn is_empty(&self) -> bool {
        self.payload.is_empty()
    }
}

/// Checks the header at the start of `buf` without touching the payload:
/// the kind and the payload length it announces (O(1), no CRC).
#[expect(
    clippy::indexing_slicing,
    reason = "`header` is the first HEADER_LEN bytes, taken with `get`; the offsets are constants below it"
)]
pub fn decode_header(buf: &[u8]) -> Result<(u8, u32), FrameError> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Err(FrameError::Short);
    };
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let check = u16::from_le_bytes([header[4], header[5]]);
    if check != len_check(len) || header[KIND_OFFSET] == 0 || header[7] != 0 {
        return Err(FrameError::BadHeader);
    }
    Ok((header[KIND_OFFSET], len))
}

/// Parses the frame at the start of `buf` (which may hold more after it).
#[expect(
    clippy::indexing_slicing,
    reason = "`decode_header` proved `buf` holds HEADER_LEN bytes; `body` (at least HEADER_LEN bytes) and `crc` (TRAILER_LEN) were taken with `get`"
)]
pub fn decode(buf: &[u8]) -> Result<Frame<'_>, FrameError> {
    let (_, len) = decode_header(buf)?;
    let header = &buf[..HEADER_LEN];
    let end = HEADER_LEN + len as usize;
    let (Some(body), Some(crc)) = (buf.get(..end), buf.get(end..end + TRAILER_LEN)) else {
        return Err(FrameError::Short);
    };
    let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if stored != masked_crc(body) {
        return Err(FrameError::BadCrc);
    }
    Ok(Frame {
        kind: header[KIND_OFFSET],
        payload: &body[HEADER_LEN..],
    })
}

#[cfg(test)]
#[expect(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    reason = "tests: a panic is a failed test"
)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let mut out = vec![];
        encode(KIND_COMMIT, b"hello", &mut out);
        encode(KIND_COMMIT, b"", &mut out);
        let f = decode(&out).unwrap();
        assert_eq!((f.kind, f.payload), (KIND_COMMIT, &b"hello"[..]));
        let g = decode(&out[f.len()..]).unwrap();
        assert!(g.is_empty());
        assert_eq!(f.len() + g.len(), out.len());
    }

    #[test]
    fn detects_corruption() {
        let mut out = vec![];
        encode(KIND_COMMIT, b"some payload", &mut out);
        for i in 0..out.len() {
            for bit in 0..8 {
                let mut bad = out.clone();
                bad[i] ^= 1 << bit;
                assert!(decode(&bad).is_err(), "flip of byte {i} bit {bit} passed");
            }
        }
        for cut in 0..out.len() {
            assert!(decode(&out[..cut]).is_err());
        }
        assert_eq!(decode(&[0u8; 64]), Err(FrameError::BadHeader));
    }
}
