//! Pyrogram's session strings: URL-safe base64 (unpadded) of dc `u8`,
//! api_id `u32`, test `u8`, key `[256]`, user_id `u64`, is_bot `u8` (271
//! bytes, big-endian), and the two older layouts (263 and 267 bytes). The
//! table of every format is in the parent module.

use super::*;

impl Session {
    /// Exports a Pyrogram session string (current 271-byte layout; a
    /// credential!).
    ///
    /// Needs `auth_key` and a non-negative `api_id`; `user_id: None` is
    /// written as 0. The server address is not part of the format.
    pub fn to_pyrogram_string(&self) -> Result<String, SessionStringError> {
        const F: SessionStringFormat = SessionStringFormat::Pyrogram;
        let dc = self.export_dc(F, self.test_mode)?;
        let api_id = u32::try_from(self.api_id).map_err(|_| E::BadField {
            format: F,
            field: "api_id",
        })?;
        let user_id = u64::try_from(self.user_id.unwrap_or(0)).map_err(|_| E::BadField {
            format: F,
            field: "user_id",
        })?;
        let key = self.export_key(F)?;
        let mut raw = Vec::with_capacity(271);
        raw.push(dc);
        raw.extend_from_slice(&api_id.to_be_bytes());
        raw.push(u8::from(self.test_mode));
        raw.extend_from_slice(key.as_bytes());
        raw.extend_from_slice(&user_id.to_be_bytes());
        raw.push(u8::from(self.is_bot));
        let out = URL_SAFE_NO_PAD.encode(&raw);
        raw.fill(0);
        Ok(out)
    }

    /// Imports a Pyrogram session string in any of its three layouts (271,
    /// 267 or 263 decoded bytes; padding optional).
    ///
    /// Pyrogram strings carry no address: `server_addr`/`port` are filled
    /// from [`dc_address`] (port 443 in production, 80 on test servers).
    /// `user_id` 0 becomes `None`; old layouts have no `api_id` (set to 0).
    pub fn from_pyrogram_string(s: &str) -> Result<Session, SessionStringError> {
        const F: SessionStringFormat = SessionStringFormat::Pyrogram;
        let s = trimmed(s)?;
        let raw = URL_SAFE_LENIENT
            .decode(s)
            .map_err(|_| E::BadBase64 { format: F })?;
        parse_pyrogram(&raw)
    }
}

fn parse_pyrogram(raw: &[u8]) -> Result<Session, E> {
    const F: SessionStringFormat = SessionStringFormat::Pyrogram;
    let bool_at = |i: usize, field| match raw[i] {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(E::BadField { format: F, field }),
    };
    // (api_id, test_mode offset, key offset, user_id width)
    let (api_id, test_at, key_at, uid_len) = match raw.len() {
        271 => {
            let api = u32::from_be_bytes([raw[1], raw[2], raw[3], raw[4]]);
            let api = i32::try_from(api).map_err(|_| E::BadField {
                format: F,
                field: "api_id",
            })?;
            (api, 5, 6, 8)
        }
        267 => (0, 1, 2, 8),
        263 => (0, 1, 2, 4),
        got => {
            return Err(E::WrongLength {
                format: F,
                expected: ExpectedLength::OneOf(PYROGRAM_LENS),
                got,
            });
        }
    };
    let test_mode = bool_at(test_at, "test_mode")?;
    let dc_id = i32::from(raw[0]);
    let (addr, port) = dc_address(dc_id, test_mode).ok_or(E::BadField {
        format: F,
        field: "dc_id",
    })?;
    let auth_key = key_from(&raw[key_at..key_at + AUTH_KEY_LEN], F)?;
    let uid = &raw[key_at + AUTH_KEY_LEN..key_at + AUTH_KEY_LEN + uid_len];
    let user_id = if uid_len == 4 {
        i64::from(u32::from_be_bytes([uid[0], uid[1], uid[2], uid[3]]))
    } else {
        let mut b = [0u8; 8];
        b.copy_from_slice(uid);
        i64::try_from(u64::from_be_bytes(b)).map_err(|_| E::BadField {
            format: F,
            field: "user_id",
        })?
    };
    let is_bot = bool_at(raw.len() - 1, "is_bot")?;
    Ok(Session {
        dc_id,
        server_addr: Some(addr),
        port,
        api_id,
        test_mode,
        auth_key: Some(auth_key),
        user_id: (user_id != 0).then_some(user_id),
        is_bot,
        ..Session::default()
    })
}
