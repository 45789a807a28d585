"""The queue of :class:`~jobcontrol.storage.sql.SqlStorage`: builds queued for workers (with
the run they open), started by a worker, noted, re-sent, waiting for a slot, failed unsent."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from jobcontrol.errors import JobAlreadyRunningError, JobPausedError
from jobcontrol.models import Build, BuildState, NewRun, RunTrigger
from jobcontrol.storage.arguments import check_concurrency
from jobcontrol.storage.sql_builds import SqlBuilds
from jobcontrol.storage.sql_core import _Claim, retried
from jobcontrol.storage.sql_pauses import pause_from_row


class SqlQueue(SqlBuilds):
    """The builds of :class:`~jobcontrol.storage.sql_builds.SqlBuilds` that workers run:
    queued, then started from the queue."""

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
        definition_json = self._dumps(definition)
        deps_json = self._dumps({str(k): int(v) for k, v in dependency_builds.items()})
        params_json = None if params is None else self._dumps(params)
        return self._enqueue(job_id, definition_json, definition_hash, deps_json, queue,
                             retry_of, self._time_param(self.now()), (run_id, params_json),
                             new_run, unless_paused)

    def _enqueue(self, job_id: str, definition_json: str, definition_hash: str,
                 deps_json: str, queue: str, retry_of: int | None, created: Any,
                 origin: tuple[int | None, str | None] = (None, None),
                 new_run: NewRun | None = None, unless_paused: bool = False) -> Build | None:
        """The body of :meth:`enqueue_build`, its creation time given (as stored)."""
        run_id, params_json = origin
        head = (job_id, BuildState.QUEUED.value, definition_json, definition_hash, deps_json,
                created, retry_of, queue)
        made = None
        if new_run is not None and retry_of is None and "enqueue_in_new_run" in self.sql:
            made = self._enqueue_in_one_statement(head, new_run, params_json, unless_paused)
        if made is not None:
            build_id, run_id = made
        else:
            with self._transaction() as cur:
                if unless_paused:  # in the transaction that queues: no pause slips between
                    cur.execute(self.sql["pause_in_force"], (job_id,))
                    if (row := cur.fetchone()) is not None:
                        raise self._paused(job_id, row)
                if retry_of is not None:
                    # serialised per job, so two workers retrying one build cannot both insert
                    self._lock_job(cur, job_id)
                    cur.execute(self.sql["retry_of"], (retry_of,))
                    if cur.fetchone() is not None:
                        return None
                if new_run is not None:  # one commit for both: the submitting loop's longest wait
                    run_id = self._insert_id(cur, self.sql["create_run"],
                                             self._run_row(new_run, created))
                build_id = self._insert_id(cur, self.sql["enqueue_build"],
                                           (*head, run_id, params_json))
        # the row as inserted, without reading it back (as a claim): one round trip less
        # on the submitting loop, every queued build
        return Build(
            id=build_id, job_id=job_id, state=BuildState.QUEUED,
            definition=json.loads(definition_json), definition_hash=definition_hash,
            dependency_builds=json.loads(deps_json), created=self._time(created),
            retry_of=retry_of, queue=queue, run_id=run_id,
            params=None if params_json is None else json.loads(params_json),
        )

    def _enqueue_in_one_statement(self, head: tuple[Any, ...], new_run: NewRun,
                                  params_json: str | None, unless_paused: bool
                                  ) -> tuple[int, int] | None:
        """A queued build and its new run (``head``: its values up to its run, as
        ``enqueue_build`` orders them) by the dialect's ``enqueue_in_new_run``, one
        statement that is its own transaction (the submitting loop's round trips: 1, not
        4); its ``(build id, run id)``. None when a transaction is open here (an outcome
        left pending), which the statements one by one continue."""
        job_id, created = head[0], head[5]
        with self._cursor() as cur:
            if self._pending:
                return None
            cur.execute(self.sql["enqueue_in_new_run"], (
                job_id, unless_paused, *self._run_row(new_run, created), *head, params_json))
            build_id, run_id, *pause = cur.fetchone()
        if build_id is None:
            raise self._paused(job_id, pause)
        return int(build_id), int(run_id)

    def _paused(self, job_id: str, row: Sequence[Any]) -> JobPausedError:
        """The refusal of a build of ``job_id``, paused by the pause in ``row``."""
        return JobPausedError(job_id, pause_from_row(row, self._time).describe())

    def _run_row(self, new: NewRun, created: Any) -> tuple[Any, ...]:
        """The values of ``create_run`` for ``new``, created at ``created`` (as stored)."""
        params_json = self._dumps({job: dict(values) for job, values in new.params.items()})
        return (RunTrigger(new.trigger).value, created, new.by, json.dumps(list(new.targets)),
                params_json, new.note, uuid.uuid4().hex)

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
        check_concurrency(concurrency)
        deps_json = None if dependency_builds is None else self._dumps(
            {str(k): int(v) for k, v in dependency_builds.items()})
        return self._start_queued(build_id, concurrency, host, pid, deps_json,
                                  self._time_param(self.now()), worker_id, pid_namespace,
                                  definition_hash, pgid, job_id)

    def _start_queued(self, build_id: int, concurrency: int, host: str, pid: int,
                      deps_json: str | None, now: Any, worker_id: str | None = None,
                      pid_namespace: str | None = None, definition_hash: str | None = None,
                      pgid: int | None = None, job_id: str | None = None) -> Build | None:
        """The body of :meth:`start_queued_build`, its start time given (as stored)."""
        with self._transaction() as cur:
            if job_id is None:  # read first for its job (a build never changes job)
                queued = self._queued(cur, build_id, definition_hash)
                if queued is None:
                    return None
                job_id = queued.job_id
            # the job's lock, then the row (as a claim's): every start takes them in this
            # order, so two starts of one build cannot deadlock; then one conditional
            # statement, which changes the row only while fewer than ``concurrency`` builds
            # of the job run, and returns it (a worker's start: 2 round trips with COMMIT)
            self._lock_job(cur, job_id)
            row = self._started_row(cur, build_id, (
                BuildState.RUNNING.value, now, now, host, pid, deps_json, worker_id,
                pid_namespace, pgid, build_id, BuildState.QUEUED.value, job_id,
                definition_hash, job_id, BuildState.RUNNING.value, concurrency))
            if row is None:  # not started: looked at, under the job's lock, to say why
                queued = self._queued(cur, build_id, definition_hash)
                if queued is None or queued.job_id != job_id:
                    return None
                cur.execute(self.sql["running_builds"], (job_id, BuildState.RUNNING.value))
                raise JobAlreadyRunningError(job_id, [r[0] for r in cur.fetchall()])
        *columns, log_end = row
        build = self._build_from_row(columns)
        # its runner numbers its log records from where the log ends (no read per batch);
        # its JSON columns as stored are not kept: its finish decodes them again
        self._remember_claim(_Claim(build, "", "", (log_end or 0) + 1))
        return build

    def _started_row(self, cur: Any, build_id: int, values: Sequence[Any]
                     ) -> Sequence[Any] | None:
        """The build's row after ``start_queued_build`` with ``values``, and where its log
        ends; None when the statement changed nothing."""
        if self.update_returning:
            cur.execute(self.sql["start_queued_build"], values)
            return cur.fetchone()
        cur.execute(self.sql["start_queued_build_no_returning"], values)
        if not cur.rowcount:
            return None
        cur.execute(self.sql["started_build"], (build_id,))
        return cur.fetchone()

    def _queued(self, cur: Any, build_id: int, definition_hash: str | None) -> Build | None:
        """The queued build ``build_id`` as it stands; None when it is not queued any more
        or has another ``definition_hash`` (if one is given), BuildNotFoundError when
        there is no such build."""
        build = self._fetch_build(cur, build_id)
        if definition_hash is not None and build.definition_hash != definition_hash:
            return None
        return build if build.state is BuildState.QUEUED else None

    @retried("re-sending build {build_id}")
    def mark_resent(self, build_id: int, reason: str, *, first: bool = False) -> bool:
        with self._transaction() as cur:
            cur.execute(self.sql["mark_resent_first" if first else "mark_resent"],
                        (self._time_param(self.now()), reason, build_id,
                         BuildState.QUEUED.value))
            return bool(cur.rowcount)

    @retried("noting why build {build_id} waits")
    def note_queued(self, build_id: int, reason: str) -> bool:
        with self._transaction() as cur:
            cur.execute(self.sql["note_queued"], (reason, build_id, BuildState.QUEUED.value))
            return bool(cur.rowcount)

    @retried("noting a slot wait of build {build_id}")
    def wait_for_slot(self, build_id: int, reason: str) -> bool:
        waits = self.note_queued(build_id, reason)
        # then the ends of the job's builds under way are let commit (see the base class)
        with self._transaction() as cur:
            cur.execute(self.sql["running_settled"], (build_id, BuildState.RUNNING.value))
        return waits

    @retried("reading the builds waiting for a slot")
    def slot_waiters(self, job_id: str, *, limit: int = 1) -> list[Build]:
        with self._cursor() as cur:
            cur.execute(self.sql["slot_waiters"], (job_id, limit))
            return [self._build_from_row(row) for row in cur.fetchall()]

    @retried("failing queued build {build_id}")
    def fail_queued(self, build_id: int, reason: str) -> bool:
        with self._transaction() as cur:
            cur.execute(self.sql["cancel_queued"],
                        (BuildState.FAILED.value, reason, self._time_param(self.now()),
                         build_id, BuildState.QUEUED.value))
            return bool(cur.rowcount)
