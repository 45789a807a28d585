"""``jobcontrol scheduler`` as a real process, on SQLite and PostgreSQL: it never waits for a
running build, records every instant (run, ``overlap``, ``missed``), keeps to ``-j``, and
stops on SIGTERM with every build recorded.

Schedules have seconds; each test waits until the storage shows what it needs, then stops
the scheduler with SIGTERM and reads what it left.
"""

from __future__ import annotations

import itertools
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from jobcontrol.models import Build, BuildState, ScheduledRun
from jobcontrol.storage import Storage, open_storage
from tests.processes import Project, alive
from tests.support import isolation_specific, make_project


def wait_until(what: str, check: Callable[[], Any], seconds: float = 40) -> Any:
    """Poll ``check`` until it returns something true (returned); fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {seconds:g} s for {what}")
        time.sleep(0.1)
    return value


@contextmanager
def scheduler(project: Project, *args: str) -> Iterator[tuple[subprocess.Popen[str], Storage]]:
    """A ``jobcontrol scheduler`` process and the storage it writes, opened here; the
    process is stopped (SIGTERM, then SIGKILL) if the test leaves it running."""
    process = project.start("scheduler", *args)
    storage = open_storage(project.storage_url)
    try:
        yield process, storage
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
        storage.close()


def stop(process: subprocess.Popen[str]) -> str:
    """SIGTERM; the scheduler must exit 0 within seconds, saying so. Returns its output."""
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert out.endswith("scheduler: stopped\n"), out
    return out


def runs(storage: Storage, job: str) -> list[ScheduledRun]:
    """The job's instants taken on (but the baseline), oldest first."""
    return sorted((run for run in storage.scheduled_runs(job) if run.outcome != "baseline"),
                  key=lambda run: run.scheduled_for)


def outcomes(storage: Storage, job: str) -> list[str]:
    return [run.outcome for run in runs(storage, job)]


def assert_all_recorded(storage: Storage, job: str, every: float | None) -> list[ScheduledRun]:
    """Every instant of the job from its first to its last is there (``every`` seconds
    apart; None: ``catchup: latest`` lets go of those a late wake finds past), each with
    an end, and each started one with its own build; returns them, but the last ones if
    the stop came before they started (``not_built``)."""
    taken = runs(storage, job)
    gaps = {(later.scheduled_for - earlier.scheduled_for).total_seconds()
            for earlier, later in itertools.pairwise(taken)}
    assert every is None or gaps <= {every}, [(run.scheduled_for, run.outcome) for run in taken]
    while taken and taken[-1].outcome == "not_built":
        taken.pop()
    assert all(run.outcome in {"started", "overlap", "missed"} for run in taken), \
        [run.outcome for run in taken]
    started = [run.build_id for run in taken if run.outcome == "started"]
    assert len(set(started)) == len(started)
    return taken


def assert_nothing_running(storage: Storage) -> list[Build]:
    builds = storage.list_builds()
    assert [build.id for build in builds if not build.state.finished] == []
    return builds


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_kind(request: pytest.FixtureRequest) -> pytest.FixtureRequest:
    return request


FAST_SLOW = """\
jobs:
  - id: fast
    function: jobfuncs.noop
    schedule: "* * * * * */2"
    schedule_options: {catchup: all, misfire_grace: 1s}  # none let go on a loaded machine
  - id: slow
    function: jobfuncs.sleeper
    kwargs: {seconds: 5}
    schedule: "* * * * * */4"
"""


@isolation_specific("process", "pool", why="the scheduler runs inline builds one at a time, "
                    "in its main thread (docs/explanation/isolation.rst): fast cannot run "
                    "while slow does")
def test_a_running_build_holds_up_no_instant(storage_kind: pytest.FixtureRequest,
                                            tmp_path: Path) -> None:
    """Issue 16 point 1: ``fast`` runs at each of its instants while ``slow`` runs, and
    ``slow``'s instants due while it still runs are recorded as overlaps."""
    project = Project.on(storage_kind, tmp_path, FAST_SLOW)
    with scheduler(project) as (process, storage):
        # slow's instant after an overlap started: it ran, was overlapped, and ran again
        wait_until("slow to run, be overlapped and run again",
                   lambda: "overlap" in outcomes(storage, "slow")
                   and "started" in outcomes(storage, "slow")[
                       outcomes(storage, "slow").index("overlap"):])
        stop(process)
        builds = assert_nothing_running(storage)
        fast = assert_all_recorded(storage, "fast", 2.0)
        slow = assert_all_recorded(storage, "slow", 4.0)
    assert {run.outcome for run in fast} == {"started"}
    assert {run.outcome for run in slow} == {"started", "overlap"}
    by_id = {build.id: build for build in builds}
    for run in slow:
        build = by_id[run.build_id]
        if run.outcome == "overlap":
            assert build.state is BuildState.SKIPPED
            assert build.reason.startswith("overlap: the run due at ")
        else:
            assert build.state in (BuildState.SUCCESS, BuildState.CANCELLED)
    assert all(by_id[run.build_id].state is BuildState.SUCCESS for run in fast)
    # fast's builds ran while slow's first build did
    first_slow = by_id[slow[0].build_id]
    assert first_slow.finished is not None
    during = [run for run in fast if first_slow.started < by_id[run.build_id].started
              < first_slow.finished]
    assert len(during) >= 2


LONG = """\
jobs:
  - id: long
    function: jobfuncs.sleeper
    kwargs: {seconds: 60, marker: long.pid}
    schedule: "* * * * * */2"
  - id: long_inline
    function: jobfuncs.sleeper
    kwargs: {seconds: 60}
    isolation: inline
    schedule: "* * * * * */2"
    schedule_options: {deps: false}
"""


@isolation_specific("process", "pool", why="the scheduler runs inline builds one at a time, "
                    "in its main thread: long and long_inline never run at once")
def test_sigterm_cancels_and_records_every_build(storage_kind: pytest.FixtureRequest,
                                                 tmp_path: Path) -> None:
    """SIGTERM while a process build (in a thread) and an inline one (in the main thread)
    run: both are cancelled and recorded, no build is left running, no instant claimed
    without an end, and the job's process is gone."""
    project = Project.on(storage_kind, tmp_path, LONG)
    with scheduler(project) as (process, storage):
        wait_until("both jobs to run", lambda: {
            build.job_id for build in storage.list_builds(states=[BuildState.RUNNING])
        } == {"long", "long_inline"} and (project.config.parent / "long.pid").exists())
        pid = int((project.config.parent / "long.pid").read_text())
        stopped_at = time.monotonic()
        stop(process)
        assert time.monotonic() - stopped_at < 15
        builds = assert_nothing_running(storage)
        for job in ("long", "long_inline"):
            taken = assert_all_recorded(storage, job, 2.0)
            assert taken[0].outcome == "started"
            first = next(build for build in builds if build.id == taken[0].build_id)
            assert first.state is BuildState.CANCELLED
            assert first.reason == "interrupted by SIGTERM"
            assert {run.outcome for run in taken[1:]} <= {"overlap"}
    assert not alive(pid)


J1 = """\
jobs:
  - id: slow
    function: jobfuncs.sleeper
    kwargs: {seconds: 2}
    schedule: "* * * * * */4"
  - id: punctual
    function: jobfuncs.noop
    schedule: "* * * * * *"
    schedule_options: {catchup: none, misfire_grace: 1s}
  - id: patient
    function: jobfuncs.noop
    schedule: "* * * * * */2"
    schedule_options: {catchup: all, misfire_grace: 1s}
  - id: newest
    function: jobfuncs.noop
    schedule: "* * * * * *"
    schedule_options: {catchup: latest, deps: false}
"""


def test_j_bounds_the_builds_and_every_instant_waiting_is_recorded(
        storage_kind: pytest.FixtureRequest, tmp_path: Path) -> None:
    """``-j 1``: one build at a time. An instant due while ``slow`` runs waits: with
    ``catchup: all`` each is built late, in turn; with ``latest`` one replaced by the
    job's next instant is recorded missed, with ``none`` too, and one too late when room
    came."""
    project = Project.on(storage_kind, tmp_path, J1)
    with scheduler(project, "-j", "1") as (process, storage):
        wait_until("slow to run twice, punctual to miss and patient to catch up", lambda: (
            outcomes(storage, "slow").count("started") >= 2
            and "missed" in outcomes(storage, "punctual")
            and "missed" in outcomes(storage, "newest")
            and outcomes(storage, "patient").count("started") >= 4))
        out = stop(process)
        assert out.startswith("scheduler: 4 scheduled jobs, at most 1 build at once;")
        builds = assert_nothing_running(storage)
        slow = assert_all_recorded(storage, "slow", 4.0)
        # catchup: none lets go of an instant a late wake finds past, as run-due does (a
        # loaded machine wakes late): its gaps are not held to one second
        punctual = assert_all_recorded(storage, "punctual", None)
        patient = assert_all_recorded(storage, "patient", 2.0)
        newest = assert_all_recorded(storage, "newest", None)
    ran = sorted((build for build in builds if build.state is not BuildState.SKIPPED),
                 key=lambda build: build.started)
    for earlier, later in itertools.pairwise(ran):  # one at a time
        assert earlier.finished is not None and earlier.finished <= later.started
    assert {run.outcome for run in slow} <= {"started", "overlap"}
    # a build still running when the job's next instant comes makes that one an overlap
    # (on a loaded machine even a no-op can take a second)
    assert {"started", "missed"} <= {run.outcome for run in punctual} <= {
        "started", "missed", "overlap"}
    assert {"started", "missed"} <= {run.outcome for run in newest} <= {
        "started", "missed", "overlap"}
    # catchup: all: every instant built, some late (they waited for slow), but one whose
    # build of the instant before is still running (a loaded machine: a no-op taking over
    # a second), which is an overlap, as for the others
    assert "started" in {run.outcome for run in patient} <= {"started", "overlap"}
    by_id = {build.id: build for build in builds}
    lateness = [by_id[run.build_id].started - run.scheduled_for for run in patient
                if run.outcome == "started"]
    assert max(lateness) > timedelta(seconds=1)


INLINE = """\
jobs:
  - id: inline_slow
    function: jobfuncs.sleeper
    kwargs: {seconds: 3}
    isolation: inline
    schedule: "* * * * * *"
  - id: beside
    function: jobfuncs.noop
    schedule: "* * * * * *"
    schedule_options: {catchup: all, misfire_grace: 1s, deps: false}
"""


def test_an_inline_build_logs_its_own_lines_only(tmp_path: Path) -> None:
    """An inline build runs in the scheduler's main thread with its print() captured: what
    the scheduler prints meanwhile (overlaps, other builds) goes to the scheduler's output,
    never into the inline build's log."""
    project = Project(make_project(tmp_path / "project", INLINE), None)
    with scheduler(project) as (process, storage):
        wait_until("overlaps of the inline job, the other job built beside it",
                   lambda: outcomes(storage, "inline_slow").count("overlap") >= 2
                   and outcomes(storage, "beside").count("started") >= 3)
        out = stop(process)
        inline = [build for build in storage.list_builds("inline_slow")
                  if build.state is not BuildState.SKIPPED]
        logs = {build.id: [record.message for record in storage.get_logs(build.id)]
                for build in inline}
    assert "inline_slow: run due at " in out and "build #" in out
    assert all(lines == ["sleeping 3"] for lines in logs.values()), logs
