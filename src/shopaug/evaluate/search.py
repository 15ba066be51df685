"""Evaluate a fitted search model on a by-query split: rerank each test query's
judged candidates and score the ranking with graded gains, overall and by slice."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import pandas as pd

from shopaug.data.split import Split
from shopaug.evaluate.ranking import per_group_metrics

METRIC_KS = (5, 10)
#: relevance levels above zero on the usual 4-point scales (grades 1..4, 0..3)
GAIN_LEVELS = 3


def exponential_gain(gain: pd.Series, levels: int = GAIN_LEVELS) -> pd.Series:
    """Burges' ``2^rel - 1`` with rel = gain x levels: on a 1..4 scale the gains become
    0, 1, 3, 7, so a top grade weighs far more than a middling one. This is the usual
    graded NDCG (and the one behind published CrowdFlower reference numbers)."""
    return 2.0 ** (gain.clip(0, 1) * levels) - 1.0


def candidates_of(split: Split) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(test queries, candidate pairs, truth with gains) of a by-query split; only real
    judgments are evaluated."""
    test = split.test
    judgments = test.judgments
    judgments = judgments[judgments["origin"] == "real"]
    queries = test.queries[test.queries["query_id"].isin(judgments["query_id"])]
    candidates = judgments[["query_id", "item_id"]].drop_duplicates()
    truth = judgments[["query_id", "item_id", "gain"]]
    return queries[["query_id", "text"]], candidates, truth


def query_slices(split: Split) -> dict[str, set[str]]:
    """Test query ids per slice.

    ``cold_items``: queries none of whose relevant products has a training query, the
    case synthetic queries are meant for. ``warm_items``: the rest. ``head`` and
    ``tail``: queries above / at or below the median count of judged products, a
    stand-in for query frequency when the log has no counts (a ``frequency`` column on
    queries is used when present).
    """
    train_j = split.train.judgments
    trained_items = set(train_j.loc[(train_j["origin"] == "real") & (train_j["gain"] > 0),
                                    "item_id"])
    test_j = split.test.judgments
    test_j = test_j[(test_j["origin"] == "real")]
    relevant = test_j[test_j["gain"] > 0].groupby("query_id")["item_id"].agg(set)
    cold = {q for q, items in relevant.items() if not items & trained_items}
    all_q = set(test_j["query_id"])
    queries = split.test.queries.set_index("query_id")
    if "frequency" in queries.columns:
        freq = pd.to_numeric(queries["frequency"], errors="coerce").reindex(list(all_q))
    else:
        freq = test_j.groupby("query_id").size().reindex(list(all_q))
    median = freq.median()
    return {"all": all_q, "cold_items": cold, "warm_items": all_q - cold,
            "head": set(freq[freq > median].index), "tail": set(freq[freq <= median].index)}


def evaluate_search(model, split: Split, ks: Sequence[int] = METRIC_KS,
                    gain: Literal["exponential", "linear"] = "exponential") -> pd.DataFrame:
    """Per-query metrics (index query_id) of ``model`` on the split's test queries.

    ``gain``: ``exponential`` (2^rel - 1, the default) or ``linear`` (the stored gain in
    [0, 1]). With ``exponential`` the frame also carries ``ndcg_lin@k`` columns."""
    queries, candidates, truth = candidates_of(split)
    ranked = model.rank(queries, candidates)
    linear = per_group_metrics(ranked, truth, ks, group="query_id")
    if gain == "linear":
        return linear
    exp_truth = truth.assign(gain=exponential_gain(truth["gain"]))
    out = per_group_metrics(ranked, exp_truth, ks, group="query_id")
    for k in ks:
        out[f"ndcg_lin@{k}"] = linear[f"ndcg@{k}"]
    return out
