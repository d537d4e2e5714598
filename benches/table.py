#!/usr/bin/env python3
"""Print the semaphore and channel benchmark results as markdown tables (and optionally an SVG chart).

Reads criterion's output, <target>/criterion/<group>/<function>/new/{estimates,benchmark}.json,
where <target> is --target-dir, else $CARGO_TARGET_DIR, else the crate's target/. Each cell
is the median time per iteration divided by the group's Throughput::Elements: ns per op.
The peers of each table are the functions criterion wrote for its groups, toro-sync first.
The channel table also has the two C6 memory rows from <target>/criterion/C6-memory.json,
which benches/channel.rs writes.

    CARGO_TARGET_DIR=target/bench python3 benches/table.py [--svg chart.svg] [--channel-svg chart.svg] [--no-meta]

With --criterion DIR, repeated, it reads those criterion directories instead (each the
CRITERION_HOME of one whole run of the same bench binary) and each cell is the median of
the runs' values: on a shared, noisy machine the peers of one group are measured seconds
apart, so a load that comes and goes can favour one of them in any single run.

Stdlib only.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from xml.sax.saxutils import escape

CRATE = Path(__file__).resolve().parent.parent
ORDER = [
    "S1-uncontended",
    "S2-64tasks-4permits",
    "S2-64tasks-1permit",
    "S2y-64tasks-1permit-yield",
    "S3-2threads-4permits",
    "S3-2threads-1permit",
]
C6_PEAK = "C6-memory peak (B/msg)"
C6_KEPT = "C6-memory kept after drain (KiB)"
CHANNEL_ORDER = [
    "C1-spsc-bounded1024",
    "C1-spsc-unbounded",
    "C2-mpsc-4p-bounded1024",
    "C3-mpmc-4x4-bounded1024",
    "C4-spsc-bounded1",
    "C5-threads-spsc-bounded1024",
    "C5-threads-mpmc-4x4-bounded1024",
    C6_PEAK,
    C6_KEPT,
]
TORO, TOKIO, ASYNC_LOCK = "toro-sync", "tokio", "async-lock"
# Column order of the peers, where a table has them; others follow alphabetically.
PEER_ORDER = [TOKIO, ASYNC_LOCK, "async-channel", "flume", "kanal", "crossbeam-channel", "std"]
RING_PREFIX = "ring-"

# Each table: its title, its groups (by name), their order, the peers that get a ratio
# column of their own (when present), and the note under it.
TABLES = [
    {
        "title": "Semaphore",
        "match": lambda g: g.startswith("S"),
        "order": ORDER,
        "ratio_to": [TOKIO, ASYNC_LOCK],
        "note": "Median ns per acquire+release (ring: per hand-off); "
        "ratios below 1 mean toro-sync is faster.",
    },
    {
        "title": "Channel",
        "match": lambda g: g.startswith("C"),
        "order": CHANNEL_ORDER,
        "ratio_to": [TOKIO],
        "note": "Median ns per message (C1-C5); ratios below 1 mean toro-sync is faster. "
        "C6: {n} u64 pushed into an unbounded channel then drained, one child process per "
        "peer: peak RSS growth per message (VmHWM minus VmRSS before the pushes) and RSS "
        "still held after the drain with the channel alive.",
    },
]


def load(criterion):
    """{group: {function: ns per op}} from every <group>/<function>/new/ found."""
    results = {}
    for bench in sorted(criterion.glob("*/*/new/benchmark.json")):
        new = bench.parent
        try:
            meta = json.loads(bench.read_text())
            est = json.loads((new / "estimates.json").read_text())
        except (OSError, ValueError) as e:
            print(f"skipping {new}: {e}", file=sys.stderr)
            continue
        ns = est["median"]["point_estimate"]
        throughput = meta.get("throughput") or {}
        elements = throughput.get("Elements") or throughput.get("elements")
        if elements:
            ns /= elements
        group = meta.get("group_id") or new.parent.parent.name
        function = meta.get("function_id") or new.parent.name
        results.setdefault(group, {})[function] = ns
    return results


def load_c6(criterion):
    """The C6 rows, {C6_PEAK: {peer: B/msg}, C6_KEPT: {peer: KiB}}, and the message count."""
    path = criterion / "C6-memory.json"
    try:
        rows = json.loads(path.read_text())
    except FileNotFoundError:
        return {}, None
    except (OSError, ValueError) as e:
        print(f"skipping {path}: {e}", file=sys.stderr)
        return {}, None
    peak = {r["peer"]: r["peak_bytes_per_msg"] for r in rows}
    kept = {r["peer"]: r["kept_kib"] for r in rows}
    n = rows[0]["messages"] if rows else None
    return {C6_PEAK: peak, C6_KEPT: kept}, n


def median_of_runs(runs):
    """{group: {function: median over the runs that have it}} from several load() results."""
    cells = {}
    for run_results in runs:
        for group, fns in run_results.items():
            for function, value in fns.items():
                cells.setdefault(group, {}).setdefault(function, []).append(value)
    return {g: {f: statistics.median(v) for f, v in fns.items()} for g, fns in cells.items()}


def ordered_groups(results, order=ORDER):
    known = [g for g in order if g in results]
    return known + sorted(g for g in results if g not in order)


def peers_of(results, groups):
    """Every function in the groups but toro-sync and ring references, in PEER_ORDER."""
    found = {f for g in groups for f in results[g] if f != TORO and not f.startswith(RING_PREFIX)}
    known = [p for p in PEER_ORDER if p in found]
    return known + sorted(found - set(known))


def ring_of(fns):
    """The ring reference's name in a group, if it has one."""
    return next((f for f in sorted(fns) if f.startswith(RING_PREFIX)), None)


def fmt_ns(ns):
    if ns is None:
        return "—"
    if ns >= 100:
        return f"{ns:.0f}"
    if ns >= 10:
        return f"{ns:.1f}"
    return f"{ns:.2f}"


def ratio(a, b):
    return a / b if a is not None and b else None


def fmt_ratio(r):
    return "—" if r is None else f"{r:.2f}"


def run(cmd):
    try:
        out = subprocess.run(cmd, cwd=CRATE, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def machine():
    cpu = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cpu = cpu or platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} logical cores, {platform.system()} {platform.release()}"


def meta_lines():
    commit = run(["git", "rev-parse", "--short", "HEAD"]) or "unknown"
    if run(["git", "status", "--porcelain", "--untracked-files=no"]):
        commit += " (with uncommitted changes)"
    return [
        f"Machine: {machine()}",
        f"rustc: {run(['rustc', '-V']) or 'unknown'}",
        f"Commit: {commit}",
    ]


def table(results, spec=TABLES[0], c6_messages=None):
    """One markdown table: the groups of `spec` found in `results`, or None if none are."""
    results = {g: fns for g, fns in results.items() if spec["match"](g)}
    if not results:
        return None
    groups = ordered_groups(results, spec["order"])
    peer_names = peers_of(results, groups)
    ratio_to = [p for p in spec["ratio_to"] if p in peer_names]
    has_ring = any(ring_of(results[g]) for g in groups)
    head = ["workload", TORO] + peer_names
    if has_ring:
        head.append("ring-64")
    head += [f"toro / {p}" for p in ratio_to] + ["toro / best peer"]
    lines = [
        f"### {spec['title']}",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|",
    ]
    notes = []
    for g in groups:
        fns = results[g]
        toro = fns.get(TORO)
        peers = [fns.get(p) for p in peer_names]
        ring = ring_of(fns)
        row = [g, fmt_ns(toro)] + [fmt_ns(p) for p in peers]
        if has_ring:
            row.append(fmt_ns(fns.get(ring)) if ring else "—")
        best = min((p for p in peers if p is not None), default=None)
        row += [fmt_ratio(ratio(toro, fns.get(p))) for p in ratio_to] + [fmt_ratio(ratio(toro, best))]
        lines.append("| " + " | ".join(row) + " |")
        if ring:
            r = fns[ring]
            notes.append(
                f"{g}: {ring} / {TOKIO} = {fmt_ratio(ratio(r, fns.get(TOKIO)))}, "
                f"{TORO} / {ring} = {fmt_ratio(ratio(toro, r))}"
            )
    lines.append("")
    lines.append(spec["note"].format(n=f"{c6_messages:,}" if c6_messages else "N"))
    lines += notes
    return "\n".join(lines)


def svg_chart(results, path):
    """Grouped bars: each function's time over tokio's in the same group (tokio = 1)."""
    results = {g: fns for g, fns in results.items() if TABLES[0]["match"](g)}
    groups = [g for g in ordered_groups(results) if results[g].get(TOKIO)]
    series = [TORO, ASYNC_LOCK]
    if any(ring_of(results[g]) for g in groups):
        series.append("ring")
    colours = {TORO: "#d1495b", ASYNC_LOCK: "#00798c", "ring": "#8d96a3"}

    def value(g, s):
        fns = results[g]
        name = ring_of(fns) if s == "ring" else s
        return ratio(fns.get(name), fns[TOKIO]) if name else None

    labels = {"ring": "ring-64-tasks (reference)"}
    title = "Semaphore: time per op relative to tokio (lower is faster)"
    bar_chart(groups, series, value, colours, labels, title, "tokio = 1", path)


def channel_svg_chart(results, path):
    """Grouped bars for C1-C5: each peer's time over toro-sync's (toro-sync = 1)."""
    groups = [g for g in CHANNEL_ORDER if g in results and results[g].get(TORO)]
    present = {f for g in groups for f in results[g]}
    series = [TORO] + [p for p in PEER_ORDER if p in present and p != ASYNC_LOCK]
    palette = ["#d1495b", "#edae49", "#00798c", "#30638e", "#003d5b", "#8d96a3", "#66a182"]
    colours = dict(zip(series, palette))

    def value(g, s):
        return ratio(results[g].get(s), results[g][TORO])

    title = "Channel: each crate's time per message relative to toro-sync (above 1: toro-sync is faster)"
    bar_chart(groups, series, value, colours, {}, title, "toro-sync = 1", path, bar=16)


def bar_chart(groups, series, value, colours, labels, title, baseline, path, bar=26):
    """Writes an SVG of grouped bars: `value(group, series)` (None: no bar) per group."""
    values = [v for g in groups for s in series if (v := value(g, s)) is not None]
    top = max(values + [1.0]) * 1.15
    left, right, top_pad, bottom = 60, 20, 50, 90
    gap = 30
    slot = bar * len(series) + gap
    plot_w = max(slot * max(len(groups), 1), 640)
    plot_h = 300
    width, height = left + plot_w + right, top_pad + plot_h + bottom

    def y(v):
        return top_pad + plot_h - v / top * plot_h

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="20" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    # Axis and grid.
    steps = 5
    for i in range(steps + 1):
        v = top * i / steps
        out.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
            'stroke="#e5e5e5"/>'
        )
        out.append(
            f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.2f}</text>'
        )
    out.append(
        f'<line x1="{left}" x2="{left}" y1="{top_pad}" y2="{top_pad + plot_h}" stroke="black"/>'
    )
    out.append(
        f'<line x1="{left}" x2="{left + plot_w}" y1="{top_pad + plot_h}" '
        f'y2="{top_pad + plot_h}" stroke="black"/>'
    )
    # Bars.
    for gi, g in enumerate(groups):
        x0 = left + gi * slot + gap / 2
        for si, s in enumerate(series):
            v = value(g, s)
            if v is None:
                continue
            x = x0 + si * bar
            out.append(
                f'<rect x="{x:.1f}" y="{y(v):.1f}" width="{bar - 3}" '
                f'height="{top_pad + plot_h - y(v):.1f}" fill="{colours[s]}">'
                f"<title>{escape(g)} {escape(s)}: {v:.2f}</title></rect>"
            )
            out.append(
                f'<text x="{x + (bar - 3) / 2:.1f}" y="{y(v) - 3:.1f}" '
                f'text-anchor="middle" font-size="9">{v:.2f}</text>'
            )
        cx = x0 + bar * len(series) / 2
        out.append(
            f'<text x="{cx:.1f}" y="{top_pad + plot_h + 14}" text-anchor="end" '
            f'transform="rotate(-25 {cx:.1f} {top_pad + plot_h + 14})">{escape(g)}</text>'
        )
    # The baseline, 1.
    out.append(
        f'<line x1="{left}" x2="{left + plot_w}" y1="{y(1):.1f}" y2="{y(1):.1f}" '
        'stroke="black" stroke-dasharray="5,3"/>'
    )
    out.append(
        f'<text x="{left + plot_w - 2}" y="{y(1) - 4:.1f}" text-anchor="end">{escape(baseline)}</text>'
    )
    # Legend.
    lx = left + 10
    for s in series:
        label = labels.get(s, s)
        out.append(f'<rect x="{lx}" y="30" width="10" height="10" fill="{colours[s]}"/>')
        out.append(f'<text x="{lx + 14}" y="39">{escape(label)}</text>')
        lx += 14 + 7 * len(label) + 16
    out.append("</svg>")
    Path(path).write_text("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target-dir", help="cargo target dir (default $CARGO_TARGET_DIR or target/)")
    ap.add_argument(
        "--svg", metavar="PATH", help="also write a bar chart of the semaphore ratios to tokio"
    )
    ap.add_argument(
        "--channel-svg",
        metavar="PATH",
        help="also write a bar chart of the channel peers' times relative to toro-sync",
    )
    ap.add_argument(
        "--criterion",
        action="append",
        metavar="DIR",
        help="a criterion directory of one run (its CRITERION_HOME); repeat it for several "
        "runs, and each cell is the median of the runs",
    )
    ap.add_argument("--no-meta", action="store_true", help="leave out machine, rustc, commit")
    args = ap.parse_args()
    target = Path(args.target_dir or os.environ.get("CARGO_TARGET_DIR") or CRATE / "target")
    if not target.is_absolute():
        target = Path.cwd() / target
    dirs = [Path(d).resolve() for d in args.criterion] if args.criterion else [target / "criterion"]
    runs = []
    c6_messages = None
    for criterion in dirs:
        run_results = load(criterion)
        c6, messages = load_c6(criterion)
        run_results.update(c6)
        c6_messages = c6_messages or messages
        runs.append(run_results)
    results = median_of_runs(runs)
    if not results:
        sys.exit(f"no criterion results under {', '.join(map(str, dirs))}")
    if not args.no_meta:
        print("\n".join(meta_lines()))
        if len(dirs) > 1:
            print(f"Runs: {len(dirs)}; each cell is the median of the runs' medians")
        print()
    tables = [t for spec in TABLES if (t := table(results, spec, c6_messages))]
    print("\n\n".join(tables))
    if args.svg:
        svg_chart(results, args.svg)
        print(f"\nwrote {args.svg}", file=sys.stderr)
    if args.channel_svg:
        channel_svg_chart(results, args.channel_svg)
        print(f"wrote {args.channel_svg}", file=sys.stderr)


if __name__ == "__main__":
    main()
