"""Job definitions: a YAML file (rendered by Jinja2 first) → validated, frozen objects.

``load_config(path)`` is the entry point. Every mistake in the file is a
:class:`~jobcontrol.errors.ConfigError` that names the file, line and column of the offending
key or value; the checks themselves live in :mod:`jobcontrol._config_validate`.

Nothing is imported here: ``function`` is only checked for syntax (see
:mod:`jobcontrol.importing`, used when a build needs the callable).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from jobcontrol.errors import ConfigError, UnknownJobError

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "Config",
    "JobDefinition",
    "Location",
    "RetvalRef",
    "find_config_path",
    "load_config",
    "parse_config",
]

DEFAULT_CONFIG_NAME = "jobcontrol.yaml"
CONFIG_ENV_VAR = "JOBCONTROL_CONFIG"
RENDERED_NOTE = " (line of the rendered config; see `jobcontrol config`)"
_TEMPLATE_MARKERS = ("{{", "{%", "{#")
_YAML_TAG_PREFIX = "tag:yaml.org,2002:"


@dataclass(frozen=True)
class Location:
    """A place in the config file; ``line`` and ``column`` are 1-based."""

    file: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        parts = [self.file]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    def error(self, message: str) -> ConfigError:
        """A :class:`ConfigError` with ``message`` at this place."""
        return ConfigError(message, self.file, self.line, self.column)


@dataclass(frozen=True)
class RetvalRef:
    """`!retval JOB`: the return value of the dependency JOB's build, passed as an argument."""

    job_id: str
    location: Location | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class JobDefinition:
    """One job of the config, validated; defaults are already merged in."""

    id: str
    function: str
    title: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    dependencies: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    timeout: float | None = None
    cleanup_function: str | None = None
    concurrency: int = 1
    isolation: str = "process"
    result: str = "json"
    location: Location = field(default=Location("<config>"), compare=False)
    # where each key's value was written ({"kwargs": Location, ...}), for later error messages
    _marks: Mapping[str, Location] = field(default_factory=dict, compare=False, repr=False)

    @property
    def definition_hash(self) -> str:
        """sha256 of what decides the build's outcome: function, args and kwargs.

        Title, tags, timeout and the rest may change without making the job outdated.
        """
        payload = {"function": self.function, "args": self.args, "kwargs": self.kwargs}
        text = json.dumps(to_jsonable(payload), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def snapshot(self) -> dict[str, Any]:
        """Every field but ``location`` as a JSON-able dict (stored with each build)."""
        return {
            "id": self.id,
            "function": self.function,
            "title": self.title,
            "args": to_jsonable(self.args),
            "kwargs": to_jsonable(self.kwargs),
            "dependencies": list(self.dependencies),
            "tags": list(self.tags),
            "timeout": self.timeout,
            "cleanup_function": self.cleanup_function,
            "concurrency": self.concurrency,
            "isolation": self.isolation,
            "result": self.result,
        }

    def retval_jobs(self) -> set[str]:
        """Ids of the jobs whose return values ``!retval`` passes in args or kwargs."""
        return {ref.job_id for ref in iter_retvals((self.args, self.kwargs))}

    def location_of(self, key: str) -> Location:
        """Where ``key``'s value is written (a default's value counts), else the job's start."""
        return self._marks.get(key, self.location)


@dataclass(frozen=True)
class Config:
    """A loaded config file: its jobs in file order, and the storage URL it names."""

    path: Path
    jobs: Mapping[str, JobDefinition]
    storage: str | None = None
    rendered: str = ""

    @property
    def directory(self) -> Path:
        """The folder of the config file (put on ``sys.path``; relative storage paths)."""
        return self.path.parent

    @property
    def dependencies(self) -> dict[str, tuple[str, ...]]:
        """``{job_id: dependencies}`` in file order, as :mod:`jobcontrol.graph` takes it."""
        return {job_id: job.dependencies for job_id, job in self.jobs.items()}

    def job(self, job_id: str) -> JobDefinition:
        """The job ``job_id``; :class:`UnknownJobError` (with a suggestion) if undefined."""
        try:
            return self.jobs[job_id]
        except KeyError:
            raise UnknownJobError(job_id, list(self.jobs)) from None


# --------------------------------------------------------------------------- JSON helpers


def to_jsonable(value: Any) -> Any:
    """``value`` with RetvalRef as ``{"!retval": id}``, tuples as lists, other scalars as str."""
    if isinstance(value, RetvalRef):
        return {"!retval": value.job_id}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {k if isinstance(k, str) else str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        # sets (YAML !!set) have no order: sort so the hash is stable across runs
        items = [to_jsonable(v) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    return str(value)  # dates and timestamps from YAML, bytes from !!binary


def iter_retvals(value: Any) -> Iterator[RetvalRef]:
    """Every RetvalRef inside ``value`` (mapping keys and values, sequences, sets)."""
    if isinstance(value, RetvalRef):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from iter_retvals(key)
            yield from iter_retvals(item)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield from iter_retvals(item)


# --------------------------------------------------------------------------- finding, loading


def find_config_path(explicit: str | None = None) -> Path:
    """The config file to use: ``explicit`` (``--config``), ``$JOBCONTROL_CONFIG``, then
    ``./jobcontrol.yaml``. The path is returned as given, so messages show it that way.
    """
    if explicit:
        return _existing_file(explicit, "config file")
    from_env = os.environ.get(CONFIG_ENV_VAR)
    if from_env:
        return _existing_file(from_env, f"config file (from ${CONFIG_ENV_VAR})")
    default = Path(DEFAULT_CONFIG_NAME)
    if default.is_file():
        return default
    raise ConfigError(
        f"no config file: pass -c FILE, set {CONFIG_ENV_VAR}, or create ./{DEFAULT_CONFIG_NAME}",
        str(default),
    )


def _existing_file(given: str, what: str) -> Path:
    path = Path(given)
    if path.is_dir():
        raise ConfigError(f"{what} is a directory, not a file", given)
    if not path.exists():
        raise ConfigError(f"{what} does not exist", given)
    return path


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read, render, parse and validate the config file at ``path``."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config file does not exist", name) from None
    except IsADirectoryError:
        raise ConfigError("config file is a directory, not a file", name) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file is not UTF-8 text ({exc.reason})", name) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc.strerror or exc}", name) from None
    return parse_config(text, path)


def parse_config(text: str, path: str | os.PathLike[str]) -> Config:
    """Like :func:`load_config`, from ``text``; ``path`` names it in messages and places it."""
    from jobcontrol._config_validate import build_config  # validation needs the classes above

    name = str(path)
    rendered = render_template(text, name, Path(path).resolve().parent)
    try:
        root, root_mark = _load_yaml(rendered, name)
        return build_config(
            root, root_mark, file=name, path=Path(path).resolve(), rendered=rendered
        )
    except ConfigError as exc:
        if rendered != text and exc.line is not None:
            # the lines counted are those of the rendered text, not of the file on disk
            exc.message += RENDERED_NOTE
            exc.args = (str(exc),)
        raise


# --------------------------------------------------------------------------- Jinja


def render_template(text: str, name: str, directory: Path) -> str:
    """``text`` rendered by Jinja2 with ``env`` (the environment variables) available.

    Templates may ``{% include %}``/``{% import %}`` files beside the config. Text without
    template syntax is returned as is, without importing Jinja (CLI start-up stays fast).
    """
    if not any(marker in text for marker in _TEMPLATE_MARKERS):
        return text
    import jinja2

    def main_source(template: str) -> tuple[str, str, Any] | None:
        return (text, name, lambda: True) if template == name else None

    environment = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        loader=jinja2.ChoiceLoader(
            [jinja2.FunctionLoader(main_source), jinja2.FileSystemLoader(str(directory))]
        ),
    )
    try:
        return environment.get_template(name).render(env=dict(os.environ))
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(
            f"template syntax error: {_one_line(exc.message or str(exc))}",
            exc.filename or name,
            exc.lineno,
        ) from None
    except Exception as exc:  # a template is code: any error in it is the config's mistake
        file, line = _template_frame(exc.__traceback__, name)
        detail = _one_line(str(exc))
        if not isinstance(exc, jinja2.TemplateError):
            detail = f"{type(exc).__name__}: {detail}"
        elif isinstance(exc, jinja2.TemplateNotFound):
            detail = f"template not found: {detail}"
        raise ConfigError(f"template error: {detail}", file, line) from None


def _template_frame(tb: TracebackType | None, default: str) -> tuple[str, int | None]:
    """File and line of the innermost template frame (Jinja rewrites tracebacks so that
    its frames carry the template's file name and line)."""
    found: tuple[str, int | None] = (default, None)
    while tb is not None:
        if "__jinja_exception__" in tb.tb_frame.f_globals:
            found = (tb.tb_frame.f_code.co_filename, tb.tb_lineno)
        tb = tb.tb_next
    return found


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --------------------------------------------------------------------------- YAML

Pos = tuple[int, int]  # (line, column), 1-based


class MarkedDict(dict):  # type: ignore[type-arg]
    """A YAML mapping that remembers where its keys and values are written."""

    start: Pos = (1, 1)

    def __init__(self) -> None:
        super().__init__()
        self.key_marks: dict[Any, Pos] = {}
        self.value_marks: dict[Any, Pos] = {}


class MarkedList(list):  # type: ignore[type-arg]
    """A YAML sequence that remembers where its items are written."""

    start: Pos = (1, 1)

    def __init__(self) -> None:
        super().__init__()
        self.item_marks: list[Pos] = []


def _pos(mark: Any) -> Pos:
    return (mark.line + 1, mark.column + 1)


def _show_tag(tag: str) -> str:
    return "!!" + tag[len(_YAML_TAG_PREFIX) :] if tag.startswith(_YAML_TAG_PREFIX) else tag


@lru_cache(maxsize=1)
def _loader_class() -> type[Any]:
    """A safe loader with ``!retval``, duplicate-key checks and marks on every container.

    libyaml's loader is used when present and it reports marks (it is several times faster).
    """
    base: type[Any] = yaml.SafeLoader
    c_loader = getattr(yaml, "CSafeLoader", None)
    if c_loader is not None:
        probe = c_loader("a:\n  - b\n")
        try:
            node = probe.get_single_node()
            if getattr(node.value[0][1].start_mark, "line", None) == 1:
                base = c_loader
        except Exception:  # a broken libyaml: keep the pure-Python loader
            pass
        finally:
            probe.dispose()

    class Loader(base):  # type: ignore[misc, valid-type]
        jc_file = "<config>"

        def at(self, node: Any) -> Location:
            line, column = _pos(node.start_mark)
            return Location(self.jc_file, line, column)

        def construct_undefined(self, node: Any) -> Any:
            # everything SafeLoader cannot build (e.g. !!python/object/apply) stops here
            raise self.at(node).error(
                f"tag {_show_tag(node.tag)} is not allowed: only plain YAML and !retval"
            )

    Loader.add_constructor(None, Loader.construct_undefined)
    Loader.add_constructor(_YAML_TAG_PREFIX + "map", _construct_map)
    Loader.add_constructor(_YAML_TAG_PREFIX + "seq", _construct_seq)
    Loader.add_constructor("!retval", _construct_retval)
    return Loader


def _construct_map(loader: Any, node: yaml.MappingNode) -> Iterator[MarkedDict]:
    data = MarkedDict()
    data.start = _pos(node.start_mark)
    yield data  # filled afterwards, so recursive (anchored) structures work
    merge_tag = _YAML_TAG_PREFIX + "merge"
    own = [(k, v) for k, v in node.value if k.tag != merge_tag]
    first_at: dict[Any, int] = {}
    for key_node, _ in own:
        key = loader.construct_object(key_node, deep=False)
        try:
            hash(key)
        except TypeError:
            raise loader.at(key_node).error("a mapping key must be a plain value") from None
        if key in first_at:
            raise loader.at(key_node).error(
                f"duplicate key {key!r} (first at line {first_at[key]})"
            )
        first_at[key] = key_node.start_mark.line + 1
    loader.flatten_mapping(node)  # `<<: *anchor` merges; own keys come last and win
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=False)
        data[key] = loader.construct_object(value_node, deep=False)
        data.key_marks[key] = _pos(key_node.start_mark)
        data.value_marks[key] = _pos(value_node.start_mark)


def _construct_seq(loader: Any, node: yaml.SequenceNode) -> Iterator[MarkedList]:
    data = MarkedList()
    data.start = _pos(node.start_mark)
    yield data
    for child in node.value:
        data.append(loader.construct_object(child, deep=False))
        data.item_marks.append(_pos(child.start_mark))


def _construct_retval(loader: Any, node: yaml.Node) -> RetvalRef:
    value = node.value.strip() if isinstance(node, yaml.ScalarNode) else ""
    if not value:
        got = "an empty value" if isinstance(node, yaml.ScalarNode) else f"a {node.id}"
        raise loader.at(node).error(
            f"!retval takes the id of a dependency (e.g. `!retval fetch_prices`), got {got}"
        )
    return RetvalRef(value, loader.at(node))


def _load_yaml(text: str, file: str) -> tuple[Any, Pos | None]:
    """The document's data and the position of its root node (None for an empty file)."""
    loader = None
    try:
        loader = _loader_class()(text)  # the pure-Python reader checks characters right here
        loader.jc_file = file
        node = loader.get_single_node()
        if node is None:
            return None, None
        return loader.construct_document(node), _pos(node.start_mark)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, text, file) from None
    finally:
        if loader is not None:
            loader.dispose()


def _yaml_error(exc: yaml.YAMLError, text: str, file: str) -> ConfigError:
    """One clean line from any PyYAML error, at its problem mark."""
    mark = getattr(exc, "problem_mark", None)
    if isinstance(exc, yaml.MarkedYAMLError) and mark is not None:
        message = _one_line(exc.problem or "invalid YAML")
        context, context_mark = exc.context, exc.context_mark
        if context and message.startswith("but "):  # "expected X" + "but found Y"
            message = f"{_one_line(context)}, {message}"
        elif context and context_mark is not None and context_mark.line != mark.line:
            message += f" ({_one_line(context)} started at line {context_mark.line + 1})"
        lines = text.splitlines()
        if mark.line < len(lines) and lines[mark.line][mark.column : mark.column + 1] == "\t":
            message += " (YAML cannot be indented with tabs: use spaces)"
        return ConfigError(f"invalid YAML: {message}", file, mark.line + 1, mark.column + 1)
    if isinstance(exc, yaml.reader.ReaderError):
        before = text[: exc.position]
        line = before.count("\n") + 1
        column = exc.position - (before.rfind("\n") + 1) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        return ConfigError(
            f"invalid YAML: character U+{code:04X} is not allowed ({exc.reason})",
            file,
            line,
            column,
        )
    return ConfigError(f"invalid YAML: {_one_line(str(exc))}", file)
