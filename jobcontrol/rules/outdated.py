"""Why a job is outdated: the rules, and a human reason for each hit.

Pure functions over ``{job_id: dependencies}``, definition hashes and the storage's
:class:`~jobcontrol.models.JobSummary` of each job; a caller that keeps verdicts (the
orchestrator, over one run) asks :func:`outdated_job` one job at a time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from jobcontrol.models import JobSummary
from jobcontrol.rules.graph import Dependencies, topological_order


@dataclass(frozen=True)
class Outdated:
    """Whether a job needs building, and every reason why (empty when up to date)."""

    job_id: str
    reasons: tuple[str, ...]

    @property
    def outdated(self) -> bool:
        return bool(self.reasons)

    @property
    def never_built(self) -> bool:
        return any(reason == NEVER_BUILT for reason in self.reasons)


NEVER_BUILT = "never built successfully"


def outdated_jobs(
    deps: Dependencies,
    definition_hashes: Mapping[str, str],
    summaries: Mapping[str, JobSummary],
) -> dict[str, Outdated]:
    """Apply the four outdated rules to every job, with a human reason for each hit.

    1. never built successfully (no ``success`` build);
    2. a dependency has a newer ``success`` build than the one its latest success consumed;
    3. a dependency is itself outdated (upstream);
    4. its definition (function, args, kwargs) changed since its latest success.

    Only ``success`` is a success: a ``skipped`` build is neither the job's latest success
    nor consumed by dependents, so it never makes the job up to date or its dependents
    outdated.
    """
    result: dict[str, Outdated] = {}
    for job in topological_order(deps):
        result[job] = outdated_job(job, deps[job], definition_hashes.get(job), summaries,
                                   result)
    return result


def outdated_job(
    job: str,
    job_deps: Sequence[str],
    definition_hash: str | None,
    summaries: Mapping[str, JobSummary],
    verdicts: Mapping[str, Outdated],
) -> Outdated:
    """The rules of :func:`outdated_jobs` for one job, given the verdicts of its direct
    dependencies (``verdicts``) and the summaries of the job and of those dependencies: a
    caller that keeps verdicts judges a job in a chain at a constant cost, not its depth."""
    summary = summaries.get(job)
    last_success = summary.last_success if summary else None
    reasons: list[str] = []
    if last_success is None:
        reasons.append(NEVER_BUILT)
    else:
        consumed = last_success.dependency_builds
        for dep in job_deps:
            dep_summary = summaries.get(dep)
            newest = dep_summary.last_output_id if dep_summary else None
            used = consumed.get(dep)
            if newest is not None and (used is None or newest > used):
                was = f"build {used}" if used is not None else "none"
                reasons.append(
                    f"dependency {dep} has a newer build ({newest}; this job used {was})"
                )
        if definition_hash is not None and last_success.definition_hash != definition_hash:
            reasons.append(f"definition changed since build {last_success.id}")
    for dep in job_deps:
        if verdicts[dep].outdated:
            reasons.append(f"dependency {dep} is outdated")
    return Outdated(job, tuple(reasons))
