#!/usr/bin/env python3
"""How far two golden runs (llamacpp_golden.py JSON, same prompts) are apart: for each prompt,
the largest |log-prob difference| over the top-N tokens of A at the first S steps, while both
chose the same tokens (a token missing from B's top list is skipped).

usage: compare_golden.py A.json B.json [N=3] [S=5]

Used to measure llama.cpp against itself (e.g. flash attention on vs off): the spread between
two valid llama.cpp configurations is the floor under any other engine's agreement with it.
"""
import json
import sys


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    a, b = (json.load(open(p)) for p in sys.argv[1:3])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    steps = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    for ra, rb in zip(a["runs"], b["runs"]):
        assert ra["prompt"] == rb["prompt"], "different prompts"
        worst, diffs = 0.0, []
        for s in range(min(steps, len(ra["ids"]), len(rb["ids"]))):
            lb = dict((t, lp) for t, lp in rb["top"][s])
            for t, lp in ra["top"][s][:n]:
                if t in lb:
                    d = abs(lp - lb[t])
                    diffs.append(d)
                    worst = max(worst, d)
            if ra["ids"][s] != rb["ids"][s]:
                break
        mean = sum(diffs) / max(len(diffs), 1)
        print(f"{ra['prompt']!r}: top-{n} of first {steps} steps: max {worst:.3f} mean {mean:.3f} nat")


if __name__ == "__main__":
    main()
