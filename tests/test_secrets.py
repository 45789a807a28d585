"""Acceptance: a password a job is called with, logs and raises, is stored and shown nowhere.

The job really gets ``hunter2``; the database file (or a ``pg_dump``), every command's text
and JSON output hold ``***`` in its place.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.processes import Project
from tests.support import make_project

SECRET = "hunter2"
TOKEN = "tok-5f1e9a"  # read with !env: a secret wherever it goes

CONFIG = """\
jobs:
  - id: leaks
    title: Connects with a password
    function: jobfuncs.leaks_password
    kwargs: {user: bob, password: hunter2}
  - id: leaks_token
    function: jobfuncs.leaks_password
    args: [alice, !env API_TOKEN]
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Project:
    return Project.on(request, tmp_path, CONFIG)


def stored_bytes(project: Project) -> bytes:
    """Everything the storage holds, as bytes: the SQLite files, or a pg_dump."""
    if project.storage is None:
        files = sorted(project.config.parent.glob("jobcontrol.db*"))  # -wal and -shm too
        assert files
        return b"".join(path.read_bytes() for path in files)
    dump = subprocess.run(["pg_dump", "--data-only", project.storage], capture_output=True,
                          check=True, timeout=60)
    assert b"COPY " in dump.stdout and b"leaks" in dump.stdout
    return dump.stdout


def test_a_password_is_stored_and_shown_nowhere(project: Project) -> None:
    env = {"API_TOKEN": TOKEN}
    outputs = []
    for job in ("leaks", "leaks_token"):
        code, out, err = project.run("build", job, env=env)
        assert code == 1  # the job fails, with the secret in its exception
        outputs += [out, err]
    for build_id in ("1", "2"):
        for args in (["show", build_id], ["show", build_id, "--format", "json"],
                     ["logs", build_id], ["logs", build_id, "--format", "json"]):
            code, out, err = project.run(*args, env=env)
            assert code == 0, err
            outputs += [out, err]
    for args in (["status"], ["status", "--format", "json"], ["builds", "--format", "json"],
                 ["jobs", "--format", "json"], ["job", "leaks"], ["job", "leaks_token"],
                 ["job", "leaks", "--format", "json"], ["config"],
                 ["config", "--format", "json"]):
        code, out, err = project.run(*args, env=env)
        assert code == 0, err
        outputs += [out, err]

    shown = "\n".join(outputs)
    assert "login failed for bob:***" in shown  # the exception, masked
    assert "connecting as alice with ***" in shown  # the log line, masked
    assert "password=***" in shown  # the printed line, masked
    assert '"password": "***"' in shown  # the definition, masked
    for secret in (SECRET, TOKEN):
        assert secret not in shown
        assert secret.encode() not in stored_bytes(project)


def test_the_storage_password_is_masked(tmp_path: Path) -> None:
    # nothing listens on port 1: printing the config must not need the database
    config = make_project(tmp_path, "storage: postgresql://ann:pg-pass-77@127.0.0.1:1/jc\n"
                                    "jobs: []\n")
    project = Project(config, None)
    for args in (["config"], ["config", "--format", "json"], ["status"]):
        code, out, err = project.run(*args)
        assert "pg-pass-77" not in out + err
        assert "ann:***@127.0.0.1:1" in out + err
    assert code == 6  # status cannot connect, and says so without the password
