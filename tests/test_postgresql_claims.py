"""PostgreSQL claims whose connection is lost, again and again: each is found or made again
exactly once, in real ``jobcontrol build`` processes while every connection to the test's
database is terminated every 50 ms, and in one storage object cut off after the claim
committed and again while it looks for what it made.

The terminator ends only the connections to the test's own database (others share the server).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from jobcontrol.models import BuildState, NewRun, RunTrigger
from tests.support import make_project

psycopg2 = pytest.importorskip("psycopg2", reason="the test extra installs psycopg2-binary")

from jobcontrol.storage.postgresql import PostgreSQLStorage  # noqa: E402
from jobcontrol.storage.postgresql_cursor import Cursor  # noqa: E402 (needs psycopg2)
from tests.pgdb import query  # noqa: E402 (needs psycopg2)

ROOT = Path(__file__).parent.parent

#: jobs in the config each run builds, and runs of it while connections are terminated
JOBS = 20
RUNS = 15
#: seconds between two rounds of terminating every connection to the database
EVERY = 0.05


@contextlib.contextmanager
def terminating(url: str, every: float = EVERY) -> Iterator[list[int]]:
    """Terminate every other connection to ``url``'s database every ``every`` seconds while
    the block runs; yields a one-item list counting the connections terminated."""
    database = urlsplit(url).path.lstrip("/")
    stop = threading.Event()
    killed = [0]
    conn = psycopg2.connect(url, application_name="terminator")
    conn.autocommit = True

    def loop() -> None:
        with conn.cursor() as cur:
            while not stop.wait(every):
                cur.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE datname = %s AND pid <> pg_backend_pid()", (database,))
                killed[0] += cur.fetchone()[0]

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield killed
    finally:
        stop.set()
        thread.join(timeout=10)
        conn.close()


def test_builds_go_on_while_every_connection_is_terminated(tmp_path: Path,
                                                           pg_url: str) -> None:
    jobs = [f"t{n}" for n in range(1, JOBS + 1)]
    config = make_project(tmp_path, "jobs:\n" + "".join(
        f"  - {{id: {job}, function: jobfuncs.noop, kwargs: {{tag: {job}}}, "
        f"isolation: process}}\n" for job in jobs))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("JOBCONTROL_")},
           "PYTHONPATH": str(ROOT)}
    with terminating(pg_url) as killed:
        for run in range(1, RUNS + 1):
            done = subprocess.run(
                [sys.executable, "-m", "jobcontrol", "-c", str(config), "--storage", pg_url,
                 "build", *jobs],
                cwd=tmp_path, env=env, text=True, capture_output=True, timeout=120)
            assert done.returncode == 0, f"run {run}: {done.stderr}"
    assert killed[0] > RUNS  # the connections really were terminated, often
    rows = query(pg_url, "SELECT job_id, state, count(*) FROM builds "
                         "GROUP BY job_id, state ORDER BY job_id, state")
    assert rows == sorted((job, "success", RUNS) for job in jobs)


def cut_off_claim_and_lookup(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The next claim commits, but its answer is lost with the connection; then the look for
    the build it made loses its connection too, before it gets an answer. Returns the
    queries of the look-ups, as sent."""
    real_execute = Cursor.execute
    lookups: list[str] = []
    claimed: list[bool] = []

    def execute(cur: Any, query: Any, vars: Any = None) -> Any:
        text = query if isinstance(query, str) else ""
        if text.startswith("INSERT INTO builds (job_id") and not lookups:
            claimed.append(True)
            return real_execute(cur, query, vars)
        if text == "COMMIT" and claimed and not lookups:
            real_execute(cur, query, vars)  # committed
        elif text.startswith("SELECT") and ("claim_token = " in text or "started = " in text):
            lookups.append(text)
            if len(lookups) > 1:
                return real_execute(cur, query, vars)
        else:
            return real_execute(cur, query, vars)
        cur.connection.close()
        raise psycopg2.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(Cursor, "execute", execute)
    return lookups


@pytest.mark.parametrize("pending", [False, True], ids=["alone", "with a pending outcome"])
def test_a_claim_cut_off_twice_is_found_once(pg_url: str, monkeypatch: pytest.MonkeyPatch,
                                             pending: bool) -> None:
    with PostgreSQLStorage(pg_url) as storage:
        first = storage.claim_build("a", concurrency=1, definition={}, definition_hash="",
                                    dependency_builds={}, host="h", pid=1)
        if pending:  # the claim carries the previous build's COMMIT
            storage.pending_commit_delay = 3600  # (not the storage's commit timer)
            storage.finish_build_with_logs(first.id, BuildState.SUCCESS, logs=[],
                                           commit_later=True)
        else:
            storage.finish_build(first.id, BuildState.SUCCESS)
        lookups = cut_off_claim_and_lookup(monkeypatch)
        build = storage.claim_build("job", concurrency=1, definition={"x": 1},
                                    definition_hash="h", dependency_builds={}, host="h", pid=7)
        assert len(lookups) == 2  # cut off once, then answered
        assert (build.job_id, build.state, build.pid) == ("job", BuildState.RUNNING, 7)
        assert query(pg_url, "SELECT id, job_id, state FROM builds ORDER BY id") == [
            (first.id, "a", "success"), (build.id, "job", "running")]
        done = storage.finish_build(build.id, BuildState.SUCCESS)
        assert done.state is BuildState.SUCCESS


def commit_late(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """The next claim loses its connection before its answer, and the server, unaware, runs
    it only later (as a backend that outlives its connection would): after the retry has
    looked for its row and found none, and before it claims again."""
    real_execute = Cursor.execute
    claims: list[str] = []  # the claim, as sent, until it is committed

    def execute(cur: Any, sql: Any, vars: Any = None) -> Any:
        text = sql if isinstance(sql, str) else ""
        if text.startswith("INSERT INTO builds (job_id") and not claims:
            claims.append(cur.mogrify(sql, vars).decode())
            cur.connection.close()
            raise psycopg2.OperationalError("server closed the connection unexpectedly")
        result = real_execute(cur, sql, vars)
        if "claim_token = " in text and claims and claims[-1]:
            query(url, claims[-1])  # looked for it and found none: now it commits
            claims.append("")
        return result

    monkeypatch.setattr(Cursor, "execute", execute)


@pytest.mark.parametrize("concurrency", [1, 2])
def test_a_claim_committed_after_its_retry_looked_is_found(
        pg_url: str, monkeypatch: pytest.MonkeyPatch, concurrency: int) -> None:
    """The retry is refused by the late build (concurrency 1), or the unique index refuses
    its second row (concurrency 2): either way it looks again, and finds it."""
    with PostgreSQLStorage(pg_url) as storage:
        storage.install()
        commit_late(monkeypatch, pg_url)
        build = storage.claim_build("job", concurrency=concurrency, definition={},
                                    definition_hash="", dependency_builds={}, host="h", pid=7)
        assert query(pg_url, "SELECT id, state FROM builds") == [(build.id, "running")]
        assert storage.finish_build(build.id, BuildState.SUCCESS).state is BuildState.SUCCESS


@pytest.mark.parametrize("cut", ["after it landed", "before it was sent"])
def test_a_queued_build_cut_off_is_made_once(pg_url: str, monkeypatch: pytest.MonkeyPatch,
                                             cut: str) -> None:
    """``build --async``'s one statement (the pause, the run, the build: its own
    transaction) loses its connection; the retry finds what landed or makes it, once."""
    real_execute = Cursor.execute
    cuts: list[str] = []

    def execute(cur: Any, query: Any, vars: Any = None) -> Any:
        if isinstance(query, str) and query.startswith("WITH pause AS") and not cuts:
            cuts.append(query)
            if cut == "after it landed":
                real_execute(cur, query, vars)
            cur.connection.close()
            raise psycopg2.OperationalError("server closed the connection unexpectedly")
        return real_execute(cur, query, vars)

    with PostgreSQLStorage(pg_url) as storage:
        storage.install()
        monkeypatch.setattr(Cursor, "execute", execute)
        build = storage.enqueue_build(
            "job", definition={"x": 1}, definition_hash="h", dependency_builds={}, queue="q",
            new_run=NewRun(RunTrigger.API, "bob@box", ("job",), {}, None), unless_paused=True)
    assert cuts  # the statement really was cut off
    assert build is not None and build.run_id is not None
    assert query(pg_url, "SELECT id, job_id, state, run_id FROM builds") == [
        (build.id, "job", "queued", build.run_id)]
    assert query(pg_url, "SELECT id FROM build_runs") == [(build.run_id,)]
