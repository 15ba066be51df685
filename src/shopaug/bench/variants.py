"""Variants a user defines in a bench config, next to the built-in ones.

A bench compares each augmented variant with its real-only twin. The built-in table
covers shopaug's own models; ``define:`` in ``--config`` adds any registered model
(a plugin's included) with its own settings, so the same protocol, seeds, intervals
and report measure it::

    define:
      knn10_real: {model: itemknn, config: {neighbors: 10}}
      knn10_augmented: {model: itemknn, config: {neighbors: 10}, augmented: true,
                        twin: knn10_real}
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shopaug.errors import ConfigError

#: name -> (registry name, config, trained on augmented data?)
VariantTable = dict[str, tuple[str, dict[str, Any], bool]]


class VariantSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: the registered model (``shopaug components``) this variant trains
    model: str
    config: dict[str, Any] = Field(default_factory=dict)
    #: trained on real + synthetic data (else real only)
    augmented: bool = False
    #: for an augmented variant: the real-only variant its lift is measured against
    twin: str | None = None


def variant_table(builtin: VariantTable, pairs: dict[str, str],
                  define: dict[str, Any] | None, kind: str) -> tuple[VariantTable, dict[str, str]]:
    """The built-in variants and twin pairs plus the defined ones, checked: names are
    new, models are registered as ``kind``, a twin is a real-only variant."""
    from shopaug import registry
    from shopaug.errors import RegistryError

    variants, twins = dict(builtin), dict(pairs)
    specs: dict[str, VariantSpec] = {}
    for name, raw in (define or {}).items():
        if name in builtin:
            raise ConfigError(f"define: {name!r} is a built-in variant; pick another name "
                              "(or change its settings with `overrides`)")
        try:
            specs[name] = spec = VariantSpec.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(f"define: {name}: {exc.errors()[0]['msg']} "
                              f"(at {'.'.join(map(str, exc.errors()[0]['loc']))})") from None
        try:
            registry.get(kind, spec.model)
        except RegistryError as exc:
            raise ConfigError(f"define: {name}: {exc}") from None
        variants[name] = (spec.model, spec.config, spec.augmented)
    for name, spec in specs.items():
        if spec.twin is None:
            continue
        if not spec.augmented:
            raise ConfigError(f"define: {name} has a twin but is not augmented; the twin of "
                              "an augmented variant is its real-only copy")
        if spec.twin not in variants or variants[spec.twin][2]:
            real = sorted(v for v, (_, _, aug) in variants.items() if not aug)
            raise ConfigError(f"define: {name}: twin {spec.twin!r} is not a real-only "
                              f"variant; known: {real}")
        twins[name] = spec.twin
    return variants, twins


def check_configs(table: VariantTable, chosen: list[str], overrides: dict[str, dict[str, Any]],
                  kind: str) -> None:
    """Every chosen variant's settings (its own, then ``overrides``) validate against its
    model's Config now, not after an hour of generation when the model is built."""
    from shopaug import registry
    from shopaug.components import validate_config

    for name in chosen:
        model, config, _ = table[name]
        validate_config(registry.get(kind, model).Config,
                        {**config, **overrides.get(name, {})}, f"variant {name} ({model})")


class DefinedVariants:
    """What a bench config (a dataclass with ``variants`` and ``define`` fields) needs
    for ``define:``: its class sets the built-in table, twins and registry kind."""

    builtin_variants: ClassVar[VariantTable]
    builtin_pairs: ClassVar[dict[str, str]]
    #: the registry kind of its models
    model_kind: ClassVar[str]
    seeds: list[int]
    variants: list[str]
    define: dict[str, dict[str, Any]]
    n_boot: int

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ConfigError("seeds must list at least one seed, e.g. [0, 1, 2]")
        if self.n_boot < 10:
            raise ConfigError(f"n_boot must be at least 10 bootstrap resamples, not {self.n_boot}")
        if not self.variants:
            raise ConfigError("variants must name at least one variant")
        # defined variants run with the built-in ones unless the variants were chosen
        if self.define and self.variants == list(self.builtin_variants):
            self.variants = [*self.variants, *self.define]

    def table(self) -> tuple[VariantTable, dict[str, str]]:
        """(variants, augmented -> real twin), the built-in ones and ``define``."""
        return variant_table(self.builtin_variants, self.builtin_pairs, self.define,
                             self.model_kind)
