"""Who buys the cold-start items of the Online Retail benchmark, and can we find them?

Prints the cold items (first sold after the bench's test cut) with their test buyers,
how long those buyers' histories are, and the share of the real cold buyers found by
two user rankings per item: content cosine (top 30 users) and history length (top
100 users).

    python scripts/rec_cold_items_explore.py ../shared/data/online_retail/online_retail.parquet
"""

from __future__ import annotations

import sys

import numpy as np

from shopaug.data.loaders import load
from shopaug.data.split import split
from shopaug.models.rec.content import ContentRecommender


def main(path: str) -> None:
    data = load(path, format="online_retail").data
    parts = split(data, "temporal", seed=0, test_days=30)
    train, test = parts.train.interactions, parts.test.interactions
    cold = test[test["item_id"].isin(parts.cold_items)]
    buyers = cold.groupby("item_id")["user_id"].agg(set)
    titles = data.items.set_index("item_id")["title"]
    never = sorted(set(parts.train.items["item_id"]) - set(train["item_id"]))
    print(f"{len(never)} catalog items never sold before the cut; {len(buyers)} sell after it")
    for item, users in sorted(buyers.items(), key=lambda kv: -len(kv[1]))[:15]:
        print(f"  {len(users):>3} buyers  {item}  {titles.get(item)}")
    history = train.groupby("user_id")["item_id"].nunique()
    test_users = test["user_id"].unique()
    print(f"{cold['user_id'].nunique()} of {len(test_users)} test users buy one; median "
          f"history {history.reindex(cold['user_id'].unique()).median():.0f} items "
          f"(all test users {history.reindex(test_users).median():.0f})")

    model = ContentRecommender(popularity_weight=0.0).fit(parts.train)
    users = np.array(sorted(model.user_vec_), dtype=object)
    scores = model.item_vectors(list(buyers.index)) @ np.stack(
        [model.user_vec_[u] for u in users]).T
    total = sum(len(b) for b in buyers)
    found = sum(len(set(users[np.argsort(-row)[:30]]) & b)
                for row, b in zip(scores, buyers, strict=True))
    busiest = set(history.reindex(users).fillna(0).sort_values(ascending=False).index[:100])
    chance = 30 / len(users)
    print(f"content cosine, top 30 users per item: {found / total:.3f} of the cold buyers "
          f"({found / total / chance:.1f}x chance)")
    print(f"the 100 users with the longest histories: "
          f"{sum(len(b & busiest) for b in buyers) / total:.3f} of the cold buyers")


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        sys.exit(__doc__)
    main(sys.argv[1])
