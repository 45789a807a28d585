"""Reading the record (builds, their logs and progress): the part of the Python API
(:class:`~jobcontrol.core.JobControl` takes it in) that answers ``builds``, ``show``,
``logs`` and the web UI's pages. A build read while its runner is gone is marked
``abandoned`` first (:mod:`jobcontrol.reaper`), so what is shown is true."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

from jobcontrol.errors import StorageError
from jobcontrol.models import HOSTNAME, Build, BuildQuery, BuildState, LogRecord, ProgressItem
from jobcontrol.reaper import abandon
from jobcontrol.storage.base import Storage

logger = logging.getLogger(__name__)


class History:
    """Builds, logs and progress as recorded: a part of :class:`~jobcontrol.core.JobControl`."""

    storage: Storage

    @property
    def heartbeat_timeout(self) -> float:  # JobControl's
        raise NotImplementedError

    def _reap_before_reading(self) -> None:  # JobControl's
        raise NotImplementedError

    def builds(self, job_id: str | None = None, *, states: Sequence[BuildState] | None = None,
               limit: int | None = None, before_id: int | None = None) -> list[Build]:
        """Build history, newest first."""
        self._reap_before_reading()
        return self.storage.list_builds(job_id, states=states, limit=limit, before_id=before_id)

    def search_builds(self, query: BuildQuery, *, limit: int, offset: int = 0
                      ) -> tuple[list[Build], int]:
        """Every job's builds ``query`` matches, newest first (``limit`` after ``offset``),
        and how many match in all: the Builds page and ``GET /api/v1/builds``."""
        self._reap_before_reading()
        return (self.storage.search_builds(query, limit=limit, offset=offset),
                self.storage.count_builds(query))

    def get_build(self, build_id: int) -> Build:
        """One build; BuildNotFoundError if there is none."""
        build = self.storage.get_build(build_id)
        if build.state is BuildState.RUNNING:
            try:
                build = abandon(self.storage, build, host=HOSTNAME, now=self.storage.now(),
                                heartbeat_timeout=self.heartbeat_timeout) or build
            except StorageError as exc:  # read-only: shown as it stands
                logger.warning("build %s not marked abandoned: %s", build_id, exc)
        return build

    def logs(self, build_id: int, *, min_level: int = 0, after_seq: int = 0,
             limit: int | None = None) -> list[LogRecord]:
        """A build's log records, in order."""
        self.storage.get_build(build_id)
        return self.storage.get_logs(build_id, min_level=min_level, after_seq=after_seq,
                                     limit=limit)

    def iter_logs(self, build_id: int, *, min_level: int = 0, after_seq: int = 0
                  ) -> Iterator[LogRecord]:
        """A build's log records, in order, read a page at a time: what ``logs`` prints
        with, in bounded memory however long the log. BuildNotFoundError at once if there
        is no such build."""
        self.storage.get_build(build_id)
        return self.storage.iter_logs(build_id, min_level=min_level, after_seq=after_seq)

    def wait_for_logs(self, build_id: int, after_seq: int, timeout: float, *,
                      min_level: int = 0, poll_interval: float = 0.5) -> None:
        """Block until the build has log records after ``after_seq`` (at ``min_level`` or
        above), or has ended, or ``timeout`` seconds pass; what ``logs --follow`` and the
        web UI's live log wait with (PostgreSQL wakes on LISTEN/NOTIFY, others poll)."""
        self.storage.wait_for_logs(build_id, after_seq, timeout, min_level=min_level,
                                   poll_interval=poll_interval)

    def progress(self, build_id: int) -> list[ProgressItem]:
        """A build's progress items (see :func:`jobcontrol.progress_report` for the tree)."""
        return self.storage.get_progress(build_id)
