"""The storage contract of the Builds page: builds of every job filtered by job, state, time
window and text, paged, with their total, on every backend; and the queries' plans on SQLite
and PostgreSQL (indexes, never a scan of every build where an index can answer)."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import timedelta
from pathlib import Path

import psycopg2
import pytest

from jobcontrol.models import Build, BuildQuery, BuildState
from jobcontrol.storage import Storage
from tests.conftest import make_storage
from tests.test_storage_contract import claim

S = BuildState


def _finished(storage: Storage, job_id: str, state: BuildState, reason: str | None = None
              ) -> Build:
    build = claim(storage, job_id, concurrency=100)
    if state is S.RUNNING:
        return build
    return storage.finish_build(build.id, state, reason=reason)


def _ids(builds: list[Build]) -> list[int]:
    return [b.id for b in builds]


def test_search_builds_filters_pages_and_counts(storage: Storage) -> None:
    plan = [("a", S.SUCCESS, None), ("b", S.FAILED, "disk full"), ("a", S.FAILED, "50%_off"),
            ("c", S.SKIPPED, "up to date"), ("b", S.SUCCESS, None), ("a", S.RUNNING, None),
            ("c", S.FAILED, "Disk Quota")]
    made = [_finished(storage, job, state, reason) for job, state, reason in plan]
    newest_first = _ids(made)[::-1]

    def both(query: BuildQuery, limit: int = 50, offset: int = 0) -> tuple[list[int], int]:
        return (_ids(storage.search_builds(query, limit=limit, offset=offset)),
                storage.count_builds(query))

    assert both(BuildQuery()) == (newest_first, 7)
    assert both(BuildQuery(), limit=3) == (newest_first[:3], 7)  # the total is all of them
    assert both(BuildQuery(), limit=3, offset=3) == (newest_first[3:6], 7)
    assert both(BuildQuery(), limit=3, offset=6) == (newest_first[6:], 7)
    failed = [b.id for b in made if b.state is S.FAILED][::-1]
    assert both(BuildQuery(states=(S.FAILED,))) == (failed, 3)
    assert both(BuildQuery(job_ids=("a", "c"), states=(S.FAILED, S.RUNNING))) == (
        [made[6].id, made[5].id, made[2].id], 3)
    assert both(BuildQuery(job_ids=("nobody",))) == ([], 0)
    assert both(BuildQuery(job_ids=())) == ([], 0)
    assert both(BuildQuery(states=())) == ([], 0)
    assert both(BuildQuery(before_id=made[2].id)) == ([made[1].id, made[0].id], 2)
    # text: a part of the job id or the reason, any case, % and _ taken literally
    assert both(BuildQuery(text="DISK")) == ([made[6].id, made[1].id], 2)
    assert both(BuildQuery(text="disk"), limit=1, offset=1) == ([made[1].id], 2)
    assert both(BuildQuery(text="disk"), limit=1, offset=2) == ([], 2)
    assert both(BuildQuery(states=(S.FAILED,)), limit=1, offset=1) == ([made[2].id], 3)
    assert both(BuildQuery(states=(S.FAILED,)), limit=5, offset=3) == ([], 3)
    assert both(BuildQuery(text="%_")) == ([made[2].id], 1)
    assert both(BuildQuery(text="_")) == ([made[2].id], 1)
    assert both(BuildQuery(text="b")) == ([made[4].id, made[1].id], 2)
    assert both(BuildQuery(text="disk", states=(S.SUCCESS,))) == ([], 0)
    # a window of creation times: since inclusive, until exclusive
    created = [b.created for b in made]
    assert all(c is not None for c in created)
    window = BuildQuery(since=created[2], until=created[5])
    assert both(window) == ([made[4].id, made[3].id, made[2].id], 3)
    assert both(BuildQuery(since=created[6])) == ([made[6].id], 1)
    assert both(BuildQuery(since=created[6] + timedelta(seconds=1))) == ([], 0)  # type: ignore[operator]
    assert both(BuildQuery(until=created[0])) == ([], 0)
    assert both(BuildQuery(until=created[1], states=(S.SUCCESS,))) == ([made[0].id], 1)


def test_search_skips_deleted_builds_and_an_empty_store(storage: Storage) -> None:
    assert storage.count_builds(BuildQuery(since=storage.now())) == 0
    assert storage.search_builds(BuildQuery(), limit=5) == []
    made = [_finished(storage, "a", S.SUCCESS) for _ in range(5)]
    storage.delete_builds([made[1].id, made[2].id, made[3].id])
    assert made[2].created is not None
    query = BuildQuery(since=made[2].created)
    assert _ids(storage.search_builds(query, limit=5)) == [made[4].id]
    assert storage.count_builds(BuildQuery(until=made[2].created)) == 1


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_builds_page_queries_read_indexes(kind: str, tmp_path: Path,
                                              request: pytest.FixtureRequest) -> None:
    """Filters by state and job count an index, never the table; a time window is a range
    of ids (the primary key)."""
    storage = make_storage(kind, tmp_path, request)
    try:
        for _ in range(3):
            _finished(storage, "a", S.FAILED)
        _finished(storage, "b", S.SUCCESS)
        since = storage.now() - timedelta(hours=1)
        cases = {
            "state": BuildQuery(states=(S.FAILED,)),
            "job": BuildQuery(job_ids=("a", "b"), states=(S.FAILED, S.RUNNING)),
            "window": BuildQuery(states=(S.FAILED,), since=since),
            "text": BuildQuery(text="a"),
        }
        for name, query in cases.items():
            statements = [*storage.search_sql(query),  # type: ignore[attr-defined]
                          *storage.search_sql(query, offset=500)]  # type: ignore[attr-defined]
            for sql, args in statements:
                plan = _plan(kind, sql, args, tmp_path, request)
                assert "SCAN builds" not in plan + " " and "Seq Scan" not in plan, (name, plan)
                assert ("USING" in plan if kind == "sqlite" else "Index" in plan), (name, plan)
    finally:
        storage.close()


def _plan(kind: str, sql: str, params: list[object], tmp_path: Path,
          request: pytest.FixtureRequest) -> str:
    if kind == "sqlite":
        connection = sqlite3.connect(str(tmp_path / "jobcontrol.db"))
        with contextlib.closing(connection):
            return " | ".join(row[3] for row in connection.execute(
                "EXPLAIN QUERY PLAN " + sql, params))
    connection = psycopg2.connect(request.getfixturevalue("pg_url"))
    with contextlib.closing(connection), connection.cursor() as cur:
        cur.execute("SET enable_seqscan = off")  # a small table: judge the shape
        cur.execute("EXPLAIN " + sql, params)
        return " | ".join(row[0] for row in cur.fetchall())


def test_reasons_are_searched_among_the_newest_builds_job_ids_in_all(
        storage: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("jobcontrol.storage.base", "jobcontrol.storage.sql_search"):
        monkeypatch.setattr(f"{module}.TEXT_WINDOW", 3)
    old = _finished(storage, "a", S.FAILED, "disk full")
    made = [_finished(storage, "b", S.SUCCESS, "disk ok") for _ in range(3)]

    def found(**filters: object) -> tuple[list[int], int]:
        query = BuildQuery(**filters)  # type: ignore[arg-type]
        return _ids(storage.search_builds(query, limit=10)), storage.count_builds(query)

    newer = [b.id for b in reversed(made)]
    assert found(text="DISK") == (newer, 3)  # the old reason is past the newest 3
    assert found(text="disk", until=made[0].created) == ([old.id], 1)  # an older window
    assert found(text="disk", before_id=made[0].id) == ([old.id], 1)
    assert found(text="A") == ([old.id], 1)  # a job id: any build of the job
    assert found(text="a", states=(S.FAILED,)) == ([old.id], 1)
    assert found(text="") == ([*newer, old.id], 4)  # no text: no filter
