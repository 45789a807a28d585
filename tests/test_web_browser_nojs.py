"""The web UI in a real browser with JavaScript turned off (Debian's Chromium through
Playwright): every task a user has is still done, by links and plain forms, and a reload
brings a page up to date.
"""

from __future__ import annotations

import re
from typing import Any

from tests.test_web_browser import browser as browser  # the fixture: Chromium, or a skip
from tests.test_web_browser import server as server  # ``jobcontrol web`` on a project


def new_page(browser: Any, width: int = 1280) -> Any:
    context = browser.new_context(java_script_enabled=False,
                                  viewport={"width": width, "height": 800})
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    return page


def reload_until(page: Any, selector: str, tries: int = 60) -> None:
    """Without JavaScript nothing updates itself: the reader reloads."""
    for _ in range(tries):
        if page.locator(selector).count():
            return
        page.wait_for_timeout(500)
        page.reload()
    raise AssertionError(f"{selector} never showed on {page.url}")


def test_run_follow_and_read_a_build_without_javascript(browser: Any, server: str) -> None:
    page = new_page(browser)
    page.goto(server + "/")
    assert page.locator("th .tz").first.inner_text() == "(UTC)"  # app.js did not run
    page.locator("#job-load button.run").click()  # a plain form: POST, then a redirect
    page.wait_for_url(re.compile(r"/runs/1$"))
    reload_until(page, '#run-builds a[href="/builds/2"]')
    page.locator('#run-builds a[href="/builds/2"]').click()
    reload_until(page, "#state .state-success")
    assert "done with 12 batches" in page.locator("#log tbody").inner_text()
    assert page.locator("#log-search").is_hidden()  # the search needs JavaScript: not offered
    # the level filter: the select and its Filter button (shown without JavaScript)
    page.select_option("#log-level", "30")
    page.locator("#log-filter button[type=submit]").click()
    page.wait_for_url(re.compile(r"level=30"))
    assert page.locator("#log tbody tr").count() == 1  # the WARNING alone
    # history: the strip, the chart, the Builds page's filters and totals
    page.goto(server + "/")
    assert page.locator("#job-load .strip .mark").count() == 1
    page.goto(server + "/jobs/load")
    assert page.locator("svg.chart rect.bar").count() == 1
    page.goto(server + "/builds")
    page.select_option("select[name=job]", "extract")
    page.locator("form.filters button[type=submit]").click()
    assert page.locator("#totals").inner_text() == "Builds 1\N{EN DASH}1 of 1"
    # the launch form's preview: the plan of what is ticked
    page.goto(server + "/jobs/report/launch")
    page.locator('input[name="deps"]').uncheck()
    page.locator("#preview").click()
    assert page.locator("h2#plan").inner_text() == "What Run would do now: report alone"
    assert page.locator(".zoom").count() == 0  # the graph, unzoomable, still drawn
    page.goto(server + "/graph")
    assert page.locator("svg.graph .node").count() == 6
    assert page.errors == []


def test_pause_resume_and_cancel_without_javascript(browser: Any, server: str) -> None:
    page = new_page(browser)
    page.goto(server + "/jobs/slow")
    page.fill("#pause input[name=reason]", "disk full")
    page.locator("#pause button[type=submit]").click()
    assert "disk full" in page.locator("p.paused").inner_text()
    assert page.locator("#job-status button.run").count() == 0
    page.locator("#pause button", has_text="Resume").click()
    assert page.locator("p.paused").count() == 0
    page.locator("#job-status button.run").click()
    page.wait_for_url(re.compile(r"/runs/1$"))
    reload_until(page, '#run-builds a[href="/builds/1"]')
    page.goto(server + "/builds/1")
    reload_until(page, "#state .state-running")
    page.fill("#actions input[name=reason]", "not today")
    page.locator("#actions button.danger").click()  # no confirm() without JavaScript
    assert "cancel of build #1 requested" in page.locator(".flash").inner_text()
    reload_until(page, "#state .state-cancelled")
    assert "not today" in page.locator("#summary").inner_text()
    assert page.errors == []
