"""doit: tasks from a dict of task creators, state in its ``sqlite3`` dep-file backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks import tasks
from benchmarks.common import Timer, require, result


def _value(func: Any, arg: int) -> dict[str, int]:
    return {"value": func(arg)}  # a python-action's dict is saved in doit's "values"


def _import_doit() -> None:
    """Import doit before the clock starts, as every tool's modules are (start-up is
    workload 5's): about 40 ms here."""
    require("doit")
    import doit.cmd_base
    import doit.doit_cmd  # noqa: F401


def _run(workdir: Path, creators: dict[str, Any]) -> None:
    from doit.cmd_base import ModuleTaskLoader
    from doit.doit_cmd import DoitMain

    dep_file = str(workdir / "doit.sqlite3")
    namespace = {**creators, "DOIT_CONFIG": {
        "backend": "sqlite3", "dep_file": dep_file, "verbosity": 0, "reporter": "zero"}}
    code = DoitMain(ModuleTaskLoader(namespace)).run(["run"])
    if code != 0:
        raise RuntimeError(f"doit exited {code}")


def independent(workdir: Path, jobs: int) -> dict[str, Any]:
    """Workload 1: one task per job."""
    def task_noop() -> Any:
        for n in range(jobs):
            yield {"name": str(n), "actions": [(_value, [tasks.noop, n])]}

    _import_doit()
    timer = Timer()
    with timer():
        _run(workdir, {"task_noop": task_noop})
    return result(timer.seconds, jobs)


def chain(workdir: Path, jobs: int) -> dict[str, Any]:
    """Workload 2: each task gets its parent's value with ``getargs``."""
    def step(prev: int = 0) -> dict[str, int]:
        return {"value": tasks.step(prev)}

    def task_step() -> Any:
        yield {"name": "0", "actions": [(step, [0])]}
        for n in range(1, jobs):
            yield {"name": str(n), "actions": [step],
                   "getargs": {"prev": (f"step:{n - 1}", "value")}}

    _import_doit()
    timer = Timer()
    with timer():
        _run(workdir, {"task_step": task_step})
    return result(timer.seconds, jobs)
