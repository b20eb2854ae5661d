//! Output: a result as text or JSON, errors with their exit code, the
//! progress line, and how peers and sessions are shown (secrets redacted
//! unless asked for).

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use peerlog::{ChannelKind, DcAuth, Error, Peer, PeerKind, Session};
use serde_json::{Value, json};

/// What a subcommand produced: text for people, JSON for scripts, and the
/// exit code.
pub struct Outcome {
    pub text: String,
    pub json: Value,
    pub code: u8,
    /// The command wrote its output itself, as it went (peers, dump).
    pub printed: bool,
}

impl Outcome {
    pub fn ok(text: String, json: Value) -> Outcome {
        Outcome {
            text,
            json,
            code: 0,
            printed: false,
        }
    }

    /// Output already written to stdout.
    pub fn printed() -> Outcome {
        Outcome {
            printed: true,
            ..Outcome::ok(String::new(), Value::Null)
        }
    }

    pub fn print(&self, json: bool) {
        if self.printed {
            return;
        }
        let mut stdout = std::io::stdout().lock();
        let _ = if json {
            writeln!(
                stdout,
                "{}",
                serde_json::to_string_pretty(&self.json).unwrap_or_default()
            )
        } else {
            write!(stdout, "{}", self.text)
        };
        let _ = stdout.flush();
    }
}

/// A failure: the message and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub msg: String,
}

impl Failure {
    pub fn new(code: u8, msg: impl Into<String>) -> Failure {
        Failure {
            code,
            msg: msg.into(),
        }
    }

    pub fn print(&self, json: bool) {
        if self.msg.is_empty() {
            // A closed pipe: nothing to say.
            return;
        }
        if json {
            println!("{}", json!({ "error": self.msg, "exit_code": self.code }));
        }
        eprintln!("peerlog: {}", self.msg);
    }

    /// A library error at `path`, with the exit code for its kind and
    /// what to do where the library's message does not say.
    pub fn from_store(e: Error, path: &Path) -> Failure {
        let shown = path.display();
        match e {
            Error::Locked {
                pid,
                read_only_holder,
                ..
            } => {
                let msg = if read_only_holder {
                    format!(
                        "{shown} is open read-only in another process (a peerlog info, verify or \
                         dump, or a read-only handle of a program); compact, repair and import need \
                         it to themselves: run them when that one has finished"
                    )
                } else {
                    let who = match pid {
                        Some(pid) => {
                            format!("process {pid} (a running bot?) has it open for writing")
                        }
                        None => "another process has it open for writing".to_string(),
                    };
                    format!(
                        "{shown} is in use: {who}. A store has one writer at a time, and a \
                         read-only open is refused while a writer holds it, so peerlog cannot read \
                         it now. To get a copy while the bot runs, have the bot call \
                         Store::backup_to(\"copy.peerlog\") (or Account::backup_to / \
                         Pool::backup_to) and run peerlog on the copy; or stop the bot first. \
                         Do not cp a live store: the copy may not open."
                    )
                };
                Failure::new(crate::LOCKED, msg)
            }
            Error::NotPeerlog { .. } => Failure::new(
                crate::NOT_A_STORE,
                format!("{shown} is not a peerlog store (its first bytes are not peerlog's magic)"),
            ),
            e @ Error::UnsupportedVersion { .. } => Failure::new(
                crate::NOT_A_STORE,
                format!("{shown}: {e}; use a newer peerlog"),
            ),
            e @ Error::Corrupt { .. } => Failure::new(
                crate::NOT_A_STORE,
                format!(
                    "{shown}: {e}. Try `peerlog repair {shown}` on a copy, or restore a backup"
                ),
            ),
            Error::Io { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Failure::new(crate::NOT_A_STORE, format!("{e}"))
            }
            Error::SessionFile(ref f) => {
                use peerlog::migrate::SessionFileError as F;
                let code = match f {
                    F::DestinationExists { .. } | F::AccountNotEmpty { .. } => crate::EXISTS,
                    F::Sqlite { .. } => crate::OTHER,
                    _ => crate::INVALID,
                };
                Failure::new(code, e.to_string())
            }
            e @ (Error::Invalid(_) | Error::SessionString(_) | Error::TooLarge { .. }) => {
                Failure::new(crate::INVALID, e.to_string())
            }
            e => Failure::new(crate::OTHER, format!("{shown}: {e}")),
        }
    }
}

/// A status line on stderr while `f` runs, only when stderr is a
/// terminal: the label and the seconds so far, cleared at the end.
pub fn progress<R>(label: &str, f: impl FnOnce() -> R) -> R {
    if !std::io::stderr().is_terminal() {
        return f();
    }
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ticker = {
        let (done, label) = (done.clone(), label.to_string());
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut shown = false;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                let t = started.elapsed();
                if t >= Duration::from_millis(300) {
                    eprint!("\r{label}… {:.1} s", t.as_secs_f64());
                    shown = true;
                }
            }
            if shown {
                eprint!("\r\x1b[2K");
            }
        })
    };
    let r = f();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = ticker.join();
    r
}

pub fn hex(b: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

pub const REDACTED: &str = "<redacted; --show-secrets shows it>";

pub fn kind_name(k: PeerKind) -> &'static str {
    match k {
        PeerKind::User => "user",
        PeerKind::Chat => "chat",
        PeerKind::Channel => "channel",
    }
}

fn channel_kind_name(k: ChannelKind) -> &'static str {
    match k {
        ChannelKind::Broadcast => "broadcast",
        ChannelKind::Megagroup => "megagroup",
        ChannelKind::Gigagroup => "gigagroup",
    }
}

pub fn peer_json(p: &Peer) -> Value {
    json!({
        "id": p.id.bot_api(),
        "kind": kind_name(p.id.kind()),
        "bare_id": p.id.bare_id(),
        "access_hash": p.access_hash,
        "min": p.min,
        "username": p.username,
        "usernames": p.usernames,
        "first_name": p.first_name,
        "last_name": p.last_name,
        "phone": p.phone,
        "is_bot": p.is_bot,
        "is_self": p.is_self,
        "channel_kind": p.channel_kind.map(channel_kind_name),
        "photo_id": p.photo_id,
        "language": p.language,
        "updated_at": p.updated_at,
    })
}

pub fn peer_line(p: &Peer) -> String {
    let mut s = format!("{:<7} {:>15}", kind_name(p.id.kind()), p.id.bot_api());
    match p.access_hash {
        Some(h) => s.push_str(&format!("  hash {h}")),
        None => s.push_str("  hash -"),
    }
    if let Some(u) = &p.username {
        s.push_str(&format!("  @{u}"));
    }
    for u in &p.usernames {
        s.push_str(&format!(" @{u}"));
    }
    if let Some(ph) = &p.phone {
        s.push_str(&format!("  +{ph}"));
    }
    let name = [p.first_name.as_deref(), p.last_name.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    if !name.is_empty() {
        s.push_str(&format!("  {name:?}"));
    }
    if let Some(k) = p.channel_kind {
        s.push_str(&format!("  {}", channel_kind_name(k)));
    }
    for (flag, word) in [(p.is_bot, "bot"), (p.is_self, "self"), (p.min, "min")] {
        if flag {
            s.push_str(&format!("  {word}"));
        }
    }
    s
}

pub fn session_json(s: &Session, secrets: bool) -> Value {
    json!({
        "dc_id": s.dc_id,
        "server_addr": s.server_addr.map(|a| a.to_string()),
        "port": s.port,
        "api_id": s.api_id,
        "api_hash": s.api_hash.as_ref().map(|h| if secrets { h.clone() } else { REDACTED.to_string() }),
        "test_mode": s.test_mode,
        "auth_key": s.auth_key.as_ref().map(|k| if secrets { hex(k.as_bytes()) } else { REDACTED.to_string() }),
        "user_id": s.user_id,
        "is_bot": s.is_bot,
        "first_name": s.first_name,
        "last_name": s.last_name,
        "username": s.username,
        "date": s.date,
    })
}

pub fn dc_auth_json(d: &DcAuth, secrets: bool) -> Value {
    json!({
        "dc_id": d.dc_id,
        "auth_key": if secrets { hex(d.auth_key.as_bytes()) } else { REDACTED.to_string() },
        "server_salt": d.server_salt,
        "server_addr": d.server_addr.map(|a| a.to_string()),
        "port": d.port,
    })
}

/// Bytes as UTF-8 text when they are, else hex.
pub fn bytes_json(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) => json!({ "text": s }),
        Err(_) => json!({ "hex": hex(b) }),
    }
}

pub fn bytes_text(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => format!("{s:?}"),
        Err(_) => format!("0x{}", hex(b)),
    }
}

/// Sizes for people: bytes, KiB, MiB, GiB.
pub fn size(n: u64) -> String {
    let units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} bytes")
    } else {
        format!("{v:.1} {} ({n} bytes)", units[u])
    }
}
