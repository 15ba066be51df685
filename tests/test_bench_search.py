"""``shopaug bench search`` end to end on a small CrowdFlower-format fixture, with the
deterministic fake LLM and the cheap model variants."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import shopaug
from shopaug.bench.search import (
    SearchBenchConfig,
    augment_seed,
    run_search_benchmark,
    seed_split,
    stable_train_queries,
    summarize,
    validation_split,
)
from shopaug.data.split import split
from shopaug.llm import LLM, FakeEngine, LLMCache
from shopaug.pipeline.runner import RunContext

CHEAP = ["random", "bm25", "bm25_doc2query"]

# Hand-written rows in the CrowdFlower layout: 8 queries x 4 products.
PRODUCTS = {
    "wine rack": ["Oak wall wine rack 6 bottles", "Metal countertop wine holder",
                  "Stainless steel ice bucket", "Bamboo bath mat"],
    "led tv": ["40 inch LED HDTV 1080p", "Samsung 32 inch smart LED TV", "TV wall mount bracket",
               "Garden hose 50 ft"],
    "running shoes": ["Nike Revolution running shoe men", "Trail runner sneaker women",
                      "Cotton ankle socks 6 pack", "Ceramic coffee mug"],
    "coffee maker": ["12 cup drip coffee maker", "Single serve pod coffee machine",
                     "Paper coffee filters 200 count", "Yoga mat purple"],
    "office chair": ["Ergonomic mesh office chair", "Leather executive desk chair",
                     "Chair floor mat clear", "Tennis racket"],
    "bluetooth speaker": ["Portable waterproof bluetooth speaker", "Mini wireless speaker",
                          "USB charging cable 6 ft", "Dog leash red"],
    "baby stroller": ["Lightweight umbrella baby stroller", "Jogging stroller all terrain",
                      "Stroller rain cover", "Kitchen knife set"],
    "gaming mouse": ["RGB wired gaming mouse 16000 dpi", "Wireless gaming mouse",
                     "Large mouse pad", "Flower pot ceramic"],
}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    rows, n = [], 0
    for query, titles in PRODUCTS.items():
        for title, grade in zip(titles, [4, 3, 2, 1], strict=True):
            n += 1
            rows.append({"id": n, "query": query, "product_title": title,
                         "product_description": "", "median_relevance": grade,
                         "relevance_variance": 0.0})
    path = tmp_path_factory.mktemp("cf") / "train.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return shopaug.load(path, format="crowdflower").data


def _run(data, tmp_path, engine):
    cfg = SearchBenchConfig(seeds=[0, 1], test_fraction=0.4, variants=CHEAP, progress=False,
                            n_boot=200)
    llm = LLM(engine, LLMCache(tmp_path / "c.sqlite"), progress=False)
    return run_search_benchmark(data, tmp_path / "out", cfg, llm=llm)


def test_bench_writes_every_variant_with_intervals(data, tmp_path):
    engine = FakeEngine()
    summary = _run(data, tmp_path, engine)
    assert set(summary["variants"]) == set(CHEAP)
    for res in summary["variants"].values():
        assert res["all"]["lo"] <= res["all"]["mean"] <= res["all"]["hi"]
    twin = summary["paired"]["bm25_doc2query - bm25"]["all"]
    assert 0 < twin["permutation_p"] <= twin["p_holm"] <= 1
    written = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert written["variants"].keys() == summary["variants"].keys()
    # the quality verdict is the summary's last line, not only a flag in metrics.json
    quality = json.loads((tmp_path / "out" / "quality.json").read_text())
    verdict = (tmp_path / "out" / "summary.txt").read_text().rstrip().splitlines()[-1]
    assert verdict == written["quality"] and verdict.startswith("quality checks: ")
    assert ("FAILED" in verdict) == (not quality["passed"]) == (not written["quality_passed"])
    generated = pd.read_csv(tmp_path / "out" / "generated_queries.csv")
    assert len(generated) and (generated["origin"] == "synthetic").all()
    assert (tmp_path / "out" / "filter_report.csv").is_file()
    assert engine.calls > 0


def test_no_test_query_of_any_seed_reaches_a_prompt(data, tmp_path):
    asked = []

    def spy(request):
        asked.append(" ".join(c for _, c in request.messages))
        from shopaug.llm.fake import default_responder

        return default_responder(request)

    _run(data, tmp_path, FakeEngine(spy))
    pool = stable_train_queries(data, [0, 1], 0.4)
    test_texts = set(data.queries.loc[~data.queries["query_id"].isin(pool), "text"])
    prompts = "\n".join(asked)
    assert test_texts and not [t for t in test_texts if f'"{t}"' in prompts]


def _grade_answer(grade: str):
    def respond(request):
        return json.dumps({"grade": grade, "confidence": 0.8})
    return respond


def test_judge_benchmark_scores_an_oracle_and_a_constant_judge(data, tmp_path):
    from shopaug.bench.judge import format_report, run_judge_benchmark

    grade_of = {t: str(g) for titles in PRODUCTS.values()
                for t, g in zip(titles, [4, 3, 2, 1], strict=True)}

    def oracle(request):
        last = request.messages[-1][1]
        title = next(t for t in grade_of if t in last)
        return json.dumps({"grade": grade_of[title], "confidence": 0.9})

    def run(responder, out):
        llm = LLM(FakeEngine(responder), LLMCache(tmp_path / f"{out}.sqlite"), progress=False)
        return run_judge_benchmark(data, tmp_path / out, n_pairs=12, seed=0,
                                   test_fraction=0.5, llm=llm, progress=False)

    perfect = run(oracle, "oracle")
    assert perfect["n"] == 12 and perfect["accuracy"] == 1.0
    assert perfect["kappa_quadratic"] == pytest.approx(1.0)
    constant = run(_grade_answer("4"), "constant")
    assert constant["accuracy"] == pytest.approx(constant["human_distribution"]["4"] / 12)
    assert constant["kappa_quadratic"] == pytest.approx(0.0)
    assert constant["per_1000_labels"]["prompt_tokens"] > 0
    assert "kappa" in format_report(constant)
    assert (tmp_path / "oracle" / "judge_agreement.json").is_file()


def test_twin_pairs_are_holm_adjusted_as_one_family():
    rng = pd.Series(range(60)).map(lambda i: (i * 37 % 11) / 10)  # deterministic spread
    rows = []
    for q, base in enumerate(rng):
        for variant, value in (("bm25", base), ("bm25_doc2query", base + 0.05),
                               ("ltr_real", base), ("ltr_augmented", base + (q % 2) * 0.02
                                                    - (q % 3 == 0) * 0.02)):
            rows.append({"seed": 0, "query_id": f"q{q}", "variant": variant, "ndcg@10": value})
    per_query = pd.DataFrame(rows)
    slices = {0: {"all": set(per_query["query_id"])}}
    paired = summarize(per_query, slices, n_boot=200)["paired"]
    clear, noisy = paired["bm25_doc2query - bm25"]["all"], paired["ltr_augmented - ltr_real"]["all"]
    assert clear["permutation_p"] < 0.01 and clear["excludes_zero"]
    assert noisy["permutation_p"] > clear["permutation_p"]
    # Holm: the smallest p is multiplied by the family size (2), the next by 1, monotone
    assert clear["p_holm"] == pytest.approx(min(1.0, 2 * clear["permutation_p"]))
    assert noisy["p_holm"] == pytest.approx(max(clear["p_holm"], noisy["permutation_p"]))
    assert "p_holm" not in paired.get("ltr_augmented - bm25", {}).get("all", {})


def test_shared_synthetic_rows_equal_to_a_test_query_are_dropped_per_seed(data, tmp_path):
    """Even with no per-seed augmenter: a validation split holds out queries that were
    training queries when the shared synthetic rows were decontaminated."""
    parts = split(data, "by_query", seed=0, test_fraction=0.4)
    held_out = parts.test.queries["text"].iloc[0]
    prov = {"origin": "synthetic", "augmenter": "synthetic_queries"}
    item = parts.train.items["item_id"].iloc[0]
    synthetic = data.replace(
        items=data.items.iloc[:0], interactions=data.interactions.iloc[:0],
        queries=pd.DataFrame([{"query_id": "s-copy", "text": held_out, **prov},
                              {"query_id": "s-new", "text": "walnut wine shelf", **prov}]),
        judgments=pd.DataFrame([{"query_id": q, "item_id": item, "grade": "4", **prov}
                                for q in ("s-copy", "s-new")]))
    cfg = SearchBenchConfig(per_seed_augment=[], progress=False)
    augmented, dropped = augment_seed(parts.train, synthetic, parts.test, cfg,
                                      RunContext(seed=0, run_dir=tmp_path, progress=False))
    kept = set(augmented.queries.loc[augmented.queries["origin"] == "synthetic", "query_id"])
    assert kept == {"s-new"}
    assert dropped["queries"] == 1


def test_validation_split_never_holds_out_a_few_shot_pool_query(data):
    """The few-shot pool stays on the training side, as in the bench; the held-out share
    is kept by drawing more of the other queries."""
    train = split(data, "by_query", seed=0, test_fraction=0.25).train
    pool = set(train.queries["query_id"].iloc[:3])
    for seed in range(5):
        inner = validation_split(train, seed, 0.34, pool)
        held = set(inner.test.queries["query_id"])
        assert held and not held & pool
        assert len(held) == round(0.34 * len(train.queries)) == 2
        assert held.isdisjoint(inner.train.queries["query_id"])
        assert len(inner.train.judgments) + len(inner.test.judgments) == len(train.judgments)


def test_validation_mode_scores_and_prompts_only_training_queries(data, tmp_path):
    """--validation: every scored query is on its seed's training side, and no prompt
    shows a query that any seed scores or tests."""
    asked = []

    def spy(request):
        from shopaug.llm.fake import default_responder

        asked.append(" ".join(c for _, c in request.messages))
        return default_responder(request)

    cfg = SearchBenchConfig(seeds=[0, 1], test_fraction=0.4, variants=CHEAP, progress=False,
                            n_boot=200, validation=True)
    llm = LLM(FakeEngine(spy), LLMCache(tmp_path / "c.sqlite"), progress=False)
    summary = run_search_benchmark(data, tmp_path / "out", cfg, llm=llm)
    assert summary["scored_on"] == "validation"
    assert "VALIDATION" in (tmp_path / "out" / "summary.txt").read_text()
    scored = pd.read_csv(tmp_path / "out" / "per_query.csv", dtype={"query_id": str})
    shown = set()
    for seed in (0, 1):
        outer = split(data, "by_query", seed=seed, test_fraction=0.4)
        inner = seed_split(data, seed, 0.4, validation=True)
        ids = set(scored.loc[scored["seed"] == seed, "query_id"])
        assert ids == set(inner.test.queries["query_id"])
        assert ids <= set(outer.train.queries["query_id"])
        shown |= set(outer.test.queries["text"]) | set(inner.test.queries["text"])
    prompts = "\n".join(asked)
    pool = stable_train_queries(data, [0, 1], 0.4, validation=True)
    examples = set(data.queries.loc[data.queries["query_id"].isin(pool), "text"])
    assert [t for t in examples if f'"{t}"' in prompts]  # the check below can see queries
    assert not [t for t in shown if f'"{t}"' in prompts]
