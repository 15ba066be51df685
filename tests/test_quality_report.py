"""The synthetic-data quality report on small hand-built bundles (and once on real data)."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shopaug import ConfigError
from shopaug.data.bundle import ShopData
from shopaug.errors import QualityError, ShopAugError
from shopaug.quality import QualityReport, QualityThresholds, assess
from shopaug.quality._common import tokens
from shopaug.quality.diversity import dispersion, distinct_n, self_bleu
from shopaug.quality.leakage import near_duplicates, prompt_segments
from shopaug.quality.privacy import find_pii, luhn_ok
from shopaug.quality.report import format_text


def approx(value: float):
    return pytest.approx(value, abs=1e-5)  # table cells are rounded to 6 decimals


SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
PROV = {"origin": "synthetic", "augmenter": "maker", "augmenter_version": "1",
        "config_hash": "x", "seed": 0}

ITEMS = pd.DataFrame({
    "item_id": [f"i{n}" for n in range(1, 9)],
    "title": ["White ceramic coffee mug", "Red heart cushion cover", "Blue denim jacket men",
              "纯棉T恤 男款", "Garden gnome statue", "Glass storage jar with lid",
              "不锈钢保温杯 500ml", "Wireless bluetooth headphones"],
    "category": ["kitchen", "home", "fashion", "fashion", "garden", "kitchen", "kitchen",
                 "electronics"],
    "brand": ["HomeCo", "Softy", "Jeanius", "优衣库", "GnomeWorld", "Kilner", "象印", "Sonic"],
    "price": [4.5, 12.0, 49.0, 59.0, 8.0, 3.0, 99.0, 30.0],
})
REAL_Q = pd.DataFrame({"query_id": ["q1", "q2", "q3", "q4"],
                       "text": ["coffee mug", "heart cushion", "denim jacket", "纯棉T恤"]})
REAL_J = pd.DataFrame({"query_id": ["q1", "q2", "q3", "q4", "q1"],
                       "item_id": ["i1", "i2", "i3", "i4", "i6"],
                       "grade": ["4", "4", "4", "4", "1"]})
TEST_Q = pd.DataFrame({"query_id": ["t1", "t2", "t3"],
                       "text": ["glass storage jar", "不锈钢保温杯", "wireless headphones"]})
TEST_J = pd.DataFrame({"query_id": ["t1", "t2", "t3"], "item_id": ["i6", "i7", "i8"],
                       "grade": ["4", "4", "4"]})


def events(rows: list[tuple[str, str, int]], **extra) -> pd.DataFrame:
    """(user, item, day) -> interaction rows."""
    return pd.DataFrame([{"user_id": u, "item_id": i, "event": "purchase", "value": 1.0,
                          "timestamp": pd.Timestamp("2024-01-01") + pd.Timedelta(days=d)}
                         for u, i, d in rows]).assign(**extra)


REAL_I = events([("u1", "i1", 0), ("u1", "i2", 1), ("u1", "i6", 5), ("u2", "i3", 0),
                 ("u2", "i4", 2), ("u3", "i5", 1), ("u3", "i1", 3), ("u3", "i6", 9),
                 ("u4", "i2", 4), ("u4", "i7", 6)])


def bundle(syn_queries: list[tuple[str, str, str]] = (), syn_inter: pd.DataFrame | None = None,
           items: pd.DataFrame = ITEMS, users: pd.DataFrame | None = None) -> ShopData:
    """Real rows plus synthetic (query id, text, item) queries and synthetic interactions."""
    data = ShopData(items=items, users=users, interactions=REAL_I, queries=REAL_Q,
                    judgments=REAL_J, grade_scale="1-4")
    if syn_queries:
        q = pd.DataFrame([(a, b) for a, b, _ in syn_queries], columns=["query_id", "text"])
        j = pd.DataFrame([(a, c) for a, _, c in syn_queries], columns=["query_id", "item_id"])
        data = data.append("queries", q.assign(**PROV))
        data = data.append("judgments", j.assign(grade="4", gain=1.0, **PROV))
    if syn_inter is not None:
        data = data.append("interactions", syn_inter.assign(**PROV))
    return data


def held_out(interactions: pd.DataFrame | None = None) -> ShopData:
    return ShopData(items=ITEMS, queries=TEST_Q, judgments=TEST_J, interactions=interactions,
                    grade_scale="1-4")


CLEAN_Q = [("s1", "ceramic mug white", "i1"), ("s2", "red cushion cover", "i2"),
           ("s3", "mens denim jacket", "i3"), ("s4", "男款T恤", "i4"),
           ("s5", "gnome for the garden", "i5")]


def check_schema(report: QualityReport) -> dict:
    """to_dict() is JSON and follows the shared schema; returns the parsed dict."""
    out = json.loads(json.dumps(report.to_dict(), ensure_ascii=False, allow_nan=False))
    assert set(out) == {"passed", "checks", "sections", "counts"}
    assert out["passed"] == all(c["passed"] for c in out["checks"])
    for c in out["checks"]:
        assert set(c) == {"section", "name", "value", "threshold", "op", "passed", "detail"}
        assert c["op"] in ("<=", ">=") and isinstance(c["value"], float)
    assert list(out["sections"]) == ["fidelity", "diversity", "consistency", "leakage",
                                     "privacy"]
    for section in out["sections"].values():
        assert set(section) == {"tables", "plots"}
        for table in section["tables"]:
            assert set(table) == {"title", "columns", "rows", "note"}
            for row in table["rows"]:
                assert len(row) == len(table["columns"])
                assert all(v is None or isinstance(v, str | int | float | bool) for v in row)
        for plot in section["plots"]:
            assert set(plot) == {"title", "kind", "x_label", "y_label", "labels", "series"}
            assert plot["kind"] in ("hist", "bar") and plot["series"]
            for values in plot["series"].values():
                assert len(values) == len(plot["labels"])
    for table, by in out["counts"].items():
        assert set(by) == {"real", "synthetic"}, table
    return out


def table(report: QualityReport | dict, section: str, title: str) -> list[dict]:
    out = report if isinstance(report, dict) else report.to_dict()
    found = [t for t in out["sections"][section]["tables"] if t["title"].startswith(title)]
    assert found, f"no table {title!r} in {section}"
    return [dict(zip(found[0]["columns"], row, strict=True)) for row in found[0]["rows"]]


def check(report: QualityReport, name: str):
    return next(c for c in report.checks if c.name == name)


# -- fidelity ---------------------------------------------------------------------------
def test_fidelity_zero_for_identical_and_large_for_disjoint():
    copy = REAL_I.assign(user_id="sim~" + REAL_I["user_id"])
    same = check_schema(assess(bundle(syn_inter=copy)))
    rows = table(same, "fidelity", "Per-column distance")
    inter = {r["column"]: r["distance"] for r in rows if r["table"] == "interactions"}
    assert inter == {"timestamp": 0.0, "event": 0.0, "value": 0.0}
    behaviour = {r["metric"]: r["distance"] for r in table(same, "fidelity", "Behaviour")}
    assert behaviour["mean events per session"] == 0.0
    assert behaviour["category transitions"] == 0.0
    assert table(same, "fidelity", "Category mix")[0]["distance (TV)"] == 0.0

    far = events([("sim~a", "i8", 400), ("sim~a", "i8", 400), ("sim~b", "i8", 500)],
                 event="view", value=7.0)
    disjoint = check_schema(assess(bundle(syn_inter=far)))
    inter = {r["column"]: r["distance"] for r in table(disjoint, "fidelity", "Per-column")
             if r["table"] == "interactions"}
    assert inter == {"timestamp": 1.0, "event": 1.0, "value": 1.0}
    assert table(disjoint, "fidelity", "Category mix")[0]["distance (TV)"] == 1.0
    titles = [p["title"] for p in disjoint["sections"]["fidelity"]["plots"]]
    assert "Session length (events per session)" in titles


def test_query_text_statistics_and_cjk():
    assert tokens("纯棉T恤 男款!") == ["纯", "棉", "t", "恤", "男", "款"]
    report = assess(bundle([*CLEAN_Q, ("s6", "不锈钢 杯子", "i7")]))
    stats = {r["metric"]: r for r in table(report, "fidelity", "Query text")}
    assert stats["queries"]["real"] == 4 and stats["queries"]["synthetic"] == 6
    # "for", "the", "mens", "不", "锈", "钢", "杯", "子" ... are unseen in real queries
    assert 0 < stats["share of synthetic tokens unseen in real queries"]["synthetic"] < 1
    assert 0 < stats["vocabulary Jaccard"]["synthetic"] < 1
    check_schema(report)


# -- diversity ------------------------------------------------------------------------
def test_repetitive_text_scores_lower_diversity():
    varied = ["red ceramic mug", "blue denim jacket", "garden gnome statue", "glass jar lid",
              "wireless headphones sale", "heart cushion cover", "cotton t shirt men",
              "stainless steel flask", "kitchen storage box", "bluetooth speaker mini"]
    repetitive = ["red ceramic mug", "red ceramic mug cheap", "red ceramic mug",
                  "cheap red ceramic mug", "red ceramic mug", "red ceramic mugs",
                  "red ceramic mug", "red ceramic mug sale", "red ceramic mug", "red mug"]
    v, r = [tokens(t) for t in varied], [tokens(t) for t in repetitive]
    assert distinct_n(r, 1) < distinct_n(v, 1) and distinct_n(r, 2) < distinct_n(v, 2)
    assert self_bleu(r) > 0.5 > self_bleu(v)
    assert self_bleu([["a", "b"], ["a", "b"]]) == approx(1.0)
    assert dispersion(repetitive) < dispersion(varied)
    # an injected embedder is used instead of the default
    calls = []

    def embed(texts):
        calls.append(len(texts))
        return np.eye(len(texts))

    assert dispersion(varied, embed) == approx(1.0) and calls == [10]

    syn = [(f"s{i}", text, "i1") for i, text in enumerate(repetitive)]
    rows = {r["origin"]: r for r in table(assess(bundle(syn)), "diversity", "Text diversity")}
    assert rows["synthetic"]["distinct-2"] < rows["real"]["distinct-2"]
    assert rows["synthetic"]["self-BLEU-4"] > rows["real"]["self-BLEU-4"]
    assert rows["synthetic"]["duplicate share"] == approx(0.4)


def test_catalog_coverage_counts_synthetic_queries_and_enrichment():
    items = ITEMS.assign(attributes=[json.dumps({"colour": {"value": "red", "grounded": True},
                                                 "_provenance": {"augmenter": "e"}})
                                     if i == "i8" else None for i in ITEMS["item_id"]])
    report = assess(bundle(CLEAN_Q, items=items))
    rows = {r["kind"]: r for r in table(report, "diversity", "Catalog coverage")}
    assert rows["synthetic query"]["items (synthetic)"] == 5
    assert rows["enrichment"]["items (synthetic)"] == 1
    assert rows["any synthetic row"]["share (synthetic)"] == approx(6 / 8)


# -- consistency ----------------------------------------------------------------------
def test_grounded_attribute_share():
    attrs = {"colour": {"value": "White", "grounded": True},
             "material": {"value": "ceramic mugs", "grounded": True},
             "style": {"value": "scandinavian minimalist", "grounded": False},
             "size": "350ml", "_provenance": {"augmenter": "item_enrichment"}}
    zh = {"material": {"value": "纯棉", "grounded": True},
          "colour": {"value": "黑色", "grounded": False}}
    items = ITEMS.assign(attributes=[json.dumps(attrs) if i == "i1" else
                                     json.dumps(zh, ensure_ascii=False) if i == "i4" else None
                                     for i in ITEMS["item_id"]])
    report = assess(bundle(CLEAN_Q, items=items))
    rows = {r["attribute"]: r for r in table(report, "consistency", "Grounded attribute")}
    assert rows["colour"]["grounded share"] == approx(0.5)  # White yes, 黑色 no
    assert rows["material"]["grounded share"] == 1.0  # plural "mugs" and 纯棉 are in the text
    assert rows["style"]["grounded share"] == 0.0
    assert rows["all attributes (no description)"]["values"] == 5  # "size" is real data
    assert rows["all attributes (no description)"]["grounded share"] == approx(3 / 5)


def test_relevance_and_judge_confidence():
    data = bundle([*CLEAN_Q, ("s9", "tractor tyres", "i2")])
    judged = data.judgments
    judged.loc[judged["origin"] == "synthetic", "quality_score"] = [0.9, 0.8, 0.7, 0.6, 0.4,
                                                                    0.1]
    report = assess(data.replace(judgments=judged))
    rel = {r["pairs"]: r for r in table(report, "consistency", "Lexical query-item")}
    assert rel["synthetic relevant"]["n"] == 6
    assert rel["synthetic relevant"]["share with no word in common"] == approx(1 / 6)
    assert rel["real relevant"]["mean score"] > rel["real not relevant"]["mean score"]
    conf = table(report, "consistency", "Confidence")[0]
    assert conf["judgments"] == 6 and conf["share below 0.5"] == approx(2 / 6)


# -- privacy --------------------------------------------------------------------------
def test_pii_scan_finds_planted_values_only():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    kinds = lambda text: [k for k, _, _ in find_pii(text)]  # noqa: E731
    assert kinds("mail john.doe@example.com now") == ["email"]
    assert kinds("call +44 20 7946 0958") == ["phone"]
    assert kinds("手机13812345678联系") == ["phone"]
    assert kinds("shiftshift3_16430620042") == kinds("sku A13812345678") == []  # codes
    assert kinds("card 4111 1111 1111 1111 exp") == ["card"]
    assert kinds("card 4111 1111 1111 1112 exp") == []
    assert kinds("ship to 221 Baker Street, London") == ["address"]
    assert kinds("北京市朝阳路88号") == ["address"]
    assert kinds("2 pack road bike tyres") == kinds("5号电池 10节") == []
    assert kinds("12 Oak Drive") == kinds("9 Elm Dr, Leeds") == ["address"]
    # storage drives and quantities, as the stronger packaged model writes them
    assert kinds("acme 500 gb portable hard drive") == []
    assert kinds("usb 3.0 portable hard drive") == kinds("2 tb external hard drive") == []
    assert kinds("4 pack usb flash drive") == kinds("1 terabyte solid state drive") == []
    assert kinds("ean 5012345678900 mug 350ml") == []  # 13 digits, Luhn-invalid

    users = pd.DataFrame({"user_id": ["u1", "u2"],
                          "profile_text": ["Likes mugs. Reach me on 13912345678", "Real text"],
                          "interests": [json.dumps({"_provenance": {}}), None]})
    syn = [("s1", "red mug john.doe@example.com", "i1"),
           ("s2", "pay 4111-1111-1111-1111", "i1"), ("s3", "pay 4111111111111112", "i2")]
    report = assess(bundle(syn, users=users))
    found = {r["kind"]: r["matches"] for r in table(report, "privacy", "PII in generated")}
    assert found == {"email": 1, "card": 1, "phone": 1, "address": 0}
    examples = table(report, "privacy", "PII examples")
    assert len(examples) == 3 and "[EMAIL]" in examples[0]["text"]
    assert not any("john.doe" in e["text"] or "13912345678" in e["text"] for e in examples)
    assert {c.name for c in report.failed()} == {"pii_emails", "pii_cards", "pii_phones"}


def test_dcr_flags_exact_copies_of_real_users():
    copies = REAL_I[REAL_I["user_id"].isin(["u1", "u2"])].assign(
        user_id=lambda d: "sim~" + d["user_id"])
    report = assess(bundle(syn_inter=copies))
    c = check(report, "synthetic_user_exact_copy_share")
    assert c.value == 1.0 and not c.passed
    rows = {r["metric"]: r for r in table(report, "privacy", "Distance to closest")}
    assert rows["median DCR (Jaccard distance of item sets)"]["synthetic users"] == 0.0
    assert rows["median DCR (Jaccard distance of item sets)"]["real users (to nearest other)"] > 0

    novel = events([("sim~a", "i8", 1), ("sim~a", "i3", 2), ("sim~b", "i5", 3),
                    ("sim~b", "i7", 3)])
    novel_report = assess(bundle(syn_inter=novel))
    c = check(novel_report, "synthetic_user_exact_copy_share")
    assert c.value == 0.0 and c.passed
    check_schema(novel_report)


# -- leakage --------------------------------------------------------------------------
def leak_checks(report: QualityReport) -> dict[str, float]:
    return {c.name: c.value for c in report.checks if c.section == "leakage"}


def test_leaky_variant_fails_and_clean_one_passes():
    catalog_prompt = {"stage": "synthetic_queries", "request_id": "i6", "text":
                      'Product: {"title": "Glass storage jar with lid", "category": "kitchen"}\n'
                      'Write 3 queries. Answer as {"queries": [...]}'}
    clean_rec = {"stage": "user_profiles", "request_id": "u1", "text":
                 'Purchases: {"recent_purchases": ["White ceramic coffee mug"], "candidates": '
                 '{"1": "Wireless bluetooth headphones"}}'}
    test_inter = events([("u1", "i8", 30), ("u1", "i1", 31)])
    repeat = events([("u1", "i1", 2)])  # u1 bought i1 in train and again in test: no leak
    clean = assess(bundle(CLEAN_Q, syn_inter=repeat), test=held_out(test_inter),
                   prompts=[catalog_prompt, clean_rec])
    assert clean.passed and set(leak_checks(clean).values()) == {0.0}
    assert len(leak_checks(clean)) == 6
    clean.raise_if_failed()
    check_schema(clean)

    leaky_q = [*CLEAN_Q, ("x1", "Glass Storage Jar!", "i6"), ("x2", "不锈钢保温杯", "i7"),
               ("x3", "wireless headphone", "i8")]
    leaky_i = events([("u1", "i8", 3)])
    few_shot = {"stage": "synthetic_queries", "request_id": "i2", "text":
                'Product: {"title": "Glass storage jar with lid"}\n{"queries": '
                '["glass storage jar"]}\nProduct: {"title": "Red heart cushion cover"}'}
    rec_leak = {"stage": "user_profiles", "request_id": "u1", "text":
                '{"recent_purchases": ["White ceramic coffee mug", '
                '"Wireless bluetooth headphones"]}'}
    # a few-shot example (an earlier object) may show any title: not this user's record
    rec_example = {"stage": "user_profiles", "request_id": "u1", "text":
                   '{"recent_purchases": ["Wireless bluetooth headphones"]}\n{"profile": "x"}'
                   '\n{"recent_purchases": ["White ceramic coffee mug"]}'}
    leaky = assess(bundle(leaky_q, syn_inter=leaky_i), test=held_out(test_inter),
                   prompts=[catalog_prompt, few_shot, rec_leak, rec_example])
    got = leak_checks(leaky)
    # shares of the 8 synthetic queries / judgments and the 1 synthetic interaction
    assert got["test_query_exact_share"] == 2 / 8  # normalised copies, CJK included
    assert got["test_query_near_duplicate_share"] == 1 / 8  # "wireless headphone"
    assert got["test_judgment_overlap_share"] == 2 / 8
    assert got["test_interaction_overlap_share"] == 1
    assert got["prompts_with_test_query"] == 1  # the few-shot answer, not the catalog title
    assert got["prompts_with_test_only_items"] == 1  # history, not candidates or examples
    assert not leaky.passed
    with pytest.raises(QualityError) as err:
        leaky.raise_if_failed()
    message = str(err.value)
    for name in got:
        assert f"leakage.{name}" in message
    assert "test_query_exact_share: 0.25" in message and "must be <= 0.01" in message
    assert isinstance(err.value, ShopAugError) and len(err.value.checks) == 6
    assert clean.verdict() == f"quality checks: all {len(clean.checks)} passed"
    verdict = leaky.verdict()
    assert verdict.startswith(f"quality checks: 6 of {len(leaky.checks)} FAILED: ")
    assert "leakage.test_query_exact_share = 0.25 (must be <= 0.01)" in verdict
    text = format_text(leaky)
    assert "FAIL  leakage.test_query_exact_share" in text and "PASS  privacy" in text
    check_schema(leaky)


def test_prompt_audit_reads_one_line_products_as_catalog_text():
    """search_queries writes the product as ``title; key: value``: its catalog pieces
    are not test queries, while a few-shot answer or a piece labelled as a query is."""
    from shopaug.llm.prompts import PromptTemplate

    template = PromptTemplate.load("search_queries")
    assert template.product_format == "text"

    def prompt(fields, examples=()):
        messages = template.messages(fields, examples, k=2)
        return {"stage": "synthetic_queries", "request_id": "r",
                "text": "\n".join(content for _, content in messages)}

    # a title may hold "; " itself, as the product line's own separator
    jar = {"title": "Kilner; glass storage jar, 1 litre", "brand": "Kilner",
           "category": "kitchen"}
    mug = {"title": "White ceramic coffee mug", "category": "kitchen"}
    test = held_out()
    items = ITEMS.assign(title=ITEMS["title"].replace("Glass storage jar with lid", jar["title"]))
    test = test.replace(items=items)
    own_title = prompt(jar)
    assert "Product: Kilner; glass storage jar, 1 litre; brand: Kilner" in own_title["text"]
    shown_answer = prompt(mug, [(mug, {"queries": ["glass storage jar"]})])
    as_query = {"stage": "relevance_judge", "request_id": "r",
                "text": "Query and product: query: glass storage jar; White ceramic coffee mug"}
    free_text = {"stage": "s", "request_id": "r", "text": "find me a glass storage jar please"}
    counts = [check(assess(bundle(), test=test, prompts=[p]), "prompts_with_test_query").value
              for p in (own_title, shown_answer, as_query, free_text)]
    assert counts == [0, 1, 1, 1]


def test_a_training_query_that_holds_a_test_query_is_not_a_leak():
    """Query splits group identical texts only, so the training query "large glass
    storage jar" may sit beside the test query "glass storage jar"; shown as a few-shot
    example it is training data. The same words as a synthetic query still count."""
    from shopaug.llm.prompts import PromptTemplate

    template = PromptTemplate.load("search_queries")
    mug = {"title": "White ceramic coffee mug", "category": "kitchen"}
    shown = {"stage": "synthetic_queries", "request_id": "r", "text": "\n".join(
        c for _, c in template.messages(mug, [(mug, {"queries": ["large glass storage jar"]})],
                                        k=2))}
    real = bundle().append("queries", pd.DataFrame(
        {"query_id": ["q9"], "text": ["large glass storage jar"], "origin": ["real"]}))
    synthetic = bundle([("s9", "large glass storage jar", "i1")])
    counts = [check(assess(data, test=held_out(), prompts=[shown]), "prompts_with_test_query"
                    ).value for data in (real, synthetic)]
    assert counts == [0, 1]


def test_leakage_helpers_and_thresholds():
    assert near_duplicates(["wireless headphone", "red mug"],
                           ["wireless headphones", "garden"], 0.8) == {0: (0, approx(
                               16 / 17))}
    assert near_duplicates(["abc"], ["xyz"], 0.5) == {}
    segs = prompt_segments('Q: x {"a": {"b": ["c", "d"]}, "n": 1} tail {broken')
    assert segs == [(-1, (), "Q: x "), (0, ("a", "b"), "c"), (0, ("a", "b"), "d"),
                    (-1, (), " tail {broken")]
    # a short CJK test query (< 4 characters) is not searched in prompts
    prompt = {"stage": "s", "request_id": "r", "text": 'Query: "纯棉T恤 男" and "保温杯"'}
    test = ShopData(items=ITEMS, queries=pd.DataFrame({"query_id": ["t"], "text": ["保温杯"]}))
    assert check(assess(bundle(), test=test, prompts=[prompt]), "prompts_with_test_query"
                 ).value == 0
    test = test.replace(queries=pd.DataFrame({"query_id": ["t"], "text": ["纯棉T恤男"]}))
    assert check(assess(bundle(), test=test, prompts=[prompt]), "prompts_with_test_query"
                 ).value == 1

    leaky = bundle([("x", "glass storage jar", "i6")])
    relaxed = assess(leaky, test=held_out(), thresholds={"test_query_exact_share": 1,
                                                          "test_judgment_overlap_share": None})
    assert relaxed.passed and "test_judgment_overlap_share" not in leak_checks(relaxed)
    assert not assess(leaky, test=held_out()).passed
    no_test = assess(leaky)
    assert leak_checks(no_test) == {}
    assert "no test data" in table(no_test, "leakage", "Leakage")[0]["note"]
    with pytest.raises(ConfigError, match="surely_not"):
        assess(leaky, thresholds={"surely_not": 1})
    with pytest.raises(Exception):  # noqa: B017 - frozen pydantic model
        QualityThresholds().pii_cards = 3


def test_report_runs_on_the_sample_bundle_and_its_doctest():
    import shopaug.quality.report as module

    assert doctest.testmod(module).failed == 0
    empty = assess(ShopData())
    check_schema(empty)
    assert empty.passed


# -- real data ------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "crowdflower_dev").is_dir(), reason="no shared data")
def test_real_crowdflower_clean_passes_and_leaky_fails(tmp_path):
    import shopaug
    from shopaug.augment.queries import SyntheticQueries
    from shopaug.data.split import split
    from shopaug.llm import LLM, FakeEngine, LLMCache
    from shopaug.llm.fake import default_responder
    from shopaug.pipeline.runner import RunContext

    data = shopaug.load(SHARED / "crowdflower_dev" / "crowdflower_dev.csv",
                        format="crowdflower").data
    parts = split(data, "by_query", seed=0, test_fraction=0.3)
    train, test = parts.train, parts.test
    prompts = []

    def recording(request):
        prompts.append({"stage": "synthetic_queries", "request_id": request.request_id,
                        "text": "\n".join(c for _, c in request.messages)})
        return default_responder(request)

    llm = LLM(FakeEngine(recording), LLMCache(tmp_path / "c.sqlite"), progress=False)
    ctx = RunContext(seed=0, run_dir=tmp_path, progress=False, _llm=llm)
    # items judged only for training queries: the fake LLM echoes title words, and a title
    # fragment of a test-judged item can equal a test query (rightly counted as overlap)
    judged = set(train.judgments["item_id"]) - set(test.judgments["item_id"])
    source = train.replace(items=train.items[train.items["item_id"].isin(judged)].head(150))
    made = SyntheticQueries(k=3).run(source, ctx).synthetic()
    # every item prompted (an answer the schema rejects is asked again with a new seed)
    assert len(made.queries) > 100 and len({p["request_id"] for p in prompts}) == 150
    augmented = train.append("queries", made.queries).append("judgments", made.judgments)

    clean = assess(augmented, test=test, prompts=prompts)
    assert {c.name for c in clean.checks if c.section == "leakage"} >= {
        "test_query_exact_share", "test_query_near_duplicate_share", "prompts_with_test_query"}
    assert not [c for c in clean.failed() if c.section == "leakage"], format_text(clean)
    check_schema(clean)

    copies = test.queries.head(10)
    leak_q = copies.assign(query_id="leak-" + copies["query_id"], **PROV)
    leak_j = test.judgments[test.judgments["query_id"].isin(copies["query_id"])]
    leak_j = leak_j.assign(query_id="leak-" + leak_j["query_id"], **PROV)
    leaky = augmented.append("queries", leak_q).append("judgments", leak_j)
    shot = {"stage": "synthetic_queries", "request_id": "x",
            "text": json.dumps({"queries": copies["text"].tolist()[:3]})}
    report = assess(leaky, test=test, prompts=[*prompts, shot])
    failed = {c.name: c.value for c in report.failed()}
    n_syn_q = int((leaky.queries["origin"] == "synthetic").sum())
    n_syn_j = int((leaky.judgments["origin"] == "synthetic").sum())
    assert failed["test_query_exact_share"] == approx(10 / n_syn_q)
    assert failed["test_judgment_overlap_share"] == approx(len(leak_j) / n_syn_j)
    assert failed["prompts_with_test_query"] >= 1
    with pytest.raises(QualityError, match="test_query_exact_share"):
        report.raise_if_failed()


def test_views_of_a_real_users_history_are_not_privacy_copies():
    t = pd.Timestamp("2024-01-01")
    real = [("u1", "i1"), ("u1", "i2"), ("u2", "i3")]
    rows = [{"user_id": u, "item_id": i, "timestamp": t} for u, i in real]
    # u1~reorder0 reorders u1's own history; "stranger" copies u2 outright
    syn = [("u1~reorder0", "i2"), ("u1~reorder0", "i1"), ("stranger", "i3")]
    rows += [{"user_id": u, "item_id": i, "timestamp": t, "origin": "synthetic",
              "augmenter": "x"} for u, i in syn]
    data = ShopData(items=ITEMS, interactions=pd.DataFrame(rows))
    copy = check(assess(data), "synthetic_user_exact_copy_share")
    assert copy.value == 1.0 and "1 synthetic users" in copy.detail  # only "stranger"


def test_decontamination_drops_only_synthetic_rows_that_equal_test_rows():
    from shopaug.quality.decontaminate import decontaminate

    test_inter = events([("u1", "i8", 30)])
    leaky_q = [*CLEAN_Q, ("x1", "Glass Storage Jar!", "i6")]
    leaky_i = events([("u1", "i8", 3), ("u1", "i2", 4)])
    data = bundle(leaky_q, syn_inter=leaky_i)
    clean, dropped = decontaminate(data, held_out(test_inter))
    assert (dropped["queries"], dropped["judgments"], dropped["interactions"]) == (1, 1, 1)
    assert "x1" not in set(clean.queries["query_id"]) and len(clean.real().queries) == len(
        data.real().queries)
    assert len(clean.interactions) == len(data.interactions) - 1
    after = leak_checks(assess(clean, test=held_out(test_inter)))
    assert after["test_query_exact_share"] == 0 and after["test_interaction_overlap_share"] == 0
    # nothing to drop: the very same bundle comes back
    same, none = decontaminate(bundle(CLEAN_Q), held_out())
    assert none["queries"] == none["judgments"] == 0 and len(same.queries) == len(
        bundle(CLEAN_Q).queries)
