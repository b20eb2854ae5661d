//! Opt-in serde support for auth keys (feature `serde`).
//!
//! [`AuthKey`] has no `Serialize`/`Deserialize` impls and the derived impls
//! of [`Session`] skip its key, so secrets are never serialized by accident.
//! To include them, name one of these modules explicitly:
//!
//! ```
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Saved {
//!     #[serde(with = "peerlog::expose_auth_key")]
//!     key: peerlog::AuthKey,
//!     #[serde(with = "peerlog::expose_auth_key::option")]
//!     maybe_key: Option<peerlog::AuthKey>,
//!     #[serde(with = "peerlog::expose_auth_key::session")]
//!     session: peerlog::Session, // includes auth_key
//!     #[serde(with = "peerlog::expose_auth_key::dc_auth")]
//!     dc: peerlog::DcAuth,
//! }
//! ```
//!
//! A top-level value can be written with e.g.
//! `expose_auth_key::session::serialize(&session, &mut serializer)`.
//!
//! Keys are base64 (standard alphabet, padded) in human-readable formats and
//! raw bytes otherwise; deserialization accepts a base64 string, bytes or a
//! sequence of 256 integers.
use super::{AUTH_KEY_LEN, AuthKey, DcAuth, IpAddr, STANDARD, Session};
use base64::Engine as _;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

/// Serializes a key (base64 string if human-readable, else bytes).
pub fn serialize<S: Serializer>(key: &AuthKey, s: S) -> Result<S::Ok, S::Error> {
    if s.is_human_readable() {
        s.serialize_str(&STANDARD.encode(key.as_bytes()))
    } else {
        s.serialize_bytes(key.as_bytes())
    }
}

/// Deserializes a key from base64 text, bytes or a sequence of 256 bytes.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<AuthKey, D::Error> {
    if d.is_human_readable() {
        d.deserialize_str(KeyVisitor)
    } else {
        d.deserialize_bytes(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = AuthKey;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a 256-byte auth key (bytes or base64)")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<AuthKey, E> {
        let bytes = STANDARD
            .decode(v)
            .map_err(|_| E::custom("auth key is not valid standard base64"))?;
        self.visit_bytes(&bytes)
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<AuthKey, E> {
        AuthKey::from_slice(v).ok_or_else(|| E::invalid_length(v.len(), &self))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AuthKey, A::Error> {
        let mut key = [0u8; AUTH_KEY_LEN];
        for (i, slot) in key.iter_mut().enumerate() {
            *slot = seq
                .next_element()?
                .ok_or_else(|| de::Error::invalid_length(i, &self))?;
        }
        if seq.next_element::<de::IgnoredAny>()?.is_some() {
            return Err(de::Error::invalid_length(AUTH_KEY_LEN + 1, &self));
        }
        Ok(AuthKey::new(key))
    }
}

/// A borrowed key that serializes with [`serialize`].
struct Exposed<'a>(&'a AuthKey);

impl Serialize for Exposed<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize(self.0, s)
    }
}

/// An owned key that deserializes with [`deserialize`].
struct ExposedOwned(AuthKey);

impl<'de> Deserialize<'de> for ExposedOwned {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize(d).map(ExposedOwned)
    }
}

/// `Option<AuthKey>` support.
pub mod option {
    use super::*;

    /// Serializes an optional key.
    pub fn serialize<S: Serializer>(key: &Option<AuthKey>, s: S) -> Result<S::Ok, S::Error> {
        key.as_ref().map(Exposed).serialize(s)
    }

    /// Deserializes an optional key.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<AuthKey>, D::Error> {
        Ok(Option::<ExposedOwned>::deserialize(d)?.map(|k| k.0))
    }
}

/// [`Session`] support, including `auth_key`. Same shape as the derived
/// impls plus an `auth_key` field.
pub mod session {
    use super::*;

    #[derive(Serialize)]
    #[serde(rename = "Session")]
    struct Ser<'a> {
        dc_id: i32,
        server_addr: Option<IpAddr>,
        port: u16,
        api_id: i32,
        api_hash: Option<&'a str>,
        test_mode: bool,
        auth_key: Option<Exposed<'a>>,
        user_id: Option<i64>,
        is_bot: bool,
        first_name: Option<&'a str>,
        last_name: Option<&'a str>,
        username: Option<&'a str>,
        date: i64,
    }

    #[derive(Deserialize)]
    #[serde(rename = "Session")]
    struct De {
        dc_id: i32,
        server_addr: Option<IpAddr>,
        port: u16,
        api_id: i32,
        api_hash: Option<String>,
        test_mode: bool,
        #[serde(default)]
        auth_key: Option<ExposedOwned>,
        user_id: Option<i64>,
        is_bot: bool,
        first_name: Option<String>,
        last_name: Option<String>,
        username: Option<String>,
        date: i64,
    }

    /// Serializes a session with its auth key.
    pub fn serialize<S: Serializer>(v: &Session, s: S) -> Result<S::Ok, S::Error> {
        Ser {
            dc_id: v.dc_id,
            server_addr: v.server_addr,
            port: v.port,
            api_id: v.api_id,
            api_hash: v.api_hash.as_deref(),
            test_mode: v.test_mode,
            auth_key: v.auth_key.as_ref().map(Exposed),
            user_id: v.user_id,
            is_bot: v.is_bot,
            first_name: v.first_name.as_deref(),
            last_name: v.last_name.as_deref(),
            username: v.username.as_deref(),
            date: v.date,
        }
        .serialize(s)
    }

    /// Deserializes a session with its auth key (absent key: `None`).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Session, D::Error> {
        let v = De::deserialize(d)?;
        Ok(Session {
            dc_id: v.dc_id,
            server_addr: v.server_addr,
            port: v.port,
            api_id: v.api_id,
            api_hash: v.api_hash,
            test_mode: v.test_mode,
            auth_key: v.auth_key.map(|k| k.0),
            user_id: v.user_id,
            is_bot: v.is_bot,
            first_name: v.first_name,
            last_name: v.last_name,
            username: v.username,
            date: v.date,
        })
    }
}

/// [`DcAuth`] support, including `auth_key`.
pub mod dc_auth {
    use super::*;

    #[derive(Serialize)]
    #[serde(rename = "DcAuth")]
    struct Ser<'a> {
        dc_id: i32,
        auth_key: Exposed<'a>,
        server_salt: i64,
        server_addr: Option<IpAddr>,
        port: u16,
    }

    #[derive(Deserialize)]
    #[serde(rename = "DcAuth")]
    struct De {
        dc_id: i32,
        auth_key: ExposedOwned,
        server_salt: i64,
        server_addr: Option<IpAddr>,
        port: u16,
    }

    /// Serializes a DC authorization with its key.
    pub fn serialize<S: Serializer>(v: &DcAuth, s: S) -> Result<S::Ok, S::Error> {
        Ser {
            dc_id: v.dc_id,
            auth_key: Exposed(&v.auth_key),
            server_salt: v.server_salt,
            server_addr: v.server_addr,
            port: v.port,
        }
        .serialize(s)
    }

    /// Deserializes a DC authorization with its key.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DcAuth, D::Error> {
        let v = De::deserialize(d)?;
        Ok(DcAuth {
            dc_id: v.dc_id,
            auth_key: v.auth_key.0,
            server_salt: v.server_salt,
            server_addr: v.server_addr,
            port: v.port,
        })
    }
}
