#!/usr/bin/env python3
"""Summarise criterion results: time per element and ratios.

Reads target/criterion/<group>/<engine>/<N>/new/{estimates,benchmark}.json
and prints, per group, the time per element (lookup, peer, open) of every
engine and N, with ratios against `peerlog` and `hashbrown` of the same N.

The time per element is criterion's estimate divided by the benchmark's
Throughput::Elements (1 for lookups, 100 for ingest batches, none = 1 for
open). A ratio is engine / reference, so `sqlite  x25.0` under "vs peerlog"
means SQLite takes 25 times as long as peerlog. A variant `<engine>_<sfx>`
is compared with `peerlog_<sfx>` when that exists (e.g. `sqlite_nosync`
with `peerlog_nosync`), else with `peerlog`.

Usage: benches/report.py [--target-dir DIR] [--stat mean|median|slope]
                         [--markdown] [--wide] [GROUP ...]
--wide prints one row per engine and one column per N, each cell
"time (xP pl, xH hb)" (ratios vs peerlog / hashbrown when present).
Python 3 standard library only.
"""

import argparse
import json
import os
import sys

GROUP_ORDER = [
    "lookup_uniform",
    "lookup_skewed",
    "lookup_absent",
    "lookup_username",
    "lookup_phone",
    "ingest_new",
    "ingest_unchanged",
    "open",
]


def load(root, stat):
    """{group: {engine: {n: ns_per_element}}}"""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        if os.path.basename(dirpath) != "new" or "estimates.json" not in files:
            continue
        with open(os.path.join(dirpath, "estimates.json")) as f:
            est = json.load(f)
        meta = {}
        if "benchmark.json" in files:
            with open(os.path.join(dirpath, "benchmark.json")) as f:
                meta = json.load(f)
        rel = os.path.relpath(os.path.dirname(dirpath), root).split(os.sep)
        group = meta.get("group_id") or rel[0]
        engine = meta.get("function_id") or (rel[1] if len(rel) > 2 else "")
        value = meta.get("value_str") or (rel[-1] if len(rel) > 1 else "")
        if not engine:
            continue
        node = est.get(stat) or est["mean"]
        ns = node["point_estimate"]
        tp = meta.get("throughput") or {}
        elements = tp.get("Elements") or tp.get("Bytes") or 1
        out.setdefault(group, {}).setdefault(engine, {})[value] = ns / elements
    return out


def sort_n(v):
    try:
        return (0, int(v))
    except ValueError:
        return (1, v)


def engine_key(e):
    base = e.split("_", 1)[0]
    rank = {"hashbrown": 0, "peerlog": 1}.get(base, 2)
    return (rank, e)


def fmt_ns(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.1f} ns"


def ratio(ns, ref):
    return f"x{ns / ref:.2f}" if ref else "-"


def reference(engines, name, engine):
    if "_" in engine:
        sfx = engine.split("_", 1)[1]
        if f"{name}_{sfx}" in engines:
            return f"{name}_{sfx}"
    return name if name in engines else None


def print_wide(group, engines, ns_all, args):
    header = ["engine"] + [f"N={n}" for n in ns_all]
    rows = []
    for engine in sorted(engines, key=engine_key):
        row = [engine]
        for n in ns_all:
            ns = engines[engine].get(n)
            if ns is None:
                row.append("")
                continue
            rs = []
            for name, tag in (("peerlog", "pl"), ("hashbrown", "hb")):
                r = reference(engines, name, engine)
                ref_ns = engines[r].get(n) if r and r != engine else None
                if ref_ns:
                    rs.append(f"x{ns / ref_ns:.1f} {tag}")
            row.append(fmt_ns(ns) + (f" ({', '.join(rs)})" if rs else ""))
        rows.append(row)
    if args.markdown:
        print(f"**{group}** ({args.stat} per op)\n")
        print("| " + " | ".join(header) + " |")
        print("|---|" + "---:|" * len(ns_all))
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        print(f"== {group} ({args.stat} per op)")
        widths = [max(len(x) for x in col) for col in zip(header, *rows)]
        for r in [header] + rows:
            print("  ".join(x.ljust(w) if i == 0 else x.rjust(w) for i, (x, w) in enumerate(zip(r, widths))))
    print()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("groups", nargs="*", help="groups to show (default: all)")
    ap.add_argument("--target-dir", default=os.environ.get("CARGO_TARGET_DIR", "target"))
    ap.add_argument("--stat", default="mean", choices=["mean", "median", "slope"])
    ap.add_argument("--markdown", action="store_true", help="print markdown tables")
    ap.add_argument("--wide", action="store_true", help="one column per N")
    args = ap.parse_args()

    root = os.path.join(args.target_dir, "criterion")
    if not os.path.isdir(root):
        sys.exit(f"no criterion results under {root}; run `cargo bench` first")
    data = load(root, args.stat)
    groups = args.groups or sorted(
        data, key=lambda g: (GROUP_ORDER.index(g) if g in GROUP_ORDER else 99, g)
    )
    header = ["engine", "N", f"{args.stat}/op", "vs peerlog", "vs hashbrown"]
    for group in groups:
        engines = data.get(group)
        if not engines:
            print(f"(no results for {group})\n")
            continue
        ns_all = sorted({n for e in engines.values() for n in e}, key=sort_n)
        if args.wide:
            print_wide(group, engines, ns_all, args)
            continue
        rows = []
        for n in ns_all:
            for engine in sorted(engines, key=engine_key):
                ns = engines[engine].get(n)
                if ns is None:
                    continue
                refs = []
                for name in ("peerlog", "hashbrown"):
                    r = reference(engines, name, engine)
                    ref_ns = engines[r].get(n) if r else None
                    refs.append(ratio(ns, ref_ns) if ref_ns else "-")
                rows.append([engine, n, fmt_ns(ns)] + refs)
        if args.markdown:
            print(f"### {group}\n")
            print("| " + " | ".join(header) + " |")
            print("|" + "|".join(["---"] * 2 + ["---:"] * 3) + "|")
            for r in rows:
                print("| " + " | ".join(r) + " |")
        else:
            print(f"== {group}")
            widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
            for r in [header] + rows:
                cells = [
                    str(x).ljust(w) if i < 2 else str(x).rjust(w)
                    for i, (x, w) in enumerate(zip(r, widths))
                ]
                print("  ".join(cells))
        print()


if __name__ == "__main__":
    main()
