//! Draining an account's durable queue from many workers at once.

use ::postgres::{Client, Row, Transaction};

use super::{PgOptions, account_id, connect, db_error, unix_now};
use crate::MAX_VALUE_LEN;
use crate::error::{Error, Result};
use crate::types::DurableUpdate;

/// A queued update as a row of `queue` (`id, payload, attempts,
/// last_error, created_at, updated_at`).
pub(crate) fn update_from(r: &Row) -> Result<DurableUpdate> {
    let id: Vec<u8> = r.get(0);
    let id = String::from_utf8(id).map_err(|_| Error::Database {
        context: "reading the queue".into(),
        message: "a stored queue id is not UTF-8".into(),
    })?;
    let last_error: Option<Vec<u8>> = r.get(3);
    Ok(DurableUpdate {
        id,
        payload: r.get(1),
        attempts: r.get::<_, i64>(2).clamp(0, u32::MAX as i64) as u32,
        last_error: last_error.map(|e| String::from_utf8_lossy(&e).into_owned()),
        created_at: r.get(4),
        updated_at: r.get(5),
    })
}

/// A worker on one account's durable queue: any number of them, in any
/// processes, drain the queue together. It needs no owner lease (it only
/// acknowledges and fails items), so it works beside the owner.
///
/// ```no_run
/// use peerlog::postgres::{PgOptions, PgQueue};
/// let mut worker = PgQueue::connect("host=db user=bots", "my-bot", PgOptions::default())?;
/// while let Some(item) = worker.claim()? {
///     // ... handle item.update().payload ...
///     item.ack()?; // or item.fail("why")?: it stays queued
/// }
/// # Ok::<(), peerlog::Error>(())
/// ```
pub struct PgQueue {
    client: Client,
    account_id: i32,
    place: String,
}

impl std::fmt::Debug for PgQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgQueue")
            .field("account", &self.place)
            .finish_non_exhaustive()
    }
}

/// One claimed item: locked for this worker (`FOR UPDATE SKIP LOCKED`)
/// until [`Claim::ack`] or [`Claim::fail`] commits. Dropping it, or the
/// worker dying, rolls back: the item is handed out again, with its
/// attempts unchanged.
pub struct Claim<'a> {
    tx: Transaction<'a>,
    seq: i64,
    update: DurableUpdate,
    place: &'a str,
}

impl std::fmt::Debug for Claim<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claim")
            .field("id", &self.update.id)
            .field("attempts", &self.update.attempts)
            .finish_non_exhaustive()
    }
}

impl PgQueue {
    /// Connects a worker to the queue of account `name` (created if
    /// missing).
    pub fn connect(url: &str, name: &str, opts: PgOptions) -> Result<PgQueue> {
        let (mut client, where_) = connect(url, &opts, "queue worker")?;
        let account_id = account_id(&mut client, name, &where_)?;
        Ok(PgQueue {
            client,
            account_id,
            place: format!("{where_}, schema {}, account {name:?}", opts.schema),
        })
    }

    /// The oldest queued item no other worker holds, locked for this one;
    /// `None` when there is none.
    pub fn claim(&mut self) -> Result<Option<Claim<'_>>> {
        let place = self.place.as_str();
        let ctx = |what: &str| format!("{what} ({place})");
        let mut tx = self
            .client
            .transaction()
            .map_err(|e| db_error(ctx("claiming a queued update"), e))?;
        let row = tx
            .query_opt(
                "SELECT id, payload, attempts, last_error, created_at, updated_at, seq FROM queue
                 WHERE account_id = $1 ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED",
                &[&self.account_id],
            )
            .map_err(|e| db_error(ctx("claiming a queued update"), e))?;
        let Some(row) = row else {
            tx.rollback()
                .map_err(|e| db_error(ctx("claiming a queued update"), e))?;
            return Ok(None);
        };
        let update = update_from(&row)?;
        let seq: i64 = row.get(6);
        Ok(Some(Claim {
            tx,
            seq,
            update,
            place,
        }))
    }
}

impl Claim<'_> {
    /// The claimed update.
    pub fn update(&self) -> &DurableUpdate {
        &self.update
    }

    /// Removes the item from the queue and commits: durable when it
    /// returns.
    pub fn ack(mut self) -> Result<()> {
        let place = self.place;
        self.tx
            .execute("DELETE FROM queue WHERE seq = $1", &[&self.seq])
            .map_err(|e| db_error(format!("acknowledging a queued update ({place})"), e))?;
        self.tx
            .commit()
            .map_err(|e| db_error(format!("acknowledging a queued update ({place})"), e))
    }

    /// Records a failed attempt and its error, commits, and returns the
    /// attempts so far; the item stays queued in its place.
    pub fn fail(mut self, error: &str) -> Result<u32> {
        if error.len() > MAX_VALUE_LEN {
            return Err(Error::TooLarge {
                what: "queue error",
                len: error.len(),
                max: MAX_VALUE_LEN,
            });
        }
        let place = self.place;
        let ctx = || format!("recording a failed attempt ({place})");
        let row = self
            .tx
            .query_one(
                "UPDATE queue SET attempts = least(attempts + 1, 4294967295), last_error = $2, updated_at = $3
                 WHERE seq = $1 RETURNING attempts",
                &[&self.seq, &error.as_bytes(), &unix_now()],
            )
            .map_err(|e| db_error(ctx(), e))?;
        self.tx.commit().map_err(|e| db_error(ctx(), e))?;
        Ok(row.get::<_, i64>(0) as u32)
    }
}
