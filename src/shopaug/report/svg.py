"""Inline SVG charts for the HTML report: no plotting library, no scripts, nothing fetched.

Every chart is a complete ``<svg>`` element with a ``<title>`` (screen readers, tooltips)
and all text passed through :func:`html.escape`, so labels from data cannot inject markup.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

FONT = 12
CHAR_W = 7.2  # generous width of one (bold) character at FONT px, to size label columns
MONO_W = 7.4  # one monospace character at FONT px
REAL, SYNTH = "#7f8c8d", "#2b7bb9"
GAIN, LOSS, NEUTRAL = "#1e8449", "#c0392b", "#34495e"


def finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _e(text: Any) -> str:
    return escape(str(text), quote=True)


def _fmt(x: float, step: float) -> str:
    digits = max(0, min(6, -math.floor(math.log10(step)) if step > 0 else 2))
    return f"{x:.{digits}f}"


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi]."""
    if not (finite(lo) and finite(hi)) or hi <= lo:
        hi = lo + 1 if finite(lo) else 1.0
        lo = lo if finite(lo) else 0.0
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=10 * mag)
    start = math.floor(lo / step) * step
    ticks, t = [], start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    if ticks[-1] < hi:
        ticks.append(round(t, 12))
    return ticks


def _svg(width: int, height: int, title: str, body: list[str], desc: str = "") -> str:
    head = (f'<svg class="chart" role="img" '
            f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'font-family="system-ui, sans-serif" font-size="{FONT}">'
            f"<title>{_e(title)}</title>")
    if desc:
        head += f"<desc>{_e(desc)}</desc>"
    return head + "".join(body) + "</svg>"


def _truncate(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: max(chars - 1, 1)] + "…"


def _axis(x0: float, x1: float, y: float, ticks: list[float], to_x, grid_top: float,
          label: str) -> list[str]:
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    out = [f'<line x1="{x0}" y1="{y}" x2="{x1}" y2="{y}" stroke="#999"/>']
    for t in ticks:
        x = to_x(t)
        out.append(f'<line x1="{x:.1f}" y1="{grid_top}" x2="{x:.1f}" y2="{y}" '
                   f'stroke="#eee"/>')
        out.append(f'<text x="{x:.1f}" y="{y + 15}" text-anchor="middle" fill="#555">'
                   f"{_e(_fmt(t, step))}</text>")
    if label:
        out.append(f'<text x="{(x0 + x1) / 2:.1f}" y="{y + 32}" text-anchor="middle" '
                   f'fill="#333">{_e(label)}</text>')
    return out


def forest_plot(rows: list[dict[str, Any]], title: str, x_label: str = "difference",
                width: int = 900) -> str:
    """Horizontal interval per row around a zero line.

    ``rows``: dicts with ``label``, ``mean``, ``lo``, ``hi`` and ``excludes_zero``; rows
    whose interval excludes zero are drawn bold and coloured (green gain, red loss).
    """
    rows = [r for r in rows if finite(r.get("mean"))]
    if not rows:
        return _svg(width, 40, title, ['<text x="10" y="24" fill="#777">no intervals</text>'])
    label_w = min(340, max(90, int(max(len(str(r["label"])) for r in rows) * CHAR_W) + 16))
    value_w = int(28 * MONO_W) + 16
    row_h, top = 24, 14
    height = top + row_h * len(rows) + 46
    x0, x1 = label_w, width - value_w
    vals = [v for r in rows for v in (r.get("lo"), r.get("hi"), r["mean"]) if finite(v)]
    lo, hi = min([*vals, 0.0]), max([*vals, 0.0])
    pad = (hi - lo) * 0.05 or 0.01
    ticks = nice_ticks(lo - pad, hi + pad)
    lo, hi = ticks[0], ticks[-1]

    def to_x(v: float) -> float:
        return x0 + (v - lo) / (hi - lo) * (x1 - x0)

    axis_y = top + row_h * len(rows) + 4
    body = _axis(x0, x1, axis_y, ticks, to_x, top - 6, x_label)
    body.append(f'<line x1="{to_x(0):.1f}" y1="{top - 6}" x2="{to_x(0):.1f}" y2="{axis_y}" '
                f'stroke="#333" stroke-dasharray="4 3"/>')
    max_chars = int((label_w - 12) / CHAR_W)
    for i, r in enumerate(rows):
        y = top + row_h * i + row_h / 2
        sig = bool(r.get("excludes_zero"))
        color = (GAIN if r["mean"] > 0 else LOSS) if sig else NEUTRAL
        weight = ' font-weight="bold"' if sig else ""
        if sig:
            body.append(f'<rect x="0" y="{y - row_h / 2:.1f}" width="{width}" '
                        f'height="{row_h}" fill="{color}" fill-opacity="0.07"/>')
        label = str(r["label"])
        body.append(f'<text x="{label_w - 8}" y="{y + 4:.1f}" text-anchor="end"{weight}>'
                    f"<title>{_e(label)}</title>{_e(_truncate(label, max_chars))}</text>")
        if finite(r.get("lo")) and finite(r.get("hi")):
            body.append(f'<line x1="{to_x(r["lo"]):.1f}" y1="{y:.1f}" x2="{to_x(r["hi"]):.1f}" '
                        f'y2="{y:.1f}" stroke="{color}" stroke-width="2"/>')
            for end in (r["lo"], r["hi"]):
                body.append(f'<line x1="{to_x(end):.1f}" y1="{y - 5:.1f}" x2="{to_x(end):.1f}" '
                            f'y2="{y + 5:.1f}" stroke="{color}" stroke-width="2"/>')
            text = f"{r['mean']:+.4f} [{r['lo']:+.4f}, {r['hi']:+.4f}]"
        else:
            text = f"{r['mean']:+.4f}"
        body.append(f'<rect x="{to_x(r["mean"]) - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" '
                    f'fill="{color}"/>')
        body.append(f'<text x="{x1 + 10}" y="{y + 4:.1f}" fill="{color}"{weight} '
                    f'font-family="ui-monospace, monospace">{_e(text)}</text>')
    return _svg(width, height, title, body,
                desc="Mean difference with 95% interval per row; dashed line at zero.")


def bar_chart(rows: list[dict[str, Any]], title: str, x_label: str = "",
              width: int = 900) -> str:
    """Horizontal bars from zero to ``mean`` with ``lo``–``hi`` error bars.

    ``rows``: dicts with ``label``, ``mean``, optional ``lo``/``hi`` and ``group``
    (``"real"`` bars grey, anything else blue).
    """
    rows = [r for r in rows if finite(r.get("mean"))]
    if not rows:
        return _svg(width, 40, title, ['<text x="10" y="24" fill="#777">no values</text>'])
    label_w = min(340, max(90, int(max(len(str(r["label"])) for r in rows) * CHAR_W) + 16))
    value_w = 70
    row_h, top = 22, 10
    groups = {"real" if r.get("group", "real") in ("real", "baseline") else "other"
              for r in rows}
    legend = 22 if len(groups) > 1 else 0
    height = top + row_h * len(rows) + 46 + legend
    x0, x1 = label_w, width - value_w
    vals = [v for r in rows for v in (r.get("lo"), r.get("hi"), r["mean"]) if finite(v)]
    ticks = nice_ticks(min([*vals, 0.0]), max([*vals, 0.0]) or 1.0)
    lo, hi = ticks[0], ticks[-1]

    def to_x(v: float) -> float:
        return x0 + (v - lo) / (hi - lo) * (x1 - x0)

    axis_y = top + row_h * len(rows) + 4
    body = _axis(x0, x1, axis_y, ticks, to_x, top - 4, x_label)
    max_chars = int((label_w - 12) / CHAR_W)
    for i, r in enumerate(rows):
        y = top + row_h * i
        color = REAL if r.get("group", "real") in ("real", "baseline") else SYNTH
        a, b = sorted((to_x(0), to_x(r["mean"])))
        label = str(r["label"])
        body.append(f'<text x="{label_w - 8}" y="{y + row_h / 2 + 4:.1f}" text-anchor="end">'
                    f"<title>{_e(label)}</title>{_e(_truncate(label, max_chars))}</text>")
        body.append(f'<rect x="{a:.1f}" y="{y + 4}" width="{max(b - a, 0.5):.1f}" '
                    f'height="{row_h - 8}" fill="{color}"/>')
        if finite(r.get("lo")) and finite(r.get("hi")):
            cy = y + row_h / 2
            body.append(f'<line x1="{to_x(r["lo"]):.1f}" y1="{cy}" x2="{to_x(r["hi"]):.1f}" '
                        f'y2="{cy}" stroke="#111" stroke-width="1.5"/>')
            for end in (r["lo"], r["hi"]):
                body.append(f'<line x1="{to_x(end):.1f}" y1="{cy - 4}" x2="{to_x(end):.1f}" '
                            f'y2="{cy + 4}" stroke="#111" stroke-width="1.5"/>')
        value = f"{r['mean']:.4f}"
        body.append(f'<text x="{x1 + 8}" y="{y + row_h / 2 + 4:.1f}" '
                    f'font-family="ui-monospace, monospace">{_e(value)}</text>')
    if legend:
        for j, (name, color) in enumerate((("real data only", REAL), ("augmented", SYNTH))):
            lx = x1 - 250 + j * 130
            body.append(f'<rect x="{lx}" y="{height - 18}" width="12" height="12" '
                        f'fill="{color}"/><text x="{lx + 16}" y="{height - 8}">{name}</text>')
    return _svg(width, height, title, body, desc="Mean per variant with 95% interval.")


def share_chart(plot: dict[str, Any], width: int = 760) -> str:
    """Grouped vertical bars of real vs synthetic shares for a quality PLOT dict."""
    title = str(plot.get("title") or "distribution")
    labels = [str(x) for x in plot.get("labels") or []]
    series = {k: list(v or []) for k, v in (plot.get("series") or {}).items()}
    if not labels or not series:
        return _svg(width, 40, title, ['<text x="10" y="24" fill="#777">no data</text>'])
    names = list(series)
    colors = {n: (REAL if n == "real" else SYNTH if n == "synthetic" else "#8e44ad")
              for n in names}
    longest = max(len(s) for s in labels)
    fit = int(((width - 80) / len(labels) - 4) / CHAR_W)  # characters that fit under a slot
    rotate = longest > fit and fit < 12  # many narrow slots: slant; few wide ones: shorten
    chars = 22 if rotate else max(fit, 4)
    label_h = min(int(min(longest, chars) * CHAR_W * 0.72), 110) + 10 if rotate else 18
    left, top, plot_h = 56, 28, 200
    x0, x1 = left, width - 12
    height = top + plot_h + label_h + 34
    vals = [v for s in series.values() for v in s if finite(v)]
    ticks = nice_ticks(0.0, max([*vals, 0.0]) or 1.0, 4)
    ymax = ticks[-1]
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    base = top + plot_h

    def to_y(v: float) -> float:
        return base - v / ymax * plot_h

    body = []
    for t in ticks:
        body.append(f'<line x1="{x0}" y1="{to_y(t):.1f}" x2="{x1}" y2="{to_y(t):.1f}" '
                    f'stroke="#eee"/>')
        body.append(f'<text x="{x0 - 6}" y="{to_y(t) + 4:.1f}" text-anchor="end" '
                    f'fill="#555">{_e(_fmt(t, step))}</text>')
    body.append(f'<line x1="{x0}" y1="{base}" x2="{x1}" y2="{base}" stroke="#999"/>')
    slot = (x1 - x0) / len(labels)
    gap = 0.1 if plot.get("kind") == "hist" else 0.25
    bar_w = slot * (1 - gap) / len(names)
    for i, label in enumerate(labels):
        sx = x0 + slot * i + slot * gap / 2
        for j, name in enumerate(names):
            v = series[name][i] if i < len(series[name]) else None
            if not finite(v):
                continue
            y = to_y(max(v, 0.0))
            body.append(f'<rect x="{sx + j * bar_w:.1f}" y="{y:.1f}" width="{bar_w:.1f}" '
                        f'height="{base - y:.1f}" fill="{colors[name]}">'
                        f"<title>{_e(f'{name} {label}: {v:.3f}')}</title></rect>")
        cx = x0 + slot * (i + 0.5)
        text = _e(_truncate(label, chars))
        if rotate:
            body.append(f'<text transform="translate({cx:.1f},{base + 10}) rotate(-40)" '
                        f'text-anchor="end" fill="#333">{text}</text>')
        else:
            body.append(f'<text x="{cx:.1f}" y="{base + 14}" text-anchor="middle" '
                        f'fill="#333">{text}</text>')
    for j, name in enumerate(names):
        lx = x1 - 110 * (len(names) - j)
        body.append(f'<rect x="{lx}" y="6" width="12" height="12" fill="{colors[name]}"/>'
                    f'<text x="{lx + 16}" y="16">{_e(name)}</text>')
    body.append(f'<text x="{(x0 + x1) / 2:.1f}" y="{height - 6}" text-anchor="middle" '
                f'fill="#333">{_e(plot.get("x_label") or "")}</text>')
    body.append(f'<text transform="translate(14,{top + plot_h / 2:.1f}) rotate(-90)" '
                f'text-anchor="middle" fill="#333">{_e(plot.get("y_label") or "share")}</text>')
    return _svg(width, height, title, body, desc="Share per bin, real next to synthetic.")
