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
    """Answers derived from the last user message and the seed, shaped by the schema.

    With a schema whose properties include an array of strings (``queries``,
    ``rewrites``...), returns that object filled with word n-grams of the prompt.
    Nested objects, arrays of objects or numbers, enums, numeric bounds and string
    lengths are honoured too, so every packaged template gets an answer that validates;
    free-text strings are taken from the data in the prompt (its JSON values).
    """
    prompt = request.messages[-1][1] if request.messages else ""
    words = _words(prompt) or ["item"]
    digest = int(hashlib.sha256(f"{prompt}|{request.seed}".encode()).hexdigest(), 16)
    schema = request.schema_dict
    if schema and schema.get("type") == "object":
        return json.dumps(_object(schema, words, _data_words(prompt) or words, digest),
                          ensure_ascii=False)
    return " ".join(words[digest % len(words):][:4] or words[:4])


def _data_words(prompt: str) -> list[str]:
    """Words of the string values of the prompt's data: its longest JSON object, so an
    answer-format example in the instruction (``{"grade": "..."}``), before or after
    the data, is not mistaken for it."""
    from shopaug.llm.structured import json_objects

    objects = [(end - start, value) for start, end, value in json_objects(prompt)
               if isinstance(value, dict)]
    if not objects:
        return []
    value = max(objects, key=lambda o: o[0])[1]  # the first of the longest
    out: list[str] = []

    def walk(v: object) -> None:
        if isinstance(v, str):
            out.extend(_words(v))
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(value)
    return out


def _ngram(words: list[str], start: int, n: int) -> str:
    """``n`` consecutive words from ``start``, wrapping past the end: a start on the
    last word still gives n words (unless the prompt has fewer)."""
    return " ".join(words[(start + j) % len(words)] for j in range(min(n, len(words))))


def _object(schema: dict, words: list[str], data: list[str], digest: int) -> dict[str, object]:
    out: dict[str, object] = {}
    for i, (name, prop) in enumerate(schema.get("properties", {}).items()):
        kind = prop.get("type")
        if kind == "array" and prop.get("items", {}).get("type", "string") == "string" \
                and "enum" not in prop.get("items", {}):
            n = max(prop.get("minItems", 1), min(prop.get("maxItems", 3), 3))
            out[name] = [_ngram(words, digest + i + j, 2) for j in range(n)]
        else:
            out[name] = _value(prop, words, data, digest, i)
    return out


def _value(prop: dict, words: list[str], data: list[str], digest: int, i: int) -> object:
    kind = prop.get("type")
    if "enum" in prop:
        return prop["enum"][digest % len(prop["enum"])]
    if kind == "object":
        return _object(prop, words, data, digest)
    if kind == "array":
        item = prop.get("items", {})
        n = max(prop.get("minItems", 1), min(prop.get("maxItems", 3), 3))
        if "enum" in item:  # distinct picks, offset per property so lists differ
            choices = item["enum"]
            n = min(n, len(choices))
            return [choices[(digest + i * n + j) % len(choices)] for j in range(n)]
        return [_value(item, words, data, digest + 7 * j, j) for j in range(n)]
    if kind in ("number", "integer"):
        if "minimum" not in prop and "maximum" not in prop:
            return digest % 4 if kind == "integer" else (digest % 100) / 100
        lo, hi = prop.get("minimum", 0), prop.get("maximum", prop.get("minimum", 0) + 3)
        if kind == "integer":
            return int(lo + digest % (int(hi) - int(lo) + 1))
        return lo + (hi - lo) * (digest % 100) / 100
    if kind == "boolean":
        return bool(digest % 2)
    text = _ngram(data, digest + i, 2)
    return text[: prop.get("maxLength", len(text))].strip() or "item"


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
