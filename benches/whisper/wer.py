#!/usr/bin/env python3
"""Word error rate of transcripts against faster-whisper's references (tests/fixtures/whisper/transcripts.json)
or against the sentences the espeak-ng audio was made from. Standard library only.

Hypotheses come from one of:
  --cmd 'target/release/edgelm transcribe whisper.edgelm {audio} --json'
        runs the command for every audio file ({audio} is replaced by its path) and reads the JSON it prints
        (its "text", or the concatenated "segments"[].text); plain text output is accepted too
  --hyp-dir DIR
        DIR/jfk.json, DIR/sentences/01.json ... (same JSON or text), e.g. saved --json outputs
  --hyp-config NAME
        another configuration of the reference file (e.g. int8_beam5: faster-whisper's int8 against f32)

References: --ref-config NAME (default float32_greedy) or --ref-config truth (sentences.txt; JFK's known words).

Normalization (both sides; Whisper's English normalizer in small): lowercase, bracketed and parenthesized
text removed, hyphens and slashes as spaces, apostrophes dropped ("headlight's" -> "headlights"), other
punctuation removed, numbers written as words ("21" -> "twenty one", "21st" -> "twenty first",
"3.5" -> "three point five", "%" -> "percent"), whitespace collapsed.

Prints one line per file that differs, then the WER over the set (word-level Levenshtein distance summed over
files / reference words summed) and exact-match count; --json prints the same as JSON.

    python3 benches/whisper/wer.py --hyp-config int8_beam5
    python3 benches/whisper/wer.py --ref-config truth --hyp-config float32_beam5
    python3 benches/whisper/wer.py --cmd 'target/release/edgelm transcribe base-q8.edgelm {audio} --json'
"""

import argparse
import json
import os
import re
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "whisper")
MODELS = os.environ.get("EDGELM_MODELS", os.path.expanduser("~/.cache/edgelm/models"))
JFK_TRUTH = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."

ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen " \
       "seventeen eighteen nineteen".split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
ORDINAL = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth", "nine": "ninth",
           "twelve": "twelfth"}


def number_words(n):
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    for size, name in ((10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred")):
        if n >= size:
            rest = n % size
            return number_words(n // size) + " " + name + ("" if rest == 0 else " " + number_words(rest))
    raise AssertionError(n)


def ordinal_words(n):
    words = number_words(n).split()
    last = words[-1]
    words[-1] = ORDINAL.get(last, last[:-1] + "ieth" if last.endswith("y") else last + "th")
    return " ".join(words)


def spell_number(match):
    whole, frac, suffix = match.group(1), match.group(2), match.group(3)
    n = int(whole.replace(",", ""))
    if suffix:
        return " " + ordinal_words(n) + " "
    out = number_words(n)
    if frac:
        out += " point " + " ".join(ONES[int(d)] for d in frac)
    return " " + out + " "


def normalize(text):
    text = text.lower()
    text = re.sub(r"[<\[][^>\]]*[>\]]", " ", text)
    text = re.sub(r"\([^)]*\)", " ", text)
    text = text.replace("%", " percent ").replace("&", " and ")
    text = re.sub(r"(\d[\d,]*)(?:\.(\d+))?(st|nd|rd|th)?\b", spell_number, text)
    text = re.sub(r"[-/]", " ", text)
    text = re.sub(r"['’`]", "", text)
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.split())


def edit_distance(ref, hyp):
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def text_of(output):
    """The transcript in a --json output (or plain text)."""
    try:
        doc = json.loads(output)
    except json.JSONDecodeError:
        return output.strip()
    if isinstance(doc, dict) and isinstance(doc.get("text"), str):
        return doc["text"]
    if isinstance(doc, dict) and isinstance(doc.get("segments"), list):
        return "".join(s.get("text", "") for s in doc["segments"])
    sys.exit(f"no text in the JSON output: {output[:200]}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--refs", default=os.path.join(FIXTURES, "transcripts.json"))
    p.add_argument("--ref-config", default="float32_greedy")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--cmd")
    g.add_argument("--hyp-dir")
    g.add_argument("--hyp-config")
    p.add_argument("--only", help="regex on audio names (e.g. 'sentences')")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    refs = json.load(open(args.refs))
    names = [n for n in refs["audio"] if not args.only or re.search(args.only, n)]
    if args.ref_config == "truth":
        ref_text = {n: refs["audio"][n]["sentence"] or JFK_TRUTH for n in names}
    else:
        ref_text = {n: refs["results"][args.ref_config][n]["text"] for n in names}

    hyp_text = {}
    for n in names:
        if args.hyp_config:
            hyp_text[n] = refs["results"][args.hyp_config][n]["text"]
        elif args.hyp_dir:
            hyp_text[n] = text_of(open(os.path.join(args.hyp_dir, n[: -len(".wav")] + ".json")).read())
        else:
            audio = os.path.join(MODELS, "audio", n)
            cmd = [a.replace("{audio}", audio) for a in shlex.split(args.cmd)]
            run = subprocess.run(cmd, capture_output=True, text=True)
            if run.returncode != 0:
                sys.exit(f"{' '.join(cmd)} failed ({run.returncode}):\n{run.stderr[-2000:]}")
            hyp_text[n] = text_of(run.stdout)

    errors = words = exact = 0
    per_file = {}
    for n in names:
        r, h = normalize(ref_text[n]).split(), normalize(hyp_text[n]).split()
        d = edit_distance(r, h)
        errors, words, exact = errors + d, words + len(r), exact + (d == 0)
        per_file[n] = {"errors": d, "words": len(r), "ref": " ".join(r), "hyp": " ".join(h)}
    wer = errors / max(words, 1)
    if args.json:
        print(json.dumps({"wer": wer, "errors": errors, "words": words, "exact": exact, "files": len(names),
                          "per_file": per_file}, indent=1))
        return
    for n, f in per_file.items():
        if f["errors"]:
            print(f"{n}: {f['errors']} errors\n  ref: {f['ref']}\n  hyp: {f['hyp']}")
    print(f"WER {100 * wer:.2f}% ({errors} errors / {words} words), {exact}/{len(names)} files identical "
          f"after normalization (reference: {args.ref_config})")


if __name__ == "__main__":
    main()
