"""Self-contained HTML report of an experiment run or a benchmark output directory.

``shopaug report DIR`` calls :func:`main_report`; imports stay lazy so the CLI starts fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["load_report_model", "main_report", "render_html", "write_report"]


def load_report_model(path: Path) -> dict[str, Any]:
    from shopaug.report.sources import load_report_model as load

    return load(path)


def render_html(model: dict[str, Any]) -> str:
    from shopaug.report.html import render_html as render

    return render(model)


def write_report(path_or_dir: Path, out: Path | None = None) -> Path:
    from shopaug.report.html import write_report as write

    return write(path_or_dir, out)


def main_report(path: str, out: str | None = None) -> int:
    """CLI entry: write the report and print its path; 0 on success."""
    written = write_report(Path(path), Path(out) if out else None)
    print(written)
    return 0
