#!/usr/bin/env python3
"""Load test for `turbine serve` (or any OpenAI-compatible server): N concurrent streaming
clients send chat requests back to back for a fixed time; prints requests/s, output tokens/s,
time to first token and inter-token latency (p50/p99), and failed requests.

What it sends is what chat clients send: every request carries the same system prompt
(SYSTEM, about 150 tokens; --system-prompt '' leaves it out) and a user question that no other
request of the run repeats (QUESTIONS x TOPICS, taken in turn). So a server can reuse the
cached system prompt but never a whole earlier prompt.

    .venv/bin/python tests/server/bench_serve.py --url http://127.0.0.1:8080 -n 8 -d 60

Without --url it starts `turbine serve` itself (TURBINE_BIN or target/release/turbine) on
SmolLM2 with -np equal to the number of clients. Output tokens are counted from the server's
`usage` (stream_options.include_usage), so they are tokens, not chunks.
"""

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import LIBRARY_SYSTEM as SYSTEM  # noqa: E402

QUESTIONS = [
    "Can you explain {} to a ten-year-old?",
    "What is the most surprising fact about {}?",
    "Write a short poem about {}.",
    "Which book would you recommend to learn about {}?",
    "Give me three questions to ask an expert on {}.",
    "Summarize the history of {} in a few sentences.",
    "What are common misconceptions about {}?",
    "How would you start a school project on {}?",
]

TOPICS = [
    "volcanoes", "the water cycle", "honey bees", "black holes", "the Roman empire",
    "photosynthesis", "chess openings", "the printing press", "coral reefs", "rainbows",
    "electric cars", "the human heart", "ancient Egypt", "glaciers", "the internet",
    "dinosaurs", "tides", "the violin", "bread baking", "lighthouses", "migrating birds",
    "the moon landing", "earthquakes", "origami", "the Silk Road", "recycling plastic",
    "octopuses", "the Olympic games", "wind turbines", "the Great Wall of China",
]


def questions():
    """Every question of QUESTIONS x TOPICS once, topics varying fastest."""
    return [q.format(t) for q in QUESTIONS for t in TOPICS]


def percentile(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok = 0
        self.failed = 0
        self.errors = []
        self.tokens = 0
        self.ttft = []
        self.itl = []


def one_request(url, headers, model, system, prompt, max_tokens, stats):
    messages = [{"role": "system", "content": system}] if system else []
    body = {
        "model": model,
        "messages": messages + [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0.7,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    t0 = time.perf_counter()
    first = None
    last = None
    gaps = []
    usage = None
    finished = False
    try:
        with requests.post(
            url + "/v1/chat/completions", json=body, headers=headers, stream=True, timeout=600
        ) as r:
            if r.status_code != 200:
                raise RuntimeError(f"HTTP {r.status_code}: {r.text[:200]}")
            for line in r.iter_lines():
                if not line.startswith(b"data: "):
                    continue
                data = line[6:]
                if data == b"[DONE]":
                    finished = True
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    raise RuntimeError(chunk["error"]["message"])
                if chunk.get("usage"):
                    usage = chunk["usage"]
                for c in chunk.get("choices", []):
                    if c.get("delta", {}).get("content"):
                        now = time.perf_counter()
                        if first is None:
                            first = now
                        else:
                            gaps.append(now - last)
                        last = now
        if not finished or usage is None:
            raise RuntimeError("stream ended without [DONE] and usage")
    except Exception as e:  # counted, reported
        with stats.lock:
            stats.failed += 1
            stats.errors.append(str(e))
        return
    with stats.lock:
        stats.ok += 1
        stats.tokens += usage["completion_tokens"]
        if first is not None:
            stats.ttft.append(first - t0)
        stats.itl.extend(gaps)


def run(url, api_key, model, system, clients, duration, max_tokens):
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    stats = Stats()
    stop_at = time.perf_counter() + duration
    pool = questions()
    taken = iter(range(10**9))
    take_lock = threading.Lock()

    def client(i):
        while time.perf_counter() < stop_at:
            with take_lock:
                n = next(taken)
            if n >= len(pool):
                break  # every question asked once
            one_request(url, headers, model, system, pool[n], max_tokens, stats)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    return stats, elapsed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", help="server base URL (default: start turbine serve)")
    ap.add_argument("--api-key")
    ap.add_argument("--model", default="default")
    ap.add_argument("-n", "--clients", type=int, default=4)
    ap.add_argument("-d", "--duration", type=float, default=60.0, help="seconds")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--system-prompt", default=SYSTEM, help="system message of every request ('' for none)")
    ap.add_argument("-c", "--ctx-size", type=int, default=0, help="with no --url: -c (default 1024 per client)")
    ap.add_argument("--serve-arg", action="append", default=[], help="with no --url: extra flag for turbine serve (repeatable)")
    ap.add_argument("--json", action="store_true", help="print one JSON line")
    args = ap.parse_args()

    server = None
    url = args.url
    if url is None:
        from conftest import Server, smollm2_args

        ctx = args.ctx_size or 1024 * args.clients
        server = Server(smollm2_args("-c", ctx, "-np", args.clients, *args.serve_arg))
        url = server.url
    try:
        stats, elapsed = run(
            url, args.api_key, args.model, args.system_prompt, args.clients, args.duration, args.max_tokens
        )
    finally:
        if server:
            server.stop()
    result = {
        "clients": args.clients,
        "seconds": round(elapsed, 1),
        "requests_ok": stats.ok,
        "requests_failed": stats.failed,
        "requests_per_s": round(stats.ok / elapsed, 3),
        "output_tokens_per_s": round(stats.tokens / elapsed, 1),
        "ttft_p50_ms": round(percentile(stats.ttft, 50) * 1e3, 1),
        "ttft_p99_ms": round(percentile(stats.ttft, 99) * 1e3, 1),
        "itl_p50_ms": round(percentile(stats.itl, 50) * 1e3, 1),
        "itl_p99_ms": round(percentile(stats.itl, 99) * 1e3, 1),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>22}: {v}")
        if stats.errors:
            print("errors (first 5):")
            for e in stats.errors[:5]:
                print("  ", e)
    sys.exit(1 if stats.failed else 0)


if __name__ == "__main__":
    main()
