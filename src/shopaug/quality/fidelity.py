"""Fidelity: do synthetic rows look like the real rows of the same table?

Per column, a numeric column is compared by the Kolmogorov-Smirnov statistic and a
categorical one by total-variation distance (both 0 for identical distributions, 1
for disjoint ones). Queries get text statistics, synthetic rows the category mix of
the items they point at, and interactions the shape of behaviour: session lengths,
time between a user's events and category-to-category transitions.
"""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

import numpy as np
import pandas as pd

from shopaug.data.bundle import ShopData
from shopaug.data.schema import TABLES
from shopaug.quality._common import (
    TEXT_COLUMNS,
    Section,
    binned,
    by_origin,
    category_plot,
    int_labels,
    ks_statistic,
    positive_rows,
    rng_for,
    sample,
    tokens,
    tv_distance,
    value_shares,
)

NUMERIC = ("float", "int", "timestamp")
#: at most this many texts per side are tokenised for the text statistics
MAX_TEXTS = 200_000
WORD_EDGES = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 13, 16]
CHAR_EDGES = [0, 5, 10, 15, 20, 25, 30, 40, 50, 80]
SESSION_EDGES = [1, 2, 3, 4, 5, 6, 11, 21]
GAP_EDGES = [0, 1, 60, 3600, 86_400, 604_800, 2_592_000]
GAP_LABELS = ["<1 s", "1 s-1 min", "1 min-1 h", "1 h-1 day", "1 day-1 week",
              "1 week-30 days", "30+ days"]
#: categories kept apart in the transition matrix (the rest are "other")
TOP_CATEGORIES = 30


def fidelity_section(data: ShopData, *, seed: int = 0) -> Section:
    """Distances between synthetic and real rows of every table that has both."""
    section = Section()
    column_distances(data, section)
    query_text(data, section, seed)
    category_mix(data, section)
    behaviour(data, section)
    return section


# -- per column -----------------------------------------------------------------------
def _numeric(values: pd.Series) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(values):
        values = values.dropna()
        return ((values - pd.Timestamp(0)) / pd.Timedelta(seconds=1)).to_numpy(float)
    out = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return out[np.isfinite(out)]


def _edge_label(value: float, timestamp: bool) -> str:
    if timestamp:
        return pd.Timestamp(value, unit="s").strftime("%Y-%m-%d")
    return f"{value:.3g}"


def numeric_plot(section: Section, title: str, real: np.ndarray, synthetic: np.ndarray,
                 timestamp: bool = False) -> None:
    """Histogram over the real deciles, so each real bin holds about a tenth."""
    edges = np.unique(np.quantile(real, np.linspace(0, 0.9, 10)))
    labels = [f"{_edge_label(lo, timestamp)}-{_edge_label(hi, timestamp)}"
              for lo, hi in pairwise(edges)]
    labels.append(f">={_edge_label(edges[-1], timestamp)}")
    section.plot(title, "hist", "value", labels,
                 {"real": binned(real, edges), "synthetic": binned(synthetic, edges)})


def column_distances(data: ShopData, section: Section) -> None:
    rows = []
    for name, spec in TABLES.items():
        real, synthetic = by_origin(data.table(name))
        if real.empty or synthetic.empty:
            continue
        for col in spec.columns:
            if col.name not in real.columns:
                continue
            if col.dtype in NUMERIC:
                a, b = _numeric(real[col.name]), _numeric(synthetic[col.name])
                if not len(a) or not len(b):
                    continue
                rows.append([name, col.name, "numeric", "KS", ks_statistic(a, b), len(a), len(b)])
                numeric_plot(section, f"{name}.{col.name}", a, b, col.dtype == "timestamp")
            elif (col.dtype == "str" and not col.name.endswith("_id")
                  and col.name not in TEXT_COLUMNS):
                p, q = value_shares(real[col.name]), value_shares(synthetic[col.name])
                if not p or not q:
                    continue
                rows.append([name, col.name, "categorical", "TV", tv_distance(p, q),
                             int(real[col.name].notna().sum()),
                             int(synthetic[col.name].notna().sum())])
                category_plot(section, f"{name}.{col.name}", col.name, p, q)
    if rows:
        note = "0 = same distribution, 1 = disjoint (KS for numbers, total variation for " \
               "categories)"
        if any(r[:2] == ["interactions", "value"] for r in rows):
            note += ("; interactions.value is a quantity on real rows but a training weight "
                     "on synthetic ones, so a distance there is expected")
        section.table("Per-column distance, synthetic vs real rows",
                      ["table", "column", "kind", "metric", "distance", "real", "synthetic"],
                      rows, note)
    else:
        section.note("Per-column distance", "no table has both real and synthetic rows "
                                            "with a comparable column")


# -- query text ---------------------------------------------------------------------------
def query_text(data: ShopData, section: Section, seed: int) -> None:
    real, synthetic = by_origin(data.queries)
    if synthetic.empty or real.empty:
        section.note("Query text", "no synthetic queries" if synthetic.empty
                     else "no real queries to compare with")
        return
    rng = rng_for(seed, "fidelity.text")
    sides = {}
    for side, frame in (("real", real), ("synthetic", synthetic)):
        texts = sample(frame["text"].fillna("").tolist(), MAX_TEXTS, rng)
        toks = [tokens(t) for t in texts]
        sides[side] = {
            "n": len(frame),
            "words": np.array([len(t) for t in toks], float),
            "chars": np.array([len(str(t).replace(" ", "")) for t in texts], float),
            "counts": Counter(tok for t in toks for tok in t),
        }
    r, s = sides["real"], sides["synthetic"]
    total_syn = sum(s["counts"].values())
    unseen = sum(c for tok, c in s["counts"].items() if tok not in r["counts"])
    vocab_r, vocab_s = set(r["counts"]), set(s["counts"])
    words = {k: binned(v["words"], WORD_EDGES) for k, v in sides.items()}
    chars = {k: binned(v["chars"], CHAR_EDGES) for k, v in sides.items()}
    rows = [
        ["queries", r["n"], s["n"]],
        ["mean tokens", r["words"].mean(), s["words"].mean()],
        ["mean characters", r["chars"].mean(), s["chars"].mean()],
        ["vocabulary size", len(vocab_r), len(vocab_s)],
        ["share of synthetic tokens unseen in real queries", None,
         unseen / total_syn if total_syn else None],
        ["vocabulary Jaccard", None,
         len(vocab_r & vocab_s) / len(vocab_r | vocab_s) if vocab_r | vocab_s else None],
        ["token-length distance (TV)", None, tv_distance(words["real"], words["synthetic"])],
        ["character-length distance (TV)", None, tv_distance(chars["real"], chars["synthetic"])],
    ]
    section.table("Query text", ["metric", "real", "synthetic"], rows,
                  "tokens are words, and single characters for Chinese text")
    section.plot("Query length in tokens", "hist", "tokens", int_labels(WORD_EDGES), words)
    section.plot("Query length in characters", "hist", "characters (no spaces)",
                 int_labels(CHAR_EDGES), chars)


# -- what synthetic rows point at --------------------------------------------------------
def item_categories(data: ShopData) -> pd.Series | None:
    items = data.items
    if "category" not in items.columns or items["category"].isna().all():
        return None
    return items.drop_duplicates("item_id").set_index("item_id")["category"].dropna().astype(str)


def category_mix(data: ShopData, section: Section) -> None:
    categories = item_categories(data)
    if categories is None:
        section.note("Category mix", "items have no category")
        return
    judged = data.judgments
    judged = judged[judged["gain"] > 0]
    sources = {"judgments (relevant items)": judged,
               "interactions": positive_rows(data.interactions)}
    rows = []
    for label, frame in sources.items():
        real, synthetic = by_origin(frame)
        if real.empty or synthetic.empty:
            continue
        p = value_shares(real["item_id"].map(categories))
        q = value_shares(synthetic["item_id"].map(categories))
        if not p or not q:
            continue
        rows.append([label, len(real), len(synthetic), tv_distance(p, q)])
        category_plot(section, f"Item categories of {label}", "category", p, q)
    if rows:
        section.table("Category mix of the items rows point at",
                      ["rows", "real", "synthetic", "distance (TV)"], rows)
    else:
        section.note("Category mix", "no synthetic judgments or interactions")


# -- behaviour -------------------------------------------------------------------------
def session_lengths(frame: pd.DataFrame) -> np.ndarray:
    """Events per session: per session_id, or per user and day where it is missing."""
    day = frame["user_id"].astype(str) + "|" + frame["timestamp"].dt.strftime("%Y-%m-%d")
    key = (frame["session_id"].astype(object).where(frame["session_id"].notna(), day)
           if "session_id" in frame.columns else day)
    return key.value_counts().to_numpy(float)


def _ordered(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(_row=np.arange(len(frame))).sort_values(
        ["user_id", "timestamp", "_row"], kind="stable")


def event_gaps(frame: pd.DataFrame) -> np.ndarray:
    """Seconds between each user's consecutive events."""
    ordered = _ordered(frame[["user_id", "timestamp"]].dropna())
    same = (ordered["user_id"] == ordered["user_id"].shift()).to_numpy()
    seconds = ordered["timestamp"].diff().dt.total_seconds().to_numpy(float)
    return seconds[same]


def transitions(frame: pd.DataFrame, categories: pd.Series) -> pd.DataFrame:
    """(from, to) category of each user's consecutive events."""
    ordered = _ordered(frame[["user_id", "item_id", "timestamp"]].dropna())
    cat = ordered["item_id"].map(categories).fillna("(none)").to_numpy(dtype=object)
    same = (ordered["user_id"] == ordered["user_id"].shift()).to_numpy()
    return pd.DataFrame({"src": cat[:-1][same[1:]], "dst": cat[1:][same[1:]]})


def transition_distance(real: pd.DataFrame, synthetic: pd.DataFrame) -> tuple[float, float]:
    """Mean TV distance between the rows of the two row-normalised transition matrices,
    weighted by how often real events leave each category; over source categories both
    sides have. Returns (distance, share of real transitions those rows cover)."""
    top = real["src"].value_counts().index[:TOP_CATEGORIES]
    keep = set(top)

    def matrix(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.assign(src=frame["src"].where(frame["src"].isin(keep), "other"),
                             dst=frame["dst"].where(frame["dst"].isin(keep), "other"))
        return pd.crosstab(frame["src"], frame["dst"])

    a, b = matrix(real), matrix(synthetic)
    cols = a.columns.union(b.columns)
    a, b = a.reindex(columns=cols, fill_value=0), b.reindex(columns=cols, fill_value=0)
    common = a.index.intersection(b.index)
    if not len(common):
        return 1.0, 0.0
    pa = a.loc[common].div(a.loc[common].sum(axis=1), axis=0)
    pb = b.loc[common].div(b.loc[common].sum(axis=1), axis=0)
    weights = a.loc[common].sum(axis=1).to_numpy(float)
    row_tv = 0.5 * (pa - pb).abs().sum(axis=1).to_numpy(float)
    return float((row_tv * weights).sum() / weights.sum()), float(weights.sum() / a.values.sum())


def behaviour(data: ShopData, section: Section) -> None:
    inter = data.interactions
    real, synthetic = by_origin(inter)
    if synthetic.empty or real.empty:
        section.note("Behaviour", "no synthetic interactions" if synthetic.empty
                     else "no real interactions to compare with")
        return
    real, synthetic = positive_rows(real), positive_rows(synthetic)
    sessions = {"real": session_lengths(real), "synthetic": session_lengths(synthetic)}
    gaps = {"real": event_gaps(real), "synthetic": event_gaps(synthetic)}
    s_shares = {k: binned(v, SESSION_EDGES) for k, v in sessions.items()}
    g_shares = {k: binned(v, GAP_EDGES) for k, v in gaps.items()}
    rows = [
        ["sessions", len(sessions["real"]), len(sessions["synthetic"]), None],
        ["mean events per session", *(v.mean() if len(v) else None for v in sessions.values()),
         tv_distance(s_shares["real"], s_shares["synthetic"])],
        ["median seconds between a user's events",
         *(float(np.median(v)) if len(v) else None for v in gaps.values()),
         tv_distance(g_shares["real"], g_shares["synthetic"])
         if len(gaps["real"]) and len(gaps["synthetic"]) else None],
    ]
    note = "distance: TV between the binned distributions"
    categories = item_categories(data)
    if categories is not None:
        tr, ts = transitions(real, categories), transitions(synthetic, categories)
        if len(tr) and len(ts):
            dist, covered = transition_distance(tr, ts)
            rows.append(["category transitions", len(tr), len(ts), dist])
            note += (f"; transitions: mean row TV over source categories both sides have "
                     f"({covered:.0%} of real transitions)")
    section.table("Behaviour (interactions)", ["metric", "real", "synthetic", "distance"], rows,
                  note)
    section.plot("Session length (events per session)", "hist", "events", int_labels(
        SESSION_EDGES), s_shares)
    if len(gaps["real"]) and len(gaps["synthetic"]):
        section.plot("Time between a user's consecutive events", "hist", "gap", GAP_LABELS,
                     g_shares)
