"""History at a glance and live pages through Flask's test client (no JavaScript), on SQLite
and PostgreSQL: the Builds page (filters, search, page numbers, totals), ``GET /api/v1/builds``
with the same filters, the job page's chart, the change token, the config reloaded."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from jobcontrol import JobControl
from jobcontrol.models import Build, BuildState
from jobcontrol.web import create_app
from tests.test_web import CONFIG
from tests.test_web import client as client  # the fixtures
from tests.test_web import config as config
from tests.test_web import jc as jc
from tests.test_web import shared_storage as shared_storage
from tests.test_web import storage_kind as storage_kind

S = BuildState
DASH = "\N{EN DASH}"  # between the first and the last shown


def finished(jc: JobControl, job_id: str, state: BuildState, reason: str | None = None
             ) -> Build:
    build = jc.storage.claim_build(job_id, concurrency=99, definition={"function": "x"},
                                   definition_hash="h", dependency_builds={}, host="h", pid=1)
    if state is S.RUNNING:
        return build
    return jc.storage.finish_build(build.id, state, reason=reason)


def shown_ids(html: str) -> list[int]:
    """The builds listed in the Builds page's table, in order."""
    return [int(n) for n in re.findall(r'<tr data-build="(\d+)"', html)]


@pytest.fixture
def history(jc: JobControl) -> list[Build]:
    plan = [("fetch", S.SUCCESS, None), ("report", S.FAILED, "disk full"),
            ("fetch", S.FAILED, "timeout"), ("slow", S.ABANDONED, None),
            ("report", S.SUCCESS, "nightly"), ("fetch", S.SKIPPED, None)]
    return [finished(jc, *step) for step in plan]


def test_the_builds_page_lists_every_job_newest_first_with_a_total(
        client: Any, history: list[Build]) -> None:
    html = client.get("/builds").get_data(as_text=True)
    assert shown_ids(html) == [b.id for b in reversed(history)]
    assert f"Builds 1{DASH}6 of 6" in html
    assert 'href="/jobs/report"' in html and 'class="badge state-abandoned"' in html


def test_the_builds_page_filters_by_state_job_tag_and_text(client: Any,
                                                           history: list[Build]) -> None:
    def ids(query: str) -> list[int]:
        response = client.get("/builds?" + query)
        assert response.status_code == 200, response.get_data(as_text=True)
        return shown_ids(response.get_data(as_text=True))

    assert ids("state=failed") == [history[2].id, history[1].id]
    assert ids("state=failed&state=abandoned") == [history[3].id, history[2].id, history[1].id]
    assert ids("job=fetch") == [history[5].id, history[2].id, history[0].id]
    assert ids("job=fetch&state=failed") == [history[2].id]
    assert ids("tag=output") == [history[4].id, history[1].id]  # report's tag
    assert ids("tag=output&job=fetch") == []
    assert ids("q=DISK") == [history[1].id]  # the reason, any case
    assert ids("q=slo") == [history[3].id]  # the job id
    assert ids("job=gone") == []  # a job not in the config: none (its builds would show)
    assert ids("since=1h") == [b.id for b in reversed(history)]
    created = history[3].created
    assert created is not None
    assert ids("until=" + created.isoformat().replace("+00:00", "Z")) == [
        history[2].id, history[1].id, history[0].id]
    assert ids("since=" + (created + timedelta(days=1)).isoformat().replace("+00:00", "Z")) == []
    html = client.get("/builds?state=failed&q=disk").get_data(as_text=True)
    assert 'value="failed" checked' in html and 'value="disk"' in html  # shown back


def test_the_builds_page_pages_with_numbers(client: Any, jc: JobControl) -> None:
    made = [finished(jc, "fetch", S.SUCCESS) for _ in range(12)]
    newest = [b.id for b in reversed(made)]
    first = client.get("/builds?limit=5").get_data(as_text=True)
    assert shown_ids(first) == newest[:5]
    assert f"Builds 1{DASH}5 of 12" in first and "page 1 of 3" in first
    assert 'href="/builds?limit=5&amp;page=3"' in first and 'aria-current="page">1<' in first
    last = client.get("/builds?limit=5&page=3").get_data(as_text=True)
    assert shown_ids(last) == newest[10:]
    assert f"Builds 11{DASH}12 of 12" in last and 'rel="prev"' in last and 'rel="next"' not in last
    past = client.get("/builds?limit=5&page=9").get_data(as_text=True)
    assert shown_ids(past) == [] and "No builds on page 9: 12 match, on 3 pages" in past


@pytest.mark.parametrize(("query", "message"), [
    ("state=nope", "state must be one of"), ("page=0", "page must be"),
    ("since=yesterday", "since must be like 24h"), ("q=" + "x" * 201, "q must be at most"),
])
def test_the_builds_page_refuses_bad_filters(client: Any, query: str, message: str) -> None:
    for path in ("/builds?", "/api/v1/builds?"):
        response = client.get(path + query)
        assert response.status_code == 400, path
        assert message in response.get_data(as_text=True), path


def test_recent_failures_are_one_click_from_every_page(client: Any, history: list[Build]
                                                       ) -> None:
    for page in ("/", "/graph", "/jobs/fetch", f"/builds/{history[0].id}"):
        html = client.get(page).get_data(as_text=True)
        link = re.search(r'<a href="(/builds\?state=failed&amp;state=abandoned)">', html)
        assert link, page
    failures = client.get(link.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert shown_ids(failures) == [history[3].id, history[2].id, history[1].id]


def test_the_api_lists_builds_with_the_same_filters_and_a_total(
        client: Any, history: list[Build]) -> None:
    response = client.get("/api/v1/builds?state=failed&state=success&limit=2")
    assert [b["id"] for b in response.get_json()] == [history[4].id, history[2].id]
    assert response.headers["X-Total-Count"] == "4"
    second = client.get("/api/v1/builds?state=failed&state=success&limit=2&page=2")
    assert [b["id"] for b in second.get_json()] == [history[1].id, history[0].id]
    searched = client.get("/api/v1/builds?q=night")
    assert [b["id"] for b in searched.get_json()] == [history[4].id]
    assert searched.headers["X-Total-Count"] == "1"
    of_job = client.get("/api/v1/jobs/fetch/builds?state=failed")
    assert [b["id"] for b in of_job.get_json()] == [history[2].id]
    assert of_job.headers["X-Total-Count"] == "1"
    older = client.get(f"/api/v1/builds?before={history[2].id}")
    assert [b["id"] for b in older.get_json()] == [history[1].id, history[0].id]
    assert client.get("/api/v1/builds?tag=input").headers["X-Total-Count"] == "3"


def test_the_job_page_charts_its_recent_builds_by_state(client: Any, jc: JobControl) -> None:
    states = [S.SUCCESS, S.FAILED, S.CANCELLED, S.SUCCESS, S.RUNNING]
    made = [finished(jc, "fetch", state) for state in states]
    finished(jc, "report", S.ABANDONED)  # another job's: not in fetch's chart
    html = client.get("/jobs/fetch").get_data(as_text=True)
    chart = html.split('<svg class="chart"')[1].split("</svg>")[0]
    bars = re.findall(r'data-build="(\d+)" data-state="(\w+)"><title>([^<]*)</title>', chart)
    assert [(int(i), s) for i, s, _ in bars] == [(b.id, b.state.value) for b in made]
    assert bars[1][2].startswith(f"#{made[1].id} failed, ")  # the hover title
    assert all(f'href="/builds/{b.id}"' in chart for b in made)
    assert "No builds yet" in client.get("/jobs/slow").get_data(as_text=True)


def test_the_change_token_changes_with_what_pages_show(client: Any, jc: JobControl) -> None:
    def token() -> str:
        return str(client.get("/api/v1/changes").get_json()["token"])

    quiet = token()
    assert token() == quiet  # nothing happened: the same
    build = finished(jc, "fetch", S.RUNNING)
    started = token()
    assert started != quiet
    jc.storage.set_progress(build.id, [])
    from jobcontrol.models import ProgressItem
    jc.storage.set_progress(build.id, [ProgressItem((), 1, 10)])
    progressed = token()
    assert progressed != started
    jc.storage.finish_build(build.id, S.SUCCESS)
    done = token()
    assert done != progressed
    jc.pause("report", by="test")
    assert token() != done


def test_a_config_change_shows_without_a_restart(client: Any, config: Path) -> None:
    assert 'id="job-added"' not in client.get("/").get_data(as_text=True)
    before = client.get("/api/v1/changes").get_json()["token"]
    config.write_text(CONFIG + "  - id: added\n    function: jobfuncs.make\n",
                      encoding="utf-8")
    os.utime(config, ns=(1, 1))  # a different stamp, however fast the write was
    assert 'id="job-added"' in client.get("/").get_data(as_text=True)
    assert client.get("/jobs/added").status_code == 200
    assert client.get("/api/v1/changes").get_json()["token"] != before
    # a bad config: the last good one stays, and every page says why
    config.write_text(CONFIG + "  - id: [oops\n", encoding="utf-8")
    os.utime(config, ns=(2, 2))
    html = client.get("/").get_data(as_text=True)
    assert 'class="flash config-error"' in html and str(config.name) in html
    assert 'id="job-added"' in html
    assert client.get("/api/v1/changes").get_json()["config_error"]
    # fixed by removing the job: it goes, and so does the banner
    config.write_text(CONFIG, encoding="utf-8")
    os.utime(config, ns=(3, 3))
    html = client.get("/").get_data(as_text=True)
    assert 'id="job-added"' not in html and "config-error" not in html
    assert client.get("/jobs/added").status_code == 404


def test_each_app_watches_its_own_config(jc: JobControl, config: Path) -> None:
    """Two apps on one JobControl do not fight: each loads the changed file once."""
    first, second = create_app(jc).test_client(), create_app(jc).test_client()
    config.write_text(CONFIG + "  - id: added\n    function: jobfuncs.make\n",
                      encoding="utf-8")
    os.utime(config, ns=(5, 5))
    assert first.get("/jobs/added").status_code == 200
    assert second.get("/jobs/added").status_code == 200
