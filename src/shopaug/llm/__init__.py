"""The LLM layer: one interface, several engines, a persistent cache, a ledger.

    >>> from shopaug.llm import ChatRequest, LLM, FakeEngine
    >>> llm = LLM(FakeEngine(), progress=False)
    >>> answer = llm.generate([ChatRequest.chat([{"role": "user", "content": "red mug"}])])[0]
    >>> answer.ok
    True
"""

from shopaug.llm.cache import LLMCache, cache_key
from shopaug.llm.client import LLM
from shopaug.llm.config import LLMConfig, build_llm
from shopaug.llm.engine import Engine, EngineError
from shopaug.llm.fake import FakeEngine
from shopaug.llm.ledger import Budget, Ledger
from shopaug.llm.prompts import ExampleSelector, PromptTemplate
from shopaug.llm.structured import StructuredResult, errors_table, generate_structured, parse_json
from shopaug.llm.types import ChatRequest, ChatResponse, Sampling

__all__ = [
    "LLM", "Budget", "ChatRequest", "ChatResponse", "Engine", "EngineError", "ExampleSelector",
    "FakeEngine", "LLMCache", "LLMConfig", "Ledger", "PromptTemplate", "Sampling",
    "StructuredResult", "build_llm", "cache_key", "errors_table", "generate_structured",
    "parse_json",
]
