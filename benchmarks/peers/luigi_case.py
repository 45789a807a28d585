"""Luigi: tasks on the local scheduler, one worker; each task's output is a file holding
its return value (what Luigi checks to call a task complete)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from benchmarks.common import Timer, require, result


def _classes(root: Path) -> tuple[Any, Any]:
    luigi = require("luigi")
    from benchmarks import tasks

    class Noop(luigi.Task):  # type: ignore[misc]
        n = luigi.IntParameter()

        def output(self) -> Any:
            return luigi.LocalTarget(str(root / f"noop-{self.n}"))

        def run(self) -> None:
            with self.output().open("w") as out:
                out.write(str(tasks.noop(self.n)))

    class Step(luigi.Task):  # type: ignore[misc]
        n = luigi.IntParameter()

        def requires(self) -> Any:
            return Step(n=self.n - 1) if self.n > 0 else []

        def output(self) -> Any:
            return luigi.LocalTarget(str(root / f"step-{self.n}"))

        def run(self) -> None:
            prev = 0
            if self.n > 0:
                with self.input().open() as parent:
                    prev = int(parent.read())
            with self.output().open("w") as out:
                out.write(str(tasks.step(prev)))

    return Noop, Step


def _build(tasks: list[Any]) -> None:
    import luigi

    ok = luigi.build(tasks, local_scheduler=True, workers=1, log_level="WARNING",
                     detailed_summary=False)
    if not ok:
        raise RuntimeError("luigi build failed")


def independent(workdir: Path, jobs: int) -> dict[str, Any]:
    """Workload 1."""
    os.environ["BENCH_LOG_FILE"] = str(workdir / "jobs.log")
    noop, _ = _classes(workdir)
    timer = Timer()
    with timer():
        _build([noop(n=n) for n in range(jobs)])
    assert len(list(workdir.glob("noop-*"))) == jobs
    return result(timer.seconds, jobs)


def chain(workdir: Path, jobs: int) -> dict[str, Any]:
    """Workload 2: the last task ``requires`` its parent, and so on up."""
    _, step = _classes(workdir)
    timer = Timer()
    with timer():
        _build([step(n=jobs - 1)])
    assert (workdir / f"step-{jobs - 1}").read_text() == str(jobs)
    return result(timer.seconds, jobs)
