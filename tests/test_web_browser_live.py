"""History at a glance and live pages in a real browser (Debian's Chromium through
Playwright): the job page's chart, the Builds page's filters, page numbers and totals, pages
that update themselves while a build runs without taking the focus from a field being typed
in, and a config change shown without a restart.

The test process writes builds straight into the storage the server reads, as a runner
elsewhere would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jobcontrol.models import BuildState, ProgressItem
from jobcontrol.storage import Storage
from tests.test_web_browser import browser as browser  # the fixture: Chromium, or a skip
from tests.test_web_browser_ui import CONFIG, new_page, running
from tests.test_web_browser_ui import project as project  # the fixtures
from tests.test_web_browser_ui import server as server
from tests.test_web_browser_ui import storage as storage

S = BuildState
DASH = "\N{EN DASH}"  # between the first and the last shown
#: what the page's JavaScript must keep: the element focused and what was typed in it
FOCUS = "() => [document.activeElement.name || document.activeElement.id, " \
        "document.activeElement.value]"


def finished(storage: Storage, job_id: str, state: BuildState) -> int:
    build_id = running(storage, job_id)
    storage.finish_build(build_id, state)
    return build_id


def test_the_job_page_charts_durations_by_state(browser: Any, server: str,
                                                storage: Storage) -> None:
    states = [S.SUCCESS, S.FAILED, S.SKIPPED, S.CANCELLED, S.ABANDONED, S.SUCCESS]
    ids = [finished(storage, "load", state) for state in states]
    page = new_page(browser)
    page.goto(f"{server}/jobs/load")
    bars = page.locator("svg.chart rect.bar")
    assert bars.count() == len(states)
    drawn = bars.evaluate_all(
        "bars => bars.map(b => [Number(b.dataset.build), b.dataset.state, "
        "getComputedStyle(b).fill, b.querySelector('title').textContent])")
    expected = [(i, s.value) for i, s in zip(ids, states, strict=True)]
    assert [(i, s) for i, s, _, _ in drawn] == expected
    fills = {state: fill for _, state, fill, _ in drawn}
    assert len(set(fills.values())) == 5  # a colour a state (not all grey)
    badge = page.evaluate("getComputedStyle(document.querySelector('.badge')).backgroundColor")
    assert badge in fills.values()  # the badges' palette
    assert drawn[1][3].startswith(f"#{ids[1]} failed, ")
    page.locator("svg.chart a").nth(1).click()
    page.wait_for_url(f"{server}/builds/{ids[1]}")
    assert page.errors == []


def test_the_builds_page_filters_pages_and_counts(browser: Any, server: str,
                                                  storage: Storage) -> None:
    ids = [finished(storage, "load" if n % 3 else "report", S.FAILED if n % 4 == 0 else
                    S.SUCCESS) for n in range(60)]
    page = new_page(browser)
    page.goto(f"{server}/")
    page.locator("nav >> text=Builds").click()
    assert page.locator("#totals").inner_text() == f"Builds 1{DASH}50 of 60"
    rows = page.locator("table.builds tbody tr")
    assert rows.count() == 50
    assert rows.first.get_attribute("data-build") == str(ids[-1])
    page.locator("nav.pages a.page", has_text="2").click()
    assert page.locator("#totals").inner_text() == f"Builds 51{DASH}60 of 60"
    assert rows.count() == 10 and rows.last.get_attribute("data-build") == str(ids[0])
    # filter: report's failures
    page.select_option("select[name=job]", "report")
    page.check("input[name=state][value=failed]")
    page.locator("form.filters button[type=submit]").click()
    wanted = [i for n, i in enumerate(ids) if n % 3 == 0 and n % 4 == 0][::-1]
    assert page.locator("#totals").inner_text() == f"Builds 1{DASH}{len(wanted)} of {len(wanted)}"
    assert rows.evaluate_all("rows => rows.map(r => Number(r.dataset.build))") == wanted
    assert page.locator("nav.pages").count() == 0  # one page
    # the search box, and recent failures from the jobs page
    page.fill("input[name=q]", "nothing matches this")
    page.locator("form.filters button[type=submit]").click()
    assert page.locator("#totals").inner_text() == "No builds match."
    page.goto(f"{server}/")
    page.locator("main a", has_text="Recent failures").click()
    failed = [i for n, i in enumerate(ids) if n % 4 == 0]
    assert page.locator("#totals").inner_text() == f"Builds 1{DASH}{len(failed)} of {len(failed)}"
    assert page.errors == []


def test_the_job_page_updates_while_a_build_runs_keeping_the_focus(
        browser: Any, server: str, storage: Storage) -> None:
    page = new_page(browser)
    page.goto(f"{server}/jobs/load")
    page.evaluate("window.stillTheSamePage = true")
    assert page.locator("#job-status .badge").inner_text() == "not built"
    page.locator("#pause input[name=reason]").click()
    page.keyboard.type("maintenance")
    build_id = running(storage)
    storage.set_progress(build_id, [ProgressItem((), 1, 4)])
    page.wait_for_selector("#job-status .state-running", timeout=15_000)
    page.wait_for_selector(f"svg.chart rect[data-build='{build_id}']", timeout=15_000)
    page.wait_for_selector(f"#builds-table a[href='/builds/{build_id}']", timeout=15_000)
    assert page.evaluate(FOCUS) == ["reason", "maintenance"]
    page.keyboard.type(" window")  # still typing into the same field
    storage.finish_build(build_id, S.FAILED)
    page.wait_for_selector("#job-status .state-failed", timeout=15_000)
    page.wait_for_selector(f"svg.chart rect[data-build='{build_id}'][data-state=failed]")
    assert page.evaluate(FOCUS) == ["reason", "maintenance window"]
    assert page.evaluate("window.stillTheSamePage") is True
    # the jobs page and the graph follow the same way
    page.goto(f"{server}/")
    page.evaluate("window.stillTheSamePage = true")
    second = running(storage)
    page.wait_for_selector(f"#job-load .running a[href='/builds/{second}']", timeout=15_000)
    page.goto(f"{server}/graph")
    page.wait_for_selector("svg.graph .node.state-running", timeout=15_000)
    storage.finish_build(second, S.SUCCESS)
    page.wait_for_selector("svg.graph a[href='/jobs/load'] .node.state-success",
                           timeout=15_000)
    assert page.errors == []


def test_a_pause_made_elsewhere_takes_the_run_button_away(browser: Any, server: str,
                                                          storage: Storage) -> None:
    page = new_page(browser)
    page.goto(f"{server}/jobs/load")
    page.evaluate("window.stillTheSamePage = true")
    assert page.locator("#job-status button.run").count() == 1  # the Run button is live
    storage.pause_job("load", by="ops", reason="moving the warehouse")
    page.wait_for_selector("#pause p.paused", timeout=15_000)
    page.wait_for_selector("button.run", state="detached", timeout=15_000)
    storage.resume_job("load", by="ops")
    page.wait_for_selector("#job-status button.run", timeout=15_000)
    assert page.evaluate("window.stillTheSamePage") is True
    assert page.errors == []


def test_the_build_page_patches_only_what_changed(browser: Any, server: str,
                                                  storage: Storage) -> None:
    build_id = running(storage)
    page = new_page(browser)
    page.goto(f"{server}/builds/{build_id}")
    page.evaluate("document.querySelector('#summary dl').marked = true")
    page.locator("#actions input[name=reason]").click()
    page.keyboard.type("wrong input")
    duration = page.locator("#summary dd").nth(5)
    first = duration.inner_text()
    storage.heartbeat([build_id])
    page.wait_for_function("(first) => document.querySelectorAll('#summary dd')[5]"
                           ".textContent !== first", arg=first, timeout=15_000)  # it ticks
    storage.set_progress(build_id, [ProgressItem((), 3, 4, "nearly")])
    page.wait_for_selector("#progress progress[value='75']", timeout=15_000)
    assert page.evaluate(FOCUS) == ["reason", "wrong input"]
    assert page.evaluate("document.querySelector('#summary dl').marked") is True  # not redrawn
    assert page.errors == []


def test_a_build_ending_while_a_cancel_reason_is_typed(browser: Any, server: str,
                                                      storage: Storage) -> None:
    """The cancel form, focused, is not patched into the Delete form under the reader's
    hands (its action once became /delete while it still said Cancel build); it is once
    the focus leaves."""
    build_id = running(storage)
    page = new_page(browser)
    page.goto(f"{server}/builds/{build_id}")
    page.locator("#actions input[name=reason]").click()
    page.keyboard.type("wrong input")
    storage.finish_build(build_id, S.FAILED)
    page.wait_for_selector("#state .state-failed", timeout=15_000)
    page.wait_for_timeout(2500)  # the actions' patch tried at each poll meanwhile
    form = page.locator("#actions input[name=reason]").locator("xpath=ancestor::form")
    assert (form.get_attribute("action") or "").endswith(f"/builds/{build_id}/cancel")
    assert page.evaluate(FOCUS) == ["reason", "wrong input"]
    page.evaluate("document.activeElement.blur()")  # the reader moves on
    page.wait_for_selector("#actions button.danger >> text=Delete build", timeout=15_000)
    assert page.locator("#actions input[name=reason]").count() == 0
    assert page.locator("#retry").count() == 1
    assert page.errors == []


def test_a_focused_link_keeps_its_target_while_the_page_updates(browser: Any, server: str,
                                                                storage: Storage) -> None:
    """A link the reader is on (Tab, then Enter) does not come to point at another build
    when a new one pushes the table's rows down."""
    first = finished(storage, "load", S.SUCCESS)
    page = new_page(browser)
    page.goto(f"{server}/jobs/load")
    page.locator(f"#builds-table a[href='/builds/{first}']").focus()
    second = finished(storage, "load", S.FAILED)
    page.wait_for_selector(f"svg.chart rect[data-build='{second}']", timeout=15_000)
    page.wait_for_timeout(2500)  # the table's patch tried meanwhile
    assert page.evaluate("document.activeElement.getAttribute('href')") == f"/builds/{first}"
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server}/builds/{first}")
    page.go_back()
    page.wait_for_selector(f"#builds-table a[href='/builds/{second}']", timeout=15_000)
    assert page.errors == []


def test_a_new_job_in_the_config_shows_without_a_restart(browser: Any, server: str,
                                                          project: Path) -> None:
    page = new_page(browser)
    page.goto(f"{server}/")
    page.evaluate("window.stillTheSamePage = true")
    assert page.locator("#job-added").count() == 0
    project.write_text(CONFIG + "  - id: added\n    function: jobfuncs.make\n",
                       encoding="utf-8")
    page.wait_for_selector("#job-added", timeout=15_000)  # the open page, not reloaded
    assert page.evaluate("window.stillTheSamePage") is True
    project.write_text(CONFIG + "  - id: [broken\n", encoding="utf-8")
    page.wait_for_selector(".config-error", timeout=15_000)
    assert "last good one" in page.locator(".config-error").inner_text()
    assert page.locator("#job-added").count() == 1  # kept
    project.write_text(CONFIG, encoding="utf-8")
    page.wait_for_selector("#job-added", state="detached", timeout=15_000)
    assert page.locator(".config-error").count() == 0
    page.goto(f"{server}/jobs/added")
    assert "404" in page.locator("h1").inner_text()


#: each bar of the chart: the better contrast of its fill or its edge with the chart's
#: background (WCAG 1.4.11 asks 3:1 of a graphic's boundary)
BAR_CONTRAST = """() => {
  const rgb = (c) => c.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const lum = (c) => { const l = rgb(c).map((v) => { v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
      return 0.2126 * l[0] + 0.7152 * l[1] + 0.0722 * l[2]; };
  const ratio = (a, b) => { const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x);
                            return (hi + 0.05) / (lo + 0.05); };
  const back = getComputedStyle(document.querySelector(".chart-box")).backgroundColor;
  return [...document.querySelectorAll("svg.chart rect.bar")].map((bar) => {
    const style = getComputedStyle(bar);
    const edge = style.stroke && style.stroke !== "none" ? ratio(style.stroke, back) : 0;
    return [bar.dataset.state, Math.max(ratio(style.fill, back), edge)];
  });
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_chart_bars_stand_out_in_both_modes(browser: Any, server: str, storage: Storage,
                                                scheme: str) -> None:
    for state in (S.SUCCESS, S.FAILED, S.SKIPPED, S.CANCELLED, S.ABANDONED, S.RUNNING):
        if state is S.RUNNING:
            running(storage)
        else:
            finished(storage, "load", state)
    page = new_page(browser)
    page.emulate_media(color_scheme=scheme)
    page.goto(f"{server}/jobs/load")
    ratios = page.evaluate(BAR_CONTRAST)
    assert len(ratios) == 6
    assert all(ratio >= 3 for _, ratio in ratios), ratios
