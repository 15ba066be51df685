"""Token, time and cost accounting per stage, and budget caps."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from pydantic import BaseModel, ConfigDict

from shopaug.llm.types import ChatResponse


class Budget(BaseModel):
    """Caps on paid (non-cached) work; generation stops cleanly when one is reached."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_cost: float | None = None
    max_tokens: int | None = None
    max_requests: int | None = None


@dataclass
class Usage:
    requests: int = 0
    cached: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    engine_seconds: float = 0.0
    wall_seconds: float = 0.0
    cost: float = 0.0

    def add(self, other: Usage) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    @property
    def paid_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Ledger:
    """Usage per stage. Token counts and cost cover engine calls only: a cached
    answer costs nothing and is counted in ``cached``."""

    price_prompt_per_1k: float = 0.0
    price_completion_per_1k: float = 0.0
    stages: dict[str, Usage] = field(default_factory=dict)

    def record(self, stage: str, response: ChatResponse) -> None:
        usage = self.stages.setdefault(stage, Usage())
        usage.requests += 1
        if response.cached:
            usage.cached += 1
            return
        if response.error is not None:
            usage.failed += 1
        usage.prompt_tokens += response.prompt_tokens
        usage.completion_tokens += response.completion_tokens
        usage.engine_seconds += response.seconds
        usage.cost += (response.prompt_tokens * self.price_prompt_per_1k
                       + response.completion_tokens * self.price_completion_per_1k) / 1000

    def add_wall(self, stage: str, seconds: float) -> None:
        self.stages.setdefault(stage, Usage()).wall_seconds += seconds

    def total(self) -> Usage:
        out = Usage()
        for usage in self.stages.values():
            out.add(usage)
        return out

    def exceeded(self, budget: Budget | None) -> str | None:
        """Which cap is reached, if any."""
        if budget is None:
            return None
        total = self.total()
        paid = total.requests - total.cached
        if budget.max_cost is not None and total.cost >= budget.max_cost:
            return f"cost {total.cost:.4f} reached max_cost {budget.max_cost}"
        if budget.max_tokens is not None and total.paid_tokens >= budget.max_tokens:
            return f"{total.paid_tokens} tokens reached max_tokens {budget.max_tokens}"
        if budget.max_requests is not None and paid >= budget.max_requests:
            return f"{paid} requests reached max_requests {budget.max_requests}"
        return None

    def to_dict(self) -> dict:
        def row(u: Usage) -> dict:
            return {**asdict(u), "engine_seconds": round(u.engine_seconds, 3),
                    "wall_seconds": round(u.wall_seconds, 3), "cost": round(u.cost, 6)}
        return {"stages": {k: row(v) for k, v in self.stages.items()},
                "total": row(self.total()),
                "prices_per_1k": {"prompt": self.price_prompt_per_1k,
                                  "completion": self.price_completion_per_1k}}
