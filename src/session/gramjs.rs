//! GramJS's `StringSession`: `"1"` + standard base64 (padded) of dc `u8`,
//! address length `i16`, ASCII IP, port `i16`, key `[256]` (big-endian).
//! The table of every format is in the parent module.

use super::*;

impl Session {
    /// Exports a GramJS `StringSession` string (a credential!).
    ///
    /// Needs `server_addr` and `auth_key`; the port must fit in an `i16`.
    pub fn to_gramjs_string(&self) -> Result<String, SessionStringError> {
        const F: SessionStringFormat = SessionStringFormat::GramJs;
        let dc = self.export_dc(F, false)?;
        let addr = self.server_addr.ok_or(E::MissingField {
            format: F,
            field: "server_addr",
        })?;
        let port = i16::try_from(self.port).map_err(|_| E::BadField {
            format: F,
            field: "port",
        })?;
        let key = self.export_key(F)?;
        let text = addr.to_string();
        let mut raw = Vec::with_capacity(GRAMJS_FIXED + text.len());
        raw.push(dc);
        // An IP literal is at most 45 bytes.
        raw.extend_from_slice(&(text.len() as i16).to_be_bytes());
        raw.extend_from_slice(text.as_bytes());
        raw.extend_from_slice(&port.to_be_bytes());
        raw.extend_from_slice(key.as_bytes());
        let out = format!("1{}", STANDARD.encode(&raw));
        raw.fill(0);
        Ok(out)
    }

    /// Imports a GramJS `StringSession` string. The address must be an IP
    /// literal: host names are rejected.
    ///
    /// Sets `dc_id`, `server_addr`, `port`, `auth_key` and, as for Telethon,
    /// `test_mode` from the address.
    pub fn from_gramjs_string(s: &str) -> Result<Session, SessionStringError> {
        const F: SessionStringFormat = SessionStringFormat::GramJs;
        let body = strip_prefix(s, F)?;
        let raw = STANDARD_LENIENT
            .decode(body)
            .map_err(|_| E::BadBase64 { format: F })?;
        parse_gramjs(&raw)
    }
}

fn parse_gramjs(raw: &[u8]) -> Result<Session, E> {
    const F: SessionStringFormat = SessionStringFormat::GramJs;
    if raw.len() < 3 {
        return Err(E::WrongLength {
            format: F,
            expected: ExpectedLength::Exactly(GRAMJS_FIXED + 7),
            got: raw.len(),
        });
    }
    let dc_id = i32::from(raw[0]);
    if !valid_dc(dc_id, false) {
        return Err(E::BadField {
            format: F,
            field: "dc_id",
        });
    }
    let declared = i16::from_be_bytes([raw[1], raw[2]]);
    let addr_len = match usize::try_from(declared) {
        Ok(n) if (1..=GRAMJS_MAX_ADDR).contains(&n) => n,
        _ => {
            return Err(E::BadField {
                format: F,
                field: "address_length",
            });
        }
    };
    if raw.len() != GRAMJS_FIXED + addr_len {
        return Err(E::WrongLength {
            format: F,
            expected: ExpectedLength::Exactly(GRAMJS_FIXED + addr_len),
            got: raw.len(),
        });
    }
    let text = std::str::from_utf8(&raw[3..3 + addr_len])
        .ok()
        .filter(|t| t.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or(E::BadField {
            format: F,
            field: "server_addr",
        })?;
    let addr: IpAddr = match text.parse() {
        Ok(a) => a,
        Err(_) => {
            return Err(E::UnsupportedAddress {
                format: F,
                reason: "not an IP literal (host names are not supported)",
            });
        }
    };
    if addr.is_unspecified() {
        return Err(E::UnsupportedAddress {
            format: F,
            reason: "unspecified address",
        });
    }
    let p = 3 + addr_len;
    let port = i16::from_be_bytes([raw[p], raw[p + 1]]);
    let port = u16::try_from(port)
        .ok()
        .filter(|&p| p != 0)
        .ok_or(E::BadField {
            format: F,
            field: "port",
        })?;
    let auth_key = key_from(&raw[p + 2..], F)?;
    Ok(Session {
        dc_id,
        server_addr: Some(addr),
        port,
        test_mode: is_test_dc(dc_id, addr),
        auth_key: Some(auth_key),
        ..Session::default()
    })
}
