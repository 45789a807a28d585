"""The Celery app of the benchmarks: Redis broker and result backend (``$BENCH_CELERY_URL``),
tasks sent to the queue ``$BENCH_CELERY_QUEUE`` (a run's own: runs may share the database)."""

from __future__ import annotations

import os

from celery import Celery

from benchmarks import tasks

URL = os.environ.get("BENCH_CELERY_URL", "redis://127.0.0.1:6379/14")
app = Celery("bench", broker=URL, backend=URL)
app.conf.update(worker_prefetch_multiplier=4, broker_connection_retry_on_startup=True,
                task_default_queue=os.environ.get("BENCH_CELERY_QUEUE", "celery"))


@app.task(name="bench.noop")
def noop(n: int) -> int:
    return tasks.noop(n)


@app.task(name="bench.step")
def step(prev: int) -> int:
    return tasks.step(prev)
