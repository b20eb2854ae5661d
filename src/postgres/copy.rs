//! Copying an account between a peerlog file and PostgreSQL.
