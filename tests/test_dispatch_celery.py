"""Dependents sent when their last upstream ends, on real workers (two ``jobcontrol worker``
processes of one process each) through Redis and RabbitMQ, recorded in PostgreSQL: a chain
runs in order with one message a build, a diamond's two upstreams ending at once on the two
workers still send the join, a busy job's builds start oldest first, and a dependent blocked
by a failure is cancelled at once with the reason.

Messages are counted in the workers' logs: Celery logs each one a worker receives.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobcontrol import BuildState
from jobcontrol.models import Build
from jobcontrol.storage.base import SLOT_WAIT
from tests.processes import stop_groups
from tests.support import make_project
from tests.test_celery import Cluster, broker, wait_ready, wait_until

S = BuildState
__all__ = ["broker"]

# queued_timeout long: no sweep re-sends anything while a test counts messages
CONFIG = """\
executor: {{type: celery, broker: "{broker}", queue: "{queue}", queued_timeout: 1h}}
runner: {{heartbeat: 0.2s, heartbeat_timeout: 5s, kill_grace: 1s}}
jobs:
  - {{id: s1, function: jobfuncs.make, args: [s1]}}
  - {{id: s2, function: jobfuncs.make, dependencies: [s1], kwargs: {{tag: s2, value: !retval s1}}}}
  - {{id: s3, function: jobfuncs.make, dependencies: [s2], kwargs: {{tag: s3, value: !retval s2}}}}
  - id: left
    function: remotejobs.meet
    kwargs: {{folder: "{{{{ env.MEET }}}}", name: left, others: [right]}}
  - id: right
    function: remotejobs.meet
    kwargs: {{folder: "{{{{ env.MEET }}}}", name: right, others: [left]}}
  - {{id: join, function: jobfuncs.make, args: [j], dependencies: [left, right]}}
  - {{id: one, function: remotejobs.gate, args: ["{{{{ env.GATE }}}}"], concurrency: 1}}
  - {{id: bad, function: jobfuncs.fails}}
  - {{id: after_bad, function: jobfuncs.make, args: [x], dependencies: [bad]}}
"""


@pytest.fixture
def cluster(broker: str, pg_url: str, tmp_path: Path) -> Cluster:
    queue = f"jctest-{uuid.uuid4().hex[:8]}"
    config = make_project(tmp_path / "project", CONFIG.format(broker=broker, queue=queue))
    shutil.copy(Path(__file__).parent / "remotejobs.py", config.parent / "remotejobs.py")
    return Cluster(config, pg_url, pg_url)


@pytest.fixture
def workers(cluster: Cluster, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Path]]:
    """Two workers of one process each, ready; their logs."""
    monkeypatch.setenv("MEET", str(tmp_path / "meet"))
    monkeypatch.setenv("GATE", str(tmp_path / "gate"))
    logs = [tmp_path / "worker1.log", tmp_path / "worker2.log"]
    processes = []
    try:
        for log in logs:
            with log.open("w") as out:
                processes.append(cluster.start("worker", "--concurrency", "1", stdout=out,
                                               stderr=subprocess.STDOUT,
                                               start_new_session=True))
        wait_ready(logs, processes)
        yield logs
    finally:
        stop_groups(processes)


def _submit(cluster: Cluster, *args: str) -> list[int]:
    code, out, err = cluster.run("build", *args, "--async", "--format", "json")
    assert code == 0, err
    return [build["id"] for build in json.loads(out)]


def _ended(cluster: Cluster, ids: list[int], seconds: float = 60) -> list[Build]:
    jc = cluster.control()
    return wait_until(f"builds {ids} to end", lambda: (
        builds := [jc.storage.get_build(i) for i in ids])
        and all(b.state.finished for b in builds) and builds, seconds)


def _received(logs: list[Path]) -> int:
    """Messages the workers received so far."""
    return sum(len(re.findall(r"Task jobcontrol\.build\[[^]]+\] received", log.read_text()))
               for log in logs)


def _gap(upstream: Build, dependent: Build) -> float:
    assert upstream.finished is not None and dependent.started is not None
    return (dependent.started - upstream.finished).total_seconds()


def test_a_chain_runs_in_order_one_message_a_build(cluster: Cluster,
                                                   workers: list[Path]) -> None:
    ids = _submit(cluster, "s3", "--deps")
    s1, s2, s3 = _ended(cluster, ids)
    assert [b.state for b in (s1, s2, s3)] == [S.SUCCESS] * 3, [b.reason for b in (s1, s2, s3)]
    assert s2.retval["got"]["build"] == s1.id and s3.dependency_builds == {"s2": s2.id}
    assert 0 <= _gap(s1, s2) < 2 and 0 <= _gap(s2, s3) < 2, (_gap(s1, s2), _gap(s2, s3))
    assert _received(workers) == 3  # none sent again while it waited
    assert "waiting for dependencies" not in "".join(log.read_text() for log in workers)


def test_a_diamonds_upstreams_ending_at_once_on_two_workers_send_the_join(
        cluster: Cluster, workers: list[Path], tmp_path: Path) -> None:
    for _ in range(3):
        shutil.rmtree(tmp_path / "meet", ignore_errors=True)
        left, right, join = _ended(cluster, _submit(cluster, "left", "right", "join"))
        assert [b.state for b in (left, right, join)] == [S.SUCCESS] * 3, join.reason
        assert left.worker_id != right.worker_id  # one on each worker, meeting
        assert left.finished and right.finished
        assert abs((left.finished - right.finished).total_seconds()) < 1
        assert 0 <= _gap(max(left, right, key=lambda b: b.finished), join) < 2
        assert join.dependency_builds == {"left": left.id, "right": right.id}
    # three messages a diamond, and a fourth where both ends found the join ready
    assert 9 <= _received(workers) <= 12


def test_a_busy_jobs_queued_builds_start_oldest_first(cluster: Cluster, workers: list[Path],
                                                       tmp_path: Path) -> None:
    jc = cluster.control()
    [first] = _submit(cluster, "one")
    wait_until("the first running", lambda: jc.storage.get_build(first).state is S.RUNNING)
    waiting = [_submit(cluster, "one")[0] for _ in range(4)]
    wait_until("the others to find the job busy", lambda: all(
        (jc.storage.get_build(i).reason or "").startswith(SLOT_WAIT) for i in waiting))
    (tmp_path / "gate").write_text("open")
    builds = _ended(cluster, [first, *waiting])
    assert [b.state for b in builds] == [S.SUCCESS] * 5, [b.reason for b in builds]
    starts = [b.started for b in builds]
    assert None not in starts and sorted(starts) == starts  # in the order queued
    for earlier, later in itertools.pairwise(builds):
        assert 0 <= _gap(earlier, later) < 2, _gap(earlier, later)
    assert _received(workers) == 1 + 4 + 4  # each waiter: its own message, and its turn


def test_a_blocked_dependent_is_cancelled_at_once_with_the_reason(
        cluster: Cluster, workers: list[Path]) -> None:
    bad, after = _ended(cluster, _submit(cluster, "after_bad", "--deps"))
    assert bad.state is S.FAILED
    assert after.state is S.CANCELLED
    assert after.reason == f"dependency bad failed (build {bad.id})"
    assert bad.finished and after.finished
    assert (after.finished - bad.finished).total_seconds() < 1
    assert _received(workers) == 1  # after_bad was never sent: nothing could run it
