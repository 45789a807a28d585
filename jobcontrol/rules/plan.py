"""Which jobs a ``build`` command touches, in what order, and why.

A plan is made before anything runs (``--dry-run`` prints it). While it runs, each step is
decided again against the storage as it is then (:func:`decide`): a dependency that turned
out ``skipped`` does not force its dependents to rebuild.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from jobcontrol.models import BuildState
from jobcontrol.rules import graph
from jobcontrol.rules.outdated import Outdated


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
