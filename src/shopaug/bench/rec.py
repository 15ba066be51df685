"""``shopaug bench rec``: does augmentation make recommenders better on your data?

Protocol. One temporal split (the last ``test_days`` are test). Each augmenter
runs once on the training side only (so no prompt can contain a test purchase),
each on the real training data, and their outputs are merged into one augmented
training set. Every model is trained on the real training data and on the
augmented one with the same settings, over several seeds, and scored on the same
test users: Recall/NDCG/HR/MAP@k overall and on the cold-user, cold-item and
long-tail slices, mean over (seed, user) with a 95% bootstrap interval that
resamples users (a user scored under every seed is one unit), and paired
differences augmented minus real. With ``ablation`` on, the chosen variants are
also trained with each augmenter alone; with ``leave_one_out``, without each one.
With ``validation`` on, the training side is split again the same way and everything
runs inside it, so settings can be chosen without reading the test period. With
``windows`` N, the N - 1 periods before it are benchmarked the same way (rolling
origin) and pooled.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd

from shopaug import registry
from shopaug.artifacts import atomic_write_json
from shopaug.bench import record_quality
from shopaug.bench.rec_data import augment
from shopaug.bench.rec_summary import per_window, summarize, write_table
from shopaug.bench.variants import DefinedVariants, VariantTable
from shopaug.data.bundle import ShopData
from shopaug.data.split import Split, split
from shopaug.errors import ConfigError
from shopaug.evaluate.rec import per_user_metrics
from shopaug.quality.decontaminate import decontaminate

if TYPE_CHECKING:
    from shopaug.quality.report import QualityReport

log = logging.getLogger(__name__)

CONTENT_SOURCE = {"name": "content", "n": 50, "config": {"grounded_only": True}}
#: the hybrid's sources other than SASRec
BASE_SOURCES = [{"name": "popularity", "n": 50}, {"name": "itemknn", "n": 50},
            {"name": "als", "n": 50}, CONTENT_SOURCE]
# SASRec as a fifth source, trained on the sequence_augment rows in the augmented twin
# (as sasrec_augmented). Validation window, 3 seeds (scripts/rec_hybrid_sasrec_source.yaml;
# rule set before the run: adopt iff augmented-with minus real-with excludes zero and
# beats both real hybrids): real hybrid 0.1816; with real SASRec 0.1801 (-0.0014*);
# augmented without SASRec 0.1807; augmented with SASRec 0.1827 (+0.0025* over its
# real twin, +0.0011 n.s. over the real hybrid without SASRec).
_SASREC_SOURCE = {"name": "sasrec", "n": 50, "config": {"epochs": 10}}
_SOURCES_REAL = [*BASE_SOURCES, _SASREC_SOURCE]
_SOURCES_AUGMENTED = [*BASE_SOURCES, {**_SASREC_SOURCE, "augmenters": ["sequence_augment"]}]

#: variant -> (registry name, config, trained on augmented data?)
VARIANTS: dict[str, tuple[str, dict[str, Any], bool]] = {
    "popularity": ("popularity", {}, False),
    "itemknn": ("itemknn", {}, False),
    "itemknn_augmented": ("itemknn", {}, True),
    "als_real": ("als", {}, False),
    "als_augmented": ("als", {}, True),
    "sasrec_real": ("sasrec", {}, False),
    "sasrec_augmented": ("sasrec", {}, True),
    # raw catalog text only vs enriched attributes (`use` below: enrichment alone)
    "content_real": ("content", {"use_attributes": False, "profile_weight": 0.0}, False),
    # Enriched values only where found in the item's own text: SmolLM2's inferred ones
    # are often wrong ("category: food" for a hot water bottle). On Online Retail they
    # cut the content model's "new arrivals" recall@20 (ranking the 281 never-sold
    # items for their test buyers) from 0.175 to 0.137*; grounded only: 0.189 (+0.014,
    # n.s.), and +0.0125* on a validation window where all values gave +0.015 (n.s.).
    # The values are blended in, not appended: only the coldest items are enriched,
    # and appended text moved them away from the rest (validation window: cold-item
    # Recall@20 0.0142 real, 0.0069 appended, 0.0155 blended at 0.2)
    "content_augmented": ("content", {"grounded_only": True, "attribute_weight": 0.2},
                          True),
    "hybrid_real": ("hybrid", {"sources": _SOURCES_REAL}, False),
    "hybrid_augmented": ("hybrid", {"sources": _SOURCES_AUGMENTED}, True),
}
PAIRS = {"itemknn_augmented": "itemknn", "als_augmented": "als_real",
         "sasrec_augmented": "sasrec_real", "content_augmented": "content_real",
         "hybrid_augmented": "hybrid_real"}

DEFAULT_AUGMENT: list[dict[str, Any]] = [
    # LLM stages, each with a budget: the items and users that need help most first
    {"name": "item_enrichment", "config": {"max_tokens": 96, "description_words": 0},
     "target": {"items": "cold_and_tail", "max": 300}},
    {"name": "user_profiles", "config": {"max_tokens": 64, "profile_words": 20},
     "target": {"users": "sparse", "max": 200}},
    {"name": "interaction_simulation", "config": {"max_users": 200}},
    # every shared title word or enriched value as a weighted pseudo-buyer
    {"name": "attribute_users", "config": {"source": "both", "weight": 0.2}},
    # classical stages
    {"name": "sequence_augment", "config": {"ops": ["crop", "mask", "reorder"],
                                            "max_history": 20}},
]
# Not in the defaults: `rec_teacher_labels` (an item-kNN teacher's top items for sparse
# users). On Online Retail it cut ALS's cold-user Recall@20 from 0.080 to 0.061.
# Nor `cold_item_simulation` (simulated first buyers for never-sold items): with n_users
# 60, weight 0.5, activity_weight 3 (chosen for item-kNN on a validation window) it put
# cold items into item-kNN's lists (cold-item Recall@20 0 -> 0.0017) but cost the
# hybrid 0.0016 and the content model 0.0020 overall. See its module for the numbers.


#: per augmented variant, the augmenters whose output it trains on by default
DEFAULT_USE: dict[str, list[str]] = {
    # A sequence model learns order: attribute pseudo-users have none. On the
    # validation window (3 seeds; arms that are `use:` lists in --config today)
    # sequence_augment alone gave +0.0059* over real-only,
    # with interaction_simulation +0.0029*, all augmenters +0.0049*
    "sasrec_augmented": ["sequence_augment"],
    # Profiles, simulated picks and pseudo-users in the taste vectors cost the content
    # model overall recall at every attribute weight; the attributes carry its
    # cold-item gain. Online Retail, windows 1-4 before the test month (seed 0; it is
    # seed-free): all augmenters -0.0006* overall, cold items 0.0060 -> 0.0065;
    # enrichment alone +0.0000 overall, cold items 0.0065
    "content_augmented": ["item_enrichment"]}


@dataclass
class RecBenchConfig(DefinedVariants):
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    split: dict[str, Any] = field(default_factory=lambda: {"name": "temporal",
                                                           "config": {"test_days": 30}})
    ks: list[int] = field(default_factory=lambda: [20])
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    augment: list[dict[str, Any]] = field(default_factory=lambda: list(DEFAULT_AUGMENT))
    #: per-variant config overrides, e.g. {"sasrec_real": {"epochs": 2}}
    overrides: dict[str, dict[str, Any]] = field(default_factory=lambda: {
        "sasrec_real": {"epochs": 10}, "sasrec_augmented": {"epochs": 10}})
    #: variants retrained with each augmenter alone (on the first seed)
    ablation: list[str] = field(default_factory=list)
    #: per augmented variant, the augmenters whose output it trains on: their synthetic
    #: rows and the item and user columns they filled (enriched attributes, profiles),
    #: e.g. {"als_augmented": ["item_enrichment"]}. Merged over DEFAULT_USE; a variant
    #: given None (``null`` in YAML) or left out of both trains on every augmenter
    use: dict[str, list[str] | None] = field(default_factory=dict)
    #: drop synthetic purchases that are test purchases (the conservative default). The
    #: augmenters read the training side only (and the prompt audit checks the LLM
    #: ones), so such a row is a correct prediction, and dropping it deletes exactly the
    #: hits of a simulator (``cold_item_simulation``, ``interaction_simulation``). False
    #: keeps and counts them (``decontaminated.interactions_kept``); the quality check
    #: ``test_interaction_overlap_share`` still fails a run where they are too many.
    decontaminate_interactions: bool = True
    #: split the training side again the same way and score on its last period: the
    #: test period is never read, not even by the augmenters. For choosing settings
    #: before the bench measures them
    validation: bool = False
    #: variants of your own, run with the built-in ones: name -> {model, config,
    #: augmented, twin} (see `shopaug.bench.variants`)
    define: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: more paired differences to report, [a, b] for a minus b (twins are paired anyway)
    compare: list[list[str]] = field(default_factory=list)
    #: augmented variants to retrain without each augmenter in turn, over all seeds:
    #: adds ``V_without_A`` (trained on everything V uses except A's output) and the
    #: paired difference ``V - V_without_A``, what A adds to V, with its interval
    leave_one_out: list[str] = field(default_factory=list)
    #: rolling-origin evaluation: also score the ``windows - 1`` periods before the test
    #: (or validation) period, each with the whole protocol on what precedes it, and pool
    #: them, so a setting is judged over several periods, not one
    windows: int = 1
    #: in the validation period and older windows, leave out the catalog items first sold
    #: after that period: they did not exist yet, yet they take LLM budget (on Online
    #: Retail 30 of the 300 enrichment targets of the validation window, 222 of 300 four
    #: months earlier) and candidate slots. The test period always has the whole catalog.
    #: Runs recorded before this became the default set it to false to reproduce
    catalog_as_of_period: bool = True
    n_boot: int = 2000
    progress: bool = True

    builtin_variants: ClassVar[VariantTable] = VARIANTS
    builtin_pairs: ClassVar[dict[str, str]] = PAIRS
    model_kind: ClassVar[str] = "recommender"

    def __post_init__(self) -> None:
        if self.windows < 1:
            raise ConfigError(f"windows must be at least 1, not {self.windows}")
        # a user's `use:` for one variant must not drop the defaults of the others; a
        # None stays (not dropped) so that merging again, e.g. after replace(), keeps it
        self.use = {**DEFAULT_USE, **self.use}
        defined = dict(self.define)
        loo = {}
        for variant in self.leave_one_out:
            spec = {**defined.get(variant, {})}
            if variant in self.builtin_variants:
                model, config, augmented = self.builtin_variants[variant]
                spec = {"model": model, "config": config, "augmented": augmented,
                        "twin": self.builtin_pairs.get(variant)}
            if not spec:
                raise ConfigError(f"leave_one_out: unknown variant {variant!r}; known: "
                                  f"{[*self.builtin_variants, *self.define]}")
            if not spec.get("augmented"):
                raise ConfigError(f"leave_one_out: {variant!r} is not an augmented variant")
            used = self.use.get(variant)
            used = [a["name"] for a in self.augment] if used is None else used
            for name in used:
                new = f"{variant}_without_{name}"
                if new in self.define:
                    raise ConfigError(f"leave_one_out makes a variant {new!r}; rename the "
                                      "one under define:")
                loo[new] = (variant, [u for u in used if u != name])
                defined[new] = spec
        self.define = defined
        super().__post_init__()
        for name, (variant, used) in loo.items():
            self.use.setdefault(name, used)
            if variant in self.overrides:
                self.overrides.setdefault(name, self.overrides[variant])
            if name not in self.variants:
                self.variants.append(name)
            if [variant, name] not in self.compare:
                self.compare.append([variant, name])
        ran = {a["name"] for a in self.augment}
        for variant in self.variants:  # e.g. content_augmented without item_enrichment
            missing = [name for name in self.use.get(variant) or [] if name not in ran]
            if missing:
                log.warning("%s trains on the output of %s, not in augment: it gets no "
                            "rows or columns from them", variant, ", ".join(missing))

    def leave_one_out_variants(self) -> list[str]:
        """The variants ``leave_one_out`` added: diagnostics, never the headline's best."""
        return [v for v in self.variants
                if any(v.startswith(f"{x}_without_") for x in self.leave_one_out)]


# -- training and scoring ---------------------------------------------------------

def _fit_eval(variant: str, data: ShopData, parts: Split, cfg: RecBenchConfig,
              seed: int) -> pd.DataFrame:
    name, config, _ = cfg.table()[0][variant]
    config = {**config, **cfg.overrides.get(variant, {})}
    model = registry.create("recommender", name, config).fit(data, seed=seed)
    return per_user_metrics(model, parts.train, parts, cfg.ks)


def run_variants(parts: Split, augmented: ShopData, cfg: RecBenchConfig,
                 desc: str = "rec bench") -> tuple[pd.DataFrame, dict[str, float]]:
    """Every variant over every seed; a variant with a ``use`` list trains on the
    augmented data as if only those augmenters had run (rows and filled columns)."""
    from tqdm.auto import tqdm

    rows, seconds = [], {}
    table = cfg.table()[0]
    # a model whose fit never reads the seed gives the same lists under every seed:
    # fitted once, its rows stand for every seed (each seed still has its rows)
    seed_free = {v for v in cfg.variants
                 if not registry.get("recommender", table[v][0]).seeded}
    first: dict[str, pd.DataFrame] = {}
    bar = tqdm(total=len(cfg.seeds) * len(cfg.variants), desc=desc, unit="fit",
               disable=not cfg.progress)
    for seed in cfg.seeds:
        for variant in cfg.variants:
            bar.set_postfix_str(f"seed {seed} {variant}")
            if variant in first:
                rows.append(first[variant].assign(seed=seed))
                bar.update()
                continue
            start = time.perf_counter()
            data = (augmented.as_if_only(cfg.use.get(variant)) if table[variant][2]
                    else parts.train)
            rows.append(_fit_eval(variant, data, parts, cfg, seed).assign(
                variant=variant, seed=seed))
            if variant in seed_free:  # first seed: later seeds reuse these rows
                first[variant] = rows[-1]
            seconds[variant] = seconds.get(variant, 0.0) + time.perf_counter() - start
            bar.update()
    bar.close()
    return pd.concat(rows, ignore_index=True), seconds


def _windows(data: ShopData, cfg: RecBenchConfig) -> list[Split]:
    """Window 0 is the test period (the validation period with ``validation``); each
    next window is the same split of the previous one's training side."""
    spec = cfg.split

    def cut(side: ShopData) -> Split:
        return split(side, spec["name"], seed=0, **spec.get("config", {}))

    sold = set(data.interactions["item_id"]) if cfg.catalog_as_of_period else set()

    def as_of_then(side: ShopData) -> ShopData:
        """Without the catalog items first sold after ``side`` ends: they did not exist
        yet (items never sold at all have no date and stay)."""
        if not cfg.catalog_as_of_period:
            return side
        future = sold - set(side.interactions["item_id"])
        return side.replace(items=side.items[~side.items["item_id"].isin(future)])

    parts = [cut(data)]
    if cfg.validation:
        parts = [cut(as_of_then(parts[0].train))]
    for k in range(1, cfg.windows):
        try:
            parts.append(cut(as_of_then(parts[-1].train)))
        except ConfigError as err:
            raise ConfigError(f"windows: {cfg.windows} reaches back before the data starts: "
                              f"window {k} fails ({err}); use at most {k} windows") from err
    return parts


def run_rec_benchmark(data: ShopData, out_dir: str | Path, cfg: RecBenchConfig,
                      llm_config=None, llm=None) -> dict[str, Any]:
    """Run the benchmark; ``llm`` (an `LLM`) overrides the one built from ``llm_config``.
    With ``windows`` > 1 every window runs the whole protocol (augmenters included, on
    its own training side) and the summary pools their users; ablation runs on window 0."""
    from shopaug.pipeline.runner import RunContext

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    windows = _windows(data, cfg)
    table, pairs = cfg.table()
    needs_aug = any(table[v][2] for v in cfg.variants)
    timings: dict[str, float] = {"augment": 0.0}
    frames, reports, synthetic, details = [], [], [], []
    ablated = None
    for k, parts in enumerate(windows):
        # one LLM for all windows; a context per window, so each window's prompt audit
        # is checked against its own test period
        ctx = RunContext(seed=0, run_dir=out_dir, progress=cfg.progress,
                         llm_config=llm_config, _llm=llm)
        start = time.perf_counter()
        augmented, report = (augment(parts.train, cfg.augment, ctx) if needs_aug
                             else (parts.train, pd.DataFrame()))
        timings["augment"] += time.perf_counter() - start
        llm = ctx._llm
        augmented, dropped = decontaminate(augmented, parts.test,
                                           interactions=cfg.decontaminate_interactions)
        desc = f"rec bench, window {k}" if len(windows) > 1 else "rec bench"
        per_user, seconds = run_variants(parts, augmented, cfg, desc)
        for name, s in seconds.items():
            timings[f"fit+eval:{name}"] = timings.get(f"fit+eval:{name}", 0.0) + s
        frames.append(per_user.assign(window=k))
        reports.append(report.assign(window=k))
        rows = augmented.interactions
        synthetic.append(rows[rows["origin"] == "synthetic"].assign(window=k))
        detail = {"window": k, "split": parts.report(), "decontaminated": dropped,
                  "synthetic_counts": augmented.origin_counts()}
        if needs_aug:
            from shopaug.quality.report import assess

            quality = assess(augmented, test=parts.test, prompts=ctx.audit)
            name = "quality.json" if k == 0 else f"quality_window{k}.json"
            atomic_write_json(out_dir / name, quality.to_dict())
            detail["quality"] = quality
        details.append(detail)
        if k == 0 and cfg.ablation and len(report):
            ablated = ablation(parts, augmented, list(report["augmenter"]), cfg)
    per_user = pd.concat(frames, ignore_index=True)
    summary = summarize(per_user, cfg.ks, cfg.n_boot, table, pairs, cfg.compare,
                        cfg.leave_one_out_variants())
    summary["pairs"] = {aug: real for aug, real in pairs.items()
                        if aug in cfg.variants and real in cfg.variants}
    if ablated is not None:
        summary["ablation"] = ablated
    summary["timings_seconds"] = {k: round(v, 2) for k, v in timings.items()}
    summary["decontaminated"] = details[0]["decontaminated"]
    summary["split"] = details[0]["split"]
    summary["synthetic_counts"] = details[0]["synthetic_counts"]
    summary["seeds"] = cfg.seeds
    summary["scored_on"] = "validation" if cfg.validation else "test"
    summary["llm"] = llm.ledger.to_dict() if llm is not None else None
    if needs_aug:
        _record_quality(summary, [d.pop("quality") for d in details])
    if len(windows) > 1:
        stats = per_window(per_user, summary, cfg.n_boot)
        summary["windows"] = [{**d, **stats.get(d["window"], {})} for d in details]
    per_user.to_csv(out_dir / "per_user.csv", index=False)
    pd.concat(reports, ignore_index=True).to_csv(out_dir / "augment_report.csv", index=False)
    pd.concat(synthetic, ignore_index=True).to_csv(out_dir / "synthetic_interactions.csv",
                                                   index=False)
    atomic_write_json(out_dir / "metrics.json", summary)
    (out_dir / "summary.txt").write_text(write_table(summary) + "\n")
    from shopaug.report.html import write_report

    write_report(out_dir)
    return summary


def _record_quality(summary: dict[str, Any], reports: list[QualityReport]) -> None:
    """One verdict for the run: window 0's, or the first failing window's."""
    failing = next((k for k, r in enumerate(reports) if not r.passed), None)
    record_quality(summary, reports[failing or 0], log)
    if failing:  # window 0 passed, an older one did not
        summary["quality"] = f"window {failing}: {summary['quality']}"


def ablation(parts: Split, augmented: ShopData, augmenters: list[str],
             cfg: RecBenchConfig) -> dict[str, dict[str, float]]:
    """Overall and cold-item recall of each ablation variant with each augmenter alone
    (first seed), next to its real-only twin."""
    metric = f"recall@{cfg.ks[0]}"
    seed = cfg.seeds[0]
    out: dict[str, dict[str, float]] = {}
    pairs = cfg.table()[1]
    for variant in cfg.ablation:
        twin = pairs.get(variant)
        rows = {}
        if twin:
            frame = _fit_eval(twin, parts.train, parts, cfg, seed)
            rows["(real only)"] = frame
        for name in dict.fromkeys(augmenters):
            rows[f"+{name}"] = _fit_eval(variant, augmented.as_if_only([name]), parts, cfg,
                                         seed)
        out[variant] = {
            label: {f"{metric}:{s}": float(f.loc[f["slice"] == s, metric].mean())
                    for s in ("all", "cold_users", "cold_items", "long_tail")
                    if (f["slice"] == s).any()}
            for label, f in rows.items()}
    return out
