"""Workers in :class:`~jobcontrol.storage.sql.SqlStorage` (``jobcontrol workers``)."""

from __future__ import annotations

from datetime import datetime

from jobcontrol.models import WorkerRecord
from jobcontrol.storage.sql_core import SqlCore, retried


class SqlWorkers(SqlCore):
    """The ``build_workers`` table: a room of :class:`~jobcontrol.storage.sql.SqlStorage`."""

    @retried("recording worker {worker.id}'s heartbeat")
    def beat_worker(self, worker: WorkerRecord) -> None:
        now = self._time_param(self.now())
        with self._transaction() as cur:
            cur.execute(self.sql["beat_worker"],
                        (worker.id, worker.host, worker.pid,
                         self._time_param(worker.started), now, ",".join(worker.queues)))

    @retried("reading the workers")
    def list_workers(self) -> list[WorkerRecord]:
        with self._cursor() as cur:
            cur.execute(self.sql["list_workers"])
            rows = cur.fetchall()
        return [WorkerRecord(row[0], row[1], row[2], self._when(row[3]), self._when(row[4]),
                             tuple(q for q in row[5].split(",") if q))
                for row in rows]

    def _when(self, value: object) -> datetime:
        moment = self._time(value)
        assert moment is not None  # NOT NULL columns
        return moment

    @retried("forgetting worker {worker_id}")
    def forget_worker(self, worker_id: str) -> None:
        with self._transaction() as cur:
            cur.execute(self.sql["forget_worker"], (worker_id,))
