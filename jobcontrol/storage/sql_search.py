"""The Builds page's reads on :class:`~jobcontrol.storage.sql.SqlStorage`: builds of every job
filtered by job, state, time and text, a page at a time, and their total.

Every filter is answered by an index: jobs and states by ``(job_id, state, id)`` or
``(state, id)``, ids by the primary key; a text by the job ids it is part of (one probe a
job) or, for reasons, which have no index, within the newest ids
(:data:`~jobcontrol.models.TEXT_WINDOW`). A window of times becomes a range of ids: ids are
given in creation order, so the first build created at or after a time is found by a binary
search of the primary key (some twenty lookups for a million builds) rather than by reading
``created``, which has no index.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from jobcontrol.models import TEXT_WINDOW, Build, BuildQuery
from jobcontrol.storage.queries import SELECT_BUILD, in_params
from jobcontrol.storage.sql_core import SqlCore, retried

#: the escape character of the text search's LIKE patterns
_ESCAPE = "!"


def like_pattern(text: str) -> str:
    """``%text%`` for a LIKE matching ``text`` literally (its ``%`` and ``_`` escaped)."""
    escaped = (text.lower().replace(_ESCAPE, _ESCAPE * 2).replace("%", _ESCAPE + "%")
               .replace("_", _ESCAPE + "_"))
    return f"%{escaped}%"


#: every job with builds, once each, by a loose index scan of ``(job_id, id)``: one probe a
#: job, however many builds each has
STORED_JOBS = """
    WITH RECURSIVE j (job_id) AS (
        SELECT min(job_id) FROM builds
        UNION ALL
        SELECT (SELECT min(b.job_id) FROM builds b WHERE b.job_id > j.job_id)
        FROM j WHERE j.job_id IS NOT NULL
    )
    SELECT job_id FROM j WHERE job_id IS NOT NULL
"""


class SqlSearch(SqlCore):
    """:meth:`search_builds` and :meth:`count_builds` in SQL."""

    @retried("searching builds")
    def search_builds(self, query: BuildQuery, *, limit: int, offset: int = 0) -> list[Build]:
        if query.empty or limit <= 0:
            return []
        with self._cursor() as cur:
            sql, args = self._page_sql(*self._search_where(cur, query), limit, offset)
            cur.execute(sql, args)
            return [self._build_from_row(row) for row in cur.fetchall()]

    @retried("counting builds")
    def count_builds(self, query: BuildQuery) -> int:
        if query.empty:
            return 0
        with self._cursor() as cur:
            cur.execute(*(self._stored_count_sql(query)
                          or self._count_sql(*self._search_where(cur, query))))
            return int(cur.fetchone()[0])

    def search_sql(self, query: BuildQuery, offset: int = 0) -> list[tuple[str, list[Any]]]:
        """The page's and the total's statements with their parameters, in the driver's
        paramstyle, for EXPLAIN in tests and benchmarks (a page of 50)."""
        with self._cursor() as cur:
            found = self._search_where(cur, query)
        return [self._page_sql(*found, 50, offset),
                self._stored_count_sql(query) or self._count_sql(*found)]

    def _stored_count_sql(self, query: BuildQuery) -> tuple[str, list[Any]] | None:
        """The total of every build, or of some jobs', from ``build_counts`` (a row a job,
        kept by triggers: migration 12) rather than by counting builds; None when another
        filter is set."""
        if (query.states is not None or query.since is not None or query.until is not None
                or query.before_id is not None or query.text):
            return None
        if query.job_ids is None:
            return self._q("SELECT coalesce(sum(builds), 0) FROM build_counts"), []
        jobs = sorted(set(query.job_ids))
        return (self._q("SELECT coalesce(sum(builds), 0) FROM build_counts "
                        f"WHERE job_id IN ({in_params(jobs)})"), jobs)

    def _count_sql(self, where: str, params: list[Any], ids: str | None
                   ) -> tuple[str, list[Any]]:
        if ids is not None:  # the text alone: its ids counted where they were found
            return self._q(f"SELECT count(*) FROM ({ids}) found"), params
        return self._q(f"SELECT count(*) FROM builds{where}"), params

    def _page_sql(self, where: str, params: list[Any], ids: str | None, limit: int,
                  offset: int) -> tuple[str, list[Any]]:
        """A page, newest first. Past the first, the ids skipped are counted in the index
        alone and the page read from the id found (``OFFSET`` on the rows themselves would
        read every row skipped: half a second for page 1,000 on PostgreSQL)."""
        if ids is not None:  # the text alone: the page's ids picked among those found
            return (self._q(f"{SELECT_BUILD} WHERE id IN (SELECT id FROM ({ids}) found "
                            "ORDER BY id DESC LIMIT ? OFFSET ?) ORDER BY id DESC"),
                    [*params, limit, max(offset, 0)])
        if offset <= 0:
            return (self._q(f"{SELECT_BUILD}{where} ORDER BY id DESC LIMIT ?"),
                    [*params, limit])
        first = f"(SELECT id FROM builds{where} ORDER BY id DESC LIMIT 1 OFFSET ?)"
        combined = f"{where} AND id <= {first}" if where else f" WHERE id <= {first}"
        return (self._q(f"{SELECT_BUILD}{combined} ORDER BY id DESC LIMIT ?"),
                [*params, *params, offset, limit])

    def _search_where(self, cur: Any, query: BuildQuery
                      ) -> tuple[str, list[Any], str | None]:
        """`` WHERE ...`` (or nothing) and its parameters for ``query``; when the text is
        the only filter, the statement of the ids it finds too (then read on its own)."""
        where: list[str] = []
        params: list[Any] = []
        if query.job_ids is not None:
            jobs = sorted(set(query.job_ids))
            where.append(f"job_id IN ({in_params(jobs)})")
            params.extend(jobs)
        if query.states is not None:
            states = sorted({s.value for s in query.states})
            where.append(f"state IN ({in_params(states)})")
            params.extend(states)
        end: int | None = None  # the first id past the window
        if query.before_id is not None:
            where.append("id < ?")
            params.append(query.before_id)
            end = query.before_id
        if query.since is not None:
            where.append("id >= ?")
            params.append(self._first_id_from(cur, query.since))
        if query.until is not None:
            until = self._first_id_from(cur, query.until)
            where.append("id < ?")
            params.append(until)
            end = until if end is None else min(end, until)
        if query.text:
            if end is None:
                cur.execute("SELECT max(id) FROM builds")
                end = int(cur.fetchone()[0] or 0) + 1
            pattern = like_pattern(query.text)
            reason = ("SELECT id FROM builds WHERE id >= ? AND lower(coalesce(reason, '')) "
                      f"LIKE ? ESCAPE '{_ESCAPE}'")
            text_params: list[Any] = [end - TEXT_WINDOW, pattern]
            needle = query.text.lower()
            cur.execute(STORED_JOBS)
            stored = [row[0] for row in cur.fetchall()]
            jobs = [job_id for job_id in stored if needle in job_id.lower()]
            if len(jobs) < len(stored) or not stored:
                # each part by its own index, then the ids: an OR of the two would have
                # the planner walk every build backwards, newest first, for a rare match
                if jobs:
                    reason = (f"SELECT id FROM builds WHERE job_id IN ({in_params(jobs)}) "
                              f"UNION {reason}")
                    text_params = [*jobs, *text_params]
                if not where:
                    return f" WHERE id IN ({reason})", text_params, reason
                where.append(f"id IN ({reason})")
                params.extend(text_params)
            # else: every job's id holds the text, so every build matches
        return (" WHERE " + " AND ".join(where)) if where else "", params, None

    def _first_id_from(self, cur: Any, when: datetime) -> int:
        """The smallest id from which on builds were created at or after ``when`` (one past
        the newest id when none was): a binary search of the primary key."""
        cur.execute("SELECT (SELECT min(id) FROM builds), (SELECT max(id) FROM builds)")
        low, high = cur.fetchone()
        if low is None:
            return 0
        low, high = int(low), int(high) + 1
        probe = self._q("SELECT id, created >= ? FROM builds WHERE id >= ? ORDER BY id LIMIT 1")
        at = self._time_param(when)
        while low < high:
            middle = (low + high) // 2
            cur.execute(probe, (at, middle))
            row: Sequence[Any] | None = cur.fetchone()
            if row is None or row[1]:
                high = middle
            else:  # created before: the answer lies past this build
                low = int(row[0]) + 1
        return low
