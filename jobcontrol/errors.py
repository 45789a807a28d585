"""One exception hierarchy for everything jobcontrol refuses to do, and the exit codes.

Every error carries an ``exit_code`` (the CLI's contract: :class:`ExitCode`, the docs'
"Exit codes" table) and a message that says what is wrong and, where it can, how to fix it.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum


class ExitCode(IntEnum):
    """Every exit code of the ``jobcontrol`` command, each defined here once with its meaning
    (the docs' "Exit codes" table is generated from it)."""

    meaning: str

    def __new__(cls, value: int, meaning: str) -> ExitCode:
        member = int.__new__(cls, value)
        member._value_ = value
        member.meaning = meaning
        return member

    OK = 0, ("success (every build succeeded or was skipped; or nothing needed building; or "
             "the job is paused: not built, said in one line)")
    FAILED = 1, ("a build failed, timed out, was killed or was cancelled; a cleanup_function "
                 "failed (delete, prune); check --freshness: a job is stale")
    USAGE = 2, ("usage or config error (bad option, bad YAML, unknown job, import error, "
                "broker that cannot be reached, ...)")
    DEPENDENCIES = 3, ("dependencies not met: a dependency never built successfully (a "
                       "skipped build is no success; use --deps)")
    RUNNING = 4, "not started: the job is already running as many builds as its concurrency"
    STATE = 5, ("the build's state does not allow it, nothing changed: cancel of a finished "
                "build, delete of a running one")
    STORAGE = 6, ("the storage cannot be reached, opened or written (check tries it); a build "
                  "ended but the storage refused its outcome for runner.outcome_retry: its "
                  "record is incomplete until the next command that can write marks it "
                  "abandoned")
    BROKER = 7, ("build --async: the broker cannot be reached or did not answer within "
                 "executor.timeout, or the sending was interrupted; the builds not sent "
                 "were cancelled, none is left queued")
    PARAMS = 8, ("a build's parameters were refused (--param): unknown to the job, or not of "
                 "its declared type; nothing was built")


class JobControlError(Exception):
    """Base class of every error jobcontrol raises on purpose."""

    #: process exit code the CLI uses for this error
    exit_code: int = ExitCode.USAGE


class ConfigError(JobControlError):
    """A mistake in the job definitions file, located by file, line and column.

    ``line`` and ``column`` are 1-based; either may be ``None`` when the mistake has no
    single place (an unreadable file, say).
    """

    def __init__(
        self,
        message: str,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        super().__init__(str(self))

    @property
    def location(self) -> str:
        """``file:line:column``, as much of it as is known."""
        parts = [self.file or "<config>"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class JobImportError(JobControlError):
    """A job's ``function`` (or ``cleanup_function``) cannot be imported."""


class UnknownJobError(JobControlError):
    """A job id that the configuration does not define."""

    def __init__(self, job_id: str, known: Sequence[str] = ()) -> None:
        self.job_id = job_id
        hint = " Run `jobcontrol jobs` to list them."
        import difflib

        close = difflib.get_close_matches(job_id, list(known), n=1)
        if close:
            hint = f" Did you mean {close[0]!r}?"
        super().__init__(f"unknown job {job_id!r}.{hint}")


class BuildNotFoundError(JobControlError):
    """No build with that id exists in the storage."""

    def __init__(self, build_id: int) -> None:
        self.build_id = build_id
        super().__init__(f"build {build_id} not found")


class RunNotFoundError(JobControlError):
    """No run with that id exists in the storage."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        super().__init__(f"run {run_id} not found")


class ParamError(JobControlError):
    """A parameter given to a build is unknown to its job or not of the declared type."""

    exit_code = ExitCode.PARAMS

    def __init__(self, job_id: str, name: str, problem: str) -> None:
        self.job_id = job_id
        self.name = name
        super().__init__(f"job {job_id!r}, parameter {name!r}: {problem}")


class DependencyError(JobControlError):
    """A build cannot start because a dependency has never built successfully."""

    exit_code = ExitCode.DEPENDENCIES

    def __init__(self, job_id: str, missing: Sequence[str]) -> None:
        self.job_id = job_id
        self.missing = tuple(missing)
        names = ", ".join(self.missing)
        super().__init__(
            f"dependencies not met for {job_id!r}: {names} never built successfully "
            f"(use --deps to build them first)"
        )


class JobAlreadyRunningError(JobControlError):
    """The job already has as many running builds as its ``concurrency`` allows."""

    exit_code = ExitCode.RUNNING

    def __init__(self, job_id: str, running: Sequence[int]) -> None:
        self.job_id = job_id
        self.running = tuple(running)
        ids = ", ".join(str(i) for i in self.running)
        noun = "build" if len(self.running) == 1 else "builds"
        super().__init__(f"job {job_id!r} is already running ({noun} {ids})")


class JobPausedError(JobControlError):
    """The job is paused (``jobcontrol pause``): it is not started but by ``--force``.

    Exit code 0: a paused job not built from cron is what its pause asked for, not a
    failure to mail about."""

    exit_code = ExitCode.OK

    def __init__(self, job_id: str, described: str, command: str = "build") -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id!r} is {described}; not started (resume it, or "
                         f"{command} --force)")


class RetvalError(JobControlError):
    """A ``!retval`` argument cannot be given the dependency's return value."""


class CleanupError(JobControlError):
    """A job's ``cleanup_function`` raised: the build was kept."""

    exit_code = ExitCode.FAILED


class StorageError(JobControlError):
    """The storage cannot be opened, migrated or written."""

    exit_code = ExitCode.STORAGE


class OutcomeNotRecordedError(StorageError):
    """A build ended, but the storage would not take its outcome (a full disk, a read-only
    or unreachable database), retried for ``runner.outcome_retry``: its record is
    incomplete until the next command that can write marks it abandoned."""

    def __init__(self, message: str, build_id: int | None = None,
                 outcome: str | None = None) -> None:
        self.build_id = build_id
        #: how that build ended, where known ("build 7 (report) ended success")
        self.outcome = outcome
        super().__init__(message)


class BrokerError(JobControlError):
    """The Celery broker cannot be reached, or the executor is not Celery's."""


class BrokerUnreachableError(BrokerError):
    """Sending builds to the broker failed: it refused, or did not answer within
    ``executor.timeout``. The builds not sent were cancelled."""

    exit_code = ExitCode.BROKER


#: the extra that installs what each part of jobcontrol imports lazily
EXTRA_OF_MODULE = {
    "jobcontrol.execution.celery": "celery",
    "jobcontrol.storage.postgresql": "postgresql",
    "jobcontrol.web": "web",
    "jobcontrol.cli.web": "web",
}


class MissingDependencyError(JobControlError):
    """An optional library (an extra: ``celery``, ``postgresql``, ``web``), or one that it
    needs, is missing or broken: the message names the module and what to install."""

    def __init__(self, error: ImportError, extra: str | None = None) -> None:
        self.extra = extra if extra is not None else _extra_of(error)
        missing = f"module {error.name!r} is missing" if error.name else str(error)
        fix = (f"pip install 'jobcontrol[{self.extra}]'" if self.extra
               else "reinstall jobcontrol with the extras you use")
        super().__init__(f"a library jobcontrol needs cannot be imported: {missing} "
                         f"({fix})")


def _extra_of(error: ImportError) -> str | None:
    """The extra of the innermost jobcontrol module on ``error``'s traceback, if any."""
    found = None
    tb = error.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        for prefix, extra in EXTRA_OF_MODULE.items():
            if module == prefix or module.startswith(prefix + ".") \
                    or module.startswith(prefix + "_"):
                found = extra
        tb = tb.tb_next
    return found


class BuildStateError(JobControlError):
    """The operation does not fit the build's state (deleting a running build, cancelling a
    finished one): nothing was changed."""

    exit_code = ExitCode.STATE


class CycleError(ConfigError):
    """The dependencies form a cycle; ``cycle`` lists it, first job repeated at the end."""

    def __init__(self, cycle: Sequence[str], file: str | None = None, line: int | None = None,
                 column: int | None = None) -> None:
        self.cycle = tuple(cycle)
        super().__init__("dependency cycle: " + " -> ".join(self.cycle), file, line, column)
