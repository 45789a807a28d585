"""Queued builds sent when their last upstream ends, by whoever records that end
(:mod:`jobcontrol.execution.dispatch`), without a broker: messages kept in a list (the
suite with real workers is ``tests/test_dispatch_celery.py``)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobcontrol import BuildState, JobControl
from jobcontrol.errors import BrokerError, JobControlError
from jobcontrol.execution.observer import BuildObserver
from jobcontrol.execution.remote import RemoteWorker
from jobcontrol.models import HOSTNAME
from jobcontrol.storage import Storage
from tests.support import make_project
from tests.test_remote import Broker, drain

S = BuildState

CONFIG = """\
executor: {type: celery, broker: "redis://127.0.0.1:1/0", queue: main}
runner: {heartbeat: 0.2s, heartbeat_timeout: 1h}
jobs:
  - {id: left, function: jobfuncs.make, args: [l]}
  - {id: right, function: jobfuncs.make, args: [r]}
  - id: join
    function: jobfuncs.make
    dependencies: [left, right]
    kwargs: {tag: j, value: !retval left}
  - {id: after_join, function: jobfuncs.make, args: [x], dependencies: [join]}
  - {id: other, function: jobfuncs.make, args: [o]}
"""


@pytest.fixture
def broker() -> Broker:
    return Broker()


@pytest.fixture
def jc(tmp_path: Path, storage: Storage, broker: Broker) -> Iterator[JobControl]:
    config = make_project(tmp_path / "project", CONFIG)
    with JobControl.from_config(config, storage) as control:
        control._sender = broker
        yield control


def _run_alone(jc: JobControl, broker: Broker, build_id: int) -> str:
    """Deliver the message of ``build_id`` (only), as a worker would."""
    [message] = [m for m in broker.sent if m[0] == build_id]
    broker.sent.remove(message)
    with contextlib.closing(RemoteWorker(jc, broker, BuildObserver())) as worker:
        return worker.handle(build_id, 0, message[4])


@pytest.fixture
def worker(jc: JobControl, broker: Broker) -> Iterator[RemoteWorker]:
    """A worker's handler, closed with the test (its pool's workers end with it)."""
    with contextlib.closing(RemoteWorker(jc, broker, BuildObserver())) as made:
        yield made


def test_a_diamond_is_sent_once_by_the_last_upstream_to_end(
        jc: JobControl, broker: Broker) -> None:
    left, right, join, _after = jc.submit("after_join", deps=True)
    assert sorted(m[0] for m in broker.sent) == [left.id, right.id]
    assert _run_alone(jc, broker, left.id) == "success"
    assert [m[0] for m in broker.sent] == [right.id]  # join still waits for right
    assert _run_alone(jc, broker, right.id) == "success"
    assert [m[0] for m in broker.sent] == [join.id]
    assert drain(jc, broker) == ["success", "success"]
    assert [m[0] for m in broker.log].count(join.id) == 1
    assert jc.get_build(join.id).dependency_builds == {"left": left.id, "right": right.id}


def test_an_upstream_ending_while_its_plan_is_sent_still_sends_its_dependent(
        jc: JobControl, broker: Broker,
        worker: RemoteWorker) -> None:
    """The broker delivers ``left`` and a worker runs it before ``build --async`` has sent
    ``right``: ``join`` exists already, so one of the two ends finds it ready."""
    ran: list[str] = []

    def deliver_at_once(build_id: int, queue: str, **kwargs: object) -> None:
        broker(build_id, queue, **kwargs)  # type: ignore[arg-type]
        if len(ran) == 0:
            broker.sent.pop()
            ran.append(worker.handle(build_id, 0, kwargs.get("job")))  # type: ignore[arg-type]

    jc._sender = deliver_at_once
    left, right, join = jc.submit("join", deps=True)
    assert ran == ["success"]
    assert [m[0] for m in broker.sent] == [right.id]
    assert drain(jc, broker) == ["success", "success"]
    assert [m[0] for m in broker.log] == [left.id, right.id, join.id]


def test_a_dependent_blocked_by_a_cancel_is_cancelled_with_the_reason(
        jc: JobControl, broker: Broker) -> None:
    left, _right, join, after = jc.submit("after_join", deps=True)
    jc.cancel(left.id, by="ann@box")
    for build, upstream in ((join, left), (after, join)):
        got = jc.get_build(build.id)
        assert got.state is S.CANCELLED
        assert got.reason == f"dependency {upstream.job_id} cancelled (build {upstream.id})"
    assert drain(jc, broker) == ["already cancelled", "success"]  # left; right runs


def test_a_dependent_blocked_by_an_abandoned_upstream_is_cancelled_by_the_reaper(
        jc: JobControl, broker: Broker) -> None:
    left, _right, join = jc.submit("join", deps=True)
    broker.sent.clear()
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid of this host that no longer runs: reaped at once
    jc.storage.start_queued_build(left.id, concurrency=1, host=HOSTNAME, pid=dead.pid)
    [reaped] = jc.reap()
    assert reaped.id == left.id and reaped.state is S.ABANDONED
    got = jc.get_build(join.id)
    assert got.state is S.CANCELLED
    assert got.reason == f"dependency left abandoned (build {left.id})"
    assert broker.sent == []


def test_a_failed_send_leaves_waiting_what_a_sent_build_will_send(
        jc: JobControl, broker: Broker) -> None:
    sent: list[int] = []

    def fails_on_other(build_id: int, queue: str, **kwargs: object) -> None:
        if len(sent) == 2:
            raise BrokerError("cannot send build to the broker redis://h: connection refused")
        sent.append(build_id)
        broker(build_id, queue, **kwargs)  # type: ignore[arg-type]

    jc._sender = fails_on_other
    with pytest.raises(BrokerError):
        jc.submit(["join", "other"], deps=True)
    left, right, join, other = sorted(jc.builds(), key=lambda b: b.id)
    assert (left.state, right.state, join.state) == (S.QUEUED,) * 3
    assert other.state is S.CANCELLED
    assert other.reason is not None and other.reason.startswith("not sent to the workers")
    assert drain(jc, broker) == ["success"] * 3


def test_a_message_for_a_waiting_build_is_not_sent_again(
        jc: JobControl, broker: Broker, worker: RemoteWorker) -> None:
    left, right, join = jc.submit("join", deps=True)
    # a duplicate, or a requeue by hand, delivered early
    assert worker.handle(join.id) == "waiting for dependencies"
    assert sorted(m[0] for m in broker.sent) == [left.id, right.id]


def test_a_build_a_worker_refuses_cancels_what_waits_for_it(
        jc: JobControl, broker: Broker, monkeypatch: pytest.MonkeyPatch) -> None:
    left, _right, join = jc.submit("join", deps=True)

    def cannot_import(job_id: str) -> None:  # a worker refuses a build it cannot run
        raise JobControlError(f"cannot import the function of {job_id}")

    monkeypatch.setattr(jc, "import_function", cannot_import)
    assert _run_alone(jc, broker, left.id) == "failed"
    got = jc.get_build(join.id)
    assert got.state is S.CANCELLED
    assert got.reason == f"dependency left failed (build {left.id})"
