"""RQ: a warm worker (the default ``Worker``: a forked work horse per job) on Redis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks import tasks
from benchmarks.common import Timer, Worker, redis_url, require, result, unique_name, wait_until

DB = 13


def independent(workdir: Path, jobs: int) -> dict[str, Any]:
    """Workload 1: enqueue each job, wait until all are in the finished registry."""
    rq = require("rq")
    redis = require("redis")
    url = redis_url(DB)
    connection = redis.Redis.from_url(url)
    queue = rq.Queue(unique_name("bench"), connection=connection)  # this run's alone
    with Worker(workdir, "rq", ["-m", "rq.cli", "worker", "-u", url, "--logging_level",
                                "WARNING", queue.name]) as worker:
        warm = queue.enqueue(tasks.noop, -1)
        wait_until(lambda: worker.check() or warm.get_status() == "finished", 60, "rq warm-up",
                   pause=0.01)
        timer = Timer()
        with timer():
            enqueued = [queue.enqueue(tasks.noop, n) for n in range(jobs)]
            wait_until(lambda: worker.check() or queue.finished_job_registry.count > jobs,
                       600, "rq jobs")
    assert enqueued[-1].return_value() == jobs - 1
    return result(timer.seconds, jobs)
