"""Every exit code of the ``jobcontrol`` command, reached by a real process; every message
printed once (errors on stderr only); the docs' "Exit codes" table is generated from
errors.py (tests/test_docs.py).

The commands run as cron or a shell would run them (``python -m jobcontrol``), on SQLite
(the file beside the config) and on PostgreSQL (the test's own database).
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from jobcontrol.errors import ExitCode
from tests.processes import Project, wait_for

ROOT = Path(__file__).parent.parent

CONFIG = """\
jobs:
  - id: hello
    function: jobfuncs.noop
  - id: broken
    function: jobfuncs.fails
  - id: long
    function: jobfuncs.sleeper
    kwargs: {seconds: 60, marker: long.pid}
  - id: kept
    function: jobfuncs.noop
    cleanup_function: jobfuncs.failing_cleanup
  - id: skipper
    function: jobfuncs.maybe_skip
    args: [skip.flag]
  - id: consumer
    function: jobfuncs.make
    args: [c, !retval skipper]
    dependencies: [skipper]
  - id: paged
    function: jobfuncs.fails
    notify: &pager
      on: [failure]
      targets:
        - call: jobfuncs.notify_raises
  - id: paged_json
    function: jobfuncs.fails
    notify: *pager
  - id: tagged
    function: jobfuncs.noop
    params: {tag: {type: int, default: 1}}
"""

#: the test that reaches each exit code through the real command
REACHED_BY = {
    ExitCode.OK: "test_ok_and_failed",
    ExitCode.FAILED: "test_ok_and_failed, test_delete_whose_cleanup_fails_exits_1",
    ExitCode.USAGE: "test_usage_and_config_errors",
    ExitCode.DEPENDENCIES: "test_retval_of_a_dependency_that_only_skipped_exits_3",
    ExitCode.RUNNING: "test_refusal_is_printed_once_on_stderr",
    ExitCode.STATE: "test_refusal_is_printed_once_on_stderr",
    ExitCode.STORAGE: "test_storage_that_cannot_be_opened_exits_6",
    ExitCode.BROKER: "test_a_broker_that_cannot_be_reached_exits_7",
    ExitCode.PARAMS: "test_a_refused_parameter_exits_8",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Project:
    return Project.on(request, tmp_path, CONFIG)


def once_on_stderr(out: str, err: str, message: str) -> None:
    """``message`` is the one line on stderr, and nowhere on stdout."""
    assert err == f"Error: {message}\n"
    assert message not in out


def test_every_exit_code_is_reached_by_a_test() -> None:
    assert set(REACHED_BY) == set(ExitCode)
    for names in REACHED_BY.values():
        for name in names.split(", "):
            assert callable(globals()[name])


def test_ok_and_failed(project: Project) -> None:
    code, out, err = project.run("build", "hello")
    assert (code, err) == (ExitCode.OK, "")
    code, out, err = project.run("build", "broken")
    assert code == ExitCode.FAILED
    assert "build #2 broken: failed" in out
    assert err == ""


def test_usage_and_config_errors(project: Project) -> None:
    code, out, err = project.run("build", "helo")
    assert code == ExitCode.USAGE
    once_on_stderr(out, err, "unknown job 'helo'. Did you mean 'hello'?")
    code, out, err = project.run("builds", "--limit", "0")
    assert code == ExitCode.USAGE
    assert "Invalid value for '--limit'" in err and out == ""


def test_storage_that_cannot_be_opened_exits_6(project: Project) -> None:
    # /proc takes no new file: a path no user can create a database at
    code, out, err = project.run("--storage", "sqlite:////proc/jobcontrol.db", "build", "hello")
    assert code == ExitCode.STORAGE
    once_on_stderr(out, err, "SQLite database /proc/jobcontrol.db: unable to open database file")


def test_a_broker_that_cannot_be_reached_exits_7(project: Project) -> None:
    pytest.importorskip("celery", reason="the Celery tests need pip install 'jobcontrol[celery]'")
    with socket.create_server(("127.0.0.1", 0)) as server:  # a port nothing listens on
        port = server.getsockname()[1]
    project.config.write_text(f"executor: {{type: celery, broker: 'redis://127.0.0.1:{port}/0', "
                              f"timeout: 5s}}\n" + CONFIG)
    code, out, err = project.run("build", "hello", "--async")
    assert code == ExitCode.BROKER
    assert re.fullmatch(rf"Error: cannot send build 1 to the broker redis://127.0.0.1:{port}/0: "
                        rf".*Connection refused.*\n", err)
    assert out == ""
    code, out, err = project.run("builds")
    assert "cancelled" in out and "queued" not in out


def test_delete_whose_cleanup_fails_exits_1(project: Project) -> None:
    code, out, err = project.run("build", "kept")
    assert code == 0, err
    code, out, err = project.run("delete", "1")
    assert code == ExitCode.FAILED
    once_on_stderr(out, err, "cleanup of build 1 (jobfuncs.failing_cleanup) failed: "
                             "RuntimeError: cannot clean; the build was kept")
    assert project.show(1)["state"] == "success"


def test_retval_of_a_dependency_that_only_skipped_exits_3(project: Project) -> None:
    (project.config.parent / "skip.flag").write_text("")
    code, out, err = project.run("build", "skipper")
    assert code == 0, err
    assert "skipped" in out
    code, out, err = project.run("build", "consumer")
    assert code == ExitCode.DEPENDENCIES
    # a skip is never a success: the dependency is not met, before its !retval is read
    once_on_stderr(out, err, "dependencies not met for 'consumer': skipper never built "
                             "successfully (use --deps to build them first)")
    code, out, err = project.run("build", "consumer", "--format", "json")
    assert code == ExitCode.DEPENDENCIES
    assert out == "[]\n"


def test_refusal_is_printed_once_on_stderr(project: Project) -> None:
    first = project.start("build", "long")
    try:
        wait_for(project.config.parent / "long.pid")
        code, out, err = project.run("build", "long")
        assert code == ExitCode.RUNNING
        once_on_stderr(out, err, "job 'long' is already running (build 1)")
        code, out, err = project.run("build", "long", "--format", "json")
        assert code == ExitCode.RUNNING
        once_on_stderr(out, err, "job 'long' is already running (build 1)")
        code, out, err = project.run("delete", "1")
        assert code == ExitCode.STATE
        once_on_stderr(out, err, "build 1 is running: it cannot be deleted until it ends")
        code, out, err = project.run("cancel", "1")
        assert code == 0, err
        first.communicate(timeout=30)
        code, out, err = project.run("cancel", "1")
        assert code == ExitCode.STATE
        assert err.count("\n") == 1 and err.startswith("Error: build 1 ")
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate()


def test_failed_notification_is_printed_once(project: Project) -> None:
    code, out, err = project.run("build", "paged")
    assert code == ExitCode.FAILED
    problem = ("notification failure of 'paged' to call jobfuncs.notify_raises failed: "
               "RuntimeError: pager down (failure)")
    assert err == f"warning: {problem}\n"
    assert problem not in out
    code, out, err = project.run("build", "paged_json", "--format", "json")
    assert code == ExitCode.FAILED
    assert err == problem.replace("'paged'", "'paged_json'") + "\n"  # logged as a warning


def test_run_due_says_each_instant_not_built_once(project: Project) -> None:
    scheduled = """\
  - id: up
    function: jobfuncs.noop
    schedule: "* * * * *"
    schedule_options: {if_outdated: true}
  - id: waiting
    function: jobfuncs.make
    args: [w, !retval skipper]
    dependencies: [skipper]
    schedule: "* * * * *"
    schedule_options: {deps: false}
"""
    project.config.write_text(CONFIG + scheduled)
    (project.config.parent / "skip.flag").write_text("")
    code, out, err = project.run("build", "skipper", "up")
    assert code == 0, err
    code, out, err = project.run("run-due")
    assert code == ExitCode.FAILED
    assert re.fullmatch(r"up: run due at \S+ not built \(up to date\)\n", out)
    assert re.fullmatch(r"Error: waiting: run due at \S+ not built \(dependencies not met "
                        r"for 'waiting': skipper never built successfully \(use --deps to "
                        r"build them first\)\)\n", err)


def test_a_refused_parameter_exits_8(project: Project) -> None:
    code, out, err = project.run("build", "tagged", "--param", "tag=one")
    assert code == ExitCode.PARAMS
    once_on_stderr(out, err, "job 'tagged', parameter 'tag': expected a whole number, got "
                             "'one' (int)")
    code, out, err = project.run("build", "tagged", "--param", "tga=1")
    assert code == ExitCode.PARAMS and "unknown parameter (did you mean 'tag'?)" in err
    assert project.run("build", "tagged", "--param", "tag=2")[0] == ExitCode.OK
