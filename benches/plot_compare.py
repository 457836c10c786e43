#!/usr/bin/env python3
"""Charts tokens/s by thread count, edgelm against llama.cpp, from the JSON files written by
benches/compare-llamacpp.sh (benches/results/compare-*.json) or benches/device-scaling.sh
(a folder of llama-bench and `edgelm bench --json` outputs).

    python3 benches/plot_compare.py benches/results/compare-X.json docs/img/smollm2-2core.png
    python3 benches/plot_compare.py DEVICE_OUT_DIR docs/img/scaling-16core.png
    python3 benches/plot_compare.py DEVICE_OUT_DIR --table   # the ratios as a Markdown table
Needs matplotlib (not for --table)."""
import json
import pathlib
import re
import sys
from collections import defaultdict



def from_compare(path):
    """{(model, test): {tool: {threads: mean t/s}}} from a compare-llamacpp.sh result."""
    data = json.loads(pathlib.Path(path).read_text())
    out = defaultdict(lambda: defaultdict(dict))
    for r in data["speed"]:
        for tool, key in (("llama.cpp", "llamacpp"), ("edgelm", "edgelm")):
            out[(f"SmolLM2-135M {r['type']}", r["test"])][tool][r["threads"]] = sum(r[key]) / len(r[key])
    return out, f"{data['machine']}, {data['cpus']} CPUs, {data['date']}"


def from_device(folder):
    """The same from device-scaling.sh's llama-<model>-r<round>.json / edgelm-<model>-r<round>.json
    files (older sittings: one file per program and model, no round): the mean of every sample
    of every round."""
    samples = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    folder = pathlib.Path(folder)
    for f in sorted(folder.glob("llama-*.json")) + sorted(folder.glob("edgelm-*.json")):
        program, name = f.stem.split("-", 1)
        model = re.sub(r"-r\d+$", "", name)
        data = json.loads(f.read_text())
        if program == "llama":
            for r in data:
                test = f"pp{r['n_prompt']}" if r["n_prompt"] else f"tg{r['n_gen']}"
                samples[(model, test)]["llama.cpp"][r["n_threads"]] += r["samples_ts"]
        else:
            for r in data["results"]:
                samples[(model, r["test"])]["edgelm"][r["threads"]] += r["samples_ts"]
    out = defaultdict(lambda: defaultdict(dict))
    for key, tools in samples.items():
        for tool, by_threads in tools.items():
            for threads, ts in by_threads.items():
                out[key][tool][threads] = sum(ts) / len(ts)
    machine = (folder / "machine.txt").read_text().splitlines()[0] if (folder / "machine.txt").exists() else ""
    return out, machine


def ratio_table(data):
    """Markdown rows of edgelm ÷ llama.cpp by thread count."""
    threads = sorted({t for tools in data.values() for t in tools.get("edgelm", {})})
    lines = ["| model | test | " + " | ".join(map(str, threads)) + " threads |",
             "|---|---|" + "---:|" * len(threads)]
    for (model, test), tools in sorted(data.items()):
        ours, theirs = tools.get("edgelm", {}), tools.get("llama.cpp", {})
        cells = [f"{ours[t] / theirs[t]:.2f}" if t in ours and t in theirs else "–" for t in threads]
        lines.append(f"| {model} | {test} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(src, dst):
    data, subtitle = from_compare(src) if src.endswith(".json") else from_device(src)
    if dst == "--table":
        print(ratio_table(data))
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted(data)
    cols = 2
    rows = (len(keys) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 3.4 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        for tool, style in (("llama.cpp", "s--"), ("edgelm", "o-")):
            pts = sorted(data[key][tool].items())
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=tool)
        ax.set_title(f"{key[0]}: {key[1]}")
        ax.set_xlabel("threads")
        ax.set_ylabel("tokens/s")
        ax.set_xscale("log", base=2)
        threads = sorted({t for tool in data[key].values() for t in tool})
        ax.set_xticks(threads, [str(t) for t in threads])
        ax.grid(alpha=0.3)
        ax.legend()
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.suptitle(f"edgelm vs llama.cpp (AVX2 builds) — {subtitle}", fontsize=10)
    fig.tight_layout()
    pathlib.Path(dst).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(dst, dpi=110)
    print(f"wrote {dst}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
