"""``jobcontrol backfill JOB --from T --to T``: a job's scheduled instants in a window, run
one after the other, oldest first, as one run (trigger ``backfill``).

Each instant is claimed as ``run-due`` claims it
(:meth:`~jobcontrol.storage.base.Storage.claim_scheduled_run`: one row per job and
instant), so an instant is built exactly once whoever asks: a backfill interrupted (killed,
a machine gone) and started again skips what it (or ``run-due``) already took on, and adds
its builds to the same run. Every build reads its instant and the interval it covers from
its context (:func:`jobcontrol.context.scheduled_for`, :func:`~jobcontrol.context.interval`).
An instant's build runs whether or not the job is outdated: filling a past interval is the
point; a failed instant does not stop the ones after it, a cancelled build (Ctrl-C, SIGTERM,
``jobcontrol cancel``) does: the rest waits for the backfill to be started again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from jobcontrol.errors import JobControlError, JobPausedError
from jobcontrol.execution.observer import BuildObserver
from jobcontrol.models import HOSTNAME, Build, BuildState, Run, RunTrigger
from jobcontrol.rules.runs import RunStart
from jobcontrol.scheduler import open_scheduled_run
from jobcontrol.timeutil import isoformat

if TYPE_CHECKING:
    from jobcontrol.core import JobControl

#: most instants one backfill takes on (a window of a year of a minute's schedule is a
#: mistake to stop before it starts half a million builds)
MAX_INSTANTS = 10_000
#: how many of the job's latest runs are searched for the backfill to resume
RESUME_SEARCH = 200


@dataclass
class BackfillReport:
    """What one ``backfill`` did, instant by instant."""

    #: the run its builds belong to (None for a dry run)
    run: Run | None = None
    #: every instant of the window, oldest first
    instants: list[datetime] = field(default_factory=list)
    #: (instant, build) of each instant built here
    built: list[tuple[datetime, Build]] = field(default_factory=list)
    #: (instant, what became of it) of each taken on before (by run-due or a backfill)
    taken: list[tuple[datetime, str]] = field(default_factory=list)
    #: (instant, why) of each claimed here but not built (a refusal)
    not_built: list[tuple[datetime, str]] = field(default_factory=list)
    #: (instant, its latest build) of each taken on before by this backfill's run whose
    #: build did not succeed (failed, or cut off: abandoned, cancelled): not built again
    #: here; ``build --retry-of`` builds it again, for its instant
    unfinished: list[tuple[datetime, Build]] = field(default_factory=list)
    #: whether this backfill goes on with a run an interrupted one began
    resumed: bool = False
    #: why it stopped before the window's end (a build cancelled: Ctrl-C, SIGTERM, or
    #: ``jobcontrol cancel``), else None
    stopped: str | None = None

    @property
    def failed(self) -> bool:
        return (bool(self.not_built) or self.stopped is not None
                or any(not b.state.ok for _, b in self.built))


def window_instants(jc: JobControl, job_id: str, start: datetime, end: datetime
                    ) -> list[datetime]:
    """The instants of the job's schedule in ``[start, end]``, oldest first."""
    schedule = jc.job(job_id).schedule
    if schedule is None:
        raise JobControlError(f"job {job_id!r} has no schedule: backfill runs the instants "
                              f"of a schedule")
    if end < start:
        raise JobControlError(f"--to {isoformat(end)} is before --from {isoformat(start)}")
    # walked back from ``end``: one more than allowed says there are too many
    found = schedule.instants(schedule.previous_before(start), end, limit=MAX_INSTANTS + 1)
    if len(found) > MAX_INSTANTS:
        raise JobControlError(f"{len(found)} instants of {job_id} between {isoformat(start)} "
                              f"and {isoformat(end)}: at most {MAX_INSTANTS} a backfill")
    return found


def _note(job_id: str, start: datetime, end: datetime) -> str:
    return f"backfill {job_id} from {isoformat(start)} to {isoformat(end)}"


def _resumed_run(jc: JobControl, job_id: str, note: str) -> Run | None:
    """The run of an earlier backfill of the same job and window, if one was begun."""
    for view in jc.storage.list_runs(job_id=job_id, limit=RESUME_SEARCH):
        if view.trigger is RunTrigger.BACKFILL and view.note == note:
            return view
    return None


def taken_instants(jc: JobControl, job_id: str) -> dict[datetime, str]:
    """The job's instants taken on already, with what became of them."""
    return {run.scheduled_for: run.outcome for run in jc.storage.scheduled_runs(job_id)}


def backfill(jc: JobControl, job_id: str, start: datetime, end: datetime, *,
             observer: BuildObserver | None = None, force: bool = False) -> BackfillReport:
    """Build each instant of the window not taken on yet, oldest first (see the module's
    docstring)."""
    report = BackfillReport(instants=window_instants(jc, job_id, start, end))
    pause = None if force else jc.storage.job_pauses([job_id]).get(job_id)
    if pause is not None:
        raise JobPausedError(job_id, pause.describe(), "backfill")
    schedule = jc.job(job_id).schedule
    assert schedule is not None  # window_instants said so
    note = _note(job_id, start, end)
    run = _resumed_run(jc, job_id, note)
    report.resumed = run is not None
    taken = taken_instants(jc, job_id)
    for instant in report.instants:
        if instant in taken or not jc.storage.claim_scheduled_run(
                job_id, instant, host=HOSTNAME, pid=os.getpid()):
            report.taken.append((instant, taken.get(instant, "claimed")))
            continue
        if run is None:
            run = open_scheduled_run(jc, RunTrigger.BACKFILL, [(job_id, instant)],
                                     note=note).run
        assert run is not None
        start_of = RunStart(run, None, {job_id: (instant, schedule.previous_before(instant))})
        try:
            builds = jc.build(job_id, deps=schedule.options.deps, keep_going=True,
                              observer=observer, force=force, run=start_of)
        except JobControlError as error:
            jc.storage.set_scheduled_run(job_id, instant, outcome="not_built")
            report.not_built.append((instant, str(error)))
            continue
        mine = [build for build in builds if build.job_id == job_id]
        if mine:
            jc.storage.set_scheduled_run(job_id, instant, outcome="started",
                                         build_id=mine[0].id)
            report.built.append((instant, mine[-1]))
            if any(build.state is BuildState.CANCELLED for build in builds):
                # interrupted (or cancelled by hand): the rest waits for the next backfill
                cancelled = next(b for b in builds if b.state is BuildState.CANCELLED)
                report.stopped = f"build #{cancelled.id} {cancelled.job_id} was cancelled"
                break
        else:
            jc.storage.set_scheduled_run(job_id, instant, outcome="not_built")
            report.not_built.append((instant, "not built"))
    report.run = run
    if report.resumed and run is not None:
        report.unfinished = _unfinished(jc, run, [instant for instant, _ in report.taken])
    return report


def _unfinished(jc: JobControl, run: Run, instants: list[datetime]) -> list[tuple[datetime, Build]]:
    """Of ``instants``, those whose latest build in ``run`` did not succeed, with it."""
    latest: dict[str, Build] = {}
    for build in jc.storage.run_builds([run.id])[run.id]:  # oldest first
        when = build.definition.get("scheduled_for")
        if isinstance(when, str):
            latest[when] = build
    found = [(instant, latest.get(isoformat(instant) or "")) for instant in instants]
    return [(instant, build) for instant, build in found
            if build is not None and build.state.finished and not build.state.ok]
