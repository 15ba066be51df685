"""Building blocks of the HTML report: CSS, number formatting, escaped tables, badges."""

from __future__ import annotations

import json
import math
from html import escape
from typing import Any

from shopaug.report import svg

#: rows shown per table before the rest is hidden (with a note saying how many)
MAX_ROWS = 50
MAX_SAMPLES_PER_AUGMENTER = 20

CSS = """
:root{--ok:#1e8449;--bad:#c0392b;--mute:#6b7280;--line:#e5e7eb}
*{box-sizing:border-box}
body{margin:0;background:#f6f7f9;color:#111;font:14px/1.45 system-ui,-apple-system,"Segoe UI",
"Noto Sans","Noto Sans CJK SC","PingFang SC","Microsoft YaHei",sans-serif}
header{background:#1f2937;color:#fff;padding:18px 28px}
header h1{margin:0 0 4px;font-size:22px}
header .meta{color:#cbd5e1;font-size:13px}
nav{background:#fff;border-bottom:1px solid var(--line);
padding:8px 28px}
nav a{margin-right:16px;color:#2563eb;text-decoration:none}
main{max-width:1120px;margin:0 auto;padding:8px 28px 40px}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:14px 20px;
margin:18px 0}
h2{margin:0 0 10px;font-size:18px}h3{font-size:15px;margin:18px 0 8px}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
th,td{border-bottom:1px solid var(--line);padding:4px 10px;text-align:left;
vertical-align:top}
th{background:#f3f4f6;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.sig-gain td{background:#ecfdf3}tr.sig-loss td{background:#fef2f2}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;
font-weight:700;color:#fff}
.badge.pass,.badge.gain{background:var(--ok)}.badge.fail,.badge.loss{background:var(--bad)}
.badge.none{background:#9ca3af}
.note,.empty{color:var(--mute)}.hidden-rows{color:var(--mute);font-style:italic}
svg.chart{max-width:100%;height:auto;display:block;margin:8px 0}
pre{background:#f3f4f6;padding:10px;border-radius:6px;overflow:auto;max-height:480px;
font-size:12px;white-space:pre-wrap;word-break:break-word}
.sample{display:grid;grid-template-columns:1fr 1fr;gap:12px;border-top:1px solid var(--line);
padding:8px 0}
.sample ul{margin:4px 0;padding-left:18px}.sample .label{color:var(--mute);font-size:12px}
figure{margin:10px 0}figcaption{font-weight:600;font-size:13px}
.headline td:first-child{font-weight:600}.nw{white-space:nowrap}
"""


class Raw(str):
    """A table cell that is already HTML (escaped by whoever built it)."""


def esc(x: Any) -> str:
    return escape(str(x), quote=True)


def fmt(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if x.is_integer() and abs(x) >= 1000:
            return f"{int(x):,}"
        return f"{x:.{digits}f}" if abs(x) >= 10 ** -digits or x == 0 else f"{x:.2e}"
    if isinstance(x, dict | list):
        return json.dumps(x, ensure_ascii=False, default=str)
    return str(x)


def signed(x: Any) -> str:
    return f"{x:+.4f}" if svg.finite(x) else "—"


def ci(lo: Any, hi: Any, signed: bool = False) -> str:
    if not (svg.finite(lo) and svg.finite(hi)):
        return "—"
    return f"[{lo:+.4f}, {hi:+.4f}]" if signed else f"[{lo:.4f}, {hi:.4f}]"


def pct(x: Any) -> str:
    return f"{x * 100:+.1f}%" if svg.finite(x) else "—"


def pval(x: Any) -> str:
    if not svg.finite(x):
        return "—"
    return "<0.001" if x < 0.001 else f"{x:.3f}"


def table(columns: list[str], rows: list[list[Any]], cap: int = MAX_ROWS,
          row_classes: list[str] | None = None, cls: str = "", digits: int = 4) -> str:
    """An HTML table; numbers right-aligned, cells escaped unless `Raw`, rows over ``cap``
    hidden with a note."""
    if not rows:
        return '<p class="empty">no rows</p>'
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = []
    for i, row in enumerate(rows[:cap]):
        cells = []
        for cell in row:
            if isinstance(cell, Raw):
                cells.append(f"<td>{cell}</td>")
            elif isinstance(cell, int | float) and not isinstance(cell, bool):
                cells.append(f'<td class="num">{esc(fmt(cell, digits))}</td>')
            else:
                cells.append(f"<td>{esc(fmt(cell))}</td>")
        klass = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        body.append(f"<tr{klass}>{''.join(cells)}</tr>")
    more = (f'<p class="hidden-rows">{len(rows) - cap:,} more rows hidden '
            f"(showing {cap:,} of {len(rows):,})</p>" if len(rows) > cap else "")
    klass = f' class="{cls}"' if cls else ""
    return (f'<div class="scroll"><table{klass}><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>{more}")


def verdict(row: dict[str, Any]) -> tuple[str, str]:
    """(plain verdict, badge class) of one lift row."""
    if not svg.finite(row.get("mean")):
        return "no estimate", "none"
    if row.get("excludes_zero"):
        return ("significant gain", "gain") if row["mean"] > 0 else ("significant loss", "loss")
    return "no significant difference", "none"


def badge(text: str, cls: str) -> Raw:
    return Raw(f'<span class="badge {cls}">{esc(text)}</span>')


def sig_class(row: dict[str, Any]) -> str:
    return {"gain": "sig-gain", "loss": "sig-loss"}.get(verdict(row)[1], "")


def section(sid: str, title: str, body: str) -> str:
    return f'<section id="{sid}"><h2>{esc(title)}</h2>{body}</section>'


def primary(model: dict[str, Any]) -> str | None:
    return model.get("primary_metric") or next(iter(model.get("metrics") or []), None)


def row_label(row: dict[str, Any]) -> str:
    return f"{row.get('model', '')} · {row.get('arm', '')}"


def ordered(rows: list[dict[str, Any]], model: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows by model, baseline arm first, then the model's slice and metric order."""
    slices = {s: i for i, s in enumerate(model.get("slices") or [])}
    metrics = {m: i for i, m in enumerate(model.get("metrics") or [])}

    def arm_rank(arm: Any) -> tuple[int, str]:
        arm = str(arm)
        return (0 if arm in ("baseline", "real") else 2 if arm == "all_augmenters" else 1, arm)

    return sorted(rows, key=lambda r: (str(r.get("model")), arm_rank(r.get("arm")),
                                       slices.get(r.get("slice"), len(slices)),
                                       metrics.get(r.get("metric"), len(metrics))))
