"""Parsers of a shell job's keys: ``command``, ``env`` and ``cwd`` (see
:mod:`jobcontrol.config.values`), and which of its ``env`` values are secrets."""

from __future__ import annotations

from typing import Any

from jobcontrol.config.values import Field, type_name
from jobcontrol.config.yaml_loader import MarkedDict, MarkedList, Pos
from jobcontrol.secrets import is_secret_env_name

#: the keys only a shell job (one with ``command:``) has, and those only a function's job has
SHELL_KEYS = ("env", "cwd")
FUNCTION_KEYS = ("args", "kwargs", "params")
def env_secrets(env: dict[str, str]) -> set[str]:
    """The values of a shell job's ``env:`` that are secrets (see
    :func:`~jobcontrol.secrets.is_secret_env_name`)."""
    return {value for name, value in env.items() if value and is_secret_env_name(name)}


def _text_item(value: Any, at: Field, what: str, pos: Pos | None = None) -> str:
    """A string (a whole number as its text: ``[sleep, 5]``) without NUL, which no
    command line or environment can hold."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        hint = " (quote it)" if isinstance(value, (bool, float)) else ""
        raise at.error(f"{what} must be a string, got {type_name(value)}{hint}", pos)
    if "\0" in value:
        raise at.error(f"{what} must not contain a NUL character", pos)
    return value


def command(value: Any, at: Field) -> str | tuple[str, ...]:
    """``command: "pg_dump -Fc db"`` (run by ``/bin/sh -c``) or ``[pg_dump, -Fc, db]``
    (run as it is: no shell, an item with spaces stays one argument)."""
    if isinstance(value, list):
        if not value:
            raise at.error("command must not be an empty list")
        marks = value.item_marks if isinstance(value, MarkedList) else []
        return tuple(_text_item(item, at, "each item of command",
                                marks[index] if index < len(marks) else None)
                     for index, item in enumerate(value))
    if value is None or not isinstance(value, str):
        raise at.wrong_type(value, 'a string such as "pg_dump -Fc mydb" or a list such as '
                                   "[pg_dump, -Fc, mydb]")
    if not value.strip():
        raise at.error("command must not be empty")
    return _text_item(value, at, "command")


def env(value: Any, at: Field) -> dict[str, str]:
    """``env: {PGHOST: db.example.com, PGPASSWORD: !env DB_PASSWORD}``."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise at.wrong_type(value, "a mapping of variable names to values")
    found = {}
    for name, item in value.items():
        key_pos = value.key_marks.get(name) if isinstance(value, MarkedDict) else None
        pos = value.value_marks.get(name) if isinstance(value, MarkedDict) else None
        if not isinstance(name, str) or not name or "=" in name or "\0" in name:
            raise at.error(f"env: a variable name must be a non-empty string without '=', "
                           f"got {name!r}", key_pos)
        found[name] = _text_item(item, at, f"env {name}", pos)
    return found


def cwd(value: Any, at: Field) -> str:
    """``cwd: backups`` (relative to the config file's folder) or an absolute path."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise at.error("cwd must be a folder (relative to the config file's folder)")
    return _text_item(value, at, "cwd")
