#!/usr/bin/env python3
"""Summary of a benches/whisper/compare.sh run: medians per (clip, threads, beam, system) and edgelm's ratios
to each peer, written next to the CSV as JSON (same name, .json) and markdown (.md, also printed).

    python3 benches/whisper/compare_summary.py benches/results/whisper-compare-TIME.csv "MACHINE NOTE"

speedup = peer's median wall time / edgelm's (above 1: edgelm is faster); rss = edgelm's largest peak RSS /
the peer's (below 1: edgelm uses less). Both edgelm systems (edgelm, edgelm-auto) are compared with each peer.
"""

import csv
import json
import statistics
import sys

PEERS = ("faster-whisper", "whisper.cpp")
OURS = ("edgelm", "edgelm-auto")


def median(rows, key):
    values = [float(r[key]) for r in rows if r[key]]
    return statistics.median(values) if len(values) == len(rows) else None


def main():
    path, machine = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""
    rows = list(csv.DictReader(open(path)))
    groups = {}
    for r in rows:
        groups.setdefault((r["clip"], int(r["threads"]), int(r["beam"]), r["system"]), []).append(r)
    summary = []
    for (clip, t, beam, system), rs in sorted(groups.items()):
        summary.append({
            "clip": clip, "threads": t, "beam": beam, "system": system, "runs": len(rs),
            "wall_s": median(rs, "wall_s"), "inproc_s": median(rs, "inproc_s"), "encode_s": median(rs, "encode_s"),
            "rss_mb": max(float(r["rss_mb"]) for r in rs), "text": rs[0]["text"],
        })
    by_key = {(s["clip"], s["threads"], s["beam"], s["system"]): s for s in summary}
    for s in summary:
        if s["system"] not in OURS:
            continue
        for peer in PEERS:
            p = by_key.get((s["clip"], s["threads"], s["beam"], peer))
            if p and p["wall_s"] and s["wall_s"]:
                s[f"speedup_vs_{peer}"] = round(p["wall_s"] / s["wall_s"], 3)
                s[f"rss_vs_{peer}"] = round(s["rss_mb"] / p["rss_mb"], 3)
    base = path[:-4] if path.endswith(".csv") else path
    with open(base + ".json", "w") as f:
        json.dump({"machine": machine, "rows": rows, "summary": summary}, f, indent=1)

    fmt = lambda v, spec=".2f": "-" if v is None else format(v, spec)
    lines = [
        f"Machine: {machine}. Medians of {max(s['runs'] for s in summary)} interleaved runs; wall = whole process "
        "(load + mel + encoder + decoding); speed-up = peer wall / edgelm wall; RSS ratio = edgelm / peer.",
        "",
        "| clip | threads | beam | system | wall s | in-process s | encoder s | peak RSS MB "
        "| speed-up vs faster-whisper | speed-up vs whisper.cpp | RSS vs faster-whisper | RSS vs whisper.cpp |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summary:
        ratio = lambda k: fmt(s.get(k))
        lines.append(
            f"| {s['clip']} | {s['threads']} | {s['beam']} | {s['system']} | {fmt(s['wall_s'])} | "
            f"{fmt(s['inproc_s'])} | {fmt(s['encode_s'])} | {fmt(s['rss_mb'], '.0f')} | "
            f"{ratio('speedup_vs_faster-whisper')} | {ratio('speedup_vs_whisper.cpp')} | "
            f"{ratio('rss_vs_faster-whisper')} | {ratio('rss_vs_whisper.cpp')} |")
    table = "\n".join(lines) + "\n"
    with open(base + ".md", "w") as f:
        f.write(table)
    print(table)
    print(f"wrote {base}.json, {base}.md", file=sys.stderr)


if __name__ == "__main__":
    main()
