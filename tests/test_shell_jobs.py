"""Shell jobs (``command:``): the exit status is the outcome, output lines are the log,
``env`` and ``cwd`` apply, secrets are masked, a timeout kills what the command started;
on every storage, inline and in a process of its own. The config's checks, the definition
hash, and how ``show``, ``status`` and the web show a shell job.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from jobcontrol import BuildState, ConfigError, JobControl
from jobcontrol.config import SHELL_FUNCTION, parse_config
from jobcontrol.execution import shell
from jobcontrol.storage import Storage
from tests.processes import alive, until
from tests.support import Cli, make_project

S = BuildState

SPAWNER = "sleep 600 & echo $! > {marker}; wait"
CONFIG = """\
jobs:
  - id: lines
    command: "echo out1; echo err1 >&2; echo out2; echo err2 >&2; printf 'last, no newline'"
  - id: lines_inline
    command: "echo out1; echo err1 >&2; echo out2; echo err2 >&2; printf 'last, no newline'"
    isolation: inline
  - id: exits
    command: "echo about to fail; exit 3"
  - id: exits_inline
    command: "echo about to fail; exit 3"
    isolation: inline
  - id: killed
    command: "kill -9 $$"
  - id: consumer
    function: jobfuncs.make
    dependencies: [lines]
    kwargs: {tag: c, value: !retval lines}
  - id: missing_list
    command: [no-such-command-jc-test, --help]
  - id: missing_shell
    command: no-such-command-jc-test --help
  - id: not_executable
    command: [./data.txt]
  - id: env_cwd
    command: 'echo "$GREETING|$(pwd)|$JOBCONTROL_JOB_ID|$JOBCONTROL_BUILD_ID|$KEPT"'
    env: {GREETING: hello there, KEPT: overridden}
    cwd: sub/dir
  - id: env_cwd_inline
    command: 'echo "$GREETING|$(pwd)|$JOBCONTROL_JOB_ID|$JOBCONTROL_BUILD_ID|$KEPT"'
    env: {GREETING: hello there, KEPT: overridden}
    cwd: sub/dir
    isolation: inline
  - id: no_cwd
    command: pwd
    cwd: not/there
  - id: here
    command: pwd
  - id: secret
    command: 'echo "token $API_TOKEN, password $PGPASSWORD"; echo "$PGPASSWORD" >&2; exit 1'
    env: {API_TOKEN: !env JC_SHELL_TEST_TOKEN, PGPASSWORD: plain-secret-42}
  - id: spaces
    command: [printf, "%s|\\n", "a b", "c  d", "$HOME"]
  - id: closes
    command: "echo closing; exec >&- 2>&-; sleep 0.5; exit 0"
  - id: closes_inline
    command: "echo closing; exec >&- 2>&-; sleep 0.5; exit 0"
    isolation: inline
  - id: slow
    command: "{spawner}"
    timeout: 1s
  - id: slow_inline
    command: "{spawner_inline}"
    timeout: 1s
    isolation: inline
""".replace("{spawner}", SPAWNER.format(marker="slow.pid")).replace(
    "{spawner_inline}", SPAWNER.format(marker="slow_inline.pid"))
ISOLATIONS = ["", "_inline"]


@pytest.fixture
def jc(tmp_path: Path, storage: Storage, monkeypatch: pytest.MonkeyPatch) -> JobControl:
    monkeypatch.setenv("JC_SHELL_TEST_TOKEN", "tok-from-env-77")
    monkeypatch.setenv("KEPT", "from the runner")
    (tmp_path / "sub" / "dir").mkdir(parents=True)
    (tmp_path / "data.txt").write_text("not a program\n")
    return JobControl.from_config(make_project(tmp_path, CONFIG), storage=storage)


def log_of(jc: JobControl, build_id: int) -> list[tuple[str, int, str]]:
    return [(r.logger, r.level, r.message) for r in jc.logs(build_id)]


@pytest.mark.parametrize("suffix", ISOLATIONS)
def test_lines_are_logged_in_order_with_their_levels(jc: JobControl, suffix: str) -> None:
    [build] = jc.build("lines" + suffix)
    assert (build.state, build.reason, build.retval) == (S.SUCCESS, None, 0)
    records = log_of(jc, build.id)
    assert {logger for logger, _, _ in records} == {shell.LOGGER}
    # each stream in order (the two are read as they come: their interleaving is the OS's)
    assert [m for _, level, m in records if level == logging.INFO] == [
        "out1", "out2", "last, no newline"]
    assert [m for _, level, m in records if level == logging.WARNING] == ["err1", "err2"]


def test_a_shell_jobs_return_value_is_its_exit_code_for_retval(jc: JobControl) -> None:
    lines, consumer = jc.build("consumer", deps=True)
    assert lines.retval == 0
    assert consumer.state is S.SUCCESS and consumer.retval["got"] == 0


@pytest.mark.parametrize("suffix", ISOLATIONS)
def test_a_non_zero_exit_status_fails_the_build_naming_it(jc: JobControl, suffix: str) -> None:
    [build] = jc.build("exits" + suffix)
    assert (build.state, build.reason, build.retval) == (S.FAILED, "exit status 3", 3)
    assert build.exception is None  # the reason says it all: no traceback of jobcontrol's
    assert log_of(jc, build.id) == [(shell.LOGGER, logging.INFO, "about to fail")]


def test_a_command_killed_by_a_signal_fails_naming_it(jc: JobControl) -> None:
    [build] = jc.build("killed")
    assert (build.state, build.reason, build.retval) == (
        S.FAILED, "killed by signal SIGKILL (9)", -9)


def test_a_command_not_found_fails_with_a_clear_reason(jc: JobControl) -> None:
    [listed] = jc.build("missing_list")
    assert (listed.state, listed.reason, listed.retval) == (
        S.FAILED, "command not found: no-such-command-jc-test", None)
    [not_executable] = jc.build("not_executable")
    assert (not_executable.state, not_executable.reason) == (
        S.FAILED, "command not executable: ./data.txt")
    [by_shell] = jc.build("missing_shell")
    assert (by_shell.state, by_shell.reason) == (
        S.FAILED, "exit status 127 (command not found)")
    [(_, level, message)] = log_of(jc, by_shell.id)
    assert level == logging.WARNING and "no-such-command-jc-test" in message


@pytest.mark.parametrize("suffix", ISOLATIONS)
def test_env_is_merged_over_the_runners_and_cwd_is_beside_the_config(
        jc: JobControl, tmp_path: Path, suffix: str) -> None:
    [build] = jc.build("env_cwd" + suffix)
    assert build.state is S.SUCCESS, build.reason
    [(_, _, line)] = log_of(jc, build.id)
    folder = (tmp_path / "sub" / "dir").resolve()
    assert line == f"hello there|{folder}|env_cwd{suffix}|{build.id}|overridden"


def test_a_missing_cwd_fails_the_build(jc: JobControl, tmp_path: Path) -> None:
    [here] = jc.build("here")  # without cwd: in the config file's folder
    assert [m for _, _, m in log_of(jc, here.id)] == [str(tmp_path.resolve())]
    [build] = jc.build("no_cwd")
    folder = tmp_path.resolve() / "not" / "there"
    assert (build.state, build.reason) == (S.FAILED,
                                           f"working directory {folder} does not exist")


def test_secrets_are_masked_in_lines_and_definition(jc: JobControl) -> None:
    [build] = jc.build("secret")
    assert build.state is S.FAILED
    messages = [m for _, _, m in log_of(jc, build.id)]
    assert messages == ["token ***, password ***", "***"]
    assert build.definition["env"] == {"API_TOKEN": "***", "PGPASSWORD": "***"}
    assert "plain-secret-42" not in json.dumps(jc.job("secret").snapshot())


def test_a_list_command_runs_without_a_shell(jc: JobControl) -> None:
    [build] = jc.build("spaces")
    assert build.state is S.SUCCESS
    # one argument each, spaces kept, nothing expanded
    assert [m for _, _, m in log_of(jc, build.id)] == ["a b|", "c  d|", "$HOME|"]


@pytest.mark.parametrize("suffix", ISOLATIONS)
def test_a_command_that_closes_its_output_early_is_waited_for(jc: JobControl,
                                                              suffix: str) -> None:
    """The build ends when the command exits, not when its output ends (coreutils close
    stdout at exit, just before exiting: an inline command was killed then, at random)."""
    [build] = jc.build("closes" + suffix)
    assert (build.state, build.reason, build.retval) == (S.SUCCESS, None, 0)
    assert [m for _, _, m in log_of(jc, build.id)] == ["closing"]


@pytest.mark.parametrize("suffix", ISOLATIONS)
def test_a_timeout_kills_the_command_and_its_children(jc: JobControl, tmp_path: Path,
                                                      suffix: str) -> None:
    [build] = jc.build("slow" + suffix)
    assert (build.state, build.reason) == (S.FAILED, "timed out after 1s")
    pid = int((tmp_path / f"slow{suffix}.pid").read_text())
    until(lambda: not alive(pid), f"the command's child {pid} to die")


# -- the definition ---------------------------------------------------------------------------


def test_a_shell_job_runs_the_built_in_callable_with_its_command(jc: JobControl,
                                                                 tmp_path: Path) -> None:
    job = jc.job("env_cwd")
    assert job.function == SHELL_FUNCTION
    assert job.kwargs == {"command": 'echo "$GREETING|$(pwd)|$JOBCONTROL_JOB_ID|'
                                     '$JOBCONTROL_BUILD_ID|$KEPT"',
                          "env": {"GREETING": "hello there", "KEPT": "overridden"},
                          "cwd": str(tmp_path.resolve() / "sub/dir")}
    snapshot = job.snapshot()
    assert snapshot["function"] is None
    assert (snapshot["command"], snapshot["cwd"]) == (job.kwargs["command"], "sub/dir")
    assert jc.job("spaces").snapshot()["command"] == ["printf", "%s|\n", "a b", "c  d", "$HOME"]
    assert jc.job("consumer").snapshot()["command"] is None


def test_a_changed_command_makes_the_job_outdated(jc: JobControl, tmp_path: Path,
                                                  storage: Storage) -> None:
    [build] = jc.build("here")
    assert not jc.status(["here"])[0].outdated.outdated
    config = tmp_path / "jobs.yaml"
    config.write_text(config.read_text().replace("    command: pwd\n", "    command: ls\n"))
    [status] = JobControl.from_config(config, storage=storage).status(["here"])
    assert status.outdated.reasons == (f"definition changed since build {build.id}",)


def test_a_shell_dependency_rebuilt_makes_its_dependents_outdated(jc: JobControl) -> None:
    """A command's value is its exit status, 0 at every success: no sign that nothing
    changed (the same-value rule would have kept its dependents up to date forever)."""
    first, _ = jc.build("consumer", deps=True)
    assert not jc.outdated()["consumer"].outdated
    [again] = jc.build("lines")
    assert again.retval == first.retval == 0
    verdict = jc.outdated()["consumer"]
    assert verdict.reasons == (f"dependency lines has a newer build ({again.id}; this job "
                               f"used build {first.id})",)
    assert verdict.notes == ()
    assert [b.job_id for b in jc.build("consumer", deps=True, if_outdated=True)] == [
        "consumer"]


def shell_job(body: str) -> str:
    return "jobs:\n  - id: sh\n" + "".join(f"    {line}\n" for line in body.splitlines())


def test_the_hash_is_the_command_as_written(tmp_path: Path) -> None:
    text = shell_job("command: make all\ncwd: build\nenv: {DB_PASSWORD: one}")

    def job_hash(text: str, folder: str) -> str:
        return parse_config(text, tmp_path / folder / "jobs.yaml").job("sh").definition_hash

    here = job_hash(text, "a")
    assert job_hash(text, "elsewhere") == here  # another machine's folder: the same job
    assert job_hash(text.replace("one", "rotated"), "a") == here  # a secret is masked
    assert job_hash(text.replace("make all", "make most"), "a") != here
    assert job_hash(text.replace("cwd: build", "cwd: dist"), "a") != here
    assert job_hash(text.replace("DB_PASSWORD", "OTHER"), "a") != here


@pytest.mark.parametrize(("body", "where", "message"), [
    ("function: os.getpid\ncommand: ls", 4, "give either 'function' or 'command', not both"),
    ("title: nothing to run", 2, "missing required key 'function' (or 'command' for a shell"),
    ("command: ls\nargs: [1]", 4, "args is for a function: a shell job's arguments go in"),
    ("command: ls\nkwargs: {a: 1}", 4, "kwargs is for a function"),
    ("function: os.getpid\nenv: {A: b}", 4, "env is only for a shell job"),
    ("function: os.getpid\ncwd: x", 4, "cwd is only for a shell job"),
    ("command: '  '", 3, "command must not be empty"),
    ("command: []", 3, "command must not be an empty list"),
    ("command:", 3, "command must be a string such as"),
    ("command: {ls: -l}", 3, "command must be a string such as"),
    ("command: [ls, {a: 1}]", 3, "each item of command must be a string, got mapping"),
    ("command: [ls, 1.5]", 3, "each item of command must be a string, got number (quote it)"),
    ("command: ls\nenv: [A]", 4, "env must be a mapping of variable names to values"),
    ("command: ls\nenv: {A: }", 4, "env A must be a string, got null"),
    ("command: ls\nenv: {'A=B': x}", 4, "a variable name must be a non-empty string without"),
    ("command: ls\ncwd: ''", 4, "cwd must be a folder"),
    ("command: ls\nenv: {A: !retval sh}", 4, "!retval is only allowed inside a job's args"),
])
def test_config_errors_name_the_file_and_line(tmp_path: Path, body: str, where: int,
                                              message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(shell_job(body), tmp_path / "jobs.yaml")
    text = str(info.value)
    assert text.startswith(f"{tmp_path / 'jobs.yaml'}:{where}:"), text
    assert message in text


def test_an_env_value_under_a_secret_name_is_masked_however_short(tmp_path: Path) -> None:
    config = parse_config(shell_job("command: [env]\nenv: {PGPASSWORD: ab, A_TOKEN: c,"
                                    " PLAIN: ab}"), tmp_path / "jobs.yaml")
    assert config.job("sh").snapshot()["env"] == {"PGPASSWORD": "***", "A_TOKEN": "***",
                                                  "PLAIN": "ab"}
    assert {"ab", "c"} <= config.secrets


def test_numbers_in_a_list_command_and_env_are_text(tmp_path: Path) -> None:
    job = parse_config(shell_job("command: [sleep, 5]\nenv: {PORT: 5432}"),
                       tmp_path / "jobs.yaml").job("sh")
    assert (job.kwargs["command"], job.kwargs["env"]) == (["sleep", "5"], {"PORT": "5432"})


# -- how it is shown ------------------------------------------------------------------------


def test_show_status_jobs_and_job_show_the_command(jc: JobControl, tmp_path: Path) -> None:
    cli = Cli(tmp_path / "jobs.yaml", jc.storage)
    [build] = jc.build("spaces")
    shown = json.loads(cli("show", str(build.id), "--format", "json").output)
    assert shown["retval"] == 0
    assert shown["definition"]["command"] == ["printf", "%s|\n", "a b", "c  d", "$HOME"]
    status = {s["job"]: s for s in json.loads(cli("status", "--format", "json").output)}
    assert status["lines"]["command"] == jc.job("lines").shell.command  # type: ignore[union-attr]
    assert status["secret"]["command"].startswith('echo "token $API_TOKEN')
    assert status["consumer"]["command"] is None
    assert "$ printf '%s|\\n' 'a b' 'c  d' '$HOME'" in cli("jobs").output
    text = cli("job", "env_cwd").output
    assert '$ echo "$GREETING|' in text and "cwd: sub/dir" in text
    assert '"job": "secret"' not in cli("job", "secret", "--format", "json").output  # no id key
    detail = json.loads(cli("job", "secret", "--format", "json").output)
    assert detail["env"] == {"API_TOKEN": "***", "PGPASSWORD": "***"}
    assert detail["signature"] is None and detail["docstring"] is None


def test_the_web_job_page_shows_the_command(jc: JobControl) -> None:
    from jobcontrol.web import create_app

    client = create_app(jc).test_client()
    page = client.get("/jobs/env_cwd").get_data(as_text=True)
    assert "<h2>Command</h2>" in page and "<h2>Function</h2>" not in page
    assert "echo &#34;$GREETING|$(pwd)|" in page
    assert "<h2>Function</h2>" in client.get("/jobs/consumer").get_data(as_text=True)


def test_check_finds_a_list_commands_program_missing_or_not_executable(tmp_path: Path) -> None:
    config = make_project(tmp_path, shell_job("command: [no-such-command-jc-test]") + """\
  - id: by_path
    command: [bin/tool.sh]
    env: {PATH: /nowhere}
  - id: on_path
    command: [tool.sh, --now]
    env: {PATH: bin}
  - id: shell_finds_it
    command: no-such-command-jc-test
  - id: fine
    command: [sh, -c, "true"]
""")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "tool.sh").write_text("#!/bin/sh\n")
    result = Cli(config)("check", "--no-storage", code=2)
    lines = result.output.splitlines()
    assert lines == [
        f"Error: {config}:3:14: job 'sh': command 'no-such-command-jc-test' not found on PATH",
        f"Error: {config}:5:14: job 'by_path': command 'bin/tool.sh' is not executable",
        f"Error: {config}:8:14: job 'on_path': command 'tool.sh' is not executable",
    ]
    (tmp_path / "bin" / "tool.sh").chmod(0o755)
    (tmp_path / "jobs.yaml").write_text(config.read_text().replace(
        "no-such-command-jc-test]", "sh, -c, 'true']"))
    assert "all functions import" in Cli(config)("check", "--no-storage").output
