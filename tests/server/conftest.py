"""Fixtures for the HTTP server tests: start the real `turbine serve` binary on a free
loopback port, wait for /health, and stop it with SIGTERM.

The binary is $TURBINE_BIN or target/release/turbine. Models come from models/ (see
scripts/fetch-models.sh). Missing assets skip the tests, unless TURBINE_REQUIRE_ASSETS=1
(CI), where they fail.
"""

import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
SMOLLM2 = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"

# A system prompt of about 150 tokens, sent with every request as chat clients do (the prompt
# cache tests and bench_serve.py).
LIBRARY_SYSTEM = (
    "You are Orbit, the assistant of a small public library. You answer questions from "
    "visitors of all ages in plain, friendly language. Keep answers short: two or three "
    "sentences unless the visitor asks for more. If a question is about a book, mention its "
    "author and the year it first appeared when you know them, and suggest one similar book. "
    "If you do not know something, say so instead of guessing, and suggest asking a librarian "
    "at the front desk. Never give medical, legal or financial advice; point to a professional "
    "instead. The library is open from nine in the morning to eight in the evening on weekdays "
    "and from ten to four on Saturdays; it is closed on Sundays. Visitors may borrow up to "
    "twelve items for three weeks and renew them twice online."
)


def require(path: Path, what: str) -> Path:
    if path.exists():
        return path
    msg = f"{what} missing: {path} (run scripts/fetch-models.sh / cargo build --release)"
    if os.environ.get("TURBINE_REQUIRE_ASSETS") == "1":
        pytest.fail(msg)
    pytest.skip(msg)


def turbine_bin() -> Path:
    return require(
        Path(os.environ.get("TURBINE_BIN", ROOT / "target" / "release" / "turbine")),
        "turbine binary",
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One `turbine serve` process."""

    def __init__(self, args, api_key=None, startup_timeout=120.0, prefix=None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_key = api_key
        self.log = tempfile.NamedTemporaryFile(
            prefix="turbine-serve-", suffix=".log", delete=False
        )
        cmd = [str(turbine_bin()), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        cmd += [str(a) for a in args]
        if api_key:
            cmd += ["--api-key", api_key]
        self.cmd = (prefix or []) + cmd
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_healthy(startup_timeout)

    def _wait_healthy(self, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"turbine serve exited with {self.proc.returncode}:\n{self.output()}"
                )
            try:
                if requests.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"turbine serve not healthy after {timeout} s:\n{self.output()}")

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def headers(self):
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def get(self, path, headers=None, **kw):
        return requests.get(
            self.url + path, headers={**self.headers(), **(headers or {})}, timeout=60, **kw
        )

    def post(self, path, headers=None, **kw):
        return requests.post(
            self.url + path, headers={**self.headers(), **(headers or {})}, timeout=300, **kw
        )

    def client(self, api_key=None, **kw):
        import openai

        return openai.OpenAI(
            base_url=self.url + "/v1",
            api_key=api_key or self.api_key or "unused",
            max_retries=0,
            timeout=300,
            **kw,
        )

    def metric(self, name: str, model=None) -> float:
        """Sum of a metric's samples (optionally those labelled with `model`)."""
        total = 0.0
        for line in self.get("/metrics").text.splitlines():
            if line.startswith("#") or not line.startswith(name):
                continue
            key, value = line.rsplit(" ", 1)
            if key != name and not key.startswith(name + "{"):
                continue
            if model is not None and f'model="{model}"' not in key:
                continue
            total += float(value)
        return total

    def stop(self, timeout=30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def smollm2_args(*extra):
    return ["-m", require(SMOLLM2, "SmolLM2 model"), "-t", "2", *extra]


@pytest.fixture(scope="session")
def smol():
    """A shared SmolLM2 server with 4 slots."""
    s = Server(smollm2_args("-c", "4096", "-np", "4", "-ub", "64"))
    yield s
    s.stop()
