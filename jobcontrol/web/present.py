"""What the pages show, computed from the library's values: progress rows, graph layout,
durations. No Flask here; the templates render these."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jobcontrol.models import Build, ProgressItem
from jobcontrol.progress_report import progress_tree
from jobcontrol.rules import graph as graphs
from jobcontrol.serialize import Opaque, to_jsonable

if TYPE_CHECKING:
    from jobcontrol.core import JobControl


@dataclass(frozen=True)
class ProgressRow:
    """One bar of a build's progress tree."""

    depth: int
    name: str
    current: float
    total: float | None
    percent: int | None
    message: str | None


def progress_rows(items: Sequence[ProgressItem]) -> list[ProgressRow]:
    """The progress tree, depth first, as rows of bars; the root row is the whole build."""
    if not items:
        return []
    rows = []
    for depth, node in progress_tree(items).walk():
        fraction = node.fraction
        rows.append(ProgressRow(
            depth=depth,
            name=node.name or "build",
            current=node.current,
            total=node.total,
            percent=None if fraction is None else round(fraction * 100),
            message=node.message,
        ))
    return rows


def overall_percent(items: Sequence[ProgressItem]) -> int | None:
    """The build's whole progress in percent (the tree's root), None when unknown."""
    if not items:
        return None
    fraction = progress_tree(items).fraction
    return None if fraction is None else round(fraction * 100)


def retval_text(build: Build) -> tuple[str | None, str | None]:
    """The return value as text to show, and a note on its kind (None, "repr", "pickle")."""
    if build.result is None:
        return None, None
    value = build.retval
    if isinstance(value, Opaque):
        return value.text, build.result.kind
    return json.dumps(to_jsonable(value), indent=2, ensure_ascii=False), None


@dataclass(frozen=True)
class Node:
    """A job placed on the graph drawing."""

    job_id: str
    x: int
    y: int
    css: str


@dataclass(frozen=True)
class Edge:
    """An arrow from a dependency to a job that needs it, as an SVG path."""

    path: str


@dataclass(frozen=True)
class Drawing:
    """A layered drawing of the dependency graph: dependencies left of what needs them."""

    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int


NODE_WIDTH, NODE_HEIGHT, GAP_X, GAP_Y = 170, 34, 60, 16


def layered_layout(dependencies: Mapping[str, Sequence[str]],
                   css: Mapping[str, str] | None = None) -> Drawing:
    """Place each job in the column of its longest chain of dependencies, keeping file order
    within a column; ``css`` gives each job a class (its state)."""
    order = graphs.topological_order(dict(dependencies))
    layer: dict[str, int] = {}
    for job_id in order:
        layer[job_id] = 1 + max((layer[d] for d in dependencies[job_id] if d in layer),
                                default=-1)
    columns: dict[int, list[str]] = {}
    for job_id in dependencies:  # file order within a column
        columns.setdefault(layer[job_id], []).append(job_id)
    position = {}
    for column, members in columns.items():
        for row, job_id in enumerate(members):
            position[job_id] = (column * (NODE_WIDTH + GAP_X) + 4,
                                row * (NODE_HEIGHT + GAP_Y) + 4)
    nodes = [Node(job_id, *position[job_id], (css or {}).get(job_id, ""))
             for job_id in dependencies]
    edges = []
    for job_id, deps in dependencies.items():
        for dep in deps:
            if dep not in position:
                continue
            x1, y1 = position[dep][0] + NODE_WIDTH, position[dep][1] + NODE_HEIGHT // 2
            x2, y2 = position[job_id][0], position[job_id][1] + NODE_HEIGHT // 2
            middle = (x1 + x2) // 2
            edges.append(Edge(f"M{x1},{y1} C{middle},{y1} {middle},{y2} {x2 - 6},{y2}"))
    width = (max(columns, default=0) + 1) * (NODE_WIDTH + GAP_X) - GAP_X + 8
    height = max((len(m) for m in columns.values()), default=1) * (NODE_HEIGHT + GAP_Y) + 8
    return Drawing(nodes, edges, width, height)


def neighbourhood(dependencies: Mapping[str, Sequence[str]], job_id: str
                  ) -> dict[str, tuple[str, ...]]:
    """The part of the graph around ``job_id``: it, everything upstream and downstream."""
    deps = dict(dependencies)
    wanted = {job_id} | graphs.upstream(deps, job_id) | graphs.downstream(deps, job_id)
    return {j: tuple(d for d in deps[j] if d in wanted) for j in deps if j in wanted}


def retry_chain(jc: JobControl, build: Build, *, look_ahead: int = 50
                ) -> tuple[list[int], list[int]]:
    """The builds this one retries (oldest first) and those that retry it, as ids.

    Backwards follows ``retry_of``; forwards looks among the job's ``look_ahead`` newest
    builds (retries come right after the build they retry).
    """
    from jobcontrol.errors import BuildNotFoundError

    before: list[int] = []
    current = build
    while current.retry_of is not None and len(before) < look_ahead:
        before.insert(0, current.retry_of)
        try:
            current = jc.storage.get_build(current.retry_of)
        except BuildNotFoundError:  # pruned: the chain stops here
            break
    newer = {b.id: b for b in jc.storage.list_builds(build.job_id, limit=look_ahead)
             if b.id > build.id}
    after: list[int] = []
    wanted = build.id
    for candidate in sorted(newer):
        if newer[candidate].retry_of == wanted:
            after.append(candidate)
            wanted = candidate
    return before, after
