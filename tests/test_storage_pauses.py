"""The storage contract of pauses (``jobcontrol pause``): every test runs against every
backend (the ``storage`` fixture of ``conftest.py``)."""

from __future__ import annotations

import threading

import pytest

from jobcontrol.models import BuildState
from jobcontrol.storage import Storage, open_storage


def test_a_job_is_not_paused_until_paused(storage: Storage) -> None:
    assert storage.job_pauses() == {}
    assert storage.pause_history("job") == []
    assert storage.resume_job("job", by="bob@box") is None


def test_pause_records_who_when_and_why(storage: Storage) -> None:
    before = storage.now()
    pause, made = storage.pause_job("job", by="alice@box", reason="upstream API down")
    after = storage.now()
    assert made
    assert (pause.job_id, pause.paused_by, pause.reason) == ("job", "alice@box",
                                                             "upstream API down")
    assert before <= pause.paused <= after
    assert pause.paused.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert pause.active and pause.resumed is None and pause.resumed_by is None
    assert storage.job_pauses() == {"job": pause}
    assert storage.job_pauses(["other"]) == {}
    assert storage.job_pauses(["job", "other"]) == {"job": pause}


def test_pausing_a_paused_job_keeps_the_pause_in_force(storage: Storage) -> None:
    first, _ = storage.pause_job("job", by="alice@box", reason="first")
    again, made = storage.pause_job("job", by="bob@box", reason="second")
    assert not made
    assert again == first
    assert len(storage.pause_history("job")) == 1


def test_resume_ends_the_pause_and_keeps_its_record(storage: Storage) -> None:
    pause, _ = storage.pause_job("job", by="alice@box")
    storage.pause_job("other", by="alice@box")
    ended = storage.resume_job("job", by="bob@box")
    assert ended is not None
    assert (ended.paused, ended.paused_by, ended.reason) == (pause.paused, "alice@box", None)
    assert ended.resumed_by == "bob@box" and not ended.active
    assert ended.resumed is not None and ended.resumed >= ended.paused
    assert set(storage.job_pauses()) == {"other"}
    assert storage.pause_history("job") == [ended]
    assert storage.resume_job("job", by="bob@box") is None  # nothing in force


def test_a_job_paused_again_has_its_pauses_latest_first(storage: Storage) -> None:
    storage.pause_job("job", by="a", reason="one")
    storage.resume_job("job", by="a")
    second, made = storage.pause_job("job", by="b", reason="two")
    assert made
    history = storage.pause_history("job")
    assert [p.reason for p in history] == ["two", "one"]
    assert [p.active for p in history] == [True, False]
    assert storage.pause_history("job", limit=1) == [second]
    assert storage.job_pauses() == {"job": second}


def test_racing_pauses_make_one(storage: Storage) -> None:
    # each thread with a storage object of its own where the backend is shared (SQL), as
    # processes racing are: the partial unique index decides
    shared = not storage.url.startswith("memory:")
    opened = [open_storage(storage.url) if shared else storage for _ in range(4)]
    results: list[bool] = []
    barrier = threading.Barrier(len(opened))

    def pause(mine: Storage, number: int) -> None:
        barrier.wait()
        results.append(mine.pause_job("job", by=f"user{number}")[1])

    threads = [threading.Thread(target=pause, args=(mine, n)) for n, mine in enumerate(opened)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for mine in opened:
            if mine is not storage:
                mine.close()
    assert sorted(results) == [False, False, False, True]
    assert len(storage.pause_history("job")) == 1


def test_build_counts_by_job_and_state(storage: Storage) -> None:
    # (beside the pauses: what /metrics reads besides them)
    assert storage.build_counts() == {}
    kwargs = {"definition": {}, "definition_hash": "h", "dependency_builds": {},
              "host": "h", "pid": 1}
    for job, state in [("a", BuildState.SUCCESS), ("a", BuildState.SUCCESS),
                       ("a", BuildState.FAILED), ("b", BuildState.RUNNING)]:
        build = storage.claim_build(job, concurrency=9, **kwargs)  # type: ignore[arg-type]
        if state is not BuildState.RUNNING:
            storage.finish_build(build.id, state)
    storage.enqueue_build("b", definition={}, definition_hash="h", dependency_builds={},
                          queue="q")
    assert storage.build_counts() == {
        ("a", BuildState.SUCCESS): 2, ("a", BuildState.FAILED): 1,
        ("b", BuildState.RUNNING): 1, ("b", BuildState.QUEUED): 1}


def test_a_paused_job_is_not_queued_unless_the_pause_is_ignored(storage: Storage) -> None:
    from jobcontrol.errors import JobPausedError
    from jobcontrol.models import NewRun, RunTrigger
    from tests.test_storage_contract import enqueue

    storage.pause_job("load", by="alice@box", reason="upstream down")
    new = NewRun(RunTrigger.API, "bob@box", ("load",), {}, None)
    # with and without a run of its own (one statement on PostgreSQL, two elsewhere)
    for origin in ({"new_run": new}, {}):
        with pytest.raises(JobPausedError, match=r"paused by alice@box since .*: upstream down"):
            enqueue(storage, "load", unless_paused=True, **origin)
        assert storage.list_builds() == [] and storage.list_runs() == []  # nothing recorded
    other = enqueue(storage, "other", new_run=new, unless_paused=True)  # not paused: queued
    assert other is not None and other.state is BuildState.QUEUED
    ignored = enqueue(storage, "load", new_run=new)  # the pause not asked about (--force)
    assert ignored is not None and ignored.state is BuildState.QUEUED
    storage.resume_job("load", by="alice@box")
    resumed = enqueue(storage, "load", new_run=new, unless_paused=True)
    assert resumed is not None and resumed.state is BuildState.QUEUED
    assert len(storage.list_runs()) == 3
