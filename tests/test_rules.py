"""The build rules of :mod:`jobcontrol.rules`, each written once, on plain values."""

from __future__ import annotations

import pytest

from jobcontrol.errors import DependencyError
from jobcontrol.fingerprints import CodeVersion
from jobcontrol.models import Build, BuildState, JobSummary
from jobcontrol.rules import plan
from jobcontrol.rules.outdated import NowOf, RunVerdicts, outdated_jobs
from jobcontrol.rules.versions import JobNow

DEPS = {"a": [], "b": ["a"], "c": ["a", "b"], "d": ["c"]}


def success(build_id: int, job_id: str, consumed: dict[str, int] | None = None,
            definition_hash: str = "h") -> Build:
    return Build(build_id, job_id, BuildState.SUCCESS, definition_hash=definition_hash,
                 dependency_builds=consumed or {})


def summaries() -> dict[str, JobSummary]:
    """a built twice (b consumed the first), b and c built once, d never."""
    return {"a": JobSummary("a", last_success=success(5, "a")),
            "b": JobSummary("b", last_success=success(2, "b", {"a": 1})),
            "c": JobSummary("c", last_success=success(3, "c", {"a": 5, "b": 2}, "old"))}


def test_a_build_consumes_what_was_made_for_it_else_the_latest_success() -> None:
    assert plan.consumed_builds("c", DEPS["c"], summaries()) == {"a": 5, "b": 2}
    assert plan.consumed_builds("c", DEPS["c"], summaries(), {"b": 9}) == {"a": 5, "b": 9}
    with pytest.raises(DependencyError) as caught:
        plan.consumed_builds("d", ["c", "x", "y"], summaries(), {"y": 9})
    assert caught.value.missing == ("x",)
    assert plan.unmet_dependencies(["c", "x", "y"], summaries(), planned={"y"}) == ["x"]


def test_attempts_count_back_along_the_retries_while_they_last() -> None:
    builds = {1: Build(1, "a", BuildState.FAILED),
              2: Build(2, "a", BuildState.FAILED, retry_of=1),
              3: Build(3, "a", BuildState.FAILED, retry_of=2)}
    assert [plan.attempt_of(builds[n], builds.get) for n in (1, 2, 3)] == [1, 2, 3]
    assert plan.attempt_of(builds[3], {3: builds[3], 2: builds[2]}.get) == 2  # 1 pruned


def now_of(hashes: dict[str, str]) -> NowOf:
    """Each job as it is now: its definition hash from ``hashes``, no code read."""
    return lambda job, _last: JobNow(hashes[job], f"jobs.{job}", CodeVersion("1", "code_version"))


def test_verdicts_kept_over_a_run_agree_with_judging_every_job_at_once() -> None:
    hashes = {"a": "h", "b": "h", "c": "new", "d": "h"}
    expected = outdated_jobs(DEPS, now_of(hashes), summaries())
    verdicts = RunVerdicts(DEPS, now_of(hashes))
    for job_id in ("d", "b", "c", "a"):
        wanted = verdicts.needed(job_id, judge=True)
        verdicts.take(wanted, {job: s for job, s in summaries().items() if job in wanted})
        assert verdicts.verdict(job_id) == expected[job_id]
    assert expected["b"].reasons == ("dependency a has a newer build (5; this job used "
                                     "build 1)",)
    verdicts.built("a")  # a new build of a: what was judged on its summary goes
    assert verdicts.needed("d", judge=True) >= {"a", "d", "c"}
