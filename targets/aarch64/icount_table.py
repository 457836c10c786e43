#!/usr/bin/env python3
"""Tables from targets/aarch64/icount.sh's raw counts.

Each raw file is the plugin's output ("total N", then "N symbol" lines) for one run; per token is
(count at -r 2 − count at -r 1) ÷ tokens, in total and per symbol. Prints markdown: the ratio
table (edgelm ÷ llama.cpp, per prompt token and per generated token, each type and NEON level)
and, per run, the symbols that take most of the per-token difference.
"""
import argparse
import re
import subprocess
from pathlib import Path


def read(path):
    lines = path.read_text().splitlines()
    total = int(lines[0].split()[1])
    syms = {}
    for line in lines[1:]:
        n, name = line.split(" ", 1)
        syms[name] = syms.get(name, 0) + int(n)
    return total, syms


def demangle(names):
    out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True).stdout
    short = []
    for d in out.splitlines():
        d = re.sub(r"::h[0-9a-f]{16}$", "", d)
        short.append(d if len(d) <= 90 else "…" + d[-89:])
    return short


def per_token(raw, key, tokens):
    t1, s1 = read(raw / f"{key}.r1")
    t2, s2 = read(raw / f"{key}.r2")
    syms = {k: (s2.get(k, 0) - s1.get(k, 0)) / tokens for k in set(s1) | set(s2)}
    return (t2 - t1) / tokens, syms


def main():
    p = argparse.ArgumentParser()
    p.add_argument("raw", type=Path)
    p.add_argument("--pp", type=int, default=128)
    p.add_argument("--tg", type=int, default=32)
    p.add_argument("--types", default="Q8_0 Q4_0")
    p.add_argument("--levels", default="neon dotprod i8mm")
    p.add_argument("--top", type=int, default=6)
    a = p.parse_args()
    tests = [("pp", a.pp, f"per prompt token (pp{a.pp})"), ("tg", a.tg, f"per generated token (tg{a.tg})")]
    detail = []
    print("| type | path | test | edgelm Minsn/token | llama.cpp Minsn/token | edgelm ÷ llama.cpp |")
    print("|---|---|---|---|---|---|")
    for ty in a.types.split():
        for level in a.levels.split():
            for test, tokens, label in tests:
                row = {}
                for tool in ("edgelm", "llama"):
                    key = f"{ty}.{level}.{tool}.{test}"
                    if not (a.raw / f"{key}.r2").exists():
                        break
                    row[tool] = per_token(a.raw, key, tokens)
                if "edgelm" not in row:
                    continue
                e = row["edgelm"][0]
                if "llama" in row:
                    l = row["llama"][0]
                    print(f"| {ty} | {level} | {label} | {e / 1e6:.2f} | {l / 1e6:.2f} | **{e / l:.2f}** |")
                else:
                    print(f"| {ty} | {level} | {label} | {e / 1e6:.2f} | — | — |")
                detail.append((ty, level, test, row))
    for ty, level, test, row in detail:
        print(f"\n{ty} {level} {test}, Minsn per token by symbol (function of each block's first instruction):\n")
        for tool, (total, syms) in row.items():
            top = sorted(syms.items(), key=lambda kv: -kv[1])[: a.top]
            names = demangle([k for k, _ in top])
            cells = "; ".join(f"`{n}` {v / 1e6:.2f} ({100 * v / total:.0f}%)" for n, (_, v) in zip(names, top))
            print(f"- {tool}: {total / 1e6:.2f} total: {cells}")


if __name__ == "__main__":
    main()
