"""``--quiet`` on ``build`` and ``run-due``: nothing printed unless something failed, then
everything, as cronic does; exit statuses as without it. In-process on every backend, and
as real processes (what reaches their file descriptors 1 and 2) on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from jobcontrol.storage import Storage
from tests.processes import PROJECT_PARAMS, Project
from tests.support import Cli, make_project

CONFIG = """\
jobs:
  - {id: good, function: jobfuncs.chatty, isolation: inline}
  - {id: bad, function: jobfuncs.fails, isolation: inline}
  - {id: after_bad, function: jobfuncs.noop, dependencies: [bad], isolation: inline}
  - id: tick
    function: jobfuncs.noop
    isolation: inline
    schedule: "* * * * *"
  - id: tick_bad
    function: jobfuncs.fails
    isolation: inline
    schedule: "* * * * *"
"""

WHEN = datetime(2026, 3, 2, 9, 0, 30, tzinfo=timezone.utc).isoformat()


@pytest.fixture
def cli(tmp_path: Path, storage: Storage) -> Cli:
    return Cli(make_project(tmp_path, CONFIG), storage)


def test_build_quiet_is_silent_on_success(cli: Cli, storage: Storage) -> None:
    loud = cli("build", "good")
    assert "build #1 good: success" in loud.output
    quiet = cli("build", "--quiet", "good")
    assert quiet.output == ""
    assert [b.state.value for b in storage.list_builds("good")] == ["success", "success"]
    assert cli("build", "-q", "good", "--format", "json").output == ""


def test_build_quiet_prints_everything_on_failure(cli: Cli) -> None:
    result = cli("build", "--quiet", "bad", code=1)
    assert "build #1 bad: started" in result.output
    assert "about to fail" in result.output  # the build's log
    assert "bad: failed" in result.output


def test_build_quiet_prints_a_refusal_with_its_exit_status(cli: Cli) -> None:
    result = cli("build", "--quiet", "after_bad", code=3)
    assert "dependencies not met" in result.output


def test_build_quiet_says_nothing_of_a_paused_job(cli: Cli, storage: Storage) -> None:
    storage.pause_job("good", by="test")
    assert cli("build", "--quiet", "good").output == ""
    assert storage.list_builds("good") == []


def test_run_due_quiet(tmp_path: Path, storage: Storage) -> None:
    config = make_project(tmp_path, CONFIG.replace("tick_bad", "tick_ok").replace(
        "function: jobfuncs.fails\n    isolation: inline\n    schedule",
        "function: jobfuncs.noop\n    isolation: inline\n    schedule"))
    assert Cli(config, storage)("run-due", "--quiet", "--at", WHEN).output == ""
    assert len(storage.list_builds("tick")) == 1  # it did run


def test_run_due_quiet_prints_everything_on_failure(cli: Cli, storage: Storage) -> None:
    result = cli("run-due", "--quiet", "--at", WHEN, code=1)
    assert "tick_bad: failed" in result.output
    assert "about to fail" in result.output
    assert "build #" in result.output and "tick: success" in result.output



FD_CONFIG = """\
jobs:
  - {id: fds, function: jobfuncs.writes_to_fds, isolation: inline}
  - {id: fds_bad, function: jobfuncs.writes_to_fds, kwargs: {fail: true}, isolation: inline}
  - {id: fds_pool, function: jobfuncs.writes_to_fds, isolation: pool}
  - id: fds_tick
    function: jobfuncs.writes_to_fds
    isolation: inline
    schedule: "* * * * *"
"""


@pytest.fixture(params=PROJECT_PARAMS)
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Project:
    return Project.on(request, tmp_path, FD_CONFIG)


def test_quiet_holds_what_reaches_the_file_descriptors(project: Project) -> None:
    """An inline build's child processes write to descriptors 1 and 2, past sys.stdout:
    nothing of it on success (it reached cron's mail), all of it on failure."""
    for args in (("build", "-q", "fds"), ("build", "-q", "fds_pool"),
                 ("run-due", "-q", "--at", WHEN)):
        assert project.run(*args) == (0, "", ""), args
    loud = project.run("build", "fds")
    assert "child out" in loud[1] and "fd 2 line" in loud[2]
    code, out, err = project.run("build", "-q", "fds_bad")
    assert code == 1
    assert "fd 1 line" in out and "child out" in out and "fds_bad: failed" in out
    assert "fd 2 line" in err and "child err" in err
