"""Builds whose message was lost, on real workers (``jobcontrol worker``) through Redis and
RabbitMQ: a purged queue is recovered by ``executor.queued_timeout`` (re-sent once), a
queue no worker reads ends ``failed`` with the reason, and ``requeue`` re-sends by hand."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobcontrol import BuildState
from tests.support import make_project
from tests.test_celery import Cluster, broker, wait_until
from tests.test_celery import worker as worker  # the fixture, on this module's cluster

S = BuildState
__all__ = ["broker"]

CONFIG = """\
executor: {{type: celery, broker: "{broker}", queue: "{queue}", queued_timeout: 2s}}
runner: {{heartbeat: 0.2s, heartbeat_timeout: 2s, kill_grace: 1s}}
jobs:
  - {{id: a, function: jobfuncs.make, args: [a]}}
  - {{id: lost, function: jobfuncs.make, args: [x], queue: "{queue}-nobody"}}
"""


@pytest.fixture
def cluster(broker: str, pg_url: str, tmp_path: Path) -> Cluster:
    queue = f"jctest-{uuid.uuid4().hex[:8]}"
    config = make_project(tmp_path / "project",
                          CONFIG.format(broker=broker, queue=queue, dsn=pg_url))
    shutil.copy(Path(__file__).parent / "remotejobs.py", config.parent / "remotejobs.py")
    return Cluster(config, pg_url, pg_url)


def _purge(cluster: Cluster, queue: str) -> None:
    """Delete every message of ``queue`` (the Redis list, the RabbitMQ queue's content)."""
    import kombu

    jc = cluster.control()
    with kombu.Connection(jc.config.executor.broker) as connection:
        connection.default_channel.queue_purge(queue)


@pytest.fixture
def purged(cluster: Cluster) -> Iterator[int]:
    """A build of ``a`` queued, its message purged before any worker ran."""
    code, out, err = cluster.run("build", "a", "--async", "--format", "json")
    assert code == 0, err
    [build] = json.loads(out)
    _purge(cluster, cluster.control().config.executor.queue)
    yield build["id"]


def test_a_purged_message_is_recovered_by_queued_timeout(cluster: Cluster, purged: int,
                                                         worker: object,
                                                         tmp_path: Path) -> None:
    jc = cluster.control()
    done = wait_until("the purged build to run", lambda: (
        b := jc.get_build(purged)).state.finished and b)
    assert done.state is S.SUCCESS
    # it ran because the sweep sent it again (its first message was purged)
    assert f"build #{purged} a: re-sent at " in (tmp_path / "worker.log").read_text()


def test_a_queue_no_worker_reads_ends_failed_with_the_reason(cluster: Cluster,
                                                             worker: object) -> None:
    code, out, err = cluster.run("build", "lost", "--async", "--format", "json")
    assert code == 0, err
    [build] = json.loads(out)
    jc = cluster.control()
    code, out, err = cluster.run("status", "--format", "json")
    [lost] = [row for row in json.loads(out) if row["job"] == "lost"]
    assert lost["queued"] == [build["id"]] and lost["oldest_queued"]
    code, out, err = cluster.run("status")
    assert "queued: " in out and "-nobody 1 (oldest" in out
    resent = wait_until("the re-send", lambda: (
        b := jc.get_build(build["id"])).heartbeat is not None and b)
    assert resent.state is S.QUEUED and resent.reason.startswith("re-sent at")
    failed = wait_until("the failure", lambda: (
        b := jc.get_build(build["id"])).state.finished and b)
    assert failed.state is S.FAILED
    assert failed.reason.startswith("never taken by a worker: queued since ")
    assert ", re-sent at " in failed.reason


def test_requeue_resends_a_purged_build_and_refuses_one_not_queued(
        cluster: Cluster, purged: int, tmp_path: Path) -> None:
    jc = cluster.control()
    code, out, err = cluster.run("requeue", str(purged))
    assert code == 0, err
    assert f"build #{purged} a: sent again" in out
    assert jc.get_build(purged).reason.startswith("re-sent by ")
    jc.cancel(purged)
    code, out, err = cluster.run("requeue", str(purged))
    assert code == 5
    assert err.strip() == f"Error: build {purged} is cancelled, not queued: only a queued " \
                          f"build can be requeued"
