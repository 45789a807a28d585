"""The Builds page's reads on :class:`~jobcontrol.storage.sql.SqlStorage`: builds of every job
filtered by job, state, time and text, a page at a time, and their total.

Every filter but the text is answered by an index: jobs and states by ``(job_id, state, id)``
or ``(state, id)``, ids by the primary key. A window of times becomes a range of ids: ids are
given in creation order, so the first build created at or after a time is found by a binary
search of the primary key (some twenty lookups for a million builds) rather than by reading
``created``, which has no index.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from jobcontrol.models import Build, BuildQuery
from jobcontrol.storage.queries import SELECT_BUILD, in_params
from jobcontrol.storage.sql_core import SqlCore, retried

#: the escape character of the text search's LIKE patterns
_ESCAPE = "!"


def like_pattern(text: str) -> str:
    """``%text%`` for a LIKE matching ``text`` literally (its ``%`` and ``_`` escaped)."""
    escaped = (text.lower().replace(_ESCAPE, _ESCAPE * 2).replace("%", _ESCAPE + "%")
               .replace("_", _ESCAPE + "_"))
    return f"%{escaped}%"


class SqlSearch(SqlCore):
    """:meth:`search_builds` and :meth:`count_builds` in SQL."""

    @retried("searching builds")
    def search_builds(self, query: BuildQuery, *, limit: int, offset: int = 0) -> list[Build]:
        if query.empty or limit <= 0:
            return []
        with self._cursor() as cur:
            where, params = self._search_where(cur, query)
            cur.execute(self._q(f"{SELECT_BUILD}{where} ORDER BY id DESC LIMIT ? OFFSET ?"),
                        [*params, limit, max(offset, 0)])
            return [self._build_from_row(row) for row in cur.fetchall()]

    @retried("counting builds")
    def count_builds(self, query: BuildQuery) -> int:
        if query.empty:
            return 0
        with self._cursor() as cur:
            where, params = self._search_where(cur, query)
            cur.execute(self._q(f"SELECT count(*) FROM builds{where}"), params)
            return int(cur.fetchone()[0])

    def search_sql(self, query: BuildQuery) -> tuple[str, str, list[Any]]:
        """The page's and the total's statements with their parameters, in the driver's
        paramstyle, for EXPLAIN in tests and benchmarks (a page of 50 from the start)."""
        with self._cursor() as cur:
            where, params = self._search_where(cur, query)
        return (self._q(f"{SELECT_BUILD}{where} ORDER BY id DESC LIMIT ? OFFSET ?"),
                self._q(f"SELECT count(*) FROM builds{where}"), [*params])

    def _search_where(self, cur: Any, query: BuildQuery) -> tuple[str, list[Any]]:
        """`` WHERE ...`` (or nothing) and its parameters for ``query``."""
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
        if query.before_id is not None:
            where.append("id < ?")
            params.append(query.before_id)
        if query.since is not None:
            where.append("id >= ?")
            params.append(self._first_id_from(cur, query.since))
        if query.until is not None:
            where.append("id < ?")
            params.append(self._first_id_from(cur, query.until))
        if query.text:
            where.append(f"(lower(job_id) LIKE ? ESCAPE '{_ESCAPE}' "
                         f"OR lower(coalesce(reason, '')) LIKE ? ESCAPE '{_ESCAPE}')")
            pattern = like_pattern(query.text)
            params.extend([pattern, pattern])
        return (" WHERE " + " AND ".join(where)) if where else "", params

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
