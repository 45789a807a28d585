"""A real browser on a real ``jobcontrol web``: Run a job with dependencies, follow it live.

Headless Chromium (Debian's ``chromium`` package, which ``.ci/run`` installs) driven by
Playwright. Screenshots of every page land in the test's folder; with
``$JOBCONTROL_SCREENSHOTS=docs/screenshots`` they are copied there too (the README's)::

    JOBCONTROL_SCREENSHOTS=docs/screenshots pytest tests/test_web_browser.py
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import make_project

ROOT = Path(__file__).parent.parent
CHROMIUM = os.environ.get("JOBCONTROL_TEST_CHROMIUM", "/usr/bin/chromium")

CONFIG = """\
jobs:
  - id: extract
    title: Extract the day's orders
    function: jobfuncs.steps
    kwargs: {count: 3, delay: 0.2, name: files}
    tags: [orders, input]
  - id: load
    title: Load orders into the warehouse
    function: jobfuncs.steps
    kwargs: {count: 12, delay: 0.35, name: batches}
    dependencies: [extract]
    tags: [orders]
  - id: report
    title: Daily orders report
    function: jobfuncs.make
    args: [report]
    dependencies: [load]
    tags: [orders, output]
  - id: audit
    title: Audit the extract
    function: jobfuncs.make
    args: [audit]
    dependencies: [extract]
  - id: broken
    function: jobfuncs.fails
  - id: slow
    function: jobfuncs.sleeper
    kwargs: {seconds: 60}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; CI installs it)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed (pip install '.[test]')")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """``jobcontrol web`` on a free port, on the project's SQLite file."""
    config = make_project(tmp_path / "project", CONFIG)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBCONTROL_")}
    env["PYTHONPATH"] = str(ROOT)
    process = subprocess.Popen(
        [sys.executable, "-m", "jobcontrol", "-c", str(config), "web", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()  # the "serving" line, once it listens
        assert "serving http://127.0.0.1" in line, line + process.stderr.read()
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()


def shoot(page: object, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    assert path.stat().st_size > 10_000
    target = os.environ.get("JOBCONTROL_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)


def test_run_a_job_with_dependencies_and_follow_it_live(browser: object, server: str,
                                                         tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 800})  # type: ignore[attr-defined]
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(server + "/")
    assert page.locator("#job-load .badge").inner_text() == "not built"

    page.locator("#job-load button.run").click()
    # the launch opens its run's page, which shows each of its builds as it starts
    page.wait_for_url(re.compile(r"/runs/1$"), timeout=30_000)
    page.evaluate("window.stillTheSamePage = true")  # gone if the page reloaded
    page.wait_for_selector('#run-builds a[href="/builds/1"]')
    page.wait_for_selector('#run-builds a[href="/builds/2"]', timeout=30_000)
    assert page.evaluate("window.stillTheSamePage") is True
    page.go_back()  # Back: the page the Run button was on
    page.wait_for_url(server + "/")
    page.go_forward()
    page.locator('#run-builds a[href="/builds/2"]').click()
    page.wait_for_url(re.compile(r"/builds/2$"))
    page.evaluate("window.stillTheSamePage = true")
    page.wait_for_selector("#state .state-success", timeout=30_000)
    assert page.evaluate("window.stillTheSamePage") is True

    log = page.locator("#log tbody").inner_text()
    for step in range(1, 13):
        assert f"step {step} of 12" in log
    assert "done with 12 batches" in log
    assert page.locator("#progress progress").first.get_attribute("value") == "100"
    assert "batches 12/12" in page.locator("#progress").inner_text()
    page.fill("#log-search", "step 7")
    assert page.locator("#log tbody tr:not(.hidden)").count() == 1
    page.fill("#log-search", "")
    shoot(page, tmp_path, "build")

    page.goto(server + "/")
    assert page.locator("#job-load .badge").inner_text() == "success"
    assert page.locator("#job-extract .badge").inner_text() == "success"
    shoot(page, tmp_path, "jobs")
    page.goto(server + "/jobs/load")
    assert "jobfuncs.steps(count" in page.locator("pre.code").first.inner_text()
    assert page.locator("svg.graph .node").count() == 3  # extract, load, report
    shoot(page, tmp_path, "job")
    page.goto(server + "/jobs/report/launch")
    shoot(page, tmp_path, "launch")
    page.goto(server + "/graph")
    assert page.locator("svg.graph .node.state-success").count() == 2
    shoot(page, tmp_path, "graph")
    page.goto(server + "/builds")
    assert page.locator("table.builds tbody tr").count() == 2  # extract's and load's
    shoot(page, tmp_path, "builds")
    # and on a phone
    page.set_viewport_size({"width": 390, "height": 800})
    for name, path in (("jobs-phone", "/"), ("build-phone", "/builds/2")):
        page.goto(server + path)
        shoot(page, tmp_path, name)
    assert not errors, errors


def test_rerun_from_a_build_page_then_back(browser: object, server: str) -> None:
    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(server + "/jobs/audit/launch")
    page.locator("#preview").click()  # the plan of what is ticked: audit alone
    page.wait_for_selector("h2#plan")
    assert page.locator("h2#plan").inner_text() == "What Run would do now: audit with deps"
    page.locator('input[name="deps"]').uncheck()
    page.locator("#preview").click()
    page.wait_for_url(re.compile(r"plan=1"))
    assert page.locator("h2#plan").inner_text() == "What Run would do now: audit alone"
    page.locator('input[name="deps"]').check()
    page.locator("button.run").click()
    page.wait_for_url(re.compile(r"/runs/1$"), timeout=30_000)
    page.wait_for_selector('#run-builds a[href="/builds/2"]', timeout=30_000)
    page.goto(server + "/builds/1")  # extract's: audit's build consumed it
    page.wait_for_selector("#state .state-success", timeout=30_000)
    page.locator('#consumed-by a[href="/builds/2"]').click()
    page.wait_for_url(re.compile(r"/builds/2$"))
    page.wait_for_selector("#state .state-success", timeout=30_000)
    page.locator("#rerun").click()
    page.wait_for_url(re.compile(r"/runs/2$"), timeout=30_000)
    page.wait_for_selector('#run-builds a[href="/builds/3"]', timeout=30_000)
    assert "audit" in page.locator("#run-builds").inner_text()
    page.go_back()
    page.wait_for_url(server + "/builds/2")


def test_retry_a_failed_build_in_its_run(browser: object, server: str) -> None:
    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(server + "/")
    page.locator("#job-broken button.run").click()
    page.wait_for_url(re.compile(r"/runs/1$"), timeout=30_000)
    page.wait_for_selector("#run-state .state-failed", timeout=30_000)
    page.locator('#run-builds a[href="/builds/1"]').click()
    page.wait_for_selector("#state .state-failed")
    page.locator("#retry").click()
    # the retry joins the failed build's run, which shows both
    page.wait_for_url(re.compile(r"/runs/1$"), timeout=30_000)
    page.wait_for_selector('#run-builds a[href="/builds/2"]', timeout=30_000)
    assert page.locator("#run-builds tbody tr").count() == 2
    page.goto(server + "/builds/2")
    page.wait_for_selector("#state .state-failed", timeout=30_000)
    page.wait_for_selector("#retry")  # the retry failed too: it may be retried in turn
    page.goto(server + "/builds/1")
    assert page.locator("#retry").count() == 0  # retried already: offered once
    assert "#2" in page.locator(".chain").inner_text()


def test_a_launch_refused_as_running_links_the_running_build(browser: object,
                                                             server: str) -> None:
    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(server + "/")
    page.locator("#job-slow button.run").click()
    page.wait_for_url(re.compile(r"/runs/1$"), timeout=30_000)
    page.goto(server + "/")
    page.locator("#job-slow button.run").click()  # while #1 runs
    page.wait_for_selector(".running-builds")
    assert "already running" in page.locator("p.error").inner_text()
    page.locator('.running-builds a[href="/builds/1"]').click()
    page.wait_for_url(re.compile(r"/builds/1$"))
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#actions button.danger").click()  # cancel it: the server stops cleanly
    page.wait_for_selector("#state .state-cancelled", timeout=30_000)
