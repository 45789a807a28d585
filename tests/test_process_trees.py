"""A build's whole process tree ends with it, and a hung runner is found by its heartbeat.

Real ``jobcontrol`` processes, really stopped (SIGSTOP) and killed (``kill -9``), whose job
starts a subprocess of its own (``sleep 600``): on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from jobcontrol.models import Build, BuildState
from jobcontrol.reaper import reap
from jobcontrol.storage import Storage, open_storage
from tests.processes import PROJECT_PARAMS, Project, alive, until, wait_for
from tests.support import isolation_specific

CONFIG = """\
runner:
  heartbeat: 0.2s
  heartbeat_timeout: 1s
  kill_grace: 1s
jobs:
  - id: spawner
    function: jobfuncs.spawner
    kwargs: {seconds: {{ env.get("NAP", "60") }}}
    timeout: {{ env.get("TIMEOUT", "1h") }}
  - id: spawner_process
    function: jobfuncs.spawner
    isolation: process
  - id: quick
    function: jobfuncs.sleeper
    kwargs: {seconds: 1.5}
  - id: spawner_after
    function: jobfuncs.spawner
    dependencies: [quick]
  - id: inline_napper
    function: jobfuncs.sleeper
    kwargs: {seconds: 60, marker: inline.pid}
    isolation: inline
  - id: inline_short
    function: jobfuncs.sleeper
    kwargs: {seconds: 3, marker: inline.pid}
    isolation: inline
"""

#: for a test of what ends with a build's process group (the jobs say no isolation)
OWN_PROCESS_GROUP = isolation_specific(
    "process", "pool", why="an inline build has no process group of its own: its "
    "subprocesses are the runner's (docs/explanation/isolation.rst)")

HEARTBEAT_TIMEOUT = 1.0


@pytest.fixture(params=PROJECT_PARAMS)
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Project:
    """The test project on each storage several processes can share."""
    return Project.on(request, tmp_path, CONFIG)


@pytest.fixture
def storage(project: Project) -> Iterator[Storage]:
    """The project's storage, opened in the test (to look at what the commands wrote)."""
    opened = open_storage(project.storage_url)
    try:
        yield opened
    finally:
        opened.close()


def group_members(pgid: int) -> list[int]:
    """The live processes of process group ``pgid`` (zombies are dead)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def started_job(project: Project, storage: Storage, build_id: int = 1
                ) -> tuple[int, int, Build]:
    """The job's pid, its ``sleep``'s pid, and the build once its process group is
    recorded."""
    job_pid, sleep_pid = map(int, wait_for(project.config.parent / "spawner.pids").split())
    until(lambda: storage.get_build(build_id).pgid is not None,
          "the process group to be recorded")
    build = storage.get_build(build_id)
    assert build.pgid == job_pid  # the job's process leads its group
    assert sleep_pid in group_members(job_pid)
    return job_pid, sleep_pid, build


def heartbeat_older_than(storage: Storage, seconds: float, build_id: int = 1
                         ) -> Callable[[], bool]:
    def stale() -> bool:
        beat = storage.get_build(build_id).heartbeat
        assert beat is not None
        return (storage.now() - beat).total_seconds() > seconds
    return stale


def clock(text: str) -> str:
    return datetime.fromisoformat(text).strftime("%H:%M:%S")


@OWN_PROCESS_GROUP
def test_a_stopped_runner_is_abandoned_killed_and_the_job_runs_again(
        project: Project, storage: Storage) -> None:
    runner = project.start("build", "spawner")
    try:
        job_pid, sleep_pid, _build = started_job(project, storage)
        os.kill(runner.pid, signal.SIGSTOP)  # hung: alive, and beating no more
        until(heartbeat_older_than(storage, HEARTBEAT_TIMEOUT), "the heartbeat to go stale")
        # the next build of the job on this host finds it abandoned, kills what is left of
        # it, and runs (it used to be refused: "already running", exit 4)
        code, out, err = project.run("build", "spawner", env={"NAP": "0"})
        assert code == 0, err
        assert "build #2 spawner: success" in out
        assert runner.wait(timeout=10) == -signal.SIGKILL
    finally:
        if runner.poll() is None:
            runner.kill()
        runner.communicate()
    detail = project.show(1)
    assert detail["state"] == "abandoned"
    assert detail["finished"] == detail["heartbeat"]  # when it was last known alive
    assert re.fullmatch(
        rf"no heartbeat since {clock(detail['heartbeat'])} \(noticed \d\d:\d\d:\d\d, "
        rf"\d+\.\d+s later\); runner {runner.pid}@{re.escape(socket.gethostname())} killed",
        detail["reason"]), detail["reason"]
    until(lambda: not alive(job_pid) and not alive(sleep_pid), "the job's processes to go")
    assert group_members(job_pid) == []


@OWN_PROCESS_GROUP
def test_a_stopped_runner_of_a_run_is_killed_with_its_jobs_processes(
        project: Project, storage: Storage) -> None:
    """The second build of a run: in a pool, it runs in the worker the first build ran in
    (which outlived that build)."""
    runner = project.start("build", "spawner_after", "--deps")
    try:
        job_pid, sleep_pid, _ = started_job(project, storage, build_id=2)
        assert storage.get_build(1).state is BuildState.SUCCESS
        os.kill(runner.pid, signal.SIGSTOP)
        until(heartbeat_older_than(storage, HEARTBEAT_TIMEOUT, build_id=2),
              "the heartbeat to go stale")
        code, out, err = project.run("reap", "--format", "json")
        assert code == 0, err
        assert [b["id"] for b in json.loads(out)] == [2]
        assert runner.wait(timeout=10) == -signal.SIGKILL
    finally:
        if runner.poll() is None:
            runner.kill()
        runner.communicate()
    until(lambda: not alive(job_pid) and not alive(sleep_pid), "the job's processes to go")
    assert group_members(job_pid) == []


def test_reap_kills_the_subprocesses_of_a_runner_killed_with_kill_9(
        project: Project, storage: Storage) -> None:
    # a build process outlives its runner's kill -9 until the reap; a pool worker ends its
    # process group at once (tests/test_pool.py), and inline's is the runner's
    runner = project.start("build", "spawner_process")
    job_pid, sleep_pid, _ = started_job(project, storage)
    os.kill(runner.pid, signal.SIGKILL)
    runner.communicate(timeout=10)
    until(lambda: not alive(job_pid), "the job to die with its runner")
    assert alive(sleep_pid)  # an orphan, until the build is marked abandoned here
    code, out, err = project.run("reap", "--format", "json")
    assert code == 0, err
    [reaped] = json.loads(out)
    assert reaped["state"] == "abandoned"
    assert project.show(1)["pgid"] == job_pid
    assert reaped["reason"].startswith(f"process {runner.pid}@")
    until(lambda: not alive(sleep_pid), "the job's subprocess to be killed", seconds=5)
    assert group_members(job_pid) == []


@OWN_PROCESS_GROUP
def test_a_timeout_kills_the_jobs_subprocesses(project: Project, storage: Storage) -> None:
    runner = project.start("build", "spawner", env={"TIMEOUT": "1s"})
    try:
        job_pid, sleep_pid, _ = started_job(project, storage)
        _out, err = runner.communicate(timeout=20)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert runner.returncode == 1, err
    assert project.show(1)["reason"] == "timed out after 1s"
    assert not alive(job_pid) and not alive(sleep_pid)
    assert group_members(job_pid) == []


@OWN_PROCESS_GROUP
def test_a_cancel_kills_the_jobs_subprocesses(project: Project, storage: Storage) -> None:
    runner = project.start("build", "spawner")
    try:
        job_pid, sleep_pid, _ = started_job(project, storage)
        code, _out, err = project.run("cancel", "1", "--wait")
        assert code == 0, err
        runner.communicate(timeout=20)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert runner.returncode == 1
    assert project.show(1)["state"] == "cancelled"
    until(lambda: not alive(sleep_pid), "the job's subprocess to be killed", seconds=5)
    assert not alive(job_pid)
    assert group_members(job_pid) == []


@OWN_PROCESS_GROUP
def test_a_runner_that_resumes_after_its_build_was_abandoned_changes_nothing(
        project: Project, storage: Storage) -> None:
    """Abandoned from another host (which cannot kill it), a stopped runner that resumes
    is fenced off: its heartbeat and its outcome leave the record as it was, and its next
    heartbeat tells it to stop the job (which must not run on beside a new build)."""
    runner = project.start("build", "spawner")
    try:
        job_pid, sleep_pid, _ = started_job(project, storage)
        os.kill(runner.pid, signal.SIGSTOP)
        until(heartbeat_older_than(storage, HEARTBEAT_TIMEOUT), "the heartbeat to go stale")
        [abandoned] = reap(storage, host="elsewhere", heartbeat_timeout=HEARTBEAT_TIMEOUT)
        assert abandoned.state is BuildState.ABANDONED
        assert abandoned.finished == abandoned.heartbeat
        os.kill(runner.pid, signal.SIGCONT)
        _out, err = runner.communicate(timeout=20)  # not the job's 60 s
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert runner.returncode == 1, err
    assert "build 1 was ended elsewhere: stopping its job" in err
    assert storage.get_build(1) == abandoned
    assert not alive(job_pid) and not alive(sleep_pid)
    assert group_members(job_pid) == []


def test_an_inline_build_ended_elsewhere_is_stopped_when_its_runner_resumes(
        project: Project, storage: Storage) -> None:
    runner = project.start("build", "inline_napper")
    try:
        wait_for(project.config.parent / "inline.pid")
        os.kill(runner.pid, signal.SIGSTOP)
        until(heartbeat_older_than(storage, HEARTBEAT_TIMEOUT), "the heartbeat to go stale")
        [abandoned] = reap(storage, host="elsewhere", heartbeat_timeout=HEARTBEAT_TIMEOUT)
        os.kill(runner.pid, signal.SIGCONT)
        _out, err = runner.communicate(timeout=20)  # not the job's 60 s
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert runner.returncode == 1, err
    assert storage.get_build(1) == abandoned


@OWN_PROCESS_GROUP
def test_forked_builds_beat_while_an_inline_build_runs(
        project: Project, storage: Storage) -> None:
    """An inline build holds the runner's loop; the builds it forked before are beaten
    all the same, so the runner is not taken for hung (and killed) meanwhile."""
    runner = project.start("build", "spawner", "inline_short", "-j", "2", env={"NAP": "4"})
    try:
        started_job(project, storage)
        wait_for(project.config.parent / "inline.pid")
        inline = storage.list_builds("inline_short")[0]
        assert inline.started is not None
        until(lambda: (storage.get_build(1).heartbeat - inline.started).total_seconds()
              > HEARTBEAT_TIMEOUT + 0.2, "a heartbeat of build 1 past the limit", seconds=2.5)
        code, out, err = project.run("reap")
        assert (code, out) == (0, "no abandoned builds\n"), err
        _out, err = runner.communicate(timeout=20)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert runner.returncode == 0, err
