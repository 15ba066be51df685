"""A MiniLM bi-encoder: zero-shot, or fine-tuned on (query, item) pairs, real and
synthetic. Synthetic queries are exactly what a bi-encoder wants: many positives for
items no real query has reached."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from shopaug.components import ComponentConfig
from shopaug.data.bundle import ShopData
from shopaug.errors import ShopAugError
from shopaug.models.search.base import SearchModel, item_text
from shopaug.models.search.encoder import (
    cached_encode,
    encode,
    load_encoder,
    load_trained,
    minilm_path,
    quiet_transformers,
    save_trained,
)
from shopaug.models.search.pairs import (  # also importable from this module
    distinct_batches,
    training_pairs,
    with_hard_negatives,
)

log = logging.getLogger(__name__)

#: fine-tuned encoders by training digest, newest last. A benchmark fits the same
#: encoder on the same pairs more than once (a teacher, then the real-only variant):
#: the second fit reuses the first. Trained models are never changed afterwards.
_TRAINED: OrderedDict[str, Any] = OrderedDict()
_TRAINED_MAX = 2
#: the config fields that change what training produces (the pairs cover the rest)
_TRAINING_FIELDS = ("epochs", "batch_size", "lr", "min_gain", "loss", "max_seq_length",
                    "hard_negatives", "negative_max_gain")


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
    #: under that cap, take the synthetic pairs of items no real pair teaches first
    synthetic_unjudged_first: bool = False
    #: with use_synthetic: fine-tune on the real pairs alone first (exactly the real-only
    #: twin's fine-tune, so a cache shares it), then continue on the synthetic pairs
    #: alone. False: one fine-tune over real and synthetic pairs mixed
    continue_from_real: bool = False
    #: with use_synthetic: the other order, as GPL and Promptagator do: adapt to the
    #: catalog on the synthetic pairs alone first, then fine-tune on the real pairs, so
    #: the human labels have the last word. Excludes continue_from_real
    synthetic_first: bool = False
    #: synthetic pairs only from these augmenters, e.g. ["synthetic_queries"]: the LLM's
    #: queries with their source items, not a teacher's grades of other candidates.
    #: None: every synthetic pair
    synthetic_from: list[str] | None = None
    #: pairs with gain >= min_gain are positives (for the mnrl loss)
    min_gain: float = 0.5
    #: mnrl: one hard negative per positive, a judged item of the same query with gain
    #: <= negative_max_gain (see `with_hard_negatives`)
    hard_negatives: bool = False
    negative_max_gain: float = Field(0.34, ge=0, le=1)
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
    #: a directory keeping fine-tuned encoders by training digest (pairs, training
    #: settings, seed, base model): a rerun on the same pairs loads instead of training.
    #: None: keep them in memory only
    cache_dir: str | None = None

    @model_validator(mode="after")
    def _one_order(self) -> BiEncoderConfig:
        if self.continue_from_real and self.synthetic_first:
            raise ValueError("continue_from_real and synthetic_first are two training "
                             "orders: set one of them")
        return self


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
            if cfg.use_synthetic and (cfg.continue_from_real or cfg.synthetic_first):
                self.model_, digest = self._fine_tuned_in_stages(path, train, seed)
            else:
                pairs = self._pairs(train, seed, cfg.use_synthetic)
                self.model_, digest = self._fine_tuned(path, pairs, seed)
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

    def _fine_tuned_in_stages(self, path: str, train: ShopData, seed: int) -> tuple[Any, str]:
        """Real pairs, then synthetic ones (or the reverse with synthetic_first), each
        stage continuing the previous one's encoder; an empty first stage is skipped."""
        real = self._pairs(train, seed, use_synthetic=False)
        synthetic = self._pairs(train, seed, use_synthetic=True)
        synthetic = synthetic[synthetic["origin"] != "real"].reset_index(drop=True)
        first, then = (synthetic, real) if self.config.synthetic_first else (real, synthetic)
        if not len(first):
            return self._fine_tuned(path, then, seed)
        model, digest = self._fine_tuned(path, first, seed)
        n_first = self.n_train_pairs_
        model, digest = self._fine_tuned(path, then, seed, base=model, base_digest=digest)
        self.n_train_pairs_ += n_first
        return model, digest

    def _pairs(self, train: ShopData, seed: int, use_synthetic: bool) -> pd.DataFrame:
        cfg = self.config
        if use_synthetic:
            train = train.keep_augmenters(cfg.synthetic_from, "judgments")
        pairs = training_pairs(train, use_synthetic, cfg.max_pairs, seed,
                               cfg.with_description, cfg.max_synthetic_pairs,
                               min_gain=cfg.min_gain if cfg.loss == "mnrl" else None,
                               unjudged_first=cfg.synthetic_unjudged_first)
        if cfg.hard_negatives and cfg.loss == "mnrl" and len(pairs):
            pairs = with_hard_negatives(pairs, train, use_synthetic, cfg.negative_max_gain,
                                        seed, cfg.with_description)
        return pairs

    def _fine_tuned(self, path: str, pairs: pd.DataFrame, seed: int, base: Any = None,
                    base_digest: str = "") -> tuple[Any, str]:
        """(encoder fine-tuned on ``pairs`` from ``base`` or the model at ``path``, its
        digest): from memory, from the cache directory, or trained now. Sets
        ``n_train_pairs_``."""
        cfg = self.config
        digest = self._digest(path, pairs, seed, base_digest)
        if digest in _TRAINED:
            model, self.n_train_pairs_ = _TRAINED[digest]
            _TRAINED.move_to_end(digest)
            log.info("biencoder: reusing an encoder trained on the same pairs")
            return model, digest
        if base is not None and not len(pairs):
            self.n_train_pairs_ = 0
            return base, base_digest
        stored = load_trained(cfg.cache_dir, digest, cfg.max_seq_length)
        if stored is not None:
            model, self.n_train_pairs_ = stored
            log.info("biencoder: loaded an encoder trained on the same pairs from %s",
                     cfg.cache_dir)
        else:
            with torch_threads(cfg.threads):
                model = self._train(path, pairs, seed, base)
            save_trained(cfg.cache_dir, digest, model, self.n_train_pairs_)
        _TRAINED[digest] = (model, self.n_train_pairs_)
        while len(_TRAINED) > _TRAINED_MAX:
            _TRAINED.popitem(last=False)
        return model, digest

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

    def _digest(self, path: str, pairs: pd.DataFrame, seed: int, base_digest: str = "") -> str:
        settings = {"path": path, "seed": seed,
                    **self.config.model_dump(include=set(_TRAINING_FIELDS))}
        if base_digest:  # continued from another fine-tune
            settings["base"] = base_digest
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
        if len(pairs):
            # Only what training reads: MNRL never reads gains; the cosine loss does, so
            # they are hashed rounded to 6 places. Teacher-graded gains differ in their
            # last bits from one process to the next, which made every warm run retrain
            # identical models.
            cols = ["query", "item", *(["negative"] if "negative" in pairs else [])]
            hashed = pairs[cols]
            if self.config.loss != "mnrl":
                hashed = hashed.assign(gain=pairs["gain"].astype(float).round(6))
            digest.update(pd.util.hash_pandas_object(hashed, index=False).to_numpy().tobytes())
        return digest.hexdigest()[:24]

    def _train(self, path: str, pairs: pd.DataFrame, seed: int, base: Any = None):
        import copy

        import torch
        from sentence_transformers import InputExample
        from sentence_transformers.sentence_transformer import losses
        from torch.utils.data import DataLoader

        cfg = self.config
        batches: list[list[int]] = []
        torch.manual_seed(seed)
        # a fresh copy to train, never the shared cached one (nor the base fine-tune)
        model = self._load(path) if base is None else copy.deepcopy(base)
        if cfg.loss == "mnrl":
            columns = ["query", "item", *(["negative"] if "negative" in pairs else [])]
            examples = [InputExample(texts=list(row)) for row in
                        pairs[columns].itertuples(index=False, name=None)]
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
