"""An engine for any OpenAI-compatible ``/v1/chat/completions`` server.

Works with vLLM, llama.cpp's server, Ollama and OpenAI itself. Requests of a batch
run concurrently (asyncio + httpx); transient failures are retried with backoff;
a request that still fails becomes a row-level error, while a server that is dead,
refuses the key or lacks the model stops the run with :class:`EngineError`.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import queue
import random
import ssl
import threading
import time
from collections.abc import Sequence
from typing import Any, Literal

import httpx

from shopaug.llm.engine import Engine, EngineError, OnResult
from shopaug.llm.types import ChatRequest, ChatResponse

JsonMode = Literal["schema", "object", "off"]
#: structured-output ladder, most to least specific; a server that rejects one step
#: gets the next. "object+schema" is llama.cpp's grammar-constrained JSON object.
_LADDER = ("schema", "object+schema", "object", "off")
_START = {"schema": 0, "object": 1, "off": 3}
_RETRY_STATUS = frozenset({408, 409, 429})
_UNREACHABLE = (httpx.ConnectError, httpx.ConnectTimeout)


class _Retryable(Exception):
    """One attempt failed in a way worth another try."""

    def __init__(self, message: str, retry_after: float | None = None,
                 unreachable: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.unreachable = unreachable


class _RowError(Exception):
    """This request cannot succeed (e.g. prompt too long); other rows are unaffected."""


def _retry_after(headers: httpx.Headers) -> float | None:
    """Seconds the server asked us to wait (``Retry-After``/``retry-after-ms``), if any."""
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _rejects_format(response: httpx.Response) -> bool:
    """Did the server refuse our ``response_format``? llama-cpp-python's server says so
    with a 500 (its validation errors are not mapped to 400), others with 400/422."""
    if response.status_code not in (400, 422, 500):
        return False
    text = response.text.lower()
    if response.status_code == 500:
        return "response_format" in text
    return any(word in text for word in ("response_format", "json_schema", "json_object",
                                         "schema"))


def _snippet(response: httpx.Response, limit: int = 300) -> str:
    text = response.text.strip().replace("\n", " ")
    return text[:limit] + ("..." if len(text) > limit else "")


class OpenAICompatEngine(Engine):
    """Chat completions over HTTP, ``concurrency`` requests in flight at a time.

    ``model=None`` asks the server (``GET {base_url}/models``) and takes the first
    model. ``api_key=None`` reads the environment variable ``api_key_env``; local
    servers usually need none. ``json_mode`` picks how a request's schema is sent:
    ``"schema"`` (OpenAI ``json_schema``), ``"object"`` (``json_object``) or ``"off"``;
    if the server rejects it, the engine steps down once and remembers.
    ``extra_body`` is merged into every request (e.g. ``{"top_k": 40}`` for servers
    that accept it; OpenAI rejects unknown fields, so nothing extra is sent by default).
    """

    name = "openai"

    def __init__(self, base_url: str = "http://127.0.0.1:8000/v1", model: str | None = None,
                 api_key: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 concurrency: int = 8, timeout: float = 60.0, max_retries: int = 4,
                 backoff: float = 0.5, json_mode: JsonMode = "schema",
                 max_backoff: float = 30.0, extra_body: dict[str, Any] | None = None) -> None:
        if json_mode not in _START:
            raise ValueError(f"json_mode must be one of {sorted(_START)}, got {json_mode!r}")
        self.base_url = base_url.rstrip("/")
        self._model = model
        self.api_key_env = api_key_env
        self.api_key = api_key if api_key is not None else os.environ.get(api_key_env) or None
        self.concurrency = max(1, int(concurrency))
        self.timeout = float(timeout)
        self.max_retries = max(0, int(max_retries))
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.extra_body = dict(extra_body or {})
        self._json_step = _START[json_mode]
        self._ssl: ssl.SSLContext | None = None  # built once: ~50 ms per batch otherwise

    # -- identity -----------------------------------------------------------------
    @property
    def model_id(self) -> str:
        if self._model is None:
            self._model = self._discover_model()
        return self._model

    @property
    def json_mode(self) -> str:
        """The structured-output mode currently in use (after any fallback)."""
        return _LADDER[self._json_step]

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def _discover_model(self) -> str:
        url = f"{self.base_url}/models"
        try:
            with httpx.Client(timeout=self.timeout, headers=self._headers()) as client:
                response = client.get(url)
        except httpx.TransportError as exc:
            raise EngineError(f"cannot reach {self.base_url}: {exc or type(exc).__name__}; "
                              "is the server running?") from exc
        self._raise_fatal(response)
        try:
            models = response.json()["data"]
            return str(models[0]["id"])
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise EngineError(f"{url} lists no models ({_snippet(response)}); "
                              "pass model= explicitly") from exc

    def _raise_fatal(self, response: httpx.Response) -> None:
        """Errors no retry can fix: the whole run stops with the fix in the message."""
        status = response.status_code
        if status in (401, 403):
            how = (f"check the key in ${self.api_key_env}" if self.api_key else
                   f"no key was sent: set the environment variable {self.api_key_env}")
            raise EngineError(f"{self.base_url} refused the API key (HTTP {status}: "
                              f"{_snippet(response)}); {how}")
        if status == 404:
            what = f"model {self._model!r}" if self._model else "the endpoint"
            raise EngineError(f"{response.request.url} answered 404 ({_snippet(response)}): "
                              f"check base_url={self.base_url!r} (usually ends in /v1) and "
                              f"that the server serves {what}")

    # -- request body -------------------------------------------------------------
    def _body(self, request: ChatRequest, step: int) -> dict[str, Any]:
        s = request.sampling
        body: dict[str, Any] = {"model": self.model_id, "messages": request.message_dicts(),
                                "max_tokens": s.max_tokens, "temperature": s.temperature,
                                "top_p": s.top_p, "seed": request.seed}
        if s.stop:
            body["stop"] = list(s.stop)
        schema = request.schema_dict
        mode = _LADDER[step]
        if schema is not None and mode == "schema":
            body["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "output", "schema": schema, "strict": False}}
        elif schema is not None and mode == "object+schema":
            body["response_format"] = {"type": "json_object", "schema": schema}
        elif schema is not None and mode == "object":
            body["response_format"] = {"type": "json_object"}
        body.update(self.extra_body)
        return body

    # -- one request --------------------------------------------------------------
    def _delay(self, index: int, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_backoff)
        jitter = random.Random(f"{index}:{attempt}").random() * 0.25  # deterministic
        return min(self.backoff * 2 ** attempt * (1 + jitter), self.max_backoff)

    async def _attempt(self, client: httpx.AsyncClient, request: ChatRequest,
                       state: dict[str, bool]) -> ChatResponse:
        """Send once; return the answer, raise _Retryable, EngineError, or _RowError."""
        while True:  # loops only to step down the structured-output ladder
            step = self._json_step
            try:
                async with asyncio.timeout(self.timeout):
                    response = await client.post(f"{self.base_url}/chat/completions",
                                                 json=self._body(request, step))
            except _UNREACHABLE as exc:
                raise _Retryable(f"cannot connect: {exc or type(exc).__name__}",
                                 unreachable=True) from exc
            except (httpx.TimeoutException, TimeoutError) as exc:
                raise _Retryable(f"timed out after {self.timeout:g}s") from exc
            except httpx.TransportError as exc:
                raise _Retryable(f"{type(exc).__name__}: {exc}") from exc
            state["reached"] = True
            status = response.status_code
            self._raise_fatal(response)
            if request.schema is not None and step < 3 and _rejects_format(response):
                if self._json_step == step:  # concurrent rejections step down only once
                    self._json_step = step + 1
                continue
            if status in _RETRY_STATUS or status >= 500:
                raise _Retryable(f"HTTP {status}: {_snippet(response)}",
                                 retry_after=_retry_after(response.headers))
            if status >= 400:
                raise _RowError(f"HTTP {status}: {_snippet(response)}")
            try:
                data = response.json()
                choice = data["choices"][0]
                text = choice["message"].get("content") or ""
                usage = data.get("usage") or {}
                return ChatResponse(text, prompt_tokens=int(usage.get("prompt_tokens") or 0),
                                    completion_tokens=int(usage.get("completion_tokens") or 0),
                                    finish_reason=str(choice.get("finish_reason") or "stop"))
            except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
                raise _Retryable(f"malformed response: {_snippet(response)}") from exc

    async def _one(self, client: httpx.AsyncClient, sem: asyncio.Semaphore, index: int,
                   request: ChatRequest, state: dict[str, bool]) -> tuple[int, ChatResponse]:
        async with sem:
            start = time.perf_counter()
            for attempt in range(self.max_retries + 1):
                try:
                    answer = await self._attempt(client, request, state)
                except _RowError as exc:
                    error = str(exc)
                    break
                except _Retryable as exc:
                    error = f"{exc} (after {attempt + 1} attempts)"
                    if attempt == self.max_retries:
                        if exc.unreachable and not state["reached"]:
                            raise EngineError(f"cannot reach {self.base_url}: {exc}; "
                                              "is the server running?") from exc
                        break
                    await asyncio.sleep(self._delay(index, attempt, exc.retry_after))
                else:
                    return index, _with_seconds(answer, time.perf_counter() - start)
            return index, ChatResponse("", seconds=time.perf_counter() - start, error=error)

    async def _run(self, requests: Sequence[ChatRequest],
                   on_result: OnResult | None) -> list[ChatResponse]:
        sem = asyncio.Semaphore(self.concurrency)
        state = {"reached": False}
        limits = httpx.Limits(max_connections=self.concurrency,
                              max_keepalive_connections=self.concurrency)
        out: list[ChatResponse | None] = [None] * len(requests)
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context()
        async with httpx.AsyncClient(timeout=self.timeout, headers=self._headers(),
                                     limits=limits, verify=self._ssl) as client:
            tasks = [asyncio.create_task(self._one(client, sem, i, r, state))
                     for i, r in enumerate(requests)]
            try:
                for next_done in asyncio.as_completed(tasks):
                    index, response = await next_done
                    out[index] = response
                    if on_result is not None:
                        on_result(index, response)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        return [r for r in out if r is not None]

    # -- the Engine API -----------------------------------------------------------
    def generate(self, requests: Sequence[ChatRequest],
                 on_result: OnResult | None = None) -> list[ChatResponse]:
        """Answer a batch; callbacks always run in the calling thread.

        From plain sync code the batch runs in a fresh event loop right here. Inside a
        running loop (a notebook) it runs in a worker thread, and answers are handed
        back through a queue so ``on_result`` (which may write to SQLite) stays here.
        """
        if not requests:
            return []
        self.model_id  # noqa: B018 - discover the model before any request is sent
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._run(requests, on_result))
        answers: queue.Queue[tuple[int, ChatResponse] | None] = queue.Queue()
        result: dict[str, Any] = {}

        def work() -> None:
            try:
                result["out"] = asyncio.run(self._run(
                    requests, lambda i, r: answers.put((i, r))))
            except BaseException as exc:  # re-raised in the calling thread
                result["exc"] = exc
            finally:
                answers.put(None)

        thread = threading.Thread(target=work, name="openai-engine", daemon=True)
        thread.start()
        while (item := answers.get()) is not None:
            if on_result is not None:
                on_result(*item)
        thread.join()
        if "exc" in result:
            raise result["exc"]
        return result["out"]

    def close(self) -> None:
        """Nothing to release: each batch opens and closes its own connection pool."""


def _with_seconds(response: ChatResponse, seconds: float) -> ChatResponse:
    return ChatResponse(response.text, response.prompt_tokens, response.completion_tokens,
                        seconds, response.finish_reason)
