"""Every registered component passes the conformance kit; the registry finds them."""

from __future__ import annotations

import pytest

from shopaug import registry
from shopaug.components import Component, ComponentConfig
from shopaug.errors import RegistryError
from shopaug.testing import ConformanceError, check_component

CONFIGS = {"temporal": {"test_days": 20}, "cold_start": {"test_days": 30},
           "by_query": {"test_fraction": 0.5}}


CHEAP_SEARCH = {"random": {}, "bm25": {}, "bm25_doc2query": {},
                "ltr": {"threads": 1}, "biencoder": {"fine_tune": False, "threads": 1}}


@pytest.mark.parametrize(("name", "config"), CHEAP_SEARCH.items())
def test_search_models_pass_the_kit(name, config):
    passed = check_component(registry.get("search_model", name), config=config)
    assert {"no_input_mutation", "same_seed_same_output"} <= set(passed)


@pytest.mark.parametrize("kind", ["splitter", "recommender"])
def test_registered_components_pass_the_kit(kind):
    names = registry.names(kind)
    assert names
    for name in names:
        passed = check_component(registry.get(kind, name), config=CONFIGS.get(name))
        assert {"config_round_trip", "unknown_key_rejected", "no_input_mutation",
                "same_seed_same_output"} <= set(passed), name


def test_kit_catches_a_component_that_mutates_its_input(sample):
    from shopaug.models.rec.popularity import Popularity

    class Sloppy(Popularity):
        name = "sloppy"

        def fit(self, train, seed=0):
            # reaching into the bundle's private frames is the only way to mutate it
            train._frames["interactions"].loc[0, "value"] = 99.0
            return super().fit(train, seed)

    with pytest.raises(ConformanceError, match="no_input_mutation"):
        check_component(Sloppy, data=sample)


def test_kit_catches_nondeterminism(sample):
    import random

    from shopaug.models.rec.popularity import Popularity

    class Random(Popularity):
        name = "random_pop"

        def recommend(self, user_ids, k=10):
            recs = super().recommend(user_ids, k)
            return recs.assign(score=[random.random() for _ in range(len(recs))])

    with pytest.raises(ConformanceError, match="same_seed_same_output"):
        check_component(Random, data=sample)


def test_declared_inputs_are_checked(sample):
    from shopaug.models.rec.popularity import Popularity

    class NeedsCategory(Popularity):
        name = "needs_category"
        requires = {"items": ("category",)}  # noqa: RUF012

    assert "missing_column_clear_error" in check_component(NeedsCategory, data=sample)
    with pytest.raises(Exception, match=r"items\.category"):
        NeedsCategory().check_inputs(sample.replace(items=sample.items.assign(category=None)))


def test_registry_errors_and_local_registration():
    with pytest.raises(RegistryError, match="no recommender named 'nope'; registered"):
        registry.get("recommender", "nope")
    with pytest.raises(RegistryError, match="unknown component kind"):
        registry.names("widget")

    class Echo(Component):
        kind = "augmenter"
        name = "echo"
        Config = ComponentConfig

        def run(self, data, ctx):
            return data

    registry.register("augmenter", Echo)
    assert "echo" in registry.names("augmenter")
    assert registry.create("augmenter", "echo").to_dict() == {"name": "echo", "config": {}}


def test_llm_augmenter_passes_the_kit_with_a_fake_llm(tmp_path):
    from shopaug.llm import LLM, FakeEngine, LLMCache

    llm = LLM(FakeEngine(), LLMCache(tmp_path / "c.sqlite"), progress=False)
    passed = check_component(registry.get("augmenter", "synthetic_queries"), llm=llm,
                             config={"k": 2})
    assert {"no_input_mutation", "same_seed_same_output"} <= set(passed)
