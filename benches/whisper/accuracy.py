#!/usr/bin/env python3
"""Accuracy table of `edgelm transcribe` (greedy and beam 5, one row per packed model) and faster-whisper int8
(tests/fixtures/whisper/transcripts.json) over JFK and the espeak-ng sentences: word error rate against the
truth and against faster-whisper float32 with the same beam size (benches/whisper/wer.py), and how many
transcripts are character for character faster-whisper float32's. Standard library only.

    python3 benches/whisper/accuracy.py OUT_DIR EDGELM_BIN NAME=MODEL.edgelm [NAME=MODEL.edgelm ...] [-t 2]

Each transcript is saved as OUT_DIR/NAME-beamB/<audio>.json (kept: a rerun reuses them); prints a Markdown table.
"""

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
REFS = os.path.join(ROOT, "tests", "fixtures", "whisper", "transcripts.json")
MODELS = os.environ.get("EDGELM_MODELS", os.path.expanduser("~/.cache/edgelm/models"))


def wer(ref_config, hyp):
    """wer.py's JSON for hypotheses `hyp` (["--hyp-dir", D] or ["--hyp-config", C])."""
    cmd = [sys.executable, os.path.join(HERE, "wer.py"), "--json", "--ref-config", ref_config] + hyp
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out")
    p.add_argument("edgelm")
    p.add_argument("models", nargs="+", help="NAME=PATH of a packed Whisper model")
    p.add_argument("-t", "--threads", default="2")
    args = p.parse_args()
    refs = json.load(open(REFS))
    rows = []
    for beam in (1, 5):
        fw = "float32_greedy" if beam == 1 else "float32_beam5"
        for spec in args.models:
            name, path = spec.split("=", 1)
            out = os.path.join(args.out, f"{name}-beam{beam}")
            same = 0
            for audio in refs["audio"]:
                dst = os.path.join(out, audio[: -len(".wav")] + ".json")
                if not os.path.exists(dst):
                    os.makedirs(os.path.dirname(dst), exist_ok=True)
                    cmd = [args.edgelm, "transcribe", path, os.path.join(MODELS, "audio", audio), "--json",
                           "-t", args.threads, "--beam", str(beam)]
                    run = subprocess.run(cmd, check=True, capture_output=True, text=True)
                    open(dst, "w").write(run.stdout)
                same += json.load(open(dst))["text"] == refs["results"][fw][audio]["text"]
            hyp = ["--hyp-dir", out]
            rows.append((f"edgelm {name}", beam, wer("truth", hyp), wer(fw, hyp), same))
        int8 = f"int8_{'greedy' if beam == 1 else 'beam5'}"
        hyp = ["--hyp-config", int8]
        same = sum(refs["results"][int8][a]["text"] == refs["results"][fw][a]["text"] for a in refs["audio"])
        rows.append(("faster-whisper int8", beam, wer("truth", hyp), wer(fw, hyp), same))
        hyp = ["--hyp-config", fw]
        rows.append(("faster-whisper float32", beam, wer("truth", hyp), None, len(refs["audio"])))
    n = len(refs["audio"])
    print("| decoder | beam | WER vs truth | WER vs faster-whisper float32 (same beam) | texts identical to float32 |")
    print("|---|---|---|---|---|")
    for name, beam, truth, fw, same in rows:
        pct = lambda w: f"{100 * w['wer']:.2f}% ({w['errors']}/{w['words']})"  # noqa: E731
        print(f"| {name} | {beam} | {pct(truth)} | {pct(fw) if fw else '—'} | {same}/{n} |")


if __name__ == "__main__":
    main()
