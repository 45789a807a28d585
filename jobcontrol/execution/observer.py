"""What a run tells the one who started it: :class:`BuildObserver` (the CLI renders it, a
worker logs it)."""

from __future__ import annotations

import logging

from jobcontrol.errors import JobControlError
from jobcontrol.models import Build, LogRecord, ProgressItem

logger = logging.getLogger(__name__)


class BuildObserver:
    """Receives what happens during a run (the CLI renders it). Every method is optional."""

    def build_started(self, build: Build) -> None:
        """A build was claimed and is about to run."""

    def build_log(self, build: Build, record: LogRecord) -> None:
        """A log record arrived (before it is stored)."""

    def build_progress(self, build: Build, item: ProgressItem) -> None:
        """A progress report arrived."""

    def build_finished(self, build: Build) -> None:
        """A build's outcome was recorded."""

    def build_retrying(self, build: Build, delay: float, attempt: int, attempts: int) -> None:
        """A failed build will be retried after ``delay`` seconds (retry ``attempt`` of
        ``attempts``)."""

    def notification_failed(self, build: Build, problem: str) -> None:
        """A notification of the build's job could not be sent (the build is not affected);
        logged as a warning unless the observer says it otherwise."""
        logger.warning("%s", problem)

    def job_not_built(self, job_id: str, reason: str) -> None:
        """A job of the plan was not built (up to date, or blocked by a failure)."""

    def job_refused(self, job_id: str, error: JobControlError) -> None:
        """A job of the plan was refused (already running, dependencies not met): the run
        raises the first such error when it ends. By default, a job not built."""
        self.job_not_built(job_id, str(error))
