"""Router mode: `turbine serve` without -m, models from a llama-server preset INI, loaded on
demand by the request's `model` field, at most --models-max at once (least recently used
unloaded first), and `/models/load` / `/models/unload`."""

import shutil
import subprocess
import time

import pytest

from conftest import SMOLLM2, Server, require, turbine_bin

QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


def write_preset(tmp_path, sections):
    model = require(SMOLLM2, "SmolLM2 model")
    text = "version = 1\n\n[*]\nthreads = 2\nparallel = 1\n"
    for name, ctx in sections:
        text += f"\n[{name}]\nmodel = {model}\nctx-size = {ctx}\n"
    path = tmp_path / "models.ini"
    path.write_text(text)
    return path


def statuses(server):
    return {m["id"]: m["status"]["value"] for m in server.get("/models").json()["data"]}


def ask(server, model):
    r = server.client().chat.completions.create(
        model=model, messages=QUESTION, temperature=0, max_tokens=12
    )
    assert r.model == model
    return r.choices[0].message.content


def test_two_presets_max_one_loads_on_demand_and_evicts(tmp_path):
    preset = write_preset(tmp_path, [("smol-a", 1024), ("smol-b", 2048)])
    s = Server(["--models-preset", preset, "--models-max", "1"])
    try:
        assert statuses(s) == {"smol-a": "unloaded", "smol-b": "unloaded"}
        text_a = ask(s, "smol-a")
        assert "Paris" in text_a
        assert statuses(s) == {"smol-a": "loaded", "smol-b": "unloaded"}
        # Its slot has the preset's context (one slot).
        assert s.get("/props?model=smol-a").json()["default_generation_settings"]["n_ctx"] == 1024

        assert "Paris" in ask(s, "smol-b")
        assert statuses(s) == {"smol-a": "unloaded", "smol-b": "loaded"}
        assert s.get("/props?model=smol-b").json()["default_generation_settings"]["n_ctx"] == 2048

        # Back to a: b is the least recently used (and the only one) and goes.
        assert ask(s, "smol-a") == text_a
        assert statuses(s) == {"smol-a": "loaded", "smol-b": "unloaded"}
        # Only the loaded model's memory is reported.
        assert s.metric("turbine_memory_bytes", model="smol-b") == 0
        assert s.metric("turbine_memory_bytes", model="smol-a") > 0
    finally:
        s.stop()


def test_lru_picks_the_least_recently_used(tmp_path):
    preset = write_preset(tmp_path, [("a", 512), ("b", 512), ("c", 512)])
    s = Server(["--models-preset", preset, "--models-max", "2"])
    try:
        ask(s, "a")
        ask(s, "b")
        ask(s, "a")  # b is now the least recently used
        ask(s, "c")
        assert statuses(s) == {"a": "loaded", "b": "unloaded", "c": "loaded"}
    finally:
        s.stop()


def test_load_unload_endpoints_and_freed_memory(tmp_path):
    preset = write_preset(tmp_path, [("smol", 1024)])
    s = Server(["--models-preset", preset, "--models-max", "1"])
    try:
        r = s.post("/models/load", json={"model": "smol"})
        assert r.status_code == 200, r.text
        planned = r.json()["memory"]["bytes"]
        planned_total = sum(sum(roles.values()) for roles in planned.values())
        listed = next(m for m in s.get("/models").json()["data"] if m["id"] == "smol")
        assert listed["status"]["value"] == "loaded"
        assert listed["memory"]["bytes"] == planned
        assert s.metric("turbine_memory_bytes", model="smol") == planned_total

        r = s.post("/models/unload", json={"model": "smol"})
        assert r.status_code == 200, r.text
        # Unloading frees exactly what the plan said the model held.
        assert r.json()["freed_bytes"] == planned_total
        assert "model" in r.json()["freed"] and "context" in r.json()["freed"]
        assert statuses(s) == {"smol": "unloaded"}
        assert s.metric("turbine_memory_bytes") == 0

        r = s.post("/models/unload", json={"model": "smol"})
        assert r.status_code == 400
        r = s.post("/models/load", json={"model": "nope"})
        assert r.status_code == 404 and r.json()["error"]["param"] == "model"
    finally:
        s.stop()


def test_unknown_and_missing_model_field(tmp_path):
    preset = write_preset(tmp_path, [("x", 512), ("y", 512)])
    s = Server(["--models-preset", preset])
    try:
        r = s.post("/v1/chat/completions", json={"model": "zzz", "messages": QUESTION})
        assert r.status_code == 404
        r = s.post("/v1/chat/completions", json={"messages": QUESTION})
        assert r.status_code == 400 and r.json()["error"]["param"] == "model"
    finally:
        s.stop()


def test_load_on_startup_and_models_dir(tmp_path):
    model = require(SMOLLM2, "SmolLM2 model")
    d = tmp_path / "dir"
    d.mkdir()
    (d / "smolly.gguf").symlink_to(model)
    preset = tmp_path / "p.ini"
    preset.write_text(f"[eager]\nmodel = {model}\nc = 512\nload-on-startup = true\nthreads = 2\n")
    s = Server(["--models-preset", preset, "--models-dir", d, "-c", "512", "-t", "2"])
    try:
        deadline = time.time() + 60
        while statuses(s).get("eager") != "loaded" and time.time() < deadline:
            time.sleep(0.1)
        assert statuses(s) == {"eager": "loaded", "smolly": "unloaded"}
        assert "Paris" in ask(s, "smolly")
    finally:
        s.stop()


def test_bad_preset_fails_at_start_with_file_and_line(tmp_path):
    p = tmp_path / "bad.ini"
    p.write_text("[m]\nmodel = x.gguf\nctx-sise = 5\n")
    out = subprocess.run(
        [str(turbine_bin()), "serve", "--models-preset", str(p), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 1
    assert f"{p}:3: unknown key `ctx-sise`" in out.stderr


@pytest.mark.skipif(
    not (shutil.which("prlimit") and shutil.which("setpriv")), reason="needs prlimit and setpriv"
)
def test_mlock_over_the_limit_is_a_clear_error():
    model = require(SMOLLM2, "SmolLM2 model")
    # Drop CAP_IPC_LOCK (root ignores RLIMIT_MEMLOCK with it) and allow 64 KiB.
    prefix = ["prlimit", "--memlock=65536:65536", "setpriv", "--inh-caps=-ipc_lock", "--bounding-set=-ipc_lock"]
    out = subprocess.run(
        prefix + [str(turbine_bin()), "serve", "-m", str(model), "--mlock", "--port", "0", "-c", "256"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1, out.stderr
    assert "RLIMIT_MEMLOCK" in out.stderr and "ulimit -l" in out.stderr, out.stderr
