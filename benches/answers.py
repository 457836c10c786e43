#!/usr/bin/env python3
"""Answer quality on everyday requests: does the model loop, run to the token limit, get the
facts right? Standard library only.

Runs every request of benches/data/answers.json over several seeds through `edgelm run` (one
subprocess per answer) for each model and sampling setting, and optionally through llama.cpp's
llama-completion on the GGUF with the same chat prompt, then prints one row per setting:

  loops     answers whose text compresses more than 2.6x with zlib, or whose tail is one
            chunk repeated (3+ copies of 1-200 characters, covering the last 30+ characters),
            also when every number is read as 0 (counting: "1.\n2.\n3.\n…")
  guard     answers the loop guard stopped (edgelm's `stop: Repetition`)
  cut       answers that ran to the token limit
  cut, looping  those of them that loop (as above): answers that ran to the limit by repetition
  median    median answer length in characters
  facts     answers that contain their request's facts (requests with `must` only)
  Paris     answers to "What is the capital of France?" that contain "Paris"

  python3 benches/answers.py --model q4=/tmp/smol-q4.edgelm \\
      --setting 'quickstart=--temp 0.2 --top-p 0.9' \\
      --setting 'quickstart+dry+guard=--temp 0.2 --top-p 0.9 --dry-multiplier 0.8 --loop-guard on'

A setting is LABEL=ARGS (edgelm run's flags). --llama-completion BIN with --gguf FILE adds
llama.cpp rows, one per --llama-setting LABEL=ARGS (llama-completion's flags).
"""
import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOLLM_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def compression_ratio(text):
    raw = text.encode()
    return len(raw) / len(zlib.compress(raw, 9)) if raw else 0.0


def repeated_tail(text, min_copies=3, max_period=200, min_span=30):
    """True when the text ends in min_copies+ copies of one chunk of up to max_period
    characters that together cover at least min_span characters."""
    text = text.rstrip()
    n = len(text)
    for p in range(1, min(max_period, n // min_copies) + 1):
        run = 0
        i = n - 1
        while i - p >= 0 and text[i] == text[i - p]:
            run += 1
            i -= 1
        span = run + p
        if span >= max(min_copies * p, min_span):
            return True
    return False


def loops(text):
    """Compresses well, or ends in copies of one chunk, also with its numbers aside (counting
    "1.\n2.\n3.\n…" or "10:11:12:…" with nothing else)."""
    return (compression_ratio(text) > 2.6 or repeated_tail(text)
            or repeated_tail(re.sub(r"\d+", "0", text)))


def has_facts(text, must):
    low = text.lower()
    return all(
        any(alt.lower() in low for alt in ([m] if isinstance(m, str) else m)) for m in must
    )


def run_edgelm(edgelm, model, prompt, seed, n, threads, args):
    cmd = [edgelm, "run", model, "-p", prompt, "-n", str(n), "-s", str(seed), "-t", str(threads)]
    p = subprocess.run(cmd + args, capture_output=True, text=True, check=True,
                       stdin=subprocess.DEVNULL)
    stats = p.stderr.strip().splitlines()[-1]
    tokens = int(re.search(r"generation (\d+) tokens", stats).group(1))
    stop = re.search(r"stop: (\w+)", stats).group(1)
    return p.stdout.rstrip("\n"), tokens, stop


def chatml(prompt):
    return (f"<|im_start|>system\n{SMOLLM_SYSTEM}<|im_end|>\n"
            f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n")


def run_llama(binary, gguf, prompt, seed, n, threads, args):
    cmd = [binary, "-m", gguf, "-p", chatml(prompt), "-n", str(n), "-s", str(seed),
           "-t", str(threads), "-c", "1024", "-no-cnv", "--no-display-prompt", "--no-warmup"]
    p = subprocess.run(cmd + args, capture_output=True, text=True, check=True,
                       stdin=subprocess.DEVNULL)
    # "eval time = … / N runs": N sampled tokens after the first; the first comes with the
    # prompt. Treat N + 1 >= n as running to the limit.
    m = re.search(r"eval time =.*?/\s*(\d+) runs", p.stderr)
    tokens = int(m.group(1)) + 1 if m else -1
    stop = "MaxTokens" if tokens >= n else "EndOfTurn"
    text = p.stdout.replace("[end of text]", "").strip()
    return text, tokens, stop


def summarise(label, answers):
    total = len(answers)
    pct = lambda k: 100.0 * k / total if total else 0.0
    facts = [a for a in answers if a["must"]]
    paris = [a for a in answers if a["id"] == "capital-france"]
    return {
        "setting": label,
        "answers": total,
        "loops": pct(sum(a["loops"] for a in answers)),
        "guard": pct(sum(a["stop"] == "Repetition" for a in answers)),
        "cut": pct(sum(a["stop"] == "MaxTokens" for a in answers)),
        "cut_looping": pct(sum(a["stop"] == "MaxTokens" and a["loops"] for a in answers)),
        "median_chars": statistics.median(len(a["text"]) for a in answers) if answers else 0,
        "facts": 100.0 * sum(a["facts_ok"] for a in facts) / len(facts) if facts else None,
        "paris": f"{sum(a['facts_ok'] for a in paris)}/{len(paris)}",
        "seconds": round(sum(a["seconds"] for a in answers), 1),
    }


def table(rows):
    out = ["| setting | answers | loops | guard stops | cut at limit | cut, looping | median chars | facts | Paris |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        facts = f"{r['facts']:.0f}%" if r["facts"] is not None else "-"
        out.append(f"| {r['setting']} | {r['answers']} | {r['loops']:.0f}% | {r['guard']:.0f}% "
                   f"| {r['cut']:.0f}% | {r['cut_looping']:.0f}% | {r['median_chars']:.0f} | {facts} "
                   f"| {r['paris']} |")
    return "\n".join(out)


def label_args(spec):
    label, _, args = spec.partition("=")
    return label, shlex.split(args)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--edgelm", default=os.path.join(ROOT, "target/release/edgelm"))
    ap.add_argument("--model", action="append", default=[], metavar="LABEL=FILE")
    ap.add_argument("--setting", action="append", default=[], metavar="LABEL=ARGS")
    ap.add_argument("--llama-completion", metavar="BIN")
    ap.add_argument("--gguf", metavar="FILE")
    ap.add_argument("--llama-setting", action="append", default=[], metavar="LABEL=ARGS")
    ap.add_argument("--requests", default=os.path.join(ROOT, "benches/data/answers.json"))
    ap.add_argument("--only", help="comma-separated request ids")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("-n", type=int, default=256, help="token limit per answer")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--json", metavar="FILE", help="write every answer and the summary here")
    a = ap.parse_args()

    requests = json.load(open(a.requests))["requests"]
    if a.only:
        keep = set(a.only.split(","))
        requests = [r for r in requests if r["id"] in keep]
    runs = []
    for model in a.model:
        mlabel, path = model.split("=", 1)
        for s in a.setting:
            label, args = label_args(s)
            runs.append((f"edgelm {mlabel} {label}", lambda p, seed, args=args, path=path:
                         run_edgelm(a.edgelm, path, p, seed, a.n, a.threads, args)))
    if a.llama_completion:
        for s in a.llama_setting:
            label, args = label_args(s)
            runs.append((f"llama.cpp {label}", lambda p, seed, args=args:
                         run_llama(a.llama_completion, a.gguf, p, seed, a.n, a.threads, args)))

    rows, everything = [], []
    for label, fn in runs:
        answers = []
        for r in requests:
            for seed in range(1, a.seeds + 1):
                t = time.monotonic()
                text, tokens, stop = fn(r["prompt"], seed)
                must = r.get("must", [])
                answers.append({
                    "id": r["id"], "seed": seed, "text": text, "tokens": tokens, "stop": stop,
                    "ratio": round(compression_ratio(text), 2), "loops": loops(text),
                    "must": must, "facts_ok": has_facts(text, must) if must else None,
                    "seconds": time.monotonic() - t,
                })
        row = summarise(label, answers)
        rows.append(row)
        everything.append({"setting": label, "summary": row, "answers": answers})
        print(f"{label}: {row}", file=sys.stderr, flush=True)
    print(table(rows))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"n": a.n, "seeds": a.seeds, "runs": everything}, f, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main()
