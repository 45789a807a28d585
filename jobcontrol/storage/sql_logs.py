"""The logs and progress of :class:`~jobcontrol.storage.sql.SqlStorage`, and their housekeeping."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from jobcontrol.errors import (
    BuildNotFoundError,
)
from jobcontrol.models import (
    BuildMark,
    BuildState,
    BuildStub,
    LogCutoff,
    LogRecord,
    ProgressItem,
)
from jobcontrol.storage.base import (
    batches,
)
from jobcontrol.storage.queries import (
    LOG_COLUMNS,
    MAX_IN_PARAMS,
    in_params,
    recent_builds_sql,
)
from jobcontrol.storage.sql_core import _UNFINISHED, SqlCore, retried

#: the build states by their stored names
_STATES = {state.value: state for state in BuildState}


class SqlLogs(SqlCore):
    """Logs, progress and housekeeping: a room of :class:`~jobcontrol.storage.sql.SqlStorage`."""

    def append_logs(self, build_id: int, records: Sequence[LogRecord]) -> None:
        if not records:
            return
        with self._transaction() as cur:
            self._append(cur, build_id, records)

    def _append(self, cur: Any, build_id: int, records: Sequence[LogRecord], *,
                fence: bool = True) -> int | None:
        """The body of :meth:`append_logs`, inside the caller's transaction: the seq of the
        first record stored (None: dropped, the build's runner being fenced off).
        ``fence=False``: the caller fences (rolls back where its own write did not land)."""
        claim = self._claimed.get(build_id)
        if fence and claim is not None and self._fenced(cur, build_id):
            return None
        if claim is not None and claim.next_seq is not None:
            last_seq = claim.next_seq - 1  # a build this object claimed: it writes its log
        else:
            # one statement: whether the build exists (locking its row where it can), and
            # where its log ends
            cur.execute(self.sql["log_end_locked"], (build_id,))
            row = cur.fetchone()
            if row is None:
                raise BuildNotFoundError(build_id)
            last_seq = row[0] or 0
        self._insert_logs(cur, build_id, last_seq + 1, records)
        if claim is not None:
            claim.next_seq = last_seq + len(records) + 1
        self._notify_logs(cur, build_id)
        return last_seq + 1

    def _insert_logs(self, cur: Any, build_id: int, first_seq: int,
                     records: Sequence[LogRecord]) -> None:
        """Insert ``records`` numbered from ``first_seq``."""
        self._insert_many(
            cur, self.sql["insert_logs"],
            [(build_id, first_seq + n, self._time_param(r.time), r.level, r.logger,
              r.message, r.exception) for n, r in enumerate(records)],
        )

    @retried("reading logs")
    def get_logs(
        self,
        build_id: int,
        *,
        min_level: int = 0,
        after_seq: int = 0,
        limit: int | None = None,
        until_seq: int | None = None,
    ) -> list[LogRecord]:
        sql = f"SELECT {LOG_COLUMNS} FROM logs WHERE build_id = ? AND seq > ? AND level >= ?"
        params: list[Any] = [build_id, after_seq, min_level]
        if until_seq is not None:
            sql += " AND seq <= ?"
            params.append(until_seq)
        sql = self._limited(sql + " ORDER BY seq", params, limit)
        with self._cursor() as cur:
            cur.execute(self._q(sql), params)
            rows = cur.fetchall()
        return [
            LogRecord(time=self._time(time), level=level, logger=logger,  # type: ignore[arg-type]
                      message=message, exception=exception, seq=seq)
            for seq, time, level, logger, message, exception in rows
        ]

    @retried("reading logs")
    def get_logs_before(self, build_id: int, *, limit: int, before_seq: int | None = None,
                        min_level: int = 0) -> list[LogRecord]:
        """Read in windows of ``seq`` bounded on both sides, widening while they come up
        short (a level filter, pruned holes): each query reads at most its window of the
        primary key, whatever PostgreSQL's statistics say of a log that is new to them
        (given only an upper bound, it would sort every record of the build)."""
        if limit <= 0:
            return []
        with self._cursor() as cur:
            if before_seq is None:  # one probe of the key: where the log ends
                cur.execute(self._q("SELECT max(seq) FROM logs WHERE build_id = ?"),
                            (build_id,))
                before_seq = (cur.fetchone()[0] or 0) + 1
            found: list[Any] = []
            high, window = before_seq, limit * 2
            while len(found) < limit and high > 1:
                low = max(high - window, 1)
                cur.execute(self._q(
                    f"SELECT {LOG_COLUMNS} FROM logs WHERE build_id = ? AND seq >= ? "
                    f"AND seq < ? AND level >= ? ORDER BY seq DESC LIMIT ?"),
                    (build_id, low, high, min_level, limit - len(found)))
                found += cur.fetchall()
                high, window = low, window * 4
        return [
            LogRecord(time=self._time(time), level=level, logger=logger,  # type: ignore[arg-type]
                      message=message, exception=exception, seq=seq)
            for seq, time, level, logger, message, exception in reversed(found)
        ]

    @retried("storing progress of build {build_id}")
    def set_progress(self, build_id: int, items: Sequence[ProgressItem]) -> None:
        if not items:
            return
        now = self.now()
        rows = [
            (
                build_id,
                json.dumps([str(part) for part in item.group], ensure_ascii=False),
                float(item.current),
                None if item.total is None else float(item.total),
                item.message,
                self._time_param(item.updated or now),
            )
            for item in items
        ]
        with self._transaction() as cur:
            self._check_build(cur, build_id)
            if build_id in self._claimed and self._fenced(cur, build_id):
                return
            self._insert_many(cur, self.sql["set_progress"], rows)

    @retried("reading progress")
    def get_progress(self, build_id: int) -> list[ProgressItem]:
        with self._cursor() as cur:
            cur.execute(self.sql["get_progress"], (build_id,))
            rows = cur.fetchall()
        items = [
            ProgressItem(group=tuple(self._loads(group)), current=current, total=total,
                         message=message, updated=self._time(updated))
            for group, current, total, message, updated in rows
        ]
        # in Python: JSON text order puts ["a","b"] before ["a"]; tuple order does not
        return sorted(items, key=lambda item: item.group)

    @retried("listing builds of {job_id!r}")
    def build_stubs(
        self, job_id: str, *, before_id: int | None = None, limit: int | None = None
    ) -> list[BuildStub]:
        sql = "SELECT id, job_id, state, created, started, finished FROM builds WHERE job_id = ?"
        params: list[Any] = [job_id]
        if before_id is not None:
            sql += " AND id < ?"
            params.append(before_id)
        # the (job_id, id) index, read backwards
        sql = self._limited(sql + " ORDER BY id DESC", params, limit)
        with self._cursor() as cur:
            cur.execute(self._q(sql), params)
            rows = cur.fetchall()
        return [
            BuildStub(id=build_id, job_id=job, state=BuildState(state),
                      created=self._time(created),  # type: ignore[arg-type]
                      started=self._time(started), finished=self._time(finished))
            for build_id, job, state, created, started, finished in rows
        ]

    def recent_builds(self, job_ids: Sequence[str], *, per_job: int
                      ) -> dict[str, list[BuildMark]]:
        wanted = list(dict.fromkeys(job_ids))
        found: dict[str, list[BuildMark]] = {}
        if per_job <= 0:
            return found
        # some 2,000 rows a jobs page: a plain loop, the state looked up in a dict
        # (BuildState(...) would cost as much as the query)
        states = _STATES
        for chunk in batches(wanted, MAX_IN_PARAMS):
            for build_id, job_id, state in self._recent_builds(chunk, per_job):
                found.setdefault(job_id, []).append(BuildMark(build_id, states[state]))
        return found

    @retried("reading recent builds")
    def _recent_builds(self, job_ids: Sequence[str], per_job: int) -> list[Any]:
        with self._cursor() as cur:
            cur.execute(self._q(recent_builds_sql(len(job_ids), self.dialect)),
                        (*job_ids, per_job))
            return list(cur.fetchall())

    @retried("deleting builds")
    def delete_builds(self, build_ids: Sequence[int]) -> int:
        deleted = 0
        for chunk in batches(list(dict.fromkeys(build_ids))):
            with self._transaction() as cur:
                # logs and progress go with each build: ON DELETE CASCADE
                cur.execute(
                    self._q(f"DELETE FROM builds WHERE id IN ({in_params(chunk)}) "
                            f"AND state NOT IN (?, ?)"),
                    (*chunk, *_UNFINISHED),
                )
                deleted += cur.rowcount
        return deleted

    def _cutoffs_sql(self, cutoffs: Sequence[LogCutoff]) -> tuple[str, list[Any]]:
        """``(level <= ? AND time < ?) OR ...`` over ``cutoffs``, with its parameters."""
        params: list[Any] = []
        for cutoff in cutoffs:
            params += [cutoff.max_level, self._time_param(cutoff.before)]
        return " OR ".join(["(level <= ? AND time < ?)"] * len(cutoffs)), params

    @retried("counting log records")
    def count_logs(
        self, build_ids: Sequence[int], cutoffs: Sequence[LogCutoff] | None = None
    ) -> int:
        if cutoffs is not None and not cutoffs:
            return 0  # no cutoff matches any record
        where, cutoff_params = self._cutoffs_sql(cutoffs or ())
        total = 0
        with self._cursor() as cur:
            for chunk in batches(list(dict.fromkeys(build_ids))):
                sql = f"SELECT count(*) FROM logs WHERE build_id IN ({in_params(chunk)})"
                if where:
                    sql += f" AND ({where})"
                cur.execute(self._q(sql), (*chunk, *cutoff_params))
                total += int(cur.fetchone()[0])
        return total

    @retried("deleting log records")
    def delete_logs(self, build_ids: Sequence[int], cutoffs: Sequence[LogCutoff]) -> int:
        if not cutoffs:
            return 0
        where, cutoff_params = self._cutoffs_sql(cutoffs)
        deleted = 0
        for chunk in batches(list(dict.fromkeys(build_ids))):
            with self._transaction() as cur:
                # never a log still being written: its next batch numbers on from max(seq)
                cur.execute(
                    self._q(f"DELETE FROM logs WHERE build_id IN ("
                            f"SELECT id FROM builds WHERE id IN ({in_params(chunk)}) "
                            f"AND state NOT IN (?, ?)) AND ({where})"),
                    (*chunk, *_UNFINISHED, *cutoff_params),
                )
                deleted += cur.rowcount
        return deleted
