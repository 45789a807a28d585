"""Why a job is outdated: the rules, and a human reason for each hit.

Pure functions over ``{job_id: dependencies}``, each job as it is now
(:class:`~jobcontrol.rules.versions.JobNow`: definition hash, code version, input files)
and the storage's :class:`~jobcontrol.models.JobSummary` of each job: :func:`outdated_jobs`
judges every job (``status``, ``--dry-run``); :class:`RunVerdicts` keeps verdicts over one
run (the orchestrator), judging one job at a time with :func:`outdated_job`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jobcontrol.models import Build, JobSummary
from jobcontrol.rules.graph import Dependencies, dependents_map, topological_order
from jobcontrol.rules.versions import JobNow, recorded_code, recorded_inputs
from jobcontrol.serialize import StoredValue

#: a job as it is now, given its last success (None: a job the config does not have)
NowOf = Callable[[str, Build | None], JobNow | None]
#: the stored return value of a build by id (None: gone, or none stored)
ResultOf = Callable[[int], StoredValue | None]

#: input changes named one by one; more are counted
MAX_INPUT_REASONS = 5


@dataclass(frozen=True)
class Outdated:
    """Whether a job needs building, and every reason why (empty when up to date).

    ``notes`` say what the rules could not compare or chose to pass over (a function whose
    source cannot be read, a dependency rebuilt with the same value): never a reason to
    build, shown by ``status --why``."""

    job_id: str
    reasons: tuple[str, ...]
    notes: tuple[str, ...] = ()

    @property
    def outdated(self) -> bool:
        return bool(self.reasons)

    @property
    def never_built(self) -> bool:
        return any(reason == NEVER_BUILT for reason in self.reasons)


NEVER_BUILT = "never built successfully"


def outdated_jobs(
    deps: Dependencies,
    now_of: NowOf,
    summaries: Mapping[str, JobSummary],
    result_of: ResultOf | None = None,
) -> dict[str, Outdated]:
    """Apply the outdated rules to every job, with a human reason for each hit.

    1. never built successfully (no ``success`` build);
    2. a dependency has a newer ``success`` build than the one its latest success consumed,
       and that build's return value is not the one consumed (``result_of`` reads the
       consumed build's; without it any newer build counts);
    3. a dependency is itself outdated (upstream);
    4. its definition (function, args, kwargs) changed since its latest success;
    5. its code version (its function's source, or its ``code_version:``) or one of its
       input files changed since its latest success.

    Only ``success`` is a success: a ``skipped`` build is neither the job's latest success
    nor consumed by dependents, so it never makes the job up to date or its dependents
    outdated.
    """
    result: dict[str, Outdated] = {}
    for job in topological_order(deps):
        result[job] = outdated_job(job, deps[job], now_of, summaries, result, result_of)
    return result


def outdated_job(
    job: str,
    job_deps: Sequence[str],
    now_of: NowOf,
    summaries: Mapping[str, JobSummary],
    verdicts: Mapping[str, Outdated],
    result_of: ResultOf | None = None,
) -> Outdated:
    """The rules of :func:`outdated_jobs` for one job, given the verdicts of its direct
    dependencies (``verdicts``) and the summaries of the job and of those dependencies: a
    caller that keeps verdicts judges a job in a chain at a constant cost, not its depth."""
    summary = summaries.get(job)
    last_success = summary.last_success if summary else None
    reasons: list[str] = []
    notes: list[str] = []
    if last_success is None:
        reasons.append(NEVER_BUILT)
    else:
        consumed = last_success.dependency_builds
        for dep in job_deps:
            dep_summary = summaries.get(dep)
            newest = dep_summary.last_success if dep_summary else None
            used = consumed.get(dep)
            if newest is None or (used is not None and newest.id <= used):
                continue
            if used is not None and result_of is not None and not _made_by_command(newest) \
                    and same_value(newest.result, result_of(used)):
                notes.append(f"dependency {dep} rebuilt (build {newest.id}) with the same "
                             f"value as build {used}, which this job used: not outdated")
                continue
            was = f"build {used}" if used is not None else "none"
            reasons.append(f"dependency {dep} has a newer build ({newest.id}; this job used "
                           f"{was})")
        now = now_of(job, last_success)
        if now is not None:
            if last_success.definition_hash != now.definition_hash:
                reasons.append(f"definition changed since build {last_success.id}")
            _code_rule(now, last_success, reasons, notes)
            _inputs_rule(now, last_success, reasons)
            # a pattern that matches nothing compares nothing: a typo would go unseen
            notes.extend(f"input pattern {pattern} matches no file" for pattern in now.unmatched)
    for dep in job_deps:
        if verdicts[dep].outdated:
            reasons.append(f"dependency {dep} is outdated")
    return Outdated(job, tuple(reasons), tuple(notes))


def _code_rule(now: JobNow, last: Build, reasons: list[str], notes: list[str]) -> None:
    """Rule 5, code: the code version now against the one ``last`` ran with."""
    if last.definition.get("function", now.function) != now.function:
        return  # another function: rule 4 says the definition changed
    code, recorded = now.code, recorded_code(last)
    if code.value is None:
        notes.append(f"code not compared: {code.problem}")
    elif recorded is None or recorded.get("version") is None:
        notes.append(f"code not compared: build {last.id} recorded no code version")
    elif recorded["version"] != code.value:
        if code.source == recorded.get("from") == "function":
            reasons.append(f"function {now.function} changed since build {last.id}")
        else:
            reasons.append(f"code version changed since build {last.id} "
                           f"({_code_text(recorded)} -> {_code_text(code.as_json())})")


def _code_text(code: Mapping[str, Any]) -> str:
    if code.get("from") == "code_version":
        return f"code_version {code.get('version')}"
    if code.get("from") == "command":
        return "the command"
    return "the function's source"


def _inputs_rule(now: JobNow, last: Build, reasons: list[str]) -> None:
    """Rule 5, inputs: each input file now against the fingerprints ``last`` recorded."""
    if now.inputs is None:
        return  # the job names no inputs (any more)
    recorded = recorded_inputs(last)
    if recorded is None:
        reasons.append(f"input files not recorded by build {last.id}")
        return
    changes = []
    for name in sorted(set(recorded) | set(now.inputs)):
        was, found = recorded.get(name), now.inputs.get(name)
        if found is None:
            changes.append(f"input {name} gone since build {last.id}")
        elif was is None:
            changes.append(f"input {name} appeared since build {last.id}")
        elif was.sha256 != found.sha256:
            changes.append(f"input {name} changed since build {last.id}")
    if len(changes) > MAX_INPUT_REASONS:
        more = len(changes) - MAX_INPUT_REASONS + 1
        changes[MAX_INPUT_REASONS - 1:] = [f"{more} more input changes since build {last.id}"]
    reasons.extend(changes)


def _made_by_command(build: Build) -> bool:
    """Whether ``build`` ran a shell job: its value is its exit status, 0 at every success,
    which says nothing of what the command made (as None says nothing of a function's)."""
    return build.definition.get("command") is not None


def same_value(new: StoredValue | None, used: StoredValue | None) -> bool:
    """Whether a dependency's new return value is the one a job consumed: the same JSON
    (objects' key order aside), or the same pickle bytes. ``None`` is never the same value:
    a job that returns nothing (most jobs run for what they write elsewhere) says nothing
    of what it made. Nor is a ``repr`` (two equal reprs may stand for different values),
    nor a value not read."""
    if new is None or used is None or new.kind != used.kind:
        return False
    if new.kind == "pickle":
        return new.data == used.data
    if new.kind != "json":
        return False
    try:
        canonical = _canonical(new.data)
        return canonical != "null" and canonical == _canonical(used.data)
    except ValueError:
        return False


def _canonical(text: str) -> str:
    return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))


class RunVerdicts:
    """Outdated verdicts over one run, judged on the summaries as read during it.

    A step's decision reads fresh summaries of the job and its direct dependencies; the
    rest of its upstream closure is judged as read earlier in the run (:meth:`needed` says
    what to read, :meth:`take` takes it in). Each verdict is kept while the summaries it was
    judged on stand, and a job's only with its dependencies' (:meth:`forget` drops a job's
    and its dependents'): in a chain, judging a job costs its own step and its parent, not
    the whole chain. Reading every job's summary for every step made a run of n jobs cost
    n status queries of n jobs.
    """

    def __init__(self, deps: Dependencies, now_of: NowOf,
                 result_of: ResultOf | None = None) -> None:
        self.deps = deps
        self._now_of = now_of
        self._result_of = result_of
        #: the job summaries read during this run
        self.summaries: dict[str, JobSummary] = {}
        self._verdicts: dict[str, Outdated] = {}
        self._dependents: dict[str, list[str]] | None = None

    def needed(self, job_id: str, judge: bool) -> set[str]:
        """The jobs whose summaries deciding ``job_id`` reads now: always its direct
        dependencies; with ``judge`` (its verdict is read), the job too, and the jobs of
        its upstream closure judged now whose summaries were not read yet."""
        fresh = {job_id, *self.deps[job_id]} if judge else set(self.deps[job_id])
        wanted = set(fresh)
        if judge:
            for judged in self._to_judge(job_id, fresh):
                for needed in (judged, *self.deps[judged]):
                    if needed not in self.summaries and needed not in self._verdicts:
                        wanted.add(needed)
        return wanted

    def take(self, wanted: Collection[str], read: Mapping[str, JobSummary]) -> None:
        """Take in the summaries of ``wanted`` as read (a job missing from ``read`` has no
        build): the verdicts judged on what they replace go."""
        for job_id in wanted:
            if job_id in read:
                self.summaries[job_id] = read[job_id]
            else:
                self.summaries.pop(job_id, None)
            self.forget(job_id)

    def built(self, job_id: str) -> None:
        """``job_id`` has a new build: its summary is read again when needed."""
        self.summaries.pop(job_id, None)
        self.forget(job_id)

    def verdict(self, job_id: str) -> Outdated:
        """Whether ``job_id`` is outdated, by :func:`outdated_job` over its upstream closure:
        only the jobs without a kept verdict are judged."""
        for job in self._to_judge(job_id, set()):
            self._verdicts[job] = outdated_job(job, self.deps[job], self._now_of,
                                               self.summaries, self._verdicts, self._result_of)
        return self._verdicts[job_id]

    def forget(self, job_id: str) -> None:
        """Drop the verdict of ``job_id`` (its summary changed) and of every job downstream
        of it (a kept verdict always has its dependencies' verdicts kept beside it)."""
        if job_id not in self._verdicts:
            return
        if self._dependents is None:
            self._dependents = dependents_map(self.deps)
        todo = [job_id]
        while todo:
            node = todo.pop()
            if self._verdicts.pop(node, None) is not None:
                todo.extend(self._dependents.get(node, ()))

    def _to_judge(self, job_id: str, fresh: Collection[str]) -> list[str]:
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
