"""Huey: SqliteHuey, in immediate mode (in process) or with a warm consumer."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import Timer, Worker, require, result, wait_until


def _app(workdir: Path, immediate: bool) -> Any:
    require("huey")
    os.environ["BENCH_HUEY_DB"] = str(workdir / "huey.db")
    os.environ["BENCH_HUEY_IMMEDIATE"] = "1" if immediate else "0"
    if immediate:
        os.environ["BENCH_LOG_FILE"] = str(workdir / "jobs.log")
    sys.modules.pop("benchmarks.peers.huey_app", None)
    sys.modules.pop("benchmarks.tasks", None)  # picks up BENCH_LOG_FILE
    return importlib.import_module("benchmarks.peers.huey_app")


def _consumer(workdir: Path) -> Worker:
    # polling starts at 10 ms and backs off to 100 ms at most (defaults: 100 ms, 10 s)
    return Worker(workdir, "huey", ["-m", "huey.bin.huey_consumer",
                                    "benchmarks.peers.huey_app.huey", "-w", "1",
                                    "-d", "0.01", "-m", "0.1", "-b", "1.15"],
                  env={"BENCH_HUEY_DB": str(workdir / "huey.db"), "BENCH_HUEY_IMMEDIATE": "0"})


def independent(workdir: Path, jobs: int, immediate: bool) -> dict[str, Any]:
    """Workload 1: enqueue every task, wait until every result is stored."""
    app = _app(workdir, immediate)
    timer = Timer()
    if immediate:
        with timer():
            for n in range(jobs):
                app.noop(n)
    else:
        with _consumer(workdir) as worker:
            app.noop(-1).get(blocking=True, timeout=60)  # warm: the consumer is ready
            with timer():
                for n in range(jobs):
                    app.noop(n)
                wait_until(lambda: worker.check() or app.huey.result_count() >= jobs, 600,
                           "huey results")
    assert app.huey.result_count() == jobs
    return result(timer.seconds, jobs)


def chain(workdir: Path, jobs: int, immediate: bool) -> dict[str, Any]:
    """Workload 2: a pipeline, each task getting its parent's result."""
    app = _app(workdir, immediate)
    timer = Timer()

    def run() -> int:
        pipeline = app.step.s(0)
        for _ in range(jobs - 1):
            pipeline = pipeline.then(app.step)
        return app.huey.enqueue(pipeline).get(blocking=True, timeout=600)[-1]

    if immediate:
        with timer():
            last = run()
    else:
        with _consumer(workdir):
            app.noop(-1).get(blocking=True, timeout=60)
            with timer():
                last = run()
    assert last == jobs, last
    return result(timer.seconds, jobs)
