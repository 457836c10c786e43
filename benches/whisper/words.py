#!/usr/bin/env python3
"""Word timestamps of `edgelm transcribe --word-timestamps --json` against faster-whisper float32
(tests/fixtures/whisper/word_timestamps.json, beam 5) over JFK and the espeak-ng sentences. Standard library only.

    python3 benches/whisper/words.py EDGELM_BIN MODEL.edgelm [-t 2]

Per file: whether the words are the same, the mean and largest |Δ| of their start and end times; then over all
files with the same words: mean and largest |Δ| of the times, mean |Δ| of the probabilities.
"""

import argparse
import json
import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
REFS = os.path.join(ROOT, "tests", "fixtures", "whisper", "word_timestamps.json")
MODELS = os.environ.get("EDGELM_MODELS", os.path.expanduser("~/.cache/edgelm/models"))


def words(segments):
    return [w for s in segments for w in s["words"]]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("edgelm")
    p.add_argument("model")
    p.add_argument("-t", "--threads", default="2")
    args = p.parse_args()
    refs = json.load(open(REFS))["results"]
    times, probs, same = [], [], 0
    for name, ref in refs.items():
        cmd = [args.edgelm, "transcribe", args.model, os.path.join(MODELS, "audio", name), "--json",
               "--word-timestamps", "-t", args.threads, "--beam", "5"]
        got = words(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)["segments"])
        want = words(ref["segments"])
        if [w["word"] for w in got] != [w["word"] for w in want]:
            print(f"{name}: different words: {[w['word'] for w in got]} vs {[w['word'] for w in want]}")
            continue
        same += 1
        d = [abs(g[k] - w[k]) for g, w in zip(got, want) for k in ("start", "end")]
        times += d
        probs += [abs(g["probability"] - w["probability"]) for g, w in zip(got, want)]
        print(f"{name}: {len(got)} words, mean |Δt| {sum(d) / len(d):.3f} s, max {max(d):.2f} s")
    print(f"same words in {same}/{len(refs)} files; {len(times)} times: mean |Δt| {sum(times) / len(times):.4f} s, "
          f"max {max(times):.2f} s; mean |Δprobability| {sum(probs) / len(probs):.4f}")


if __name__ == "__main__":
    main()
