"""The README cannot drift: every command, option and config key appears in it, and the
quick start holds exactly the two commands CI runs."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from jobcontrol.cli import main
from jobcontrol.config.validation import DEFAULT_KEYS, JOB_KEYS, TOP_KEYS

README = (Path(__file__).parent.parent / "README.rst").read_text()


def test_quick_start_has_exactly_two_commands() -> None:
    section = README.split("Quick start\n===========")[1].split("\n=====")[0]
    commands = re.findall(r"^\s+\$ (.+)$", section, flags=re.M)
    assert len(commands) == 2
    assert "pip install" in commands[0] and "build" in commands[0]
    assert "pip install" in commands[1] and "pytest" in commands[1]
    # .ci/run takes the second "$ " line of the whole file: it must be this one
    assert re.findall(r"^\s+\$ (.+)$", README, flags=re.M)[:2] == commands


@pytest.mark.parametrize("name", sorted(main.list_commands(click.Context(main))))
def test_every_command_and_option_is_documented(name: str) -> None:
    command = main.get_command(click.Context(main), name)
    assert command is not None
    assert f"``{name}" in README, f"command {name} is not in README.rst"
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            longest = max(param.opts, key=len)
            if longest in ("--help", "--format"):
                continue
            assert longest in README, f"{name} {longest} is not in README.rst"


@pytest.mark.parametrize("key", sorted(set(JOB_KEYS) | set(TOP_KEYS) | set(DEFAULT_KEYS)))
def test_every_config_key_is_documented(key: str) -> None:
    assert f"``{key}``" in README, f"config key {key} is not in README.rst"


def test_every_exit_code_is_documented() -> None:
    from jobcontrol import errors

    codes = {cls.exit_code for cls in vars(errors).values()
             if isinstance(cls, type) and issubclass(cls, errors.JobControlError)}
    for code in codes | {0, 1}:
        assert re.search(rf"^{code}\s{{2,}}\S", README, flags=re.M), f"exit code {code}"
