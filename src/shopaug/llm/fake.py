"""A deterministic fake engine for tests: same request, same answer, no model."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence

from shopaug.llm.engine import Engine, EngineError, OnResult
from shopaug.llm.types import ChatRequest, ChatResponse

Responder = Callable[[ChatRequest], str]


def _words(text: str) -> list[str]:
    return re.findall(r"[\w\u4e00-\u9fff]+", text.lower())


def default_responder(request: ChatRequest) -> str:
    """Answers derived from the last user message and the seed.

    With a schema whose properties include an array of strings (``queries``,
    ``rewrites``...), returns that object filled with word n-grams of the prompt.
    """
    prompt = request.messages[-1][1] if request.messages else ""
    words = _words(prompt) or ["item"]
    digest = int(hashlib.sha256(f"{prompt}|{request.seed}".encode()).hexdigest(), 16)
    schema = request.schema_dict
    if schema and schema.get("type") == "object":
        out: dict[str, object] = {}
        for i, (name, prop) in enumerate(schema.get("properties", {}).items()):
            kind = prop.get("type")
            if kind == "array":
                n = max(prop.get("minItems", 1), min(prop.get("maxItems", 3), 3))
                out[name] = [" ".join(words[(digest + i + j) % len(words):][:2] or words[:2])
                             for j in range(n)]
            elif "enum" in prop:
                out[name] = prop["enum"][digest % len(prop["enum"])]
            elif kind in ("number", "integer"):
                out[name] = digest % 4 if kind == "integer" else (digest % 100) / 100
            elif kind == "boolean":
                out[name] = bool(digest % 2)
            else:
                out[name] = " ".join(words[:3])
        return json.dumps(out, ensure_ascii=False)
    return " ".join(words[digest % len(words):][:4] or words[:4])


class FakeEngine(Engine):
    """Deterministic answers; counts calls so tests can prove the cache works.

    ``responder`` maps a request to its answer text. ``fail_with`` makes every call
    raise EngineError (a dead engine).
    """

    name = "fake"

    def __init__(self, responder: Responder | None = None, model: str = "fake-1",
                 fail_with: str | None = None) -> None:
        self.responder = responder or default_responder
        self.model = model
        self.fail_with = fail_with
        self.calls = 0

    @property
    def model_id(self) -> str:
        return self.model

    def generate(self, requests: Sequence[ChatRequest],
                 on_result: OnResult | None = None) -> list[ChatResponse]:
        if self.fail_with:
            raise EngineError(self.fail_with)
        out = []
        for i, request in enumerate(requests):
            self.calls += 1
            text = self.responder(request)
            prompt_tokens = sum(len(_words(c)) for _, c in request.messages)
            response = ChatResponse(text, prompt_tokens=prompt_tokens,
                                    completion_tokens=len(_words(text)), seconds=0.0)
            if on_result:
                on_result(i, response)
            out.append(response)
        return out
