"""Runs and parameters in the web UI and the JSON API, on SQLite and PostgreSQL: the runs
pages, the build page's link to its run, ``/api/v1/runs``, the launch form's parameter
inputs, and real launches recorded as ``web`` (the form) or ``api`` (JSON) runs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobcontrol import JobControl
from jobcontrol.models import Build, RunTrigger
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
  - id: daily
    function: runjobs.typed
    params:
      day: {type: date, default: 2026-12-01}
      limit: {type: int, default: 10}
      loud: {type: bool, default: false}
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    opened = make_storage(request.param, tmp_path, request)
    yield opened
    opened.close()


@pytest.fixture
def jc(tmp_path: Path, storage: Storage, monkeypatch: pytest.MonkeyPatch) -> JobControl:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # launched builds: this checkout's
    config = make_project(tmp_path / "project", CONFIG, modules=("runjobs",))
    return JobControl.from_config(config, storage)


@pytest.fixture
def client(jc: JobControl) -> Any:
    return create_app(jc).test_client()


def wait_run_done(jc: JobControl, count: int = 1, seconds: float = 30) -> list[Build]:
    """The builds of the latest run once ``count`` of them have finished."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        runs = jc.runs(limit=1)
        if runs and len(runs[0].builds) >= count and all(
                b.state.finished for b in runs[0].builds):
            return list(runs[0].builds)
        time.sleep(0.05)
    raise AssertionError("the launched run did not finish")


def test_runs_pages_and_api(client: Any, jc: JobControl) -> None:
    jc.build("report", deps=True, trigger="cli")
    [view] = jc.runs()
    html = client.get("/runs").get_data(as_text=True)
    assert f'href="/runs/{view.run.id}"' in html and "state-success" in html
    page = client.get(f"/runs/{view.run.id}").get_data(as_text=True)
    for build in view.builds:
        assert f'href="/builds/{build.id}"' in page
    assert 'href="/jobs/fetch"' in page and 'href="/jobs/report"' in page
    build_page = client.get(f"/builds/{view.builds[0].id}").get_data(as_text=True)
    assert f'href="/runs/{view.run.id}"' in build_page
    assert client.get("/runs/99").status_code == 404
    assert 'href="/runs?job=fetch"' in client.get("/jobs/fetch").get_data(as_text=True)
    assert f'href="/runs/{view.run.id}"' in client.get("/runs?job=fetch").get_data(as_text=True)
    assert "/runs/" not in client.get("/runs?job=daily").get_data(as_text=True).split(
        "<h1>")[1]
    assert client.get("/runs?job=nope").status_code == 404
    listed = client.get("/api/v1/runs").get_json()
    assert [r["id"] for r in listed] == [view.run.id]
    assert listed[0]["state"] == "success" and listed[0]["trigger"] == "cli"
    assert [b["job"] for b in listed[0]["builds"]] == ["fetch", "report"]
    one = client.get(f"/api/v1/runs/{view.run.id}").get_json()
    assert [b["run"] for b in one["builds"]] == [view.run.id] * 2
    assert client.get("/api/v1/runs?job=daily").get_json() == []
    missing = client.get("/api/v1/runs/99")
    assert missing.status_code == 404
    assert missing.get_json()["error"]["message"] == "run 99 not found"


def test_the_launch_form_has_an_input_per_parameter(client: Any) -> None:
    html = client.get("/jobs/daily/launch").get_data(as_text=True)
    assert 'name="param.day" type="date" value="2026-12-01"' in html
    assert 'name="param.limit" type="number" value="10"' in html
    assert '<select name="param.loud">' in html
    assert "param." not in client.get("/jobs/fetch/launch").get_data(as_text=True)


def test_the_launch_forms_preview_keeps_the_values_typed(client: Any) -> None:
    token = page_token(client, "/jobs/daily/launch")
    preview = client.post("/jobs/daily/launch", data={
        "csrf_token": token, "preview": "1", "param.day": "2020-05-17", "param.limit": "3",
        "param.loud": "true"})
    assert preview.status_code == 303 and "csrf" not in preview.headers["Location"]
    html = client.get(preview.headers["Location"]).get_data(as_text=True)
    assert 'name="param.day" type="date" value="2020-05-17"' in html
    assert 'name="param.limit" type="number" value="3"' in html
    assert '<option value="true" selected>' in html
    assert "What Run would do now: daily alone</h2>" in html


def test_a_form_launch_is_a_web_run_with_its_parameters(client: Any, jc: JobControl) -> None:
    token = page_token(client)
    response = client.post("/jobs/daily/launch", data={
        "csrf_token": token, "param.day": "2020-05-17", "param.limit": "10",
        "param.loud": "true"})
    assert response.status_code == 303
    [build] = wait_run_done(jc)
    [view] = jc.runs()
    assert view.run.trigger is RunTrigger.WEB and view.run.by == "web"
    assert view.run.params == {"daily": {"day": "2020-05-17", "limit": 10, "loud": True}}
    assert build.params == {"day": "2020-05-17", "loud": True}
    assert json.loads(build.result.data)["day"] == "2020-05-17"  # type: ignore[union-attr]


def test_an_api_launch_is_an_api_run_and_bad_parameters_are_400(client: Any,
                                                                jc: JobControl) -> None:
    headers = {"X-CSRFToken": client.get("/api/v1/csrf").get_json()["csrf_token"]}
    bad = client.post("/api/v1/jobs/daily/launch", json={"params": {"limit": "ten"}},
                      headers=headers)
    assert bad.status_code == 400
    assert bad.get_json()["error"]["message"] == (
        "job 'daily', parameter 'limit': expected a whole number, got 'ten' (int)")
    assert client.post("/api/v1/jobs/daily/launch", json={"params": [1]},
                       headers=headers).status_code == 400
    assert jc.runs() == []
    response = client.post("/api/v1/jobs/daily/launch", json={"params": {"limit": 3}},
                           headers=headers)
    assert response.status_code == 202, response.get_json()
    [build] = wait_run_done(jc)
    [view] = jc.runs()
    assert view.run.trigger is RunTrigger.API and build.params == {"limit": 3}
