"""`LLM`: the one object augmenters talk to. Cache first, then the engine, with
accounting, budgets and a progress bar."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from shopaug.llm.cache import LLMCache, cache_key
from shopaug.llm.engine import Engine
from shopaug.llm.ledger import Budget, Ledger
from shopaug.llm.types import ChatRequest, ChatResponse

log = logging.getLogger(__name__)

BUDGET_ERROR = "budget exhausted"
#: batch size under a token or cost budget: the most a run can overshoot its cap by
BUDGET_BATCH = 8


class LLM:
    """Answer requests from the cache when possible and from the engine otherwise.

    Each engine answer is stored the moment it arrives; identical requests in one
    call are sent once. When a budget cap is reached, the remaining requests get
    ``error="budget exhausted: ..."`` and everything generated so far is kept.
    """

    def __init__(self, engine: Engine, cache: LLMCache | None = None,
                 ledger: Ledger | None = None, budget: Budget | None = None,
                 batch_size: int = 16, progress: bool = True) -> None:
        self.engine = engine
        self.cache = cache
        self.ledger = ledger if ledger is not None else Ledger()
        self.budget = budget
        self.batch_size = max(1, batch_size)
        self.progress = progress
        self.stopped_by_budget: str | None = None
        #: when a list, every prompt asked (cached or not) is appended to it, so a run
        #: can prove afterwards what its prompts did and did not contain
        self.audit: list[dict[str, str]] | None = None

    def keys(self, requests: Sequence[ChatRequest]) -> list[str]:
        engine, model = self.engine.name, self.engine.model_id
        return [cache_key(engine, model, r) for r in requests]

    def _next_batch_size(self) -> int:
        """Budgets are checked between batches: a request budget never lets a batch pass
        it, and under a token or cost budget batches stay small, so a run stops at most
        one small batch past its cap."""
        size, budget = self.batch_size, self.budget
        if budget is None:
            return size
        if budget.max_requests is not None:
            total = self.ledger.total()
            size = min(size, max(1, budget.max_requests - (total.requests - total.cached)))
        if budget.max_cost is not None or budget.max_tokens is not None:
            size = min(size, BUDGET_BATCH)
        return size

    def generate(self, requests: Sequence[ChatRequest], stage: str = "llm") -> list[ChatResponse]:
        from tqdm.auto import tqdm

        start = time.perf_counter()
        keys = self.keys(requests)
        if self.audit is not None:
            self.audit.extend({"stage": stage, "request_id": r.request_id,
                               "template": r.template,
                               "text": "\n".join(content for _, content in r.messages)}
                              for r in requests)
        hits = self.cache.get_many(keys) if self.cache else {}
        answers: dict[str, ChatResponse] = {}
        for key in set(keys) & hits.keys():
            answers[key] = hits[key]
        todo: dict[str, ChatRequest] = {}
        for key, request in zip(keys, requests, strict=True):
            if key not in answers and key not in todo:
                todo[key] = request
        bar = tqdm(total=len(todo), desc=stage, unit="req", disable=not self.progress or not todo,
                   leave=False)
        tokens = 0
        pending = list(todo.items())
        start_at = 0
        while start_at < len(pending):
            reason = self.ledger.exceeded(self.budget)
            if reason:
                self.stopped_by_budget = reason
                log.warning("LLM budget reached (%s): %d requests left unanswered", reason,
                            len(pending) - start_at)
                for key, _ in pending[start_at:]:
                    answers[key] = ChatResponse("", error=f"{BUDGET_ERROR}: {reason}")
                break
            chunk = pending[start_at:start_at + self._next_batch_size()]
            start_at += len(chunk)

            def store(i: int, response: ChatResponse, chunk=chunk) -> None:
                nonlocal tokens
                key = chunk[i][0]
                if key in answers:  # an engine may both call back and return it
                    return
                answers[key] = response
                if self.cache is not None:
                    self.cache.put(key, self.engine.name, self.engine.model_id, response)
                self.ledger.record(stage, response)
                tokens += response.completion_tokens
                bar.update()
                elapsed = max(time.perf_counter() - start, 1e-9)
                bar.set_postfix_str(f"{bar.n / elapsed:.1f} req/s, {tokens / elapsed:.0f} tok/s")

            results = self.engine.generate([r for _, r in chunk], on_result=store)
            for i, response in enumerate(results):
                store(i, response)
        bar.close()
        out = [answers[k] for k in keys]
        for key, response in zip(keys, out, strict=True):
            if response.cached and key in hits:
                self.ledger.record(stage, response)
        self.ledger.add_wall(stage, time.perf_counter() - start)
        return out
