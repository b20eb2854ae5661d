//! The subcommands, each on the library's public API.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Read, Write};
use std::path::Path;

use peerlog::{Account, Options, Peer, PeerId, PeerKind, Session, Storage, Store};
use serde_json::{Value, json};

use crate::out::{
    Failure, Outcome, bytes_json, bytes_text, dc_auth_json, kind_name, peer_json, peer_line,
    progress, session_json, size,
};
use crate::{EXISTS, FileFormat, INVALID, KindArg, NOT_A_STORE, PROBLEMS, StringFormat, USAGE};

type Res = Result<Outcome, Failure>;

/// Opens without writing a byte (a shared lock; no recovery truncation).
fn open_ro(path: &Path) -> Result<Store, Failure> {
    if std::fs::symlink_metadata(path).is_err() {
        return Err(Failure::new(
            NOT_A_STORE,
            format!("{}: no such file", path.display()),
        ));
    }
    Store::open_with(
        path,
        Options {
            read_only: true,
            create: false,
            ..Options::default()
        },
    )
    .map_err(|e| Failure::from_store(e, path))
}

/// Opens for writing; creates a missing store only when `create`.
fn open_rw(path: &Path, create: bool) -> Result<Store, Failure> {
    if !create && std::fs::symlink_metadata(path).is_err() {
        return Err(Failure::new(
            NOT_A_STORE,
            format!("{}: no such file", path.display()),
        ));
    }
    Store::open_with(
        path,
        Options {
            create,
            ..Options::default()
        },
    )
    .map_err(|e| Failure::from_store(e, path))
}

/// Closes a store opened for writing, reporting a failed final sync.
fn close(store: Store, path: &Path) -> Result<(), Failure> {
    store.close().map_err(|e| Failure::from_store(e, path))
}

fn lib(path: &Path) -> impl Fn(peerlog::Error) -> Failure + '_ {
    move |e| Failure::from_store(e, path)
}

/// The account `name`, or the only one when no name is given.
fn pick_account(store: &Store, name: Option<&str>, path: &Path) -> Result<Account, Failure> {
    let names = store.accounts().map_err(lib(path))?;
    let name = match name {
        Some(n) if names.iter().any(|x| x == n) => n.to_string(),
        Some(n) => {
            return Err(Failure::new(
                INVALID,
                format!(
                    "{} has no account {n:?}; its accounts: {}",
                    path.display(),
                    list_or_none(&names)
                ),
            ));
        }
        None => match names.as_slice() {
            [one] => one.clone(),
            [] => {
                return Err(Failure::new(
                    INVALID,
                    format!("{} has no accounts", path.display()),
                ));
            }
            _ => {
                return Err(Failure::new(
                    USAGE,
                    format!(
                        "{} has {} accounts ({}); choose one with --account",
                        path.display(),
                        names.len(),
                        list_or_none(&names)
                    ),
                ));
            }
        },
    };
    store.account(&name).map_err(lib(path))
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names
            .iter()
            .map(|n| format!("{n:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Peers of one account per kind, from the ids alone.
fn kinds(store: &Store, acct: &Account, path: &Path) -> Result<[u64; 3], Failure> {
    let mut k = [0u64; 3];
    for id in store.peer_ids(acct.number()).map_err(lib(path))? {
        match PeerId::from_bot_api(id).map(PeerId::kind) {
            Some(PeerKind::User) => k[0] += 1,
            Some(PeerKind::Chat) => k[1] += 1,
            Some(PeerKind::Channel) => k[2] += 1,
            None => {}
        }
    }
    Ok(k)
}

pub fn info(path: &Path) -> Res {
    let store = open_ro(path)?;
    let st = store.stats();
    let names = store.accounts().map_err(lib(path))?;
    let mut total = [0u64; 3];
    let mut accounts = Vec::new();
    let mut t = String::new();
    let _ = writeln!(t, "file          {}", path.display());
    let _ = writeln!(t, "size          {}", size(st.file_size));
    let _ = writeln!(t, "free inside   {}", size(st.free_bytes));
    let dead: u64 = st.buckets.iter().map(|b| b.dead_bytes).sum();
    let _ = writeln!(t, "dead bytes    {}", size(dead));
    for b in st.buckets.iter().filter(|b| b.dead_bytes > 0) {
        let _ = writeln!(t, "  {:<14}{}", b.name, size(b.dead_bytes));
    }
    let _ = writeln!(
        t,
        "index load    id {:.2}, username/phone {:.2}",
        st.id_index_load, st.username_index_load
    );
    if st.overlay_peers > 0 {
        let _ = writeln!(
            t,
            "              {} peers changed since the index was written (folded into the table at a later checkpoint)",
            st.overlay_peers
        );
    }
    let _ = writeln!(
        t,
        "checkpoint    generation {} (the last one on disk); {} of log written since, of {}",
        st.generation,
        size(st.log_used),
        size(st.log_capacity)
    );
    let _ = writeln!(
        t,
        "dedup keys    {}\nqueue items   {}",
        st.dedup_keys, st.queue_items
    );
    let _ = writeln!(t, "accounts      {}", names.len());
    for n in &names {
        let acct = store.account(n).map_err(lib(path))?;
        let k = kinds(&store, &acct, path)?;
        for i in 0..3 {
            total[i] += k[i];
        }
        let session = acct.session().map_err(lib(path))?.is_some();
        let _ = writeln!(
            t,
            "  {n:?}: {} peers ({} users, {} chats, {} channels){}",
            k.iter().sum::<u64>(),
            k[0],
            k[1],
            k[2],
            if session { ", session" } else { "" }
        );
        accounts.push(json!({
            "name": n, "peers": k.iter().sum::<u64>(),
            "users": k[0], "chats": k[1], "channels": k[2], "session": session,
        }));
    }
    let _ = writeln!(
        t,
        "peers         {} ({} users, {} chats, {} channels)",
        st.peers, total[0], total[1], total[2]
    );
    if st.recovered_bytes > 0 {
        let _ = writeln!(
            t,
            "note          a torn log tail of {} bytes (never synced) is left out; a writable open drops it",
            st.recovered_bytes
        );
    }
    if st.index_rebuilt {
        let _ = writeln!(
            t,
            "note          the peer index failed its check and was rebuilt in memory; run `peerlog verify`"
        );
    }
    if let Some(w) = &st.mode_warning {
        let _ = writeln!(t, "WARNING       {w}");
    }
    let buckets: Vec<Value> = st
        .buckets
        .iter()
        .map(|b| {
            json!({
                "name": b.name, "entries": b.entries, "live_bytes": b.live_bytes,
                "dead_bytes": b.dead_bytes, "segment_bytes": b.segment_bytes, "log_bytes": b.log_bytes,
            })
        })
        .collect();
    let j = json!({
        "file": path.display().to_string(),
        "file_size": st.file_size,
        "free_bytes": st.free_bytes,
        "dead_bytes": dead,
        "buckets": buckets,
        "id_index_load": st.id_index_load,
        "username_index_load": st.username_index_load,
        "overlay_peers": st.overlay_peers,
        "generation": st.generation,
        "log_used": st.log_used,
        "log_capacity": st.log_capacity,
        "peers": st.peers,
        "users": total[0], "chats": total[1], "channels": total[2],
        "dedup_keys": st.dedup_keys,
        "queue_items": st.queue_items,
        "accounts": accounts,
        "recovered_bytes": st.recovered_bytes,
        "index_rebuilt": st.index_rebuilt,
        "warnings": st.mode_warning.iter().collect::<Vec<_>>(),
    });
    Ok(Outcome::ok(t, j))
}

pub fn verify(path: &Path) -> Res {
    if std::fs::symlink_metadata(path).is_err() {
        return Err(Failure::new(
            NOT_A_STORE,
            format!("{}: no such file", path.display()),
        ));
    }
    // A foreign file, a newer format or a held store is not a list of
    // problems: the open says what it is. Damage is left to verify.
    let ro = Options {
        read_only: true,
        create: false,
        ..Options::default()
    };
    match Store::open_with(path, ro) {
        Ok(store) => drop(store),
        Err(peerlog::Error::Corrupt { .. }) => {}
        Err(e) => return Err(Failure::from_store(e, path)),
    }
    let r = progress("verifying", || peerlog::verify_file(path)).map_err(lib(path))?;
    let mut t = String::new();
    for p in &r.problems {
        let _ = writeln!(t, "PROBLEM at byte {}: {}", p.offset, p.what);
    }
    for w in &r.warnings {
        let _ = writeln!(t, "WARNING {w}");
    }
    let _ = writeln!(
        t,
        "{}: {} ({} peers, {} dedup keys, {} queue items; {} peer records, {} index slots, {} entries checked)",
        path.display(),
        if r.is_ok() {
            "ok".to_string()
        } else {
            format!("{} problems", r.problems.len())
        },
        r.peers,
        r.dedup_keys,
        r.queue_items,
        r.peers_checked,
        r.slots_checked,
        r.entries_checked
    );
    let j = json!({
        "ok": r.is_ok(),
        "problems": r.problems.iter().map(|p| json!({"offset": p.offset, "what": p.what})).collect::<Vec<_>>(),
        "warnings": r.warnings,
        "peers": r.peers, "dedup_keys": r.dedup_keys, "queue_items": r.queue_items,
        "peers_checked": r.peers_checked, "slots_checked": r.slots_checked, "entries_checked": r.entries_checked,
    });
    let mut o = Outcome::ok(t, j);
    if !r.is_ok() {
        o.code = PROBLEMS;
    }
    Ok(o)
}

pub fn accounts(path: &Path) -> Res {
    let store = open_ro(path)?;
    let mut t = String::new();
    let mut list = Vec::new();
    for n in store.accounts().map_err(lib(path))? {
        let acct = store.account(&n).map_err(lib(path))?;
        let peers = store.peer_record_count(acct.number()).map_err(lib(path))?;
        let s = acct.session().map_err(lib(path))?;
        let state = acct.update_state().map_err(lib(path))?;
        let mut line = format!("{n:?}  {peers} peers");
        if let Some(s) = &s {
            let _ = write!(
                line,
                "  session: dc {}{}, {}",
                s.dc_id,
                if s.test_mode { " (test)" } else { "" },
                if s.auth_key.is_some() {
                    "auth key"
                } else {
                    "no auth key"
                }
            );
            if let Some(u) = s.user_id {
                let _ = write!(line, ", {} {u}", if s.is_bot { "bot" } else { "user" });
            }
            if let Some(u) = &s.username {
                let _ = write!(line, " @{u}");
            }
        } else {
            line.push_str("  no session");
        }
        if let Some(u) = &state {
            let _ = write!(
                line,
                "  pts {} qts {} seq {} date {}",
                u.pts, u.qts, u.seq, u.date
            );
        }
        let _ = writeln!(t, "{line}");
        list.push(json!({
            "name": n,
            "peers": peers,
            "session": s.as_ref().map(|s| json!({
                "dc_id": s.dc_id, "test_mode": s.test_mode, "has_auth_key": s.auth_key.is_some(),
                "user_id": s.user_id, "is_bot": s.is_bot, "username": s.username,
            })),
            "update_state": state.map(|u| json!({"pts": u.pts, "qts": u.qts, "date": u.date, "seq": u.seq})),
        }));
    }
    if list.is_empty() {
        t.push_str("no accounts\n");
    }
    Ok(Outcome::ok(t, json!({ "accounts": list })))
}

fn matches_kind(p: &Peer, k: KindArg) -> bool {
    match k {
        KindArg::User => p.id.kind() == PeerKind::User,
        KindArg::Bot => p.id.kind() == PeerKind::User && p.is_bot,
        KindArg::Chat => p.id.kind() == PeerKind::Chat,
        KindArg::Channel => p.id.kind() == PeerKind::Channel,
    }
}

/// Stdout, buffered, for output too large to hold (a million peers).
fn stream() -> std::io::BufWriter<std::io::StdoutLock<'static>> {
    std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock())
}

/// A failed write to stdout. A closed pipe (`| head`) ends the output
/// quietly; anything else is an error.
fn write_failed(e: std::io::Error) -> Failure {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Failure::new(0, String::new())
    } else {
        Failure::new(crate::OTHER, format!("writing the output: {e}"))
    }
}

/// Every peer of `acct` in Bot API id order, read one at a time (the
/// list of a million-peer account is never held whole), passed to `f`
/// until it returns false.
fn each_peer(
    store: &Store,
    acct: &Account,
    path: &Path,
    mut f: impl FnMut(&Peer) -> Result<bool, Failure>,
) -> Result<(), Failure> {
    let mut ids = store.peer_ids(acct.number()).map_err(lib(path))?;
    ids.sort_unstable();
    for id in ids {
        let Some(pid) = PeerId::from_bot_api(id) else {
            continue;
        };
        if let Some(p) = acct.peer(pid).map_err(lib(path))?
            && !f(&p)?
        {
            break;
        }
    }
    Ok(())
}

pub fn peers(
    path: &Path,
    account: Option<&str>,
    kind: Option<KindArg>,
    username: Option<&str>,
    limit: Option<usize>,
    json: bool,
) -> Res {
    let store = open_ro(path)?;
    let acct = pick_account(&store, account, path)?;
    let needle = username.map(|u| u.trim_start_matches('@').to_ascii_lowercase());
    let limit = limit.unwrap_or(usize::MAX);
    let mut w = stream();
    if json {
        write!(w, "{{\"account\":{},\"peers\":[", json!(acct.name())).map_err(write_failed)?;
    }
    let mut n = 0usize;
    if limit > 0 {
        each_peer(&store, &acct, path, |p| {
            if kind.is_some_and(|k| !matches_kind(p, k)) {
                return Ok(true);
            }
            if let Some(want) = &needle
                && !p
                    .username
                    .iter()
                    .chain(&p.usernames)
                    .any(|u| u.to_ascii_lowercase().contains(want.as_str()))
            {
                return Ok(true);
            }
            if json {
                let sep = if n == 0 { "\n" } else { ",\n" };
                write!(w, "{sep}{}", peer_json(p)).map_err(write_failed)?;
            } else {
                writeln!(w, "{}", peer_line(p)).map_err(write_failed)?;
            }
            n += 1;
            Ok(n < limit)
        })?;
    }
    if json {
        writeln!(w, "\n],\"count\":{n}}}").map_err(write_failed)?;
    }
    w.flush().map_err(write_failed)?;
    Ok(Outcome::printed())
}

/// What a `get` query names.
enum Query {
    Ids(Vec<PeerId>),
    Username(String),
    Phone(String),
}

fn parse_query(q: &str) -> Result<Query, Failure> {
    let q = q.trim();
    let bad = |why: &str| Failure::new(INVALID, format!("{q:?} {why}"));
    if let Some(u) = q.strip_prefix('@') {
        return match peerlog::normalize_username(u) {
            Some(_) => Ok(Query::Username(u.to_string())),
            None => Err(bad(
                "is not a username Telegram issues (5..=32 of A-Z a-z 0-9 _)",
            )),
        };
    }
    if q.starts_with('+') {
        return match peerlog::normalize_phone(q) {
            Some(p) => Ok(Query::Phone(p)),
            None => Err(bad("is not a phone number (5..=20 digits)")),
        };
    }
    if let Some((kind, id)) = q.split_once(':') {
        let kind = match kind.to_ascii_lowercase().as_str() {
            "user" => PeerKind::User,
            "chat" => PeerKind::Chat,
            "channel" => PeerKind::Channel,
            _ => {
                return Err(bad(
                    "has an unknown kind before ':' (user, chat or channel)",
                ));
            }
        };
        let id: i64 = id
            .trim()
            .parse()
            .map_err(|_| bad("has no number after ':'"))?;
        return PeerId::try_new(kind, id)
            .map(|p| Query::Ids(vec![p]))
            .ok_or_else(|| {
                bad(&format!(
                    "is out of range for a bare {} id",
                    kind_name(kind)
                ))
            });
    }
    if let Ok(id) = q.parse::<i64>() {
        if id < 0 {
            return PeerId::from_bot_api(id)
                .map(|p| Query::Ids(vec![p]))
                .ok_or_else(|| bad("is not a Bot API id of a chat or channel"));
        }
        // A bare positive id could be any kind: try each.
        let ids: Vec<PeerId> = [
            PeerId::try_user(id),
            PeerId::try_chat(id),
            PeerId::try_channel(id),
        ]
        .into_iter()
        .flatten()
        .collect();
        if ids.is_empty() {
            return Err(bad("is out of range for every kind of peer id"));
        }
        return Ok(Query::Ids(ids));
    }
    if peerlog::normalize_username(q).is_some() {
        return Ok(Query::Username(q.to_string()));
    }
    Err(bad(
        "is not an id, a Bot API id, kind:id, @username or +phone",
    ))
}

pub fn get(path: &Path, query: &str, account: Option<&str>) -> Res {
    let q = parse_query(query)?;
    let store = open_ro(path)?;
    let acct = pick_account(&store, account, path)?;
    let found: Vec<Peer> = match q {
        Query::Ids(ids) => {
            let mut v = Vec::new();
            for id in ids {
                v.extend(acct.peer(id).map_err(lib(path))?);
            }
            v
        }
        Query::Username(u) => acct
            .peer_by_username(&u)
            .map_err(lib(path))?
            .into_iter()
            .collect(),
        Query::Phone(p) => acct
            .peer_by_phone(&p)
            .map_err(lib(path))?
            .into_iter()
            .collect(),
    };
    let mut t = String::new();
    for p in &found {
        let _ = writeln!(t, "{}", peer_line(p));
    }
    let j = json!({
        "query": query,
        "account": acct.name(),
        "peers": found.iter().map(peer_json).collect::<Vec<_>>(),
    });
    if found.is_empty() {
        return Err(Failure::new(
            PROBLEMS,
            format!("no peer matches {query:?} in account {:?}", acct.name()),
        ));
    }
    Ok(Outcome::ok(t, j))
}

/// One account of a dump, written to `w` as text or as one JSON object.
fn account_dump(
    store: &Store,
    acct: &Account,
    path: &Path,
    secrets: bool,
    json: bool,
    w: &mut dyn Write,
) -> Result<(), Failure> {
    let e = lib(path);
    let session = acct.session().map_err(&e)?;
    let dcs = acct.dc_auths().map_err(&e)?;
    let state = acct.update_state().map_err(&e)?;
    let channels = acct.channel_states().map_err(&e)?;
    let queue = acct.pending(usize::MAX).map_err(&e)?;
    let convs = acct.conversations().map_err(&e)?;
    let meta = acct.meta_entries().map_err(&e)?;
    let dedup = acct.dedup_key_count();
    let peer_count = store.peer_record_count(acct.number()).map_err(&e)?;

    if json {
        let head = json!({
            "name": acct.name(),
            "number": acct.number(),
            "session": session.as_ref().map(|s| session_json(s, secrets)),
            "dc_auths": dcs.iter().map(|d| dc_auth_json(d, secrets)).collect::<Vec<_>>(),
            "update_state": state.map(|u| json!({"pts": u.pts, "qts": u.qts, "date": u.date, "seq": u.seq})),
            "channel_states": channels.iter().map(|c| json!({"channel_id": c.channel_id, "pts": c.pts})).collect::<Vec<_>>(),
            "dedup_keys": dedup,
            "queue": queue.iter().map(|q| json!({
                "id": q.id, "payload": bytes_json(&q.payload), "attempts": q.attempts,
                "last_error": q.last_error, "created_at": q.created_at, "updated_at": q.updated_at,
            })).collect::<Vec<_>>(),
            "conversations": convs.iter().map(|c| json!({
                "chat_id": c.chat_id, "user_id": c.user_id, "name": c.name, "step": c.step,
                "data": bytes_json(&c.data), "created_at": c.created_at, "updated_at": c.updated_at,
            })).collect::<Vec<_>>(),
            "meta": meta.iter().map(|(k, v)| (k.clone(), bytes_json(v))).collect::<BTreeMap<_, _>>(),
        })
        .to_string();
        // The object without its closing brace, then the peers, streamed.
        let open = head.strip_suffix('}').unwrap_or(&head);
        write!(w, "{open},\"peers\":[").map_err(write_failed)?;
        let mut first = true;
        each_peer(store, acct, path, |p| {
            let sep = if first { "\n" } else { ",\n" };
            first = false;
            write!(w, "{sep}{}", peer_json(p)).map_err(write_failed)?;
            Ok(true)
        })?;
        return write!(w, "\n]}}").map_err(write_failed);
    }

    let mut t = String::new();
    let _ = writeln!(t, "== account {:?} (number {})", acct.name(), acct.number());
    match &session {
        Some(s) => {
            let _ = writeln!(t, "session:");
            for (k, v) in session_json(s, secrets).as_object().into_iter().flatten() {
                let _ = writeln!(t, "  {k}: {v}");
            }
        }
        None => t.push_str("session: none\n"),
    }
    for d in &dcs {
        let _ = writeln!(t, "dc auth: {}", dc_auth_json(d, secrets));
    }
    if let Some(u) = &state {
        let _ = writeln!(
            t,
            "update state: pts {} qts {} date {} seq {}",
            u.pts, u.qts, u.date, u.seq
        );
    }
    for c in &channels {
        let _ = writeln!(t, "channel pts: {} = {}", c.channel_id, c.pts);
    }
    let _ = writeln!(t, "dedup keys: {dedup}");
    let _ = writeln!(t, "queue: {}", queue.len());
    for q in &queue {
        let _ = writeln!(
            t,
            "  {:?} attempts {} created {} payload {}{}",
            q.id,
            q.attempts,
            q.created_at,
            bytes_text(&q.payload),
            q.last_error
                .as_ref()
                .map(|e| format!(" last error {e:?}"))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(t, "conversations: {}", convs.len());
    for c in &convs {
        let _ = writeln!(
            t,
            "  chat {} user {} {:?} step {:?} data {}",
            c.chat_id,
            c.user_id,
            c.name,
            c.step,
            bytes_text(&c.data)
        );
    }
    let _ = writeln!(t, "meta: {}", meta.len());
    for (k, v) in &meta {
        let _ = writeln!(t, "  {k:?} = {}", bytes_text(v));
    }
    let _ = writeln!(t, "peers: {peer_count}");
    w.write_all(t.as_bytes()).map_err(write_failed)?;
    each_peer(store, acct, path, |p| {
        writeln!(w, "  {}", peer_line(p)).map_err(write_failed)?;
        Ok(true)
    })
}

pub fn dump(path: &Path, account: Option<&str>, secrets: bool, json: bool) -> Res {
    let store = open_ro(path)?;
    let names = match account {
        Some(a) => vec![pick_account(&store, Some(a), path)?.name().to_string()],
        None => store.accounts().map_err(lib(path))?,
    };
    let mut w = stream();
    if json {
        write!(w, "{{\"secrets_shown\":{secrets},\"accounts\":[").map_err(write_failed)?;
    }
    for (i, n) in names.iter().enumerate() {
        let acct = store.account(n).map_err(lib(path))?;
        if json && i > 0 {
            write!(w, ",").map_err(write_failed)?;
        }
        account_dump(&store, &acct, path, secrets, json, &mut w)?;
    }
    if json {
        write!(w, "],\"raw_buckets\":{{").map_err(write_failed)?;
    }
    if account.is_none() {
        for (i, name) in store
            .bucket_names()
            .map_err(lib(path))?
            .into_iter()
            .enumerate()
        {
            let entries = store
                .bucket(&name)
                .and_then(|b| b.scan_prefix(b""))
                .map_err(lib(path))?;
            if json {
                let v: Vec<Value> = entries
                    .iter()
                    .map(|(k, v)| json!({"key": bytes_json(k), "value": bytes_json(v)}))
                    .collect();
                let sep = if i == 0 { "" } else { "," };
                write!(w, "{sep}{}:{}", json!(name), json!(v)).map_err(write_failed)?;
            } else {
                writeln!(w, "== raw bucket {name:?}: {}", entries.len()).map_err(write_failed)?;
                for (k, v) in &entries {
                    writeln!(w, "  {} = {}", bytes_text(k), bytes_text(v)).map_err(write_failed)?;
                }
            }
        }
    }
    if json {
        writeln!(w, "}}}}").map_err(write_failed)?;
    } else if !secrets {
        writeln!(
            w,
            "(auth keys and api hashes redacted; --show-secrets prints them)"
        )
        .map_err(write_failed)?;
    }
    w.flush().map_err(write_failed)?;
    Ok(Outcome::printed())
}

pub fn compact(path: &Path) -> Res {
    let store = open_rw(path, false)?;
    let before = store.stats().file_size;
    progress("compacting", || store.compact()).map_err(lib(path))?;
    let after = store.stats();
    close(store, path)?;
    let t = format!(
        "{}: {} -> {} (generation {})\n",
        path.display(),
        size(before),
        size(after.file_size),
        after.generation
    );
    Ok(Outcome::ok(
        t,
        json!({"before": before, "after": after.file_size, "generation": after.generation}),
    ))
}

pub fn backup(path: &Path, dest: &Path) -> Res {
    if std::fs::symlink_metadata(dest).is_ok() {
        return Err(Failure::new(
            EXISTS,
            format!(
                "{} exists; a backup never replaces a file: choose a new name",
                dest.display()
            ),
        ));
    }
    let store = open_ro(path)?;
    let r = progress("backing up", || store.backup_to(dest)).map_err(|e| match e {
        peerlog::Error::Io { .. } => Failure::new(crate::OTHER, e.to_string()),
        e => Failure::from_store(e, path),
    })?;
    let t = format!(
        "{} -> {}: {} copied, {} peers, generation {}, verified\n",
        path.display(),
        dest.display(),
        size(r.bytes_copied),
        r.peers,
        r.generation
    );
    Ok(Outcome::ok(
        t,
        json!({
            "source": path.display().to_string(), "backup": dest.display().to_string(),
            "bytes_copied": r.bytes_copied, "file_len": r.file_len, "peers": r.peers,
            "generation": r.generation, "next_seq": r.next_seq, "verified": true,
        }),
    ))
}

pub fn repair(path: &Path) -> Res {
    let store = open_rw(path, false)?;
    let r = progress("repairing", || store.repair()).map_err(lib(path))?;
    close(store, path)?;
    let mut t = String::new();
    for (acct, id) in &r.salvaged {
        let _ = writeln!(
            t,
            "salvaged peer {id} of account number {acct}: access hash kept, names lost"
        );
    }
    for p in &r.after.problems {
        let _ = writeln!(t, "STILL WRONG at byte {}: {}", p.offset, p.what);
    }
    let _ = writeln!(
        t,
        "{}: {}",
        path.display(),
        if r.after.is_ok() {
            "repaired, verify ok"
        } else {
            "problems remain; restore a backup"
        }
    );
    let j = json!({
        "ok": r.after.is_ok(),
        "salvaged": r.salvaged.iter().map(|(a, id)| json!({"account": a, "peer": id})).collect::<Vec<_>>(),
        "problems": r.after.problems.iter().map(|p| json!({"offset": p.offset, "what": p.what})).collect::<Vec<_>>(),
    });
    let mut o = Outcome::ok(t, j);
    if !r.after.is_ok() {
        o.code = PROBLEMS;
    }
    Ok(o)
}

/// Writes `text` to a new file, mode 0600 (never over one).
fn write_secret_file(out: &Path, text: &str) -> Result<(), Failure> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Failure::new(
                    EXISTS,
                    format!("{} exists; choose a new name", out.display()),
                )
            } else {
                Failure::new(crate::OTHER, format!("{}: {e}", out.display()))
            }
        })?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| Failure::new(crate::OTHER, format!("{}: {e}", out.display())))
}

pub fn export(path: &Path, account: Option<&str>, fmt: StringFormat, out: Option<&Path>) -> Res {
    if let Some(o) = out
        && std::fs::symlink_metadata(o).is_ok()
    {
        return Err(Failure::new(
            EXISTS,
            format!("{} exists; choose a new name", o.display()),
        ));
    }
    let store = open_ro(path)?;
    let acct = pick_account(&store, account, path)?;
    let Some(session) = acct.session().map_err(lib(path))? else {
        return Err(Failure::new(
            INVALID,
            format!(
                "account {:?} of {} has no session",
                acct.name(),
                path.display()
            ),
        ));
    };
    let (name, s) = match fmt {
        StringFormat::Telethon => ("telethon", session.to_telethon_string()),
        StringFormat::Pyrogram => ("pyrogram", session.to_pyrogram_string()),
        StringFormat::Gramjs => ("gramjs", session.to_gramjs_string()),
    };
    let s = s.map_err(|e| Failure::new(INVALID, format!("account {:?}: {e}", acct.name())))?;
    if let Some(o) = out {
        write_secret_file(o, &format!("{s}\n"))?;
        return Ok(Outcome::ok(
            format!(
                "wrote a {name} session string to {} (mode 0600)\n",
                o.display()
            ),
            json!({"format": name, "out": o.display().to_string()}),
        ));
    }
    if std::io::stdout().is_terminal() {
        eprintln!("peerlog: this string logs in as the account; do not share it");
    }
    Ok(Outcome::ok(
        format!("{s}\n"),
        json!({"format": name, "session_string": s}),
    ))
}

pub fn import(path: &Path, account: Option<&str>, string: &str, replace: bool) -> Res {
    let text = if string == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map_err(|e| {
            Failure::new(
                INVALID,
                format!("reading the session string from stdin: {e}"),
            )
        })?;
        s
    } else {
        eprintln!(
            "peerlog: note: a session string given as an argument stays in your shell history; `--string -` reads it from stdin"
        );
        string.to_string()
    };
    let text = text.trim();
    if text.is_empty() {
        return Err(Failure::new(INVALID, "the session string is empty"));
    }
    let format = peerlog::detect_session_string(text)
        .map_err(|e| Failure::new(INVALID, format!("not a session string: {e}")))?;
    let session = Session::from_session_string(text).map_err(|e| {
        Failure::new(
            INVALID,
            format!("the {format} session string does not decode: {e}"),
        )
    })?;

    // The input is good. A refusal that an existing store can tell is
    // given from a read-only look, before anything is written.
    if std::fs::symlink_metadata(path).is_ok() {
        let ro = open_ro(path)?;
        let names = ro.accounts().map_err(lib(path))?;
        let name = import_account(account, &names, path)?;
        if !replace
            && names.contains(&name)
            && ro
                .account(&name)
                .map_err(lib(path))?
                .session()
                .map_err(lib(path))?
                .is_some()
        {
            return Err(has_session(&name, path));
        }
    }
    // Only now is the store opened for writing (or created); the checks
    // run again under its lock.
    let store = open_rw(path, true)?;
    let names = store.accounts().map_err(lib(path))?;
    let name = import_account(account, &names, path)?;
    let acct = store.account(&name).map_err(lib(path))?;
    if !replace && acct.session().map_err(lib(path))?.is_some() {
        return Err(has_session(&name, path));
    }
    acct.save_session(&session).map_err(lib(path))?;
    close(store, path)?;
    let who = session
        .user_id
        .map(|u| format!(", {} {u}", if session.is_bot { "bot" } else { "user" }))
        .unwrap_or_default();
    Ok(Outcome::ok(
        format!(
            "imported a {format} session (dc {}{who}) into account {name:?} of {}\n",
            session.dc_id,
            path.display()
        ),
        json!({
            "format": format.to_string(), "account": name, "dc_id": session.dc_id,
            "user_id": session.user_id, "is_bot": session.is_bot,
        }),
    ))
}

/// The account an import goes to: the one named, else the only one, else
/// [`peerlog::Pool::ACCOUNT`] in a store without accounts.
/// A session file report as text and JSON: counts, and what was skipped and why.
fn file_report(
    verb: &str,
    file: &Path,
    format: peerlog::migrate::SessionFileFormat,
    version: i64,
    counts: &peerlog::migrate::Counts,
    skipped: &[peerlog::migrate::Skipped],
    account: &str,
) -> Outcome {
    let dir = if verb == "imported" { "into" } else { "from" };
    let mut text = format!(
        "{verb} {format} session file {} (schema {version}) {dir} account {account:?}: {} \
         session(s), {} DC key(s), {} peers, {} usernames, {} phones, {} update state(s), {} \
         channel pts\n",
        file.display(),
        counts.sessions,
        counts.dc_auths,
        counts.peers,
        counts.usernames,
        counts.phones,
        counts.update_states,
        counts.channel_pts,
    );
    for s in skipped {
        let _ = writeln!(text, "  skipped {} {}: {}", s.count, s.what, s.reason);
        if !s.examples.is_empty() {
            let _ = writeln!(text, "    e.g. {}", s.examples.join(", "));
        }
    }
    let skipped_json: Vec<Value> = skipped
        .iter()
        .map(|s| {
            json!({"what": s.what, "count": s.count, "reason": s.reason, "examples": s.examples})
        })
        .collect();
    Outcome::ok(
        text,
        json!({
            "file": file.display().to_string(),
            "format": format.name(),
            "schema_version": version,
            "account": account,
            "counts": {
                "sessions": counts.sessions,
                "dc_auths": counts.dc_auths,
                "dc_options": counts.dc_options,
                "peers": counts.peers,
                "usernames": counts.usernames,
                "phones": counts.phones,
                "update_states": counts.update_states,
                "channel_pts": counts.channel_pts,
            },
            "skipped": skipped_json,
        }),
    )
}

/// What an account holds that a session file import would overwrite.
fn holdings(acct: &Account, path: &Path) -> Result<Vec<String>, Failure> {
    let mut holds = Vec::new();
    if acct.session().map_err(lib(path))?.is_some() {
        holds.push("a session".to_string());
    }
    let peers = acct.peer_count().map_err(lib(path))?;
    if peers > 0 {
        holds.push(format!("{peers} peers"));
    }
    if acct.update_state().map_err(lib(path))?.is_some() {
        holds.push("an update state".to_string());
    }
    let channels = acct.channel_states().map_err(lib(path))?.len();
    if channels > 0 {
        holds.push(format!("{channels} channel states"));
    }
    let auths = acct.dc_auths().map_err(lib(path))?.len();
    if auths > 0 {
        holds.push(format!("{auths} DC auth keys"));
    }
    Ok(holds)
}

/// `import --file`: another library's `.session` file into an empty
/// account (created with the store if missing). The file is checked whole
/// before anything is written; the import is one commit.
pub fn import_file(
    path: &Path,
    account: Option<&str>,
    file: &Path,
    format: Option<FileFormat>,
    _json: bool,
) -> Res {
    if std::fs::symlink_metadata(file).is_err() {
        return Err(Failure::new(
            INVALID,
            format!("{}: no such session file", file.display()),
        ));
    }
    // The format is checked before the store is created or opened for
    // writing, so a bad file leaves no new store behind.
    let detected = match format {
        Some(f) => f.lib(),
        None => peerlog::migrate::SessionFileFormat::detect(file).map_err(lib(file))?,
    };
    // A dry run into a memory store checks every row first, so a bad
    // file writes nothing here (not even a new account's name).
    {
        let scratch = Store::memory();
        let acct = scratch.account("check").map_err(lib(path))?;
        progress("checking", || {
            peerlog::migrate::import_session_file(file, Some(detected), &acct)
        })
        .map_err(lib(file))?;
    }
    let existed = std::fs::symlink_metadata(path).is_ok();
    if existed {
        // A refusal an existing store can tell is given from a read-only
        // look: opening for writing writes (the owner record).
        let ro = open_ro(path)?;
        let names = ro.accounts().map_err(lib(path))?;
        let name = import_account(account, &names, path)?;
        if names.contains(&name) {
            let holds = holdings(&ro.account(&name).map_err(lib(path))?, path)?;
            if !holds.is_empty() {
                return Err(Failure::new(
                    EXISTS,
                    format!(
                        "{}: account {name:?} is not empty ({}); a session file is imported only \
                         into an account without a session, peers or state: name a new one with \
                         --account",
                        path.display(),
                        holds.join(", ")
                    ),
                ));
            }
        }
    }
    let store = open_rw(path, true)?;
    let result = (|| {
        let names = store.accounts().map_err(lib(path))?;
        let name = import_account(account, &names, path)?;
        let acct = store.account(&name).map_err(lib(path))?;
        let report = progress("importing", || {
            peerlog::migrate::import_session_file(file, Some(detected), &acct)
        })
        .map_err(lib(file))?;
        Ok::<_, Failure>((name, report))
    })();
    match result {
        Ok((name, r)) => {
            close(store, path)?;
            Ok(file_report(
                "imported", file, r.format, r.version, &r.counts, &r.skipped, &name,
            ))
        }
        Err(f) => {
            drop(store);
            if !existed {
                // Nothing was imported: do not leave an empty new store.
                let _ = std::fs::remove_file(path);
            }
            Err(f)
        }
    }
}

/// `export --file`: an account as another library's `.session` file
/// (written under a temporary name, synced, linked into place; never
/// overwrites).
pub fn export_file(
    path: &Path,
    account: Option<&str>,
    file: &Path,
    format: FileFormat,
    _json: bool,
) -> Res {
    if std::fs::symlink_metadata(file).is_ok() {
        return Err(Failure::new(
            EXISTS,
            format!("{} exists; choose a new name", file.display()),
        ));
    }
    let store = open_ro(path)?;
    let acct = pick_account(&store, account, path)?;
    let r = progress("exporting", || {
        peerlog::migrate::export_session_file(&acct, format.lib(), file)
    })
    .map_err(lib(file))?;
    Ok(file_report(
        "exported",
        file,
        r.format,
        r.version,
        &r.counts,
        &r.skipped,
        acct.name(),
    ))
}

/// The PostgreSQL connection string: `--url`, else `$PEERLOG_PG_URL`.
fn pg_url(url: Option<String>) -> Result<String, Failure> {
    url.or_else(|| std::env::var("PEERLOG_PG_URL").ok())
        .filter(|u| !u.is_empty())
        .ok_or_else(|| {
            Failure::new(
                USAGE,
                "no PostgreSQL server: give --url, or set PEERLOG_PG_URL (keeps a password out of shell history)",
            )
        })
}

/// A PostgreSQL error as a failure: a held lease is exit 3, the rest are
/// what they are. Messages never carry the password.
fn pg_failure(e: peerlog::Error) -> Failure {
    let code = match e {
        peerlog::Error::Locked { .. } | peerlog::Error::LeaseLost { .. } => crate::LOCKED,
        peerlog::Error::Invalid(_) | peerlog::Error::TooLarge { .. } => INVALID,
        _ => crate::OTHER,
    };
    Failure::new(code, format!("PostgreSQL: {e}"))
}

/// An "account is not empty" refusal from a copy is exit 6; the rest as
/// [`pg_failure`].
fn copy_failure(e: peerlog::Error) -> Failure {
    let f = pg_failure(e);
    if f.msg.contains("not empty") {
        Failure::new(EXISTS, f.msg)
    } else {
        f
    }
}

fn copy_report(what: &str, r: &peerlog::postgres::CopyReport, from: &str, to: &str) -> Outcome {
    Outcome::ok(
        format!(
            "copied {what} account {from:?} to {to:?}: {}session, {} DC key(s), {} peers, {} channel pts, \
             {} dedup keys, {} queued updates, {} conversations, {} metadata entries\n",
            if r.session { "a " } else { "no " },
            r.dc_auths,
            r.peers,
            r.channels,
            r.dedup_keys,
            r.queued,
            r.conversations,
            r.meta,
        ),
        json!({
            "from": from, "to": to, "session": r.session, "dc_auths": r.dc_auths,
            "peers": r.peers, "channels": r.channels, "dedup_keys": r.dedup_keys,
            "queued": r.queued, "conversations": r.conversations, "meta": r.meta,
        }),
    )
}

/// `copy-to-pg`: a file account into an empty PostgreSQL account, in one
/// transaction (the PostgreSQL account's owner lease is taken for it).
pub fn copy_to_pg(
    path: &Path,
    account: Option<&str>,
    to: Option<&str>,
    url: Option<String>,
) -> Res {
    let url = pg_url(url)?;
    let store = open_ro(path)?;
    let acct = pick_account(&store, account, path)?;
    let name = to.unwrap_or(acct.name()).to_string();
    let pg = peerlog::postgres::PgStorage::open(&url, &name).map_err(pg_failure)?;
    let r = progress("copying", || {
        peerlog::postgres::copy_to_postgres(&acct, &pg)
    })
    .map_err(copy_failure)?;
    Ok(copy_report("file", &r, acct.name(), &name))
}

/// `copy-from-pg`: a PostgreSQL account into an empty account of the store
/// (one commit; the store is created if missing).
pub fn copy_from_pg(path: &Path, from: &str, account: Option<&str>, url: Option<String>) -> Res {
    let url = pg_url(url)?;
    // Opening an account creates it: a name that is not there is an error,
    // not a new empty account on the server.
    let names = peerlog::postgres::accounts(&url, &peerlog::postgres::PgOptions::default())
        .map_err(pg_failure)?;
    if !names.iter().any(|n| n == from) {
        return Err(Failure::new(
            INVALID,
            format!(
                "PostgreSQL has no account {from:?}; its accounts: {}",
                list_or_none(&names)
            ),
        ));
    }
    let pg = peerlog::postgres::PgStorage::open(&url, from).map_err(pg_failure)?;
    let existed = std::fs::symlink_metadata(path).is_ok();
    let store = open_rw(path, true)?;
    let name = account.unwrap_or(from).to_string();
    let result = store.account(&name).map_err(lib(path)).and_then(|acct| {
        progress("copying", || {
            peerlog::postgres::copy_from_postgres(&pg, &acct)
        })
        .map_err(copy_failure)
    });
    match result {
        Ok(r) => {
            close(store, path)?;
            Ok(copy_report("PostgreSQL", &r, from, &name))
        }
        Err(f) => {
            drop(store);
            if !existed {
                let _ = std::fs::remove_file(path);
            }
            Err(f)
        }
    }
}

fn import_account(account: Option<&str>, names: &[String], path: &Path) -> Result<String, Failure> {
    Ok(match account {
        Some(a) => a.to_string(),
        None => match names {
            [] => peerlog::Pool::ACCOUNT.to_string(),
            [one] => one.clone(),
            _ => {
                return Err(Failure::new(
                    USAGE,
                    format!(
                        "{} has {} accounts ({}); choose one with --account",
                        path.display(),
                        names.len(),
                        list_or_none(names)
                    ),
                ));
            }
        },
    })
}

fn has_session(name: &str, path: &Path) -> Failure {
    Failure::new(
        EXISTS,
        format!(
            "account {name:?} of {} already has a session; --replace overwrites it",
            path.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        assert!(matches!(parse_query("@Durov"), Ok(Query::Username(u)) if u == "Durov"));
        assert!(
            matches!(parse_query("+1 555 123-4567"), Ok(Query::Phone(p)) if p == "15551234567")
        );
        assert!(
            matches!(parse_query("-1001234567890"), Ok(Query::Ids(v)) if v == vec![PeerId::channel(1234567890)])
        );
        assert!(matches!(parse_query("-42"), Ok(Query::Ids(v)) if v == vec![PeerId::chat(42)]));
        assert!(
            matches!(parse_query("channel:7"), Ok(Query::Ids(v)) if v == vec![PeerId::channel(7)])
        );
        assert!(matches!(parse_query("42"), Ok(Query::Ids(v)) if v.len() == 3));
        assert!(matches!(parse_query("durov"), Ok(Query::Username(_))));
        for bad in [
            "@a",
            "+12",
            "-1000000000000",
            "thing:1",
            "user:x",
            "a b",
            "0",
            "",
        ] {
            assert!(parse_query(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hex_is_lowercase_pairs() {
        assert_eq!(crate::out::hex(&[0, 0xab, 0x10]), "00ab10");
    }
}
