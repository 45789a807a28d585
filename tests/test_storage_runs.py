"""The storage contract of runs: every test runs against every backend (the ``storage``
fixture of ``conftest.py``)."""

from __future__ import annotations

import pytest

from jobcontrol.errors import RunNotFoundError
from jobcontrol.models import BuildState, NewRun, RunTrigger
from jobcontrol.storage import Storage
from tests.test_storage_contract import claim, enqueue


def test_a_run_is_recorded_with_its_trigger_who_when_targets_and_params(
        storage: Storage) -> None:
    before = storage.now()
    run = storage.create_run(RunTrigger.CLI, by="alice@box", targets=["report", "load"],
                             params={"report": {"day": "2026-12-01", "n": 3}}, note="why")
    assert run.id > 0
    assert (run.trigger, run.by, run.targets, run.note) == (
        RunTrigger.CLI, "alice@box", ("report", "load"), "why")
    assert run.params == {"report": {"day": "2026-12-01", "n": 3}}
    assert before <= run.created <= storage.now()
    assert storage.get_run(run.id) == run


def test_a_queued_build_records_its_new_run_in_the_same_write(storage: Storage) -> None:
    before = storage.now()
    new = NewRun(RunTrigger.API, "bob@box", ("load",), {"load": {"day": "x"}}, "queued")
    build = enqueue(storage, "load", new_run=new, params={"day": "x"},
                    definition={"function": "pkg.load", "kwargs": {"n": [1, 2]}},
                    dependency_builds={"up": 7})
    assert build is not None and build.run_id is not None
    assert storage.get_build(build.id) == build  # what it returns is what it stored
    run = storage.get_run(build.run_id)
    assert (run.trigger, run.by, run.targets, run.params, run.note) == (
        RunTrigger.API, "bob@box", ("load",), {"load": {"day": "x"}}, "queued")
    assert before <= run.created <= storage.now()
    assert storage.run_builds([run.id]) == {run.id: [build]}
    later = enqueue(storage, "load", run_id=run.id)  # the run's next build names it
    assert later is not None and storage.get_build(later.id) == later
    assert later.run_id == run.id and len(storage.list_runs()) == 1


def test_an_unknown_run_is_not_found(storage: Storage) -> None:
    with pytest.raises(RunNotFoundError, match="run 42 not found"):
        storage.get_run(42)


def test_builds_point_at_their_run(storage: Storage) -> None:
    run = storage.create_run(RunTrigger.SCHEDULE, by="cron@box", targets=["a"])
    other = storage.create_run(RunTrigger.WEB, by="bob", targets=["b"])
    first = claim(storage, "a", run_id=run.id)
    storage.finish_build(first.id, BuildState.SUCCESS)
    second = claim(storage, "b", run_id=run.id, params={"n": 5})
    queued = storage.enqueue_build("c", definition={}, definition_hash="h",
                                   dependency_builds={}, queue="q", run_id=other.id)
    skipped = storage.record_build("d", BuildState.SKIPPED, reason="overlap", definition={},
                                   definition_hash="h", host="h", pid=1, run_id=other.id)
    claim(storage, "e")  # of no run
    assert first.run_id == run.id and second.params == {"n": 5}
    assert queued is not None and queued.run_id == other.id
    assert storage.get_build(second.id).params == {"n": 5}
    assert storage.get_build(first.id).params is None
    found = storage.run_builds([run.id, other.id, 99])
    assert [(b.id, b.state) for b in found[run.id]] == [(first.id, BuildState.SUCCESS),
                                                       (second.id, BuildState.RUNNING)]
    assert [b.id for b in found[other.id]] == [queued.id, skipped.id]
    assert found[99] == []


def test_runs_are_listed_newest_first_by_job_and_in_pages(storage: Storage) -> None:
    runs = [storage.create_run(RunTrigger.CLI, by="x", targets=[job]) for job in "abc"]
    claim(storage, "a", run_id=runs[0].id)
    claim(storage, "b", run_id=runs[2].id)
    assert [r.id for r in storage.list_runs()] == [r.id for r in reversed(runs)]
    assert [r.id for r in storage.list_runs(limit=2)] == [runs[2].id, runs[1].id]
    assert [r.id for r in storage.list_runs(before_id=runs[2].id)] == [runs[1].id, runs[0].id]
    assert [r.id for r in storage.list_runs(job_id="a")] == [runs[0].id]
    assert storage.list_runs(job_id="nothing") == []


def test_a_success_with_parameters_of_its_own_is_not_the_last_success(
        storage: Storage) -> None:
    plain = claim(storage, "job")
    storage.finish_build(plain.id, BuildState.SUCCESS)
    special = claim(storage, "job", params={"day": "2020-01-01"})
    storage.finish_build(special.id, BuildState.SUCCESS)
    summary = storage.job_summaries(["job"])["job"]
    assert summary.last_build is not None and summary.last_build.id == special.id
    assert summary.last_success is not None and summary.last_success.id == plain.id
    assert storage.job_summaries()["job"].last_success.id == plain.id  # type: ignore[union-attr]


def test_the_builds_that_consumed_a_build(storage: Storage) -> None:
    fetch = claim(storage, "fetch.v2", concurrency=9)
    older = claim(storage, "fetch.v2", concurrency=9)
    report = claim(storage, "report", concurrency=9, dependency_builds={"fetch.v2": fetch.id})
    other = claim(storage, "report", concurrency=9, dependency_builds={"fetch.v2": older.id})
    queued = storage.enqueue_build("audit", definition={}, definition_hash="h",
                                   dependency_builds={"fetch.v2": fetch.id,
                                                      "x": older.id}, queue="q")
    assert queued is not None
    claim(storage, "elsewhere", concurrency=9, dependency_builds={"fetch.v2": fetch.id})
    consumers = storage.consumers(fetch.id, "fetch.v2", ["report", "audit", "report"])
    assert [b.id for b in consumers] == [report.id, queued.id]  # oldest first, no repeats
    assert [b.id for b in storage.consumers(older.id, "fetch.v2", ["report", "audit"])] == [
        other.id]
    # a key naming another job's build of the same id is not this build's
    assert storage.consumers(older.id, "y", ["audit"]) == []
    assert [b.id for b in storage.consumers(fetch.id, "fetch.v2", ["report", "audit"],
                                            limit=1)] == [report.id]
    assert storage.consumers(fetch.id, "fetch.v2", []) == []


def test_the_consumers_are_looked_for_among_the_first_later_builds_only(
        storage: Storage) -> None:
    fetch = claim(storage, "fetch", concurrency=9)
    claim(storage, "report", concurrency=9)  # consumed nothing
    late = claim(storage, "report", concurrency=9, dependency_builds={"fetch": fetch.id})
    assert storage.consumers(fetch.id, "fetch", ["report"], scan=1) == []
    assert [b.id for b in storage.consumers(fetch.id, "fetch", ["report"], scan=2)] == [
        late.id]
