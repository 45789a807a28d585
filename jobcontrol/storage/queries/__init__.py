"""The SQL of the SQL backends: one text per operation, in named query files.

``common.sql`` holds what every dialect runs, written once with ``?`` placeholders; a
dialect's file (``postgresql.sql``) holds only its differences and its own operations,
under the same names (procrastinate's ``queries.sql`` is the shape). Each query is
``-- name: NAME``, comment lines saying why, then its text. :func:`load_queries` reads
them once; the few queries whose shape depends on their arguments (``IN`` lists, optional
filters, the status query) are made here in Python.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jobcontrol.errors import StorageError

#: ``-- name: NAME`` starting a query in a query file
_QUERY_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)

#: columns of ``builds``, in the order :meth:`SqlStorage._build_from_row` reads them
BUILD_COLUMNS = (
    "id", "job_id", "state", "reason", "definition", "definition_hash", "dependency_builds",
    "created", "started", "finished", "heartbeat", "host", "pid",
    "result_kind", "result_data", "exc_type", "exc_message", "exc_traceback", "retry_of",
    "cancel_requested", "cancel_reason", "queue", "pgid", "run_id", "params", "worker_id",
    "pid_namespace",
)
SELECT_BUILD = f"SELECT {', '.join(BUILD_COLUMNS)} FROM builds"
LOG_COLUMNS = "seq, time, level, logger, message, exception"

#: more bound values than this in one ``IN (...)`` and a query filters in Python instead
#: (old SQLite builds allow 999 variables a statement)
MAX_IN_PARAMS = 500


def in_params(values: Sequence[Any]) -> str:
    """``?, ?, ?`` for an ``IN (...)`` of ``values``."""
    return ", ".join("?" * len(values))


@functools.lru_cache(maxsize=64)  # a run asks for the same few shapes step after step
def job_summaries_sql(id_list_sql: str, job_count: int | None) -> str:
    """The status query: per job, its newest build, its newest ``success`` (only that state
    is a success, and only of a build without parameters of its own: see
    :mod:`jobcontrol.rules.params`) and its running build ids. ``job_count`` jobs given as
    parameters, or None for all.

    One statement whose cost grows with the number of jobs, not of builds: each job's ids
    are one descent of the ``(job_id, id)`` or ``(job_id, state, id)`` index, then the two
    rows are read by primary key. ``id_list_sql`` aggregates ``b.id`` into a comma-separated
    text (``group_concat``, ``string_agg``).
    """
    if job_count is not None:
        job_ids = f"job_ids (job_id) AS (VALUES {', '.join(['(?)'] * job_count)})"
    else:
        # every job once, by a loose index scan: one index probe per job, however many
        # builds each has (a GROUP BY reads every build: 300 ms at a million)
        job_ids = """job_ids (job_id) AS (
            SELECT min(job_id) FROM builds
            UNION ALL
            SELECT (SELECT min(b.job_id) FROM builds b WHERE b.job_id > job_ids.job_id)
            FROM job_ids WHERE job_ids.job_id IS NOT NULL
        )"""
    last_cols = ", ".join(f"lb.{c}" for c in BUILD_COLUMNS)
    success_cols = ", ".join(f"sb.{c}" for c in BUILD_COLUMNS)
    newest = "SELECT max(b.id) FROM builds b WHERE b.job_id = j.job_id"
    return f"""
        WITH RECURSIVE {job_ids},
        per_job AS (
            SELECT j.job_id,
                   ({newest}) AS last_id,
                   ({newest} AND b.state = 'success' AND b.params IS NULL) AS success_id,
                   (SELECT {id_list_sql} FROM builds b
                    WHERE b.job_id = j.job_id AND b.state = 'running') AS running_ids
            FROM job_ids j
            WHERE j.job_id IS NOT NULL
        )
        SELECT per_job.running_ids, {last_cols}, {success_cols}
        FROM per_job
        JOIN builds lb ON lb.id = per_job.last_id
        LEFT JOIN builds sb ON sb.id = per_job.success_id
    """


@functools.lru_cache(maxsize=16)
def recent_builds_sql(job_count: int, dialect: str) -> str:
    """Each of ``job_count`` jobs' newest builds (id, job, state), newest first per job;
    the parameters are the job ids, then how many builds a job shows.

    One statement whose cost grows with the builds shown, not the builds stored: per job,
    one descent of the ``(job_id, id)`` index, read backwards (a window function would read
    every build). PostgreSQL says so with ``LATERAL ... LIMIT``; SQLite, which has no
    ``LATERAL``, finds the oldest id shown by an ``OFFSET`` in the index, then reads the
    range above it. (Given only the range, PostgreSQL prefers the covering
    ``(job_id, state, id)`` index and reads every build of the job.)
    """
    values = ", ".join(["(?)"] * job_count)
    if dialect == "postgresql":
        return f"""
            SELECT b.id, b.job_id, b.state
            FROM (VALUES {values}) AS j (job_id)
            CROSS JOIN LATERAL (
                SELECT x.id, x.job_id, x.state FROM builds x WHERE x.job_id = j.job_id
                ORDER BY x.id DESC LIMIT ?) b
            ORDER BY b.job_id, b.id DESC
        """
    return f"""
        WITH job_ids (job_id) AS (VALUES {values})
        SELECT b.id, b.job_id, b.state
        FROM job_ids j
        JOIN builds b ON b.job_id = j.job_id AND b.id >= COALESCE((
            SELECT x.id FROM builds x WHERE x.job_id = j.job_id
            ORDER BY x.id DESC LIMIT 1 OFFSET ? - 1), 0)
        ORDER BY b.job_id, b.id DESC
    """


def _read_queries(file_name: str) -> dict[str, str]:
    """The queries of one file of this folder by name (none if there is no such file)."""
    path = Path(__file__).parent / file_name
    if path.is_file():
        text = path.read_text(encoding="utf-8")
    elif Path(__file__).is_file():  # installed as files, and this one is not among them
        return {}
    else:  # not installed as files (a zip): ask the import system
        # (not otherwise: importing it costs ~10 ms, every command's start-up included)
        import importlib.resources

        entry = importlib.resources.files(__name__) / file_name
        if not entry.is_file():
            return {}
        text = entry.read_text(encoding="utf-8")
    parts = _QUERY_NAME.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [line for line in body.splitlines()
                 if line.strip() and not line.lstrip().startswith("--")]
        if name in queries or not lines:
            raise StorageError(f"{file_name}: query {name!r} is "
                               f"{'named twice' if name in queries else 'empty'}")
        queries[name] = "\n".join(lines).replace("{build_columns}", ", ".join(BUILD_COLUMNS))
    return queries


@functools.cache
def load_queries(dialect: str, placeholder: str = "?") -> Mapping[str, str]:
    """The queries ``dialect`` runs, by name: ``common.sql``'s, and ``<dialect>.sql``'s in
    their stead or beside them; ``?`` written as ``placeholder`` (the driver's paramstyle;
    no query holds a literal ``?``, and a literal ``%`` is doubled where the paramstyle
    uses it)."""
    queries = {**_read_queries("common.sql"), **_read_queries(f"{dialect}.sql")}
    if "%" in placeholder:
        queries = {name: text.replace("%", "%%") for name, text in queries.items()}
    return {name: text.replace("?", placeholder) for name, text in queries.items()}
