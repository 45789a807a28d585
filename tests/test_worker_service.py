"""A worker run as a service: SIGTERM to every process of the worker at once (what systemd's
``KillMode=control-group`` sends on a stop) leaves no build ``running``: each build the
worker runs is recorded ended, by the worker itself, before it exits (on Redis and on
RabbitMQ, recorded in PostgreSQL, as ``tests/test_celery.py``).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobcontrol import BuildState
from tests.processes import alive, wait_for
from tests.test_celery import Cluster, broker, cluster, wait_until  # noqa: F401 (the fixtures of that suite)

S = BuildState


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, whatever its process group or session."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@pytest.fixture(params=[("group", "process"), ("group", "inline"), ("every", "process")],
                ids=lambda param: "-".join(param))
def how(request: pytest.FixtureRequest, cluster: Cluster) -> tuple[str, str]:  # noqa: F811
    """Whom SIGTERM reaches (the worker's process group; or every process, builds too)
    and the isolation of the build it interrupts (written before the worker starts)."""
    whom, isolation = request.param
    cluster.config.write_text(cluster.config.read_text().replace(
        "kwargs: {seconds: 60, marker: napper.pid}}",
        f"kwargs: {{seconds: 60, marker: napper.pid}}, isolation: {isolation}}}"))
    return whom, isolation


@pytest.fixture
def worker(cluster: Cluster, how: tuple[str, str],  # noqa: F811 (the fixture imported above)
           tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """``jobcontrol worker --concurrency 2`` in a session of its own, ready; every process
    of it killed after."""
    log = (tmp_path / "worker.log").open("w")
    process = cluster.start("worker", "--concurrency", "2", stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until("the worker to start", lambda: " ready." in (tmp_path / "worker.log")
                   .read_text() or process.poll() is not None)
        assert process.poll() is None, (tmp_path / "worker.log").read_text()
        yield process
    finally:
        for pid in [process.pid, *descendants(process.pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait()
        log.close()


def test_sigterm_to_a_worker_leaves_no_build_running(
        cluster: Cluster, worker: subprocess.Popen[str], how: tuple[str, str],  # noqa: F811
        tmp_path: Path) -> None:
    whom, isolation = how
    with cluster.control() as jc:
        [queued] = jc.submit("napper")
    job_pid = int(wait_for(cluster.config.parent / "napper.pid", seconds=60))
    everyone = [worker.pid, *descendants(worker.pid)]
    assert job_pid in everyone  # a pool process itself, for an inline build
    if whom == "group":  # the main process and its pool; not a build's group
        assert (os.getpgid(job_pid) == worker.pid) is (isolation == "inline")
        os.killpg(worker.pid, signal.SIGTERM)
    else:  # all at once, builds too, as systemd's KillMode=control-group does
        for pid in everyone:
            os.kill(pid, signal.SIGTERM)
    # read the record without reaping: the worker itself must write the end, at once
    state, reason = wait_until("the worker to record the build's end", lambda: (
        row if (row := cluster.sql(f"SELECT state, reason FROM builds WHERE id = {queued.id}"
                                   )[0])[0] != "running" else None), seconds=60)
    stopped = ("abandoned", "worker stopped by SIGTERM before the build ended")
    if whom == "group":
        assert (state, reason) == stopped
    else:  # the job may end of its own SIGTERM first, and say so: both are true
        assert (state, reason) in (stopped, ("failed", "SystemExit: terminated by SIGTERM"))
    wait_until("every process of the worker to exit",
               lambda: not any(alive(pid) for pid in everyone), seconds=60)
    assert worker.wait(timeout=10) is not None
    # the worker's log says it too (then Celery's own lines on its pool processes' exit)
    assert f"build #{queued.id} napper: {state} ({reason})" in (tmp_path / "worker.log"
                                                                ).read_text()
