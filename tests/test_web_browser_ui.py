"""The web UI in a real browser (Debian's Chromium through Playwright): the log viewer on a
20,000-line log (tail that follows, pages, download, ANSI, search), every page at 390 px
without sideways scrolling, text contrast (WCAG AA) in light and dark mode, local times,
the history strips, the graph, the cancel dialog.

The test process writes builds and logs straight into the storage the server reads, as a
runner elsewhere would.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobcontrol.models import BuildState, LogRecord, RunTrigger
from jobcontrol.storage import Storage, open_storage
from jobcontrol.timeutil import utcnow
from jobcontrol.web.logview import LOG_PAGE
from tests.support import make_project
from tests.test_web_browser import ROOT, free_port
from tests.test_web_browser import browser as browser  # the fixture: Chromium, or a skip

CONFIG = """\
jobs:
  - id: extract_the_orders_of_every_shop_in_every_country
    title: Extract the day's orders from every shop, in every country we sell in
    function: jobfuncs.make
    args: [extract]
    tags: [orders, input, a-rather-long-tag-name]
    schedule: "0 * * * *"
  - id: load
    function: jobfuncs.make
    args: [load]
    dependencies: [extract_the_orders_of_every_shop_in_every_country]
  - id: report
    function: jobfuncs.make
    args: [report]
    dependencies: [load, extract_the_orders_of_every_shop_in_every_country]
  - id: broken
    function: jobfuncs.no_such_function
"""
EXTRACT = "extract_the_orders_of_every_shop_in_every_country"
LINES = 20_000

#: in the page: every element showing text whose contrast with what is behind it is under
#: WCAG AA (4.5:1; 3:1 for large text), walking up to the first opaque background
CONTRAST_FAILURES = """() => {
  const parse = (c) => { const m = c.match(/[\\d.]+/g).map(Number);
                         return {rgb: m.slice(0, 3), a: m.length > 3 ? m[3] : 1}; };
  const lum = (rgb) => { const l = rgb.map((v) => { v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
      return 0.2126 * l[0] + 0.7152 * l[1] + 0.0722 * l[2]; };
  const background = (el) => { for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor); if (c.a > 0.5) return c.rgb; }
      return [255, 255, 255]; };
  const failures = [];
  for (const el of document.querySelectorAll("body *")) {
    if (el.closest("svg, progress, option")) continue;
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || !el.getClientRects().length) continue;
    const style = getComputedStyle(el);
    if (style.visibility === "hidden") continue;
    const fg = parse(style.color), bg = background(el);
    const [hi, lo] = [lum(fg.rgb), lum(bg)].sort((a, b) => b - a);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const size = parseFloat(style.fontSize), bold = Number(style.fontWeight) >= 700;
    const needed = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    if (ratio < needed) {
      failures.push(el.tagName + "." + el.className + " '" + el.textContent.trim().slice(0, 30)
                    + "' " + ratio.toFixed(2));
    }
  }
  // a field's placeholder is text too (WCAG 1.4.3), drawn on the field's own background
  for (const field of document.querySelectorAll("input[placeholder]")) {
    if (!field.getClientRects().length) continue;
    const hint = getComputedStyle(field, "::placeholder");
    const fg = parse(hint.color), bg = background(field);
    const [hi, lo] = [lum(fg.rgb), lum(bg)].sort((a, b) => b - a);
    const ratio = (hi + 0.05) / (lo + 0.05);
    if (ratio < 4.5 || Number(hint.opacity) < 1) {
      failures.push("placeholder '" + field.placeholder + "' " + ratio.toFixed(2));
    }
  }
  return failures;
}"""

#: what axe-core's link-in-text-block and nested-interactive rules find (WCAG 1.4.1, 4.1.2):
#: a link among other text told from it by colour alone (no underline, under 3:1 with the
#: text around it), and links inside a graphic whose children are hidden as an image
LINK_FAILURES = """() => {
  const lum = (c) => { const l = c.match(/[\\d.]+/g).slice(0, 3).map(Number).map((v) => {
      v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
      return 0.2126 * l[0] + 0.7152 * l[1] + 0.0722 * l[2]; };
  const failures = [];
  for (const link of document.querySelectorAll("main a[href]")) {
    if (link.closest("svg") || !link.getClientRects().length) continue;
    const block = link.parentElement.closest("p, li, td, dd, div");
    if (!block) continue;
    // in running text, as axe-core judges it: more of the block's text outside links than
    // in them (a cell of links, a row of tags, "a · b" are not)
    const links = [...block.querySelectorAll("a[href]")]
      .map((a) => a.textContent).join("").replace(/\\s+/g, "").length;
    if (block.textContent.replace(/\\s+/g, "").length - links <= links) continue;
    const style = getComputedStyle(link);
    if (style.textDecorationLine.includes("underline")) continue;
    const [hi, lo] = [lum(style.color), lum(getComputedStyle(block).color)]
      .sort((a, b) => b - a);
    if ((hi + 0.05) / (lo + 0.05) < 3) failures.push("link '" + link.textContent.trim() + "'");
  }
  for (const image of document.querySelectorAll("[role=img]")) {
    if (image.querySelector("a[href], button, input, select")) {
      failures.push(image.tagName + "." + image.className.baseVal + " role=img holds links");
    }
  }
  return failures;
}"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "project", CONFIG)


@pytest.fixture
def storage(project: Path) -> Iterator[Storage]:
    opened = open_storage("sqlite:///jobcontrol.db", base_dir=project.parent)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def server(project: Path, storage: Storage) -> Iterator[str]:
    """``jobcontrol web`` on a free port, on the project's SQLite file."""
    storage.install()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBCONTROL_")}
    env["PYTHONPATH"] = str(ROOT)
    process = subprocess.Popen(
        [sys.executable, "-m", "jobcontrol", "-c", str(project), "web", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert "serving http://127.0.0.1" in line, line + process.stderr.read()
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()


def running(storage: Storage, job_id: str = "load", run_id: int | None = None) -> int:
    """A running build whose runner is elsewhere (the test writes its log)."""
    return storage.claim_build(job_id, concurrency=99, definition={"function": "x"},
                               definition_hash="h", dependency_builds={}, host="elsewhere",
                               pid=1, run_id=run_id).id


def write(storage: Storage, build_id: int, first: int, count: int, **kwargs: Any) -> None:
    for start in range(first, first + count, 5000):
        storage.append_logs(build_id, [
            LogRecord(utcnow(), logging.INFO, "job", kwargs.get("message", f"line {n}"))
            for n in range(start, min(first + count, start + 5000))])
    storage.heartbeat([build_id])


def new_page(browser: Any, width: int = 1280, **options: Any) -> Any:
    context = browser.new_context(viewport={"width": width, "height": 800}, **options)
    page = context.new_page()
    page.errors = []
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    return page


def seqs(page: Any) -> list[int]:
    return [int(s) for s in page.eval_on_selector_all(
        "#log tbody tr", "rows => rows.map(r => r.dataset.seq)")]


def test_the_tail_of_a_long_log_follows_the_end(browser: Any, server: str,
                                                storage: Storage) -> None:
    build_id = running(storage)
    write(storage, build_id, 1, LINES)
    page = new_page(browser)
    sizes: list[int] = []
    page.on("response", lambda r: sizes.append(len(re.findall("data-seq", r.text())))
            if "/live" in r.url else None)
    page.goto(f"{server}/builds/{build_id}")
    assert seqs(page) == list(range(LINES - LOG_PAGE + 1, LINES + 1))
    page.wait_for_function("document.getElementById('live-note').textContent.includes('following')")
    page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")  # at the end
    write(storage, build_id, LINES + 1, 7)
    page.wait_for_selector(f'#log tr[data-seq="{LINES + 7}"]')
    shown = seqs(page)
    assert shown[-7:] == list(range(LINES + 1, LINES + 8)) and len(shown) == LOG_PAGE
    assert shown == sorted(set(shown))  # no row twice
    # the page scrolled along with the end, and it keeps to a page of rows
    page.wait_for_function("window.innerHeight + window.scrollY >= "
                           "document.documentElement.scrollHeight - 60")
    assert max(sizes) <= 7  # each poll carried only new rows
    older = page.locator(".log-older").first
    assert older.is_visible()
    assert f"before={shown[0]}" in (older.get_attribute("href") or "")
    storage.finish_build(build_id, BuildState.SUCCESS)
    page.wait_for_selector("#state .state-success")
    assert not page.errors, page.errors


def test_paging_search_and_download(browser: Any, server: str, storage: Storage,
                                    tmp_path: Path) -> None:
    build_id = running(storage)
    write(storage, build_id, 1, LINES)
    storage.finish_build(build_id, BuildState.FAILED)
    page = new_page(browser)
    page.goto(f"{server}/builds/{build_id}")
    page.locator(".log-older").first.click()
    page.wait_for_url(re.compile(rf"before={LINES - LOG_PAGE + 1}"))
    assert seqs(page) == list(range(LINES - 2 * LOG_PAGE + 1, LINES - LOG_PAGE + 1))
    page.locator(".log-start").first.click()
    page.wait_for_url(re.compile(r"after=0"))
    assert seqs(page)[0] == 1 and len(seqs(page)) == LOG_PAGE
    page.locator(".log-newer").first.click()
    page.wait_for_url(re.compile(rf"after={LOG_PAGE}"))
    assert seqs(page)[0] == LOG_PAGE + 1
    page.locator(".log-end").first.click()  # and straight to the end again
    page.wait_for_url(re.compile(rf"/builds/{build_id}#log-end$"))
    assert seqs(page) == list(range(LINES - LOG_PAGE + 1, LINES + 1))
    page.go_back()
    # search within the page, and "no match" when nothing is left
    page.fill("#log-search", f"line {LOG_PAGE + 7}")
    assert page.locator("#log tbody tr:not(.hidden)").count() == 1
    assert page.locator("#log-nomatch").is_hidden()
    page.fill("#log-search", "no such words")
    assert page.locator("#log tbody tr:not(.hidden)").count() == 0
    assert page.locator("#log-nomatch").is_visible()
    page.fill("#log-search", "")
    assert page.locator("#log-nomatch").is_hidden()
    # the level filter has DEBUG; the raw log downloads as a file
    assert "DEBUG" in page.locator("#log-level").inner_text()
    with page.expect_download() as caught:
        page.locator("#log-download").click()
    download = caught.value
    assert download.suggested_filename == f"build-{build_id}.log"
    saved = tmp_path / "saved.log"
    download.save_as(saved)
    lines = saved.read_text().splitlines()
    assert len(lines) == LINES and lines[-1].endswith(f"job: line {LINES}")
    assert not page.errors, page.errors


def test_ansi_colours_are_drawn(browser: Any, server: str, storage: Storage) -> None:
    build_id = running(storage)
    write(storage, build_id, 1, 1, message="\x1b[31mred\x1b[0m \x1b[1;32mgreen\x1b[0m plain")
    storage.finish_build(build_id, BuildState.SUCCESS)
    page = new_page(browser)
    page.goto(f"{server}/builds/{build_id}")
    red = page.locator("#log .ansi-fg-1")
    assert red.inner_text() == "red"
    rgb = [int(v) for v in re.findall(r"\d+", red.evaluate("e => getComputedStyle(e).color"))]
    assert rgb[0] > 150 and rgb[1] < 80  # red
    assert page.locator("#log .ansi-bold.ansi-fg-2").inner_text() == "green"
    assert page.locator("#log td pre").first.inner_text() == "red green plain"


def pages(server: str, storage: Storage) -> list[str]:
    """Every page there is, with some history to show: a run, a paused job."""
    run = storage.create_run(RunTrigger.WEB, by="web user someone", targets=[EXTRACT],
                             note="launched from the jobs page " * 5)
    done = running(storage, EXTRACT, run_id=run.id)
    write(storage, done, 1, 50, message="a line that is quite long " * 20)
    storage.finish_build(done, BuildState.SUCCESS)
    live = running(storage)
    write(storage, live, 1, 5)
    storage.pause_job("report", by="ops@somewhere", reason="waiting for the new warehouse")
    return [f"{server}{path}" for path in (
        "/", f"/jobs/{EXTRACT}", "/jobs/report", f"/builds/{done}", f"/builds/{live}",
        "/jobs/report/launch", "/graph", "/builds", "/builds?state=failed&limit=1",
        "/runs", f"/runs/{run.id}", "/builds/99999", "/no/such/page")]


def test_no_page_scrolls_sideways_on_a_phone(browser: Any, server: str,
                                             storage: Storage) -> None:
    page = new_page(browser, width=390)
    for url in pages(server, storage):
        page.goto(url)
        wide = page.evaluate("document.documentElement.scrollWidth")
        # what overflows, to say so: an element wider than its box outside a scrolling box
        culprits = page.evaluate("""() => [...document.querySelectorAll('main *')]
            .filter(e => e.scrollWidth > e.clientWidth + 1 && !e.closest('.table-box, .graph-box')
                         && getComputedStyle(e).overflowX === 'visible')
            .map(e => e.tagName + '.' + e.className + ' ' + e.scrollWidth + '/' + e.clientWidth)
            .slice(-3)""")
        assert wide <= 390, f"{url} is {wide} px wide at 390: {culprits}"
        # the tables scroll inside their boxes instead
        for box in page.locator(".table-box").all():
            assert box.evaluate("e => e.getBoundingClientRect().right") <= 390
        # and a date is never broken over two lines
        for when in page.locator("time.when").all()[:20]:
            assert when.evaluate("e => e.getClientRects().length") == 1
    # the two error pages were loaded on purpose
    assert [e for e in page.errors if "status of 404" not in e] == [], page.errors


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_text_contrast_meets_wcag_aa(browser: Any, server: str, storage: Storage,
                                     scheme: str) -> None:
    urls = pages(server, storage)
    for state in (BuildState.FAILED, BuildState.CANCELLED, BuildState.SKIPPED,
                  BuildState.ABANDONED):
        storage.finish_build(running(storage, "report"), state)
    page = new_page(browser)
    page.emulate_media(color_scheme=scheme)
    for url in urls:
        page.goto(url)
        failures = page.evaluate(CONTRAST_FAILURES) + page.evaluate(LINK_FAILURES)
        assert not failures, (url, failures)
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    level = sum(int(v) for v in re.findall(r"\d+", background)[:3])
    assert (level < 150) if scheme == "dark" else (level > 600), background


def test_times_are_local_with_utc_on_hover(browser: Any, server: str, storage: Storage) -> None:
    build_id = running(storage)
    page = new_page(browser, timezone_id="Asia/Kolkata")  # UTC+05:30
    page.goto(f"{server}/builds/{build_id}")
    when = page.locator("#summary time.when").first
    utc = when.get_attribute("datetime") or ""
    hour, minute = int(utc[11:13]), int(utc[14:16])
    local = when.inner_text()
    total = (hour * 60 + minute + 330) % (24 * 60)
    assert local[11:16] == f"{total // 60:02d}:{total % 60:02d}", (utc, local)
    assert (when.get_attribute("title") or "").endswith(" UTC")
    assert page.locator("th .tz").first.inner_text() == "(local)"
    # a local time is never labelled UTC (a paused job's "since")
    storage.pause_job("load", by="ops", reason="moving")
    page.goto(f"{server}/jobs/load")
    paused = page.locator("p.paused")
    assert paused.locator("time.when").get_attribute("data-local") == "1"
    assert "UTC" not in paused.inner_text() and "(local)" in paused.inner_text()


def test_history_strips_show_each_jobs_recent_states(browser: Any, server: str,
                                                     storage: Storage) -> None:
    states = [BuildState.SUCCESS, BuildState.FAILED, BuildState.SKIPPED, BuildState.CANCELLED,
              BuildState.ABANDONED]
    made = []
    for n in range(24):
        build_id = running(storage, "report")
        storage.finish_build(build_id, states[n % 5])
        made.append((build_id, states[n % 5].value))
    made.append((running(storage, "report"), "running"))
    page = new_page(browser)
    page.goto(server + "/")
    marks = page.locator("#job-report .strip .mark")
    assert marks.count() == 20
    shown = marks.evaluate_all(
        "ms => ms.map(m => [Number(m.getAttribute('href').split('/').pop()), "
        "m.className.replace('mark state-', '')])")
    assert [tuple(m) for m in shown] == made[-20:]
    # distinct states look distinct
    colours = {state: page.locator(f"#job-report .mark.state-{state}").first.evaluate(
        "e => getComputedStyle(e).backgroundColor + getComputedStyle(e).backgroundImage")
        for _, state in made[-5:]}
    assert len(set(colours.values())) == 5, colours
    assert page.locator("#job-load .strip .mark").count() == 0
    assert "does not import" in page.locator("#job-broken").inner_text()
    marks.last.click()
    page.wait_for_url(re.compile(rf"/builds/{made[-1][0]}$"))


def test_the_graph_fits_marks_the_job_and_zooms(browser: Any, server: str) -> None:
    page = new_page(browser, width=390)
    page.goto(f"{server}/jobs/load")
    current = page.locator("svg.graph .node.current")
    assert current.count() == 1 and "load" in (current.text_content() or "")
    box = page.locator(".graph-box").first
    svg = box.locator("svg.graph")
    fitted = svg.evaluate("e => e.getBoundingClientRect().width")
    assert fitted <= box.evaluate("e => e.clientWidth")  # fits its width
    page.locator(".zoom button", has_text="+").first.click()
    page.locator(".zoom button", has_text="+").first.click()
    zoomed = svg.evaluate("e => e.getBoundingClientRect().width")
    assert zoomed > fitted * 1.4
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # the box scrolls
    page.locator(".zoom button", has_text="fit").first.click()
    assert svg.evaluate("e => e.getBoundingClientRect().width") == pytest.approx(fitted, abs=1)
    assert not page.errors, page.errors


def test_the_cancel_dialog_says_what_ok_does_and_records_the_reason(
        browser: Any, server: str, storage: Storage) -> None:
    build_id = running(storage)
    page = new_page(browser)
    page.goto(f"{server}/builds/{build_id}")
    messages: list[str] = []

    def answer(dialog: Any) -> None:
        messages.append(dialog.message)
        (dialog.dismiss if len(messages) in (1, 3) else dialog.accept)()

    page.on("dialog", answer)
    page.fill("#actions input[name=reason]", "wrong input file")
    page.locator("#actions button.danger").click()  # dismissed: nothing happens
    assert storage.get_build(build_id).cancel_requested is None
    assert messages[0].startswith(f"OK stops build #{build_id} of load")
    assert "Cancel leaves it running" in messages[0]
    page.locator("#actions button.danger").click()  # accepted
    page.wait_for_selector(".flash")
    assert "cancel of build" in page.locator(".flash").inner_text()
    assert storage.get_build(build_id).cancel_reason == "cancelled by web: wrong input file"
    # ended, it offers Delete, whose dialog says what OK does too
    storage.finish_build(build_id, BuildState.CANCELLED)
    page.wait_for_selector("#actions button.danger >> text=Delete build", timeout=15_000)
    page.locator("#actions button.danger").click()  # dismissed: kept
    assert messages[2].startswith(f"OK deletes build #{build_id} of load for good")
    assert "Cancel keeps it" in messages[2]
    assert storage.get_build(build_id).state is BuildState.CANCELLED
