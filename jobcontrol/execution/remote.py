"""Builds on remote workers, whatever carries the messages: queueing, waiting, claiming,
running, retrying. :mod:`jobcontrol.execution.celery` is the Celery glue around it.

The storage is the record and the arbiter; a message only says "look at build N":

- ``build --async`` creates every build of the plan ``queued`` at once (each visible and
  cancellable), with ``dependency_builds`` naming the builds it waits for: the queued builds
  of its dependencies in the same plan, or their latest successful builds. Then it sends
  the ids of those that wait for no build of the plan; the others are sent when their last
  upstream ends, by whoever records that end (see :mod:`jobcontrol.execution.dispatch`).
- A worker receiving an id (:meth:`RemoteWorker.handle`) does nothing unless the build is
  still ``queued``. A worker whose config lacks the build's job, or defines it otherwise
  (another ``definition_hash``), gives the build back: it notes why on the build and sends
  it again after a wait, for a worker whose config matches; if none ever takes it, the
  ``queued_timeout`` sweep fails it, naming why (see :mod:`jobcontrol.execution.queued`).
  A build whose dependencies are still queued or running is left to wait (the end of the
  last one sends it); one whose job already runs ``concurrency`` builds records that it
  waits for a slot (the next end of a build of the job sends the oldest such); one whose
  dependency failed, was cancelled or abandoned (for good: no retry to come) is
  ``cancelled`` with the reason. Otherwise the worker claims it (``queued → running``
  once, however often the broker delivers the id) and runs it in a child process with the
  :class:`~jobcontrol.execution.local.LocalExecutor`, as ``jobcontrol build`` would: logs,
  progress, heartbeat, timeout, cancel requests; its end notifies as the job's ``notify``
  says, by the worker that ran it (once).
- A failed or abandoned remote build of a job with ``retries`` is retried as a new queued
  build pointing at it; the storage makes one retry per build however many workers notice.
  Failed builds are retried by the worker that ran them; abandoned ones by any worker's
  periodic :meth:`RemoteWorker.sweep`, or by a build that waits for them.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from jobcontrol.errors import (
    BrokerError,
    BuildNotFoundError,
    JobAlreadyRunningError,
    JobControlError,
)
from jobcontrol.execution.dispatch import Blocked, Dispatcher, Ready, Waiting
from jobcontrol.execution.identity import namespace_id
from jobcontrol.execution.local import LocalExecutor
from jobcontrol.execution.observer import BuildObserver
from jobcontrol.execution.queued import given_back, sweep_queued
from jobcontrol.models import HOSTNAME, Build, BuildState
from jobcontrol.rules import params, plan
from jobcontrol.storage.base import SLOT_WAIT, Storage
from jobcontrol.text import visible
from jobcontrol.timeutil import format_duration

if TYPE_CHECKING:
    from jobcontrol.config import Config, JobDefinition
    from jobcontrol.models import LogRecord
    from jobcontrol.notify import Notifier

logger = logging.getLogger(__name__)

#: the first wait, in seconds, of a worker before it gives a build back (its config
#: differs); it doubles with each give-back of the build...
GIVE_BACK_FIRST_WAIT = 0.5
#: ...up to this
GIVE_BACK_MAX_WAIT = 2.0
#: abandoned builds a sweep looks at (the newest), to retry those whose job has retries
SWEEP_LIMIT = 100
#: what a sweep leaves alone: builds abandoned longer ago than this (seconds)
SWEEP_HORIZON = 24 * 3600.0
#: how often ``build --wait`` looks at the builds it follows, in seconds
FOLLOW_POLL = 0.3


class Sender(Protocol):
    """Sends "look at build ``build_id``" to a worker of ``queue``, after ``delay`` seconds.

    ``waited`` counts the times the build already waited (it sets the next wait). ``job``
    names the build's job when the build waits for no other build: the worker then starts
    it without reading it first (see :meth:`RemoteWorker.handle`).
    """

    def __call__(self, build_id: int, queue: str, *, delay: float = 0.0,
                 waited: int = 0, job: str | None = None) -> None: ...


class WorkerControl(Protocol):
    """What builds on workers need of :class:`~jobcontrol.core.JobControl`, which queues
    and follows them through this module (so this module names what it uses, and does not
    import the layer above it)."""

    config: Config
    storage: Storage

    def __init__(self, config: Config, storage: Storage, sender: Sender | None = None
                 ) -> None: ...  # a worker process makes its own, of the class it was given

    @property
    def sender(self) -> Sender: ...

    def get_build(self, build_id: int) -> Build: ...

    def logs(self, build_id: int, *, after_seq: int = 0) -> list[LogRecord]: ...

    def import_function(self, job_id: str) -> Callable[..., Any]: ...

    def reap(self, *, workers: bool = False) -> list[Build]: ...

    def notifier(self) -> Notifier | None: ...


def ready_job(build: Build) -> str | None:
    """What a message about ``build`` says of its job (see :class:`Sender`): the job's id
    when the build waits for no other build, else None."""
    return None if build.dependency_builds else build.job_id


class LoggingObserver(BuildObserver):
    """A worker's view of its builds: one log line as each starts and ends."""

    def build_started(self, build: Build) -> None:
        logger.info("build #%s %s: started", build.id, build.job_id)

    def build_finished(self, build: Build) -> None:
        reason = f" ({visible(build.reason)})" if build.reason else ""  # the worker's terminal
        logger.info("build #%s %s: %s%s", build.id, build.job_id, build.state, reason)


def _stored(storage: Storage) -> Callable[[int], Build | None]:
    """A build by id from ``storage``, None where it is gone (pruned)."""
    def get(build_id: int) -> Build | None:
        try:
            return storage.get_build(build_id)
        except BuildNotFoundError:
            return None
    return get


def retry_due(jc: WorkerControl, build: Build) -> bool:
    """True when ``build`` is a remote build that failed or was abandoned, and its job's
    ``retries`` allow another attempt."""
    if build.queue is None or build.state not in (BuildState.FAILED, BuildState.ABANDONED):
        return False
    job = jc.config.jobs.get(build.job_id)
    if job is None:
        return False
    return plan.retry_attempt(build, job.retries, _stored(jc.storage)) is not None


class RemoteWorker:
    """What one worker process does with the build ids it receives (see module docstring).

    One per process: it owns a :class:`LocalExecutor` for the builds it runs, one at a time.
    """

    def __init__(self, jc: WorkerControl, send: Sender,
                 observer: BuildObserver | None = None, *,
                 worker_id: str | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.jc = jc
        #: how this process waits before it gives a build back (see :meth:`_give_back`)
        self.sleep = sleep
        #: the identity of the worker this process belongs to, recorded with its builds
        #: (see :mod:`jobcontrol.execution.identity`)
        self.worker_id = worker_id
        self.storage = jc.storage
        self.config = jc.config
        self.send = send
        runner = jc.config.runner
        self.executor = LocalExecutor(
            jc.storage, observer or LoggingObserver(), heartbeat_interval=runner.heartbeat,
            kill_grace=runner.kill_grace, masker=jc.config.masker,
            outcome_retry=runner.outcome_retry,
            max_builds_per_worker=runner.max_builds_per_worker,
            max_worker_memory=runner.max_worker_memory,
        )
        #: the build this worker runs now, if any
        self.running: Build | None = None
        #: tells the ``notify`` targets of the builds this worker runs (None: no job asks)
        self.notifier = jc.notifier()

    # -- one message -----------------------------------------------------------------------

    def handle(self, build_id: int, waited: int = 0, job_id: str | None = None) -> str:
        """Act on a delivery of ``build_id``; returns what happened, in a few words.

        ``job_id`` comes with a build that waits for no other build: it is started at once
        (one round trip to the storage), and looked at first only where that is refused."""
        if job_id is not None:
            done = self._start_ready(build_id, job_id)
            if done is not None:
                return done
        try:
            build = self.storage.get_build(build_id)
        except BuildNotFoundError:
            return "deleted"
        if build.state is not BuildState.QUEUED:
            return f"already {build.state}"  # a redelivery, or cancelled while queued
        job = self.config.jobs.get(build.job_id)
        if job is None:
            return self._give_back(build, waited, f"job {build.job_id!r} is not in this "
                                                  f"worker's config ({self.config.path})")
        if job.definition_hash != build.definition_hash:
            return self._give_back(build, waited, self._other_definition(job.id))
        state = self.dependencies(build)
        if isinstance(state, Waiting):
            return "waiting for dependencies"  # the end of the last one sends it
        if isinstance(state, Blocked):
            cancelled = self.storage.finish_build(build.id, BuildState.CANCELLED,
                                                  reason=state.reason)
            self.dispatch([cancelled])  # what waits for it is blocked too
            return "cancelled"
        try:
            func = self.jc.import_function(job.id)
            args, kwargs, consumed = self.arguments(job, state.consumed)
        except JobControlError as error:
            return self._refuse(build, str(error))
        try:
            started = self._start(build.id, job, consumed)
        except JobAlreadyRunningError as busy:
            started = self._wait_for_slot(build, job, busy, consumed)
            if started is None:
                return "waiting for a slot"
        if started is None:
            return "taken"  # cancelled, or started by another worker, since we looked
        return self._run(started, job, func, args, kwargs)

    def _wait_for_slot(self, build: Build, job: JobDefinition, busy: JobAlreadyRunningError,
                       consumed: dict[str, int]) -> Build | None:
        """Record that ``build`` waits for a slot of its job (the next end of a build of
        the job sends the oldest waiting), then try the claim once more: a build that ended
        between the refusal and the record looked for waiters too early. Returns the
        build started, or None while it waits (or was taken meanwhile)."""
        running = ", ".join(f"#{i}" for i in busy.running)
        self.storage.wait_for_slot(build.id, (
            f"{SLOT_WAIT}: job {job.id} was running {running} (concurrency "
            f"{job.concurrency}) at {self.storage.now():%H:%M:%S} UTC"))
        try:
            return self._start(build.id, job, consumed)
        except JobAlreadyRunningError:
            return None

    def _start(self, build_id: int, job: JobDefinition, consumed: dict[str, int], *,
               definition_hash: str | None = None) -> Build | None:
        """Turn the queued build ``build_id`` of ``job`` running here (see
        :meth:`~jobcontrol.storage.base.Storage.start_queued_build`)."""
        return self.storage.start_queued_build(
            build_id, concurrency=job.concurrency, host=HOSTNAME, pid=os.getpid(),
            dependency_builds=consumed, worker_id=self.worker_id,
            pid_namespace=namespace_id(), definition_hash=definition_hash,
            pgid=self.executor.next_process_group(job.isolation), job_id=job.id)

    def _start_ready(self, build_id: int, job_id: str) -> str | None:
        """Start and run a build that waits for no other, without reading it first; None
        where :meth:`handle` must look at it (an unknown job, arguments it cannot make,
        a job busy, a build deleted, not queued any more, of another definition or of
        another job than its message said): it says what happened."""
        job = self.config.jobs.get(job_id)
        if job is None or job.dependencies:
            return None
        try:
            func = self.jc.import_function(job.id)
            args, kwargs, consumed = self.arguments(job, {})
            started = self._start(build_id, job, consumed,
                                  definition_hash=job.definition_hash)  # else for handle()
        except (JobControlError, BuildNotFoundError, JobAlreadyRunningError):
            return None
        if started is None:
            return None
        return self._run(started, job, func, args, kwargs)

    def _other_definition(self, job_id: str) -> str:
        return (f"this worker's config ({self.config.path}) defines job {job_id!r} "
                f"differently from the one that queued the build: deploy the same config "
                f"everywhere")

    def _run(self, started: Build, job: JobDefinition, func: Callable[..., Any],
             args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        """Run a started build to its end (a failed one is retried if its job says so)."""
        # the parameters the build was made with, as its definition recorded them
        kwargs = params.call_kwargs(kwargs, params.stored_values(job, started.definition))
        self.running = started
        try:
            self.executor.start(started, func, args, kwargs, timeout=job.timeout,
                                isolation=job.isolation, result_mode=job.result,
                                function_path=job.function)
            finished: list[Build] = []
            while not finished:
                finished = self.executor.wait()
        finally:
            self.running = None
        [done] = finished
        retried = done.state is BuildState.FAILED and self.retry(done) is not None
        if not retried:  # the last attempt is the one that may be news
            self._notify(done)
        self.dispatch([done])
        return str(done.state)

    def _notify(self, build: Build) -> None:
        """Tell the job's ``notify`` targets if ``build`` changes how its job is doing, as
        a local build would; a target that fails is logged (the build stands)."""
        if self.notifier is None:
            return
        for problem in self.notifier.build_finished(build):
            logger.warning("build #%s %s: %s", build.id, build.job_id, visible(problem))

    def stop(self, reason: str) -> None:
        """Stop the running build, to be recorded ``abandoned`` with ``reason`` (retried
        if its job has retries) once its process has ended; from a signal handler too."""
        self.executor.request_stop(reason, BuildState.ABANDONED)

    def commit(self) -> None:
        """Commit the outcomes the storage holds for its next write: before this process
        ends otherwise than by returning (the storage's commit timer would be too late)."""
        self.executor.commit_outcomes()

    def close(self) -> None:
        """Release what the executor holds between builds (its pool's workers, the thread
        that watches inline builds)."""
        self.executor.close()

    def _give_back(self, build: Build, waited: int, why: str) -> str:
        """Leave ``build`` queued for a worker whose config matches: note why on it (the
        ``queued_timeout`` sweep names it if no worker ever takes it) and send it again,
        after this process waited (0.5 s, doubling, at most :data:`GIVE_BACK_MAX_WAIT`).

        The wait is this process's, not the message's: a message sent with a delay is
        taken at once by whichever worker is idle (this one, while the matching ones are
        busy) and held until its time, so on Redis this worker took the same build back
        20 times in a row; waiting busy, it takes no message, and the build goes to a
        worker that asks for one first."""
        logger.warning("build #%s %s: given back for a worker whose config matches: "
                       "%s", build.id, build.job_id, why)
        self.storage.note_queued(build.id, given_back(self.name, why))
        self.sleep(min(GIVE_BACK_MAX_WAIT, GIVE_BACK_FIRST_WAIT * 2 ** min(waited, 8)))
        assert build.queue is not None
        self.send(build.id, build.queue, waited=waited + 1, job=ready_job(build))
        return "given back"

    @property
    def name(self) -> str:
        """The worker as people know it: its identity, or its host and pid."""
        return self.worker_id or f"{HOSTNAME}:{os.getpid()}"

    def _refuse(self, build: Build, reason: str) -> str:
        logger.error("build #%s %s: %s", build.id, build.job_id, reason)
        self.dispatch([self.storage.finish_build(build.id, BuildState.FAILED, reason=reason)])
        return "failed"

    def send_build(self, build: Build) -> None:
        """Send ``build``'s id to the workers of its queue (again)."""
        assert build.queue is not None
        self.send(build.id, build.queue, job=ready_job(build))

    def dispatch(self, ended: Sequence[Build]) -> list[tuple[Build, str]]:
        """Send (or cancel, if blocked) the queued builds these recorded ends let go
        (see :mod:`jobcontrol.execution.dispatch`)."""
        return Dispatcher(self.storage, self.config.jobs, self.send_build,
                          self.dependencies, self.commit).after(ended)

    # -- dependencies ----------------------------------------------------------------------

    def latest_attempt(self, build: Build) -> Build:
        """``build``, or the newest build of its chain of retries."""
        while not build.state.ok and (retry := self.storage.get_retry(build.id)) is not None:
            build = retry
        return build

    def dependencies(self, build: Build) -> Ready | Waiting | Blocked:
        """Whether the builds ``build`` waits for have all succeeded (or been skipped)."""
        consumed: dict[str, int] = {}
        for dep_job, dep_id in build.dependency_builds.items():
            try:
                dep = self.latest_attempt(self.storage.get_build(dep_id))
            except BuildNotFoundError:
                return Blocked(f"dependency {dep_job}: its build {dep_id} was deleted")
            if not dep.state.finished:
                return Waiting()
            if dep.state.ok:
                consumed[dep_job] = dep.id
            elif self.retry_due(dep):
                self.retry(dep)  # when no worker made it yet (the sweep would, later)
                return Waiting()
            else:
                return Blocked(f"dependency {dep_job} {dep.state} (build {dep.id})")
        return Ready(consumed)

    def arguments(self, job: JobDefinition, waited_for: dict[str, int]
                  ) -> tuple[tuple[Any, ...], dict[str, Any], dict[str, int]]:
        """The job's args and kwargs with ``!retval`` filled in, and the builds consumed.

        By the rule of a local build (:func:`~jobcontrol.rules.plan.consumed_builds`): a
        dependency whose build was skipped hands on its latest successful build (a skip
        changed nothing), and one that never succeeded is not met.
        """
        made = {dep: build_id for dep, build_id in waited_for.items()
                if self.storage.get_build(build_id).state is not BuildState.SKIPPED}
        skipped = [dep for dep in waited_for if dep not in made]
        summaries = self.storage.job_summaries(skipped) if skipped else {}
        consumed = plan.consumed_builds(job.id, list(waited_for), summaries, made)
        args, kwargs = plan.arguments(
            job, consumed, lambda build_id: self.storage.get_build(build_id).result)
        return args, kwargs, consumed

    # -- retries ---------------------------------------------------------------------------

    def retry_due(self, build: Build) -> bool:
        """See :func:`retry_due`."""
        return retry_due(self.jc, build)

    def retry(self, build: Build) -> Build | None:
        """Queue and send a retry of ``build`` if one is due and nobody made it yet."""
        if not self.retry_due(build):
            return None
        job = self.config.jobs[build.job_id]
        assert job.retries is not None and build.queue is not None
        attempt = plan.attempt_of(build, _stored(self.storage))
        retry = self.storage.enqueue_build(
            build.job_id, definition=build.definition, definition_hash=build.definition_hash,
            dependency_builds=build.dependency_builds, queue=build.queue, retry_of=build.id,
            run_id=build.run_id, params=build.params,
        )
        if retry is None:
            return None  # another worker made it
        delay = job.retries.delay_before(attempt)
        logger.info("build #%s %s: %s, retry %d of %d is build #%s in %s", build.id,
                    build.job_id, build.state, attempt, job.retries.count, retry.id,
                    format_duration(delay))
        self.send(retry.id, build.queue, delay=delay, job=ready_job(retry))
        return retry

    def sweep(self) -> list[Build]:
        """Mark builds whose runner died ``abandoned``, and retry the remote ones whose job
        has retries left; re-send or fail builds stuck ``queued`` (see
        :mod:`jobcontrol.execution.queued`); returns the retries made. What waits for the
        builds it ends is sent, or cancelled if they block it. Every worker runs it
        periodically."""
        reaped = self.jc.reap(workers=True)
        lost = sweep_queued(self.storage, self.config.jobs, self.send_build,
                            self.config.executor.queued_timeout)
        never_taken = [self.storage.get_build(build.id) for build, done in lost
                       if done == "failed"]
        for build in never_taken:  # failed here, by this sweep alone: told once
            self._notify(build)
        ended = reaped + never_taken
        now = self.storage.now()
        made = []
        for build in self.storage.list_builds(states=[BuildState.ABANDONED],
                                              limit=SWEEP_LIMIT):
            if build.finished is not None \
                    and (now - build.finished).total_seconds() > SWEEP_HORIZON:
                continue
            if build.queue is None or self.storage.get_retry(build.id) is not None:
                continue
            retry = self.retry(build)
            if retry is not None:
                made.append(retry)
        self.dispatch(ended)  # after the retries: what waits for them waits on
        return made


def dispatch_ends(jc: WorkerControl, ended: Sequence[Build]) -> None:
    """What the ends of remote builds recorded outside a worker (abandoned by a reap,
    cancelled while queued) let go: sent, or cancelled if blocked. A broker that fails is
    logged: the workers' ``queued_timeout`` sweep sends them later."""
    remote = [build for build in ended if build.queue is not None]
    if not remote or not jc.config.executor.remote:
        return
    try:
        RemoteWorker(jc, jc.sender).dispatch(remote)
    except BrokerError as exc:
        logger.warning("builds waiting for %s not sent: %s",
                       ", ".join(f"#{build.id}" for build in remote), exc)


# -- following builds from afar (``build --async --wait``) -----------------------------------


def follow(jc: WorkerControl, builds: Sequence[Build], observer: BuildObserver, *,
           poll: float = FOLLOW_POLL, sleep: Callable[[float], None] = time.sleep
           ) -> list[Build]:
    """Report the builds (and their retries) to ``observer`` as workers run them, until
    every one has ended for good; returns the builds as they ended, oldest first."""
    watched: dict[int, Build] = {build.id: build for build in builds}
    started: set[int] = set()
    seen_logs: dict[int, int] = {}
    ended: dict[int, Build] = {}
    retry_coming: set[int] = set()  # ended builds whose retry the workers will make
    while True:
        awaiting = sorted(i for i in watched if i not in ended or i in retry_coming)
        if not awaiting:
            break
        for build_id in awaiting:
            if build_id in ended:  # the worker or a sweep makes its retry soon
                _watch_retry(jc, ended[build_id], watched, retry_coming, observer)
                continue
            build = jc.get_build(build_id)  # reaps it too, if its worker died
            if build.state is not BuildState.QUEUED and build_id not in started:
                started.add(build_id)
                observer.build_started(build)
            for record in jc.logs(build_id, after_seq=seen_logs.get(build_id, 0)):
                seen_logs[build_id] = record.seq
                observer.build_log(build, record)
            if build.state.finished:
                ended[build_id] = build
                observer.build_finished(build)
                if retry_due(jc, build):
                    retry_coming.add(build_id)
                    _watch_retry(jc, build, watched, retry_coming, observer)
        sleep(poll)
    return sorted(ended.values(), key=lambda build: build.id)


def _watch_retry(jc: WorkerControl, build: Build, watched: dict[int, Build],
                 retry_coming: set[int], observer: BuildObserver) -> None:
    """Watch the retry of ``build`` too, once it exists."""
    retry = jc.storage.get_retry(build.id)
    if retry is None:
        return
    retry_coming.discard(build.id)
    watched[retry.id] = retry
    job = jc.config.jobs[build.job_id]
    assert job.retries is not None
    attempt = plan.attempt_of(build, _stored(jc.storage))
    observer.build_retrying(build, job.retries.delay_before(attempt), attempt, job.retries.count)
