"""Per-user and per-(user, item) features for a purchase-probability model.

Features come only from a *history* of interactions and are stated at a reference
time ``now``; labels come from what happens after it. Without explicit targets
the last ``label_days`` of the given (training) data are the label window, so a
model trained on these rows never sees the test side of a split; for evaluation
pass the split's test side as ``targets`` and the full training data as history.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shopaug.data.bundle import ShopData
from shopaug.data.split import basket_ids
from shopaug.models.rec.base import positives, weights

#: numeric and categorical model inputs of `interaction_features` rows, in order
USER_COLUMNS = ("u_history_length", "u_baskets", "u_mean_basket_size", "u_recency_days",
                "u_mean_price", "u_fav_category", "u_fav_category_share", "u_tenure_days")
ITEM_COLUMNS = ("i_popularity", "i_price", "i_category", "i_age_days")
PAIR_COLUMNS = ("p_bought_before", "p_category_affinity")
FEATURES = (*USER_COLUMNS, *ITEM_COLUMNS, *PAIR_COLUMNS)
CATEGORICAL = ("u_fav_category", "i_category")
DAY = pd.Timedelta(days=1)


def item_categories(items: pd.DataFrame) -> pd.Series:
    """Category per item id. Catalogs without categories (Online Retail) fall back to
    the title's last word, which names the product type there ("... T-LIGHT HOLDER")."""
    items = items.drop_duplicates("item_id")
    cat = items["category"] if "category" in items.columns else pd.Series(np.nan, items.index)
    cat = cat.astype("object").where(cat.notna() & (cat.astype("str").str.strip() != ""))
    if "title" in items.columns:
        last = items["title"].astype("str").str.lower().str.findall(r"[a-z]{3,}").str[-1]
        cat = cat.fillna(last)
    return pd.Series(cat.fillna("unknown").astype("str").to_numpy(), index=items["item_id"])


def user_features(history: pd.DataFrame, items: pd.DataFrame,
                  now: pd.Timestamp | None = None) -> pd.DataFrame:
    """One row per user with positives in ``history``: history_length, baskets,
    mean_basket_size, recency_days, mean_price, fav_category (+ its share of the
    user's history) and first_purchase (datetime)."""
    pos = positives(history)
    cols = ["user_id", "history_length", "baskets", "mean_basket_size", "recency_days",
            "mean_price", "fav_category", "fav_category_share", "first_purchase"]
    if pos.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in cols})
    now = pos["timestamp"].max() if now is None else now
    basket = basket_ids(pos)
    price = pos["item_id"].map(items.drop_duplicates("item_id").set_index("item_id")["price"]
                               if "price" in items.columns else pd.Series(dtype=float))
    cat = pos["item_id"].map(item_categories(items)).fillna("unknown")
    frame = pos.assign(_basket=basket, _price=price.astype(float), _cat=cat)
    by = frame.groupby("user_id", sort=True)
    out = pd.DataFrame({
        "history_length": by.size().astype("Int64"),
        "baskets": by["_basket"].nunique().astype("Int64"),
        "recency_days": (now - by["timestamp"].max()) / DAY,
        "mean_price": by["_price"].mean(),
        "first_purchase": by["timestamp"].min(),
    })
    out.insert(2, "mean_basket_size",
               out["history_length"].astype(float) / out["baskets"].astype(float))
    counts = frame.groupby(["user_id", "_cat"]).size().rename("n").reset_index()
    fav = counts.sort_values(["user_id", "n", "_cat"], ascending=[True, False, True]) \
        .drop_duplicates("user_id").set_index("user_id")
    out.insert(5, "fav_category", fav["_cat"].astype("str"))
    out.insert(6, "fav_category_share", fav["n"] / out["history_length"].astype(float))
    return out.rename_axis("user_id").reset_index()[cols]


class HistoryFeatures:
    """User, item and pair feature tables of one history, joined onto any
    (user_id, item_id) pairs; unknown users and items get missing values."""

    def __init__(self, history: pd.DataFrame, items: pd.DataFrame,
                 now: pd.Timestamp | None = None) -> None:
        pos = positives(history)
        if now is None:
            now = pos["timestamp"].max() if len(pos) else pd.Timestamp(0)
        self.now = now
        cats = item_categories(items)
        users = user_features(pos, items, now)
        users["tenure_days"] = (now - users["first_purchase"]) / DAY
        self.users = users.drop(columns="first_purchase").add_prefix("u_").rename(
            columns={"u_user_id": "user_id"})
        by_item = pos.groupby("item_id")
        ids = pd.Index(sorted(set(cats.index) | set(pos["item_id"])), name="item_id")
        price = (items.drop_duplicates("item_id").set_index("item_id")["price"]
                 if "price" in items.columns else pd.Series(dtype=float))
        self.items = pd.DataFrame({
            "i_popularity": by_item["user_id"].nunique().reindex(ids).fillna(0).astype("Int64"),
            "i_price": price.reindex(ids).astype(float),
            "i_category": cats.reindex(ids).fillna("unknown").astype("str"),
            "i_age_days": (now - by_item["timestamp"].min()).reindex(ids) / DAY,
        }).reset_index()
        self.pairs = pos.groupby(["user_id", "item_id"]).size().astype("Int64") \
            .rename("p_bought_before").reset_index()
        cat = pos["item_id"].map(cats).fillna("unknown")
        share = pos.assign(i_category=cat).groupby(["user_id", "i_category"]).size()
        share = share / share.groupby(level="user_id").transform("sum")
        self.affinity = share.rename("p_category_affinity").reset_index()

    def features(self, pairs: pd.DataFrame) -> pd.DataFrame:
        """``pairs`` (user_id, item_id, ...) with every feature column added, same order."""
        out = pairs.merge(self.users, on="user_id", how="left") \
            .merge(self.items, on="item_id", how="left") \
            .merge(self.pairs, on=["user_id", "item_id"], how="left") \
            .merge(self.affinity, on=["user_id", "i_category"], how="left")
        out["p_bought_before"] = out["p_bought_before"].fillna(0).astype("Int64")
        out["p_category_affinity"] = out["p_category_affinity"].fillna(0.0)
        return out


def _label_interactions(targets: ShopData | pd.DataFrame) -> pd.DataFrame:
    return targets.interactions if isinstance(targets, ShopData) else targets


def interaction_features(data: ShopData, negatives_per_positive: int = 4, seed: int = 0, *,
                         targets: ShopData | pd.DataFrame | None = None,
                         label_days: float = 30.0,
                         negatives: str = "uniform") -> pd.DataFrame:
    """(user, item) rows for a purchase model: user, item and pair features, ``label``
    (1 bought, 0 not) and ``weight`` (a synthetic positive's value; 1 otherwise).

    Label-1 rows are the positives of the label window (the last ``label_days`` of
    ``data``, or ``targets``); label-0 rows are ``negatives_per_positive`` items per
    positive sampled (``uniform`` or by ``popularity``) among those the user did not
    buy in the window, plus any ``event="negative"`` rows of the window.
    """
    from shopaug.augment.rec_negatives import catalog, popularity_probs, sample_unseen

    inter = data.interactions
    if targets is None:
        cut = inter["timestamp"].max() - pd.Timedelta(days=label_days) if len(inter) else None
        history = inter[inter["timestamp"] < cut] if cut is not None else inter
        labels = inter[inter["timestamp"] >= cut] if cut is not None else inter
    else:
        history, labels = inter, _label_interactions(targets)
        cut = history["timestamp"].max() if len(history) else None
    columns = ["user_id", "item_id", *FEATURES, "label", "weight"]
    pos = positives(labels)
    if pos.empty or cut is None:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
    feats = HistoryFeatures(history, data.items, now=cut)
    wanted = pos[["user_id", "item_id"]].assign(weight=weights(pos))
    wanted = wanted.groupby(["user_id", "item_id"], as_index=False, sort=True)["weight"].max()
    ids = np.array(sorted(set(catalog(data)) | set(labels["item_id"])), dtype=object)
    users = np.array(sorted(set(wanted["user_id"])), dtype=object)
    user_code = pd.Index(users).get_indexer(wanted["user_id"])
    forbidden = np.unique(user_code.astype(np.int64) * len(ids)
                          + pd.Index(ids).get_indexer(wanted["item_id"]))
    probs = popularity_probs(ids, history, smoothing=1.0) if negatives == "popularity" else None
    rng = np.random.default_rng(seed)
    slot, item = sample_unseen(user_code, negatives_per_positive, forbidden, len(ids), rng, probs)
    sampled = pd.DataFrame({"user_id": wanted["user_id"].to_numpy()[slot], "item_id": ids[item]})
    event = labels["event"] if "event" in labels.columns else pd.Series("", labels.index)
    explicit = labels.loc[event.fillna("") == "negative", ["user_id", "item_id"]]
    neg = pd.concat([sampled, explicit], ignore_index=True).drop_duplicates()
    key = pd.MultiIndex.from_frame(wanted[["user_id", "item_id"]])
    neg = neg[~pd.MultiIndex.from_frame(neg).isin(key)].assign(weight=1.0)
    rows = pd.concat([wanted.assign(label=1), neg.assign(label=0)], ignore_index=True)
    rows = rows.sort_values(["user_id", "item_id", "label"], kind="stable")
    rows = rows.drop_duplicates(["user_id", "item_id"], keep="last").reset_index(drop=True)
    return feats.features(rows)[columns]
