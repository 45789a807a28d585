"""The Builds page's totals on every backend: exact after every way builds are made and
removed (claims, enqueues, records, retries, deletes, prunes); on SQL read from
``build_counts`` (migration 12, kept by triggers), never by counting builds."""

from __future__ import annotations

import contextlib
import sqlite3
from collections import Counter
from pathlib import Path

import psycopg2
import pytest

from jobcontrol.errors import JobAlreadyRunningError
from jobcontrol.models import BuildQuery, BuildState
from jobcontrol.storage import Storage
from jobcontrol.storage.schema import load_migrations
from tests.conftest import make_storage
from tests.test_storage_contract import built, claim

S = BuildState
_DEFINITION = {"definition": {"function": "pkg.f"}, "definition_hash": "hash"}


def _assert_totals_true(storage: Storage) -> None:
    """Every total the page shows equals the builds actually there."""
    builds = storage.search_builds(BuildQuery(states=tuple(S)), limit=10**6)  # read builds
    per_job = Counter(b.job_id for b in builds)
    assert storage.count_builds(BuildQuery()) == len(builds)
    for job_id in ["a", "b", "c", "nobody"]:
        assert storage.count_builds(BuildQuery(job_ids=(job_id,))) == per_job[job_id], job_id
    assert storage.count_builds(BuildQuery(job_ids=("a", "c"))) == per_job["a"] + per_job["c"]


def test_totals_follow_claims_enqueues_records_retries_and_deletes(storage: Storage) -> None:
    _assert_totals_true(storage)  # empty: 0
    first = claim(storage, "a")
    _assert_totals_true(storage)
    with pytest.raises(JobAlreadyRunningError):  # refused: nothing made, nothing counted
        claim(storage, "a")
    _assert_totals_true(storage)
    storage.finish_build(first.id, S.FAILED)
    retry = claim(storage, "a", retry_of=first.id)
    queued = storage.enqueue_build("b", dependency_builds={}, queue="q", **_DEFINITION)
    assert queued is not None
    storage.finish_build(retry.id, S.FAILED)
    remote_retry = storage.enqueue_build("a", dependency_builds={}, queue="q",
                                         retry_of=retry.id, **_DEFINITION)
    again = storage.enqueue_build("a", dependency_builds={}, queue="q",
                                  retry_of=retry.id, **_DEFINITION)
    assert remote_retry is not None and again is None  # one retry only: counted once
    storage.record_build("c", S.SKIPPED, reason="still running", host="h", pid=1,
                         **_DEFINITION)
    _assert_totals_true(storage)
    assert storage.count_builds(BuildQuery()) == 5
    storage.delete_build(queued.id)
    _assert_totals_true(storage)
    assert storage.count_builds(BuildQuery(job_ids=("b",))) == 0


def test_totals_follow_a_prune_of_many_jobs_at_once(storage: Storage) -> None:
    made = [built(storage, job, S.SUCCESS) for _ in range(4) for job in "abc"]
    running = claim(storage, "b", concurrency=100)
    _assert_totals_true(storage)
    # the pruner removes builds with delete_builds, several jobs' in one call; a running
    # build among them stays, and stays counted
    assert storage.delete_builds([b.id for b in made[:7]] + [running.id]) == 7
    _assert_totals_true(storage)
    assert storage.count_builds(BuildQuery()) == 6
    storage.delete_builds([b.id for b in made[7:]])
    _assert_totals_true(storage)
    assert storage.count_builds(BuildQuery()) == 1


def _connect(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> object:
    if kind == "sqlite":
        return sqlite3.connect(str(tmp_path / "jobcontrol.db"))
    return psycopg2.connect(request.getfixturevalue("pg_url"))


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_total_reads_build_counts_not_builds(kind: str, tmp_path: Path,
                                                 request: pytest.FixtureRequest) -> None:
    storage = make_storage(kind, tmp_path, request)
    try:
        for job in "aab":
            claim(storage, job, concurrency=100)
        for query in (BuildQuery(), BuildQuery(job_ids=("a",))):
            [_page, (sql, args)] = storage.search_sql(query)  # type: ignore[attr-defined]
            connection: object = _connect(kind, tmp_path, request)
            with contextlib.closing(connection):  # type: ignore[type-var]
                if kind == "sqlite":
                    plan = " | ".join(row[3] for row in connection.execute(  # type: ignore[attr-defined]
                        "EXPLAIN QUERY PLAN " + sql, args))
                else:
                    with connection.cursor() as cur:  # type: ignore[attr-defined]
                        cur.execute("EXPLAIN " + sql, args)
                        plan = " | ".join(row[0] for row in cur.fetchall())
            assert "build_counts" in plan and "builds " not in plan + " ", plan
            assert "builds" not in plan.replace("build_counts", ""), plan
    finally:
        storage.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_migration_counts_the_builds_already_there(kind: str, tmp_path: Path,
                                                       request: pytest.FixtureRequest) -> None:
    storage = make_storage(kind, tmp_path, request)
    try:
        for job in "aabbbc":
            claim(storage, job, concurrency=100)
        [migration] = [m for m in load_migrations(kind) if m.version == 12]
        connection: object = _connect(kind, tmp_path, request)
        with contextlib.closing(connection):  # type: ignore[type-var]
            cur = connection.cursor()  # type: ignore[attr-defined]
            # back to schema 11 (no table, no triggers), then 12 again over the builds
            if kind == "sqlite":
                for name in ("insert", "delete", "move"):
                    cur.execute(f"DROP TRIGGER build_counts_{name}")
                cur.execute("DROP TABLE build_counts")
                cur.executescript(migration.sql)
            else:
                cur.execute("DROP TABLE build_counts")
                for name in ("insert", "delete", "move"):
                    cur.execute(f"DROP FUNCTION build_counts_{name}() CASCADE")
                cur.execute(migration.sql)
            connection.commit()  # type: ignore[attr-defined]
            cur.execute("SELECT job_id, builds FROM build_counts ORDER BY job_id")
            assert [tuple(r) for r in cur.fetchall()] == [("a", 2), ("b", 3), ("c", 1)]
        _assert_totals_true(storage)
        claim(storage, "c", concurrency=100)  # the triggers are back
        _assert_totals_true(storage)
    finally:
        storage.close()


def test_inserts_of_different_jobs_do_not_wait_on_one_another(
        request: pytest.FixtureRequest) -> None:
    """A row a job: a build of one job, not yet committed, holds back builds of that job
    only (claims of one job serialise on its advisory lock anyway)."""
    url = request.getfixturevalue("pg_url")
    insert = ("INSERT INTO builds (job_id, state, created) VALUES (%s, 'running', now())")
    holding = psycopg2.connect(url)
    other = psycopg2.connect(url)
    with contextlib.closing(holding), contextlib.closing(other):
        with holding.cursor() as cur:
            cur.execute(insert, ("a",))  # its transaction left open
        with other.cursor() as cur:
            cur.execute("SET lock_timeout = '5s'")
            cur.execute(insert, ("b",))  # another job: no wait
            other.commit()
            cur.execute("SET lock_timeout = '100ms'")
            with pytest.raises(psycopg2.errors.LockNotAvailable):
                cur.execute(insert, ("a",))  # the same job: waits for the first
            other.rollback()
        holding.commit()
        with other.cursor() as cur:
            cur.execute("SELECT job_id, builds FROM build_counts ORDER BY job_id")
            assert cur.fetchall() == [("a", 1), ("b", 1)]
