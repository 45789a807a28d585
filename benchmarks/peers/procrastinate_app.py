"""The Procrastinate app of the benchmarks, on ``$BENCH_PROCRASTINATE_URL``."""

from __future__ import annotations

import os

import procrastinate

from benchmarks import tasks

app = procrastinate.App(connector=procrastinate.PsycopgConnector(
    conninfo=os.environ.get("BENCH_PROCRASTINATE_URL", "")))


@app.task(name="noop")
def noop(n: int) -> int:
    return tasks.noop(n)
