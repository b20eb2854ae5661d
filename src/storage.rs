//! The [`Storage`] trait: everything a Telegram client keeps per account,
//! independent of the backend.
//!
//! [`crate::Account`] (one account of a peerlog file) and
//! [`crate::MemoryStorage`] implement it, so an application can hold an
//! `Arc<dyn Storage>` and swap backends without touching its callers. A new
//! backend proves it behaves the same by passing [`crate::conformance`].

use crate::error::Result;
use crate::session::{DcAuth, Session};
use crate::types::{ChannelState, Conversation, DurableUpdate, Peer, PeerId, UpdateState};

/// Per-account storage of an MTProto client: session, per-DC auth keys,
/// peer cache, update state, dedup keys, a durable queue, conversations and
/// a small metadata map.
///
/// Object-safe: every method takes `&self`, so `Arc<dyn Storage>` works.
/// Methods that say "durable" have reached stable storage when they return,
/// whatever the backend's durability setting; the others may be batched
/// with later writes (see [`crate::Durability`]).
///
/// # Ids
///
/// A peer is named by a [`PeerId`], valid by construction (a Bot API id
/// becomes one through [`PeerId::from_bot_api`] or [`Peer::from_bot_api`];
/// the bare-id constructors panic rather than reinterpret one). Plain `i64`
/// ids follow one rule: a parameter that names a channel only
/// (`channel_id`) is the bare MTProto id, as [`PeerId::bare_id`]; one that
/// may name any chat (`chat_id`) is the Bot API id, as [`PeerId::bot_api`];
/// `user_id` is a user id (the same in both forms). Saves and lookups given
/// an id outside its form's range return [`Error::Invalid`](crate::Error::Invalid)
/// naming the value (a Bot API id `-100…` as `channel_id`, 0, ...);
/// deletes accept any id, so entries saved under a wrong id by older
/// versions can be removed.
///
/// # Normalization
///
/// Every backend stores and compares the same way:
/// - usernames go through [`normalize_username`](crate::normalize_username)
///   (one leading `@` dropped; 4..=32 ASCII letters, digits and
///   underscores, starting with a letter). Saving a peer with any other
///   name returns [`Error::Invalid`](crate::Error::Invalid) naming it, and
///   nothing of the batch is saved; looking one up finds nothing.
///   `usernames` entries equal (ASCII case-insensitively) to `username` or
///   to an earlier entry are dropped; lookups are ASCII case-insensitive;
/// - phone numbers go through [`normalize_phone`](crate::normalize_phone),
///   on save and on every lookup: `+`, spaces, dashes, dots and parentheses
///   dropped, then 5..=20 digits (`"+1 (555) 123-4567"` is stored and
///   matched as `"15551234567"`). Saving any other phone returns
///   [`Error::Invalid`](crate::Error::Invalid); looking one up finds
///   nothing.
///
/// ```
/// use std::sync::Arc;
/// use peerlog::{Peer, PeerId, Storage, Store};
///
/// let store = Store::memory();
/// let storage: Arc<dyn Storage> = Arc::new(store.account("bot")?);
/// storage.save_peer(&Peer::user(42, 0xABCD).with_username("Alice"))?;
/// assert_eq!(storage.access_hash(PeerId::user(42))?, Some(0xABCD));
/// let alice = storage.peer_by_username("@alice")?.unwrap();
/// assert_eq!(alice.id, PeerId::user(42));
/// # Ok::<(), peerlog::Error>(())
/// ```
pub trait Storage: Send + Sync {
    // --- Session -------------------------------------------------------

    /// The saved session, if any.
    fn session(&self) -> Result<Option<Session>>;
    /// Replaces the session. Durable before it returns.
    fn save_session(&self, session: &Session) -> Result<()>;
    /// Deletes the session (not the per-DC auth keys); true if there was one.
    /// Durable before it returns.
    fn delete_session(&self) -> Result<bool>;
    /// The auth key and salt of one data center.
    fn dc_auth(&self, dc_id: i32) -> Result<Option<DcAuth>>;
    /// Replaces the auth of `auth.dc_id`. Durable before it returns.
    fn save_dc_auth(&self, auth: &DcAuth) -> Result<()>;
    /// Every saved DC auth, by `dc_id` ascending.
    fn dc_auths(&self) -> Result<Vec<DcAuth>>;
    /// Deletes the auth of one DC; true if there was one. Durable before it
    /// returns.
    fn delete_dc_auth(&self, dc_id: i32) -> Result<bool>;

    // --- Peers ---------------------------------------------------------

    /// Saves peers in one atomic commit, as a client does for the users and
    /// chats of each update. A username or phone that does not pass the
    /// [normalization](Storage#normalization) fails the whole call with
    /// [`Error::Invalid`](crate::Error::Invalid) naming it; nothing is
    /// saved.
    ///
    /// Merge rules, per peer:
    /// - a min peer, or one without an access hash, never replaces a known
    ///   full access hash (its other fields still update, and the stored
    ///   peer stays non-min);
    /// - a username or phone that another peer held moves to this one: it
    ///   no longer resolves to the previous owner (which keeps its other
    ///   names);
    /// - a peer equal to the stored one (every field, `updated_at`
    ///   included) costs no write at all.
    fn save_peers(&self, peers: &[Peer]) -> Result<()>;
    /// [`Storage::save_peers`] for one peer.
    fn save_peer(&self, peer: &Peer) -> Result<()> {
        self.save_peers(std::slice::from_ref(peer))
    }
    /// The stored peer.
    fn peer(&self, id: PeerId) -> Result<Option<Peer>>;
    /// Deletes a peer (its names stop resolving); true if it existed.
    fn delete_peer(&self, id: PeerId) -> Result<bool>;
    /// Every stored peer, by Bot API id ascending.
    fn peers(&self) -> Result<Vec<Peer>>;
    /// Number of stored peers.
    fn peer_count(&self) -> Result<u64>;
    /// The stored access hash of a peer; `None` if the peer is unknown or
    /// has none (basic chats). For a min peer this is the hash it was seen
    /// with: check [`Peer::min`] before building an `InputPeer` from it.
    ///
    /// The hot path: implementations should answer from an index without
    /// allocating.
    fn access_hash(&self, id: PeerId) -> Result<Option<i64>>;
    /// The peer that currently holds a username (its primary or any other),
    /// ASCII case-insensitively, with or without a leading `@`; `None` for a
    /// name [`normalize_username`](crate::normalize_username) refuses.
    fn peer_by_username(&self, username: &str) -> Result<Option<Peer>>;
    /// The peer that currently holds a phone number, compared after
    /// [`normalize_phone`](crate::normalize_phone); `None` for a phone it
    /// refuses.
    fn peer_by_phone(&self, phone: &str) -> Result<Option<Peer>>;
    /// The id and access hash of the peer holding a username: what an
    /// outgoing call needs, without building the whole [`Peer`]. The
    /// default goes through [`Storage::peer_by_username`]; the file store
    /// answers from one index probe.
    fn resolve_username(&self, username: &str) -> Result<Option<(PeerId, Option<i64>)>> {
        Ok(self
            .peer_by_username(username)?
            .map(|p| (p.id, p.access_hash)))
    }

    // --- Update state --------------------------------------------------

    /// The account-wide update state.
    fn update_state(&self) -> Result<Option<UpdateState>>;
    /// Replaces the account-wide update state.
    fn save_update_state(&self, state: &UpdateState) -> Result<()>;
    /// The pts of one channel. `channel_id` is the bare id (see
    /// [`ChannelState::channel_id`]); a Bot API id (`-100…`) or 0 is
    /// [`Error::Invalid`](crate::Error::Invalid).
    fn channel_pts(&self, channel_id: i64) -> Result<Option<i32>>;
    /// Sets the pts of one channel. `channel_id` is the bare id (see
    /// [`ChannelState::channel_id`]); a Bot API id (`-100…`) or 0 is
    /// [`Error::Invalid`](crate::Error::Invalid) and saves nothing.
    fn save_channel_pts(&self, channel_id: i64, pts: i32) -> Result<()>;
    /// The pts of every channel, by `channel_id` ascending.
    fn channel_states(&self) -> Result<Vec<ChannelState>>;
    /// Forgets a channel's pts (bare `channel_id`; any id is accepted);
    /// true if there was one.
    fn delete_channel_state(&self, channel_id: i64) -> Result<bool>;
    /// Saves the peers of one update together with the state it advances
    /// to (account-wide and/or per channel) in one atomic commit: after a
    /// crash either all of it is stored or none. An invalid peer, username,
    /// phone or channel id fails the whole call with
    /// [`Error::Invalid`](crate::Error::Invalid) before anything is written.
    fn save_peers_and_state(
        &self,
        peers: &[Peer],
        state: Option<&UpdateState>,
        channels: &[ChannelState],
    ) -> Result<()>;

    // --- Dedup ---------------------------------------------------------

    /// Remembers a key (e.g. an update id); true if it was new.
    ///
    /// Retention is bounded by a maximum count and optionally an age (see
    /// [`crate::Options::dedup_max_keys`]): when a bound is hit the oldest
    /// keys go first, never the most recent ones.
    fn insert_dedup_key(&self, key: &[u8]) -> Result<bool>;
    /// True if the key is remembered.
    fn has_dedup_key(&self, key: &[u8]) -> Result<bool>;

    // --- Durable queue -------------------------------------------------

    /// Queues a payload under a caller-chosen id; false (and nothing
    /// changes) if that id is already queued. Durable before it returns.
    fn enqueue(&self, id: &str, payload: &[u8]) -> Result<bool>;
    /// Up to `limit` queued updates, oldest enqueue first. Failed ones keep
    /// their place until acknowledged.
    fn pending(&self, limit: usize) -> Result<Vec<DurableUpdate>>;
    /// Removes an update from the queue; true if it was queued. Durable
    /// before it returns.
    fn ack(&self, id: &str) -> Result<bool>;
    /// Records a failed attempt and its error; returns the attempts so far
    /// (0 if no such id is queued). Durable before it returns.
    fn mark_failed(&self, id: &str, error: &str) -> Result<u32>;

    // --- Conversations -------------------------------------------------

    /// The conversation state of a user in a chat: `chat_id` a Bot API id,
    /// `user_id` a user id (see [`Conversation`]); an id out of its range
    /// is [`Error::Invalid`](crate::Error::Invalid).
    fn conversation(&self, chat_id: i64, user_id: i64) -> Result<Option<Conversation>>;
    /// Replaces the conversation of `(conversation.chat_id,
    /// conversation.user_id)`; ids out of range (see [`Conversation`]) are
    /// [`Error::Invalid`](crate::Error::Invalid).
    fn save_conversation(&self, conversation: &Conversation) -> Result<()>;
    /// Deletes a conversation (any ids accepted); true if it existed.
    fn delete_conversation(&self, chat_id: i64, user_id: i64) -> Result<bool>;

    // --- Metadata ------------------------------------------------------

    /// A value of the account's metadata map.
    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Sets a metadata value.
    fn set_meta(&self, key: &str, value: &[u8]) -> Result<()>;
    /// Deletes a metadata value; true if it existed.
    fn delete_meta(&self, key: &str) -> Result<bool>;
}
