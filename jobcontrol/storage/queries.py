"""SQL that every SQL dialect shares, written once with ``?`` placeholders.

:class:`jobcontrol.storage.sql.SqlStorage` runs it, after turning ``?`` into its driver's
paramstyle and filling in its dialect hooks.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

#: columns of ``builds``, in the order :meth:`SqlStorage._build_from_row` reads them
BUILD_COLUMNS = (
    "id", "job_id", "state", "reason", "definition", "definition_hash", "dependency_builds",
    "created", "started", "finished", "heartbeat", "host", "pid",
    "result_kind", "result_data", "exc_type", "exc_message", "exc_traceback", "retry_of",
    "cancel_requested", "cancel_reason", "queue", "pgid",
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
    is a success) and its running build ids. ``job_count`` jobs given as parameters, or None
    for all.

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
                   ({newest} AND b.state = 'success') AS success_id,
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
