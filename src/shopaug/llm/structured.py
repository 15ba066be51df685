"""Structured output: parse JSON from an answer, repair what is repairable,
validate against the request's schema, retry with a new seed, and record what
still fails in an errors table (one bad answer never stops a run)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from shopaug.llm.client import BUDGET_ERROR, LLM
from shopaug.llm.types import ChatRequest, ChatResponse

#: seed offset between attempts; a new seed is a new cache key, so retries are real
RETRY_SEED_STEP = 1_000_003


class ParseError(ValueError):
    pass


def _walk(text: str, start: int = 0
          ) -> tuple[int | None, list[str], bool, list[tuple[int, list[str]]]]:
    """Walk JSON text from ``start`` (an opening bracket), respecting strings.

    Returns the index after the matching closing bracket (None if the text ends
    first), the closers still owed, whether the text ends inside a string, and every
    comma outside a string with the closers owed there: the places a truncated answer
    can be cut back to a complete element.
    """
    stack: list[str] = []
    commas: list[tuple[int, list[str]]] = []
    in_str = escaped = False
    for i in range(start, len(text)):
        ch = text[i]
        if in_str:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch == "," and stack:
            commas.append((i, list(stack)))
        elif ch in "}]" and stack:
            stack.pop()
            if not stack:
                return i + 1, [], False, commas
    return None, stack, in_str, commas


def _close_truncated(fragment: str, owed: list[str], in_str: bool) -> str:
    """Close the strings and brackets of an answer cut off by max_tokens."""
    fixed = fragment + ('"' if in_str else "")
    fixed = re.sub(r",\s*$", "", fixed.rstrip())
    return fixed + "".join(reversed(owed))


def json_objects(text: str) -> Iterator[tuple[int, int, Any]]:
    """(start, end, value) of every complete JSON value that starts at a ``{`` in free
    text, left to right; a ``{`` that starts no valid JSON is skipped."""
    decoder, at = json.JSONDecoder(), text.find("{")
    while at >= 0:
        try:
            value, end = decoder.raw_decode(text, at)
        except ValueError:
            at = text.find("{", at + 1)
            continue
        yield at, end, value
        at = text.find("{", end)


#: how many cut-back repairs of a truncated answer are tried
MAX_CUTS = 16


def json_repairs(text: str) -> Iterator[Any]:
    """Readings of the first JSON object or array in ``text``, best first, repairing
    common small-model slips: code fences, prose around the JSON, trailing commas, smart
    quotes, truncation. An answer cut off by max_tokens is closed where it stops, then
    cut back to each earlier comma (dropping the unfinished element, as in
    ``{"a": [{"n": "x", "w": 1}, {"n"``), so a caller can take the first reading its
    schema accepts. Raises ParseError when there is no JSON to read."""
    cleaned = text.replace("\u201c", '"').replace("\u201d", '"')
    cleaned = re.sub(r"```(?:json)?", "", cleaned)
    starts = [i for i in (cleaned.find("{"), cleaned.find("[")) if i >= 0]
    if not starts:
        raise ParseError("no JSON object in the answer")
    start = min(starts)
    end, owed, in_str, commas = _walk(cleaned, start)
    if end:
        fragments = [cleaned[start:end]]
    else:
        fragments = [_close_truncated(cleaned[start:], owed, in_str)]
        fragments += [cleaned[start:i] + "".join(reversed(stack))
                      for i, stack in reversed(commas[-MAX_CUTS:])]
    found = False
    for fragment in fragments:
        for candidate in (fragment, re.sub(r",\s*([}\]])", r"\1", fragment)):
            try:
                value = json.loads(candidate)
            except ValueError:
                continue
            found = True
            yield value
            break
    if not found:
        raise ParseError("the answer's JSON is malformed beyond repair")


def parse_json(text: str) -> Any:
    """The first JSON object or array in ``text``, with the repairs of `json_repairs`."""
    return next(json_repairs(text))


def parse_valid(text: str, schema: dict[str, Any] | None) -> Any:
    """The best reading of ``text`` (see `json_repairs`) that ``schema`` accepts; the
    first reading's schema error when none does."""
    first_error = None
    for value in json_repairs(text):
        try:
            validate(value, schema)
            return value
        except ParseError as exc:
            first_error = first_error or exc
    raise first_error  # type: ignore[misc]


def validate(value: Any, schema: dict[str, Any] | None) -> None:
    if not schema:
        return
    import jsonschema

    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as exc:
        path = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise ParseError(f"does not match the schema at {path}: {exc.message}") from None


@dataclass(frozen=True)
class StructuredResult:
    request: ChatRequest
    value: Any
    response: ChatResponse
    attempts: int
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def generate_structured(
    llm: LLM, requests: Sequence[ChatRequest], stage: str = "llm", retries: int = 2,
    check: Callable[[ChatRequest, Any], None] | None = None,
) -> list[StructuredResult]:
    """Answers parsed and validated; failed ones retried with a new seed.

    ``check`` may raise ``ValueError`` for answers that are valid JSON but
    unacceptable (e.g. a query copying the title); those are retried too.
    """
    results: list[StructuredResult | None] = [None] * len(requests)
    todo = list(range(len(requests)))
    for attempt in range(retries + 1):
        if not todo:
            break
        asked = [_with_seed(requests[i], attempt) for i in todo]
        answers = llm.generate(asked, stage=stage)
        still = []
        for i, request, response in zip(todo, asked, answers, strict=True):
            try:
                if response.error is not None:
                    raise ParseError(response.error)
                value = parse_valid(response.text, request.schema_dict)
                if check is not None:
                    check(request, value)
                results[i] = StructuredResult(requests[i], value, response, attempt + 1)
            except (ParseError, ValueError) as exc:
                results[i] = StructuredResult(requests[i], None, response, attempt + 1, str(exc))
                if response.error is None or not response.error.startswith(BUDGET_ERROR):
                    still.append(i)
        todo = still
    done = [r for r in results if r is not None]
    _raise_if_the_engine_never_answered(done, stage)
    return done


#: False in a Ray worker: it sees one batch of a stage, and a batch may fail whole while
#: the stage does not; the driver checks the whole stage (`engine_never_answered`)
CHECK_WHOLE_CALL = True


def engine_never_answered(requests: int, failed: int) -> bool:
    """Ledger counts of a stage: every request (retries included) failed in the engine."""
    return requests > 0 and failed == requests


def no_answer_error(stage: str, requests: int, first: str):
    """The EngineError of a stage whose every request failed in the engine."""
    from shopaug.llm.engine import EngineError

    return EngineError(f"{stage}: all {requests} requests to the LLM failed; the first: "
                       f"{first}. Fix: check the llm settings (engine, base_url, model) and "
                       "that the server answers")


def _raise_if_the_engine_never_answered(results: list[StructuredResult], stage: str) -> None:
    """Every request failing in the engine (a server down, a wrong model name) would
    otherwise leave the stage empty and the run comparing real data with itself."""
    if not CHECK_WHOLE_CALL:
        return
    errors = [r.response.error for r in results]
    if results and all(e is not None and not e.startswith(BUDGET_ERROR) for e in errors):
        raise no_answer_error(stage, len(results), str(errors[0]))


def _with_seed(request: ChatRequest, attempt: int) -> ChatRequest:
    return request if attempt == 0 else replace(request, seed=request.seed
                                                + attempt * RETRY_SEED_STEP)


def errors_table(results: Sequence[StructuredResult], stage: str):
    """A DataFrame of failed requests: what was asked, what came back, and why."""
    import pandas as pd

    rows = [{"stage": stage, "request_id": r.request.request_id, "attempts": r.attempts,
             "reason": r.error, "prompt": r.request.messages[-1][1] if r.request.messages else "",
             "answer": r.response.text} for r in results if not r.ok]
    return pd.DataFrame(rows, columns=["stage", "request_id", "attempts", "reason", "prompt",
                                       "answer"])
