"""Lost queued builds in the storage (every backend, by the ``storage`` fixture of
``conftest.py``), and the rules of :mod:`jobcontrol.execution.queued` on them."""

from __future__ import annotations

from datetime import timedelta

from jobcontrol.config.model import JobDefinition
from jobcontrol.execution import queued
from jobcontrol.models import Build, BuildState
from jobcontrol.storage import Storage
from jobcontrol.storage.base import SLOT_WAIT
from tests.test_storage_contract import claim, enqueue, start

S = BuildState


def test_a_queued_build_is_re_sent_once_first_then_by_hand(storage: Storage) -> None:
    build = enqueue(storage)
    assert build is not None and build.heartbeat is None
    assert storage.mark_resent(build.id, "re-sent at noon", first=True)
    again = storage.get_build(build.id)
    assert again.state is S.QUEUED and again.reason == "re-sent at noon"
    assert again.heartbeat is not None
    assert not storage.mark_resent(build.id, "twice", first=True)  # another sweep: no
    assert storage.mark_resent(build.id, "by hand")  # requeue: yes
    assert storage.get_build(build.id).reason == "by hand"


def test_only_a_queued_build_is_re_sent_or_failed_as_lost(storage: Storage) -> None:
    build = enqueue(storage)
    assert build is not None
    assert start(storage, build.id) is not None
    assert not storage.mark_resent(build.id, "no")
    assert not storage.fail_queued(build.id, "no")  # the worker that started it wins
    assert storage.get_build(build.id).state is S.RUNNING
    other = enqueue(storage, "other")
    assert other is not None
    assert storage.fail_queued(other.id, "never taken by a worker")
    failed = storage.get_build(other.id)
    assert failed.state is S.FAILED and failed.reason == "never taken by a worker"
    assert failed.finished is not None and start(storage, other.id) is None


def test_a_build_of_another_definition_stays_queued_with_a_note(storage: Storage) -> None:
    build = enqueue(storage, definition_hash="theirs")
    assert build is not None
    assert start(storage, build.id, definition_hash="mine") is None  # not claimed
    assert storage.note_queued(build.id, "given back by worker w: defines it otherwise")
    kept = storage.get_build(build.id)
    assert (kept.state, kept.started, kept.heartbeat) == (S.QUEUED, None, None)
    assert kept.reason == "given back by worker w: defines it otherwise"
    started = start(storage, build.id, definition_hash="theirs", worker_id="w2",
                    dependency_builds={"up": 3})  # a matching worker
    assert started is not None and started.state is S.RUNNING
    assert storage.get_build(build.id) == started  # what it returns is what it stored
    assert not storage.note_queued(build.id, "too late")  # only a queued build
    assert storage.get_build(build.id).reason == "given back by worker w: defines it otherwise"


class _Sender:
    def __init__(self) -> None:
        self.sent: list[int] = []

    def __call__(self, build: Build) -> None:
        self.sent.append(build.id)


def _jobs(*ids: str) -> dict[str, JobDefinition]:
    return {job_id: JobDefinition(id=job_id, title=job_id, function=f"pkg.{job_id}")
            for job_id in ids}


def test_the_sweep_re_sends_a_lost_build_once_then_fails_it(storage: Storage) -> None:
    build = enqueue(storage)
    assert build is not None
    send, jobs = _Sender(), _jobs("job")
    assert queued.sweep_queued(storage, jobs, send, timeout=3600) == []  # not yet lost
    assert queued.holds_job(storage, build, jobs, 3600, storage.now())
    later = storage.now() + timedelta(hours=2)
    assert not queued.holds_job(storage, build, jobs, 3600, later)  # lost: frees its job
    assert [b.id for b in queued.lost_builds(storage, jobs, 3600, later)] == [build.id]
    [(resent, what)] = queued.sweep_queued(storage, jobs, send, timeout=0.0001)
    assert (resent.id, what, send.sent) == (build.id, "re-sent", [build.id])
    while not queued.sweep_queued(storage, jobs, send, timeout=0.0001):
        pass  # the clock moves on past the timeout
    failed = storage.get_build(build.id)
    assert failed.state is S.FAILED and send.sent == [build.id]
    assert failed.reason is not None
    assert failed.reason.startswith("never taken by a worker: queued since ")
    assert ", re-sent at " in failed.reason


def test_a_build_that_rightly_waits_is_not_lost(storage: Storage) -> None:
    upstream = claim(storage, "up")
    waiting = enqueue(storage, dependency_builds={"up": upstream.id})
    busy = enqueue(storage, "up")  # its job runs its one allowed build
    assert waiting is not None and busy is not None
    later = storage.now() + timedelta(hours=2)
    assert queued.lost_builds(storage, _jobs("job", "up"), 60, later) == []
    storage.finish_build(upstream.id, S.SUCCESS)
    lost = queued.lost_builds(storage, _jobs("job", "up"), 60, later)
    assert sorted(b.id for b in lost) == [waiting.id, busy.id]


def test_builds_waiting_for_a_slot_come_oldest_first(storage: Storage) -> None:
    running = claim(storage, "job")
    first, second, other = enqueue(storage), enqueue(storage), enqueue(storage)
    not_waiting = enqueue(storage, "other")
    assert first and second and other and not_waiting
    assert storage.slot_waiters("job") == []
    for build in (second, first):  # recorded in any order
        assert storage.wait_for_slot(build.id, f"{SLOT_WAIT}: job job was running")
    assert not storage.wait_for_slot(running.id, f"{SLOT_WAIT}: no")  # not queued
    assert [b.id for b in storage.slot_waiters("job")] == [first.id]
    assert [b.id for b in storage.slot_waiters("job", limit=5)] == [first.id, second.id]
    assert storage.get_build(first.id).state is S.QUEUED
    assert storage.get_build(running.id).reason is None
    storage.finish_build(running.id, S.SUCCESS)
    assert start(storage, first.id) is not None  # started: it waits no more
    assert [b.id for b in storage.slot_waiters("job", limit=5)] == [second.id]
    assert storage.slot_waiters("other") == []


def test_queue_depths_count_queued_builds_per_queue(storage: Storage) -> None:
    first = enqueue(storage)
    enqueue(storage, "b")
    enqueue(storage, "c", queue="other")
    assert first is not None
    depths = queued.queue_depths(storage)
    assert [(d.queue, d.queued) for d in depths] == [("jobcontrol", 2), ("other", 1)]
    assert depths[0].oldest == first.created
