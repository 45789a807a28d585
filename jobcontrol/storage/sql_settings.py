"""Schedules, settings and web sessions of :class:`~jobcontrol.storage.sql.SqlStorage`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from jobcontrol.models import (
    ScheduledRun,
)
from jobcontrol.storage.sql_core import SqlCore, retried


class SqlSettings(SqlCore):
    """Scheduled runs, settings, web sessions and failed logins: a room of
    :class:`~jobcontrol.storage.sql.SqlStorage`."""

    @retried("claiming the run of {job_id!r} due at {scheduled_for}", in_doubt_ok=False)
    def claim_scheduled_run(self, job_id: str, scheduled_for: datetime, *, host: str,
                            pid: int, outcome: str = "claimed") -> bool:
        with self._transaction() as cur:
            cur.execute(
                self.sql["claim_scheduled_run"],
                (job_id, self._time_param(scheduled_for), self._time_param(self.now()), host,
                 pid, outcome),
            )
            return cur.rowcount == 1

    @retried("recording a scheduled run")
    def set_scheduled_run(self, job_id: str, scheduled_for: datetime, *, outcome: str,
                          build_id: int | None = None) -> None:
        with self._transaction() as cur:
            cur.execute(
                self.sql["set_scheduled_run"],
                (outcome, build_id, job_id, self._time_param(scheduled_for)),
            )

    @retried("reading scheduled runs")
    def last_scheduled_runs(self, job_ids: Iterable[str] | None = None
                            ) -> dict[str, ScheduledRun]:
        with self._cursor() as cur:
            cur.execute(self.sql["last_scheduled_runs"])
            runs = [self._scheduled_run(row) for row in cur.fetchall()]
        wanted = None if job_ids is None else set(job_ids)
        return {run.job_id: run for run in runs if wanted is None or run.job_id in wanted}

    @retried("reading scheduled runs")
    def scheduled_runs(self, job_id: str, *, limit: int | None = None) -> list[ScheduledRun]:
        params: list[Any] = [job_id]
        sql = self._limited(self.sql["scheduled_runs"], params, limit)
        with self._cursor() as cur:
            cur.execute(sql, params)
            return [self._scheduled_run(row) for row in cur.fetchall()]

    def _scheduled_run(self, row: Sequence[Any]) -> ScheduledRun:
        job_id, scheduled_for, claimed, host, pid, outcome, build_id = row
        return ScheduledRun(
            job_id=job_id, outcome=outcome, host=host, pid=pid, build_id=build_id,
            scheduled_for=self._time(scheduled_for),  # type: ignore[arg-type]  # NOT NULL
            claimed=self._time(claimed),  # type: ignore[arg-type]  # NOT NULL
        )

    @retried("reading a setting")
    def get_setting(self, key: str) -> str | None:
        with self._cursor() as cur:
            cur.execute(self.sql["get_setting"], (key,))
            row = cur.fetchone()
        return None if row is None else str(row[0])

    @retried("storing setting {key!r}")
    def set_setting(self, key: str, value: str, *, replace: bool = False) -> str:
        with self._transaction() as cur:
            cur.execute(self.sql["replace_setting" if replace else "add_setting"], (key, value))
            cur.execute(self.sql["get_setting"], (key,))
            return str(cur.fetchone()[0])

    @retried("starting a web session")
    def start_web_session(self, session_id: str, user: str, now: datetime,
                          expires: datetime) -> None:
        with self._transaction() as cur:
            cur.execute(self.sql["forget_web_sessions"], (self._time_param(now),))
            cur.execute(self.sql["start_web_session"],
                        (session_id, user, self._time_param(expires)))

    @retried("reading a web session")
    def web_session_user(self, session_id: str, now: datetime) -> str | None:
        with self._cursor() as cur:
            cur.execute(self.sql["web_session_user"], (session_id, self._time_param(now)))
            row = cur.fetchone()
        return None if row is None else str(row[0])

    @retried("ending a web session")
    def end_web_session(self, session_id: str) -> None:
        with self._transaction() as cur:
            cur.execute(self.sql["end_web_session"], (session_id,))

    @retried("recording a failed login")
    def record_login_failure(self, keys: Sequence[str], at: datetime,
                             forget_before: datetime) -> None:
        with self._transaction() as cur:
            cur.execute(self.sql["forget_login_failures"], (self._time_param(forget_before),))
            self._insert_many(cur, self.sql["record_login_failure"],
                              [(key, self._time_param(at)) for key in keys])

    @retried("reading failed logins")
    def login_failures(self, key: str, since: datetime) -> list[datetime]:
        with self._cursor() as cur:
            cur.execute(self.sql["login_failures"], (key, self._time_param(since)))
            return [self._time(row[0]) for row in cur.fetchall()]  # type: ignore[misc]
