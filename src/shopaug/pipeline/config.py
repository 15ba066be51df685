"""The pipeline config: one YAML file names the data, split, stages, models and seeds.

Unknown keys are errors everywhere, including inside each component's config
(validated by the component's own ``Config`` when the pipeline config loads,
so a typo fails before any work starts). A run is identified by the hash of
the canonical config, minus keys that do not change results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from shopaug.components import format_validation_error
from shopaug.errors import ConfigError
from shopaug.fingerprint import fingerprint
from shopaug.llm.config import LLMConfig
from shopaug.pipeline.executors import ExecutorOptions

#: keys that change where or how loudly a run happens, not what it computes
#: (the executor too: every executor gives the same rows for the same seed)
_NOT_FINGERPRINTED = {"output", "progress", "executor", "executor_options"}
#: llm keys that change how answers are fetched, not which answers (the cache key
#: covers the model, prompts and sampling)
_LLM_NOT_FINGERPRINTED = {"cache", "use_cache", "progress", "concurrency", "timeout",
                          "max_retries", "batch_size", "n_threads", "budget",
                          "price_prompt_per_1k", "price_completion_per_1k", "api_key_env"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ComponentSpec(_Strict):
    name: str
    config: dict[str, Any] = Field(default_factory=dict)
    #: how results name this entry; needed when one component is listed twice
    label: str | None = None

    @property
    def display(self) -> str:
        return self.label or self.name


class DataSpec(BaseModel):
    """``path`` and ``format``; every other key goes to that format's loader config."""

    model_config = ConfigDict(extra="allow", frozen=True)
    path: str
    format: str = "native"

    @field_validator("path")
    @classmethod
    def _packaged(cls, value: str) -> str:
        """``shopaug:demo`` names the demo data shipped inside the package."""
        if value.startswith("shopaug:"):
            from shopaug.datasets import demo_path

            if value != "shopaug:demo":
                raise ValueError(f"unknown packaged data {value!r}; known: shopaug:demo")
            return str(demo_path())
        return value

    def loader_options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class EvaluateSpec(_Strict):
    ks: list[int] = Field(default_factory=lambda: [10, 20])
    #: bootstrap resamples for confidence intervals
    n_boot: int = Field(1000, ge=10)

    @model_validator(mode="after")
    def _positive(self) -> EvaluateSpec:
        if not self.ks or min(self.ks) < 1:
            raise ValueError("ks must be positive cut-offs such as [10, 20]")
        return self


class PipelineConfig(_Strict):
    #: names the run directory (with the config's hash), so it is one path component
    name: str = "experiment"
    task: Literal["rec", "search"] = "rec"
    data: DataSpec
    split: ComponentSpec = Field(default_factory=lambda: ComponentSpec(name="temporal"))
    augment: list[ComponentSpec] = Field(default_factory=list)
    filters: list[ComponentSpec] = Field(default_factory=list)
    models: list[ComponentSpec] = Field(
        default_factory=lambda: [ComponentSpec(name="popularity")], min_length=1)
    evaluate: EvaluateSpec = Field(default_factory=EvaluateSpec)
    seeds: list[int] = Field(default_factory=lambda: [0])
    llm: LLMConfig = Field(default_factory=LLMConfig)
    #: where augmenters and filters run: here, or sharded on Ray Data (see
    #: shopaug.pipeline.executors and docs/scale-out.md)
    executor: Literal["local", "ray"] = "local"
    executor_options: ExecutorOptions = Field(default_factory=ExecutorOptions)
    output: str = "runs"
    progress: bool = True

    @field_validator("name")
    @classmethod
    def _one_path_component(cls, value: str) -> str:
        if not value.strip(". ") or "/" in value or "\\" in value:
            raise ValueError(f"{value!r} cannot name a run directory: use a plain name "
                             "such as 'my-experiment' (no '/', '\\', and not only dots)")
        return value

    @model_validator(mode="after")
    def _components_exist(self) -> PipelineConfig:
        """Resolve every named component and validate its config now, not mid-run."""
        from shopaug import registry

        checks = [("loader", ComponentSpec(name=self.data.format,
                                           config=self.data.loader_options()), "data"),
                  ("splitter", self.split, "split")]
        model_kind = "recommender" if self.task == "rec" else "search_model"
        checks += [("augmenter", s, f"augment[{i}]") for i, s in enumerate(self.augment)]
        checks += [("filter", s, f"filters[{i}]") for i, s in enumerate(self.filters)]
        checks += [(model_kind, s, f"models[{i}]") for i, s in enumerate(self.models)]
        for kind, spec, where in checks:
            try:
                registry.create(kind, spec.name, spec.config)
            except (ConfigError, LookupError) as exc:
                nested = str(exc).replace("\n", "\n    ")
                raise ValueError(f"{where}: {nested}") from None
        labels = [m.display for m in self.models]
        if len(set(labels)) != len(labels):
            raise ValueError(f"models share a name {labels}: give each a distinct `label:`")
        if not self.seeds:
            raise ValueError("seeds must list at least one seed")
        return self

    def fingerprint(self) -> str:
        return fingerprint(self.model_dump(
            mode="json", exclude={**dict.fromkeys(_NOT_FINGERPRINTED, True),
                                  "llm": _LLM_NOT_FINGERPRINTED}))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "pipeline config") -> PipelineConfig:
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(where, exc)) from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> PipelineConfig:
        """Read a YAML config; relative data/output paths are relative to the file."""
        path = Path(path)
        values = read_yaml_mapping(path, "data:, split:, models:, ...")
        base = path.resolve().parent
        data = values.get("data")
        if isinstance(data, dict) and isinstance(data.get("path"), str):
            data["path"] = _resolve(base, data["path"])
        if isinstance(values.get("output"), str):
            values["output"] = _resolve(base, values["output"])
        return cls.from_dict(values, where=str(path))


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a key given twice in one mapping: PyYAML keeps the
    last, so a second ``augment:`` would silently drop the first."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str | int | float | bool):
                continue  # an unhashable key is PyYAML's own error to report
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{key!r} is given twice in one mapping", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml_mapping(path: str | Path, keys: str) -> dict[str, Any]:
    """A YAML file of settings, or a ConfigError that names the file and the problem
    (missing, not YAML, not a mapping); ``keys`` hints what the mapping holds."""
    path = Path(path)
    try:
        values = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory; give the path of a YAML file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text; save the config as UTF-8 YAML") from None
    except RecursionError:
        raise ConfigError(f"{path} nests too deeply to be a config") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path} must hold a mapping ({keys}), not "
                          f"{type(values).__name__}")
    return values


def _resolve(base: Path, value: str) -> str:
    if value.startswith("shopaug:"):
        return value
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())
