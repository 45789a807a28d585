"""How fast is ``status`` over a big history? 100 jobs x 1,000,000 builds, SQLite and PostgreSQL.

Fills a fresh store per backend (PostgreSQL: ``generate_series`` on the server; SQLite: a
recursive CTE inside SQLite, no Python loop), then reports:

- the median of several ``job_summaries()`` calls (the one status query, plus decoding);
- the median wall time of the whole ``jobcontrol status`` command (a new process each run,
  Python start-up and config loading included);
- the plan of the status query: ``EXPLAIN (ANALYZE, BUFFERS)`` on PostgreSQL, ``EXPLAIN
  QUERY PLAN`` on SQLite.

Run from a checkout (the target for PostgreSQL is under 100 ms of query time)::

    python benchmarks/status_query.py                       # both backends, 1M builds
    python benchmarks/status_query.py --backend sqlite --builds 100000
    python benchmarks/status_query.py --postgresql postgresql://postgres@127.0.0.1:5432/test

The PostgreSQL database (on the server the URL names, ``jobcontrol_bench_<pid>_<random>``: a
run's own, so runs sharing a server never touch each other's) and the SQLite file live only
as long as the run, unless ``--keep``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import unique_name  # noqa: E402
from jobcontrol.storage import open_storage  # noqa: E402
from jobcontrol.storage.sql import SqlStorage  # noqa: E402

BENCH_DB = "jobcontrol_bench"
DEFINITION = '{"function": "pipeline.step", "args": [], "kwargs": {"days": 7}}'

# Build g (1..N) belongs to job g % jobs; one in 20 failed, one in 20 skipped, the rest
# succeeded, and the newest build of every tenth job is still running.
PG_FILL = """
INSERT INTO builds (job_id, state, definition, definition_hash, dependency_builds, created,
                    started, finished, heartbeat, host, pid, result_kind, result_data)
SELECT 'job_' || lpad((g %% %(jobs)s)::text, 3, '0'),
       CASE WHEN g > %(builds)s - %(jobs)s AND g %% %(jobs)s %% 10 = 0 THEN 'running'
            WHEN g %% 20 = 0 THEN 'failed'
            WHEN g %% 20 = 1 THEN 'skipped'
            ELSE 'success' END,
       %(definition)s::jsonb, 'hash', '{}'::jsonb,
       t, t, t + interval '3 seconds', t, 'bench', 1, 'json', '{"rows": 3}'
FROM generate_series(1, %(builds)s) AS g,
     LATERAL (SELECT timestamptz '2020-01-01' + g * interval '1 second' AS t) AS times
"""

SQLITE_FILL = """
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < :builds)
INSERT INTO builds (job_id, state, definition, definition_hash, dependency_builds, created,
                    started, finished, heartbeat, host, pid, result_kind, result_data)
SELECT 'job_' || substr('000' || (n % :jobs), -3),
       CASE WHEN n > :builds - :jobs AND n % :jobs % 10 = 0 THEN 'running'
            WHEN n % 20 = 0 THEN 'failed'
            WHEN n % 20 = 1 THEN 'skipped'
            ELSE 'success' END,
       :definition, 'hash', '{}',
       strftime('%Y-%m-%dT%H:%M:%S.000000+00:00', 1577836800 + n, 'unixepoch'),
       strftime('%Y-%m-%dT%H:%M:%S.000000+00:00', 1577836800 + n, 'unixepoch'),
       strftime('%Y-%m-%dT%H:%M:%S.000000+00:00', 1577836800 + n + 3, 'unixepoch'),
       strftime('%Y-%m-%dT%H:%M:%S.000000+00:00', 1577836800 + n, 'unixepoch'),
       'bench', 1, 'json', '{"rows": 3}'
FROM g
"""


def median_ms(call: Callable[[], object], repeat: int) -> tuple[float, list[float]]:
    """The median and every timing of ``repeat`` calls, in milliseconds (after a warm-up)."""
    call()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), times


def write_config(folder: Path, jobs: int) -> Path:
    lines = ["jobs:"]
    for n in range(jobs):
        lines += [f"  - id: job_{n:03d}", "    function: pipeline.step", "    kwargs: {days: 7}"]
    path = folder / "jobs.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def time_status_command(config: Path, url: str, repeat: int) -> tuple[float, list[float]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "jobcontrol", "-c", str(config), "--storage", url,
               "status", "--format", "json"]

    def run() -> None:
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)

    return median_ms(run, repeat)


def fill_postgresql(server_url: str, jobs: int, builds: int) -> str:
    """A new database of this run's own on ``server_url``, filled; its URL (drop it with
    :func:`drop_postgresql`)."""
    import psycopg2

    name = unique_name(BENCH_DB)
    admin = psycopg2.connect(server_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    url = urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    with open_storage(url) as storage:
        storage.install()
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        started = time.perf_counter()
        cur.execute(PG_FILL, {"jobs": jobs, "builds": builds, "definition": DEFINITION})
        cur.execute("VACUUM ANALYZE builds")  # fresh statistics, and a visibility map
        print(f"  filled in {time.perf_counter() - started:.1f} s")
        cur.execute("SELECT pg_size_pretty(pg_total_relation_size('builds'))")
        print(f"  builds table with indexes: {cur.fetchone()[0]}")
    conn.close()
    return url


def drop_postgresql(server_url: str, url: str) -> None:
    """Drop the database :func:`fill_postgresql` made at ``url``."""
    import psycopg2

    admin = psycopg2.connect(server_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{urlsplit(url).path.lstrip("/")}" WITH (FORCE)')
    admin.close()


def fill_sqlite(folder: Path, jobs: int, builds: int) -> str:
    import sqlite3

    url = f"sqlite:///{folder / 'bench.db'}"
    with open_storage(url) as storage:
        storage.install()
    conn = sqlite3.connect(folder / "bench.db", isolation_level=None)
    started = time.perf_counter()
    conn.execute("BEGIN")
    conn.execute(SQLITE_FILL, {"jobs": jobs, "builds": builds, "definition": DEFINITION})
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    print(f"  filled in {time.perf_counter() - started:.1f} s")
    print(f"  file: {(folder / 'bench.db').stat().st_size / 2**20:.0f} MB")
    conn.close()
    return url


def explain(storage: SqlStorage, dialect: str) -> str:
    sql, params = storage._summaries_query(None)
    prefix = "EXPLAIN (ANALYZE, BUFFERS) " if dialect == "postgresql" else "EXPLAIN QUERY PLAN "
    with storage._cursor() as cur:
        cur.execute(prefix + sql, params)
        rows = cur.fetchall()
    if dialect == "postgresql":
        return "\n".join(row[0] for row in rows)
    return "\n".join(f"{row[1]:>3} {row[2]:>3}  {row[3]}" for row in rows)


def bench(dialect: str, url: str, config: Path, jobs: int, repeat: int) -> None:
    with open_storage(url) as storage:
        assert isinstance(storage, SqlStorage)
        summaries = storage.job_summaries()
        assert len(summaries) == jobs, len(summaries)
        running = sum(len(s.running) for s in summaries.values())
        print(f"  {len(summaries)} jobs summarised, {running} running builds")
        query_ms, times = median_ms(storage.job_summaries, repeat)
        print(f"  job_summaries(): median {query_ms:.1f} ms "
              f"(runs: {', '.join(f'{t:.1f}' for t in times)})")
        print("  plan of the status query:")
        print("    " + explain(storage, dialect).replace("\n", "\n    "))
    command_ms, times = time_status_command(config, url, max(3, repeat // 2))
    print(f"  `jobcontrol status` command: median {command_ms:.0f} ms "
          f"(runs: {', '.join(f'{t:.0f}' for t in times)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--builds", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=9, help="timed runs (median reported)")
    parser.add_argument("--postgresql", default=os.environ.get(
        "JOBCONTROL_TEST_POSTGRESQL", "postgresql://postgres@127.0.0.1:5432/test"),
        help="a server to create a database of this run's own on")
    parser.add_argument("--keep", action="store_true", help="keep the filled stores")
    args = parser.parse_args()
    if args.jobs > 1000:
        parser.error("--jobs: at most 1000 (job ids have three digits)")

    with tempfile.TemporaryDirectory(prefix="jobcontrol-bench-") as tmp:
        folder = Path(tempfile.mkdtemp(prefix="jobcontrol-bench-") if args.keep else tmp)
        config = write_config(folder, args.jobs)
        for dialect in ("sqlite", "postgresql"):
            if args.backend not in (dialect, "both"):
                continue
            print(f"{dialect}: {args.jobs} jobs x {args.builds:,} builds")
            if dialect == "sqlite":
                url = fill_sqlite(folder, args.jobs, args.builds)
            else:
                url = fill_postgresql(args.postgresql, args.jobs, args.builds)
            try:
                bench(dialect, url, config, args.jobs, args.repeat)
            finally:
                if dialect == "postgresql" and not args.keep:
                    drop_postgresql(args.postgresql, url)
                elif dialect == "postgresql":
                    print(f"kept: the PostgreSQL database {urlsplit(url).path.lstrip('/')}")
            print()
        if args.keep:
            print(f"kept: {folder}")


if __name__ == "__main__":
    main()
