#!/usr/bin/env python3
"""Load test of OpenAI-compatible servers on loopback: `edgelm serve` and `llama-server`, same
model and weights, same machine, interleaved per concurrency level in one sitting.

For each server and each concurrency C (default 1, 2, 4, 8), C clients send REQUESTS streaming
chat requests in all (a fixed mix of short, medium and long prompts cut from the GPL-3 text,
greedy, max_tokens TOKENS) and the script reports aggregate completion tokens/s, p50/p99 time
to first token, p50 time per output token, failures, and the server's peak RSS (VmHWM).
Standard library only. Prints a table and writes JSON (--out).

  python3 benches/serve_load.py --edgelm "target/release/edgelm serve M.edgelm -t 2 --parallel 4" \
      --llama "llama-server -m M.gguf -t 2 -np 4"

`--soak SECONDS` instead runs the first server under mixed traffic (streamed and whole chats,
completions, JSON-schema answers, clients that hang up mid-stream) from 4 clients for that long,
sampling its RSS every 10 s, and reports the RSS drift and any error.
"""
import argparse
import http.client
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import threading
import time
import urllib.request

GPL = "/usr/share/common-licenses/GPL-3"


def prompts(n):
    words = open(GPL, encoding="utf-8").read().split()
    mix = [12, 80, 300]  # words of text: short, medium, long prompts
    out = []
    for i in range(n):
        size, start = mix[i % 3], (i * 997) % (len(words) - 400)
        out.append("Summarize in one sentence: " + " ".join(words[start:start + size]))
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, command, port):
        self.port = port
        self.proc = subprocess.Popen(shlex.split(command) + ["--port", str(port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.2)
            if self.proc.poll() is not None:
                raise RuntimeError(f"{command} exited with {self.proc.returncode}")
        raise RuntimeError(f"{command} did not start")

    def peak_rss_mib(self):
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def one_request(port, prompt, max_tokens):
    """(ttft s, total s, completion tokens) of one streaming chat request, or an exception."""
    body = json.dumps({"model": "m", "stream": True, "max_tokens": max_tokens, "temperature": 0,
                       "stream_options": {"include_usage": True},
                       "messages": [{"role": "user", "content": prompt}]})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    t0 = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    r = conn.getresponse()
    if r.status != 200:
        raise RuntimeError(f"HTTP {r.status}: {r.read()[:200]!r}")
    ttft, tokens, pieces = None, None, 0
    for raw in r:
        line = raw.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        if chunk.get("usage"):
            tokens = chunk["usage"]["completion_tokens"]
        for c in chunk.get("choices", []):
            if c.get("delta", {}).get("content"):
                pieces += 1
                if ttft is None:
                    ttft = time.perf_counter() - t0
    total = time.perf_counter() - t0
    conn.close()
    return ttft if ttft is not None else total, total, tokens if tokens is not None else pieces


def level(port, concurrency, texts, max_tokens):
    results, errors, lock = [], [], threading.Lock()
    queue = list(texts)

    def client():
        while True:
            with lock:
                if not queue:
                    return
                p = queue.pop()
            try:
                r = one_request(port, p, max_tokens)
                with lock:
                    results.append(r)
            except Exception as e:  # noqa: BLE001 - counted as a failure
                with lock:
                    errors.append(str(e))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ttfts = sorted(r[0] for r in results)
    tpots = sorted((r[1] - r[0]) / (r[2] - 1) for r in results if r[2] > 1)
    pct = lambda xs, q: xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")  # noqa: E731
    tokens = sum(r[2] for r in results)
    return {"concurrency": concurrency, "requests": len(results), "failed": len(errors),
            "completion_tokens": tokens, "wall_s": wall, "tokens_per_s": tokens / wall,
            "ttft_p50_ms": 1e3 * pct(ttfts, 0.5), "ttft_p99_ms": 1e3 * pct(ttfts, 0.99),
            "tpot_p50_ms": 1e3 * statistics.median(tpots) if tpots else float("nan"),
            "errors": errors[:3]}


SCHEMA = {"type": "object", "properties": {"action": {"type": "string", "enum": ["on", "off"]},
          "value": {"type": "integer", "minimum": 0, "maximum": 30}}, "required": ["action", "value"]}


def mixed_request(port, i, text):
    """One request of kind i % 5; raises on any failure."""
    kind = i % 5
    if kind in (0, 1):
        one_request(port, text, 32)
        return
    if kind == 4:  # hang up after the first streamed bytes
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        body = json.dumps({"model": "m", "stream": True, "max_tokens": 200,
                           "messages": [{"role": "user", "content": text}]})
        conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        r = conn.getresponse()
        assert r.status == 200, r.status
        r.read1(64)
        conn.close()
        return
    if kind == 2:
        path, body = "/v1/completions", {"model": "m", "prompt": text, "max_tokens": 24}
    else:
        path, body = "/v1/chat/completions", {"model": "m", "max_tokens": 48, "messages": [{"role": "user", "content": text}],
                                              "response_format": {"type": "json_schema", "json_schema": {"name": "c", "schema": SCHEMA}}}
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        out = json.loads(r.read())
    if kind == 3 and out["choices"][0]["finish_reason"] == "stop":
        json.loads(out["choices"][0]["message"]["content"])


def soak(command, seconds, texts):
    s = Server(command, free_port())
    rss, errors, done, stop = [], [], [0], time.time() + seconds

    def client(k):
        i = k
        while time.time() < stop:
            try:
                mixed_request(s.port, i, texts[i % len(texts)])
                done[0] += 1
            except Exception as e:  # noqa: BLE001 - reported
                errors.append(repr(e))
            i += 4

    def rss_mib():
        for line in open(f"/proc/{s.proc.pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    t0 = time.time()
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        time.sleep(10)
        rss.append((round(time.time() - t0), rss_mib()))
        print(f"t={rss[-1][0]:5d}s RSS {rss[-1][1]:6.1f} MiB requests {done[0]} errors {len(errors)}", flush=True)
    for t in threads:
        t.join()
    s.stop()
    third = max(1, len(rss) // 3)
    early, late = [r for _, r in rss[:third]], [r for _, r in rss[-third:]]
    result = {"seconds": seconds, "requests": done[0], "errors": errors[:5], "error_count": len(errors),
              "rss_mib": rss, "rss_first_third_mean": sum(early) / len(early), "rss_last_third_mean": sum(late) / len(late),
              "exit_code": s.proc.returncode}
    print(f"soak: {done[0]} requests, {len(errors)} errors, RSS first third {result['rss_first_third_mean']:.1f} MiB, "
          f"last third {result['rss_last_third_mean']:.1f} MiB, exit {s.proc.returncode}")
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--edgelm", required=True, help="edgelm serve command line (without --port)")
    ap.add_argument("--llama", help="llama-server command line (without --port)")
    ap.add_argument("--levels", default="1,2,4,8")
    ap.add_argument("--requests", type=int, default=24, help="requests per level")
    ap.add_argument("--tokens", type=int, default=48, help="max_tokens per request")
    ap.add_argument("--out", help="write the results as JSON here")
    ap.add_argument("--soak", type=int, help="run the mixed-traffic soak of the edgelm server for this many seconds")
    a = ap.parse_args()
    if a.soak:
        result = soak(a.edgelm, a.soak, prompts(30))
        if a.out:
            with open(a.out, "w") as f:
                json.dump({"machine": os.uname().machine, "cores": os.cpu_count(), "args": vars(a), "soak": result}, f, indent=1)
        return
    servers = {"edgelm": a.edgelm}
    if a.llama:
        servers["llama.cpp"] = a.llama
    texts = prompts(a.requests)
    rows = []
    for c in [int(x) for x in a.levels.split(",")]:
        for name, cmd in servers.items():  # interleaved: both servers per level, fresh each time
            s = Server(cmd, free_port())
            try:
                one_request(s.port, "Hello", 4)  # warm-up
                r = level(s.port, c, texts, a.tokens)
                r.update(server=name, peak_rss_mib=s.peak_rss_mib())
            finally:
                s.stop()
            rows.append(r)
            print(f"{name:10} C={c}: {r['tokens_per_s']:7.1f} tok/s  TTFT p50 {r['ttft_p50_ms']:7.0f} ms "
                  f"p99 {r['ttft_p99_ms']:7.0f} ms  TPOT p50 {r['tpot_p50_ms']:6.1f} ms  "
                  f"RSS {r['peak_rss_mib']:6.0f} MiB  failed {r['failed']}", flush=True)
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"machine": os.uname().machine, "cores": os.cpu_count(), "args": vars(a), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
