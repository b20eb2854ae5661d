//! Copying an account between a peerlog file and PostgreSQL, both ways,
//! whole: session, DC auths, peers, update state and channel pts, dedup
//! keys with their insertion times, the queue with attempts and last
//! errors, conversations and metadata.
//!
//! The destination must be empty (a fresh account): a copy never merges
//! into data that is already there. Each copy is one transaction on the
//! destination (one commit of the file; one PostgreSQL transaction, fenced
//! by the destination's lease), so it lands whole or not at all.
//!
//! ```no_run
//! use peerlog::postgres::{PgStorage, copy_to_postgres, copy_from_postgres};
//! use peerlog::Store;
//! let file = Store::open("bot.peerlog")?;
//! let pg = PgStorage::open("host=db user=bots", "my-bot")?;
//! let copied = copy_to_postgres(&file.account("my-bot")?, &pg)?;
//! println!("{} peers copied", copied.peers);
//! // and back, into an empty account of another file:
//! let back = Store::open("restored.peerlog")?;
//! copy_from_postgres(&pg, &back.account("my-bot")?)?;
//! # Ok::<(), peerlog::Error>(())
//! ```

use ::postgres::types::ToSql;

use super::{Batch, PgStorage};
use crate::account::Account;
use crate::error::{Error, Result};
use crate::session::{DcAuth, Session};
use crate::storage::Storage;
use crate::types::{ChannelState, Conversation, DurableUpdate, Peer, UpdateState};

/// What a copy moved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CopyReport {
    /// A session was copied.
    pub session: bool,
    /// DC auths copied.
    pub dc_auths: usize,
    /// Peers copied.
    pub peers: usize,
    /// Channel pts copied.
    pub channels: usize,
    /// Dedup keys copied.
    pub dedup_keys: usize,
    /// Queued updates copied.
    pub queued: usize,
    /// Conversations copied.
    pub conversations: usize,
    /// Metadata entries copied.
    pub meta: usize,
}

/// Everything of one account.
struct Image {
    session: Option<Session>,
    dc_auths: Vec<DcAuth>,
    peers: Vec<Peer>,
    state: Option<UpdateState>,
    channels: Vec<ChannelState>,
    dedup: Vec<(i64, Vec<u8>)>,
    queue: Vec<DurableUpdate>,
    conversations: Vec<Conversation>,
    meta: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Image {
    fn of(s: &dyn Storage, extras: crate::account::Extras) -> Result<Image> {
        let (dedup, conversations, meta) = extras;
        Ok(Image {
            session: s.session()?,
            dc_auths: s.dc_auths()?,
            peers: s.peers()?,
            state: s.update_state()?,
            channels: s.channel_states()?,
            dedup,
            queue: s.pending(usize::MAX)?,
            conversations,
            meta,
        })
    }

    fn report(&self) -> CopyReport {
        CopyReport {
            session: self.session.is_some(),
            dc_auths: self.dc_auths.len(),
            peers: self.peers.len(),
            channels: self.channels.len(),
            dedup_keys: self.dedup.len(),
            queued: self.queue.len(),
            conversations: self.conversations.len(),
            meta: self.meta.len(),
        }
    }
}

/// Refuses a destination that holds anything [`Storage`] can see.
fn check_empty(s: &dyn Storage, what: &str, extras_empty: bool) -> Result<()> {
    let empty = s.session()?.is_none()
        && s.dc_auths()?.is_empty()
        && s.peer_count()? == 0
        && s.update_state()?.is_none()
        && s.channel_states()?.is_empty()
        && s.pending(1)?.is_empty()
        && extras_empty;
    if empty {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "the destination {what} is not empty: a copy goes into a fresh account only; nothing was copied"
        )))
    }
}

/// Copies a peerlog file's account into an empty PostgreSQL account, in
/// one transaction fenced by `to`'s lease.
pub fn copy_to_postgres(from: &Account, to: &PgStorage) -> Result<CopyReport> {
    let image = Image::of(from, from.extras()?)?;
    let (d, c, m) = to.extras()?;
    check_empty(
        to,
        &format!("PostgreSQL account ({})", to.place),
        d.is_empty() && c.is_empty() && m.is_empty(),
    )?;
    to.import(&image)?;
    Ok(image.report())
}

/// Copies a PostgreSQL account into an empty account of a peerlog file, in
/// one commit (durable when it returns).
pub fn copy_from_postgres(from: &PgStorage, to: &Account) -> Result<CopyReport> {
    let image = Image::of(from, from.extras()?)?;
    let (d, c, m) = to.extras()?;
    check_empty(
        to,
        &format!("file account {:?}", to.name()),
        d.is_empty() && c.is_empty() && m.is_empty(),
    )?;
    let meta = image
        .meta
        .iter()
        .map(|(k, v)| {
            String::from_utf8(k.clone())
                .map(|k| (k, v))
                .map_err(|_| Error::Invalid("a metadata key is not UTF-8".into()))
        })
        .collect::<Result<Vec<_>>>()?;
    to.write(|tx| {
        if let Some(s) = &image.session {
            tx.save_session(s)?;
        }
        for d in &image.dc_auths {
            tx.save_dc_auth(d)?;
        }
        tx.save_peers(&image.peers)?;
        if let Some(s) = &image.state {
            tx.save_update_state(s)?;
        }
        for c in &image.channels {
            tx.save_channel_pts(c.channel_id, c.pts)?;
        }
        for (at, key) in &image.dedup {
            tx.import_dedup_key(*at, key)?;
        }
        for u in &image.queue {
            tx.import_queued(u)?;
        }
        for c in &image.conversations {
            tx.save_conversation(c)?;
        }
        for (k, v) in &meta {
            tx.set_meta(k, v)?;
        }
        Ok(())
    })?;
    // Durable before returning, whatever the store's durability mode.
    to.store().sync()?;
    Ok(image.report())
}

impl PgStorage {
    /// The account's dedup keys (oldest first), conversations and
    /// metadata.
    fn extras(&self) -> Result<crate::account::Extras> {
        let dedup = self
            .read(
                "reading the dedup keys",
                "SELECT at, key FROM dedup WHERE account_id = $1 ORDER BY seq",
                &[],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let conversations = self
            .read(
                "reading the conversations",
                "SELECT data FROM conversations WHERE account_id = $1 ORDER BY chat_id, user_id",
                &[],
            )?
            .iter()
            .map(|r| Conversation::decode(r.get(0)).map_err(|e| super::corrupt("conversation", e)))
            .collect::<Result<Vec<_>>>()?;
        let meta = self
            .read(
                "reading the metadata",
                "SELECT key, value FROM meta WHERE account_id = $1 ORDER BY key",
                &[],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        Ok((dedup, conversations, meta))
    }

    /// Writes an image into this (empty) account in one transaction.
    fn import(&self, image: &Image) -> Result<()> {
        let batch = Batch::new(&image.peers)?;
        for c in &image.channels {
            crate::types::check_channel_id(c.channel_id)?;
        }
        let (chan_ids, chan_pts): (Vec<i64>, Vec<i32>) =
            image.channels.iter().map(|c| (c.channel_id, c.pts)).unzip();
        let st = image.state.unwrap_or_default();
        let has_state = image.state.is_some();
        let session: Option<Vec<u8>> = image.session.as_ref().map(Session::encode);
        let (dc_ids, dc_data): (Vec<i32>, Vec<Vec<u8>>) =
            image.dc_auths.iter().map(|d| (d.dc_id, d.encode())).unzip();
        let (dedup_at, dedup_keys): (Vec<i64>, Vec<&[u8]>) = image
            .dedup
            .iter()
            .map(|(at, k)| (*at, k.as_slice()))
            .unzip();
        let q_ids: Vec<&[u8]> = image.queue.iter().map(|u| u.id.as_bytes()).collect();
        let q_payloads: Vec<&[u8]> = image.queue.iter().map(|u| u.payload.as_slice()).collect();
        let q_attempts: Vec<i64> = image.queue.iter().map(|u| i64::from(u.attempts)).collect();
        let q_errors: Vec<Option<&[u8]>> = image
            .queue
            .iter()
            .map(|u| u.last_error.as_deref().map(str::as_bytes))
            .collect();
        let q_created: Vec<i64> = image.queue.iter().map(|u| u.created_at).collect();
        let q_updated: Vec<i64> = image.queue.iter().map(|u| u.updated_at).collect();
        let conv_chats: Vec<i64> = image.conversations.iter().map(|c| c.chat_id).collect();
        let conv_users: Vec<i64> = image.conversations.iter().map(|c| c.user_id).collect();
        let conv_data: Vec<Vec<u8>> = image.conversations.iter().map(|c| c.encode()).collect();
        let (meta_keys, meta_values): (Vec<&[u8]>, Vec<&[u8]>) = image
            .meta
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .unzip();

        let mut guard = self.conn.lock();
        let conn = &mut *guard;
        if let Some(reason) = &conn.lost {
            return Err(self.lost_error(reason.clone()));
        }
        let place = self.place.clone();
        let ctx = |e: ::postgres::Error| super::db_error(format!("copying into {place}"), e);
        let mut tx = conn.client.transaction().map_err(ctx)?;
        let fence = tx
            .query_opt(
                "SELECT 1 FROM leases WHERE account_id = $1 AND epoch = $2
                 AND pg_try_advisory_xact_lock(hashtext('peerlog:' || current_schema()), $1)",
                &[&self.account_id, &self.epoch],
            )
            .map_err(ctx)?;
        if fence.is_none() {
            drop(tx);
            let reason = "another owner took the lease".to_owned();
            conn.lost = Some(reason.clone());
            return Err(self.lost_error(reason));
        }
        let a = &self.account_id;
        let e = &self.epoch;
        let peers: [&(dyn ToSql + Sync); 19] = [
            a,
            e,
            &batch.ids,
            &batch.hashes,
            &batch.mins,
            &batch.usernames,
            &batch.others,
            &batch.phones,
            &batch.tails,
            &has_state,
            &st.pts,
            &st.qts,
            &st.date,
            &st.seq,
            &chan_ids,
            &chan_pts,
            &batch.name_peers,
            &batch.name_kinds,
            &batch.names,
        ];
        tx.query(super::SAVE_PEERS, &peers).map_err(ctx)?;
        tx.execute(
            "INSERT INTO sessions (account_id, data) SELECT $1, $2::bytea WHERE $2::bytea IS NOT NULL",
            &[a, &session],
        )
        .map_err(ctx)?;
        tx.execute(
            "INSERT INTO dc_auths (account_id, dc_id, data) SELECT $1, d, x FROM unnest($2::int4[], $3::bytea[]) AS t(d, x)",
            &[a, &dc_ids, &dc_data],
        )
        .map_err(ctx)?;
        tx.execute(
            "INSERT INTO dedup (account_id, at, key)
             SELECT $1, t.at, t.k FROM unnest($2::int8[], $3::bytea[]) WITH ORDINALITY AS t(at, k, o) ORDER BY t.o",
            &[a, &dedup_at, &dedup_keys],
        )
        .map_err(ctx)?;
        tx.execute(
            "INSERT INTO queue (account_id, id, payload, attempts, last_error, created_at, updated_at)
             SELECT $1, t.i, t.p, t.n, t.e, t.c, t.u
             FROM unnest($2::bytea[], $3::bytea[], $4::int8[], $5::bytea[], $6::int8[], $7::int8[])
                 WITH ORDINALITY AS t(i, p, n, e, c, u, o) ORDER BY t.o",
            &[
                a,
                &q_ids,
                &q_payloads,
                &q_attempts,
                &q_errors,
                &q_created,
                &q_updated,
            ],
        )
        .map_err(ctx)?;
        tx.execute(
            "INSERT INTO conversations (account_id, chat_id, user_id, data)
             SELECT $1, c, u, d FROM unnest($2::int8[], $3::int8[], $4::bytea[]) AS t(c, u, d)",
            &[a, &conv_chats, &conv_users, &conv_data],
        )
        .map_err(ctx)?;
        tx.execute(
            "INSERT INTO meta (account_id, key, value) SELECT $1, k, v FROM unnest($2::bytea[], $3::bytea[]) AS t(k, v)",
            &[a, &meta_keys, &meta_values],
        )
        .map_err(ctx)?;
        tx.commit().map_err(ctx)
    }
}
