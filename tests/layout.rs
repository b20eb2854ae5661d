//! The module layout README.md describes ("Layout") holds: no import
//! circle between the files of `src/`, and each layer imports only from
//! itself and the layers below it. Reads the sources (every `crate::` path
//! outside comments) rather than trusting the docs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path of every `.rs` file under `src/` (`engine::store`,
/// `format`, and `` for lib.rs), with its text.
fn modules() -> BTreeMap<String, String> {
    fn walk(dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p
                    .strip_prefix(concat!(env!("CARGO_MANIFEST_DIR"), "/src"))
                    .unwrap();
                let mut parts: Vec<String> = rel
                    .with_extension("")
                    .iter()
                    .map(|s| s.to_string_lossy().into_owned())
                    .collect();
                if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
                    parts.pop();
                }
                out.insert(parts.join("::"), std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src")),
        &mut out,
    );
    out
}

/// The modules a file's code names through `crate::` paths (`use` lines,
/// groups and inline paths), comments and test modules left out.
fn imports(text: &str, mods: &BTreeSet<String>) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .take_while(|l| !l.starts_with("mod tests"))
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        // `crate::a::b::{c, d::e}`: the module is the longest prefix of the
        // path (before any group) that names a file.
        let path: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let parts: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        let mut heads: Vec<Vec<&str>> = vec![parts.clone()];
        // Group members: `crate::format::{bucket::X, codec}`.
        let after = &rest[path.len()..];
        if let Some(group) = after.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                let mut p = parts.clone();
                p.extend(item.trim().split("::").filter(|s| !s.is_empty()));
                heads.push(p);
            }
        }
        for p in heads {
            for n in (1..=p.len()).rev() {
                let m = p[..n].join("::");
                if mods.contains(&m) {
                    out.insert(m);
                    break;
                }
            }
        }
    }
    out
}

/// The layer of a module, bottom up; `None` for the top-level files.
fn layer(m: &str) -> Option<u8> {
    match m.split("::").next() {
        Some("format") => Some(0),
        Some("sys") => Some(1),
        Some("peers") => Some(2),
        Some("engine") => Some(3),
        _ => None,
    }
}

#[test]
fn no_import_circle_and_layers_import_downwards() {
    let files = modules();
    let mods: BTreeSet<String> = files.keys().cloned().collect();
    let graph: BTreeMap<&str, BTreeSet<String>> = files
        .iter()
        .map(|(m, text)| {
            let mut i = imports(text, &mods);
            i.remove(m);
            (m.as_str(), i)
        })
        .collect();
    assert!(graph.len() > 30, "found only {} modules", graph.len());

    // Layers: a module imports its own layer and those below; the top-level
    // values every layer may return (`error`, which wraps the session
    // string errors; `types`, for the engine's phone normalisation) are the
    // exception above `format/`, which imports nothing outside itself.
    for (m, deps) in &graph {
        let Some(l) = layer(m) else { continue };
        for d in deps {
            let ok = match layer(d) {
                Some(dl) => dl <= l,
                None => l > 0 && (d == "error" || (l == 3 && d == "types")),
            };
            assert!(ok, "{m} (layer {l}) imports {d}, a layer above it");
        }
    }

    // No circle: a depth-first search finds no back edge.
    fn visit<'a>(
        m: &'a str,
        graph: &'a BTreeMap<&str, BTreeSet<String>>,
        state: &mut BTreeMap<&'a str, bool>,
        stack: &mut Vec<&'a str>,
    ) {
        match state.get(m) {
            Some(true) => return,
            Some(false) => panic!("import circle: {} -> {m}", stack.join(" -> ")),
            None => {}
        }
        state.insert(m, false);
        stack.push(m);
        for d in &graph[m] {
            visit(d, graph, state, stack);
        }
        stack.pop();
        state.insert(m, true);
    }
    let mut state = BTreeMap::new();
    for m in graph.keys() {
        visit(m, &graph, &mut state, &mut Vec::new());
    }
}

/// The test above would pass on a parser that found nothing: it must see
/// the imports this file knows are there.
#[test]
fn the_parser_sees_known_imports() {
    let files = modules();
    let mods: BTreeSet<String> = files.keys().cloned().collect();
    let store = imports(&files["engine::store"], &mods);
    for m in ["engine::open", "peers::merge", "format::commit", "sys::io"] {
        assert!(
            store.contains(m),
            "engine::store should import {m}: {store:?}"
        );
    }
    let account = imports(&files["account"], &mods);
    assert!(account.contains("format::bucket"), "{account:?}");
}
