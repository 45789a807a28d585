"""What only the SQLite backend has: a file, URLs, pragmas, migrations, other processes."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import jobcontrol.storage
from jobcontrol.errors import JobAlreadyRunningError, StorageError
from jobcontrol.models import BuildState, LogRecord
from jobcontrol.storage import open_storage, redact_url
from jobcontrol.storage.sql import Migration, load_migrations
from jobcontrol.storage.sqlite import SQLiteStorage
from jobcontrol.timeutil import utcnow

LATEST = len(load_migrations("sqlite"))


def claim(storage: SQLiteStorage, job_id: str = "job", concurrency: int = 1) -> int:
    build = storage.claim_build(job_id, concurrency=concurrency, definition={},
                                definition_hash="", dependency_builds={}, host="h", pid=1)
    return build.id


def query(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows from a connection of our own, closed before returning."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def tables(path: Path) -> set[str]:
    return {row[0] for row in query(path, "SELECT name FROM sqlite_master WHERE type='table'")}


# -- open_storage and URLs -------------------------------------------------------------------


def test_relative_url_resolves_against_base_dir(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    with open_storage("sqlite:///sub/jobs.db", base_dir=tmp_path) as storage:
        assert isinstance(storage, SQLiteStorage)
        assert storage.path == tmp_path / "sub" / "jobs.db"
        assert storage.url == f"sqlite:///{tmp_path}/sub/jobs.db"  # absolute: fit to hand on


def test_relative_url_defaults_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with open_storage("sqlite:///jobs.db") as storage:
        assert isinstance(storage, SQLiteStorage)
        assert storage.path == tmp_path / "jobs.db"


def test_absolute_url_ignores_base_dir(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/abs.db"
    assert url.startswith("sqlite:////")
    with open_storage(url, base_dir="/nonexistent") as storage:
        assert isinstance(storage, SQLiteStorage)
        assert storage.path == tmp_path / "abs.db"


def test_memory_url() -> None:
    with open_storage("memory://") as storage:
        assert type(storage).__name__ == "MemoryStorage"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite://", "three slashes"),
        ("sqlite:///", "expected a database file"),
        ("sqlite://host/jobs.db", "three slashes"),
        ("sqlite:///somedir/", "expected a database file"),
        ("sqlite:///missing/jobs.db", "folder .*missing does not exist"),
        ("mysql://u:secret@h/db",
         r"expected one of memory://, postgres://, postgresql://, sqlite://"),
        ("jobcontrol.db", "unsupported storage URL"),
    ],
)
def test_bad_urls(url: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=message) as info:
        open_storage(url, base_dir=tmp_path)
    assert "\n" not in str(info.value)
    assert "secret" not in str(info.value)


def test_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(StorageError) as info:
        SQLiteStorage(tmp_path / "nope" / "jobs.db")
    assert str(tmp_path / "nope" / "jobs.db") in str(info.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://bob:s3cr:et@db:5432/jobs", "postgresql://bob:***@db:5432/jobs"),
        ("postgresql://bob:p@ss@db/jobs", "postgresql://bob:***@db/jobs"),
        ("postgresql://bob@db/jobs", "postgresql://bob@db/jobs"),
        ("postgresql://db:5432/jobs", "postgresql://db:5432/jobs"),
        ("postgresql://db/jobs?sslmode=require&password=x", "postgresql://db/jobs?sslmode=require&password=***"),
        ("sqlite:////srv/jobs.db", "sqlite:////srv/jobs.db"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_importing_jobcontrol_storage_loads_no_backend() -> None:
    code = (
        "import sys, jobcontrol.storage\n"
        "loaded = {'sqlite3', 'jobcontrol.storage.sqlite', 'jobcontrol.storage.memory'}\n"
        "assert not loaded & set(sys.modules), loaded & set(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)


# -- the file and its pragmas ----------------------------------------------------------------


def test_opening_is_cheap_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    with SQLiteStorage(path) as storage:
        assert storage.schema_version() == 0
        assert not path.exists()
        assert storage.list_builds() == []  # first use creates and migrates
        assert path.exists()
        assert storage.schema_version() == LATEST


def test_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    with SQLiteStorage(path) as storage:
        storage.install()
        conn = storage._connection()
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
        assert conn.execute("PRAGMA busy_timeout").fetchone() == (30000,)
        assert conn.execute("PRAGMA foreign_keys").fetchone() == (1,)
    # WAL is a property of the file: another connection sees it too
    assert query(path, "PRAGMA journal_mode") == [("wal",)]


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    path.write_bytes(b"this is not a database, just some text " * 100)
    with SQLiteStorage(path) as storage, pytest.raises(StorageError, match=str(path)):
        storage.list_builds()


def test_one_object_shared_by_threads(tmp_path: Path) -> None:
    with SQLiteStorage(tmp_path / "jobs.db") as storage:
        outcomes: list[str] = []

        def worker() -> None:
            try:
                claim(storage)
                outcomes.append("ok")
            except JobAlreadyRunningError:
                outcomes.append("refused")

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["ok"] + ["refused"] * 7


# -- migrations ------------------------------------------------------------------------------


def test_migrations_are_numbered_from_one() -> None:
    migrations = load_migrations("sqlite")
    assert [m.version for m in migrations] == list(range(1, LATEST + 1))
    assert migrations[0].name == "initial"


def test_migrate_an_empty_file_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    path.touch()
    with SQLiteStorage(path) as storage:
        assert storage.schema_version() == 0
        assert storage.install() == LATEST
        first = claim(storage)
        storage.finish_build(first, BuildState.SUCCESS)
    assert {"builds", "logs", "progress", "jobcontrol_schema"} <= tables(path)
    assert [r[0] for r in query(path, "SELECT version FROM jobcontrol_schema")] == list(
        range(1, LATEST + 1)
    )
    with SQLiteStorage(path) as storage:
        assert storage.schema_version() == LATEST
        assert storage.install() == LATEST
        assert [b.id for b in storage.list_builds()] == [first]
        assert claim(storage) > first


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    with SQLiteStorage(path) as storage:
        storage.install()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("INSERT INTO jobcontrol_schema VALUES (?, 'future', '2099-01-01')",
                     (LATEST + 1,))
    conn.close()
    with SQLiteStorage(path) as storage:
        assert storage.schema_version() == LATEST + 1
        with pytest.raises(StorageError, match="upgrade jobcontrol") as info:
            storage.list_builds()
        assert "\n" not in str(info.value)
        with pytest.raises(StorageError, match="upgrade jobcontrol"):
            storage.install()


def test_a_failed_migration_leaves_nothing_behind(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    with SQLiteStorage(path) as storage:
        good = load_migrations("sqlite")[0]
        storage._migrations = [good, Migration(2, "broken", "CREATE TABLE x (a);\nNOT SQL;\n")]
        with pytest.raises(StorageError, match="syntax error"):
            storage.install()
        assert storage.schema_version() == 0
    assert tables(path) <= {"sqlite_sequence"}


# -- claims racing across processes ----------------------------------------------------------

RACERS = 20
ROUNDS = 3

#: one racer: says it is ready, then for each start time read from stdin claims the job once
#: at that instant and prints the outcome
RACER = """
import sys, time
from jobcontrol.errors import JobAlreadyRunningError
from jobcontrol.storage.sqlite import SQLiteStorage

with SQLiteStorage(sys.argv[1]) as storage:
    print("ready", flush=True)
    for line in sys.stdin:
        time.sleep(max(0.0, float(line) - time.time()))
        try:
            build = storage.claim_build("job", concurrency=1, definition={}, definition_hash="",
                                        dependency_builds={}, host="racer", pid=0)
            print("ok", build.id, flush=True)
        except JobAlreadyRunningError as exc:
            print("refused", *exc.running, flush=True)
        except Exception as exc:
            print("error", repr(exc).replace("\\n", " "), flush=True)
"""


def _start_racer(path: Path) -> subprocess.Popen[str]:
    root = Path(jobcontrol.storage.__file__).parents[2]  # so the child imports this checkout
    pythonpath = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p)
    return subprocess.Popen(
        [sys.executable, "-c", RACER, str(path)],
        env={**os.environ, "PYTHONPATH": pythonpath},
        text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )


def test_claims_race_across_processes(tmp_path: Path) -> None:
    """20 processes claim one job at the same instant, a few times: one wins each time.

    In the first round the file does not exist yet, so the racers also create it, switch it
    to WAL and migrate it all at once.
    """
    path = tmp_path / "race.db"
    racers = [_start_racer(path) for _ in range(RACERS)]
    pipes = [(racer.stdin, racer.stdout) for racer in racers]
    try:
        for _, out in pipes:
            assert out is not None and out.readline() == "ready\n"
        with SQLiteStorage(path) as storage:
            for _ in range(ROUNDS):
                start_at = f"{time.time() + 0.1}\n"
                for into, _ in pipes:
                    assert into is not None
                    into.write(start_at)
                    into.flush()
                outcomes = sorted(out.readline().split() for _, out in pipes if out is not None)
                winners = [outcome[1] for outcome in outcomes if outcome[0] == "ok"]
                assert len(winners) == 1, outcomes
                assert outcomes == [["ok", winners[0]]] + [["refused", winners[0]]] * (
                    RACERS - 1
                )
                storage.finish_build(int(winners[0]), BuildState.SUCCESS)
            assert len(storage.list_builds("job")) == ROUNDS
    finally:
        for into, _ in pipes:
            if into is not None:
                into.close()  # the racers' loops end
        for racer, (_, out) in zip(racers, pipes, strict=True):
            try:
                racer.wait(timeout=30)
            except subprocess.TimeoutExpired:
                racer.kill()
                racer.wait()
            if out is not None:
                out.close()


# -- outcomes committed with the next write (finish_build_with_logs(commit_later=True)) -----


def finish_later(storage: SQLiteStorage, build_id: int, message: str = "done") -> None:
    """Leave the outcome for the next write to commit (and not for the storage's commit
    timer, which :func:`test_a_pending_outcome_is_committed_by_the_storage_alone` tests)."""
    storage.pending_commit_delay = 3600
    storage.finish_build_with_logs(
        build_id, BuildState.SUCCESS, logs=[LogRecord(utcnow(), 20, "job", message)],
        commit_later=True)


def states(path: Path) -> list[tuple[int, str]]:
    """The builds as another connection (another process) sees them."""
    return query(path, "SELECT id, state FROM builds ORDER BY id")


def test_a_pending_outcome_is_committed_with_the_next_claim(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    with SQLiteStorage(path) as storage:
        first = claim(storage, "a")
        finish_later(storage, first)
        assert states(path) == [(first, "running")]  # not committed yet...
        second = claim(storage, "b")  # ...until the next claim, in the same transaction
        assert states(path) == [(first, "success"), (second, "running")]
        assert query(path, "SELECT message FROM logs WHERE build_id = ?", (first,)) == [
            ("done",)]


def test_a_pending_outcome_is_committed_by_the_storage_alone(tmp_path: Path) -> None:
    """No write follows, and nobody calls commit_pending: the storage commits the outcome
    itself within its ``pending_commit_delay``; the caller owes nothing for it."""
    path = tmp_path / "jobs.db"
    with SQLiteStorage(path) as storage:
        first = claim(storage, "a")
        storage.pending_commit_delay = 0.2
        storage.finish_build_with_logs(first, BuildState.SUCCESS, logs=[], commit_later=True)
        assert states(path) == [(first, "running")]  # left pending...
        deadline = time.monotonic() + 10
        while states(path) != [(first, "success")]:  # ...then committed, untouched
            assert time.monotonic() < deadline, "the pending outcome was never committed"
            time.sleep(0.01)


def test_commit_pending_and_close_commit_a_pending_outcome(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    storage = SQLiteStorage(path)
    first, second = claim(storage, "a"), claim(storage, "b")
    finish_later(storage, first)
    storage.commit_pending()
    assert states(path) == [(first, "success"), (second, "running")]
    finish_later(storage, second)
    storage.close()
    assert states(path) == [(first, "success"), (second, "success")]


def test_a_pending_outcome_survives_the_failure_of_the_write_it_waits_for(
    tmp_path: Path
) -> None:
    """The claim that would commit it is refused (a rollback): the outcome is written again
    on its own, not lost with the refused claim; so after a failing statement."""
    path = tmp_path / "jobs.db"
    with SQLiteStorage(path) as storage:
        holder, done = claim(storage, "busy"), claim(storage, "a")
        finish_later(storage, done)
        with pytest.raises(JobAlreadyRunningError):
            claim(storage, "busy")
        assert states(path) == [(holder, "running"), (done, "success")]
        other = claim(storage, "b")
        finish_later(storage, other, "second")
        with pytest.raises(StorageError), storage._transaction() as cur:
            cur.execute("INSERT INTO no_such_table VALUES (1)")
        assert states(path)[-1] == (other, "success")
        assert query(path, "SELECT build_id, seq, message FROM logs ORDER BY build_id") == [
            (done, 1, "done"), (other, 1, "second")]


def test_another_process_waits_for_no_pending_outcome(tmp_path: Path) -> None:
    """A pending outcome holds the write lock only until the run's next write: a run
    commits before it waits, so a writer elsewhere is not held up by a finished run."""
    from jobcontrol import JobControl

    (tmp_path / "jobs.yaml").write_text(
        "defaults: {isolation: inline}\n"
        "jobs:\n  - {id: a, function: builtins.len, args: [[1]]}\n")
    path = tmp_path / "jobs.db"
    with JobControl.from_config(tmp_path / "jobs.yaml", storage=f"sqlite:///{path}") as jc:
        [build] = jc.build("a")
        assert states(path) == [(build.id, "success")]  # committed at the run's end
        with SQLiteStorage(path) as elsewhere:  # a writer is not blocked by this one
            claim(elsewhere, "b")


@pytest.mark.parametrize("isolation", ["inline", "process"])
def test_each_outcome_is_committed_before_the_next_build_starts(
    tmp_path: Path, isolation: str
) -> None:
    """One commit a build, and no less durable: when a build of the run starts, the
    builds before it are recorded for everyone (the next claim committed them)."""
    from jobcontrol import JobControl
    from tests.support import make_project

    db = tmp_path / "jobs.db"
    config = make_project(tmp_path, f"""\
defaults: {{isolation: {isolation}}}
jobs:
  - {{id: a, function: jobfuncs.make, args: [a]}}
  - {{id: b, function: jobfuncs.make, args: [b]}}
  - {{id: look, function: jobfuncs.states_seen, args: ["{db}"], dependencies: [a, b]}}
""")
    with JobControl.from_config(config, storage=f"sqlite:///{db}") as jc:
        a, b, look = jc.build("look", deps=True)
    assert look.retval == [[a.id, "success"], [b.id, "success"], [look.id, "running"]]
    assert states(db) == [(a.id, "success"), (b.id, "success"), (look.id, "success")]


def test_close_says_a_pending_outcome_was_lost_and_closes_all_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every write failing (a full disk, say): the outcome cannot be written again, and
    close() says so, with the build named, instead of dropping it quietly."""
    storage = SQLiteStorage(tmp_path / "jobs.db")
    build = claim(storage, "a")
    finish_later(storage, build)

    def failing_commit(conn: Any, cur: Any) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(storage, "_commit", failing_commit)
    with pytest.raises(StorageError, match=r"disk is full.*recording the outcome of build 1\)"):
        storage.close()
    assert storage._conn is None
    with pytest.raises(StorageError, match="is closed"):
        storage.get_build(build)


def test_log_numbers_after_a_commit_that_failed(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """This object numbers the log of a build it claimed without asking the table; records
    of a transaction rolled back are not counted: the next ones follow what is stored."""
    path = tmp_path / "jobs.db"
    with SQLiteStorage(path) as storage:
        build = claim(storage, "a")
        storage.append_logs(build, [LogRecord(utcnow(), 20, "job", "one")])
        real_commit = SQLiteStorage._commit

        def failing_commit(self: SQLiteStorage, conn: Any, cur: Any) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        monkeypatch.setattr(SQLiteStorage, "_commit", failing_commit)
        with pytest.raises(StorageError, match="disk I/O error"):
            storage.append_logs(build, [LogRecord(utcnow(), 20, "job", "lost")])
        monkeypatch.setattr(SQLiteStorage, "_commit", real_commit)
        storage.append_logs(build, [LogRecord(utcnow(), 20, "job", "two")])
        storage.finish_build_with_logs(
            build, BuildState.SUCCESS, logs=[LogRecord(utcnow(), 20, "job", "three")])
    assert query(path, "SELECT seq, message FROM logs ORDER BY seq") == [
        (1, "one"), (2, "two"), (3, "three")]
