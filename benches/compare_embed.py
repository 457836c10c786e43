#!/usr/bin/env python3
"""Sentence-embedding speed of edgelm (benches/embed.rs) and llama.cpp's llama-embedding on the
same weights, interleaved, and their ratios. Called by benches/compare-embed.sh (standard
library only).

Both programs are timed hot, in-process, per forward pass:
  - edgelm: the bench binary's medians of `embed_batch` (one batch of all sentences; one
    sentence alone);
  - llama.cpp: llama-embedding is given the batch REPEATS + 1 times with its batch size set to
    exactly the batch's tokens (so each llama_decode is one copy), and the time of each decode
    is the gap between the timestamps of consecutive `batch_decode` log lines; the first gap
    (warm-up) is dropped and the median kept. The same for one sentence (-np 2 and a batch size
    that holds it once).
Then one sentence as a whole program, both as fresh processes: wall time and peak RSS."""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

from compare_llamacpp import timed  # wall time and peak RSS of a fresh process

REPEATS = 12


def log_seconds(stamp):
    """llama.cpp's log timestamp `M.SS.mmm.uuu` in seconds."""
    m, s, ms, us = (int(p) for p in stamp.split("."))
    return m * 60 + s + ms / 1e3 + us / 1e6


def llama_decode_times(a, gguf, text, copies, threads, batch, ctx, extra, want):
    """Seconds of each decode after the first of `copies` copies of `text` (one per decode)."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
        f.write(text * copies)
        f.flush()
        cmd = [f"{a.llama_bin}/llama-embedding", "-m", gguf, "-f", f.name, "-t", str(threads),
               "-tb", str(threads), "-c", str(ctx), "-b", str(batch), "-ub", str(batch),
               "--embd-output-format", "array", *extra]
        p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-3000:]}")
    stamps = []
    for line in p.stderr.splitlines():
        if "batch_decode: n_tokens" in line:
            fields = line.split()
            tokens, seqs = int(fields[5].rstrip(",")), int(fields[8])
            if (tokens, seqs) != want:
                sys.exit(f"llama-embedding decoded {tokens} tokens / {seqs} sequences per batch, "
                         f"expected {want}: {' '.join(cmd)}")
            stamps.append(log_seconds(fields[0]))
    if len(stamps) != copies:
        sys.exit(f"expected {copies} decodes, saw {len(stamps)}: {' '.join(cmd)}")
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    return statistics.median(gaps[1:])


def edgelm_times(a, packed, threads):
    out = subprocess.run([a.edgelm_bench, packed, a.sentences, "-t", str(threads), "-r", str(REPEATS),
                          "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out.splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--llama-bin", required=True)
    ap.add_argument("--edgelm-bench", required=True)
    ap.add_argument("--edgelm", required=True)
    ap.add_argument("--sentences", required=True)
    ap.add_argument("--llama-commit", default="")
    ap.add_argument("--out", required=True)
    ap.add_argument("pairs", nargs="+", help="TYPE=GGUF=PACKED")
    a = ap.parse_args()
    pairs = [p.split("=", 2) for p in a.pairs]
    threads = [int(t) for t in a.threads.split(",")]
    with open(a.sentences) as f:
        lines = [l for l in f.read().splitlines() if l.strip()]
    batch_text = "".join(l + "\n" for l in lines)
    single_text = lines[0] + "\n"

    # Token counts from edgelm (the same WordPiece ids; llama.cpp's log is checked against them).
    probe = edgelm_times(a, pairs[0][2], 1)
    tokens, n, single_tokens = probe["tokens"], probe["sentences"], probe["single_tokens"]
    if tokens < 256:
        sys.exit("llama-embedding needs batches of at least 256 tokens: use longer or more sentences")
    single_batch = 16 * -(-single_tokens // 16)
    if 2 * single_tokens <= single_batch:
        sys.exit(f"the first sentence ({single_tokens} tokens) is too short to time alone in llama.cpp")

    samples = {}  # (type, threads, tool, test) -> [seconds]
    for rnd in range(a.rounds):
        for ty, gguf, packed in pairs:
            for th in threads:
                add = lambda tool, test, s: samples.setdefault((ty, th, tool, test), []).append(s)
                add("llama.cpp", "batch", llama_decode_times(
                    a, gguf, batch_text, REPEATS + 1, th, tokens, 256, [], (tokens, n)))
                e = edgelm_times(a, packed, th)
                add("edgelm", "batch", e["batch_ms"] / 1e3)
                add("edgelm", "single", e["single_ms"] / 1e3)
                add("llama.cpp", "single", llama_decode_times(
                    a, gguf, single_text, REPEATS + 1, th, single_batch, single_batch, ["-np", "2"],
                    (single_tokens, 1)))
        print(f"round {rnd + 1}/{a.rounds} done", file=sys.stderr)

    # One sentence as a whole program (start, load the model, tokenize, embed, print, exit):
    # wall time and peak RSS of fresh processes, medians of 5, interleaved.
    runs = {}  # (type, tool) -> [(seconds, MiB)]
    for _ in range(5):
        for ty, gguf, packed in pairs:
            for tool, cmd in (
                ("llama.cpp", [f"{a.llama_bin}/llama-embedding", "-m", gguf, "-p", lines[0], "-t", "2",
                               "--embd-output-format", "array"]),
                ("edgelm", [a.edgelm, "embed", packed, lines[0], "-t", "2"]),
            ):
                runs.setdefault((ty, tool), []).append(timed(cmd))

    med = lambda k: statistics.median(samples[k])
    rows = []
    print(f"\n{a.rounds} interleaved rounds, medians; batch: {n} sentences, {tokens} tokens; "
          f"single: {single_tokens} tokens; ratio = edgelm speed / llama.cpp speed\n")
    print("| type | threads | llama.cpp sentences/s | edgelm sentences/s | ratio "
          "| llama.cpp 1 sentence | edgelm 1 sentence | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for ty, _, _ in pairs:
        for th in threads:
            lb, eb = med((ty, th, "llama.cpp", "batch")), med((ty, th, "edgelm", "batch"))
            ls, es = med((ty, th, "llama.cpp", "single")), med((ty, th, "edgelm", "single"))
            rows.append({"type": ty, "threads": th,
                         "batch_s": {"llamacpp": samples[(ty, th, "llama.cpp", "batch")],
                                     "edgelm": samples[(ty, th, "edgelm", "batch")]},
                         "single_s": {"llamacpp": samples[(ty, th, "llama.cpp", "single")],
                                      "edgelm": samples[(ty, th, "edgelm", "single")]},
                         "batch_ratio": lb / eb, "single_ratio": ls / es})
            print(f"| {ty} | {th} | {n / lb:.0f} | {n / eb:.0f} | {lb / eb:.2f} "
                  f"| {ls * 1e3:.2f} ms | {es * 1e3:.2f} ms | {ls / es:.2f} |")
    print("\n| type | one sentence, whole process: llama.cpp | edgelm | peak RSS: llama.cpp | edgelm |")
    print("|---|---:|---:|---:|---:|")
    whole = []
    for ty, _, _ in pairs:
        (lw, lr), (ew, er) = [[statistics.median(v) for v in zip(*runs[(ty, tool)])] for tool in ("llama.cpp", "edgelm")]
        whole.append({"type": ty, "wall_s": {"llamacpp": lw, "edgelm": ew}, "peak_rss_mib": {"llamacpp": lr, "edgelm": er}})
        print(f"| {ty} | {lw * 1e3:.0f} ms | {ew * 1e3:.0f} ms | {lr:.0f} MiB | {er:.0f} MiB |")
    with open(a.out, "w") as f:
        json.dump({"date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.processor() or platform.machine(),
                   "cpus": os.cpu_count(), "load_before": os.getloadavg(), "llama_cpp_commit": a.llama_commit,
                   "rounds": a.rounds, "sentences": n, "batch_tokens": tokens, "single_tokens": single_tokens,
                   "results": rows, "whole_process": whole}, f, indent=1)
    print(f"\nwrote {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
