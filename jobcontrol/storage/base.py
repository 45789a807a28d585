"""The storage interface: every backend (memory, SQLite, PostgreSQL) implements it whole.

Backends know nothing of configs or graphs: they keep builds, their logs and their progress,
and answer questions about them. Grouped by concern: lifecycle, builds, logs, progress
(and, in :mod:`~jobcontrol.storage.shared_state`, the settings and web sessions).
The contract test suite (``tests/test_storage_contract.py``) runs against every backend.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from jobcontrol.errors import BuildNotFoundError
from jobcontrol.models import (
    TEXT_WINDOW,
    Build,
    BuildMark,
    BuildQuery,
    BuildState,
    BuildStub,
    ExceptionInfo,
    JobPause,
    JobSummary,
    LogCutoff,
    LogRecord,
    NewRun,
    ProgressItem,
    Run,
    RunTrigger,
    ScheduledRun,
    StoredValue,
)
from jobcontrol.storage.shared_state import SharedState
from jobcontrol.timeutil import utcnow

_S = TypeVar("_S", bound="Storage")
_T = TypeVar("_T")

#: most builds :meth:`Storage.delete_builds` and :meth:`Storage.delete_logs` touch in one
#: transaction: a prune of a million builds is many short transactions, not one long lock
DELETE_BATCH = 500
#: log numbers (``seq``) a page of :meth:`Storage.iter_logs` spans (records a query, at most)
LOG_PAGE = 1000
#: how the reason of a queued build waiting for a slot begins (the slot_waiters query's)
SLOT_WAIT = "waited for a free slot"


class Storage(SharedState, abc.ABC):
    """Abstract storage of builds, logs and progress.

    Times are timezone-aware UTC. Build ids increase: a larger id is a later build.
    Implementations are safe to use from one thread at a time; each process opens its own.
    """

    #: the URL this storage was opened with (passwords included: do not print it as is)
    url: str

    # -- lifecycle ---------------------------------------------------------------------------

    @abc.abstractmethod
    def install(self) -> int:
        """Create the schema or migrate it forward; return the schema version now in place.
        Also run automatically on first use, so calling it is only needed to do it eagerly."""

    @abc.abstractmethod
    def schema_version(self) -> int:
        """The schema version in place (0 when nothing is installed)."""

    def check_writable(self) -> None:
        """Make one write and roll it back: :class:`~jobcontrol.errors.StorageError` when
        the storage cannot be written (a read-only file or server, no privilege)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections. The object must not be used afterwards."""

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- builds ------------------------------------------------------------------------------

    @abc.abstractmethod
    def claim_build(
        self,
        job_id: str,
        *,
        concurrency: int,
        definition: Mapping[str, Any],
        definition_hash: str,
        dependency_builds: Mapping[str, int],
        host: str,
        pid: int,
        retry_of: int | None = None,
        run_id: int | None = None,
        params: Mapping[str, Any] | None = None,
        pid_namespace: str | None = None,
        pgid: int | None = None,
    ) -> Build:
        """Atomically create a ``running`` build of ``job_id``, started now, of run
        ``run_id``, with ``params`` (those that differ from the job's defaults), run by
        process ``pid`` of ``host`` in ``pid_namespace`` (see :attr:`Build.pid_namespace`),
        and with the process group it will run in where that is known before it starts (a
        pool's warm worker: one write less than :meth:`set_process_group` after the start).

        Refused with :class:`~jobcontrol.errors.JobAlreadyRunningError` (naming the running
        builds) when the job already has ``concurrency`` running builds. The check and the
        insert are one atomic step: many processes claiming at once never exceed the limit.
        """

    @abc.abstractmethod
    def enqueue_build(
        self,
        job_id: str,
        *,
        definition: Mapping[str, Any],
        definition_hash: str,
        dependency_builds: Mapping[str, int],
        queue: str,
        retry_of: int | None = None,
        run_id: int | None = None,
        params: Mapping[str, Any] | None = None,
        new_run: NewRun | None = None,
        unless_paused: bool = False,
    ) -> Build | None:
        """Create a ``queued`` build of ``job_id`` for a remote worker on ``queue`` (of run
        ``run_id``, with ``params``, as :meth:`claim_build`). With ``new_run`` instead of
        ``run_id``, that run is recorded as :meth:`create_run` would, in the same write.
        With ``unless_paused``, a job with a pause in force raises
        :class:`~jobcontrol.errors.JobPausedError` and nothing is recorded (the pause is read
        in the write's transaction).

        ``dependency_builds`` names the builds it waits for (see
        :mod:`jobcontrol.execution.remote`). With ``retry_of``, the build retries that one,
        and a build is retried only once: if a retry of ``retry_of`` exists already, nothing
        is created and None is returned (workers noticing one failure together make one retry).
        """

    @abc.abstractmethod
    def start_queued_build(
        self,
        build_id: int,
        *,
        concurrency: int,
        host: str,
        pid: int,
        dependency_builds: Mapping[str, int] | None = None,
        worker_id: str | None = None,
        pid_namespace: str | None = None,
        definition_hash: str | None = None,
        pgid: int | None = None,
        job_id: str | None = None,
    ) -> Build | None:
        """Atomically turn a ``queued`` build ``running`` (started now, on ``host``/``pid``
        in ``pid_namespace``, by the worker ``worker_id``, in process group ``pgid``).

        Returns None when the build is no longer queued (started by someone else, cancelled,
        finished): ``queued → running`` happens once, however often it is asked for. With
        ``definition_hash``, also None (the build stays queued) when the build's is another:
        a worker whose config differs leaves it for one whose config matches; with ``job_id``,
        when it is of another job.
        Refused with :class:`~jobcontrol.errors.JobAlreadyRunningError` while its job has
        ``concurrency`` running builds (the build stays queued). ``dependency_builds``, when
        given, replaces what the build records as consumed. Raises
        :class:`~jobcontrol.errors.BuildNotFoundError` for an unknown id.
        """

    @abc.abstractmethod
    def get_retry(self, build_id: int) -> Build | None:
        """The build that retries ``build_id`` (``retry_of == build_id``), if there is one."""

    @abc.abstractmethod
    def consumers(self, build_id: int, job_id: str, dependents: Sequence[str], *,
                  limit: int = 50, scan: int = 1000) -> list[Build]:
        """The builds that consumed build ``build_id`` of ``job_id`` (its id in their
        ``dependency_builds``), oldest first, at most ``limit``: looked for only among the
        first ``scan`` builds of each of ``dependents`` (the jobs that depend on ``job_id``)
        made after it, a range of the ``(job_id, id)`` index; no index serves the JSON
        column itself, so the read stays bounded however long the history."""

    @abc.abstractmethod
    def finish_build(
        self,
        build_id: int,
        state: BuildState,
        *,
        reason: str | None = None,
        result: StoredValue | None = None,
        exception: ExceptionInfo | None = None,
        finished: datetime | None = None,
    ) -> Build:
        """Record the outcome of a running build and return it; ``finished``: when it
        ended, if not now (an abandoned build ended at its last heartbeat).

        Only a build that is still ``running`` (or ``queued``) is changed; a build already
        finished is returned as it is, unchanged (a late writer never overwrites an outcome).
        Raises :class:`~jobcontrol.errors.BuildNotFoundError` for an unknown id.
        """

    def finish_build_with_logs(
        self,
        build_id: int,
        state: BuildState,
        *,
        logs: Sequence[LogRecord],
        reason: str | None = None,
        result: StoredValue | None = None,
        exception: ExceptionInfo | None = None,
        commit_later: bool = False,
    ) -> Build:
        """:meth:`append_logs` then :meth:`finish_build`; a backend may do both in one
        transaction (the SQL ones do), saving a commit on every build.

        ``commit_later``: the caller may write again soon (claim the next build of a run,
        say). A backend may then leave the outcome uncommitted for that next write to
        commit with its own (a run of quick builds pays one commit a build, not two), but
        commits it itself should no write come within
        :data:`~jobcontrol.storage.commit_timer.PENDING_COMMIT_DELAY`: the caller owes
        nothing for it. Until then other processes do not see the outcome; the build is
        returned as recorded all the same. A backend that cannot (or need not) ignores it."""
        self.append_logs(build_id, logs)
        return self.finish_build(build_id, state, reason=reason, result=result,
                                 exception=exception)

    def commit_pending(self) -> None:
        """Commit now what ``finish_build_with_logs(commit_later=True)`` left pending
        (nothing by default), rather than within ``PENDING_COMMIT_DELAY``. :meth:`close`
        does it too. An outcome that cannot be written raises
        :class:`~jobcontrol.errors.OutcomeNotRecordedError` naming its build, and is kept:
        the next call tries it again."""

    def give_up_pending(self) -> list[int]:
        """Forget the outcomes :meth:`commit_pending` could not write (their writer reports
        them); returns their build ids (none by default)."""
        return []

    @abc.abstractmethod
    def heartbeat(self, build_ids: Sequence[int]) -> set[int]:
        """Set the heartbeat of these running builds to now; returns those of them that
        are not running (any more): someone else ended them (abandoned, say), and their
        runner, fenced off, stops them."""

    @abc.abstractmethod
    def set_process_group(self, build_id: int, pgid: int) -> None:
        """Record the process group of a running build's job process (see ``Build.pgid``);
        a build no longer running is left as it is."""

    @abc.abstractmethod
    def request_cancel(self, build_id: int, reason: str) -> Build:
        """Ask a build to stop, and return it as it now stands.

        A ``queued`` build is ``cancelled`` at once with ``reason``; a ``running`` build gets
        the request recorded (``cancel_requested``, ``cancel_reason``; the first request
        stands) and its runner stops it (see :meth:`cancel_requests`); a finished build is
        returned unchanged. Raises :class:`~jobcontrol.errors.BuildNotFoundError`.
        """

    @abc.abstractmethod
    def mark_resent(self, build_id: int, reason: str, *, first: bool = False) -> bool:
        """Record that a ``queued`` build's message was sent again: its ``heartbeat`` (for
        a queued build: when it was last sent) becomes now, its ``reason`` ``reason``.
        With ``first``, only a build never re-sent (no heartbeat yet): of the workers
        noticing a lost message together, one re-sends it. False when nothing changed."""

    @abc.abstractmethod
    def wait_for_slot(self, build_id: int, reason: str) -> bool:
        """Record that a ``queued`` build found its job's slots taken (``reason`` starts
        with :data:`SLOT_WAIT`; its heartbeat stays); False when it is not queued. Returns
        once the ends of the job's builds being written (left to commit with a runner's
        next write) have committed: a claim tried next sees the slots they freed, and a
        later end finds this build waiting."""

    @abc.abstractmethod
    def slot_waiters(self, job_id: str, *, limit: int = 1) -> list[Build]:
        """The ``queued`` builds of ``job_id`` recorded by :meth:`wait_for_slot`, oldest
        first, at most ``limit`` (a partial index holds them alone)."""

    @abc.abstractmethod
    def note_queued(self, build_id: int, reason: str) -> bool:
        """Set a ``queued`` build's ``reason`` (why it waits: a worker gave it back, or
        its job's slots were taken), not when it was last sent. False when it is not
        queued."""

    @abc.abstractmethod
    def fail_queued(self, build_id: int, reason: str) -> bool:
        """Mark a build ``failed`` with ``reason`` if it is still ``queued`` (a worker that
        started it meanwhile wins); False when it was not."""

    @abc.abstractmethod
    def cancel_requests(self, build_ids: Sequence[int]) -> dict[int, str]:
        """Of these builds, the running ones asked to stop: ``{build_id: reason}``."""

    @abc.abstractmethod
    def record_build(
        self,
        job_id: str,
        state: BuildState,
        *,
        reason: str,
        definition: Mapping[str, Any],
        definition_hash: str,
        host: str,
        pid: int,
        run_id: int | None = None,
    ) -> Build:
        """Record a build that never ran, already finished (a scheduled run skipped because
        the job was still running, say): no claim, whatever the job's concurrency."""

    # -- schedules ---------------------------------------------------------------------------

    @abc.abstractmethod
    def claim_scheduled_run(self, job_id: str, scheduled_for: datetime, *, host: str,
                            pid: int, outcome: str = "claimed") -> bool:
        """Take on the scheduled instant ``scheduled_for`` of ``job_id``: True for exactly
        one caller however many race for it (and whatever happens later), False for the
        rest."""

    @abc.abstractmethod
    def set_scheduled_run(self, job_id: str, scheduled_for: datetime, *, outcome: str,
                          build_id: int | None = None) -> None:
        """Record what became of a claimed instant (``started``, ``overlap``...)."""

    @abc.abstractmethod
    def last_scheduled_runs(self, job_ids: Iterable[str] | None = None
                            ) -> dict[str, ScheduledRun]:
        """The latest instant taken on of each job (that has one), in one query."""

    @abc.abstractmethod
    def scheduled_runs(self, job_id: str, *, limit: int | None = None) -> list[ScheduledRun]:
        """A job's instants taken on, latest first."""

    def now(self) -> datetime:
        """The storage's clock (UTC): every host sharing a storage judges heartbeats by it.

        The database server's where there is one; this machine's otherwise.
        """
        return utcnow()

    @abc.abstractmethod
    def get_build(self, build_id: int) -> Build:
        """One build; :class:`~jobcontrol.errors.BuildNotFoundError` when there is none."""

    @abc.abstractmethod
    def list_builds(
        self,
        job_id: str | None = None,
        *,
        states: Sequence[BuildState] | None = None,
        limit: int | None = None,
        before_id: int | None = None,
    ) -> list[Build]:
        """Builds newest first, filtered by job and states; ``before_id`` pages backwards."""

    @abc.abstractmethod
    def job_summaries(self, job_ids: Iterable[str] | None = None) -> dict[str, JobSummary]:
        """A :class:`JobSummary` for each job with builds (all jobs when ``job_ids`` is None).

        One query for all jobs, never one per job. Jobs without builds are absent. The last
        success is the newest ``success`` without ``params`` of its own (the rule of
        :mod:`jobcontrol.rules.params`: a build given other values than the defaults is
        never a job's last success).
        """

    def build_counts(self) -> dict[tuple[str, BuildState], int]:
        """How many builds each job has in each state: ``{(job_id, state): count}``, in one
        query (the SQL backends count the ``(job_id, state, id)`` index, reading no build
        row). What ``/metrics`` reports; this default reads every build (memory's way)."""
        counts: dict[tuple[str, BuildState], int] = {}
        for build in self.list_builds():
            key = (build.job_id, build.state)
            counts[key] = counts.get(key, 0) + 1
        return counts

    def search_builds(self, query: BuildQuery, *, limit: int, offset: int = 0) -> list[Build]:
        """The builds ``query`` matches, newest first, ``limit`` of them after skipping
        ``offset``: the Builds page. The SQL backends read the ``(state, id)`` or
        ``(job_id, state, id)`` index; this default reads every build (memory's way)."""
        if query.empty or limit <= 0:
            return []
        return self._matching(query)[offset:offset + limit]

    def count_builds(self, query: BuildQuery) -> int:
        """How many builds ``query`` matches: the Builds page's total."""
        return 0 if query.empty else len(self._matching(query))

    def _matching(self, query: BuildQuery) -> list[Build]:
        builds = self.list_builds()  # newest first
        # the reasons searched: within TEXT_WINDOW of the first id past the window
        end = 1 + max((b.id for b in builds), default=0)
        if query.until is not None:
            end = min([end, *(b.id for b in builds if b.created and b.created >= query.until)])
        if query.before_id is not None:
            end = min(end, query.before_id)
        return [b for b in builds if query.matches(b, end - TEXT_WINDOW)]

    @abc.abstractmethod
    def delete_build(self, build_id: int) -> None:
        """Delete a build with its logs and progress. Raises BuildNotFoundError."""

    # -- logs --------------------------------------------------------------------------------

    @abc.abstractmethod
    def append_logs(self, build_id: int, records: Sequence[LogRecord]) -> None:
        """Append records to a build's log in one transaction, numbering them in order."""

    @abc.abstractmethod
    def get_logs(
        self,
        build_id: int,
        *,
        min_level: int = 0,
        after_seq: int = 0,
        limit: int | None = None,
        until_seq: int | None = None,
    ) -> list[LogRecord]:
        """A build's log records in order, with ``seq > after_seq`` (and ``<= until_seq``)
        and ``level >= min_level``."""

    def get_logs_before(self, build_id: int, *, limit: int, before_seq: int | None = None,
                        min_level: int = 0) -> list[LogRecord]:
        """The last ``limit`` records with ``seq < before_seq`` (the log's end when None) and
        ``level >= min_level``, in order: the web's tail of a log and its pages backwards.

        This default reads them all and keeps the last; the SQL backends read only those
        (the ``(build_id, seq)`` key, backwards).
        """
        until = None if before_seq is None else before_seq - 1
        records = self.get_logs(build_id, min_level=min_level, until_seq=until)
        return records[-limit:] if limit > 0 else []

    def iter_logs(self, build_id: int, *, min_level: int = 0, after_seq: int = 0,
                  page: int = LOG_PAGE) -> Iterator[LogRecord]:
        """:meth:`get_logs` read a page at a time: a log of any length in bounded memory.

        A page is the records among the next ``page`` numbers from the next record there
        is (found by a query of its own): both bounds on ``seq``, so a query reads at most
        ``page`` records of the index whatever the database's planner believes (a page with
        only a lower bound and a LIMIT can sort every record left, each page, when a big log
        is new to PostgreSQL's statistics). Records appended while it reads are read too.
        """
        while True:
            following = self.get_logs(build_id, after_seq=after_seq, limit=1)
            if not following:
                return
            start = following[0].seq - 1
            after_seq = start + page
            yield from self.get_logs(build_id, min_level=min_level, after_seq=start,
                                     until_seq=after_seq)

    def wait_for_logs(
        self,
        build_id: int,
        after_seq: int,
        timeout: float,
        *,
        min_level: int = 0,
        poll_interval: float = 0.5,
    ) -> None:
        """Block until the build has log records with ``seq > after_seq`` (at ``min_level``
        or above) or has ended (finished, or deleted), or until ``timeout`` seconds pass.

        What ``logs --follow`` waits with: it reads again after each return, so returning
        early is harmless. This default polls every ``poll_interval`` seconds; PostgreSQL
        wakes as soon as the writer commits (LISTEN/NOTIFY).
        """
        deadline = time.monotonic() + timeout
        while not self._has_log_news(build_id, after_seq, min_level):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(poll_interval, remaining))

    def _has_log_news(self, build_id: int, after_seq: int, min_level: int) -> bool:
        """True when :meth:`wait_for_logs` has something to wake its caller for."""
        if self.get_logs(build_id, min_level=min_level, after_seq=after_seq, limit=1):
            return True
        try:
            return self.get_build(build_id).state.finished
        except BuildNotFoundError:
            return True

    # -- progress ----------------------------------------------------------------------------

    @abc.abstractmethod
    def set_progress(self, build_id: int, items: Sequence[ProgressItem]) -> None:
        """Insert or replace the progress of each item's group, in one transaction."""

    @abc.abstractmethod
    def get_progress(self, build_id: int) -> list[ProgressItem]:
        """A build's progress items, ordered by group."""

    # -- housekeeping (``jobcontrol prune``) -------------------------------------------------

    @abc.abstractmethod
    def build_stubs(
        self, job_id: str, *, before_id: int | None = None, limit: int | None = None
    ) -> list[BuildStub]:
        """A job's builds as :class:`BuildStub` (id, state, times), newest first;
        ``before_id`` pages backwards. Cheap: no definitions, results or logs are read."""

    def recent_builds(self, job_ids: Sequence[str], *, per_job: int
                      ) -> dict[str, list[BuildMark]]:
        """Each job's ``per_job`` newest builds as :class:`BuildMark` (id, state), newest
        first (jobs without builds are absent): the web's history strips.

        The SQL backends answer in one query for all jobs (an index descent per job); this
        default asks :meth:`build_stubs` job by job, which only the memory backend uses.
        """
        found = {job_id: [BuildMark(stub.id, stub.state)
                          for stub in self.build_stubs(job_id, limit=per_job)]
                 for job_id in job_ids}
        return {job_id: marks for job_id, marks in found.items() if marks}

    @abc.abstractmethod
    def delete_builds(self, build_ids: Sequence[int]) -> int:
        """Delete these builds with their logs and progress; return how many went.

        Only finished builds go: a queued or running one among them, or an unknown id, is
        left alone. At most :data:`DELETE_BATCH` builds a transaction, so deleting many
        never holds the database's locks for long.
        """

    @abc.abstractmethod
    def count_logs(
        self, build_ids: Sequence[int], cutoffs: Sequence[LogCutoff] | None = None
    ) -> int:
        """How many log records these builds have (with ``cutoffs``: that any cutoff
        matches, as :meth:`delete_logs` would delete)."""

    @abc.abstractmethod
    def delete_logs(self, build_ids: Sequence[int], cutoffs: Sequence[LogCutoff]) -> int:
        """Delete the log records of these builds that any of ``cutoffs`` matches (level at
        most its ``max_level``, time before its ``before``); return how many went.

        The records left keep their ``seq``: a log with holes still reads in order. At most
        :data:`DELETE_BATCH` builds a transaction.
        """

    # -- pauses (``jobcontrol pause`` / ``resume``) -------------------------------------------

    @abc.abstractmethod
    def pause_job(self, job_id: str, *, by: str, reason: str | None = None
                  ) -> tuple[JobPause, bool]:
        """Pause ``job_id`` now (the storage's clock), recording ``by`` and ``reason``.

        Returns the pause in force and whether this call made it: a job already paused keeps
        its pause (who, when and why stay as recorded), one atomic step, so two callers
        racing make one pause.
        """

    @abc.abstractmethod
    def resume_job(self, job_id: str, *, by: str) -> JobPause | None:
        """End the pause in force of ``job_id`` now, recording ``by``; returns it ended,
        or None when the job was not paused. The pause stays in :meth:`pause_history`."""

    @abc.abstractmethod
    def job_pauses(self, job_ids: Iterable[str] | None = None) -> dict[str, JobPause]:
        """The pauses in force, by job (of ``job_ids``, or all): one query."""

    @abc.abstractmethod
    def pause_history(self, job_id: str, *, limit: int | None = None) -> list[JobPause]:
        """A job's pauses, ended ones too, latest first."""

    # -- runs (``jobcontrol runs``, ``show --run``) --------------------------------------------

    @abc.abstractmethod
    def create_run(self, trigger: RunTrigger, *, by: str, targets: Sequence[str],
                   params: Mapping[str, Mapping[str, Any]] | None = None,
                   note: str | None = None) -> Run:
        """Record a new run, created now (the storage's clock); its builds are made after,
        each naming it (``run_id``)."""

    @abc.abstractmethod
    def get_run(self, run_id: int) -> Run:
        """One run; :class:`~jobcontrol.errors.RunNotFoundError` when there is none."""

    @abc.abstractmethod
    def list_runs(self, *, job_id: str | None = None, limit: int | None = None,
                  before_id: int | None = None) -> list[Run]:
        """Runs newest first; with ``job_id``, those that made a build of that job;
        ``before_id`` pages backwards."""

    @abc.abstractmethod
    def run_builds(self, run_ids: Sequence[int]) -> dict[int, list[Build]]:
        """The builds of each run, oldest first (a run without builds maps to ``[]``), in
        one query."""


def batches(values: Sequence[_T], size: int = DELETE_BATCH) -> Iterator[Sequence[_T]]:
    """``values`` in slices of at most ``size``."""
    for start in range(0, len(values), size):
        yield values[start:start + size]

