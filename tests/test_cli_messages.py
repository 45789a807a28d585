"""What the CLI says about mistakes, and its help: one clear line each, pointing at the
config's file:line:col where the mistake is written; help in plain text; short options with
one meaning each."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from jobcontrol.cli import main
from jobcontrol.errors import ExitCode
from tests.support import Cli, make_project

JOB = """\
jobs:
  - id: a
    function: jobfuncs.noop
"""


@pytest.fixture(autouse=True)
def _no_storage_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOBCONTROL_STORAGE", raising=False)


def one_error_line(result: click.testing.Result) -> str:
    """The single ``Error: ...`` line on stderr (nothing on stdout, no traceback)."""
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: ")
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result.stderr[len("Error: "):-1]


@pytest.mark.parametrize("url, problem", [
    ("nosuch:///x.db", "storage: unsupported storage URL 'nosuch:///x.db': expected one of "
                       "memory://, postgres://, postgresql://, sqlite://"),
    ("sqlite://x.db", "storage: bad SQLite URL 'sqlite://x.db': give a file path after three "
                      "slashes"),
])
def test_bad_storage_url_in_the_config_points_at_it(tmp_path: Path, url: str,
                                                    problem: str) -> None:
    config = make_project(tmp_path, f"storage: '{url}'\n{JOB}")
    message = one_error_line(Cli(config)("status", code=ExitCode.USAGE))
    assert message.startswith(f"{config}:1:10: {problem}")


def test_sqlite_path_through_a_file_says_it_is_not_a_folder(tmp_path: Path) -> None:
    config = make_project(tmp_path, f"storage: 'sqlite:///jobfuncs.py/x.db'\n{JOB}")
    message = one_error_line(Cli(config)("status", code=ExitCode.USAGE))
    assert message == (f"{config}:1:10: storage: cannot open SQLite database "
                       f"{tmp_path}/jobfuncs.py/x.db: {tmp_path}/jobfuncs.py is not a folder")
    # from --storage: no place in the config to point at, a storage error (exit 6)
    cli = Cli(config)
    result = cli("--storage", "sqlite:////etc/passwd/deeper/x.db", "status", code=ExitCode.STORAGE)
    assert one_error_line(result) == ("cannot open SQLite database /etc/passwd/deeper/x.db: "
                                      "/etc/passwd is not a folder")
    result = cli("--storage", f"sqlite:///{tmp_path}/none/x.db", "status", code=ExitCode.STORAGE)
    assert one_error_line(result) == (f"cannot open SQLite database {tmp_path}/none/x.db: "
                                      f"folder {tmp_path}/none does not exist")


@pytest.mark.parametrize("expression, problem", [
    ("61 * * * *", "the minute field '61' is out of range 0-59"),
    ("0 24 * * *", "the hour field '24' is out of range 0-23"),
    ("0 0 1,32 * *", "the day field '1,32' is out of range 1-31"),
    ("0 0 * 13 *", "the month field '13' is out of range 1-12"),
    ("0 0 * * 1-9", "the weekday field '1-9' is out of range 0-7"),
    ("* * * * * 60", "the second field '60' is out of range 0-59"),
    ("x * * * *", "the minute field 'x' is not valid (use 0-59, *, a-b, */n or a,b)"),
    ("0 0 * * mon-xyz", "the weekday field 'mon-xyz' is not valid (use 0-7, sun-sat, *, a-b, "
                        "*/n or a,b)"),
    ("* * * *", "4 fields, expected 5 fields"),
])
def test_bad_cron_field_is_named_with_its_range(tmp_path: Path, expression: str,
                                                problem: str) -> None:
    config = make_project(tmp_path, f"{JOB}    schedule: '{expression}'\n")
    message = one_error_line(Cli(config)("jobs", code=ExitCode.USAGE))
    assert message.startswith(f"{config}:4:15: job 'a': bad cron expression "
                              f"{expression!r}: {problem}")


def test_crontab_without_a_scheduled_job_prints_nothing(tmp_path: Path) -> None:
    config = make_project(tmp_path, JOB)
    cli = Cli(config, "memory://")
    for args in [(), ("--per-job",)]:
        message = one_error_line(cli("crontab", *args, code=ExitCode.USAGE))
        assert message == f"{config}: no job has a schedule, so there is nothing for cron to run"
    scheduled = make_project(tmp_path / "s", f"{JOB}    schedule: '0 * * * *'\n")
    result = Cli(scheduled, "memory://")("crontab")
    assert result.stdout.count("\n") == 2 and result.stderr == ""


def every_command() -> list[list[str]]:
    ctx = click.Context(main)
    return [[]] + [[name] for name in main.list_commands(ctx)]


def test_help_is_plain_text() -> None:
    """No reST markup (``literal``, :role:`target`) in any command's --help."""
    runner = click.testing.CliRunner()
    for command in every_command():
        result = runner.invoke(main, [*command, "--help"], terminal_width=200)
        assert result.exit_code == 0, result.output
        assert not re.search(r"``|:[a-z]+:`", result.output), (command, result.output)


def test_each_short_option_means_one_thing() -> None:
    ctx = click.Context(main)
    meanings: dict[str, set[str]] = {}
    commands: list[click.Command] = [main]
    commands += [main.get_command(ctx, name) for name in main.list_commands(ctx)]  # type: ignore[misc]
    for command in commands:
        for param in command.params:
            names = [*getattr(param, "opts", []), *getattr(param, "secondary_opts", [])]
            shorts = [n for n in names if re.fullmatch(r"-[A-Za-z]", n)]
            longs = sorted(n for n in names if n.startswith("--"))
            for short in shorts:
                meanings.setdefault(short, set()).add(longs[0] if longs else param.name or "")
    clashes = {short: longs for short, longs in meanings.items() if len(longs) > 1}
    assert clashes == {}
    assert meanings["-n"] == {"--dry-run"}


def test_builds_limit_keeps_its_long_form(tmp_path: Path) -> None:
    cli = Cli(make_project(tmp_path, JOB))
    cli("build", "a")
    cli("build", "a")
    assert cli("builds", "--limit", "1", "--format", "json").stdout.count('"id"') == 1
    assert cli("builds", "-n", "1", code=ExitCode.USAGE).stderr.startswith("Usage:")
    assert "would delete" in cli("prune", "-n").stdout
