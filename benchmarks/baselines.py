"""The floors jobcontrol is measured against: the same writes with nothing else around them,
a bare fork per job, and a plain ``logging.FileHandler``."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import uuid
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


def snapshot(job_id: str, function: str, args: list[Any], kwargs: dict[str, Any],
             isolation: str) -> str:
    """A job's definition snapshot as jobcontrol stores it with each of its builds (with
    the defaults of everything workload 1 leaves out: its size matters to the writes)."""
    return json.dumps({
        "id": job_id, "function": function, "title": job_id, "args": args, "kwargs": kwargs,
        "dependencies": [], "tags": [], "timeout": None, "cleanup_function": None,
        "concurrency": 1, "isolation": isolation, "result": "json", "retries": None,
        "retention": None, "schedule": None, "max_age": None, "notify": None, "queue": None,
    }, ensure_ascii=False)


#: the snapshot the bare loops store with every build
SNAPSHOT = snapshot("noop_0", "benchmarks.tasks.noop", [], {"n": 0}, "inline")

LOGS_SQL = "INSERT INTO logs (build_id, seq, time, level, logger, message, exception) VALUES "
FINISH_SQL = ("UPDATE builds SET state = ?, reason = ?, finished = ?, result_kind = ?, "
              "result_data = ?, exc_type = ?, exc_message = ?, exc_traceback = ? "
              "WHERE id = ? AND state IN (?, ?) "
              "RETURNING heartbeat, cancel_requested, cancel_reason")
CLAIM_SQL = ("INSERT INTO builds (job_id, state, definition, definition_hash, "
             "dependency_builds, created, started, heartbeat, host, pid, retry_of, "
             "claim_token) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? "
             "WHERE (SELECT count(*) FROM builds WHERE job_id = ? AND state = ?) < ?")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def build_loop(cur: Any, commit: Any, jobs: int, ph: str = "?", begin: str | None = None,
               run_jobs: bool = True) -> None:
    """jobcontrol's writes for ``jobs`` builds, from a bare loop: per build one transaction
    with the previous build's log rows and outcome and this build's claim (jobcontrol's own
    statements), then one commit, as jobcontrol commits a run's builds; the job runs between
    (``run_jobs``), its 2 log lines kept in a list. On PostgreSQL (``ph`` ``%s``, a
    connection in autocommit mode) ``BEGIN`` and the statements go as one query, then
    ``COMMIT``: two round trips a build, as jobcontrol's."""
    root = logging.getLogger()
    handler, level = Collect(), root.level
    if run_jobs:
        root.addHandler(handler)
        root.setLevel(logging.DEBUG)
    two_logs = LOGS_SQL + ", ".join([f"({', '.join([ph] * 7)})"] * 2)
    finish, claim = FINISH_SQL.replace("?", ph), CLAIM_SQL.replace("?", ph)
    pid = os.getpid()
    previous: tuple[Any, ...] | None = None  # the last build's 2 log rows, outcome and id
    try:
        for n in range(jobs + 1):  # the last round writes the last outcome
            now = _now()
            job = f"noop_{n}"
            # a claim's token: written on PostgreSQL (to find a claim a lost connection
            # cut off), not on SQLite
            token = None if ph == "?" else uuid.uuid4().hex
            claimed = (job, "running", SNAPSHOT, "0" * 64, "{}", now, now, now, "bench", pid,
                       None, token, job, "running", 1)
            if begin:
                cur.execute(begin)
            if ph == "?":  # sqlite3: a statement a call (no round trips to save)
                if previous is not None:
                    cur.execute(two_logs, previous[:14])
                    cur.execute(finish, ("success", None, now, "json", previous[15], None, None,
                                         None, previous[14], "queued", "running"))
                    cur.fetchall()
                if n < jobs:
                    cur.execute(claim, claimed)
                build_id = cur.lastrowid
            else:
                sql: list[str] = []
                params: list[Any] = []
                if previous is not None:
                    sql += [two_logs, finish]
                    params += [*previous[:14], "success", None, now, "json", previous[15],
                               None, None, None, previous[14], "queued", "running"]
                if n < jobs:
                    sql.append(claim + " RETURNING id")
                    params += claimed
                cur.execute("; ".join(["BEGIN", *sql]), params)
                build_id = cur.fetchone()[0] if n < jobs else 0
            commit()
            if n == jobs:
                break
            if run_jobs:
                handler.records.clear()
                value = tasks.noop(n)
                first, second = handler.records
                previous = (build_id, 1, _now(), first.levelno, first.name, first.getMessage(),
                            None, build_id, 2, _now(), second.levelno, second.name,
                            second.getMessage(), None, build_id, str(value))
            else:  # the SQL alone: the rows the job would have logged
                previous = (build_id, 1, now, 20, "bench", f"job {n} started", None,
                            build_id, 2, now, 20, "bench", f"job {n} done", None,
                            build_id, str(n))
    finally:
        if run_jobs:
            root.removeHandler(handler)
            root.setLevel(level)


def sqlite_connect(path: Path) -> sqlite3.Connection:
    """A connection to ``path`` with jobcontrol's pragmas (WAL, ``synchronous=NORMAL``)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def sqlite_loop(workdir: Path, jobs: int) -> dict[str, Any]:
    """Workload 1's floor on SQLite: jobcontrol's writes in its schema, with its pragmas,
    from a bare loop (:func:`build_loop`)."""
    from jobcontrol.storage import open_storage

    path = workdir / "bare.db"
    with open_storage(f"sqlite:///{path}") as storage:
        storage.install()
    timer = Timer()
    with timer():
        conn = sqlite_connect(path)
        cur = conn.cursor()
        build_loop(cur, lambda: cur.execute("COMMIT"), jobs, "?", "BEGIN IMMEDIATE")
        conn.close()
    return result(timer.seconds, jobs)


def postgresql_loop(workdir: Path, jobs: int) -> dict[str, Any]:
    """Workload 1's floor on PostgreSQL: jobcontrol's writes and commits, psycopg2, two
    round trips a build (:func:`build_loop`)."""
    psycopg2 = require("psycopg2", "psycopg2-binary")
    from jobcontrol.storage import open_storage

    url = fresh_postgresql_db(BENCH_DB)
    with open_storage(url) as storage:
        storage.install()
    timer = Timer()
    with timer():
        conn = psycopg2.connect(url)
        conn.autocommit = True  # else psycopg2 sends BEGIN on its own: a round trip more
        cur = conn.cursor()
        build_loop(cur, lambda: cur.execute("COMMIT"), jobs, "%s")
        conn.close()
    return result(timer.seconds, jobs)


def fork_and_wait(jobs: int) -> None:
    """``jobs`` times: ``os.fork()`` a child that runs the job and leaves, wait for it."""
    for n in range(jobs):
        pid = os.fork()
        if pid == 0:  # the child: run the job, leave at once
            try:
                tasks.noop(n)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)


def fork_loop(workdir: Path, jobs: int) -> dict[str, Any]:
    """Process isolation's floor: ``os.fork()`` a child that runs the job, wait for it."""
    timer = Timer()
    with timer():
        fork_and_wait(jobs)
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
