"""One self-contained HTML file per run: inline CSS and SVG, no scripts, nothing fetched.

Every section has a stable id (#summary, #lift, #slices, #results, #quality, #samples,
#ledger, #card, #details) and renders something sensible when its part of the model is
missing, so a half-finished run still gets a readable report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shopaug.report import svg
from shopaug.report.parts import (
    CSS,
    MAX_ROWS,
    MAX_SAMPLES_PER_AUGMENTER,
    Raw,
    badge,
    ci,
    esc,
    fmt,
    ordered,
    pct,
    primary,
    pval,
    row_label,
    section,
    sig_class,
    signed,
    table,
    verdict,
)

# -- sections ------------------------------------------------------------------------

def summary_section(model: dict[str, Any]) -> str:
    metric = primary(model)
    lift = [r for r in model.get("lift") or [] if r.get("metric") == metric
            and r.get("slice", "all") == "all" and svg.finite(r.get("mean"))]
    best: dict[str, dict[str, Any]] = {}
    for r in lift:
        if r.get("model") not in best or r["mean"] > best[r["model"]]["mean"]:
            best[r["model"]] = r
    parts = []
    if best:
        rows = []
        for name, r in best.items():
            text, cls = verdict(r)
            rows.append([name, r.get("arm"), Raw(f"<b>{esc(signed(r['mean']))}</b>"),
                         ci(r.get("lo"), r.get("hi"), signed=True), pct(r.get("relative")),
                         badge(text, cls)])
        parts.append(f"<p>Best lift per model on <b>{esc(metric)}</b> (slice all), "
                     f"augmented minus {esc(lift[0].get('baseline', 'baseline'))}:</p>")
        parts.append(table(["model", "best arm", "Δ", "95% CI", "relative Δ", "verdict"],
                           rows, cls="headline"))
    else:
        parts.append('<p class="empty">no paired lift in this run</p>')
    quality = model.get("quality")
    if isinstance(quality, dict):
        ok = bool(quality.get("passed"))
        n_fail = sum(not c.get("passed") for c in quality.get("checks") or [])
        mark = badge("PASS", "pass") if ok else badge("FAIL", "fail")
        parts.append(f"<p>Quality checks: {mark} "
                     f"({n_fail} failed of {len(quality.get('checks') or [])})</p>")
    notes = model.get("notes") or []
    if notes:
        parts.append("<ul>" + "".join(f'<li class="note">{esc(n)}</li>' for n in notes)
                     + "</ul>")
    return section("summary", "Summary", "".join(parts))


def _lift_rows(rows: list[dict[str, Any]], with_pair: bool = False) -> str:
    variant = not with_pair and any(r.get("variant") for r in rows)
    holm = any(svg.finite(r.get("p_holm")) for r in rows)  # experiment headline family
    out = [[*([r.get("a"), r.get("b")] if with_pair else [r.get("model"), r.get("arm")]),
            *([r.get("variant") or ""] if variant else []),
            r.get("slice"), r.get("metric"), Raw(f'<span class="nw">{esc(signed(r.get("mean")))}'
                                                 "</span>"),
            Raw(f'<span class="nw">{esc(ci(r.get("lo"), r.get("hi"), signed=True))}</span>'),
            pct(r.get("relative")), pval(r.get("p")),
            *([pval(r.get("p_holm"))] if holm else []), r.get("n")] for r in rows]
    cols = (["A", "B"] if with_pair else ["model", "arm"]) + (["variant"] if variant else []) + [
        "slice", "metric", "Δ", "95% CI", "relative Δ", "p", *(["p (Holm)"] if holm else []),
        "n"]
    return table(cols, out, row_classes=[sig_class(r) for r in rows])


def lift_section(model: dict[str, Any]) -> str:
    metric = primary(model)
    lift = ordered(model.get("lift") or [], model)
    if not lift:
        body = '<p class="empty">no paired lift in this run</p>'
    else:
        main = [r for r in lift if r.get("metric") == metric and r.get("slice") == "all"]
        chart = svg.forest_plot([{**r, "label": row_label(r)} for r in main[:MAX_ROWS]],
                                title=f"Lift on {metric} (slice all)",
                                x_label=f"Δ {metric} (augmented − baseline)")
        body = (f"<p>Paired difference, 95% interval; highlighted rows exclude zero.</p>"
                f"{chart}{_lift_rows([r for r in lift if r.get('slice') == 'all'])}")
    comps = model.get("comparisons") or []
    if comps:
        body += ("<h3>Other paired comparisons</h3><p class='note'>Differences between "
                 "variants that are not an augmented model and its real-only twin.</p>"
                 + _lift_rows(comps, with_pair=True))
    return section("lift", "Lift", body)


def slices_section(model: dict[str, Any]) -> str:
    lift = ordered(model.get("lift") or [], model)
    slices = model.get("slices") or sorted({r.get("slice") for r in lift})
    if not lift:
        return section("slices", "Slices", '<p class="empty">no per-slice lift</p>')
    keys = list(dict.fromkeys((r.get("model"), r.get("arm"), r.get("metric")) for r in lift))
    index = {(r.get("model"), r.get("arm"), r.get("metric"), r.get("slice")): r for r in lift}
    rows, classes = [], []
    for m, arm, metric in keys:
        cells: list[Any] = [m, arm, metric]
        for s in slices:
            r = index.get((m, arm, metric, s))
            if r is None:
                cells.append("—")
                continue
            cls = verdict(r)[1]
            style = {"gain": ' style="color:#1e8449;font-weight:700"',
                     "loss": ' style="color:#c0392b;font-weight:700"'}.get(cls, "")
            cells.append(Raw(f'<span{style}>{esc(signed(r.get("mean")))}</span><br>'
                             f'<span class="note nw">{esc(ci(r.get("lo"), r.get("hi"), True))}'
                             "</span>"))
        rows.append(cells)
        classes.append("")
    metric = primary(model)
    prim = [r for r in lift if r.get("metric") == metric]
    chart = svg.forest_plot([{**r, "label": f"{row_label(r)} · {r.get('slice')}"}
                             for r in prim[:MAX_ROWS]],
                            title=f"Lift on {metric} per slice", x_label=f"Δ {metric}")
    return section("slices", "Slices", "<p>Δ and 95% interval per slice; bold coloured "
                    "values exclude zero.</p>" + table(["model", "arm", "metric", *slices],
                                                        rows, row_classes=classes) + chart)


def results_section(model: dict[str, Any]) -> str:
    results = ordered(model.get("results") or [], model)
    metric = primary(model)
    if not results:
        return section("results", "Results", '<p class="empty">no results</p>')
    keys = list(dict.fromkeys((r.get("model"), r.get("arm")) for r in results))
    index = {(r.get("model"), r.get("arm"), r.get("slice"), r.get("metric")): r
             for r in results}
    bars = [{**index[(*k, "all", metric)], "label": f"{k[0]} · {k[1]}", "group": k[1]}
            for k in keys if (*k, "all", metric) in index]
    chart = svg.bar_chart(bars[:MAX_ROWS], title=f"{metric} per model and arm (slice all)",
                          x_label=metric or "")
    present = [m for m in model.get("metrics") or [] if any(r.get("metric") == m
                                                             for r in results)]
    with_ci = [m for m in present if any(r.get("metric") == m and svg.finite(r.get("lo"))
                                         for r in results)]
    means_only = [m for m in present if m not in with_ci]
    rows, extra = [], []
    for k in keys:
        row: list[Any] = list(k)
        for m in with_ci:
            r = index.get((*k, "all", m)) or {}
            row += [r.get("mean"), Raw(f"<span class='nw'>{esc(ci(r.get('lo'), r.get('hi')))}"
                                       "</span>")]
        rows.append(row)
        extra.append([*k, *((index.get((*k, "all", m)) or {}).get("mean") for m in means_only)])
    tables = ("<h3>Slice all, mean and 95% interval</h3>"
              + table(["model", "arm", *(c for m in with_ci for c in (m, "95% CI"))], rows))
    if means_only:
        tables += ("<h3>Other metrics, slice all (means only)</h3>"
                   + table(["model", "arm", *means_only], extra))
    slices = model.get("slices") or []
    per_slice = [[*k, *((index.get((*k, s, metric)) or {}).get("mean") for s in slices)]
                 for k in keys]
    return section("results", "Results", chart + tables
                    + f"<h3>{esc(metric)} per slice</h3>"
                    + table(["model", "arm", *slices], per_slice))


def quality_section(model: dict[str, Any]) -> str:
    q = model.get("quality")
    if not isinstance(q, dict):
        return section("quality", "Quality", '<p class="empty">no quality report for this '
                        "run</p>")
    checks = q.get("checks") or []
    rows = [[c.get("section"), c.get("name"), c.get("value"),
             f"{c.get('op', '')} {fmt(c.get('threshold'))}",
             badge("PASS", "pass") if c.get("passed") else badge("FAIL", "fail"),
             c.get("detail") or ""] for c in checks]
    ok = bool(q.get("passed"))
    parts = [f"<p>Overall: {badge('PASS' if ok else 'FAIL', 'pass' if ok else 'fail')}</p>",
             table(["section", "check", "value", "threshold", "result", "detail"], rows)]
    counts = q.get("counts") or {}
    if counts:
        crow = [[t, *(v.get(k) if isinstance(v, dict) else None for k in ("real", "synthetic"))]
                for t, v in counts.items()]
        parts.append("<h3>Rows</h3>" + table(["table", "real", "synthetic"], crow))
    for name, sec in (q.get("sections") or {}).items():
        sec = sec or {}
        inner = [_quality_table(t) for t in sec.get("tables") or []]
        inner += [f"<figure><figcaption>{esc(p.get('title', ''))}</figcaption>"
                  f"{svg.share_chart(p)}</figure>" for p in sec.get("plots") or []]
        parts.append(f'<h3 id="quality-{esc(name)}">{esc(name)}</h3>'
                     + ("".join(inner) or '<p class="empty">nothing measured</p>'))
    return section("quality", "Quality", "".join(parts))


def _quality_table(t: dict[str, Any]) -> str:
    note = f'<p class="note">{esc(t["note"])}</p>' if t.get("note") else ""
    return (f"<h4>{esc(t.get('title', ''))}</h4>"
            + table(list(t.get("columns") or []), [list(r) for r in t.get("rows") or []])
            + note)


def samples_section(model: dict[str, Any]) -> str:
    samples = model.get("samples") or []
    if not samples:
        return section("samples", "Samples", '<p class="empty">no samples for this run</p>')
    groups: dict[str, list[dict[str, Any]]] = {}
    for s in samples:
        groups.setdefault(str(s.get("augmenter", "?")), []).append(s)
    parts = []
    for aug, items in groups.items():
        parts.append(f"<h3>{esc(aug)} <span class='note'>({len(items)} samples)</span></h3>")
        for s in items[:MAX_SAMPLES_PER_AUGMENTER]:
            src = s.get("source") or {}
            real = "".join(f"<li>{esc(x)}</li>" for x in s.get("real") or [])
            gen = "".join(f"<li>{esc(x)}</li>" for x in s.get("generated") or [])
            parts.append(
                f'<div class="sample"><div><div class="label">source · '
                f'{esc(src.get("label", ""))}</div><div>{esc(src.get("text", ""))}</div>'
                + (f'<div class="label">real rows</div><ul>{real}</ul>' if real else "")
                + f'</div><div><div class="label">generated {esc(s.get("table", ""))}</div>'
                f'<ul>{gen or "<li class=empty>none</li>"}</ul></div></div>')
        if len(items) > MAX_SAMPLES_PER_AUGMENTER:
            parts.append(f'<p class="hidden-rows">{len(items) - MAX_SAMPLES_PER_AUGMENTER} '
                         "more samples hidden</p>")
    return section("samples", "Samples", "".join(parts))


LEDGER_COLS = ["requests", "cached", "failed", "prompt_tokens", "completion_tokens",
               "engine_seconds", "wall_seconds", "cost"]


def ledger_section(model: dict[str, Any]) -> str:
    ledger = model.get("ledger")
    parts = []
    if isinstance(ledger, dict) and ledger.get("stages"):
        rows = [[stage, *(u.get(c) for c in LEDGER_COLS)]
                for stage, u in ledger["stages"].items()]
        total = ledger.get("total") or {}
        rows.append([Raw("<b>total</b>"), *(total.get(c) for c in LEDGER_COLS)])
        parts.append("<h3>LLM stages</h3>" + table(["stage", *LEDGER_COLS], rows))
        prices = ledger.get("prices_per_1k") or {}
        if prices:
            parts.append(f"<p class='note'>prices per 1k tokens: prompt "
                         f"{esc(fmt(prices.get('prompt')))}, completion "
                         f"{esc(fmt(prices.get('completion')))}; cached answers cost "
                         "nothing.</p>")
    else:
        parts.append('<p class="empty">no LLM ledger for this run</p>')
    timings = model.get("timings_seconds") or {}
    if timings:
        parts.append("<h3>Timings (seconds)</h3>"
                     + table(["step", "seconds"], [[k, v] for k, v in timings.items()],
                           digits=2))
    return section("ledger", "Cost and time", "".join(parts))


def _pretty(obj: Any) -> str:
    try:
        import yaml

        # flow style for leaf lists and dicts: `seeds: [0, 1, 2]`, one line each
        return yaml.safe_dump(obj, sort_keys=False, allow_unicode=True, default_flow_style=None,
                              width=100)
    except Exception:  # not plain data: JSON with str() fallback always works
        return json.dumps(obj, indent=2, ensure_ascii=False, default=str)


def card_section(model: dict[str, Any]) -> str:
    card = model.get("card")
    if not isinstance(card, dict) or not card:
        return section("card", "Run card", '<p class="empty">no run card</p>')
    top = [[k, card.get(k)] for k in ("name", "fingerprint", "started_at", "source",
                                      "quality_passed") if k in card]
    parts = [table(["field", "value"], top)] if top else []
    versions = card.get("versions")
    if isinstance(versions, dict) and versions:
        parts.append("<h3>Versions</h3>" + table(["package", "version"],
                                                 [[k, str(v)] for k, v in versions.items()]))
    if card.get("config") is not None:
        parts.append(f"<h3>Config</h3><pre>{esc(_pretty(card['config']))}</pre>")
    shown = {"name", "fingerprint", "started_at", "source", "quality_passed", "versions",
             "config", "llm"}
    rest = {k: v for k, v in card.items() if k not in shown}
    if rest:
        parts.append(f"<h3>Other fields</h3><pre>{esc(_pretty(rest))}</pre>")
    return section("card", "Run card", "".join(parts))


def details_section(model: dict[str, Any]) -> str:
    tables = model.get("tables") or []
    if not tables:
        return ""
    return section("details", "Details", "".join(_quality_table(t) for t in tables))


SECTIONS = [("summary", "Summary"), ("lift", "Lift"), ("slices", "Slices"),
            ("results", "Results"), ("quality", "Quality"), ("samples", "Samples"),
            ("ledger", "Cost and time"), ("card", "Run card"), ("details", "Details")]


def render_html(model: dict[str, Any]) -> str:
    """The whole report as one HTML string."""
    title = str(model.get("title") or "shopaug report")
    meta = " · ".join(esc(x) for x in (model.get("kind"), model.get("task"),
                                      primary(model) and f"primary metric {primary(model)}")
                      if x)
    body = [summary_section(model), lift_section(model), slices_section(model),
            results_section(model), quality_section(model), samples_section(model),
            ledger_section(model), card_section(model), details_section(model)]
    nav = "".join(f'<a href="#{sid}">{esc(name)}</a>' for sid, name in SECTIONS
                  if sid != "details" or model.get("tables"))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>{esc(title)}</h1><div class=\"meta\">{meta}</div></header>"
            f"<nav>{nav}</nav><main>{''.join(body)}</main></body></html>\n")


def write_report(path_or_dir: Path, out: Path | None = None) -> Path:
    """Render the run at ``path_or_dir``; default output ``<dir>/report.html``."""
    from shopaug.artifacts import atomic_write_text
    from shopaug.report.sources import load_report_model

    path_or_dir = Path(path_or_dir)
    base = path_or_dir.parent if path_or_dir.is_file() else path_or_dir
    model = load_report_model(path_or_dir)
    return atomic_write_text(Path(out) if out else base / "report.html", render_html(model))
