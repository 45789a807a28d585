"""Validation of a loaded config document: raw YAML data (with marks) → :class:`Config`.

Each check raises a :class:`ConfigError` at the key or value at fault, naming the job. The
checks run in file order, so the first mistake in the file is the one reported. The parsers
of single values live in :mod:`jobcontrol.config.values`, of the scheduling keys in
:mod:`jobcontrol.config.schedules`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from jobcontrol.config import commands, params, schedules
from jobcontrol.config.commands import FUNCTION_KEYS, SHELL_KEYS, env_secrets
from jobcontrol.config.model import (
    SHELL_FUNCTION,
    Config,
    ExecutorSettings,
    JobDefinition,
    Location,
    RetvalRef,
    RunnerSettings,
    ShellCommand,
    WebSettings,
    iter_retvals,
)
from jobcontrol.config.sections import (
    EXECUTOR_KEYS,
    RUNNER_KEYS,
    executor_settings,
    runner_settings,
    secret_list,
    web_settings,
)
from jobcontrol.config.values import PARSERS as VALUE_PARSERS
from jobcontrol.config.values import (
    RETENTION_KEYS,
    RETRY_KEYS,
    Field,
    did_you_mean,
    type_name,
)
from jobcontrol.config.yaml_loader import Document, MarkedDict, MarkedList, Pos
from jobcontrol.errors import ConfigError, CycleError
from jobcontrol.rules.graph import find_cycle
from jobcontrol.schedule import Schedule, ScheduleOptions
from jobcontrol.secrets import secret_values

__all__ = ["DEFAULT_KEYS", "JOB_KEYS", "PARSERS", "TOP_KEYS", "build_config"]

TOP_KEYS = ("storage", "defaults", "runner", "executor", "secrets", "web", "jobs")
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
    "retries",
    "retention",
    "schedule",
    "timezone",
    "schedule_options",
    "max_age",
    "notify",
    "queue",
    "command",
    "env",
    "cwd",
    "code_version",
    "inputs",
    "params",
)
DEFAULT_KEYS = ("timeout", "concurrency", "isolation", "result", "tags", "retries", "retention",
                "timezone", "schedule_options", "max_age", "notify")
BUILTIN_DEFAULTS: dict[str, Any] = {
    "timeout": None,
    "concurrency": 1,
    "isolation": "pool",
    "result": "json",
    "tags": (),
    "retries": None,
    "retention": None,
    "timezone": "UTC",
    "schedule_options": ScheduleOptions(),
    "max_age": None,
    "notify": None,
}
PARSERS = {
    **VALUE_PARSERS,
    "schedule": schedules.schedule,
    "timezone": schedules.timezone_name,
    "schedule_options": schedules.schedule_options,
    "max_age": schedules.max_age,
    "notify": schedules.notify,
    "command": commands.command,
    "env": commands.env,
    "cwd": commands.cwd,
    "params": params.PARSER,
}
#: the mapping each sub-key belongs in, to point a misplaced one there
SUB_KEY_PARENTS = {
    **dict.fromkeys(RETRY_KEYS, "retries"),
    **dict.fromkeys(RETENTION_KEYS, "retention"),
    **dict.fromkeys(RUNNER_KEYS, "runner"),
    # not "deps": a job's `deps:` means dependencies far more often
    **dict.fromkeys(("if_outdated", "catchup", "misfire_grace"), "schedule_options"),
    # "queue" is a job key too: only the executor's own keys point there
    **dict.fromkeys((k for k in EXECUTOR_KEYS if k != "queue"), "executor"),
}
JOB_ID_RE = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*\Z")


def build_config(document: Document, *, file: str, path: Path, rendered: str) -> Config:
    """Validate the loaded ``document`` and build the :class:`Config`."""
    return _Validator(file).config(document, path, rendered)


def find_retval(value: Any, seen: set[int] | None = None) -> RetvalRef | None:
    """The first RetvalRef in ``value``; safe on recursive (anchored) structures."""
    if isinstance(value, RetvalRef):
        return value
    if isinstance(value, (dict, list, tuple, set)):
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
        #: the config file's folder (a shell job's ``cwd`` is relative to it)
        self.directory = Path(".")
        #: False when the document holds no RetvalRef: then none is looked for
        self.retvals = True

    def location(self, pos: Pos | None) -> Location:
        return Location(self.file, *(pos or (None, None)))

    def error(self, message: str, pos: Pos | None) -> ConfigError:
        return self.location(pos).error(message)

    def field(self, owner: str, key: str, pos: Pos | None) -> Field:
        return Field(self.file, owner, key, pos)

    def config(self, document: Document, path: Path, rendered: str) -> Config:
        root, root_mark = document.data, document.root
        self.retvals = document.retvals
        self.directory = path.parent
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
            retval = find_retval(root[key]) if key != "jobs" and self.retvals else None
            if retval is not None:
                raise self.retval_misplaced("", key, retval)
        storage = self.storage(root)
        defaults, default_marks = self.defaults(root)
        runner = RunnerSettings(
            **runner_settings(root.get("runner"), self.top_field(root, "runner"))
        )
        web = WebSettings(**web_settings(root.get("web"), self.top_field(root, "web")))
        executor = ExecutorSettings(
            **executor_settings(root.get("executor"), self.top_field(root, "executor"))
        )
        secrets = set(document.env_values)
        secrets |= secret_list(root.get("secrets"), self.top_field(root, "secrets"))
        secrets |= {value for value in (web.secret_key, web.token) if value}
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
        for job in jobs.values():
            secrets |= secret_values([job.values.get("args"), job.values.get("kwargs")])
            secrets |= env_secrets(job.values.get("env", {}))
        for url in (storage, executor.broker):  # passwords of the database and the broker
            if isinstance(url, str):
                with contextlib.suppress(ValueError):
                    secrets.add(unquote(urlsplit(url).password or ""))
        every = frozenset(s for s in secrets if s)
        # what a job does not set: its default, else the built-in one (the same for all)
        fallback = {key: defaults.get(key, BUILTIN_DEFAULTS[key]) for key in DEFAULT_KEYS}
        definitions = {
            job_id: self.definition(job, fallback, default_marks, every)
            for job_id, job in jobs.items()
        }
        return Config(
            path=path,
            jobs=definitions,
            storage=storage,
            storage_location=self.location(root.value_marks.get("storage")) if storage else None,
            rendered=rendered,
            runner=runner,
            web=web,
            executor=executor,
            secrets=every,
        )

    def top_field(self, root: MarkedDict, key: str) -> Field:
        return self.field("", key, root.value_marks.get(key))

    def unknown_key(self, owner: str, key: Any, allowed: Iterable[str]) -> str:
        where = f"{owner}: unknown key" if owner else "unknown top-level key"
        hint = ""
        if not owner and key in DEFAULT_KEYS:
            hint = " (put it under 'defaults:' or in a job)"
        elif not owner and key in JOB_KEYS:
            hint = " (job keys go in an entry of the 'jobs' list)"
        elif owner and key in TOP_KEYS:
            hint = " (it is a top-level key)"
        elif key in SUB_KEY_PARENTS:
            parent = SUB_KEY_PARENTS[key]
            hint = f" (put it under '{parent}:')"
            if parent == "runner" and owner:
                hint = " (put it under the top-level 'runner:')"
        return f"{where} {key!r}{hint or did_you_mean(key, allowed)}"

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
            at = self.field("defaults", key, raw.value_marks[key])
            parsed = PARSERS[key](value, at)
            values[key] = parsed[0] if key == "tags" else parsed
        return values, dict(raw.value_marks)

    def job(self, number: int, raw: Any, pos: Pos | None, id_lines: dict[str, int]) -> _Job:
        owner = f"job #{number}"
        if not isinstance(raw, MarkedDict):
            raise self.error(
                f"{owner} must be a mapping with at least 'id' and 'function' (or 'command'), "
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
            if self.retvals and key not in ("args", "kwargs"):
                retval = find_retval(value)
                if retval is not None:
                    raise self.retval_misplaced(owner, key, retval)
            parsed = PARSERS[key](value, self.field(owner, key, raw.value_marks[key]))
            if key in ("dependencies", "tags"):
                parsed, positions = parsed
                if key == "dependencies":
                    job.dependency_marks = positions
            job.values[key] = parsed
        self.function_or_command(owner, raw)
        for name in job.values.get("kwargs", {}):  # one value a name: say which, here
            if any(spec.name == name for spec in job.values.get("params", ())):
                raise self.error(f"{owner}: {name!r} is both a kwarg and a parameter: "
                                 f"give it under params (with its default) only",
                                 raw.value_marks["params"])
        if "function" in raw and job.values["function"] is None:
            raise self.error(f"{owner}: function must not be empty", raw.value_marks["function"])
        return job

    def function_or_command(self, owner: str, raw: MarkedDict) -> None:
        """A job runs a function or a command: exactly one, with only its own keys."""
        if "function" in raw and "command" in raw:
            raise self.error(f"{owner}: give either 'function' or 'command', not both",
                             raw.key_marks["command"])
        if "command" in raw:
            for key in FUNCTION_KEYS:
                if key in raw:
                    raise self.error(f"{owner}: {key} is for a function: a shell job's "
                                     f"arguments go in its command", raw.key_marks[key])
        elif "function" in raw:
            for key in SHELL_KEYS:
                if key in raw:
                    raise self.error(f"{owner}: {key} is only for a shell job (one with "
                                     f"'command' instead of 'function')", raw.key_marks[key])
        else:
            raise self.error(f"{owner}: missing required key 'function' (or 'command' for "
                             f"a shell job)", raw.start)

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
            if not self.retvals:  # no !retval anywhere in the file
                continue
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
        self,
        job: _Job,
        fallback: dict[str, Any],
        default_marks: dict[str, Pos],
        secrets: frozenset[str],
    ) -> JobDefinition:
        """The job's JobDefinition; ``fallback`` holds each default key's value for a job
        that does not set it, ``default_marks`` where the ``defaults:`` ones are written."""
        values = {**fallback, **job.values}  # the job's own values win
        marks = {**default_marks, **job.marks}  # (default_marks has only default keys)
        shell = None
        if "command" in values:  # a shell job: its builds call SHELL_FUNCTION
            shell = ShellCommand(values["command"], values.get("env", {}), values.get("cwd"))
            values.update(function=SHELL_FUNCTION, kwargs=shell.arguments(self.directory))
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
            retries=values["retries"],
            retention=values["retention"],
            schedule=None if values.get("schedule") is None else Schedule(
                values["schedule"], values["timezone"], values["schedule_options"]),
            max_age=values["max_age"],
            notify=values["notify"],
            queue=values.get("queue"),
            params=values.get("params", ()),
            shell=shell,
            code_version=values.get("code_version"),
            inputs=values.get("inputs", ()),
            location=self.location(job.raw.start),
            secrets=secrets,
            _marks=marks,
        )
