"""The engine interface: batches of chat requests in, responses out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

from shopaug.errors import ShopAugError
from shopaug.llm.types import ChatRequest, ChatResponse


class EngineError(ShopAugError, RuntimeError):
    """The engine cannot serve any request (dead server, bad key, missing model):
    the run stops with this message. Per-request failures are ``ChatResponse.error``."""


#: called with (index in the batch, response) as soon as each response is ready
OnResult = Callable[[int, ChatResponse], None]


class Engine(ABC):
    #: short engine name, part of every cache key
    name: str = "engine"

    @property
    @abstractmethod
    def model_id(self) -> str:
        """Identity of the model (a file hash, or the served model name)."""

    @abstractmethod
    def generate(self, requests: Sequence[ChatRequest],
                 on_result: OnResult | None = None) -> list[ChatResponse]:
        """Answer every request, in order. Implementations call ``on_result`` as each
        answer arrives, so callers can persist it before the batch is over."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (threads, sockets, model memory)."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
