"""Validation of a loaded config document: raw YAML data (with marks) → :class:`Config`.

Each check raises a :class:`ConfigError` at the key or value at fault, naming the job. The
checks run in file order, so the first mistake in the file is the one reported.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path
from typing import Any

from jobcontrol.config import (
    Config,
    JobDefinition,
    Location,
    MarkedDict,
    MarkedList,
    Pos,
    RetvalRef,
    iter_retvals,
)
from jobcontrol.errors import ConfigError, CycleError
from jobcontrol.graph import find_cycle
from jobcontrol.importing import FUNCTION_SYNTAX, parse_function_path
from jobcontrol.timeutil import parse_duration

TOP_KEYS = ("storage", "defaults", "jobs")
JOB_KEYS = (
    "id",
    "function",
    "title",
    "args",
    "kwargs",
    "dependencies",
    "tags",
    "timeout",
    "cleanup_function",
    "concurrency",
    "isolation",
    "result",
)
DEFAULT_KEYS = ("timeout", "concurrency", "isolation", "result", "tags")
BUILTIN_DEFAULTS: dict[str, Any] = {
    "timeout": None,
    "concurrency": 1,
    "isolation": "process",
    "result": "json",
    "tags": (),
}
ISOLATIONS = ("process", "inline")
RESULTS = ("json", "pickle")
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
}
JOB_ID_RE = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*\Z")


def build_config(
    root: Any, root_mark: Pos | None, *, file: str, path: Path, rendered: str
) -> Config:
    """Validate the document ``root`` and build the :class:`Config`."""
    return _Validator(file).config(root, root_mark, path, rendered)


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
    close = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def find_retval(value: Any, seen: set[int] | None = None) -> RetvalRef | None:
    """The first RetvalRef in ``value``; safe on recursive (anchored) structures."""
    if isinstance(value, RetvalRef):
        return value
    if isinstance(value, (dict, list, set)):
        seen = set() if seen is None else seen
        if id(value) in seen:
            return None
        seen.add(id(value))
        items = [x for pair in value.items() for x in pair] if isinstance(value, dict) else value
        for item in items:
            found = find_retval(item, seen)
            if found is not None:
                return found
    return None


class _Field:
    """Where a value is and whose it is, to word and place errors about it."""

    def __init__(self, check: _Validator, owner: str, key: str, pos: Pos) -> None:
        self.check, self.owner, self.key, self.pos = check, owner, key, pos

    def error(self, message: str, pos: Pos | None = None) -> ConfigError:
        return self.check.error(f"{self.owner}: {message}", pos or self.pos)

    def wrong_type(self, value: Any, expected: str) -> ConfigError:
        return self.error(f"{self.key} must be {expected}, got {type_name(value)}")


# --------------------------------------------------------------------------- value parsers
# Each takes the raw value (None included) and returns the value JobDefinition wants.


def _string(value: Any, at: _Field) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise at.wrong_type(value, "a string")
    return value


def _function(value: Any, at: _Field) -> str | None:
    text = _string(value, at)
    if text is None:
        return None
    try:
        parse_function_path(text)
    except ValueError:
        raise at.error(f"{at.key} must look like {FUNCTION_SYNTAX}, got {text!r}") from None
    return text


def _args(value: Any, at: _Field) -> tuple[Any, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise at.wrong_type(value, "a list")
    return tuple(_plain(value, at, set()))


def _kwargs(value: Any, at: _Field) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise at.wrong_type(value, "a mapping")
    for key in value:
        if not isinstance(key, str):
            pos = value.key_marks.get(key) if isinstance(value, MarkedDict) else None
            raise at.error(f"kwargs keys must be strings, got {type_name(key)} {key!r}", pos)
    return _plain(value, at, set())  # type: ignore[no-any-return]


def _plain(value: Any, at: _Field, active: set[int]) -> Any:
    """Plain dicts and lists instead of the marked ones; refuses recursive aliases."""
    if isinstance(value, (dict, list)):
        if id(value) in active:
            raise at.error(f"{at.key} must not contain itself (a recursive YAML alias)")
        active.add(id(value))
        if isinstance(value, dict):
            result: Any = {k: _plain(v, at, active) for k, v in value.items()}
        else:
            result = [_plain(v, at, active) for v in value]
        active.discard(id(value))
        return result
    return value


def _string_list(what: str) -> Callable[[Any, _Field], tuple[tuple[str, ...], dict[str, Pos]]]:
    """A parser of a list of strings (deduplicated), also giving each string's position."""

    def parse(value: Any, at: _Field) -> tuple[tuple[str, ...], dict[str, Pos]]:
        if value is None:
            return (), {}
        if isinstance(value, str):
            raise at.error(f"{at.key} must be a list, got string (write [{value}])")
        if not isinstance(value, list):
            raise at.wrong_type(value, f"a list of {what}s")
        marks = value.item_marks if isinstance(value, MarkedList) else []
        positions: dict[str, Pos] = {}
        for index, item in enumerate(value):
            pos = marks[index] if index < len(marks) else at.pos
            if not isinstance(item, str) or not item:
                shown = type_name(item) if item != "" else "an empty string"
                raise at.error(f"each of {at.key} must be a {what} (a string), got {shown}", pos)
            positions.setdefault(item, pos)
        return tuple(positions), positions

    return parse


_dependencies = _string_list("job id")
_tags = _string_list("tag")


def _timeout(value: Any, at: _Field) -> float | None:
    if value is None:
        return None  # an explicit null: no timeout, whatever the defaults say
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise at.error(f"bad {at.key}: {exc}") from None
    if seconds <= 0:
        raise at.error(f"{at.key} must be more than 0 (use null for no timeout)")
    return seconds


def _concurrency(value: Any, at: _Field) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise at.wrong_type(value, "a whole number of at least 1")
    if value < 1:
        raise at.error(f"{at.key} must be at least 1, got {value}")
    return value


def _choice(options: tuple[str, ...]) -> Callable[[Any, _Field], str]:
    def parse(value: Any, at: _Field) -> str:
        if value not in options or not isinstance(value, str):
            shown = repr(value) if isinstance(value, str) else type_name(value)
            allowed = " or ".join(repr(o) for o in options)
            raise at.error(f"{at.key} must be {allowed}, got {shown}{did_you_mean(value, options)}")
        return value

    return parse


PARSERS: dict[str, Callable[[Any, _Field], Any]] = {
    "function": _function,
    "title": _string,
    "args": _args,
    "kwargs": _kwargs,
    "dependencies": _dependencies,
    "tags": _tags,
    "timeout": _timeout,
    "cleanup_function": _function,
    "concurrency": _concurrency,
    "isolation": _choice(ISOLATIONS),
    "result": _choice(RESULTS),
}


# --------------------------------------------------------------------------- the document


class _Job:
    """A job's parsed values and where they were written, before cross-job checks."""

    def __init__(self, job_id: str, raw: MarkedDict) -> None:
        self.id = job_id
        self.raw = raw
        self.values: dict[str, Any] = {}
        self.marks: dict[str, Pos] = {}
        self.dependency_marks: dict[str, Pos] = {}


class _Validator:
    def __init__(self, file: str) -> None:
        self.file = file

    def location(self, pos: Pos | None) -> Location:
        return Location(self.file, *(pos or (None, None)))

    def error(self, message: str, pos: Pos | None) -> ConfigError:
        return self.location(pos).error(message)

    def config(self, root: Any, root_mark: Pos | None, path: Path, rendered: str) -> Config:
        if root is None:
            raise self.error(
                "the config file is empty (it needs at least `jobs:` with a list of jobs)", None
            )
        if not isinstance(root, MarkedDict):
            raise self.error(
                f"the config must be a mapping with a 'jobs' list, got {type_name(root)}",
                root_mark,
            )
        for key in root:
            if key not in TOP_KEYS:
                raise self.error(self.unknown_key("", key, TOP_KEYS), root.key_marks[key])
            retval = find_retval(root[key]) if key != "jobs" else None
            if retval is not None:
                raise self.retval_misplaced("", key, retval)
        storage = self.storage(root)
        defaults, default_marks = self.defaults(root)
        if "jobs" not in root:
            raise self.error(
                "missing required key 'jobs' (a list of jobs; `jobs: []` for none)", root.start
            )
        raw_jobs = root["jobs"]
        if raw_jobs is None:
            raw_jobs = MarkedList()  # `jobs:` with nothing under it (a template made none)
        if not isinstance(raw_jobs, list):
            raise self.error(
                f"'jobs' must be a list of jobs, got {type_name(raw_jobs)}",
                root.value_marks["jobs"],
            )
        jobs: dict[str, _Job] = {}
        id_lines: dict[str, int] = {}
        for index, raw in enumerate(raw_jobs):
            pos = raw_jobs.item_marks[index] if isinstance(raw_jobs, MarkedList) else None
            job = self.job(index + 1, raw, pos, id_lines)
            jobs[job.id] = job
        self.cross_checks(jobs)
        definitions = {
            job_id: self.definition(job, defaults, default_marks) for job_id, job in jobs.items()
        }
        return Config(path=path, jobs=definitions, storage=storage, rendered=rendered)

    def unknown_key(self, owner: str, key: Any, allowed: Iterable[str]) -> str:
        where = f"{owner}: unknown key" if owner else "unknown top-level key"
        hint = did_you_mean(key, allowed)
        if not hint and not owner and key in DEFAULT_KEYS:
            hint = " (put it under 'defaults:' or in a job)"
        elif not hint and not owner and key in JOB_KEYS:
            hint = " (job keys go in an entry of the 'jobs' list)"
        return f"{where} {key!r}{hint}"

    def retval_misplaced(self, owner: str, key: Any, retval: RetvalRef) -> ConfigError:
        where = f"{owner}: " if owner else ""
        location = retval.location or self.location(None)
        return location.error(
            f"{where}!retval is only allowed inside a job's args and kwargs, not in {key!r}"
        )

    def storage(self, root: MarkedDict) -> str | None:
        value = root.get("storage")
        if value is not None and (not isinstance(value, str) or not value.strip()):
            shown = "an empty string" if isinstance(value, str) else type_name(value)
            raise self.error(
                f"storage must be a URL such as sqlite:///jobcontrol.db, got {shown}",
                root.value_marks["storage"],
            )
        return value

    def defaults(self, root: MarkedDict) -> tuple[dict[str, Any], dict[str, Pos]]:
        raw = root.get("defaults")
        if raw is None:
            return {}, {}
        if not isinstance(raw, MarkedDict):
            raise self.error(
                f"defaults must be a mapping, got {type_name(raw)}", root.value_marks["defaults"]
            )
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in DEFAULT_KEYS:
                if key in JOB_KEYS:
                    message = (
                        f"defaults: {key!r} cannot have a default "
                        f"(allowed: {', '.join(sorted(DEFAULT_KEYS))})"
                    )
                else:
                    message = self.unknown_key("defaults", key, DEFAULT_KEYS)
                raise self.error(message, raw.key_marks[key])
            at = _Field(self, "defaults", key, raw.value_marks[key])
            parsed = PARSERS[key](value, at)
            values[key] = parsed[0] if key == "tags" else parsed
        return values, dict(raw.value_marks)

    def job(self, number: int, raw: Any, pos: Pos | None, id_lines: dict[str, int]) -> _Job:
        owner = f"job #{number}"
        if not isinstance(raw, MarkedDict):
            raise self.error(
                f"{owner} must be a mapping with at least 'id' and 'function', "
                f"got {type_name(raw)}",
                pos,
            )
        job_id = self.job_id(owner, raw, id_lines)
        owner = f"job {job_id!r}"
        job = _Job(job_id, raw)
        for key, value in raw.items():
            if key not in JOB_KEYS:
                raise self.error(self.unknown_key(owner, key, JOB_KEYS), raw.key_marks[key])
            job.marks[key] = raw.value_marks[key]
            if key == "id":
                continue
            if key not in ("args", "kwargs"):
                retval = find_retval(value)
                if retval is not None:
                    raise self.retval_misplaced(owner, key, retval)
            parsed = PARSERS[key](value, _Field(self, owner, key, raw.value_marks[key]))
            if key in ("dependencies", "tags"):
                parsed, positions = parsed
                if key == "dependencies":
                    job.dependency_marks = positions
            job.values[key] = parsed
        if "function" not in raw:
            raise self.error(f"{owner}: missing required key 'function'", raw.start)
        if job.values["function"] is None:
            raise self.error(f"{owner}: function must not be empty", raw.value_marks["function"])
        return job

    def job_id(self, owner: str, raw: MarkedDict, id_lines: dict[str, int]) -> str:
        if "id" not in raw:
            raise self.error(f"{owner}: missing required key 'id'", raw.start)
        value, pos = raw["id"], raw.value_marks["id"]
        if not isinstance(value, str):
            hint = f" (quote it: id: '{value}')" if isinstance(value, (int, float)) else ""
            raise self.error(f"{owner}: id must be a string, got {type_name(value)}{hint}", pos)
        if not JOB_ID_RE.match(value):
            raise self.error(
                f"{owner}: invalid id {value!r}: use letters, digits, '_', '-' and '.', "
                f"not starting with '-'",
                pos,
            )
        if value in id_lines:
            raise self.error(
                f"duplicate job id {value!r} (first defined at line {id_lines[value]})", pos
            )
        id_lines[value] = pos[0]
        return value

    def cross_checks(self, jobs: dict[str, _Job]) -> None:
        """Dependencies name other, existing jobs; !retval only of dependencies; no cycles."""
        for job in jobs.values():
            owner = f"job {job.id!r}"
            deps = job.values.get("dependencies", ())
            for dep in deps:
                pos = job.dependency_marks[dep]
                if dep == job.id:
                    raise self.error(f"{owner}: depends on itself", pos)
                if dep not in jobs:
                    hint = did_you_mean(dep, [j for j in jobs if j != job.id])
                    raise self.error(f"{owner}: unknown dependency {dep!r}{hint}", pos)
            for ref in iter_retvals((job.values.get("args"), job.values.get("kwargs"))):
                if ref.job_id in deps:
                    continue
                hint = " (add it to dependencies)"
                if ref.job_id not in jobs:
                    hint = did_you_mean(ref.job_id, deps) or hint
                location = ref.location or self.location(job.marks.get("args"))
                raise location.error(
                    f"{owner}: !retval {ref.job_id}, but {ref.job_id!r} is not among its "
                    f"dependencies{hint}"
                )
        cycle = find_cycle(
            {job_id: job.values.get("dependencies", ()) for job_id, job in jobs.items()}
        )
        if cycle:
            first = jobs[cycle[0]]
            line, column = first.raw.key_marks.get("dependencies", first.raw.start)
            raise CycleError(cycle, self.file, line, column)

    def definition(
        self, job: _Job, defaults: dict[str, Any], default_marks: dict[str, Pos]
    ) -> JobDefinition:
        values = dict(job.values)
        marks = {key: self.location(pos) for key, pos in job.marks.items()}
        for key in DEFAULT_KEYS:
            if key not in values:
                values[key] = defaults.get(key, BUILTIN_DEFAULTS[key])
                if key in default_marks:
                    marks[key] = self.location(default_marks[key])
        return JobDefinition(
            id=job.id,
            function=values["function"],
            title=values.get("title") or job.id,
            args=values.get("args", ()),
            kwargs=values.get("kwargs", {}),
            dependencies=values.get("dependencies", ()),
            tags=values["tags"],
            timeout=values["timeout"],
            cleanup_function=values.get("cleanup_function"),
            concurrency=values["concurrency"],
            isolation=values["isolation"],
            result=values["result"],
            location=self.location(job.raw.start),
            _marks=marks,
        )
