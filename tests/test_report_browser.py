"""The HTML report in a real browser: sections visible, charts drawn, nothing fetched.

Needs the `playwright` package and Debian's Chromium at /usr/bin/chromium (never
`playwright install`: no downloads). Skipped when either is missing, except under CI
(environment variable CI set), where a skip would hide a broken setup, so it fails.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from report_fixtures import CHINESE, EVIL, fake_quality, small_model
from shopaug.artifacts import atomic_write_text
from shopaug.report import render_html

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT = Path(__file__).resolve().parents[1] / "build" / "test-artifacts" / "report.png"


def _require_browser() -> None:
    problem = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problem = "the playwright package is not installed"
    if problem is None and not CHROMIUM.is_file():
        problem = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{problem}; CI must run the browser tests, not skip them")
    pytest.skip(problem)


def test_report_in_chromium(tmp_path: Path) -> None:
    _require_browser()
    from playwright.sync_api import sync_playwright

    report = atomic_write_text(tmp_path / "report.html",
                               render_html(small_model(fake_quality(passed=False))))
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(report.as_uri(), wait_until="load")

            for sid in ("summary", "lift", "slices", "results", "quality", "samples",
                        "ledger", "card"):
                assert page.locator(f"#{sid}").is_visible(), sid
            chart = page.locator("#lift svg").first
            assert chart.is_visible()
            box = chart.bounding_box()
            assert box is not None and 400 <= box["width"] <= 1120 and box["height"] > 60
            assert "Lift on recall@20" in page.locator("#lift svg > title").first.text_content()
            badges = page.locator("#quality .badge")
            assert badges.count() >= 1
            texts = {badges.nth(i).inner_text() for i in range(badges.count())}
            assert texts == {"PASS", "FAIL"}
            assert page.locator("#quality svg").count() == 2
            assert "significant gain" in page.locator("#summary").inner_text()
            samples = page.locator("#samples").inner_text()
            assert CHINESE in samples and EVIL in samples  # shown as text, not run
            assert "5,000" in page.locator("#ledger").inner_text()
            assert "abc123" in page.locator("#card").inner_text()
            # no horizontal overflow of the page itself (wide tables scroll inside)
            assert page.evaluate("document.documentElement.scrollWidth") <= 1200
            assert errors == []

            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
    assert requests and requests[0] == report.as_uri()
    assert [u for u in requests if not u.startswith("file://")] == []
    assert SCREENSHOT.stat().st_size > 10_000
