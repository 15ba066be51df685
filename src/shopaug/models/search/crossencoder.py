"""A cross-encoder reranker fine-tuned from the packaged MiniLM weights: it reads
query and item together, the strongest (and slowest) reranker here."""

from __future__ import annotations

import logging
import time
import warnings
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import model_validator

from shopaug.components import ComponentConfig
from shopaug.data.bundle import ShopData
from shopaug.errors import ShopAugError
from shopaug.models.search.base import SearchModel, item_text
from shopaug.models.search.biencoder import quiet_transformers, torch_threads, training_pairs
from shopaug.models.search.encoder import minilm_path
from shopaug.models.search.lexical import BM25, bm25_negatives

log = logging.getLogger(__name__)


class CrossEncoderConfig(ComponentConfig):
    #: weights to start from; None = the packaged all-MiniLM-L6-v2 (a new head is
    #: initialised on top, so the model must be trained)
    model_path: str | None = None
    use_synthetic: bool = True
    epochs: int = 1
    batch_size: int = 16
    lr: float = 2e-5
    max_pairs: int | None = None
    #: bce: binary cross-entropy on the gain as a soft label; mse: on sigmoid output
    loss: Literal["bce", "mse"] = "bce"
    #: synthetic queries come with positives only: add this many BM25 hard negatives
    #: (gain 0) per synthetic query so the model cannot learn "synthetic = relevant"
    negatives_per_synthetic: int = 3
    max_seq_length: int = 128
    with_description: bool = True
    predict_batch_size: int = 64
    #: torch CPU threads (None: torch's default); 1 when other work shares the cores
    threads: int | None = None

    @model_validator(mode="after")
    def _batch_fits(self) -> CrossEncoderConfig:
        # sentence-transformers' old_fit collate asserts batch size <= max length
        if self.batch_size > self.max_seq_length:
            raise ValueError("batch_size must not exceed max_seq_length")
        return self


class CrossEncoderRanker(SearchModel):
    """Relevance predicted from the (query, item text) pair."""

    name = "crossencoder"
    Config = CrossEncoderConfig

    def fit(self, train: ShopData, seed: int = 0) -> CrossEncoderRanker:
        with torch_threads(self.config.threads):
            return self._fit(train, seed)

    def _fit(self, train: ShopData, seed: int) -> CrossEncoderRanker:
        import torch
        from sentence_transformers import CrossEncoder, InputExample
        from torch import nn
        from torch.utils.data import DataLoader

        cfg = self.config
        start = time.perf_counter()
        pairs = self._pairs(train, seed)
        if not len(pairs):
            raise ShopAugError(
                "the cross-encoder needs judged (query, item) pairs to train on and the "
                "training data has none. Fix: use a split with judgments, or bm25/biencoder")
        torch.manual_seed(seed)  # the new classification head is drawn from torch's RNG
        with quiet_transformers():
            model = CrossEncoder(str(cfg.model_path or minilm_path()), num_labels=1,
                                 max_length=cfg.max_seq_length, device="cpu")
        examples = [InputExample(texts=[q, i], label=float(g)) for q, i, g in
                    zip(pairs["query"], pairs["item"], pairs["gain"], strict=True)]
        loader = DataLoader(examples, batch_size=cfg.batch_size, shuffle=True,
                            generator=torch.Generator().manual_seed(seed))
        extra = ({"loss_fct": nn.MSELoss(), "activation_fct": nn.Sigmoid()}
                 if cfg.loss == "mse" else {"loss_fct": nn.BCEWithLogitsLoss()})
        steps = len(loader) * cfg.epochs
        with warnings.catch_warnings():  # the library's own deprecated-name warnings
            warnings.simplefilter("ignore", DeprecationWarning)
            model.old_fit(loader, epochs=cfg.epochs, warmup_steps=int(0.1 * steps),
                          optimizer_params={"lr": cfg.lr}, show_progress_bar=False, **extra)
        model.eval()
        self.model_ = model
        self.n_train_pairs_ = len(examples) * cfg.epochs
        self.fit_seconds_ = time.perf_counter() - start
        items = train.items.drop_duplicates("item_id")
        self.item_text_ = pd.Series(item_text(items, cfg.with_description).to_numpy(),
                                    index=items["item_id"].astype(str))
        log.info("crossencoder: trained on %d pairs in %.1fs", self.n_train_pairs_,
                 self.fit_seconds_)
        return self

    def _pairs(self, train: ShopData, seed: int) -> pd.DataFrame:
        cfg = self.config
        pairs = training_pairs(train, cfg.use_synthetic, None, seed, cfg.with_description)
        n_neg = cfg.negatives_per_synthetic
        # Queries the LLM wrote (not real queries that merely carry judge labels).
        written = set(train.queries.loc[train.queries["origin"] == "synthetic", "query_id"])
        synth_q = pairs.loc[pairs["query_id"].isin(written), ["query_id", "query"]]
        synth_q = synth_q.drop_duplicates("query_id").rename(columns={"query": "text"})
        if n_neg > 0 and len(synth_q):
            bm25 = BM25(with_description=cfg.with_description).fit(train, seed)
            neg = bm25_negatives(bm25, synth_q, pairs[["query_id", "item_id"]], n_neg, seed)
            texts = pd.Series(item_text(train.items, cfg.with_description).to_numpy(),
                              index=train.items["item_id"]).groupby(level=0).first()
            neg = neg.assign(gain=0.0, origin="synthetic",
                             query=neg["query_id"].map(synth_q.set_index("query_id")["text"]),
                             item=neg["item_id"].map(texts))
            pairs = pd.concat([pairs, neg], ignore_index=True)
        pairs = pairs.sort_values(["query_id", "item_id"]).reset_index(drop=True)
        if cfg.max_pairs is not None and len(pairs) > cfg.max_pairs:
            keep = np.random.default_rng(seed).choice(len(pairs), cfg.max_pairs, replace=False)
            pairs = pairs.iloc[np.sort(keep)].reset_index(drop=True)
        return pairs

    def score(self, queries: pd.DataFrame, candidates: pd.DataFrame) -> pd.Series:
        if not hasattr(self, "model_"):
            raise ShopAugError("call fit() before score()")
        out = np.full(len(candidates), -1.0)  # unknown items rank last
        if not len(candidates):
            return pd.Series(out, index=candidates.index)
        texts = queries.drop_duplicates("query_id").set_index("query_id")["text"]
        qtext = candidates["query_id"].map(texts).fillna("").astype(str).to_numpy()
        itext = candidates["item_id"].astype(str).map(self.item_text_).to_numpy()
        known = np.flatnonzero(pd.notna(itext))
        if len(known):
            with torch_threads(self.config.threads):
                pred = self.model_.predict([(qtext[k], itext[k]) for k in known],
                                           batch_size=self.config.predict_batch_size,
                                           show_progress_bar=False, convert_to_numpy=True)
            out[known] = np.asarray(pred, dtype=float).reshape(-1)
        return pd.Series(out, index=candidates.index)
