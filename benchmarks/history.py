"""Workload 4's big stores: ``jobs`` jobs x ``builds`` builds, filled once and cached.

SQLite: a file under ``$JOBCONTROL_BENCH_CACHE`` (default ``~/.cache/jobcontrol-bench``).
PostgreSQL: a database ``jobcontrol_bench_h<jobs>_<builds>`` on the benchmark server. Either
is reused while it holds the expected number of builds at the current schema version; the
fill itself is :mod:`benchmarks.status_query`'s (server-side, no Python loop).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from benchmarks.common import POSTGRESQL, Skipped, require
from benchmarks.status_query import DEFINITION, PG_FILL, SQLITE_FILL, write_config

CACHE = Path(os.environ.get("JOBCONTROL_BENCH_CACHE",
                            Path.home() / ".cache" / "jobcontrol-bench"))


def _schema_version(dialect: str) -> int:
    from jobcontrol.storage.schema import load_migrations

    return len(load_migrations(dialect))


def filled_store(backend: str, jobs: int, builds: int) -> tuple[str, Path]:
    """The URL of a store holding the history, and a config naming its jobs."""
    folder = CACHE / f"h{jobs}_{builds}"
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "jobs.yaml"
    if not config.exists():
        write_config(folder, jobs)
    if backend == "sqlite":
        return _sqlite(folder / f"history-v{_schema_version('sqlite')}.db", jobs, builds), config
    return _postgresql(f"jobcontrol_bench_h{jobs}_{builds}", jobs, builds), config


def _sqlite(path: Path, jobs: int, builds: int) -> str:
    from jobcontrol.storage import open_storage

    url = f"sqlite:///{path}"
    if path.exists():
        conn = sqlite3.connect(path)
        count = conn.execute("SELECT count(*) FROM builds").fetchone()[0]
        conn.close()
        if count == builds:
            return url
        path.unlink()
    partial = path.with_suffix(".filling")
    for leftover in partial.parent.glob(partial.name + "*"):
        leftover.unlink()
    with open_storage(f"sqlite:///{partial}") as storage:
        storage.install()
    conn = sqlite3.connect(partial, isolation_level=None)
    conn.execute("BEGIN")
    conn.execute(SQLITE_FILL, {"jobs": jobs, "builds": builds, "definition": DEFINITION})
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    partial.rename(path)  # only a complete store is ever reused
    return url


def _postgresql(name: str, jobs: int, builds: int) -> str:
    psycopg2 = require("psycopg2", "psycopg2-binary")
    from jobcontrol.storage import open_storage

    url = urlunsplit(urlsplit(POSTGRESQL)._replace(path=f"/{name}"))
    try:
        admin = psycopg2.connect(POSTGRESQL, connect_timeout=3)
    except psycopg2.OperationalError as exc:
        raise Skipped(f"PostgreSQL unreachable at {POSTGRESQL}") from exc
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if cur.fetchone() is not None:
            conn = psycopg2.connect(url)
            with conn.cursor() as c:
                c.execute("SELECT to_regclass('jobcontrol_schema') IS NOT NULL")
                ready = c.fetchone()[0]
                if ready:
                    c.execute("SELECT max(version) FROM jobcontrol_schema")
                    ready = c.fetchone()[0] == _schema_version("postgresql")
                if ready:
                    c.execute("SELECT count(*) FROM builds")
                    ready = c.fetchone()[0] == builds
            conn.close()
            if ready:
                admin.close()
                return url
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        cur.execute(f"CREATE DATABASE {name}")
    admin.close()
    with open_storage(url) as storage:
        storage.install()
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(PG_FILL, {"jobs": jobs, "builds": builds, "definition": DEFINITION})
        cur.execute("VACUUM ANALYZE builds")
    conn.close()
    return url
