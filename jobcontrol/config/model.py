"""The frozen definitions a config file becomes: :class:`Config`, :class:`JobDefinition`,
the policies and settings they hold, and :class:`Location`, the place in the file that a
:class:`~jobcontrol.errors.ConfigError` names.

Values are checked again here (``__post_init__``), so a definition made in Python is as
sound as a loaded one. Nothing is imported: ``function`` is only a dotted path (see
:mod:`jobcontrol.importing`, used when a build needs the callable).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from jobcontrol.config.param_types import ParamSpec
from jobcontrol.config.settings import (
    ExecutorSettings,
    RunnerSettings,
    WebSettings,
    check_that,
    is_duration,
)
from jobcontrol.errors import ConfigError, UnknownJobError
from jobcontrol.models import EncodedJSON
from jobcontrol.notify import NotifyPolicy
from jobcontrol.schedule import Schedule
from jobcontrol.secrets import MASK, Masker, is_secret_env_name
from jobcontrol.serialize import to_jsonable

__all__ = [
    "LOG_LEVELS",
    "SHELL_FUNCTION",
    "Config",
    "ExecutorSettings",
    "JobDefinition",
    "Location",
    "RetentionPolicy",
    "RetryPolicy",
    "RetvalRef",
    "RunnerSettings",
    "ShellCommand",
    "WebSettings",
    "iter_retvals",
]

#: the log levels ``retention: {logs: ...}`` takes, by name
LOG_LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
}


@dataclass(frozen=True)
class Location:
    """A place in the config file; ``line`` and ``column`` are 1-based."""

    file: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        parts = [self.file]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    def error(self, message: str) -> ConfigError:
        """A :class:`ConfigError` with ``message`` at this place."""
        return ConfigError(message, self.file, self.line, self.column)


@dataclass(frozen=True)
class RetvalRef:
    """`!retval JOB`: the return value of the dependency JOB's build, passed as an argument."""

    job_id: str
    location: Location | None = field(default=None, compare=False, repr=False)

    def __json__(self) -> dict[str, str]:
        """``{"!retval": job_id}``: how a definition's hash and snapshot hold it."""
        return {"!retval": self.job_id}


@dataclass(frozen=True)
class RetryPolicy:
    """``retries:``: how often a failed build is retried, and how long to wait before each.

    Only a failed build is retried (not a cancelled or skipped one); each retry is a new build
    that points at the build it retries. Durations are in seconds.
    """

    #: how many retries after the first build fails (0: none)
    count: int
    #: seconds to wait before the first retry
    delay: float = 0.0
    #: each further retry waits this many times longer than the one before
    backoff: float = 1.0
    #: no wait is longer than this (None: no cap)
    max_delay: float | None = None

    def __post_init__(self) -> None:
        check_that(isinstance(self.count, int) and not isinstance(self.count, bool)
               and self.count >= 0, f"count must be an int >= 0, got {self.count!r}")
        check_that(is_duration(self.delay), f"delay must be seconds >= 0, got {self.delay!r}")
        check_that(is_duration(self.backoff) and self.backoff >= 1,
               f"backoff must be a number >= 1, got {self.backoff!r}")
        check_that(is_duration(self.max_delay, allow_none=True),
               f"max_delay must be seconds >= 0 or None, got {self.max_delay!r}")

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1 is the first retry):
        ``delay * backoff ** (attempt - 1)``, at most ``max_delay``."""
        if attempt < 1:
            raise ValueError(f"attempt counts retries from 1, got {attempt}")
        seconds = float(self.delay)
        if seconds and self.backoff != 1:
            try:
                seconds *= float(self.backoff) ** (attempt - 1)
            except OverflowError:
                seconds = math.inf
        return seconds if self.max_delay is None else min(seconds, self.max_delay)

    def as_json(self) -> dict[str, Any]:
        """``{"count", "delay", "backoff", "max_delay"}``: durations in seconds."""
        return asdict(self)


@dataclass(frozen=True)
class RetentionPolicy:
    """``retention:``: which builds and log records ``jobcontrol prune`` deletes.

    A build stays when it is one of the last ``keep_last`` builds of its job OR ended less
    than ``keep_for`` seconds ago (any rule that is set keeps it; None: no such rule; with
    neither, every build stays), and always while it runs and when it is the job's latest
    successful build. ``logs`` keeps log records of a level and the levels below it for a
    shorter time than their build: ``{logging.DEBUG: 604800.0}`` deletes DEBUG (and lower)
    records older than 7 days; higher levels live as long as their build.
    The rules in full: :mod:`jobcontrol.retention`.
    """

    keep_last: int | None = None
    keep_for: float | None = None
    #: numeric logging level → seconds its records are kept
    logs: Mapping[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_that(self.keep_last is None or (isinstance(self.keep_last, int)
               and not isinstance(self.keep_last, bool) and self.keep_last >= 1),
               f"keep_last must be an int >= 1 or None, got {self.keep_last!r}")
        check_that(is_duration(self.keep_for, allow_none=True),
               f"keep_for must be seconds >= 0 or None, got {self.keep_for!r}")
        for level, seconds in self.logs.items():
            check_that(isinstance(level, int) and is_duration(seconds),
                   f"logs maps a logging level to seconds >= 0, got {level!r}: {seconds!r}")

    def as_json(self) -> dict[str, Any]:
        """``{"keep_last", "keep_for", "logs": {"DEBUG": seconds, ...}}``."""
        return {
            "keep_last": self.keep_last,
            "keep_for": self.keep_for,
            "logs": {logging.getLevelName(level): seconds
                     for level, seconds in sorted(self.logs.items())},
        }


#: the callable a shell job's builds run (:func:`jobcontrol.execution.shell.run`): named,
#: not imported, so every executor runs a shell job as it runs any job
SHELL_FUNCTION = "jobcontrol.execution.shell.run"


@dataclass(frozen=True)
class ShellCommand:
    """``command:`` with ``env:`` and ``cwd:``: a shell job's command, as written.

    ``command`` is a string (run by ``/bin/sh -c``) or a tuple of strings (run as it is,
    no shell); ``env`` is merged over the runner's environment; ``cwd`` is relative to the
    config file's folder (None: that folder). What decides a build's outcome is this, as
    written: the folder the config file lies in may differ from machine to machine.
    """

    command: str | tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.command, str):
            check_that(bool(self.command.strip()), "command must not be empty")
        else:
            check_that(isinstance(self.command, tuple) and bool(self.command)
                   and all(isinstance(part, str) for part in self.command),
                   f"command must be a string or a tuple of strings, got {self.command!r}")
        check_that(all(isinstance(k, str) and isinstance(v, str) for k, v in self.env.items()),
               "env must map names to strings")
        check_that(self.cwd is None or (isinstance(self.cwd, str) and bool(self.cwd)),
               f"cwd must be a folder or None, got {self.cwd!r}")

    def arguments(self, directory: Path) -> dict[str, Any]:
        """The keyword arguments of :data:`SHELL_FUNCTION`: ``cwd`` made absolute against
        ``directory`` (the config file's folder)."""
        command = self.command if isinstance(self.command, str) else list(self.command)
        cwd = directory if self.cwd is None else directory / self.cwd
        return {"command": command, "env": dict(self.env), "cwd": str(cwd)}

    def as_json(self) -> dict[str, Any]:
        """``{"command", "env", "cwd"}`` as written (a list command as a list)."""
        command = self.command if isinstance(self.command, str) else list(self.command)
        return {"command": command, "env": dict(self.env), "cwd": self.cwd}

    def masked_json(self, masker: Masker) -> dict[str, Any]:
        """:meth:`as_json` with secrets masked: an env value whose name marks a secret
        (:func:`~jobcontrol.secrets.is_secret_env_name`) whole, the config's secrets in
        every text."""
        shown = self.as_json()
        return {"command": masker.value(shown["command"]),
                "env": {masker.text(name): MASK if is_secret_env_name(name) else
                        masker.text(value) for name, value in self.env.items()},
                "cwd": masker.optional_text(self.cwd)}

    def text(self) -> str:
        """The command as one line a shell would run (a list quoted by ``shlex.join``)."""
        return self.command if isinstance(self.command, str) else shlex.join(self.command)


#: JobDefinition fields whose repr is masked
_MASKED = ("title", "args", "kwargs")


@lru_cache(maxsize=16)
def _masker(secrets: frozenset[str]) -> Masker:
    return Masker(secrets)


@dataclass(frozen=True)
class JobDefinition:
    """One job of the config, validated; defaults are already merged in.

    ``args`` and ``kwargs`` hold the real values, secrets included, to call the job with;
    :meth:`snapshot` and :attr:`definition_hash` see them masked. A shell job (``shell``
    set) calls :data:`SHELL_FUNCTION` with its command as ``kwargs``; its snapshot and hash
    show the command as written instead.
    """

    id: str
    function: str
    title: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    dependencies: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    timeout: float | None = None
    cleanup_function: str | None = None
    concurrency: int = 1
    isolation: str = "pool"
    result: str = "json"
    retries: RetryPolicy | None = None
    retention: RetentionPolicy | None = None
    #: when ``run-due`` and ``scheduler`` build it (with its timezone and options)
    schedule: Schedule | None = None
    #: seconds after which its last success is too old (``check --freshness``)
    max_age: float | None = None
    #: whom to tell when it starts failing or recovers
    notify: NotifyPolicy | None = None
    #: the Celery queue its remote builds go to (None: the executor's queue)
    queue: str | None = None
    #: its typed parameters with their defaults (``params:``; see :mod:`jobcontrol.config.params`)
    params: tuple[ParamSpec, ...] = ()
    #: a shell job's command (``command:``), None for a function's job; repr left out:
    #: ``kwargs`` shows it, masked
    shell: ShellCommand | None = field(default=None, repr=False)
    #: stands for the function's code in the outdated rules (None: a hash of its source)
    code_version: str | None = None
    #: glob patterns of the files it reads (relative to the config's folder): a change to
    #: one makes it outdated
    inputs: tuple[str, ...] = ()
    location: Location = field(default=Location("<config>"), compare=False)
    #: every secret of the config (see :attr:`Config.secrets`), to mask in what is stored
    secrets: frozenset[str] = field(default=frozenset(), compare=False, repr=False)
    # where each key's value was written ({"kwargs": (line, column), ...}, in the file of
    # ``location``), for later error messages: a Location is made only when one is asked for
    _marks: Mapping[str, tuple[int, int]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def __repr__(self) -> str:  # a repr may end up in a traceback: no secrets in it
        parts = []
        for item in fields(self):
            if item.repr:
                value = getattr(self, item.name)
                if item.name in _MASKED:
                    value = self.masker.value(value)
                parts.append(f"{item.name}={value!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    @property
    def masker(self) -> Masker:
        """Masks the config's secrets (for this job's logs, exceptions, return values)."""
        return _masker(self.secrets)

    @cached_property  # the definition never changes, and each outdated verdict of a
    def definition_hash(self) -> str:  # chain's step hashed its whole upstream again
        """sha256 of what decides the build's outcome: function, args and kwargs.

        Title, tags, timeout and the rest may change without making the job outdated. Secrets
        are masked first: a rotated password rebuilds nothing, and no hash of it is stored.
        A shell job's: its command, env and cwd, as written.
        """
        payload: dict[str, Any]
        if self.shell is not None:
            payload = self.shell.masked_json(self.masker)
        else:
            args, kwargs = self._masked_arguments
            payload = {"function": self.function, "args": args, "kwargs": kwargs}
        text = _HASH_ENCODER.encode(payload)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    @cached_property  # for the hash and the snapshot alike
    def _masked_arguments(self) -> tuple[Any, Any]:
        masker = self.masker
        return (to_jsonable(self.args, masker, definition=True),
                to_jsonable(self.kwargs, masker, definition=True))

    def snapshot(self) -> dict[str, Any]:
        """The definition as a JSON-able dict, secrets masked (stored with each build)."""
        return self._snapshot(fresh=True)

    def _snapshot(self, fresh: bool) -> dict[str, Any]:
        masker = self.masker
        if self.shell is not None:  # the command instead of the function and its arguments
            return {"id": self.id, "function": None, **self.shell.masked_json(masker),
                    **self._settings(masker, [], {})}
        args, kwargs = self._masked_arguments
        if fresh:  # the caller's to change
            args, kwargs = copy.deepcopy(args), copy.deepcopy(kwargs)
        return {"id": self.id, "function": self.function, "command": None,
                **self._settings(masker, args, kwargs)}

    def _settings(self, masker: Masker, args: Any, kwargs: Any) -> dict[str, Any]:
        """The snapshot from ``title`` on."""
        return {
            "title": masker.text(self.title),
            "args": args,
            "kwargs": kwargs,
            "dependencies": list(self.dependencies),
            "tags": list(self.tags),
            "timeout": self.timeout,
            "cleanup_function": self.cleanup_function,
            "concurrency": self.concurrency,
            "isolation": self.isolation,
            "result": self.result,
            "retries": None if self.retries is None else self.retries.as_json(),
            "retention": None if self.retention is None else self.retention.as_json(),
            "schedule": None if self.schedule is None else self.schedule.as_json(),
            "max_age": self.max_age,
            "notify": None if self.notify is None else masker.value(self.notify.as_json()),
            "queue": self.queue,
            "code_version": self.code_version,
            "inputs": list(self.inputs),
            "params": {spec.name: spec.as_json() for spec in self.params},
        }

    @cached_property
    def stored_snapshot(self) -> EncodedJSON:
        """:meth:`snapshot`, encoded once: what each build of the job stores."""
        return EncodedJSON(self._snapshot(fresh=False))  # encoded now: nothing shared

    def command_text(self) -> str | None:
        """A shell job's command as one line, secrets masked (None: a function's job)."""
        return None if self.shell is None else self.masker.text(self.shell.text())

    def command_json(self) -> str | list[str] | None:
        """A shell job's command as written (a string or a list), secrets masked (None: a
        function's job): what ``status --format json`` and the snapshot show."""
        if self.shell is None:
            return None
        return self.shell.masked_json(self.masker)["command"]

    def retval_jobs(self) -> set[str]:
        """Ids of the jobs whose return values ``!retval`` passes in args or kwargs."""
        return set(self._retval_jobs)

    @cached_property
    def _retval_jobs(self) -> frozenset[str]:
        return frozenset(ref.job_id for ref in iter_retvals((self.args, self.kwargs)))

    def location_of(self, key: str) -> Location:
        """Where ``key``'s value is written (a default's value counts), else the job's start."""
        pos = self._marks.get(key)
        return self.location if pos is None else Location(self.location.file, *pos)


@dataclass(frozen=True)
class Config:
    """A loaded config file: its jobs in file order, and the storage URL it names."""

    path: Path
    jobs: Mapping[str, JobDefinition]
    storage: str | None = None
    #: where ``storage:`` is written (its errors point there)
    storage_location: Location | None = field(default=None, compare=False, repr=False)
    rendered: str = field(default="", repr=False)
    runner: RunnerSettings = field(default_factory=RunnerSettings)
    web: WebSettings = field(default_factory=WebSettings)
    executor: ExecutorSettings = field(default_factory=ExecutorSettings)
    #: every secret: the ``secrets:`` list, values read by ``!env``, and values under
    #: secret-looking keys (password, token, ...) in any job's args and kwargs
    secrets: frozenset[str] = field(default=frozenset(), repr=False)

    @property
    def masker(self) -> Masker:
        """Replaces every one of :attr:`secrets` by ``***`` (in text, in structures)."""
        return _masker(self.secrets)

    @property
    def directory(self) -> Path:
        """The folder of the config file (put on ``sys.path``; relative storage paths)."""
        return self.path.parent

    @property
    def dependencies(self) -> dict[str, tuple[str, ...]]:
        """``{job_id: dependencies}`` in file order, as :mod:`jobcontrol.rules.graph` takes it."""
        return {job_id: job.dependencies for job_id, job in self.jobs.items()}

    def queue_of(self, job: JobDefinition) -> str:
        """The Celery queue a remote build of ``job`` goes to."""
        return job.queue or self.executor.queue

    def job(self, job_id: str) -> JobDefinition:
        """The job ``job_id``; :class:`UnknownJobError` (with a suggestion) if undefined."""
        try:
            return self.jobs[job_id]
        except KeyError:
            raise UnknownJobError(job_id, list(self.jobs)) from None


#: the canonical JSON a definition is hashed in (made once: ``json.dumps`` with options
#: makes a new encoder each call)
_HASH_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
#: scalar types that hold nothing to walk into (exact types: a subclass takes the long way)
_JSON_SCALARS = frozenset({str, int, float, bool})


def iter_retvals(value: Any) -> Iterator[RetvalRef]:
    """Every RetvalRef inside ``value`` (mapping keys and values, sequences, sets)."""
    found: list[RetvalRef] = []
    _collect_retvals(value, found)
    return iter(found)


def _collect_retvals(value: Any, found: list[RetvalRef]) -> None:
    kind = type(value)
    if kind in _JSON_SCALARS or value is None:  # a leaf: most values are
        return
    if kind is RetvalRef:
        found.append(value)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _collect_retvals(key, found)
            _collect_retvals(item, found)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            _collect_retvals(item, found)
