"""The web UI and JSON API through Flask's test client, on SQLite and PostgreSQL.

Every page and API route: contents, 404s, bad parameters, CSRF refusals, 405 on GET of what
changes state, escaping of markup and terminal sequences, authentication, the secret key,
and launching real background builds.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.security import generate_password_hash

from jobcontrol import JobControl
from jobcontrol.models import BuildState, ExceptionInfo, LogRecord, ProgressItem, StoredValue
from jobcontrol.storage import Storage
from jobcontrol.timeutil import utcnow
from jobcontrol.web import create_app, create_app_from_env
from tests.conftest import make_storage
from tests.support import Cli, make_project
from tests.web_support import csrf_from, page_token

ROOT = Path(__file__).parent.parent
HOSTILE = "<script>alert('x')</script>"
ANSI = "\x1b[31mred alert\x1b[0m and \x1b]0;title\x07bell"

CONFIG = f"""\
jobs:
  - id: fetch
    title: "Fetch {HOSTILE}"
    function: jobfuncs.make
    args: [fetch]
    tags: [input, "{HOSTILE}"]
  - id: report
    title: Report
    function: jobfuncs.make
    args: [report]
    dependencies: [fetch]
    tags: [output]
  - id: slow
    function: jobfuncs.sleeper
    kwargs: {{seconds: 30}}
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def shared_storage(storage_kind: str, tmp_path: Path, request: pytest.FixtureRequest
                   ) -> Iterator[Storage]:
    opened = make_storage(storage_kind, tmp_path, request)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # launched builds run `python -m jobcontrol`: this checkout's
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    return make_project(tmp_path / "project", CONFIG)


@pytest.fixture
def jc(config: Path, shared_storage: Storage) -> JobControl:
    return JobControl.from_config(config, shared_storage)


@pytest.fixture
def client(jc: JobControl) -> Any:
    return create_app(jc).test_client()


def hostile_build(jc: JobControl, state: BuildState = BuildState.FAILED) -> int:
    """A build of fetch whose log, progress, exception and return value are hostile."""
    storage = jc.storage
    build = storage.claim_build("fetch", concurrency=9, definition={"function": "x"},
                                definition_hash="h", dependency_builds={}, host="h", pid=1)
    storage.append_logs(build.id, [
        LogRecord(utcnow(), logging.INFO, "jobfuncs", f"hello {HOSTILE}"),
        LogRecord(utcnow(), logging.WARNING, "stderr", ANSI),
        LogRecord(utcnow(), logging.ERROR, "jobfuncs", "it broke", exception=f"Trace {HOSTILE}"),
    ])
    storage.set_progress(build.id, [ProgressItem(("files", HOSTILE), 2, 4, f"msg {HOSTILE}")])
    if state is not BuildState.RUNNING:
        storage.finish_build(build.id, state, reason=f"reason {HOSTILE}",
                             result=StoredValue("json", json.dumps({"html": HOSTILE})),
                             exception=ExceptionInfo("ValueError", HOSTILE, f"tb {ANSI}"))
    return build.id


def assert_clean(html: str) -> None:
    assert "<script>alert" not in html
    assert "\x1b" not in html and "\x07" not in html


# -- pages -----------------------------------------------------------------------------------


def test_jobs_page_lists_every_job_escaped(client: Any, jc: JobControl) -> None:
    build_id = hostile_build(jc, BuildState.RUNNING)
    response = client.get("/")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    for job_id in ("fetch", "report", "slow"):
        assert f'id="job-{job_id}"' in html
    assert "Fetch &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "never built successfully" in html  # report's outdated reason, shown inline
    assert f'href="/builds/{build_id}"' in html and 'value="50"' in html  # running, 2 of 4
    assert_clean(html)
    filtered = client.get("/?tag=output").get_data(as_text=True)
    assert 'id="job-report"' in filtered and 'id="job-fetch"' not in filtered
    assert "Content-Security-Policy" in response.headers
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"


def test_job_page_shows_definition_graph_and_paged_builds(client: Any, jc: JobControl) -> None:
    ids = [hostile_build(jc, BuildState.SUCCESS) for _ in range(3)]
    html = client.get("/jobs/fetch?limit=2").get_data(as_text=True)
    assert "jobfuncs.make(tag" in html and "Returns what it got" in html  # signature, doc
    assert "function: jobfuncs.make" in html  # the definition as YAML
    assert 'href="/jobs/report"' in html  # a dependent, linked
    assert "<svg class=\"graph\"" in html and html.count('class="node ') == 2
    table = html.split('id="builds-table"')[1]  # the chart above links every build
    assert f'href="/builds/{ids[2]}"' in table and f'href="/builds/{ids[0]}"' not in table
    assert f"before={ids[1]}" in html  # the older page
    older = client.get(f"/jobs/fetch?limit=2&before={ids[1]}").get_data(as_text=True)
    assert f'href="/builds/{ids[0]}"' in older
    none = client.get("/jobs/fetch?state=failed").get_data(as_text=True)
    assert "No builds in these states" in none
    assert_clean(html)


def test_build_page_shows_everything_escaped(client: Any, jc: JobControl) -> None:
    build_id = hostile_build(jc)
    response = client.get(f"/builds/{build_id}")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    # the colour drawn as a class; the other sequence shown, not acted on
    shown = '<span class="ansi-fg-1">red alert</span> and \\x1b]0;title\\x07bell'
    assert "hello &lt;script&gt;" in html and shown in html
    assert "Trace &lt;script&gt;" in html
    assert "tb \\x1b[31mred alert\\x1b[0m and \\x1b]0;title\\x07bell" in html  # traceback
    assert "&#34;html&#34;: &#34;&lt;script&gt;" in html  # the return value
    assert "reason &lt;script&gt;" in html and "ValueError" in html
    assert 'max="100" value="50"' in html  # the progress bar
    assert f'action="/builds/{build_id}/delete"' in html
    assert_clean(html)
    only_errors = client.get(f"/builds/{build_id}?level=error").get_data(as_text=True)
    assert "it broke" in only_errors and "hello &lt;script" not in only_errors


def test_live_endpoint_tails_the_log_with_rendered_rows(client: Any, jc: JobControl) -> None:
    build_id = hostile_build(jc, BuildState.RUNNING)
    data = client.get(f"/builds/{build_id}/live?after=1&tail=1").get_json()
    assert data["state"] == "running" and data["finished"] is False and data["after"] == 3
    assert 'data-seq="2"' in data["log_html"] and 'data-seq="1"' not in data["log_html"]
    assert "state-running" in data["summary_html"] and "Cancel" in data["actions_html"]
    assert 'value="50"' in data["progress_html"]
    for part in ("log_html", "summary_html", "actions_html", "progress_html"):
        assert_clean(data[part])
    jc.storage.finish_build(build_id, BuildState.SUCCESS)
    done = client.get(f"/builds/{build_id}/live?after=3&tail=1").get_json()
    assert done["finished"] is True and done["log_html"].strip() == ""


def test_launch_and_graph_pages(client: Any) -> None:
    html = client.get("/jobs/report/launch").get_data(as_text=True)
    assert 'name="deps"' in html and 'name="depending"' in html and 'name="if_outdated"' in html
    assert "never built successfully" in html  # the plan, and why
    graph = client.get("/graph").get_data(as_text=True)
    assert graph.count('class="node ') == 3 and "state-not_built outdated" in graph


@pytest.mark.parametrize("path", ["/jobs/nope", "/jobs/nope/launch", "/builds/999",
                                  "/builds/999/live", "/no/such/page"])
def test_pages_404(client: Any, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert "<h1>404</h1>" in response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/jobs/fetch?limit=abc", "/jobs/fetch?before=0",
                                  "/jobs/fetch?state=bogus", "/builds/1?level=LOUD",
                                  "/builds/1/live?after=-2"])
def test_pages_bad_parameters(client: Any, jc: JobControl, path: str) -> None:
    hostile_build(jc)
    response = client.get(path)
    assert response.status_code == 400, response.get_data(as_text=True)


# -- the JSON API ----------------------------------------------------------------------------


def test_api_reads_use_the_cli_shapes(client: Any, jc: JobControl, config: Path) -> None:
    build_id = hostile_build(jc)
    cli = Cli(config, jc.storage)
    assert client.get("/api/v1/jobs").get_json() == json.loads(
        cli("status", "--format", "json").output)
    assert client.get("/api/v1/builds").get_json() == json.loads(
        cli("builds", "--format", "json").output)
    detail = client.get(f"/api/v1/builds/{build_id}").get_json()
    assert detail == json.loads(cli("show", str(build_id), "--format", "json").output)
    job = client.get("/api/v1/jobs/fetch").get_json()
    expected = json.loads(cli("job", "fetch", "--format", "json").output)
    assert {k: job[k] for k in expected} == expected
    assert job["status"]["job"] == "fetch" and job["import_error"] is None
    logs = client.get(f"/api/v1/builds/{build_id}/logs").get_json()
    lines = [json.loads(line) for line in cli("logs", str(build_id), "--format",
                                               "json").output.splitlines()]
    assert logs["records"] == lines and logs["finished"] is True and logs["after"] == 3
    tail = client.get(f"/api/v1/builds/{build_id}/logs?after=2&level=error").get_json()
    assert [r["seq"] for r in tail["records"]] == [3]
    progress = client.get(f"/api/v1/builds/{build_id}/progress").get_json()
    assert progress["percent"] == 50 and progress["items"][0]["group"] == ["files", HOSTILE]
    assert client.get("/api/v1/graph").get_json()["report"] == {
        "dependencies": ["fetch"], "last_state": "not_built", "outdated": True}
    assert client.get("/api/v1/jobs?tag=output").get_json()[0]["job"] == "report"
    assert [b["id"] for b in client.get("/api/v1/jobs/fetch/builds?state=failed").get_json()
            ] == [build_id]
    assert client.get("/api/v1/builds?job=report").get_json() == []


@pytest.mark.parametrize("path", ["/api/v1/jobs/nope", "/api/v1/jobs/nope/builds",
                                  "/api/v1/builds/999", "/api/v1/builds/999/logs",
                                  "/api/v1/builds/999/progress", "/api/v1/builds?job=nope",
                                  "/api/v1/nothing"])
def test_api_404_as_json(client: Any, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.get_json()["error"]["status"] == 404
    assert response.get_json()["error"]["message"]


@pytest.mark.parametrize(("query", "message"), [
    ("limit=abc", "limit must be a whole number"),
    ("limit=0", "limit must be from 1 to 500"),
    ("limit=501", "limit must be from 1 to 500"),
    ("before=-1", "before must be at least 1"),
    ("state=bogus", "state must be one of queued"),
])
def test_api_bad_parameters(client: Any, query: str, message: str) -> None:
    response = client.get(f"/api/v1/builds?{query}")
    assert response.status_code == 400
    assert message in response.get_json()["error"]["message"]


def test_api_bad_log_parameters(client: Any, jc: JobControl) -> None:
    build_id = hostile_build(jc)
    for query in ("after=x", "level=LOUD", "limit=0"):
        response = client.get(f"/api/v1/builds/{build_id}/logs?{query}")
        assert response.status_code == 400, query


@pytest.mark.parametrize("path", ["/api/v1/jobs/fetch/launch", "/api/v1/builds/1/cancel",
                                  "/api/v1/builds/1/delete", "/builds/1/cancel",
                                  "/builds/1/delete"])
def test_get_of_a_state_change_is_405(client: Any, jc: JobControl, path: str) -> None:
    hostile_build(jc)
    response = client.get(path)
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]
    assert jc.storage.list_builds()[0].state is BuildState.FAILED  # nothing happened


@pytest.mark.parametrize("path", ["/api/v1/jobs/fetch/launch", "/api/v1/builds/1/cancel",
                                  "/api/v1/builds/1/delete", "/jobs/fetch/launch",
                                  "/builds/1/cancel", "/builds/1/delete"])
@pytest.mark.parametrize("token", [None, "forged"])
def test_posts_without_a_valid_csrf_token_are_refused(client: Any, jc: JobControl, path: str,
                                                      token: str | None) -> None:
    build_id = hostile_build(jc, BuildState.RUNNING)
    client.get("/")  # a session exists, so only the token is missing or wrong
    headers = {"X-CSRFToken": token} if token else {}
    response = client.post(path, data={"deps": "1"}, headers=headers)
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)
    assert [b.id for b in jc.storage.list_builds()] == [build_id]
    assert jc.storage.get_build(build_id).state is BuildState.RUNNING


def test_api_delete_with_the_csrf_header(client: Any, jc: JobControl) -> None:
    token = client.get("/api/v1/csrf").get_json()["csrf_token"]
    done, running = hostile_build(jc), hostile_build(jc, BuildState.RUNNING)
    response = client.post(f"/api/v1/builds/{running}/delete", headers={"X-CSRFToken": token})
    assert response.status_code == 409 and "cannot be deleted" in response.get_json()[
        "error"]["message"]
    response = client.delete(f"/api/v1/builds/{done}", headers={"X-CSRFToken": token})
    assert response.status_code == 200 and response.get_json()["deleted"]["id"] == done
    assert client.get(f"/api/v1/builds/{done}").status_code == 404


def test_page_delete_redirects_to_the_job(client: Any, jc: JobControl) -> None:
    build_id = hostile_build(jc)
    token = page_token(client, f"/builds/{build_id}")
    response = client.post(f"/builds/{build_id}/delete", data={"csrf_token": token})
    assert response.status_code == 303 and response.headers["Location"].endswith("/jobs/fetch")
    assert jc.storage.list_builds() == []


# -- cancel ----------------------------------------------------------------------------------


def test_cancel_a_launched_build_from_the_api(client: Any, jc: JobControl) -> None:
    token = client.get("/api/v1/csrf").get_json()["csrf_token"]
    headers = {"X-CSRFToken": token}
    started = client.post("/api/v1/jobs/slow/launch", headers=headers).get_json()["build"]
    response = client.post(f"/api/v1/builds/{started['id']}/cancel",
                           json={"reason": "wrong input"}, headers=headers)
    assert response.status_code == 200, response.get_json()
    build = wait_finished(jc, started["id"])
    assert build.state is BuildState.CANCELLED
    assert build.reason == "cancelled by web: wrong input"
    again = client.post(f"/api/v1/builds/{started['id']}/cancel", headers=headers)
    assert again.status_code == 409 and "nothing to cancel" in again.get_json()["error"][
        "message"]
    bad = client.post(f"/api/v1/builds/{started['id']}/cancel", json={"reason": 5},
                      headers=headers)
    assert bad.status_code == 400
    assert client.post("/api/v1/builds/999/cancel", headers=headers).status_code == 404


def test_cancel_button_asks_the_runner_to_stop(client: Any, jc: JobControl) -> None:
    build_id = hostile_build(jc, BuildState.RUNNING)  # a runner elsewhere: only asked
    token = page_token(client, f"/builds/{build_id}")
    page = client.post(f"/builds/{build_id}/cancel", data={"csrf_token": token})
    assert page.status_code == 303 and page.headers["Location"].endswith(f"/builds/{build_id}")
    html = client.get(f"/builds/{build_id}").get_data(as_text=True)
    assert f"cancel of build #{build_id} requested" in html
    done = hostile_build(jc)
    refused = client.post(f"/builds/{done}/cancel", data={"csrf_token": token})
    assert refused.status_code == 409 and "nothing to cancel" in refused.get_data(as_text=True)


# -- launching real builds in the background -------------------------------------------------


def wait_finished(jc: JobControl, build_id: int, seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        build = jc.storage.get_build(build_id)
        if build.state.finished:
            return build
        time.sleep(0.05)
    raise AssertionError(f"build {build_id} did not finish")


def test_api_launch_with_deps_runs_in_the_background(client: Any, jc: JobControl) -> None:
    token = client.get("/api/v1/csrf").get_json()["csrf_token"]
    response = client.post("/api/v1/jobs/report/launch", json={"deps": True},
                           headers={"X-CSRFToken": token})
    assert response.status_code == 202, response.get_json()
    data = response.get_json()
    assert data["build"]["job"] == "fetch" and data["pid"] > 0  # the first build it made
    assert wait_finished(jc, data["build"]["id"]).state is BuildState.SUCCESS
    deadline = time.monotonic() + 30
    while not jc.storage.list_builds("report") and time.monotonic() < deadline:
        time.sleep(0.05)
    [report] = jc.storage.list_builds("report")
    assert wait_finished(jc, report.id).state is BuildState.SUCCESS
    assert report.dependency_builds == {"fetch": data["build"]["id"]}


def test_launch_refusals_are_clear(client: Any, jc: JobControl) -> None:
    token = client.get("/api/v1/csrf").get_json()["csrf_token"]
    headers = {"X-CSRFToken": token}
    response = client.post("/api/v1/jobs/report/launch", json={}, headers=headers)
    assert response.status_code == 409
    assert "dependencies not met for 'report'" in response.get_json()["error"]["message"]
    assert client.post("/api/v1/jobs/nope/launch", headers=headers).status_code == 404
    assert client.post("/api/v1/jobs/fetch/launch", data="[1]", headers=headers,
                       content_type="application/json").status_code == 400
    first = client.post("/api/v1/jobs/fetch/launch", headers=headers).get_json()["build"]
    wait_finished(jc, first["id"])
    up_to_date = client.post("/api/v1/jobs/fetch/launch", json={"if_outdated": True},
                             headers=headers)
    assert up_to_date.status_code == 202 and up_to_date.get_json()["build"] is None
    assert "up to date" in up_to_date.get_json()["message"]


def test_page_launch_opens_this_launchs_run(client: Any, jc: JobControl) -> None:
    token = page_token(client)
    response = client.post("/jobs/report/launch", data={"csrf_token": token, "deps": "1"})
    assert response.status_code == 303
    first = jc.storage.get_build(1)
    assert first.job_id == "fetch" and first.run_id is not None
    assert response.headers["Location"].endswith(f"/runs/{first.run_id}")
    wait_finished(jc, 1)
    deadline = time.monotonic() + 30
    while not jc.storage.list_builds("report") and time.monotonic() < deadline:
        time.sleep(0.05)
    [report] = jc.storage.list_builds("report")
    assert report.run_id == first.run_id  # the run page shows the target's build too
    page = client.get(f"/runs/{first.run_id}").get_data(as_text=True)
    assert 'href="/builds/1"' in page and f'href="/builds/{report.id}"' in page
    assert "data-changes=" in page  # a live page: it follows the builds as they come
    wait_finished(jc, report.id)


def test_a_build_followed_to_its_target_still_finds_it(client: Any, jc: JobControl) -> None:
    jc.build("fetch")
    jc.build("report")
    live = client.get("/builds/1/live?then=report").get_json()
    assert live["next_url"] == "/builds/2"


def test_launch_refused_as_running_links_the_running_build(client: Any,
                                                          jc: JobControl) -> None:
    headers = {"X-CSRFToken": client.get("/api/v1/csrf").get_json()["csrf_token"]}
    started = client.post("/api/v1/jobs/slow/launch", headers=headers).get_json()["build"]
    try:
        again = client.post("/api/v1/jobs/slow/launch", headers=headers)
        assert again.status_code == 409
        assert again.get_json()["error"]["running"] == [started["id"]]
        assert f"build {started['id']}" in again.get_json()["error"]["message"]
        token = page_token(client)
        page = client.post("/jobs/slow/launch", data={"csrf_token": token})
        assert page.status_code == 409
        assert f'<a href="/builds/{started["id"]}">build #{started["id"]}</a>' in \
            page.get_data(as_text=True)
    finally:
        client.post(f"/api/v1/builds/{started['id']}/cancel", headers=headers)
        wait_finished(jc, started["id"])


def test_launch_page_heading_and_plan_follow_what_is_ticked(client: Any) -> None:
    html = client.get("/jobs/report/launch").get_data(as_text=True)
    assert "What Run would do now: report with deps</h2>" in html
    assert 'name="deps" value="1" checked>' in html and "fetch" in html.split('id="plan"')[1]
    token = page_token(client)
    preview = client.post("/jobs/report/launch", data={"csrf_token": token, "preview": "1"})
    assert preview.status_code == 303 and "csrf" not in preview.headers["Location"]
    alone = client.get(preview.headers["Location"]).get_data(as_text=True)
    assert "What Run would do now: report alone</h2>" in alone
    assert 'name="deps" value="1">' in alone
    assert '/jobs/fetch"' not in alone.split('id="plan"')[1]  # fetch is not in the plan
    both = client.post("/jobs/report/launch", data={
        "csrf_token": token, "preview": "1", "depending": "1", "if_outdated": "1"})
    html = client.get(both.headers["Location"]).get_data(as_text=True)
    assert "report with depending, if outdated</h2>" in html


def test_rerun_button_builds_the_job_again_with_its_parameters(client: Any,
                                                              jc: JobControl) -> None:
    jc.build("fetch")
    html = client.get("/builds/1").get_data(as_text=True)
    assert 'action="/builds/1/rerun"' in html
    token = csrf_from(html)
    assert client.post("/builds/1/rerun").status_code == 400  # no CSRF token: refused
    response = client.post("/builds/1/rerun", data={"csrf_token": token})
    assert response.status_code == 303
    rerun = jc.storage.get_build(2)
    assert rerun.job_id == "fetch" and rerun.run_id is not None
    assert response.headers["Location"].endswith(f"/runs/{rerun.run_id}")
    assert wait_finished(jc, 2).state is BuildState.SUCCESS
    assert client.post("/builds/99/rerun", data={"csrf_token": token}).status_code == 404


def test_retry_button_records_retry_of_and_is_offered_once(client: Any,
                                                          jc: JobControl) -> None:
    failed = hostile_build(jc)  # from before runs: the retry opens a run of its own
    html = client.get(f"/builds/{failed}").get_data(as_text=True)
    assert f'action="/builds/{failed}/retry"' in html
    token = csrf_from(html)
    response = client.post(f"/builds/{failed}/retry", data={"csrf_token": token})
    assert response.status_code == 303, response.get_data(as_text=True)
    retry = jc.storage.get_retry(failed)
    assert retry is not None and retry.job_id == "fetch" and retry.run_id is not None
    assert response.headers["Location"].endswith(f"/runs/{retry.run_id}")
    assert wait_finished(jc, retry.id).state is BuildState.SUCCESS
    assert "/retry" not in client.get(f"/builds/{failed}").get_data(as_text=True)
    assert "/retry" not in client.get(f"/builds/{retry.id}").get_data(as_text=True)
    again = client.post(f"/builds/{failed}/retry", data={"csrf_token": token})
    assert again.status_code == 409
    assert f"retried already, by build {retry.id}" in again.get_data(as_text=True)
    headers = {"X-CSRFToken": token}
    assert client.post(f"/builds/{retry.id}/retry", headers=headers).status_code == 409
    assert len(jc.storage.list_builds("fetch")) == 2


def test_a_build_page_links_the_builds_that_consumed_it(client: Any, jc: JobControl) -> None:
    jc.build("report", deps=True)  # fetch #1, report #2 consuming it
    jc.build("fetch")  # #3: consumed by none yet
    html = client.get("/builds/1").get_data(as_text=True)
    consumed_by = html.split('<ul id="consumed-by">')[1].split("</ul>")[0]
    assert 'href="/jobs/report"' in consumed_by and 'href="/builds/2"' in consumed_by
    assert "Consumed by" not in client.get("/builds/2").get_data(as_text=True)
    assert "Consumed by" not in client.get("/builds/3").get_data(as_text=True)


def test_api_rerun_and_retry(client: Any, jc: JobControl) -> None:
    headers = {"X-CSRFToken": client.get("/api/v1/csrf").get_json()["csrf_token"]}
    failed = hostile_build(jc)
    retried = client.post(f"/api/v1/builds/{failed}/retry", headers=headers)
    assert retried.status_code == 202, retried.get_json()
    retry = retried.get_json()["build"]
    assert retry["retry_of"] == failed and retry["job"] == "fetch"
    wait_finished(jc, retry["id"])
    refused = client.post(f"/api/v1/builds/{failed}/retry", headers=headers)
    assert refused.status_code == 409
    assert "retried already" in refused.get_json()["error"]["message"]
    rerun = client.post(f"/api/v1/builds/{failed}/rerun", headers=headers)
    assert rerun.status_code == 202
    again = rerun.get_json()["build"]
    assert again["retry_of"] is None and again["run"] not in (None, retry["run"])
    wait_finished(jc, again["id"])
    assert client.post("/api/v1/builds/99/rerun", headers=headers).status_code == 404


def test_launch_needs_a_storage_other_processes_see(config: Path) -> None:
    jc = JobControl.from_config(config, "memory://")
    client = create_app(jc).test_client()
    token = client.get("/api/v1/csrf").get_json()["csrf_token"]
    response = client.post("/api/v1/jobs/fetch/launch", headers={"X-CSRFToken": token})
    assert response.status_code == 400
    assert "memory://" in response.get_json()["error"]["message"]


# -- who may connect -------------------------------------------------------------------------


def test_without_auth_only_loopback_is_served(jc: JobControl) -> None:
    remote = {"REMOTE_ADDR": "192.0.2.7"}
    client = create_app(jc).test_client()
    response = client.get("/", environ_base=remote)
    assert response.status_code == 403 and "no authentication" in response.get_data(
        as_text=True)
    assert client.get("/api/v1/jobs", environ_base=remote).status_code == 403
    assert client.get("/", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
    insecure = create_app(jc, insecure_no_auth=True).test_client()
    assert insecure.get("/", environ_base=remote).status_code == 200


AUTH = f"""\
web:
  secret_key: 0123456789abcdef0123
  auth:
    users:
      alice: {generate_password_hash("correct horse", method="pbkdf2:sha256:1000")}
    token: api-token-0123456789
jobs:
  - {{id: fetch, function: jobfuncs.make, args: [fetch]}}
"""


@pytest.fixture
def auth_client(tmp_path: Path, shared_storage: Storage) -> Any:
    config = make_project(tmp_path / "auth", AUTH)
    app = create_app(JobControl.from_config(config, shared_storage))
    assert app.secret_key == "0123456789abcdef0123"
    return app.test_client()


def test_login_is_required_when_auth_is_configured(auth_client: Any) -> None:
    remote = {"REMOTE_ADDR": "192.0.2.7"}  # auth configured: remote clients are welcome
    response = auth_client.get("/jobs/fetch", environ_base=remote)
    assert response.status_code == 302 and "/login?next=/jobs/fetch" in response.headers[
        "Location"]
    assert auth_client.get("/api/v1/jobs", environ_base=remote).status_code == 401
    login = auth_client.get("/login", environ_base=remote)
    token = csrf_from(login.get_data(as_text=True))
    wrong = auth_client.post("/login?next=/jobs/fetch", environ_base=remote,
                             data={"csrf_token": token, "user": "alice", "password": "nope"})
    assert wrong.status_code == 401 and "wrong user name or password" in wrong.get_data(
        as_text=True)
    no_csrf = auth_client.post("/login", environ_base=remote,
                               data={"user": "alice", "password": "correct horse"})
    assert no_csrf.status_code == 400
    evil = auth_client.post("/login?next=https://evil.example/", environ_base=remote,
                            data={"csrf_token": token, "user": "alice",
                                  "password": "correct horse"})
    assert evil.status_code == 302 and evil.headers["Location"] == "/"
    assert auth_client.get("/jobs/fetch", environ_base=remote).status_code == 200
    page = auth_client.get("/", environ_base=remote).get_data(as_text=True)
    assert "alice" in page and "log out" in page
    out = auth_client.post("/logout", environ_base=remote, data={"csrf_token": csrf_from(page)})
    assert out.status_code == 302
    assert auth_client.get("/api/v1/jobs", environ_base=remote).status_code == 401


def test_bearer_token_for_api_clients(auth_client: Any) -> None:
    good = {"Authorization": "Bearer api-token-0123456789"}
    assert auth_client.get("/api/v1/jobs", headers=good).status_code == 200
    bad = {"Authorization": "Bearer api-token-wrong"}
    assert auth_client.get("/api/v1/jobs", headers=bad).status_code == 401
    # no CSRF token needed: no browser sends this header by itself
    response = auth_client.post("/api/v1/builds/999/delete", headers=good)
    assert response.status_code == 404
    token_login = auth_client.post("/login", data={
        "csrf_token": csrf_from(auth_client.get("/login").get_data(as_text=True)),
        "user": "", "password": "api-token-0123456789"})
    assert token_login.status_code == 302
    assert auth_client.get("/").status_code == 200


# -- the secret key and the app factories ----------------------------------------------------


def test_generated_secret_key_is_kept_in_a_file_not_the_storage(
        config: Path, shared_storage: Storage, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    first = create_app(JobControl.from_config(config, shared_storage))
    second = create_app(JobControl.from_config(config, shared_storage))
    assert len(first.secret_key) >= 32 and first.secret_key == second.secret_key
    key_file = tmp_path / "state" / "jobcontrol" / "web-secret-key"
    assert key_file.read_text() == first.secret_key and key_file.stat().st_mode & 0o077 == 0
    assert shared_storage.get_setting("web.secret_key") is None


def test_create_app_from_env(config: Path, shared_storage: Storage,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBCONTROL_CONFIG", str(config))
    monkeypatch.setenv("JOBCONTROL_STORAGE", shared_storage.url)
    app = create_app_from_env()
    assert [row["job"] for row in app.test_client().get("/api/v1/jobs").get_json()] == [
        "fetch", "report", "slow"]
    remote = {"REMOTE_ADDR": "192.0.2.7"}
    assert app.test_client().get("/", environ_base=remote).status_code == 403
    monkeypatch.setenv("JOBCONTROL_WEB_INSECURE_NO_AUTH", "1")
    assert create_app_from_env().test_client().get("/", environ_base=remote).status_code == 200


def test_web_command_refuses_a_remote_bind_without_auth(config: Path) -> None:
    result = Cli(config, "memory://")("web", "--host", "0.0.0.0", code=2)
    assert "refusing to serve 0.0.0.0 without authentication" in result.output
    assert "--insecure-no-auth" in result.output


def test_the_debugger_is_never_on(client: Any) -> None:
    assert client.application.debug is False
    response = client.get("/?__debugger__=yes&cmd=resource&f=debugger.js")
    assert "Werkzeug Debugger" not in response.get_data(as_text=True)


def test_cli_does_not_import_flask() -> None:
    import subprocess
    import sys

    code = ("import sys; from jobcontrol.cli import main; "
            "assert 'flask' not in sys.modules, 'flask imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_gunicorn_serves_create_app_from_env(config: Path, tmp_path: Path) -> None:
    """The README's gunicorn command, for real."""
    import shutil
    import socket
    import subprocess
    import sys
    import urllib.request

    if shutil.which("gunicorn") is None and not Path(sys.executable).with_name(
            "gunicorn").exists():
        pytest.skip("gunicorn is not installed (pip install '.[test]')")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JOBCONTROL_CONFIG": str(config),
           "JOBCONTROL_STORAGE": f"sqlite:///{tmp_path / 'g.db'}"}
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}",
         "jobcontrol.web:create_app_from_env()"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/jobs") as reply:
                    jobs = json.loads(reply.read())
                break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not answer"
                assert process.poll() is None, "gunicorn exited"
                time.sleep(0.2)
        assert [row["job"] for row in jobs] == ["fetch", "report", "slow"]
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_jobs_page_shows_schedule_and_freshness(tmp_path: Path, shared_storage: Storage,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    config = make_project(tmp_path / "scheduled", """\
jobs:
  - id: hourly
    function: jobfuncs.make
    args: [hourly]
    isolation: inline
    schedule: "0 * * * *"
    timezone: Europe/Berlin
    max_age: 2h
""")
    jc = JobControl.from_config(config, shared_storage)
    client = create_app(jc).test_client()
    html = client.get("/").get_data(as_text=True)
    next_run = jc.status()[0].next_run
    assert next_run is not None
    assert f"next <time class=\"when\" datetime=\"{next_run.strftime('%Y-%m-%dT%H:%M')}" in html
    assert 'title="0 * * * * (Europe/Berlin)"' in html
    assert "stale: never built successfully (max_age 2h)" in html
    monkeypatch.setattr(jc.storage, "now", lambda: next_run)  # run-due dry-runs what is to come
    report = jc.run_due()
    assert len(report.started) == 1
    html = client.get("/").get_data(as_text=True)
    assert f">{next_run.strftime('%Y-%m-%d %H:%M')}:00</time>: started" in html
    assert "stale:" not in html
    [row] = client.get("/api/v1/jobs").get_json()
    assert row["last_scheduled"]["outcome"] == "started"
