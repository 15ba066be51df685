"""Requests and responses of the LLM layer: plain, hashable values."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shopaug.fingerprint import canonical_json


@dataclass(frozen=True)
class Sampling:
    max_tokens: int = 96
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    repeat_penalty: float = 1.1
    stop: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"max_tokens": self.max_tokens, "temperature": self.temperature,
                "top_p": self.top_p, "top_k": self.top_k,
                "repeat_penalty": self.repeat_penalty, "stop": list(self.stop)}


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion to make.

    ``messages`` are (role, content) pairs. ``schema`` (a JSON schema, stored as
    canonical JSON text so the request stays hashable) asks for structured output.
    ``template`` names the prompt template and its content hash; it is part of the
    cache key, so editing a template never serves stale answers. ``request_id`` is
    the caller's label (e.g. the item id) and is not part of the key.
    """

    messages: tuple[tuple[str, str], ...]
    sampling: Sampling = field(default_factory=Sampling)
    seed: int = 0
    schema: str | None = None
    template: str = ""
    request_id: str = ""

    @classmethod
    def chat(cls, messages: Iterable[Mapping[str, str] | tuple[str, str]], *,
             schema: Mapping[str, Any] | None = None, **kwargs: Any) -> ChatRequest:
        pairs = tuple((m["role"], m["content"]) if isinstance(m, Mapping) else (m[0], m[1])
                      for m in messages)
        return cls(pairs, schema=canonical_json(schema) if schema is not None else None,
                   **kwargs)

    @property
    def schema_dict(self) -> dict[str, Any] | None:
        return json.loads(self.schema) if self.schema else None

    def message_dicts(self) -> list[dict[str, str]]:
        return [{"role": r, "content": c} for r, c in self.messages]

    def key_material(self) -> dict[str, Any]:
        """Everything that determines the answer (and nothing that does not)."""
        return {"messages": [list(m) for m in self.messages], "sampling": self.sampling.to_dict(),
                "seed": self.seed, "schema": self.schema, "template": self.template}


@dataclass(frozen=True)
class ChatResponse:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    finish_reason: str = "stop"
    cached: bool = False
    #: a row-level failure (this request only); fatal failures raise EngineError
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None
