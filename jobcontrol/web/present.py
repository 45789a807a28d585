"""What the pages show, computed from the library's values: progress rows, graph layout,
durations. No Flask here; the templates render these."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from markupsafe import Markup

from jobcontrol.errors import JobImportError
from jobcontrol.models import Build, BuildMark, ProgressItem
from jobcontrol.progress_report import progress_tree
from jobcontrol.rules import graph as graphs
from jobcontrol.serialize import Opaque, to_jsonable

if TYPE_CHECKING:
    from jobcontrol.core import JobControl, JobStatus


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


def import_errors(jc: JobControl, statuses: Sequence[JobStatus]) -> dict[str, str]:
    """The shown jobs whose function does not import, with the one-line error: flagged on
    the jobs list before anyone presses Run. (An import that worked is kept by the
    JobControl; one that failed is tried again on the next look, so a fix shows at once.)"""
    failures = {}
    for status in statuses:
        try:
            jc.import_function(status.job.id)
        except JobImportError as error:
            failures[status.job.id] = str(error)
    return failures


def history_strip(marks: Sequence[BuildMark], build_url: str) -> Markup:
    """A job's recent builds (oldest first) as the jobs page's strip: a link a build to
    ``build_url`` + its id, classed by its state, titled (and so named) by id and state.

    Written here rather than in a template: the page draws some 2,000 of them, and a macro
    call with ``url_for`` each made the page five times slower (a time in each title would
    double it again: the build's page has it).
    """
    links = "".join(
        f'<a class="mark state-{b.state.value}" href="{build_url}{b.id}" '
        f'title="#{b.id} {b.state.value}"></a>' for b in marks)
    return Markup(f'<span class="strip" aria-label="recent builds, oldest first">{links}'
                  f'</span>')


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
#: space around the drawing; the top one holds the gap line above each column's first node
MARGIN = GAP_Y


def layered_layout(dependencies: Mapping[str, Sequence[str]],
                   css: Mapping[str, str] | None = None, *, current: str | None = None
                   ) -> Drawing:
    """Place each job in the column of its longest chain of dependencies, keeping file order
    within a column; ``css`` gives each job a class (its state), ``current`` is marked.

    Edges never cross a node: between columns they curve through the empty channel; past a
    column they skip, they run straight along the gap between two of its nodes (the gap
    nearest their course), so no arrow hides behind a job or runs over one.
    """
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
            position[job_id] = (_column_x(column), MARGIN + row * (NODE_HEIGHT + GAP_Y))
    nodes = [Node(job_id, *position[job_id],
                  " ".join(c for c in ((css or {}).get(job_id, ""),
                                       "current" if job_id == current else "") if c))
             for job_id in dependencies]
    edges = [Edge(_route(position[dep], position[job_id], layer[dep], layer[job_id],
                         columns))
             for job_id, deps in dependencies.items() for dep in deps if dep in position]
    width = _column_x(max(columns, default=0) + 1) - GAP_X + MARGIN
    height = MARGIN + max((len(m) for m in columns.values()), default=1) * (NODE_HEIGHT + GAP_Y)
    return Drawing(nodes, edges, width, height)


def _column_x(column: int) -> int:
    return MARGIN + column * (NODE_WIDTH + GAP_X)


def _route(source: tuple[int, int], target: tuple[int, int], source_column: int,
           target_column: int, columns: Mapping[int, Sequence[str]]) -> str:
    """The SVG path of an edge: from the right side of ``source`` to the left of
    ``target`` (room left for the arrowhead), through the columns between."""
    x, y = source[0] + NODE_WIDTH, source[1] + NODE_HEIGHT // 2
    end_x, end_y = target[0] - 6, target[1] + NODE_HEIGHT // 2
    path = [f"M{x},{y}"]
    skipped = range(source_column + 1, target_column)
    for step, column in enumerate(skipped, start=1):
        # where a straight course would cross this column, moved to the nearest gap
        course = y + (end_y - y) * step / (len(skipped) + 1)
        gaps = [MARGIN + row * (NODE_HEIGHT + GAP_Y) - GAP_Y // 2
                for row in range(len(columns.get(column, ())) + 1)]
        gap = min(gaps, key=lambda g: abs(g - course))
        left = _column_x(column)
        path.append(_curve(x, y, left, gap))
        path.append(f"L{left + NODE_WIDTH},{gap}")
        x, y = left + NODE_WIDTH, gap
    path.append(_curve(x, y, end_x, end_y))
    return " ".join(path)


def _curve(x1: int, y1: int, x2: int, y2: int) -> str:
    """A cubic curve within the channel ``x1..x2``: level at both ends."""
    middle = (x1 + x2) // 2
    return f"C{middle},{y1} {middle},{y2} {x2},{y2}"


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
