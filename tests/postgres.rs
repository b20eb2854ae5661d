//! The PostgreSQL backend against a real server: the conformance suite and
//! its persistence variant, unchanged; the owner lease across processes
//! (a second owner, kill -9, a terminated connection); fencing; several
//! queue workers; bad input.
//!
//! The server comes from `PEERLOG_PG_URL` (scripts/with-postgres.sh starts
//! one and sets it). Without it every test prints why it skips; with
//! `PEERLOG_PG_REQUIRED=1` (set by .ci/run) a skip is a failure. Each test
//! works in its own accounts (and, where it needs one, its own schema).

use peerlog::postgres::{PgOptions, PgStorage};
use peerlog::{Storage, conformance};
use std::sync::atomic::{AtomicU32, Ordering};

/// The server's connection string, or `None` (after saying why) when the
/// test should skip.
fn url(test: &str) -> Option<String> {
    match std::env::var("PEERLOG_PG_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            if std::env::var("PEERLOG_PG_REQUIRED").is_ok_and(|v| v == "1") {
                panic!(
                    "{test}: PEERLOG_PG_REQUIRED=1 but PEERLOG_PG_URL is not set: run under scripts/with-postgres.sh"
                );
            }
            eprintln!(
                "{test}: skipped: PEERLOG_PG_URL is not set (run `scripts/with-postgres.sh cargo test --all-features --test postgres` to start a private server)"
            );
            None
        }
    }
}

/// An account name no other test or run uses.
fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn opts() -> PgOptions {
    PgOptions {
        dedup_max_keys: 16,
        ..PgOptions::default()
    }
}

#[test]
fn conformance_suite() {
    let Some(url) = url("conformance_suite") else {
        return;
    };
    conformance::run_with(
        &|| {
            Box::new(PgStorage::open_with(&url, &unique("conf"), opts()).unwrap())
                as Box<dyn Storage>
        },
        &conformance::Config {
            dedup_max_keys: Some(16),
        },
    );
}

#[test]
fn conformance_persistence() {
    let Some(url) = url("conformance_persistence") else {
        return;
    };
    let name = unique("persist");
    conformance::run_persistent(&|| {
        Box::new(PgStorage::open_with(&url, &name, opts()).unwrap()) as Box<dyn Storage>
    });
}
