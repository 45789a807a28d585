"""``isolation: pool``: warm workers that run many builds in turn, really killed.

Builds run in the test's process (``JobControl.build``) on SQLite and PostgreSQL; the
runner's ``kill -9`` and ``jobcontrol cancel`` with real ``jobcontrol`` processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobcontrol import BuildState, JobControl
from jobcontrol.errors import ConfigError
from jobcontrol.execution.local import LocalExecutor
from jobcontrol.models import Build
from jobcontrol.storage import open_storage
from tests.processes import Project, alive, until, wait_for
from tests.support import make_project
from tests.test_process_trees import group_members

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/task"),
                                reason="the pool's tests look at Linux /proc")



def pool_project(folder: Path, yaml_text: str) -> Path:
    """A config beside tests/jobfuncs.py and tests/pooljobs.py."""
    return make_project(folder, yaml_text, modules=("pooljobs",))


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path / 'jc.db'}"


def build(config: Path, url: str, jobs: list[str], parallel: int = 1
          ) -> tuple[list[Build], dict[int, list[tuple[str, str]]], dict[int, Any]]:
    """Build ``jobs`` in order (``-k``); the builds, their logs (logger, message) and their
    progress."""
    with JobControl.from_config(config, storage=url) as jc:
        builds = jc.build(jobs, parallel=parallel, keep_going=True)
        logs = {b.id: [(r.logger, r.message) for r in jc.storage.get_logs(b.id)]
                for b in builds}
        progress = {b.id: [(p.group, p.current, p.total, p.message)
                           for p in jc.storage.get_progress(b.id)] for b in builds}
    return builds, logs, progress


RECORDED = """\
defaults: {{isolation: {isolation}}}
jobs:
  - {{id: chatty, function: jobfuncs.chatty, kwargs: {{name: pool}}}}
  - {{id: fails, function: jobfuncs.fails}}
  - {{id: whoami, function: jobfuncs.whoami, kwargs: {{tag: w}}}}
  - {{id: pid, function: pooljobs.pid}}
"""


def test_a_pool_records_what_process_isolation_records(tmp_path: Path, url: str) -> None:
    recorded = {}
    for isolation in ("process", "pool"):
        config = pool_project(tmp_path / isolation, RECORDED.format(isolation=isolation))
        builds, logs, progress = build(config, url, ["chatty", "fails", "whoami", "pid"])
        recorded[isolation] = [
            (b.job_id, b.state, b.reason, b.retval if b.job_id not in ("whoami", "pid")
             else None, b.exception and (b.exception.type, b.exception.message),
             sorted(logs[b.id]), progress[b.id])  # two pipes: their lines interleave
            for b in builds]
        if isolation == "pool":
            workers = {b.pgid for b in builds}
            assert len(workers) == 1 and os.getpid() not in workers  # one worker, reused
            [worker] = workers
            assert builds[2].retval["pid"] == builds[3].retval == worker  # the job ran there
            assert builds[2].retval["ppid"] == os.getpid()  # forked by the runner
            assert all(b.pid == os.getpid() for b in builds)  # the runner, as always
            assert not alive(worker)  # ended with the run
    assert recorded["pool"] == recorded["process"]
    assert recorded["pool"][0][1] is BuildState.SUCCESS
    assert ("stdout", "from a subprocess w") in recorded["pool"][2][5]  # at the fd level


def test_a_build_that_kills_its_worker_fails_alone(tmp_path: Path, url: str) -> None:
    config = pool_project(tmp_path / "p", """\
        defaults: {isolation: pool}
        jobs:
          - {id: first, function: pooljobs.pid}
          - {id: exits, function: pooljobs.exit_now, kwargs: {code: 3}}
          - {id: second, function: pooljobs.pid}
          - {id: segfaults, function: pooljobs.segfault}
          - {id: third, function: pooljobs.pid}
          - {id: forks, function: pooljobs.fork_and_return, timeout: 10s}
          - {id: fourth, function: pooljobs.pid}
        """)
    builds, logs, _ = build(config, url, ["first", "exits", "second", "segfaults", "third",
                                          "forks", "fourth"])
    first, exits, second, segfaults, third, forks, fourth = builds
    # a process the job forked and that returned from it leaves: the worker goes on
    assert (forks.state, fourth.state) == (BuildState.SUCCESS, BuildState.SUCCESS)
    assert fourth.retval == third.retval
    builds = builds[:5]
    assert [b.state for b in builds] == [BuildState.SUCCESS, BuildState.FAILED,
                                         BuildState.SUCCESS, BuildState.FAILED,
                                         BuildState.SUCCESS]
    assert exits.reason == "process exited with code 3 without a result"
    assert logs[exits.id] == [("pooljobs", "exiting with 3")]
    assert segfaults.reason == "killed by signal SIGSEGV (11)"
    # each crash took its worker (the one of the build before), the next build a fresh one
    assert exits.pgid == first.retval and segfaults.pgid == second.retval
    assert len({first.retval, second.retval, third.retval}) == 3
    assert not any(alive(b.retval) for b in (first, second, third))


def test_a_timeout_kills_the_worker_and_the_jobs_subprocesses(
        tmp_path: Path, url: str) -> None:
    config = pool_project(tmp_path / "p", """\
        defaults: {isolation: pool}
        runner: {kill_grace: 1s}
        jobs:
          - {id: before, function: pooljobs.pid}
          - {id: spawner, function: jobfuncs.spawner, timeout: 0.5s}
          - {id: after, function: pooljobs.pid}
          - {id: stubborn, function: pooljobs.stubborn, timeout: 0.5s}
          - {id: last, function: pooljobs.pid}
        """)
    builds, _, _ = build(config, url, ["before", "spawner", "after", "stubborn", "last"])
    before, spawner, after, stubborn, last = builds
    # SIGTERM ignored: SIGKILL after kill_grace, and a fresh worker for the next build
    assert stubborn.state is BuildState.FAILED and stubborn.reason == "timed out after 500ms"
    assert stubborn.pgid == after.retval != last.retval
    assert last.state is BuildState.SUCCESS and not alive(stubborn.pgid)
    assert spawner.state is BuildState.FAILED and spawner.reason == "timed out after 500ms"
    assert (before.state, after.state) == (BuildState.SUCCESS, BuildState.SUCCESS)
    job_pid, sleep_pid = map(int, (config.parent / "spawner.pids").read_text().split())
    assert job_pid == spawner.pgid == before.retval  # the worker of the build before
    assert after.retval != job_pid  # a fresh worker
    assert not alive(job_pid) and not alive(sleep_pid)
    assert group_members(job_pid) == []


def test_a_worker_restores_what_a_build_changed(tmp_path: Path) -> None:
    config = pool_project(tmp_path / "p", """\
        defaults: {isolation: pool}
        jobs:
          - {id: look, function: pooljobs.inspect}
          - {id: meddle, function: pooljobs.meddle}
          - {id: look_again, function: pooljobs.inspect}
        """)
    builds, _, _ = build(config, f"sqlite:///{tmp_path / 'jc.db'}",
                         ["look", "meddle", "look_again"])
    assert [b.state for b in builds] == [BuildState.SUCCESS] * 3, [
        (b.reason, b.exception and b.exception.traceback) for b in builds]
    fresh, _, after = (b.retval for b in builds)
    assert fresh["pid"] == after["pid"]  # the same worker
    assert after == fresh
    assert fresh["cwd"] == str(Path.cwd()) and fresh["env"] is None
    assert not alive(int((config.parent / "meddle.pid").read_text()))  # ended with the run
    assert fresh["children"] == []  # the meddler's sleep was killed when its build ended


def test_workers_are_recycled_after_max_builds(tmp_path: Path) -> None:
    jobs = "".join(f"  - {{id: pid{n}, function: pooljobs.pid}}\n" for n in range(5))
    config = pool_project(tmp_path / "p", "defaults: {isolation: pool}\n"
                          "runner: {max_builds_per_worker: 2}\njobs:\n" + jobs)
    builds, _, _ = build(config, f"sqlite:///{tmp_path / 'jc.db'}",
                         [f"pid{n}" for n in range(5)])
    pids = [b.retval for b in builds]
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4]
    assert len(set(pids)) == 3


def _resident_memory() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_workers_are_recycled_past_max_worker_memory(tmp_path: Path) -> None:
    # a worker forked from this process starts near its size: the limit is above that
    limit = _resident_memory() + (80 << 20)
    config = pool_project(tmp_path / "p", f"""\
        defaults: {{isolation: pool}}
        runner: {{max_worker_memory: {limit}}}
        jobs:
          - {{id: small, function: pooljobs.leak, kwargs: {{megabytes: 1}}}}
          - {{id: small_again, function: pooljobs.leak, kwargs: {{megabytes: 1}}}}
          - {{id: big, function: pooljobs.leak, kwargs: {{megabytes: 160}}}}
          - {{id: after, function: pooljobs.pid}}
        """)
    builds, _, _ = build(config, f"sqlite:///{tmp_path / 'jc.db'}",
                         ["small", "small_again", "big", "after"])
    small, small_again, big, after = (b.retval for b in builds)
    assert small == small_again == big  # kept while under the limit
    assert after != big  # retired past it
    assert not alive(big)


def test_a_pool_runs_as_many_workers_as_builds_at_once(tmp_path: Path, url: str) -> None:
    jobs = "".join(f"  - {{id: at_once{n}, function: pooljobs.barrier, "
                   f"kwargs: {{tag: t{n}, count: 4}}}}\n" for n in range(4))
    jobs += "".join(f"  - {{id: then{n}, function: pooljobs.pid}}\n" for n in range(4))
    config = pool_project(tmp_path / "p", "defaults: {isolation: pool}\njobs:\n" + jobs)
    names = [f"at_once{n}" for n in range(4)] + [f"then{n}" for n in range(4)]
    builds, _, _ = build(config, url, names, parallel=4)
    assert [b.state for b in builds] == [BuildState.SUCCESS] * 8, [b.reason for b in builds]
    pids = [b.retval for b in builds]
    assert len(set(pids[:4])) == 4  # four at once, each in its worker
    assert set(pids[4:]) <= set(pids[:4])  # the next builds in the same four
    assert {b.pgid for b in builds} == set(pids)


def test_arguments_that_do_not_pickle_fork_the_build_from_the_runner(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pool_project(tmp_path, "jobs: []\n")  # the job modules beside it, importable
    import jobfuncs  # type: ignore[import-not-found]

    storage = open_storage(f"sqlite:///{tmp_path / 'jc.db'}")
    executor = LocalExecutor(storage)
    try:
        builds = [storage.claim_build(f"job{n}", concurrency=1, definition={},
                                      definition_hash="h", dependency_builds={}, host="here",
                                      pid=os.getpid()) for n in range(2)]
        # a lambda cannot be sent to a worker: the runner forks this build itself
        executor.start(builds[0], jobfuncs.make, ("tag",), {"value": lambda: 1},
                       isolation="pool", result_mode="repr", function_path="jobfuncs.make")
        [done] = executor.wait(timeout=30)
        assert done.state is BuildState.SUCCESS, done.reason
        assert "<function" in done.result.data
        assert "forked by the runner: cannot send the job's arguments" in caplog.text
        executor.start(builds[1], os.getpid, (), {}, isolation="pool",
                       function_path="os.getpid")
        [done] = executor.wait(timeout=30)
        assert done.retval not in (os.getpid(), None) and done.pgid == done.retval
    finally:
        executor.close()
        storage.close()



def test_a_claim_records_the_worker_that_will_run_the_build(tmp_path: Path) -> None:
    """The claim names the worker the build goes to (its process group: one write a build
    less); where that worker died before the start, the start records the one it took."""
    pool_project(tmp_path, "jobs: []\n")  # the job modules beside it, importable
    import pooljobs  # type: ignore[import-not-found]

    storage = open_storage(f"sqlite:///{tmp_path / 'jc.db'}")
    recorded: list[tuple[int, int]] = []
    set_process_group = storage.set_process_group

    def spy(build_id: int, pgid: int) -> None:
        recorded.append((build_id, pgid))
        set_process_group(build_id, pgid)

    storage.set_process_group = spy  # type: ignore[method-assign]
    executor = LocalExecutor(storage)

    def claim(job_id: str) -> Build:
        return storage.claim_build(job_id, concurrency=1, definition={},
                                   definition_hash="h", dependency_builds={}, host="here",
                                   pid=os.getpid(), pgid=executor.next_process_group("pool"))

    try:
        assert executor.next_process_group("process") is None
        first = claim("first")
        assert first.pgid is not None and alive(first.pgid)
        assert storage.get_build(first.id).pgid == first.pgid  # while it runs, before it ran
        executor.start(first, pooljobs.pid, (), {}, isolation="pool",
                       function_path="pooljobs.pid")
        [done] = executor.wait(timeout=30)
        assert done.retval == done.pgid == first.pgid and not recorded
        second = claim("second")
        assert second.pgid == first.pgid  # the same worker, warm
        os.kill(second.pgid, signal.SIGKILL)  # dies between the claim and the start
        # all of it: its threads too (its main thread alone may be a zombie while they end)
        until(lambda: os.waitid(os.P_PID, second.pgid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
              is not None, "the worker dead")
        executor.start(second, pooljobs.pid, (), {}, isolation="pool",
                       function_path="pooljobs.pid")
        [done] = executor.wait(timeout=30)
        assert done.state is BuildState.SUCCESS, done.reason
        assert done.retval == done.pgid != first.pgid
        assert recorded == [(second.id, done.retval)]
    finally:
        executor.close()
        storage.close()


def test_a_worker_named_by_a_refused_claim_ends_with_the_executor(tmp_path: Path) -> None:
    """A worker forked for a claim that was refused (the job already running) is ended
    at once by close(), even before it leads its own process group."""
    storage = open_storage("memory://")

    def stuck(signum: int, frame: object) -> None:
        raise TimeoutError("close() waits for a worker that never ends")

    previous = signal.signal(signal.SIGALRM, stuck)
    try:
        for _ in range(20):  # right after the fork: the worker is still starting
            executor = LocalExecutor(storage)
            worker = executor.next_process_group("pool")
            assert worker is not None
            signal.setitimer(signal.ITIMER_REAL, 10)
            executor.close()
            signal.setitimer(signal.ITIMER_REAL, 0)
            assert not alive(worker)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        storage.close()


def test_a_build_that_leaves_a_process_outside_its_group_retires_its_worker(
        tmp_path: Path, url: str) -> None:
    """That process may hold the worker's stdout: the next build, in a fresh worker, gets
    none of its lines."""
    config = pool_project(tmp_path / "p", """\
        defaults: {isolation: pool}
        jobs:
          - {id: before, function: pooljobs.pid}
          - {id: daemon, function: pooljobs.daemon}
          - {id: after, function: pooljobs.echo_in_subprocess, kwargs: {text: after-line}}
          - {id: again, function: pooljobs.pid}
        """)
    try:
        builds, logs, _ = build(config, url, ["before", "daemon", "after", "again"])
        before, daemon, after, again = builds
        assert [b.state for b in builds] == [BuildState.SUCCESS] * 4
        assert before.retval == daemon.retval != after.retval == again.retval
        assert not any("daemon-line" in message for _, message in logs[after.id])
        assert ("stdout", "after-line") in logs[after.id]
    finally:
        marker = config.parent / "daemon.pid"
        if marker.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(marker.read_text()), signal.SIGKILL)


def test_a_build_that_closes_its_output_leaves_the_next_one_its_own(
        tmp_path: Path, url: str) -> None:
    config = pool_project(tmp_path / "p", """\
        defaults: {isolation: pool}
        jobs:
          - {id: closes, function: pooljobs.closes_stdout}
          - {id: echoes, function: pooljobs.echo_in_subprocess, kwargs: {text: still-here}}
        """)
    builds, logs, _ = build(config, url, ["closes", "echoes"])
    closes, echoes = builds
    assert [b.state for b in builds] == [BuildState.SUCCESS] * 2, [b.reason for b in builds]
    assert closes.retval == echoes.retval  # the same worker
    assert ("stdout", "still-here") in logs[echoes.id]

@pytest.mark.parametrize("value, message", [
    ("0", "max_builds_per_worker must be at least 1"),
    ("many", "max_builds_per_worker"),
])
def test_max_builds_per_worker_is_checked(tmp_path: Path, value: str, message: str) -> None:
    config = make_project(tmp_path, f"runner:\n  max_builds_per_worker: {value}\njobs: []\n")
    with pytest.raises(ConfigError, match=message) as info:
        JobControl.from_config(config, storage="memory://")
    assert f"{config}:2:" in str(info.value)


@pytest.mark.parametrize("value, expected", [
    ("200MB", 200_000_000), ("1.5GiB", 3 << 29), ("512kb", 512_000), ("1000", 1000),
    ("null", None),
])
def test_max_worker_memory_takes_sizes(tmp_path: Path, value: str, expected: int | None
                                       ) -> None:
    config = make_project(tmp_path, f"runner:\n  max_worker_memory: {value}\njobs: []\n")
    with JobControl.from_config(config, storage="memory://") as jc:
        assert jc.config.runner.max_worker_memory == expected


@pytest.mark.parametrize("value", ["lots", "200 parsecs", "-1MB", "0", "true"])
def test_a_bad_max_worker_memory_names_its_line(tmp_path: Path, value: str) -> None:
    config = make_project(tmp_path, f"jobs: []\nrunner:\n  max_worker_memory: {value}\n")
    with pytest.raises(ConfigError, match="max_worker_memory") as info:
        JobControl.from_config(config, storage="memory://")
    assert f"{config}:3:" in str(info.value)


# -- real runners -----------------------------------------------------------------------------

PROCESSES = """\
defaults: {isolation: pool}
runner: {heartbeat: 0.2s, heartbeat_timeout: 1s, kill_grace: 1s}
jobs:
  - {id: spawner, function: jobfuncs.spawner, kwargs: {seconds: 60, marker: one.pids}}
  - {id: spawner2, function: jobfuncs.spawner, kwargs: {seconds: 60, marker: two.pids}}
  - {id: after, function: pooljobs.pid}
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Project:
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    return Project(pool_project(tmp_path / "project", PROCESSES), url)


@pytest.fixture
def runner_cleanup() -> Iterator[list[Any]]:
    started: list[Any] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_kill_9_of_the_runner_ends_its_workers_and_their_builds(
        project: Project, runner_cleanup: list[Any]) -> None:
    runner = project.start("build", "spawner", "spawner2", "-j", "2")
    runner_cleanup.append(runner)
    folder = project.config.parent
    pids = [tuple(map(int, wait_for(folder / name).split())) for name in ("one.pids",
                                                                         "two.pids")]
    workers = [worker for worker, _ in pids]
    assert len(set(workers)) == 2 and runner.pid not in workers
    os.kill(runner.pid, signal.SIGKILL)
    runner.communicate(timeout=10)
    for worker, sleep in pids:
        until(lambda w=worker, s=sleep: not alive(w) and not alive(s),
              "the worker and its build's subprocess to die with the runner", seconds=10)
        assert group_members(worker) == []


def test_a_cancel_kills_the_worker_and_the_next_build_runs(
        project: Project, runner_cleanup: list[Any]) -> None:
    runner = project.start("build", "spawner", "after", "-k")
    runner_cleanup.append(runner)
    worker, sleep = map(int, wait_for(project.config.parent / "one.pids").split())
    with open_storage(project.storage_url) as storage:
        until(lambda: storage.get_build(1).pgid is not None, "the process group recorded")
    code, _out, err = project.run("cancel", "1", "--wait")
    assert code == 0, err
    runner.communicate(timeout=30)
    assert runner.returncode == 1
    cancelled, after = project.show(1), project.show(2)
    assert cancelled["state"] == "cancelled" and cancelled["pgid"] == worker
    assert after["state"] == "success" and after["retval"] != worker
    until(lambda: not alive(worker) and not alive(sleep), "the worker and its subprocess")
    assert group_members(worker) == []
    code, out, _ = project.run("show", "2", "--format", "json")
    assert json.loads(out)["pgid"] == after["retval"]
