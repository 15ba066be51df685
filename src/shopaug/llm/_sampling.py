"""Per-sequence sampling for the embedded engine: numpy over the logits, with a
llama.cpp grammar (from the request's JSON schema) checked lazily.

Applying a grammar to all ~50k vocabulary entries costs milliseconds per token;
instead the token is sampled first and only that one candidate is checked. Only
when the grammar rejects it is the full vocabulary masked and the token drawn
again (the approach of llama.cpp's own common sampler).
"""

from __future__ import annotations

import ctypes
import json
from typing import Any

import numpy as np

from shopaug.llm.types import ChatRequest

#: how many recent tokens the repetition penalty looks at
PENALTY_WINDOW = 64


def author_order(schema: Any) -> Any:
    """The schema with each object's properties in the order of its ``required`` list.

    Requests store schemas as canonical (key-sorted) JSON for stable cache keys, but the
    grammar writes properties in dict order: without this a model would have to answer
    ``confidence`` before ``grade`` because c < g, against the prompt's own examples."""
    if isinstance(schema, list):
        return [author_order(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: author_order(v) for k, v in schema.items()}
    props = out.get("properties")
    if isinstance(props, dict) and isinstance(out.get("required"), list):
        first = [k for k in out["required"] if k in props]
        out["properties"] = {k: props[k] for k in first + [k for k in props if k not in first]}
    return out


class SeqSampler:
    def __init__(self, request: ChatRequest, vocab: object, n_vocab: int) -> None:
        self.sampling = request.sampling
        self.rng = np.random.default_rng(request.seed & 0xFFFFFFFF)
        self.n_vocab = n_vocab
        self.recent: list[int] = []
        self.grammar = None
        if request.schema:
            import llama_cpp
            from llama_cpp.llama_grammar import LlamaGrammar

            schema = json.dumps(author_order(json.loads(request.schema)))
            gbnf = LlamaGrammar.from_json_schema(schema, verbose=False)._grammar
            self.grammar = llama_cpp.llama_sampler_init_grammar(
                vocab, gbnf.encode("utf-8"), b"root")
            self._one = (llama_cpp.llama_token_data * 1)()
            self._one_arr = llama_cpp.llama_token_data_array(
                data=self._one, size=1, selected=-1, sorted=False)

    def sample(self, logits: np.ndarray) -> int:
        token = self._draw(logits)
        if self.grammar is not None and not self._allowed(token):
            masked = np.where(self._grammar_mask(), logits, -np.inf)
            token = self._draw(masked)
        return token

    def accept(self, token: int) -> None:
        self.recent.append(token)
        if len(self.recent) > PENALTY_WINDOW:
            del self.recent[0]
        if self.grammar is not None:
            import llama_cpp

            llama_cpp.llama_sampler_accept(self.grammar, token)

    def close(self) -> None:
        if self.grammar is not None:
            import llama_cpp

            llama_cpp.llama_sampler_free(self.grammar)
            self.grammar = None

    # -- internals ----------------------------------------------------------------
    def _draw(self, logits: np.ndarray) -> int:
        s = self.sampling
        k = max(1, min(s.top_k if s.temperature > 0 else 1, self.n_vocab))
        top = np.argpartition(logits, -k)[-k:] if k < self.n_vocab else np.arange(self.n_vocab)
        values = logits[top].astype(np.float64)
        if s.repeat_penalty != 1.0 and self.recent:
            seen = np.isin(top, self.recent)
            values[seen] = np.where(values[seen] > 0, values[seen] / s.repeat_penalty,
                                    values[seen] * s.repeat_penalty)
        finite = np.isfinite(values)
        if not finite.any():
            return int(top[0])
        top, values = top[finite], values[finite]
        order = np.argsort(-values, kind="stable")
        top, values = top[order], values[order]
        if s.temperature <= 0 or len(top) == 1:
            return int(top[0])
        probs = np.exp(values - values[0])
        probs /= probs.sum()
        keep = int(np.searchsorted(np.cumsum(probs), s.top_p) + 1)
        top, values = top[:keep], values[:keep] / s.temperature
        probs = np.exp(values - values.max())
        probs /= probs.sum()
        return int(top[self.rng.choice(len(top), p=probs)])

    def _allowed(self, token: int) -> bool:
        import llama_cpp

        self._one[0].id, self._one[0].logit, self._one[0].p = token, 0.0, 0.0
        self._one_arr.size, self._one_arr.selected = 1, -1
        llama_cpp.llama_sampler_apply(self.grammar, ctypes.byref(self._one_arr))
        return bool(np.isfinite(self._one[0].logit))

    def _grammar_mask(self) -> np.ndarray:
        import llama_cpp

        data = np.zeros(self.n_vocab, dtype=[("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])
        data["id"] = np.arange(self.n_vocab, dtype=np.int32)
        arr = llama_cpp.llama_token_data_array(
            data=ctypes.cast(data.ctypes.data, ctypes.POINTER(llama_cpp.llama_token_data)),
            size=self.n_vocab, selected=-1, sorted=False)
        llama_cpp.llama_sampler_apply(self.grammar, ctypes.byref(arr))
        return np.isfinite(data["logit"])
