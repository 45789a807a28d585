"""Real workers (``jobcontrol worker``) known by identity, through Redis and RabbitMQ: two
with the same hostname in separate PID namespaces (one under ``unshare --pid --fork
--mount-proc``, as root) each known by its own identity, listed by ``workers`` with their
builds, and neither (nor a reap from a third namespace) marking the other's live build
abandoned; a worker killed with ``kill -9`` has all its builds abandoned by one reap."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobcontrol import BuildState
from tests.processes import ROOT, UNSHARE, needs_unshare, stop_groups
from tests.support import make_project
from tests.test_celery import Cluster, broker, wait_ready, wait_until

S = BuildState
__all__ = ["broker"]

CONFIG = """\
executor: {{type: celery, broker: "{broker}", queue: "{queue}"}}
runner: {{heartbeat: 0.2s, heartbeat_timeout: 2s, kill_grace: 1s}}
jobs:
  - {{id: nap, function: jobfuncs.sleeper, kwargs: {{seconds: 8}}, concurrency: 4}}
"""


@pytest.fixture
def cluster(broker: str, pg_url: str, tmp_path: Path) -> Cluster:
    queue = f"jctest-{uuid.uuid4().hex[:8]}"
    config = make_project(tmp_path / "project", CONFIG.format(broker=broker, queue=queue))
    return Cluster(config, pg_url, pg_url)


def _command(cluster: Cluster, *args: str) -> list[str]:
    return [sys.executable, "-m", "jobcontrol", *cluster.args(*args)]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBCONTROL_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


@pytest.fixture
def two_workers(cluster: Cluster, tmp_path: Path) -> Iterator[list[Path]]:
    """A worker in this PID namespace and one in a new one, each of 1 process, ready."""
    logs = [tmp_path / "host.log", tmp_path / "unshared.log"]
    argv = _command(cluster, "worker", "--concurrency", "1")
    processes = []
    try:
        for log, prefix in zip(logs, ([], UNSHARE), strict=True):
            with log.open("w") as out:
                processes.append(subprocess.Popen(
                    [*prefix, *argv], cwd=cluster.config.parent, env=_env(), text=True,
                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
        wait_ready(logs, processes)
        yield logs
    finally:
        stop_groups(processes)


@needs_unshare
def test_same_hostname_workers_in_two_pid_namespaces_never_reap_each_other(
        cluster: Cluster, two_workers: list[Path]) -> None:
    ids = []
    for _ in range(2):
        code, out, err = cluster.run("build", "nap", "--async", "--format", "json")
        assert code == 0, err
        ids += [b["id"] for b in json.loads(out)]
    jc = cluster.control()
    running = wait_until("a build running on each worker", lambda: (
        builds := [jc.storage.get_build(i) for i in ids])
        and all(b.state is S.RUNNING for b in builds) and builds)
    assert len({b.worker_id for b in running}) == 2  # one each: 1 process a worker
    assert len({b.host for b in running}) == 1  # the same hostname
    namespaces = {b.worker_id.split("~", 2)[2] for b in running if b.worker_id}
    assert len(namespaces) == 2
    # a reap from a third PID namespace, then from this one: nothing of theirs is reaped
    reaped = subprocess.run([*UNSHARE, *_command(cluster, "reap", "--format", "json")],
                            cwd=cluster.config.parent, env=_env(), text=True,
                            capture_output=True, timeout=60)
    assert reaped.returncode == 0, reaped.stderr
    assert json.loads(reaped.stdout) == []
    code, out, err = cluster.run("reap", "--format", "json")
    assert (code, json.loads(out)) == (0, []), err
    code, out, err = cluster.run("workers", "--format", "json")
    listed = {w["id"]: [b["id"] for b in w["builds"]] for w in json.loads(out)}
    assert listed == {b.worker_id: [b.id] for b in running}
    assert all(jc.storage.get_build(i).state is S.RUNNING for i in ids), \
        "a build ended before the reaps were done: the test proved nothing"
    ended = wait_until("both builds to end", lambda: (
        builds := [jc.storage.get_build(i) for i in ids])
        and all(b.state.finished for b in builds) and builds)
    assert [b.state for b in ended] == [S.SUCCESS, S.SUCCESS], [b.reason for b in ended]


def test_a_killed_workers_builds_are_abandoned_together_at_once(cluster: Cluster,
                                                                 tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        process = subprocess.Popen(_command(cluster, "worker", "--concurrency", "2"),
                                   cwd=cluster.config.parent, env=_env(), text=True,
                                   stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        wait_until("the worker ready", lambda: " ready." in log.read_text())
        ids = []
        for _ in range(2):
            code, out_text, err = cluster.run("build", "nap", "--async", "--format", "json")
            assert code == 0, err
            ids += [b["id"] for b in json.loads(out_text)]
        jc = cluster.control()
        wait_until("both builds running", lambda: all(
            jc.storage.get_build(i).state is S.RUNNING for i in ids))
        os.killpg(process.pid, signal.SIGKILL)  # the worker and its pool, at once
        process.wait()
        code, out_text, err = cluster.run("reap", "--format", "json")  # one reap: both
        assert code == 0, err
        reaped = json.loads(out_text)
        assert sorted(b["id"] for b in reaped) == ids
        assert all(b["state"] == "abandoned" and b["reason"].startswith("worker jobcontrol.")
                   and " lost: its process " in b["reason"] for b in reaped)
        code, out_text, err = cluster.run("workers", "--format", "json")
        assert json.loads(out_text) == []  # forgotten
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@needs_unshare
def test_default_node_names_differ_between_pid_namespaces() -> None:
    """Two workers of one hostname in two containers are both pid 1: their Celery node names
    (which a broker's control queues are named after) must still differ."""
    code = ("import sys; from jobcontrol.execution.celery import node_name; "
            "print(node_name([]), flush=True); sys.stdin.read()")
    workers = [subprocess.Popen([*UNSHARE, sys.executable, "-c", code], env=_env(), text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
               for _ in range(2)]  # both alive at once: their namespaces are not reused
    try:
        names = [worker.stdout.readline().strip() for worker in workers]  # type: ignore[union-attr]
    finally:
        for worker in workers:
            worker.communicate(timeout=30)
    assert all(name.startswith("jobcontrol.1.") for name in names), names
    assert names[0] != names[1]
