//! The peer table: lock-free lookups by peer id and by name.

pub(crate) mod lookup;
