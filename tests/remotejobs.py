"""Job callables of the Celery suite (``tests/test_celery.py``), copied beside its config."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psycopg2

from jobcontrol import current_build

HERE = Path(__file__).parent


def record_build(dsn: str) -> int:
    """Inserts this build's id into ``runs``, whose primary key refuses a second run."""
    build = current_build()
    assert build is not None
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO runs (build_id, pid) VALUES (%s, %s)", (build.id, os.getpid()))
    conn.close()
    return build.id


def exclusive(dsn: str, marker: str, seconds: float = 60) -> str:
    """Holds a PostgreSQL advisory lock while it runs, failing if another run holds it (so
    two runs at once cannot both succeed); a retry does not sleep. Records each run in
    ``runs`` and writes its pid to ``marker`` first."""
    build = current_build()
    assert build is not None
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(4242)")
        if not cur.fetchone()[0]:
            raise RuntimeError("another run of this job is running")
        cur.execute("INSERT INTO runs (build_id, pid) VALUES (%s, %s)", (build.id, os.getpid()))
    (HERE / marker).write_text(str(os.getpid()))
    if build.retry_of is None:
        time.sleep(seconds)  # to be killed
    conn.close()
    return "done"
