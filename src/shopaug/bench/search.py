"""``shopaug bench search``: does augmentation make search rankers better on your data?

Protocol. Queries are split by query (never by row) with several seeds. The
synthetic data is generated once for the whole catalog: its few-shot examples
come only from queries that are on the training side in *every* seed, so no
seed's test queries ever reach a prompt. Each model is then trained on the
real training judgments alone and on real + synthetic rows with the same
protocol, and every variant is scored on the same test queries (reranking each
query's judged candidates). Synthetic rows that happen to equal a query on the test
side of any seed (or one of its judged pairs) are dropped before training. Results:
NDCG@10 mean over (seed, query) with a 95% bootstrap interval that resamples queries
(a query tested under several seeds is one unit), and paired differences augmented minus real.
With ``validation`` on, each seed is scored on held-out training queries instead, so
settings can be chosen without looking at any test query.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd

from shopaug import registry
from shopaug.artifacts import atomic_write_json
from shopaug.bench import record_quality
from shopaug.bench.variants import DefinedVariants, VariantTable
from shopaug.data.bundle import ShopData
from shopaug.data.split import Split, split
from shopaug.evaluate.search import evaluate_search, query_slices
from shopaug.evaluate.stats import (
    bootstrap_mean,
    holm,
    paired_difference,
    permutation_p,
    sign_test_p,
)
from shopaug.quality.decontaminate import decontaminate

if TYPE_CHECKING:
    from shopaug.quality.report import QualityReport

log = logging.getLogger(__name__)

#: weight of the best match among an item's synthetic queries in the bi-encoder score
EXPANSION_WEIGHT = 0.5
#: real pairs a bi-encoder fine-tunes on (the cost of a fine-tune grows with them)
MAX_REAL_PAIRS = 2000
#: what every fine-tuned bi-encoder shares (the teacher and biencoder_real are then one
#: fine-tune). 64 tokens: as good as 128 on the CrowdFlower dev file (seed 0: 0.8727 vs
#: 0.8724 NDCG@10) at half the training time
FINE_TUNE: dict[str, Any] = {"fine_tune": True, "max_pairs": MAX_REAL_PAIRS,
                             "max_seq_length": 64}
#: variant -> (registry name, config, trained on augmented data?)
VARIANTS: dict[str, tuple[str, dict[str, Any], bool]] = {
    "random": ("random", {}, False),
    "bm25": ("bm25", {}, False),
    "bm25_doc2query": ("bm25_doc2query", {}, True),
    "biencoder_zeroshot": ("biencoder", {"fine_tune": False}, False),
    # zero-shot encoder + dense doc2query: what the synthetic queries give without training
    "biencoder_doc2query": ("biencoder", {"fine_tune": False,
                                          "expansion_weight": EXPANSION_WEIGHT}, True),
    "biencoder_real": ("biencoder", {**FINE_TUNE, "use_synthetic": False}, False),
    # One fine-tune over the real pairs and up to 1,000 LLM queries with their source
    # items (not a teacher's grades). Chosen on validation splits of the CrowdFlower dev
    # file (scripts/search_ablation_biencoder_order.json --validation, 3 seeds) against
    # biencoder_real: mixed +0.0051, real then synthetic (continue_from_real) +0.0025,
    # synthetic then real (synthetic_first, the previous default, picked on test queries)
    # +0.0006; all n.s. Keeping the best half by zero-shot cosine (consistency filter)
    # gave +0.0008 and +0.0002. On the bench's test queries: -0.0039 n.s. (-0.0088 on an
    # older LLM cache, where synthetic_first gave -0.0016): no order helps reliably.
    "biencoder_augmented": ("biencoder", {**FINE_TUNE, "use_synthetic": True,
                                          "synthetic_from": ["synthetic_queries"],
                                          "max_synthetic_pairs": 1000}, True),
    "ltr_real": ("ltr", {"use_synthetic": False}, False),
    "ltr_augmented": ("ltr", {"use_synthetic": True}, True),
}
#: augmented variant -> its real-only twin, for paired differences
PAIRS = {"bm25_doc2query": "bm25", "biencoder_doc2query": "biencoder_zeroshot",
         "biencoder_augmented": "biencoder_real", "ltr_augmented": "ltr_real"}

#: k 2 and a stop at the first newline: SmolLM2 writes about one query per answer
#: whatever k asks, and ~7% of its answers ran on past the JSON until max_tokens.
#: 60 description characters: 30 cut the prompt by ~14 tokens per product but not
#: the time (full CrowdFlower dev catalog, cold: 26:26 vs 26:37 of generation), so
#: per-product tokens are not what limits the batched engine
DEFAULT_AUGMENT: list[dict[str, Any]] = [
    {"name": "synthetic_queries",
     "config": {"k": 2, "max_tokens": 48, "description_chars": 60, "stop": ["\n"]}},
]
DEFAULT_FILTERS: list[dict[str, Any]] = [
    {"name": "copy_title", "config": {"drop_contained": False}}, {"name": "language"},
    {"name": "dedup"},
    {"name": "round_trip", "config": {"k": 50}},
]

#: teacher pseudo-labels: a bi-encoder fine-tuned on the seed's real judgments (the
#: biencoder_real variant itself, trained once) grades the BM25 top candidates of every
#: synthetic query, so the LTR gets graded groups instead of one positive and BM25 guesses.
#: Top 5: on the CrowdFlower dev file (3 seeds, f16 sample) ltr_augmented - ltr_real was
#: +0.0152* with 5, +0.0127 with 10, +0.0023 with 20 (deeper candidates are noisier
#: labels); on another generated sample (Q4_1 weights) +0.0147* with 5, +0.0139* with 10
DEFAULT_PER_SEED: list[dict[str, Any]] = [
    {"name": "teacher_labels",
     "config": {"queries": "synthetic", "per_query": 5, "min_score": 0.0, "max_score": None,
                "teacher": "biencoder",
                "teacher_config": {**FINE_TUNE, "use_synthetic": False}}},
]


@dataclass
class SearchBenchConfig(DefinedVariants):
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    test_fraction: float = 0.3
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    augment: list[dict[str, Any]] = field(default_factory=lambda: list(DEFAULT_AUGMENT))
    filters: list[dict[str, Any]] = field(default_factory=lambda: list(DEFAULT_FILTERS))
    #: augmenters run on each seed's training side (real + synthetic) before the
    #: augmented variants fit, for those that must learn from that seed's labels only,
    #: e.g. teacher pseudo-labels
    per_seed_augment: list[dict[str, Any]] = field(
        default_factory=lambda: list(DEFAULT_PER_SEED))
    #: per-variant config overrides, e.g. {"biencoder_augmented": {"epochs": 2}}
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: keep fine-tuned encoders (the variants' and teachers') in this directory, so a
    #: rerun on the same pairs loads them instead of training; "default":
    #: $SHOPAUG_CACHE_DIR/encoders; None: train every time
    encoder_cache: str | None = "default"
    #: split every seed's training queries again and score the held-out part (the
    #: few-shot pool is then drawn from the inner training sides), never the test
    #: queries: the place to choose settings before the bench measures them
    validation: bool = False
    #: variants of your own, run with the built-in ones: name -> {model, config,
    #: augmented, twin} (see `shopaug.bench.variants`)
    define: dict[str, dict[str, Any]] = field(default_factory=dict)
    n_boot: int = 2000
    progress: bool = True

    builtin_variants: ClassVar[VariantTable] = VARIANTS
    builtin_pairs: ClassVar[dict[str, str]] = PAIRS
    model_kind: ClassVar[str] = "search_model"


def seed_split(data: ShopData, seed: int, test_fraction: float,
               validation: bool = False) -> Split:
    """One seed's query split; with ``validation``, its training side split again the
    same way, the held-out training queries taking the test side's place."""
    parts = split(data, "by_query", seed=seed, test_fraction=test_fraction)
    if validation:
        parts = split(parts.train, "by_query", seed=seed, test_fraction=test_fraction)
    return parts


def stable_train_queries(data: ShopData, seeds: list[int], test_fraction: float,
                         validation: bool = False) -> set[str]:
    """Query ids on the training side of every seed's split: the only safe few-shot pool."""
    sides = [set(seed_split(data, s, test_fraction, validation).train.queries["query_id"])
             for s in seeds]
    return set.intersection(*sides)


def validation_split(train: ShopData, seed: int, test_fraction: float,
                     keep: set[str]) -> Split:
    """Hold out ``test_fraction`` of ``train``'s queries, none of them in ``keep``: for
    scoring on validation with synthetic data generated for the test protocol (whose
    few-shot pool ``keep`` must not be scored). ``seed_split(..., validation=True)`` is
    the bench's own validation protocol."""
    queries, judgments = train.queries, train.judgments
    pinned = queries["query_id"].isin(keep)
    free = train.replace(queries=queries[~pinned],
                         judgments=judgments[judgments["query_id"].isin(queries.loc[~pinned,
                                                                                "query_id"])])
    fraction = min(0.9, test_fraction * len(queries) / max(1, int((~pinned).sum())))
    inner = split(free, "by_query", seed=seed, test_fraction=fraction)
    held = set(inner.test.queries["query_id"])
    return Split(train.replace(queries=queries[~queries["query_id"].isin(held)],
                               judgments=judgments[~judgments["query_id"].isin(held)]),
                 inner.test, kind="by_query")


def generate(data: ShopData, cfg: SearchBenchConfig, ctx) -> tuple[ShopData, pd.DataFrame]:
    """Synthetic rows for the whole catalog, then filters; returns (synthetic-only bundle,
    filter report)."""
    pool = stable_train_queries(data, cfg.seeds, cfg.test_fraction, cfg.validation)
    queries = data.queries[data.queries["query_id"].isin(pool)]
    judgments = data.judgments[data.judgments["query_id"].isin(pool)]
    gen = data.replace(queries=queries, judgments=judgments)
    report = []
    for spec in cfg.augment:
        start = time.perf_counter()
        gen = registry.create("augmenter", spec["name"], spec.get("config", {})).run(gen, ctx)
        log.info("augmenter %s: %.1fs", spec["name"], time.perf_counter() - start)
    before = gen.synthetic().counts()["queries"]
    for spec in cfg.filters:
        component = registry.create("filter", spec["name"], spec.get("config", {}))
        gen = component.run(gen, ctx)
        rep = getattr(component, "report_", {}) or {}
        report.append({"filter": spec["name"], "removed": rep.get("removed"),
                       "kept": rep.get("kept"), "reasons": json.dumps(rep.get("reasons", {}))})
    log.info("filters kept %d of %d synthetic queries", gen.synthetic().counts()["queries"],
             before)
    return gen.synthetic(), pd.DataFrame(report)


def _with_synthetic(train: ShopData, synthetic: ShopData) -> ShopData:
    out = train
    for table in ("queries", "judgments"):
        rows = synthetic.table(table)
        if len(rows):
            out = out.append(table, rows)
    return out


def _with_encoder_cache(config: dict[str, Any], cfg: SearchBenchConfig) -> dict[str, Any]:
    if cfg.encoder_cache is None or "cache_dir" in config:
        return config
    from shopaug.models.search.encoder import default_encoder_cache

    where = default_encoder_cache() if cfg.encoder_cache == "default" else cfg.encoder_cache
    return {**config, "cache_dir": str(where)}


def augment_seed(train: ShopData, synthetic: ShopData, test: ShopData,
                 cfg: SearchBenchConfig, ctx) -> tuple[ShopData, dict[str, int]]:
    """One seed's augmented training side: its real rows, the shared synthetic rows and
    what the per-seed augmenters add from that seed's labels; decontaminated against
    that seed's test side (even with no per-seed augmenter: a validation split's held-out
    queries were training queries when the shared rows were decontaminated)."""
    augmented = _with_synthetic(train, synthetic)
    for spec in cfg.per_seed_augment:
        start = time.perf_counter()
        config = dict(spec.get("config", {}))
        if config.get("teacher") == "biencoder":
            config["teacher_config"] = _with_encoder_cache(config.get("teacher_config", {}),
                                                           cfg)
        augmented = registry.create("augmenter", spec["name"], config).run(augmented, ctx)
        log.info("seed %d augmenter %s: %.1fs", ctx.seed, spec["name"],
                 time.perf_counter() - start)
    return decontaminate(augmented, test)


def run_variants(data: ShopData, synthetic: ShopData, cfg: SearchBenchConfig, ctx=None,
                 info: dict[int, Any] | None = None
                 ) -> tuple[pd.DataFrame, dict[int, dict[str, set[str]]], dict[str, float]]:
    """Per (variant, seed, query) metrics; slices per seed; seconds per variant. ``info``
    receives each seed's synthetic judgment count and what decontamination dropped."""
    from dataclasses import replace

    from tqdm.auto import tqdm

    from shopaug.pipeline.runner import RunContext

    rows, slices, seconds = [], {}, {}
    table = cfg.table()[0]
    bar = tqdm(total=len(cfg.seeds) * len(cfg.variants), desc="search bench", unit="fit",
               disable=not cfg.progress)
    for seed in cfg.seeds:
        parts = seed_split(data, seed, cfg.test_fraction, cfg.validation)
        slices[seed] = query_slices(parts)
        start = time.perf_counter()
        seed_ctx = (replace(ctx, seed=seed) if ctx is not None
                    else RunContext(seed=seed, run_dir=Path("."), progress=cfg.progress))
        needs_aug = any(table[v][2] for v in cfg.variants)
        augmented, dropped = (augment_seed(parts.train, synthetic, parts.test, cfg, seed_ctx)
                              if needs_aug else (parts.train, {}))
        if info is not None and needs_aug:
            info[seed] = {"synthetic_judgments": int(
                (augmented.judgments["origin"] != "real").sum()),
                "decontaminated": {k: v for k, v in dropped.items() if k != "examples"}}
        seconds["per_seed_augment"] = (seconds.get("per_seed_augment", 0.0)
                                       + time.perf_counter() - start)
        for variant in cfg.variants:
            name, config, uses_aug = table[variant]
            config = {**config, **cfg.overrides.get(variant, {})}
            if name == "biencoder":
                config = _with_encoder_cache(config, cfg)
            bar.set_postfix_str(f"seed {seed} {variant}")
            start = time.perf_counter()
            model = registry.create("search_model", name, config)
            model.fit(augmented if uses_aug else parts.train, seed=seed)  # type: ignore[attr-defined]
            per_query = evaluate_search(model, parts)
            seconds[variant] = seconds.get(variant, 0.0) + time.perf_counter() - start
            per_query = per_query.reset_index().assign(variant=variant, seed=seed)
            rows.append(per_query)
            bar.update()
    bar.close()
    return pd.concat(rows, ignore_index=True), slices, seconds


def summarize(per_query: pd.DataFrame, slices: dict[int, dict[str, set[str]]],
              n_boot: int = 2000, metric: str = "ndcg@10",
              pairs: dict[str, str] = PAIRS) -> dict[str, Any]:
    """Mean and interval per variant and slice, and paired differences."""
    def in_slice(frame: pd.DataFrame, name: str) -> pd.DataFrame:
        keep = [q in slices[s].get(name, set()) for s, q in zip(frame["seed"], frame["query_id"],
                                                                 strict=True)]
        return frame[keep]

    out: dict[str, Any] = {"metric": metric, "variants": {}, "paired": {}}
    slice_names = sorted({n for per_seed in slices.values() for n in per_seed})
    for variant, frame in per_query.groupby("variant", sort=False):
        out["variants"][variant] = {
            name: bootstrap_mean(part[metric], n_boot, units=part["query_id"]).to_dict()
            for name in slice_names for part in [in_slice(frame, name)]
        }
        out["variants"][variant]["all_metrics"] = {
            c: float(frame[c].mean()) for c in frame.columns if "@" in c}
    indexed = per_query.set_index(["seed", "query_id"])
    for aug, real in pairs.items():
        if aug not in out["variants"] or real not in out["variants"]:
            continue
        a = indexed[indexed["variant"] == aug][metric]
        b = indexed[indexed["variant"] == real][metric]
        out["paired"][f"{aug} - {real}"] = {
            name: {**paired_difference(
                a[[q in slices[s].get(name, set()) for s, q in a.index]],
                b, n_boot).to_dict(), "sign_test_p": sign_test_p(a, b)}
            for name in slice_names
        }
        out["paired"][f"{aug} - {real}"]["all"]["permutation_p"] = permutation_p(a, b)
    # the twin pairs are one family of claims: Holm keeps its family-wise error at 5%
    twins = [k for k in out["paired"] if "all" in out["paired"][k]]
    for key, adjusted in zip(twins, holm([out["paired"][k]["all"]["permutation_p"]
                                          for k in twins]), strict=True):
        out["paired"][key]["all"]["p_holm"] = adjusted
    if "bm25" in out["variants"]:
        b = indexed[indexed["variant"] == "bm25"][metric]
        for variant in out["variants"]:
            # a twin pair above already holds this difference, on every slice
            if variant != "bm25" and f"{variant} - bm25" not in out["paired"]:
                a = indexed[indexed["variant"] == variant][metric]
                out["paired"][f"{variant} - bm25"] = {
                    "all": paired_difference(a, b, n_boot).to_dict()}
    return out


def write_table(summary: dict[str, Any]) -> str:
    """A plain-text table of the summary for the terminal and the closing notes."""
    where = (" on VALIDATION queries (held out of each seed's training side)"
             if summary.get("scored_on") == "validation" else "")
    # columns as wide as the longest name: defined variants can be long
    name_width = max([22, *(len(v) + 2 for v in summary["variants"])])
    pair_width = max([40, *(len(p) + 2 for p in summary["paired"])])
    lines = ["NDCG@10 with exponential gains (2^rel - 1); mean over (seed, query) with a "
             f"95% interval resampling queries{where}", "",
             f"{'variant':<{name_width}}{'NDCG@10':>9}  95% CI            cold_items"]
    no_cold = False
    for variant, res in summary["variants"].items():
        a, cold = res["all"], res.get("cold_items", {}).get("mean")
        if cold is None or cold != cold:  # an empty slice (NaN, or null when read back)
            no_cold, cold_text = True, "   n/a"
        else:
            cold_text = f"{cold:.4f}"
        lines.append(f"{variant:<{name_width}}{a['mean']:>9.4f}  [{a['lo']:.4f}, {a['hi']:.4f}]  "
                     f"{cold_text}")
    if no_cold:
        lines.append("(cold_items n/a: every test query has a relevant product that some "
                     "training query also has)")
    lines.append("")
    lines.append(f"{'':<{pair_width}}{'mean diff':>9} 95% CI (*: excludes 0)   "
                 "permutation p, Holm-adjusted over the twin pairs")
    for pair, res in summary["paired"].items():
        a = res["all"]
        mark = "*" if a["excludes_zero"] else " "
        tests = (f"   p {a['permutation_p']:.3f}  Holm {a['p_holm']:.3f}"
                 if "p_holm" in a else "")
        lines.append(f"{pair:<{pair_width}}{a['mean']:+.4f} [{a['lo']:+.4f}, {a['hi']:+.4f}]"
                     f"{mark}{tests}")
    if summary.get("quality"):
        lines += ["", summary["quality"]]
    return "\n".join(lines)


def run_search_benchmark(data: ShopData, out_dir: str | Path, cfg: SearchBenchConfig,
                         llm_config=None, llm=None) -> dict[str, Any]:
    """Run the benchmark; ``llm`` (an `LLM`) overrides the one built from ``llm_config``."""
    from shopaug.pipeline.runner import RunContext

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    ctx = RunContext(seed=0, run_dir=out_dir, progress=cfg.progress, llm_config=llm_config,
                     _llm=llm)
    start = time.perf_counter()
    table, pairs = cfg.table()
    needs_aug = any(table[v][2] for v in cfg.variants)
    synthetic, filter_report = (generate(data, cfg, ctx) if needs_aug
                                else (ShopData(items=data.items.iloc[:0]), pd.DataFrame()))
    if needs_aug:
        # against every query that is test in any seed: conservative for each seed
        synthetic, dropped = decontaminate(synthetic, _sides(data, cfg)[1])
        summary_extra = {"decontaminated": dropped}
    else:
        summary_extra = {}
    timings["augment"] = time.perf_counter() - start
    per_seed: dict[int, Any] = {}
    per_query, slices, seconds = run_variants(data, synthetic, cfg, ctx, per_seed)
    timings.update({f"fit+eval:{k}": v for k, v in seconds.items()})
    summary = summarize(per_query, slices, cfg.n_boot, pairs=pairs)
    summary["pairs"] = {aug: real for aug, real in pairs.items()
                        if aug in cfg.variants and real in cfg.variants}
    summary.update(summary_extra)
    summary["timings_seconds"] = {k: round(v, 2) for k, v in timings.items()}
    summary["synthetic_counts"] = synthetic.counts()
    summary["seeds"] = cfg.seeds
    summary["scored_on"] = "validation" if cfg.validation else "test"
    summary["per_seed_augment"] = {str(k): v for k, v in per_seed.items()}
    summary["llm"] = ctx._llm.ledger.to_dict() if ctx._llm is not None else None
    if needs_aug:
        record_quality(summary, write_quality(data, synthetic, cfg, ctx, out_dir), log)
    per_query.to_csv(out_dir / "per_query.csv", index=False)
    synthetic.queries.merge(synthetic.judgments[["query_id", "item_id", "gain"]], on="query_id",
                            how="left").merge(data.items[["item_id", "title"]], on="item_id",
                                              how="left").to_csv(out_dir / "generated_queries.csv",
                                                                 index=False)
    filter_report.to_csv(out_dir / "filter_report.csv", index=False)
    atomic_write_json(out_dir / "metrics.json", summary)
    (out_dir / "summary.txt").write_text(write_table(summary) + "\n")
    from shopaug.report.html import write_report

    write_report(out_dir)
    return summary


def _sides(data: ShopData, cfg: SearchBenchConfig) -> tuple[ShopData, ShopData]:
    """(queries on the training side of every seed, queries on the test side of any)."""
    pool = stable_train_queries(data, cfg.seeds, cfg.test_fraction, cfg.validation)
    in_pool = data.queries["query_id"].isin(pool)
    j_in_pool = data.judgments["query_id"].isin(pool)
    return (data.replace(queries=data.queries[in_pool], judgments=data.judgments[j_in_pool]),
            data.replace(queries=data.queries[~in_pool], judgments=data.judgments[~j_in_pool]))


def write_quality(data: ShopData, synthetic: ShopData, cfg: SearchBenchConfig, ctx,
                  out_dir: Path) -> QualityReport:
    """Check the synthetic rows against the queries that are test in *any* seed, and
    every prompt against them too; writes quality.json and returns the report."""
    from shopaug.quality.report import assess

    train, test = _sides(data, cfg)
    report = assess(_with_synthetic(train, synthetic), test=test, prompts=ctx.audit)
    atomic_write_json(out_dir / "quality.json", report.to_dict())
    return report
