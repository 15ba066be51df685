"""Sequence augmentation (CL4SRec / CoSeRec style): new training sequences cut, masked,
shuffled or edited from each user's purchase history.

A user's *sequence* is their item rows ordered by time; lines of one basket share a
timestamp and keep their row order. Every augmented sequence becomes a pseudo-user
``"{user_id}~{op}{n}"`` with its own ``users`` row (docs/design/recommendation.md), so
it is never mixed into a real user's history. Operators:

- ``sliding_window``: windows of ``window`` items every ``stride`` items (sequences
  longer than ``window`` only; at most ``max_windows`` per user, picked at random).
- ``crop``: a random contiguous run of ``crop_ratio`` of the sequence.
- ``mask``: ``mask_ratio`` of the positions dropped. At the data level a masked item
  can only be *dropped*; a model's own mask token (as in CL4SRec's contrastive loss)
  is the model's business.
- ``reorder``: a random span of ``reorder_ratio`` of the sequence shuffled; the
  timestamps stay with the positions, so the order the data says is the new order.
- ``insert``: before ``insert_ratio`` of the positions, an item similar to the one
  there (one of its ``top_n`` nearest by item-item cosine of co-occurrence).
- ``substitute``: ``substitute_ratio`` of the items replaced by a similar item.

Every synthetic row copies its timestamp, event and session from a source row, so
no synthetic event is later than its user's last real one (or the split cut), and
carries ``value = weight``. A sample identical to its source, or of a single item
(no sequence at all: it would only add popularity), is dropped; pseudo-user numbers
are the sample numbers, so they may have gaps. Only real, non-negative events are
sources, and a run over data that already holds the same op's pseudo-users fails.
``max_history`` restricts augmentation to sparse users, who have the least signal.
All randomness is a hash of (run seed, user, op, sample, position): a user's samples
do not change when other users are added or removed.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from shopaug.augment.base import Augmenter, record_seed
from shopaug.components import ComponentConfig
from shopaug.data.bundle import ShopData
from shopaug.data.schema import PROVENANCE_NAMES
from shopaug.errors import ShopAugError
from shopaug.models.rec.base import positives, time_order

if TYPE_CHECKING:
    from shopaug.pipeline.runner import RunContext

log = logging.getLogger(__name__)

Op = Literal["sliding_window", "crop", "mask", "reorder", "insert", "substitute"]
OPS: tuple[str, ...] = Op.__args__  # type: ignore[attr-defined]


class SequenceAugmentConfig(ComponentConfig):
    ops: tuple[Op, ...] = ("crop", "mask", "reorder")
    #: samples per user and op (sliding windows: see max_windows)
    n_per_user: int = Field(1, ge=1, le=50)
    crop_ratio: float = Field(0.6, gt=0, lt=1)
    mask_ratio: float = Field(0.3, gt=0, lt=1)
    reorder_ratio: float = Field(0.3, gt=0, le=1)
    insert_ratio: float = Field(0.3, gt=0, le=1)
    substitute_ratio: float = Field(0.3, gt=0, le=1)
    #: insert/substitute pick one of an item's top_n most similar items, uniformly
    top_n: int = Field(5, ge=1, le=100)
    window: int = Field(20, ge=2)
    stride: int = Field(10, ge=1)
    #: windows kept per user (None: all)
    max_windows: int | None = Field(5, ge=1)
    #: users with shorter sequences are left alone (nothing to crop or shuffle)
    min_length: int = Field(2, ge=2)
    #: only users with at most this many interactions are augmented (None: everyone)
    max_history: int | None = Field(None, ge=2)
    #: ``value`` of synthetic rows: their training weight
    weight: float = Field(0.5, gt=0)

    @field_validator("ops")
    @classmethod
    def _distinct(cls, ops: tuple[str, ...]) -> tuple[str, ...]:
        if not ops:
            raise ValueError("give at least one op")
        if len(set(ops)) != len(ops):
            raise ValueError(f"ops repeat an entry: {list(ops)}")
        return ops


# -- counter-based randomness ------------------------------------------------------
def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a good 64-bit hash, vectorised (uint64 wraps around)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _hash(seed: np.ndarray, *counters: np.ndarray | int) -> np.ndarray:
    x = np.asarray(seed, dtype=np.uint64)
    for c in counters:
        x = _mix(x + np.uint64(0x9E3779B97F4A7C15) + np.asarray(c).astype(np.uint64))
    return x


def _uniform(seed: np.ndarray, *counters: np.ndarray | int) -> np.ndarray:
    """Uniform [0, 1) floats, one per element, fixed by (seed, counters)."""
    return (_hash(seed, *counters) >> np.uint64(11)).astype(np.float64) * 2.0**-53


# -- ragged helpers ------------------------------------------------------------------
def _ragged(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For groups of the given lengths: (group of each element, position in its group)."""
    owner = np.repeat(np.arange(len(lengths)), lengths)
    starts = np.cumsum(lengths) - lengths
    return owner, np.arange(int(lengths.sum())) - starts[owner]


def _rank_in_group(owner: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Rank (0 = smallest key) of each element within its group; owner must be sorted."""
    order = np.lexsort((key, owner))
    first = np.searchsorted(owner, owner)  # index of each group's first element
    rank = np.empty(len(owner), dtype=np.int64)
    rank[order] = np.arange(len(owner)) - first[order]
    return rank


def item_neighbours(user: np.ndarray, item: np.ndarray, n_items: int,
                    top_n: int) -> tuple[np.ndarray, np.ndarray]:
    """Each item's ``top_n`` most similar items by cosine of their buyer sets.

    Returns ``(neighbours, count)``: an (n_items, top_n) array padded with -1, and the
    number of neighbours with a positive similarity per item.
    """
    from scipy import sparse

    n_users = int(user.max()) + 1 if len(user) else 0
    x = sparse.csr_matrix((np.ones(len(user), np.float32), (user, item)),
                          shape=(n_users, n_items))
    x.data[:] = 1.0  # duplicates were summed: a buyer counts once
    xt = x.T.tocsr()
    norm = np.sqrt(np.asarray(x.sum(axis=0)).ravel())
    norm[norm == 0] = 1.0
    top = min(top_n, max(n_items - 1, 1))
    out = np.full((n_items, top_n), -1, dtype=np.int64)
    count = np.zeros(n_items, dtype=np.int64)
    block = 1024  # dense (block x n_items) float32 similarities: a few MB at a time
    for lo in range(0, n_items, block):
        hi = min(lo + block, n_items)
        sim = (xt[lo:hi] @ x).toarray()
        sim = sim.astype(np.float32) / (norm[lo:hi, None] * norm[None, :])
        sim[np.arange(hi - lo), np.arange(lo, hi)] = -1.0  # never an item's own neighbour
        # Exactly `top` per row, ties at the boundary going to the lower item index.
        kth = -np.partition(-sim, top - 1, axis=1)[:, top - 1:top]
        above = sim > kth
        tied = sim == kth
        chosen = above | (tied & (np.cumsum(tied, axis=1) <= top - above.sum(1, keepdims=True)))
        part = np.nonzero(chosen)[1].reshape(hi - lo, top)
        vals = np.take_along_axis(sim, part, axis=1)
        order = np.lexsort((part, -vals), axis=1)  # best first, ties by item index
        part = np.take_along_axis(part, order, axis=1)
        vals = np.take_along_axis(vals, order, axis=1)
        ok = vals > 0
        out[lo:hi, :top] = np.where(ok, part, -1)[:, :top]
        count[lo:hi] = ok.sum(axis=1)
    return out, count


class SequenceAugment(Augmenter):
    """Pseudo-users with cropped, masked, reordered, windowed or edited purchase
    sequences of real users (see the module docstring)."""

    name = "sequence_augment"
    Config = SequenceAugmentConfig
    requires: ClassVar[dict[str, tuple[str, ...]]] = {}
    config: SequenceAugmentConfig

    def run(self, data: ShopData, ctx: RunContext) -> ShopData:
        cfg = self.config
        inter = positives(data.interactions)
        # Only real events are sources: augmenting synthetic rows would compound noise.
        inter = inter[inter["origin"] == "real"].reset_index(drop=True)
        if inter.empty:
            return data
        inter = inter.iloc[time_order(inter)].reset_index(drop=True)
        user_codes, user_ids = pd.factorize(inter["user_id"], sort=True)
        item_codes, item_ids = pd.factorize(inter["item_id"], sort=True)
        lengths = np.bincount(user_codes, minlength=len(user_ids))
        starts = np.cumsum(lengths) - lengths
        eligible = lengths >= cfg.min_length
        if cfg.max_history is not None:
            eligible &= lengths <= cfg.max_history
        users = np.flatnonzero(eligible)
        if not len(users):
            return data
        user_seed = np.array([record_seed(ctx.seed, self.name, str(user_ids[u]))
                              for u in users], dtype=np.uint64)
        neighbours = None
        if {"insert", "substitute"} & set(cfg.ops):
            neighbours = item_neighbours(user_codes, item_codes, len(item_ids), cfg.top_n)
        seq = _Sequences(starts[users], lengths[users], item_codes, user_seed)
        parts = []
        for op in cfg.ops:
            made = seq.apply(op, cfg, neighbours)
            if made is not None:
                parts.append((op, *made))
        if not parts:
            return data
        return self._emit(data, ctx, inter, users, user_ids, item_ids, parts)

    def _emit(self, data: ShopData, ctx: RunContext, inter: pd.DataFrame, users: np.ndarray,
              user_ids: pd.Index, item_ids: pd.Index,
              parts: list[tuple[str, np.ndarray, ...]]) -> ShopData:
        """Turn the samples of every op into interaction rows and pseudo-user rows."""
        frames, pseudo_rows = [], []
        for op, src, number, owner, row, item in parts:
            source = user_ids[users[src]].to_numpy(dtype=object)
            pseudo = np.array([f"{u}~{op}{n}" for u, n in zip(source, number, strict=True)],
                              dtype=object)
            pseudo_rows.append(pd.DataFrame({"user_id": pseudo, "_source": source}))
            frame = pd.DataFrame({"user_id": pseudo[owner],
                                  "item_id": item_ids[item].to_numpy(dtype=object),
                                  "timestamp": inter["timestamp"].to_numpy()[row],
                                  "value": self.config.weight})
            for column in ("event", "session_id"):  # optional columns, copied when present
                if column in inter.columns:
                    frame[column] = inter[column].to_numpy()[row]
            frames.append(frame)
        new_users = pd.concat(pseudo_rows, ignore_index=True)
        taken = set(data.users["user_id"]) | set(data.interactions["user_id"])
        clash = [u for u in new_users["user_id"] if u in taken]
        if clash:
            raise ShopAugError(f"pseudo-users {clash[:3]} already exist: sequence_augment ran "
                               "twice with the same op. Fix: run each op once per pipeline")
        # A pseudo-user inherits its source user's profile columns (country, ...).
        profile = data.users.drop(columns=list(PROVENANCE_NAMES)).rename(
            columns={"user_id": "_source"}).drop_duplicates("_source")
        new_users = new_users.merge(profile, on="_source", how="left").drop(columns="_source")
        rows = pd.concat(frames, ignore_index=True)
        log.info("%s: %d pseudo-users, %d rows", self.name, len(new_users), len(rows))
        return (data.append("users", self.provenance(new_users, ctx))
                .append("interactions", self.provenance(rows, ctx)))


class _Sequences:
    """The source sequences (flat, ordered rows with per-user offsets) and the ops."""

    def __init__(self, start: np.ndarray, length: np.ndarray, item: np.ndarray,
                 seed: np.ndarray) -> None:
        self.start, self.length, self.item, self.seed = start, length, item, seed

    def apply(self, op: str, cfg: SequenceAugmentConfig,
              neighbours: tuple[np.ndarray, np.ndarray] | None
              ) -> tuple[np.ndarray, ...] | None:
        """Samples of one op: (source index, sample number) per sample and (sample, source
        row, item) per output row, rows of a sample in sequence order. Samples that come
        out identical to their source are dropped."""
        op_code = OPS.index(op)
        if op == "sliding_window":
            src, number, start, length = self._windows(cfg, op_code)
            owner, pos = _ragged(length)
            row = start[owner] + pos
            item = self.item[row]
            return self._pack(src, number, owner, row, item, changed=None)
        k = cfg.n_per_user
        src = np.repeat(np.arange(len(self.start)), k)
        number = np.tile(np.arange(k), len(self.start))
        seed = _hash(self.seed[src], op_code, number)
        length = self.length[src]
        owner, pos = _ragged(length)
        row = self.start[src][owner] + pos
        item = self.item[row]
        if op == "crop":
            size = np.maximum(1, np.floor(cfg.crop_ratio * length)).astype(np.int64)
            begin = np.floor(_uniform(seed, 1) * (length - size + 1)).astype(np.int64)
            keep = (pos >= begin[owner]) & (pos < (begin + size)[owner])
            return self._pack(src, number, owner[keep], row[keep], item[keep], changed=None)
        if op == "mask":
            size = np.clip(np.floor(cfg.mask_ratio * length), 1, length - 1).astype(np.int64)
            keep = _rank_in_group(owner, _uniform(seed[owner], 2, pos)) >= size[owner]
            return self._pack(src, number, owner[keep], row[keep], item[keep], changed=None)
        if op == "reorder":
            size = np.clip(np.floor(cfg.reorder_ratio * length), 2, length).astype(np.int64)
            begin = np.floor(_uniform(seed, 1) * (length - size + 1)).astype(np.int64)
            inside = (pos >= begin[owner]) & (pos < (begin + size)[owner])
            # Inside the span a random key in [begin, begin + size - 1]; outside the
            # position itself: sorting by it shuffles the span and nothing else.
            key = pos.astype(np.float64)
            key[inside] = (begin[owner] + _uniform(seed[owner], 2, pos)
                           * (size[owner] - 1))[inside]
            order = np.lexsort((key, owner))
            return self._pack(src, number, owner, row, item[order], changed=item)
        assert neighbours is not None
        nbr, count = neighbours
        ratio = cfg.insert_ratio if op == "insert" else cfg.substitute_ratio
        size = np.clip(np.floor(ratio * length), 1, length).astype(np.int64)
        chosen = _rank_in_group(owner, _uniform(seed[owner], 2, pos)) < size[owner]
        pick = np.floor(_uniform(seed[owner], 3, pos) * count[item]).astype(np.int64)
        chosen &= count[item] > 0
        similar = nbr[item, np.minimum(pick, nbr.shape[1] - 1)]
        if op == "substitute":
            return self._pack(src, number, owner, row, np.where(chosen, similar, item),
                              changed=item)
        # insert: the similar item goes right before its anchor, with the anchor's time
        key = np.concatenate([2 * pos + 1, 2 * pos[chosen]])
        owner2 = np.concatenate([owner, owner[chosen]])
        order = np.lexsort((key, owner2))
        return self._pack(src, number, owner2[order],
                          np.concatenate([row, row[chosen]])[order],
                          np.concatenate([item, similar[chosen]])[order], changed=None,
                          grew=np.bincount(owner[chosen], minlength=len(src)) > 0)

    def _windows(self, cfg: SequenceAugmentConfig,
                 op_code: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        count = np.where(self.length > cfg.window,
                         (self.length - cfg.window) // cfg.stride + 1, 0)
        src, number = _ragged(count)
        if cfg.max_windows is not None:
            key = _uniform(_hash(self.seed[src], op_code), number)
            keep = _rank_in_group(src, key) < cfg.max_windows
            src, number = src[keep], number[keep]
        start = self.start[src] + number * cfg.stride
        return src, number, start, np.full(len(src), cfg.window, dtype=np.int64)

    @staticmethod
    def _pack(src: np.ndarray, number: np.ndarray, owner: np.ndarray, row: np.ndarray,
              item: np.ndarray, changed: np.ndarray | None,
              grew: np.ndarray | None = None) -> tuple[np.ndarray, ...] | None:
        """Drop samples that equal their source or have fewer than two items (one item
        is no sequence: it would only add popularity); index the kept ones densely.

        ``changed`` (same-length ops): the source items to compare with; ``grew``
        (insert): which samples got longer; neither: every sample differs (shorter)."""
        differs = np.bincount(owner, minlength=len(src)) >= 2
        if changed is not None:
            differs &= np.bincount(owner, weights=item != changed, minlength=len(src)) > 0
        elif grew is not None:
            differs &= grew
        if not differs.any():
            return None
        new_index = np.cumsum(differs) - 1
        keep = differs[owner]
        return (src[differs], number[differs], new_index[owner[keep]], row[keep], item[keep])
