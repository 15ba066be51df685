"""Sequence augmentation on hand-made histories: each op's exact properties,
pseudo-users, provenance, timestamps, determinism and the conformance kit."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from shopaug import ConfigError
from shopaug.augment.sequence import SequenceAugment, item_neighbours
from shopaug.data.bundle import ShopData
from shopaug.errors import ShopAugError
from shopaug.pipeline.runner import RunContext
from shopaug.testing import check_component

T0 = pd.Timestamp("2024-01-01")
LONG = [f"x{i}" for i in range(10)]  # user "a": ten distinct items, one a day


def shop(extra: list[tuple[str, str, int]] = ()) -> ShopData:
    """User a buys x0..x9 in order; b, c, d share some of a's items (so items have
    co-purchase neighbours); d's 2-item history is the sparse one."""
    rows = [("a", item, day) for day, item in enumerate(LONG)]
    rows += [("b", "x1", 0), ("b", "x2", 1), ("b", "y1", 2), ("b", "x5", 3), ("b", "y2", 4)]
    rows += [("c", "x2", 2), ("c", "y1", 3), ("c", "x7", 5), ("c", "y2", 6)]
    rows += [("d", "x3", 4), ("d", "y2", 9)]
    rows += list(extra)
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "day"])
    inter["timestamp"] = T0 + pd.to_timedelta(inter.pop("day"), unit="D")
    inter["event"] = "purchase"
    inter["value"] = 3.0
    inter["session_id"] = inter["user_id"] + "-" + inter["timestamp"].dt.day.astype(str)
    items = sorted(set(inter["item_id"]))
    return ShopData(items=pd.DataFrame({"item_id": items, "title": items}),
                    users=pd.DataFrame({"user_id": ["a", "b", "c", "d"],
                                        "country": ["UK", "FR", "DE", "UK"]}),
                    interactions=inter)


def run(data: ShopData, seed: int = 0, **config) -> ShopData:
    return SequenceAugment(config).run(data, RunContext(seed=seed, run_dir=Path("."),
                                                        progress=False))


def pseudo(out: ShopData, user: str, op: str) -> dict[str, pd.DataFrame]:
    inter = out.interactions
    rows = inter[inter["user_id"].str.startswith(f"{user}~{op}")]
    return {u: g for u, g in rows.groupby("user_id", sort=True)}


def source(data: ShopData, user: str) -> pd.DataFrame:
    inter = data.interactions
    return inter[inter["user_id"] == user].sort_values("timestamp", kind="stable")


def is_contiguous(part: list[str], whole: list[str]) -> bool:
    return any(whole[i:i + len(part)] == part for i in range(len(whole) - len(part) + 1))


def is_subsequence(part: list[str], whole: list[str]) -> bool:
    it = iter(whole)
    return all(x in it for x in part)


def test_crop_keeps_a_contiguous_run_with_its_timestamps():
    data = shop()
    samples = pseudo(run(data, ops=["crop"], n_per_user=4, crop_ratio=0.6), "a", "crop")
    assert sorted(samples) == [f"a~crop{n}" for n in range(4)]
    src = source(data, "a")
    stamp_of = dict(zip(src["item_id"], src["timestamp"], strict=True))
    starts = set()
    for rows in samples.values():
        items = rows["item_id"].tolist()
        assert len(items) == 6 and is_contiguous(items, LONG)
        assert rows["timestamp"].tolist() == [stamp_of[i] for i in items]
        starts.add(items[0])
    assert len(starts) > 1  # the start is random, not always the head


def test_mask_drops_positions_and_keeps_order():
    data = shop()
    samples = pseudo(run(data, ops=["mask"], n_per_user=3, mask_ratio=0.3), "a", "mask")
    assert len(samples) == 3
    for rows in samples.values():
        items = rows["item_id"].tolist()
        assert len(items) == 7 and is_subsequence(items, LONG)
    assert len({tuple(r["item_id"]) for r in samples.values()}) > 1


def test_reorder_shuffles_one_span_and_keeps_the_multiset_and_times():
    data = shop()
    src = source(data, "a")
    samples = pseudo(run(data, ops=["reorder"], n_per_user=5, reorder_ratio=0.4), "a",
                     "reorder")
    assert samples
    for rows in samples.values():
        items = rows["item_id"].tolist()
        assert sorted(items) == sorted(LONG) and items != LONG
        # the timestamps stay with the positions: the data's order is the new order
        assert rows["timestamp"].tolist() == src["timestamp"].tolist()
        moved = [i for i, (x, y) in enumerate(zip(items, LONG, strict=True)) if x != y]
        assert moved[-1] - moved[0] < 4  # inside one span of floor(0.4 * 10) positions


def test_insert_and_substitute_use_co_purchase_neighbours():
    data = shop()
    inter = data.interactions
    users, _ = pd.factorize(inter["user_id"], sort=True)
    codes, ids = pd.factorize(inter["item_id"], sort=True)
    nbr, count = item_neighbours(users, codes, len(ids), 3)
    near = {ids[i]: {ids[j] for j in nbr[i, :count[i]]} for i in range(len(ids))}
    # x2 (buyers a, b, c) ties at 2/sqrt(6) with x1, x5, x7 and y1: lowest ids win
    assert [ids[j] for j in nbr[ids.get_loc("x2")]] == ["x1", "x5", "x7"]
    # y2 (buyers b, c, d): y1 (2/sqrt(6)), x2 (2/3), then x1 first of four at 1/sqrt(6)
    assert [ids[j] for j in nbr[ids.get_loc("y2")]] == ["y1", "x2", "x1"]
    assert near["x9"] == {"x0", "x4", "x6"}  # like x8, bought by a alone: cosine 1
    out = run(data, ops=["insert", "substitute"], n_per_user=3, top_n=3,
              insert_ratio=0.3, substitute_ratio=0.3)
    src = source(data, "a")
    inserted = pseudo(out, "a", "insert")
    substituted = pseudo(out, "a", "substitute")
    assert inserted and substituted
    for rows in inserted.values():
        items, stamps = rows["item_id"].tolist(), rows["timestamp"].tolist()
        assert 10 < len(items) <= 13 and is_subsequence(LONG, items)
        # each inserted item sits right before its anchor, with the anchor's time
        pos = 0
        for i, item in enumerate(items):
            if pos < 10 and item == LONG[pos] and stamps[i] == src["timestamp"].iloc[pos]:
                pos += 1
            else:
                assert item in near[items[i + 1]] and stamps[i] == stamps[i + 1]
    for rows in substituted.values():
        items = rows["item_id"].tolist()
        assert rows["timestamp"].tolist() == src["timestamp"].tolist()
        changed = [(old, new) for old, new in zip(LONG, items, strict=True) if old != new]
        assert 1 <= len(changed) <= 3
        assert all(new in near[old] for old, new in changed)


def test_sliding_windows():
    data = shop()
    out = run(data, ops=["sliding_window"], window=4, stride=3, max_windows=None)
    windows = pseudo(out, "a", "sliding_window")
    assert {u: r["item_id"].tolist() for u, r in windows.items()} == {
        "a~sliding_window0": LONG[0:4], "a~sliding_window1": LONG[3:7],
        "a~sliding_window2": LONG[6:10]}
    assert not pseudo(out, "d", "sliding_window")  # shorter than the window
    capped = pseudo(run(data, ops=["sliding_window"], window=4, stride=1, max_windows=2),
                    "a", "sliding_window")
    assert len(capped) == 2


def test_pseudo_users_provenance_weights_and_time_span():
    data = shop()
    out = run(data, seed=7, ops=["crop", "mask", "reorder", "insert", "substitute"],
              weight=0.25)
    assert out.real().fingerprint() == data.fingerprint()  # the real rows are untouched
    syn = out.interactions[out.interactions["origin"] == "synthetic"]
    users = out.users.set_index("user_id")
    assert set(syn["user_id"]) == set(users.index[users["origin"] == "synthetic"])
    assert syn["user_id"].str.fullmatch(r"[abcd]~(crop|mask|reorder|insert|substitute)\d+").all()
    for table in (syn, users[users["origin"] == "synthetic"]):
        assert (table["augmenter"] == "sequence_augment").all()
        assert (table["seed"] == 7).all() and table["config_hash"].notna().all()
        assert (table["augmenter_version"] == SequenceAugment.version).all()
    assert (syn["value"] == 0.25).all()
    assert users.loc["b~mask0", "country"] == "FR"  # the source user's profile
    real = data.interactions.groupby("user_id")["timestamp"].agg(["min", "max"])
    span = real.loc[syn["user_id"].str.split("~").str[0]].to_numpy()
    stamps = syn["timestamp"].to_numpy()
    assert ((stamps >= span[:, 0]) & (stamps <= span[:, 1])).all()
    # one item is no sequence: every pseudo-user has at least two rows
    assert syn.groupby("user_id").size().min() >= 2


def test_deterministic_per_seed_and_per_user():
    data = shop()
    ops = ["crop", "mask", "reorder", "insert", "substitute", "sliding_window"]
    first = run(data, ops=ops, window=3)
    assert first.fingerprint() == run(data, ops=ops, window=3).fingerprint()
    assert first.fingerprint() != run(data, seed=1, ops=ops, window=3).fingerprint()
    # a user's samples do not depend on which other users are in the data
    more = run(shop([("e", "z1", 0), ("e", "z2", 1), ("e", "z3", 2)]),
               ops=["crop", "mask", "reorder"])
    alone = run(data, ops=["crop", "mask", "reorder"])

    def pick(d: ShopData) -> pd.DataFrame:
        rows = d.interactions[d.interactions["user_id"].str.startswith("a~")]
        return rows[["user_id", "item_id", "timestamp"]]

    pd.testing.assert_frame_equal(pick(more).reset_index(drop=True),
                                  pick(alone).reset_index(drop=True))


def test_max_history_min_length_and_sources():
    data = shop()
    sparse = run(data, ops=["reorder", "substitute"], max_history=5, n_per_user=3)
    made = sparse.synthetic().interactions["user_id"].str.split("~").str[0]
    assert set(made) <= {"b", "c", "d"} and "d" in set(made)
    assert run(data, ops=["crop"], min_length=11).fingerprint() == data.fingerprint()
    # negatives and synthetic rows are never sources
    neg = pd.DataFrame({"user_id": ["z"] * 3, "item_id": ["x1", "x2", "x3"],
                        "timestamp": [T0] * 3, "event": "negative"})
    with_neg = data.append("interactions", neg).append("users",
                                                       pd.DataFrame({"user_id": ["z"]}))
    out = run(with_neg, ops=["reorder"], n_per_user=4)
    assert not out.interactions["user_id"].str.startswith("z~").any()
    again = run(out, ops=["crop"])
    assert not again.interactions["user_id"].str.contains("~reorder.*~").any()


def test_same_op_twice_is_a_clear_error_and_config_is_checked():
    once = run(shop(), ops=["crop"])
    with pytest.raises(ShopAugError, match="already exist"):
        run(once, ops=["crop"])
    with pytest.raises(ConfigError):
        SequenceAugment(ops=["crop", "crop"])
    with pytest.raises(ConfigError):
        SequenceAugment(ops=["shuffle"])


def test_conformance():
    config = {"ops": ["sliding_window", "crop", "mask", "reorder", "insert", "substitute"],
              "window": 2, "stride": 1}
    passed = check_component(SequenceAugment, config=config)
    assert "same_seed_same_output" in passed and "no_input_mutation" in passed
    assert "same_seed_same_output" in check_component(SequenceAugment, data=shop(),
                                                      config=config)



def test_bare_interactions_without_event_or_session():
    inter = pd.DataFrame({"user_id": ["a"] * 4, "item_id": ["p", "q", "r", "s"],
                          "timestamp": [T0 + pd.Timedelta(days=d) for d in range(4)]})
    data = ShopData(items=pd.DataFrame({"item_id": list("pqrs"), "title": list("PQRS")}),
                    interactions=inter)
    out = run(data, ops=["crop", "sliding_window"], window=3, stride=1)
    syn = out.synthetic().interactions
    assert set(syn["user_id"]) >= {"a~crop0", "a~sliding_window0", "a~sliding_window1"}
    assert "event" not in syn.columns and (syn["value"] == 0.5).all()
