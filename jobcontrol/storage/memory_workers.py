"""Workers in :class:`~jobcontrol.storage.memory.MemoryStorage` (``jobcontrol workers``)."""

from __future__ import annotations

import dataclasses
import threading

from jobcontrol.models import WorkerRecord
from jobcontrol.storage.base import Storage
from jobcontrol.timeutil import utcnow


class MemoryWorkers(Storage):
    """Workers by id, in a dict guarded by the storage's lock."""

    _lock: threading.Lock
    #: made on first use, so the storage's ``__init__`` need not know of it
    _workers: dict[str, WorkerRecord]

    def _check_open(self) -> None:  # the storage's own
        raise NotImplementedError

    def _worker_map(self) -> dict[str, WorkerRecord]:
        self._check_open()
        if not hasattr(self, "_workers"):
            self._workers = {}
        return self._workers

    def beat_worker(self, worker: WorkerRecord) -> None:
        with self._lock:
            workers = self._worker_map()
            known = workers.get(worker.id, worker)
            workers[worker.id] = dataclasses.replace(known, heartbeat=utcnow())

    def list_workers(self) -> list[WorkerRecord]:
        with self._lock:
            return sorted(self._worker_map().values(), key=lambda w: (w.started, w.id))

    def forget_worker(self, worker_id: str) -> None:
        with self._lock:
            self._worker_map().pop(worker_id, None)
