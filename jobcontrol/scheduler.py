"""Firing scheduled builds: ``jobcontrol run-due`` (once, from cron) and ``scheduler`` (a
loop, for systems without cron).

Each due instant of a job is claimed in storage before anything runs (a row keyed by job and
instant: :meth:`~jobcontrol.storage.base.Storage.claim_scheduled_run`), so however many
``run-due`` processes race, on however many hosts, each instant is taken on exactly once.
An instant whose job is still running is recorded as a ``skipped`` build ("overlap"), visible
in ``builds``, and the next instant runs normally.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from jobcontrol.errors import JobAlreadyRunningError, JobControlError
from jobcontrol.executors.local import HOSTNAME, BuildObserver
from jobcontrol.models import Build, BuildState
from jobcontrol.schedule import due_runs
from jobcontrol.timeutil import isoformat

if TYPE_CHECKING:
    from jobcontrol.core import JobControl


@dataclass
class DueReport:
    """What one ``run-due`` did, instant by instant."""

    #: (job, instant, build) of each instant started
    started: list[tuple[str, datetime, Build]] = field(default_factory=list)
    #: (job, instant, skipped build) of each instant whose job was still running
    overlaps: list[tuple[str, datetime, Build]] = field(default_factory=list)
    #: (job, instant, why) of instants claimed but not built (up to date, blocked...)
    not_built: list[tuple[str, datetime, str]] = field(default_factory=list)
    #: (job, instant) of instants too late for the job's catch-up policy
    missed: list[tuple[str, datetime]] = field(default_factory=list)
    #: how many due instants another process had already taken on
    taken_elsewhere: int = 0
    #: errors met building (the rest went on)
    errors: list[JobControlError] = field(default_factory=list)
    #: True when asked about a time later than the storage's clock: nothing was claimed or
    #: built, ``due`` and ``missed`` say what a run at that time would take on
    dry_run: bool = False
    #: (job, instant) of each instant a dry run found due
    due: list[tuple[str, datetime]] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """True if a build run here did not succeed, or an error stopped one (a build
        queued for Celery workers has not failed)."""
        return bool(self.errors) or any(
            build.state.finished and not build.state.ok for _, _, build in self.started)


class _Recorder(BuildObserver):
    """Passes events on to the caller's observer and remembers why jobs were not built."""

    def __init__(self, inner: BuildObserver | None) -> None:
        self.inner = inner or BuildObserver()
        self.not_built: dict[str, str] = {}

    def __getattribute__(self, name: str):  # type: ignore[no-untyped-def]
        if name in ("inner", "not_built", "job_not_built", "job_refused") or name.startswith("__"):
            return object.__getattribute__(self, name)
        return getattr(object.__getattribute__(self, "inner"), name)

    def job_not_built(self, job_id: str, reason: str) -> None:
        self.not_built[job_id] = reason
        self.inner.job_not_built(job_id, reason)

    def job_refused(self, job_id: str, error: JobControlError) -> None:
        self.not_built[job_id] = str(error)
        self.inner.job_refused(job_id, error)


def run_due(jc: JobControl, *, now: datetime | None = None,
            observer: BuildObserver | None = None) -> DueReport:
    """Start every scheduled build due at ``now`` (default: the storage's clock), each
    instant exactly once across every process sharing the storage; returns what happened.

    Builds of one round (the next due instant of each job) run side by side; with
    ``catchup: all`` a job's later instants follow in later rounds.

    A ``now`` later than the storage's clock is a dry run: an instant is never claimed
    before it comes (it would be lost to the real run when it does); the report says what
    would be due (``dry_run``, ``due``, ``missed``).
    """
    report = DueReport()
    scheduled = {job_id: job for job_id, job in jc.config.jobs.items() if job.schedule}
    if not scheduled:
        return report
    storage = jc.storage
    clock = storage.now()
    report.dry_run = now is not None and now > clock
    now = now or clock
    if not report.dry_run:
        jc.reap()  # a dead runner must not make its job look busy
    last = storage.last_scheduled_runs(scheduled)
    rounds: list[list[tuple[str, datetime]]] = []
    for job_id, job in scheduled.items():
        assert job.schedule is not None
        previous = last.get(job_id)
        due = due_runs(job.schedule, previous.scheduled_for if previous else None, now)
        if report.dry_run:
            report.due += [(job_id, instant) for instant in due.run]
            report.missed += [(job_id, instant) for instant in due.missed]
            continue
        if previous is None and not due.run and not due.missed:
            # first seen between instants: remember the last one passed, so that the next
            # instant is due however late the next call comes
            storage.claim_scheduled_run(job_id, job.schedule.latest_at(now), host=HOSTNAME,
                                        pid=os.getpid(), outcome="baseline")
        for instant in due.missed:
            if storage.claim_scheduled_run(job_id, instant, host=HOSTNAME, pid=os.getpid(),
                                           outcome="missed"):
                report.missed.append((job_id, instant))
        for index, instant in enumerate(due.run):
            while len(rounds) <= index:
                rounds.append([])
            rounds[index].append((job_id, instant))
    for round_ in rounds:
        _run_round(jc, round_, report, observer)
    return report


def _run_round(jc: JobControl, round_: list[tuple[str, datetime]], report: DueReport,
               observer: BuildObserver | None) -> None:
    storage = jc.storage
    claimed = []
    for job_id, instant in round_:
        if storage.claim_scheduled_run(job_id, instant, host=HOSTNAME, pid=os.getpid()):
            claimed.append((job_id, instant))
        else:
            report.taken_elsewhere += 1
    if not claimed:
        return
    summaries = storage.job_summaries([job_id for job_id, _ in claimed])
    groups: dict[tuple[bool, bool], list[tuple[str, datetime]]] = {}
    for job_id, instant in claimed:
        job = jc.config.jobs[job_id]
        summary = summaries.get(job_id)
        running = summary.running if summary else ()
        if jc.config.executor.remote:  # a build still waiting for a worker counts too
            running += tuple(build.id for build in storage.list_builds(
                job_id, states=[BuildState.QUEUED]))
        if len(running) >= job.concurrency:
            _record_overlap(jc, job_id, instant, running, report)
            continue
        assert job.schedule is not None
        options = job.schedule.options
        groups.setdefault((options.deps, options.if_outdated), []).append((job_id, instant))
    for (deps, if_outdated), group in groups.items():
        _build_group(jc, group, deps=deps, if_outdated=if_outdated, report=report,
                     observer=observer)


def _build_group(jc: JobControl, group: list[tuple[str, datetime]], *, deps: bool,
                 if_outdated: bool, report: DueReport, observer: BuildObserver | None) -> None:
    recorder = _Recorder(observer)
    error: JobControlError | None = None
    targets = [job_id for job_id, _ in group]
    try:
        if jc.config.executor.remote:  # queued for the Celery workers, as build --async
            builds = jc.submit(targets, deps=deps, if_outdated=if_outdated)
        else:
            builds = jc.build(targets, deps=deps, if_outdated=if_outdated, keep_going=True,
                              parallel=len(group), observer=recorder)
    except JobControlError as exc:
        error = exc
        builds = list(getattr(exc, "builds", []))
    for job_id, instant in group:
        mine = [build for build in builds if build.job_id == job_id]
        if mine:  # the first: later ones of the job are its retries
            jc.storage.set_scheduled_run(job_id, instant, outcome="started",
                                         build_id=mine[0].id)
            report.started.append((job_id, instant, mine[-1]))
            continue
        if isinstance(error, JobAlreadyRunningError) and error.job_id == job_id:
            _record_overlap(jc, job_id, instant, error.running, report)
            continue
        reason = recorder.not_built.get(job_id) or (str(error) if error else "not built")
        jc.storage.set_scheduled_run(job_id, instant, outcome="not_built")
        report.not_built.append((job_id, instant, reason))
    if error is not None and not isinstance(error, JobAlreadyRunningError):
        report.errors.append(error)


def _record_overlap(jc: JobControl, job_id: str, instant: datetime,
                    running: tuple[int, ...], report: DueReport) -> None:
    job = jc.config.jobs[job_id]
    ids = ", ".join(f"#{build_id}" for build_id in running)
    skipped = jc.storage.record_build(
        job_id, BuildState.SKIPPED,
        reason=f"overlap: the run due at {isoformat(instant)} was skipped, {ids} still running",
        definition=job.stored_snapshot, definition_hash=job.definition_hash, host=HOSTNAME,
        pid=os.getpid(),
    )
    jc.storage.set_scheduled_run(job_id, instant, outcome="overlap", build_id=skipped.id)
    report.overlaps.append((job_id, instant, skipped))


def next_instant(jc: JobControl, after: datetime) -> datetime | None:
    """The first instant of any job's schedule after ``after`` (None: nothing scheduled)."""
    instants = [job.schedule.next_after(after) for job in jc.config.jobs.values()
                if job.schedule is not None]
    return min(instants, default=None)


class Scheduler:
    """``jobcontrol scheduler``: run-due in a loop, asleep until the next instant.

    SIGTERM or SIGINT while asleep ends the loop at once; during builds, they are
    cancelled as ``build`` cancels them (SIGTERM to the jobs, recorded ``cancelled``), and
    the loop ends after.
    """

    def __init__(self, jc: JobControl, observer: BuildObserver | None = None) -> None:
        self.jc = jc
        self.observer = observer
        self.stop = threading.Event()

    def serve(self, *, max_rounds: int | None = None) -> None:
        rounds = 0
        with self._stop_on_signals():
            while not self.stop.is_set():
                report = run_due(self.jc, observer=self.observer)
                self.report(report)
                rounds += 1
                if max_rounds is not None and rounds >= max_rounds:
                    return
                now = self.jc.storage.now()
                upcoming = next_instant(self.jc, now)
                # wake at the next instant (a minute at most: the config's jobs may be
                # rescheduled by a clock change, and a long sleep notices nothing)
                wait = 60.0 if upcoming is None else (upcoming - now).total_seconds()
                self.stop.wait(min(max(wait, 0.0), 60.0))

    def report(self, report: DueReport) -> None:
        """Called after each round (the CLI prints it)."""

    @contextmanager
    def _stop_on_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_signal(signum: int, frame: object) -> None:
            self.stop.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
