"""How :mod:`jobcontrol.storage.postgresql` waits for a build's log lines: LISTEN on a
connection of its own for the ``NOTIFY`` every batch and outcome sends (delivered at
COMMIT), so ``logs --follow`` wakes when a line is committed instead of polling."""

from __future__ import annotations

import select
import threading
import time
from collections.abc import Callable
from typing import Any

from jobcontrol.errors import StorageError
from jobcontrol.storage.postgresql_text import channel_of

try:
    import psycopg2
except ImportError:  # the extra is not installed: PostgreSQLStorage says which to install
    psycopg2 = None


class LogListener:
    """One listening connection (made by ``connect``), subscribed to one build at a time."""

    def __init__(self, connect: Callable[[], Any], label: str) -> None:
        self._connect = connect
        self._label = label
        self._lock = threading.Lock()
        self._conn: Any = None
        self._channel: str | None = None
        self._closed = False

    def wait(self, build_id: int, timeout: float, has_news: Callable[[], bool]
             ) -> float | None:
        """Return once ``has_news()`` (looked at after each wake-up) or ``timeout`` passed:
        None; or, where no connection can listen (the server is away), the seconds left,
        for the caller to poll instead."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                try:
                    conn = self._listen(build_id)
                except StorageError:
                    return max(0.0, deadline - time.monotonic())
                # listening first, then looking: a commit in between still wakes the select
                if has_news():
                    return None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                select.select([conn], [], [], remaining)
                try:
                    conn.poll()
                    conn.notifies.clear()
                except psycopg2.Error:
                    self._drop()

    def close(self) -> None:
        self._closed = True
        self._drop()

    def _listen(self, build_id: int) -> Any:
        """The listening connection, subscribed to ``build_id``'s channel (and no other)."""
        if self._closed:
            raise StorageError(f"{self._label} is closed")
        channel = channel_of(build_id)
        try:
            if self._conn is None or self._conn.closed:
                self._conn, self._channel = self._connect(), None
            if self._channel != channel:
                with self._conn.cursor() as cur:
                    cur.execute(f"UNLISTEN *; LISTEN {channel}")
                self._channel = channel
            return self._conn
        except psycopg2.Error as exc:
            self._drop()
            raise StorageError(f"{self._label}: cannot LISTEN: {exc}") from exc
        except StorageError:
            self._drop()
            raise

    def _drop(self) -> None:
        conn, self._conn, self._channel = self._conn, None, None
        if conn is not None:
            try:
                conn.close()
            except psycopg2.Error:
                pass
