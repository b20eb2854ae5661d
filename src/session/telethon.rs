//! Telethon's `StringSession`: `"1"` + URL-safe base64 (padded) of dc
//! `u8`, IPv4 `[4]` or IPv6 `[16]`, port `u16`, key `[256]` (263 or 275
//! bytes, big-endian). The table of every format is in the parent module.

use super::*;

impl Session {
    /// Exports a Telethon `StringSession` string (a credential!).
    ///
    /// Needs `server_addr` and `auth_key`; uses `dc_id`, `server_addr` and
    /// `port` only.
    pub fn to_telethon_string(&self) -> Result<String, SessionStringError> {
        const F: SessionStringFormat = SessionStringFormat::Telethon;
        let dc = self.export_dc(F, false)?;
        let addr = self.server_addr.ok_or(E::MissingField {
            format: F,
            field: "server_addr",
        })?;
        let key = self.export_key(F)?;
        let mut raw = Vec::with_capacity(275);
        raw.push(dc);
        match addr {
            IpAddr::V4(a) => raw.extend_from_slice(&a.octets()),
            IpAddr::V6(a) => raw.extend_from_slice(&a.octets()),
        }
        raw.extend_from_slice(&self.port.to_be_bytes());
        raw.extend_from_slice(key.as_bytes());
        let out = format!("1{}", URL_SAFE.encode(&raw));
        raw.fill(0);
        Ok(out)
    }

    /// Imports a Telethon `StringSession` string.
    ///
    /// Sets `dc_id`, `server_addr`, `port` and `auth_key`; `test_mode` is set
    /// when the address is the well-known test DC address for `dc_id`.
    pub fn from_telethon_string(s: &str) -> Result<Session, SessionStringError> {
        const F: SessionStringFormat = SessionStringFormat::Telethon;
        let body = strip_prefix(s, F)?;
        let raw = URL_SAFE_LENIENT
            .decode(body)
            .map_err(|_| E::BadBase64 { format: F })?;
        parse_telethon(&raw)
    }
}

fn parse_telethon(raw: &[u8]) -> Result<Session, E> {
    const F: SessionStringFormat = SessionStringFormat::Telethon;
    let ip_len = match raw.len() {
        263 => 4,
        275 => 16,
        got => {
            return Err(E::WrongLength {
                format: F,
                expected: ExpectedLength::OneOf(TELETHON_LENS),
                got,
            });
        }
    };
    let dc_id = i32::from(raw[0]);
    if !valid_dc(dc_id, false) {
        return Err(E::BadField {
            format: F,
            field: "dc_id",
        });
    }
    let ip = &raw[1..1 + ip_len];
    if ip[0] == 0 {
        return Err(E::UnsupportedAddress {
            format: F,
            reason: "address in 0.0.0.0/8 or 0::/8",
        });
    }
    let addr = match <[u8; 4]>::try_from(ip) {
        Ok(v4) => IpAddr::V4(Ipv4Addr::from(v4)),
        Err(_) => {
            let mut v6 = [0u8; 16];
            v6.copy_from_slice(ip);
            IpAddr::V6(Ipv6Addr::from(v6))
        }
    };
    let port = be_u16(&raw[1 + ip_len..3 + ip_len]);
    if port == 0 {
        return Err(E::BadField {
            format: F,
            field: "port",
        });
    }
    let auth_key = key_from(&raw[3 + ip_len..], F)?;
    Ok(Session {
        dc_id,
        server_addr: Some(addr),
        port,
        test_mode: is_test_dc(dc_id, addr),
        auth_key: Some(auth_key),
        ..Session::default()
    })
}
