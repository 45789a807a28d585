"""Real ``jobcontrol`` processes for tests: start the command, wait for what it leaves.

``Project`` is a config and the storage its commands share; ``jobcontrol()`` and ``run()``
start the command as cron or a shell would; ``wait_for``, ``until`` and ``alive`` poll with
a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
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
#: folders put after ROOT on the ``PYTHONPATH`` of the processes tests start (see
#: ``$JOBCONTROL_TEST_DEFAULT_ISOLATION`` in tests/conftest.py)
EXTRA_PATH: list[str] = []


#: a command's prefix that runs it in a PID namespace of its own (pids counted from 1, a
#: /proc of its own), as a container with the host's network and hostname would
UNSHARE = ["unshare", "--pid", "--fork", "--mount-proc"]


def _unshare_works() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    return subprocess.run([*UNSHARE, "true"], capture_output=True).returncode == 0


needs_unshare = pytest.mark.skipif(not _unshare_works(),
                                   reason="needs root and unshare --pid (PID namespaces)")


def pythonpath() -> str:
    """The ``PYTHONPATH`` of a ``jobcontrol`` process a test starts: this checkout first."""
    return os.pathsep.join([str(ROOT), *EXTRA_PATH])


def jobcontrol(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
               **popen: object) -> subprocess.Popen[str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("JOBCONTROL_")}
    full_env = {**inherited, "PYTHONPATH": pythonpath(), **(env or {})}
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
        postgresql: the ``pg_url`` fixture's own database)."""
        url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
        return cls(make_project(tmp_path / "project", config), url)

    def show(self, build_id: int) -> dict:
        code, out, err = self.run("show", str(build_id), "--format", "json")
        assert code == 0, err
        return json.loads(out)


#: the storages several processes can share
PROJECT_PARAMS = ["sqlite", "postgresql"]



def until(condition: Callable[[], object], what: str, seconds: float = 15) -> None:
    """Wait for ``condition()`` to be true; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def stop_groups(processes: list[subprocess.Popen[str]], grace: float = 15) -> None:
    """End each process's group as systemd would: SIGTERM, then SIGKILL for what is left
    after ``grace`` seconds in all; a group already gone is fine."""
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
