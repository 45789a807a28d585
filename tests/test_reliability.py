"""Crashes, fencing, heartbeats and retries, with real processes really killed."""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
from pathlib import Path

import pytest

from jobcontrol.models import BuildState
from jobcontrol.reaper import reap
from jobcontrol.storage import open_storage
from tests.support import make_project
from tests.test_processes import Project, alive, wait_for

CONFIG = """\
runner:
  heartbeat: 0.2s
  heartbeat_timeout: 1s
jobs:
  - id: napper
    function: jobfuncs.sleeper
    kwargs: {seconds: {{ env.get("NAP", "60") }}, marker: napper.pid}
  - id: flaky
    function: jobfuncs.flaky
    kwargs: {counter: {{ env.get("COUNTER", "counter.txt") }}, failures: 2}
    retries: {count: 3, delay: 1s}
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Project:
    """The test project on each storage several processes can share."""
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    return Project(make_project(tmp_path / "project", CONFIG), url)


def storage_url(project: Project) -> str:
    return project.storage or f"sqlite:///{project.config.parent / 'jobcontrol.db'}"


def test_kill_9_of_runner_and_job_leaves_an_abandoned_build(project: Project) -> None:
    runner = project.start("build", "napper")
    job_pid = int(wait_for(project.config.parent / "napper.pid"))
    time.sleep(0.3)  # let the first log line be stored
    os.kill(runner.pid, signal.SIGKILL)
    os.kill(job_pid, signal.SIGKILL)
    runner.communicate(timeout=10)

    code, out, err = project.run("status", "--format", "json")
    assert code == 0, err
    [row] = [r for r in json.loads(out) if r["job"] == "napper"]
    assert row["last_state"] == "abandoned"
    assert row["running"] == []
    detail = project.show(1)
    assert detail["reason"].startswith(f"process {runner.pid}@")
    assert detail["reason"].endswith("died without a result")
    code, out, _ = project.run("logs", "1")
    assert "sleeping 60" in out
    # the job is free at once on this host
    code, out, err = project.run("build", "napper", env={"NAP": "0.1"})
    assert code == 0, err


def test_runner_killed_alone_takes_its_job_down(project: Project) -> None:
    runner = project.start("build", "napper")
    job_pid = int(wait_for(project.config.parent / "napper.pid"))
    os.kill(runner.pid, signal.SIGKILL)
    runner.communicate(timeout=10)
    deadline = time.monotonic() + 5
    while alive(job_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(job_pid)


def test_heartbeat_limit_abandons_a_build_of_another_host(project: Project) -> None:
    runner = project.start("build", "napper")
    try:
        wait_for(project.config.parent / "napper.pid")
        storage = open_storage(storage_url(project))
        try:
            first = storage.get_build(1).heartbeat
            time.sleep(0.6)
            assert storage.get_build(1).heartbeat > first  # it beats every 0.2 s
            # seen from another host, the beating build is alive...
            assert reap(storage, host="elsewhere", heartbeat_timeout=1) == []
            os.kill(runner.pid, signal.SIGSTOP)  # a runner that hangs stops beating
            time.sleep(1.5)
            [build] = reap(storage, host="elsewhere", heartbeat_timeout=1)
            assert build.state is BuildState.ABANDONED
            assert build.reason.startswith("no heartbeat for 1.")
        finally:
            storage.close()
    finally:
        os.kill(runner.pid, signal.SIGKILL)
        runner.communicate(timeout=10)


def test_late_success_does_not_overwrite_abandoned(project: Project) -> None:
    runner = project.start("build", "napper", env={"NAP": "1.5"})
    wait_for(project.config.parent / "napper.pid")
    storage = open_storage(storage_url(project))
    try:
        storage.finish_build(1, BuildState.ABANDONED, reason="no heartbeat for 61s (test)")
    finally:
        storage.close()
    out, err = runner.communicate(timeout=20)
    assert runner.returncode == 1, err
    detail = project.show(1)
    assert detail["state"] == "abandoned"
    assert detail["reason"] == "no heartbeat for 61s (test)"
    assert detail["retval"] is None
    _code, out, _ = project.run("logs", "1")
    assert "runner finished with success but the build was already abandoned" in out


def test_failing_twice_then_succeeding_with_retries(project: Project) -> None:
    counter = project.config.parent / "counter.txt"
    code, out, err = project.run("build", "flaky", "--format", "json",
                         env={"COUNTER": str(counter)})
    assert code == 0, err
    builds = json.loads(out)
    assert [b["state"] for b in builds] == ["failed", "failed", "success"]
    assert [b["retry_of"] for b in builds] == [None, builds[0]["id"], builds[1]["id"]]
    for before, after in itertools.pairwise(builds):
        gap = (_time(after["started"]) - _time(before["finished"]))
        assert gap >= 1.0
    assert project.show(builds[2]["id"])["retval"] == 3
    listed = json.loads(project.run("builds", "--format", "json")[1])
    assert [b["retry_of"] for b in listed] == [2, 1, None]


def _time(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp()
