"""The storage contract of the web UI's reads (log tails, history strips), sessions and failed
logins, on every backend."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from datetime import timedelta
from pathlib import Path

import psycopg2
import pytest

from jobcontrol.models import BuildState, LogCutoff, LogRecord
from jobcontrol.storage import Storage
from jobcontrol.storage.queries import recent_builds_sql
from jobcontrol.timeutil import utcnow
from tests.conftest import make_storage
from tests.test_storage_contract import built, claim

S = BuildState


def test_a_web_session_lasts_until_it_expires_or_ends(storage: Storage) -> None:
    now = utcnow()
    storage.start_web_session("s1", "alice", now, now + timedelta(hours=1))
    storage.start_web_session("s2", "token", now, now + timedelta(seconds=1))
    assert storage.web_session_user("s1", now) == "alice"
    assert storage.web_session_user("s2", now) == "token"
    assert storage.web_session_user("s2", now + timedelta(seconds=1)) is None  # expired
    assert storage.web_session_user("nope", now) is None
    storage.end_web_session("s1")
    storage.end_web_session("s1")  # again: nothing to end
    assert storage.web_session_user("s1", now) is None
    # a new session forgets the expired ones (s2 included), not the others
    later = now + timedelta(minutes=5)
    storage.start_web_session("s3", "bob", later, later + timedelta(hours=1))
    storage.start_web_session("s3", "eve", later, later + timedelta(hours=9))  # taken: kept
    assert storage.web_session_user("s3", later) == "bob"
    assert storage.web_session_user("s2", now) is None


def test_login_failures_are_counted_per_key_and_forgotten(storage: Storage) -> None:
    now = utcnow()
    times = [now + timedelta(seconds=n) for n in range(3)]
    for at in times:
        storage.record_login_failure(["user:alice", "address:192.0.2.7"], at,
                                     forget_before=now - timedelta(minutes=15))
    storage.record_login_failure(["user:bob'; --"], times[2], now - timedelta(minutes=15))
    assert storage.login_failures("user:alice", now) == times
    assert storage.login_failures("address:192.0.2.7", times[1]) == times[1:]
    assert storage.login_failures("user:bob'; --", now) == [times[2]]
    assert storage.login_failures("user:carol", now) == []
    storage.record_login_failure(["user:carol"], times[2], forget_before=times[1])
    assert storage.login_failures("user:alice", now - timedelta(hours=1)) == times[1:]


# -- reads of the web UI ---------------------------------------------------------------------


def _log(storage: Storage, build_id: int, count: int) -> None:
    """``count`` records, every third a WARNING, numbered in their message."""
    storage.append_logs(build_id, [
        LogRecord(utcnow(), logging.WARNING if n % 3 == 0 else logging.INFO, "t", f"line {n}")
        for n in range(1, count + 1)
    ])


def test_get_logs_before_reads_a_log_backwards_from_its_end(storage: Storage) -> None:
    build = claim(storage)
    other = claim(storage, "other")
    _log(storage, build.id, 50)
    _log(storage, other.id, 60)
    tail = storage.get_logs_before(build.id, limit=5)
    assert [r.seq for r in tail] == [46, 47, 48, 49, 50]  # in order, the build's own
    assert tail[-1].message == "line 50"
    page = storage.get_logs_before(build.id, limit=5, before_seq=46)
    assert [r.seq for r in page] == [41, 42, 43, 44, 45]
    warnings = storage.get_logs_before(build.id, limit=3, min_level=logging.WARNING)
    assert [r.seq for r in warnings] == [42, 45, 48]
    assert [r.seq for r in storage.get_logs_before(build.id, limit=10, before_seq=4)] == [1, 2, 3]
    assert storage.get_logs_before(build.id, limit=10, before_seq=1) == []
    assert storage.get_logs_before(build.id, limit=0) == []
    assert storage.get_logs_before(999, limit=5) == []
    # holes left by pruning are skipped, not counted
    storage.finish_build(build.id, S.SUCCESS)
    storage.delete_logs([build.id], [LogCutoff(max_level=logging.INFO,
                                               before=utcnow() + timedelta(hours=1))])
    assert [r.seq for r in storage.get_logs_before(build.id, limit=3)] == [42, 45, 48]


def test_get_logs_before_finds_sparse_records_far_apart(storage: Storage) -> None:
    build = claim(storage)
    storage.append_logs(build.id, [
        LogRecord(utcnow(), logging.ERROR if n in (5, 2990) else logging.INFO, "t", f"{n}")
        for n in range(1, 3001)])
    errors = storage.get_logs_before(build.id, limit=5, min_level=logging.ERROR)
    assert [r.seq for r in errors] == [5, 2990]  # read through many short windows
    assert [r.seq for r in storage.get_logs_before(build.id, limit=1, before_seq=2990,
                                                   min_level=logging.ERROR)] == [5]


def test_recent_builds_are_each_jobs_newest_in_one_call(storage: Storage) -> None:
    states = [S.SUCCESS, S.FAILED, S.SKIPPED, S.CANCELLED, S.SUCCESS, S.FAILED, S.RUNNING]
    a = [built(storage, "a", state) for state in states]
    b = [built(storage, "b", state) for state in (S.SUCCESS, S.FAILED)]
    built(storage, "c", S.SUCCESS)
    found = storage.recent_builds(["a", "b", "nobody"], per_job=5)
    assert set(found) == {"a", "b"}  # c was not asked for; nobody has no builds
    assert [s.id for s in found["a"]] == [x.id for x in reversed(a)][:5]  # newest first
    assert [s.state for s in found["a"]] == list(reversed(states))[:5]
    assert [s.id for s in found["b"]] == [b[1].id, b[0].id]
    assert found["a"][0] == (a[-1].id, S.RUNNING)  # a BuildMark: id and state
    assert storage.recent_builds(["a"], per_job=1)["a"][0].state is S.RUNNING
    assert storage.recent_builds(["a"], per_job=0) == {}
    assert storage.recent_builds([], per_job=5) == {}


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_history_strip_query_reads_an_index(kind: str, tmp_path: Path,
                                                request: pytest.FixtureRequest) -> None:
    """One index descent per job, never a scan of every build (a million on a busy site)."""
    storage = make_storage(kind, tmp_path, request)
    try:
        storage.install()
        sql = recent_builds_sql(2, kind)
        params = ("a", "b", 20)
        if kind == "sqlite":
            connection = sqlite3.connect(str(tmp_path / "jobcontrol.db"))
            with contextlib.closing(connection):
                plan = " | ".join(row[3] for row in connection.execute(
                    "EXPLAIN QUERY PLAN " + sql, params))
            assert "SEARCH b USING INDEX builds_job_id" in plan, plan
        else:
            connection = psycopg2.connect(request.getfixturevalue("pg_url"))
            with contextlib.closing(connection), connection.cursor() as cur:
                cur.execute("SET enable_seqscan = off")  # an empty table: judge the shape
                cur.execute("EXPLAIN " + sql.replace("?", "%s"), params)
                plan = " | ".join(row[0] for row in cur.fetchall())
            assert "Index Scan Backward using builds_job_id on builds" in plan, plan
        assert "SCAN b " not in plan + " " and "Seq Scan on builds" not in plan, plan
    finally:
        storage.close()
