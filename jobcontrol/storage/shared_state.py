"""What the storage keeps for jobcontrol itself rather than for builds: its settings, the
Celery workers that run builds, and the web UI's sessions and failed logins, which every
process sharing the storage (each worker of the web server) must agree on. A part of
:class:`~jobcontrol.storage.base.Storage`.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from datetime import datetime

from jobcontrol.models import WorkerRecord


class SharedState(abc.ABC):
    """Settings and web sessions: abstract methods every backend implements."""

    # -- settings ----------------------------------------------------------------------------

    @abc.abstractmethod
    def get_setting(self, key: str) -> str | None:
        """The text stored under ``key``, or None."""

    @abc.abstractmethod
    def set_setting(self, key: str, value: str, *, replace: bool = False) -> str:
        """Store ``value`` under ``key`` and return the value now stored.

        Without ``replace`` an existing value is kept (and returned): set-if-absent, one
        atomic step, so processes that each generate a value (a secret key, say) all end up
        with the one that was stored first.
        """

    # -- workers -----------------------------------------------------------------------------

    @abc.abstractmethod
    def beat_worker(self, worker: WorkerRecord) -> None:
        """Record ``worker`` alive now: its row is made the first time (with its host, pid,
        start and queues), and its heartbeat set to the storage's now afterwards."""

    @abc.abstractmethod
    def list_workers(self) -> list[WorkerRecord]:
        """Every worker recorded, the oldest started first."""

    @abc.abstractmethod
    def forget_worker(self, worker_id: str) -> None:
        """Remove a worker's row (it stopped); nothing happens if it is unknown."""

    # -- web sessions and failed logins: what every process serving the web UI must agree on -

    @abc.abstractmethod
    def start_web_session(self, session_id: str, user: str, now: datetime,
                          expires: datetime) -> None:
        """Record the web UI login ``session_id`` of ``user``, valid until ``expires``.
        Sessions expired at ``now`` are forgotten."""

    @abc.abstractmethod
    def web_session_user(self, session_id: str, now: datetime) -> str | None:
        """The user of session ``session_id`` while it is recorded and not expired at
        ``now``; else None."""

    @abc.abstractmethod
    def end_web_session(self, session_id: str) -> None:
        """Forget session ``session_id`` (a logout); nothing happens if it is unknown."""

    @abc.abstractmethod
    def record_login_failure(self, keys: Sequence[str], at: datetime,
                             forget_before: datetime) -> None:
        """Record a failed login at ``at`` under each of ``keys`` (a user name, a client
        address...). Failures before ``forget_before`` are forgotten."""

    @abc.abstractmethod
    def login_failures(self, key: str, since: datetime) -> list[datetime]:
        """The times of the failed logins recorded under ``key`` at or after ``since``,
        oldest first."""
