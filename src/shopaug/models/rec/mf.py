"""Matrix factorisation for implicit feedback, on the ``implicit`` library (MIT).

- ``als``: weighted alternating least squares (Hu, Koren & Volinsky 2008). Each
  (user, item) cell gets confidence ``1 + alpha * log2(1 + r)``, where ``r`` sums the
  cell's row weights: one real purchase gives ``1 + alpha``, rebuys add less and less,
  a synthetic row counts at its weight (its value, see ``weights()``).
- ``bpr``: Bayesian personalised ranking with uniformly sampled negatives. implicit's
  BPR treats every stored cell as a plain positive, so a synthetic row of weight
  ``w < 1`` is kept with probability ``w`` (seeded): its expected share of the SGD
  updates is scaled by ``w``.

Both drop ``event="negative"`` rows (implicit samples its own negatives) and treat
synthetic pseudo-users as more rows of the matrix. ``als`` results depend only on the
seed, whatever ``threads`` (each user's and item's least-squares solve is independent
of the thread schedule); ``bpr`` is Hogwild SGD, bit-reproducible only with
``threads=1``, its default.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field

from shopaug.components import ComponentConfig
from shopaug.models.rec.base import MatrixRecommender


class _MFConfig(ComponentConfig):
    #: latent dimensions
    factors: int = Field(64, ge=1)
    #: skip items the user already interacted with (basket data: customers rebuy)
    exclude_seen: bool = False
    #: worker threads for fitting; 0 = all cores
    threads: int = Field(0, ge=0)


class ALSConfig(_MFConfig):
    iterations: int = Field(15, ge=1)
    #: L2 penalty on the factors
    regularization: float = Field(0.05, ge=0)
    #: confidence scaling: a cell with one purchase has confidence 1 + alpha
    alpha: float = Field(5.0, ge=0)


class BPRConfig(_MFConfig):
    #: 1 by default: Hogwild SGD on more threads is faster but not bit-reproducible
    threads: int = Field(1, ge=0)
    iterations: int = Field(50, ge=1)
    regularization: float = Field(0.01, ge=0)
    learning_rate: float = Field(0.05, gt=0)


class _ImplicitMF(MatrixRecommender):
    def _model(self, seed: int) -> Any:
        raise NotImplementedError

    def _cells(self, w: np.ndarray, users: np.ndarray, items: np.ndarray,
               seed: int) -> Any:
        raise NotImplementedError

    def _fit_matrix(self, inter: pd.DataFrame, w: np.ndarray, users: np.ndarray,
                    items: np.ndarray, seed: int) -> None:
        # implicit parallelises itself; a threaded BLAS underneath only oversubscribes.
        # implicit is imported before the limit is set: importing it loads its BLAS, and
        # a limit reaches only the libraries already loaded (else implicit warns on
        # every fit).
        import implicit.cpu.als  # noqa: F401
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, "blas"):
            model = self._model(seed)
            model.fit(self._cells(w, users, items, seed), show_progress=False)
        self.user_factors_ = np.asarray(model.user_factors)
        self.item_factors_ = np.asarray(model.item_factors)

    def _score(self, rows: np.ndarray) -> np.ndarray:
        return self.user_factors_[rows] @ self.item_factors_.T


def _csr(users: np.ndarray, items: np.ndarray, values: np.ndarray,
         shape: tuple[int, int]) -> Any:
    import scipy.sparse as sp

    m = sp.csr_matrix((values.astype(np.float32), (users, items)), shape=shape)
    m.sum_duplicates()  # repeated (user, item) rows add up
    m.sort_indices()
    return m


class ALS(_ImplicitMF):
    name = "als"
    Config = ALSConfig

    def _model(self, seed: int) -> Any:
        from implicit.cpu.als import AlternatingLeastSquares

        c = self.config
        return AlternatingLeastSquares(
            factors=c.factors, regularization=c.regularization, iterations=c.iterations,
            num_threads=c.threads, random_state=seed, calculate_training_loss=False)

    def _cells(self, w: np.ndarray, users: np.ndarray, items: np.ndarray, seed: int) -> Any:
        shape = (len(self.user_index_), len(self.item_ids_))
        m = _csr(users, items, w, shape)
        m.data = (1.0 + self.config.alpha * np.log2(1.0 + m.data)).astype(np.float32)
        return m


class BPR(_ImplicitMF):
    name = "bpr"
    Config = BPRConfig

    def _model(self, seed: int) -> Any:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        c = self.config
        return BayesianPersonalizedRanking(
            factors=c.factors, learning_rate=c.learning_rate, regularization=c.regularization,
            iterations=c.iterations, num_threads=c.threads, random_state=seed)

    def _cells(self, w: np.ndarray, users: np.ndarray, items: np.ndarray, seed: int) -> Any:
        keep = np.random.default_rng(seed).random(len(w)) < w  # w >= 1: always kept
        shape = (len(self.user_index_), len(self.item_ids_))
        m = _csr(users[keep], items[keep], np.ones(int(keep.sum())), shape)
        m.data[:] = 1.0
        return m
