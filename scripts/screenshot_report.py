"""Screenshot an HTML report in Debian's headless Chromium (no browser download).

    python scripts/screenshot_report.py runs/demo-*/report.html out.png
"""

from __future__ import annotations

import sys
from pathlib import Path

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main(html: str, png: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(Path(html).resolve().as_uri())
        page.screenshot(path=png, full_page=True)
        browser.close()
    print(png)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] in ("-h", "--help"):
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
