"""What only the PostgreSQL backend has: URLs and schemas, migrations under a lock, claims
across connections, NUL characters, lost connections, LISTEN/NOTIFY.

The contract suite covers the rest; these need ``$JOBCONTROL_TEST_POSTGRESQL`` too, except
the URL checks, which connect to nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jobcontrol.errors import JobAlreadyRunningError, StorageError
from jobcontrol.models import Build, BuildState, LogRecord
from jobcontrol.storage import open_storage
from jobcontrol.storage.schema import Migration, load_migrations
from jobcontrol.timeutil import utcnow

psycopg2 = pytest.importorskip("psycopg2", reason="the test extra installs psycopg2-binary")

from jobcontrol.storage import postgresql  # noqa: E402 (needs psycopg2)
from jobcontrol.storage.postgresql import (  # noqa: E402
    PREPARED_SUMMARIES,
    PostgreSQLStorage,
    parse_url,
)
from jobcontrol.storage.postgresql_cursor import Cursor  # noqa: E402 (needs psycopg2)
from tests.pgdb import query  # noqa: E402 (needs psycopg2)

ROOT = Path(__file__).parent.parent
LATEST = len(load_migrations("postgresql"))


def claim(storage: PostgreSQLStorage, job_id: str = "job", concurrency: int = 1) -> int:
    build = storage.claim_build(job_id, concurrency=concurrency, definition={},
                                definition_hash="", dependency_builds={}, host="h", pid=1)
    return build.id


def record(message: str) -> LogRecord:
    return LogRecord(utcnow(), logging.INFO, "test", message)


@pytest.fixture
def empty_pg_url(pg_databases: Any) -> Iterator[str]:
    """A fresh database without jobcontrol's tables."""
    url = pg_databases.create(installed=False)
    try:
        yield url
    finally:
        pg_databases.drop(url)


@pytest.fixture
def pg(pg_url: str) -> Iterator[PostgreSQLStorage]:
    with PostgreSQLStorage(pg_url) as storage:
        yield storage


# -- URLs, without a server --------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_both_schemes_open_the_backend(scheme: str) -> None:
    storage = open_storage(f"{scheme}://bob:secret@db.example:5432/jobs?schema=ci")
    assert isinstance(storage, PostgreSQLStorage)
    assert storage.schema == "ci"
    assert "secret" not in repr(storage)
    storage.close()  # never connected: nothing to do


def test_parse_url_takes_the_schema_out_for_libpq() -> None:
    assert parse_url("postgresql://u@h/db?sslmode=require&schema=jobs") == (
        "postgresql://u@h/db?sslmode=require", "jobs")
    assert parse_url("postgresql://u@h/db") == ("postgresql://u@h/db", None)


@pytest.mark.parametrize("schema", ["", "1abc", "a-b", 'x"; DROP TABLE builds; --', "pg_jobs",
                                    "a" * 64])
def test_bad_schema_names_are_refused(schema: str) -> None:
    with pytest.raises(StorageError, match="bad schema"):
        open_storage(f"postgresql://u@h/db?schema={schema}")


def test_a_bad_url_is_a_storage_error() -> None:
    with pytest.raises(StorageError, match="bad PostgreSQL URL") as info:
        open_storage("postgresql://u:secret@h/db?no_such_option=1")
    assert "secret" not in str(info.value)


def test_without_psycopg2_the_error_names_the_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['psycopg2'] = None  # as if it were not installed\n"
        "import jobcontrol, jobcontrol.storage\n"
        "from jobcontrol.errors import StorageError\n"
        "try:\n"
        "    jobcontrol.storage.open_storage('postgresql://u@h/db')\n"
        "except StorageError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, text=True,
                         capture_output=True).stdout
    assert "pip install 'jobcontrol[postgresql]'" in out


def test_importing_jobcontrol_does_not_load_psycopg2() -> None:
    code = ("import sys, jobcontrol, jobcontrol.storage, jobcontrol.cli\n"
            "assert 'psycopg2' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_refused_connection_is_a_clear_error_at_once() -> None:
    with socket.socket() as probe:  # a port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    storage = PostgreSQLStorage(f"postgresql://bob:secret@127.0.0.1:{port}/jobs")
    started = time.monotonic()
    with pytest.raises(StorageError, match="cannot connect to PostgreSQL database") as info:
        storage.list_builds()
    assert time.monotonic() - started < 5  # no reconnecting: it never worked
    assert "secret" not in str(info.value) and "\n" not in str(info.value)


def test_a_server_that_never_answers_times_out() -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        storage = PostgreSQLStorage(f"postgresql://u@127.0.0.1:{port}/db?connect_timeout=2")
        started = time.monotonic()
        with pytest.raises(StorageError, match=r"cannot connect.*timeout"):
            storage.get_build(1)
        assert time.monotonic() - started < 10


def test_default_connect_options_yield_to_the_url() -> None:
    storage = PostgreSQLStorage("postgresql://u@h/db?connect_timeout=3")
    assert "connect_timeout" not in storage._connect_options
    assert PostgreSQLStorage("postgresql://u@h/db")._connect_options["connect_timeout"] == "10"


# -- schema and migrations -------------------------------------------------------------------


def test_types_and_indexes(pg: PostgreSQLStorage, pg_url: str) -> None:
    pg.install()
    types = dict(query(pg_url, "SELECT table_name || '.' || column_name, data_type "
                               "FROM information_schema.columns WHERE table_schema = 'public'"))
    for column in ("builds.created", "builds.started", "builds.finished", "builds.heartbeat",
                   "logs.time", "progress.updated", "jobcontrol_schema.applied"):
        assert types[column] == "timestamp with time zone", column
    assert types["builds.definition"] == types["builds.dependency_builds"] == "jsonb"
    assert types["builds.id"] == "bigint"
    indexes = {row[0] for row in query(pg_url, "SELECT indexname FROM pg_indexes "
                                               "WHERE tablename = 'builds'")}
    assert {"builds_job_state_id", "builds_job_id", "builds_state_id"} <= indexes


def test_migrate_an_empty_database(empty_pg_url: str) -> None:
    with PostgreSQLStorage(empty_pg_url) as storage:
        assert storage.schema_version() == 0
        assert storage.install() == LATEST
        assert storage.install() == LATEST
        first = claim(storage)
    assert [r[0] for r in query(empty_pg_url, "SELECT version FROM jobcontrol_schema")] == list(
        range(1, LATEST + 1))
    with PostgreSQLStorage(empty_pg_url) as storage:
        assert claim(storage, "other") > first


def test_concurrent_first_uses_migrate_once(empty_pg_url: str) -> None:
    outcomes: list[Any] = []
    start = threading.Barrier(8)

    def first_use() -> None:
        with PostgreSQLStorage(empty_pg_url) as storage:
            start.wait()
            try:
                outcomes.append(storage.list_builds())
            except Exception as exc:  # reported below
                outcomes.append(exc)

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == [[]] * 8
    assert query(empty_pg_url, "SELECT count(*) FROM jobcontrol_schema") == [(LATEST,)]


def test_schema_parameter_keeps_the_tables_apart(empty_pg_url: str) -> None:
    with PostgreSQLStorage(empty_pg_url + "?schema=team_a") as a, \
            PostgreSQLStorage(empty_pg_url + "?schema=Team_B") as b:
        assert a.schema_version() == 0
        ids_a = [claim(a, "x"), claim(a, "y")]
        assert b.list_builds() == []
        assert claim(b, "x") == 1
        assert [build.id for build in a.list_builds()] == ids_a[::-1]
    tables = set(query(empty_pg_url, "SELECT table_schema, table_name FROM "
                                     "information_schema.tables WHERE table_name = 'builds'"))
    assert tables == {("team_a", "builds"), ("Team_B", "builds")}


def test_a_newer_schema_is_refused(pg: PostgreSQLStorage, pg_url: str) -> None:
    query(pg_url, "INSERT INTO jobcontrol_schema VALUES (%s, 'future', now())", (LATEST + 1,))
    with pytest.raises(StorageError, match="upgrade jobcontrol"):
        pg.list_builds()


def test_a_failed_migration_leaves_nothing_behind(empty_pg_url: str) -> None:
    with PostgreSQLStorage(empty_pg_url) as storage:
        good = load_migrations("postgresql")[0]
        storage._migrations = [good, Migration(2, "broken", "CREATE TABLE x (a int);\nNOT SQL;")]
        with pytest.raises(StorageError, match="syntax error"):
            storage.install()
        assert storage.schema_version() == 0
    assert query(empty_pg_url, "SELECT to_regclass('builds'), to_regclass('x')") == [
        (None, None)]


# -- claims, text, transactions --------------------------------------------------------------


def test_claims_from_many_connections_at_once(pg_url: str) -> None:
    storages = [PostgreSQLStorage(pg_url) for _ in range(10)]
    try:
        for storage in storages:
            storage.install()  # connected, so the race is only the claims'
        for _ in range(3):
            start = threading.Barrier(len(storages))
            outcomes: list[str] = []

            def racer(storage: PostgreSQLStorage, start: threading.Barrier,
                      outcomes: list[str]) -> None:
                start.wait()
                try:
                    outcomes.append(f"ok {claim(storage, 'job', concurrency=2)}")
                except JobAlreadyRunningError:
                    outcomes.append("refused")

            threads = [threading.Thread(target=racer, args=(s, start, outcomes))
                       for s in storages]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            winners = [int(o.split()[1]) for o in outcomes if o.startswith("ok")]
            assert len(winners) == 2 and outcomes.count("refused") == 8, outcomes
            for build_id in winners:
                storages[0].finish_build(build_id, BuildState.SUCCESS)
    finally:
        for storage in storages:
            storage.close()


def test_nul_characters_are_stored_as_replacement_characters(pg: PostgreSQLStorage) -> None:
    build = pg.claim_build("job", concurrency=1, definition={"kwargs": {"sep": "a\x00b"}},
                           definition_hash="", dependency_builds={}, host="h", pid=1)
    pg.append_logs(build.id, [record("binary \x00 output")])
    assert build.definition == {"kwargs": {"sep": "a\ufffdb"}}
    assert pg.get_logs(build.id)[0].message == "binary \ufffd output"
    done = pg.finish_build(build.id, BuildState.FAILED, reason="bad \x00 byte")
    assert done.reason == "bad \ufffd byte"
    later = claim(pg, "other")  # a finish left for the next claim to commit reads back too
    pg.pending_commit_delay = 3600
    done = pg.finish_build_with_logs(later, BuildState.FAILED, logs=[], commit_later=True,
                                     reason="late \x00 byte")
    assert done.reason == "late \ufffd byte"
    pg.commit_pending()
    assert pg.get_build(later).reason == "late \ufffd byte"


def our_states(url: str, application: str = "jobcontrol") -> list[str]:
    """The states of jobcontrol's connections to ``url``'s database."""
    return [row[0] for row in query(
        url, "SELECT state FROM pg_stat_activity WHERE datname = current_database() "
             "AND application_name = %s AND pid <> pg_backend_pid()", (application,))]


def test_no_connection_is_left_in_a_transaction(pg: PostgreSQLStorage, pg_url: str) -> None:
    first = claim(pg)
    with pytest.raises(JobAlreadyRunningError):
        claim(pg)  # refused inside the transaction
    pg.append_logs(first, [record("x")])
    pg.job_summaries()
    pg.wait_for_logs(first, 1, 0.1)  # opens the listening connection too
    assert our_states(pg_url) == ["idle", "idle"]


# -- lost connections --------------------------------------------------------------------------


def kill_backends(url: str) -> int:
    """Terminate jobcontrol's connections to the database, as a server restart would."""
    rows = query(url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = current_database() AND application_name = 'jobcontrol'")
    return len(rows)


def test_a_lost_connection_is_reopened(pg: PostgreSQLStorage, pg_url: str) -> None:
    build = claim(pg)
    for attempt in range(3):
        assert kill_backends(pg_url) == 1
        pg.append_logs(build, [record(f"after kill {attempt}")])
    assert kill_backends(pg_url) == 1
    assert [r.message for r in pg.get_logs(build)] == [f"after kill {i}" for i in range(3)]
    assert kill_backends(pg_url) == 1
    assert pg.finish_build(build, BuildState.SUCCESS).state is BuildState.SUCCESS


def test_giving_up_after_the_reconnect_window(pg: PostgreSQLStorage, pg_url: str) -> None:
    build = claim(pg)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    pg.dsn = pg.dsn.replace(":5432/", f":{dead_port}/")  # the server "moved away"
    pg.reconnect_window = 0.5
    kill_backends(pg_url)
    started = time.monotonic()
    with pytest.raises(StorageError, match=r"could not get it back within 0.5s"):
        pg.append_logs(build, [record("lost")])
    assert time.monotonic() - started < 5


def cut_off_after_commit(storage: PostgreSQLStorage, monkeypatch: pytest.MonkeyPatch,
                         landed: bool = True, meanwhile: Callable[[], Any] | None = None
                         ) -> None:
    """The next COMMIT loses its connection: it committed and its answer is lost
    (``landed``), or it never reached the server (then ``meanwhile()`` runs)."""
    real_commit = storage._commit

    def commit_then_lose(conn: Any, cur: Any) -> None:
        monkeypatch.setattr(storage, "_commit", real_commit)
        if landed:
            real_commit(conn, cur)
        conn.close()
        if meanwhile is not None:
            meanwhile()
        raise postgresql._CommitInDoubt("connection lost during COMMIT")

    monkeypatch.setattr(storage, "_commit", commit_then_lose)


def test_logs_committed_before_the_connection_broke_are_not_doubled(
    pg: PostgreSQLStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    build = claim(pg)
    pg.append_logs(build, [record("one")])
    cut_off_after_commit(pg, monkeypatch)
    pg.append_logs(build, [record("two"), record("three")])
    assert [(r.seq, r.message) for r in pg.get_logs(build)] == [
        (1, "one"), (2, "two"), (3, "three")]


@pytest.mark.parametrize("landed", [True, False], ids=["after the insert", "before it"])
def test_a_run_whose_commit_was_cut_off_is_recorded_once(
    pg: PostgreSQLStorage, monkeypatch: pytest.MonkeyPatch, landed: bool
) -> None:
    """Every connection cut (a failover): the run is recorded, once, not refused with
    "may or may not have been recorded" (its token finds the attempt that landed)."""
    from jobcontrol.models import RunTrigger

    cut_off_after_commit(pg, monkeypatch, landed=landed)
    run = pg.create_run(RunTrigger.CLI, by="me@here", targets=["a"], note="n")
    assert [r.id for r in pg.list_runs()] == [run.id]
    assert pg.get_run(run.id).targets == ("a",)


def cut_off_claims(monkeypatch: pytest.MonkeyPatch, lost: str) -> None:
    """The next claim's query loses its connection, "after the claim" committed (its
    answer is lost with the connection) or "before it" reached the server."""
    real_execute = Cursor.execute
    claimed: list[bool] = []

    def execute_then_lose(cur: Any, query: Any, vars: Any = None) -> Any:
        if isinstance(query, str) and query.startswith("INSERT INTO builds (job_id"):
            claimed.append(True)
            if lost == "after the claim":
                return real_execute(cur, query, vars)
        elif not (claimed and query == "COMMIT"):
            return real_execute(cur, query, vars)
        monkeypatch.setattr(Cursor, "execute", real_execute)
        if lost == "after the claim":
            real_execute(cur, query, vars)  # the COMMIT
        cur.connection.close()
        raise psycopg2.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(Cursor, "execute", execute_then_lose)


@pytest.mark.parametrize("lost", ["after the claim", "before it"])
def test_a_claim_cut_off_finds_out_whether_it_happened(
        pg: PostgreSQLStorage, pg_url: str, monkeypatch: pytest.MonkeyPatch, lost: str) -> None:
    cut_off_claims(monkeypatch, lost)
    build = pg.claim_build("job", concurrency=1, definition={"x": 1}, definition_hash="h",
                           dependency_builds={}, host="h", pid=7)
    assert seen(pg_url) == [(build.id, "running")]  # one build, whichever way it went
    assert (build.job_id, build.state, build.host, build.pid, build.definition) == (
        "job", BuildState.RUNNING, "h", 7, {"x": 1})
    pg.append_logs(build.id, [record("one")])
    done = pg.finish_build_with_logs(build.id, BuildState.SUCCESS, logs=[record("two")])
    assert done.state is BuildState.SUCCESS
    assert logged(pg_url) == [(build.id, 1, "one"), (build.id, 2, "two")]


def queued(storage: PostgreSQLStorage, job_id: str = "job") -> int:
    build = storage.enqueue_build(job_id, definition={}, definition_hash="",
                                  dependency_builds={}, queue="q")
    assert build is not None
    return build.id


@pytest.mark.parametrize("lost", ["after the claim", "before it", "before, taken meanwhile"])
def test_a_start_cut_off_finds_out_whether_it_happened(
        pg: PostgreSQLStorage, monkeypatch: pytest.MonkeyPatch, lost: str) -> None:
    build_id = queued(pg)

    def take() -> None:
        with PostgreSQLStorage(pg.url) as other:
            other.start_queued_build(build_id, concurrency=1, host="elsewhere", pid=9)

    cut_off_after_commit(pg, monkeypatch, landed=lost == "after the claim",
                         meanwhile=take if lost == "before, taken meanwhile" else None)
    started = pg.start_queued_build(build_id, concurrency=1, host="h", pid=7)
    if lost == "before, taken meanwhile":
        assert started is None
        assert pg.get_build(build_id).host == "elsewhere"
    else:
        assert started is not None and started.state is BuildState.RUNNING
        assert (started.host, started.pid) == ("h", 7)


@pytest.mark.parametrize("lost", ["after the finish", "before it"])
@pytest.mark.parametrize("lines", [0, 2])
def test_a_finish_cut_off_finds_out_whether_it_happened(
        pg: PostgreSQLStorage, monkeypatch: pytest.MonkeyPatch, lost: str, lines: int) -> None:
    build = claim(pg)
    pg.append_logs(build, [record("before")])
    cut_off_after_commit(pg, monkeypatch, landed=lost == "after the finish")
    records = [record(f"last {n}") for n in range(lines)]
    done = pg.finish_build_with_logs(build, BuildState.SUCCESS, logs=records)
    assert done.state is BuildState.SUCCESS
    assert [(r.seq, r.message) for r in pg.get_logs(build)] == [
        (n + 1, m) for n, m in enumerate(["before"] + [r.message for r in records])]


@pytest.mark.parametrize("lost", ["after the insert", "before it"])
def test_a_queueing_cut_off_makes_one_build(
        pg: PostgreSQLStorage, monkeypatch: pytest.MonkeyPatch, lost: str) -> None:
    assert pg.list_builds("job") == []  # connected
    cut_off_after_commit(pg, monkeypatch, landed=lost == "after the insert")
    build_id = queued(pg)
    assert [b.id for b in pg.list_builds("job")] == [build_id]
    assert pg.get_build(build_id).state is BuildState.QUEUED


# -- outcomes committed with the next write (finish_build_with_logs(commit_later=True)) -------


def finish_later(storage: PostgreSQLStorage, build_id: int, *messages: str) -> None:
    """Leave the outcome for the next write to commit (and not for the storage's commit
    timer, which :func:`test_a_pending_outcome_is_committed_by_the_storage_alone` tests)."""
    storage.pending_commit_delay = 3600
    storage.finish_build_with_logs(build_id, BuildState.SUCCESS,
                                   logs=[record(m) for m in messages], commit_later=True)


def seen(url: str) -> list[tuple[int, str]]:
    """The builds as another connection sees them."""
    return [tuple(row) for row in query(url, "SELECT id, state FROM builds ORDER BY id")]


def logged(url: str) -> list[tuple[int, int, str]]:
    return [tuple(row) for row in query(
        url, "SELECT build_id, seq, message FROM logs ORDER BY build_id, seq")]


def test_a_pending_outcome_is_committed_with_the_next_claim(pg: PostgreSQLStorage,
                                                            pg_url: str) -> None:
    first = claim(pg, "a")
    finish_later(pg, first, "one", "two")
    assert seen(pg_url) == [(first, "running")]
    second = claim(pg, "b")
    assert seen(pg_url) == [(first, "success"), (second, "running")]
    assert logged(pg_url) == [(first, 1, "one"), (first, 2, "two")]
    assert our_states(pg_url) == ["idle"]


def test_a_pending_outcome_is_committed_by_the_storage_alone(pg: PostgreSQLStorage,
                                                             pg_url: str) -> None:
    """No write follows, and nobody calls commit_pending: the storage commits the outcome
    itself within its ``pending_commit_delay``, and leaves no transaction open."""
    first = claim(pg, "a")
    pg.pending_commit_delay = 0.2
    pg.finish_build_with_logs(first, BuildState.SUCCESS, logs=[record("one")],
                              commit_later=True)
    assert seen(pg_url) == [(first, "running")]  # left pending...
    deadline = time.monotonic() + 10
    while seen(pg_url) != [(first, "success")]:  # ...then committed, untouched
        assert time.monotonic() < deadline, "the pending outcome was never committed"
        time.sleep(0.01)
    assert logged(pg_url) == [(first, 1, "one")]
    assert our_states(pg_url) == ["idle"]


def test_a_pending_outcome_survives_a_refused_claim(pg: PostgreSQLStorage,
                                                    pg_url: str) -> None:
    holder, done = claim(pg, "busy"), claim(pg, "a")
    finish_later(pg, done, "kept")
    with pytest.raises(JobAlreadyRunningError):
        claim(pg, "busy")
    assert seen(pg_url) == [(holder, "running"), (done, "success")]
    assert logged(pg_url) == [(done, 1, "kept")]


def test_a_pending_outcome_survives_a_lost_connection(pg: PostgreSQLStorage,
                                                      pg_url: str) -> None:
    first = claim(pg, "a")
    finish_later(pg, first, "one")
    assert kill_backends(pg_url) == 1  # the open transaction is gone with its backend
    second = claim(pg, "b")  # reconnects; the outcome is written again first
    assert seen(pg_url) == [(first, "success"), (second, "running")]
    assert logged(pg_url) == [(first, 1, "one")]
    finish_later(pg, second, "two")
    assert kill_backends(pg_url) == 1
    pg.commit_pending()
    assert seen(pg_url) == [(first, "success"), (second, "success")]


@pytest.mark.parametrize("lost", ["after the claim", "before it"])
def test_a_pending_outcome_in_a_claim_cut_off_is_recorded_once(
    pg: PostgreSQLStorage, pg_url: str, monkeypatch: pytest.MonkeyPatch, lost: str
) -> None:
    """The claim that carried it (with its COMMIT) lost its connection: the outcome is
    neither lost nor doubled, and the claim finds out whether it happened."""
    first = claim(pg, "a")
    finish_later(pg, first, "one", "two")
    cut_off_claims(monkeypatch, lost)
    second = claim(pg, "b")
    assert seen(pg_url) == [(first, "success"), (second, "running")]
    assert logged(pg_url) == [(first, 1, "one"), (first, 2, "two")]
    assert our_states(pg_url) == ["idle"]


def test_claims_in_one_microsecond_are_told_apart(pg: PostgreSQLStorage, pg_url: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A claim whose answer was cut off finds its own build by its token, not by its job,
    host, pid and start: here all three builds have the same ones."""
    frozen = pg.now()
    monkeypatch.setattr(pg, "now", lambda: frozen)
    first, second = claim(pg, concurrency=3), claim(pg, concurrency=3)
    cut_off_claims(monkeypatch, "after the claim")
    third = claim(pg, concurrency=3)
    assert seen(pg_url) == [(first, "running"), (second, "running"), (third, "running")]
    assert len({first, second, third}) == 3


def test_a_claimed_builds_last_records_follow_the_servers_numbers(pg: PostgreSQLStorage,
                                                                  pg_url: str) -> None:
    """A batch written while the build runs is numbered by the server, which says where
    the log ends; the finish of a build this object claimed numbers its last records from
    there itself (no row lock, no look at the log's end), in a run as on its own."""
    first, second = claim(pg, "a"), claim(pg, "b")
    pg.append_logs(first, [record("one"), record("two")])
    assert pg._claimed[first].next_seq == 3
    finish_later(pg, first, "three", "four")
    pg.finish_build_with_logs(second, BuildState.SUCCESS, logs=[record("alone")])
    assert logged(pg_url) == [(first, 1, "one"), (first, 2, "two"), (first, 3, "three"),
                              (first, 4, "four"), (second, 1, "alone")]
    assert seen(pg_url) == [(first, "success"), (second, "success")]


def test_a_record_someone_else_wrote_is_kept(pg: PostgreSQLStorage, pg_url: str) -> None:
    """Only its runner writes a running build's log; should another writer add a record
    all the same, the finish that numbered its records here fails without storing
    anything, and the next attempt (the runner retries a finish) is numbered by the
    server."""
    build = claim(pg, "a")
    with open_storage(pg_url) as other:
        other.append_logs(build, [record("theirs")])
    with pytest.raises(StorageError, match="duplicate key"):
        pg.finish_build_with_logs(build, BuildState.SUCCESS, logs=[record("ours")])
    assert pg._claimed[build].next_seq is None  # where its log ends is asked again
    assert seen(pg_url) == [(build, "running")]
    pg.finish_build_with_logs(build, BuildState.SUCCESS, logs=[record("ours")])
    assert logged(pg_url) == [(build, 1, "theirs"), (build, 2, "ours")]
    assert seen(pg_url) == [(build, "success")]


# -- LISTEN/NOTIFY -----------------------------------------------------------------------------


def test_wait_for_logs_wakes_on_notify_from_another_connection(pg_url: str) -> None:
    with PostgreSQLStorage(pg_url) as follower, PostgreSQLStorage(pg_url) as writer:
        build = claim(writer)
        timer = threading.Timer(0.3, writer.append_logs, (build, [record("news")]))
        timer.start()
        started = time.monotonic()
        # polling every 60 s could not explain a wake-up within seconds: the NOTIFY did it
        follower.wait_for_logs(build, 0, 30, poll_interval=60)
        timer.join()
        assert 0.25 <= time.monotonic() - started < 5
        # the outcome wakes it too, and news below min_level does not
        threading.Timer(0.3, writer.append_logs, (build, [
            LogRecord(utcnow(), logging.DEBUG, "t", "quiet")])).start()
        threading.Timer(0.8, writer.finish_build, (build, BuildState.SUCCESS)).start()
        started = time.monotonic()
        follower.wait_for_logs(build, 1, 30, min_level=logging.INFO, poll_interval=60)
        assert 0.75 <= time.monotonic() - started < 5


def test_wait_for_logs_survives_a_lost_listener(pg_url: str) -> None:
    with PostgreSQLStorage(pg_url) as follower, PostgreSQLStorage(pg_url) as writer:
        build = claim(writer)
        follower.wait_for_logs(build, 0, 0.1)
        kill_backends(pg_url)  # both connections, the listener too
        threading.Timer(0.5, writer.append_logs, (build, [record("news")])).start()
        started = time.monotonic()
        follower.wait_for_logs(build, 0, 30, poll_interval=60)
        assert time.monotonic() - started < 5


# -- privileges (as the README states them) ----------------------------------------------------


@pytest.fixture
def plain_role(pg_url: str) -> Iterator[str]:
    """A login role with no privileges of its own (the server trusts local connections)."""
    role = f"jctest_{os.getpid()}_{uuid.uuid4().hex[:8]}_plain"  # a role of its own
    query(pg_url, f'CREATE ROLE "{role}" LOGIN')
    try:
        yield role
    finally:
        query(pg_url, f'DROP OWNED BY "{role}"')
        query(pg_url, f'DROP ROLE "{role}"')


def test_after_install_plain_dml_privileges_are_enough(pg_url: str, plain_role: str) -> None:
    query(pg_url, f'REVOKE CREATE ON SCHEMA public FROM PUBLIC; '
                  f'GRANT USAGE ON SCHEMA public TO "{plain_role}"; '
                  f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public '
                  f'TO "{plain_role}"')  # identity columns need no grant on their sequences
    as_role = pg_url.replace("postgres@", f"{plain_role}@")
    with PostgreSQLStorage(as_role) as storage:
        assert storage.install() == LATEST  # nothing to do: no CREATE needed
        build = claim(storage)
        storage.append_logs(build, [record("line")])
        storage.wait_for_logs(build, 0, 1)
        storage.finish_build(build, BuildState.SUCCESS)
        assert storage.job_summaries()["job"].last_success is not None
        storage.delete_build(build)


def test_the_first_migration_needs_create(empty_pg_url: str, plain_role: str) -> None:
    query(empty_pg_url, "REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    as_role = empty_pg_url.replace("postgres@", f"{plain_role}@")
    with PostgreSQLStorage(as_role) as storage, \
            pytest.raises(StorageError, match="permission denied"):
        storage.install()


# -- prepared statements -----------------------------------------------------------------------


def prepared_names(storage: PostgreSQLStorage) -> set[str]:
    """The statements the storage's own connection has prepared."""
    with storage._cursor() as cur:
        cur.execute("SELECT name FROM pg_prepared_statements")
        return {row[0] for row in cur.fetchall()}


def claim_and_finish(storage: PostgreSQLStorage, job_id: str = "job") -> Build:
    build = storage.claim_build(job_id, concurrency=1, definition={}, definition_hash="h",
                                dependency_builds={}, host="h", pid=1)
    return storage.finish_build(build.id, BuildState.SUCCESS)


def test_a_builds_statements_are_prepared_once_a_connection(pg_url: str) -> None:
    with PostgreSQLStorage(pg_url) as storage:
        assert claim_and_finish(storage).state is BuildState.SUCCESS
        assert {"jc_claim_build", "jc_finish_claimed"} <= prepared_names(storage)
        assert claim_and_finish(storage).state is BuildState.SUCCESS  # run by name again
        # its connection lost, the next one prepares them again, on first use
        query(pg_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        assert claim_and_finish(storage, "other").state is BuildState.SUCCESS
        assert "jc_claim_build" in prepared_names(storage)


def test_the_status_query_s_shapes_are_prepared_up_to_a_bound(pg_url: str) -> None:
    # asked at every step of a run: planning it cost more than running it
    with PostgreSQLStorage(pg_url) as storage:
        first, second = claim_and_finish(storage, "a"), claim_and_finish(storage, "b")
        assert storage.job_summaries(["a", "b"])["b"].last_build == second
        assert {"jc_job_summaries_2"} <= prepared_names(storage)
        assert storage.job_summaries(["a", "b"])["a"].last_success == first  # by name
        assert set(storage.job_summaries()) == {"a", "b"}  # every job: a shape of its own
        assert "jc_job_summaries_0" in prepared_names(storage)
        many = [f"job{n}" for n in range(PREPARED_SUMMARIES + 1)]
        assert storage.job_summaries(many) == {}
        assert f"jc_job_summaries_{len(many)}" not in prepared_names(storage)
        query(pg_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        assert set(storage.job_summaries(["a", "b"])) == {"a", "b"}  # prepared anew


def test_prepare_off_prepares_nothing(pg_url: str) -> None:
    with open_storage(f"{pg_url}{'&' if '?' in pg_url else '?'}prepare=off") as storage:
        assert isinstance(storage, PostgreSQLStorage)
        assert claim_and_finish(storage).state is BuildState.SUCCESS
        assert set(storage.job_summaries(["job"])) == {"job"}
        assert prepared_names(storage) == set()


def test_a_bad_prepare_value_is_refused_in_one_line() -> None:
    with pytest.raises(StorageError,
                       match=r"^bad prepare=.maybe. in the storage URL: use on or off$"):
        open_storage("postgresql://u@h/db?prepare=maybe")
