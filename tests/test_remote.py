"""Remote builds without a broker: the storage-driven rules of
:mod:`jobcontrol.execution.remote`, with messages kept in a list (the Celery suite,
``tests/test_celery.py``, runs them through real brokers and workers)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from jobcontrol import BuildState, DependencyError, JobControl
from jobcontrol.errors import BrokerError, BuildStateError
from jobcontrol.execution import queued
from jobcontrol.execution.observer import BuildObserver
from jobcontrol.execution.remote import RemoteWorker, follow
from jobcontrol.models import Build
from jobcontrol.storage import Storage
from jobcontrol.storage.base import SLOT_WAIT
from tests.support import make_project

S = BuildState
ROOT = Path(__file__).parent.parent

CONFIG = """\
executor: {type: celery, broker: "redis://127.0.0.1:1/0", queue: main}
runner: {heartbeat: 0.2s, heartbeat_timeout: 1s}
jobs:
  - {id: a, function: jobfuncs.make, args: [a]}
  - id: b
    function: jobfuncs.make
    dependencies: [a]
    kwargs: {tag: b, value: !retval a}
    queue: other
  - {id: c, function: jobfuncs.make, args: [c], dependencies: [b]}
  - {id: bad, function: jobfuncs.fails}
  - {id: after_bad, function: jobfuncs.make, args: [x], dependencies: [bad]}
  - id: flaky
    function: jobfuncs.flaky
    kwargs: {counter: "{{ env.get('COUNTER', 'counter.txt') }}", failures: 1}
    retries: {count: 2, delay: 5s}
  - {id: retried, function: jobfuncs.make, args: [r], retries: 1}
  - {id: skipper, function: jobfuncs.maybe_skip, args: [skip.flag]}
  - id: after_skip
    function: jobfuncs.make
    dependencies: [skipper]
    kwargs: {tag: s, value: !retval skipper}
  - {id: wide, function: jobfuncs.make, args: [w], concurrency: 2}
"""


@dataclass
class Broker:
    """Messages as a list: ``(build_id, queue, delay, waited, job)``; ``log`` keeps every
    one sent."""

    sent: list[tuple[int, str, float, int, str | None]] = field(default_factory=list)
    log: list[tuple[int, str, float, int, str | None]] = field(default_factory=list)

    def __call__(self, build_id: int, queue: str, *, delay: float = 0.0,
                 waited: int = 0, job: str | None = None) -> None:
        self.sent.append((build_id, queue, delay, waited, job))
        self.log.append((build_id, queue, delay, waited, job))

    def take(self) -> tuple[int, str, float, int, str | None]:
        return self.sent.pop(0)


@pytest.fixture
def broker() -> Broker:
    return Broker()


@pytest.fixture
def jc(tmp_path: Path, storage: Storage, broker: Broker,
       monkeypatch: pytest.MonkeyPatch) -> Iterator[JobControl]:
    monkeypatch.setenv("COUNTER", str(tmp_path / "counter.txt"))
    config = make_project(tmp_path / "project", CONFIG)
    with JobControl.from_config(config, storage) as control:
        control._sender = broker
        yield control


def drain(jc: JobControl, broker: Broker, limit: int = 100,
          waits: list[float] | None = None) -> list[str]:
    """Deliver every message (delays ignored) until none is left; what each did. The
    waits of the worker's own (giving a build back) go to ``waits``, not slept."""
    worker = RemoteWorker(jc, broker, BuildObserver(),
                          sleep=(waits if waits is not None else []).append)
    done = []
    try:
        while broker.sent and len(done) < limit:
            build_id, _queue, _delay, waited, job = broker.take()
            done.append(worker.handle(build_id, waited, job))
    finally:
        worker.close()  # its pool's workers (the default isolation's) end with it
    return done


def test_submit_queues_the_plan_and_sends_what_waits_for_none(
        jc: JobControl, broker: Broker) -> None:
    builds = jc.submit("c", deps=True)
    assert [(b.job_id, b.state, b.queue) for b in builds] == [
        ("a", S.QUEUED, "main"), ("b", S.QUEUED, "other"), ("c", S.QUEUED, "main")]
    a, b, c = builds
    assert b.dependency_builds == {"a": a.id} and c.dependency_builds == {"b": b.id}
    # a build that waits for no other goes with its job: the worker starts it at once;
    # the others are sent when their upstream ends
    assert broker.sent == [(a.id, "main", 0.0, 0, "a")]


def test_a_chain_runs_in_order_with_retvals(jc: JobControl, broker: Broker) -> None:
    a, b, c = jc.submit("c", deps=True)
    # each end sends the next, once: nothing is sent again while it waits
    assert drain(jc, broker) == ["success"] * 3
    assert broker.log == [(a.id, "main", 0.0, 0, "a"), (b.id, "other", 0.0, 0, None),
                          (c.id, "main", 0.0, 0, None)]
    got = jc.get_build(b.id)
    assert got.state is S.SUCCESS
    assert got.retval["got"] == {"tag": "a", "got": None, "build": a.id}
    assert got.dependency_builds == {"a": a.id}
    assert jc.get_build(c.id).dependency_builds == {"b": b.id}
    assert got.host and got.pid  # the worker's


def test_a_message_naming_the_wrong_job_runs_the_build_of_its_own_job(
        jc: JobControl, broker: Broker) -> None:
    # the storage is the arbiter: a build is started as the job it is of, whatever job
    # its message names (never as the job named, never failed for it)
    [build] = jc.submit("retried")
    broker.sent[:] = [(build.id, "main", 0.0, 0, "a")]
    assert drain(jc, broker) == ["success"]
    done = jc.get_build(build.id)
    assert done.state is S.SUCCESS and done.retval["tag"] == "r"


def test_a_failed_dependency_cancels_what_waits(jc: JobControl, broker: Broker) -> None:
    bad, after = jc.submit("after_bad", deps=True)
    # the worker that records the failure cancels what waits for it: nothing is sent
    assert drain(jc, broker) == ["failed"]
    assert [m[0] for m in broker.log] == [bad.id]
    after = jc.get_build(after.id)
    assert after.state is S.CANCELLED
    assert after.reason == f"dependency bad failed (build {bad.id})"
    assert after.started is None


def test_a_delivery_of_a_build_that_is_not_queued_does_nothing(
        jc: JobControl, broker: Broker) -> None:
    [a] = jc.submit("a")
    broker.sent.append(broker.sent[0])  # the broker delivers it twice
    assert drain(jc, broker) == ["success", "already success"]
    [again] = jc.submit("a")
    jc.cancel(again.id, by="ann@box")
    assert jc.get_build(again.id).state is S.CANCELLED
    assert drain(jc, broker) == ["already cancelled"]
    jc.storage.delete_build(again.id)
    broker(again.id, "main")
    assert drain(jc, broker) == ["deleted"]
    assert [b.id for b in jc.builds("a")] == [a.id]


def test_a_failure_is_retried_by_its_worker(jc: JobControl, broker: Broker,
                                            tmp_path: Path) -> None:
    [first] = jc.submit("flaky")
    assert drain(jc, broker, limit=1) == ["failed"]
    retry = jc.storage.get_retry(first.id)
    assert retry is not None and retry.state is S.QUEUED and retry.queue == "main"
    assert broker.sent == [(retry.id, "main", 5.0, 0, "flaky")]  # after the delay
    assert drain(jc, broker) == ["success"]
    assert jc.get_build(retry.id).retry_of == first.id


def test_a_sweep_retries_abandoned_remote_builds_once(jc: JobControl, broker: Broker) -> None:
    [build] = jc.submit("retried")
    broker.sent.clear()
    started = jc.storage.start_queued_build(build.id, concurrency=1, host="gone-host", pid=1)
    assert started is not None
    jc.storage.finish_build(build.id, S.ABANDONED, reason="no heartbeat for 61s")
    worker = RemoteWorker(jc, broker)
    [retry] = worker.sweep()
    assert retry.retry_of == build.id and retry.state is S.QUEUED
    assert RemoteWorker(jc, broker).sweep() == []  # another worker finds it done
    assert [m[0] for m in broker.sent] == [retry.id]
    assert drain(jc, broker) == ["success"]
    # retries: 1 is used up: the retry abandoned is not retried again
    other = jc.storage.enqueue_build("retried", definition={}, definition_hash="h",
                                     dependency_builds={}, queue="main", retry_of=retry.id)
    assert other is not None  # (made by hand, as a second attempt would be)
    jc.storage.finish_build(other.id, S.ABANDONED, reason="lost")
    assert worker.sweep() == []
    # a local build (no queue) is not retried by workers
    local = jc.storage.claim_build("retried", concurrency=1, definition={}, definition_hash="",
                                   dependency_builds={}, host="x", pid=1)
    jc.storage.finish_build(local.id, S.ABANDONED, reason="lost")
    assert worker.sweep() == []


def test_a_waiting_build_retries_its_abandoned_dependency(jc: JobControl,
                                                          broker: Broker) -> None:
    jc.config.jobs["a"].__dict__["retries"] = jc.config.jobs["retried"].retries
    a, b = jc.submit("b", deps=True)
    broker.sent.clear()
    jc.storage.start_queued_build(a.id, concurrency=1, host="gone", pid=1)
    jc.storage.finish_build(a.id, S.ABANDONED, reason="lost")
    assert RemoteWorker(jc, broker).handle(b.id) == "waiting for dependencies"
    retry = jc.storage.get_retry(a.id)
    assert retry is not None
    assert [m[0] for m in broker.sent] == [retry.id]  # b is not sent again: it waits
    assert drain(jc, broker) == ["success", "success"]  # the retry's end sends b
    assert jc.get_build(b.id).dependency_builds == {"a": retry.id}


def test_a_skipped_dependency_hands_on_its_last_success(jc: JobControl, broker: Broker,
                                                       tmp_path: Path) -> None:
    [first] = jc.submit("skipper")
    drain(jc, broker)
    (tmp_path / "project" / "skip.flag").write_text("")
    skipped, after = jc.submit(["skipper", "after_skip"])
    assert after.dependency_builds == {"skipper": skipped.id}
    assert drain(jc, broker) == ["skipped", "success"]
    after = jc.get_build(after.id)
    assert after.dependency_builds == {"skipper": first.id}
    assert after.retval["got"] == "made"


def test_a_busy_job_waits_its_turn(jc: JobControl, broker: Broker) -> None:
    builds = [jc.submit("wide")[0] for _ in range(3)]
    for build in builds[:2]:
        jc.storage.start_queued_build(build.id, concurrency=2, host="elsewhere", pid=1)
    broker.sent.clear()
    broker(builds[2].id, "main")
    assert drain(jc, broker, limit=1) == ["waiting for a slot"]
    assert broker.sent == []  # not sent again: the end of a build of the job sends it
    waiting = jc.get_build(builds[2].id)
    assert waiting.state is S.QUEUED
    assert waiting.reason is not None and waiting.reason.startswith(
        f"{SLOT_WAIT}: job wide was running #{builds[0].id}, #{builds[1].id} "
        f"(concurrency 2) at ")


def test_slots_go_to_the_builds_that_wait_for_them_oldest_first(
        jc: JobControl, broker: Broker) -> None:
    first, second, third, fourth = (jc.submit("wide")[0] for _ in range(4))
    for build in (first, second):
        jc.storage.start_queued_build(build.id, concurrency=2, host="elsewhere", pid=1)
    broker.sent[:] = [m for m in broker.sent if m[0] in (fourth.id, third.id)][::-1]
    assert drain(jc, broker) == ["waiting for a slot"] * 2  # fourth looked at first
    worker = RemoteWorker(jc, broker, BuildObserver())
    ended = jc.storage.finish_build(first.id, S.SUCCESS)
    worker.commit()
    done = worker.dispatch([ended])
    assert [(build.id, what) for build, what in done] == [(third.id, "sent")]
    assert [m[0] for m in broker.sent] == [third.id]  # the oldest, alone: one slot freed
    # third's end hands its slot on to fourth
    assert drain(jc, broker) == ["success", "success"]
    assert [m[0] for m in broker.log[-2:]] == [third.id, fourth.id]
    assert jc.get_build(fourth.id).started > jc.get_build(third.id).started


def test_a_build_that_waits_for_none_starts_without_being_read(
        jc: JobControl, broker: Broker, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its message names its job: the worker claims it straight away (the claim is the
    one look at the storage it needs); a redelivery, found not queued, is looked at."""
    [build] = jc.submit("a")
    reads: list[int] = []
    get_build = jc.storage.get_build

    def counting(build_id: int) -> Build:
        reads.append(build_id)
        return get_build(build_id)

    monkeypatch.setattr(jc.storage, "get_build", counting)
    broker.sent.append(broker.sent[0])  # delivered twice
    assert drain(jc, broker) == ["success", "already success"]
    assert reads == [build.id]  # by the redelivery only
    assert jc.get_build(build.id).state is S.SUCCESS


def test_a_ready_build_of_a_busy_job_waits_its_turn(jc: JobControl, broker: Broker) -> None:
    first, second, third = (jc.submit("wide")[0] for _ in range(3))
    for build in (first, second):
        jc.storage.start_queued_build(build.id, concurrency=2, host="elsewhere", pid=1)
    broker.sent[:] = [m for m in broker.sent if m[0] == third.id]
    assert drain(jc, broker, limit=1) == ["waiting for a slot"]
    assert broker.sent == []
    assert jc.get_build(third.id).state is S.QUEUED


def test_a_build_of_a_job_this_worker_lacks_is_given_back(
        jc: JobControl, broker: Broker) -> None:
    [build] = jc.submit("a")
    job = jc.config.jobs.pop("a")  # type: ignore[attr-defined]
    waits: list[float] = []
    assert drain(jc, broker, limit=1, waits=waits) == ["given back"]
    kept = jc.get_build(build.id)
    assert (kept.state, kept.started, kept.host) == (S.QUEUED, None, None)  # not claimed
    assert "given back by worker " in (kept.reason or "")
    assert "job 'a' is not in this worker's config" in (kept.reason or "")
    assert broker.sent == [(build.id, "main", 0.0, 1, "a")]  # again, after a wait:
    assert waits == [0.5]  # its own, taking no message meanwhile
    jc.config.jobs["a"] = job  # type: ignore[index]
    assert drain(jc, broker) == ["success"]  # a worker whose config has it


def test_a_worker_with_another_definition_gives_the_build_back(
        jc: JobControl, broker: Broker) -> None:
    [build] = jc.submit("a")
    job = jc.config.jobs["a"]
    # the worker's config says otherwise (a new definition: its hash is its own)
    jc.config.jobs["a"] = dataclasses.replace(job, args=("changed",))  # type: ignore[index]
    waits: list[float] = []
    assert drain(jc, broker, limit=2, waits=waits) == ["given back", "given back"]
    assert broker.sent == [(build.id, "main", 0.0, 2, "a")]
    assert waits == [0.5, 1.0]  # each wait longer
    kept = jc.get_build(build.id)
    assert kept.state is S.QUEUED and kept.started is None
    assert "defines job 'a' differently" in (kept.reason or "")
    jc.config.jobs["a"] = job  # type: ignore[index]
    assert drain(jc, broker) == ["success"]


def test_a_build_no_worker_can_take_fails_by_queued_timeout_naming_why(
        jc: JobControl, broker: Broker) -> None:
    [build] = jc.submit("a")
    stale = dict(jc.config.jobs)
    stale["a"] = dataclasses.replace(stale["a"], args=("changed",))
    jc.config.jobs["a"] = stale["a"]  # type: ignore[index]
    assert drain(jc, broker, limit=1) == ["given back"]
    resend = Broker()
    while not queued.sweep_queued(jc.storage, stale, lambda b: resend(b.id, "main"), 0.0001):
        pass  # the clock moves past the timeout: re-sent once
    assert [m[0] for m in resend.sent] == [build.id]
    broker.sent[:] = resend.sent
    assert drain(jc, broker, limit=1) == ["given back"]  # the stale worker again
    while not queued.sweep_queued(jc.storage, stale, lambda b: resend(b.id, "main"), 0.0001):
        pass
    failed = jc.get_build(build.id)
    assert failed.state is S.FAILED and failed.started is None
    assert failed.reason is not None and failed.reason.startswith("never taken by a worker")
    assert "; given back by worker " in failed.reason
    assert "defines job 'a' differently" in failed.reason


def test_targets_are_queued_in_dependency_order(jc: JobControl, broker: Broker) -> None:
    b, a = jc.submit(["b", "a"])[::-1]
    assert (a.job_id, b.job_id) == ("a", "b") and a.id < b.id
    assert b.dependency_builds == {"a": a.id}
    assert drain(jc, broker) == ["success", "success"]


def test_submit_refuses_before_queueing_anything(jc: JobControl, broker: Broker) -> None:
    with pytest.raises(DependencyError):
        jc.submit("c")  # b never built, and no --deps
    assert jc.builds() == [] and broker.sent == []


def test_unsent_builds_are_cancelled(jc: JobControl, broker: Broker) -> None:
    def down(build_id: int, queue: str, **kwargs: object) -> None:
        raise BrokerError("cannot send build to the broker redis://h: connection refused")

    jc._sender = down
    with pytest.raises(BrokerError):
        jc.submit("b", deps=True)
    assert {b.state for b in jc.builds()} == {S.CANCELLED}
    assert jc.builds()[0].reason.startswith("not sent to the workers: cannot send")


def test_follow_reports_builds_and_retries(jc: JobControl, broker: Broker) -> None:
    events: list[str] = []

    class Recorder(BuildObserver):
        def build_started(self, build: Build) -> None:
            events.append(f"start {build.job_id}")

        def build_finished(self, build: Build) -> None:
            events.append(f"end {build.job_id} {build.state}")

        def build_retrying(self, build: Build, delay: float, attempt: int,
                           attempts: int) -> None:
            events.append(f"retry {attempt}/{attempts} in {delay:g}")

    builds = jc.submit("flaky")
    worker = RemoteWorker(jc, broker, BuildObserver())

    def deliver_one(seconds: float) -> None:
        if broker.sent:
            worker.handle(broker.take()[0])

    try:
        final = follow(jc, builds, Recorder(), sleep=deliver_one)
    finally:
        worker.close()
    assert [b.state for b in final] == [S.FAILED, S.SUCCESS]
    assert events == ["start flaky", "end flaky failed", "retry 1/2 in 5",
                      "start flaky", "end flaky success"]


def test_without_the_celery_executor_nothing_is_queued(tmp_path: Path) -> None:
    config = make_project(tmp_path / "local", "jobs:\n  - {id: a, function: jobfuncs.make}\n")
    with JobControl.from_config(config, "memory://") as local:
        with pytest.raises(BrokerError, match=re.escape("executor: {type: celery")):
            local.submit("a")
        assert local.builds() == []


def test_nothing_imports_celery_unless_the_config_asks(tmp_path: Path) -> None:
    config = make_project(tmp_path / "p", CONFIG)
    code = (
        "import sys; from jobcontrol.cli import main; from jobcontrol import JobControl\n"
        f"jc = JobControl.from_config({str(config)!r}, 'memory://')\n"
        "jc.build('a'); jc.status()\n"
        "print('celery' in sys.modules, 'kombu' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
                         check=True).stdout
    assert out.split()[-2:] == ["False", "False"]


def test_a_dependency_that_only_ever_skipped_is_not_met(jc: JobControl, broker: Broker,
                                                        tmp_path: Path) -> None:
    # a skip is never a success: with none to hand on, the dependent is refused as a local
    # build is ("dependencies not met"), whether or not it reads a !retval
    (tmp_path / "project" / "skip.flag").write_text("")
    _, after = jc.submit(["skipper", "after_skip"])
    assert drain(jc, broker) == ["skipped", "failed"]
    after = jc.get_build(after.id)
    assert after.reason == str(DependencyError("after_skip", ["skipper"]))


def test_a_retry_by_hand_is_queued_in_the_retried_builds_run(jc: JobControl,
                                                             broker: Broker) -> None:
    [failed] = jc.submit("bad")
    drain(jc, broker)
    assert jc.get_build(failed.id).state is S.FAILED
    [retry] = jc.submit("bad", run=jc.retry_start(failed.id))
    assert retry.retry_of == failed.id and retry.run_id == failed.run_id
    with pytest.raises(BuildStateError, match=f"retried already, by build {retry.id}"):
        jc.retry_start(failed.id)


NEVER_TAKEN = """\
executor: {type: celery, broker: "redis://127.0.0.1:1/0", queue: main, queued_timeout: 0.01s}
jobs:
  - id: lonely
    function: jobfuncs.make
    args: [l]
    notify: {on: [failure], targets: [{call: jobfuncs.notify_collect}]}
"""


def test_a_build_failed_by_queued_timeout_notifies_once(tmp_path: Path, storage: Storage,
                                                        broker: Broker) -> None:
    config = make_project(tmp_path / "project", NEVER_TAKEN)
    notified = config.parent / "notified.jsonl"
    with JobControl.from_config(config, storage) as jc:
        jc._sender = broker
        [build] = jc.submit("lonely")
        broker.sent.clear()  # its message lost: no worker ever sees it
        with contextlib.closing(RemoteWorker(jc, broker, BuildObserver())) as sweeper, \
                contextlib.closing(RemoteWorker(jc, broker, BuildObserver())) as other:
            while jc.get_build(build.id).state is not S.FAILED:
                sweeper.sweep()  # re-sent once, then failed, as the clock passes 10 ms
                other.sweep()  # a second worker sweeping too: one failure, one notice
    events = [json.loads(line) for line in notified.read_text().splitlines()]
    assert [(e["event"], e["build"]["id"]) for e in events] == [("failure", build.id)]


def test_a_pool_build_on_a_worker_records_its_process_group_as_it_starts(
        tmp_path: Path, storage: Storage, broker: Broker,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A warm worker process leads its own process group, known before the build starts:
    the start records it (the one write a build), never a write of its own after."""
    config = make_project(tmp_path / "project", CONFIG.replace(
        "  - {id: a, function: jobfuncs.make, args: [a]}",
        "  - {id: a, function: jobfuncs.make, args: [a], isolation: pool}"))
    with JobControl.from_config(config, storage) as control:
        control._sender = broker
        later: list[int] = []
        monkeypatch.setattr(storage, "set_process_group",
                            lambda build_id, pgid: later.append(build_id))
        (build,) = control.submit("a")
        assert drain(control, broker) == ["success"]
        done = control.get_build(build.id)
        assert done.state is S.SUCCESS and done.pgid is not None and done.pgid != done.pid
        assert later == []
