"""Runs in :class:`~jobcontrol.storage.memory.MemoryStorage` (``jobcontrol runs``)."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from jobcontrol.errors import RunNotFoundError
from jobcontrol.models import Build, NewRun, Run, RunTrigger
from jobcontrol.storage.arguments import row_limit
from jobcontrol.storage.base import Storage


class MemoryRuns(Storage):
    """Every run by id, in a dict guarded by the storage's lock; a run's builds are found
    among the storage's builds by their ``run_id``."""

    _lock: threading.Lock
    _builds: dict[int, Build]
    #: made on first use, so the storage's ``__init__`` need not know of it
    _runs: dict[int, Run]

    def _check_open(self) -> None:  # the storage's own
        raise NotImplementedError

    def _run_dict(self) -> dict[int, Run]:
        self._check_open()
        if not hasattr(self, "_runs"):
            self._runs = {}
        return self._runs

    def create_run(self, trigger: RunTrigger, *, by: str, targets: Sequence[str],
                   params: Mapping[str, Mapping[str, Any]] | None = None,
                   note: str | None = None) -> Run:
        with self._lock:
            return self._add_run(NewRun(RunTrigger(trigger), by, tuple(targets),
                                        {job: dict(v) for job, v in (params or {}).items()},
                                        note))

    def _add_run(self, new: NewRun) -> Run:
        """Record ``new`` (the lock held)."""
        stored = json.loads(json.dumps(new.params))  # through JSON, as a SQL backend stores it
        runs = self._run_dict()
        run = Run(max(runs, default=0) + 1, new.trigger, self.now(), new.by, new.targets,
                  stored, new.note)
        runs[run.id] = run
        return run

    def get_run(self, run_id: int) -> Run:
        with self._lock:
            run = self._run_dict().get(run_id)
        if run is None:
            raise RunNotFoundError(run_id)
        return run

    def list_runs(self, *, job_id: str | None = None, limit: int | None = None,
                  before_id: int | None = None) -> list[Run]:
        with self._lock:
            runs = sorted(self._run_dict().values(), key=lambda run: -run.id)
            with_job = None if job_id is None else {
                b.run_id for b in self._builds.values() if b.job_id == job_id}
        found = [run for run in runs if (before_id is None or run.id < before_id)
                 and (with_job is None or run.id in with_job)]
        return found[:row_limit(limit)]

    def run_builds(self, run_ids: Sequence[int]) -> dict[int, list[Build]]:
        found: dict[int, list[Build]] = {run_id: [] for run_id in run_ids}
        with self._lock:
            self._check_open()
            for build_id in sorted(self._builds):
                build = self._builds[build_id]
                if build.run_id in found:
                    found[build.run_id].append(build)  # frozen: shared safely
        return found
