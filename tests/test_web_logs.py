"""The build page's log viewer and the jobs page's history, without JavaScript: Flask's test
client on SQLite and PostgreSQL. Pages of a 20,000-line log by their links, the tail, the
live updates of a followed tail, the raw download; the strips, import errors, the cancel
reason, the error page's way back."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobcontrol import JobControl
from jobcontrol.models import BuildState, LogRecord
from jobcontrol.storage import Storage
from jobcontrol.timeutil import utcnow
from jobcontrol.web import create_app
from jobcontrol.web.logview import LOG_PAGE
from tests.conftest import make_storage
from tests.support import make_project
from tests.web_support import page_token

CONFIG = """\
jobs:
  - id: talk
    function: jobfuncs.make
    args: [talk]
  - id: later
    function: jobfuncs.make
    args: [later]
    dependencies: [talk]
  - id: broken
    function: jobfuncs.no_such_function
"""

LINES = 20_000


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    opened = make_storage(str(request.param), tmp_path, request)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def jc(tmp_path: Path, storage: Storage) -> JobControl:
    return JobControl.from_config(make_project(tmp_path / "project", CONFIG), storage)


@pytest.fixture
def client(jc: JobControl) -> Any:
    return create_app(jc).test_client()


def running_build(jc: JobControl, job_id: str = "talk") -> int:
    build = jc.storage.claim_build(job_id, concurrency=9, definition={"function": "x"},
                                   definition_hash="h", dependency_builds={}, host="elsewhere",
                                   pid=1)
    return build.id


def write_lines(jc: JobControl, build_id: int, first: int, count: int) -> None:
    """Lines numbered ``first``.. (every tenth a DEBUG), in batches as a runner writes."""
    numbers = range(first, first + count)
    for start in range(0, count, 5000):
        jc.storage.append_logs(build_id, [
            LogRecord(utcnow(), logging.DEBUG if n % 10 == 0 else logging.INFO, "job",
                      f"line {n}") for n in numbers[start:start + 5000]])


def seqs(html: str) -> list[int]:
    return [int(s) for s in re.findall(r'data-seq="(\d+)"', html)]


def link(html: str, name: str) -> str | None:
    """The href of the first pager link ``name`` (start, older, newer, end); None if hidden."""
    match = re.search(rf'<a href="([^"]+)" class="log-{name}"( hidden)?>', html)
    assert match, f"no {name} link"
    return None if match.group(2) else match.group(1).replace("&amp;", "&")


@pytest.fixture
def long_log(jc: JobControl) -> int:
    build_id = running_build(jc)
    write_lines(jc, build_id, 1, LINES)
    return build_id


def test_the_page_opens_at_the_tail_of_a_long_log(client: Any, long_log: int) -> None:
    html = client.get(f"/builds/{long_log}").get_data(as_text=True)
    assert seqs(html) == list(range(LINES - LOG_PAGE + 1, LINES + 1))  # a page, the end
    assert link(html, "newer") is None and link(html, "end") is None
    assert link(html, "older") == f"/builds/{long_log}?before={LINES - LOG_PAGE + 1}#log-heading"
    assert f"/builds/{long_log}/live?tail=1" in html  # the page follows the end


def test_paging_through_the_whole_log_by_links(client: Any, long_log: int) -> None:
    html = client.get(f"/builds/{long_log}").get_data(as_text=True)
    start = link(html, "start")
    assert start is not None
    first = client.get(start).get_data(as_text=True)
    assert seqs(first) == list(range(1, LOG_PAGE + 1))
    assert link(first, "older") is None and link(first, "start") is None
    # forwards from the start, page after page, to the end: every line once
    seen, page, pages = seqs(first), first, 1
    while (newer := link(page, "newer")) is not None:
        page = client.get(newer).get_data(as_text=True)
        seen += seqs(page)
        pages += 1
        assert len(seqs(page)) <= LOG_PAGE
    assert seen == list(range(1, LINES + 1)) and pages == LINES // LOG_PAGE
    assert link(page, "end") is not None  # the last page by links is no tail
    # and backwards from the end
    back = client.get(link(client.get(f"/builds/{long_log}").get_data(as_text=True),
                           "older")).get_data(as_text=True)
    assert seqs(back) == list(range(LINES - 2 * LOG_PAGE + 1, LINES - LOG_PAGE + 1))
    assert link(back, "newer") == f"/builds/{long_log}?after={LINES - LOG_PAGE}#log-heading"


def test_pages_keep_the_level_filter_and_offer_debug(client: Any, long_log: int) -> None:
    html = client.get(f"/builds/{long_log}?level=info").get_data(as_text=True)
    assert '<option value="10">DEBUG</option>' in html
    assert all(n % 10 for n in seqs(html)) and len(seqs(html)) == LOG_PAGE
    assert "level=20" in (link(html, "older") or "")
    debug = client.get(f"/builds/{long_log}?level=DEBUG&after=0").get_data(as_text=True)
    assert seqs(debug)[:11] == list(range(1, 12))  # DEBUG lines included
    assert 'value="10" selected' in debug


def test_bad_log_cursors_are_refused(client: Any, long_log: int) -> None:
    for query in ("after=1&before=5", "after=-1", "before=0", "after=x"):
        assert client.get(f"/builds/{long_log}?{query}").status_code == 400, query
    past = client.get(f"/builds/{long_log}?after={LINES + 50}").get_data(as_text=True)
    assert seqs(past) == [] and "No log records on this page" in past
    assert link(past, "older") is not None


def test_a_followed_tail_gets_only_new_rows_and_never_more_than_a_page(
        client: Any, jc: JobControl, long_log: int) -> None:
    live = f"/builds/{long_log}/live?tail=1&after={LINES}"
    quiet = client.get(live).get_json()
    assert quiet["log_html"].strip() == "" and quiet["after"] == LINES and not quiet["reset"]
    write_lines(jc, long_log, LINES + 1, 3)
    news = client.get(live).get_json()
    assert seqs(news["log_html"]) == [LINES + 1, LINES + 2, LINES + 3]
    assert news["after"] == LINES + 3 and not news["reset"]
    # a burst of more than a page: the page starts over with the log's last page
    write_lines(jc, long_log, LINES + 4, LOG_PAGE + 100)
    burst = client.get(f"/builds/{long_log}/live?tail=1&after={LINES + 3}").get_json()
    last = LINES + 3 + LOG_PAGE + 100
    assert burst["reset"] and seqs(burst["log_html"]) == list(range(last - LOG_PAGE + 1,
                                                                    last + 1))
    # a page that is not the tail sends no rows: it says newer ones exist
    paged = client.get(f"/builds/{long_log}/live?after=500").get_json()
    assert paged["log_html"].strip() == "" and paged["newer"] is True
    assert client.get(f"/builds/{long_log}/live?after={last}").get_json()["newer"] is False


def test_the_raw_log_downloads_as_text(client: Any, jc: JobControl, long_log: int) -> None:
    jc.storage.append_logs(long_log, [LogRecord(utcnow(), logging.ERROR, "job",
                                                "\x1b[31mred\x1b[0m <b>", exception="Trace")])
    response = client.get(f"/builds/{long_log}/log.txt")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.headers["Content-Disposition"] == \
        f'attachment; filename="build-{long_log}.log"'
    lines = response.get_data(as_text=True).splitlines()
    assert len(lines) == LINES + 2
    assert lines[0].endswith("INFO    job: line 1") and "DEBUG   job: line 10" in lines[9]
    assert lines[-2].endswith("ERROR   job: \x1b[31mred\x1b[0m <b>")  # raw, as written
    assert lines[-1] == "Trace"
    errors = client.get(f"/builds/{long_log}/log.txt?level=error").get_data(as_text=True)
    assert errors.count("\n") == 2
    assert client.get("/builds/999999/log.txt").status_code == 404
    html = client.get(f"/builds/{long_log}").get_data(as_text=True)
    assert f'href="/builds/{long_log}/log.txt" id="log-download" download' in html


def test_the_api_reads_a_log_backwards_too(client: Any, long_log: int) -> None:
    api = f"/api/v1/builds/{long_log}/logs"
    end = client.get(f"{api}?end=1&limit=3").get_json()
    assert [r["seq"] for r in end["records"]] == [LINES - 2, LINES - 1, LINES]
    assert end["after"] == LINES  # where a tail goes on from
    page = client.get(f"{api}?before=101&limit=2&level=debug").get_json()
    assert [r["seq"] for r in page["records"]] == [99, 100] and page["after"] == 100
    infos = client.get(f"{api}?before=101&limit=2&level=info").get_json()
    assert [r["seq"] for r in infos["records"]] == [98, 99]  # 100 is a DEBUG line
    assert client.get(f"{api}?after=5&end=1").status_code == 400
    assert client.get(f"{api}?before=0").status_code == 400


def test_ansi_colours_are_spans_and_nothing_else_gets_through(client: Any,
                                                              jc: JobControl) -> None:
    build_id = running_build(jc)
    jc.storage.append_logs(build_id, [LogRecord(
        utcnow(), logging.INFO, "job",
        "\x1b[1;32mPASS\x1b[0m <img src=x onerror=alert(1)> \x1b[31m<script>\x1b[0m")])
    html = client.get(f"/builds/{build_id}").get_data(as_text=True)
    assert ('<span class="ansi-bold ansi-fg-2">PASS</span> &lt;img src=x onerror=alert(1)&gt; '
            '<span class="ansi-fg-1">&lt;script&gt;</span>') in html
    assert "\x1b" not in html and "<script>" not in html


def test_jobs_page_draws_each_jobs_recent_builds(client: Any, jc: JobControl) -> None:
    states = [BuildState.SUCCESS, BuildState.FAILED, BuildState.SKIPPED, BuildState.CANCELLED]
    ids = []
    for n in range(23):
        build_id = running_build(jc)
        jc.storage.finish_build(build_id, states[n % 4])
        ids.append(build_id)
    ids.append(running_build(jc))
    html = client.get("/").get_data(as_text=True)
    row = html[html.index('id="job-talk"'):html.index('id="job-later"')]
    marks = re.findall(r'class="mark state-(\w+)" href="/builds/(\d+)"', row)
    # the 20 newest, oldest first, each linked to its build with its state
    expected = [(states[n % 4].value, str(ids[n])) for n in range(4, 23)] + \
        [("running", str(ids[-1]))]
    assert marks == expected
    later = html[html.index('id="job-later"'):html.index('id="job-broken"')]
    assert 'class="mark' not in later  # never built: an empty strip


def test_jobs_page_flags_a_job_that_does_not_import(client: Any) -> None:
    html = client.get("/").get_data(as_text=True)
    broken = html[html.index('id="job-broken"'):]
    assert "does not import" in broken and "no_such_function" in broken
    talk = html[html.index('id="job-talk"'):html.index('id="job-later"')]
    assert "does not import" not in talk


def test_cancel_records_the_reason_given(client: Any, jc: JobControl) -> None:
    build_id = running_build(jc)
    html = client.get(f"/builds/{build_id}").get_data(as_text=True)
    assert 'name="reason"' in html and "OK stops build" in html
    token = page_token(client, f"/builds/{build_id}")
    response = client.post(f"/builds/{build_id}/cancel",
                           data={"csrf_token": token, "reason": "  wrong\ninput file "})
    assert response.status_code == 303
    build = jc.storage.get_build(build_id)
    assert build.cancel_reason == "cancelled by web: wrong input file"
    done = running_build(jc)
    client.post(f"/builds/{done}/cancel", data={"csrf_token": token})
    assert jc.storage.get_build(done).cancel_reason == "cancelled by web"


def test_error_pages_offer_a_way_back(client: Any) -> None:
    response = client.get("/builds/424242", headers={"Referer": "http://localhost/jobs/talk"})
    html = response.get_data(as_text=True)
    assert response.status_code == 404
    assert '<a href="/jobs/talk" id="back">' in html and 'href="/"' in html
    for referrer in ("http://evil.example/x", "http://localhost//evil.example/",
                     "http://localhost/\\evil.example/", "javascript:alert(1)"):
        elsewhere = client.get("/builds/424242", headers={"Referer": referrer})
        assert 'id="back"' not in elsewhere.get_data(as_text=True), referrer


def test_graph_marks_the_current_job(client: Any) -> None:
    html = client.get("/jobs/later").get_data(as_text=True)
    assert re.search(r'aria-current="page">\s*<g class="node [^"]*current', html)
    assert html.count(" current") == 1
