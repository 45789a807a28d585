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


def _until(what: str, done: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not done():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {seconds}s for {what}")
        time.sleep(0.002)


def meet(folder: str, name: str, others: list, seconds: float = 30) -> str:
    """Writes ``folder/name``, then waits until each of ``others`` has written its own: the
    builds that meet end within moments of each other, on whichever workers run them."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / name).write_text(name)
    _until(f"{others} to meet {name}",
           lambda: all((Path(folder) / other).exists() for other in others), seconds)
    return name


def gate(path: str, seconds: float = 30) -> str:
    """Waits until ``path`` exists (the test opens the gate)."""
    _until(f"{path} to open", lambda: Path(path).exists(), seconds)
    return path
