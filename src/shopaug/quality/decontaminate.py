"""Decontamination: drop synthetic rows that coincide with the test side.

A generator that never saw the test side still writes some test queries by chance
("blender" for a blender), and then its (query, product) pair is often a test
judgment too. Training on such rows measures recall of the test set rather than
generalisation, so the lift would be inflated. The experiment runner and the
benchmarks drop them before training (and before the quality checks, which then
see what the models are trained on); the counts go into the run card. This only
ever removes synthetic rows, so it can lower the measured lift, never raise it.
The prompt audit is unaffected: a test query in a prompt still fails the run.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from shopaug.augment.expand import normalise_text
from shopaug.data.bundle import ShopData
from shopaug.quality._common import positive_rows


def _pairs(frame: pd.DataFrame) -> pd.Series:
    return frame["user_id"].astype(str) + "\x1f" + frame["item_id"].astype(str)


def decontaminate(data: ShopData, test: ShopData, interactions: bool = True
                  ) -> tuple[ShopData, dict[str, Any]]:
    """(``data`` without synthetic rows that equal test rows, counts of what went).

    ``interactions=False`` keeps synthetic purchases that are test purchases and
    only counts them (``interactions_kept``): on a temporal split, a simulator that
    read only the training side and names a future purchase has made a prediction,
    and dropping it would delete exactly the simulator's hits."""
    queries, judgments, inter = data.queries, data.judgments, data.interactions
    report: dict[str, Any] = {"queries": 0, "judgments": 0, "interactions": 0, "examples": []}
    changes: dict[str, pd.DataFrame] = {}
    syn_q = queries["origin"] == "synthetic"
    if syn_q.any() and len(test.queries):
        test_text = set(test.queries["text"].dropna().map(normalise_text)) - {""}
        norm = queries["text"].map(normalise_text)
        copied = syn_q & norm.isin(test_text)
        # a (query text, item) pair that is a test judgment, even under a new query text
        text_of = dict(zip(queries["query_id"], norm, strict=True))
        t_text = dict(zip(test.queries["query_id"], test.queries["text"].map(normalise_text),
                          strict=True))
        tj = test.judgments
        test_pairs = {(t_text.get(q, ""), str(i))
                      for q, i in zip(tj["query_id"], tj["item_id"], strict=True)}
        dead = set(queries.loc[copied, "query_id"])
        pair_hit = (judgments["origin"] == "synthetic") & pd.Series(
            [(text_of.get(q, ""), str(i)) in test_pairs
             for q, i in zip(judgments["query_id"], judgments["item_id"], strict=True)],
            index=judgments.index, dtype=bool)
        drop_j = pair_hit | ((judgments["origin"] == "synthetic")
                             & judgments["query_id"].isin(dead))
        report["queries"] = int(copied.sum())
        report["judgments"] = int(drop_j.sum())
        report["examples"] = sorted(set(queries.loc[copied, "text"].astype(str)))[:10]
        if copied.any() or drop_j.any():
            changes["queries"] = queries[~copied]
            changes["judgments"] = judgments[~drop_j]
    syn_i = inter["origin"] == "synthetic"
    if syn_i.any() and len(test.interactions):
        real_pairs = set(_pairs(positive_rows(inter[~syn_i])))
        test_pairs_i = set(_pairs(positive_rows(test.interactions))) - real_pairs
        positive = pd.Series(True, index=inter.index)
        if "event" in inter.columns:
            positive = inter["event"].fillna("") != "negative"
        hit = syn_i & positive & _pairs(inter).isin(test_pairs_i)
        report["interactions" if interactions else "interactions_kept"] = int(hit.sum())
        if interactions and hit.any():
            changes["interactions"] = inter[~hit]
    return (data.replace(**changes) if changes else data), report
