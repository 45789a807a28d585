"""Deep graphs: every walk of the dependency graph is iterative, so a chain of 10,000 jobs
(written dependents first, the deepest order for a depth-first walk) checks, plans, shows its
status and builds, through real ``jobcontrol`` processes; a cycle deep in such a graph is
still spelled out."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from jobcontrol.models import BuildState, JobSummary
from jobcontrol.rules import graph, outdated
from tests.processes import Project
from tests.support import make_project

#: deeper than Python's recursion limit, many times over
DEPTH = 10_000
LAST = f"j{DEPTH - 1}"


def chain(depth: int) -> dict[str, list[str]]:
    """``j{depth-1} -> ... -> j1 -> j0``, dependents first."""
    return {f"j{i}": [f"j{i - 1}"] if i else [] for i in reversed(range(depth))}


def chain_yaml(depth: int, extra: str = "") -> str:
    lines = ["defaults: {isolation: inline}", "jobs:"]
    for job, deps in chain(depth).items():
        needs = f", dependencies: [{deps[0]}]" if deps else ""
        lines.append(f"  - {{id: {job}, function: jobfuncs.noop{needs}}}")
    return "\n".join(lines) + "\n" + extra


def test_every_graph_walk_takes_a_chain_deeper_than_the_recursion_limit() -> None:
    deps = chain(DEPTH)
    assert DEPTH > sys.getrecursionlimit()
    assert graph.find_cycle(deps) is None
    order = graph.topological_order(deps)
    assert order == [f"j{i}" for i in range(DEPTH)]
    assert graph.topological_order(deps, only={"j5", "j2", LAST}) == ["j2", "j5", LAST]
    assert len(graph.upstream(deps, LAST)) == DEPTH - 1
    assert len(graph.downstream(deps, "j0")) == DEPTH - 1
    verdicts = outdated.outdated_jobs(deps, lambda job, last: None, {})
    assert all(v.never_built for v in verdicts.values())
    built = {job: JobSummary(job) for job in deps}  # built, never successfully
    assert verdicts == outdated.outdated_jobs(deps, lambda job, last: None, built)


def test_a_cycle_through_a_deep_chain_is_spelled_out() -> None:
    deps = chain(DEPTH)
    deps["j0"] = [LAST]  # the whole chain is one cycle
    cycle = graph.find_cycle(deps)
    assert cycle == [*(f"j{i}" for i in reversed(range(DEPTH))), LAST]
    deps = {**chain(DEPTH), "j0": ["x"], "x": ["y"], "y": ["j0"]}
    assert graph.find_cycle(deps) == ["j0", "x", "y", "j0"]
    assert graph.find_cycle({"a": ["b"], "b": ["c"], "c": ["a"], "d": []}) == ["a", "b", "c", "a"]


#: how deep a chain each storage builds in the test: all of it on SQLite (8 s on 2 cores);
#: on PostgreSQL, where a build costs a few round trips to the server (10,000 took 64 s),
#: a part still far deeper than the recursion limit
BUILT = {"sqlite": DEPTH, "postgresql": 1_500}


@pytest.fixture(params=list(BUILT))
def deep(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Project, int]:
    return Project.on(request, tmp_path, chain_yaml(DEPTH)), BUILT[request.param]


def test_a_10000_job_chain_checks_plans_and_builds(deep: tuple[Project, int]) -> None:
    project, built = deep
    code, out, err = project.run("check")
    assert code == 0, err
    code, out, err = project.run("build", LAST, "--deps", "--dry-run")
    assert code == 0, err
    assert out.count("never built successfully") == DEPTH, out[-2000:]
    code, out, err = project.run("status", "--format", "json")
    assert code == 0, err
    rows = json.loads(out)
    assert [row["job"] for row in rows] == list(chain(DEPTH))
    assert all(row["outdated"] for row in rows)
    target = f"j{built - 1}"
    code, out, err = project.run("build", target, "--deps")
    assert code == 0, err[-2000:]
    code, out, err = project.run("builds", "--format", "json", "--limit", str(DEPTH + 1))
    assert code == 0, err
    builds = json.loads(out)
    assert {b["state"] for b in builds} == {BuildState.SUCCESS.value}
    # newest first: j0 was built first
    assert [b["job"] for b in builds] == [f"j{i}" for i in reversed(range(built))]
    code, out, err = project.run("status", target, "--format", "json")
    assert code == 0, err
    [row] = json.loads(out)
    assert row["outdated"] is False and row["last_state"] == "success"


def test_a_cycle_deep_in_a_config_is_reported_by_check(tmp_path: Path) -> None:
    text = chain_yaml(DEPTH).replace("  - {id: j0, function: jobfuncs.noop}",
                                     "  - {id: j0, function: jobfuncs.noop, dependencies: [x]}")
    text += ("  - {id: x, function: jobfuncs.noop, dependencies: [y]}\n"
             "  - {id: y, function: jobfuncs.noop, dependencies: [j0]}\n")
    project = Project(make_project(tmp_path / "project", text), None)
    code, out, err = project.run("check")
    assert code == 2, out + err
    assert "dependency cycle: j0 -> x -> y -> j0" in err
