//! The engine: one file, one writer, many readers.

pub(crate) mod logscan;
pub(crate) mod open;
pub(crate) mod peers;
pub(crate) mod state;
pub(crate) mod stats;
pub(crate) mod store;
pub(crate) mod verify;
