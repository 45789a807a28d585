"""Runs a plan: decides each step against fresh storage state, claims, starts, waits.

Independent steps run side by side up to ``parallel``; a step starts once every dependency
in the plan has finished. A failure blocks everything downstream of it and, unless
``keep_going``, stops new starts. Ctrl-C and SIGTERM cancel the running builds.
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

from jobcontrol.config import FORK_SERVER_MIN_BUILDS, Config, JobDefinition, RetvalRef
from jobcontrol.errors import (
    DependencyError,
    JobAlreadyRunningError,
    JobControlError,
    RetvalError,
    RetvalMissingError,
)
from jobcontrol.execution.local import HOSTNAME, BuildObserver, LocalExecutor
from jobcontrol.models import Build, BuildState, JobSummary
from jobcontrol.notify import Notifier
from jobcontrol.rules import graph
from jobcontrol.rules.outdated import Outdated, outdated_job
from jobcontrol.rules.plan import Role, Step, blocked_by, decide
from jobcontrol.serialize import load_for_dependency
from jobcontrol.storage.base import Storage


@dataclass
class RunResult:
    """What a run made, and the first refusal that stopped part of it."""

    builds: list[Build] = field(default_factory=list)
    error: JobControlError | None = None


def substitute_retvals(value: Any, retvals: Mapping[str, Any]) -> Any:
    """``value`` with every :class:`RetvalRef` replaced by its dependency's return value."""
    if isinstance(value, RetvalRef):
        return retvals[value.job_id]
    if isinstance(value, list):
        return [substitute_retvals(item, retvals) for item in value]
    if isinstance(value, tuple):
        return tuple(substitute_retvals(item, retvals) for item in value)
    if isinstance(value, dict):
        return {key: substitute_retvals(item, retvals) for key, item in value.items()}
    return value


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
    ) -> None:
        self.config = config
        self.notifier = notifier
        self.storage = storage
        self.callables = callables
        self.observer = observer or BuildObserver()
        self.parallel = max(1, parallel)
        self.keep_going = keep_going
        self.if_outdated = if_outdated
        #: an executor made here is closed at the end of the run (its threads and fork
        #: server go; a long-lived process such as the scheduler makes many runs)
        self._own_executor = executor is None
        # an executor made here leaves each outcome to be committed with the next claim (one
        # commit a build instead of two); this run commits it before it waits, and at its end
        self.executor = executor or LocalExecutor(
            storage, self.observer, heartbeat_interval=config.runner.heartbeat,
            kill_grace=config.runner.kill_grace, masker=config.masker, defer_commits=True,
            outcome_retry=config.runner.outcome_retry,
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
        #: job summaries read during this run (see _summaries_for)
        self._summaries: dict[str, JobSummary] = {}
        #: outdated verdicts worked out during this run, each valid while the summaries it
        #: was judged on stand (a job's is kept only with its dependencies'); see _verdict
        self._verdicts: dict[str, Outdated] = {}
        self._dependents: dict[str, list[str]] | None = None
        #: the successful builds this run made, by id: a !retval of one is not read back
        self._made: dict[int, Build] = {}

    def run(self, steps: list[Step]) -> RunResult:
        """Run the steps; returns when nothing more can start and nothing is running."""
        pending = {step.job_id: step for step in steps}  # in plan order
        ready = _ReadySteps(steps, self.deps)
        close = self._own_executor
        if self._fork_server_wanted(steps) and not self.executor.forks_from_server:
            close = self.executor.use_fork_server() or close  # started here: closed here
        with self._signals_cancel_builds(), self._closing_executor(close), \
                self._committing():
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
                if self._halt or self.executor.stopping:
                    self._abandon(list(pending.values()))
                    pending.clear()
                finished = self.executor.wait(self._retry_wait())
                for build in finished:
                    self._record(build)
                if not self.executor.running and self._retries and not finished:
                    self.executor.commit_pending()
                    time.sleep(min(0.2, self._retry_wait() or 0.0))
                elif not finished and len(pending) == before and pending \
                        and not self.executor.running:  # the plan is acyclic: never
                    raise RuntimeError(f"plan cannot progress: {list(pending)}")
        self.result.builds.sort(key=lambda build: build.id)
        return self.result

    def _fork_server_wanted(self, steps: list[Step]) -> bool:
        """Whether this run's process-isolated builds should come from a fork server:
        ``runner.fork_server``, or by default when there are many of them."""
        setting = self.config.runner.fork_server
        if setting is not None:
            return setting
        forked = sum(1 for step in steps
                     if self.config.jobs[step.job_id].isolation != "inline")
        return forked >= FORK_SERVER_MIN_BUILDS

    @contextlib.contextmanager
    def _committing(self) -> Iterator[None]:
        """Commit the outcomes the executor left pending when the run ends, however."""
        try:
            yield
        finally:
            self.executor.commit_pending()

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
        summaries = self._summaries_for(step)
        outdated = Outdated(step.job_id, ())
        if step.role is Role.UPSTREAM or (step.role is Role.TARGET and self.if_outdated):
            # only these decisions read the verdict (over the job's upstream closure)
            outdated = self._verdict(step.job_id)
        decision = decide(step, outdated, if_outdated=self.if_outdated, finished=self._finished)
        if not decision.build:
            return self._not_built(step.job_id, decision.reason)
        try:
            missing = [d for d in self.deps[step.job_id]
                       if summaries.get(d) is None or summaries[d].last_success is None]
            if missing:
                raise DependencyError(step.job_id, missing)
            self._arguments_of[job.id] = self._arguments(job, summaries)
        except (DependencyError, RetvalError) as exc:
            return self._refused(job.id, exc)
        return self._claim_and_start(job)

    def _summaries_for(self, step: Step) -> dict[str, JobSummary]:
        """The summaries deciding ``step`` needs, read with one query: always fresh for the
        job and its direct dependencies; the rest of its upstream closure (only read for a
        verdict) as read earlier in this run, or now if not read yet. Reading every job's
        summary for every step made a run of n jobs cost n status queries of n jobs."""
        judge = step.role is Role.UPSTREAM or (step.role is Role.TARGET and self.if_outdated)
        fresh = {step.job_id, *self.deps[step.job_id]} if judge else set(self.deps[step.job_id])
        wanted = set(fresh)
        if judge:
            # the jobs whose verdict is judged now (the fresh ones, and upstream jobs with
            # none kept), and their dependencies: read unless read earlier or judged
            for job_id in self._to_judge(step.job_id, fresh):
                for needed in (job_id, *self.deps[job_id]):
                    if needed not in self._summaries and needed not in self._verdicts:
                        wanted.add(needed)
        read = self.storage.job_summaries(wanted) if wanted else {}
        for job_id in wanted:
            if job_id in read:
                self._summaries[job_id] = read[job_id]
            else:
                self._summaries.pop(job_id, None)
            self._forget_verdict(job_id)  # judged on what was just read, when needed
        return self._summaries

    def _to_judge(self, job_id: str, fresh: set[str]) -> list[str]:
        """``job_id`` and the jobs of its upstream closure whose verdict is not kept (or is
        about to be re-read: ``fresh``), dependencies first. The walk stops at a kept
        verdict: in a chain it visits the job and its parent, not the whole chain."""
        order: list[str] = []
        seen: set[str] = set()
        # iterative depth-first post-order (a chain can be deeper than Python's recursion)
        stack: list[tuple[str, bool]] = [(job_id, False)]
        while stack:
            node, done = stack.pop()
            if done:
                order.append(node)
                continue
            if node in seen or (node in self._verdicts and node not in fresh):
                continue
            seen.add(node)
            stack.append((node, True))
            stack.extend((dep, False) for dep in reversed(self.deps[node]))
        return order

    def _verdict(self, job_id: str) -> Outdated:
        """Whether ``job_id`` is outdated, by the rules of :func:`outdated_jobs` over
        its upstream closure and the summaries as read in this run: each job's verdict is
        kept, so only the jobs without one (or whose summaries were read again) are judged."""
        for job in self._to_judge(job_id, set()):
            self._verdicts[job] = outdated_job(
                job, self.deps[job], self.config.jobs[job].definition_hash, self._summaries,
                self._verdicts)
        return self._verdicts[job_id]

    def _forget_verdict(self, job_id: str) -> None:
        """Drop the verdict of ``job_id`` (its summary changed) and of every job downstream
        of it (a kept verdict always has its dependencies' verdicts kept beside it)."""
        if job_id not in self._verdicts:
            return
        if self._dependents is None:
            self._dependents = graph.dependents_map(self.deps)
        todo = [job_id]
        while todo:
            node = todo.pop()
            if self._verdicts.pop(node, None) is not None:
                todo.extend(self._dependents.get(node, ()))

    def _claim_and_start(self, job: JobDefinition, retry_of: int | None = None) -> bool:
        """Claim a build of the job (a retry uses the first attempt's arguments) and run it."""
        args, kwargs, consumed = self._arguments_of[job.id]
        try:
            build = self.storage.claim_build(
                job.id, concurrency=job.concurrency, definition=job.stored_snapshot,
                definition_hash=job.definition_hash, dependency_builds=consumed,
                host=HOSTNAME, pid=os.getpid(), retry_of=retry_of,
            )
        except JobAlreadyRunningError as exc:
            return self._refused(job.id, exc)
        self._running_jobs[build.id] = job.id
        self.executor.start(
            build, self.callables[job.id], args, kwargs,
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
        consumed: dict[str, int] = {}
        for dep in self.deps[job.id]:
            last_success = summaries[dep].last_success
            assert last_success is not None
            consumed[dep] = last_success.id
        retvals: dict[str, Any] = {}
        for dep in sorted(job.retval_jobs()):
            output_id = summaries[dep].last_output_id
            if output_id is None:
                raise RetvalMissingError(job.id, dep)
            made = self._made.get(output_id)  # this run's build: its result is at hand
            build = made if made is not None else self.storage.get_build(output_id)
            retvals[dep] = load_for_dependency(build.result, dep, output_id)
        args = tuple(substitute_retvals(list(job.args), retvals))
        kwargs = substitute_retvals(dict(job.kwargs), retvals)
        return args, kwargs, consumed

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
        self._summaries.pop(job_id, None)  # it has a new build: read it again when needed
        self._forget_verdict(job_id)
        if build.state is BuildState.SUCCESS and build.result is not None:
            self._made[build.id] = build
        self.result.builds.append(build)
        if self._schedule_retry(job_id, build):
            return  # the last attempt is the one that may be news
        if self.notifier is not None:
            if build.job_id in self.notifier.policies:
                self.executor.commit_pending()  # sending may take a while
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
        attempt = 1
        previous = build
        while previous.retry_of is not None:  # attempts so far: follow the chain back
            attempt += 1
            previous = next(b for b in self.result.builds if b.id == previous.retry_of)
        if attempt > policy.count:
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
            for sig, old in previous.items():
                signal.signal(sig, old)


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
