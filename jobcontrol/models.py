"""The values jobcontrol stores and returns: builds, log records, progress, job summaries."""

from __future__ import annotations

import dataclasses
import json
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, NamedTuple

from jobcontrol.serialize import StoredValue, decode_for_display
from jobcontrol.timeutil import isoformat

#: this machine: the ``host`` of the builds and scheduled runs its processes claim
HOSTNAME = socket.gethostname()


class BuildState(str, Enum):
    """Where a build is in its life: ``queued → running → one of the finished states``."""

    #: created, waiting for a runner to claim it
    QUEUED = "queued"
    #: claimed by a runner; the job is executing
    RUNNING = "running"
    #: the job returned
    SUCCESS = "success"
    #: the job raised ``SkipBuild``: it ran, and changed nothing
    SKIPPED = "skipped"
    #: the job raised, timed out or was killed
    FAILED = "failed"
    #: stopped on request (``cancel``, Ctrl-C, SIGTERM of the runner)
    CANCELLED = "cancelled"
    #: its runner vanished without recording an outcome
    ABANDONED = "abandoned"

    @property
    def finished(self) -> bool:
        """True for every state a build never leaves."""
        return self not in (BuildState.QUEUED, BuildState.RUNNING)

    @property
    def ok(self) -> bool:
        """True when the run did not fail (success or skipped): what a command's exit status
        and a run's "stop here" decisions read. Not whether the job has a success: only
        ``SUCCESS`` is one (see :attr:`JobSummary.last_success`)."""
        return self in (BuildState.SUCCESS, BuildState.SKIPPED)

    def __str__(self) -> str:
        return self.value


FINISHED_STATES = tuple(s for s in BuildState if s.finished)


@dataclass(frozen=True)
class ExceptionInfo:
    """An exception a job raised, kept as text: nothing is ever re-imported from it."""

    type: str
    message: str
    traceback: str

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Build:
    """One run of a job, as recorded in the storage."""

    id: int
    job_id: str
    state: BuildState
    reason: str | None = None
    #: the job's definition when the build was made (function, args, kwargs, options)
    definition: dict[str, Any] = field(default_factory=dict)
    #: hash of function, args and kwargs: a change makes the job outdated
    definition_hash: str = ""
    #: the dependency builds this build consumed, ``{job_id: build_id}``
    dependency_builds: dict[str, int] = field(default_factory=dict)
    created: datetime | None = None
    started: datetime | None = None
    finished: datetime | None = None
    heartbeat: datetime | None = None
    host: str | None = None
    pid: int | None = None
    result: StoredValue | None = None
    exception: ExceptionInfo | None = None
    #: the build this one retries, if any
    retry_of: int | None = None
    #: when someone asked this build to stop (``jobcontrol cancel``), and who and why
    cancel_requested: datetime | None = None
    cancel_reason: str | None = None
    #: the Celery queue a remote build was sent to; None for a build run where it was made
    queue: str | None = None
    #: the process group of the job's process on ``host`` (killed with the build); None for
    #: an inline build or before its process started
    pgid: int | None = None
    #: the run that made this build (see :class:`Run`); None for builds made before runs
    run_id: int | None = None
    #: its parameters that differ from the job's defaults (None: none do); such a build is
    #: recorded but is never the job's last success (see :mod:`jobcontrol.rules.params`)
    params: dict[str, Any] | None = None
    #: the identity of the Celery worker running it (see :class:`WorkerRecord`); None for
    #: a build run where it was made
    worker_id: str | None = None
    #: ``BOOT~PIDNS`` of the process that runs it (see :mod:`jobcontrol.execution.identity`):
    #: only a process of the same boot and PID namespace may judge it by its pid; None for
    #: builds recorded before jobcontrol knew it
    pid_namespace: str | None = None

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish (or to now, while running); None before it starts."""
        if self.started is None:
            return None
        from jobcontrol.timeutil import utcnow

        end = self.finished or utcnow()
        return max(0.0, (end - self.started).total_seconds())

    @property
    def retval(self) -> Any:
        """The return value for display: decoded JSON, or a :class:`~jobcontrol.serialize.Opaque`
        marker for a repr or pickle (a pickle is never loaded here)."""
        return decode_for_display(self.result)


class RunTrigger(str, Enum):
    """What started a run."""

    #: ``jobcontrol build`` on a terminal or from cron
    CLI = "cli"
    #: a scheduled instant (``run-due``, ``scheduler``)
    SCHEDULE = "schedule"
    #: the web's launch form
    WEB = "web"
    #: ``jobcontrol backfill``
    BACKFILL = "backfill"
    #: the Python API (``JobControl.build`` or ``submit`` called by a program)
    API = "api"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Run:
    """One invocation that starts builds (Airflow's DAG run): its builds point at it by
    ``Build.run_id``; its state is derived from them (:func:`jobcontrol.rules.runs.run_state`)."""

    id: int
    trigger: RunTrigger
    created: datetime
    #: who started it (``user@host``, the web user, ``scheduler@host``)
    by: str
    #: the jobs asked for (their dependencies may be built too)
    targets: tuple[str, ...] = ()
    #: the parameters given, by job: ``{job_id: {name: value}}`` (JSON values)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: what else says what it is for: a scheduled instant, a backfill's window
    note: str | None = None


@dataclass(frozen=True)
class NewRun:
    """A run not yet recorded: what :class:`Run` holds but its id and time, for a storage
    that records it with the run's first build (``enqueue_build(new_run=...)``)."""

    trigger: RunTrigger
    by: str
    targets: tuple[str, ...] = ()
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    note: str | None = None


@dataclass(frozen=True)
class LogRecord:
    """One line of a build's log: from ``logging``, or a line the job wrote to stdout/stderr."""

    time: datetime
    level: int
    logger: str
    message: str
    exception: str | None = None
    #: position in the build's log, 1-based, assigned by the storage (0 before it is stored)
    seq: int = 0

    @property
    def level_name(self) -> str:
        import logging

        return logging.getLevelName(self.level)


@dataclass(frozen=True)
class ProgressItem:
    """The latest progress a build reported for one group (``()`` is the whole build)."""

    group: tuple[str, ...]
    current: float
    total: float | None
    message: str | None = None
    updated: datetime | None = None


@dataclass(frozen=True)
class BuildStub:
    """The little of a build that retention needs: listed by the thousand, never in full."""

    id: int
    job_id: str
    state: BuildState
    created: datetime
    started: datetime | None = None
    finished: datetime | None = None

    @property
    def ended(self) -> datetime:
        """When the build ended (or, lacking that, started or was created): its age's origin."""
        return self.finished or self.started or self.created


class BuildMark(NamedTuple):
    """A build as a mark in a job's history strip: its id and state, read by the thousand
    for the jobs page (a tuple: cheaper to make than a dataclass)."""

    id: int
    state: BuildState


#: builds whose reasons a text search reads: those numbered within this of the newest searched
TEXT_WINDOW = 20_000


@dataclass(frozen=True)
class BuildQuery:
    """Which builds the Builds page and ``GET /api/v1/builds`` list; every filter optional.

    ``job_ids`` (None: every job; empty: none), ``states``, a window of creation times
    (``since`` inclusive, ``until`` exclusive), ``before_id`` (ids below it: paging
    backwards) and ``text``: a case-insensitive part of the job id (any build of the job),
    or of the reason among the builds numbered within :data:`TEXT_WINDOW` of the newest in
    the window (a reason has no index: a search of every reason of a million builds takes
    a second).
    """

    job_ids: tuple[str, ...] | None = None
    states: tuple[BuildState, ...] | None = None
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None
    before_id: int | None = None

    @property
    def empty(self) -> bool:
        """Whether no build can match (no job or no state wanted)."""
        return self.job_ids == () or self.states == ()

    def matches(self, build: Build, reasons_from: int = 0) -> bool:
        """Whether ``build`` is one of these, its reason searched if its id is at least
        ``reasons_from`` (the memory backend's way; SQL says the same)."""
        if self.job_ids is not None and build.job_id not in self.job_ids:
            return False
        if self.states is not None and build.state not in self.states:
            return False
        if self.before_id is not None and build.id >= self.before_id:
            return False
        created = build.created
        if self.since is not None and (created is None or created < self.since):
            return False
        if self.until is not None and (created is None or created >= self.until):
            return False
        if self.text:
            needle = self.text.lower()
            return needle in build.job_id.lower() or (
                build.id >= reasons_from and needle in (build.reason or "").lower())
        return True


@dataclass(frozen=True)
class LogCutoff:
    """Log records at ``max_level`` or below written before ``before``: what a per-level
    retention rule deletes."""

    max_level: int
    before: datetime


@dataclass(frozen=True)
class ScheduledRun:
    """A scheduled instant of a job that ``run-due`` or ``scheduler`` took on.

    ``outcome``: ``claimed`` (being started), ``started`` (``build_id`` is its build),
    ``overlap`` (skipped: the job was still running; ``build_id`` is the skipped build
    recorded for it), ``not_built`` (up to date, or a dependency failed), ``missed`` (too late,
    by the job's catch-up policy) or ``baseline`` (the instant before the schedule was first
    seen: not run, only where the next one counts from) or ``paused`` (not run: the job was
    paused, see :class:`JobPause`).
    """

    job_id: str
    scheduled_for: datetime
    claimed: datetime
    outcome: str
    host: str | None = None
    pid: int | None = None
    build_id: int | None = None


@dataclass(frozen=True)
class WorkerRecord:
    """A ``jobcontrol worker`` as the storage knows it, by an identity unique across
    machines and containers (see :mod:`jobcontrol.execution.identity`)."""

    id: str
    host: str
    #: the worker's main process, in its own PID namespace
    pid: int
    started: datetime
    #: when it last said it was alive (every ``runner.heartbeat``)
    heartbeat: datetime
    #: the queues it reads
    queues: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobPause:
    """A pause of a job (``jobcontrol pause``): while it holds (``resumed`` is None) no
    build of the job is started but by ``build --force``."""

    job_id: str
    #: when it was paused, and by whom (``user@host``, or the web user)
    paused: datetime
    paused_by: str
    #: why, as the person who paused it said (None: not said)
    reason: str | None = None
    #: when it was resumed, and by whom (None while it holds)
    resumed: datetime | None = None
    resumed_by: str | None = None

    @property
    def active(self) -> bool:
        """True while the job is paused."""
        return self.resumed is None

    def describe(self) -> str:
        """``paused by WHO since WHEN: WHY``: one line, what every refusal says."""
        text = f"paused by {self.paused_by} since {isoformat(self.paused.replace(microsecond=0))}"
        return f"{text}: {self.reason}" if self.reason else text


@dataclass(frozen=True)
class JobSummary:
    """What the storage knows of one job's builds; the status of all jobs is one query.

    ``last_success`` is the job's latest ``success``, the one rule of what a success is that
    status, freshness, the outdated rules and dependencies all read. A ``skipped`` build (the
    job raised ``SkipBuild``, or a schedule recorded an instant whose job was still running)
    did not fail, but is never a success; nor is a ``success`` given parameters other than
    the job's defaults (``Build.params``: see :mod:`jobcontrol.rules.params`).
    """

    job_id: str
    last_build: Build | None = None
    last_success: Build | None = None
    running: tuple[int, ...] = ()

    @property
    def last_output_id(self) -> int | None:
        """The id of :attr:`last_success`: the build dependents consume."""
        return self.last_success.id if self.last_success is not None else None


#: ``json.dumps(value, ensure_ascii=False)``, its encoder made once (``dumps`` with options
#: makes a new one each call)
_TEXT_ENCODER = json.JSONEncoder(ensure_ascii=False)


class EncodedJSON(Mapping[str, Any]):
    """A read-only JSON object with its text encoded once, for a value stored again and
    again: a job's definition snapshot goes with each of its builds, and encoding it for
    every build of a large run cost more than the insert did. SQL storages write
    :attr:`text` as it is; anything else reads it as the mapping it is."""

    __slots__ = ("_data", "text")

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = dict(data)
        #: the JSON text, as ``json.dumps(data, ensure_ascii=False)`` gives it
        self.text = _TEXT_ENCODER.encode(self._data)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def extended(self, extra: Mapping[str, Any]) -> EncodedJSON:
        """This object with the keys of ``extra`` added: only ``extra`` is encoded (what a
        build records beside its job's snapshot, see :mod:`jobcontrol.rules.versions`)."""
        if not extra or not self._data or any(key in self._data for key in extra):
            return EncodedJSON({**self._data, **extra})
        joined = EncodedJSON.__new__(EncodedJSON)
        joined._data = {**self._data, **extra}
        joined.text = self.text[:-1] + ", " + _TEXT_ENCODER.encode(dict(extra))[1:]
        return joined

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"EncodedJSON({self._data!r})"
