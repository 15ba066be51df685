"""The serving web page in a real browser: search, pick a user, see the reasons.

Needs playwright and Debian's Chromium at /usr/bin/chromium (never `playwright install`).
Skipped when either is missing, except under CI (env CI set), where that fails.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from test_report_browser import ARGS, CHROMIUM, _require_browser

pytestmark = pytest.mark.browser

SCREENSHOT = Path(__file__).resolve().parents[1] / "build" / "test-artifacts" / "serve.png"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    pytest.importorskip("uvicorn")
    import uvicorn

    from shopaug.llm.config import LLMConfig
    from shopaug.serve.app import create_app
    from shopaug.serve.sample import demo_run

    run = demo_run(tmp_path_factory.mktemp("serve-browser") / "runs")
    app = create_app(run, LLMConfig(engine="fake", use_cache=False, progress=False))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", loop="asyncio"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start within 20 s"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_page_searches_and_recommends_in_chromium(base_url: str) -> None:
    _require_browser()
    from playwright.sync_api import sync_playwright

    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(base_url + "/", wait_until="load")
            page.wait_for_function("document.querySelectorAll('#user option').length > 1")
            assert "best:" in page.locator("#info").inner_text()

            page.fill("#q", "red retrospot bag")
            page.press("#q", "Enter")
            page.wait_for_selector("#search-results li")
            titles = page.locator("#search-results .title").all_inner_texts()
            assert len(titles) == 10 and any("RETROSPOT" in t for t in titles)

            # a known user: the best model, reason "history"
            first = page.locator("#user option").first.get_attribute("value")
            page.select_option("#user", first)
            page.wait_for_selector("#rec-results li")
            assert "model: history" in page.locator("#reason").inner_text()
            assert page.locator("#rec-results li").count() == 10

            # a new user: labelled fallback
            page.select_option("#user", "__new__")
            page.wait_for_function(
                "document.querySelector('#reason') && "
                "document.querySelector('#reason').textContent.startsWith('fallback')")
            assert "unknown_user" in page.locator("#reason").inner_text()
            assert page.locator("#rec-results li").count() == 10
            assert page.locator("a[href='/report']").count() == 1
            assert errors == []
            assert all(u.startswith(base_url) for u in requests), requests
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.select_option("#user", first)
            page.wait_for_function("(document.querySelector('#reason') || {textContent: ''})"
                                   ".textContent.startsWith('model')")
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
