"""Tabular synthesizers and the `tabular_synthesis` augmenter.

Every synthesizer has one small interface: ``fit(frame) -> self`` and
``sample(n, seed) -> DataFrame`` with the same columns and dtypes (numeric, integer,
boolean, categorical/string and datetime columns; missing values are modelled by
an indicator column, as SDV's RDT does).

* `GaussianCopulaSynthesizer`: empirical-CDF marginals -> normal scores -> one
  correlation matrix -> sample -> inverse marginals; categoricals through
  frequency intervals as in SDV's copulas. numpy/scipy only, fast.
* `TVAESynthesizer` (module ``shopaug.augment.tvae``): a small tabular VAE in torch.
* `SDVSynthesizer`: SDV's own synthesizers, only if the user installed SDV
  (``pip install shopaug[sdv]``; SDV is Business Source License, never required).

The augmenter writes synthetic *user feature rows* (see
``shopaug.augment.rec_features.user_features``) as pseudo-users of the ``users``
table (``origin="synthetic"``, features as extra columns, no interactions). They
are for user-level models and analysis and for sharing data without real
customers. The purchase model (``shopaug.models.rec.purchase``) instead
synthesizes full labelled (user, item) feature rows, with the same
synthesizers, when ``use_synthetic`` is on: a pseudo-user without purchases carries
no label to learn from.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

import numpy as np
import pandas as pd
from pydantic import Field

from shopaug.augment.base import Augmenter, synthetic_id
from shopaug.augment.rec_features import interaction_features, user_features
from shopaug.augment.tvae import TVAESynthesizer
from shopaug.components import ComponentConfig
from shopaug.data.bundle import ShopData
from shopaug.errors import ShopAugError
from shopaug.models.rec.base import positives

if TYPE_CHECKING:
    from shopaug.pipeline.runner import RunContext

__all__ = ["GaussianCopulaSynthesizer", "SDVSynthesizer", "Synthesizer", "TVAESynthesizer",
           "TabularSynthesis", "interaction_features", "ks_fidelity", "make_synthesizer",
           "user_features"]

_NA = "\x00<NA>"  # a missing categorical value while encoding
_EPS = 1e-6
SDV_MISSING = (
    "the 'sdv' method needs SDV, which is not installed. Fix: `pip install shopaug[sdv]` "
    "(SDV and CTGAN are under the Business Source License: check it fits your use), or use "
    "method 'copula' or 'tvae', which need nothing extra")


class Synthesizer(Protocol):
    def fit(self, frame: pd.DataFrame) -> Synthesizer: ...
    def sample(self, n: int, seed: int = 0) -> pd.DataFrame: ...


def _is_numeric(s: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(s):
        return False
    return pd.api.types.is_numeric_dtype(s) or pd.api.types.is_datetime64_any_dtype(s)


def _as_float(s: pd.Series) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(s):
        if getattr(s.dt, "tz", None) is not None:
            s = s.dt.tz_convert(None)  # UTC wall time
        ints = s.to_numpy().view("int64").astype(float)
        return np.where(s.isna().to_numpy(), np.nan, ints)
    return s.to_numpy(dtype=float, na_value=np.nan)


def _restore(values: np.ndarray, like: pd.Series, missing: np.ndarray) -> pd.Series:
    """Numeric ``values`` (float) back to the dtype of ``like``."""
    dtype = like.dtype
    if pd.api.types.is_datetime64_any_dtype(dtype):
        tz = getattr(like.dt, "tz", None)
        naive = like.dt.tz_convert(None) if tz is not None else like
        unit = np.datetime_data(naive.to_numpy().dtype)[0]
        stamps = pd.Series(np.rint(values).astype(np.int64).view(f"datetime64[{unit}]"))
        stamps = stamps.where(~missing)
        return stamps.dt.tz_localize("UTC").dt.tz_convert(tz) if tz is not None else stamps
    if pd.api.types.is_integer_dtype(dtype):
        ints = pd.Series(np.rint(values)).where(~missing)
        if missing.any() and not isinstance(dtype, pd.api.extensions.ExtensionDtype):
            return ints.astype("Int64")  # a numpy int column cannot hold the missing values
        return ints.astype(dtype)
    return pd.Series(np.where(missing, np.nan, values)).astype(dtype)


class ColumnCodec:
    """Column transforms shared by the synthesizers: numeric and datetime columns to
    normal scores through their empirical CDF, everything else to category codes
    ordered by frequency (most frequent first)."""

    def fit(self, frame: pd.DataFrame) -> ColumnCodec:
        if frame.empty or not len(frame.columns):
            raise ShopAugError("cannot fit a synthesizer on an empty table")
        self.columns = list(frame.columns)
        self.like = {c: frame[c].iloc[:1] for c in self.columns}
        self.numeric: dict[str, np.ndarray] = {}  # column -> sorted observed values
        self.categories: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # values, probs
        for col in self.columns:
            s = frame[col]
            x = _as_float(s) if _is_numeric(s) else None
            if x is not None and not np.isnan(x).all():
                ok = ~np.isnan(x)
                self.numeric[col] = np.sort(x[ok])
                if not ok.all():
                    self._add_categories(f"{col}\x00isna", pd.Series(~ok))
            else:
                self._add_categories(col, s)
        return self

    def _add_categories(self, col: str, s: pd.Series) -> None:
        obj = s.astype(object).where(s.notna(), _NA)
        counts = obj.value_counts(sort=False)
        order = sorted(range(len(counts)), key=lambda i: (-counts.iloc[i], str(counts.index[i])))
        values = np.array([counts.index[i] for i in order], dtype=object)
        self.categories[col] = (values, counts.to_numpy()[order] / len(obj))

    def transform(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(normal scores of the numeric columns, codes of the categorical ones)."""
        from scipy.special import ndtri
        from scipy.stats import rankdata

        z = np.zeros((len(frame), len(self.numeric)))
        for j, col in enumerate(self.numeric):
            x = _as_float(frame[col])
            ok = ~np.isnan(x)
            u = (rankdata(x[ok]) - 0.5) / ok.sum()
            z[ok, j] = ndtri(u)  # missing rows stay at the median (0)
        codes = np.zeros((len(frame), len(self.categories)), dtype=np.int64)
        for j, (col, (values, _)) in enumerate(self.categories.items()):
            base, _, flag = col.partition("\x00")
            s = pd.Series(np.isnan(_as_float(frame[base]))) if flag else frame[col]
            obj = s.astype(object).where(s.notna(), _NA)
            codes[:, j] = pd.Index(values).get_indexer(obj)
        return z, codes

    def inverse(self, z: np.ndarray, codes: np.ndarray) -> pd.DataFrame:
        from scipy.special import ndtr

        cats = {col: values[np.clip(codes[:, j], 0, len(values) - 1)]
                for j, (col, (values, _)) in enumerate(self.categories.items())}
        out: dict[str, pd.Series] = {}
        for j, col in enumerate(self.numeric):
            grid = self.numeric[col]
            u = ndtr(z[:, j])
            values = np.interp(u, (np.arange(len(grid)) + 0.5) / len(grid), grid)
            flag = cats.get(f"{col}\x00isna")
            missing = flag.astype(bool) if flag is not None else np.zeros(len(z), dtype=bool)
            out[col] = _restore(values, self.like[col], missing)
        for col in self.columns:
            if col not in out:
                out[col] = self._restore_category(cats[col], self.like[col])
        return pd.DataFrame({c: out[c].reset_index(drop=True) for c in self.columns})

    @staticmethod
    def _restore_category(values: np.ndarray, like: pd.Series) -> pd.Series:
        filled = [None if isinstance(v, str) and v == _NA else v for v in values]
        if isinstance(like.dtype, pd.CategoricalDtype):
            return pd.Series(pd.Categorical(filled, dtype=like.dtype))
        try:
            return pd.Series(filled, dtype=like.dtype)
        except (TypeError, ValueError):
            return pd.Series(filled, dtype=object)

    def one_hot_sizes(self) -> list[int]:
        return [len(v) for v, _ in self.categories.values()]


class GaussianCopulaSynthesizer:
    """Gaussian copula over empirical marginals.

    >>> import pandas as pd
    >>> real = pd.DataFrame({"x": range(100), "c": ["a", "b"] * 50})
    >>> fake = GaussianCopulaSynthesizer().fit(real).sample(5, seed=1)
    >>> list(fake.columns), str(fake["x"].dtype), set(fake["c"]) <= {"a", "b"}
    (['x', 'c'], 'int64', True)
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed  # the jitter inside category intervals during fit

    def fit(self, frame: pd.DataFrame) -> GaussianCopulaSynthesizer:
        from scipy.special import ndtri

        self.codec_ = codec = ColumnCodec().fit(frame)
        z, codes = codec.transform(frame)
        rng = np.random.default_rng(self.seed)
        cat_z = np.zeros(codes.shape)
        for j, (_, probs) in enumerate(codec.categories.values()):
            start = np.concatenate([[0.0], np.cumsum(probs)[:-1]])
            u = start[codes[:, j]] + probs[codes[:, j]] * rng.uniform(size=len(codes))
            cat_z[:, j] = ndtri(np.clip(u, _EPS, 1 - _EPS))
        full = np.hstack([z, cat_z])
        self.cholesky_ = np.linalg.cholesky(_correlation(full))
        return self

    def sample(self, n: int, seed: int = 0) -> pd.DataFrame:
        from scipy.special import ndtr

        codec = self.codec_
        rng = np.random.default_rng(seed)
        full = rng.standard_normal((n, self.cholesky_.shape[0])) @ self.cholesky_.T
        p = len(codec.numeric)
        codes = np.zeros((n, len(codec.categories)), dtype=np.int64)
        for j, (_, probs) in enumerate(codec.categories.values()):
            codes[:, j] = np.searchsorted(np.cumsum(probs), ndtr(full[:, p + j]), side="right")
        return codec.inverse(full[:, :p], codes)


def _correlation(z: np.ndarray) -> np.ndarray:
    """A positive-definite correlation matrix of the columns of ``z``."""
    d = z.shape[1]
    if d == 0:
        return np.eye(0)
    if len(z) < 2 or d == 1:
        return np.eye(d)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.nan_to_num(np.corrcoef(z, rowvar=False))
    np.fill_diagonal(corr, 1.0)
    w, v = np.linalg.eigh(corr)
    corr = (v * np.maximum(w, 1e-6)) @ v.T
    scale = np.sqrt(np.diag(corr))
    return corr / np.outer(scale, scale)


def _import_sdv() -> Any:
    try:
        import sdv.single_table as single_table  # type: ignore[import-not-found]
    except ImportError:
        raise ShopAugError(SDV_MISSING) from None
    return single_table


class SDVSynthesizer:
    """SDV's ``GaussianCopulaSynthesizer``, ``CTGANSynthesizer`` or ``TVAESynthesizer``
    behind the same interface. SDV samples from the global numpy/torch generators,
    which ``sample`` seeds."""

    MODELS: ClassVar[dict[str, str]] = {
        "gaussian_copula": "GaussianCopulaSynthesizer", "ctgan": "CTGANSynthesizer",
        "tvae": "TVAESynthesizer"}

    def __init__(self, model: str = "gaussian_copula", epochs: int | None = None,
                 seed: int = 0) -> None:
        if model not in self.MODELS:
            raise ShopAugError(f"unknown SDV model {model!r}; choose from {sorted(self.MODELS)}")
        self.model, self.epochs, self.seed = model, epochs, seed

    def fit(self, frame: pd.DataFrame) -> SDVSynthesizer:
        single_table = _import_sdv()
        try:
            from sdv.metadata import Metadata  # type: ignore[import-not-found]

            metadata = Metadata.detect_from_dataframe(frame)
        except ImportError:  # SDV < 1.15
            from sdv.metadata import SingleTableMetadata  # type: ignore[import-not-found]

            metadata = SingleTableMetadata()
            metadata.detect_from_dataframe(frame)
        kwargs = {"epochs": self.epochs} if self.epochs and self.model != "gaussian_copula" else {}
        self._seed_globals(self.seed)
        self.synth_ = getattr(single_table, self.MODELS[self.model])(metadata, **kwargs)
        self.synth_.fit(frame)
        self.dtypes_ = frame.dtypes
        return self

    def sample(self, n: int, seed: int = 0) -> pd.DataFrame:
        self._seed_globals(seed)
        self.synth_.reset_sampling()
        out = self.synth_.sample(num_rows=n)
        return out.astype({c: t for c, t in self.dtypes_.items() if c in out}, errors="ignore")

    @staticmethod
    def _seed_globals(seed: int) -> None:
        np.random.seed(seed)
        try:
            import torch

            torch.manual_seed(seed)
        except ImportError:
            pass


def make_synthesizer(method: str, seed: int = 0, epochs: int = 50,
                     sdv_model: str = "gaussian_copula") -> Synthesizer:
    if method == "copula":
        return GaussianCopulaSynthesizer(seed=seed)
    if method == "tvae":
        return TVAESynthesizer(epochs=epochs, seed=seed)
    if method == "sdv":
        return SDVSynthesizer(sdv_model, epochs=epochs, seed=seed)
    raise ShopAugError(f"unknown synthesizer {method!r}; choose copula, tvae or sdv")


def ks_fidelity(real: pd.DataFrame, synthetic: pd.DataFrame) -> dict[str, float]:
    """Two-sample Kolmogorov-Smirnov statistic per numeric/datetime column (0 = same
    distribution, 1 = disjoint); the mean over columns is a one-number fidelity."""
    from scipy.stats import ks_2samp

    out = {}
    for col in real.columns:
        if col in synthetic.columns and _is_numeric(real[col]):
            a, b = _as_float(real[col]), _as_float(synthetic[col])
            a, b = a[~np.isnan(a)], b[~np.isnan(b)]
            if len(a) and len(b):
                out[col] = float(ks_2samp(a, b).statistic)
    return out


# -- the augmenter -------------------------------------------------------------------
class TabularSynthesisConfig(ComponentConfig):
    method: Literal["copula", "tvae", "sdv"] = "copula"
    #: absolute number of synthetic rows; when unset, ``ratio`` x the real rows
    rows: int | None = Field(None, ge=1)
    ratio: float = Field(1.0, gt=0, le=100)
    #: which table gets synthetic rows: user feature rows as pseudo-users
    target: Literal["users"] = "users"
    #: training epochs of tvae (and of SDV's ctgan/tvae)
    epochs: int = Field(50, ge=1)
    sdv_model: Literal["gaussian_copula", "ctgan", "tvae"] = "gaussian_copula"


class TabularSynthesis(Augmenter):
    """Synthetic user feature rows (history length, baskets, basket size, recency,
    mean price, favourite category and its share, first purchase) fitted on the real
    users' training history, added as pseudo-users with ``origin="synthetic"``."""

    name = "tabular_synthesis"
    Config = TabularSynthesisConfig
    config: TabularSynthesisConfig

    def run(self, data: ShopData, ctx: RunContext) -> ShopData:
        cfg = self.config
        inter = positives(data.interactions)
        real = inter[inter["origin"] == "real"]
        if real.empty:
            return data
        feats = user_features(real, data.items).drop(columns="user_id")
        n = cfg.rows or max(1, math.ceil(cfg.ratio * len(feats)))
        synth = make_synthesizer(cfg.method, seed=ctx.seed, epochs=cfg.epochs,
                                 sdv_model=cfg.sdv_model)
        fake = synth.fit(feats).sample(n, seed=ctx.seed)
        key = self.config_hash()
        fake.insert(0, "user_id", [synthetic_id("tabuser", key, ctx.seed, i) for i in range(n)])
        return data.append("users", self.provenance(fake, ctx))
