"""PostgreSQL under real ``jobcontrol`` processes: many claiming one job at the same instant,
and a server restart in the middle of a build.

The restart test stops the server every other test uses, so it runs only when
``$JOBCONTROL_TEST_POSTGRESQL_RESTART=1`` (``.ci/run`` sets it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.pgdb import RESTART_ENV, query
from tests.support import make_project

psycopg2 = pytest.importorskip("psycopg2", reason="the test extra installs psycopg2-binary")

ROOT = Path(__file__).parent.parent

#: the job module of these tests, written beside their config
JOBS = '''\
import logging, os, time

log = logging.getLogger("pgjobs")


def hold(marker):
    """Runs until the test creates ``marker``, so every rival finds it running."""
    while not os.path.exists(marker):
        time.sleep(0.01)
    return "held"


def tick(count, every):
    for i in range(count):
        log.info("tick %d", i)
        time.sleep(every)
    return count
'''

#: forks ``jobcontrol`` processes from an interpreter that imported it already, so a round of
#: 20 starts in milliseconds; each child sleeps until the start time, then runs the command
#: line as ``python -m jobcontrol`` would, and the parent reports each exit as it happens
LAUNCHER = r"""
import importlib, json, os, runpy, sys, time
import jobcontrol.cli, jobcontrol.core, jobcontrol.storage.postgresql, psycopg2
for name in ("jobcontrol.execution.orchestrator", "jobcontrol.execution.local", "jobcontrol.config",
             "jobcontrol.cli.build", "jinja2", "yaml", "tabulate"):
    try:  # what a build needs, imported once here rather than in each child
        importlib.import_module(name)
    except ImportError:
        pass

print("ready", flush=True)
for line in sys.stdin:
    order = json.loads(line)
    children = {}
    for n in range(order["count"]):
        pid = os.fork()
        if pid == 0:
            out = os.open(f"{order['folder']}/{n}.out", os.O_WRONLY | os.O_CREAT, 0o644)
            err = os.open(f"{order['folder']}/{n}.err", os.O_WRONLY | os.O_CREAT, 0o644)
            os.dup2(out, 1)
            os.dup2(err, 2)
            time.sleep(max(0.0, order["at"] - time.time()))
            sys.argv = ["jobcontrol", *order["args"]]
            code = 70
            try:
                runpy.run_module("jobcontrol", run_name="__main__", alter_sys=True)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children[pid] = n
    while children:
        pid, status = os.wait()
        print(json.dumps([children.pop(pid), os.waitstatus_to_exitcode(status)]), flush=True)
"""

RACERS = 20
ROUNDS = 10


def read(folder: Path, n: int, kind: str) -> str:
    return (folder / f"{n}.{kind}").read_text()


def test_twenty_builds_at_once_one_runs(tmp_path: Path, pg_url: str) -> None:
    config = make_project(tmp_path, """\
        jobs:
          - id: once
            function: pgjobs.hold
            kwargs: {marker: go}
            concurrency: 1
    """)
    (tmp_path / "pgjobs.py").write_text(JOBS)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("JOBCONTROL_")},
           "PYTHONPATH": str(ROOT)}
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER], cwd=tmp_path, env=env,
                                text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert launcher.stdin is not None and launcher.stdout is not None
    try:
        assert launcher.stdout.readline() == "ready\n"
        for round_ in range(1, ROUNDS + 1):
            folder = tmp_path / f"round{round_}"
            folder.mkdir()
            (tmp_path / "go").unlink(missing_ok=True)
            order = {"count": RACERS, "at": time.time() + 0.15, "folder": str(folder),
                     "args": ["-c", str(config), "--storage", pg_url, "build", "once"]}
            launcher.stdin.write(json.dumps(order) + "\n")
            launcher.stdin.flush()
            # everyone but the winner is refused while the winner waits for "go"
            refused = [json.loads(launcher.stdout.readline()) for _ in range(RACERS - 1)]
            details = {n: read(folder, n, "err") for n, _ in refused}
            assert [code for _, code in refused] == [4] * (RACERS - 1), details
            (tmp_path / "go").touch()
            winner, code = json.loads(launcher.stdout.readline())
            assert code == 0, read(folder, winner, "err")
            assert f"build #{round_} once: success" in read(folder, winner, "out")
            for n, _ in refused:
                assert read(folder, n, "err") == (
                    f"Error: job 'once' is already running (build {round_})\n")
    finally:
        launcher.stdin.close()  # its loop ends
        launcher.wait(timeout=30)
        launcher.stdout.close()
    builds = query(pg_url, "SELECT id, state FROM builds ORDER BY id")
    assert builds == [(n, "success") for n in range(1, ROUNDS + 1)]


def restart_server() -> None:
    """Restart the local cluster, as an administrator (or a failover) would."""
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
                   check=True, capture_output=True, timeout=60)


@pytest.mark.skipif(os.environ.get(RESTART_ENV) != "1",
                    reason=f"restarts the PostgreSQL server: set ${RESTART_ENV}=1 to allow it")
def test_a_server_restart_during_a_build_loses_nothing(tmp_path: Path, pg_url: str) -> None:
    lines = 60
    config = make_project(tmp_path, f"""\
        jobs:
          - id: ticker
            function: pgjobs.tick
            kwargs: {{count: {lines}, every: 0.05}}
    """)
    (tmp_path / "pgjobs.py").write_text(JOBS)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("JOBCONTROL_")},
           "PYTHONPATH": str(ROOT)}
    build = subprocess.Popen(
        [sys.executable, "-m", "jobcontrol", "-c", str(config), "--storage", pg_url,
         "build", "ticker"],
        cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while not query(pg_url, "SELECT 1 FROM logs WHERE seq >= 10"):
            assert time.monotonic() < deadline, "the build logged nothing"
            time.sleep(0.05)
        restart_server()
        out, err = build.communicate(timeout=90)
    finally:
        if build.poll() is None:
            build.kill()
            build.communicate()
    assert build.returncode == 0, err
    assert "build #1 ticker: success" in out
    # the server really restarted while the build ran
    assert query(pg_url, "SELECT state, started < pg_postmaster_start_time() "
                         "AND pg_postmaster_start_time() < finished FROM builds") == [
        ("success", True)]
    logged = query(pg_url, "SELECT seq, message FROM logs WHERE build_id = 1 ORDER BY seq")
    assert logged == [(n + 1, f"tick {n}") for n in range(lines)]
    assert query(pg_url, "SELECT count(*) FROM pg_stat_activity "
                         "WHERE state LIKE 'idle in transaction%'") == [(0,)]
