"""The Python API (``JobControl``), on every storage backend."""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
from pathlib import Path

import pytest

from jobcontrol import (
    BuildState,
    BuildStateError,
    DependencyError,
    JobAlreadyRunningError,
    JobControl,
    RetvalError,
    progress_tree,
)
from jobcontrol.storage import Storage
from tests.support import make_project

CONFIG = """\
jobs:
  - {id: a, function: jobfuncs.make, args: [a]}
  - id: b
    function: jobfuncs.make
    dependencies: [a]
    kwargs: {tag: b, value: [1, !retval a]}
  - {id: chatty, function: jobfuncs.chatty, isolation: inline}
  - {id: odd, function: jobfuncs.not_json}
  - id: uses_odd
    function: jobfuncs.make
    dependencies: [odd]
    kwargs: {tag: x, value: !retval odd}
  - {id: pickled, function: jobfuncs.make, args: [p], result: pickle}
  - id: uses_pickled
    function: jobfuncs.make
    dependencies: [pickled]
    kwargs: {tag: y, value: !retval pickled}
  - {id: slow_inline, function: jobfuncs.sleeper, kwargs: {seconds: 10}, timeout: 0.5s,
     isolation: inline}
  - {id: fails_inline, function: jobfuncs.fails, isolation: inline}
  - {id: twice, function: jobfuncs.make, args: [t], concurrency: 2}
"""


@pytest.fixture
def jc(tmp_path: Path, storage: Storage) -> JobControl:
    return JobControl.from_config(make_project(tmp_path, CONFIG), storage=storage)


def test_build_and_history(jc: JobControl) -> None:
    with pytest.raises(DependencyError) as info:
        jc.build("b")
    assert info.value.missing == ("a",) and info.value.exit_code == 3
    builds = jc.build("b", deps=True)
    assert [(b.job_id, b.state) for b in builds] == [("a", BuildState.SUCCESS),
                                                     ("b", BuildState.SUCCESS)]
    a, b = builds
    assert b.retval["got"] == [1, a.retval]
    assert b.dependency_builds == {"a": a.id}
    assert b.started.tzinfo is not None and b.finished >= b.started
    assert b.host and b.pid == os.getpid()
    assert jc.get_build(b.id) == b
    assert [x.id for x in jc.builds()] == [b.id, a.id]
    assert [x.id for x in jc.builds("a")] == [a.id]
    assert [s.job.id for s in jc.status() if s.outdated.outdated] == [
        "chatty", "odd", "uses_odd", "pickled", "uses_pickled", "slow_inline", "fails_inline",
        "twice"]
    [a_status] = jc.status(["a"])
    assert a_status.last_state == "success" and a_status.last_build == a


def test_inline_build_captures_logs_prints_and_progress(jc: JobControl,
                                                        caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    root_level = logging.getLogger().level
    [build] = jc.build("chatty")
    assert build.state is BuildState.SUCCESS
    assert build.retval == {"greeting": "hello world", "when": dt.date(2026, 1, 2), "n": 3}
    assert build.pid == os.getpid()
    messages = [(r.logger, r.message) for r in jc.logs(build.id)]
    assert ("jobfuncs", "hello world") in messages
    assert ("stdout", "printed line") in messages
    assert ("stderr", "to stderr") in messages
    assert logging.getLogger().level == root_level  # restored after the build
    tree = progress_tree(jc.progress(build.id))
    [phase] = tree.children
    assert (phase.name, phase.current, phase.total) == ("phase", 3, 4)
    assert [c.name for c in phase.children] == ["one", "two"]
    assert [r.message for r in jc.logs(build.id, min_level=logging.WARNING)] == [
        "careful", "to stderr"]


def test_inline_timeout_and_failure(jc: JobControl) -> None:
    [build] = jc.build("slow_inline")
    assert build.state is BuildState.FAILED
    assert build.reason == "timed out after 500ms"
    [build] = jc.build("fails_inline")
    assert build.state is BuildState.FAILED
    assert build.exception.type == "ValueError"
    assert "in fails" in build.exception.traceback


def test_a_stop_before_an_inline_jobs_call_is_its_outcome(
        jc: JobControl, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM while an inline build is set up (its watcher thread starting), before the
    job's own call: the build is recorded cancelled, nothing escapes (the scheduler died
    of it with a traceback, under load)."""
    from jobcontrol.execution.inline import InlineBuilds

    watch = InlineBuilds._watch

    def watch_then_sigterm(self: InlineBuilds) -> None:
        watch(self)
        signal.raise_signal(signal.SIGTERM)  # the run's handler stops the build here

    monkeypatch.setattr(InlineBuilds, "_watch", watch_then_sigterm)
    [build] = jc.build("chatty")
    assert (build.state, build.reason) == (BuildState.CANCELLED, "interrupted by SIGTERM")
    assert jc.get_build(build.id).state is BuildState.CANCELLED


def test_retval_of_repr_value_is_an_error(jc: JobControl) -> None:
    [odd] = jc.build("odd")
    assert odd.result.kind == "repr"
    with pytest.raises(RetvalError, match="could not be stored as JSON"):
        jc.build("uses_odd")
    assert [b.id for b in jc.builds("uses_odd")] == []


def test_pickle_result_is_handed_to_dependents(jc: JobControl) -> None:
    [pickled] = jc.build("pickled")
    assert pickled.result.kind == "pickle"
    assert "not loaded" in repr(pickled.retval)
    [user] = jc.build("uses_pickled")
    assert user.retval["got"]["tag"] == "p"


def test_claim_refused_while_running(jc: JobControl, storage: Storage) -> None:
    holder = storage.claim_build("a", concurrency=1, definition={}, definition_hash="",
                                 dependency_builds={}, host="elsewhere", pid=1)
    with pytest.raises(JobAlreadyRunningError) as info:
        jc.build("a")
    assert info.value.running == (holder.id,)
    assert info.value.exit_code == 4
    assert info.value.builds == []
    for _ in range(2):  # concurrency: 2 allows a second one
        storage.claim_build("twice", concurrency=2, definition={}, definition_hash="",
                            dependency_builds={}, host="elsewhere", pid=1)
    with pytest.raises(JobAlreadyRunningError):
        jc.build("twice")


def test_plan_and_delete(jc: JobControl, tmp_path: Path) -> None:
    plan = jc.plan("b", deps=True)
    assert [(p.job_id, p.role.value, p.build) for p in plan] == [
        ("a", "upstream", True), ("b", "target", True)]
    builds = jc.build("b", deps=True)
    assert [p.build for p in jc.plan("b", deps=True, if_outdated=True)] == [False, False]
    with pytest.raises(BuildStateError):
        running = jc.storage.claim_build("a", concurrency=5, definition={},
                                         definition_hash="", dependency_builds={},
                                         host="h", pid=1)
        jc.delete_build(running.id)
    jc.delete_build(builds[1].id)
    assert [b.id for b in jc.builds("b")] == []


DIAMOND = """\
jobs:
  - {id: a, function: jobfuncs.make, args: [a]}
  - {id: b, function: jobfuncs.make, dependencies: [a], kwargs: {tag: b, value: !retval a}}
  - {id: c, function: jobfuncs.make, dependencies: [a], args: [c]}
  - id: d
    function: jobfuncs.make
    dependencies: [b, c]
    kwargs: {tag: d, value: [!retval b, !retval c]}
"""


def test_deps_verdicts_follow_builds_made_in_the_run(tmp_path: Path, storage: Storage) -> None:
    # the run keeps each job's verdict; a build it makes must make its dependents outdated
    jc = JobControl.from_config(make_project(tmp_path, DIAMOND), storage=storage)
    assert [b.job_id for b in jc.build("d", deps=True)] == ["a", "b", "c", "d"]
    assert jc.build("d", deps=True, if_outdated=True) == []
    [a2] = jc.build("a")
    rebuilt = jc.build("d", deps=True, if_outdated=True)
    assert [b.job_id for b in rebuilt] == ["b", "c", "d"]
    assert all(b.dependency_builds == {"a": a2.id} for b in rebuilt[:2])
    assert rebuilt[2].dependency_builds == {"b": rebuilt[0].id, "c": rebuilt[1].id}
    assert rebuilt[0].retval["got"] == a2.retval and a2.retval["build"] == a2.id
    assert [p.build for p in jc.plan("d", deps=True, if_outdated=True)] == [False] * 4
