"""Parsers of the config's values: raw YAML value (with marks) → what the frozen objects hold.

Each parser takes the raw value (None included) and a :class:`Field` saying whose value it is
and where it is written, and raises a located :class:`ConfigError` for anything it refuses.
:data:`PARSERS` maps a job key (or a ``defaults`` key) to its parser.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from datetime import date
from typing import Any

from jobcontrol.config.model import LOG_LEVELS, RetentionPolicy, RetryPolicy, RetvalRef
from jobcontrol.config.yaml_loader import MarkedDict, MarkedList, Pos
from jobcontrol.errors import ConfigError
from jobcontrol.importing import FUNCTION_SYNTAX, parse_function_path
from jobcontrol.timeutil import parse_duration

ISOLATIONS = ("process", "inline", "pool")
RESULTS = ("json", "pickle")
RETRY_KEYS = ("count", "delay", "backoff", "max_delay")
RETENTION_KEYS = ("keep_last", "keep_for", "logs")
#: a queue name: what Redis and RabbitMQ both take without quoting
QUEUE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,199}\Z")
# names people reach for that difflib cannot connect to ours
ALIASES = {
    "deps": "dependencies",
    "depends": "dependencies",
    "depends_on": "dependencies",
    "requires": "dependencies",
    "func": "function",
    "callable": "function",
    "name": "title",
    "arguments": "args",
    "kwds": "kwargs",
    "cleanup": "cleanup_function",
    "retry": "retries",
    "retries": "count",
    "keep": "keep_last",
    "max_age": "keep_for",
}


def type_name(value: Any) -> str:
    """How a YAML value's type is called in messages."""
    if value is None:
        return "null"
    for kind, name in (
        (RetvalRef, "!retval"),
        (bool, "boolean"),
        (int, "integer"),
        (float, "number"),
        (str, "string"),
        (dict, "mapping"),
        (list, "list"),
        (date, "date"),
        (bytes, "binary"),
        (set, "set"),
    ):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def did_you_mean(word: Any, options: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest option, or ``""``."""
    if not isinstance(word, str):
        return ""
    options = list(options)
    alias = ALIASES.get(word.lower())
    if alias in options:
        return f" (did you mean {alias!r}?)"
    import difflib  # only when a key is wrong: not on every config load

    close = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Field:
    """Where a value is and whose it is, to word and place errors about it.

    ``owner`` is who has the value ("job 'a'", "defaults", "" at the top level); ``key`` names
    the value.
    """

    def __init__(self, file: str, owner: str, key: str, pos: Pos | None) -> None:
        self.file, self.owner, self.key, self.pos = file, owner, key, pos

    def error(self, message: str, pos: Pos | None = None) -> ConfigError:
        where = pos or self.pos or (None, None)
        text = f"{self.owner}: {message}" if self.owner else message
        return ConfigError(text, self.file, *where)

    def wrong_type(self, value: Any, expected: str) -> ConfigError:
        return self.error(f"{self.key} must be {expected}, got {type_name(value)}")

    def inner(self, value: Any, key: str) -> Field:
        """The field of ``value[key]`` (``value`` being this field's mapping)."""
        owner = f"{self.owner}: {self.key}" if self.owner else self.key
        pos = value.value_marks.get(key) if isinstance(value, MarkedDict) else None
        return Field(self.file, owner, key, pos or self.pos)


def sub_mapping(value: Any, at: Field, allowed: tuple[str, ...], example: str) -> dict[str, Any]:
    """``value`` checked to be a mapping of only ``allowed`` keys (with did-you-mean)."""
    if not isinstance(value, dict):
        raise at.wrong_type(value, f"a mapping such as {example}")
    for key in value:
        if key not in allowed:
            pos = value.key_marks.get(key) if isinstance(value, MarkedDict) else None
            owner = f"{at.owner}: {at.key}" if at.owner else at.key
            hint = did_you_mean(key, allowed) or f" (allowed: {', '.join(allowed)})"
            raise Field(at.file, owner, "", pos or at.pos).error(
                f"unknown key {key!r}{hint}"
            )
    return value


# --------------------------------------------------------------------------- scalars


def _string(value: Any, at: Field) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise at.wrong_type(value, "a string")
    return value


def _function(value: Any, at: Field) -> str | None:
    text = _string(value, at)
    if text is None:
        return None
    try:
        parse_function_path(text)
    except ValueError:
        raise at.error(f"{at.key} must look like {FUNCTION_SYNTAX}, got {text!r}") from None
    return text


def duration(value: Any, at: Field, *, zero: bool = True, null: str | None = None) -> float:
    """Seconds from ``30s``, ``10m``, ``90``...; at least 0 (more than 0 unless ``zero``).

    ``null``, when given, is what null means, told in the message refusing 0.
    """
    try:
        seconds = parse_duration(value)
    except (ValueError, OverflowError) as exc:
        detail = str(exc) if isinstance(exc, ValueError) else "the number is too large"
        raise at.error(f"bad {at.key}: {detail}") from None
    if not math.isfinite(seconds):
        raise at.error(f"bad {at.key}: expected a finite duration such as 30s, got {value!r}")
    if not zero and seconds <= 0:
        hint = f" (use null for {null})" if null else ""
        raise at.error(f"{at.key} must be more than 0{hint}")
    return seconds


def _timeout(value: Any, at: Field) -> float | None:
    if value is None:
        return None  # an explicit null: no timeout, whatever the defaults say
    return duration(value, at, zero=False, null="no timeout")


def whole_number(value: Any, at: Field, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise at.wrong_type(value, f"a whole number of at least {minimum}")
    if value < minimum:
        raise at.error(f"{at.key} must be at least {minimum}, got {value}")
    return value


def _concurrency(value: Any, at: Field) -> int:
    return whole_number(value, at, 1)


def choice(options: tuple[str, ...]) -> Callable[[Any, Field], str]:
    def parse(value: Any, at: Field) -> str:
        if value not in options or not isinstance(value, str):
            shown = repr(value) if isinstance(value, str) else type_name(value)
            allowed = ", ".join(repr(o) for o in options[:-1]) + f" or {options[-1]!r}"
            raise at.error(f"{at.key} must be {allowed}, got {shown}{did_you_mean(value, options)}")
        return value

    return parse


# --------------------------------------------------------------------------- containers


def _args(value: Any, at: Field) -> tuple[Any, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise at.wrong_type(value, "a list")
    return tuple(_plain(value, at, set()))


def _kwargs(value: Any, at: Field) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise at.wrong_type(value, "a mapping")
    for key in value:
        if not isinstance(key, str):
            pos = value.key_marks.get(key) if isinstance(value, MarkedDict) else None
            raise at.error(f"kwargs keys must be strings, got {type_name(key)} {key!r}", pos)
    return _plain(value, at, set())


def _plain(value: Any, at: Field, active: set[int]) -> Any:
    """Plain dicts and lists instead of the marked ones; refuses recursive aliases."""
    if isinstance(value, (dict, list, tuple)):  # tuples: the pairs of !!omap and !!pairs
        if id(value) in active:
            raise at.error(f"{at.key} must not contain itself (a recursive YAML alias)")
        active.add(id(value))
        if isinstance(value, dict):
            result: Any = {k: _plain(v, at, active) for k, v in value.items()}
        elif isinstance(value, tuple):
            result = tuple(_plain(v, at, active) for v in value)
        else:
            result = [_plain(v, at, active) for v in value]
        active.discard(id(value))
        return result
    return value


def string_list(what: str) -> Callable[[Any, Field], tuple[tuple[str, ...], dict[str, Pos]]]:
    """A parser of a list of strings (deduplicated), also giving each string's position."""

    def parse(value: Any, at: Field) -> tuple[tuple[str, ...], dict[str, Pos]]:
        if value is None:
            return (), {}
        if isinstance(value, str):
            simple = value.isprintable() and len(value) <= 40
            hint = f"write [{value}]" if simple else "write it as a list"
            raise at.error(f"{at.key} must be a list, got string ({hint})")
        if not isinstance(value, list):
            raise at.wrong_type(value, f"a list of {what}s")
        marks = value.item_marks if isinstance(value, MarkedList) else []
        positions: dict[str, Pos] = {}
        for index, item in enumerate(value):
            pos = marks[index] if index < len(marks) else at.pos or (1, 1)
            if not isinstance(item, str) or not item:
                shown = type_name(item) if item != "" else "an empty string"
                raise at.error(f"each of {at.key} must be a {what} (a string), got {shown}", pos)
            positions.setdefault(item, pos)
        return tuple(positions), positions

    return parse


def _code_version(value: Any, at: Field) -> str | None:
    """``code_version: "3"`` (a number is taken as its text); null: a hash of the source."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise at.wrong_type(value, 'a string or a number such as "3"')
    text = str(value)
    if not text.strip():
        raise at.error(f"{at.key} must not be empty (leave it out to hash the function)")
    return text


def _inputs(value: Any, at: Field) -> tuple[str, ...]:
    """``inputs: [data/*.csv, other/file.txt]``: glob patterns of the files a job reads."""
    return string_list("glob pattern")(value, at)[0]


# --------------------------------------------------------------------------- policies


def _retries(value: Any, at: Field) -> RetryPolicy | None:
    """``{count: 3, delay: 30s, backoff: 2, max_delay: 10m}``, or just the count."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        count = whole_number(value, Field(at.file, at.owner, at.key, at.pos), 0)
        return RetryPolicy(count) if count else None
    if not isinstance(value, dict):
        raise at.wrong_type(value, "a mapping such as {count: 3, delay: 30s} (or a count)")
    sub_mapping(value, at, RETRY_KEYS, "{count: 3, delay: 30s}")
    if "count" not in value:
        start = value.start if isinstance(value, MarkedDict) else None
        raise at.error(f"{at.key}: missing required key 'count'", start)
    count = whole_number(value["count"], at.inner(value, "count"), 0)
    delay = 0.0
    if value.get("delay") is not None:
        delay = duration(value["delay"], at.inner(value, "delay"))
    backoff = 1.0
    if "backoff" in value:
        raw, field = value["backoff"], at.inner(value, "backoff")
        if (
            isinstance(raw, bool)
            or not isinstance(raw, (int, float))
            or not math.isfinite(raw)
            or raw < 1
        ):
            shown = repr(raw) if isinstance(raw, (int, float)) else type_name(raw)
            raise field.error(f"backoff must be a number of at least 1, got {shown}")
        backoff = float(raw)
    max_delay = None
    if value.get("max_delay") is not None:
        max_delay = duration(value["max_delay"], at.inner(value, "max_delay"))
    if not count:
        return None  # `count: 0`: no retries, whatever the defaults say
    return RetryPolicy(count, delay, backoff, max_delay)


def _retention(value: Any, at: Field) -> RetentionPolicy | None:
    """``{keep_last: 100, keep_for: 30d, logs: {DEBUG: 7d}}``; null keeps everything."""
    if value is None:
        return None
    sub_mapping(value, at, RETENTION_KEYS, "{keep_last: 100, keep_for: 30d}")
    keep_last = value.get("keep_last")
    if keep_last is not None:
        keep_last = whole_number(keep_last, at.inner(value, "keep_last"), 1)
    keep_for = value.get("keep_for")
    if keep_for is not None:
        keep_for = duration(keep_for, at.inner(value, "keep_for"), zero=False,
                            null="builds of any age")
    logs = _log_ages(value.get("logs"), at.inner(value, "logs"))
    return RetentionPolicy(keep_last=keep_last, keep_for=keep_for, logs=logs)


def _log_ages(value: Any, at: Field) -> dict[int, float]:
    """``{DEBUG: 7d, info: 30d}`` → ``{10: 604800.0, 20: 2592000.0}``."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise at.wrong_type(value, "a mapping of log levels to durations, such as {DEBUG: 7d}")
    ages: dict[int, float] = {}
    for name, age in value.items():
        key_pos = value.key_marks.get(name) if isinstance(value, MarkedDict) else None
        level = LOG_LEVELS.get(name.upper()) if isinstance(name, str) else None
        if level is None:
            if not isinstance(name, str):
                message = f"a log level is a name such as DEBUG, got {type_name(name)} {name!r}"
            else:
                levels = f" (levels: {', '.join(LOG_LEVELS)})"
                hint = did_you_mean(name.upper(), LOG_LEVELS) or levels
                message = f"unknown log level {name!r}{hint}"
            raise at.error(f"{at.key}: {message}", key_pos)
        if level in ages:
            raise at.error(f"{at.key}: level {name.upper()} is given twice", key_pos)
        ages[level] = duration(age, at.inner(value, name))
    return dict(sorted(ages.items()))


def queue_name(value: Any, at: Field) -> str | None:
    """A Celery queue name (``queue:`` of a job or of ``executor:``)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise at.wrong_type(value, "a queue name such as jobcontrol")
    if not QUEUE_NAME.match(value):
        raise at.error(f"bad {at.key} {value!r}: use letters, digits, '_', '.', ':' and '-'")
    return value


PARSERS: dict[str, Callable[[Any, Field], Any]] = {
    "function": _function,
    "title": _string,
    "args": _args,
    "kwargs": _kwargs,
    "dependencies": string_list("job id"),
    "tags": string_list("tag"),
    "timeout": _timeout,
    "cleanup_function": _function,
    "concurrency": _concurrency,
    "isolation": choice(ISOLATIONS),
    "result": choice(RESULTS),
    "retries": _retries,
    "retention": _retention,
    "queue": queue_name,
    "code_version": _code_version,
    "inputs": _inputs,
}
