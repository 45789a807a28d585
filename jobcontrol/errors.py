"""One exception hierarchy for everything jobcontrol refuses to do.

Every error carries an ``exit_code`` (the CLI's contract, see README "Exit codes") and a
message that says what is wrong and, where it can, how to fix it.
"""

from __future__ import annotations

from collections.abc import Sequence


class JobControlError(Exception):
    """Base class of every error jobcontrol raises on purpose."""

    #: process exit code the CLI uses for this error
    exit_code = 2


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


class DependencyError(JobControlError):
    """A build cannot start because a dependency has never built successfully."""

    exit_code = 3

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

    exit_code = 4

    def __init__(self, job_id: str, running: Sequence[int]) -> None:
        self.job_id = job_id
        self.running = tuple(running)
        ids = ", ".join(str(i) for i in self.running)
        noun = "build" if len(self.running) == 1 else "builds"
        super().__init__(f"job {job_id!r} is already running ({noun} {ids})")


class RetvalError(JobControlError):
    """A ``!retval`` argument cannot be given the dependency's return value."""


class StorageError(JobControlError):
    """The storage cannot be opened, migrated or written."""


class OutcomeNotRecordedError(StorageError):
    """A build ended, but the storage would not take its outcome (a full disk, a read-only
    or unreachable database), retried for ``runner.outcome_retry``: its record is
    incomplete until the next command that can write marks it abandoned."""

    exit_code = 6

    def __init__(self, message: str, build_id: int | None = None) -> None:
        self.build_id = build_id
        super().__init__(message)


class BrokerError(JobControlError):
    """The Celery broker cannot be reached, or the executor is not Celery's."""


class BuildStateError(JobControlError):
    """The operation does not fit the build's state (deleting a running build, cancelling a
    finished one): nothing was changed."""

    exit_code = 5


class CycleError(ConfigError):
    """The dependencies form a cycle; ``cycle`` lists it, first job repeated at the end."""

    def __init__(self, cycle: Sequence[str], file: str | None = None, line: int | None = None,
                 column: int | None = None) -> None:
        self.cycle = tuple(cycle)
        super().__init__("dependency cycle: " + " -> ".join(self.cycle), file, line, column)
