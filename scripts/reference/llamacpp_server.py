#!/usr/bin/env python3
"""llama.cpp's own HTTP server (llama-server, through the xllamacpp package) on a model, for
load tests against the same client script as turbine (tests/server/bench_serve.py --url ...).

    .venv/bin/python scripts/reference/llamacpp_server.py MODEL N_PARALLEL THREADS CTX

Prints `url http://127.0.0.1:PORT` once it answers /health, then serves until killed.
"""
import sys
import time
import urllib.request

import xllamacpp as xlc


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    model, n_par, threads, ctx = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    p = xlc.CommonParams()
    p.model.path = model
    p.n_ctx = ctx
    p.n_parallel = n_par
    p.cpuparams.n_threads = threads
    p.cpuparams_batch.n_threads = threads
    server = xlc.Server(p)
    url = server.listening_address
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/health", timeout=2).read()
            break
        except Exception:
            time.sleep(0.1)
    print("url", url, flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
