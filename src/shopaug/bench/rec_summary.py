"""The rec bench's statistics and its text table: intervals per variant and slice,
paired differences, the best-vs-best headline and, with ``windows``, each window's
own numbers next to the pooled ones.

Pooled over windows, a customer tested in several windows is still one unit of the
bootstrap (see `shopaug.evaluate.stats.units_of`): their windows share their habits,
so counting them as independent customers would narrow the interval."""

from __future__ import annotations

from typing import Any

import pandas as pd

from shopaug.bench.variants import VariantTable
from shopaug.evaluate.stats import bootstrap_mean, paired_difference, sign_test_p

SLICES = ["all", "cold_users", "cold_items", "long_tail"]


def _keys(per_user: pd.DataFrame) -> list[str]:
    """The row key under a slice: (window,) seed, user."""
    return [*(["window"] if "window" in per_user.columns else []), "seed", "user_id"]


def summarize(per_user: pd.DataFrame, ks: list[int], n_boot: int = 2000,
              table: VariantTable | None = None, pairs: dict[str, str] | None = None,
              compare: list[list[str]] | None = None,
              not_headline: list[str] | None = None) -> dict[str, Any]:
    """Intervals per variant and slice, the paired differences, and the headline: the
    best augmented variant against the best real-only one (``not_headline`` excluded).
    ``table`` and ``pairs`` default to the bench's built-in variants."""
    if table is None or pairs is None:
        from shopaug.bench.rec import PAIRS, VARIANTS

        table = VARIANTS if table is None else table
        pairs = PAIRS if pairs is None else pairs
    metrics = [m for k in ks for m in (f"recall@{k}", f"ndcg@{k}")]
    out: dict[str, Any] = {"metrics": metrics, "variants": {}, "paired": {}}
    for (variant, slice_), frame in per_user.groupby(["variant", "slice"], sort=False):
        res = out["variants"].setdefault(variant, {})
        res[slice_] = {m: bootstrap_mean(frame[m], n_boot, units=frame["user_id"]).to_dict()
                       for m in metrics}
        res[slice_]["users"] = int(frame["user_id"].nunique())
        res[slice_]["means"] = {c: float(frame[c].mean()) for c in frame.columns if "@" in c}
    indexed = per_user.set_index(["slice", *_keys(per_user)])
    variants = set(per_user["variant"])

    def paired(a_name: str, b_name: str) -> dict[str, Any]:
        a = indexed[indexed["variant"] == a_name]
        b = indexed[indexed["variant"] == b_name]
        res = {}
        for slice_ in a.index.get_level_values(0).unique():
            res[slice_] = {m: {**paired_difference(a.loc[slice_][m], b.loc[slice_][m],
                                                   n_boot).to_dict(),
                               "sign_test_p": sign_test_p(a.loc[slice_][m], b.loc[slice_][m])}
                           for m in metrics}
        return res

    for aug, real in pairs.items():
        if aug in variants and real in variants:
            out["paired"][f"{aug} - {real}"] = paired(aug, real)
    for a, b in compare or []:
        out["paired"].setdefault(f"{a} - {b}", paired(a, b))
    # the headline: best augmented model vs best real-only model, by overall recall
    first = metrics[0]
    means = {v: r["all"][first]["mean"] for v, r in out["variants"].items()
             if "all" in r and v not in (not_headline or [])}
    aug = [v for v in means if table.get(v, ("", {}, False))[2]]
    real = [v for v in means if not table.get(v, ("", {}, False))[2]]
    if aug and real:
        best_aug, best_real = max(aug, key=means.get), max(real, key=means.get)
        out["best"] = {"augmented": best_aug, "real": best_real}
        out["paired"][f"{best_aug} - {best_real} (best vs best)"] = paired(best_aug, best_real)
    return out


def per_window(per_user: pd.DataFrame, summary: dict[str, Any], n_boot: int = 2000
               ) -> dict[int, dict[str, Any]]:
    """Each window alone, on 'all' and the first metric: every variant's mean and the
    pooled summary's paired differences (the same pairs, including best vs best)."""
    metric = summary["metrics"][0]
    out: dict[int, dict[str, Any]] = {}
    for window, frame in per_user[per_user["slice"] == "all"].groupby("window"):
        indexed = frame.set_index(["variant", "seed", "user_id"])[metric]
        res: dict[str, Any] = {
            "users": int(frame["user_id"].nunique()),
            "variants": {v: float(s.mean())
                         for v, s in frame.groupby("variant", sort=False)[metric]},
            "paired": {}}
        for pair in summary["paired"]:
            base = pair.removesuffix(" (best vs best)")
            if base != pair and base in summary["paired"]:
                continue  # best vs best that repeats a twin pair
            a, b = base.split(" - ")
            if {a, b} <= set(res["variants"]):
                res["paired"][pair] = paired_difference(indexed.loc[a], indexed.loc[b],
                                                        n_boot).to_dict()
        out[int(window)] = res
    return out


def _window_lines(summary: dict[str, Any]) -> list[str]:
    windows = summary.get("windows") or []
    if len(windows) < 2:
        return []
    metric = summary["metrics"][0]
    lines = ["", f"{metric} per window on 'all' (window 0 is the latest period; the table "
             f"above pools all {len(windows)}, a customer in several windows counting once)"]
    for w in windows:
        pairs = w["paired"]
        width = max([28, *(len(name) + 2 for name in [*w["variants"], *pairs])])
        lines.append(f"window {w['window']}: from {w['split']['cut']}, {w['users']} users")
        lines += [f"  {v:<{width}}{m:.4f}" for v, m in w["variants"].items()]
        lines += [f"  {pair:<{width}}{d['mean']:+.4f} [{d['lo']:+.4f}, {d['hi']:+.4f}]"
                  + ("*" if d["excludes_zero"] else "") for pair, d in pairs.items()]
    return lines


def write_table(summary: dict[str, Any]) -> str:
    metric = summary["metrics"][0]
    where = (" on the VALIDATION period (the end of the training side)"
             if summary.get("scored_on") == "validation" else "")
    if len(summary.get("windows") or []) > 1:
        where += f", pooled over {len(summary['windows'])} windows"
    name_width = max([20, *(len(v) + 2 for v in summary["variants"])])
    lines = [f"{metric} (mean over (seed, test user), 95% interval resampling users, on 'all')"
             f"{where}", "",
             f"{'variant':<{name_width}}{'all':>8}  {'95% CI':<18}" + "".join(
                 f"{s:>12}" for s in SLICES[1:])]
    for variant, res in summary["variants"].items():
        a = res.get("all", {}).get(metric, {})
        cells = "".join(f"{res[s][metric]['mean']:>12.4f}" if s in res else f"{'-':>12}"
                        for s in SLICES[1:])
        lines.append(f"{variant:<{name_width}}{a.get('mean', float('nan')):>8.4f}  "
                     f"[{a.get('lo', float('nan')):.4f}, {a.get('hi', float('nan')):.4f}]"
                     + cells)
    lines.append("")
    width = max((len(pair) + 2 for pair in summary["paired"]), default=0)
    for pair, res in summary["paired"].items():
        for slice_ in ("all", "cold_items"):
            if slice_ in res:
                d = res[slice_][metric]
                mark = "*" if d["excludes_zero"] else " "
                lines.append(f"{pair:<{width}}{slice_:<11}{d['mean']:+.4f} "
                             f"[{d['lo']:+.4f}, {d['hi']:+.4f}]{mark}")
    lines += _window_lines(summary)
    if summary.get("quality"):
        lines += ["", summary["quality"]]
    return "\n".join(lines)
