"""Workload 4's big stores: ``jobs`` jobs x ``builds`` builds, filled once and cached.

SQLite: a file under ``$JOBCONTROL_BENCH_CACHE`` (default ``~/.cache/jobcontrol-bench``).
PostgreSQL: a database ``jobcontrol_bench_h<jobs>_<builds>_v<schema version>`` on the
benchmark server, filled under a name of the run's own and renamed once complete (no run drops
one another may be reading). Either is reused; the fill itself is
:mod:`benchmarks.status_query`'s (server-side, no Python loop).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from benchmarks.common import POSTGRESQL, Skipped, require, unique_name
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
    version = _schema_version("postgresql")
    return _postgresql(f"jobcontrol_bench_h{jobs}_{builds}_v{version}", jobs, builds), config


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
    """The database ``name`` (a name for these jobs, builds and schema version), filled
    first where it does not exist yet: in a database of this run's own, renamed to ``name``
    once complete, so a database of that name is always complete, and no run ever drops
    one another run may be reading (two runs filling at once: the first rename wins, the
    other drops its own copy)."""
    psycopg2 = require("psycopg2", "psycopg2-binary")
    from jobcontrol.storage import open_storage

    def url_of(database: str) -> str:
        return urlunsplit(urlsplit(POSTGRESQL)._replace(path=f"/{database}"))

    try:
        admin = psycopg2.connect(POSTGRESQL, connect_timeout=3)
    except psycopg2.OperationalError as exc:
        raise Skipped(f"PostgreSQL unreachable at {POSTGRESQL}") from exc
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is not None:
                return url_of(name)
            filling = unique_name(f"{name}_filling")
            cur.execute(f'CREATE DATABASE "{filling}"')
            try:
                with open_storage(url_of(filling)) as storage:
                    storage.install()
                conn = psycopg2.connect(url_of(filling))
                conn.autocommit = True
                with conn.cursor() as fill:
                    fill.execute(PG_FILL, {"jobs": jobs, "builds": builds,
                                           "definition": DEFINITION})
                    fill.execute("VACUUM ANALYZE builds")
                conn.close()
                cur.execute(f'ALTER DATABASE "{filling}" RENAME TO "{name}"')
            except psycopg2.errors.DuplicateDatabase:
                pass  # another run filled it first: its copy is used
            finally:
                cur.execute(f'DROP DATABASE IF EXISTS "{filling}" WITH (FORCE)')
    finally:
        admin.close()
    return url_of(name)
