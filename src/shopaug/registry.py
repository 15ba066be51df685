"""Component registry over package entry points.

Built-ins register through ``pyproject.toml`` exactly as a third-party plugin
would, under the groups below. :func:`register` adds a class in-process (for
notebooks and tests).
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points

from shopaug.components import Component, ComponentConfig
from shopaug.errors import RegistryError

GROUPS = {
    "loader": "shopaug.loaders",
    "splitter": "shopaug.splitters",
    "augmenter": "shopaug.augmenters",
    "filter": "shopaug.filters",
    "recommender": "shopaug.recommenders",
    "search_model": "shopaug.search_models",
}
_LOCAL: dict[str, dict[str, type[Component]]] = {kind: {} for kind in GROUPS}


def _group(kind: str) -> str:
    try:
        return GROUPS[kind]
    except KeyError:
        raise RegistryError(
            f"unknown component kind {kind!r}; kinds are {sorted(GROUPS)}") from None


@cache
def _entry_points(kind: str) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=_group(kind))}


def names(kind: str) -> list[str]:
    """Registered names of one kind of component."""
    return sorted({*_entry_points(kind), *_LOCAL[kind]})


def get(kind: str, name: str) -> type[Component]:
    _group(kind)
    if name in _LOCAL[kind]:
        return _LOCAL[kind][name]
    ep = _entry_points(kind).get(name)
    if ep is None:
        known = names(kind)
        hint = "" if known else " (none found: is shopaug installed, e.g. `pip install -e .`?)"
        raise RegistryError(f"no {kind} named {name!r}; registered: {known}{hint}")
    cls = ep.load()
    if not (isinstance(cls, type) and issubclass(cls, Component)):
        raise RegistryError(f"entry point {ep.value} for {kind} {name!r} is not a Component")
    return cls


def create(kind: str, name: str, config: dict | None = None) -> Component:
    return get(kind, name)(config or {})


def register(kind: str, cls: type[Component], name: str | None = None) -> type[Component]:
    """Register ``cls`` in this process; usable as a decorator via functools.partial.
    Checked now (a Component of this kind with a ComponentConfig), not when first used."""
    _group(kind)
    if not (isinstance(cls, type) and issubclass(cls, Component)):
        raise RegistryError(f"register({kind!r}, {cls!r}): not a Component subclass")
    if cls.kind != kind:
        raise RegistryError(f"{cls.__name__} is a {cls.kind}, not a {kind}: subclass the "
                            f"{kind} base class")
    if not (isinstance(cls.Config, type) and issubclass(cls.Config, ComponentConfig)):
        raise RegistryError(f"{cls.__name__}.Config must subclass shopaug.ComponentConfig "
                            "(unknown keys are then errors)")
    _LOCAL[kind][name or cls.name] = cls
    return cls
