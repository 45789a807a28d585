"""Crashes, fencing, heartbeats and retries, with real processes really killed."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import socket
import time
from pathlib import Path

import pytest

from jobcontrol.models import BuildState
from jobcontrol.reaper import reap
from jobcontrol.storage import open_storage
from tests.processes import PROJECT_PARAMS, Project, alive, until, wait_for
from tests.support import isolation_specific

CONFIG = """\
runner:
  heartbeat: 0.2s
  heartbeat_timeout: 1s
  kill_grace: 1s
jobs:
  - id: napper
    function: jobfuncs.sleeper
    kwargs: {seconds: {{ env.get("NAP", "60") }}, marker: napper.pid}
  - id: flaky
    function: jobfuncs.flaky
    kwargs: {counter: {{ env.get("COUNTER", "counter.txt") }}, failures: 2}
    retries: {count: 3, delay: 1s}
  - id: stubborn
    function: jobfuncs.stubborn
    kwargs: {marker: stubborn.pid}
  - id: inline_napper
    function: jobfuncs.sleeper
    kwargs: {seconds: 60, marker: inline.pid}
    isolation: inline
"""


@pytest.fixture(params=PROJECT_PARAMS)
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Project:
    """The test project on each storage several processes can share."""
    return Project.on(request, tmp_path, CONFIG)



def test_kill_9_of_runner_and_job_leaves_an_abandoned_build(project: Project) -> None:
    runner = project.start("build", "napper")
    job_pid = int(wait_for(project.config.parent / "napper.pid"))
    with open_storage(project.storage_url) as storage:  # the first log line stored
        until(lambda: storage.get_logs(1), "the first log line to be stored")
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
    assert "ended without recording an outcome (last heartbeat " in detail["reason"]
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
        storage = open_storage(project.storage_url)
        try:
            first = storage.get_build(1).heartbeat
            # it beats every 0.2 s
            until(lambda: storage.get_build(1).heartbeat > first, "a heartbeat")
            # seen from another host, the beating build is alive...
            assert reap(storage, host="elsewhere", heartbeat_timeout=1) == []
            os.kill(runner.pid, signal.SIGSTOP)  # a runner that hangs stops beating
            until(lambda: (storage.now() - storage.get_build(1).heartbeat).total_seconds()
                  > 1, "the heartbeat to be older than 1 s")
            [build] = reap(storage, host="elsewhere", heartbeat_timeout=1)
            assert build.state is BuildState.ABANDONED
            assert build.reason.startswith("no heartbeat since ")
        finally:
            storage.close()
    finally:
        os.kill(runner.pid, signal.SIGKILL)
        runner.communicate(timeout=10)


@isolation_specific("process", "pool", why="an inline build ended elsewhere is cancelled by its "
                    "runner's watcher, which says so otherwise (docs/explanation/isolation.rst)")
def test_late_success_does_not_overwrite_abandoned(project: Project) -> None:
    runner = project.start("build", "napper", env={"NAP": "1.5"})
    wait_for(project.config.parent / "napper.pid")
    storage = open_storage(project.storage_url)
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
    # fenced off: its next heartbeat stops the job; the runner says so, and adds nothing
    # to the record (its log included)
    assert "build 1 was ended elsewhere: stopping its job" in err
    assert "but the build was already abandoned; its result was not recorded" in err
    _code, out, _ = project.run("logs", "1")
    assert "runner finished" not in out


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


def wait_gone(pid: int, seconds: float) -> float:
    """Seconds until process ``pid`` is gone; fails after ``seconds``."""
    started = time.monotonic()
    while alive(pid):
        assert time.monotonic() - started < seconds, f"process {pid} still alive"
        time.sleep(0.02)
    return time.monotonic() - started


def test_cancel_of_a_running_build_from_another_process(project: Project) -> None:
    runner = project.start("build", "napper")
    try:
        job_pid = int(wait_for(project.config.parent / "napper.pid"))
        code, out, err = project.run("cancel", "1", "--reason", "wrong day", "--wait")
        assert code == 0, err
        assert out.startswith("build #1 napper: cancelled (cancelled by ")
        assert out.rstrip().endswith(": wrong day)")
        wait_gone(job_pid, 1)  # it went on SIGTERM: no grace needed
        out, err = runner.communicate(timeout=10)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert runner.returncode == 1  # README "Exit codes": a cancelled build exits 1
    assert re.search(r"build #1 napper: cancelled in \S+ \(cancelled by .*: wrong day\)", out)
    detail = project.show(1)
    assert detail["state"] == "cancelled"
    assert detail["reason"] == detail["cancel_reason"]
    assert detail["reason"].endswith(": wrong day")
    # the job is free again at once
    code, out, err = project.run("build", "napper", env={"NAP": "0.1"})
    assert code == 0, err


def test_cancel_kills_a_job_that_ignores_sigterm_after_the_grace(project: Project) -> None:
    runner = project.start("build", "stubborn")
    try:
        # it ignores SIGTERM from before it writes its pid
        job_pid = int(wait_for(project.config.parent / "stubborn.pid"))
        code, out, err = project.run("cancel", "1")
        assert code == 0, err
        assert "cancel requested" in out
        # found within a second's poll, SIGTERM ignored, SIGKILL after kill_grace (1 s)
        took = wait_gone(job_pid, 5)
        assert took >= 0.5
        runner.communicate(timeout=10)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert runner.returncode == 1
    assert project.show(1)["state"] == "cancelled"


def test_cancel_of_an_inline_build(project: Project) -> None:
    runner = project.start("build", "inline_napper")
    try:
        wait_for(project.config.parent / "inline.pid")
        code, out, err = project.run("cancel", "1", "--wait", "--format", "json")
        assert code == 0, err
        [build] = json.loads(out)
        assert build["state"] == "cancelled"
        out, err = runner.communicate(timeout=10)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert runner.returncode == 1, err
    # an inline build beats its heartbeat too (from a thread beside the job)
    assert project.show(1)["heartbeat"] > project.show(1)["started"]


def test_cancel_of_a_finished_build_changes_nothing(project: Project) -> None:
    code, _out, err = project.run("build", "napper", env={"NAP": "0"})
    assert code == 0, err
    before = project.show(1)
    code, _, err = project.run("cancel", "1")
    assert code == 5
    assert err == "Error: build 1 has already finished (success): nothing to cancel\n"
    assert project.show(1) == before
    code, _, err = project.run("cancel", "7")
    assert code == 2
    assert err == "Error: build 7 not found\n"


def test_reap_command_records_a_dead_runner(project: Project) -> None:
    runner = project.start("build", "napper")
    job_pid = int(wait_for(project.config.parent / "napper.pid"))
    os.kill(runner.pid, signal.SIGKILL)
    runner.communicate(timeout=10)
    wait_gone(job_pid, 5)
    storage = open_storage(project.storage_url)
    try:  # read straight from storage: nothing has reaped it yet
        assert storage.get_build(1).state is BuildState.RUNNING
    finally:
        storage.close()
    code, out, err = project.run("reap", "--format", "json")
    assert code == 0, err
    [build] = json.loads(out)
    assert build["state"] == "abandoned"
    assert re.fullmatch(rf"process {runner.pid}@{re.escape(socket.gethostname())} ended "
                        r"without recording an outcome \(last heartbeat \d\d:\d\d:\d\d, "
                        r"noticed \d\d:\d\d:\d\d\)", build["reason"])
    detail = project.show(1)
    assert detail["finished"] == detail["heartbeat"]  # when it was last known alive
    code, out, err = project.run("reap")
    assert (code, out) == (0, "no abandoned builds\n")
