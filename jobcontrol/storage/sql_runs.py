"""Runs of :class:`~jobcontrol.storage.sql.SqlStorage` (``jobcontrol runs``)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from jobcontrol.errors import RunNotFoundError
from jobcontrol.models import Build, Run, RunTrigger
from jobcontrol.storage.queries import MAX_IN_PARAMS, SELECT_BUILD, in_params
from jobcontrol.storage.sql_core import SqlCore, retried


class SqlRuns(SqlCore):
    """The ``runs`` table, and the builds that point at a run: a room of
    :class:`~jobcontrol.storage.sql.SqlStorage`."""

    def create_run(self, trigger: RunTrigger, *, by: str, targets: Sequence[str],
                   params: Mapping[str, Mapping[str, Any]] | None = None,
                   note: str | None = None) -> Run:
        trigger = RunTrigger(trigger)
        params_json = self._dumps({job: dict(values) for job, values in (params or {}).items()})
        # one token for every attempt: an attempt that lost its connection while committing
        # is looked up by it, so a run is recorded once (as a claim is)
        attempts: list[str] = []
        return self._create_run(trigger, by, list(targets), params_json, note,
                                uuid.uuid4().hex, attempts)

    @retried("recording a run")
    def _create_run(self, trigger: RunTrigger, by: str, targets: list[str], params_json: str,
                    note: str | None, token: str, attempts: list[str]) -> Run:
        if attempts:  # only an attempt after one that failed can find its run made
            with self._cursor() as cur:
                cur.execute(self.sql["run_by_token"], (token,))
                landed = cur.fetchone()
            if landed is not None:
                return self._run(landed)
        attempts.append(token)
        with self._transaction() as cur:
            now = self.now()
            run_id = self._insert_id(
                cur, self.sql["create_run"],
                (trigger.value, self._time_param(now), by, json.dumps(targets), params_json,
                 note, token))
        return Run(run_id, trigger, now, by, tuple(targets), json.loads(params_json), note)

    @retried("reading run {run_id}")
    def get_run(self, run_id: int) -> Run:
        with self._cursor() as cur:
            cur.execute(self.sql["get_run"], (run_id,))
            row = cur.fetchone()
        if row is None:
            raise RunNotFoundError(run_id)
        return self._run(row)

    @retried("listing runs")
    def list_runs(self, *, job_id: str | None = None, limit: int | None = None,
                  before_id: int | None = None) -> list[Run]:
        params: list[Any] = [before_id, before_id, job_id, job_id]
        sql = self._limited(self.sql["list_runs"], params, limit)
        with self._cursor() as cur:
            cur.execute(sql, params)
            return [self._run(row) for row in cur.fetchall()]

    @retried("reading the builds of runs")
    def run_builds(self, run_ids: Sequence[int]) -> dict[int, list[Build]]:
        found: dict[int, list[Build]] = {run_id: [] for run_id in run_ids}
        ids = list(found)
        with self._cursor() as cur:
            for start in range(0, len(ids), MAX_IN_PARAMS):
                chunk = ids[start:start + MAX_IN_PARAMS]
                cur.execute(self._q(f"{SELECT_BUILD} WHERE run_id IN ({in_params(chunk)}) "
                                    f"ORDER BY id"), chunk)
                for row in cur.fetchall():
                    build = self._build_from_row(row)
                    assert build.run_id is not None  # asked for by it
                    found[build.run_id].append(build)
        return found

    def _run(self, row: Sequence[Any]) -> Run:
        run_id, trigger, created, by, targets, params, note = row
        return Run(
            id=int(run_id), trigger=RunTrigger(trigger), by=by, note=note,
            created=self._time(created),  # type: ignore[arg-type]  # NOT NULL
            targets=tuple(self._loads(targets)), params=self._loads(params),
        )
