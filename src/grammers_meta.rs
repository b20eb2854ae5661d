//! The account metadata layout the grammers adapter keeps
//! (src/grammers.rs) and the grammers session-file importer reads and
//! writes (src/migrate/grammers.rs): written once, so an imported account
//! opens through the adapter exactly as it would have been written by it.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use crate::format::codec::{DecodeError, Reader, Writer};

/// Metadata key prefix of a DC's addresses: `grammers/dc/<id>`.
pub(crate) const DC_PREFIX: &str = "grammers/dc/";

/// The metadata key of DC `id`'s addresses.
pub(crate) fn dc_key(id: i32) -> String {
    format!("{DC_PREFIX}{id}")
}

/// `grammers/dc/<id>`: version 1, IPv4 address and port, IPv6 address,
/// port, flow info and scope id (little-endian).
pub(crate) fn encode_dc_addrs(v4: SocketAddrV4, v6: SocketAddrV6) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(1)
        .raw(&v4.ip().octets())
        .u16(v4.port())
        .raw(&v6.ip().octets())
        .u16(v6.port())
        .u32(v6.flowinfo())
        .u32(v6.scope_id());
    w.buf
}

/// The addresses [`encode_dc_addrs`] wrote.
pub(crate) fn decode_dc_addrs(
    buf: &[u8],
) -> std::result::Result<(SocketAddrV4, SocketAddrV6), DecodeError> {
    const WHAT: &str = "grammers DC addresses";
    let mut r = Reader::new(buf, WHAT);
    if r.u8()? != 1 {
        return Err(DecodeError { what: WHAT });
    }
    let v4 = SocketAddrV4::new(Ipv4Addr::from(r.array::<4>()?), r.u16()?);
    let ip6 = Ipv6Addr::from(r.array::<16>()?);
    let v6 = SocketAddrV6::new(ip6, r.u16()?, r.u32()?, r.u32()?);
    r.finish()?;
    Ok((v4, v6))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dc_addresses_round_trip_and_refuse_a_cut() {
        let v4 = SocketAddrV4::new(Ipv4Addr::new(149, 154, 167, 51), 443);
        let v6 = SocketAddrV6::new("2001:67c:4e8:f002::a".parse().unwrap(), 443, 7, 9);
        let b = encode_dc_addrs(v4, v6);
        assert_eq!(decode_dc_addrs(&b), Ok((v4, v6)));
        assert!(decode_dc_addrs(&b[1..]).is_err());
        assert!(decode_dc_addrs(&b[..b.len() - 1]).is_err());
        assert_eq!(dc_key(2), "grammers/dc/2");
    }
}
