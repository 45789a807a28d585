"""The floors jobcontrol is measured against: the same writes with nothing else around them,
a bare fork per job, and a plain ``logging.FileHandler``."""

from __future__ import annotations

import logging
import os
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks import tasks
from benchmarks.common import Timer, fresh_postgresql_db, require, result
from benchmarks.jc_cases import BENCH_DB


class Collect(logging.Handler):
    """Keeps the job's records in a list, as a runner would before writing them."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _loop(cur: Any, commit: Any, jobs: int, ph: str, begin: str | None) -> None:
    """Per job: commit the build as running; run it; commit its 2 log lines and outcome.
    Two commits a build is the least a tracker can do and still show a running build."""
    root = logging.getLogger()
    handler = Collect()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    insert_build = (f"INSERT INTO builds (job_id, state, created, started, heartbeat, host, pid)"
                    f" VALUES ({ph}, 'running', {ph}, {ph}, {ph}, 'bench', {ph})")
    insert_log = (f"INSERT INTO logs (build_id, seq, time, level, logger, message) "
                  f"VALUES ({ph}, {ph}, {ph}, {ph}, {ph}, {ph})")
    finish = (f"UPDATE builds SET state = 'success', finished = {ph}, result_kind = 'json', "
              f"result_data = {ph} WHERE id = {ph}")
    returning = " RETURNING id"
    for n in range(jobs):
        now = _now()
        if begin:
            cur.execute(begin)
        cur.execute(insert_build + returning, (f"noop_{n}", now, now, now, os.getpid()))
        build_id = cur.fetchone()[0]
        commit()
        handler.records.clear()
        value = tasks.noop(n)
        if begin:
            cur.execute(begin)
        cur.executemany(insert_log, [
            (build_id, seq, _now(), r.levelno, r.name, r.getMessage())
            for seq, r in enumerate(handler.records, 1)])
        cur.execute(finish, (_now(), str(value), build_id))
        commit()
    root.removeHandler(handler)


def sqlite_loop(workdir: Path, jobs: int) -> dict[str, Any]:
    """Workload 1's floor on SQLite: the same rows in jobcontrol's schema, same pragmas
    (WAL, ``synchronous=NORMAL``), from a bare loop."""
    from jobcontrol.storage import open_storage

    path = workdir / "bare.db"
    with open_storage(f"sqlite:///{path}") as storage:
        storage.install()
    timer = Timer()
    with timer():
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        cur = conn.cursor()
        _loop(cur, lambda: cur.execute("COMMIT"), jobs, "?", "BEGIN IMMEDIATE")
        conn.close()
    return result(timer.seconds, jobs)


def postgresql_loop(workdir: Path, jobs: int) -> dict[str, Any]:
    """Workload 1's floor on PostgreSQL: the same two commits a build, psycopg2."""
    psycopg2 = require("psycopg2", "psycopg2-binary")
    from jobcontrol.storage import open_storage

    url = fresh_postgresql_db(BENCH_DB)
    with open_storage(url) as storage:
        storage.install()
    timer = Timer()
    with timer():
        conn = psycopg2.connect(url)
        _loop(conn.cursor(), conn.commit, jobs, "%s", None)  # psycopg2 begins by itself
        conn.close()
    return result(timer.seconds, jobs)


def fork_loop(workdir: Path, jobs: int) -> dict[str, Any]:
    """Process isolation's floor: ``os.fork()`` a child that runs the job, wait for it."""
    timer = Timer()
    with timer():
        for n in range(jobs):
            pid = os.fork()
            if pid == 0:  # the child: run the job, leave at once
                try:
                    tasks.noop(n)
                finally:
                    os._exit(0)
            os.waitpid(pid, 0)
    return result(timer.seconds, jobs)


def file_handler(workdir: Path, lines: int) -> dict[str, Any]:
    """Workload 3's floor: the same job logging to a plain ``logging.FileHandler``."""
    path = workdir / "job.log"
    root = logging.getLogger()
    timer = Timer()
    with timer():
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        tasks.many_lines(lines)
        handler.close()
        root.removeHandler(handler)
    with path.open() as f:
        stored = sum(1 for _ in f)
    assert stored == lines, stored
    return result(timer.seconds, lines, f"{lines / timer.seconds:,.0f} lines/s")
