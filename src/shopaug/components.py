"""Base classes of registered components: a name, a frozen validated config, one contract.

Configuration is data: a component's behaviour is fully described by its
``Config``, which validates at construction (unknown keys are errors) and
round-trips through JSON/YAML.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from shopaug.errors import ConfigError, SchemaError
from shopaug.fingerprint import fingerprint

if TYPE_CHECKING:
    from shopaug.data.bundle import ShopData


class ComponentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def format_validation_error(where: str, exc: ValidationError) -> str:
    lines = [f"invalid {where}:"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling; see the docs for the allowed keys)"
        lines.append(f"  - {loc}: {msg}" if loc else f"  - {msg}")
    return "\n".join(lines)


def validate_config(model: type[BaseModel], values: Mapping[str, Any], where: str) -> Any:
    try:
        return model.model_validate(dict(values))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(where, exc)) from None


class Component:
    """A small registered piece of the pipeline.

    Subclasses set ``kind``, ``name``, ``version`` and ``Config``. Construction
    takes a ``Config``, a mapping, or keyword overrides.
    """

    kind: ClassVar[str] = "component"
    name: ClassVar[str] = "component"
    version: ClassVar[str] = "1"
    Config: ClassVar[type[ComponentConfig]] = ComponentConfig
    #: input columns this component needs beyond the schema's required ones,
    #: per table, e.g. {"items": ("category",)}; checked before anything runs
    requires: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init__(self, config: ComponentConfig | Mapping[str, Any] | None = None, **overrides: Any):
        if isinstance(config, ComponentConfig):
            if overrides:  # validated together, so a misspelt override is an error
                config = validate_config(self.Config, {**config.model_dump(), **overrides},
                                         self._where())
        else:
            config = validate_config(self.Config, {**(config or {}), **overrides}, self._where())
        if not isinstance(config, self.Config):
            raise ConfigError(
                f"{self._where()} takes a {self.Config.__name__}, got {type(config).__name__}"
            )
        self.config = config

    @classmethod
    def _where(cls) -> str:
        return f"config of {cls.kind} {cls.name!r}"

    def missing_inputs(self, data: ShopData) -> list[str]:
        """Declared input columns that ``data`` lacks or leaves entirely empty."""
        missing = []
        for table, columns in self.requires.items():
            df = data.table(table)
            missing += [f"{table}.{c}" for c in columns
                        if c not in df.columns or (len(df) and df[c].isna().all())]
        return missing

    def check_inputs(self, data: ShopData) -> None:
        missing = self.missing_inputs(data)
        if missing:
            raise SchemaError(
                f"{self.kind} {self.name!r} needs column(s) {missing}, which the data lacks or "
                "leaves empty. Fix: add them to your files (or map them with `columns:`), or "
                "remove this component from the config"
            )

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "config": self.config.model_dump(mode="json")}

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> Component:
        if spec.get("name", cls.name) != cls.name:
            raise ConfigError(f"spec names {spec['name']!r}, not {cls.name!r}")
        return cls(spec.get("config", {}))

    def config_hash(self) -> str:
        return fingerprint({"name": self.name, "version": self.version,
                            "config": self.config.model_dump(mode="json")})

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.model_dump().items())
        return f"{type(self).__name__}({args})"
