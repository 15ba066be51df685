"""``shopaug bench search|rec|judge``: argument handling shared by the benchmarks (the
parser itself lives in `shopaug.cli`)."""

from __future__ import annotations

import argparse

from shopaug.artifacts import output_dir


def data_path(value: str) -> str:
    """``shopaug:demo`` names the demo data shipped inside the package."""
    if value == "shopaug:demo":
        from shopaug.datasets import demo_path

        return str(demo_path())
    return value


def _load(args: argparse.Namespace):
    from shopaug.data.loaders import load

    return load(data_path(args.data), format=args.format, **dict(args.option)).data


def _llm(args: argparse.Namespace):
    from shopaug.llm.config import with_options

    return with_options(None, {"progress": not args.no_progress, **dict(args.llm)})


def _config(config_cls: type, args: argparse.Namespace):
    """The bench config from ``--seeds``, ``--config`` (YAML) and ``--variants``; every
    variant named (also in an ablation) must exist, built in or under ``define``."""
    import dataclasses
    import difflib

    from shopaug.bench.variants import check_configs
    from shopaug.errors import ConfigError
    from shopaug.pipeline.config import read_yaml_mapping

    known = [f.name for f in dataclasses.fields(config_cls)]
    extra = read_yaml_mapping(args.config, ", ".join(known)) if args.config else {}
    for key in extra:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{args.config}: unknown setting {key!r}{hint}; known: {known}")
    if args.variants:  # --variants beats the file's list; given to the constructor, so
        # what the config derives from its variants (leave_one_out's) is derived from these
        extra = {**extra, "variants": [v.strip() for v in args.variants.split(",")
                                       if v.strip()]}
    if getattr(args, "windows", None) is not None:  # --windows N beats the file's
        extra = {**extra, "windows": args.windows}
    from pydantic import TypeAdapter, ValidationError

    from shopaug.components import format_validation_error

    values = {"seeds": list(range(3)), "progress": not args.no_progress, **extra}
    try:  # the YAML's types (a string for a list, a number for a mapping) before use
        TypeAdapter(config_cls).validate_python(values)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(args.config or "bench options", exc)) from None
    cfg = config_cls(**values)
    if args.seeds is not None:  # --seeds N beats the file's list
        cfg.seeds = list(range(args.seeds))
    if getattr(args, "validation", False):
        cfg.validation = True
    variants = cfg.table()[0]
    # a misspelt name under overrides: or use: would silently change nothing
    named = [*cfg.variants, *getattr(cfg, "ablation", []), *cfg.overrides,
             *getattr(cfg, "use", {})]
    unknown = sorted({v for v in named if v not in variants})
    if unknown:
        raise ConfigError(f"unknown variants {unknown}; known: {list(variants)}")
    check_configs(variants, [*cfg.variants, *getattr(cfg, "ablation", [])], cfg.overrides,
                  cfg.model_kind)
    _check_stages(cfg)
    for pair in getattr(cfg, "compare", []):
        if len(pair) != 2 or not set(pair) <= set(cfg.variants):
            raise ConfigError(f"compare: {pair} must be two of the variants that run "
                              f"({cfg.variants})")
    return cfg


def _check_stages(cfg) -> None:
    """Every augmenter and filter named in the config exists and its settings validate,
    also when no variant that reads them runs (a typo should not wait for that run)."""
    from shopaug import registry
    from shopaug.errors import ConfigError

    for field, kind in (("augment", "augmenter"), ("filters", "filter"),
                        ("per_seed_augment", "augmenter")):
        for i, spec in enumerate(getattr(cfg, field, [])):
            if not isinstance(spec, dict) or "name" not in spec:
                raise ConfigError(f"{field}[{i}]: expected a mapping with a name, got {spec!r}")
            try:
                registry.create(kind, spec["name"], spec.get("config", {}))
            except (ConfigError, LookupError) as exc:
                raise ConfigError(f"{field}[{i}]: {exc}") from None


#: task -> (its bench config class, its run function), in ``shopaug.bench.<task>``
_TWIN_BENCHES = {"search": ("SearchBenchConfig", "run_search_benchmark"),
                 "rec": ("RecBenchConfig", "run_rec_benchmark")}


def bench_twins(args: argparse.Namespace) -> int:
    """``bench search`` and ``bench rec``: every variant real-only and augmented."""
    import importlib

    module = importlib.import_module(f"shopaug.bench.{args.bench_command}")
    config_cls, run = (getattr(module, name) for name in _TWIN_BENCHES[args.bench_command])
    cfg, llm_config = _config(config_cls, args), _llm(args)  # both checked before loading
    output_dir(args.out)
    summary = run(_load(args), args.out, cfg, llm_config=llm_config)
    print(module.write_table(summary))
    print(f"\nwritten to {args.out}/metrics.json")
    return 0


def bench_judge(args: argparse.Namespace) -> int:
    from shopaug.bench.judge import format_report, run_judge_benchmark

    llm_config = _llm(args)
    output_dir(args.out)
    report = run_judge_benchmark(_load(args), args.out, n_pairs=args.pairs, seed=args.seed,
                                 judge_config=dict(args.judge), llm_config=llm_config,
                                 progress=not args.no_progress)
    print(format_report(report))
    print(f"\nwritten to {args.out}/judge_agreement.json")
    return 0


COMMANDS = {"search": bench_twins, "rec": bench_twins, "judge": bench_judge}
