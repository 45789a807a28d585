"""``/metrics``: scraped through Flask's test client and parsed with prometheus_client's
own text parser, every value checked against the builds made here; behind the API's auth.
SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from jobcontrol import JobControl
from jobcontrol.models import BuildState
from jobcontrol.storage import Storage
from jobcontrol.web import create_app, metrics
from tests.conftest import make_storage
from tests.support import make_project

CONFIG = """\
jobs:
  - {id: fetch, function: jobfuncs.make, args: [fetch], isolation: inline, max_age: 1h}
  - {id: report, function: jobfuncs.make, args: [report], dependencies: [fetch],
     isolation: inline, max_age: 1h}
  - {id: bad, function: jobfuncs.fails, isolation: inline}
"""

S = BuildState


@pytest.fixture(params=["sqlite", "postgresql"])
def jc(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobControl]:
    storage: Storage = make_storage(request.param, tmp_path, request)
    try:
        yield JobControl.from_config(make_project(tmp_path, CONFIG), storage)
    finally:
        storage.close()


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: Any, **kwargs: Any) -> Samples:
    response = client.get("/metrics", **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain")
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.get_data(as_text=True))
            for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_metrics_match_the_builds_made(jc: JobControl) -> None:
    fetches = [jc.build("fetch")[0] for _ in range(3)]
    [failed] = jc.build("bad")  # recorded failed
    claimed = jc.storage.claim_build("report", concurrency=1, definition={},
                                     definition_hash="h", dependency_builds={}, host="h",
                                     pid=1)  # running
    jc.storage.enqueue_build("fetch", definition={}, definition_hash="h",
                             dependency_builds={}, queue="q")
    jc.pause("bad", reason="broken")
    samples = scrape(create_app(jc).test_client())

    assert value(samples, "jobcontrol_builds_total", job_id="fetch", state="success") == 3
    assert value(samples, "jobcontrol_builds_total", job_id="bad", state="failed") == 1
    # a counter never goes down: builds still queued or running are the gauges' (below)
    assert value(samples, "jobcontrol_builds_total", job_id="report", state="running") is None
    assert value(samples, "jobcontrol_builds_total", job_id="fetch", state="queued") is None
    assert value(samples, "jobcontrol_builds_total", job_id="bad", state="success") is None
    assert value(samples, "jobcontrol_running_builds") == 1
    assert value(samples, "jobcontrol_queued_builds") == 1
    # report never succeeded and has a max_age: stale; fetch just built: fresh
    assert value(samples, "jobcontrol_stale_jobs") == 1
    last = jc.storage.get_build(fetches[-1].id).finished
    assert last is not None
    assert value(samples, "jobcontrol_last_success_timestamp_seconds", job_id="fetch") == \
        pytest.approx(last.timestamp())
    assert value(samples, "jobcontrol_last_success_timestamp_seconds", job_id="bad") is None
    assert value(samples, "jobcontrol_job_paused", job_id="bad") == 1
    assert value(samples, "jobcontrol_job_paused", job_id="fetch") == 0
    durations = []
    for build in jc.storage.list_builds("fetch"):
        if build.started and build.finished:
            durations.append((build.finished - build.started).total_seconds())
    assert len(durations) == 3
    assert value(samples, "jobcontrol_build_duration_seconds_count", job_id="fetch") == 3
    assert value(samples, "jobcontrol_build_duration_seconds_sum", job_id="fetch") == \
        pytest.approx(sum(durations))
    assert value(samples, "jobcontrol_build_duration_seconds", job_id="fetch",
                 quantile="0.5") == pytest.approx(sorted(durations)[1])
    assert value(samples, "jobcontrol_build_duration_seconds", job_id="fetch",
                 quantile="0.99") == pytest.approx(max(durations))
    assert value(samples, "jobcontrol_build_duration_seconds_count", job_id="bad") == 1
    assert failed.state is S.FAILED and claimed.state is S.RUNNING

    jc.resume("bad")
    jc.storage.finish_build(claimed.id, S.SUCCESS)
    again = scrape(create_app(jc).test_client())  # read afresh at each scrape
    assert value(again, "jobcontrol_job_paused", job_id="bad") == 0
    assert value(again, "jobcontrol_running_builds") == 0
    assert value(again, "jobcontrol_stale_jobs") == 0
    assert value(again, "jobcontrol_builds_total", job_id="report", state="success") == 1


def test_no_label_is_one_prometheus_gives_every_series_it_scrapes(jc: JobControl) -> None:
    """Prometheus labels each scraped series with its target's ``job`` and ``instance``
    and renames such labels of the target's to ``exported_job``: ``{job="fetch"}`` would
    match nothing."""
    jc.build("fetch")
    jc.build("bad")
    samples = scrape(create_app(jc).test_client())
    labels = {name for (_, pairs) in samples for name, _ in pairs}
    assert "job_id" in labels and not labels & {"job", "instance"}


def test_durations_cover_the_latest_builds_only(jc: JobControl,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "DURATION_WINDOW", 2)
    for _ in range(3):
        jc.build("fetch")
    latest = jc.storage.list_builds("fetch", limit=2)
    samples = scrape(create_app(jc).test_client())
    assert value(samples, "jobcontrol_build_duration_seconds_count", job_id="fetch") == 2
    assert value(samples, "jobcontrol_build_duration_seconds_sum", job_id="fetch") == \
        pytest.approx(sum((b.finished - b.started).total_seconds()  # type: ignore[operator]
                          for b in latest))
    assert value(samples, "jobcontrol_builds_total", job_id="fetch", state="success") == 3


def test_metrics_are_behind_the_api_auth(tmp_path: Path, jc: JobControl) -> None:
    config = make_project(tmp_path / "auth", "web:\n  auth: {token: api-token-0123456789}\n"
                          + CONFIG)
    client = create_app(JobControl.from_config(config, jc.storage)).test_client()
    refused = client.get("/metrics")
    assert refused.status_code == 401  # not a redirect to the login form: scrapers
    assert "jobcontrol_builds" not in refused.get_data(as_text=True)
    wrong = client.get("/metrics", headers={"Authorization": "Bearer nope-nope-nope-nope"})
    assert wrong.status_code == 401
    samples = scrape(client, headers={"Authorization": "Bearer api-token-0123456789"})
    assert value(samples, "jobcontrol_running_builds") == 0
    # and without auth configured, only this machine (as every page)
    open_client = create_app(jc).test_client()
    assert open_client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"}
                           ).status_code == 403
