"""Procrastinate: a warm worker (concurrency 1) on its PostgreSQL schema."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from benchmarks.common import Timer, Worker, fresh_postgresql_db, require, result, wait_until

DB = "procrastinate_bench"


def independent(workdir: Path, jobs: int) -> dict[str, Any]:
    """Workload 1: defer each job, wait until all have succeeded."""
    require("procrastinate")
    psycopg2 = require("psycopg2", "psycopg2-binary")
    url = fresh_postgresql_db(DB)
    os.environ["BENCH_PROCRASTINATE_URL"] = url
    from benchmarks.peers.procrastinate_app import app, noop

    conn = psycopg2.connect(url)
    conn.autocommit = True

    def succeeded() -> int:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'")
            return int(cur.fetchone()[0])

    with app.open():
        app.schema_manager.apply_schema()
        with Worker(workdir, "procrastinate", [
                "-m", "procrastinate", "--app", "benchmarks.peers.procrastinate_app.app",
                "worker", "-c", "1"], env={"BENCH_PROCRASTINATE_URL": url}) as worker:
            noop.defer(n=-1)
            wait_until(lambda: worker.check() or succeeded() == 1, 60, "warm-up", pause=0.01)
            timer = Timer()
            with timer():
                for n in range(jobs):
                    noop.defer(n=n)
                wait_until(lambda: worker.check() or succeeded() == jobs + 1, 600,
                           "procrastinate jobs", pause=0.005)
    conn.close()
    return result(timer.seconds, jobs)
