"""LLM augmenters for recommendation (item enrichment, user profiles, interaction
simulation) with the deterministic fake LLM; one short test with the real SmolLM2."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pandas as pd
import pytest

from shopaug import ConfigError
from shopaug.augment.enrich import ItemEnrichment, is_grounded, source_text
from shopaug.augment.profiles import UserProfiles
from shopaug.augment.simulate import InteractionSimulation
from shopaug.data.bundle import ShopData
from shopaug.data.split import split
from shopaug.llm import LLM, ChatRequest, FakeEngine, LLMCache, PromptTemplate
from shopaug.llm.fake import default_responder
from shopaug.llm.structured import parse_json
from shopaug.pipeline.runner import RunContext
from shopaug.testing import check_component, sample_data

CUT = pd.Timestamp("2024-03-01")
#: titles of items bought only after the cut: none may ever reach a prompt
POST_CUT = {"t1": "POSTCUT silver teapot", "t2": "POSTCUT velvet armchair",
            "t3": "POSTCUT bamboo lamp", "z3": "竹制台灯 护眼"}
PROVENANCE = ["augmenter", "augmenter_version", "config_hash", "llm_model", "prompt_id", "seed"]


def shop() -> ShopData:
    items = pd.DataFrame(
        [("a1", "White ceramic mug", "kitchen"), ("a2", "Red heart cushion", "home"),
         ("a3", "Blue denim jacket", "fashion"), ("a4", "Garden gnome", "garden"),
         ("a5", "Glass jar with lid", "kitchen"), ("a6", "Wooden spoon set", "kitchen"),
         ("a7", "Cotton tote bag", "fashion"), ("a8", "Scented candle", "home"),
         ("z1", "纯棉T恤 男款", "服装"), ("z2", "不锈钢保温杯", "厨房"),
         *[(k, v, "new") for k, v in POST_CUT.items()]],
        columns=["item_id", "title", "category"])
    buys = [("u1", "a1", "01-01"), ("u1", "a2", "01-05"), ("u1", "a5", "02-01"),
            ("u2", "a3", "01-10"), ("u2", "a4", "02-02"),
            ("u3", "a1", "01-02"), ("u3", "a6", "01-03"), ("u3", "a7", "01-20"),
            ("u3", "a8", "01-21"), ("u3", "a2", "02-03"), ("u3", "a5", "02-20"),
            ("u4", "z1", "01-15"), ("u4", "z2", "02-10"), ("u5", "a8", "02-11"),
            ("u6", "a1", "01-04"), ("u6", "a8", "01-06"), ("u7", "a4", "02-15"),
            # after the cut: the test side
            ("u1", "t1", "03-03"), ("u1", "a1", "03-04"), ("u2", "t2", "03-05"),
            ("u3", "t3", "03-06"), ("u4", "z3", "03-07"), ("u5", "t1", "03-08"),
            ("u6", "t3", "03-09")]
    inter = pd.DataFrame([{"user_id": u, "item_id": i, "timestamp": pd.Timestamp(f"2024-{d}"),
                           "event": "purchase", "value": 2.0, "session_id": f"{u}-{d}"}
                          for u, i, d in buys])
    users = pd.DataFrame({"user_id": ["u1", "u2", "u3", "u4", "u6"]})  # u5 is missing
    return ShopData(items=items, users=users, interactions=inter)


class Recorder:
    """Answers like a compliant model and keeps every request."""

    def __init__(self, bad: set[str] = frozenset(), answer: dict | None = None) -> None:
        self.requests: list[ChatRequest] = []
        self.bad = bad
        self.answer = answer

    def __call__(self, request: ChatRequest) -> str:
        self.requests.append(request)
        data = parse_json(request.messages[-1][1])
        if self.bad & set(json.dumps(data, ensure_ascii=False).split('"')):
            return "sorry, I cannot answer that"
        if self.answer is not None:
            return json.dumps(self.answer, ensure_ascii=False)
        if request.template.startswith("interaction_sim"):
            return json.dumps({"positives": [1, 2], "negatives": [2, 3]})
        return default_responder(request)

    def text(self) -> str:
        return "\n".join(c for r in self.requests for _, c in r.messages)


def context(tmp_path: Path, responder=None, seed: int = 0) -> RunContext:
    llm = LLM(FakeEngine(responder), LLMCache(tmp_path / f"c{seed}.sqlite"), progress=False)
    return RunContext(seed=seed, run_dir=tmp_path, progress=False, _llm=llm)


# -- conformance and config ------------------------------------------------------------
@pytest.mark.parametrize(("cls", "config"), [
    (ItemEnrichment, {"fill_description": True}), (UserProfiles, {"max_history_items": 3}),
    (InteractionSimulation, {"n_candidates": 4})])
def test_conformance(cls, config):
    passed = check_component(cls, config=config, llm=LLM(FakeEngine(), progress=False))
    assert {"same_seed_same_output", "no_input_mutation", "empty_input_ok"} <= set(passed)


def test_bad_configs_are_clear_errors():
    with pytest.raises(ConfigError, match="attributes"):
        ItemEnrichment(attributes=["colour", "flavour"])
    with pytest.raises(ConfigError, match="no recommender named 'nope'"):
        InteractionSimulation(candidates_from="nope")
    with pytest.raises(ConfigError, match="weight"):
        InteractionSimulation(candidates_config={"weight": "bogus"})


@pytest.mark.parametrize("name", ["item_attributes", "user_profile", "interaction_sim"])
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_templates_examples_and_fake_answers_follow_the_schema(name, lang):
    import yaml

    from shopaug.llm import prompts

    template = PromptTemplate.load(name, lang)
    path = Path(prompts.__file__).parent / f"{name}.{lang}.yaml"
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert 1 <= len(spec["examples"]) <= 2
    for example in spec["examples"]:
        jsonschema.validate(example["answer"], template.schema)
    if lang == "zh":
        assert any("\u4e00" <= ch <= "\u9fff" for ex in spec["examples"]
                   for ch in json.dumps(ex["input"], ensure_ascii=False))
    request = ChatRequest.chat([("user", 'data: {"title": "Red mug"}')],
                               schema=template.schema)
    jsonschema.validate(json.loads(default_responder(request)), template.schema)


# -- item enrichment ----------------------------------------------------------------------
def test_grounding_is_decided_in_code():
    source = source_text({"title": "White ceramic coffee mugs", "category": "Kitchen > Mugs",
                          "attributes": {"size": "350ml"}})
    assert is_grounded("mug", source) and is_grounded("Ceramic", source)
    assert is_grounded("350ml", source) and is_grounded("white coffee mug", source)
    assert not is_grounded("blue", source) and not is_grounded("white porcelain", source)
    assert not is_grounded("the", source)  # stop words alone ground nothing
    zh = source_text({"title": "T恤 男款 纯棉"})
    assert is_grounded("纯棉", zh) and is_grounded("男款T恤", zh) and not is_grounded("羊毛", zh)


def test_enrichment_flags_grounded_and_inferred_and_keeps_real_values(tmp_path):
    items = pd.DataFrame({"item_id": ["m1"], "title": ["White ceramic coffee mugs"],
                          "category": ["Kitchen"], "attributes": ['{"color": "white"}']})
    answer = {"category": "kitchen", "product_type": "mug", "material": "ceramic",
              "colour": "blue", "style": "modern", "audience": "", "occasion": "unknown",
              "description": "A white ceramic mug for coffee and tea at home."}
    rec = Recorder(answer=answer)
    aug = ItemEnrichment(description_words=5, fill_description=True)
    out = aug.run(ShopData(items=items), context(tmp_path, rec))
    attrs = json.loads(out.items["attributes"].iloc[0])
    assert attrs["color"] == "white" and "colour" not in attrs  # the real value wins
    assert attrs["material"] == {"value": "ceramic", "grounded": True}
    assert attrs["product_type"] == {"value": "mug", "grounded": True}
    assert attrs["style"] == {"value": "modern", "grounded": False}
    assert "audience" not in attrs and "occasion" not in attrs
    assert attrs["description"] == {"value": "A white ceramic mug for", "grounded": True}
    assert out.items["description"].iloc[0] == "A white ceramic mug for"
    prov = attrs["_provenance"]
    assert prov["augmenter"] == "item_enrichment" and prov["llm_model"] == "fake-1"
    assert prov["prompt_id"] == rec.requests[0].template
    assert aug.report_ == {"items": 1, "enriched": 1, "failed": 0, "grounded": 3,
                           "inferred": 1, "descriptions_filled": 1}
    # the schema asked for is the template's, cut to nothing more than what is used
    schema = rec.requests[0].schema_dict
    assert set(schema["properties"]) == {*aug.config.attributes, "description"}
    # a second run has nothing left to do (only_missing)
    again = ItemEnrichment().run(out, context(tmp_path, rec))
    assert again.fingerprint() == out.fingerprint()


def test_invalid_answers_leave_the_item_unchanged_and_are_counted(tmp_path):
    data = sample_data().replace(items=sample_data().items.assign(
        description=["kept", None, None, None, None, None]))
    aug = ItemEnrichment(retries=1, fill_description=True)
    out = aug.run(data, context(tmp_path, Recorder(bad={"Garden gnome"})))
    items = out.items.set_index("item_id")
    assert pd.isna(items.loc["i5", "attributes"]) and pd.isna(items.loc["i5", "description"])
    assert items.drop(index="i5")["attributes"].notna().all()
    assert items.loc["i1", "description"] == "kept"  # only empty descriptions are filled
    assert aug.report_["failed"] == 1 and aug.report_["enriched"] == 5
    assert aug.report_["descriptions_filled"] == 4
    assert aug.errors_["request_id"].tolist() == ["i5"] and aug.errors_["attempts"].iloc[0] == 2
    assert (tmp_path / "errors" / "item_enrichment.csv").is_file()


def test_chinese_items_get_the_chinese_template(tmp_path):
    rec = Recorder()
    ItemEnrichment(attributes=["material"], description_words=0).run(
        sample_data(), context(tmp_path, rec))
    by_item = {r.request_id: r for r in rec.requests}
    assert by_item["i4"].template.startswith("item_attributes.zh@")
    assert "商品" in by_item["i4"].messages[-1][1]
    assert all(r.template.startswith("item_attributes.en@") for k, r in by_item.items()
               if k != "i4")
    assert list(by_item["i4"].schema_dict["properties"]) == ["material"]


# -- user profiles -------------------------------------------------------------------------
def test_no_post_cut_title_reaches_a_profile_prompt(tmp_path):
    parts = split(shop(), "temporal", cut=CUT.to_pydatetime())
    rec = Recorder()
    out = UserProfiles().run(parts.train, context(tmp_path, rec))
    prompts = rec.text()
    assert "White ceramic mug" in prompts and "不锈钢保温杯" in prompts  # the test can fail
    assert not [t for t in POST_CUT.values() if t in prompts]
    # the same through `cutoff` on data that still holds the later interactions
    rec = Recorder()
    UserProfiles(cutoff=CUT.to_pydatetime()).run(shop(), context(tmp_path / "b", rec))
    assert "White ceramic mug" in rec.text()
    assert not [t for t in POST_CUT.values() if t in rec.text()]
    assert out.users["profile_text"].notna().sum() == 7


def test_profiles_show_recent_history_and_write_users(tmp_path):
    rec = Recorder()
    aug = UserProfiles(max_history_items=3, profile_words=5, max_interests=2, min_history=2)
    out = aug.run(shop(), context(tmp_path, rec, seed=1))
    shown = {r.request_id: parse_json(r.messages[-1][1]) for r in rec.requests}
    assert shown["u3"]["recent_purchases"] == ["POSTCUT bamboo lamp", "Glass jar with lid",
                                               "Red heart cushion"]  # newest first, 3
    assert shown["u3"]["purchases_by_category"]["kitchen"] == 3
    users = out.users.set_index("user_id")
    assert set(users.index) == {"u1", "u2", "u3", "u4", "u5", "u6"}  # u5 added, u7 too short
    assert users.loc["u5", "origin"] == "real"
    for user in shown:
        assert len(users.loc[user, "profile_text"].split()) <= 5
        interests = json.loads(users.loc[user, "interests"])
        prov = interests.pop("_provenance")
        assert prov["augmenter"] == "user_profiles" and prov["seed"] == 1
        assert prov["prompt_id"].startswith("user_profile.")
        assert 1 <= len(interests) <= 2
        assert all(0 <= v["weight"] <= 1 and isinstance(v["grounded"], bool)
                   for v in interests.values())
    assert shown.keys() == {"u1", "u2", "u3", "u4", "u5", "u6"}
    assert aug.report_["short_history"] == 1
    assert rec.requests[[r.request_id for r in rec.requests].index("u4")].template.startswith(
        "user_profile.zh@")
    # real profiles are kept unless overwrite is set
    rec = Recorder()
    profiler = UserProfiles()
    again = profiler.run(out, context(tmp_path, rec))
    assert [r.request_id for r in rec.requests] == ["u7"]
    assert profiler.report_["had_profile"] == 6  # said, not silently skipped
    assert again.users["profile_text"].head(len(out.users)).tolist() == \
        out.users["profile_text"].tolist()


def test_an_interest_weight_out_of_range_is_clipped_not_a_failed_profile(tmp_path):
    answer = {"profile": "Buys cake stands", "interests": [
        {"name": "cake stands", "weight": 4}, {"name": "bowls", "weight": -0.5}]}
    aug = UserProfiles(retries=0, max_interests=2, min_history=2)
    out = aug.run(shop(), context(tmp_path, Recorder(answer=answer)))
    assert aug.report_.get("failed", 0) == 0
    interests = json.loads(out.users.set_index("user_id").loc["u1", "interests"])
    assert interests["cake stands"]["weight"] == 1.0 and interests["bowls"]["weight"] == 0.0


# -- interaction simulation -------------------------------------------------------------------
def test_simulated_rows_come_from_candidates_only_and_stay_in_training(tmp_path):
    parts = split(shop(), "temporal", cut=CUT.to_pydatetime())
    rec = Recorder()
    aug = InteractionSimulation(max_history=3, n_candidates=4, n_positive=2, n_negative=2,
                                positive_weight=0.4)
    out = aug.run(parts.train, context(tmp_path, rec))
    made = out.synthetic().interactions
    assert len(made) and out.real().fingerprint() == parts.train.real().fingerprint()
    titles = shop().items.set_index("item_id")["title"]
    asked = {r.request_id: parse_json(r.messages[-1][1]) for r in rec.requests}
    assert set(asked) == {"u1", "u2", "u4", "u5", "u6", "u7"}  # u3: 6 items > max_history
    train = parts.train.interactions
    test = parts.test.interactions
    for row in made.itertuples():
        candidates = asked[row.user_id]["candidates"]
        assert titles[row.item_id] in candidates.values()
        assert row.item_id not in set(test.loc[test["user_id"] == row.user_id, "item_id"])
        assert row.item_id not in set(train.loc[train["user_id"] == row.user_id, "item_id"])
        assert row.timestamp == train.loc[train["user_id"] == row.user_id, "timestamp"].max()
        assert row.timestamp < CUT
    # the recorder answers positives [1, 2], negatives [2, 3]: 2 is contradictory
    for user, prompt in asked.items():
        mine = made[made["user_id"] == user].set_index("item_id")
        inverse = {v: k for k, v in prompt["candidates"].items()}
        numbers = {int(inverse[titles[i]]): e for i, e in mine["event"].items()}
        assert numbers == {1: "purchase", 3: "negative"}
    pos, neg = made[made["event"] != "negative"], made[made["event"] == "negative"]
    assert (pos["value"] == 0.4).all() and (neg["value"] == 0.0).all()
    assert made[PROVENANCE].notna().all().all() and (made["origin"] == "synthetic").all()
    assert made["prompt_id"].str.startswith("interaction_sim.").all()
    assert aug.report_ == {"users": 6, "answered": 6, "failed": 0, "positives": 6,
                           "negatives": 6, "contradictions": 6, "order_disagreements": 0}
    schema = rec.requests[0].schema_dict
    assert schema["properties"]["positives"]["items"]["enum"] == [1, 2, 3, 4]
    by_user = {r.request_id: r.template for r in rec.requests}
    assert by_user["u4"].startswith("interaction_sim.zh@")
    assert by_user["u1"].startswith("interaction_sim.en@")
    # models that only learn positives see the negatives dropped
    from shopaug.models.rec.base import positives, weights

    kept = positives(out.interactions)
    assert not (kept["event"] == "negative").any()
    assert sorted(set(weights(kept))) == [0.4, 1.0]


def test_simulation_seeds_differ_and_repeat(tmp_path):
    aug = InteractionSimulation(n_candidates=5)
    data = split(shop(), "temporal", cut=CUT.to_pydatetime()).train
    a = aug.run(data, context(tmp_path, Recorder(), seed=0))
    b = aug.run(data, context(tmp_path, Recorder(), seed=0))
    c = aug.run(data, context(tmp_path, Recorder(), seed=1))
    assert a.fingerprint() == b.fingerprint()
    # seeds change the candidate order, so the same answer numbers pick other items
    assert a.synthetic().interactions["item_id"].tolist() != \
        c.synthetic().interactions["item_id"].tolist()


def by_title(request: ChatRequest) -> str:
    """Picks by product, not position: the two alphabetically first candidates are
    bought, the last one is not; Chinese shoppers' prompts get a broken answer."""
    data = parse_json(request.messages[-1][1])
    if any("\u4e00" <= ch <= "\u9fff" for ch in "".join(data["purchased"])):
        return "no idea"
    ranked = sorted(data["candidates"], key=lambda n: data["candidates"][n])
    return json.dumps({"positives": [int(n) for n in ranked[:2]],
                       "negatives": [int(ranked[-1])]})


def test_two_orders_keep_only_picks_that_survive_reversing_the_candidates(tmp_path):
    data = split(shop(), "temporal", cut=CUT.to_pydatetime()).train
    rec = Recorder()  # always [1, 2] / [2, 3]: picks by position
    two = InteractionSimulation(max_history=3, n_candidates=4, orders=2)
    out = two.run(data, context(tmp_path, rec))
    asked = {r.request_id: parse_json(r.messages[-1][1])["candidates"] for r in rec.requests}
    users = {"u1", "u2", "u4", "u5", "u6", "u7"}
    assert set(asked) == users | {f"{u}#reversed" for u in users}
    for user in users:
        first, second = asked[user], asked[f"{user}#reversed"]
        assert list(second.values()) == list(first.values())[::-1]
    # reversed, positions 1 and 3 name other products: every pick is dropped
    assert out.synthetic().interactions.empty
    assert two.report_["answered"] == 6 and two.report_["order_disagreements"] == 6 * 4

    one = InteractionSimulation(max_history=3, n_candidates=4)
    single = one.run(data, context(tmp_path / "one", by_title)).synthetic().interactions
    both = two.run(data, context(tmp_path / "two", by_title)).synthetic().interactions
    columns = ["user_id", "item_id", "event", "value"]
    assert len(single) == 5 * 3  # the Chinese shopper's answer is broken
    pd.testing.assert_frame_equal(both[columns].reset_index(drop=True),
                                  single[columns].reset_index(drop=True))
    assert two.report_ == {"users": 6, "answered": 5, "failed": 1, "positives": 10,
                           "negatives": 5, "contradictions": 0, "order_disagreements": 0}
    assert set(two.candidates_) == users and all(len(c) == 4 for c in two.candidates_.values())


def test_the_random_picker_asks_no_llm_and_takes_the_ends_of_the_shown_order(tmp_path):
    data = split(shop(), "temporal", cut=CUT.to_pydatetime()).train
    rec = Recorder()
    sim = InteractionSimulation(max_history=3, n_candidates=4, n_negative=1, picker="random")
    rows = sim.run(data, context(tmp_path, rec)).synthetic().interactions
    assert rec.requests == []
    users = {"u1", "u2", "u4", "u5", "u6", "u7"}  # the Chinese shopper too: nobody is asked
    assert set(sim.shown_) == users and sim.report_["answered"] == 6
    for user, shown in sim.shown_.items():
        mine = rows[rows["user_id"] == user]
        assert list(mine.loc[mine["event"] != "negative", "item_id"]) == shown[:2]
        assert list(mine.loc[mine["event"] == "negative", "item_id"]) == shown[-1:]
        assert sorted(shown) == sorted(sim.candidates_[user])
    assert rows["llm_model"].isna().all() and (rows["augmenter"] == "interaction_simulation").all()
    shuffled = sum(sim.shown_[u] != sim.candidates_[u] for u in users)
    assert shuffled >= 3  # a seeded shuffle, not the base recommender's top
    with pytest.raises(ValueError, match="orders must be 1"):
        InteractionSimulation(picker="random", orders=2)


# -- the real embedded model (short) --------------------------------------------------------------
@pytest.mark.llm
@pytest.mark.timeout(600)
def test_enrichment_with_real_smollm2(tmp_path):
    pytest.importorskip("llama_cpp")
    from shopaug.llm.llamacpp import LlamaCppEngine

    items = pd.DataFrame({"item_id": ["84880", "85099B"],
                          "title": ["WHITE WIRE EGG HOLDER", "JUMBO BAG RED RETROSPOT"]})
    aug = ItemEnrichment(attributes=["product_type", "colour", "material"], description_words=0,
                         max_tokens=48, retries=1)
    with LlamaCppEngine(n_ctx=2048, parallel=2) as engine:
        llm = LLM(engine, LLMCache(tmp_path / "c.sqlite"), progress=False)
        out = aug.run(ShopData(items=items), RunContext(seed=0, run_dir=tmp_path,
                                                        progress=False, _llm=llm))
    assert aug.report_["enriched"] + aug.report_["failed"] == 2 and aug.report_["enriched"]
    for row in out.items.to_dict("records"):
        if pd.isna(row["attributes"]):
            continue
        attrs = json.loads(row["attributes"])
        assert attrs.pop("_provenance")["llm_model"].startswith("SmolLM2")
        assert set(attrs) <= {"product_type", "colour", "material"}
        for value in attrs.values():
            assert value["grounded"] == is_grounded(value["value"], source_text(
                {"title": row["title"]}))
