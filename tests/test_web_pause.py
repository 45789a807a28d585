"""Pausing from the web: the jobs and job pages show a pause, pause/resume are POSTs with
CSRF (pages and API) behind the same auth, a launch of a paused job is refused. SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobcontrol import JobControl
from jobcontrol.storage import Storage
from jobcontrol.web import create_app
from tests.conftest import make_storage
from tests.support import make_project
from tests.web_support import page_token

ROOT = Path(__file__).parent.parent

CONFIG = """\
jobs:
  - {id: fetch, function: jobfuncs.make, args: [fetch]}
  - {id: report, function: jobfuncs.make, args: [report], dependencies: [fetch]}
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def jc(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
       ) -> Iterator[JobControl]:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # a launch runs this checkout's jobcontrol
    storage: Storage = make_storage(request.param, tmp_path, request)
    try:
        yield JobControl.from_config(make_project(tmp_path / "project", CONFIG), storage)
    finally:
        storage.close()


@pytest.fixture
def client(jc: JobControl) -> Any:
    return create_app(jc).test_client()


def test_pause_and_resume_from_the_job_page(client: Any, jc: JobControl) -> None:
    token = page_token(client, "/jobs/fetch")
    html = client.get("/jobs/fetch").get_data(as_text=True)
    assert 'action="/jobs/fetch/pause"' in html and 'action="/jobs/fetch/resume"' not in html
    refused = client.post("/jobs/fetch/pause", data={"reason": "no token"})
    assert refused.status_code == 400 and jc.pauses() == {}  # CSRF
    assert client.get("/jobs/fetch/pause").status_code == 405
    done = client.post("/jobs/fetch/pause", data={"csrf_token": token,
                                                  "reason": "<b>vendor</b> down"})
    assert done.status_code == 303 and done.headers["Location"].endswith("/jobs/fetch")
    pause = jc.pauses()["fetch"]
    assert pause.paused_by == "web" and pause.reason == "<b>vendor</b> down"
    html = client.get("/jobs/fetch").get_data(as_text=True)
    assert "Paused by web since" in html and "&lt;b&gt;vendor&lt;/b&gt; down" in html
    assert 'action="/jobs/fetch/resume"' in html
    assert 'action="/jobs/fetch/launch"' not in html  # no Run button while paused
    jobs = client.get("/").get_data(as_text=True)
    [row] = [part for part in jobs.split("<tr") if 'id="job-fetch"' in part]
    assert 'class="paused"' in row and "&lt;b&gt;vendor" in row
    [other] = [part for part in jobs.split("<tr") if 'id="job-report"' in part]
    assert 'class="paused"' not in other
    assert client.post("/jobs/fetch/resume", data={"csrf_token": token}).status_code == 303
    assert jc.pauses() == {}
    [ended] = jc.pause_history("fetch")
    assert ended.resumed_by == "web"
    assert "resumed" in client.get("/jobs/fetch").get_data(as_text=True)  # the history


def test_a_launch_of_a_paused_job_is_refused(client: Any, jc: JobControl) -> None:
    jc.pause("fetch", reason="maintenance")
    token = page_token(client, "/jobs/fetch/launch")
    assert "maintenance" in client.get("/jobs/report/launch").get_data(as_text=True)
    page = client.post("/jobs/fetch/launch", data={"csrf_token": token})
    assert page.status_code == 409
    assert "paused by" in page.get_data(as_text=True)
    api_token = client.get("/api/v1/csrf").get_json()["csrf_token"]
    api = client.post("/api/v1/jobs/fetch/launch", headers={"X-CSRFToken": api_token})
    assert api.status_code == 409 and "maintenance" in api.get_json()["error"]["message"]
    assert jc.storage.list_builds() == []


def test_a_launch_held_by_a_paused_dependency_says_so(client: Any, jc: JobControl) -> None:
    jc.pause("fetch")
    token = client.get("/api/v1/csrf").get_json()["csrf_token"]
    response = client.post("/api/v1/jobs/report/launch", json={"deps": True},
                           headers={"X-CSRFToken": token})
    assert response.status_code == 202, response.get_json()
    message = response.get_json()["message"]
    assert "held by paused fetch" in message and "up to date" in message
    assert response.get_json()["build"] is None
    assert jc.storage.list_builds() == []


def test_pause_and_resume_from_the_api(client: Any, jc: JobControl) -> None:
    token = client.get("/api/v1/csrf").get_json()["csrf_token"]
    headers = {"X-CSRFToken": token}
    assert client.post("/api/v1/jobs/fetch/pause", json={"reason": 5},
                       headers=headers).status_code == 400
    assert client.post("/api/v1/jobs/nope/pause", headers=headers).status_code == 404
    assert client.post("/api/v1/jobs/fetch/pause", json={"reason": "x"}).status_code == 400
    made = client.post("/api/v1/jobs/fetch/pause", json={"reason": "disk full"},
                       headers=headers).get_json()
    assert made["paused_now"] is True and made["pause"]["reason"] == "disk full"
    again = client.post("/api/v1/jobs/fetch/pause", json={}, headers=headers).get_json()
    assert again["paused_now"] is False and again["pause"]["reason"] == "disk full"
    status = {row["job"]: row for row in client.get("/api/v1/jobs").get_json()}
    assert status["fetch"]["paused"]["by"] == "web"
    ended = client.post("/api/v1/jobs/fetch/resume", headers=headers).get_json()
    assert ended["pause"]["resumed_by"] == "web"
    assert client.post("/api/v1/jobs/fetch/resume", headers=headers).get_json() == {
        "pause": None}


def test_pausing_needs_a_login_when_auth_is_configured(tmp_path: Path, jc: JobControl) -> None:
    config = make_project(tmp_path / "auth", "web:\n  auth: {token: api-token-0123456789}\n"
                          + CONFIG)
    app = create_app(JobControl.from_config(config, jc.storage))
    client = app.test_client()
    assert client.post("/api/v1/jobs/fetch/pause").status_code == 401
    assert client.post("/jobs/fetch/pause").status_code == 302  # to the login form
    bearer = {"Authorization": "Bearer api-token-0123456789"}
    done = client.post("/api/v1/jobs/fetch/pause", headers=bearer)
    assert done.status_code == 200
    assert jc.pauses()["fetch"].paused_by.startswith("web")
