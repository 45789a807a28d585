"""``run-due --at`` a time to come is a dry run: it claims no instant before it comes, and a
real ``run-due`` later still runs those instants (real processes, SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest

from jobcontrol.storage import open_storage
from tests.processes import Project

CONFIG = """\
jobs:
  - id: tick
    function: jobfuncs.noop
    isolation: inline
    schedule: "* * * * * *"
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def tick_project(request: pytest.FixtureRequest, tmp_path: object) -> Project:
    return Project.on(request, tmp_path, CONFIG)  # type: ignore[arg-type]


def run_due(project: Project, *args: str) -> dict:
    code, out, err = project.run("run-due", "--format", "json", *args)
    assert code == 0, err
    return json.loads(out)


def records(project: Project) -> tuple[int, int]:
    """(scheduled instants taken on, builds) in the storage."""
    storage = open_storage(project.storage_url)
    try:
        return len(storage.scheduled_runs("tick")), len(storage.list_builds("tick"))
    finally:
        storage.close()


def test_run_due_at_a_time_to_come_claims_nothing(tick_project: Project) -> None:
    assert len(run_due(tick_project)["started"]) == 1  # the instant just passed
    before = records(tick_project)
    storage = open_storage(tick_project.storage_url)
    try:
        later = storage.now() + timedelta(hours=1)
    finally:
        storage.close()
    report = run_due(tick_project, "--at", later.isoformat())
    assert records(tick_project) == before  # nothing claimed, nothing built
    assert report["dry_run"] is True
    assert [due["job"] for due in report["due"]] == ["tick"]
    assert report["due"][0]["scheduled_for"] == later.replace(microsecond=0).isoformat()
    assert report["started"] == report["overlaps"] == report["missed"] == []
    code, out, err = tick_project.run("run-due", "--at", later.isoformat())
    assert code == 0, err
    assert out.startswith("dry run: that time has not come on the storage's clock")
    assert f"tick: run due at {later.replace(microsecond=0).isoformat()} would start" in out
    assert records(tick_project) == before
    # the instants to come are still there for the real run-due when they come
    deadline = time.monotonic() + 20
    while not (report := run_due(tick_project))["started"]:
        assert time.monotonic() < deadline, "no instant ran after the dry run"
    [started] = report["started"]
    assert started["build"]["state"] == "success"
    assert started["scheduled_for"] < later.isoformat()
