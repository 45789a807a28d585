"""Scheduled instants taken on (``run-due``, ``scheduler``, ``backfill``) in
:class:`~jobcontrol.storage.memory.MemoryStorage`."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable
from datetime import datetime

from jobcontrol.models import ScheduledRun
from jobcontrol.storage.arguments import row_limit
from jobcontrol.storage.base import Storage
from jobcontrol.timeutil import as_utc, utcnow


class MemorySchedules(Storage):
    """One :class:`ScheduledRun` by (job, instant), in a dict guarded by the storage's lock."""

    _lock: threading.Lock
    _schedule_runs: dict[tuple[str, datetime], ScheduledRun]

    def _check_open(self) -> None:  # the storage's own
        raise NotImplementedError

    def claim_scheduled_run(self, job_id: str, scheduled_for: datetime, *, host: str,
                            pid: int, outcome: str = "claimed") -> bool:
        key = (job_id, as_utc(scheduled_for))
        with self._lock:
            self._check_open()
            if key in self._schedule_runs:
                return False
            self._schedule_runs[key] = ScheduledRun(job_id, key[1], utcnow(), outcome,
                                                    host=host, pid=pid)
            return True

    def set_scheduled_run(self, job_id: str, scheduled_for: datetime, *, outcome: str,
                          build_id: int | None = None) -> None:
        key = (job_id, as_utc(scheduled_for))
        with self._lock:
            self._check_open()
            run = self._schedule_runs.get(key)
            if run is not None:
                self._schedule_runs[key] = dataclasses.replace(run, outcome=outcome,
                                                               build_id=build_id)

    def last_scheduled_runs(self, job_ids: Iterable[str] | None = None
                            ) -> dict[str, ScheduledRun]:
        wanted = None if job_ids is None else set(job_ids)
        last: dict[str, ScheduledRun] = {}
        with self._lock:
            self._check_open()
            for (job_id, when), run in self._schedule_runs.items():
                if (wanted is None or job_id in wanted) and (
                        job_id not in last or when > last[job_id].scheduled_for):
                    last[job_id] = run
        return last

    def scheduled_runs(self, job_id: str, *, limit: int | None = None) -> list[ScheduledRun]:
        with self._lock:
            self._check_open()
            runs = sorted((run for (job, _), run in self._schedule_runs.items()
                           if job == job_id), key=lambda run: run.scheduled_for, reverse=True)
        return runs[:row_limit(limit)]
