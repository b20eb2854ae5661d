//! peerlog: an embedded single-file storage engine for Telegram clients.
#![deny(missing_docs)]

pub mod codec;
pub mod session;
pub mod types;

pub use session::*;
pub use types::*;
