"""Which jobs a ``build`` command touches, in what order, and why; and what each build
consumes: the rules a local run, ``build --async`` and a remote worker all ask.

A plan is made before anything runs (``--dry-run`` prints it). While it runs, each step is
decided again against the storage as it is then (:func:`decide`): a dependency that turned
out ``skipped`` does not force its dependents to rebuild.

A build consumes one build of each dependency (:func:`consumed_builds`): the one made for it
in the same run or plan, else the dependency's latest success; a dependency with neither is
not met (:func:`require_met`). Its ``!retval`` arguments get the return values of exactly
those builds (:func:`arguments`). A failed build earns a retry while its attempts
(:func:`attempt_of`) stay within its job's ``retries`` (:func:`retry_attempt`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from jobcontrol.config import RetvalRef
from jobcontrol.errors import DependencyError
from jobcontrol.models import Build, BuildState, JobSummary, StoredValue
from jobcontrol.rules import graph
from jobcontrol.rules.outdated import Outdated
from jobcontrol.serialize import load_for_dependency

if TYPE_CHECKING:
    from jobcontrol.config import JobDefinition, RetryPolicy


class Role(str, Enum):
    """Why a job is in the plan."""

    #: named on the command line: built (with ``--if-outdated``, only when outdated)
    TARGET = "target"
    #: an upstream job pulled in by ``--deps``: built only when outdated
    UPSTREAM = "upstream"
    #: a downstream job pulled in by ``--depending``: rebuilt after a target succeeds
    DOWNSTREAM = "downstream"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class PlannedStep:
    """A step of ``build --dry-run``: would it build, and why."""

    job_id: str
    role: Role
    build: bool
    reason: str


@dataclass(frozen=True)
class Step:
    """One job of a plan; ``after`` lists the targets a downstream step waits on."""

    job_id: str
    role: Role
    after: tuple[str, ...] = ()


@dataclass(frozen=True)
class Decision:
    """Whether a step builds now, and the reason either way."""

    build: bool
    reason: str


def make_plan(
    deps: Mapping[str, Sequence[str]],
    targets: Sequence[str],
    *,
    with_deps: bool = False,
    with_depending: bool = False,
) -> list[Step]:
    """The steps of a build, in topological order."""
    roles: dict[str, Step] = {job: Step(job, Role.TARGET) for job in targets}
    if with_deps:
        for target in targets:
            for job in graph.upstream(deps, target):
                roles.setdefault(job, Step(job, Role.UPSTREAM))
    if with_depending:
        for target in targets:
            for job in graph.downstream(deps, target):
                previous = roles.get(job)
                if previous is None or previous.role is Role.DOWNSTREAM:
                    after = (*(previous.after if previous else ()), target)
                    roles[job] = Step(job, Role.DOWNSTREAM, after)
    return [roles[job] for job in graph.topological_order(deps, roles)]


def needs_verdict(step: Step, if_outdated: bool) -> bool:
    """Whether :func:`decide` reads the step's outdated verdict (else any verdict will do)."""
    return step.role is Role.UPSTREAM or (step.role is Role.TARGET and if_outdated)


def decide(
    step: Step,
    outdated: Outdated,
    *,
    if_outdated: bool,
    finished: Mapping[str, BuildState],
) -> Decision:
    """Build this step now? ``finished`` holds the states of the jobs built in this run."""
    why = "; ".join(outdated.reasons)
    if step.role is Role.UPSTREAM:
        return Decision(outdated.outdated, why if outdated.outdated else "up to date")
    if step.role is Role.DOWNSTREAM:
        if any(finished.get(target) is BuildState.SUCCESS for target in step.after):
            return Decision(True, f"depends on {', '.join(step.after)}")
        return Decision(False, f"{', '.join(step.after)} did not produce a new result")
    if if_outdated and not outdated.outdated:
        return Decision(False, "up to date")
    return Decision(True, why if outdated.outdated else "requested")


def blocked_by(
    step: Step, deps: Mapping[str, Sequence[str]], failed: set[str]
) -> str | None:
    """The first dependency that failed (or was blocked) in this run, if any."""
    for dep in deps.get(step.job_id, ()):
        if dep in failed:
            return dep
    return None


# -- what a build consumes ---------------------------------------------------------------------


def unmet_dependencies(
    job_deps: Sequence[str], summaries: Mapping[str, JobSummary],
    planned: Collection[str] = (),
) -> list[str]:
    """The dependencies that never built successfully (by ``summaries``) and are not
    ``planned`` to be built first."""
    return [dep for dep in job_deps if dep not in planned
            and (dep not in summaries or summaries[dep].last_success is None)]


def require_met(
    job_id: str, job_deps: Sequence[str], summaries: Mapping[str, JobSummary],
    planned: Collection[str] = (),
) -> None:
    """:class:`DependencyError` naming every dependency of ``job_id`` not met (see
    :func:`unmet_dependencies`)."""
    missing = unmet_dependencies(job_deps, summaries, planned)
    if missing:
        raise DependencyError(job_id, missing)


def consumed_builds(
    job_id: str, job_deps: Sequence[str], summaries: Mapping[str, JobSummary],
    made: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """``{dependency: build id}`` a build of ``job_id`` consumes: the build ``made`` for the
    dependency in the same run or plan (a success, or still to come), else its latest
    success (a skipped build changed nothing: it is never consumed). DependencyError if a
    dependency has neither."""
    made = made or {}
    require_met(job_id, job_deps, summaries, planned=made)
    consumed: dict[str, int] = {}
    for dep in job_deps:
        if dep in made:
            consumed[dep] = made[dep]
        else:
            last_success = summaries[dep].last_success
            assert last_success is not None  # require_met
            consumed[dep] = last_success.id
    return consumed


def _substitute_retvals(value: Any, retvals: Mapping[str, Any]) -> Any:
    """``value`` with every :class:`RetvalRef` replaced by its dependency's return value."""
    if isinstance(value, RetvalRef):
        return retvals[value.job_id]
    if isinstance(value, list):
        return [_substitute_retvals(item, retvals) for item in value]
    if isinstance(value, tuple):
        return tuple(_substitute_retvals(item, retvals) for item in value)
    if isinstance(value, dict):
        return {key: _substitute_retvals(item, retvals) for key, item in value.items()}
    return value


def arguments(
    job: JobDefinition, consumed: Mapping[str, int],
    result_of: Callable[[int], StoredValue | None],
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The job's args and kwargs, each ``!retval`` given the return value of the build it
    consumes (``consumed``, from :func:`consumed_builds`: every dependency is in it, and a
    ``!retval`` names a dependency); ``result_of(build_id)`` reads that build's stored
    result. RetvalError if a value cannot be handed on."""
    retvals = {dep: load_for_dependency(result_of(consumed[dep]), dep, consumed[dep])
               for dep in sorted(job.retval_jobs())}
    return (tuple(_substitute_retvals(list(job.args), retvals)),
            _substitute_retvals(dict(job.kwargs), retvals))


# -- retries -----------------------------------------------------------------------------------


def attempt_of(build: Build, earlier: Callable[[int], Build | None]) -> int:
    """Which attempt ``build`` is: 1 for the first, 2 for its first retry...; ``earlier(id)``
    gives the build a retry retried (None where it is gone, pruned: what is left counts)."""
    attempt = 1
    while build.retry_of is not None:
        previous = earlier(build.retry_of)
        if previous is None:
            break
        build = previous
        attempt += 1
    return attempt


def retry_attempt(
    build: Build, policy: RetryPolicy | None, earlier: Callable[[int], Build | None]
) -> int | None:
    """The number of the retry a failed ``build`` earns by its job's ``retries`` (1 for the
    first, see :func:`attempt_of`), or None: no policy, or no attempt left."""
    if policy is None:
        return None
    attempt = attempt_of(build, earlier)
    return attempt if attempt <= policy.count else None
