"""Filling a storage fast for the retention tests: thousands of builds, with their logs and
progress, in a few transactions (``claim_build`` is one transaction a build, and cannot
backdate). Reaches into each backend on purpose; only tests do this.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from jobcontrol.models import Build, BuildState, LogRecord, ProgressItem
from jobcontrol.storage import Storage
from jobcontrol.storage.memory import MemoryStorage
from jobcontrol.storage.sql import SqlStorage
from jobcontrol.timeutil import utcnow

#: the log records every bulk build gets, one of each level, written when it started
LOG_LEVELS = (logging.DEBUG, logging.INFO, logging.WARNING)


@dataclass(frozen=True)
class Spec:
    """A build to insert: its job, state, and when it ended (or, unfinished, started)."""

    job_id: str
    state: BuildState
    ended: datetime


def insert_builds(storage: Storage, specs: Sequence[Spec], batch: int = 2000) -> list[int]:
    """Insert the builds in order (ids increase with it), each with one log record of every
    level in :data:`LOG_LEVELS` and one progress row; returns their ids."""
    ids: list[int] = []
    for start in range(0, len(specs), batch):
        chunk = specs[start:start + batch]
        if isinstance(storage, MemoryStorage):
            ids += _insert_memory(storage, chunk)
        else:
            assert isinstance(storage, SqlStorage)
            ids += _insert_sql(storage, chunk)
    return ids


def _times(spec: Spec) -> tuple[datetime, datetime, datetime | None]:
    """created, started, finished: a build ran a minute and ended at ``spec.ended``."""
    started = spec.ended - timedelta(minutes=1)
    finished = spec.ended if spec.state.finished else None
    return started - timedelta(seconds=1), started, finished


def _insert_memory(storage: MemoryStorage, specs: Sequence[Spec]) -> list[int]:
    ids = []
    with storage._lock:
        for spec in specs:
            storage._last_id += 1
            build_id = storage._last_id
            created, started, finished = _times(spec)
            storage._builds[build_id] = Build(
                id=build_id, job_id=spec.job_id, state=spec.state, created=created,
                started=started, finished=finished, heartbeat=utcnow(), host="elsewhere",
                pid=1, definition={"function": "m.f"},
            )
            storage._logs[build_id] = [
                LogRecord(started, level, "bulk", "line", seq=n)
                for n, level in enumerate(LOG_LEVELS, start=1)
            ]
            storage._progress[build_id] = {(): ProgressItem((), 1, 1, updated=started)}
            ids.append(build_id)
    return ids


def _insert_sql(storage: SqlStorage, specs: Sequence[Spec]) -> list[int]:
    t = storage._time_param
    now = t(utcnow())
    with storage._transaction() as cur:
        cur.execute("SELECT coalesce(max(id), 0) FROM builds")
        last = int(cur.fetchone()[0])
        rows = []
        for spec in specs:
            created, started, finished = _times(spec)
            # running builds elsewhere, beating now: no reaper marks them abandoned
            rows.append((spec.job_id, spec.state.value, json.dumps({"function": "m.f"}),
                         t(created), t(started), t(finished), now, "elsewhere", 1))
        storage._insert_many(
            cur,
            "INSERT INTO builds (job_id, state, definition, created, started, finished, "
            "heartbeat, host, pid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        cur.execute(storage._q("SELECT id, started FROM builds WHERE id > ? ORDER BY id"),
                    (last,))
        inserted = cur.fetchall()
        assert len(inserted) == len(specs), "another writer inserted builds meanwhile"
        storage._insert_many(
            cur,
            "INSERT INTO logs (build_id, seq, time, level, logger, message) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(build_id, n, started, level, "bulk", "line")
             for build_id, started in inserted
             for n, level in enumerate(LOG_LEVELS, start=1)],
        )
        storage._insert_many(
            cur,
            "INSERT INTO progress (build_id, group_path, current, total, updated) "
            "VALUES (?, ?, ?, ?, ?)",
            [(build_id, "[]", 1.0, 1.0, started) for build_id, started in inserted],
        )
    return [row[0] for row in inserted]


def row_counts(storage: Storage) -> dict[str, int]:
    """Rows in the builds, logs and progress tables (the memory backend's dicts alike)."""
    if isinstance(storage, MemoryStorage):
        return {"builds": len(storage._builds),
                "logs": sum(len(log) for log in storage._logs.values()),
                "progress": sum(len(groups) for groups in storage._progress.values())}
    assert isinstance(storage, SqlStorage)
    counts = {}
    with storage._cursor() as cur:
        for table in ("builds", "logs", "progress"):
            cur.execute(f"SELECT count(*) FROM {table}")
            counts[table] = int(cur.fetchone()[0])
    return counts
