"""The HTML report of the vulnerable fixture, rendered by a real headless Chromium.

The report is loaded from a file:// URL, as a user opens it: every finding's title must be
visible, the inline SVG severity chart must be laid out (non-zero size), the console must
stay free of errors (a CSP violation is one), and the page must fetch nothing else.
Plain sync test functions: Playwright's sync API refuses to run inside an asyncio loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bastion.scanner.reports.html import render_html
from bastion.scanner.reports.json_report import finding_dict
from tests.conftest import need_chromium
from tests.scanner.conftest import Served, scan

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module", autouse=True)
def _chromium() -> None:
    need_chromium(
        "; the HTML report's structure is still checked without a browser in "
        "test_scanner_reports.py"
    )


@pytest.fixture(scope="module")
def report(vulnerable_server: Served, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    result = scan(vulnerable_server.url)
    assert result.findings
    path = tmp_path_factory.mktemp("html-browser") / "report.html"
    path.write_text(render_html(result), encoding="utf-8")
    return {"path": path, "findings": [finding_dict(f) for f in result.findings]}


@pytest.fixture(scope="module")
def page(report: dict[str, Any]) -> Iterator[dict[str, Any]]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page()
            console: list[str] = []
            requests: list[str] = []
            tab.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            tab.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
            tab.on("request", lambda r: requests.append(r.url))
            url = report["path"].as_uri()
            response = tab.goto(url, wait_until="load")
            assert response is not None
            assert response.ok
            yield {"tab": tab, "console": console, "requests": requests, "url": url}
        finally:
            browser.close()


def test_every_finding_title_is_visible(report: dict[str, Any], page: dict[str, Any]) -> None:
    tab = page["tab"]
    assert tab.title().startswith("Bastion scan report")
    for finding in report["findings"]:
        summary = tab.locator(f"#finding-{finding['id']} > summary")
        assert summary.count() == 1, finding["id"]
        assert summary.is_visible(), finding["id"]
        assert finding["title"] in summary.inner_text(), finding["id"]


def test_severity_chart_is_rendered(report: dict[str, Any], page: dict[str, Any]) -> None:
    tab = page["tab"]
    chart = tab.locator("#severity-chart")
    box = chart.bounding_box()
    assert box is not None
    assert box["width"] > 0
    assert box["height"] > 0
    severities = {f["severity"] for f in report["findings"]}
    bars = tab.locator("#severity-chart rect")
    drawn = 0
    for i in range(bars.count()):
        bar = bars.nth(i)
        bar_box = bar.bounding_box()
        assert bar_box is not None
        if bar_box["width"] > 0:
            drawn += 1
            assert bar_box["height"] > 0
    # one visible bar per severity that has findings
    assert drawn == len(severities)


def test_no_console_errors_no_scripts_no_other_requests(page: dict[str, Any]) -> None:
    tab = page["tab"]
    assert [m for m in page["console"] if m.startswith(("error", "pageerror"))] == []
    assert tab.locator("script").count() == 0
    assert page["requests"] == [page["url"]]
