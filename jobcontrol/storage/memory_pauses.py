"""Pauses of jobs in :class:`~jobcontrol.storage.memory.MemoryStorage` (``jobcontrol pause``)."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable

from jobcontrol.errors import JobPausedError
from jobcontrol.models import JobPause
from jobcontrol.storage.arguments import row_limit
from jobcontrol.storage.base import Storage


class MemoryPauses(Storage):
    """Every pause, ended ones too, oldest first, in a list guarded by the storage's lock."""

    _lock: threading.Lock
    #: made on first use, so the storage's ``__init__`` need not know of it
    _pauses: list[JobPause]

    def _check_open(self) -> None:  # the storage's own
        raise NotImplementedError

    def _pause_list(self) -> list[JobPause]:
        self._check_open()
        if not hasattr(self, "_pauses"):
            self._pauses = []
        return self._pauses

    def _refuse_if_paused(self, job_id: str) -> None:
        """:class:`JobPausedError` if ``job_id`` has a pause in force (the lock held)."""
        for pause in self._pause_list():
            if pause.active and pause.job_id == job_id:
                raise JobPausedError(job_id, pause.describe())

    def pause_job(self, job_id: str, *, by: str, reason: str | None = None
                  ) -> tuple[JobPause, bool]:
        with self._lock:
            pauses = self._pause_list()
            for pause in pauses:
                if pause.job_id == job_id and pause.active:
                    return pause, False
            pause = JobPause(job_id, self.now(), by, reason)
            pauses.append(pause)
            return pause, True

    def resume_job(self, job_id: str, *, by: str) -> JobPause | None:
        with self._lock:
            pauses = self._pause_list()
            for number, pause in enumerate(pauses):
                if pause.job_id == job_id and pause.active:
                    pauses[number] = dataclasses.replace(pause, resumed=self.now(),
                                                         resumed_by=by)
                    return pauses[number]
        return None

    def job_pauses(self, job_ids: Iterable[str] | None = None) -> dict[str, JobPause]:
        wanted = None if job_ids is None else set(job_ids)
        with self._lock:
            return {pause.job_id: pause for pause in self._pause_list()
                    if pause.active and (wanted is None or pause.job_id in wanted)}

    def pause_history(self, job_id: str, *, limit: int | None = None) -> list[JobPause]:
        with self._lock:
            found = [pause for pause in reversed(self._pause_list()) if pause.job_id == job_id]
        return found[:row_limit(limit)]
