"""``memory://``: builds, logs and progress in plain dicts, for tests and the Python API, all
in this process and gone with the object. Values handed out are frozen dataclasses whose
dicts are fresh copies, so callers cannot change what is stored."""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from jobcontrol.errors import BuildNotFoundError, JobAlreadyRunningError, StorageError
from jobcontrol.models import (
    Build,
    BuildState,
    BuildStub,
    ExceptionInfo,
    JobSummary,
    LogCutoff,
    LogRecord,
    NewRun,
    ProgressItem,
    ScheduledRun,
    StoredValue,
)
from jobcontrol.storage.arguments import check_concurrency, check_finished_state
from jobcontrol.storage.base import (
    SLOT_WAIT,
    Storage,
)
from jobcontrol.storage.memory_pauses import MemoryPauses
from jobcontrol.storage.memory_runs import MemoryRuns
from jobcontrol.storage.memory_schedules import MemorySchedules
from jobcontrol.storage.memory_web import MemoryWebSessions
from jobcontrol.storage.memory_workers import MemoryWorkers
from jobcontrol.timeutil import as_utc, utcnow

#: the memory backend has no schema to migrate; it reports this version once open
SCHEMA_VERSION = 1


def json_copy(value: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy through JSON: the same normalisation (tuples → lists) a SQL backend does."""
    try:
        return json.loads(json.dumps(dict(value)))
    except (TypeError, ValueError) as exc:
        raise StorageError(f"cannot store a value that is not JSON: {exc}") from exc


class MemoryStorage(MemoryPauses, MemoryRuns, MemorySchedules, MemoryWebSessions,
                    MemoryWorkers, Storage):
    """Builds, logs and progress in dicts guarded by a lock; nothing is persisted."""

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._lock = threading.Lock()
        self._closed = False
        self._last_id = 0
        self._builds: dict[int, Build] = {}
        self._logs: dict[int, list[LogRecord]] = {}
        self._progress: dict[int, dict[tuple[str, ...], ProgressItem]] = {}
        self._settings: dict[str, str] = {}
        self._web_sessions: dict[str, tuple[str, datetime]] = {}
        self._login_failures: list[tuple[str, datetime]] = []
        self._schedule_runs: dict[tuple[str, datetime], ScheduledRun] = {}

    @classmethod
    def from_url(cls, url: str, base_dir: str | Path | None = None) -> MemoryStorage:
        """A new, empty storage: every ``memory://`` URL opens its own."""
        return cls(url)

    def __repr__(self) -> str:
        return f"<MemoryStorage {len(self._builds)} builds>"

    # -- lifecycle ---------------------------------------------------------------------------

    def install(self) -> int:
        self._check_open()
        return SCHEMA_VERSION

    def schema_version(self) -> int:
        self._check_open()
        return SCHEMA_VERSION

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._builds.clear()
            self._logs.clear()
            self._progress.clear()
            self._settings.clear()
            self._web_sessions.clear()
            self._login_failures.clear()

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(f"storage {self.url} is closed")

    # -- builds ------------------------------------------------------------------------------

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
        check_concurrency(concurrency)
        definition = json_copy(definition)
        deps = {str(job): int(build_id) for job, build_id in dependency_builds.items()}
        with self._lock:
            self._check_open()
            running = [
                b.id for b in self._builds.values()
                if b.job_id == job_id and b.state is BuildState.RUNNING
            ]
            if len(running) >= concurrency:
                raise JobAlreadyRunningError(job_id, sorted(running))
            self._last_id += 1
            now = utcnow()
            build = Build(
                id=self._last_id,
                job_id=job_id,
                state=BuildState.RUNNING,
                definition=definition,
                definition_hash=definition_hash,
                dependency_builds=deps,
                created=now,
                started=now,
                heartbeat=now,
                host=host,
                pid=pid,
                retry_of=retry_of,
                run_id=run_id,
                params=None if params is None else json_copy(params),
                pid_namespace=pid_namespace,
                pgid=pgid,
            )
            self._builds[build.id] = build
            return _copy(build)

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
        definition = json_copy(definition)
        deps = {str(job): int(build_id) for job, build_id in dependency_builds.items()}
        with self._lock:
            self._check_open()
            if unless_paused:
                self._refuse_if_paused(job_id)
            if retry_of is not None and self._retry_of(retry_of) is not None:
                return None
            if new_run is not None:
                run_id = self._add_run(new_run).id
            self._last_id += 1
            build = Build(
                id=self._last_id,
                job_id=job_id,
                state=BuildState.QUEUED,
                definition=definition,
                definition_hash=definition_hash,
                dependency_builds=deps,
                created=utcnow(),
                retry_of=retry_of,
                queue=queue,
                run_id=run_id,
                params=None if params is None else json_copy(params),
            )
            self._builds[build.id] = build
            return _copy(build)

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
        with self._lock:
            build = self._get(build_id)
            if (build.state is not BuildState.QUEUED or job_id not in (None, build.job_id)
                    or definition_hash not in (None, build.definition_hash)):
                return None
            running = [
                b.id for b in self._builds.values()
                if b.job_id == build.job_id and b.state is BuildState.RUNNING
            ]
            if len(running) >= concurrency:
                raise JobAlreadyRunningError(build.job_id, sorted(running))
            now = utcnow()
            deps = build.dependency_builds if dependency_builds is None else {
                str(job): int(dep) for job, dep in dependency_builds.items()}
            build = dataclasses.replace(build, state=BuildState.RUNNING, started=now,
                                        heartbeat=now, host=host, pid=pid,
                                        dependency_builds=deps, worker_id=worker_id,
                                        pid_namespace=pid_namespace, pgid=pgid)
            self._builds[build_id] = build
            return _copy(build)

    def get_retry(self, build_id: int) -> Build | None:
        with self._lock:
            self._check_open()
            retry = self._retry_of(build_id)
            return None if retry is None else _copy(retry)

    def consumers(self, build_id: int, job_id: str, dependents: Sequence[str], *,
                  limit: int = 50, scan: int = 1000) -> list[Build]:
        with self._lock:
            self._check_open()
            found: list[Build] = []
            for dependent in set(dependents):
                later = sorted((b for b in self._builds.values()
                                if b.job_id == dependent and b.id > build_id),
                               key=lambda b: b.id)[:scan]
                found += [b for b in later if b.dependency_builds.get(job_id) == build_id]
            return [_copy(b) for b in sorted(found, key=lambda b: b.id)[:limit]]

    def _retry_of(self, build_id: int) -> Build | None:
        return next((b for b in self._builds.values() if b.retry_of == build_id), None)

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
        state = check_finished_state(state)
        with self._lock:
            build = self._get(build_id)
            if not build.state.finished:
                build = dataclasses.replace(
                    build,
                    state=state,
                    reason=reason,
                    finished=utcnow() if finished is None else as_utc(finished),
                    result=result,
                    exception=exception,
                )
                self._builds[build_id] = build
            return _copy(build)

    def heartbeat(self, build_ids: Sequence[int]) -> set[int]:
        ended = set()
        with self._lock:
            self._check_open()
            now = utcnow()
            for build_id in build_ids:
                build = self._builds.get(build_id)
                if build is not None and build.state is BuildState.RUNNING:
                    self._builds[build_id] = dataclasses.replace(build, heartbeat=now)
                else:
                    ended.add(build_id)
        return ended

    def set_process_group(self, build_id: int, pgid: int) -> None:
        with self._lock:
            self._check_open()
            build = self._builds.get(build_id)
            if build is not None and build.state is BuildState.RUNNING:
                self._builds[build_id] = dataclasses.replace(build, pgid=pgid)

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
        definition = json_copy(definition)
        with self._lock:
            self._check_open()
            self._last_id += 1
            now = utcnow()
            build = Build(id=self._last_id, job_id=job_id, state=state, reason=reason,
                          definition=definition, definition_hash=definition_hash, created=now,
                          started=now, finished=now, host=host, pid=pid, run_id=run_id)
            self._builds[build.id] = build
            return _copy(build)

    def request_cancel(self, build_id: int, reason: str) -> Build:
        with self._lock:
            build = self._get(build_id)
            now = utcnow()
            if build.state is BuildState.QUEUED:
                build = dataclasses.replace(build, state=BuildState.CANCELLED, reason=reason,
                                            finished=now)
            elif build.state is BuildState.RUNNING and build.cancel_requested is None:
                build = dataclasses.replace(build, cancel_requested=now, cancel_reason=reason)
            self._builds[build_id] = build
            return _copy(build)

    def mark_resent(self, build_id: int, reason: str, *, first: bool = False) -> bool:
        with self._lock:
            build = self._builds.get(build_id)
            if build is None or build.state is not BuildState.QUEUED \
                    or (first and build.heartbeat is not None):
                return False
            self._builds[build_id] = dataclasses.replace(build, heartbeat=utcnow(),
                                                         reason=reason)
            return True

    def note_queued(self, build_id: int, reason: str) -> bool:
        with self._lock:
            build = self._builds.get(build_id)
            if build is None or build.state is not BuildState.QUEUED:
                return False
            self._builds[build_id] = dataclasses.replace(build, reason=reason)
            return True

    def wait_for_slot(self, build_id: int, reason: str) -> bool:
        return self.note_queued(build_id, reason)  # nothing here is left to commit

    def slot_waiters(self, job_id: str, *, limit: int = 1) -> list[Build]:
        with self._lock:
            self._check_open()
            waiting = sorted((b for b in self._builds.values()
                              if b.job_id == job_id and b.state is BuildState.QUEUED
                              and (b.reason or "").startswith(SLOT_WAIT)),
                             key=lambda b: b.id)
            return [_copy(b) for b in waiting[:limit]]

    def fail_queued(self, build_id: int, reason: str) -> bool:
        with self._lock:
            build = self._builds.get(build_id)
            if build is None or build.state is not BuildState.QUEUED:
                return False
            self._builds[build_id] = dataclasses.replace(
                build, state=BuildState.FAILED, reason=reason, finished=utcnow())
            return True

    def cancel_requests(self, build_ids: Sequence[int]) -> dict[int, str]:
        with self._lock:
            self._check_open()
            return {
                build.id: build.cancel_reason or ""
                for build in map(self._builds.get, build_ids)
                if build is not None and build.state is BuildState.RUNNING
                and build.cancel_requested is not None
            }

    def get_build(self, build_id: int) -> Build:
        with self._lock:
            return _copy(self._get(build_id))

    def list_builds(
        self,
        job_id: str | None = None,
        *,
        states: Sequence[BuildState] | None = None,
        limit: int | None = None,
        before_id: int | None = None,
    ) -> list[Build]:
        wanted = None if states is None else {BuildState(s) for s in states}
        found: list[Build] = []
        with self._lock:
            self._check_open()
            for build_id in sorted(self._builds, reverse=True):
                if limit is not None and len(found) >= limit:
                    break
                build = self._builds[build_id]
                if before_id is not None and build_id >= before_id:
                    continue
                if job_id is not None and build.job_id != job_id:
                    continue
                if wanted is not None and build.state not in wanted:
                    continue
                found.append(_copy(build))
        return found

    def job_summaries(self, job_ids: Iterable[str] | None = None) -> dict[str, JobSummary]:
        wanted = None if job_ids is None else set(job_ids)
        last: dict[str, Build] = {}
        last_success: dict[str, Build] = {}
        running: dict[str, list[int]] = {}
        with self._lock:
            self._check_open()
            # ascending ids: each later build overwrites what an earlier one set
            for build_id in sorted(self._builds):
                build = self._builds[build_id]
                if wanted is not None and build.job_id not in wanted:
                    continue
                last[build.job_id] = build
                if build.state is BuildState.SUCCESS and build.params is None:
                    last_success[build.job_id] = build
                if build.state is BuildState.RUNNING:
                    running.setdefault(build.job_id, []).append(build_id)
            return {
                job: JobSummary(
                    job_id=job,
                    last_build=_copy(build),
                    last_success=_copy(last_success[job]) if job in last_success else None,
                    running=tuple(running.get(job, ())),
                )
                for job, build in last.items()
            }

    def delete_build(self, build_id: int) -> None:
        with self._lock:
            self._get(build_id)
            del self._builds[build_id]
            self._logs.pop(build_id, None)
            self._progress.pop(build_id, None)

    def _get(self, build_id: int) -> Build:
        """The stored build (not a copy: callers hold the lock and copy what they return)."""
        self._check_open()
        try:
            return self._builds[build_id]
        except KeyError:
            raise BuildNotFoundError(build_id) from None

    # -- logs --------------------------------------------------------------------------------

    def append_logs(self, build_id: int, records: Sequence[LogRecord]) -> None:
        if not records:
            return
        with self._lock:
            self._get(build_id)
            log = self._logs.setdefault(build_id, [])
            seq = log[-1].seq if log else 0  # not len(log): a pruned log has holes
            for record in records:
                seq += 1
                log.append(dataclasses.replace(record, time=as_utc(record.time), seq=seq))

    def get_logs(
        self,
        build_id: int,
        *,
        min_level: int = 0,
        after_seq: int = 0,
        limit: int | None = None,
        until_seq: int | None = None,
    ) -> list[LogRecord]:
        with self._lock:
            self._check_open()
            log = self._logs.get(build_id, [])
            # ordered by seq, with holes where records were pruned
            start = bisect.bisect_right(log, after_seq, key=lambda r: r.seq)
            end = None if until_seq is None else bisect.bisect_right(log, until_seq,
                                                                     key=lambda r: r.seq)
            selected: Iterable[LogRecord] = (
                r for r in itertools.islice(log, start, end) if r.level >= min_level
            )
            if limit is not None:
                selected = itertools.islice(selected, max(limit, 0))
            return list(selected)

    # -- progress ----------------------------------------------------------------------------

    def set_progress(self, build_id: int, items: Sequence[ProgressItem]) -> None:
        if not items:
            return
        now = utcnow()
        with self._lock:
            self._get(build_id)
            groups = self._progress.setdefault(build_id, {})
            for item in items:
                group = tuple(str(part) for part in item.group)
                groups[group] = ProgressItem(
                    group=group,
                    current=float(item.current),
                    total=None if item.total is None else float(item.total),
                    message=item.message,
                    updated=now if item.updated is None else as_utc(item.updated),
                )

    def get_progress(self, build_id: int) -> list[ProgressItem]:
        with self._lock:
            self._check_open()
            groups = self._progress.get(build_id, {})
            return [groups[group] for group in sorted(groups)]

    # -- settings ----------------------------------------------------------------------------

    def get_setting(self, key: str) -> str | None:
        with self._lock:
            self._check_open()
            return self._settings.get(key)

    def set_setting(self, key: str, value: str, *, replace: bool = False) -> str:
        with self._lock:
            self._check_open()
            if replace or key not in self._settings:
                self._settings[key] = str(value)
            return self._settings[key]

    # -- housekeeping ------------------------------------------------------------------------

    def build_stubs(
        self, job_id: str, *, before_id: int | None = None, limit: int | None = None
    ) -> list[BuildStub]:
        found: list[BuildStub] = []
        with self._lock:
            self._check_open()
            for build_id in sorted(self._builds, reverse=True):
                if limit is not None and len(found) >= limit:
                    break
                b = self._builds[build_id]
                if b.job_id != job_id or (before_id is not None and build_id >= before_id):
                    continue
                assert b.created is not None  # claim_build sets it
                found.append(BuildStub(id=b.id, job_id=b.job_id, state=b.state,
                                       created=b.created, started=b.started,
                                       finished=b.finished))
        return found

    def delete_builds(self, build_ids: Sequence[int]) -> int:
        deleted = 0
        with self._lock:
            self._check_open()
            for build_id in dict.fromkeys(build_ids):
                build = self._builds.get(build_id)
                if build is not None and build.state.finished:
                    del self._builds[build_id]
                    self._logs.pop(build_id, None)
                    self._progress.pop(build_id, None)
                    deleted += 1
        return deleted

    def count_logs(
        self, build_ids: Sequence[int], cutoffs: Sequence[LogCutoff] | None = None
    ) -> int:
        with self._lock:
            self._check_open()
            return sum(
                1
                for build_id in dict.fromkeys(build_ids)
                for r in self._logs.get(build_id, ())
                if cutoffs is None or _matches(r, cutoffs)
            )

    def delete_logs(self, build_ids: Sequence[int], cutoffs: Sequence[LogCutoff]) -> int:
        deleted = 0
        with self._lock:
            self._check_open()
            for build_id in dict.fromkeys(build_ids):
                build, log = self._builds.get(build_id), self._logs.get(build_id)
                if build is None or not build.state.finished or not log:
                    continue
                kept = [r for r in log if not _matches(r, cutoffs)]
                deleted += len(log) - len(kept)
                self._logs[build_id] = kept
        return deleted


def _matches(record: LogRecord, cutoffs: Sequence[LogCutoff]) -> bool:
    """Whether any of ``cutoffs`` deletes ``record``."""
    return any(record.level <= c.max_level and record.time < as_utc(c.before) for c in cutoffs)


def _copy(build: Build) -> Build:
    """A build whose dicts are the caller's own: changing them changes nothing stored."""
    return dataclasses.replace(
        build,
        definition=json.loads(json.dumps(build.definition)),
        dependency_builds=dict(build.dependency_builds),
    )
