"""A MiniLM bi-encoder: zero-shot, or fine-tuned on (query, item) pairs, real and
synthetic. Synthetic queries are exactly what a bi-encoder wants: many positives for
items no real query has reached."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from shopaug.components import ComponentConfig
from shopaug.data.bundle import ShopData
from shopaug.errors import ShopAugError
from shopaug.models.search.base import SearchModel, item_text
from shopaug.models.search.encoder import cached_encode, encode, load_encoder, minilm_path

log = logging.getLogger(__name__)

#: fine-tuned encoders by training digest, newest last. A benchmark fits the same
#: encoder on the same pairs more than once (a teacher, then the real-only variant):
#: the second fit reuses the first. Trained models are never changed afterwards.
_TRAINED: OrderedDict[str, Any] = OrderedDict()
_TRAINED_MAX = 2
#: the config fields that change what training produces (the pairs cover the rest)
_TRAINING_FIELDS = ("epochs", "batch_size", "lr", "min_gain", "loss", "max_seq_length")


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence load reports and weight-loading bars; restore the caller's settings."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    verbosity, bar = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar:
            hf_logging.enable_progress_bar()


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` torch CPU threads, then restore. On a machine whose cores are
    busy with other work, 1 thread trains several times faster than 2: OpenMP
    threads wait for each other at every operation."""
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def training_pairs(train: ShopData, use_synthetic: bool = True, max_pairs: int | None = None,
                   seed: int = 0, with_description: bool = True,
                   max_synthetic_pairs: int | None = None,
                   min_gain: float | None = None) -> pd.DataFrame:
    """Judged (query, item) pairs with texts: columns query_id, item_id, query, item,
    gain, origin. ``min_gain`` keeps only pairs at or above it (before any cap).
    ``max_pairs`` caps the real pairs and ``max_synthetic_pairs`` the synthetic ones,
    each sampled with ``seed``: a real-only and an augmented model then train on the
    same real pairs, and the augmented one on synthetic pairs on top of them."""
    judg = train.judgments
    if not use_synthetic:
        judg = judg[judg["origin"] == "real"]
    items = train.items.drop_duplicates("item_id")
    texts = pd.Series(item_text(items, with_description).to_numpy(), index=items["item_id"])
    queries = train.queries.drop_duplicates("query_id").set_index("query_id")["text"]
    pairs = judg[["query_id", "item_id", "gain", "origin"]].assign(
        query=judg["query_id"].map(queries), item=judg["item_id"].map(texts))
    pairs = pairs.dropna(subset=["query", "item", "gain"])
    pairs = pairs[(pairs["query"].str.strip() != "") & (pairs["item"].str.strip() != "")]
    if min_gain is not None:
        pairs = pairs[pairs["gain"] >= min_gain]
    # real judgments win over synthetic ones for the same pair
    pairs = pairs.sort_values("origin", key=lambda s: s != "real", kind="stable")
    pairs = pairs.drop_duplicates(["query_id", "item_id"])
    pairs = pairs.sort_values(["query_id", "item_id"]).reset_index(drop=True)
    is_real = (pairs["origin"] == "real").to_numpy()
    keep = np.ones(len(pairs), dtype=bool)
    # the real sample depends only on the real pairs, whatever synthetic ones are present
    for rows, cap, rng_seed in ((np.flatnonzero(is_real), max_pairs, seed),
                                (np.flatnonzero(~is_real), max_synthetic_pairs, seed + 1)):
        if cap is not None and len(rows) > cap:
            chosen = np.random.default_rng(rng_seed).choice(len(rows), cap, replace=False)
            keep[np.setdiff1d(rows, rows[chosen])] = False
    return pairs[keep].reset_index(drop=True)


def distinct_batches(pairs: pd.DataFrame, batch_size: int, seed: int) -> list[list[int]]:
    """Shuffled batches in which no query and no item repeats, so in-batch negatives
    are never another positive of the same query (common with graded judgments)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pairs)).tolist()
    queries, items = pairs["query"].to_numpy(), pairs["item"].to_numpy()
    batches = []
    while order:
        batch, seen_q, seen_i, rest = [], set(), set(), []
        for idx in order:
            if len(batch) < batch_size and queries[idx] not in seen_q \
                    and items[idx] not in seen_i:
                batch.append(idx)
                seen_q.add(queries[idx])
                seen_i.add(items[idx])
            else:
                rest.append(idx)
        batches.append(batch)
        order = rest
    batches = [b for b in batches if len(b) > 1]
    # Late batches hold the leftovers of queries with many positives: spread them out.
    return [batches[i] for i in rng.permutation(len(batches))]


class BiEncoderConfig(ComponentConfig):
    #: a sentence-transformers directory; None = the packaged all-MiniLM-L6-v2
    model_path: str | None = None
    fine_tune: bool = True
    #: train on synthetic pairs too, when the data has them
    use_synthetic: bool = True
    epochs: int = 1
    batch_size: int = 32
    lr: float = 2e-5
    #: cap on real training pairs (None: all); synthetic pairs come on top of them
    max_pairs: int | None = None
    #: separate cap on synthetic pairs (None: all)
    max_synthetic_pairs: int | None = None
    #: pairs with gain >= min_gain are positives (for the mnrl loss)
    min_gain: float = 0.5
    #: mnrl: in-batch negatives over positive pairs; cosine: regress cos on gain
    loss: Literal["mnrl", "cosine"] = "mnrl"
    max_seq_length: int = 128
    with_description: bool = True
    #: embed the whole catalog at fit time instead of each item on first use
    precompute_items: bool = False
    #: torch CPU threads for training and encoding (None: torch's default); use 1
    #: when other work shares the cores
    threads: int | None = None
    #: dense doc2query: score = cos(query, item) + w * max cos(query, a synthetic query
    #: written for the item); items without synthetic queries use cos(query, item)
    #: in that slot. 0 = off.
    expansion_weight: float = Field(0.0, ge=0.0)
    #: load the synthetic queries for `expansion_scores` even when the weight is 0
    keep_expansions: bool = False


class BiEncoder(SearchModel):
    """Cosine similarity of query and item embeddings."""

    name = "biencoder"
    Config = BiEncoderConfig

    def fit(self, train: ShopData, seed: int = 0) -> BiEncoder:
        cfg = self.config
        path = str(cfg.model_path or minilm_path())
        start = time.perf_counter()
        self.n_train_pairs_ = 0
        if cfg.fine_tune:
            pairs = training_pairs(train, cfg.use_synthetic, cfg.max_pairs, seed,
                                   cfg.with_description, cfg.max_synthetic_pairs,
                                   min_gain=cfg.min_gain if cfg.loss == "mnrl" else None)
            digest = self._digest(path, pairs, seed)
            if digest in _TRAINED:
                self.model_, self.n_train_pairs_ = _TRAINED[digest]
                _TRAINED.move_to_end(digest)
                log.info("biencoder: reusing an encoder trained on the same pairs")
            else:
                with torch_threads(cfg.threads):
                    self.model_ = self._train(path, pairs, seed)
                _TRAINED[digest] = (self.model_, self.n_train_pairs_)
                while len(_TRAINED) > _TRAINED_MAX:
                    _TRAINED.popitem(last=False)
            self.frozen_key_: str | None = f"trained:{digest}"
        else:
            with quiet_transformers():
                self.model_ = load_encoder(path)  # shared and cached: never changed here
            if self.model_.max_seq_length != cfg.max_seq_length:
                self.model_ = self._load(path)
            # a zero-shot encoder never changes: its embeddings can be shared process-wide
            self.frozen_key_ = f"{path}|{cfg.max_seq_length}"
        self.fit_seconds_ = time.perf_counter() - start
        items = train.items.drop_duplicates("item_id")
        self.item_text_ = pd.Series(item_text(items, cfg.with_description).to_numpy(),
                                    index=items["item_id"].astype(str))
        self.item_emb_: dict[str, np.ndarray] = {}
        self.expansions_ = pd.DataFrame(columns=["item_id", "text"])
        if cfg.expansion_weight > 0 or cfg.keep_expansions:
            from shopaug.models.search.lexical import synthetic_expansions

            self.expansions_ = synthetic_expansions(train).astype({"item_id": str})
        self.query_emb_: dict[str, np.ndarray] = {}
        if cfg.precompute_items:
            self.item_embeddings(self.item_text_.index.to_numpy())
        log.info("biencoder: trained on %d pairs in %.1fs", self.n_train_pairs_,
                 self.fit_seconds_)
        return self

    def item_embeddings(self, item_ids: np.ndarray) -> np.ndarray:
        """Unit embeddings of known items, computed once on first use: reranking needs
        only the judged candidates, a fraction of the catalog (~20-35 items/s on 2 cores)."""
        missing = sorted(set(item_ids) - self.item_emb_.keys())
        if missing:
            start = time.perf_counter()
            emb = self._encode(self.item_text_.loc[missing].tolist())
            self.item_emb_.update(zip(missing, emb, strict=True))
            log.info("biencoder: embedded %d items in %.1fs", len(missing),
                     time.perf_counter() - start)
        if not len(item_ids):
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self.item_emb_[i] for i in item_ids])

    def _digest(self, path: str, pairs: pd.DataFrame, seed: int) -> str:
        settings = {"path": path, "seed": seed,
                    **self.config.model_dump(include=set(_TRAINING_FIELDS))}
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
        if len(pairs):
            digest.update(pd.util.hash_pandas_object(pairs[["query", "item", "gain"]],
                                                     index=False).to_numpy().tobytes())
        return digest.hexdigest()[:24]

    def _train(self, path: str, pairs: pd.DataFrame, seed: int):
        import torch
        from sentence_transformers import InputExample
        from sentence_transformers.sentence_transformer import losses
        from torch.utils.data import DataLoader

        cfg = self.config
        batches: list[list[int]] = []
        torch.manual_seed(seed)
        model = self._load(path)  # a fresh copy to train, not the shared cached one
        if cfg.loss == "mnrl":
            examples = [InputExample(texts=[q, i]) for q, i in zip(pairs["query"], pairs["item"],
                                                                    strict=True)]
            # old_fit replays a batch sampler unchanged each epoch: lay out every epoch's
            # own shuffle up front and run them as one pass.
            batches = [b for epoch in range(cfg.epochs)
                       for b in distinct_batches(pairs, cfg.batch_size, seed + epoch)]
            loader = DataLoader(examples, batch_sampler=batches)
            epochs = 1
            loss = losses.MultipleNegativesRankingLoss(model)
        else:
            examples = [InputExample(texts=[q, i], label=float(g)) for q, i, g in
                        zip(pairs["query"], pairs["item"], pairs["gain"], strict=True)]
            generator = torch.Generator().manual_seed(seed)
            loader = DataLoader(examples, batch_size=cfg.batch_size, shuffle=True,
                                generator=generator)
            loss = losses.CosineSimilarityLoss(model)
            epochs = cfg.epochs
        if not len(loader):
            log.warning("biencoder: no training pairs; using the encoder zero-shot")
            return model
        steps = len(loader) * epochs
        model.old_fit(train_objectives=[(loader, loss)], epochs=epochs,
                      warmup_steps=int(0.1 * steps), optimizer_params={"lr": cfg.lr},
                      show_progress_bar=False)
        model.eval()
        self.n_train_pairs_ = (sum(map(len, batches)) if cfg.loss == "mnrl"
                               else len(examples) * cfg.epochs)
        return model

    def _load(self, path: str):
        from sentence_transformers import SentenceTransformer

        with quiet_transformers():
            model = SentenceTransformer(path, device="cpu")
        model.max_seq_length = self.config.max_seq_length
        return model

    def _encode(self, texts: list[str]) -> np.ndarray:
        with torch_threads(self.config.threads):
            if self.frozen_key_:  # the model never changes after fit: share embeddings
                return cached_encode(texts, self.frozen_key_, self.model_)
            return encode(texts, model=self.model_, batch_size=64, normalize=True)

    def score(self, queries: pd.DataFrame, candidates: pd.DataFrame) -> pd.Series:
        if not hasattr(self, "model_"):
            raise ShopAugError("call fit() before score()")
        if not len(candidates):
            return pd.Series(np.zeros(0), index=candidates.index, dtype=float)
        texts = queries.drop_duplicates("query_id").set_index("query_id")["text"]
        qtext = candidates["query_id"].map(texts).fillna("").astype(str)
        unique = pd.unique(qtext.to_numpy())
        q_emb = self._encode(list(unique))
        q_row = pd.Series(np.arange(len(unique)), index=unique).loc[qtext.to_numpy()].to_numpy()
        ids = candidates["item_id"].astype(str).to_numpy()
        known = np.isin(ids, self.item_text_.index.to_numpy())
        out = np.full(len(candidates), -1.0)  # items never seen in fit rank last
        if known.any():
            item_emb = self.item_embeddings(ids[known])
            out[known] = np.einsum("ij,ij->i", q_emb[q_row[known]], item_emb)
        if self.config.expansion_weight > 0:
            best = self._expansion_similarity(q_emb[q_row], ids)
            out = out + self.config.expansion_weight * np.where(np.isnan(best), out, best)
        return pd.Series(out, index=candidates.index)

    def expansion_scores(self, queries: pd.DataFrame, candidates: pd.DataFrame) -> pd.Series:
        """Best cosine between each candidate's query and its item's synthetic queries
        (NaN when the item has none): a feature for learning to rank."""
        texts = queries.drop_duplicates("query_id").set_index("query_id")["text"]
        qtext = candidates["query_id"].map(texts).fillna("").astype(str).to_numpy()
        unique = pd.unique(qtext)
        q_emb = self._encode(list(unique))
        q_row = pd.Series(np.arange(len(unique)), index=unique).loc[qtext].to_numpy()
        ids = candidates["item_id"].astype(str).to_numpy()
        return pd.Series(self._expansion_similarity(q_emb[q_row], ids), index=candidates.index)

    def _expansion_similarity(self, q_emb: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Per candidate row, the best cosine between its query and the synthetic queries
        of its item (NaN when the item has none)."""
        exp = self.expansions_[self.expansions_["item_id"].isin(ids)]
        best = np.full(len(ids), np.nan)
        if not len(exp):
            return best
        missing = sorted(set(exp["text"]) - self.query_emb_.keys())
        if missing:
            self.query_emb_.update(zip(missing, self._encode(missing), strict=True))
        rows = pd.Series(np.arange(len(ids))).groupby(ids).agg(list)
        for item, texts in exp.groupby("item_id")["text"]:
            emb = np.stack([self.query_emb_[t] for t in texts])
            at = rows[item]
            best[at] = (q_emb[at] @ emb.T).max(axis=1)
        return best
