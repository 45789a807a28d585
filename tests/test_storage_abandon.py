"""What the storage keeps for abandoning a build truthfully (every backend): the end a
finish is given, the job's process group, and a runner fenced off once its build ended."""

from __future__ import annotations

import time
from datetime import timedelta

from jobcontrol.models import BuildState
from jobcontrol.storage import Storage
from tests.test_storage_contract import assert_utc, claim

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
