//! The peer table: one immutable generation on disk ([`generation`]), the
//! peers and names changed since ([`table`]), the merge rules a save goes
//! through ([`merge`]), and the lock-free lookups by id and name
//! ([`lookup`]). The engine ([`crate::engine`]) writes and folds it; nothing
//! here imports the engine.

pub(crate) mod generation;
pub(crate) mod lookup;
pub(crate) mod merge;
pub(crate) mod table;
