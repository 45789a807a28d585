"""A run's state, derived from its builds: written here once, read by the CLI, the JSON API
and the web alike (see ``docs/explanation/builds.rst``).

- A retried build stands no more: its retry (``retry_of``) in the same run speaks for it.
- ``running`` while any build that stands is queued or running;
- else ``failed`` if any failed or was abandoned;
- else ``cancelled`` if any was cancelled;
- else ``success`` (every build succeeded or was skipped);
- ``empty`` when the run has no build on record: they were deleted or pruned since, or a
  scheduled instant's run found its job up to date (a ``build`` that builds nothing
  records no run: see :class:`RunStart`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from jobcontrol.models import Build, BuildState, NewRun, Run


class RunState(str, Enum):
    """What a run's builds add up to (see the module's docstring)."""

    #: a build is queued or running
    RUNNING = "running"
    #: a build failed or was abandoned (and was not retried to success)
    FAILED = "failed"
    #: a build was cancelled, none failed
    CANCELLED = "cancelled"
    #: every build succeeded or was skipped
    SUCCESS = "success"
    #: no build of the run is on record (none made, or deleted or pruned since)
    EMPTY = "empty"

    def __str__(self) -> str:
        return self.value


def standing(builds: Sequence[Build]) -> list[Build]:
    """The builds of a run that speak for it: those no later build of the run retries."""
    retried = {build.retry_of for build in builds if build.retry_of is not None}
    return [build for build in builds if build.id not in retried]


def run_state(builds: Sequence[Build]) -> RunState:
    """The state of a run whose builds are ``builds`` (see the module's docstring)."""
    states = {build.state for build in standing(builds)}
    if not states:
        return RunState.EMPTY
    if states & {BuildState.QUEUED, BuildState.RUNNING}:
        return RunState.RUNNING
    if states & {BuildState.FAILED, BuildState.ABANDONED}:
        return RunState.FAILED
    if BuildState.CANCELLED in states:
        return RunState.CANCELLED
    return RunState.SUCCESS


@dataclass
class RunStart:
    """What a run about to start its builds carries to them: the run (None: none is
    recorded), each target's parameter values, and the scheduled instants by job.

    With ``opener``, the run is recorded when its first build asks for it (:attr:`run_id`):
    an invocation that builds nothing (``build --if-outdated`` from cron, all up to date)
    leaves no empty run behind. A write that can record the run with the first build (a
    queued build's) takes ``new_run`` instead (:meth:`take_new_run`, then :meth:`opened`)."""

    run: Run | None = None
    values: Mapping[str, Mapping[str, Any]] | None = None
    instants: Mapping[str, tuple[datetime, datetime | None]] | None = None
    opener: Callable[[], Run] | None = field(default=None, repr=False, compare=False)
    #: a retry asked for by hand (``build --retry-of``): the job's build it retries
    retries: Mapping[str, int] | None = None
    #: the run ``opener`` records, for a write that records it with the first build
    new_run: NewRun | None = field(default=None, repr=False, compare=False)
    #: the id of the run recorded with the first build (see :meth:`opened`)
    opened_id: int | None = None

    def take_new_run(self) -> NewRun | None:
        """The run still to record, given once to the write of the first build, which
        records it too and tells its id to :meth:`opened`; None when it is recorded."""
        if self.run is not None or self.opened_id is not None or self.new_run is None:
            return None
        new, self.new_run, self.opener = self.new_run, None, None
        return new

    def opened(self, run_id: int | None) -> None:
        """The run taken by :meth:`take_new_run` is recorded, as ``run_id``."""
        self.opened_id = run_id

    def retry_of(self, job_id: str) -> int | None:
        """The build the run's first build of ``job_id`` retries, given once (None: no
        retry asked for)."""
        if not self.retries or job_id not in self.retries:
            return None
        left = dict(self.retries)
        found = left.pop(job_id)
        self.retries = left
        return found

    @property
    def run_id(self) -> int | None:
        if self.run is None and self.opened_id is None and self.opener is not None:
            self.run, self.opener, self.new_run = self.opener(), None, None
        return self.opened_id if self.run is None else self.run.id

    def instant(self, job_id: str) -> tuple[datetime, datetime | None] | None:
        """The scheduled instant a build of ``job_id`` is for, and where the interval it
        covers begins (the schedule's instant before; None: it has none)."""
        return (self.instants or {}).get(job_id)
