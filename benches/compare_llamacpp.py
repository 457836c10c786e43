#!/usr/bin/env python3
"""Runs llama-bench and `edgelm bench` interleaved on pairs of identical-weight models, plus
time-to-first-token and peak-RSS runs of both, and prints ratios. Called by
benches/compare-llamacpp.sh (standard library only)."""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def test_name(n_prompt, n_gen, depth):
    name = f"pp{n_prompt}" if n_prompt else f"tg{n_gen}"
    return f"{name} @ d{depth}" if depth else name


def llama_bench(bin_dir, gguf, a):
    # llama.cpp quantizes the V cache only with flash attention; f16 keeps its default (auto).
    kv = ["-ctk", "q8_0", "-ctv", "q8_0", "-fa", "1"] if a.kv == "q8" else []
    rows = run_json([f"{bin_dir}/llama-bench", "-m", gguf, "-p", str(a.pp), "-n", str(a.tg),
                     "-d", a.depth, "-t", a.threads, "-r", "1", "-o", "json"] + kv)
    return {(test_name(r["n_prompt"], r["n_gen"], r.get("n_depth", 0)), r["n_threads"]): r["avg_ts"]
            for r in rows}


def edgelm_bench(edgelm, packed, a):
    rep = run_json([edgelm, "bench", packed, "-p", str(a.pp), "-n", str(a.tg), "-d", a.depth,
                    "-t", a.threads, "--kv", a.kv, "-r", "1", "--json"])
    return {(r["test"], r["threads"]): r["avg_ts"] for r in rep["results"]}


def timed(cmd):
    """Wall seconds and peak RSS (MiB) of one fresh process, via GNU time."""
    t = time.monotonic()
    p = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, capture_output=True, text=True)
    wall = time.monotonic() - t
    if p.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{p.stderr[-2000:]}")
    rss_kib = int(p.stderr.strip().splitlines()[-1])
    return wall, rss_kib / 1024


def order(key):
    """pp before tg, then by depth, then threads."""
    test, threads = key
    depth = int(test.split("@ d")[1]) if "@ d" in test else 0
    return test[:2] == "tg", depth, threads


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--pp", type=int, default=128)
    ap.add_argument("--tg", type=int, default=64)
    ap.add_argument("--depth", default="0", help="context depths, comma-separated (llama-bench -d)")
    ap.add_argument("--kv", default="f16", choices=["f16", "q8"], help="KV cache type of both")
    ap.add_argument("--no-startup", action="store_true", help="skip the time-to-first-token and RSS runs")
    ap.add_argument("--llama-bin", required=True)
    ap.add_argument("--edgelm", required=True)
    ap.add_argument("--llama-commit", default="")
    ap.add_argument("--out", required=True)
    ap.add_argument("pairs", nargs="+", help="TYPE=GGUF=PACKED")
    a = ap.parse_args()
    pairs = [p.split("=", 2) for p in a.pairs]

    samples = {}  # (type, tool, test, threads) -> [tokens/s]
    for rnd in range(a.rounds):
        for ty, gguf, packed in pairs:
            for tool, fn, path in (("llama.cpp", lambda: llama_bench(a.llama_bin, gguf, a), gguf),
                                   ("edgelm", lambda: edgelm_bench(a.edgelm, packed, a), packed)):
                for (test, th), ts in fn().items():
                    samples.setdefault((ty, tool, test, th), []).append(ts)
        print(f"round {rnd + 1}/{a.rounds} done", file=sys.stderr)

    # Time to first token (load, prefill a short prompt, one token) and peak RSS of a 64-token
    # generation at a 512-token context, both as fresh processes; medians of 5, interleaved.
    starts = {}
    for _ in range(0 if a.no_startup else 5):
        for ty, gguf, packed in pairs:
            for tool, cmd in (
                ("llama.cpp", [f"{a.llama_bin}/llama-completion", "-m", gguf, "-p", "Hello", "-n", "1",
                               "--temp", "0", "-no-cnv", "--no-warmup", "-t", "2", "-c", "512"]),
                ("edgelm", [a.edgelm, "run", packed, "--raw", "-p", "Hello", "-n", "1", "--temp", "0",
                            "-t", "2", "-c", "512"]),
            ):
                starts.setdefault((ty, tool), []).append(timed(cmd)[0])
    rss = {}
    for ty, gguf, packed in [] if a.no_startup else pairs:
        rss[(ty, "llama.cpp")] = timed([f"{a.llama_bin}/llama-completion", "-m", gguf, "-p", "Once upon a time",
                                        "-n", "64", "--temp", "0", "-no-cnv", "-t", "2", "-c", "512"])[1]
        rss[(ty, "edgelm")] = timed([a.edgelm, "run", packed, "--raw", "-p", "Once upon a time", "-n", "64",
                                     "--temp", "0", "-t", "2", "-c", "512"])[1]

    rows = []
    print(f"\n{a.rounds} interleaved rounds, {a.kv} KV cache; tokens/s mean ± stdev; ratio = edgelm / llama.cpp\n")
    print("| type | test | threads | llama.cpp | edgelm | ratio |")
    print("|---|---|---:|---:|---:|---:|")
    for ty, _, _ in pairs:
        for key in sorted({(t, th) for (y, tool, t, th) in samples if y == ty}, key=order):
            test, th = key
            l, e = samples[(ty, "llama.cpp", test, th)], samples[(ty, "edgelm", test, th)]
            lm, em = statistics.mean(l), statistics.mean(e)
            sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0
            rows.append({"type": ty, "test": test, "threads": th, "llamacpp": l, "edgelm": e, "ratio": em / lm})
            print(f"| {ty} | {test} | {th} | {lm:.1f} ± {sd(l):.1f} | {em:.1f} ± {sd(e):.1f} | {em / lm:.2f} |")
    extra = []
    if not a.no_startup:
        print("\n| type | time to first token, llama.cpp | edgelm | peak RSS, llama.cpp | edgelm |")
        print("|---|---:|---:|---:|---:|")
    for ty, _, _ in [] if a.no_startup else pairs:
        tl, te = statistics.median(starts[(ty, "llama.cpp")]), statistics.median(starts[(ty, "edgelm")])
        rl, re = rss[(ty, "llama.cpp")], rss[(ty, "edgelm")]
        extra.append({"type": ty, "ttft_s": {"llamacpp": tl, "edgelm": te}, "peak_rss_mib": {"llamacpp": rl, "edgelm": re}})
        print(f"| {ty} | {tl * 1e3:.0f} ms | {te * 1e3:.0f} ms | {rl:.0f} MiB | {re:.0f} MiB |")
    with open(a.out, "w") as f:
        json.dump({"date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.processor() or platform.machine(),
                   "cpus": os.cpu_count(), "load_before": os.getloadavg(), "llama_cpp_commit": a.llama_commit,
                   "rounds": a.rounds, "kv": a.kv, "speed": rows, "startup_and_memory": extra}, f, indent=1)
    print(f"\nwrote {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
