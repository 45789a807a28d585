"""Web sessions and failed logins in :class:`~jobcontrol.storage.memory.MemoryStorage`."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime

from jobcontrol.storage.base import Storage


class MemoryWebSessions(Storage):
    """The web UI's sessions and failed logins, guarded by the storage's lock (the
    storage's ``__init__`` makes the two containers)."""

    _lock: threading.Lock
    _web_sessions: dict[str, tuple[str, datetime]]
    _login_failures: list[tuple[str, datetime]]

    def _check_open(self) -> None:  # the storage's own
        raise NotImplementedError

    def start_web_session(self, session_id: str, user: str, now: datetime,
                          expires: datetime) -> None:
        with self._lock:
            self._check_open()
            self._web_sessions = {sid: kept for sid, kept in self._web_sessions.items()
                                  if kept[1] > now}
            self._web_sessions.setdefault(session_id, (user, expires))

    def web_session_user(self, session_id: str, now: datetime) -> str | None:
        with self._lock:
            self._check_open()
            user, expires = self._web_sessions.get(session_id, (None, now))
            return user if expires > now else None

    def end_web_session(self, session_id: str) -> None:
        with self._lock:
            self._check_open()
            self._web_sessions.pop(session_id, None)

    def record_login_failure(self, keys: Sequence[str], at: datetime,
                             forget_before: datetime) -> None:
        with self._lock:
            self._check_open()
            self._login_failures = [(key, when) for key, when in self._login_failures
                                    if when >= forget_before]
            self._login_failures.extend((key, at) for key in keys)

    def login_failures(self, key: str, since: datetime) -> list[datetime]:
        with self._lock:
            self._check_open()
            return sorted(when for k, when in self._login_failures if k == key and when >= since)
