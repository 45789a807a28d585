"""Firing scheduled builds: ``jobcontrol run-due`` (once, from cron) and ``scheduler`` (a
loop, for systems without cron).

Each due instant of a job is claimed in storage before anything runs (a row keyed by job and
instant: :meth:`~jobcontrol.storage.base.Storage.claim_scheduled_run`), so however many
``run-due`` processes race, on however many hosts, each instant is taken on exactly once.
An instant whose job is still running is recorded as a ``skipped`` build ("overlap"), visible
in ``builds``, and the next instant runs normally. An instant that falls while its job is
paused (``jobcontrol pause``) is claimed and recorded ``paused``, not run, and not caught up
after ``resume``.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from jobcontrol.errors import JobAlreadyRunningError, JobControlError, JobPausedError
from jobcontrol.execution.local import CANCEL_POLL_INTERVAL
from jobcontrol.execution.observer import BuildObserver
from jobcontrol.execution.queued import holds_job
from jobcontrol.models import HOSTNAME, Build, BuildState, JobPause, RunTrigger
from jobcontrol.rules.plan import make_plan
from jobcontrol.rules.runs import RunStart
from jobcontrol.schedule import due_runs
from jobcontrol.timeutil import isoformat

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from jobcontrol.config import Config
    from jobcontrol.storage.base import Storage


class ScheduledBuilder(Protocol):
    """What firing schedules needs of :class:`~jobcontrol.core.JobControl` (which offers
    ``run_due`` through this module, so this module does not import it): the config and
    storage, reaping, and starting a run's builds here or on the workers."""

    config: Config
    storage: Storage

    def reap(self) -> list[Build]: ...

    def open_run(self, trigger: RunTrigger | str, targets: Sequence[str], *,
                 note: str | None = None,
                 instants: Mapping[str, tuple[datetime, datetime | None]] | None = None
                 ) -> RunStart: ...

    def build(self, jobs: str | Sequence[str], *, deps: bool = False,
              if_outdated: bool = False, keep_going: bool = False, parallel: int = 1,
              observer: BuildObserver | None = None, run: RunStart | None = None
              ) -> list[Build]: ...

    def submit(self, jobs: str | Sequence[str], *, deps: bool = False,
               if_outdated: bool = False, run: RunStart | None = None) -> list[Build]: ...


@dataclass
class DueReport:
    """What one ``run-due`` did, instant by instant."""

    #: (job, instant, build) of each instant started
    started: list[tuple[str, datetime, Build]] = field(default_factory=list)
    #: (job, instant, skipped build) of each instant whose job was still running
    overlaps: list[tuple[str, datetime, Build]] = field(default_factory=list)
    #: (job, instant, why) of instants claimed but not built (up to date, blocked, paused...)
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

    def __getattribute__(self, name: str) -> Any:
        if name in ("inner", "not_built", "job_not_built", "job_refused") or name.startswith("__"):
            return object.__getattribute__(self, name)
        return getattr(object.__getattribute__(self, "inner"), name)

    def job_not_built(self, job_id: str, reason: str) -> None:
        self.not_built[job_id] = reason
        self.inner.job_not_built(job_id, reason)

    def job_refused(self, job_id: str, error: JobControlError) -> None:
        self.not_built[job_id] = str(error)
        self.inner.job_refused(job_id, error)


def run_due(jc: ScheduledBuilder, *, now: datetime | None = None,
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
    if not any(job.schedule for job in jc.config.jobs.values()):
        return report
    clock = jc.storage.now()
    if now is not None and now > clock:
        return _dry_run(jc, report, now)
    now = now or clock
    jc.reap()  # a dead runner must not make its job look busy
    while (groups := claim_due(jc, report, now=now)) is not None:
        for group in groups:
            _build_group(jc, group.instants, deps=group.deps, if_outdated=group.if_outdated,
                         report=report, observer=observer)
    return report


def _dry_run(jc: ScheduledBuilder, report: DueReport, now: datetime) -> DueReport:
    """What a run at ``now`` would take on, claiming and building nothing."""
    report.dry_run = True
    scheduled = {job_id: job for job_id, job in jc.config.jobs.items() if job.schedule}
    last = jc.storage.last_scheduled_runs(scheduled)
    for job_id, job in scheduled.items():
        assert job.schedule is not None
        previous = last.get(job_id)
        due = due_runs(job.schedule, previous.scheduled_for if previous else None, now)
        report.due += [(job_id, instant) for instant in due.run]
        report.missed += [(job_id, instant) for instant in due.missed]
    return report


@dataclass(frozen=True)
class DueGroup:
    """Instants claimed to be built together (one ``build`` of their jobs): those of one
    round whose jobs share their ``deps`` and ``if_outdated`` options."""

    instants: list[tuple[str, datetime]]
    deps: bool
    if_outdated: bool


def claim_due(jc: ScheduledBuilder, report: DueReport, *, now: datetime) -> list[DueGroup] | None:
    """Take on one round: the next due instant of each scheduled job, by its catch-up
    policy. Instants too late are recorded ``missed``, those whose job is still running
    ``overlap``, every one due while its job is paused ``paused`` (one missed before the
    pause began stays ``missed``); the rest are returned, claimed, in the groups to build
    (empty when other processes took them all). None: nothing was due."""
    scheduled = {job_id: job for job_id, job in jc.config.jobs.items() if job.schedule}
    if not scheduled:
        return None
    storage = jc.storage
    last = storage.last_scheduled_runs(scheduled)
    pauses = storage.job_pauses(scheduled)
    round_: list[tuple[str, datetime]] = []
    for job_id, job in scheduled.items():
        assert job.schedule is not None
        previous = last.get(job_id)
        due = due_runs(job.schedule, previous.scheduled_for if previous else None, now)
        if previous is None and not due.run and not due.missed:
            # first seen between instants: remember the last one passed, so that the next
            # instant is due however late the next call comes
            storage.claim_scheduled_run(job_id, job.schedule.latest_at(now), host=HOSTNAME,
                                        pid=os.getpid(), outcome="baseline")
        pause = pauses.get(job_id)
        if pause is not None:
            _record_paused(jc, job_id, due.missed, due.run, pause, report)
            continue
        for instant in due.missed:
            if storage.claim_scheduled_run(job_id, instant, host=HOSTNAME, pid=os.getpid(),
                                           outcome="missed"):
                report.missed.append((job_id, instant))
        if due.run:  # the later ones (catchup: all) are the next rounds' first
            round_.append((job_id, due.run[0]))
    if not round_:
        return None
    return _claim_round(jc, round_, report)


def _record_paused(jc: ScheduledBuilder, job_id: str, missed: list[datetime], due: list[datetime],
                   pause: JobPause, report: DueReport) -> None:
    """Claim a paused job's due instants as ``paused``; one too late by its catch-up policy
    that came before the pause began stays ``missed``, as it was."""
    for instant in sorted([*missed, *due]):
        outcome = "missed" if instant in missed and instant < pause.paused else "paused"
        if not jc.storage.claim_scheduled_run(job_id, instant, host=HOSTNAME, pid=os.getpid(),
                                              outcome=outcome):
            report.taken_elsewhere += 1
        elif outcome == "paused":
            report.not_built.append((job_id, instant, pause.describe()))
        else:
            report.missed.append((job_id, instant))


def _claim_round(jc: ScheduledBuilder, round_: list[tuple[str, datetime]],
                 report: DueReport) -> list[DueGroup]:
    storage = jc.storage
    claimed = []
    for job_id, instant in round_:
        if storage.claim_scheduled_run(job_id, instant, host=HOSTNAME, pid=os.getpid()):
            claimed.append((job_id, instant))
        else:
            report.taken_elsewhere += 1
    if not claimed:
        return []
    summaries = storage.job_summaries([job_id for job_id, _ in claimed])
    groups: dict[tuple[bool, bool], list[tuple[str, datetime]]] = {}
    for job_id, instant in claimed:
        job = jc.config.jobs[job_id]
        summary = summaries.get(job_id)
        running = summary.running if summary else ()
        if jc.config.executor.remote:  # a build still waiting for a worker counts too,
            now = storage.now()  # unless its message is lost (it would hold the job forever)
            running += tuple(build.id for build in storage.list_builds(
                job_id, states=[BuildState.QUEUED]) if holds_job(
                    storage, build, jc.config.jobs, jc.config.executor.queued_timeout, now))
        if len(running) >= job.concurrency:
            _record_overlap(jc, job_id, instant, running, report)
            continue
        assert job.schedule is not None
        options = job.schedule.options
        groups.setdefault((options.deps, options.if_outdated), []).append((job_id, instant))
    return [DueGroup(instants, deps, if_outdated)
            for (deps, if_outdated), instants in groups.items()]


def _build_group(jc: ScheduledBuilder, group: list[tuple[str, datetime]], *, deps: bool,
                 if_outdated: bool, report: DueReport, observer: BuildObserver | None,
                 parallel: int | None = None) -> None:
    pauses = jc.storage.job_pauses(job_id for job_id, _ in group)
    for job_id, instant in group:  # paused since its instant was claimed (it waited)
        if job_id in pauses:
            jc.storage.set_scheduled_run(job_id, instant, outcome="paused")
            report.not_built.append((job_id, instant, pauses[job_id].describe()))
    group = [(job_id, instant) for job_id, instant in group if job_id not in pauses]
    if not group:
        return
    recorder = _Recorder(observer)
    error: JobControlError | None = None
    targets = [job_id for job_id, _ in group]
    try:
        run = open_scheduled_run(jc, RunTrigger.SCHEDULE, group)
        if jc.config.executor.remote:  # queued for the Celery workers, as build --async
            builds = jc.submit(targets, deps=deps, if_outdated=if_outdated, run=run)
        else:
            builds = jc.build(targets, deps=deps, if_outdated=if_outdated, keep_going=True,
                              parallel=parallel or len(group), observer=recorder, run=run)
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
    if error is not None and not isinstance(error, (JobAlreadyRunningError, JobPausedError)):
        report.errors.append(error)


def open_scheduled_run(jc: ScheduledBuilder, trigger: RunTrigger,
                       group: list[tuple[str, datetime]], note: str | None = None
                       ) -> RunStart:
    """Record the run of scheduled instants (``run-due``, ``scheduler``, ``backfill``): its
    builds carry their instant and the interval it covers (see
    :func:`jobcontrol.context.scheduled_for`)."""
    instants = {}
    for job_id, instant in group:
        schedule = jc.config.jobs[job_id].schedule
        assert schedule is not None  # only scheduled jobs have instants
        instants[job_id] = (instant, schedule.previous_before(instant))
    if note is None:
        note = "due at " + ", ".join(f"{isoformat(instant)} ({job_id})"
                                     for job_id, instant in group)
    return jc.open_run(trigger, [job_id for job_id, _ in group], note=note,
                       instants=instants)


def _record_overlap(jc: ScheduledBuilder, job_id: str, instant: datetime,
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


def next_instant(jc: ScheduledBuilder, after: datetime) -> datetime | None:
    """The first instant of any job's schedule after ``after`` (None: nothing scheduled)."""
    instants = [job.schedule.next_after(after) for job in jc.config.jobs.values()
                if job.schedule is not None]
    return min(instants, default=None)


#: how many builds ``scheduler`` runs at once unless told (``-j``)
DEFAULT_MAX_BUILDS = 4


class Scheduler:
    """``jobcontrol scheduler``: run-due's rules in a loop that never waits for a build.

    A thread wakes at each instant (and when a run ends), claims what is due as
    :func:`run_due` claims it (:func:`claim_due`: the same claim rows, ``missed`` and
    ``overlap`` records) and hands each group of instants to a builder, which builds it by
    :func:`run_due`'s own build path: at most ``max_builds`` builds run at once (a group of
    n jobs takes n of them, or all). A group waiting for room starts late, by its jobs'
    catch-up policy: with ``all`` each instant is built, in turn; with ``latest`` and
    ``none`` an instant waiting when the job's next one is claimed is recorded ``missed``,
    and with ``none`` one that starts later than its ``misfire_grace`` too. A group with an
    inline job is built in the main thread (where a timeout and a cancel can interrupt it),
    one at a time; the others each in a thread of their own.

    SIGTERM or SIGINT stops it: nothing more is claimed, the builds running are cancelled
    (recorded ``cancelled``, as ``build`` records them), groups not started are recorded
    ``not_built``, and :meth:`serve` returns once every build has ended.
    """

    def __init__(self, jc: ScheduledBuilder, observer: BuildObserver | None = None, *,
                 max_builds: int = DEFAULT_MAX_BUILDS) -> None:
        if max_builds < 1:
            raise ValueError(f"max_builds must be at least 1, got {max_builds}")
        self.jc = jc
        self.observer = observer
        self.max_builds = max_builds
        self.stop = threading.Event()
        #: why it stopped, as the cancelled builds' reason says
        self.stop_reason = "the scheduler stopped"
        self._wake_loop = threading.Event()
        self._wake_main = threading.Event()
        self._lock = threading.Lock()
        #: claimed, waiting for room
        self._waiting: list[DueGroup] = []
        #: a group with an inline job handed to the main thread, not started yet
        self._inline: DueGroup | None = None
        #: whether the main thread has such a group (until it is built)
        self._main_busy = False
        #: the builds the groups given room may run at once, together
        self._room_taken = 0
        self._builders: list[threading.Thread] = []
        self._failure: BaseException | None = None

    def serve(self) -> None:
        """Run until stopped (SIGTERM, SIGINT, or :attr:`stop` set and :meth:`wake`)."""
        with self._stop_on_signals():
            loop = threading.Thread(target=self._loop, name="jobcontrol-scheduler",
                                    daemon=True)
            loop.start()
            while True:  # the main thread builds the groups with an inline job
                group = self._next_inline()
                if group is not None:
                    self._build(group, inline=True)  # recorded not built once stopped
                elif self.stop.is_set():
                    break
                else:
                    self._wake_main.wait()
                    self._wake_main.clear()
            if (group := self._next_inline()) is not None:  # handed over as it stopped
                self._build(group, inline=True)
            loop.join()
            self._shut_down()
        if self._failure is not None:
            raise self._failure

    def wake(self) -> None:
        """Have the loop and the main thread look at their work (and at :attr:`stop`)."""
        self._wake_loop.set()
        self._wake_main.set()

    def report(self, report: DueReport) -> None:
        """Called with what each claim, each group built and the stop did (the CLI prints
        it); from any of the scheduler's threads."""

    # -- the loop ------------------------------------------------------------------------

    def _loop(self) -> None:
        try:
            while not self.stop.is_set():
                self._wake_loop.clear()  # a wake from now on is not missed
                self._claim()
                now = self.jc.storage.now()
                upcoming = next_instant(self.jc, now)
                # wake at the next instant (a minute at most: the config's jobs may be
                # rescheduled by a clock change, and a long sleep notices nothing)
                wait = 60.0 if upcoming is None else (upcoming - now).total_seconds()
                self._wake_loop.wait(min(max(wait, 0.0), 60.0))
            self._cancel_running()
        except BaseException as exc:  # the main thread raises it, once all is recorded
            self._failure = exc
            self.stop.set()
            self.wake()

    def _claim(self) -> None:
        report = DueReport()
        self.jc.reap()  # a dead runner must not make its job look busy
        groups = claim_due(self.jc, report, now=self.jc.storage.now()) or []
        superseded = []
        with self._lock:
            for job_id, _ in (entry for group in groups for entry in group.instants):
                schedule = self.jc.config.jobs[job_id].schedule
                assert schedule is not None
                if schedule.options.catchup == "all":
                    continue
                for waiting in self._waiting:  # its next instant replaces it, by the policy
                    superseded += [entry for entry in waiting.instants if entry[0] == job_id]
                    waiting.instants[:] = [entry for entry in waiting.instants
                                           if entry[0] != job_id]
            self._waiting = [group for group in self._waiting if group.instants] + groups
        for job_id, instant in superseded:
            self.jc.storage.set_scheduled_run(job_id, instant, outcome="missed")
            report.missed.append((job_id, instant))
        self.report(report)
        self._dispatch()

    def _room(self, group: DueGroup) -> int:
        """How many builds of the group run at once: one a job, at most all there are."""
        return min(len(group.instants), self.max_builds)

    def _dispatch(self) -> None:
        """Start the waiting groups there is room for, oldest first (one with an inline
        job once the main thread is free)."""
        with self._lock:
            self._builders = [thread for thread in self._builders if thread.is_alive()]
            for group in list(self._waiting):
                if self.stop.is_set() \
                        or self._room_taken + self._room(group) > self.max_builds:
                    break
                inline = self._inline_in(group)
                if inline and self._main_busy:
                    continue
                self._waiting.remove(group)
                self._room_taken += self._room(group)
                if inline:
                    self._inline, self._main_busy = group, True
                    self._wake_main.set()
                    continue
                builder = threading.Thread(target=self._build, args=(group,),
                                           name="jobcontrol-scheduler-build", daemon=True)
                builder.start()
                self._builders.append(builder)

    def _inline_in(self, group: DueGroup) -> bool:
        """Whether a build of the group may run inline (then it runs in the main thread)."""
        if self.jc.config.executor.remote:
            return False
        steps = make_plan(self.jc.config.dependencies, [job_id for job_id, _ in group.instants],
                          with_deps=group.deps)
        return any(self.jc.config.jobs[step.job_id].isolation == "inline" for step in steps)

    def _next_inline(self) -> DueGroup | None:
        with self._lock:
            group, self._inline = self._inline, None
            return group

    def _build(self, group: DueGroup, inline: bool = False) -> None:
        report = DueReport()
        try:
            if self.stop.is_set():
                self._not_started(group, report)
                return
            now = self.jc.storage.now()
            on_time = []
            for job_id, instant in group.instants:
                schedule = self.jc.config.jobs[job_id].schedule
                assert schedule is not None
                if schedule.options.too_late(instant, now):  # it waited for room
                    self.jc.storage.set_scheduled_run(job_id, instant, outcome="missed")
                    report.missed.append((job_id, instant))
                else:
                    on_time.append((job_id, instant))
            if on_time:
                _build_group(self.jc, on_time, deps=group.deps, if_outdated=group.if_outdated,
                             report=report, observer=self.observer,
                             parallel=self._room(group))
        except JobControlError as exc:  # the storage failed: the next claims go on
            report.errors.append(exc)
        finally:
            self.report(report)
            with self._lock:
                self._room_taken -= self._room(group)
                self._main_busy = self._main_busy and not inline
            self._dispatch()
            self._wake_loop.set()  # its jobs' next instants (catchup: all) may be due now

    # -- stopping ------------------------------------------------------------------------

    def _cancel_running(self) -> None:
        """Once stopped (in the loop's thread): cancel the builds of this process, those
        that start after too, until no group is being built. The runs find the request as
        they find a ``jobcontrol cancel`` (an inline build's too, in the main thread)."""
        asked: set[int] = set()
        while True:
            with self._lock:
                self._builders = [thread for thread in self._builders if thread.is_alive()]
                if not self._builders and not self._main_busy:
                    return
            for build in self.jc.storage.list_builds(states=[BuildState.RUNNING]):
                if build.host == HOSTNAME and build.pid == os.getpid() \
                        and build.id not in asked:
                    self.jc.storage.request_cancel(build.id, self.stop_reason)
                    asked.add(build.id)
            self._wake_loop.wait(CANCEL_POLL_INTERVAL)  # set as each group ends
            self._wake_loop.clear()

    def _shut_down(self) -> None:
        """Record the groups that were not started."""
        report = DueReport()
        with self._lock:
            unstarted, self._waiting = self._waiting, []
            if self._inline is not None:
                unstarted.append(self._inline)
                self._inline = None
        for group in unstarted:
            self._not_started(group, report)
        self.report(report)

    def _not_started(self, group: DueGroup, report: DueReport) -> None:
        for job_id, instant in group.instants:
            self.jc.storage.set_scheduled_run(job_id, instant, outcome="not_built")
            report.not_built.append((job_id, instant, "the scheduler stopped before it started"))

    @contextmanager
    def _stop_on_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_signal(signum: int, frame: object) -> None:
            # only flags: the storage may be mid-statement in this very thread
            self.stop_reason = f"interrupted by {signal.Signals(signum).name}"
            self.stop.set()
            self.wake()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
