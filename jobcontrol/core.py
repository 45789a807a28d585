"""``JobControl``: the Python API, tying config, storage and executor together.

The CLI and (later) the web UI are thin layers over this class.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobcontrol.config import Config, JobDefinition, find_config_path, load_config
from jobcontrol.errors import (
    BrokerError,
    BuildStateError,
    CleanupError,
    JobControlError,
    JobPausedError,
    StorageError,
)
from jobcontrol.history import History
from jobcontrol.importing import bind_problem, import_callable
from jobcontrol.models import (
    HOSTNAME,
    Build,
    BuildState,
    JobPause,
    RunTrigger,
    ScheduledRun,
)
from jobcontrol.pausing import Pausing, who
from jobcontrol.reaper import reap
from jobcontrol.rules.outdated import Outdated, outdated_jobs
from jobcontrol.rules.params import own_params, recorded_definition, resolve
from jobcontrol.rules.plan import (
    PlannedStep,
    consumed_builds,
    decide,
    make_plan,
    require_met,
)
from jobcontrol.rules.runs import RunStart
from jobcontrol.rules.versions import JobsNow, stored_results
from jobcontrol.runs import Runs
from jobcontrol.storage import open_storage
from jobcontrol.storage.base import Storage
from jobcontrol.timeutil import format_duration

if TYPE_CHECKING:
    from jobcontrol.execution.observer import BuildObserver
    from jobcontrol.execution.remote import Sender
    from jobcontrol.notify import Notifier
    from jobcontrol.pruner import PruneReport
    from jobcontrol.scheduler import DueReport

DEFAULT_STORAGE_NAME = "jobcontrol.db"
#: seconds between the reaps of one JobControl's :meth:`JobControl.submit` calls
SUBMIT_REAP_INTERVAL = 1.0

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobStatus:
    """One job as ``jobcontrol status`` shows it."""

    job: JobDefinition
    last_build: Build | None
    last_success: Build | None
    outdated: Outdated
    running: tuple[int, ...]
    #: the next instant of its schedule (None: not scheduled)
    next_run: datetime | None = None
    #: the latest scheduled instant taken on, and what became of it
    last_scheduled: ScheduledRun | None = None
    #: why the job is stale (its last success older than ``max_age``), or None
    stale: str | None = None
    #: its pause in force (``jobcontrol pause``), or None
    paused: JobPause | None = None

    @property
    def last_state(self) -> str:
        """The last build's state, or ``"not_built"``."""
        return self.last_build.state.value if self.last_build else "not_built"


def resolve_storage_url(config: Config, storage: str | None = None) -> tuple[str, Path]:
    """The storage URL to use and the folder relative SQLite paths resolve against.

    ``storage`` (``--storage``), then ``$JOBCONTROL_STORAGE`` (both relative to the working
    directory), then the file's ``storage:`` (relative to the file), then ``jobcontrol.db``
    beside the file.
    """
    if storage:
        return storage, Path.cwd()
    from_env = os.environ.get("JOBCONTROL_STORAGE")
    if from_env:
        return from_env, Path.cwd()
    if config.storage:
        return config.storage, config.directory
    return f"sqlite:///{DEFAULT_STORAGE_NAME}", config.directory


class JobControl(Pausing, History, Runs):
    """Jobs from a config, builds in a storage.

    >>> jc = JobControl.from_config("jobs.yaml")          # doctest: +SKIP
    >>> [build] = jc.build("report", deps=True)[-1:]       # doctest: +SKIP
    """

    def __init__(self, config: Config, storage: Storage, sender: Sender | None = None) -> None:
        self.config = config
        self.storage = storage
        self._sender = sender
        #: the callables imported so far, by function path (see import_function)
        self._imported: dict[str, Callable[..., Any]] = {}
        #: when :meth:`submit` last reaped (``time.monotonic()``), None before its first
        self._submit_reaped: float | None = None
        # jobs import their modules from beside the config file, as the user expects
        directory = str(config.directory)
        if directory not in sys.path:
            sys.path.insert(0, directory)

    @classmethod
    def from_config(
        cls, path: str | os.PathLike[str] | None = None, storage: str | Storage | None = None
    ) -> JobControl:
        """Load the config (``path``, else ``$JOBCONTROL_CONFIG``, else ``./jobcontrol.yaml``)
        and open its storage (see :func:`resolve_storage_url`)."""
        config = load_config(find_config_path(None if path is None else str(path)))
        if isinstance(storage, Storage):
            return cls(config, storage)
        url, base = resolve_storage_url(config, storage)
        try:
            return cls(config, open_storage(url, base_dir=base))
        except StorageError as error:
            if config.storage_location is None or url != config.storage:
                raise
            raise config.storage_location.error(f"storage: {error}") from None

    def close(self) -> None:
        """Close the storage."""
        self.storage.close()

    def __enter__(self) -> JobControl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def heartbeat_timeout(self) -> float:
        """Seconds without a heartbeat after which a running build is abandoned."""
        return self.config.runner.heartbeat_timeout

    def reap(self, *, workers: bool = False) -> list[Build]:
        """Mark running builds whose runner is gone as ``abandoned``; returns them.

        Every command that reads or claims builds calls it first (``jobcontrol reap`` too);
        ``workers``: forget lost workers even when none runs a build (a worker's sweep)."""
        reaped = reap(self.storage, host=HOSTNAME, heartbeat_timeout=self.heartbeat_timeout,
                      workers=workers)
        if reaped:  # what waits for a remote build abandoned here: sent, or cancelled
            from jobcontrol.execution.remote import dispatch_ends
            dispatch_ends(self, reaped)
        return reaped

    def _reap_before_reading(self) -> None:
        """:meth:`reap`, where the storage takes the writes: one that refuses them (a
        read-only database, a full disk) is read as it stands."""
        try:
            self.reap()
        except StorageError as exc:
            # a storage that cannot even be read says so once, through the read that follows
            self.storage.list_builds(states=[BuildState.RUNNING], limit=1)
            logger.warning("builds whose runner is gone not marked abandoned: %s", exc)

    # -- jobs ------------------------------------------------------------------------------

    def job(self, job_id: str) -> JobDefinition:
        """A job's definition; UnknownJobError if there is none."""
        return self.config.job(job_id)

    def import_function(self, job_id: str, key: str = "function") -> Callable[..., Any]:
        """Import a job's ``function`` (or ``cleanup_function``); JobImportError if it fails."""
        job = self.job(job_id)
        dotted = job.function if key == "function" else job.cleanup_function
        assert dotted is not None
        found = self._imported.get(dotted)
        if found is None:  # many jobs often share a function: looked up once
            found = import_callable(dotted, job_id=job_id, key=key,
                                    location=job.location_of(key))
            self._imported[dotted] = found
        return found

    def check_jobs(self) -> list[str]:
        """What ``check`` finds wrong with the jobs, one line each with its file:line: a
        function or cleanup function that does not import, args and kwargs that do not fit
        the function's signature (a ``!retval`` counts as given), a cleanup function that
        cannot take the build, a shell job's program not found or not executable."""
        from jobcontrol.execution.shell import start_problem

        problems = []
        for job in self.config.jobs.values():
            if job.shell is not None:  # its program, where check can tell
                problem = start_problem(**job.kwargs)
                if problem is not None:
                    problems.append(f"{job.location_of('command')}: job {job.id!r}: {problem}")
            calls = [("function", job.args, job.kwargs)]
            if job.cleanup_function:
                calls.append(("cleanup_function", (None,), {}))  # cleanup(build)
            for key, args, kwargs in calls:
                try:
                    func = self.import_function(job.id, key)
                except JobControlError as error:
                    problems.append(str(error))
                    continue
                problem = bind_problem(func, args, kwargs)
                if problem is not None:
                    # where the arguments are written (the job, when it has none)
                    where = (job.location_of(key) if key == "cleanup_function" else
                             next((job.location_of(name) for name in ("kwargs", "args")
                                   if getattr(job, name)), job.location))
                    given = "its args and kwargs" if key == "function" else "the build"
                    problems.append(f"{where}: job {job.id!r}: {key} "
                                    f"{getattr(job, key)!r} cannot take {given}: {problem}")
        return problems

    def check_broker(self) -> str:
        """Connect to the broker within ``executor.timeout``; returns its URL, password
        hidden. BrokerUnreachableError says why not."""
        from jobcontrol.execution.celery import check_broker

        return check_broker(self.config.executor)

    def check_storage(self) -> int:
        """Open the storage as a build would (creating or migrating its schema) and make
        one write, rolled back; returns the schema version. StorageError says why not
        (unreachable, not a database, read-only...)."""
        version = self.storage.install()
        self.storage.check_writable()
        return version

    # -- status ------------------------------------------------------------------------------

    def outdated(self) -> dict[str, Outdated]:
        """Every job's outdated verdict with reasons (one storage query)."""
        return self._outdated(self.storage.job_summaries())

    def _outdated(self, summaries: dict[str, Any]) -> dict[str, Outdated]:
        return outdated_jobs(self.config.dependencies, JobsNow(self.config), summaries,
                             stored_results(self.storage))

    def status(self, job_ids: Sequence[str] | None = None, tag: str | None = None
               ) -> list[JobStatus]:
        """The status of the given jobs (all by default), in definition order."""
        for job_id in job_ids or ():
            self.job(job_id)
        self._reap_before_reading()
        summaries = self.storage.job_summaries()
        outdated = self._outdated(summaries)
        now = self.storage.now()
        scheduled = [job_id for job_id, job in self.config.jobs.items() if job.schedule]
        last_runs = self.storage.last_scheduled_runs(scheduled) if scheduled else {}
        pauses = self.storage.job_pauses()
        result = []
        for job_id, job in self.config.jobs.items():
            if job_ids and job_id not in job_ids:
                continue
            if tag is not None and tag not in job.tags:
                continue
            summary = summaries.get(job_id)
            result.append(JobStatus(
                job=job,
                last_build=summary.last_build if summary else None,
                last_success=summary.last_success if summary else None,
                outdated=outdated[job_id],
                running=summary.running if summary else (),
                next_run=job.schedule.next_after(now) if job.schedule else None,
                last_scheduled=last_runs.get(job_id),
                stale=stale_reason(job, summary.last_success if summary else None, now),
                paused=pauses.get(job_id),
            ))
        return result

    def stale_jobs(self) -> dict[str, str]:
        """``{job_id: why}`` of every job whose last success is older than its ``max_age``
        (``check --freshness``)."""
        return {status.job.id: status.stale for status in self.status() if status.stale}

    def run_due(self, *, now: datetime | None = None,
                observer: BuildObserver | None = None) -> DueReport:
        """Start every scheduled build due now (``jobcontrol run-due``); see
        :func:`jobcontrol.scheduler.run_due`."""
        from jobcontrol.scheduler import run_due

        return run_due(self, now=now, observer=observer)

    # -- building --------------------------------------------------------------------------

    def plan(self, jobs: str | Sequence[str], *, deps: bool = False, depending: bool = False,
             if_outdated: bool = False, force: bool = False) -> list[PlannedStep]:
        """What :meth:`build` would do now, and why (``build --dry-run``)."""
        planned = self._plan(self._targets(jobs), self.storage.job_summaries(), deps=deps,
                             depending=depending, if_outdated=if_outdated)
        return planned if force else self.hold_paused(planned)

    def _plan(self, targets: list[str], summaries: dict[str, Any], *, deps: bool,
              depending: bool, if_outdated: bool) -> list[PlannedStep]:
        steps = make_plan(self.config.dependencies, targets, with_deps=deps,
                          with_depending=depending)
        outdated = self._outdated(summaries)
        planned = []
        assumed: dict[str, BuildState] = {}
        for step in steps:
            decision = decide(step, outdated[step.job_id], if_outdated=if_outdated,
                              finished=assumed)
            if decision.build:  # predict success, so downstream steps show as planned
                assumed[step.job_id] = BuildState.SUCCESS
            planned.append(PlannedStep(step.job_id, step.role, decision.build, decision.reason))
        return planned

    def build(
        self,
        jobs: str | Sequence[str],
        *,
        deps: bool = False,
        depending: bool = False,
        if_outdated: bool = False,
        keep_going: bool = False,
        parallel: int = 1,
        observer: BuildObserver | None = None,
        force: bool = False,
        params: Mapping[str, Any] | None = None,
        trigger: RunTrigger | str = RunTrigger.API,
        by: str | None = None,
        run: RunStart | None = None,
    ) -> list[Build]:
        """Build ``jobs`` and return the builds made, oldest first, as one run (``trigger``,
        ``by``; or the one ``run`` opened already) whose targets get ``params``.

        With ``deps``, outdated upstream jobs are built first; without it, a dependency that
        never built successfully raises :class:`DependencyError` and nothing is built. With
        ``depending``, downstream jobs are rebuilt after a target succeeds. A refusal met
        during the run (a job already running, dependencies not met) is raised after the
        run, with the builds made in ``error.builds``. A paused job is not built, nor are
        the jobs of the run downstream of it (``observer.job_not_built`` says why), unless
        ``force``.
        """
        targets = self._targets(jobs)
        self.reap()
        if not deps:
            self._check_dependencies_met(targets)
        steps = make_plan(self.config.dependencies, targets, with_deps=deps,
                          with_depending=depending)
        callables = {step.job_id: self.import_function(step.job_id) for step in steps}
        from jobcontrol.execution.orchestrator import BuildRun

        run = run or self.open_run(trigger, targets, by=by, params=params,
                                   when_first_built=True)
        paused = {} if force else self.storage.job_pauses(step.job_id for step in steps)
        result = BuildRun(self.config, self.storage, callables, observer, parallel=parallel,
                          keep_going=keep_going, if_outdated=if_outdated,
                          notifier=self.notifier(), paused=paused, start=run).run(steps)
        if result.error is not None:
            result.error.builds = result.builds  # type: ignore[attr-defined]
            raise result.error
        return result.builds

    def notifier(self) -> Notifier | None:
        """What sends the jobs' ``notify`` (a worker's builds' too), if any job asks."""
        policies = {job_id: job.notify for job_id, job in self.config.jobs.items()
                    if job.notify is not None}
        if not policies:
            return None
        from jobcontrol.notify import Notifier

        return Notifier(self.storage, policies,
                        lambda path: import_callable(path, key="notify target"))

    @property
    def sender(self) -> Sender:
        """What sends queued builds to the workers: Celery's, made on first use (so nothing
        imports Celery unless the config's ``executor`` is ``celery``)."""
        if self._sender is None:
            if not self.config.executor.remote:
                raise BrokerError(
                    f"builds go to workers only with the Celery executor: add "
                    f"`executor: {{type: celery, broker: redis://HOST:6379/0}}` to "
                    f"{self.config.path}"
                )
            from jobcontrol.execution.celery import CelerySender

            self._sender = CelerySender(self.config.executor)
        return self._sender

    def submit(self, jobs: str | Sequence[str], *, deps: bool = False,
               depending: bool = False, if_outdated: bool = False, force: bool = False,
               params: Mapping[str, Any] | None = None,
               trigger: RunTrigger | str = RunTrigger.API, by: str | None = None,
               run: RunStart | None = None) -> list[Build]:
        """Queue builds of ``jobs`` for Celery workers and return them, ``queued``.

        The plan is made as :meth:`build` makes it (``deps``, ``depending``,
        ``if_outdated``); each build to make is created ``queued`` and its id sent to the
        workers of its job's queue. A build waits for the queued builds of its dependencies
        and is cancelled if one of them fails (see :mod:`jobcontrol.execution.remote`).
        A paused job among them raises :class:`JobPausedError` (nothing is queued),
        unless ``force``. A broker that fails (:class:`BrokerUnreachableError`) or a signal
        while sending (see :mod:`jobcontrol.execution.sending`) cancels what was not sent.
        """
        targets = self._targets(jobs)
        send = self.sender
        now = time.monotonic()
        if self._submit_reaped is None or now - self._submit_reaped >= SUBMIT_REAP_INTERVAL:
            # queueing one build after another reaps once a second (the workers' sweep too):
            # a dead runner's build is seen running that long at most, by this object
            self.reap()
            self._submit_reaped = now
        if deps or depending or if_outdated:
            summaries = self.storage.job_summaries()  # once: the plan and the waits agree
            planned = [step.job_id for step in self._plan(targets, summaries, deps=deps,
                                                          depending=depending,
                                                          if_outdated=if_outdated)
                       if step.build]
        else:  # the targets, whatever their state: only their dependencies are looked up
            upstream = {dep for job_id in targets for dep in self.config.jobs[job_id].dependencies}
            summaries = self.storage.job_summaries(upstream) if upstream else {}
            planned = [step.job_id for step in make_plan(self.config.dependencies, targets)]
        if not deps:
            self._check_dependencies_met(targets, summaries)
        for job_id in planned:  # all refusals before anything is queued
            require_met(job_id, self.config.jobs[job_id].dependencies, summaries, planned)
        for job_id, pause in ({} if force or len(planned) < 2  # a lone one's: as it is queued
                              else self.storage.job_pauses(planned)).items():
            raise JobPausedError(job_id, pause.describe())
        from jobcontrol.execution.remote import ready_job
        from jobcontrol.execution.sending import queue_and_send

        run = run or self.open_run(trigger, targets, by=by, params=params,
                                   when_first_built=True)
        now_of = JobsNow(self.config)

        def create(job_id: str, queued: dict[str, Build]) -> Build:
            job = self.job(job_id)
            values = (run.values or {}).get(job_id) or resolve(job, None)
            # the builds of its dependencies queued just now, else their latest successes
            waits = consumed_builds(job_id, job.dependencies, summaries,
                                    {dep: build.id for dep, build in queued.items()})
            new_run = run.take_new_run()  # recorded with the first build: one commit
            build = self.storage.enqueue_build(
                job_id, definition=recorded_definition(
                    job, values, run.instant(job_id), now_of.record(job, summaries, here=False)),
                definition_hash=job.definition_hash, dependency_builds=waits,
                queue=self.config.queue_of(job), run_id=None if new_run else run.run_id,
                params=own_params(job, values), retry_of=run.retry_of(job_id),
                new_run=new_run, unless_paused=not force)
            if new_run is not None and build is not None:
                run.opened(build.run_id)
            if build is None:  # only a retry is refused: another retried it meanwhile
                raise BuildStateError(f"{job_id}: the build was retried already")
            return build

        return queue_and_send(self.storage, planned, create, send, ready_job)

    def follow(self, builds: Sequence[Build], observer: BuildObserver) -> list[Build]:
        """Report remote builds (and their retries) to ``observer`` until all have ended;
        returns them as they ended (``build --async --wait``)."""
        from jobcontrol.execution.remote import follow

        return follow(self, builds, observer)

    def _targets(self, jobs: str | Sequence[str]) -> list[str]:
        targets = [jobs] if isinstance(jobs, str) else list(dict.fromkeys(jobs))
        if not targets:
            raise JobControlError("no job to build")
        for job_id in targets:
            self.job(job_id)
        return targets

    def _check_dependencies_met(self, targets: Sequence[str],
                                summaries: dict[str, Any] | None = None) -> None:
        if summaries is None:
            summaries = self.storage.job_summaries()
        for target in targets:
            require_met(target, self.config.jobs[target].dependencies, summaries, planned=targets)

    def cancel(self, build_id: int, *, by: str | None = None,
               reason: str | None = None) -> Build:
        """Ask a build to stop, from this process or any other, on any host.

        A queued build is ``cancelled`` at once and never starts. A running build's runner
        finds the request within about a second, sends its job SIGTERM, then SIGKILL after
        ``runner.kill_grace``, and records ``cancelled`` with the reason ("cancelled by
        ``by``: ``reason``"); the build returned is still ``running`` then. A finished build
        raises :class:`BuildStateError` and is left as it is. ``by`` defaults to
        ``user@host``.
        """
        build = self.get_build(build_id)
        if build.state.finished:
            raise BuildStateError(f"build {build_id} has already finished ({build.state}): "
                                  f"nothing to cancel")
        text = f"cancelled by {by or who()}"
        if reason:
            text += f": {reason}"
        text = self.config.masker.text(text)
        build = self.storage.request_cancel(build_id, text)
        if build.state.finished and build.reason != text:
            # it finished between our look and the request
            raise BuildStateError(f"build {build_id} has already finished ({build.state}): "
                                  f"nothing to cancel")
        if build.state.finished:  # it was queued: what waits for it is blocked
            from jobcontrol.execution.remote import dispatch_ends
            dispatch_ends(self, [build])
        return build

    def requeue(self, build_ids: Sequence[int], *, by: str | None = None) -> list[Build]:
        """Send queued builds to the workers again (their message lost); a build not
        queued raises :class:`BuildStateError` before anything is sent. See
        :func:`jobcontrol.execution.queued.requeue`."""
        from jobcontrol.execution.queued import requeue
        from jobcontrol.execution.remote import ready_job

        def send(build: Build) -> None:
            assert build.queue is not None
            self.sender(build.id, build.queue, job=ready_job(build))

        who_ = by or who()
        return requeue(self.storage, send, build_ids,
                       lambda now: f"re-sent by {who_} at {now:%Y-%m-%d %H:%M:%S} UTC")

    def delete_build(self, build_id: int) -> Build:
        """Run the job's ``cleanup_function(build)``, then delete the build and its logs.

        A running build cannot be deleted. If the cleanup raises, nothing is deleted.
        """
        build = self.storage.get_build(build_id)
        if not build.state.finished:
            raise BuildStateError(f"build {build_id} is {build.state}: it cannot be deleted "
                                  f"until it ends")
        self._run_cleanup(build)
        self.storage.delete_build(build_id)
        return build

    def _run_cleanup(self, build: Build) -> None:
        """Call the job's ``cleanup_function(build)``, if it has one. JobImportError if it
        does not import; CleanupError (saying the build was kept) if it raises."""
        job = self.config.jobs.get(build.job_id)
        if job is None or not job.cleanup_function:
            return
        cleanup = self.import_function(job.id, "cleanup_function")
        try:
            cleanup(build)
        except Exception as exc:
            raise CleanupError(
                f"cleanup of build {build.id} ({job.cleanup_function}) failed: "
                f"{type(exc).__name__}: {exc}; the build was kept"
            ) from exc

    def prune(self, dry_run: bool = False, job_ids: Sequence[str] | None = None
              ) -> PruneReport:
        """Delete what each job's ``retention:`` policy lets go (see
        :mod:`jobcontrol.retention`): old builds, after their ``cleanup_function``, with
        their logs and progress, and old log records of the levels it names.

        Of ``job_ids`` (all jobs by default). A build whose cleanup fails is kept and
        reported. With ``dry_run`` nothing is deleted and no cleanup runs: the report says
        what would go. Builds of jobs no longer in the config are left alone (``delete``).
        """
        wanted = {self.job(job_id).id for job_id in job_ids or ()}
        jobs = [job for job in self.config.jobs.values() if not wanted or job.id in wanted]
        self.reap()  # a build whose runner died is abandoned, so no longer spared as running
        from jobcontrol.pruner import prune

        return prune(self.storage, jobs, self._run_cleanup, now=self.storage.now(),
                     dry_run=dry_run)

    def install(self) -> int:
        """Create or migrate the storage schema; returns its version."""
        return self.storage.install()


def stale_reason(job: JobDefinition, last_success: Build | None, now: datetime) -> str | None:
    """Why ``job`` is stale by its ``max_age``, or None (fresh, or no ``max_age``): by its
    latest ``success`` alone, however many builds were skipped since."""
    if job.max_age is None:
        return None
    limit = format_duration(job.max_age)
    if last_success is None or last_success.finished is None:
        return f"never built successfully (max_age {limit})"
    age = (now - last_success.finished).total_seconds()
    if age <= job.max_age:
        return None
    return f"last success {format_duration(age)} ago, more than max_age {limit}"
