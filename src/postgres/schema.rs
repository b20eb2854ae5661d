//! The schema: created and migrated on connect, versioned, inside one
//! transaction.
//!
//! Every table is keyed by `account_id` (a row of `accounts`, deleted with
//! it). Names are looked up through `peer_names`, whose primary key
//! `(account_id, kind, name)` is the index by lowercased username
//! (`kind` 1) and by normalized phone (`kind` 2). Keys that may be up to
//! [`crate::MAX_KEY_LEN`] bytes (dedup keys, queue ids, metadata keys) are
//! unique through an index on their SHA-256, since a B-tree entry holds at
//! most about 2.7 kB; lookups compare the bytes too.
//!
//! `schema_version` holds one row. [`migrate`] takes a transaction-scoped
//! advisory lock, so concurrent first connects create the schema once,
//! applies every missing step in order, and refuses a version newer than
//! [`SCHEMA_VERSION`] before changing anything.

use crate::error::{Error, Result};

/// The schema version this build creates and understands.
pub const SCHEMA_VERSION: i32 = 1;

/// Step `n` (1-based) brings the schema from version `n - 1` to `n`.
const STEPS: [&str; SCHEMA_VERSION as usize] = [r"
CREATE TABLE accounts (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE leases (
    account_id integer PRIMARY KEY REFERENCES accounts ON DELETE CASCADE,
    epoch bigint NOT NULL DEFAULT 0,
    host text,
    pid bigint,
    backend_pid integer,
    since bigint
);
CREATE TABLE sessions (
    account_id integer PRIMARY KEY REFERENCES accounts ON DELETE CASCADE,
    data bytea NOT NULL
);
CREATE TABLE dc_auths (
    account_id integer NOT NULL REFERENCES accounts ON DELETE CASCADE,
    dc_id integer NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (account_id, dc_id)
);
CREATE TABLE peers (
    account_id integer NOT NULL REFERENCES accounts ON DELETE CASCADE,
    peer_id bigint NOT NULL,
    access_hash bigint,
    min boolean NOT NULL,
    username text,
    usernames text[] NOT NULL,
    phone text,
    tail bytea NOT NULL,
    PRIMARY KEY (account_id, peer_id)
);
CREATE TABLE peer_names (
    account_id integer NOT NULL REFERENCES accounts ON DELETE CASCADE,
    kind smallint NOT NULL,
    name text NOT NULL,
    peer_id bigint NOT NULL,
    PRIMARY KEY (account_id, kind, name)
);
CREATE INDEX peer_names_by_peer ON peer_names (account_id, peer_id);
CREATE TABLE update_state (
    account_id integer PRIMARY KEY REFERENCES accounts ON DELETE CASCADE,
    pts integer NOT NULL,
    qts integer NOT NULL,
    date integer NOT NULL,
    seq integer NOT NULL
);
CREATE TABLE channel_pts (
    account_id integer NOT NULL REFERENCES accounts ON DELETE CASCADE,
    channel_id bigint NOT NULL,
    pts integer NOT NULL,
    PRIMARY KEY (account_id, channel_id)
);
CREATE TABLE dedup (
    seq bigint GENERATED ALWAYS AS IDENTITY,
    account_id integer NOT NULL REFERENCES accounts ON DELETE CASCADE,
    key bytea NOT NULL,
    at bigint NOT NULL,
    PRIMARY KEY (account_id, seq)
);
CREATE UNIQUE INDEX dedup_key ON dedup (account_id, sha256(key));
CREATE TABLE queue (
    seq bigint GENERATED ALWAYS AS IDENTITY,
    account_id integer NOT NULL REFERENCES accounts ON DELETE CASCADE,
    id bytea NOT NULL,
    payload bytea NOT NULL,
    attempts bigint NOT NULL DEFAULT 0,
    last_error bytea,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    PRIMARY KEY (account_id, seq)
);
CREATE UNIQUE INDEX queue_id ON queue (account_id, sha256(id));
CREATE TABLE conversations (
    account_id integer NOT NULL REFERENCES accounts ON DELETE CASCADE,
    chat_id bigint NOT NULL,
    user_id bigint NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (account_id, chat_id, user_id)
);
CREATE TABLE meta (
    account_id integer NOT NULL REFERENCES accounts ON DELETE CASCADE,
    key bytea NOT NULL,
    value bytea NOT NULL
);
CREATE UNIQUE INDEX meta_key ON meta (account_id, sha256(key));
"];

/// A schema name peerlog accepts: a plain lowercase SQL identifier, so it
/// needs no quoting.
pub(crate) fn check_schema_name(schema: &str) -> Result<()> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && schema.as_bytes()[0].is_ascii_lowercase()
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !schema.starts_with("pg_");
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "PostgreSQL schema name {schema:?}: use 1..=63 of [a-z0-9_], starting with a letter, not pg_"
        )))
    }
}

/// The first key of every advisory lock peerlog takes in a schema, in SQL
/// (`$1` the schema name); the second is the account id (0 for
/// migrations). Fenced statements compute the same key from
/// `current_schema()`, the schema on the connection's search path.
pub(crate) const LOCK_SPACE: &str = "hashtext('peerlog:' || $1::text)";

/// Creates or migrates the schema; returns the version found before.
/// The connection's `search_path` must already name `schema`.
pub(crate) fn migrate(client: &mut ::postgres::Client, schema: &str, place: &str) -> Result<i32> {
    let ctx = |what: &str| format!("{what} schema {schema} of {place}");
    let db = |what: &'static str| {
        let c = ctx(what);
        move |e: ::postgres::Error| super::db_error(c, e)
    };
    let mut tx = client.transaction().map_err(db("migrating the"))?;
    tx.execute(
        &format!("SELECT pg_advisory_xact_lock({LOCK_SPACE}, 0)"),
        &[&schema],
    )
    .map_err(db("locking the"))?;
    let exists: bool = tx
        .query_one(
            "SELECT to_regclass(format('%I.schema_version', $1::text)) IS NOT NULL",
            &[&schema],
        )
        .map_err(db("reading the version of the"))?
        .get(0);
    let found = if exists {
        let row = tx
            .query_opt("SELECT version FROM schema_version", &[])
            .map_err(db("reading the version of the"))?;
        match row {
            Some(r) => r.get::<_, i32>(0),
            None => {
                return Err(Error::Database {
                    context: ctx("checking the"),
                    message: "schema_version has no row: the schema was damaged by hand; restore it or use another schema".into(),
                });
            }
        }
    } else {
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema};
             CREATE TABLE {schema}.schema_version (
                 one boolean PRIMARY KEY DEFAULT true CHECK (one),
                 version integer NOT NULL,
                 updated_at timestamptz NOT NULL DEFAULT now());
             INSERT INTO {schema}.schema_version (version) VALUES (0);"
        ))
        .map_err(db("creating the"))?;
        0
    };
    if found > SCHEMA_VERSION {
        return Err(Error::Database {
            context: ctx("checking the"),
            message: format!(
                "the schema is at version {found}, newer than this build of peerlog understands ({SCHEMA_VERSION}): upgrade peerlog; nothing was changed"
            ),
        });
    }
    if found < 0 {
        return Err(Error::Database {
            context: ctx("checking the"),
            message: format!("schema_version holds {found}, which no peerlog writes"),
        });
    }
    tx.batch_execute(&format!("SET LOCAL search_path = {schema}"))
        .map_err(db("migrating the"))?;
    for (i, step) in STEPS.iter().enumerate().skip(found as usize) {
        tx.batch_execute(step).map_err(db("migrating the"))?;
        tx.execute(
            "UPDATE schema_version SET version = $1, updated_at = now()",
            &[&(i as i32 + 1)],
        )
        .map_err(db("migrating the"))?;
    }
    tx.commit().map_err(db("migrating the"))?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names() {
        for ok in ["peerlog", "t_1", "a"] {
            check_schema_name(ok).unwrap();
        }
        for bad in [
            "",
            "Peerlog",
            "1a",
            "a-b",
            "a;drop",
            "pg_x",
            &"a".repeat(64),
        ] {
            assert!(check_schema_name(bad).is_err(), "{bad:?}");
        }
    }
}
