"""Celery: a warm worker (prefork, concurrency 1), Redis broker and result backend."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from benchmarks.common import Timer, Worker, redis_url, require, result, unique_name

DB = 14


def _worker(workdir: Path, url: str) -> Worker:
    log = str(workdir / "celery-worker.log")
    return Worker(workdir, "celery", [
        "-m", "celery", "-A", "benchmarks.peers.celery_app", "worker", "-c", "1",
        "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "INFO",
        "--logfile", log], env={"BENCH_CELERY_URL": url,
                                "BENCH_CELERY_QUEUE": os.environ["BENCH_CELERY_QUEUE"]})


def _app(url: str) -> Any:
    require("celery")
    require("redis")
    os.environ["BENCH_CELERY_URL"] = url
    os.environ["BENCH_CELERY_QUEUE"] = unique_name("bench")  # this run's queue alone
    from benchmarks.peers import celery_app

    return celery_app


def independent(workdir: Path, jobs: int) -> dict[str, Any]:
    """Workload 1: ``apply_async`` each task, then wait for every result."""
    url = redis_url(DB)
    app = _app(url)
    timer = Timer()
    with _worker(workdir, url):
        app.noop.delay(-1).get(timeout=60)  # warm
        with timer():
            pending = [app.noop.delay(n) for n in range(jobs)]
            values = [r.get(timeout=600) for r in pending]
    assert values == list(range(jobs))
    return result(timer.seconds, jobs)


def chain(workdir: Path, jobs: int) -> dict[str, Any]:
    """Workload 2: ``chain(step.s(0), step.s(), ...)``."""
    from benchmarks.common import require as _require

    url = redis_url(DB)
    app = _app(url)
    celery = _require("celery")
    timer = Timer()
    with _worker(workdir, url):
        app.noop.delay(-1).get(timeout=60)
        with timer():
            last = celery.chain(app.step.s(0), *[app.step.s() for _ in range(jobs - 1)])()
            value = last.get(timeout=600)
    assert value == jobs, value
    return result(timer.seconds, jobs)
