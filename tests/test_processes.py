"""Real ``jobcontrol`` processes: timeouts, signals, refusals, cron-style invocation.

These run the command as cron or a shell would, and really kill things: on SQLite (a file
beside the config, the default) and on PostgreSQL (``--storage URL``), the storages that
several processes share.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from tests.processes import PROJECT_PARAMS, Project, alive, run, wait_for
from tests.support import isolation_specific, make_project

CONFIG = """\
jobs:
  - id: slow
    function: jobfuncs.sleeper
    kwargs: {seconds: 30, marker: slow.pid}
    timeout: 2s
  - id: long
    function: jobfuncs.sleeper
    kwargs: {seconds: 60, marker: long.pid}
  - id: killer
    function: jobfuncs.kill_self
  - id: hello
    function: jobfuncs.make
    args: [hello]
"""



@pytest.fixture(params=PROJECT_PARAMS)
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Project:
    """The test project on each storage several processes can share."""
    return Project.on(request, tmp_path, CONFIG)


def test_timeout_fails_the_build_and_leaves_no_process(project: Project) -> None:
    started = time.monotonic()
    code, out, err = project.run("build", "slow")
    elapsed = time.monotonic() - started
    assert code == 1, err
    assert elapsed < 12
    assert "timed out after 2s" in out
    pid = int((project.config.parent / "slow.pid").read_text())
    assert not alive(pid)
    detail = project.show(1)
    assert detail["state"] == "failed"
    assert detail["reason"] == "timed out after 2s"


@isolation_specific("process", "pool", why="an inline job that kills its process kills the "
                    "runner (docs/explanation/isolation.rst)")
def test_job_killed_by_signal_keeps_its_log(project: Project) -> None:
    code, out, err = project.run("build", "killer")
    assert code == 1, err
    detail = project.show(1)
    assert detail["state"] == "failed"
    assert detail["reason"] == "killed by signal SIGKILL (9)"
    code, out, _ = project.run("logs", "1", "--format", "json")
    messages = [json.loads(line)["message"] for line in out.splitlines()]
    assert messages == ["line before the kill", "second line before the kill"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_running_job_refuses_second_build_and_signal_cancels(project: Project,
                                                             signum: int) -> None:
    config = project.config
    first = project.start("build", "long")
    try:
        pid = int(wait_for(config.parent / "long.pid"))
        started = time.monotonic()
        code, out, err = project.run("build", "long")
        assert time.monotonic() - started < 10
        assert code == 4
        assert err == "Error: job 'long' is already running (build 1)\n"
        code, out, _ = project.run("status", "--format", "json")
        [long_row] = [row for row in json.loads(out) if row["job"] == "long"]
        assert long_row["running"] == [1]
        first.send_signal(signum)
        out, err = first.communicate(timeout=20)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert first.returncode == 1, err
    name = signal.Signals(signum).name
    assert "build #1 long: cancelled" in out
    detail = project.show(1)
    assert detail["state"] == "cancelled"
    assert detail["reason"] == f"interrupted by {name}"
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid)
    # the job is free again
    code, out, err = project.run("build", "hello")
    assert code == 0, err


def test_cron_style_absolute_config_from_elsewhere(project: Project, tmp_path: Path) -> None:
    config = project.config
    if project.storage:
        cron_style_on_postgresql(project, tmp_path)
        return
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code, out, err = run("-c", str(config), "build", "hello", cwd=elsewhere)
    assert code == 0, err
    assert (config.parent / "jobcontrol.db").exists()
    assert not (elsewhere / "jobcontrol.db").exists()
    assert "build #1 hello: success" in out
    # piped, the output is plain text: no escape sequences
    assert "\x1b" not in out

    code, out, err = run("-c", str(config), "--storage", "sqlite:///other.db", "build",
                         "hello", cwd=elsewhere)
    assert code == 0, err
    assert (elsewhere / "other.db").exists()
    assert "build #1 hello" in out  # a new store: numbering starts again

    env_db = tmp_path / "from-env.db"
    code, out, err = run("build", "hello", cwd=elsewhere,
                         env={"JOBCONTROL_CONFIG": str(config),
                              "JOBCONTROL_STORAGE": f"sqlite:///{env_db}"})
    assert code == 0, err
    assert env_db.exists()


def cron_style_on_postgresql(project: Project, tmp_path: Path) -> None:
    """The same, with the PostgreSQL URL given each way a cron line can give it."""
    assert project.storage is not None
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code, out, err = project.run("build", "hello", cwd=elsewhere)
    assert code == 0, err
    assert "build #1 hello: success" in out
    assert "\x1b" not in out
    code, out, err = run("build", "hello", cwd=elsewhere,
                         env={"JOBCONTROL_CONFIG": str(project.config),
                              "JOBCONTROL_STORAGE": project.storage})
    assert code == 0, err
    assert "build #2 hello: success" in out  # the same database
    # the config file's own storage: key
    text = project.config.read_text()
    project.config.write_text(f"storage: {project.storage}\n{text}")
    code, out, err = run("-c", str(project.config), "builds", "--format", "json", cwd=elsewhere)
    assert code == 0, err
    assert [b["id"] for b in json.loads(out)] == [2, 1]
    assert not list(tmp_path.rglob("*.db"))  # no SQLite file anywhere


def test_config_mistake_via_real_process_is_one_line(tmp_path: Path) -> None:
    config = make_project(tmp_path, """\
        jobs:
          - id: a
            function: jobfuncs.make
            dependencies: [nope]
    """)
    code, out, err = run("-c", str(config), "build", "a")
    assert code == 2
    assert out == ""
    assert err == f"Error: {config}:4:20: job 'a': unknown dependency 'nope'\n"


