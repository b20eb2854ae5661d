//! Telegram data types stored by the engine: peer ids, cached peers, update
//! state, durable updates and conversations.
//!
//! Every record type has an explicit, versioned binary encoding built on
//! [`crate::format::codec`] (little-endian). Each encoding starts with a one-byte
//! version (currently `1`); decoders reject unknown versions and trailing
//! bytes, and never panic on hostile input.

use crate::format::codec::{DecodeError, Reader, Writer};

/// Offset added to a bare channel id to form its (negated) Bot API id.
const CHANNEL_OFFSET: i64 = 1_000_000_000_000;

/// Largest valid bare user id: `2^40 - 1` (TDLib's `UserId::is_valid`).
pub const MAX_USER_ID: i64 = (1 << 40) - 1;
/// Largest valid bare basic-chat id: `999_999_999_999`.
pub const MAX_CHAT_ID: i64 = 999_999_999_999;
/// Largest valid bare channel/supergroup id: `997_852_516_352`
/// (`10^12 - 2^31`).
pub const MAX_CHANNEL_ID: i64 = CHANNEL_OFFSET - (1 << 31);

/// A dialog id in the Bot API convention.
///
/// | kind    | bare id range              | Bot API id range                               |
/// |---------|----------------------------|------------------------------------------------|
/// | user    | `1..=2^40-1`               | `1..=1_099_511_627_775`                        |
/// | chat    | `1..=999_999_999_999`      | `-999_999_999_999..=-1`                        |
/// | channel | `1..=997_852_516_352`      | `-1_997_852_516_352..=-1_000_000_000_001`      |
///
/// Secret chats, monoforums and any other range are not representable:
/// [`PeerId::from_bot_api`] rejects them.
///
/// Every `PeerId` is valid: no constructor turns an id into another peer.
/// The plain constructors ([`PeerId::user`], [`PeerId::chat`],
/// [`PeerId::channel`]) take a *bare* id (positive, as in MTProto) and
/// panic, in every build, on anything outside its range, naming the value
/// (so `PeerId::channel(-1001234567890)`, a Bot API id, panics instead of
/// becoming user 1234567890). A Bot API id (the form the Bot API, TDLib and
/// most bot frameworks hand out) goes through [`PeerId::from_bot_api`];
/// the `try_` variants take a bare id from untrusted input.
///
/// ```
/// use peerlog::{PeerId, PeerKind};
/// let id = PeerId::channel(1234);
/// assert_eq!(id.bot_api(), -1_000_000_001_234);
/// assert_eq!(id.kind(), PeerKind::Channel);
/// assert_eq!(id.bare_id(), 1234);
/// assert_eq!(PeerId::from_bot_api(-1_000_000_001_234), Some(id));
/// assert_eq!(PeerId::try_user(0), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "i64", into = "i64")
)]
pub struct PeerId(i64);

/// The rule a bare id broke, per kind, for panic and error messages.
const USER_RULE: &str = "a bare user id must be in 1..=1099511627775";
const CHAT_RULE: &str =
    "a bare chat id must be in 1..=999999999999 (the Bot API id of a chat is its negation)";
const CHANNEL_RULE: &str = "a bare channel id must be in 1..=997852516352 \
     (the Bot API id of a channel is -1000000000000 minus it)";

/// Panics with `"{ctor}({id}): {rule}; for a Bot API id use {fix}"`.
/// Built by hand: a `const fn` cannot use `format!`.
#[track_caller]
const fn bad_bare_id(ctor: &str, id: i64, rule: &str, fix: &str) -> ! {
    const fn push(buf: &mut [u8; 320], mut n: usize, s: &[u8]) -> usize {
        let mut i = 0;
        while i < s.len() && n < buf.len() {
            buf[n] = s[i];
            n += 1;
            i += 1;
        }
        n
    }
    let mut buf = [0u8; 320];
    let mut n = push(&mut buf, 0, ctor.as_bytes());
    n = push(&mut buf, n, if id < 0 { b"(-" } else { b"(" });
    let mut digits = [0u8; 20];
    let mut d = digits.len();
    let mut v = id.unsigned_abs();
    loop {
        d -= 1;
        digits[d] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    n = push(&mut buf, n, digits.split_at(d).1);
    n = push(&mut buf, n, b"): ");
    n = push(&mut buf, n, rule.as_bytes());
    n = push(&mut buf, n, b"; for a Bot API id use ");
    n = push(&mut buf, n, fix.as_bytes());
    match core::str::from_utf8(buf.split_at(n).0) {
        Ok(msg) => panic!("{}", msg),
        Err(_) => panic!("peer id out of range"),
    }
}

/// Panics for an out-of-range bare id given to a [`Peer`] constructor.
#[cold]
#[track_caller]
fn bad_peer(ctor: &str, id: i64, rule: &str) -> ! {
    panic!("Peer::{ctor}({id}): {rule}; for a Bot API id use Peer::from_bot_api")
}

impl PeerId {
    /// A user id from its bare id, `1..=2^40-1` (equal to its Bot API id).
    ///
    /// # Panics
    ///
    /// In every build, if `id` is outside that range; the message names
    /// the value. Use [`PeerId::try_user`] or [`PeerId::from_bot_api`] for
    /// untrusted input.
    #[track_caller]
    pub const fn user(id: i64) -> Self {
        match Self::try_user(id) {
            Some(v) => v,
            None => bad_bare_id("PeerId::user", id, USER_RULE, "PeerId::from_bot_api"),
        }
    }
    /// A basic-chat id from its bare id, `1..=999_999_999_999` (the Bot API
    /// id is its negation).
    ///
    /// # Panics
    ///
    /// In every build, if `id` is outside that range (`PeerId::chat(-100)`
    /// panics: `-100` is a Bot API id, for [`PeerId::from_bot_api`]); the
    /// message names the value.
    #[track_caller]
    pub const fn chat(id: i64) -> Self {
        match Self::try_chat(id) {
            Some(v) => v,
            None => bad_bare_id("PeerId::chat", id, CHAT_RULE, "PeerId::from_bot_api"),
        }
    }
    /// A channel/supergroup id from its bare id, `1..=997_852_516_352`
    /// (the Bot API id is `-1_000_000_000_000 - id`).
    ///
    /// # Panics
    ///
    /// In every build, if `id` is outside that range
    /// (`PeerId::channel(-1001234567890)` panics: that is a Bot API id, for
    /// [`PeerId::from_bot_api`]); the message names the value.
    #[track_caller]
    pub const fn channel(id: i64) -> Self {
        match Self::try_channel(id) {
            Some(v) => v,
            None => bad_bare_id("PeerId::channel", id, CHANNEL_RULE, "PeerId::from_bot_api"),
        }
    }
    /// A user id, or `None` if `id` is outside `1..=2^40-1`.
    pub const fn try_user(id: i64) -> Option<Self> {
        if id >= 1 && id <= MAX_USER_ID {
            Some(PeerId(id))
        } else {
            None
        }
    }
    /// A basic-chat id, or `None` if `id` is outside `1..=999_999_999_999`.
    pub const fn try_chat(id: i64) -> Option<Self> {
        if id >= 1 && id <= MAX_CHAT_ID {
            Some(PeerId(-id))
        } else {
            None
        }
    }
    /// A channel id, or `None` if `id` is outside `1..=997_852_516_352`.
    pub const fn try_channel(id: i64) -> Option<Self> {
        if id >= 1 && id <= MAX_CHANNEL_ID {
            Some(PeerId(-(CHANNEL_OFFSET + id)))
        } else {
            None
        }
    }
    /// A peer id of the given kind from its bare id, or `None` if out of range.
    pub const fn try_new(kind: PeerKind, bare_id: i64) -> Option<Self> {
        match kind {
            PeerKind::User => Self::try_user(bare_id),
            PeerKind::Chat => Self::try_chat(bare_id),
            PeerKind::Channel => Self::try_channel(bare_id),
        }
    }
    /// Parses a Bot API dialog id, rejecting anything outside the three
    /// ranges in the [type docs](PeerId) (zero, secret chats, monoforums, …).
    pub const fn from_bot_api(id: i64) -> Option<Self> {
        if id > 0 {
            Self::try_user(id)
        } else if id < 0 && id > -CHANNEL_OFFSET {
            Self::try_chat(-id)
        } else if id < -CHANNEL_OFFSET {
            // `id < -10^12` so `-id - 10^12` cannot overflow unless id == MIN.
            match (-CHANNEL_OFFSET).checked_sub(id) {
                Some(bare) => Self::try_channel(bare),
                None => None,
            }
        } else {
            None
        }
    }
    /// The Bot API dialog id.
    pub const fn bot_api(self) -> i64 {
        self.0
    }
    /// Which kind of peer this id names.
    pub const fn kind(self) -> PeerKind {
        if self.0 >= 0 {
            PeerKind::User
        } else if self.0 > -CHANNEL_OFFSET {
            PeerKind::Chat
        } else {
            PeerKind::Channel
        }
    }
    /// The id without the Bot API sign/offset (as used in MTProto).
    pub const fn bare_id(self) -> i64 {
        match self.kind() {
            PeerKind::User => self.0,
            PeerKind::Chat => self.0.wrapping_neg(),
            PeerKind::Channel => self.0.wrapping_neg().wrapping_sub(CHANNEL_OFFSET),
        }
    }
}

impl std::fmt::Display for PeerId {
    /// Formats the Bot API id.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl From<PeerId> for i64 {
    fn from(id: PeerId) -> i64 {
        id.0
    }
}

/// A Bot API id outside every supported range (see [`PeerId`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not a valid user, chat or channel id")]
pub struct InvalidPeerId(pub i64);

impl TryFrom<i64> for PeerId {
    type Error = InvalidPeerId;
    fn try_from(id: i64) -> Result<Self, InvalidPeerId> {
        PeerId::from_bot_api(id).ok_or(InvalidPeerId(id))
    }
}

/// The kind of a peer. Codes ([`PeerKind::code`]) are stable on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[repr(u8)]
pub enum PeerKind {
    /// A user or bot.
    User = 1,
    /// A basic group chat.
    Chat = 2,
    /// A channel, supergroup or gigagroup.
    Channel = 3,
}

impl PeerKind {
    /// The stable one-byte code.
    pub const fn code(self) -> u8 {
        self as u8
    }
    /// The kind for a code, or `None` if unknown.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::User),
            2 => Some(Self::Chat),
            3 => Some(Self::Channel),
            _ => None,
        }
    }
}

/// The flavour of a channel. Codes ([`ChannelKind::code`]) are stable on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[repr(u8)]
pub enum ChannelKind {
    /// A broadcast channel.
    Broadcast = 1,
    /// A supergroup.
    Megagroup = 2,
    /// A broadcast group (gigagroup).
    Gigagroup = 3,
}

impl ChannelKind {
    /// The stable one-byte code (never 0).
    pub const fn code(self) -> u8 {
        self as u8
    }
    /// The kind for a code, or `None` if unknown.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Broadcast),
            2 => Some(Self::Megagroup),
            3 => Some(Self::Gigagroup),
            _ => None,
        }
    }
}

/// Shortest username accepted: 4 (Telegram issues 5..=32 characters, but
/// collectible usernames sold on Fragment can be 4).
pub const MIN_USERNAME_LEN: usize = 4;
/// Longest username accepted: 32.
pub const MAX_USERNAME_LEN: usize = 32;
/// Fewest digits of a phone number accepted: 5 (Telegram's own service
/// account has `42777`).
pub const MIN_PHONE_DIGITS: usize = 5;
/// Most digits of a phone number accepted: 20.
pub const MAX_PHONE_DIGITS: usize = 20;

/// The rule [`normalize_username`] applies, for error messages.
pub(crate) const USERNAME_RULE: &str = "a username is 4..=32 ASCII letters, digits and \
     underscores starting with a letter, with at most one leading '@'";
/// The rule [`normalize_phone`] applies, for error messages.
pub(crate) const PHONE_RULE: &str = "a phone is 5..=20 digits, optionally with '+', spaces, \
     dashes, dots and parentheses";

/// A username as it is stored and looked up: one leading `@` dropped, then
/// [`MIN_USERNAME_LEN`]`..=`[`MAX_USERNAME_LEN`] ASCII letters, digits and
/// underscores, the first a letter; `None` for anything else (spaces,
/// non-ASCII, a second `@`, empty, too short or long).
///
/// Underscores are not restricted further: Telegram refuses new names with
/// a trailing or doubled underscore, but older names have them. Case is
/// kept (lookups compare ASCII case-insensitively). Saving a peer with a
/// name this refuses is [`Error::Invalid`](crate::Error::Invalid); looking
/// one up finds nothing.
///
/// ```
/// use peerlog::normalize_username;
/// assert_eq!(normalize_username("@Alice"), Some("Alice"));
/// assert_eq!(normalize_username("durov_bot"), Some("durov_bot"));
/// assert_eq!(normalize_username("@@double"), None);
/// assert_eq!(normalize_username("a b"), None);
/// assert_eq!(normalize_username("1st_user"), None);
/// assert_eq!(normalize_username(""), None);
/// ```
pub fn normalize_username(username: &str) -> Option<&str> {
    let u = username.strip_prefix('@').unwrap_or(username);
    let b = u.as_bytes();
    // A table lookup per byte: every username lookup runs this, and the
    // range tests cost several times more (benches/README.md, "Figures
    // behind design choices").
    let ok = (MIN_USERNAME_LEN..=MAX_USERNAME_LEN).contains(&b.len())
        && b[0].is_ascii_alphabetic()
        && b.iter().fold(true, |ok, &c| ok & USERNAME_BYTE[c as usize]);
    ok.then_some(u)
}

/// Bytes a username may hold: ASCII letters, digits, underscore.
static USERNAME_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric() || b == b'_';
        c += 1;
    }
    t
};

/// Checks `phone` as [`normalize_phone`] does and returns its digits,
/// without allocating.
pub(crate) fn phone_digits(phone: &str) -> Option<impl Iterator<Item = u8> + Clone + '_> {
    let mut digits = 0;
    for c in phone.bytes() {
        match c {
            b'0'..=b'9' => digits += 1,
            b'+' | b' ' | b'-' | b'(' | b')' | b'.' => {}
            _ => return None,
        }
    }
    (MIN_PHONE_DIGITS..=MAX_PHONE_DIGITS)
        .contains(&digits)
        .then(|| phone.bytes().filter(u8::is_ascii_digit))
}

/// A phone number as it is stored and looked up: `+`, spaces, dashes, dots
/// and parentheses dropped, then [`MIN_PHONE_DIGITS`]`..=`[`MAX_PHONE_DIGITS`]
/// ASCII digits; `None` if anything else is left or the count is off.
///
/// Every save and every lookup uses it ([`crate::Storage::peer_by_phone`],
/// [`crate::Store::peer_id_by_phone`], ...): saving a peer with a phone it
/// refuses is [`Error::Invalid`](crate::Error::Invalid); looking one up
/// finds nothing.
///
/// ```
/// use peerlog::normalize_phone;
/// assert_eq!(normalize_phone("+1 (555) 123-45.67").as_deref(), Some("15551234567"));
/// assert_eq!(normalize_phone("15551234567").as_deref(), Some("15551234567"));
/// assert_eq!(normalize_phone("n/a"), None);
/// assert_eq!(normalize_phone("1234"), None);
/// ```
pub fn normalize_phone(phone: &str) -> Option<String> {
    phone_digits(phone).map(|d| d.map(char::from).collect())
}

/// A cached peer (user, chat or channel).
///
/// The engine stores `id`, `access_hash`, `min`, `username`, `usernames` and
/// `phone` in its own indexed header; every other field travels in the opaque
/// tail written by [`Peer::encode_tail`].
///
/// ```
/// use peerlog::{ChannelKind, Peer, PeerId};
/// let p = Peer::user(42, 0x1234).with_username("alice").with_names("Alice", None);
/// assert_eq!(p.id, PeerId::user(42));
/// let c = Peer::channel(7, 99, ChannelKind::Megagroup);
/// assert_eq!(c.channel_kind, Some(ChannelKind::Megagroup));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Peer {
    /// The peer's id.
    pub id: PeerId,
    /// The access hash, if known (basic chats have none).
    pub access_hash: Option<i64>,
    /// True if this is a "min" constructor whose access hash is not usable
    /// on its own.
    pub min: bool,
    /// The primary (editable) username. Saving checks it with
    /// [`normalize_username`] (one leading `@` is dropped; a name Telegram
    /// could not issue is [`Error::Invalid`](crate::Error::Invalid)).
    pub username: Option<String>,
    /// Additional (e.g. collectible) usernames, checked like
    /// [`username`](Peer::username).
    pub usernames: Vec<String>,
    /// First name (users) or title (chats, channels).
    pub first_name: Option<String>,
    /// Last name (users only).
    pub last_name: Option<String>,
    /// Phone number, if visible. Saving stores [`normalize_phone`]'s digits
    /// (a phone it refuses is [`Error::Invalid`](crate::Error::Invalid)).
    pub phone: Option<String>,
    /// True for bots.
    pub is_bot: bool,
    /// True for the logged-in account itself.
    pub is_self: bool,
    /// The channel flavour, for channels.
    pub channel_kind: Option<ChannelKind>,
    /// The current profile photo id, if any.
    pub photo_id: Option<i64>,
    /// The user's language code, if known.
    pub language: Option<String>,
    /// When this record was last updated (unix seconds).
    pub updated_at: i64,
}

/// Version byte that starts a [`Peer`] tail.
const PEER_TAIL_VERSION: u8 = 1;
// Presence bits of the peer tail (FORMAT.md, "Peer tail").
const TAIL_FIRST: u8 = 1;
const TAIL_LAST: u8 = 2;
const TAIL_BOT: u8 = 4;
const TAIL_SELF: u8 = 8;
const TAIL_PHOTO: u8 = 16;
const TAIL_LANGUAGE: u8 = 32;
const TAIL_UPDATED: u8 = 64;
const TAIL_CHANNEL: u8 = 128;

impl Peer {
    /// A peer with only its id set; every other field empty/false/zero.
    pub fn new(id: PeerId) -> Self {
        Peer {
            id,
            access_hash: None,
            min: false,
            username: None,
            usernames: Vec::new(),
            first_name: None,
            last_name: None,
            phone: None,
            is_bot: false,
            is_self: false,
            channel_kind: None,
            photo_id: None,
            language: None,
            updated_at: 0,
        }
    }
    /// A user from its bare id (`1..=2^40-1`, equal to its Bot API id)
    /// and access hash.
    ///
    /// # Panics
    ///
    /// In every build, if `user_id` is out of range (`Peer::user(-5, h)`
    /// panics rather than becoming chat 5); the message names the value
    /// and [`Peer::from_bot_api`], the constructor for Bot API ids.
    #[track_caller]
    pub fn user(user_id: i64, access_hash: i64) -> Self {
        let Some(id) = PeerId::try_user(user_id) else {
            bad_peer("user", user_id, USER_RULE)
        };
        Peer {
            access_hash: Some(access_hash),
            ..Peer::new(id)
        }
    }
    /// A basic chat from its bare id (`1..=999_999_999_999`; basic chats
    /// have no access hash).
    ///
    /// # Panics
    ///
    /// In every build, if `chat_id` is out of range (`Peer::chat(-100)`, a
    /// Bot API id, panics rather than becoming user 100); the message names
    /// the value and [`Peer::from_bot_api`].
    #[track_caller]
    pub fn chat(chat_id: i64) -> Self {
        let Some(id) = PeerId::try_chat(chat_id) else {
            bad_peer("chat", chat_id, CHAT_RULE)
        };
        Peer::new(id)
    }
    /// A channel from its bare id (`1..=997_852_516_352`), access hash and
    /// flavour.
    ///
    /// # Panics
    ///
    /// In every build, if `channel_id` is out of range
    /// (`Peer::channel(-1001234567890, ..)`, a Bot API id, panics rather
    /// than becoming user 1234567890); the message names the value and
    /// [`Peer::from_bot_api`].
    #[track_caller]
    pub fn channel(channel_id: i64, access_hash: i64, kind: ChannelKind) -> Self {
        let Some(id) = PeerId::try_channel(channel_id) else {
            bad_peer("channel", channel_id, CHANNEL_RULE)
        };
        Peer {
            access_hash: Some(access_hash),
            channel_kind: Some(kind),
            ..Peer::new(id)
        }
    }
    /// A peer from a Bot API id (users `1..=2^40-1`, basic chats
    /// `-999_999_999_999..=-1`, channels
    /// `-1_997_852_516_352..=-1_000_000_000_001`; see [`PeerId`]) and its
    /// access hash, if known. The kind comes from the id; a channel's
    /// [`channel_kind`](Peer::channel_kind) is left unknown (`None`).
    ///
    /// Returns [`Error::Invalid`](crate::Error::Invalid) naming the value
    /// for any other id (0, secret chats, monoforums, overflow).
    ///
    /// ```
    /// use peerlog::{Peer, PeerId, PeerKind};
    /// let c = Peer::from_bot_api(-1001234567890, Some(77))?;
    /// assert_eq!(c.id, PeerId::channel(1234567890));
    /// assert_eq!(c.id.kind(), PeerKind::Channel);
    /// assert_eq!(Peer::from_bot_api(-100, None)?.id, PeerId::chat(100));
    /// assert!(Peer::from_bot_api(0, None).is_err());
    /// # Ok::<(), peerlog::Error>(())
    /// ```
    pub fn from_bot_api(id: i64, access_hash: Option<i64>) -> crate::Result<Self> {
        let Some(id) = PeerId::from_bot_api(id) else {
            return Err(crate::Error::Invalid(format!(
                "Peer::from_bot_api({id}): not the Bot API id of a user (1..=1099511627775), \
                 a basic chat (-999999999999..=-1) or a channel \
                 (-1997852516352..=-1000000000001)"
            )));
        };
        Ok(Peer {
            access_hash,
            ..Peer::new(id)
        })
    }
    /// Sets the primary username.
    pub fn with_username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }
    /// Sets first name (or title) and last name.
    pub fn with_names(mut self, first: impl Into<String>, last: Option<&str>) -> Self {
        self.first_name = Some(first.into());
        self.last_name = last.map(str::to_owned);
        self
    }
    /// Sets the phone number.
    pub fn with_phone(mut self, phone: impl Into<String>) -> Self {
        self.phone = Some(phone.into());
        self
    }
    /// Sets the update time (unix seconds).
    pub fn with_updated_at(mut self, updated_at: i64) -> Self {
        self.updated_at = updated_at;
        self
    }

    /// Writes the fields not kept in the engine's peer header: a version
    /// byte (1), then `first_name`, `last_name`, `is_bot`, `is_self`,
    /// `channel_kind`, `photo_id`, `language`, `updated_at`.
    ///
    /// ```
    /// use peerlog::codec::{Reader, Writer};
    /// use peerlog::{Peer, PeerId};
    /// let p = Peer::user(1, 2).with_names("Ann", Some("Lee"));
    /// let mut w = Writer::new();
    /// p.encode_tail(&mut w);
    /// let mut q = Peer::user(1, 2);
    /// let mut r = Reader::new(&w.buf, "peer tail");
    /// Peer::decode_tail(&mut r, &mut q).unwrap();
    /// r.finish().unwrap();
    /// assert_eq!(p, q);
    /// ```
    pub fn encode_tail(&self, w: &mut Writer) {
        let str16 = |w: &mut Writer, v: &str| {
            w.u16(v.len() as u16).raw(v.as_bytes());
        };
        let bits = (u8::from(self.first_name.is_some()) * TAIL_FIRST)
            | (u8::from(self.last_name.is_some()) * TAIL_LAST)
            | (u8::from(self.is_bot) * TAIL_BOT)
            | (u8::from(self.is_self) * TAIL_SELF)
            | (u8::from(self.photo_id.is_some()) * TAIL_PHOTO)
            | (u8::from(self.language.is_some()) * TAIL_LANGUAGE)
            | (u8::from(self.updated_at != 0) * TAIL_UPDATED)
            | (u8::from(self.channel_kind.is_some()) * TAIL_CHANNEL);
        w.u8(PEER_TAIL_VERSION).u8(bits);
        if let Some(v) = &self.first_name {
            str16(w, v);
        }
        if let Some(v) = &self.last_name {
            str16(w, v);
        }
        if let Some(k) = self.channel_kind {
            w.u8(k.code());
        }
        if let Some(id) = self.photo_id {
            w.i64(id);
        }
        if let Some(v) = &self.language {
            str16(w, v);
        }
        if self.updated_at != 0 {
            w.i64(self.updated_at);
        }
    }

    /// Reads a tail written by [`Peer::encode_tail`] into the tail fields of
    /// `into`, leaving header fields untouched. On error `into` is unchanged.
    /// Does not check for trailing bytes: call [`Reader::finish`] if the tail
    /// ends the record.
    pub fn decode_tail(r: &mut Reader<'_>, into: &mut Peer) -> Result<(), DecodeError> {
        const WHAT: &str = "peer tail";
        let err = DecodeError { what: WHAT };
        if r.u8()? != PEER_TAIL_VERSION {
            return Err(err);
        }
        let bits = r.u8()?;
        let str16 = |r: &mut Reader<'_>| -> Result<String, DecodeError> {
            let n = r.u16()? as usize;
            std::str::from_utf8(r.take(n)?)
                .map(str::to_owned)
                .map_err(|_| err)
        };
        let first_name = if bits & TAIL_FIRST != 0 {
            Some(str16(r)?)
        } else {
            None
        };
        let last_name = if bits & TAIL_LAST != 0 {
            Some(str16(r)?)
        } else {
            None
        };
        let is_bot = bits & TAIL_BOT != 0;
        let is_self = bits & TAIL_SELF != 0;
        let channel_kind = if bits & TAIL_CHANNEL != 0 {
            Some(ChannelKind::from_code(r.u8()?).ok_or(err)?)
        } else {
            None
        };
        let photo_id = if bits & TAIL_PHOTO != 0 {
            Some(r.i64()?)
        } else {
            None
        };
        let language = if bits & TAIL_LANGUAGE != 0 {
            Some(str16(r)?)
        } else {
            None
        };
        // Present means non-zero: a zero under the bit would not re-encode
        // to the same bytes.
        let updated_at = if bits & TAIL_UPDATED != 0 {
            match r.i64()? {
                0 => return Err(err),
                v => v,
            }
        } else {
            0
        };
        into.first_name = first_name;
        into.last_name = last_name;
        into.is_bot = is_bot;
        into.is_self = is_self;
        into.channel_kind = channel_kind;
        into.photo_id = photo_id;
        into.language = language;
        into.updated_at = updated_at;
        Ok(())
    }
}

impl Peer {
    /// What [`Peer::decode_tail`] reads, checked the same way (the whole
    /// tail, to its end), but keeping only `is_bot`, `is_self` and
    /// `channel_kind`: no allocation. The grammers adapter's reads need
    /// nothing else.
    #[cfg(feature = "grammers")]
    pub(crate) fn decode_tail_kind(
        tail: &[u8],
    ) -> Result<(bool, bool, Option<ChannelKind>), DecodeError> {
        const WHAT: &str = "peer tail";
        let err = DecodeError { what: WHAT };
        let mut r = Reader::new(tail, WHAT);
        if r.u8()? != PEER_TAIL_VERSION {
            return Err(err);
        }
        let bits = r.u8()?;
        let str16 = |r: &mut Reader<'_>| -> Result<(), DecodeError> {
            let n = r.u16()? as usize;
            std::str::from_utf8(r.take(n)?).map(|_| ()).map_err(|_| err)
        };
        if bits & TAIL_FIRST != 0 {
            str16(&mut r)?;
        }
        if bits & TAIL_LAST != 0 {
            str16(&mut r)?;
        }
        let channel_kind = if bits & TAIL_CHANNEL != 0 {
            Some(ChannelKind::from_code(r.u8()?).ok_or(err)?)
        } else {
            None
        };
        if bits & TAIL_PHOTO != 0 {
            r.i64()?;
        }
        if bits & TAIL_LANGUAGE != 0 {
            str16(&mut r)?;
        }
        if bits & TAIL_UPDATED != 0 && r.i64()? == 0 {
            return Err(err);
        }
        r.finish()?;
        Ok((bits & TAIL_BOT != 0, bits & TAIL_SELF != 0, channel_kind))
    }
}

/// Reads and checks the leading version byte.
fn version(r: &mut Reader<'_>, what: &'static str) -> Result<(), DecodeError> {
    if r.u8()? == 1 {
        Ok(())
    } else {
        Err(DecodeError { what })
    }
}

/// The account-wide update state (`updates.state`).
///
/// ```
/// use peerlog::UpdateState;
/// let s = UpdateState { pts: 1, qts: 2, date: 3, seq: 4 };
/// assert_eq!(UpdateState::decode(&s.encode()), Ok(s));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct UpdateState {
    /// Message box pts.
    pub pts: i32,
    /// Secret/bot qts.
    pub qts: i32,
    /// Date of the last update.
    pub date: i32,
    /// Update sequence number.
    pub seq: i32,
}

impl UpdateState {
    const WHAT: &'static str = "UpdateState";
    /// Encodes as version 1: four little-endian i32.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(1)
            .i32(self.pts)
            .i32(self.qts)
            .i32(self.date)
            .i32(self.seq);
        w.buf
    }
    /// Decodes bytes written by [`UpdateState::encode`].
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf, Self::WHAT);
        version(&mut r, Self::WHAT)?;
        let v = UpdateState {
            pts: r.i32()?,
            qts: r.i32()?,
            date: r.i32()?,
            seq: r.i32()?,
        };
        r.finish()?;
        Ok(v)
    }
}

/// The pts of one channel's update box.
///
/// ```
/// use peerlog::ChannelState;
/// let s = ChannelState { channel_id: 77, pts: 9 };
/// assert_eq!(ChannelState::decode(&s.encode()), Ok(s));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ChannelState {
    /// The bare channel id, as in MTProto's `channel_id` and
    /// [`PeerId::bare_id`]: `1..=997_852_516_352`, or a monoforum's
    /// `1_002_147_483_649..=3_000_000_000_000`. Never the Bot API id
    /// (`-100…`): saving one is [`Error::Invalid`](crate::Error::Invalid).
    pub channel_id: i64,
    /// The channel's pts.
    pub pts: i32,
}

impl ChannelState {
    const WHAT: &'static str = "ChannelState";
    /// Encodes as version 1: i64 channel id, i32 pts.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(1).i64(self.channel_id).i32(self.pts);
        w.buf
    }
    /// Decodes bytes written by [`ChannelState::encode`].
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf, Self::WHAT);
        version(&mut r, Self::WHAT)?;
        let v = ChannelState {
            channel_id: r.i64()?,
            pts: r.i32()?,
        };
        r.finish()?;
        Ok(v)
    }
}

/// Bare ids of monoforums (channels' direct-message peers), which
/// [`PeerId`] cannot hold but whose pts a client keeps.
const MONOFORUM_IDS: std::ops::RangeInclusive<i64> = 1_002_147_483_649..=3_000_000_000_000;

/// Checks a channel id given to the channel-pts API: a bare channel (or
/// monoforum) id, never a Bot API one.
pub(crate) fn check_channel_id(channel_id: i64) -> crate::Result<()> {
    if (1..=MAX_CHANNEL_ID).contains(&channel_id) || MONOFORUM_IDS.contains(&channel_id) {
        return Ok(());
    }
    let hint = match (-CHANNEL_OFFSET).checked_sub(channel_id) {
        Some(bare) if (1..=MAX_CHANNEL_ID).contains(&bare) || MONOFORUM_IDS.contains(&bare) => {
            format!(
                " ({channel_id} is the Bot API id of channel {bare}: pass {bare}, PeerId::bare_id)"
            )
        }
        _ => String::new(),
    };
    Err(crate::Error::Invalid(format!(
        "channel id {channel_id}: channel pts take the bare channel id, \
         1..=997852516352 (or a monoforum's 1002147483649..=3000000000000){hint}"
    )))
}

/// Checks the ids of a conversation key: `chat_id` a Bot API id,
/// `user_id` a user id.
pub(crate) fn check_conversation_ids(chat_id: i64, user_id: i64) -> crate::Result<()> {
    if PeerId::from_bot_api(chat_id).is_none() {
        return Err(crate::Error::Invalid(format!(
            "conversation chat_id {chat_id}: not a Bot API id (a user 1..=1099511627775, \
             a basic chat -999999999999..=-1, a channel -1997852516352..=-1000000000001)"
        )));
    }
    if PeerId::try_user(user_id).is_none() {
        return Err(crate::Error::Invalid(format!(
            "conversation user_id {user_id}: not a user id (1..=1099511627775)"
        )));
    }
    Ok(())
}

/// An update queued for at-least-once processing.
///
/// ```
/// use peerlog::DurableUpdate;
/// let u = DurableUpdate {
///     id: "u1".into(), payload: vec![1, 2], attempts: 0,
///     last_error: None, created_at: 10, updated_at: 10,
/// };
/// assert_eq!(DurableUpdate::decode(&u.encode()), Ok(u));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DurableUpdate {
    /// Caller-chosen unique id.
    pub id: String,
    /// The raw update bytes.
    pub payload: Vec<u8>,
    /// How many times processing was attempted.
    pub attempts: u32,
    /// The error of the last failed attempt, if any.
    pub last_error: Option<String>,
    /// When it was queued (unix seconds).
    pub created_at: i64,
    /// When it last changed (unix seconds).
    pub updated_at: i64,
}

impl DurableUpdate {
    const WHAT: &'static str = "DurableUpdate";
    /// Encodes as version 1: id, payload, attempts, last_error, created_at,
    /// updated_at.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(1)
            .str(&self.id)
            .bytes(&self.payload)
            .u32(self.attempts)
            .opt_str(self.last_error.as_deref())
            .i64(self.created_at)
            .i64(self.updated_at);
        w.buf
    }
    /// Decodes bytes written by [`DurableUpdate::encode`].
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf, Self::WHAT);
        version(&mut r, Self::WHAT)?;
        let v = DurableUpdate {
            id: r.str()?.to_owned(),
            payload: r.bytes()?.to_vec(),
            attempts: r.u32()?,
            last_error: r.opt_str()?.map(str::to_owned),
            created_at: r.i64()?,
            updated_at: r.i64()?,
        };
        r.finish()?;
        Ok(v)
    }
}

/// The state of a multi-step conversation with a user in a chat.
///
/// ```
/// use peerlog::Conversation;
/// let c = Conversation {
///     chat_id: -5, user_id: 6, name: "signup".into(), step: "email".into(),
///     data: vec![], created_at: 1, updated_at: 2,
/// };
/// assert_eq!(Conversation::decode(&c.encode()), Ok(c));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Conversation {
    /// The chat, as a Bot API id ([`PeerId::bot_api`]): the user's id for
    /// a private chat, `-999_999_999_999..=-1` for a basic chat,
    /// `-1_997_852_516_352..=-1_000_000_000_001` for a channel or
    /// supergroup. Anything else (0, ...) is
    /// [`Error::Invalid`](crate::Error::Invalid) on save and lookup.
    pub chat_id: i64,
    /// The user's id, `1..=2^40-1` (bare and Bot API ids of users are the
    /// same). Anything else is [`Error::Invalid`](crate::Error::Invalid) on
    /// save and lookup.
    pub user_id: i64,
    /// The conversation (flow) name.
    pub name: String,
    /// The current step.
    pub step: String,
    /// Caller-defined state bytes.
    pub data: Vec<u8>,
    /// When it started (unix seconds).
    pub created_at: i64,
    /// When it last changed (unix seconds).
    pub updated_at: i64,
}

impl Conversation {
    const WHAT: &'static str = "Conversation";
    /// Encodes as version 1: chat_id, user_id, name, step, data, created_at,
    /// updated_at.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(1)
            .i64(self.chat_id)
            .i64(self.user_id)
            .str(&self.name)
            .str(&self.step)
            .bytes(&self.data)
            .i64(self.created_at)
            .i64(self.updated_at);
        w.buf
    }
    /// Decodes bytes written by [`Conversation::encode`].
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf, Self::WHAT);
        version(&mut r, Self::WHAT)?;
        let v = Conversation {
            chat_id: r.i64()?,
            user_id: r.i64()?,
            name: r.str()?.to_owned(),
            step: r.str()?.to_owned(),
            data: r.bytes()?.to_vec(),
            created_at: r.i64()?,
            updated_at: r.i64()?,
        };
        r.finish()?;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_id_ranges_and_conversions() {
        // Users.
        assert_eq!(PeerId::from_bot_api(0), None);
        assert_eq!(PeerId::from_bot_api(1), Some(PeerId::user(1)));
        assert_eq!(
            PeerId::from_bot_api(MAX_USER_ID),
            Some(PeerId::user(MAX_USER_ID))
        );
        assert_eq!(
            PeerId::from_bot_api(0xff_ffff_ffff),
            Some(PeerId::user(0xff_ffff_ffff))
        );
        assert_eq!(PeerId::from_bot_api(MAX_USER_ID + 1), None);
        assert_eq!(PeerId::from_bot_api(i64::MAX), None);
        assert_eq!(PeerId::try_user(0), None);
        assert_eq!(PeerId::try_user(-1), None);
        assert_eq!(PeerId::try_user(1 << 40), None);
        // Basic chats.
        assert_eq!(PeerId::from_bot_api(-1), Some(PeerId::chat(1)));
        assert_eq!(
            PeerId::from_bot_api(-999_999_999_999),
            Some(PeerId::chat(999_999_999_999))
        );
        assert_eq!(PeerId::from_bot_api(-1_000_000_000_000), None);
        assert_eq!(PeerId::try_chat(0), None);
        assert_eq!(PeerId::try_chat(1_000_000_000_000), None);
        // Channels.
        assert_eq!(
            PeerId::from_bot_api(-1_000_000_000_001),
            Some(PeerId::channel(1))
        );
        assert_eq!(
            PeerId::from_bot_api(-1_997_852_516_352),
            Some(PeerId::channel(997_852_516_352))
        );
        assert_eq!(PeerId::from_bot_api(-1_997_852_516_353), None);
        assert_eq!(PeerId::from_bot_api(-2_000_000_000_000), None); // secret chat range
        assert_eq!(PeerId::from_bot_api(i64::MIN), None);
        assert_eq!(PeerId::from_bot_api(i64::MIN + 1), None);
        assert_eq!(PeerId::try_channel(0), None);
        assert_eq!(PeerId::try_channel(997_852_516_353), None);
        assert_eq!(PeerId::try_channel(i64::MAX), None);

        for (id, kind, bare, api) in [
            (PeerId::user(1), PeerKind::User, 1, 1),
            (
                PeerId::user(MAX_USER_ID),
                PeerKind::User,
                MAX_USER_ID,
                MAX_USER_ID,
            ),
            (PeerId::chat(1), PeerKind::Chat, 1, -1),
            (
                PeerId::chat(MAX_CHAT_ID),
                PeerKind::Chat,
                MAX_CHAT_ID,
                -MAX_CHAT_ID,
            ),
            (PeerId::channel(1), PeerKind::Channel, 1, -1_000_000_000_001),
            (
                PeerId::channel(MAX_CHANNEL_ID),
                PeerKind::Channel,
                MAX_CHANNEL_ID,
                -1_997_852_516_352,
            ),
        ] {
            assert_eq!(id.kind(), kind);
            assert_eq!(id.bare_id(), bare);
            assert_eq!(id.bot_api(), api);
            assert_eq!(i64::from(id), api);
            assert_eq!(PeerId::try_new(kind, bare), Some(id));
            assert_eq!(PeerId::from_bot_api(api), Some(id));
            assert_eq!(PeerId::try_from(api), Ok(id));
            assert_eq!(id.to_string(), api.to_string());
        }
        assert_eq!(PeerId::try_from(0), Err(InvalidPeerId(0)));
        assert_eq!(MAX_CHANNEL_ID, 997_852_516_352);
        assert_eq!(MAX_USER_ID, 0xff_ffff_ffff);
    }

    #[test]
    fn names_and_id_checks_at_their_edges() {
        // Usernames: 4..=32, [A-Za-z0-9_], a letter first, one '@'.
        for ok in ["abcd", "A_b1", "old__name_", "@durov", &"z".repeat(32)] {
            assert!(normalize_username(ok).is_some(), "{ok}");
        }
        for bad in [
            "abc", "@abc", "@@abcd", "1abc", "_abc", "ab-cd", "ab cd", "abcé",
        ] {
            assert_eq!(normalize_username(bad), None, "{bad}");
        }
        assert_eq!(normalize_username(&"z".repeat(33)), None);
        // Phones: separators dropped, 5..=20 digits, nothing else.
        assert_eq!(normalize_phone("42777").as_deref(), Some("42777"));
        assert_eq!(normalize_phone(&"9".repeat(20)).map(|p| p.len()), Some(20));
        for bad in [
            "4277",
            "",
            "+",
            &"9".repeat(21),
            "+1 555 0100 ext 2",
            "١٢٣٤٥",
        ] {
            assert_eq!(normalize_phone(bad), None, "{bad}");
        }
        // Channel pts ids: bare channels and monoforums, never Bot API ids.
        for ok in [1, MAX_CHANNEL_ID, 1_002_147_483_649, 3_000_000_000_000] {
            assert!(check_channel_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            0,
            -1,
            MAX_CHANNEL_ID + 1,
            3_000_000_000_001,
            i64::MIN,
            i64::MAX,
        ] {
            assert!(check_channel_id(bad).is_err(), "{bad}");
        }
        let Err(crate::Error::Invalid(m)) = check_channel_id(-1_001_234_567_890) else {
            panic!("a Bot API channel id was accepted");
        };
        assert!(m.contains("pass 1234567890"), "{m}");
        // Conversations: a Bot API chat id and a user id.
        assert!(check_conversation_ids(-1_001_234_567_890, MAX_USER_ID).is_ok());
        assert!(check_conversation_ids(0, 1).is_err());
        assert!(check_conversation_ids(1, -1).is_err());
        assert!(check_conversation_ids(1, MAX_USER_ID + 1).is_err());
    }

    #[test]
    fn kind_codes_are_stable() {
        for k in [
            ChannelKind::Broadcast,
            ChannelKind::Megagroup,
            ChannelKind::Gigagroup,
        ] {
            assert_eq!(ChannelKind::from_code(k.code()), Some(k));
        }
        assert_eq!(ChannelKind::Broadcast.code(), 1);
        assert_eq!(ChannelKind::Megagroup.code(), 2);
        assert_eq!(ChannelKind::Gigagroup.code(), 3);
        assert_eq!(ChannelKind::from_code(0), None);
        assert_eq!(ChannelKind::from_code(4), None);
        for k in [PeerKind::User, PeerKind::Chat, PeerKind::Channel] {
            assert_eq!(PeerKind::from_code(k.code()), Some(k));
        }
        assert_eq!(PeerKind::from_code(0), None);
    }

    fn full_peer() -> Peer {
        Peer {
            id: PeerId::channel(55),
            access_hash: Some(-9),
            min: true,
            username: Some("chan".into()),
            usernames: vec!["a".into(), "b".into()],
            first_name: Some("Title ✓".into()),
            last_name: Some("".into()),
            phone: Some("123".into()),
            is_bot: true,
            is_self: true,
            channel_kind: Some(ChannelKind::Gigagroup),
            photo_id: Some(i64::MIN),
            language: Some("en".into()),
            updated_at: 1_700_000_000,
        }
    }

    #[test]
    fn peer_tail_roundtrip_and_truncation() {
        for p in [full_peer(), Peer::new(PeerId::user(3)), Peer::chat(4)] {
            let mut w = Writer::new();
            p.encode_tail(&mut w);
            assert_eq!(w.buf[0], 1);
            // Decoding into a peer with only the header fields restores it.
            let mut q = Peer {
                usernames: p.usernames.clone(),
                ..Peer::new(p.id)
            };
            q.access_hash = p.access_hash;
            q.min = p.min;
            q.username = p.username.clone();
            q.phone = p.phone.clone();
            let mut r = Reader::new(&w.buf, "peer tail");
            Peer::decode_tail(&mut r, &mut q).unwrap();
            r.finish().unwrap();
            assert_eq!(p, q);
            for cut in 0..w.buf.len() {
                let mut q2 = Peer::new(p.id);
                let before = q2.clone();
                let mut r = Reader::new(&w.buf[..cut], "peer tail");
                assert!(Peer::decode_tail(&mut r, &mut q2).is_err());
                assert_eq!(q2, before, "failed decode must not modify the peer");
            }
        }
    }

    #[test]
    fn peer_tail_rejects_bad_version_and_fields() {
        let mut w = Writer::new();
        full_peer().encode_tail(&mut w);
        let mut q = Peer::new(PeerId::user(1));
        for v in [0u8, 2, 255] {
            let mut b = w.buf.clone();
            b[0] = v;
            assert!(Peer::decode_tail(&mut Reader::new(&b, "t"), &mut q).is_err());
        }
        // A peer with no optional field is two bytes: version and presence.
        let mut w = Writer::new();
        Peer::new(PeerId::user(1)).encode_tail(&mut w);
        assert_eq!(w.buf, [1, 0]);
        // A presence bit without its bytes, and a bad channel kind, fail.
        for bits in [
            TAIL_FIRST,
            TAIL_LAST,
            TAIL_PHOTO,
            TAIL_LANGUAGE,
            TAIL_UPDATED,
            TAIL_CHANNEL,
        ] {
            assert!(
                Peer::decode_tail(&mut Reader::new(&[1, bits], "t"), &mut q).is_err(),
                "{bits}"
            );
        }
        assert!(Peer::decode_tail(&mut Reader::new(&[1, TAIL_CHANNEL, 9], "t"), &mut q).is_err());
        // Found by fuzzing: updated_at present but zero is not canonical.
        let mut zero = vec![1, TAIL_UPDATED];
        zero.extend_from_slice(&0i64.to_le_bytes());
        assert!(Peer::decode_tail(&mut Reader::new(&zero, "t"), &mut q).is_err());
        // Invalid UTF-8 in a name fails.
        assert!(
            Peer::decode_tail(&mut Reader::new(&[1, TAIL_FIRST, 1, 0, 0xff], "t"), &mut q).is_err()
        );
    }

    fn check_record<T: PartialEq + std::fmt::Debug>(
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
        assert!(dec(&long).is_err(), "trailing garbage accepted");
        for ver in [0u8, 2, 0xff] {
            let mut bad = b.clone();
            bad[0] = ver;
            assert!(dec(&bad).is_err(), "unknown version accepted");
        }
        // Arbitrary byte flips never panic.
        for i in 0..b.len() {
            let mut x = b.clone();
            x[i] ^= 0xff;
            let _ = dec(&x);
        }
    }

    #[test]
    fn records_roundtrip_and_reject_garbage() {
        check_record(
            &UpdateState {
                pts: -1,
                qts: i32::MAX,
                date: 1_700_000_000,
                seq: i32::MIN,
            },
            UpdateState::encode,
            UpdateState::decode,
        );
        check_record(
            &ChannelState {
                channel_id: MAX_CHANNEL_ID,
                pts: 12,
            },
            ChannelState::encode,
            ChannelState::decode,
        );
        for u in [
            DurableUpdate::default(),
            DurableUpdate {
                id: "upd-1".into(),
                payload: vec![0, 1, 2, 255],
                attempts: 3,
                last_error: Some("timeout".into()),
                created_at: -1,
                updated_at: i64::MAX,
            },
        ] {
            check_record(&u, DurableUpdate::encode, DurableUpdate::decode);
        }
        for c in [
            Conversation::default(),
            Conversation {
                chat_id: -100,
                user_id: 7,
                name: "order".into(),
                step: "address".into(),
                data: b"{\"x\":1}".to_vec(),
                created_at: 1,
                updated_at: 2,
            },
        ] {
            check_record(&c, Conversation::encode, Conversation::decode);
        }
    }

    #[test]
    fn hostile_lengths_do_not_panic() {
        // Version 1 then a huge string length.
        let b = [1u8, 0xff, 0xff, 0xff, 0xff, b'x'];
        assert!(DurableUpdate::decode(&b).is_err());
        let mut b = vec![1u8];
        b.extend_from_slice(&[0; 16]);
        b.extend_from_slice(&[0xff; 4]);
        assert!(Conversation::decode(&b).is_err());
        // Invalid UTF-8 in a string.
        let mut w = Writer::new();
        w.u8(1).bytes(&[0xc3]).bytes(&[]).u32(0).u8(0).i64(0).i64(0);
        assert!(DurableUpdate::decode(&w.buf).is_err());
        assert!(UpdateState::decode(&[]).is_err());
    }
}
