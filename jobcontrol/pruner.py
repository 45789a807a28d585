"""Pruning: applying each job's retention policy to the storage, in bounded batches.

:mod:`jobcontrol.retention` decides; this module reads a job's builds page by page, runs the
cleanup function of each build it deletes, and deletes builds (with their logs and
progress) and old log records :data:`~jobcontrol.storage.base.DELETE_BATCH` builds a
transaction, so a prune of a million builds never holds a lock for long.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jobcontrol.config import JobDefinition
from jobcontrol.errors import BuildNotFoundError, JobControlError, JobImportError
from jobcontrol.models import Build, BuildStub, LogCutoff
from jobcontrol.retention import judge_builds, log_cutoffs, may_have_old_logs
from jobcontrol.storage.base import DELETE_BATCH, Storage

__all__ = ["CleanupFailure", "JobPrune", "PruneReport", "prune"]

#: builds read a page when walking a job's history
PAGE = 5000


@dataclass(frozen=True)
class CleanupFailure:
    """A build kept because its job's ``cleanup_function`` failed on it."""

    build_id: int
    message: str


@dataclass(frozen=True)
class JobPrune:
    """What pruning did (or, in a dry run, would do) to one job."""

    job_id: str
    #: False when the job has no ``retention:``: nothing of it is pruned
    has_policy: bool
    #: ids of the builds deleted, oldest first
    deleted: tuple[int, ...] = ()
    #: log records that went with the deleted builds
    deleted_logs: int = 0
    #: log records deleted from kept builds by the ``logs:`` rules
    trimmed_logs: int = 0
    #: builds kept
    kept: int = 0
    #: builds kept because their cleanup failed
    failures: tuple[CleanupFailure, ...] = ()
    #: why no build of the job was deleted (its cleanup_function does not import), if so
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "job": self.job_id,
            "has_policy": self.has_policy,
            "deleted": list(self.deleted),
            "deleted_logs": self.deleted_logs,
            "trimmed_logs": self.trimmed_logs,
            "kept": self.kept,
            "failures": [{"build": f.build_id, "message": f.message} for f in self.failures],
            "error": self.error,
        }


@dataclass(frozen=True)
class PruneReport:
    """What ``prune`` did to every job it looked at, in definition order."""

    dry_run: bool
    jobs: tuple[JobPrune, ...]

    @property
    def deleted_builds(self) -> int:
        return sum(len(job.deleted) for job in self.jobs)

    @property
    def deleted_logs(self) -> int:
        """Log records deleted: with their builds and from kept builds."""
        return sum(job.deleted_logs + job.trimmed_logs for job in self.jobs)

    @property
    def ok(self) -> bool:
        """False when a cleanup failed (those builds were kept)."""
        return not any(job.failures or job.error for job in self.jobs)

    def as_json(self) -> dict[str, Any]:
        """``prune --format json``."""
        return {
            "dry_run": self.dry_run,
            "deleted_builds": self.deleted_builds,
            "deleted_logs": self.deleted_logs,
            "jobs": [job.as_json() for job in self.jobs],
        }


#: runs a job's cleanup_function on a build; JobControlError when it fails
Cleanup = Callable[[Build], None]


def prune(storage: Storage, jobs: Sequence[JobDefinition], cleanup: Cleanup, *,
          now: datetime, dry_run: bool = False) -> PruneReport:
    """Apply each job's ``retention`` policy at ``now``; with ``dry_run``, only count."""
    return PruneReport(dry_run, tuple(
        _JobPruner(storage, job, cleanup, now, dry_run).run() for job in jobs
    ))


@dataclass
class _JobPruner:
    storage: Storage
    job: JobDefinition
    cleanup: Cleanup
    now: datetime
    dry_run: bool
    deleted: list[int] = field(default_factory=list)
    deleted_logs: int = 0
    trimmed_logs: int = 0
    kept: int = 0
    failures: list[CleanupFailure] = field(default_factory=list)
    error: str | None = None

    def run(self) -> JobPrune:
        policy = self.job.retention
        if policy is None:
            return JobPrune(self.job.id, has_policy=False)
        cutoffs = log_cutoffs(policy, self.now)
        doomed: list[int] = []
        trim: list[int] = []
        for verdict in judge_builds(policy, self._stubs(), self.now):
            if not verdict.keep:
                doomed.append(verdict.build.id)
                if len(doomed) >= DELETE_BATCH:
                    self._delete(doomed)
                    doomed = []
            else:
                self.kept += 1
                if may_have_old_logs(verdict.build, cutoffs):
                    trim.append(verdict.build.id)
                    if len(trim) >= DELETE_BATCH:
                        self._trim(trim, cutoffs)
                        trim = []
        self._delete(doomed)
        self._trim(trim, cutoffs)
        return JobPrune(
            self.job.id, has_policy=True, deleted=tuple(sorted(self.deleted)),
            deleted_logs=self.deleted_logs, trimmed_logs=self.trimmed_logs, kept=self.kept,
            failures=tuple(self.failures), error=self.error,
        )

    def _stubs(self) -> Iterator[BuildStub]:
        """Every build of the job, newest first, a page at a time (deleting the builds
        already read does not move the next page: it starts below the last id read)."""
        before: int | None = None
        while True:
            page = self.storage.build_stubs(self.job.id, before_id=before, limit=PAGE)
            yield from page
            if len(page) < PAGE:
                return
            before = page[-1].id

    def _delete(self, build_ids: list[int]) -> None:
        if self.error is not None:
            self.kept += len(build_ids)  # no cleanup can run: every build stays
            return
        if not self.dry_run and self.job.cleanup_function:
            build_ids = self._cleaned(build_ids)
        if not build_ids:
            return
        self.deleted_logs += self.storage.count_logs(build_ids)
        if not self.dry_run:
            self.storage.delete_builds(build_ids)
        self.deleted += build_ids

    def _cleaned(self, build_ids: list[int]) -> list[int]:
        """The builds whose cleanup ran without error (the others are kept and reported)."""
        cleaned: list[int] = []
        for index, build_id in enumerate(build_ids):
            try:
                build = self.storage.get_build(build_id)
            except BuildNotFoundError:
                continue  # deleted meanwhile by someone else
            try:
                self.cleanup(build)
            except JobImportError as error:
                self.error = f"{error}; no build of {self.job.id} was deleted"
                self.kept += len(build_ids) - index
                return cleaned
            except JobControlError as error:
                self.failures.append(CleanupFailure(build_id, str(error)))
                self.kept += 1
            else:
                cleaned.append(build_id)
        return cleaned

    def _trim(self, build_ids: list[int], cutoffs: list[LogCutoff]) -> None:
        if not build_ids:
            return
        if self.dry_run:
            self.trimmed_logs += self.storage.count_logs(build_ids, cutoffs)
        else:
            self.trimmed_logs += self.storage.delete_logs(build_ids, cutoffs)
