"""The storage contract: every test runs against every backend (see ``STORAGE_BACKENDS``)."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from jobcontrol.errors import BuildNotFoundError, JobAlreadyRunningError, StorageError
from jobcontrol.models import (
    Build,
    BuildState,
    ExceptionInfo,
    LogRecord,
    ProgressItem,
    StoredValue,
)
from jobcontrol.storage import Storage
from jobcontrol.timeutil import utcnow

S = BuildState


def claim(storage: Storage, job_id: str = "job", concurrency: int = 1, **kwargs: Any) -> Build:
    """Claim a build with dull defaults for everything the test does not care about."""
    kwargs.setdefault("definition", {"function": f"pkg.{job_id}"})
    kwargs.setdefault("definition_hash", "hash")
    kwargs.setdefault("dependency_builds", {})
    kwargs.setdefault("host", "host1")
    kwargs.setdefault("pid", 1234)
    return storage.claim_build(job_id, concurrency=concurrency, **kwargs)


def built(storage: Storage, job_id: str, state: BuildState) -> Build:
    """A build of ``job_id`` claimed and, unless ``state`` is running, finished as ``state``."""
    build = claim(storage, job_id, concurrency=100)
    if state is S.RUNNING:
        return build
    return storage.finish_build(build.id, state)


def record(message: str, level: int = logging.INFO, **kwargs: Any) -> LogRecord:
    return LogRecord(time=utcnow(), level=level, logger="test", message=message, **kwargs)


def assert_utc(value: datetime | None) -> None:
    assert value is not None
    assert value.utcoffset() == timedelta(0)


# -- lifecycle -------------------------------------------------------------------------------


def test_install_is_idempotent_and_versioned(storage: Storage) -> None:
    version = storage.install()
    assert version > 0
    assert storage.install() == version
    assert storage.schema_version() == version


def test_first_use_installs_the_schema(storage: Storage) -> None:
    assert storage.list_builds() == []
    assert storage.schema_version() > 0


def test_a_closed_storage_refuses_use(storage: Storage) -> None:
    claim(storage)
    storage.close()
    with pytest.raises(StorageError, match="closed"):
        storage.list_builds()
    storage.close()  # closing twice is harmless


# -- claim and finish ------------------------------------------------------------------------


def test_claim_creates_a_running_build(storage: Storage) -> None:
    # the storage's clock (PostgreSQL's: this machine's plus an offset measured on
    # connecting, which may be off by a millisecond from this machine's own)
    before = storage.now()
    build = claim(storage, "fetch", host="box", pid=42, definition_hash="abc")
    after = storage.now()
    assert build.job_id == "fetch"
    assert build.state is S.RUNNING
    assert (build.host, build.pid, build.definition_hash) == ("box", 42, "abc")
    assert build.created == build.started == build.heartbeat
    assert build.started is not None and before <= build.started <= after
    assert build.finished is None and build.result is None and build.exception is None
    assert storage.get_build(build.id) == build


def test_build_ids_increase_across_jobs(storage: Storage) -> None:
    ids = [claim(storage, job).id for job in ("a", "b", "a2", "c")]
    assert ids == sorted(ids) and len(set(ids)) == 4


def test_claim_is_refused_while_the_job_runs(storage: Storage) -> None:
    first = claim(storage, "job")
    with pytest.raises(JobAlreadyRunningError) as info:
        claim(storage, "job")
    assert info.value.job_id == "job"
    assert info.value.running == (first.id,)
    assert str(first.id) in str(info.value)
    assert [b.id for b in storage.list_builds("job")] == [first.id]  # nothing was created
    claim(storage, "other")  # another job is not held up


def test_claim_allows_concurrency_running_builds(storage: Storage) -> None:
    running = [claim(storage, "job", concurrency=3).id for _ in range(3)]
    with pytest.raises(JobAlreadyRunningError) as info:
        claim(storage, "job", concurrency=3)
    assert info.value.running == tuple(running)
    # a lower limit seen by a later claim counts the same running builds
    with pytest.raises(JobAlreadyRunningError):
        claim(storage, "job", concurrency=1)
    storage.finish_build(running[1], S.SUCCESS)
    fourth = claim(storage, "job", concurrency=3)
    assert storage.job_summaries()["job"].running == (running[0], running[2], fourth.id)


def test_claim_after_the_build_finished(storage: Storage) -> None:
    first = claim(storage)
    storage.finish_build(first.id, S.FAILED)
    assert claim(storage).id > first.id


def test_claim_rejects_a_concurrency_below_one(storage: Storage) -> None:
    with pytest.raises(ValueError, match="concurrency"):
        claim(storage, concurrency=0)


def test_finish_records_the_outcome(storage: Storage) -> None:
    build = claim(storage)
    result = StoredValue("json", '{"rows": 3}')
    done = storage.finish_build(build.id, S.SUCCESS, result=result)
    assert done.state is S.SUCCESS and done.result == result and done.exception is None
    assert done.finished is not None and build.started is not None
    assert done.finished >= build.started
    assert (done.created, done.started) == (build.created, build.started)
    assert storage.get_build(build.id) == done


def test_finish_with_logs_returns_the_build_as_stored(storage: Storage) -> None:
    """The finished build carries the definition and dependencies claimed (a SQL storage
    reuses what it decoded at the claim) and equals the build read back."""
    definition = {"function": "pkg.job", "kwargs": {"n": [1, {"x": None}]}, "title": "Zoë"}
    build = claim(storage, definition=definition, dependency_builds={"up": 7})
    storage.append_logs(build.id, [record("first")])
    done = storage.finish_build_with_logs(build.id, S.SUCCESS, logs=[record("a"), record("b")])
    assert done.definition == definition and done.dependency_builds == {"up": 7}
    assert storage.get_build(build.id) == done
    assert [r.seq for r in storage.get_logs(build.id)] == [1, 2, 3]
    with pytest.raises(BuildNotFoundError):
        storage.finish_build_with_logs(999, S.SUCCESS, logs=[record("a")])


def test_finish_returns_what_changed_since_the_claim(storage: Storage) -> None:
    """A heartbeat beaten and a cancel asked for after the claim are in the finished build
    (a SQL storage builds it from its claim, and reads back only what others may change)."""
    build = claim(storage)
    time.sleep(0.002)
    storage.heartbeat([build.id])
    storage.request_cancel(build.id, "stop it")
    done = storage.finish_build_with_logs(build.id, S.CANCELLED, logs=[record("a")],
                                          reason="stop it")
    assert done.heartbeat is not None and build.heartbeat is not None
    assert done.heartbeat > build.heartbeat
    assert done.cancel_requested is not None and done.cancel_reason == "stop it"
    assert storage.get_build(build.id) == done


def test_finish_committed_later_is_recorded_once_committed(storage: Storage) -> None:
    """``commit_later`` may leave the outcome pending, never lost: the next write and
    :meth:`commit_pending` commit it, and this object reads it as recorded meanwhile."""
    first = claim(storage, "first")
    done = storage.finish_build_with_logs(first.id, S.SUCCESS, logs=[record("a")],
                                          result=StoredValue("json", "1"), commit_later=True)
    assert storage.get_build(first.id) == done and done.state is S.SUCCESS
    second = claim(storage, "second")  # commits the first outcome with it, where pending
    storage.finish_build_with_logs(second.id, S.FAILED, logs=[], reason="boom",
                                   commit_later=True)
    storage.commit_pending()
    storage.commit_pending()  # nothing left: a no-op
    assert [b.state for b in storage.list_builds()] == [S.FAILED, S.SUCCESS]
    assert [r.message for r in storage.get_logs(first.id)] == ["a"]


def test_finish_a_failure_with_reason_and_exception(storage: Storage) -> None:
    build = claim(storage)
    exc = ExceptionInfo("ValueError", "bad input: ü", "Traceback (most recent call last):\n...")
    done = storage.finish_build(build.id, S.FAILED, reason="timed out after 10m", exception=exc)
    assert (done.state, done.reason, done.exception, done.result) == (
        S.FAILED, "timed out after 10m", exc, None
    )
    assert storage.get_build(build.id).exception == exc


def test_finish_of_a_finished_build_changes_nothing(storage: Storage) -> None:
    build = claim(storage)
    done = storage.finish_build(build.id, S.SUCCESS, result=StoredValue("json", "1"))
    late = storage.finish_build(
        build.id, S.ABANDONED, reason="worker lost", exception=ExceptionInfo("E", "m", "t")
    )
    assert late == done
    assert storage.get_build(build.id) == done


def test_finish_unknown_build(storage: Storage) -> None:
    with pytest.raises(BuildNotFoundError) as info:
        storage.finish_build(999, S.SUCCESS)
    assert info.value.build_id == 999


def test_finish_needs_a_finished_state(storage: Storage) -> None:
    build = claim(storage)
    with pytest.raises(ValueError, match="running"):
        storage.finish_build(build.id, S.RUNNING)
    assert storage.get_build(build.id).state is S.RUNNING


def test_get_unknown_build(storage: Storage) -> None:
    claim(storage)
    with pytest.raises(BuildNotFoundError, match="build 999 not found"):
        storage.get_build(999)


def test_heartbeat_updates_running_builds_only(storage: Storage) -> None:
    running = claim(storage, "a")
    finished = built(storage, "b", S.SUCCESS)
    time.sleep(0.002)
    storage.heartbeat([running.id, finished.id, 999])
    beat = storage.get_build(running.id).heartbeat
    assert_utc(beat)
    assert beat is not None and running.heartbeat is not None and beat > running.heartbeat
    assert storage.get_build(finished.id).heartbeat == finished.heartbeat
    storage.heartbeat([])


# -- listing ---------------------------------------------------------------------------------


def test_cancel_request_of_a_running_build(storage: Storage) -> None:
    build = claim(storage)
    other = claim(storage, "other")
    assert storage.cancel_requests([build.id, other.id]) == {}
    asked = storage.request_cancel(build.id, "cancelled by ann@a: wrong data")
    assert asked.state is BuildState.RUNNING  # its runner stops it
    assert asked.cancel_reason == "cancelled by ann@a: wrong data"
    assert_utc(asked.cancel_requested)
    # the first request stands
    again = storage.request_cancel(build.id, "cancelled by bob@b")
    assert again.cancel_reason == "cancelled by ann@a: wrong data"
    assert again.cancel_requested == asked.cancel_requested
    assert storage.cancel_requests([build.id, other.id, 999]) == {
        build.id: "cancelled by ann@a: wrong data"}
    storage.finish_build(build.id, BuildState.CANCELLED, reason=asked.cancel_reason)
    assert storage.cancel_requests([build.id]) == {}  # only running builds are asked


def test_cancel_request_of_a_finished_build_changes_nothing(storage: Storage) -> None:
    done = built(storage, "job", BuildState.SUCCESS)
    after = storage.request_cancel(done.id, "cancelled by ann@a")
    assert after == storage.get_build(done.id)
    assert after.state is BuildState.SUCCESS
    assert after.cancel_requested is None
    with pytest.raises(BuildNotFoundError):
        storage.request_cancel(999, "cancelled by ann@a")


def test_storage_clock_is_close_to_this_one(storage: Storage) -> None:
    # on one machine the database's clock and ours agree; the offset is measured, not zero
    assert abs((storage.now() - utcnow()).total_seconds()) < 1
    assert_utc(storage.now())


@pytest.fixture
def history(storage: Storage) -> list[Build]:
    """Eight builds of jobs a and b in known states, oldest first."""
    plan = [("a", S.SUCCESS), ("b", S.FAILED), ("a", S.FAILED), ("b", S.SUCCESS),
            ("a", S.SKIPPED), ("b", S.CANCELLED), ("a", S.ABANDONED), ("a", S.RUNNING)]
    return [built(storage, job, state) for job, state in plan]


def ids(builds: list[Build]) -> list[int]:
    return [b.id for b in builds]


def test_list_builds_newest_first(storage: Storage, history: list[Build]) -> None:
    assert ids(storage.list_builds()) == ids(history)[::-1]
    assert storage.list_builds()[0] == storage.get_build(history[-1].id)


def test_list_builds_of_one_job(storage: Storage, history: list[Build]) -> None:
    assert ids(storage.list_builds("b")) == [h.id for h in history if h.job_id == "b"][::-1]
    assert storage.list_builds("nobody") == []


def test_list_builds_by_state(storage: Storage, history: list[Build]) -> None:
    ok = storage.list_builds(states=[S.SUCCESS, S.SKIPPED])
    assert ids(ok) == [history[4].id, history[3].id, history[0].id]
    assert ids(storage.list_builds("a", states=[S.FAILED])) == [history[2].id]
    assert ids(storage.list_builds(states=[S.RUNNING])) == [history[7].id]
    assert storage.list_builds(states=[]) == []


def test_list_builds_limit_and_paging(storage: Storage, history: list[Build]) -> None:
    all_ids = ids(history)[::-1]
    assert ids(storage.list_builds(limit=3)) == all_ids[:3]
    assert storage.list_builds(limit=0) == []
    pages: list[int] = []
    before = None
    while True:
        page = storage.list_builds(limit=3, before_id=before)
        if not page:
            break
        pages.extend(ids(page))
        before = page[-1].id
    assert pages == all_ids
    a_ids = [h.id for h in history if h.job_id == "a"][::-1]
    assert ids(storage.list_builds("a", limit=2, before_id=a_ids[1])) == a_ids[2:4]


# -- job summaries ---------------------------------------------------------------------------


def test_job_summaries(storage: Storage, history: list[Build]) -> None:
    summaries = storage.job_summaries()
    assert set(summaries) == {"a", "b"}
    a, b = summaries["a"], summaries["b"]
    assert a.job_id == "a"
    assert a.last_build == storage.get_build(history[7].id)  # running
    assert a.last_success == storage.get_build(history[0].id)  # a skip is never a success
    assert a.running == (history[7].id,)
    assert b.last_build == storage.get_build(history[5].id)
    assert b.last_success == storage.get_build(history[3].id)
    assert b.running == ()


def test_job_summaries_of_jobs_never_ok(storage: Storage) -> None:
    failed = built(storage, "f", S.FAILED)
    summary = storage.job_summaries()["f"]
    assert summary.last_build == failed
    assert (summary.last_success, summary.last_output_id, summary.running) == (None, None, ())


def test_job_summaries_filter(storage: Storage, history: list[Build]) -> None:
    built(storage, "c", S.SUCCESS)
    assert set(storage.job_summaries(["a", "c", "never-built"])) == {"a", "c"}
    assert set(storage.job_summaries(iter(["b"]))) == {"b"}
    assert storage.job_summaries([]) == {}
    assert storage.job_summaries(["never-built"]) == {}


def test_job_summaries_with_many_running(storage: Storage) -> None:
    running = [claim(storage, "par", concurrency=5).id for _ in range(5)]
    summary = storage.job_summaries(["par"])["par"]
    assert summary.running == tuple(running)
    assert summary.last_build is not None and summary.last_build.id == running[-1]


def test_job_summaries_pick_the_newest_success_never_a_skip(storage: Storage) -> None:
    only_skips = [built(storage, "skips", S.SKIPPED) for _ in range(2)]
    skip_then_success = [built(storage, "mixed", s) for s in (S.SKIPPED, S.SUCCESS, S.FAILED)]
    summaries = storage.job_summaries()
    assert summaries["skips"].last_build == only_skips[-1]
    assert summaries["skips"].last_success is None
    assert summaries["skips"].last_output_id is None
    assert summaries["mixed"].last_success == skip_then_success[1]
    assert summaries["mixed"].last_output_id == skip_then_success[1].id
    assert summaries["mixed"].last_build == skip_then_success[2]


def test_job_summaries_of_many_jobs(storage: Storage) -> None:
    # ids that sort close together ("a" < "a.b" < "a-b" ...), each job found once
    names = ["a", "a.b", "a-b", "a_b", "ab", "b", "B", "z" * 40, "ü", "0"]
    newest = {name: [built(storage, name, S.SUCCESS) for _ in range(3)][-1] for name in names}
    summaries = storage.job_summaries()
    assert {job: s.last_build for job, s in summaries.items()} == newest
    assert set(storage.job_summaries(names[:4])) == set(names[:4])


def test_job_summaries_of_an_empty_storage(storage: Storage) -> None:
    assert storage.job_summaries() == {}


# -- round trips -----------------------------------------------------------------------------


def test_build_fields_round_trip(storage: Storage) -> None:
    definition = {
        "function": "pkg.mod:func",
        "args": [1, 2.5, None, True],
        "kwargs": {"name": "Zoë ☃", "nested": {"list": [{"x": 1}]}},
        "timeout": 600,
    }
    first = built(storage, "dep", S.SUCCESS)
    build = claim(storage, "job", definition=definition, dependency_builds={"dep": first.id},
                  retry_of=first.id)
    result = StoredValue("pickle", "gASVBQAAAAAAAACMAWGULg==")
    exc = ExceptionInfo("pkg.Error", "line 1\nline 2 ü", "Traceback...\n" * 50)
    storage.finish_build(build.id, S.FAILED, reason="killed by signal 9", result=result,
                         exception=exc)
    got = storage.get_build(build.id)
    assert got.definition == definition
    assert got.dependency_builds == {"dep": first.id}
    assert got.retry_of == first.id
    assert (got.result, got.exception, got.reason) == (result, exc, "killed by signal 9")


def test_tuples_in_a_definition_come_back_as_lists(storage: Storage) -> None:
    build = claim(storage, definition={"args": (1, 2)})
    assert build.definition == {"args": [1, 2]}
    assert storage.get_build(build.id).definition == {"args": [1, 2]}


def test_a_definition_that_is_not_json_is_refused(storage: Storage) -> None:
    with pytest.raises(StorageError, match="JSON"):
        claim(storage, definition={"f": object()})
    assert storage.list_builds() == []


def test_returned_builds_are_copies(storage: Storage) -> None:
    build = claim(storage, definition={"kwargs": {"a": 1}}, dependency_builds={"d": 1})
    build.definition["kwargs"]["a"] = 2
    build.dependency_builds["d"] = 99
    listed = storage.list_builds()[0]
    listed.definition.clear()
    got = storage.get_build(build.id)
    assert got.definition == {"kwargs": {"a": 1}}
    assert got.dependency_builds == {"d": 1}
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.state = S.FAILED  # type: ignore[misc]


def test_times_are_utc_and_ordered(storage: Storage) -> None:
    build = claim(storage)
    time.sleep(0.002)
    done = storage.finish_build(build.id, S.SUCCESS)
    for value in (done.created, done.started, done.finished, done.heartbeat):
        assert_utc(value)
    assert done.created is not None and done.started is not None and done.finished is not None
    assert done.created <= done.started < done.finished
    assert done.duration is not None and done.duration > 0
    later = claim(storage)
    assert later.created is not None and later.created >= done.created


def test_ids_are_never_reused(storage: Storage) -> None:
    first = claim(storage)
    storage.finish_build(first.id, S.SUCCESS)
    storage.delete_build(first.id)
    assert claim(storage).id > first.id


# -- deletion --------------------------------------------------------------------------------


def test_delete_build_takes_its_logs_and_progress(storage: Storage) -> None:
    keep = built(storage, "keep", S.SUCCESS)
    gone = built(storage, "gone", S.SUCCESS)
    for build in (keep, gone):
        storage.append_logs(build.id, [record("one"), record("two")])
        storage.set_progress(build.id, [ProgressItem((), 1, 2)])
    storage.delete_build(gone.id)
    with pytest.raises(BuildNotFoundError):
        storage.get_build(gone.id)
    assert storage.get_logs(gone.id) == []
    assert storage.get_progress(gone.id) == []
    assert "gone" not in storage.job_summaries()
    assert len(storage.get_logs(keep.id)) == 2
    assert len(storage.get_progress(keep.id)) == 1


def test_delete_unknown_build(storage: Storage) -> None:
    with pytest.raises(BuildNotFoundError):
        storage.delete_build(12345)


# -- logs ------------------------------------------------------------------------------------


def test_logs_are_numbered_in_order_across_batches(storage: Storage) -> None:
    build = claim(storage)
    storage.append_logs(build.id, [record("a"), record("b")])
    storage.append_logs(build.id, [])
    storage.append_logs(build.id, [record("c")])
    logs = storage.get_logs(build.id)
    assert [(r.seq, r.message) for r in logs] == [(1, "a"), (2, "b"), (3, "c")]


def test_logs_round_trip(storage: Storage) -> None:
    build = claim(storage)
    when = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
    records = [
        LogRecord(when, logging.WARNING, "pkg.mod", "naïve ☃ 日本語 \t end"),
        LogRecord(when, logging.ERROR, "root", "boom", exception="Traceback...\nValueError: x"),
        LogRecord(when.replace(tzinfo=None), logging.INFO, "stdout", "naive time is UTC"),
        LogRecord(when.astimezone(timezone(timedelta(hours=2))), 5, "x", "", exception=None),
    ]
    storage.append_logs(build.id, records)
    logs = storage.get_logs(build.id)
    assert [dataclasses.replace(r, seq=0) for r in logs] == [
        dataclasses.replace(r, time=when) for r in records
    ]
    for r in logs:
        assert_utc(r.time)


def test_log_text_with_separators_and_escapes_round_trips(storage: Storage) -> None:
    build = claim(storage)
    texts = ["tab\there", "two\nlines", "cr\r\n", "back\\slash \\N \\t", "\\.", "\\",
             "\\N", "", "  spaced  ", "\u2028 \x7f \x1b[31m"]
    storage.append_logs(build.id, [
        LogRecord(utcnow(), logging.INFO, f"log\t{n}", text, exception=text or None)
        for n, text in enumerate(texts)
    ])
    logs = storage.get_logs(build.id)
    assert [r.message for r in logs] == texts
    assert [r.logger for r in logs] == [f"log\t{n}" for n in range(len(texts))]
    assert [r.exception for r in logs] == [text or None for text in texts]


def test_logs_of_builds_are_kept_apart(storage: Storage) -> None:
    one, two = claim(storage, "one"), claim(storage, "two")
    storage.append_logs(one.id, [record("1a")])
    storage.append_logs(two.id, [record("2a"), record("2b")])
    storage.append_logs(one.id, [record("1b")])
    assert [(r.seq, r.message) for r in storage.get_logs(one.id)] == [(1, "1a"), (2, "1b")]
    assert [(r.seq, r.message) for r in storage.get_logs(two.id)] == [(1, "2a"), (2, "2b")]


def test_log_filters(storage: Storage) -> None:
    build = claim(storage)
    levels = [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR] * 5
    storage.append_logs(build.id, [record(f"m{i}", level) for i, level in enumerate(levels)])
    warnings = storage.get_logs(build.id, min_level=logging.WARNING)
    assert [r.seq for r in warnings] == [i + 1 for i, lv in enumerate(levels) if lv >= 30]
    assert [r.seq for r in storage.get_logs(build.id, after_seq=17)] == [18, 19, 20]
    assert [r.seq for r in storage.get_logs(build.id, limit=2)] == [1, 2]
    assert storage.get_logs(build.id, limit=0) == []
    assert [r.seq for r in storage.get_logs(
        build.id, min_level=logging.ERROR, after_seq=4, limit=2)] == [8, 12]
    assert storage.get_logs(build.id, after_seq=20) == []


def test_many_logs_in_a_few_batches(storage: Storage) -> None:
    build = claim(storage)
    now = utcnow()
    for batch in range(4):
        storage.append_logs(build.id, [
            LogRecord(now, logging.INFO, "bulk", f"line {batch * 5000 + i}") for i in range(5000)
        ])
    logs = storage.get_logs(build.id)
    assert len(logs) == 20_000
    assert [r.seq for r in logs] == list(range(1, 20_001))
    assert all(r.message == f"line {r.seq - 1}" for r in logs)


def test_logs_of_an_unknown_build(storage: Storage) -> None:
    with pytest.raises(BuildNotFoundError):
        storage.append_logs(999, [record("lost")])
    assert storage.get_logs(999) == []


# -- progress --------------------------------------------------------------------------------


def test_progress_upsert_and_order(storage: Storage) -> None:
    build = claim(storage)
    storage.set_progress(build.id, [
        ProgressItem(("download", "b.zip"), 1, 10, "b"),
        ProgressItem(("download",), 1, 20),
        ProgressItem((), 0, None, "starting"),
        ProgressItem(("download", "a.zip"), 5, 10),
    ])
    storage.set_progress(build.id, [
        ProgressItem(("download", "b.zip"), 10, 10, "done"),
        ProgressItem(("parse",), 3, 4),
    ])
    items = storage.get_progress(build.id)
    assert [(i.group, i.current, i.total, i.message) for i in items] == [
        ((), 0, None, "starting"),
        (("download",), 1, 20, None),
        (("download", "a.zip"), 5, 10, None),
        (("download", "b.zip"), 10, 10, "done"),
        (("parse",), 3, 4, None),
    ]
    for item in items:
        assert_utc(item.updated)
    assert items[3].updated is not None and items[0].updated is not None
    assert items[3].updated >= items[0].updated


def test_progress_keeps_given_update_times_and_unicode(storage: Storage) -> None:
    build = claim(storage)
    when = datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=timezone.utc)
    storage.set_progress(build.id, [ProgressItem(("fichiers", "été.csv"), 0.5, 1.0, "½", when)])
    assert storage.get_progress(build.id) == [
        ProgressItem(("fichiers", "été.csv"), 0.5, 1.0, "½", when)
    ]


def test_progress_of_an_unknown_build(storage: Storage) -> None:
    with pytest.raises(BuildNotFoundError):
        storage.set_progress(999, [ProgressItem((), 1, 2)])
    assert storage.get_progress(999) == []
    storage.set_progress(999, [])  # nothing to store: nothing checked


# -- waiting for logs (logs --follow) --------------------------------------------------------


def waited(storage: Storage, build_id: int, after_seq: int, timeout: float = 10,
           **kwargs: Any) -> float:
    """Seconds ``wait_for_logs`` took."""
    started = time.monotonic()
    storage.wait_for_logs(build_id, after_seq, timeout, **kwargs)
    return time.monotonic() - started


def test_wait_for_logs_returns_at_once_when_there_is_news(storage: Storage) -> None:
    build = claim(storage)
    storage.append_logs(build.id, [record("a")])
    assert waited(storage, build.id, 0) < 2  # a record after seq 0
    storage.finish_build(build.id, S.SUCCESS)
    assert waited(storage, build.id, 1) < 2  # the build ended
    assert waited(storage, 999, 0) < 2  # no such build: nothing to wait for


def test_wait_for_logs_times_out_without_news(storage: Storage) -> None:
    build = claim(storage)
    storage.append_logs(build.id, [record("a"), record("debug", logging.DEBUG)])
    assert 0.2 <= waited(storage, build.id, 2, timeout=0.2, poll_interval=0.05) < 2
    # records below min_level are no news
    assert 0.2 <= waited(storage, build.id, 1, timeout=0.2, min_level=logging.INFO,
                         poll_interval=0.05) < 2


@pytest.mark.parametrize("news", ["log", "finish"])
def test_wait_for_logs_wakes_when_the_writer_commits(storage: Storage, news: str) -> None:
    build = claim(storage)

    def write() -> None:
        time.sleep(0.3)
        if news == "log":
            storage.append_logs(build.id, [record("late")])
        else:
            storage.finish_build(build.id, S.FAILED)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        took = waited(storage, build.id, 0, timeout=20, poll_interval=0.05)
    finally:
        writer.join()
    assert 0.25 <= took < 5


# -- settings --------------------------------------------------------------------------------


def test_settings_are_set_if_absent_unless_replaced(storage: Storage) -> None:
    assert storage.get_setting("web.secret_key") is None
    assert storage.set_setting("web.secret_key", "first") == "first"
    # a second process generating its own value gets the stored one back, unchanged
    assert storage.set_setting("web.secret_key", "second") == "first"
    assert storage.get_setting("web.secret_key") == "first"
    assert storage.set_setting("web.secret_key", "third", replace=True) == "third"
    assert storage.get_setting("web.secret_key") == "third"
    assert storage.get_setting("other") is None


def test_settings_keep_any_text(storage: Storage) -> None:
    value = "ünï ' \" ; -- \n\t" + "x" * 10_000
    storage.set_setting("k'; DROP TABLE builds; --", value)
    assert storage.get_setting("k'; DROP TABLE builds; --") == value


def test_concurrent_set_if_absent_agrees(storage: Storage) -> None:
    # threads share the object (the web server's threads do): one value wins for all
    results: list[str] = []

    def set_one(n: int) -> None:
        results.append(storage.set_setting("key", f"value-{n}"))

    threads = [threading.Thread(target=set_one, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1
    assert storage.get_setting("key") == results[0]


# -- schedules -------------------------------------------------------------------------------


def test_a_scheduled_instant_is_claimed_once(storage: Storage) -> None:
    when = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
    assert storage.last_scheduled_runs() == {}
    assert storage.claim_scheduled_run("job", when, host="h1", pid=1)
    assert not storage.claim_scheduled_run("job", when, host="h2", pid=2)
    # the same instant in another zone is the same instant
    paris = when.astimezone(timezone(timedelta(hours=1)))
    assert not storage.claim_scheduled_run("job", paris, host="h2", pid=2)
    assert storage.claim_scheduled_run("other", when, host="h2", pid=2)
    [run] = storage.scheduled_runs("job")
    assert (run.job_id, run.scheduled_for, run.host, run.pid, run.outcome, run.build_id) == (
        "job", when, "h1", 1, "claimed", None)
    assert_utc(run.claimed)
    storage.set_scheduled_run("job", when, outcome="started", build_id=7)
    assert storage.scheduled_runs("job")[0].outcome == "started"
    assert storage.scheduled_runs("job")[0].build_id == 7


def test_last_scheduled_runs_per_job(storage: Storage) -> None:
    base = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
    for minutes in (0, 2, 1):
        storage.claim_scheduled_run("a", base + timedelta(minutes=minutes), host="h", pid=1)
    storage.claim_scheduled_run("b", base, host="h", pid=1, outcome="missed")
    last = storage.last_scheduled_runs()
    assert last["a"].scheduled_for == base + timedelta(minutes=2)
    assert last["b"].outcome == "missed"
    assert set(storage.last_scheduled_runs(["b", "c"])) == {"b"}
    assert [r.scheduled_for.minute for r in storage.scheduled_runs("a")] == [2, 1, 0]
    assert len(storage.scheduled_runs("a", limit=2)) == 2


def test_record_build_needs_no_claim(storage: Storage) -> None:
    running = claim(storage, "job")
    skipped = storage.record_build("job", BuildState.SKIPPED, reason="overlap: build 1 runs",
                                   definition={"function": "m.f"}, definition_hash="h",
                                   host="h", pid=3)
    assert skipped.id > running.id
    assert skipped.state is BuildState.SKIPPED
    assert skipped.reason == "overlap: build 1 runs"
    assert skipped.finished is not None and skipped.started == skipped.finished
    assert storage.get_build(skipped.id) == skipped
    with pytest.raises(ValueError):
        storage.record_build("job", BuildState.RUNNING, reason="", definition={},
                             definition_hash="", host="h", pid=1)

# -- queued builds (remote workers) ------------------------------------------------------------


def enqueue(storage: Storage, job_id: str = "job", **kwargs: Any) -> Build | None:
    """Queue a build with dull defaults for everything the test does not care about."""
    kwargs.setdefault("definition", {"function": f"pkg.{job_id}"})
    kwargs.setdefault("definition_hash", "hash")
    kwargs.setdefault("dependency_builds", {})
    kwargs.setdefault("queue", "jobcontrol")
    return storage.enqueue_build(job_id, **kwargs)


def start(storage: Storage, build_id: int, concurrency: int = 1, **kwargs: Any) -> Build | None:
    kwargs.setdefault("host", "worker1")
    kwargs.setdefault("pid", 77)
    return storage.start_queued_build(build_id, concurrency=concurrency, **kwargs)


def test_enqueue_creates_a_queued_build(storage: Storage) -> None:
    before = utcnow()
    build = enqueue(storage, "fetch", dependency_builds={"up": 3}, queue="gpu")
    assert build is not None
    assert build.state is S.QUEUED
    assert build.queue == "gpu"
    assert build.dependency_builds == {"up": 3}
    assert build.created is not None and before <= build.created <= utcnow()
    assert build.started is None and build.host is None and build.pid is None
    assert storage.get_build(build.id) == build
    assert [b.id for b in storage.list_builds(states=[S.QUEUED])] == [build.id]
    summary = storage.job_summaries()["fetch"]
    assert summary.last_build == build and summary.running == () and summary.last_success is None
    # a claimed build is not a queued one
    assert claim(storage, "local").queue is None


def test_start_queued_build_happens_once(storage: Storage) -> None:
    build = enqueue(storage)
    assert build is not None
    started = start(storage, build.id, host="w2", pid=5, dependency_builds={"up": 9})
    assert started is not None
    assert started.state is S.RUNNING
    assert (started.host, started.pid, started.queue) == ("w2", 5, "jobcontrol")
    assert started.dependency_builds == {"up": 9}
    assert started.started is not None and started.started == started.heartbeat
    assert started.created == build.created
    assert storage.job_summaries()["job"].running == (build.id,)
    # a redelivered message asks again: nothing happens, whoever asks
    assert start(storage, build.id) is None
    assert start(storage, build.id, host="w2", pid=5) is None
    storage.finish_build(build.id, S.SUCCESS)
    assert start(storage, build.id) is None
    assert storage.get_build(build.id).state is S.SUCCESS


def test_a_start_naming_another_job_or_definition_leaves_the_build_queued(
        storage: Storage) -> None:
    # a worker names the job its message said (and its config's definition): a start of
    # another job's build, or of another definition, changes nothing
    build = enqueue(storage, "fetch", definition_hash="h1")
    assert build is not None
    assert start(storage, build.id, job_id="other") is None
    assert start(storage, build.id, job_id="fetch", definition_hash="h2") is None
    assert storage.get_build(build.id).state is S.QUEUED
    started = start(storage, build.id, job_id="fetch", definition_hash="h1")
    assert started is not None and started.state is S.RUNNING
    assert started == storage.get_build(build.id)


def test_a_started_build_s_log_goes_on_after_the_records_it_holds(storage: Storage) -> None:
    # its starter numbers the records it writes from where the log ends, not from 1
    build = enqueue(storage)
    assert build is not None
    storage.append_logs(build.id, [record("queued one"), record("queued two")])
    started = start(storage, build.id, job_id="job")
    assert started is not None
    storage.finish_build_with_logs(build.id, S.SUCCESS, logs=[record("ran")])
    assert [(r.seq, r.message) for r in storage.get_logs(build.id)] == [
        (1, "queued one"), (2, "queued two"), (3, "ran")]


def test_a_start_records_the_process_group_it_is_given(storage: Storage) -> None:
    # a worker whose pool's next process is known says so at the start: no write after
    given, plain = enqueue(storage), enqueue(storage, "other")
    assert given is not None and plain is not None
    started = start(storage, given.id, pgid=4321)
    assert started is not None and started.pgid == 4321
    assert storage.get_build(given.id).pgid == 4321
    unknown = start(storage, plain.id)
    assert unknown is not None and unknown.pgid is None
    assert storage.get_build(plain.id).pgid is None


def test_start_keeps_the_queued_dependency_builds_unless_told(storage: Storage) -> None:
    build = enqueue(storage, dependency_builds={"up": 4})
    assert build is not None
    started = start(storage, build.id)
    assert started is not None and started.dependency_builds == {"up": 4}


def test_a_cancelled_queued_build_never_starts(storage: Storage) -> None:
    build = enqueue(storage)
    assert build is not None
    cancelled = storage.request_cancel(build.id, "cancelled by ann@a")
    assert cancelled.state is S.CANCELLED
    assert cancelled.reason == "cancelled by ann@a"
    assert cancelled.finished is not None
    assert start(storage, build.id) is None
    assert storage.get_build(build.id).state is S.CANCELLED


def test_a_queued_build_can_be_finished_without_starting(storage: Storage) -> None:
    build = enqueue(storage)
    assert build is not None
    failed = storage.finish_build(build.id, S.CANCELLED, reason="dependency up failed")
    assert failed.state is S.CANCELLED and failed.started is None
    assert start(storage, build.id) is None


def test_start_respects_the_jobs_concurrency(storage: Storage) -> None:
    running = claim(storage, "job", concurrency=2)
    first, second = enqueue(storage), enqueue(storage)
    assert first is not None and second is not None
    assert start(storage, first.id, concurrency=2) is not None
    with pytest.raises(JobAlreadyRunningError) as info:
        start(storage, second.id, concurrency=2)
    assert info.value.running == (running.id, first.id)
    assert storage.get_build(second.id).state is S.QUEUED  # still waiting its turn
    other = enqueue(storage, "other")
    assert other is not None and start(storage, other.id) is not None  # not held up
    storage.finish_build(running.id, S.SUCCESS)
    assert start(storage, second.id, concurrency=2) is not None


def test_start_of_an_unknown_build(storage: Storage) -> None:
    with pytest.raises(BuildNotFoundError):
        start(storage, 999)
    with pytest.raises(ValueError, match="concurrency"):
        start(storage, 999, concurrency=0)


def test_a_build_is_retried_once(storage: Storage) -> None:
    failed = built(storage, "job", S.FAILED)
    assert storage.get_retry(failed.id) is None
    retry = enqueue(storage, retry_of=failed.id, dependency_builds={"up": 2})
    assert retry is not None
    assert retry.retry_of == failed.id and retry.state is S.QUEUED
    assert storage.get_retry(failed.id) == retry
    # a second worker noticing the same failure makes nothing
    assert enqueue(storage, retry_of=failed.id) is None
    assert [b.id for b in storage.list_builds("job")] == [retry.id, failed.id]
    assert storage.get_retry(retry.id) is None


def test_concurrent_starts_of_one_build_start_it_once(storage: Storage) -> None:
    builds = [enqueue(storage, "job") for _ in range(5)]
    assert all(b is not None for b in builds)
    ids = [b.id for b in builds if b is not None]
    won: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(number: int) -> None:
        # one connection a worker, as separate processes would have (memory: shared)
        own = storage if storage.url.startswith("memory") else _reopen(storage)
        try:
            for build_id in ids:
                if own.start_queued_build(build_id, concurrency=100, host=f"w{number}",
                                          pid=number) is not None:
                    with lock:
                        won.append(build_id)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            if own is not storage:
                own.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert sorted(won) == ids  # every build started, none twice
    assert {b.state for b in storage.list_builds()} == {S.RUNNING}


def _reopen(storage: Storage) -> Storage:
    from jobcontrol.storage import open_storage

    return open_storage(storage.url)
