"""Runs: the part of the Python API (:class:`~jobcontrol.core.JobControl` takes it in) that
opens a run for each invocation that starts builds, checks the parameters it was given,
and reads runs back with their builds and derived state.

A run is opened before its first build is claimed (``build``, ``build --async``, a
scheduled instant, a web launch, a backfill) and its builds name it (``Build.run_id``);
its state is never stored, only derived (:func:`jobcontrol.rules.runs.run_state`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from jobcontrol.errors import BuildStateError, RunNotFoundError
from jobcontrol.models import Build, BuildState, NewRun, Run, RunTrigger
from jobcontrol.rules import params as param_rules
from jobcontrol.rules.runs import RunStart, RunState, run_state

if TYPE_CHECKING:
    from jobcontrol.config import Config, JobDefinition
    from jobcontrol.storage.base import Storage

#: runs ``jobcontrol runs`` and the web list when no limit is given
DEFAULT_RUN_LIMIT = 20
#: the states a build may be retried from by hand (``build --retry-of``, the web's Retry)
RETRIABLE = frozenset({BuildState.FAILED, BuildState.ABANDONED, BuildState.CANCELLED})


@dataclass(frozen=True)
class RunView:
    """A run with its builds (oldest first) and the state they add up to."""

    run: Run
    builds: tuple[Build, ...]

    @property
    def state(self) -> RunState:
        return run_state(self.builds)


class Runs:
    """Open and read runs: a part of :class:`~jobcontrol.core.JobControl`."""

    config: Config
    storage: Storage

    def job(self, job_id: str) -> JobDefinition:  # JobControl's
        raise NotImplementedError

    def param_values(self, targets: Sequence[str], given: Mapping[str, Any] | None
                     ) -> dict[str, dict[str, Any]]:
        """Each target's parameter values: ``given`` converted (every target must declare
        each one given), the rest defaults. :class:`~jobcontrol.errors.ParamError` before
        anything is recorded."""
        return {job_id: param_rules.resolve(self.job(job_id), given) for job_id in targets}

    def open_run(self, trigger: RunTrigger | str, targets: Sequence[str], *,
                 by: str | None = None, params: Mapping[str, Any] | None = None,
                 note: str | None = None,
                 instants: Mapping[str, tuple[datetime, datetime | None]] | None = None,
                 when_first_built: bool = False) -> RunStart:
        """Check ``params`` and record a new run of ``targets`` (``by`` defaults to
        ``user@host``); what its builds need to name it. ``when_first_built``: recorded
        when its first build is (none, if it builds nothing)."""
        from jobcontrol.pausing import who

        values = self.param_values(targets, params)
        shown = {job_id: param_rules.as_json(v) for job_id, v in values.items() if v}

        new = NewRun(RunTrigger(trigger), by or who(), tuple(targets), shown, note)

        def record() -> Run:
            return self.storage.create_run(new.trigger, by=new.by, targets=new.targets,
                                           params=new.params, note=new.note)

        if when_first_built:
            return RunStart(None, values, instants, opener=record, new_run=new)
        return RunStart(record(), values, instants)

    def retry_start(self, build_id: int, trigger: RunTrigger | str = RunTrigger.CLI,
                    by: str | None = None) -> RunStart:
        """What a retry of build ``build_id`` by hand starts with: its job's first build
        records ``retry_of`` = it, with its parameters and scheduled instant, in its run
        (a build of no run, from before runs were recorded: a new run, ``trigger`` and
        ``by``). A build not failed, abandoned or cancelled, or retried already, raises
        :class:`BuildStateError`."""
        build = self.storage.get_build(build_id)
        if build.state not in RETRIABLE:
            raise BuildStateError(f"build {build_id} is {build.state.value}: only a failed, "
                                  f"abandoned or cancelled build is retried")
        retry = self.storage.get_retry(build_id)
        if retry is not None:
            raise BuildStateError(f"build {build_id} was retried already, by build {retry.id}")
        values = self.param_values([build.job_id], build.params)
        retries = {build.job_id: build_id}
        # a scheduled or backfilled instant's retry is for that instant: it reads the same
        # scheduled_for() and interval() (a retry without them would do another's work)
        instant = recorded_instant(build)
        instants = None if instant is None else {build.job_id: instant}
        run = None
        if build.run_id is not None:
            try:
                run = self.storage.get_run(build.run_id)
            except RunNotFoundError:  # its run was pruned since: the retry opens one
                pass
        if run is None:
            start = self.open_run(trigger, [build.job_id], by=by, params=build.params,
                                  instants=instants, when_first_built=True)
            start.retries = retries
            return start
        return RunStart(run, values, instants, retries=retries)

    def runs(self, *, job_id: str | None = None, limit: int | None = DEFAULT_RUN_LIMIT,
             before_id: int | None = None) -> list[RunView]:
        """The latest runs (of ``job_id``'s builds, if given), newest first, with their
        builds: two queries."""
        if job_id is not None:
            self.job(job_id)
        found = self.storage.list_runs(job_id=job_id, limit=limit, before_id=before_id)
        builds = self.storage.run_builds([run.id for run in found])
        return [RunView(run, tuple(builds[run.id])) for run in found]

    def get_run(self, run_id: int) -> RunView:
        """One run with its builds; RunNotFoundError when there is none."""
        run = self.storage.get_run(run_id)
        return RunView(run, tuple(self.storage.run_builds([run_id])[run_id]))


def recorded_instant(build: Build) -> tuple[datetime, datetime | None] | None:
    """The scheduled instant ``build`` was for and where its interval begins, as it
    recorded them (None: no schedule started it)."""
    when = build.definition.get("scheduled_for")
    if not isinstance(when, str):
        return None
    span = build.definition.get("interval")
    begins = span[0] if isinstance(span, list) and span else None
    return (datetime.fromisoformat(when),
            datetime.fromisoformat(begins) if isinstance(begins, str) else None)
