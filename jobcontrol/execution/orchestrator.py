"""Runs a plan: decides each step against fresh storage state, claims, starts, waits.

Independent steps run side by side up to ``parallel``; a step starts once every dependency
in the plan has finished. A failure blocks everything downstream of it and, unless
``keep_going``, stops new starts. A paused job due to build is not built, and blocks
everything downstream of it in the run (its dependents would consume a result its pause
kept from being made); a paused job with nothing to build (up to date) blocks nothing.
Ctrl-C and SIGTERM cancel the running builds.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jobcontrol.config import Config, JobDefinition
from jobcontrol.errors import DependencyError, JobAlreadyRunningError, JobControlError, RetvalError
from jobcontrol.execution.identity import namespace_id
from jobcontrol.execution.local import LocalExecutor
from jobcontrol.execution.observer import BuildObserver
from jobcontrol.execution.runner import root_at_debug
from jobcontrol.models import HOSTNAME, Build, BuildState, JobPause, JobSummary
from jobcontrol.notify import Notifier
from jobcontrol.rules import params, plan
from jobcontrol.rules.outdated import Outdated, RunVerdicts
from jobcontrol.rules.plan import Role, Step, blocked_by, decide
from jobcontrol.rules.runs import RunStart
from jobcontrol.rules.versions import JobsNow, stored_results
from jobcontrol.serialize import StoredValue
from jobcontrol.storage.base import Storage


@dataclass
class RunResult:
    """What a run made, and the first refusal that stopped part of it."""

    builds: list[Build] = field(default_factory=list)
    error: JobControlError | None = None


class BuildRun:
    """One execution of a plan (see module docstring)."""

    def __init__(
        self,
        config: Config,
        storage: Storage,
        callables: Mapping[str, Callable[..., Any]],
        observer: BuildObserver | None = None,
        *,
        parallel: int = 1,
        keep_going: bool = False,
        if_outdated: bool = False,
        executor: LocalExecutor | None = None,
        notifier: Notifier | None = None,
        paused: Mapping[str, JobPause] | None = None,
        start: RunStart | None = None,
    ) -> None:
        self.config = config
        self.notifier = notifier
        self.storage = storage
        self.callables = callables
        self.observer = observer or BuildObserver()
        self.parallel = max(1, parallel)
        self.keep_going = keep_going
        self.if_outdated = if_outdated
        #: the run its builds name, their parameter values, their scheduled instants
        self.start = start or RunStart()
        #: the jobs paused when the run began (see the module docstring)
        self.paused = dict(paused or {})
        #: the paused jobs this run did not build: their dependents are not built either
        self._held: set[str] = set()
        #: an executor made here is closed at the end of the run (its threads and fork
        #: server go; a long-lived process such as the scheduler makes many runs)
        self._own_executor = executor is None
        self.executor = executor or LocalExecutor(
            storage, self.observer, heartbeat_interval=config.runner.heartbeat,
            kill_grace=config.runner.kill_grace, masker=config.masker,
            outcome_retry=config.runner.outcome_retry,
            max_builds_per_worker=config.runner.max_builds_per_worker,
            max_worker_memory=config.runner.max_worker_memory,
        )
        self.deps = config.dependencies
        self.result = RunResult()
        self._finished: dict[str, BuildState] = {}
        #: the jobs of _finished in the order they finished (see _ReadySteps)
        self._finished_order: list[str] = []
        self._failed: set[str] = set()
        self._running_jobs: dict[int, str] = {}
        self._halt = False
        #: retries waiting for their delay: (due, step, build retried, attempt)
        self._retries: list[tuple[float, Step, int, int]] = []
        self._arguments_of: dict[str, tuple[tuple[Any, ...], dict[str, Any], dict[str, int]]] = {}
        #: the summaries read and the outdated verdicts judged during this run
        #: each job as it is now (code, inputs), read once: its verdict and record agree
        self._now = JobsNow(config)
        self._verdicts = RunVerdicts(self.deps, self._now, stored_results(storage))
        #: the successful builds this run made, by id: a !retval of one is not read back
        self._made: dict[int, Build] = {}

    def run(self, steps: list[Step]) -> RunResult:
        """Run the steps; returns when nothing more can start and nothing is running."""
        pending = {step.job_id: step for step in steps}  # in plan order
        ready = _ReadySteps(steps, self.deps)
        with self._signals_cancel_builds(), self._closing_executor(self._own_executor), \
                self._committing(), self._root_logging(steps):
            while pending or self.executor.running or self._retries:
                before = len(pending)
                self._start_due_retries()
                while not (self._halt or self.executor.stopping) \
                        and self.executor.running < self.parallel:
                    # the first pending step (in plan order) whose dependencies in the plan
                    # all finished; an inline build finishes within _start()
                    step = ready.pop(self._finished_order, pending)
                    if step is None:
                        break
                    del pending[step.job_id]
                    self._start(step)
                    if self.executor.has_finished:
                        # an inline build ended: recorded before the next starts, so that
                        # its failure stops the run as a forked build's does
                        break
                if self._halt or self.executor.stopping:
                    self._abandon(list(pending.values()))
                    pending.clear()
                finished = self.executor.wait(self._retry_wait())
                for build in finished:
                    self._record(build)
                if not self.executor.running and self._retries and not finished:
                    time.sleep(min(0.2, self._retry_wait() or 0.0))
                elif not finished and len(pending) == before and pending \
                        and not self.executor.running:  # the plan is acyclic: never
                    raise RuntimeError(f"plan cannot progress: {list(pending)}")
        self.result.builds.sort(key=lambda build: build.id)
        return self.result

    def _root_logging(self, steps: list[Step]) -> contextlib.AbstractContextManager[None]:
        """The root logger held at DEBUG for the run where builds run inline here (their
        capture needs it there, and sets it per build otherwise)."""
        if any(self.config.jobs[step.job_id].isolation == "inline" for step in steps):
            return root_at_debug()
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def _committing(self) -> Iterator[None]:
        """A run leaves no outcome pending when it ends, however (the storage would commit
        it within ``PENDING_COMMIT_DELAY``; a caller may read it from elsewhere sooner)."""
        try:
            yield
        finally:
            self.executor.commit_outcomes()

    @contextlib.contextmanager
    def _closing_executor(self, close: bool) -> Iterator[None]:
        try:
            yield
        finally:
            if close:
                self.executor.close()

    # -- one step ----------------------------------------------------------------------------

    def _retry_wait(self) -> float | None:
        """Seconds until the next retry is due (None: no retry waiting)."""
        if not self._retries:
            return None
        return max(0.0, min(due for due, *_ in self._retries) - time.monotonic())

    def _start_due_retries(self) -> None:
        if self.executor.stopping:
            for _, step, build_id, _ in self._retries:
                self._not_built(step.job_id, f"build {build_id} not retried: the run was "
                                f"interrupted", failed=True)
            self._retries.clear()
            return
        now = time.monotonic()
        for entry in sorted(self._retries, key=lambda item: item[0]):
            due, step, build_id, _attempt = entry
            if due > now or self.executor.running >= self.parallel:
                continue
            self._retries.remove(entry)
            self._claim_and_start(self.config.jobs[step.job_id], retry_of=build_id)

    def _start(self, step: Step) -> bool:
        job = self.config.jobs[step.job_id]
        failed_dep = blocked_by(step, self.deps, self._failed)
        if failed_dep is not None:
            return self._not_built(step.job_id, f"dependency {failed_dep} failed", failed=True)
        held_dep = blocked_by(step, self.deps, self._held)
        if held_dep is not None:
            self._held.add(step.job_id)
            return self._not_built(step.job_id, f"dependency {held_dep} is paused")
        judge = plan.needs_verdict(step, self.if_outdated)
        wanted = self._verdicts.needed(step.job_id, judge)
        self._verdicts.take(wanted, self.storage.job_summaries(wanted) if wanted else {})
        # only some decisions read the verdict (judged over the job's upstream closure)
        outdated = self._verdicts.verdict(step.job_id) if judge else Outdated(step.job_id, ())
        decision = decide(step, outdated, if_outdated=self.if_outdated, finished=self._finished)
        if not decision.build:
            return self._not_built(step.job_id, decision.reason)
        pause = self.paused.get(job.id)
        if pause is not None:
            self._held.add(job.id)
            return self._not_built(job.id, f"{pause.describe()}; --force builds it")
        try:
            self._arguments_of[job.id] = self._arguments(job, self._verdicts.summaries)
        except (DependencyError, RetvalError) as exc:
            return self._refused(job.id, exc)
        return self._claim_and_start(job)

    def _claim_and_start(self, job: JobDefinition, retry_of: int | None = None) -> bool:
        """Claim a build of the job (a retry uses the first attempt's arguments) and run it."""
        args, kwargs, consumed = self._arguments_of[job.id]
        values = (self.start.values or {}).get(job.id) or params.resolve(job, None)
        if retry_of is None:  # a retry asked for by hand (build --retry-of)
            retry_of = self.start.retry_of(job.id)
        try:
            build = self.storage.claim_build(
                job.id, concurrency=job.concurrency, definition_hash=job.definition_hash,
                definition=params.recorded_definition(
                    job, values, self.start.instant(job.id),
                    self._now.record(job, self._verdicts.summaries)),
                dependency_builds=consumed, host=HOSTNAME, pid=os.getpid(),
                pid_namespace=namespace_id(), retry_of=retry_of, run_id=self.start.run_id,
                params=params.own_params(job, values),
                pgid=self.executor.next_process_group(job.isolation),
            )
        except JobAlreadyRunningError as exc:
            return self._refused(job.id, exc)
        self._running_jobs[build.id] = job.id
        self.executor.start(
            build, self.callables[job.id], args, params.call_kwargs(kwargs, values),
            timeout=job.timeout, isolation=job.isolation, result_mode=job.result,
            function_path=job.function,
        )
        return True

    def _refused(self, job_id: str, exc: JobControlError) -> bool:
        if self.result.error is None:
            self.result.error = exc
        self._halt = not self.keep_going
        self._settle(job_id, failed=True)
        self.observer.job_refused(job_id, exc)
        return False

    def _arguments(
        self, job: JobDefinition, summaries: Mapping[str, JobSummary]
    ) -> tuple[tuple[Any, ...], dict[str, Any], dict[str, int]]:
        """What a build of ``job`` consumes (by summaries read just now), and its arguments."""
        consumed = plan.consumed_builds(job.id, self.deps[job.id], summaries)
        args, kwargs = plan.arguments(job, consumed, self._result_of)
        return args, kwargs, consumed

    def _result_of(self, build_id: int) -> StoredValue | None:
        made = self._made.get(build_id)  # this run's build: its result is at hand
        return (made if made is not None else self.storage.get_build(build_id)).result

    def _not_built(self, job_id: str, reason: str, failed: bool = False) -> bool:
        self._settle(job_id, failed)
        self.observer.job_not_built(job_id, reason)
        return False

    def _settle(self, job_id: str, failed: bool) -> None:
        """The job is done with in this run, without a build."""
        if failed:
            self._failed.add(job_id)
        self._finished[job_id] = BuildState.FAILED if failed else BuildState.SKIPPED
        self._finished_order.append(job_id)

    def _abandon(self, pending: list[Step]) -> None:
        """The run stopped: say why each step left will not be built."""
        why = "the run was interrupted" if self.executor.stopping else "an earlier step failed"
        for step in pending:
            failed_dep = blocked_by(step, self.deps, self._failed)
            if failed_dep is not None:
                self._not_built(step.job_id, f"dependency {failed_dep} failed", failed=True)
            else:
                self.observer.job_not_built(step.job_id, f"not started: {why}")

    def _record(self, build: Build) -> None:
        job_id = self._running_jobs.pop(build.id)
        self._verdicts.built(job_id)  # its summary is read again when needed
        if build.state is BuildState.SUCCESS and build.result is not None:
            self._made[build.id] = build
        self.result.builds.append(build)
        if self._schedule_retry(job_id, build):
            return  # the last attempt is the one that may be news
        if self.notifier is not None:
            for problem in self.notifier.build_finished(build):
                self.observer.notification_failed(build, problem)
        self._finished[job_id] = build.state
        self._finished_order.append(job_id)
        if not build.state.ok:
            self._failed.add(job_id)
            if not self.keep_going:
                self._halt = True

    def _schedule_retry(self, job_id: str, build: Build) -> bool:
        """Plan another attempt of a failed build, if its job's ``retries`` allow one."""
        policy = self.config.jobs[job_id].retries
        if build.state is not BuildState.FAILED or policy is None or self.executor.stopping:
            return False
        attempts = {made.id: made for made in self.result.builds}  # this run's, so far
        attempt = plan.retry_attempt(build, policy, attempts.get)
        if attempt is None:
            return False
        delay = policy.delay_before(attempt)
        step = Step(job_id, Role.TARGET)
        self._retries.append((time.monotonic() + delay, step, build.id, attempt))
        self.observer.build_retrying(build, delay, attempt, policy.count)
        return True

    # -- signals -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _signals_cancel_builds(self) -> Iterator[None]:
        """While running, Ctrl-C and SIGTERM cancel the builds instead of killing us."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: object) -> None:
            # a handler of our caller's (the scheduler's loop) learns of it too
            outer = previous.get(signum)
            if callable(outer) and outer is not signal.default_int_handler:
                outer(signum, frame)
            name = signal.Signals(signum).name
            self.executor.request_stop(f"interrupted by {name}", BuildState.CANCELLED)

        previous: dict[int, Any] = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
        try:
            yield
        finally:
            for number, old in previous.items():
                signal.signal(number, old)


class _ReadySteps:
    """Which steps of a plan can start: those whose dependencies in the plan have all
    finished, first in plan order. Kept up to date from the order jobs finish in, so a run
    of n steps costs O(n log n) here, not a scan of every pending step per step (O(n²)
    for a chain)."""

    def __init__(self, steps: list[Step], deps: Mapping[str, Sequence[str]]) -> None:
        self._steps = steps
        self._position = {step.job_id: n for n, step in enumerate(steps)}
        self._waiting_on = {step.job_id: {d for d in deps[step.job_id] if d in self._position}
                            for step in steps}
        self._dependents: dict[str, list[str]] = {}
        for job_id, waiting in self._waiting_on.items():
            for dep in waiting:
                self._dependents.setdefault(dep, []).append(job_id)
        self._ready = [n for n, step in enumerate(steps) if not self._waiting_on[step.job_id]]
        heapq.heapify(self._ready)
        self._seen = 0  # how much of the finish order was taken in

    def pop(self, finished_order: list[str], pending: Mapping[str, Step]) -> Step | None:
        """The next step that can start (and is still pending), or None."""
        for job_id in finished_order[self._seen:]:
            for dependent in self._dependents.get(job_id, ()):
                waiting = self._waiting_on[dependent]
                waiting.discard(job_id)
                if not waiting:
                    heapq.heappush(self._ready, self._position[dependent])
        self._seen = len(finished_order)
        while self._ready:
            step = self._steps[heapq.heappop(self._ready)]
            if step.job_id in pending:
                return step
        return None
