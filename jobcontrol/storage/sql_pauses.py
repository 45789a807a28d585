"""Pauses of jobs in :class:`~jobcontrol.storage.sql.SqlStorage` (``jobcontrol pause``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from jobcontrol.models import JobPause
from jobcontrol.storage.sql_core import SqlCore, retried


class SqlPauses(SqlCore):
    """The ``job_pauses`` table: a room of :class:`~jobcontrol.storage.sql.SqlStorage`."""

    @retried("pausing job {job_id!r}", in_doubt_ok=False)
    def pause_job(self, job_id: str, *, by: str, reason: str | None = None
                  ) -> tuple[JobPause, bool]:
        with self._transaction() as cur:
            cur.execute(self.sql["pause_job"],
                        (job_id, self._time_param(self.now()), by, reason))
            made = cur.rowcount == 1
            cur.execute(self.sql["pause_in_force"], (job_id,))
            return self._pause(cur.fetchone()), made

    @retried("resuming job {job_id!r}", in_doubt_ok=False)
    def resume_job(self, job_id: str, *, by: str) -> JobPause | None:
        with self._transaction() as cur:
            cur.execute(self.sql["pause_in_force"], (job_id,))  # locked where it can be
            row = cur.fetchone()
            if row is None:
                return None
            now = self.now()
            cur.execute(self.sql["resume_job"], (self._time_param(now), by, row[-1]))
        pause = self._pause(row)
        return JobPause(pause.job_id, pause.paused, pause.paused_by, pause.reason,
                        resumed=now, resumed_by=by)

    @retried("reading the pauses of jobs")
    def job_pauses(self, job_ids: Iterable[str] | None = None) -> dict[str, JobPause]:
        with self._cursor() as cur:
            cur.execute(self.sql["pauses_in_force"])
            pauses = [self._pause(row) for row in cur.fetchall()]
        wanted = None if job_ids is None else set(job_ids)
        return {p.job_id: p for p in pauses if wanted is None or p.job_id in wanted}

    @retried("reading the pauses of job {job_id!r}")
    def pause_history(self, job_id: str, *, limit: int | None = None) -> list[JobPause]:
        params: list[Any] = [job_id]
        sql = self._limited(self.sql["pause_history"], params, limit)
        with self._cursor() as cur:
            cur.execute(sql, params)
            return [self._pause(row) for row in cur.fetchall()]

    def _pause(self, row: Sequence[Any]) -> JobPause:
        return pause_from_row(row, self._time)


def pause_from_row(row: Sequence[Any], time_of: Callable[[Any], datetime | None]) -> JobPause:
    """A pause from its row (the columns of ``pause_in_force``), its times read by
    ``time_of`` (the dialect's)."""
    job_id, paused, paused_by, reason, resumed, resumed_by, _id = row
    return JobPause(
        job_id=job_id, paused_by=paused_by, reason=reason, resumed_by=resumed_by,
        paused=time_of(paused),  # type: ignore[arg-type]  # NOT NULL
        resumed=time_of(resumed),
    )
