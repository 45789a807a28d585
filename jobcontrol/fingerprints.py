"""What a build runs with besides its definition: its function's code and its input files.

The code version is a sha256 of the function's source text (decorators to last line), read
from the module's file *without importing it*: ``status``, ``--dry-run`` and the web never
import a job's module, and neither does this. The module is found on ``sys.path`` as the
import system's path finder would find it, without running any package's ``__init__`` (a
module already imported here is read from its ``__file__``); a name the module imports
from another module (``from .fetching import fetch``) is followed there. A function whose
source cannot be found this way (a C function, a name bound only by an assignment, a
module only a custom importer finds) has no code version, and :class:`CodeVersion` says
why.

Input fingerprints are sha256 of each file's content. The size and mtime a fingerprint was
taken with are kept beside it: a file whose size and mtime are the ones recorded is not read
again (``known``). An mtime less than :data:`RACY_SECONDS` older than the moment it was read
is not trusted later (a write within the same clock tick keeps both), as git does.
"""

from __future__ import annotations

import ast
import glob
import hashlib
import sys
import textwrap
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.machinery import PathFinder
from pathlib import Path

from jobcontrol.importing import parse_function_path

__all__ = [
    "RACY_SECONDS",
    "CodeVersion",
    "InputFile",
    "code_version",
    "fingerprint_inputs",
    "function_source",
]

#: a file modified less than this before its fingerprint was taken is hashed again next time
RACY_SECONDS = 2.0
#: how many ``from X import name`` re-exports are followed to find a function's definition
_MAX_HOPS = 8


class SourceUnavailable(Exception):
    """The function's source cannot be read without importing it (the message says why)."""


@dataclass(frozen=True)
class CodeVersion:
    """A job's code version now: ``value`` is its ``code_version:`` (``source`` is
    ``"code_version"``), or the sha256 of its function's source (``"function"``), or None
    with ``problem`` saying why the source could not be read; a shell job's is
    ``"command"`` (``"command"``: its definition hash covers its command)."""

    value: str | None
    source: str
    problem: str | None = None

    def as_json(self) -> dict[str, str | None]:
        """How a build records it: ``{"version", "from", "problem"}``."""
        return {"version": self.value, "from": self.source, "problem": self.problem}


def code_version(function: str, override: str | None = None, *,
                 running: bool = False) -> CodeVersion:
    """The code version of a job whose function is ``function`` (a dotted path):
    ``override`` (its ``code_version:``) when set, else the hash of the function's source.
    With ``running``, the version of the code this process runs: while the function
    object loaded here stays the same, the version read the first time it was asked for
    it (a long-lived process keeps running the code it imported, whatever the file says
    since; a build records that). Never raises."""
    if override is not None:
        return CodeVersion(override, "code_version")
    if running:
        return _pinned(function)
    cached = _VERSIONS.get(function)
    if cached is not None and all(_stat_key(path) == key for path, key in cached[0]):
        return cached[1]  # none of the files it was read from changed
    read: list[Path] = []
    try:
        source = _source(function, read)
    except SourceUnavailable as exc:
        return CodeVersion(None, "function", str(exc))
    found = CodeVersion(hashlib.sha256(source.encode("utf-8")).hexdigest(), "function")
    keys = [(path, _stat_key(path)) for path in read]
    if all(key is not None and _settled(key[1]) for _, key in keys):
        _VERSIONS[function] = (keys, found)
    return found


#: code versions by function path, with the (size, mtime_ns) of each file read for it:
#: a status of many jobs of one module hashes each function once (where a module lies is
#: looked up once per process, as the import system does)
_VERSIONS: dict[str, tuple[list[tuple[Path, tuple[int, int] | None]], CodeVersion]] = {}


def _settled(mtime_ns: int) -> bool:
    """Whether a file of this mtime can be known by its size and mtime: not written within
    :data:`RACY_SECONDS` of now (a second write in the same clock tick keeps both)."""
    return time.time_ns() - mtime_ns >= RACY_SECONDS * 1e9


def _stat_key(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


#: the code version of a loaded function, by function path: (the loaded object it was read
#: for, version); read again when that object is another (the module imported anew or
#: reloaded). The object is held, so its id is never another's.
_PINNED: dict[str, tuple[object, CodeVersion]] = {}


def _pinned(function: str) -> CodeVersion:
    try:
        module, names = parse_function_path(function)
    except ValueError:
        return code_version(function)
    loaded: object = sys.modules.get(module)
    if loaded is None:  # not imported here: the code a new process would run
        return code_version(function)
    try:
        for name in names:
            loaded = getattr(loaded, name)
    except Exception:  # a module __getattr__ may raise anything: the module stands for it
        loaded = sys.modules[module]
    pinned = _PINNED.get(function)
    if pinned is None or pinned[0] is not loaded:
        pinned = _PINNED[function] = (loaded, code_version(function))
    return pinned[1]


def function_source(function: str) -> str:
    """The source text of ``function`` (dedented), read from its module's file without
    importing it; :class:`SourceUnavailable` says why not."""
    return _source(function, [])


def _source(function: str, read: list[Path]) -> str:
    """:func:`function_source`, adding each file it reads to ``read``."""
    try:
        module, names = parse_function_path(function)
    except ValueError as exc:
        raise SourceUnavailable(str(exc)) from None
    for _ in range(_MAX_HOPS):
        path = _module_file(module)
        read.append(path)
        lines, index = _parsed(path)
        found = _find(index, names)
        if isinstance(found, ast.ImportFrom):  # re-exported: follow it to its module
            module = _imported_module(module, path, found)
            original = next(a.name for a in found.names if (a.asname or a.name) == names[0])
            names = (original, *names[1:])
            continue
        if found is None:
            raise SourceUnavailable(f"{'.'.join(names)!r} is not a def or class written in "
                                    f"{path.name} (bound by an assignment?)")
        first = min([found.lineno, *(d.lineno for d in found.decorator_list)])
        assert found.end_lineno is not None
        return textwrap.dedent("".join(lines[first - 1:found.end_lineno]))
    raise SourceUnavailable(f"more than {_MAX_HOPS} re-exports to follow")


Binding = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.ImportFrom


def _bindings(body: Sequence[ast.stmt]) -> dict[str, Binding]:
    """The names ``body`` binds by a def, a class or a ``from`` import, each to its last
    such statement (the binding Python keeps; an assignment such as ``f = retry(f)``
    wraps the def above it and does not hide it)."""
    index: dict[str, Binding] = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            index[node.name] = node
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                index[alias.asname or alias.name] = node
    return index


def _find(index: Mapping[str, Binding], names: Sequence[str]) -> Binding | None:
    """What ``names[0]`` is bound to, then ``names[1:]`` inside it (a class's methods)."""
    found = index.get(names[0])
    if found is None or len(names) == 1 or isinstance(found, ast.ImportFrom):
        return found
    if not isinstance(found, ast.ClassDef):
        return None
    inner = _find(_bindings(found.body), names[1:])
    return None if isinstance(inner, ast.ImportFrom) else inner


def _imported_module(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute name of the module ``node`` (in ``module``, file ``path``) imports from."""
    if not node.level:
        return node.module or ""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    parts = package.split(".") if package else []
    if node.level - 1 > len(parts):
        raise SourceUnavailable(f"a relative import in {path.name} leaves its package")
    base = parts[:len(parts) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _module_file(module: str) -> Path:
    """The source file of ``module``: the loaded module's, else the one the path finder
    finds on ``sys.path`` (no package is imported to look inside it)."""
    loaded = sys.modules.get(module)
    origin = getattr(loaded, "__file__", None) if loaded is not None else None
    if loaded is not None and origin is None:
        raise SourceUnavailable(f"module {module!r} has no Python source (built in)")
    if origin is None:
        search: list[str] | None = None
        spec = None
        parts = module.split(".")
        for index in range(len(parts)):
            name = ".".join(parts[:index + 1])
            spec = PathFinder.find_spec(name, search)
            if spec is None:
                raise SourceUnavailable(f"module {name!r} not found on sys.path")
            locations = spec.submodule_search_locations
            search = list(locations) if locations is not None else None
            if search is None and index < len(parts) - 1:
                raise SourceUnavailable(f"{name!r} is not a package")
        assert spec is not None
        origin = spec.origin
    if not origin or not str(origin).endswith(".py"):
        raise SourceUnavailable(f"module {module!r} has no Python source ({origin})")
    return Path(origin)


#: parsed modules by path: (size, mtime_ns, lines, top-level bindings), read again when
#: the file changes (a status of many jobs in one module parses it once)
_PARSED: dict[Path, tuple[int, int, list[str], dict[str, Binding]]] = {}


def _parsed(path: Path) -> tuple[list[str], dict[str, Binding]]:
    try:
        stat = path.stat()
        cached = _PARSED.get(path)
        if cached is not None and cached[:2] == (stat.st_size, stat.st_mtime_ns):
            return cached[2], cached[3]
        text = path.read_bytes().decode("utf-8")
        tree = ast.parse(text, str(path))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError) as exc:
        raise SourceUnavailable(f"cannot read {path.name}: {exc}") from None
    lines = text.splitlines(keepends=True)
    index = _bindings(tree.body)
    if _settled(stat.st_mtime_ns):
        _PARSED[path] = (stat.st_size, stat.st_mtime_ns, lines, index)
    return lines, index


# --------------------------------------------------------------------------- input files


@dataclass(frozen=True)
class InputFile:
    """One input file's fingerprint: its content's sha256 and the size and mtime it had
    (``mtime_ns`` None: too recent to trust, see :data:`RACY_SECONDS`)."""

    sha256: str
    size: int
    mtime_ns: int | None

    def as_json(self) -> list[object]:
        """``[sha256, size, mtime_ns]``: how a build records it."""
        return [self.sha256, self.size, self.mtime_ns]

    @classmethod
    def from_json(cls, value: object) -> InputFile | None:
        """The recorded form read back (None if it is not one)."""
        if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
            size, mtime = value[1], value[2]
            if isinstance(size, int) and (mtime is None or isinstance(mtime, int)):
                return cls(value[0], size, mtime)
        return None


def input_paths(patterns: Iterable[str], base: Path,
                unmatched: list[str] | None = None) -> dict[str, Path]:
    """The files the glob ``patterns`` match (relative ones to ``base``; ``**`` spans
    folders), by the name a build records: relative to ``base`` where they lie under it,
    in ``/`` form. Folders are not inputs: their files are (``data/**/*``). Each pattern
    that matches no file is added to ``unmatched``."""
    found: dict[str, Path] = {}
    for pattern in patterns:
        matched = False
        for match in glob.glob(pattern, root_dir=base, recursive=True):
            path = base / match
            if not path.is_file():
                continue
            try:
                name = path.resolve().relative_to(base.resolve()).as_posix()
            except ValueError:
                name = path.resolve().as_posix()
            found.setdefault(name, path)
            matched = True
        if unmatched is not None and not matched:
            unmatched.append(pattern)
    return dict(sorted(found.items()))


def fingerprint_inputs(patterns: Iterable[str], base: Path,
                       known: Mapping[str, InputFile] | None = None,
                       unmatched: list[str] | None = None) -> dict[str, InputFile]:
    """Each file the ``patterns`` match, fingerprinted. A file whose size and mtime are
    those in ``known`` (a build's record) keeps that fingerprint without being read.
    Each pattern that matches no file is added to ``unmatched``."""
    known = known or {}
    result: dict[str, InputFile] = {}
    for name, path in input_paths(patterns, base, unmatched).items():
        result[name] = _fingerprint(path, known.get(name))
    return result


def _fingerprint(path: Path, known: InputFile | None) -> InputFile:
    try:
        stat = path.stat()
    except OSError as exc:
        return InputFile(f"unreadable: {exc.strerror}", -1, None)
    if known is not None and known.mtime_ns is not None \
            and (known.size, known.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
        return known
    digest = hashlib.sha256()
    try:
        with path.open("rb") as file:
            for chunk in iter(lambda: file.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        return InputFile(f"unreadable: {exc.strerror}", stat.st_size, None)
    settled = _settled(stat.st_mtime_ns)
    return InputFile(digest.hexdigest(), stat.st_size, stat.st_mtime_ns if settled else None)
