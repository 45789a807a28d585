"""What the local executor writes to the storage, and what it does while the storage
refuses writes (a full disk, a read-only or unreachable database): warn once (once in
:data:`WARN_AGAIN_AFTER`), hold the records, and try again after a pause that doubles up to
:data:`MAX_WRITE_PAUSE`; an outcome is tried for ``outcome_retry`` seconds, then
:class:`~jobcontrol.errors.OutcomeNotRecordedError` says the record is incomplete."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from jobcontrol.errors import OutcomeNotRecordedError, StorageError
from jobcontrol.execution.runner import Outcome
from jobcontrol.execution.running import Running
from jobcontrol.models import Build
from jobcontrol.storage.base import Storage
from jobcontrol.timeutil import format_duration

#: the longest pause between two tries of a storage that refuses writes, in seconds
MAX_WRITE_PAUSE = 5.0
#: seconds before a storage that refuses writes again (some fit, on a disk nearly full) is
#: warned about again
WARN_AGAIN_AFTER = 300.0

logger = logging.getLogger(__name__)


class Recorder:
    """Writes the builds of one executor: their log batches and progress, their outcomes."""

    def __init__(self, storage: Storage, *, outcome_retry: float, first_pause: float) -> None:
        self.storage = storage
        self.outcome_retry = outcome_retry
        #: the pause after the first refusal (it doubles from there)
        self._first_pause = first_pause
        #: the storage's error while it refuses writes (None: the last write went in)
        self.fault: str | None = None
        #: when to try a refused write again (``time.monotonic()``), and the pause after
        self.retry_at = 0.0
        self._pause = 0.0
        #: when that was last warned about (``time.monotonic()``; None: never)
        self._warned: float | None = None

    def flush(self, entry: Running) -> bool:
        """Write what the build produced; False if the storage refused it (or is in its
        pause after refusing): it is kept for the next try."""
        if not (entry.logs or entry.progress):
            return True
        if self.fault is not None and time.monotonic() < self.retry_at:
            return False
        try:
            with entry.lock:
                self._write_held(entry)
        except StorageError as exc:
            self.refused(exc)
            return False
        self.taken()
        return True

    def _write_held(self, entry: Running) -> None:
        """Write the build's log records and progress held (with ``entry.lock``)."""
        if entry.logs:
            self.storage.append_logs(entry.build.id, entry.logs)
            entry.logs = []
            entry.held_bytes = 0
        if entry.progress:
            self.storage.set_progress(entry.build.id, list(entry.progress.values()))
            entry.progress = {}

    def refused(self, exc: StorageError) -> None:
        """The storage failed (a write, mostly): say so once (once in
        :data:`WARN_AGAIN_AFTER`), and pause before the next try."""
        now = time.monotonic()
        if self.fault is None:
            if self._warned is None or now - self._warned >= WARN_AGAIN_AFTER:
                self._warned = now
                logger.warning(
                    "%s: log records are held in memory until the storage takes them again; "
                    "a build's outcome is tried for %s", exc,
                    format_duration(self.outcome_retry))
            self._pause = self._first_pause
        else:
            self._pause = min(self._pause * 2, MAX_WRITE_PAUSE)
        self.fault = str(exc)
        self.retry_at = now + self._pause

    def taken(self) -> None:
        if self.fault is not None:
            logger.info("the storage takes writes again")
            self.fault = None

    def commit_outcomes(self, stopping: Callable[[], bool]) -> None:
        """At the end of a run: commit the outcomes the storage holds for its next write
        (``commit_later``), trying one it refuses for ``outcome_retry`` seconds, as
        the executor does for a build's outcome (this waits: call it where no build runs)."""
        deadline: float | None = None
        while True:
            try:
                self.storage.commit_pending()
            except StorageError as exc:
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.outcome_retry
                if now >= deadline or stopping():
                    raise self.not_recorded(exc, None, self.tried(now, deadline)) from exc
                self.refused(exc)
                time.sleep(max(0.0, min(self.retry_at, deadline) - now))
                continue
            self.taken()
            return

    def write_outcome(self, entry: Running, outcome: Outcome) -> Build:
        """Flush the last records and record the outcome (after a flush of the inline
        watcher's, never before it)."""
        with entry.lock:
            if entry.progress:
                self.storage.set_progress(entry.build.id, list(entry.progress.values()))
                entry.progress = {}
            # the last records and the outcome in one transaction where the storage can;
            # left for the storage to commit with its next write only while it takes writes
            build = self.storage.finish_build_with_logs(
                entry.build.id, outcome.state, logs=entry.logs, reason=outcome.reason,
                result=outcome.result, exception=outcome.exception,
                commit_later=self.fault is None,
            )
            entry.logs = []
        return build

    def tried(self, now: float, deadline: float) -> str:
        """How long an outcome was tried, for :meth:`_not_recorded`."""
        if now >= deadline:
            return f"for {format_duration(self.outcome_retry)}"
        return "until the runner was asked to stop"

    def not_recorded(self, exc: StorageError, outcome: str | None, tried: str
                      ) -> OutcomeNotRecordedError:
        """The error that gives up on ``outcome`` (and on every outcome the storage kept
        to write again: they are reported here, once)."""
        build_id: int | None = None
        cause: BaseException = exc
        if isinstance(exc, OutcomeNotRecordedError):  # one the storage kept: its error
            build_id, cause = exc.build_id, exc.__cause__ or exc
            outcome = outcome or exc.outcome
        if outcome is None:
            outcome = "a build" if build_id is None else f"build {build_id}"
        others = [f"build {i}" for i in self.storage.give_up_pending() if i != build_id]
        also = f" (nor those of {', '.join(others)})" if others else ""
        return OutcomeNotRecordedError(
            f"{outcome}, but the storage refused its outcome{also} {tried}: {cause}. The "
            f"record is incomplete: the next command that can write marks the build "
            f"abandoned", build_id)


def ended(build: Build, outcome: Outcome) -> str:
    """How a build ended, for a message: "build 7 (report) ended success"."""
    return f"build {build.id} ({build.job_id}) ended {outcome.state}"
