//! `peerlog`: look inside, check, back up and maintain peerlog store
//! files from the shell (feature `cli`; `cargo install --path . --features
//! cli`). `peerlog --help` lists the subcommands and the exit codes.
//!
//! Read-only subcommands open the store read-only (a shared lock, nothing
//! written). Auth keys and api hashes are never printed unless
//! `--show-secrets` (dump) or `export` asks for them; session strings are
//! read from stdin with `-` so they never enter the shell's history.

mod cmd;
mod out;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, Parser, Subcommand, ValueEnum};

/// The exit codes, as `--help` prints them and README documents them.
const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  problems found (verify, repair), or get found no peer
  2  usage error (bad arguments)
  3  the store is held by another handle (a running bot): see the message
  4  not a usable store: missing, not a peerlog file, damaged, or a newer format
  5  invalid input: a session string or file, a query or an account name that does not parse or exist
  6  refused to overwrite: the destination exists, or the account already has a session (or, for a
     session file, any data)
  7  I/O or other error";

/// Exit code: problems found.
pub const PROBLEMS: u8 = 1;
/// Exit code: usage.
pub const USAGE: u8 = 2;
/// Exit code: held by another handle.
pub const LOCKED: u8 = 3;
/// Exit code: not a usable store.
pub const NOT_A_STORE: u8 = 4;
/// Exit code: invalid input.
pub const INVALID: u8 = 5;
/// Exit code: would overwrite.
pub const EXISTS: u8 = 6;
/// Exit code: I/O or other error.
pub const OTHER: u8 = 7;

#[derive(Parser)]
#[command(
    name = "peerlog",
    version,
    about = "Inspect, check, back up and maintain peerlog store files",
    after_help = EXIT_CODES
)]
struct Cli {
    /// Print one JSON document on stdout instead of text (errors too).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Peer kinds for `peers --kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    /// Users and bots.
    User,
    /// Bots only.
    Bot,
    /// Basic groups.
    Chat,
    /// Channels, supergroups and gigagroups.
    Channel,
}

/// Session file formats for `import --file` and `export --file`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FileFormat {
    /// Telethon's SQLite `.session` (schema 7).
    Telethon,
    /// Pyrogram's `.session` (schema 3; 2 is read too).
    Pyrogram,
    /// Kurigram's `.session` (schema 7, with usernames and update state; 4 to 7 are read).
    Kurigram,
    /// grammers-session 0.11's SQLite `.session`.
    Grammers,
}

impl FileFormat {
    /// The library's name for it.
    pub fn lib(self) -> peerlog::migrate::SessionFileFormat {
        use peerlog::migrate::SessionFileFormat as F;
        match self {
            FileFormat::Telethon => F::Telethon,
            FileFormat::Pyrogram => F::Pyrogram,
            FileFormat::Kurigram => F::Kurigram,
            FileFormat::Grammers => F::Grammers,
        }
    }
}

/// Session string formats for `export --string`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StringFormat {
    /// Telethon's StringSession.
    Telethon,
    /// Pyrogram's (and Kurigram's) export_session_string.
    Pyrogram,
    /// GramJS's StringSession.
    Gramjs,
}

#[derive(Subcommand)]
enum Cmd {
    /// Size, accounts, peers per kind, dead bytes, index load, log and checkpoint, warnings.
    #[command(visible_alias = "stats")]
    Info {
        /// The store file.
        store: PathBuf,
    },
    /// Check every checksum, index slot and invariant; exit 1 if anything is wrong.
    Verify {
        /// The store file.
        store: PathBuf,
    },
    /// List the accounts, with their session summary and peer counts.
    Accounts {
        /// The store file.
        store: PathBuf,
    },
    /// List peers, optionally filtered.
    Peers {
        /// The store file.
        store: PathBuf,
        /// The account (needed when the store has several).
        #[arg(long, short)]
        account: Option<String>,
        /// Only peers of this kind.
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
        /// Only peers with a username containing this text (case-insensitive, `@` ignored).
        #[arg(long)]
        username: Option<String>,
        /// At most this many peers.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Find a peer by Bot API id (-1001234567890), bare id (every kind), kind:id (channel:123), @username or +phone.
    Get {
        /// The store file.
        store: PathBuf,
        /// What to look up.
        #[arg(allow_hyphen_values = true)]
        query: String,
        /// The account (needed when the store has several).
        #[arg(long, short)]
        account: Option<String>,
    },
    /// Everything in the store; auth keys and api hashes redacted unless --show-secrets.
    Dump {
        /// The store file.
        store: PathBuf,
        /// Only this account.
        #[arg(long, short)]
        account: Option<String>,
        /// Print auth keys (hex) and api hashes. They log in as the account: keep the output private.
        #[arg(long)]
        show_secrets: bool,
    },
    /// Rewrite every segment and index, giving free space back to the filesystem.
    Compact {
        /// The store file.
        store: PathBuf,
    },
    /// Write a consistent, verified copy of a store to a new file (never overwrites).
    Backup {
        /// The store file.
        store: PathBuf,
        /// The new file.
        dest: PathBuf,
    },
    /// Rebuild the peer table and index from what is intact; exit 1 if problems remain.
    Repair {
        /// The store file.
        store: PathBuf,
    },
    /// Print an account's session as a session string, or write the account (session, peers, update state) as another library's session file.
    #[command(group(ArgGroup::new("what").required(true).args(["string", "file"])))]
    Export {
        /// The store file.
        store: PathBuf,
        /// The account (needed when the store has several).
        #[arg(long, short)]
        account: Option<String>,
        /// A session string in this format.
        #[arg(long = "string", value_enum, value_name = "FORMAT")]
        string: Option<StringFormat>,
        /// Write the string to this new file (mode 0600) instead of stdout.
        #[arg(long, short, requires = "string")]
        out: Option<PathBuf>,
        /// A new session file (mode 0600; never overwrites), in the format of --format.
        #[arg(long, value_name = "NEW.session", requires = "format")]
        file: Option<PathBuf>,
        /// The session file's format.
        #[arg(long, value_enum, requires = "file")]
        format: Option<FileFormat>,
    },
    /// Save a Telethon, Pyrogram or GramJS session string (format detected) as an account's session, or import another library's session file (session, peers, usernames, phones, update state) into an empty account; creates the store if missing.
    #[command(group(ArgGroup::new("what").required(true).args(["string", "file"])))]
    Import {
        /// The store file.
        store: PathBuf,
        /// The account (default: the only one, or "default" in a new store).
        #[arg(long, short)]
        account: Option<String>,
        /// The session string, or `-` to read it from stdin (keeps it out of shell history).
        #[arg(long = "string", value_name = "STRING|-", allow_hyphen_values = true)]
        string: Option<String>,
        /// Replace a session the account already has (strings only).
        #[arg(long, conflicts_with = "file")]
        replace: bool,
        /// A Telethon, Pyrogram, Kurigram or grammers `.session` file.
        #[arg(long, value_name = "FILE.session")]
        file: Option<PathBuf>,
        /// The session file's format (default: recognised from its tables).
        #[arg(long, value_enum, requires = "file")]
        format: Option<FileFormat>,
    },
    /// Copy an account of the store into an empty PostgreSQL account (feature postgres: see README, "Many machines").
    CopyToPg {
        /// The store file.
        store: PathBuf,
        /// The account (needed when the store has several).
        #[arg(long, short)]
        account: Option<String>,
        /// The PostgreSQL account (default: the same name).
        #[arg(long)]
        to: Option<String>,
        /// The server (a `postgresql://` URL or `key=value` string); default: $PEERLOG_PG_URL, which keeps a password out of shell history.
        #[arg(long)]
        url: Option<String>,
    },
    /// Copy a PostgreSQL account into an empty account of the store (created if missing).
    CopyFromPg {
        /// The store file.
        store: PathBuf,
        /// The PostgreSQL account.
        #[arg(long)]
        from: String,
        /// The account of the store (default: the same name).
        #[arg(long, short)]
        account: Option<String>,
        /// The server; default: $PEERLOG_PG_URL.
        #[arg(long)]
        url: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let json = cli.json;
    let result = match cli.cmd {
        Cmd::Info { store } => cmd::info(&store),
        Cmd::Verify { store } => cmd::verify(&store),
        Cmd::Accounts { store } => cmd::accounts(&store),
        Cmd::Peers {
            store,
            account,
            kind,
            username,
            limit,
        } => cmd::peers(
            &store,
            account.as_deref(),
            kind,
            username.as_deref(),
            limit,
            json,
        ),
        Cmd::Get {
            store,
            query,
            account,
        } => cmd::get(&store, &query, account.as_deref()),
        Cmd::Dump {
            store,
            account,
            show_secrets,
        } => cmd::dump(&store, account.as_deref(), show_secrets, json),
        Cmd::Compact { store } => cmd::compact(&store),
        Cmd::Backup { store, dest } => cmd::backup(&store, &dest),
        Cmd::Repair { store } => cmd::repair(&store),
        Cmd::Export {
            store,
            account,
            string,
            out,
            file,
            format,
        } => match (string, file, format) {
            (Some(string), _, _) => cmd::export(&store, account.as_deref(), string, out.as_deref()),
            (None, Some(file), Some(format)) => {
                cmd::export_file(&store, account.as_deref(), &file, format, json)
            }
            _ => Err(out::Failure::new(
                USAGE,
                "give --string FORMAT, or --file NEW.session with --format",
            )),
        },
        Cmd::Import {
            store,
            account,
            string,
            replace,
            file,
            format,
        } => match (string, file) {
            (Some(string), _) => cmd::import(&store, account.as_deref(), &string, replace),
            (None, Some(file)) => cmd::import_file(&store, account.as_deref(), &file, format, json),
            _ => Err(out::Failure::new(
                USAGE,
                "give --string STRING|-, or --file FILE.session",
            )),
        },
        Cmd::CopyToPg {
            store,
            account,
            to,
            url,
        } => cmd::copy_to_pg(&store, account.as_deref(), to.as_deref(), url),
        Cmd::CopyFromPg {
            store,
            from,
            account,
            url,
        } => cmd::copy_from_pg(&store, &from, account.as_deref(), url),
    };
    match result {
        Ok(outcome) => {
            outcome.print(json);
            ExitCode::from(outcome.code)
        }
        Err(e) => {
            e.print(json);
            ExitCode::from(e.code)
        }
    }
}
