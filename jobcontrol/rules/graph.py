"""The dependency graph of jobs: order, closures, cycles.

Pure functions over ``{job_id: dependencies}``; no storage, no config parsing. Every walk is
iterative, with a stack of its own: a chain of jobs may be far deeper than Python's
recursion limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

Dependencies = Mapping[str, Sequence[str]]


def find_cycle(deps: Dependencies) -> list[str] | None:
    """A dependency cycle as ``[a, b, ..., a]`` (a depends on b ...), or None.

    Dependencies naming unknown jobs are ignored here (the config reports them).
    """
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(deps, white)
    for root in deps:
        if color[root] != white:
            continue
        # depth first: ``path`` the grey jobs from root, ``todo`` the dependencies each
        # has left to look at
        color[root] = grey
        path = [root]
        todo = [iter(deps[root])]
        while todo:
            for dep in todo[-1]:
                if color.get(dep) == grey:
                    return [*path[path.index(dep):], dep]
                if color.get(dep) == white:
                    color[dep] = grey
                    path.append(dep)
                    todo.append(iter(deps[dep]))
                    break
            else:  # every dependency done
                color[path.pop()] = black
                todo.pop()
    return None


def topological_order(deps: Dependencies, only: Iterable[str] | None = None) -> list[str]:
    """Jobs ordered so every job comes after its dependencies.

    Ties keep the definition order of ``deps``. With ``only``, just those jobs (in an order
    valid for the whole graph). The graph must be acyclic (the config guarantees it).
    """
    order: list[str] = []
    seen: set[str] = set()
    for root in deps:
        if root in seen:
            continue
        seen.add(root)
        # depth first, post-order: a job goes in once every dependency has
        todo = [(root, iter(deps.get(root, ())))]
        while todo:
            node, pending = todo[-1]
            for dep in pending:
                if dep not in seen:
                    seen.add(dep)
                    todo.append((dep, iter(deps.get(dep, ()))))
                    break
            else:
                todo.pop()
                order.append(node)
    if only is None:
        return order
    wanted = set(only)
    return [job for job in order if job in wanted]


def upstream(deps: Dependencies, job_id: str) -> set[str]:
    """Every job that ``job_id`` depends on, directly or not (``job_id`` excluded)."""
    found: set[str] = set()
    todo = list(deps.get(job_id, ()))
    while todo:
        node = todo.pop()
        if node not in found:
            found.add(node)
            todo.extend(deps.get(node, ()))
    return found


def dependents_map(deps: Dependencies) -> dict[str, list[str]]:
    """``{job_id: [jobs that depend on it directly]}``, in definition order."""
    result: dict[str, list[str]] = {job: [] for job in deps}
    for job, job_deps in deps.items():
        for dep in job_deps:
            result.setdefault(dep, []).append(job)
    return result


def downstream(deps: Dependencies, job_id: str) -> set[str]:
    """Every job that depends on ``job_id``, directly or not (``job_id`` excluded)."""
    reverse = dependents_map(deps)
    found: set[str] = set()
    todo = list(reverse.get(job_id, ()))
    while todo:
        node = todo.pop()
        if node not in found:
            found.add(node)
            todo.extend(reverse.get(node, ()))
    return found
