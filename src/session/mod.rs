//! The logged-in session: auth key, data center, account summary, and
//! conversion to and from the session strings of Telethon, Pyrogram and
//! GramJS.
//!
//! # Security
//!
//! An [`AuthKey`] — and therefore a [`Session`], a [`DcAuth`] and **every
//! session string** — is a credential: anyone holding it is logged in as the
//! account, without a password or a second factor. Never log it, never put it
//! in error reports, and store it like a password. The `Debug` impls here
//! redact key bytes (and the `api_hash`), errors never contain input text, and
//! with the `serde` feature the key is skipped unless the caller opts in via
//! [`crate::expose_auth_key`].
//!
//! # Session strings
//!
//! | format   | text                                    | decoded bytes (big-endian)                                        |
//! |----------|-----------------------------------------|-------------------------------------------------------------------|
//! | Telethon | `"1"` + URL-safe base64, padded         | dc `u8`, IPv4 `[4]` or IPv6 `[16]`, port `u16`, key `[256]` (263 / 275) |
//! | Pyrogram | URL-safe base64, unpadded               | dc `u8`, api_id `u32`, test `u8`, key `[256]`, user_id `u64`, is_bot `u8` (271) |
//! | Pyrogram (old) | same                              | dc `u8`, test `u8`, key `[256]`, user_id `u32` (263) or `u64` (267), is_bot `u8` |
//! | GramJS   | `"1"` + standard base64, padded         | dc `u8`, addr len `i16`, ASCII IP `[len]`, port `i16`, key `[256]` |
//!
//! Importers trim surrounding whitespace and accept base64 with or without
//! padding. Valid DC ids are `1..=5` (`1..=3` for test servers).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use crate::format::codec::{DecodeError, Reader, Writer};

/// Length of an MTProto authorization key in bytes.
pub const AUTH_KEY_LEN: usize = 256;

/// A 2048-bit MTProto authorization key.
///
/// `Debug` prints `AuthKey(<redacted>)`; equality is constant-time; the bytes
/// are overwritten with zeros (best effort) when the value is dropped. With
/// the `serde` feature it implements neither `Serialize` nor `Deserialize`:
/// use [`crate::expose_auth_key`] to opt in.
///
/// ```
/// use peerlog::AuthKey;
/// let key = AuthKey::new([7; 256]);
/// assert_eq!(format!("{key:?}"), "AuthKey(<redacted>)");
/// assert_eq!(AuthKey::from_slice(key.as_bytes()), Some(key));
/// assert_eq!(AuthKey::from_slice(&[7; 255]), None);
/// ```
#[derive(Clone)]
pub struct AuthKey([u8; AUTH_KEY_LEN]);

impl AuthKey {
    /// Wraps raw key bytes.
    pub const fn new(bytes: [u8; AUTH_KEY_LEN]) -> Self {
        AuthKey(bytes)
    }
    /// Copies a key from a slice of exactly 256 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let arr: [u8; AUTH_KEY_LEN] = bytes.try_into().ok()?;
        Some(AuthKey(arr))
    }
    /// The raw key bytes (secret!).
    pub const fn as_bytes(&self) -> &[u8; AUTH_KEY_LEN] {
        &self.0
    }
    /// True if every byte is zero (Telethon's "no key" marker).
    pub fn is_zero(&self) -> bool {
        self.0.iter().fold(0u8, |acc, b| acc | b) == 0
    }
}

impl PartialEq for AuthKey {
    fn eq(&self, other: &Self) -> bool {
        // Constant-time: no early exit on the first differing byte.
        let diff = self
            .0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

impl Eq for AuthKey {}

impl fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthKey(<redacted>)")
    }
}

impl Drop for AuthKey {
    fn drop(&mut self) {
        self.0.fill(0);
        std::hint::black_box(&mut self.0);
    }
}

/// Prints `<redacted>` in `Debug` output.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

const PROD_DCS: [[u8; 4]; 5] = [
    [149, 154, 175, 53],
    [149, 154, 167, 51],
    [149, 154, 175, 100],
    [149, 154, 167, 91],
    [91, 108, 56, 130],
];
const TEST_DCS: [[u8; 4]; 3] = [
    [149, 154, 175, 10],
    [149, 154, 167, 40],
    [149, 154, 175, 117],
];

/// Port of the production DCs in [`dc_address`].
pub const PROD_PORT: u16 = 443;
/// Port of the test DCs in [`dc_address`].
pub const TEST_PORT: u16 = 80;

/// The well-known IPv4 address and port of a Telegram data center.
///
/// Production DCs 1–5 use port 443; test DCs 1–3 use port 80. Other ids give
/// `None`.
///
/// ```
/// use peerlog::dc_address;
/// assert_eq!(dc_address(2, false), Some(("149.154.167.51".parse().unwrap(), 443)));
/// assert_eq!(dc_address(2, true), Some(("149.154.167.40".parse().unwrap(), 80)));
/// assert_eq!(dc_address(4, true), None);
/// ```
pub fn dc_address(dc_id: i32, test_mode: bool) -> Option<(IpAddr, u16)> {
    let idx = usize::try_from(dc_id.checked_sub(1)?).ok()?;
    let (ip, port) = if test_mode {
        (TEST_DCS.get(idx)?, TEST_PORT)
    } else {
        (PROD_DCS.get(idx)?, PROD_PORT)
    };
    Some((IpAddr::V4(Ipv4Addr::from(*ip)), port))
}

/// True if `addr` is the well-known address of test DC `dc_id`.
fn is_test_dc(dc_id: i32, addr: IpAddr) -> bool {
    dc_address(dc_id, true).is_some_and(|(ip, _)| ip == addr)
}

fn write_addr(w: &mut Writer, addr: Option<IpAddr>) {
    match addr {
        None => w.u8(0),
        Some(IpAddr::V4(a)) => w.u8(4).raw(&a.octets()),
        Some(IpAddr::V6(a)) => w.u8(6).raw(&a.octets()),
    };
}

fn read_addr(r: &mut Reader<'_>, what: &'static str) -> Result<Option<IpAddr>, DecodeError> {
    Ok(match r.u8()? {
        0 => None,
        4 => Some(IpAddr::V4(Ipv4Addr::from(r.array::<4>()?))),
        6 => Some(IpAddr::V6(Ipv6Addr::from(r.array::<16>()?))),
        _ => return Err(DecodeError { what }),
    })
}

fn read_key(r: &mut Reader<'_>) -> Result<AuthKey, DecodeError> {
    Ok(AuthKey(r.array::<AUTH_KEY_LEN>()?))
}

/// An authorization for one data center (the home DC or an exported one).
///
/// `Debug` redacts the key. With the `serde` feature, `DcAuth` has no serde
/// impls of its own (its key is not optional); use
/// `session::expose_auth_key::dc_auth` to serialize it with the key.
///
/// ```
/// use peerlog::{AuthKey, DcAuth};
/// let a = DcAuth { dc_id: 4, auth_key: AuthKey::new([1; 256]), server_salt: 5,
///                  server_addr: None, port: 443 };
/// assert_eq!(DcAuth::decode(&a.encode()), Ok(a));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct DcAuth {
    /// The data center id.
    pub dc_id: i32,
    /// The authorization key for this DC.
    pub auth_key: AuthKey,
    /// The current server salt.
    pub server_salt: i64,
    /// The server address, if known.
    pub server_addr: Option<IpAddr>,
    /// The server port.
    pub port: u16,
}

impl fmt::Debug for DcAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DcAuth")
            .field("dc_id", &self.dc_id)
            .field("auth_key", &self.auth_key)
            .field("server_salt", &self.server_salt)
            .field("server_addr", &self.server_addr)
            .field("port", &self.port)
            .finish()
    }
}

impl DcAuth {
    const WHAT: &'static str = "DcAuth";
    /// Encodes as version 1 (little-endian): dc_id, key, salt, address, port.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(1)
            .i32(self.dc_id)
            .raw(self.auth_key.as_bytes())
            .i64(self.server_salt);
        write_addr(&mut w, self.server_addr);
        w.u16(self.port);
        w.buf
    }
    /// Decodes bytes written by [`DcAuth::encode`].
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf, Self::WHAT);
        if r.u8()? != 1 {
            return Err(DecodeError { what: Self::WHAT });
        }
        let v = DcAuth {
            dc_id: r.i32()?,
            auth_key: read_key(&mut r)?,
            server_salt: r.i64()?,
            server_addr: read_addr(&mut r, Self::WHAT)?,
            port: r.u16()?,
        };
        r.finish()?;
        Ok(v)
    }
}

/// The logged-in session.
///
/// `Debug` redacts the auth key and the `api_hash`. With the `serde` feature
/// the derived impls **skip `auth_key`** (it serializes without it and
/// deserializes to `None`); to include it, use `session::expose_auth_key::session`,
/// e.g. `#[serde(with = "peerlog::expose_auth_key::session")]` on a
/// field, or call its `serialize`/`deserialize` functions directly.
///
/// ```
/// use peerlog::{AuthKey, Session};
/// let mut s = Session::new(2, false);
/// s.auth_key = Some(AuthKey::new([9; 256]));
/// s.user_id = Some(777);
/// assert_eq!(Session::decode(&s.encode()), Ok(s.clone()));
/// assert!(!format!("{s:?}").contains("9, 9"));
/// ```
#[derive(Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Session {
    /// The home data center id.
    pub dc_id: i32,
    /// The home DC address, if known.
    pub server_addr: Option<IpAddr>,
    /// The home DC port.
    pub port: u16,
    /// The application's api_id (0 if unknown).
    pub api_id: i32,
    /// The application's api_hash (redacted in `Debug`).
    pub api_hash: Option<String>,
    /// True when connected to Telegram's test servers.
    pub test_mode: bool,
    /// The home DC authorization key (secret; skipped by serde by default).
    #[cfg_attr(feature = "serde", serde(skip))]
    pub auth_key: Option<AuthKey>,
    /// The logged-in user's bare id, once signed in.
    pub user_id: Option<i64>,
    /// True if the account is a bot.
    pub is_bot: bool,
    /// The account's first name.
    pub first_name: Option<String>,
    /// The account's last name.
    pub last_name: Option<String>,
    /// The account's username.
    pub username: Option<String>,
    /// When the session was created or last refreshed (unix seconds).
    pub date: i64,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("dc_id", &self.dc_id)
            .field("server_addr", &self.server_addr)
            .field("port", &self.port)
            .field("api_id", &self.api_id)
            .field("api_hash", &self.api_hash.as_ref().map(|_| Redacted))
            .field("test_mode", &self.test_mode)
            .field("auth_key", &self.auth_key)
            .field("user_id", &self.user_id)
            .field("is_bot", &self.is_bot)
            .field("first_name", &self.first_name)
            .field("last_name", &self.last_name)
            .field("username", &self.username)
            .field("date", &self.date)
            .finish()
    }
}

/// Which library a session string belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum SessionStringFormat {
    /// Telethon's `StringSession` (Python).
    Telethon,
    /// Pyrogram's `export_session_string` (Python), any of its three layouts.
    Pyrogram,
    /// GramJS's `StringSession` (JavaScript).
    GramJs,
}

impl fmt::Display for SessionStringFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Telethon => "Telethon",
            Self::Pyrogram => "Pyrogram",
            Self::GramJs => "GramJS",
        })
    }
}

/// The decoded lengths a format allows, for [`SessionStringError::WrongLength`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExpectedLength {
    /// One of these lengths.
    OneOf(&'static [usize]),
    /// Exactly this length.
    Exactly(usize),
}

impl fmt::Display for ExpectedLength {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exactly(n) => write!(f, "{n}"),
            Self::OneOf(list) => {
                for (i, n) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str(if i + 1 == list.len() { " or " } else { ", " })?;
                    }
                    write!(f, "{n}")?;
                }
                Ok(())
            }
        }
    }
}

/// Why a session string could not be imported or exported.
///
/// Messages name the format and the problem, never the string or key bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionStringError {
    /// The string is empty (or only whitespace).
    #[error("session string is empty")]
    Empty,
    /// The string lacks the version prefix `"1"`.
    #[error("{format} session string does not start with the version prefix \"1\"")]
    MissingPrefix {
        /// The expected format.
        format: SessionStringFormat,
    },
    /// The text is not base64 in the format's alphabet.
    #[error("{format} session string is not valid base64 in its alphabet")]
    BadBase64 {
        /// The expected format.
        format: SessionStringFormat,
    },
    /// The decoded data has the wrong length.
    #[error("{format} session string decodes to {got} bytes, expected {expected}")]
    WrongLength {
        /// The expected format.
        format: SessionStringFormat,
        /// The allowed length(s).
        expected: ExpectedLength,
        /// The decoded length.
        got: usize,
    },
    /// A field holds an invalid value.
    #[error("{format} session string has an invalid {field}")]
    BadField {
        /// The expected format.
        format: SessionStringFormat,
        /// The field's name.
        field: &'static str,
    },
    /// The server address cannot be used.
    #[error("{format} session string has an unsupported server address: {reason}")]
    UnsupportedAddress {
        /// The expected format.
        format: SessionStringFormat,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Export needs a field the session does not have.
    #[error("cannot export a {format} session string: the session has no {field}")]
    MissingField {
        /// The requested format.
        format: SessionStringFormat,
        /// The missing field's name.
        field: &'static str,
    },
    /// A `"1"`-prefixed string fits both the Telethon and the GramJS layout.
    #[error(
        "session string with prefix \"1\" ({len} bytes decoded) fits both the Telethon and the \
         GramJS layout; import it with the format-specific function"
    )]
    Ambiguous {
        /// The decoded length.
        len: usize,
    },
    /// A `"1"`-prefixed string fits neither the Telethon nor the GramJS layout.
    #[error(
        "session string with prefix \"1\" fits neither the Telethon layout (URL-safe base64, \
         263 or 275 bytes) nor the GramJS layout (standard base64, 261 bytes + address)"
    )]
    Unrecognized,
}

type E = SessionStringError;

const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);

const TELETHON_LENS: &[usize] = &[263, 275];
const PYROGRAM_LENS: &[usize] = &[263, 267, 271];
/// GramJS decoded length without the address: dc, len, port, key.
const GRAMJS_FIXED: usize = 1 + 2 + 2 + AUTH_KEY_LEN;
/// Longest address GramJS strings may declare (IPv6 text is at most 45).
const GRAMJS_MAX_ADDR: usize = 64;

fn valid_dc(dc_id: i32, test_mode: bool) -> bool {
    (1..=if test_mode { 3 } else { 5 }).contains(&dc_id)
}

fn trimmed(s: &str) -> Result<&str, E> {
    let s = s.trim();
    if s.is_empty() { Err(E::Empty) } else { Ok(s) }
}

fn strip_prefix(s: &str, format: SessionStringFormat) -> Result<&str, E> {
    trimmed(s)?
        .strip_prefix('1')
        .ok_or(E::MissingPrefix { format })
}

fn key_from(bytes: &[u8], format: SessionStringFormat) -> Result<AuthKey, E> {
    let key = AuthKey::from_slice(bytes).ok_or(E::BadField {
        format,
        field: "auth_key",
    })?;
    if key.is_zero() {
        return Err(E::BadField {
            format,
            field: "auth_key",
        });
    }
    Ok(key)
}

fn be_u16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// True if the decoded bytes have the shape of a Telethon string: 263 or 275
/// bytes and an address not starting with a zero byte (0.0.0.0/8 and 0::/8
/// are never Telegram servers, and Telethon import rejects them). A GramJS
/// layout always has a zero byte there (the high byte of its address length),
/// so the two layouts cannot both fit.
fn telethon_layout(raw: &[u8]) -> bool {
    TELETHON_LENS.contains(&raw.len()) && raw[1] != 0
}

/// True if the decoded bytes have the shape of a GramJS string: the declared
/// address length matches and the address is printable ASCII.
fn gramjs_layout(raw: &[u8]) -> bool {
    if raw.len() < 3 {
        return false;
    }
    let declared = i16::from_be_bytes([raw[1], raw[2]]);
    match usize::try_from(declared) {
        Ok(n) if (1..=GRAMJS_MAX_ADDR).contains(&n) && raw.len() == GRAMJS_FIXED + n => {
            raw[3..3 + n].iter().all(u8::is_ascii_graphic)
        }
        _ => false,
    }
}

/// Tells which library a session string comes from, without validating its
/// fields (the `from_*` functions do that).
///
/// Strings not starting with `"1"` are Pyrogram's (a Pyrogram string starts
/// with `A` or `B` for DCs 1–5). For `"1"`-prefixed strings the base64
/// alphabet decides when it can (`-`/`_` only occur in Telethon's URL-safe
/// alphabet, `+`/`/` only in GramJS's standard one); otherwise the decoded
/// layout must fit exactly one of the two, else
/// [`SessionStringError::Ambiguous`] or [`SessionStringError::Unrecognized`].
/// (Telethon's layout is 263/275 bytes with a non-zero first address byte;
/// GramJS's has a declared address length matching the total and a printable
/// ASCII address. A GramJS layout always has a zero byte where Telethon's
/// address starts, so in practice the layouts never both fit.)
///
/// ```
/// use peerlog::{detect_session_string, SessionStringFormat};
/// assert_eq!(detect_session_string("AQAAAAEA"), Ok(SessionStringFormat::Pyrogram));
/// assert!(detect_session_string("1AQ-_").is_ok_and(|f| f == SessionStringFormat::Telethon));
/// ```
pub fn detect_session_string(s: &str) -> Result<SessionStringFormat, SessionStringError> {
    let s = trimmed(s)?;
    let Some(body) = s.strip_prefix('1') else {
        return Ok(SessionStringFormat::Pyrogram);
    };
    let url_only = body.contains(['-', '_']);
    let std_only = body.contains(['+', '/']);
    match (url_only, std_only) {
        (true, false) => return Ok(SessionStringFormat::Telethon),
        (false, true) => return Ok(SessionStringFormat::GramJs),
        (true, true) => return Err(E::Unrecognized),
        (false, false) => {}
    }
    // Alphabet-neutral text decodes identically in both alphabets.
    let raw = URL_SAFE_LENIENT.decode(body).map_err(|_| E::Unrecognized)?;
    match (telethon_layout(&raw), gramjs_layout(&raw)) {
        (true, false) => Ok(SessionStringFormat::Telethon),
        (false, true) => Ok(SessionStringFormat::GramJs),
        (true, true) => Err(E::Ambiguous { len: raw.len() }),
        (false, false) => Err(E::Unrecognized),
    }
}

impl Session {
    /// A session for `dc_id` with the address and port from [`dc_address`]
    /// (left empty for unknown DCs); everything else empty.
    pub fn new(dc_id: i32, test_mode: bool) -> Self {
        let addr = dc_address(dc_id, test_mode);
        Session {
            dc_id,
            server_addr: addr.map(|a| a.0),
            port: addr.map_or(0, |a| a.1),
            test_mode,
            ..Session::default()
        }
    }

    const WHAT: &'static str = "Session";

    /// Encodes as version 1 (little-endian, includes the auth key).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(1).i32(self.dc_id);
        write_addr(&mut w, self.server_addr);
        w.u16(self.port)
            .i32(self.api_id)
            .opt_str(self.api_hash.as_deref())
            .bool(self.test_mode);
        match &self.auth_key {
            Some(k) => w.u8(1).raw(k.as_bytes()),
            None => w.u8(0),
        };
        match self.user_id {
            Some(id) => w.u8(1).i64(id),
            None => w.u8(0),
        };
        w.bool(self.is_bot)
            .opt_str(self.first_name.as_deref())
            .opt_str(self.last_name.as_deref())
            .opt_str(self.username.as_deref())
            .i64(self.date);
        w.buf
    }

    /// Decodes bytes written by [`Session::encode`].
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf, Self::WHAT);
        if r.u8()? != 1 {
            return Err(DecodeError { what: Self::WHAT });
        }
        let dc_id = r.i32()?;
        let server_addr = read_addr(&mut r, Self::WHAT)?;
        let port = r.u16()?;
        let api_id = r.i32()?;
        let api_hash = r.opt_str()?.map(str::to_owned);
        let test_mode = r.bool()?;
        let auth_key = if r.bool()? {
            Some(read_key(&mut r)?)
        } else {
            None
        };
        let user_id = if r.bool()? { Some(r.i64()?) } else { None };
        let v = Session {
            dc_id,
            server_addr,
            port,
            api_id,
            api_hash,
            test_mode,
            auth_key,
            user_id,
            is_bot: r.bool()?,
            first_name: r.opt_str()?.map(str::to_owned),
            last_name: r.opt_str()?.map(str::to_owned),
            username: r.opt_str()?.map(str::to_owned),
            date: r.i64()?,
        };
        r.finish()?;
        Ok(v)
    }

    fn export_key(&self, format: SessionStringFormat) -> Result<&AuthKey, E> {
        self.auth_key.as_ref().ok_or(E::MissingField {
            format,
            field: "auth_key",
        })
    }

    fn export_dc(&self, format: SessionStringFormat, test_mode: bool) -> Result<u8, E> {
        if !valid_dc(self.dc_id, test_mode) {
            return Err(E::BadField {
                format,
                field: "dc_id",
            });
        }
        u8::try_from(self.dc_id).map_err(|_| E::BadField {
            format,
            field: "dc_id",
        })
    }

    /// Imports a session string of any supported format (see
    /// [`detect_session_string`]) and says which one it was.
    pub fn parse_session_string(
        s: &str,
    ) -> Result<(SessionStringFormat, Session), SessionStringError> {
        let format = detect_session_string(s)?;
        let session = match format {
            SessionStringFormat::Telethon => Self::from_telethon_string(s),
            SessionStringFormat::Pyrogram => Self::from_pyrogram_string(s),
            SessionStringFormat::GramJs => Self::from_gramjs_string(s),
        }?;
        Ok((format, session))
    }

    /// Imports a session string of any supported format (see
    /// [`detect_session_string`]).
    ///
    /// ```
    /// use peerlog::{AuthKey, Session};
    /// let mut s = Session::new(2, false);
    /// s.auth_key = Some(AuthKey::new([1; 256]));
    /// let text = s.to_telethon_string().unwrap();
    /// assert_eq!(Session::from_session_string(&text), Ok(s));
    /// ```
    pub fn from_session_string(s: &str) -> Result<Session, SessionStringError> {
        Self::parse_session_string(s).map(|(_, s)| s)
    }
}

// One file per foreign string format: its parser and its `Session`
// methods (`to_*_string`, `from_*_string`).
mod gramjs;
mod pyrogram;
mod telethon;

/// Opt-in serde support for auth keys (feature `serde`); see the module.
#[cfg(feature = "serde")]
pub mod expose_auth_key;

#[cfg(test)]
mod tests {
    use super::*;

    const F_T: SessionStringFormat = SessionStringFormat::Telethon;
    const F_P: SessionStringFormat = SessionStringFormat::Pyrogram;
    const F_G: SessionStringFormat = SessionStringFormat::GramJs;

    /// A key whose bytes are 0, 1, ..., 255.
    fn ramp_key() -> [u8; 256] {
        std::array::from_fn(|i| i as u8)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn telethon_raw(dc: u8, addr: &[u8], port: u16, key: &[u8; 256]) -> Vec<u8> {
        let mut raw = vec![dc];
        raw.extend_from_slice(addr);
        raw.extend_from_slice(&port.to_be_bytes());
        raw.extend_from_slice(key);
        raw
    }

    fn gramjs_raw(dc: u8, addr: &[u8], port: i16, key: &[u8]) -> Vec<u8> {
        let mut raw = vec![dc];
        raw.extend_from_slice(&(addr.len() as i16).to_be_bytes());
        raw.extend_from_slice(addr);
        raw.extend_from_slice(&port.to_be_bytes());
        raw.extend_from_slice(key);
        raw
    }

    fn pyrogram_raw(dc: u8, api_id: u32, test: u8, key: &[u8; 256], user: u64, bot: u8) -> Vec<u8> {
        let mut raw = vec![dc];
        raw.extend_from_slice(&api_id.to_be_bytes());
        raw.push(test);
        raw.extend_from_slice(key);
        raw.extend_from_slice(&user.to_be_bytes());
        raw.push(bot);
        raw
    }

    fn telethon(raw: &[u8]) -> String {
        format!("1{}", URL_SAFE.encode(raw))
    }
    fn gramjs(raw: &[u8]) -> String {
        format!("1{}", STANDARD.encode(raw))
    }
    fn pyrogram(raw: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// The error's text never contains a run of the input.
    fn assert_no_leak(input: &str, err: &SessionStringError) {
        let shown = format!("{err} {err:?}");
        let b = input.as_bytes();
        if b.len() >= 6 {
            for w in b.windows(6) {
                let w = std::str::from_utf8(w).unwrap_or("");
                assert!(
                    w.is_empty() || !shown.contains(w),
                    "error text leaks input: {shown}"
                );
            }
        }
    }

    fn err_of(r: Result<Session, SessionStringError>, input: &str) -> SessionStringError {
        let e = r.expect_err("expected an error");
        assert_no_leak(input, &e);
        e
    }

    #[test]
    fn dc_table() {
        assert_eq!(dc_address(1, false), Some((ip("149.154.175.53"), 443)));
        assert_eq!(dc_address(2, false), Some((ip("149.154.167.51"), 443)));
        assert_eq!(dc_address(3, false), Some((ip("149.154.175.100"), 443)));
        assert_eq!(dc_address(4, false), Some((ip("149.154.167.91"), 443)));
        assert_eq!(dc_address(5, false), Some((ip("91.108.56.130"), 443)));
        assert_eq!(dc_address(1, true), Some((ip("149.154.175.10"), 80)));
        assert_eq!(dc_address(2, true), Some((ip("149.154.167.40"), 80)));
        assert_eq!(dc_address(3, true), Some((ip("149.154.175.117"), 80)));
        for (dc, test) in [
            (0, false),
            (6, false),
            (-1, false),
            (i32::MIN, false),
            (4, true),
            (0, true),
        ] {
            assert_eq!(dc_address(dc, test), None);
        }
        let s = Session::new(5, false);
        assert_eq!(
            (s.server_addr, s.port, s.dc_id),
            (Some(ip("91.108.56.130")), 443, 5)
        );
        assert_eq!(Session::new(9, true).server_addr, None);
    }

    #[test]
    fn telethon_ipv4_fixed_vector() {
        let key = ramp_key();
        let raw = telethon_raw(2, &[149, 154, 167, 51], 443, &key);
        assert_eq!(raw.len(), 263);
        let s = telethon(&raw);
        assert_eq!(s.len(), 353);
        assert!(s.ends_with('='));
        let sess = Session::from_telethon_string(&s).unwrap();
        let expect = Session {
            dc_id: 2,
            server_addr: Some(ip("149.154.167.51")),
            port: 443,
            auth_key: Some(AuthKey::new(key)),
            ..Session::default()
        };
        assert_eq!(sess, expect);
        assert_eq!(sess.to_telethon_string().unwrap(), s);
        assert_eq!(detect_session_string(&s), Ok(F_T));
        assert_eq!(Session::parse_session_string(&s), Ok((F_T, expect.clone())));
        // Lenient: surrounding whitespace and missing padding.
        assert_eq!(
            Session::from_telethon_string(&format!(" {s}\n")),
            Ok(expect.clone())
        );
        assert_eq!(
            Session::from_telethon_string(s.trim_end_matches('=')),
            Ok(expect)
        );
    }

    #[test]
    fn telethon_ipv6_fixed_vector() {
        let key = [0x5a; 256];
        let v6: Ipv6Addr = "2001:67c:4e8:f002::a".parse().unwrap();
        let raw = telethon_raw(4, &v6.octets(), 443, &key);
        assert_eq!(raw.len(), 275);
        let s = telethon(&raw);
        let sess = Session::from_telethon_string(&s).unwrap();
        assert_eq!(sess.server_addr, Some(IpAddr::V6(v6)));
        assert_eq!((sess.dc_id, sess.port, sess.test_mode), (4, 443, false));
        assert_eq!(sess.auth_key, Some(AuthKey::new(key)));
        assert_eq!(sess.to_telethon_string().unwrap(), s);
        assert_eq!(Session::parse_session_string(&s), Ok((F_T, sess)));
    }

    #[test]
    fn telethon_test_server_sets_test_mode() {
        let raw = telethon_raw(2, &[149, 154, 167, 40], 80, &ramp_key());
        let sess = Session::from_telethon_string(&telethon(&raw)).unwrap();
        assert!(sess.test_mode);
        assert_eq!(sess.to_telethon_string().unwrap(), telethon(&raw));
        // The same address under another DC id is not the test DC.
        let raw = telethon_raw(1, &[149, 154, 167, 40], 80, &ramp_key());
        assert!(
            !Session::from_telethon_string(&telethon(&raw))
                .unwrap()
                .test_mode
        );
    }

    #[test]
    fn pyrogram_fixed_vector() {
        let key = ramp_key();
        let raw = pyrogram_raw(2, 12345, 0, &key, 123_456_789, 0);
        assert_eq!(raw.len(), 271);
        let s = pyrogram(&raw);
        assert_eq!(s.len(), 362);
        assert!(!s.contains('='));
        let expect = Session {
            dc_id: 2,
            server_addr: Some(ip("149.154.167.51")),
            port: 443,
            api_id: 12345,
            auth_key: Some(AuthKey::new(key)),
            user_id: Some(123_456_789),
            ..Session::default()
        };
        let sess = Session::from_pyrogram_string(&s).unwrap();
        assert_eq!(sess, expect);
        assert_eq!(sess.to_pyrogram_string().unwrap(), s);
        assert_eq!(Session::parse_session_string(&s), Ok((F_P, expect.clone())));
        // Padding is accepted on import.
        let padded = URL_SAFE.encode(&raw);
        assert!(padded.ends_with('='));
        assert_eq!(Session::from_pyrogram_string(&padded), Ok(expect.clone()));
        assert_eq!(Session::from_session_string(&padded), Ok(expect));
    }

    #[test]
    fn pyrogram_bot_on_test_server() {
        let key = [0xff; 256];
        let raw = pyrogram_raw(3, 7, 1, &key, u64::from(u32::MAX) + 10, 1);
        let s = pyrogram(&raw);
        let sess = Session::from_session_string(&s).unwrap();
        assert!(sess.test_mode && sess.is_bot);
        assert_eq!(
            (sess.dc_id, sess.server_addr, sess.port),
            (3, Some(ip("149.154.175.117")), 80)
        );
        assert_eq!(sess.user_id, Some(i64::from(u32::MAX) + 10));
        assert_eq!(sess.to_pyrogram_string().unwrap(), s);
    }

    #[test]
    fn pyrogram_old_forms() {
        let key = ramp_key();
        // dc u8, test u8, key, user_id u32, is_bot u8
        let mut old32 = vec![4, 0];
        old32.extend_from_slice(&key);
        old32.extend_from_slice(&987_654_321u32.to_be_bytes());
        old32.push(1);
        assert_eq!(old32.len(), 263);
        // dc u8, test u8, key, user_id u64, is_bot u8
        let mut old64 = vec![1, 1];
        old64.extend_from_slice(&key);
        old64.extend_from_slice(&6_000_000_000u64.to_be_bytes());
        old64.push(0);
        assert_eq!(old64.len(), 267);
        let s32 = pyrogram(&old32);
        let s64 = pyrogram(&old64);
        assert_eq!((s32.len(), s64.len()), (351, 356));

        let a = Session::from_pyrogram_string(&s32).unwrap();
        assert_eq!(
            a,
            Session {
                dc_id: 4,
                server_addr: Some(ip("149.154.167.91")),
                port: 443,
                auth_key: Some(AuthKey::new(key)),
                user_id: Some(987_654_321),
                is_bot: true,
                ..Session::default()
            }
        );
        let b = Session::from_pyrogram_string(&s64).unwrap();
        assert_eq!(
            b,
            Session {
                dc_id: 1,
                server_addr: Some(ip("149.154.175.10")),
                port: 80,
                test_mode: true,
                auth_key: Some(AuthKey::new(key)),
                user_id: Some(6_000_000_000),
                ..Session::default()
            }
        );
        assert_eq!(Session::parse_session_string(&s32), Ok((F_P, a.clone())));
        assert_eq!(Session::parse_session_string(&s64), Ok((F_P, b.clone())));
        // Export always writes the current layout (api_id 0).
        for old in [a, b] {
            let new = old.to_pyrogram_string().unwrap();
            assert_eq!(new.len(), 362);
            assert_eq!(Session::from_pyrogram_string(&new), Ok(old));
        }
        // Old forms with padding.
        assert!(Session::from_pyrogram_string(&URL_SAFE.encode(&old32)).is_ok());
    }

    #[test]
    fn pyrogram_user_id_zero_is_none() {
        let s = pyrogram(&pyrogram_raw(2, 1, 0, &ramp_key(), 0, 0));
        let sess = Session::from_pyrogram_string(&s).unwrap();
        assert_eq!(sess.user_id, None);
        assert_eq!(sess.to_pyrogram_string().unwrap(), s);
    }

    #[test]
    fn gramjs_fixed_vector() {
        let key = ramp_key();
        let raw = gramjs_raw(2, b"149.154.167.51", 443, &key);
        assert_eq!(raw.len(), 275); // same length as Telethon IPv6
        let s = gramjs(&raw);
        let expect = Session {
            dc_id: 2,
            server_addr: Some(ip("149.154.167.51")),
            port: 443,
            auth_key: Some(AuthKey::new(key)),
            ..Session::default()
        };
        let sess = Session::from_gramjs_string(&s).unwrap();
        assert_eq!(sess, expect);
        assert_eq!(sess.to_gramjs_string().unwrap(), s);
        assert_eq!(Session::parse_session_string(&s), Ok((F_G, expect)));
        // IPv6 literal, test-DC detection.
        let raw6 = gramjs_raw(5, b"2001:b28:f23f:f005::a", 443, &key);
        let s6 = gramjs(&raw6);
        let sess6 = Session::from_session_string(&s6).unwrap();
        assert_eq!(sess6.server_addr, Some(ip("2001:b28:f23f:f005::a")));
        assert_eq!(sess6.to_gramjs_string().unwrap(), s6);
        let rawt = gramjs_raw(2, b"149.154.167.40", 80, &key);
        assert!(
            Session::from_session_string(&gramjs(&rawt))
                .unwrap()
                .test_mode
        );
    }

    #[test]
    fn roundtrips_all_formats() {
        let mut s = Session::new(2, false);
        s.auth_key = Some(AuthKey::new(ramp_key()));
        s.api_id = 611_335;
        s.user_id = Some(1_234_567_890);
        s.is_bot = true;
        let t = Session::from_session_string(&s.to_telethon_string().unwrap()).unwrap();
        assert_eq!(
            (t.dc_id, t.server_addr, t.port, &t.auth_key),
            (2, s.server_addr, 443, &s.auth_key)
        );
        let p = Session::from_session_string(&s.to_pyrogram_string().unwrap()).unwrap();
        assert_eq!(p, s);
        let g = Session::from_session_string(&s.to_gramjs_string().unwrap()).unwrap();
        assert_eq!(g, t);
        // IPv6 through Telethon and GramJS.
        s.server_addr = Some(ip("2001:67c:4e8:f004::b"));
        let t = Session::from_session_string(&s.to_telethon_string().unwrap()).unwrap();
        assert_eq!(t.server_addr, s.server_addr);
        let g = Session::from_session_string(&s.to_gramjs_string().unwrap()).unwrap();
        assert_eq!(g.server_addr, s.server_addr);
    }

    #[test]
    fn telethon_gramjs_disambiguation() {
        let neutral = [0x41u8; 256]; // "QUFB": neither -_ nor +/
        let marked = [0xffu8; 256]; // "////" or "____"

        // Alphabet-neutral strings: the layout decides.
        let g = gramjs(&gramjs_raw(2, b"149.154.167.51", 443, &neutral));
        assert!(!g.contains(['+', '/', '-', '_']));
        assert_eq!(detect_session_string(&g), Ok(F_G));
        assert_eq!(Session::parse_session_string(&g).unwrap().0, F_G);
        let v6: Ipv6Addr = "2001:67c:4e8:f002::a".parse().unwrap();
        let t6 = telethon(&telethon_raw(2, &v6.octets(), 443, &neutral));
        assert!(!t6.contains(['+', '/', '-', '_']));
        assert_eq!(detect_session_string(&t6), Ok(F_T));
        let t4 = telethon(&telethon_raw(2, &[149, 154, 167, 51], 443, &neutral));
        assert!(!t4.contains(['+', '/', '-', '_']));
        assert_eq!(detect_session_string(&t4), Ok(F_T));

        // Alphabet markers decide.
        let g = gramjs(&gramjs_raw(2, b"149.154.167.51", 443, &marked));
        assert!(g.contains('/'));
        assert_eq!(detect_session_string(&g), Ok(F_G));
        assert_eq!(
            err_of(Session::from_telethon_string(&g), &g),
            E::BadBase64 { format: F_T }
        );
        let t = telethon(&telethon_raw(2, &[149, 154, 167, 51], 443, &marked));
        assert!(t.contains('_'));
        assert_eq!(detect_session_string(&t), Ok(F_T));
        assert_eq!(
            err_of(Session::from_gramjs_string(&t), &t),
            E::BadBase64 { format: F_G }
        );

        // Neutral GramJS read as Telethon (forced) fails on the address.
        let g = gramjs(&gramjs_raw(2, b"149.154.167.51", 443, &neutral));
        assert!(matches!(
            err_of(Session::from_telethon_string(&g), &g),
            E::UnsupportedAddress { format: F_T, .. }
        ));
        // Neutral Telethon read as GramJS (forced) fails on the address length.
        assert_eq!(
            err_of(Session::from_gramjs_string(&t6), &t6),
            E::BadField {
                format: F_G,
                field: "address_length"
            }
        );

        // Both alphabets at once, or a neutral layout that fits neither.
        assert_eq!(detect_session_string("1ab+c-def"), Err(E::Unrecognized));
        assert_eq!(detect_session_string("1QUFB"), Err(E::Unrecognized));
        assert_eq!(detect_session_string("1QUF"), Err(E::Unrecognized));
        let zero_addr = telethon(&telethon_raw(2, &[0, 154, 167, 51], 443, &neutral));
        assert_eq!(detect_session_string(&zero_addr), Err(E::Unrecognized));
    }

    #[test]
    fn malformed_strings_give_the_right_error() {
        let key = ramp_key();
        let e = |r: Result<Session, E>| r.unwrap_err();
        // Empty and missing prefix.
        assert_eq!(e(Session::from_telethon_string("")), E::Empty);
        assert_eq!(e(Session::from_pyrogram_string("  ")), E::Empty);
        assert_eq!(e(Session::from_session_string("")), E::Empty);
        assert_eq!(detect_session_string("\n"), Err(E::Empty));
        let body = URL_SAFE.encode(telethon_raw(2, &[149, 154, 167, 51], 443, &key));
        let s = format!("2{body}");
        assert_eq!(
            err_of(Session::from_telethon_string(&s), &s),
            E::MissingPrefix { format: F_T }
        );
        assert_eq!(
            err_of(Session::from_gramjs_string(&body), &body),
            E::MissingPrefix { format: F_G }
        );
        // Bad base64.
        for s in ["1!!!!", "1AAAA*AAA", "1A"] {
            assert_eq!(
                err_of(Session::from_telethon_string(s), s),
                E::BadBase64 { format: F_T }
            );
            assert_eq!(
                err_of(Session::from_gramjs_string(s), s),
                E::BadBase64 { format: F_G }
            );
        }
        for s in ["A!!", "AAAA+AAA", "A", "AAAA=AAA"] {
            assert_eq!(
                err_of(Session::from_pyrogram_string(s), s),
                E::BadBase64 { format: F_P }
            );
            assert_eq!(
                err_of(Session::from_session_string(s), s),
                E::BadBase64 { format: F_P }
            );
        }

        // Wrong lengths.
        for n in [0usize, 1, 262, 264, 274, 276, 400] {
            let raw = vec![2u8; n];
            let s = telethon(&raw);
            assert_eq!(
                err_of(Session::from_telethon_string(&s), &s),
                E::WrongLength {
                    format: F_T,
                    expected: ExpectedLength::OneOf(&[263, 275]),
                    got: n
                }
            );
        }
        for n in [1usize, 262, 264, 266, 268, 270, 272, 400] {
            let raw = vec![2u8; n];
            let s = pyrogram(&raw);
            assert_eq!(
                err_of(Session::from_pyrogram_string(&s), &s),
                E::WrongLength {
                    format: F_P,
                    expected: ExpectedLength::OneOf(&[263, 267, 271]),
                    got: n
                }
            );
        }
        let mut raw = gramjs_raw(2, b"149.154.167.51", 443, &key);
        raw.pop();
        let s = gramjs(&raw);
        assert_eq!(
            err_of(Session::from_gramjs_string(&s), &s),
            E::WrongLength {
                format: F_G,
                expected: ExpectedLength::Exactly(275),
                got: 274
            }
        );
        raw.extend_from_slice(&[1, 2]);
        let s = gramjs(&raw);
        assert_eq!(
            err_of(Session::from_gramjs_string(&s), &s),
            E::WrongLength {
                format: F_G,
                expected: ExpectedLength::Exactly(275),
                got: 276
            }
        );
        let s = gramjs(&[2, 0]);
        assert!(matches!(
            err_of(Session::from_gramjs_string(&s), &s),
            E::WrongLength { got: 2, .. }
        ));

        // Bad DC ids.
        for dc in [0u8, 6, 255] {
            let s = telethon(&telethon_raw(dc, &[149, 154, 167, 51], 443, &key));
            assert_eq!(
                err_of(Session::from_telethon_string(&s), &s),
                E::BadField {
                    format: F_T,
                    field: "dc_id"
                }
            );
            let s = gramjs(&gramjs_raw(dc, b"149.154.167.51", 443, &key));
            assert_eq!(
                err_of(Session::from_gramjs_string(&s), &s),
                E::BadField {
                    format: F_G,
                    field: "dc_id"
                }
            );
            let s = pyrogram(&pyrogram_raw(dc, 1, 0, &key, 1, 0));
            assert_eq!(
                err_of(Session::from_pyrogram_string(&s), &s),
                E::BadField {
                    format: F_P,
                    field: "dc_id"
                }
            );
        }
        let s = pyrogram(&pyrogram_raw(4, 1, 1, &key, 1, 0)); // no test DC 4
        assert_eq!(
            err_of(Session::from_pyrogram_string(&s), &s),
            E::BadField {
                format: F_P,
                field: "dc_id"
            }
        );

        // Bad bool bytes in every Pyrogram layout.
        for bad in [2u8, 0x80, 0xff] {
            let s = pyrogram(&pyrogram_raw(2, 1, bad, &key, 1, 0));
            assert_eq!(
                err_of(Session::from_pyrogram_string(&s), &s),
                E::BadField {
                    format: F_P,
                    field: "test_mode"
                }
            );
            let s = pyrogram(&pyrogram_raw(2, 1, 0, &key, 1, bad));
            assert_eq!(
                err_of(Session::from_pyrogram_string(&s), &s),
                E::BadField {
                    format: F_P,
                    field: "is_bot"
                }
            );
            for uid_len in [4usize, 8] {
                let mut raw = vec![2, bad];
                raw.extend_from_slice(&key);
                raw.extend_from_slice(&vec![0; uid_len]);
                raw.push(0);
                let s = pyrogram(&raw);
                assert_eq!(
                    err_of(Session::from_pyrogram_string(&s), &s),
                    E::BadField {
                        format: F_P,
                        field: "test_mode"
                    }
                );
                *raw.last_mut().unwrap() = bad;
                raw[1] = 0;
                let s = pyrogram(&raw);
                assert_eq!(
                    err_of(Session::from_pyrogram_string(&s), &s),
                    E::BadField {
                        format: F_P,
                        field: "is_bot"
                    }
                );
            }
        }
        // Out-of-range integers.
        let s = pyrogram(&pyrogram_raw(2, 1, 0, &key, u64::MAX, 0));
        assert_eq!(
            err_of(Session::from_pyrogram_string(&s), &s),
            E::BadField {
                format: F_P,
                field: "user_id"
            }
        );
        let s = pyrogram(&pyrogram_raw(2, u32::MAX, 0, &key, 1, 0));
        assert_eq!(
            err_of(Session::from_pyrogram_string(&s), &s),
            E::BadField {
                format: F_P,
                field: "api_id"
            }
        );

        // Zero keys and ports.
        let s = telethon(&telethon_raw(2, &[149, 154, 167, 51], 443, &[0; 256]));
        assert_eq!(
            err_of(Session::from_telethon_string(&s), &s),
            E::BadField {
                format: F_T,
                field: "auth_key"
            }
        );
        let s = pyrogram(&pyrogram_raw(2, 1, 0, &[0; 256], 1, 0));
        assert_eq!(
            err_of(Session::from_pyrogram_string(&s), &s),
            E::BadField {
                format: F_P,
                field: "auth_key"
            }
        );
        let s = gramjs(&gramjs_raw(2, b"1.2.3.4", 443, &[0; 256]));
        assert_eq!(
            err_of(Session::from_gramjs_string(&s), &s),
            E::BadField {
                format: F_G,
                field: "auth_key"
            }
        );
        let s = telethon(&telethon_raw(2, &[149, 154, 167, 51], 0, &key));
        assert_eq!(
            err_of(Session::from_telethon_string(&s), &s),
            E::BadField {
                format: F_T,
                field: "port"
            }
        );
        for port in [0i16, -1, i16::MIN] {
            let s = gramjs(&gramjs_raw(2, b"1.2.3.4", port, &key));
            assert_eq!(
                err_of(Session::from_gramjs_string(&s), &s),
                E::BadField {
                    format: F_G,
                    field: "port"
                }
            );
        }

        // GramJS addresses.
        for host in [
            &b"venus.web.telegram.org"[..],
            b"localhost",
            b"1.2.3",
            b"1.2.3.4.5",
        ] {
            let s = gramjs(&gramjs_raw(2, host, 443, &key));
            assert!(matches!(
                err_of(Session::from_gramjs_string(&s), &s),
                E::UnsupportedAddress { format: F_G, .. }
            ));
            assert!(matches!(
                Session::from_session_string(&s),
                Err(E::UnsupportedAddress { format: F_G, .. }) | Err(E::Unrecognized)
            ));
        }
        for addr in [&b"0.0.0.0"[..], b"::"] {
            let s = gramjs(&gramjs_raw(2, addr, 443, &key));
            assert!(matches!(
                err_of(Session::from_gramjs_string(&s), &s),
                E::UnsupportedAddress { .. }
            ));
        }
        for addr in [&b"1.2.3.\xff"[..], b"1.2 3.4", b"1.2.3.4\0"] {
            let s = gramjs(&gramjs_raw(2, addr, 443, &key));
            assert_eq!(
                err_of(Session::from_gramjs_string(&s), &s),
                E::BadField {
                    format: F_G,
                    field: "server_addr"
                }
            );
        }
        for declared in [0i16, -1, 65, 200, i16::MAX] {
            let mut raw = gramjs_raw(2, b"1.2.3.4", 443, &key);
            raw[1..3].copy_from_slice(&declared.to_be_bytes());
            let s = gramjs(&raw);
            assert_eq!(
                err_of(Session::from_gramjs_string(&s), &s),
                E::BadField {
                    format: F_G,
                    field: "address_length"
                }
            );
        }
        // Telethon address starting with a zero byte.
        let s = telethon(&telethon_raw(2, &[0, 1, 2, 3], 443, &[0xff; 256]));
        assert!(matches!(
            err_of(Session::from_session_string(&s), &s),
            E::UnsupportedAddress { format: F_T, .. }
        ));
    }

    #[test]
    fn export_errors() {
        let mut s = Session::new(2, false);
        assert_eq!(
            s.to_telethon_string(),
            Err(E::MissingField {
                format: F_T,
                field: "auth_key"
            })
        );
        assert_eq!(
            s.to_pyrogram_string(),
            Err(E::MissingField {
                format: F_P,
                field: "auth_key"
            })
        );
        assert_eq!(
            s.to_gramjs_string(),
            Err(E::MissingField {
                format: F_G,
                field: "auth_key"
            })
        );
        s.auth_key = Some(AuthKey::new(ramp_key()));
        s.server_addr = None;
        assert_eq!(
            s.to_telethon_string(),
            Err(E::MissingField {
                format: F_T,
                field: "server_addr"
            })
        );
        assert_eq!(
            s.to_gramjs_string(),
            Err(E::MissingField {
                format: F_G,
                field: "server_addr"
            })
        );
        assert!(s.to_pyrogram_string().is_ok()); // no address in the format
        s.server_addr = Some(ip("1.2.3.4"));
        s.port = 40_000;
        assert_eq!(
            s.to_gramjs_string(),
            Err(E::BadField {
                format: F_G,
                field: "port"
            })
        );
        assert!(s.to_telethon_string().is_ok());
        for dc in [0, 6, -1, 256] {
            s.dc_id = dc;
            assert_eq!(
                s.to_telethon_string(),
                Err(E::BadField {
                    format: F_T,
                    field: "dc_id"
                })
            );
            assert_eq!(
                s.to_pyrogram_string(),
                Err(E::BadField {
                    format: F_P,
                    field: "dc_id"
                })
            );
            assert_eq!(
                s.to_gramjs_string(),
                Err(E::BadField {
                    format: F_G,
                    field: "dc_id"
                })
            );
        }
        s.dc_id = 4;
        s.test_mode = true;
        assert_eq!(
            s.to_pyrogram_string(),
            Err(E::BadField {
                format: F_P,
                field: "dc_id"
            })
        );
        s.dc_id = 2;
        s.api_id = -1;
        assert_eq!(
            s.to_pyrogram_string(),
            Err(E::BadField {
                format: F_P,
                field: "api_id"
            })
        );
        s.api_id = 1;
        s.user_id = Some(-5);
        assert_eq!(
            s.to_pyrogram_string(),
            Err(E::BadField {
                format: F_P,
                field: "user_id"
            })
        );
    }

    /// Every truncation (and some corruptions) of a valid string is an
    /// error, except cuts that only drop padding or land exactly on another
    /// valid length of the same format (undetectable: no checksum).
    #[test]
    fn truncations_and_corruptions_never_panic() {
        let key = ramp_key();
        let v6: Ipv6Addr = "2001:67c:4e8:f002::a".parse().unwrap();
        let mut old = vec![2u8, 0];
        old.extend_from_slice(&key);
        old.extend_from_slice(&[0, 0, 0, 9, 0]);
        let cases: Vec<(String, SessionStringFormat, &[usize])> = vec![
            (
                telethon(&telethon_raw(2, &[149, 154, 167, 51], 443, &key)),
                F_T,
                TELETHON_LENS,
            ),
            (
                telethon(&telethon_raw(2, &v6.octets(), 443, &key)),
                F_T,
                TELETHON_LENS,
            ),
            (
                pyrogram(&pyrogram_raw(2, 5, 0, &key, 77, 0)),
                F_P,
                PYROGRAM_LENS,
            ),
            (pyrogram(&old), F_P, PYROGRAM_LENS),
            (
                gramjs(&gramjs_raw(2, b"149.154.167.51", 443, &key)),
                F_G,
                &[],
            ),
            (
                gramjs(&gramjs_raw(2, b"2001:b28:f23f:f005::a", 443, &key)),
                F_G,
                &[],
            ),
        ];
        for (s, format, other_lens) in &cases {
            let full = Session::from_session_string(s).unwrap();
            let specific = |t: &str| match format {
                SessionStringFormat::Telethon => Session::from_telethon_string(t),
                SessionStringFormat::Pyrogram => Session::from_pyrogram_string(t),
                SessionStringFormat::GramJs => Session::from_gramjs_string(t),
            };
            for cut in 0..s.len() {
                let t = &s[..cut];
                let only_padding = s[cut..].bytes().all(|b| b == b'=');
                for r in [specific(t), Session::from_session_string(t)] {
                    match r {
                        Ok(got) if only_padding => assert_eq!(got, full),
                        Ok(_) => {
                            let body = t.strip_prefix('1').unwrap_or(t);
                            let n = URL_SAFE_LENIENT.decode(body).unwrap().len();
                            assert!(other_lens.contains(&n), "{format} cut {cut} accepted");
                        }
                        Err(e) => assert_no_leak(t, &e),
                    }
                }
            }
            // Appended garbage, and single-character corruptions.
            assert!(specific(&format!("{s}AAAA")).is_err());
            assert!(Session::from_session_string(&format!("{s}A!")).is_err());
            for i in 0..s.len() {
                for c in ['A', '-', '+', '/', '_', '=', '!', '1', 'é'] {
                    let mut t = String::with_capacity(s.len() + 2);
                    t.push_str(&s[..i]);
                    t.push(c);
                    t.push_str(&s[i + 1..]);
                    let _ = specific(&t);
                    let _ = Session::from_session_string(&t);
                    let _ = detect_session_string(&t);
                }
            }
        }
    }

    #[test]
    fn debug_redacts_secrets() {
        let key = AuthKey::new([0xab; 256]);
        let sess = Session {
            dc_id: 2,
            server_addr: Some(ip("149.154.167.51")),
            port: 443,
            api_id: 12345,
            api_hash: Some("secret-hash-0123".into()),
            test_mode: false,
            auth_key: Some(key.clone()),
            user_id: Some(42),
            is_bot: false,
            first_name: Some("Zed".into()),
            last_name: None,
            username: Some("zed".into()),
            date: 1_600_000_000,
        };
        let dc = DcAuth {
            dc_id: 4,
            auth_key: key.clone(),
            server_salt: -99,
            server_addr: Some(ip("2001:67c:4e8:f004::b")),
            port: 443,
        };
        for text in [
            format!("{key:?}"),
            format!("{key:#?}"),
            format!("{sess:?}"),
            format!("{sess:#?}"),
            format!("{dc:?}"),
            format!("{dc:#?}"),
            format!("{:?}", Some(&sess)),
        ] {
            let lower = text.to_lowercase();
            assert!(!lower.contains("ab"), "{text}");
            assert!(!lower.contains("171"), "{text}");
            assert!(
                !lower.contains("secret") && !lower.contains("0123"),
                "{text}"
            );
            assert!(text.contains("<redacted>"), "{text}");
        }
        assert_eq!(format!("{key:?}"), "AuthKey(<redacted>)");
        assert!(format!("{sess:?}").contains("api_hash: Some(<redacted>)"));
        let none = Session::default();
        assert!(format!("{none:?}").contains("api_hash: None"));
    }

    #[test]
    fn error_messages_name_format_and_problem() {
        let msg = E::WrongLength {
            format: F_P,
            expected: ExpectedLength::OneOf(PYROGRAM_LENS),
            got: 5,
        }
        .to_string();
        assert_eq!(
            msg,
            "Pyrogram session string decodes to 5 bytes, expected 263, 267 or 271"
        );
        let msg = E::WrongLength {
            format: F_T,
            expected: ExpectedLength::OneOf(TELETHON_LENS),
            got: 5,
        }
        .to_string();
        assert!(msg.ends_with("expected 263 or 275"));
        assert_eq!(
            E::BadField {
                format: F_G,
                field: "port"
            }
            .to_string(),
            "GramJS session string has an invalid port"
        );
        assert!(
            E::MissingPrefix { format: F_T }
                .to_string()
                .contains("\"1\"")
        );
        assert!(E::Ambiguous { len: 275 }.to_string().contains("both"));
    }

    #[test]
    fn auth_key_basics() {
        let k = AuthKey::new(ramp_key());
        assert_eq!(k.as_bytes(), &ramp_key());
        assert_eq!(AuthKey::from_slice(&ramp_key()), Some(k.clone()));
        assert_eq!(AuthKey::from_slice(&[0; 257]), None);
        assert_eq!(AuthKey::from_slice(&[]), None);
        assert_ne!(k, AuthKey::new([0; 256]));
        assert!(AuthKey::new([0; 256]).is_zero());
        assert!(!k.is_zero());
    }

    fn full_session() -> Session {
        Session {
            dc_id: 4,
            server_addr: Some(ip("2001:67c:4e8:f004::b")),
            port: 443,
            api_id: 611_335,
            api_hash: Some("hash".into()),
            test_mode: true,
            auth_key: Some(AuthKey::new(ramp_key())),
            user_id: Some(-7),
            is_bot: true,
            first_name: Some("Ann".into()),
            last_name: Some("Lee".into()),
            username: Some("ann".into()),
            date: 1_700_000_000,
        }
    }

    fn check_binary<T: PartialEq + fmt::Debug>(
        v: &T,
        enc: impl Fn(&T) -> Vec<u8>,
        dec: impl Fn(&[u8]) -> Result<T, DecodeError>,
    ) {
        let b = enc(v);
        assert_eq!(b[0], 1);
        assert_eq!(&dec(&b).unwrap(), v);
        for cut in 0..b.len() {
            assert!(dec(&b[..cut]).is_err());
        }
        let mut long = b.clone();
        long.push(0);
        assert!(dec(&long).is_err());
        for ver in [0u8, 2, 255] {
            let mut x = b.clone();
            x[0] = ver;
            assert!(dec(&x).is_err());
        }
        for i in 0..b.len() {
            let mut x = b.clone();
            x[i] ^= 0xff;
            let _ = dec(&x);
        }
    }

    #[test]
    fn session_binary_roundtrip() {
        let mut s = full_session();
        check_binary(&s, Session::encode, Session::decode);
        check_binary(&Session::default(), Session::encode, Session::decode);
        s.server_addr = Some(ip("149.154.167.51"));
        s.auth_key = None;
        check_binary(&s, Session::encode, Session::decode);
        // Unknown address tag.
        let mut b = Session::default().encode();
        b[5] = 5;
        assert!(Session::decode(&b).is_err());
    }

    #[test]
    fn dc_auth_binary_roundtrip() {
        for addr in [
            None,
            Some(ip("91.108.56.130")),
            Some(ip("2001:b28:f23f:f005::a")),
        ] {
            let a = DcAuth {
                dc_id: 5,
                auth_key: AuthKey::new(ramp_key()),
                server_salt: i64::MIN,
                server_addr: addr,
                port: 443,
            };
            check_binary(&a, DcAuth::encode, DcAuth::decode);
        }
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_key_helpers() {
        use serde::de::value::{BytesDeserializer, Error, SeqDeserializer, StrDeserializer};
        let key = ramp_key();
        let k = expose_auth_key::deserialize(BytesDeserializer::<Error>::new(&key)).unwrap();
        assert_eq!(k, AuthKey::new(key));
        let b64 = STANDARD.encode(key);
        let k = expose_auth_key::deserialize(StrDeserializer::<Error>::new(&b64)).unwrap();
        assert_eq!(k, AuthKey::new(key));
        let k = expose_auth_key::deserialize(SeqDeserializer::<_, Error>::new(key.into_iter()))
            .unwrap();
        assert_eq!(k, AuthKey::new(key));
        assert!(expose_auth_key::deserialize(BytesDeserializer::<Error>::new(&key[1..])).is_err());
        assert!(expose_auth_key::deserialize(StrDeserializer::<Error>::new("!!")).is_err());
        assert!(
            expose_auth_key::deserialize(SeqDeserializer::<_, Error>::new(
                key[1..].iter().copied()
            ))
            .is_err()
        );
        let longer = key.iter().copied().chain([0]);
        assert!(expose_auth_key::deserialize(SeqDeserializer::<_, Error>::new(longer)).is_err());
    }
}
