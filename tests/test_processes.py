"""Real ``jobcontrol`` processes: timeouts, signals, refusals, cron-style invocation.

These run the command as cron or a shell would, and really kill things: on SQLite (a file
beside the config, the default) and on PostgreSQL (``--storage URL``), the storages that
several processes share.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import make_project

ROOT = Path(__file__).parent.parent

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


def jobcontrol(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
               **popen: object) -> subprocess.Popen[str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("JOBCONTROL_")}
    full_env = {**inherited, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "jobcontrol", *args], cwd=cwd, env=full_env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen,  # type: ignore[arg-type]
    )


def run(*args: str, **kwargs: object) -> tuple[int, str, str]:
    process = jobcontrol(*args, **kwargs)  # type: ignore[arg-type]
    out, err = process.communicate(timeout=60)
    return process.returncode, out, err


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purpose
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return True
    return state != "Z"


def wait_for(path: Path, seconds: float = 20) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.02)
    raise AssertionError(f"{path} did not appear")


@dataclass
class Project:
    """A config and the storage URL its commands get (None: SQLite beside the config)."""

    config: Path
    storage: str | None

    def args(self, *args: str) -> list[str]:
        storage = ["--storage", self.storage] if self.storage else []
        return ["-c", str(self.config), *storage, *args]

    def run(self, *args: str, **kwargs: object) -> tuple[int, str, str]:
        return run(*self.args(*args), **kwargs)

    def start(self, *args: str, **kwargs: object) -> subprocess.Popen[str]:
        return jobcontrol(*self.args(*args), **kwargs)  # type: ignore[arg-type]

    @property
    def storage_url(self) -> str:
        """The URL that reaches what the commands write (for a Storage opened in the test)."""
        return self.storage or f"sqlite:///{self.config.parent / 'jobcontrol.db'}"

    @classmethod
    def on(cls, request: pytest.FixtureRequest, tmp_path: Path, config: str) -> Project:
        """A project with ``config`` on the storage ``request.param`` names (sqlite or
        postgresql: the ``pg_url`` fixture's own database); ``sqlite+forkserver``: on
        SQLite, with every process-isolated build forked by a fork server."""
        storage, _, variant = request.param.partition("+")
        url = request.getfixturevalue("pg_url") if storage == "postgresql" else None
        if variant == "forkserver":
            config = with_fork_server(config)
        return cls(make_project(tmp_path / "project", config), url)

    def show(self, build_id: int) -> dict:
        code, out, err = self.run("show", str(build_id), "--format", "json")
        assert code == 0, err
        return json.loads(out)


def with_fork_server(config: str) -> str:
    """``config`` with ``runner.fork_server: true`` (added to its ``runner:`` block)."""
    if config.startswith("runner:\n"):
        return config.replace("runner:\n", "runner:\n  fork_server: true\n", 1)
    return "runner: {fork_server: true}\n" + config


#: the storages several processes can share, and SQLite again with a fork server
PROJECT_PARAMS = ["sqlite", "postgresql", "sqlite+forkserver"]


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


def until(condition: Callable[[], object], what: str, seconds: float = 15) -> None:
    """Wait for ``condition()`` to be true; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
