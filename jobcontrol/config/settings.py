"""The config's settings sections (``runner:``, ``web:``, ``executor:``), each a frozen
dataclass that checks its own values, and the checks the model's dataclasses share."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


def check_that(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def is_duration(value: object, allow_none: bool = False) -> bool:
    if value is None:
        return allow_none
    return isinstance(value, (int, float)) and not isinstance(value, bool) and (
        math.isfinite(value) and value >= 0
    )


#: builds a warm worker of ``isolation: pool`` runs before a fresh one replaces it (Celery's
#: ``worker_max_tasks_per_child``): what a job leaks (memory, open files, threads) is bounded
DEFAULT_MAX_BUILDS_PER_WORKER = 100


@dataclass(frozen=True)
class RunnerSettings:
    """``runner:``: how builds are watched (durations in seconds) and pool workers recycled.

    The runner beats a build's heartbeat every ``heartbeat``; a running build whose heartbeat
    is older than ``heartbeat_timeout`` is abandoned; a job told to stop (timeout, cancel) gets
    SIGTERM, then SIGKILL ``kill_grace`` later. A build's outcome the storage refuses (a
    full disk, say) is tried again for ``outcome_retry``. ``max_builds_per_worker`` and
    ``max_worker_memory`` (bytes of resident memory after a build; None: no limit): when a
    warm worker of ``isolation: pool`` is replaced by a fresh one
    (:mod:`jobcontrol.execution.pool`).
    """

    heartbeat: float = 5.0
    heartbeat_timeout: float = 60.0
    kill_grace: float = 5.0
    outcome_retry: float = 300.0
    max_builds_per_worker: int = DEFAULT_MAX_BUILDS_PER_WORKER
    max_worker_memory: int | None = None

    def __post_init__(self) -> None:
        check_that(is_duration(self.heartbeat) and self.heartbeat > 0,
               f"heartbeat must be seconds > 0, got {self.heartbeat!r}")
        check_that(is_duration(self.heartbeat_timeout) and self.heartbeat_timeout > self.heartbeat,
               f"heartbeat_timeout must be more than heartbeat ({self.heartbeat!r}), "
               f"got {self.heartbeat_timeout!r}")
        check_that(is_duration(self.kill_grace),
               f"kill_grace must be seconds >= 0, got {self.kill_grace!r}")
        check_that(is_duration(self.outcome_retry),
               f"outcome_retry must be seconds >= 0, got {self.outcome_retry!r}")
        check_that(isinstance(self.max_builds_per_worker, int) and self.max_builds_per_worker > 0,
               f"max_builds_per_worker must be a whole number > 0, "
               f"got {self.max_builds_per_worker!r}")
        check_that(self.max_worker_memory is None or (isinstance(self.max_worker_memory, int)
                                                  and self.max_worker_memory > 0),
               f"max_worker_memory must be bytes > 0 or None, got {self.max_worker_memory!r}")

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class WebSettings:
    """``web:``: the web UI's secret key and who may use it.

    ``users`` maps a user name to a Werkzeug password hash (``generate_password_hash``);
    ``token`` is a shared secret API clients send as ``Authorization: Bearer TOKEN`` (and
    people may log in with). Without either, the UI has no login and serves only loopback
    unless told otherwise.
    """

    secret_key: str | None = field(default=None, repr=False)
    users: Mapping[str, str] = field(default_factory=dict, repr=False)
    token: str | None = field(default=None, repr=False)
    #: ``Host`` names served besides the loopback ones (``localhost``, ``127.0.0.1``,
    #: ``[::1]``); without auth no other name is, with auth only these when given
    allowed_hosts: tuple[str, ...] = ()
    #: Werkzeug ``ProxyFix`` arguments: how many proxies set each ``X-Forwarded-*`` header
    #: (empty: the headers are ignored)
    proxy: Mapping[str, int] = field(default_factory=dict)
    #: seconds a login lasts, however busy the session (12 hours)
    session_lifetime: float = 12 * 3600.0

    @property
    def auth(self) -> bool:
        """True when a login is required (users or a token are configured)."""
        return bool(self.users) or self.token is not None


@dataclass(frozen=True)
class ExecutorSettings:
    """``executor:``: where builds run. ``local`` (the default): in child processes of the
    command that builds; ``celery``: ``build --async`` queues them for ``jobcontrol worker``
    processes reached through ``broker`` (a Redis or RabbitMQ URL), on ``queue`` unless a
    job names its own."""

    type: str = "local"
    broker: str | None = None
    queue: str = "jobcontrol"
    #: seconds any one broker operation may take (connecting, a reply, a write) before
    #: sending gives up: a broker that accepts connections and never answers fails fast
    timeout: float = 10.0
    #: Celery's ``broker_transport_options`` (``visibility_timeout`` and the like), over
    #: the ones jobcontrol derives from ``timeout``
    transport_options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    #: seconds a build ready to start may stay ``queued`` (its message lost: a purged
    #: queue, a queue no worker reads) before a worker's sweep sends it again; still
    #: queued one more ``queued_timeout`` later, it is failed with the reason
    queued_timeout: float = 600.0

    def __post_init__(self) -> None:
        check_that(self.type in ("local", "celery"),
               f"type must be 'local' or 'celery', got {self.type!r}")
        check_that(self.type == "local" or bool(self.broker),
               "an executor of type celery needs a broker URL")
        check_that(is_duration(self.timeout) and self.timeout > 0,
               f"timeout must be seconds > 0, got {self.timeout!r}")
        check_that(is_duration(self.queued_timeout) and self.queued_timeout > 0,
               f"queued_timeout must be seconds > 0, got {self.queued_timeout!r}")
        check_that(isinstance(self.transport_options, Mapping)
               and all(isinstance(key, str) for key in self.transport_options),
               "transport_options must be a mapping of option names to values")

    @property
    def remote(self) -> bool:
        """True when builds go to Celery workers."""
        return self.type == "celery"

    def as_json(self) -> dict[str, Any]:
        shown = asdict(self)
        shown["transport_options"] = dict(self.transport_options)
        return shown
