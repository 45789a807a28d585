"""The builds of :class:`~jobcontrol.storage.sql.SqlStorage`: claims, the queue, finishes,
heartbeats, cancel requests, reads."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from jobcontrol.errors import BuildNotFoundError, JobAlreadyRunningError
from jobcontrol.models import (
    Build,
    BuildState,
    ExceptionInfo,
    JobSummary,
    LogRecord,
    StoredValue,
)
from jobcontrol.storage.arguments import check_concurrency, check_finished_state
from jobcontrol.storage.queries import (
    BUILD_COLUMNS,
    MAX_IN_PARAMS,
    SELECT_BUILD,
    in_params,
    job_summaries_sql,
)
from jobcontrol.storage.sql_core import (
    MAX_CLAIMED_KEPT,
    PendingOutcome,
    SqlCore,
    _Claim,
    retried,
)
from jobcontrol.timeutil import as_utc


class _FencedOff(Exception):
    """Rolls a finish back whose UPDATE did not land, with the log records it wrote."""

    def __init__(self, build: Build) -> None:
        super().__init__(build.id)
        self.build = build


class SqlBuilds(SqlCore):
    """Builds: a room of :class:`~jobcontrol.storage.sql.SqlStorage`."""

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
        claim_token: str | None = None,
    ) -> Build:
        """See :meth:`Storage.claim_build`. ``claim_token``: a value unique to this claim,
        written in its row (a claim whose answer was lost finds its row by it)."""
        check_concurrency(concurrency)
        definition_json = self._dumps(definition)
        deps = {str(k): int(v) for k, v in dependency_builds.items()}
        deps_json = self._dumps(deps)
        params_json = None if params is None else self._dumps(params)
        with self._transaction() as cur:
            self._lock_job(cur, job_id)
            now = self.now()  # after connecting: the server's clock
            stamp = self._time_param(now)
            # one conditional statement (with the lock, one round trip to a server): the
            # row goes in only while fewer than ``concurrency`` builds of the job run
            build_id = self._insert_claim(
                cur, self.sql["claim_build"],
                (job_id, BuildState.RUNNING.value, definition_json, definition_hash, deps_json,
                 stamp, stamp, stamp, host, pid, retry_of, claim_token, run_id, params_json,
                 pid_namespace, pgid, job_id, BuildState.RUNNING.value, concurrency),
            )
            if build_id is None:
                cur.execute(self.sql["running_builds"], (job_id, BuildState.RUNNING.value))
                raise JobAlreadyRunningError(job_id, [row[0] for row in cur.fetchall()])
        # the row as inserted, without reading it back: a query and its decoding saved on
        # every build (the times as stored: microseconds, UTC)
        started = as_utc(now)
        build = Build(
            id=build_id, job_id=job_id, state=BuildState.RUNNING,
            definition=json.loads(definition_json), definition_hash=definition_hash,
            dependency_builds=deps, created=started, started=started,
            heartbeat=started, host=host, pid=pid, retry_of=retry_of, run_id=run_id,
            params=None if params_json is None else json.loads(params_json),
            pid_namespace=pid_namespace, pgid=pgid,
        )
        # this object numbers the log records of the builds it claimed (only it writes a
        # running build's log): no query for where a log ends, per batch
        self._remember_claim(_Claim(build, definition_json, deps_json, 1))
        return build

    def _remember_claim(self, claim: _Claim) -> None:
        """This object runs ``claim.build`` (it claimed it, or started it from the queue):
        its writes to the build land only while the build runs (see :meth:`_fenced`)."""
        if len(self._claimed) >= MAX_CLAIMED_KEPT:  # builds finished elsewhere: forget
            self._claimed.clear()
        self._claimed[claim.build.id] = claim

    @retried("reading a build")
    def get_retry(self, build_id: int) -> Build | None:
        with self._cursor() as cur:
            cur.execute(self.sql["get_retry"], (build_id,))
            row = cur.fetchone()
        return None if row is None else self._build_from_row(row)

    @retried("reading the builds that consumed a build")
    def consumers(self, build_id: int, job_id: str, dependents: Sequence[str], *,
                  limit: int = 50, scan: int = 1000) -> list[Build]:
        found: list[Build] = []
        with self._cursor() as cur:
            for dependent in sorted(set(dependents)):
                cur.execute(self.sql["consumers"], (dependent, build_id, scan, job_id,
                                                    build_id, limit))
                found += [self._build_from_row(row) for row in cur.fetchall()]
        return sorted(found, key=lambda build: build.id)[:limit]

    @retried("finishing build {build_id}")
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
        with self._transaction() as cur:
            return self._finish(cur, build_id, state, reason, result, exception, finished)[0]

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
        try:
            with self._transaction(commit=not commit_later) as cur:
                if logs:  # not looked at first: the outcome's UPDATE is the fence
                    self._append(cur, build_id, logs, fence=False)
                build, landed = self._finish(cur, build_id, state, reason, result, exception)
                if logs and not landed:
                    raise _FencedOff(build)  # the records go with the outcome that did not land
                if commit_later:  # under the lock: no other thread begins a transaction now
                    self._pending.append(PendingOutcome(
                        build_id, f"build {build_id} ({build.job_id}) ended {state}",
                        functools.partial(self._finish_again, build_id, state, list(logs),
                                          reason, result, exception)))
        except _FencedOff as fenced:
            return fenced.build
        return build

    def _finish_again(self, build_id: int, state: BuildState, logs: Sequence[LogRecord],
                      reason: str | None, result: StoredValue | None,
                      exception: ExceptionInfo | None) -> Build:
        """Write a ``commit_later`` finish again on its own, the transaction it waited in
        having failed (a dialect whose COMMIT can be in doubt looks first whether it
        landed)."""
        return self.finish_build_with_logs(build_id, state, logs=logs, reason=reason,
                                           result=result, exception=exception)

    def _finish(self, cur: Any, build_id: int, state: BuildState, reason: str | None,
                result: StoredValue | None, exception: ExceptionInfo | None,
                finished: datetime | None = None) -> tuple[Build, bool]:
        """The build as it stands after the finishing UPDATE, and whether that UPDATE landed
        (False: fenced off, someone else ended the build first)."""
        claimed = self._claimed.get(build_id)  # forgotten once finished: a failure keeps it
        if (claimed is not None and self.update_returning and finished is None
                and self._stored_as_given(reason, result, exception)):
            build, landed = self._finish_claimed(cur, claimed, state, reason, result, exception)
        else:
            landed, row = self._finish_update(cur, build_id, state, reason, result, exception,
                                              finished=finished)
            # fenced off (or no RETURNING): as it stands
            build = (self._fetch_build(cur, build_id) if row is None
                     else self._build_from_row(row, claimed))
        self._claimed.pop(build_id, None)
        return build, landed

    def _finish_claimed(self, cur: Any, claim: _Claim, state: BuildState, reason: str | None,
                        result: StoredValue | None, exception: ExceptionInfo | None
                        ) -> tuple[Build, bool]:
        """The finish of a build this object claimed: the same conditional UPDATE, which
        returns only what may have changed since the claim (the heartbeat, a cancel
        request); the rest of the build is as claimed, or as written now."""
        state = check_finished_state(state)
        build = claim.build
        finished = self.now()
        self._notify_logs(cur, build.id)  # a follower stops at the outcome (or looks again)
        cur.execute(self.sql["finish_claimed"], (
            state.value, reason, self._time_param(finished),
            result.kind if result else None, result.data if result else None,
            exception.type if exception else None,
            exception.message if exception else None,
            exception.traceback if exception else None,
            build.id, BuildState.QUEUED.value, BuildState.RUNNING.value,
        ))
        row = cur.fetchone()
        if row is None:  # fenced off (or gone: BuildNotFoundError): as it stands
            return self._fetch_build(cur, build.id), False
        heartbeat, cancel_requested, cancel_reason = row
        # the claim with what the finish changed: every other field as claimed (a field
        # added to Build is carried over, never dropped here)
        return dataclasses.replace(
            build, state=state, reason=reason, finished=as_utc(finished),
            heartbeat=self._time(heartbeat), result=result, exception=exception,
            cancel_requested=self._time(cancel_requested), cancel_reason=cancel_reason,
        ), True

    def _finish_update(self, cur: Any, build_id: int, state: BuildState, reason: str | None,
                       result: StoredValue | None, exception: ExceptionInfo | None,
                       finished: datetime | None = None) -> tuple[bool, Sequence[Any] | None]:
        """The finishing UPDATE: whether it landed, and the row it changed (its
        :data:`BUILD_COLUMNS`) where the database can return it, else None."""
        state = check_finished_state(state)
        # one conditional UPDATE: a late writer never overwrites a recorded outcome; it
        # returns the row it changed where the database can (no second query)
        # sent with the UPDATE (a NOTIFY is delivered at COMMIT, and once however often
        # sent): a follower stops at the outcome, or looks again where it was fenced off
        self._notify_logs(cur, build_id)
        cur.execute(
            self.sql["finish_build" if self.update_returning else "finish_build_no_returning"],
            (
                state.value, reason, self._time_param(finished or self.now()),
                result.kind if result else None, result.data if result else None,
                exception.type if exception else None,
                exception.message if exception else None,
                exception.traceback if exception else None,
                build_id, BuildState.QUEUED.value, BuildState.RUNNING.value,
            ),
        )
        if not self.update_returning:
            return cur.rowcount == 1, None
        row = cur.fetchone()
        return row is not None, row

    @retried("heartbeat")
    def heartbeat(self, build_ids: Sequence[int]) -> set[int]:
        ids = list(dict.fromkeys(build_ids))
        if not ids:
            return set()
        beating: set[int] = set()
        with self._transaction() as cur:
            now = self._time_param(self.now())
            for start in range(0, len(ids), MAX_IN_PARAMS):
                chunk = ids[start:start + MAX_IN_PARAMS]
                cur.execute(
                    self._q(f"UPDATE builds SET heartbeat = ? "
                            f"WHERE state = ? AND id IN ({in_params(chunk)})"),
                    (now, BuildState.RUNNING.value, *chunk),
                )
                if cur.rowcount != len(chunk):  # some ended: which (rarely asked)
                    cur.execute(
                        self._q(f"SELECT id FROM builds "
                                f"WHERE state = ? AND id IN ({in_params(chunk)})"),
                        (BuildState.RUNNING.value, *chunk),
                    )
                    beating.update(row[0] for row in cur.fetchall())
                else:
                    beating.update(chunk)
        return set(ids) - beating

    @retried("recording the process group of build {build_id}")
    def set_process_group(self, build_id: int, pgid: int) -> None:
        with self._transaction() as cur:
            cur.execute(self.sql["set_process_group"],
                        (pgid, build_id, BuildState.RUNNING.value))
        claim = self._claimed.get(build_id)
        if claim is not None:  # its finish returns the build as claimed, with this
            claim.build = dataclasses.replace(claim.build, pgid=pgid)

    @retried("cancelling build {build_id}")
    def request_cancel(self, build_id: int, reason: str) -> Build:
        with self._transaction() as cur:
            now = self._time_param(self.now())
            cur.execute(
                self.sql["cancel_queued"],
                (BuildState.CANCELLED.value, reason, now, build_id, BuildState.QUEUED.value),
            )
            cur.execute(
                self.sql["cancel_running"],
                (now, reason, build_id, BuildState.RUNNING.value),
            )
            return self._fetch_build(cur, build_id)

    @retried("reading cancel requests")
    def cancel_requests(self, build_ids: Sequence[int]) -> dict[int, str]:
        ids = list(dict.fromkeys(build_ids))
        found: dict[int, str] = {}
        with self._cursor() as cur:
            for start in range(0, len(ids), MAX_IN_PARAMS):
                chunk = ids[start:start + MAX_IN_PARAMS]
                cur.execute(
                    self._q(f"SELECT id, cancel_reason FROM builds WHERE state = ? "
                            f"AND cancel_requested IS NOT NULL AND id IN ({in_params(chunk)})"),
                    (BuildState.RUNNING.value, *chunk),
                )
                found.update((int(build_id), reason or "") for build_id, reason in cur)
        return found

    @retried("recording a build of {job_id!r}", in_doubt_ok=False)
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
        state = check_finished_state(state)
        with self._transaction() as cur:
            now = self._time_param(self.now())
            build_id = self._insert_id(
                cur, self.sql["record_build"],
                (job_id, state.value, reason, self._dumps(definition), definition_hash,
                 now, now, now, host, pid, run_id),
            )
            return self._fetch_build(cur, build_id)

    @retried("reading a build")
    def get_build(self, build_id: int) -> Build:
        with self._cursor() as cur:
            return self._fetch_build(cur, build_id)

    @retried("listing builds")
    def list_builds(
        self,
        job_id: str | None = None,
        *,
        states: Sequence[BuildState] | None = None,
        limit: int | None = None,
        before_id: int | None = None,
    ) -> list[Build]:
        where: list[str] = []
        params: list[Any] = []
        if job_id is not None:
            where.append("job_id = ?")
            params.append(job_id)
        if states is not None:
            values = sorted({BuildState(s).value for s in states})
            if not values:
                return []
            where.append(f"state IN ({in_params(values)})")
            params.extend(values)
        if before_id is not None:
            where.append("id < ?")
            params.append(before_id)
        sql = SELECT_BUILD
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql = self._limited(sql + " ORDER BY id DESC", params, limit)
        with self._cursor() as cur:
            cur.execute(self._q(sql), params)
            return [self._build_from_row(row) for row in cur.fetchall()]

    def _summaries_query(self, wanted: set[str] | None) -> tuple[str, list[Any]]:
        """The statement :meth:`job_summaries` runs, in the driver's paramstyle, with its
        parameters (``benchmarks/status_query.py`` EXPLAINs it). More jobs than
        :data:`MAX_IN_PARAMS`: all are read, and the caller filters."""
        params = sorted(wanted) if wanted is not None and len(wanted) <= MAX_IN_PARAMS else []
        sql = job_summaries_sql(self.id_list_sql, len(params) if params else None)
        return self._q(sql), params

    def job_summaries(self, job_ids: Iterable[str] | None = None) -> dict[str, JobSummary]:
        wanted = None if job_ids is None else set(job_ids)  # an iterator is read once
        if wanted is not None and not wanted:
            return {}
        return self._summaries(wanted)

    @retried("reading status")
    def _summaries(self, wanted: set[str] | None) -> dict[str, JobSummary]:
        sql, params = self._summaries_query(wanted)
        with self._cursor() as cur:
            cur.execute(sql, params)
            rows = cur.fetchall()
        width = len(BUILD_COLUMNS)
        summaries: dict[str, JobSummary] = {}
        for row in rows:
            running_ids = row[0]
            last = self._build_from_row(row[1:1 + width])
            success_row = row[1 + width:]
            if wanted is not None and last.job_id not in wanted:
                continue
            running = sorted(int(i) for i in str(running_ids).split(",")) if running_ids else []
            if success_row[0] is None:
                last_success = None
            elif success_row[0] == last.id:  # most often the newest build is the newest success
                last_success = last
            else:
                last_success = self._build_from_row(success_row)
            summaries[last.job_id] = JobSummary(
                job_id=last.job_id,
                last_build=last,
                last_success=last_success,
                running=tuple(running),
            )
        return summaries

    @retried("counting builds")
    def build_counts(self) -> dict[tuple[str, BuildState], int]:
        with self._cursor() as cur:
            cur.execute(self.sql["build_counts"])
            return {(job_id, BuildState(state)): int(count)
                    for job_id, state, count in cur.fetchall()}

    @retried("deleting build {build_id}", in_doubt_ok=False)
    def delete_build(self, build_id: int) -> None:
        with self._transaction() as cur:
            # logs and progress go with it: ON DELETE CASCADE
            cur.execute(self.sql["delete_build"], (build_id,))
            if cur.rowcount == 0:
                raise BuildNotFoundError(build_id)
