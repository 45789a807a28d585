"""The Huey app of the benchmarks: SqliteHuey on ``$BENCH_HUEY_DB``, results kept in it."""

from __future__ import annotations

import os

from huey import SqliteHuey

from benchmarks import tasks

huey = SqliteHuey(
    "bench", filename=os.environ.get("BENCH_HUEY_DB", "huey.db"),
    immediate=os.environ.get("BENCH_HUEY_IMMEDIATE") == "1",
    immediate_use_memory=False,  # immediate mode still writes results to the SQLite file
)


@huey.task()
def noop(n: int) -> int:
    return tasks.noop(n)


@huey.task()
def step(prev: int) -> int:
    return tasks.step(prev)
