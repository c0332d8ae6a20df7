"""`turbine serve` against the real `openai` client and raw HTTP, on SmolLM2-135M-Instruct.

Expected texts and token ids come from llama.cpp (see crates/models/tests/smollm2.rs and
ASSETS.md): greedy " Paris.\\n\\nThe" after "The capital of France is", whose ids are
[504, 3575, 282, 4649, 314]; the first token's log-prob of " Paris" is -0.259.
"""

import json
import os
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
import requests

from pathlib import Path

from conftest import LIBRARY_SYSTEM, ROOT, SMOLLM2, Server, require, smollm2_args

PROMPT_IDS = [504, 3575, 282, 4649, 314]
PROMPT = "The capital of France is"
# SmolLM2-135M (Q4_1) answers the bare question with a French monument (llama.cpp does too);
# asked for one word it says "The capital of France is Paris."
CAPITAL_Q = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


def wait_until(cond, timeout=20.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout} s")


def all_slots_free(server, model=None):
    """No slot is running a request (idle slots may keep their prompt caches)."""
    q = f"?model={model}" if model else ""
    slots = server.get("/slots" + q).json()
    return all(not s["is_processing"] for s in slots)


# ---- generation ---------------------------------------------------------------------------


def test_chat_non_streaming_says_paris(smol):
    r = smol.client().chat.completions.create(
        model="smol", messages=CAPITAL_Q, temperature=0, max_tokens=40
    )
    choice = r.choices[0]
    assert "Paris" in choice.message.content, choice.message.content
    assert choice.message.role == "assistant"
    assert choice.finish_reason in ("stop", "length")
    assert r.object == "chat.completion"
    assert r.usage.prompt_tokens > 5
    assert r.usage.completion_tokens >= 1
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_chat_streaming_says_paris(smol):
    stream = smol.client().chat.completions.create(
        model="smol",
        messages=CAPITAL_Q,
        temperature=0,
        max_tokens=40,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, reasons, usage = "", [], None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            if c.delta.content:
                text += c.delta.content
            if c.finish_reason:
                reasons.append(c.finish_reason)
    assert "Paris" in text, text
    assert len(reasons) == 1 and reasons[0] in ("stop", "length")
    assert usage is not None and usage.completion_tokens >= 1
    # Streaming and non-streaming give the same text at temperature 0.
    whole = smol.client().chat.completions.create(
        model="smol", messages=CAPITAL_Q, temperature=0, max_tokens=40
    )
    assert whole.choices[0].message.content == text


def test_completion_matches_llama_cpp_greedy(smol):
    r = smol.client().completions.create(
        model="smol", prompt=PROMPT, max_tokens=5, temperature=0, logprobs=3
    )
    c = r.choices[0]
    assert c.text == " Paris.\n\nThe", repr(c.text)
    assert c.finish_reason == "length"
    assert r.usage.prompt_tokens == len(PROMPT_IDS)
    assert c.logprobs.tokens[0] == " Paris"
    assert abs(c.logprobs.token_logprobs[0] - (-0.259)) < 0.15
    assert list(c.logprobs.top_logprobs[0].keys())[0] == " Paris"
    assert "".join(c.logprobs.tokens) == c.text


def golden(n_tokens, n_top, *prompts):
    """llama.cpp's greedy outputs (scripts/reference/llamacpp_golden.py, xllamacpp)."""
    python = Path(os.environ.get("TURBINE_PYTHON", ROOT / ".venv" / "bin" / "python"))
    require(python, "Python venv with xllamacpp")
    out = subprocess.run(
        [str(python), str(ROOT / "scripts" / "reference" / "llamacpp_golden.py"), str(SMOLLM2),
         str(n_tokens), str(n_top), *prompts],
        capture_output=True, text=True, timeout=600,
    )
    if out.returncode != 0:
        pytest.fail(f"llamacpp_golden.py failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout)["runs"]


def stable_ids(run, margin=0.25):
    """The golden ids up to the first near-tie (top-2 log-probs closer than `margin`): past
    one, rounding differences between two correct engines may pick either token."""
    ids = []
    for tid, top in zip(run["ids"], run["top"]):
        if len(top) > 1 and top[0][1] - top[1][1] < margin:
            break
        ids.append(tid)
    return ids


def test_chat_and_completion_match_llama_cpp_server(smol):
    # Prompts whose greedy path has clear margins in llama.cpp (no flips from rounding).
    chats = [CAPITAL_Q[0]["content"], "What is 2+2?"]
    texts = ["The capital of France is"]
    runs = golden(12, 2, *["chat:" + c for c in chats], *texts)
    client = smol.client()
    for run in runs:
        if run["prompt"].startswith("chat:"):
            r = client.chat.completions.create(
                model="smol",
                messages=[{"role": "user", "content": run["prompt"][5:]}],
                temperature=0,
                max_tokens=12,
            )
            ours = r.choices[0].message.content
            # Same template rendering and tokenization: the same prompt tokens.
            assert r.usage.prompt_tokens == run["prompt_tokens"], run["prompt"]
        else:
            r = client.completions.create(
                model="smol", prompt=run["prompt"], temperature=0, max_tokens=12
            )
            ours = r.choices[0].text
        ids = stable_ids(run)
        assert len(ids) >= 5, run
        want = smol.post("/detokenize", json={"tokens": ids}).json()["content"]
        want = want.split("<|im_end|>")[0]  # the end-of-turn token is not part of the text
        assert ours.startswith(want), (run["prompt"], ours, run["text"])


def test_completion_from_token_ids(smol):
    r = smol.client().completions.create(
        model="smol", prompt=PROMPT_IDS, max_tokens=2, temperature=0
    )
    assert r.choices[0].text == " Paris."


def test_chat_logprobs(smol):
    r = smol.client().chat.completions.create(
        model="smol",
        messages=CAPITAL_Q,
        temperature=0,
        max_tokens=5,
        logprobs=True,
        top_logprobs=2,
    )
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens or len(content) == r.usage.completion_tokens - 1
    for entry in content:
        assert entry.logprob <= 0
        assert len(entry.top_logprobs) == 2
        # Greedy: the chosen token is the most likely one.
        assert entry.top_logprobs[0].token == entry.token


def test_stop_string_is_cut_and_never_leaks(smol):
    client = smol.client()
    r = client.completions.create(
        model="smol", prompt=PROMPT, max_tokens=10, temperature=0, stop=["."]
    )
    assert r.choices[0].text == " Paris"
    assert r.choices[0].finish_reason == "stop"
    # A two-token stop string: the first newline must not be streamed before the match.
    pieces = []
    for chunk in client.completions.create(
        model="smol", prompt=PROMPT, max_tokens=10, temperature=0, stop=["\n\n"], stream=True
    ):
        pieces.append(chunk.choices[0].text)
    assert "".join(pieces) == " Paris."
    assert all("\n" not in p for p in pieces), pieces


def test_seed_reproduces_sampled_text(smol):
    client = smol.client()
    kw = dict(model="smol", prompt="Once upon a time", max_tokens=16, temperature=1.0, seed=1234)
    a = client.completions.create(**kw).choices[0].text
    b = client.completions.create(**kw).choices[0].text
    assert a == b


def test_max_tokens_gives_length(smol):
    r = smol.client().chat.completions.create(
        model="smol", messages=CAPITAL_Q, temperature=0, max_tokens=1
    )
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 1


def test_sixteen_clients_get_their_solo_text(smol):
    prompts = [
        "The capital of France is",
        "Write a haiku about the sea.",
        "List three colors.",
        "Say hello.",
    ]
    client = smol.client()

    def chat(p):
        r = client.chat.completions.create(
            model="smol",
            messages=[{"role": "user", "content": p}],
            temperature=0,
            max_tokens=8,
        )
        return r.choices[0].message.content

    solo = {p: chat(p) for p in prompts}

    def client_run(i):
        # Each client runs 4 requests in a row, starting at a different prompt.
        return [(p, chat(p)) for p in prompts[i % 4 :] + prompts[: i % 4]]

    with ThreadPoolExecutor(16) as pool:
        results = [r for rs in pool.map(client_run, range(16)) for r in rs]
    assert len(results) == 64
    for p, text in results:
        assert text == solo[p], f"{p!r}: {text!r} != solo {solo[p]!r}"
    wait_until(lambda: all_slots_free(smol), what="slots free after the burst")


# ---- prompt cache ---------------------------------------------------------------------------

# The shared server's -ub. A reused prompt must give exactly the cold output, so the server
# keeps either the whole common prefix (when its forward pass is chunk invariant) or whole
# -ub chunks of the slot's earlier prompt; these tests hold in both cases.
UB = 64


def whole_chunks(n):
    return n // UB * UB


def ask(server, messages, cache_prompt=True, max_tokens=24):
    return server.client().chat.completions.create(
        model="smol",
        messages=messages,
        temperature=0,
        max_tokens=max_tokens,
        extra_body={"cache_prompt": cache_prompt},
    )


def system_and(question):
    return [{"role": "system", "content": LIBRARY_SYSTEM}, {"role": "user", "content": question}]


def test_a_shared_system_prompt_is_reused_and_the_text_is_the_cold_text(smol):
    first = ask(smol, system_and("When is the library open on Saturdays?"))
    assert first.usage.prompt_tokens > 120
    second_q = system_and("How many books can I borrow at once?")
    # cache_prompt: false evaluates the whole prompt, as a cold server does.
    cold = ask(smol, second_q, cache_prompt=False)
    assert cold.usage.prompt_tokens_details.cached_tokens == 0
    warm = ask(smol, second_q)
    # The system prompt (and the template around it) came from a slot's cache.
    common = smol.post("/tokenize", json={"content": LIBRARY_SYSTEM}).json()["tokens"]
    assert warm.usage.prompt_tokens_details.cached_tokens >= whole_chunks(len(common)) > 0, warm.usage
    assert warm.usage.prompt_tokens == cold.usage.prompt_tokens
    assert warm.choices[0].message.content == cold.choices[0].message.content
    slots = smol.get("/slots").json()
    assert any(x["n_cached"] >= warm.usage.prompt_tokens for x in slots), slots


def test_the_next_turn_reuses_the_conversation_and_the_text_is_the_cold_text(smol):
    turn1 = system_and("Suggest a book about the sea.")
    a = ask(smol, turn1)
    turn2 = turn1 + [
        {"role": "assistant", "content": a.choices[0].message.content},
        {"role": "user", "content": "And one about mountains?"},
    ]
    warm = ask(smol, turn2)
    cold = ask(smol, turn2, cache_prompt=False)
    # At least the first turn's prompt was cached (the answer is re-tokenized from text).
    assert warm.usage.prompt_tokens_details.cached_tokens >= whole_chunks(a.usage.prompt_tokens)
    assert warm.choices[0].message.content == cold.choices[0].message.content


def test_a_cached_prompt_streams_its_cached_tokens_in_usage(smol):
    q = system_and("Name a planet.")
    first = ask(smol, q)
    stream = smol.client().chat.completions.create(
        model="smol",
        messages=q,
        temperature=0,
        max_tokens=4,
        stream=True,
        stream_options={"include_usage": True},
    )
    usage = [c.usage for c in stream if c.usage is not None]
    assert len(usage) == 1
    # The whole prompt was cached (at least its last token is evaluated again, for logits).
    n = usage[0].prompt_tokens
    assert n == first.usage.prompt_tokens
    assert whole_chunks(n - 1) <= usage[0].prompt_tokens_details.cached_tokens <= n - 1


def test_prompt_cache_metrics(smol):
    q = system_and("Name a planet.")
    ask(smol, q)
    cached = smol.metric("turbine_prompt_tokens_cached_total")
    evaluated = smol.metric("turbine_prompt_tokens_total")
    r = ask(smol, q)
    c = r.usage.prompt_tokens_details.cached_tokens
    assert c > 0
    # Counted apart: the cached tokens, and those evaluated.
    assert smol.metric("turbine_prompt_tokens_cached_total") == cached + c
    assert smol.metric("turbine_prompt_tokens_total") == evaluated + r.usage.prompt_tokens - c
    assert smol.metric("turbine_queue_wait_seconds_count") > 0
    assert smol.metric("turbine_prompt_eval_seconds_count") > 0


# ---- errors ---------------------------------------------------------------------------------


def test_malformed_json_is_400(smol):
    r = smol.post("/v1/chat/completions", data=b'{"messages": [', headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error"
    assert "JSON" in err["message"]


@pytest.mark.parametrize(
    "body,field",
    [
        ({"messages": CAPITAL_Q, "temperature": "hot"}, "temperature"),
        ({"messages": CAPITAL_Q, "max_tokens": 0}, "max_tokens"),
        ({"messages": CAPITAL_Q, "top_p": 2}, "top_p"),
        ({"messages": CAPITAL_Q, "stop": 7}, "stop"),
        ({"messages": "hi"}, "messages"),
        ({"messages": [{"content": "no role"}]}, "messages[0].role"),
        ({}, "messages"),
    ],
)
def test_bad_parameter_names_the_field(smol, body, field):
    r = smol.post("/v1/chat/completions", json=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == field
    assert field in err["message"]


def test_bad_parameter_through_openai_client(smol):
    with pytest.raises(openai.BadRequestError) as e:
        smol.client().chat.completions.create(model="smol", messages=CAPITAL_Q, top_logprobs=3)
    assert "top_logprobs" in str(e.value)


def test_context_overflow_is_400_before_any_work(smol):
    # -c 4096 over 4 slots: 1024 tokens a slot.
    long_prompt = "word " * 3000
    before = smol.metric("turbine_prompt_tokens_total")
    t = time.time()
    with pytest.raises(openai.BadRequestError) as e:
        smol.client().completions.create(model="smol", prompt=long_prompt, max_tokens=4)
    assert time.time() - t < 5
    assert "context" in str(e.value)
    assert smol.metric("turbine_prompt_tokens_total") == before


def test_request_size_limit(smol):
    r = smol.post("/v1/completions", json={"prompt": "x" * (17 << 20)})
    assert r.status_code == 413
    assert r.json()["error"]["message"].startswith("the request body exceeds")


def test_unknown_route_is_openai_error(smol):
    r = smol.get("/v1/nope")
    assert r.status_code == 404
    assert r.json()["error"]["type"] == "not_found_error"


def test_api_key():
    s = Server(smollm2_args("-c", "512"), api_key="sekrit")
    try:
        with pytest.raises(openai.AuthenticationError):
            s.client(api_key="wrong").models.list()
        r = requests.get(s.url + "/v1/models")
        assert r.status_code == 401
        assert r.json()["error"]["type"] == "authentication_error"
        # /health stays open; the right key works.
        assert requests.get(s.url + "/health").status_code == 200
        models = s.client().models.list()
        assert len(models.data) == 1
    finally:
        s.stop()


# ---- cancellation and shutdown --------------------------------------------------------------


def test_disconnect_mid_stream_frees_its_pages():
    # A server of its own: no other request's prompt cache holds pages.
    s = Server(smollm2_args("-c", "1024", "-np", "2"))
    try:
        pages_total = s.metric("turbine_kv_pages_free")
        body = {
            "messages": [{"role": "user", "content": "Tell me a very long story."}],
            "max_tokens": 2000,
            "stream": True,
            "ignore_eos": True,
        }
        r = requests.post(s.url + "/v1/chat/completions", json=body, stream=True, timeout=60)
        # Keep the line iterator: dropping it closes the connection, which cancels.
        lines = r.iter_lines()
        got = 0
        for line in lines:
            if line.startswith(b"data: ") and b"content" in line:
                got += 1
                if got >= 5:
                    break
        assert got >= 5
        # The slot holds the conversation now.
        assert s.metric("turbine_kv_cells_used") > 0
        assert s.metric("turbine_kv_pages_used") > 0
        r.close()  # the client goes away mid-stream
        wait_until(lambda: all_slots_free(s), what="slot freed after disconnect")
        # A cancelled request keeps no prompt cache: every page is back.
        wait_until(lambda: s.metric("turbine_kv_cells_used") == 0, what="cells returned")
        assert all(x["n_cached"] == 0 for x in s.get("/slots").json())
        assert s.metric("turbine_kv_pages_used") == 0
        assert s.metric("turbine_kv_pages_free") == pages_total
        assert s.metric("turbine_requests_cancelled_total") == 1
    finally:
        s.stop()


def test_sigterm_finishes_in_flight_requests():
    s = Server(smollm2_args("-c", "1024", "-np", "2"))
    results = {}

    def stream():
        text = ""
        try:
            for chunk in s.client().completions.create(
                model="smol", prompt=PROMPT, max_tokens=40, temperature=0, stream=True
            ):
                text += chunk.choices[0].text
            results["text"] = text
        except Exception as e:  # an error event also ends the stream cleanly
            results["error"] = str(e)

    t = threading.Thread(target=stream)
    t.start()
    wait_until(lambda: any(x["is_processing"] for x in s.get("/slots").json()), what="request running")
    code = s.stop(timeout=30)
    t.join(30)
    assert code == 0, s.output()
    # The request had 10 s to finish, plenty for 40 tokens: it completed.
    assert results.get("text", "").startswith(" Paris"), (results, s.output())
    assert "stopped" in s.output()
    with pytest.raises(requests.ConnectionError):
        requests.get(s.url + "/health", timeout=2)


# ---- info endpoints -------------------------------------------------------------------------


def test_tokenize_matches_llama_cpp(smol):
    r = smol.post("/tokenize", json={"content": PROMPT})
    assert r.json()["tokens"] == PROMPT_IDS
    pieces = smol.post("/tokenize", json={"content": PROMPT, "with_pieces": True}).json()["tokens"]
    assert [p["id"] for p in pieces] == PROMPT_IDS
    assert "".join(p["piece"] for p in pieces) == PROMPT
    assert smol.post("/detokenize", json={"tokens": PROMPT_IDS}).json()["content"] == PROMPT
    r = smol.post("/detokenize", json={"tokens": [10**9]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "tokens[0]"


def test_models_props_slots_metrics(smol):
    models = smol.client().models.list()
    assert [m.id for m in models.data] == ["SmolLM2-135M-Instruct.Q4_1"]
    props = smol.get("/props").json()
    assert props["total_slots"] == 4
    assert props["default_generation_settings"]["n_ctx"] == 1024
    assert "im_start" in props["chat_template"]
    slots = smol.get("/slots").json()
    assert len(slots) == 4 and all(s["n_ctx"] == 1024 for s in slots)
    text = smol.get("/metrics").text
    for name in [
        "turbine_http_requests_total",
        "turbine_prompt_tokens_total",
        "turbine_generated_tokens_total",
        "turbine_time_to_first_token_seconds_bucket",
        "turbine_inter_token_latency_seconds_bucket",
        "turbine_kv_pages_used",
        "turbine_kv_pages_free",
        "turbine_memory_bytes",
    ]:
        assert name in text, name
    # The memory gauges are the plan's per-role totals.
    mem = {}
    for line in text.splitlines():
        if line.startswith("turbine_memory_bytes{"):
            role = line.split('role="')[1].split('"')[0]
            mem[role] = mem.get(role, 0) + int(line.rsplit(" ", 1)[1])
    assert mem["model"] > 50 << 20 and mem["context"] > 0 and mem["compute"] > 0


def test_timeout_on_a_stalled_request_body():
    s = Server(smollm2_args("-c", "256", "--timeout", "1"))
    try:
        with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
            c.sendall(
                b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100\r\n\r\n{\"prompt\": "
            )
            t = time.time()
            reply = c.recv(65536).decode(errors="replace")
            waited = time.time() - t
        assert reply.startswith("HTTP/1.1 408"), reply
        assert "--timeout" in reply
        assert 0.5 < waited < 8
    finally:
        s.stop()
