"""Noisy copies of real queries: the typos and slips real shoppers make.

A ranker trained only on clean queries breaks on "wireles headphnoes"; these
variants (keyboard-neighbour typos, dropped, swapped or doubled characters,
dropped or swapped words) keep the source query's judgments. Chinese text gets
character drops and swaps only: there is no keyboard-neighbour notion for
characters typed through an input method.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field

from shopaug.augment.base import Augmenter, record_seed, synthetic_id
from shopaug.augment.expand import has_cjk, normalise_text
from shopaug.augment.rewrite import derived_table, emit_derived
from shopaug.components import ComponentConfig
from shopaug.data.bundle import ShopData

if TYPE_CHECKING:
    from shopaug.pipeline.runner import RunContext

CharOp = Literal["keyboard", "drop", "swap", "duplicate"]
_ROWS = ("1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm")


def _neighbours() -> dict[str, str]:
    """QWERTY keys next to each key (same row and the rows above and below)."""
    out: dict[str, str] = {}
    for r, row in enumerate(_ROWS):
        for c, key in enumerate(row):
            near = [row[c + d] for d in (-1, 1) if 0 <= c + d < len(row)]
            for other in (r - 1, r + 1):
                if 0 <= other < len(_ROWS):
                    near += [_ROWS[other][x] for x in (c - 1, c, c + 1)
                             if 0 <= x < len(_ROWS[other])]
            out[key] = "".join(near)
    return out


KEYBOARD = _neighbours()


class AdversarialQueriesConfig(ComponentConfig):
    variants_per_query: int = Field(2, ge=1, le=10)
    #: chance that a character gets a character-level edit
    p_char: float = Field(0.08, ge=0, le=1)
    #: chance that a multi-word query loses one word
    p_word_drop: float = Field(0.15, ge=0, le=1)
    #: chance that two neighbouring words change places
    p_word_swap: float = Field(0.15, ge=0, le=1)
    char_ops: list[CharOp] = Field(
        default_factory=lambda: ["keyboard", "drop", "swap", "duplicate"], min_length=1)
    #: quality score of the noisy queries and their inherited judgments
    quality: float = Field(0.7, ge=0, le=1)
    max_queries: int | None = Field(None, ge=1)


def perturb(text: str, rng: np.random.Generator, cfg: AdversarialQueriesConfig) -> str:
    """One noisy variant of ``text`` with at least one edit (when one is possible)."""
    cjk = has_cjk(text)
    edited = False
    if not cjk:
        words = text.split()
        if len(words) >= 2 and rng.random() < cfg.p_word_drop:
            del words[int(rng.integers(len(words)))]
            edited = True
        if len(words) >= 2 and rng.random() < cfg.p_word_swap:
            i = int(rng.integers(len(words) - 1))
            words[i], words[i + 1] = words[i + 1], words[i]
            edited = True
        text = " ".join(words)
    chars = list(text)
    editable = np.array([c.isalnum() for c in chars], dtype=bool)
    if not editable.any():
        return text
    hits = np.flatnonzero(editable & (rng.random(len(chars)) < cfg.p_char))
    if not len(hits) and not edited:
        hits = np.array([rng.choice(np.flatnonzero(editable))])
    ops = [o for o in cfg.char_ops if not cjk or o in ("drop", "swap")] or ["drop", "swap"]
    for pos in sorted(hits.tolist(), reverse=True):  # right to left keeps positions valid
        op = ops[int(rng.integers(len(ops)))]
        ch = chars[pos]
        if op == "keyboard" and ch.lower() in KEYBOARD:
            near = KEYBOARD[ch.lower()]
            new = near[int(rng.integers(len(near)))]
            chars[pos] = new.upper() if ch.isupper() else new
        elif op == "swap" and pos + 1 < len(chars) and not chars[pos + 1].isspace():
            chars[pos], chars[pos + 1] = chars[pos + 1], chars[pos]
        elif op == "duplicate":
            chars.insert(pos, ch)
        elif sum(not c.isspace() for c in chars) > 2:  # drop; never down to one character
            del chars[pos]
    return " ".join("".join(chars).split())


class AdversarialQueries(Augmenter):
    """Typo'd and reordered copies of real queries, with the source's judgments."""

    name = "adversarial_queries"
    Config = AdversarialQueriesConfig
    config: AdversarialQueriesConfig

    def run(self, data: ShopData, ctx: RunContext) -> ShopData:
        cfg = self.config
        queries = data.queries
        queries = queries[queries["origin"] == "real"]
        if cfg.max_queries is not None:
            queries = queries.head(cfg.max_queries)
        rows = []
        for qid, text in zip(queries["query_id"], queries["text"], strict=True):
            seen = {normalise_text(text)}
            for v in range(cfg.variants_per_query):
                rng = np.random.default_rng(record_seed(ctx.seed, self.name, f"{qid}|{v}"))
                for _ in range(5):  # a few tries for a variant that is new
                    new = perturb(text, rng, cfg)
                    if new and normalise_text(new) and normalise_text(new) not in seen:
                        seen.add(normalise_text(new))
                        rows.append({"query_id": synthetic_id("adv", qid, new), "text": new,
                                     "source_id": qid, "quality_score": cfg.quality,
                                     "llm_model": None, "prompt_id": None, "value": None})
                        break
        return emit_derived(self, data, ctx, derived_table(rows))
