"""A storage that refuses writes: a really full file system, a read-only one, a read-only
PostgreSQL database. Real ``jobcontrol`` processes.

A full file system is a small tmpfs of the test's own, filled by the job itself; a read-only
one is a read-only bind mount. Mounting needs root: CI runs the tests as root, elsewhere
these tests skip, saying so.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from jobcontrol import BuildState, JobControl
from jobcontrol.errors import ExitCode
from jobcontrol.execution import running
from tests.processes import Project, alive, pythonpath, wait_for
from tests.support import isolation_specific, make_project

#: for a test of what ends with a build's process group (the jobs say no isolation)
OWN_PROCESS_GROUP = isolation_specific(
    "process", "pool", why="an inline build has no process group of its own: its "
    "subprocesses are the runner's (docs/explanation/isolation.rst)")

NEEDS_ROOT = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="a real full (or read-only) file system is a tmpfs (or bind mount) of the test's "
           "own, and mounting one needs root (CI runs the tests as root)")


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A folder on a 3 MB tmpfs of its own, to fill."""
    folder = tmp_path / "fs"
    folder.mkdir()
    mount("-t", "tmpfs", "-o", "size=3m", "tmpfs", str(folder))
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def filling(count: int, *, free: bool = False, runner: str = "",
            isolation: str = "process") -> str:
    """A config whose job ``fill`` fills its disk, then logs ``count`` lines."""
    return f"""\
{runner}jobs:
  - id: fill
    function: jobfuncs.fill_disk
    kwargs: {{filler: filler, count: {count}, free: {str(free).lower()}}}
    isolation: {isolation}
"""


def warnings_of(err: str) -> list[str]:
    """The runner's warnings that the storage refuses writes."""
    return [line for line in err.splitlines() if "held in memory until" in line]


@NEEDS_ROOT
@pytest.mark.parametrize("isolation", ["process", "inline"])
def test_a_full_disk_is_one_warning_and_does_not_slow_the_job(
    small_fs: Path, isolation: str
) -> None:
    """The job fills the disk, logs 5000 lines, then frees the disk: the runner warns once,
    holds the records (no write tried for each line), and stores them all in the end."""
    project = Project(make_project(small_fs, filling(5000, free=True, isolation=isolation)),
                      None)
    assert project.run("install")[0] == 0
    code, out, err = project.run("build", "fill")
    assert code == 0, err
    # inline, the runner's own log lines are the build's too (they are stored with it)
    [warning] = warnings_of(out + err)
    assert "database or disk is full" in warning
    build = project.show(1)
    assert build["state"] == "success"
    assert build["retval"]["logging_took"] < 3  # 15 s when each line tried a write
    code, out, err = project.run("logs", "1")
    assert code == 0, err
    assert "No space left on device" in out
    assert [line.split()[-1] for line in out.splitlines() if "jobfuncs: line " in line] == [
        str(n) for n in range(5000)]


@NEEDS_ROOT
@pytest.mark.parametrize("lines", [0, 2000], ids=["outcome-alone", "after-logs"])
def test_an_outcome_the_full_disk_refuses_ends_the_command_saying_so(
    small_fs: Path, lines: int
) -> None:
    """The outcome is tried for ``runner.outcome_retry``, then the command exits 6 saying
    the record is incomplete; the next command that can write marks the build abandoned.
    Without log lines the outcome is the first write refused (left to commit later, it
    fails at its commit); after them, the storage is known to refuse writes already."""
    config = filling(lines, runner="runner: {outcome_retry: 1s}\n")
    project = Project(make_project(small_fs, config), None)
    assert project.run("install")[0] == 0
    started = time.monotonic()
    code, out, err = project.run("build", "fill")
    assert time.monotonic() - started > 1
    assert code == 6, err
    assert len(warnings_of(err)) == 1, err
    [error] = [line for line in err.splitlines() if line.startswith("Error: ")]
    assert error.startswith("Error: build 1 (fill) ended success, but the storage refused its "
                            "outcome for 1s: SQLite database ")
    assert error.endswith(": database or disk is full. The record is incomplete: the next "
                          "command that can write marks the build abandoned")
    assert "Traceback" not in err

    (small_fs / "filler").unlink()
    code, out, err = project.run("builds", "--format", "json")
    assert code == 0, err
    [build] = json.loads(out)
    assert build["state"] == "abandoned"
    assert re.fullmatch(r"process \d+@\S+ ended without recording an outcome \(last heartbeat "
                        r"\d\d:\d\d:\d\d, noticed \d\d:\d\d:\d\d\)", build["reason"])


@NEEDS_ROOT
@OWN_PROCESS_GROUP
def test_the_other_builds_are_served_while_an_outcome_is_retried(
    small_fs: Path, tmp_path: Path
) -> None:
    """Two builds at once: ``fill`` fills the disk and ends, its outcome refused; while it
    is tried again, the runner still watches ``nap``, whose timeout ends it on time."""
    marker = tmp_path / "nap.pid"  # off the full disk
    config = make_project(small_fs, f"""\
runner: {{outcome_retry: 8s}}
jobs:
  - id: nap
    function: jobfuncs.sleeper
    kwargs: {{seconds: 30, marker: {marker}}}
    timeout: 1s
  - id: fill
    function: jobfuncs.fill_disk
    kwargs: {{filler: filler, count: 0}}
""")
    project = Project(config, None)
    assert project.run("install")[0] == 0
    runner = project.start("build", "nap", "fill", "-j", "2")
    try:
        nap_pid = int(wait_for(marker))
        deadline = time.monotonic() + 5  # its timeout is 1s; the outcome is tried for 8s
        while alive(nap_pid):
            assert time.monotonic() < deadline, "the timeout was not enforced"
            time.sleep(0.02)
        assert runner.poll() is None  # still trying the outcome of fill
        _, err = runner.communicate(timeout=30)
    finally:
        runner.kill()
        runner.wait()
    assert runner.returncode == 6, err
    # both outcomes are refused (the disk is full): the error gives up on both, naming them
    [error] = [line for line in err.splitlines() if line.startswith("Error: ")]
    assert re.match(r"Error: build 1 \(nap\) ended failed, but the storage refused its "
                    r"outcome \(nor those of build 2\) for 8s", error) \
        or re.match(r"Error: build 2 \(fill\) ended success, but the storage refused its "
                    r"outcome \(nor those of build 1\) for 8s", error), error


@NEEDS_ROOT
@isolation_specific("process", "pool", why="an inline job runs in the test's process: the "
                    "file a full disk kept it from closing is the test's to warn about "
                    "(docs/explanation/isolation.rst)")
def test_log_records_past_the_memory_bound_are_dropped_and_counted(
    small_fs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Held records are bounded in memory: the oldest go, and the record says how many."""
    monkeypatch.setattr(running, "MAX_HELD_BYTES", 100_000)  # some 240 records
    config = make_project(small_fs, filling(3000, free=True))
    with JobControl.from_config(config) as jc:
        [build] = jc.build("fill")
        assert build.state is BuildState.SUCCESS
        records = jc.logs(build.id)
    [note] = [r.message for r in records if r.logger == "jobcontrol"]
    lost = int(re.fullmatch(r"(\d+) log records were lost while the storage refused writes",
                            note).group(1))  # type: ignore[union-attr]
    kept = [r.message for r in records if r.logger == "jobfuncs"]
    assert 2000 < lost < 3000
    assert len(kept) + lost == 3001  # the job's warning that the disk is full, its lines
    assert kept[-1] == "line 2999"  # the newest are kept


# -- read-only storage -------------------------------------------------------------------------

READ_CONFIG = """\
jobs:
  - id: hello
    function: jobfuncs.make
    args: [hello]
  - id: after
    function: jobfuncs.make
    args: [after]
    dependencies: [hello]
  - id: napper
    function: jobfuncs.sleeper
    kwargs: {seconds: 60, marker: napper.pid}
"""


def builds_with_a_dead_runner(project: Project) -> None:
    """Build 1 succeeds; build 2's runner and job are killed: it stays ``running``."""
    assert project.run("build", "hello")[0] == 0
    runner = project.start("build", "napper")
    job_pid = int(wait_for(project.config.parent / "napper.pid"))
    os.kill(runner.pid, signal.SIGKILL)
    os.kill(job_pid, signal.SIGKILL)
    runner.communicate(timeout=10)
    deadline = time.monotonic() + 10
    while alive(job_pid):
        assert time.monotonic() < deadline, "the job did not die"
        time.sleep(0.02)


def read_commands_work(project: Project) -> None:
    """Every read command works on ``project``, whose storage refuses writes; the build of
    the dead runner is shown as stored (running), with a warning that it could not be
    marked abandoned."""
    code, out, err = project.run("status", "--format", "json")
    assert code == 0, err
    rows = {row["job"]: row for row in json.loads(out)}
    assert rows["hello"]["last_state"] == "success"
    assert rows["napper"]["running"] == [2]
    assert "not marked abandoned" in err
    code, out, err = project.run("builds", "--format", "json")
    assert code == 0, err
    assert [(b["id"], b["state"]) for b in json.loads(out)] == [(2, "running"), (1, "success")]
    assert project.show(1)["state"] == "success"
    code, out, err = project.run("show", "2")
    assert code == 0, err
    assert "running" in out
    assert "build 2 not marked abandoned: " in err
    code, out, err = project.run("logs", "1")
    assert (code, err) == (0, "")
    assert "making hello" in out
    for command, shown in (("jobs", "napper"), ("graph", "after  <- hello"),
                           ("check --no-storage", "3 jobs")):
        code, out, err = project.run(*command.split())
        assert code == 0, (command, err)
        assert shown in out
    # check's own storage test tries a write (rolled back): it says the storage refuses it
    code, out, err = project.run("check")
    assert code == ExitCode.STORAGE
    assert "cannot be written" in err
    code, out, err = project.run("build", "hello")
    assert code == ExitCode.STORAGE, err
    assert "readonly" in err or "read-only" in err


@NEEDS_ROOT
def test_a_read_only_mount_serves_every_read_command(tmp_path: Path) -> None:
    """The SQLite file on a read-only mount, with no ``-wal`` or ``-shm`` file beside it
    (as a clean close leaves it): every read command works, every write says why not."""
    source = Project(make_project(tmp_path / "src", READ_CONFIG), None)
    builds_with_a_dead_runner(source)
    with contextlib.closing(sqlite3.connect(source.config.parent / "jobcontrol.db")) as db:
        db.execute("SELECT count(*) FROM builds")  # the last to close folds the -wal in
    read_only = tmp_path / "ro"
    read_only.mkdir()
    mount("--bind", str(source.config.parent), str(read_only))
    try:
        mount("-o", "remount,bind,ro", str(read_only))
        assert not os.access(read_only, os.W_OK)
        assert not (read_only / "jobcontrol.db-shm").exists()
        read_commands_work(Project(read_only / "jobs.yaml", None))
    finally:
        subprocess.run(["umount", "-l", str(read_only)], check=True)


def alter_database(url: str, setting: str) -> None:
    """``ALTER DATABASE`` the database of ``url`` (its own, made for the test)."""
    import psycopg2

    name = urlsplit(url).path.lstrip("/")
    conn = psycopg2.connect(url, options="-c default_transaction_read_only=off")
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{name}" {setting}')
            # sessions keep the setting they began with: end the others
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
    finally:
        conn.close()


def test_a_read_only_postgresql_database_serves_every_read_command(
    tmp_path: Path, pg_url: str
) -> None:
    project = Project(make_project(tmp_path / "project", READ_CONFIG), pg_url)
    builds_with_a_dead_runner(project)
    alter_database(pg_url, "SET default_transaction_read_only = on")
    read_commands_work(project)


WAITING = """\
runner: {outcome_retry: OUTCOME_RETRY}
jobs:
  - id: waiter
    function: jobfuncs.waits_for
    kwargs: {started: started, go: go}
"""


def test_an_outcome_a_read_only_postgresql_refuses_ends_the_command_saying_so(
    tmp_path: Path, pg_url: str
) -> None:
    """The database turns read-only while the job runs: the outcome is tried for
    ``runner.outcome_retry``, the command exits 6, and the next command that can write
    marks the build abandoned."""
    project = Project(make_project(tmp_path / "project",
                                   WAITING.replace("OUTCOME_RETRY", "1s")), pg_url)
    runner = project.start("build", "waiter")
    folder = project.config.parent
    wait_for(folder / "started")
    alter_database(pg_url, "SET default_transaction_read_only = on")
    (folder / "go").write_text("go")
    out, err = runner.communicate(timeout=60)
    assert runner.returncode == 6, err
    assert len(warnings_of(err)) == 1, err
    [error] = [line for line in err.splitlines() if line.startswith("Error: ")]
    assert error.startswith("Error: build 1 (waiter) ended success, but the storage refused "
                            "its outcome for 1s: ")
    assert "read-only transaction" in error
    assert "The record is incomplete" in error

    alter_database(pg_url, "RESET default_transaction_read_only")
    code, out, err = project.run("builds", "--format", "json")
    assert code == 0, err
    [build] = json.loads(out)
    assert build["state"] == "abandoned"
    assert build["reason"].startswith(f"process {runner.pid}@{socket.gethostname()} ended "
                                      f"without recording an outcome (last heartbeat ")


def test_an_outcome_is_recorded_once_the_database_takes_writes_again(
    tmp_path: Path, pg_url: str
) -> None:
    """Read-only for a while, within ``runner.outcome_retry``: the outcome and the job's
    last log line go in when it takes writes again, and the command succeeds."""
    project = Project(make_project(tmp_path / "project",
                                   WAITING.replace("OUTCOME_RETRY", "60s")), pg_url)
    folder = project.config.parent
    with open(tmp_path / "stderr", "w") as stderr:
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBCONTROL_")}
        runner = subprocess.Popen(
            [sys.executable, "-m", "jobcontrol", *project.args("build", "waiter")],
            env={**env, "PYTHONPATH": pythonpath()}, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        wait_for(folder / "started")
        alter_database(pg_url, "SET default_transaction_read_only = on")
        (folder / "go").write_text("go")
        deadline = time.monotonic() + 30
        while not warnings_of((tmp_path / "stderr").read_text()):  # refused, held
            assert time.monotonic() < deadline, "no warning"
            time.sleep(0.02)
        alter_database(pg_url, "RESET default_transaction_read_only")
        runner.communicate(timeout=60)
    finally:
        runner.kill()
        runner.wait()
    err = (tmp_path / "stderr").read_text()
    assert runner.returncode == 0, err
    assert len(warnings_of(err)) == 1, err
    build = project.show(1)
    assert (build["state"], build["retval"]) == ("success", "went")
    _, out, _ = project.run("logs", "1")
    assert "going" in out


def test_outcome_retry_is_a_runner_setting(tmp_path: Path) -> None:
    from jobcontrol.config import load_config
    from jobcontrol.errors import ConfigError

    path = tmp_path / "jobs.yaml"
    path.write_text("jobs: []\n")
    assert load_config(path).runner.outcome_retry == 300
    path.write_text("runner: {outcome_retry: 30s}\njobs: []\n")
    assert load_config(path).runner.outcome_retry == 30
    path.write_text("runner: {outcome_retry: 0}\njobs: []\n")
    assert load_config(path).runner.outcome_retry == 0  # tried once
    path.write_text("runner:\n  outcome_retry: soon\njobs: []\n")
    with pytest.raises(ConfigError, match=r"jobs.yaml:2:\d+: .*outcome_retry"):
        load_config(path)


def test_a_pending_outcome_the_storage_refuses_is_kept_until_written_or_given_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An outcome left to commit later, whose transaction fails (here the claim it waits
    for) and which cannot be written on its own either, is not lost: the claim fails with
    its own error, and every :meth:`commit_pending` tries the outcome again, naming it,
    until it is written (or the runner gives up on it, and reports it)."""
    from jobcontrol.errors import OutcomeNotRecordedError, StorageError
    from jobcontrol.storage.sqlite import SQLiteStorage
    from tests.test_storage_sqlite import claim, finish_later, query, states

    path = tmp_path / "jobs.db"
    storage = SQLiteStorage(path)
    first, second = claim(storage, "a"), claim(storage, "b")
    finish_later(storage, first)

    def full(conn: object, cur: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(storage, "_commit", full)
    with pytest.raises(StorageError, match="disk is full") as refused:
        claim(storage, "c")
    assert not isinstance(refused.value, OutcomeNotRecordedError)
    for _ in range(2):
        with pytest.raises(OutcomeNotRecordedError,
                           match=r"disk is full \(recording the outcome of build 1\)") as lost:
            storage.commit_pending()
        assert lost.value.build_id == first
    assert states(path) == [(first, "running"), (second, "running")]
    monkeypatch.undo()
    storage.commit_pending()
    assert states(path) == [(first, "success"), (second, "running")]
    assert query(path, "SELECT build_id, message FROM logs") == [(first, "done")]

    finish_later(storage, second)
    monkeypatch.setattr(storage, "_commit", full)
    with pytest.raises(OutcomeNotRecordedError):
        storage.commit_pending()
    assert storage.give_up_pending() == [second]
    storage.commit_pending()  # nothing left to try
    monkeypatch.undo()
    storage.close()
    assert states(path) == [(first, "success"), (second, "running")]
