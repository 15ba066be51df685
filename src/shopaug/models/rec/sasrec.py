"""SASRec: self-attentive sequential recommendation (Kang & McAuley, ICDM 2018), in torch.

Each (pseudo-)user's training history, ordered by time (basket lines keep their row
order), is cut to its last ``max_len + 1`` items; the model learns to predict every
next item from the items before it through ``blocks`` causal self-attention blocks,
against sampled negatives (a sampled softmax by default, or the paper's binary
cross-entropy). Synthetic rows scale their positions' loss by their weight
(``weights()``): a down-weighted cropped sequence teaches less than a real one.
Recommendations score every training item from the last ``max_len`` items of the
user's history; users without one get the most popular items.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from shopaug.components import ComponentConfig
from shopaug.data.bundle import ShopData
from shopaug.errors import ShopAugError
from shopaug.models.rec.base import Recommender, positives, time_order, weights
from shopaug.models.rec.popularity import Popularity

log = logging.getLogger(__name__)


class SASRecConfig(ComponentConfig):
    hidden: int = Field(64, ge=2)
    blocks: int = Field(2, ge=1)
    heads: int = Field(1, ge=1)
    #: positions the model reads (the most recent items of a history)
    max_len: int = Field(50, ge=2)
    dropout: float = Field(0.2, ge=0, lt=1)
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(1e-3, gt=0)
    #: sampled negatives per position
    neg: int = Field(20, ge=1)
    #: "bce": the paper's binary cross-entropy (one negative, mean over several);
    #: "sampled_softmax": softmax over the positive and its negatives, which ranks
    #: better here (demo data: NDCG@10 0.106 vs 0.077 with BCE) for a little more time
    loss: Literal["bce", "sampled_softmax"] = "sampled_softmax"
    #: scale each position's loss by its row's weight (synthetic rows: their value)
    use_weights: bool = True
    #: torch CPU threads during fit and recommend (restored afterwards). With more than
    #: one on a busy machine, start Python with OMP_WAIT_POLICY=PASSIVE: spinning idle
    #: OpenMP threads made an epoch 6x slower than one thread (bench/sasrec_epoch.py)
    threads: int = Field(1, ge=1)
    exclude_seen: bool = False

    @model_validator(mode="after")
    def _heads_divide(self) -> SASRecConfig:
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be a multiple of heads ({self.heads})")
        return self


def sequences(inter: pd.DataFrame, item_index: pd.Index, max_len: int,
              row_weight: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """Per user, the last ``max_len`` items (codes 1..n, 0 = padding), right-aligned.

    ``inter`` must be in :func:`time_order`. Returns (user ids, items, weights, lengths);
    with ``max_len + 1`` columns this is a training batch source (inputs = all but the
    last column, targets = all but the first).
    """
    user_codes, user_ids = pd.factorize(inter["user_id"], sort=False)
    items = item_index.get_indexer(inter["item_id"]) + 1
    lengths = np.bincount(user_codes, minlength=len(user_ids))
    ends = np.cumsum(lengths)
    out = np.zeros((len(user_ids), max_len), dtype=np.int64)
    wout = np.zeros((len(user_ids), max_len), dtype=np.float32)
    w = row_weight if row_weight is not None else np.ones(len(inter))
    for j in range(1, max_len + 1):  # column from the right; vectorised over users
        has = lengths >= j
        out[has, max_len - j] = items[ends[has] - j]
        wout[has, max_len - j] = w[ends[has] - j]
    return user_ids.to_numpy(dtype=object), out, wout, np.minimum(lengths, max_len)


def batches(seqs: Any, w: Any, n_items: int, cfg: SASRecConfig, gen: Any) -> Iterator[tuple]:
    """One epoch of shuffled training batches: (inputs, targets, target weights, sampled
    negatives). Negatives are uniform over the items and may hit one of the user's own
    (rare with thousands of items; SASRec's rejection loop costs more than it helps)."""
    import torch

    for idx in torch.randperm(len(seqs), generator=gen).split(cfg.batch_size):
        inputs, targets = seqs[idx, :-1], seqs[idx, 1:]
        weight = w[idx, 1:] * (targets > 0)
        negs = torch.randint(1, n_items + 1, (*targets.shape, cfg.neg), generator=gen)
        yield inputs, targets, weight, negs


def _network(n_items: int, cfg: SASRecConfig) -> Any:
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            d, p = cfg.hidden, cfg.dropout
            self.ln_attn = nn.LayerNorm(d, eps=1e-8)
            self.attn = nn.MultiheadAttention(d, cfg.heads, dropout=p, batch_first=True)
            self.ln_ff = nn.LayerNorm(d, eps=1e-8)
            self.ff = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Dropout(p),
                                    nn.Linear(d, d), nn.Dropout(p))

        def forward(self, x: torch.Tensor, mask: torch.Tensor,
                    keep: torch.Tensor) -> torch.Tensor:
            q = self.ln_attn(x)
            x = q + self.attn(q, x, x, attn_mask=mask, need_weights=False)[0]
            x = self.ln_ff(x)
            return (x + self.ff(x)) * keep

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.items = nn.Embedding(n_items + 1, cfg.hidden, padding_idx=0)
            self.positions = nn.Embedding(cfg.max_len, cfg.hidden)
            self.drop = nn.Dropout(cfg.dropout)
            self.blocks = nn.ModuleList(Block() for _ in range(cfg.blocks))
            self.ln = nn.LayerNorm(cfg.hidden, eps=1e-8)
            causal = torch.triu(torch.ones(cfg.max_len, cfg.max_len, dtype=torch.bool), 1)
            self.register_buffer("causal", causal, persistent=False)
            self.register_buffer("eye", torch.eye(cfg.max_len, dtype=torch.bool),
                                 persistent=False)

        def forward(self, seq: torch.Tensor) -> torch.Tensor:
            """Hidden state per position: (batch, max_len, hidden)."""
            pad = seq == 0
            keep = (~pad).unsqueeze(-1).float()
            x = self.items(seq) * math.sqrt(cfg.hidden) + self.positions.weight
            x = self.drop(x) * keep
            # Causal, and no attending to padding (a padded query sees only itself, so
            # no row of the mask is all blocked): short histories are not diluted.
            mask = self.causal | (pad.unsqueeze(1) & ~self.eye)
            mask = mask.repeat_interleave(cfg.heads, dim=0)
            for block in self.blocks:
                x = block(x, mask, keep)
            return self.ln(x)

    net = Net()
    # Xavier init, as the reference implementation: N(0, 1) embeddings make the first
    # logits huge (std ~ sqrt(hidden)) and cost many epochs to unlearn.
    for param in net.parameters():
        if param.dim() > 1:
            nn.init.xavier_normal_(param)
    with torch.no_grad():
        net.items.weight[0].zero_()
    return net


class SASRec(Recommender):
    """Self-attentive sequential recommender (see the module docstring)."""

    name = "sasrec"
    Config = SASRecConfig
    config: SASRecConfig

    def fit(self, train: ShopData, seed: int = 0) -> SASRec:
        cfg = self.config
        inter = positives(train.interactions)
        inter = inter.iloc[time_order(inter)].reset_index(drop=True)
        real = inter[inter["origin"] == "real"]
        # Fallback for users without a history; pseudo-users would inflate its counts.
        self.fallback_ = Popularity(exclude_seen=cfg.exclude_seen).fit(
            train.replace(interactions=real if len(real) else inter))
        self.item_ids_ = pd.Index(np.sort(inter["item_id"].unique()))
        self.losses_: list[float] = []
        self.epoch_seconds_: list[float] = []
        users, hist, _, _ = sequences(inter, self.item_ids_, cfg.max_len)
        self.users_ = pd.Index(users)
        self.history_ = hist
        self.seen_ = self._seen(inter) if cfg.exclude_seen else None
        self.net_ = None
        row_w = weights(inter) if cfg.use_weights else None
        _, seqs, w, lengths = sequences(inter, self.item_ids_, cfg.max_len + 1, row_w)
        trainable = lengths >= 2  # one item predicts nothing
        if not trainable.any():  # nothing to learn from: everyone gets the fallback
            return self
        seqs, w = seqs[trainable], w[trainable]
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(cfg.threads)
        try:
            with torch.random.fork_rng(devices=[]):  # seeding must not touch global state
                torch.manual_seed(seed)
                self.net_ = _network(len(self.item_ids_), cfg)
                self._train(torch.from_numpy(seqs), torch.from_numpy(w), seed)
        finally:
            torch.set_num_threads(threads)
        return self

    def _seen(self, inter: pd.DataFrame) -> Any:
        """Users x items, True where the user's whole history (not only its last
        max_len items) holds the item."""
        from scipy import sparse

        rows = self.users_.get_indexer(inter["user_id"])
        cols = self.item_ids_.get_indexer(inter["item_id"])
        return sparse.csr_matrix((np.ones(len(rows), dtype=bool), (rows, cols)),
                                 shape=(len(self.users_), len(self.item_ids_)))

    def _train(self, seqs: Any, w: Any, seed: int) -> None:
        import torch
        import torch.nn.functional as F

        cfg, net = self.config, self.net_
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(0.9, 0.98))
        n_items = len(self.item_ids_)
        net.train()
        for epoch in range(cfg.epochs):
            start, total, steps = time.perf_counter(), 0.0, 0
            for inputs, targets, weight, negs in batches(seqs, w, n_items, cfg, gen):
                h = net(inputs)
                pos = (h * net.items(targets)).sum(-1)
                neg = torch.einsum("bld,blnd->bln", h, net.items(negs))
                if cfg.loss == "bce":
                    per = F.softplus(-pos) + F.softplus(neg).mean(-1)
                else:
                    per = -torch.log_softmax(torch.cat([pos.unsqueeze(-1), neg], -1), -1)[..., 0]
                # Normalised by positions, not by weight: down-weighted rows teach less.
                loss = (per * weight).sum() / (targets > 0).sum().clamp(min=1)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total, steps = total + float(loss.detach()), steps + 1
            self.losses_.append(total / max(steps, 1))
            self.epoch_seconds_.append(time.perf_counter() - start)
            log.debug("sasrec epoch %d: loss %.4f (%.1f s)", epoch, self.losses_[-1],
                      self.epoch_seconds_[-1])

    def recommend(self, user_ids: Sequence[str], k: int = 10) -> pd.DataFrame:
        if not hasattr(self, "fallback_"):
            raise ShopAugError("call fit() before recommend()")
        users = list(dict.fromkeys(map(str, user_ids)))
        rows = self.users_.get_indexer(users) if len(self.users_) else np.full(len(users), -1)
        known = rows >= 0 if self.net_ is not None else np.zeros(len(users), dtype=bool)
        frames = []
        if known.any():
            frames.append(self._scored([u for u, ok in zip(users, known, strict=True) if ok],
                                       rows[known], k))
        if (~known).any():
            frames.append(self.fallback_.recommend(
                [u for u, ok in zip(users, known, strict=True) if not ok], k))
        if not frames:
            return pd.DataFrame({"user_id": pd.Series(dtype="str"),
                                 "item_id": pd.Series(dtype="str"),
                                 "rank": pd.Series(dtype="int64"),
                                 "score": pd.Series(dtype="float64")})
        out = pd.concat(frames, ignore_index=True)
        position = pd.Series(np.arange(len(users)), index=users)
        out = out.assign(_at=out["user_id"].map(position).to_numpy())
        out = out.sort_values(["_at", "rank"], kind="stable").drop(columns="_at")
        return out.reset_index(drop=True).astype({"user_id": "str", "item_id": "str"})

    def _scored(self, users: list[str], rows: np.ndarray, k: int) -> pd.DataFrame:
        import torch

        kk = min(k, len(self.item_ids_))
        threads = torch.get_num_threads()
        torch.set_num_threads(self.config.threads)
        top, score = [], []
        try:
            net = self.net_
            net.eval()
            with torch.no_grad():
                table = net.items.weight[1:]
                for lo in range(0, len(rows), 512):
                    batch = rows[lo:lo + 512]
                    scores = net(torch.from_numpy(self.history_[batch]))[:, -1] @ table.T
                    if self.seen_ is not None:
                        scores[torch.from_numpy(self.seen_[batch].toarray())] = -torch.inf
                    s, i = torch.topk(scores, kk, dim=1)
                    top.append(i.numpy())
                    score.append(s.numpy())
        finally:
            torch.set_num_threads(threads)
        out = pd.DataFrame({
            "user_id": np.repeat(np.array(users, dtype=object), kk),
            "item_id": self.item_ids_.to_numpy(dtype=object)[np.concatenate(top).ravel()],
            "rank": np.tile(np.arange(1, kk + 1), len(users)),
            "score": np.concatenate(score).ravel().astype(np.float64),
        })
        return out[np.isfinite(out["score"].to_numpy())]
