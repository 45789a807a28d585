"""What the storage keeps for abandoning a build truthfully (every backend): the end a
finish is given, the job's process group, and a runner fenced off once its build ended."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from jobcontrol.models import BuildState, ProgressItem
from jobcontrol.storage import Storage, open_storage
from tests.conftest import make_storage
from tests.test_storage_contract import assert_utc, claim, record

S = BuildState


def test_a_finish_can_say_when_the_build_ended(storage: Storage) -> None:
    build = claim(storage)
    assert build.heartbeat is not None
    time.sleep(0.01)
    done = storage.finish_build(build.id, S.ABANDONED, reason="no heartbeat",
                                finished=build.heartbeat)
    assert done.finished == build.heartbeat
    stored = storage.get_build(build.id)
    assert_utc(stored.finished)
    assert stored.finished == build.heartbeat
    assert stored.state is S.ABANDONED


def test_the_process_group_of_a_running_build_is_recorded(storage: Storage) -> None:
    build = claim(storage)
    assert build.pgid is None
    storage.set_process_group(build.id, 4321)
    assert storage.get_build(build.id).pgid == 4321
    # the finish of the build its storage claimed returns it too
    assert storage.finish_build(build.id, S.SUCCESS).pgid == 4321
    assert storage.get_build(build.id).pgid == 4321
    assert [b.pgid for b in storage.list_builds()] == [4321]


def test_a_claim_can_record_the_process_group(storage: Storage) -> None:
    """A pool's build: its worker (its group) is known before the claim, which records it
    (one write a build less than a claim and a :meth:`set_process_group`)."""
    build = claim(storage, pgid=4321)
    assert build.pgid == 4321
    assert storage.get_build(build.id).pgid == 4321
    assert storage.finish_build(build.id, S.SUCCESS).pgid == 4321
    assert [b.pgid for b in storage.list_builds()] == [4321]


def test_a_heartbeat_names_the_builds_that_are_not_running(storage: Storage) -> None:
    running = claim(storage, "a")
    ended = claim(storage, "b")
    storage.finish_build(ended.id, S.ABANDONED, reason="no heartbeat since")
    assert storage.heartbeat([running.id, ended.id, 999]) == {ended.id, 999}
    assert storage.heartbeat([running.id]) == set()
    assert storage.heartbeat([]) == set()


def test_an_abandoned_build_fences_its_runner_off(storage: Storage) -> None:
    """A runner that resumes after its build was abandoned changes nothing of the record:
    neither its heartbeat, nor its process group, nor its outcome."""
    build = claim(storage)
    storage.set_process_group(build.id, 4321)
    ended = build.heartbeat
    assert ended is not None
    abandoned = storage.finish_build(build.id, S.ABANDONED, reason="no heartbeat since",
                                     finished=ended)
    time.sleep(0.01)
    storage.heartbeat([build.id])
    storage.set_process_group(build.id, 9999)
    late = storage.finish_build(build.id, S.SUCCESS, finished=ended + timedelta(seconds=5))
    assert late == abandoned
    assert storage.get_build(build.id) == abandoned
    assert abandoned.heartbeat == ended and abandoned.pgid == 4321


@pytest.fixture(params=["sqlite", "postgresql"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Storage, Storage]]:
    """Two processes' views of one storage: a runner's and another command's."""
    runner = make_storage(request.param, tmp_path, request)
    other = open_storage(runner.url)
    try:
        yield runner, other
    finally:
        runner.close()
        other.close()


@pytest.mark.parametrize("batch", [1, 500])  # a few records, and a batch sent as such
@pytest.mark.parametrize("how", ["claimed", "log end unknown", "started from the queue"])
def test_a_runner_whose_build_was_abandoned_writes_nothing_more(
        shared: tuple[Storage, Storage], batch: int, how: str) -> None:
    runner, other = shared
    if how == "started from the queue":  # a worker's build
        queued = other.enqueue_build("job", definition={}, definition_hash="h",
                                     dependency_builds={}, queue="q")
        assert queued is not None
        started = runner.start_queued_build(queued.id, concurrency=1, host="h", pid=1)
        assert started is not None
        build = started
    else:
        build = claim(runner)
    runner.append_logs(build.id, [record("before")])
    runner.set_progress(build.id, [ProgressItem((), 1, 10)])
    abandoned = other.finish_build(build.id, S.ABANDONED, reason="no heartbeat since",
                                   finished=build.heartbeat)
    if how == "log end unknown":  # as after a failed write: numbered from the table
        runner._forget_log_ends()  # type: ignore[attr-defined]
    # the runner resumes: its log records, progress, heartbeat and outcome are dropped
    runner.append_logs(build.id, [record(f"late {n}") for n in range(batch)])
    runner.set_progress(build.id, [ProgressItem((), 10, 10)])
    assert runner.heartbeat([build.id]) == {build.id}  # told: it stops the job
    late = runner.finish_build_with_logs(build.id, S.SUCCESS,
                                         logs=[record(f"last {n}") for n in range(batch)])
    assert late == abandoned
    assert other.get_build(build.id) == abandoned
    assert [r.message for r in other.get_logs(build.id)] == ["before"]
    assert [p.current for p in other.get_progress(build.id)] == [1]
    # anyone else may still add to its log (an operator's note, an import)
    other.append_logs(build.id, [record("note")])
    assert [r.message for r in other.get_logs(build.id)] == ["before", "note"]
