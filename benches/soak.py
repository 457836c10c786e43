#!/usr/bin/env python3
"""Soak test: long unattended use must not grow memory nor fail. Standard library only.

1. `edgelm run` generates --tokens tokens in one answer with a sliding window (`--keep`,
   context --ctx, so the window slides many times); a grammar (benches/data/soak.gbnf) keeps
   the end-of-turn token out so that the answer runs to the limit.
2. `edgelm chat` is fed --turns lines through a pipe (short answers, `--keep`), then EOF.

Each process's resident set (VmRSS from /proc/PID/status) is sampled every --interval seconds.
After a warm-up (the first --warmup fraction of the run's time) RSS must stay within --drift MiB
of its value at the end of the warm-up; the exit status must be 0 and stderr must hold no error.
Prints one line per part and exits 1 if either fails.

  python3 benches/soak.py MODEL.edgelm [--tokens 10000] [--turns 1000] [-t 1] [--json FILE]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUESTIONS = [
    "What is the capital of France?",
    "Give me one tip for driving in snow.",
    "Turn on the lights in the kitchen.",
    "How far is the Moon?",
    "Write a short reminder to buy milk.",
    "What does a red traffic light mean?",
    "Name a fruit that is yellow.",
    "Say hello in Spanish.",
]


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def watch(cmd, stdin_lines, interval):
    """Runs cmd, feeding stdin_lines (or nothing), sampling RSS; returns (rc, stderr, samples, out_bytes)."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin_lines else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = {"bytes": 0, "err": b""}

    def feed():
        for line in stdin_lines:
            p.stdin.write((line + "\n").encode())
            p.stdin.flush()
        p.stdin.close()

    def drain_out():
        while chunk := p.stdout.read(4096):
            out["bytes"] += len(chunk)

    def drain_err():
        out["err"] = p.stderr.read()

    threads = [threading.Thread(target=drain_out), threading.Thread(target=drain_err)]
    if stdin_lines:
        threads.append(threading.Thread(target=feed))
    for t in threads:
        t.start()
    samples = []
    while p.poll() is None:
        kib = rss_kib(p.pid)
        if kib is not None:
            samples.append((time.monotonic() - t0, kib))
        time.sleep(interval)
    for t in threads:
        t.join()
    return p.returncode, out["err"].decode(errors="replace"), samples, out["bytes"]


def judge(label, rc, err, samples, warmup, drift_mib, extra):
    end = samples[-1][0] if samples else 0.0
    warm = [kib for t, kib in samples if t <= warmup * end]
    after = [kib for t, kib in samples if t > warmup * end]
    base = warm[-1] if warm else (samples[0][1] if samples else 0)
    peak = max(after, default=base)
    low = min(after, default=base)
    drift = (max(peak - base, base - low)) / 1024
    errors = [l for l in err.splitlines() if "error" in l.lower()]
    ok = rc == 0 and not errors and drift <= drift_mib and extra.get("ok", True)
    row = {
        "part": label, "ok": ok, "exit": rc, "seconds": round(end, 1), "samples": len(samples),
        "rss_after_warmup_mib": round(base / 1024, 2), "rss_min_mib": round(low / 1024, 2),
        "rss_max_mib": round(peak / 1024, 2), "rss_end_mib": round(samples[-1][1] / 1024, 2) if samples else None,
        "drift_mib": round(drift, 3), "errors": errors[:3], **{k: v for k, v in extra.items() if k != "ok"},
    }
    print(json.dumps(row), flush=True)
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--edgelm", default=os.path.join(ROOT, "target/release/edgelm"))
    ap.add_argument("--tokens", type=int, default=10000)
    ap.add_argument("--turns", type=int, default=1000)
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--answer", type=int, default=16, help="token limit per chat answer")
    ap.add_argument("-t", "--threads", type=int, default=1)
    ap.add_argument("--interval", type=float, default=0.5)
    ap.add_argument("--warmup", type=float, default=0.1, help="fraction of the run's time")
    ap.add_argument("--drift", type=float, default=1.0, help="allowed RSS drift after warm-up, MiB")
    ap.add_argument("--json", metavar="FILE", help="write the rows and every RSS sample here")
    a = ap.parse_args()

    common = ["-c", str(a.ctx), "-t", str(a.threads), "-s", "1"]
    rows, traces = [], {}
    if a.tokens:
        cmd = [a.edgelm, "run", a.model, "-p", "Tell me a long story about a lighthouse keeper.",
               "-n", str(a.tokens), "--keep", "32", "--grammar",
               os.path.join(ROOT, "benches/data/soak.gbnf")] + common
        rc, err, samples, nbytes = watch(cmd, None, a.interval)
        m = re.search(r"generation (\d+) tokens, ([\d.]+) tok/s \| stop: (\w+)", err)
        generated = int(m.group(1)) if m else 0
        extra = {"generated": generated, "tok_per_s": float(m.group(2)) if m else None,
                 "stop": m.group(3) if m else None, "output_bytes": nbytes,
                 "ok": generated == a.tokens}
        rows.append(judge(f"run -n {a.tokens} --keep 32 -c {a.ctx}", rc, err, samples, a.warmup, a.drift, extra))
        traces["run"] = samples
    if a.turns:
        lines = [QUESTIONS[i % len(QUESTIONS)] for i in range(a.turns)]
        cmd = [a.edgelm, "chat", a.model, "-n", str(a.answer), "--keep", "64"] + common
        rc, err, samples, nbytes = watch(cmd, lines, a.interval)
        rows.append(judge(f"chat {a.turns} turns -n {a.answer} --keep 64 -c {a.ctx}", rc, err, samples,
                          a.warmup, a.drift, {"output_bytes": nbytes}))
        traces["chat"] = samples
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"rows": rows, "rss_kib": traces}, f)
    sys.exit(0 if all(r["ok"] for r in rows) else 1)


if __name__ == "__main__":
    main()
