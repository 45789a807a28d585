"""Import a job's callable from its dotted path, with one clear line when that fails.

Paths: ``"pkg.mod.func"`` (the last dot splits module and attribute), ``"pkg.mod:func"`` and
``"pkg.mod:Class.method"``. ``sys.path`` is left alone: the caller puts the config's folder
on it before importing.
"""

from __future__ import annotations

import importlib
import inspect
import keyword
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from jobcontrol.errors import JobImportError
from jobcontrol.text import one_line

__all__ = ["bind_problem", "describe_callable", "import_callable", "parse_function_path"]

FUNCTION_SYNTAX = "'package.module.function' or 'package.module:function'"


@lru_cache(maxsize=4096)  # jobs of one config often share their function (an error is not kept)
def parse_function_path(dotted: str) -> tuple[str, tuple[str, ...]]:
    """``(module, attribute path)`` of a function path; :class:`ValueError` if malformed."""
    if ":" in dotted:
        module, _, attribute = dotted.partition(":")
    else:
        module, _, attribute = dotted.rpartition(".")
    names = attribute.split(".")
    if not (module and attribute and _dotted_ok(module) and all(map(_name_ok, names))):
        raise ValueError(f"expected {FUNCTION_SYNTAX}, got {dotted!r}")
    return module, tuple(names)


def _name_ok(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name)


def _dotted_ok(dotted: str) -> bool:
    return all(map(_name_ok, dotted.split(".")))


def import_callable(
    dotted: str,
    *,
    job_id: str | None = None,
    key: str = "function",
    location: object | None = None,  # where the config names it (a config ``Location``)
) -> Callable[..., Any]:
    """The callable ``dotted`` names, imported now.

    Raises :class:`JobImportError` with one line such as
    ``jobs.yaml:4:15: job 'x': cannot import function 'pipeline.nope': No module named
    'pipeline'``; ``key`` says which key named it (``function`` or ``cleanup_function``).
    """

    def fail(reason: str) -> JobImportError:
        where = f"{location}: " if location is not None else ""
        who = f"job {job_id!r}: " if job_id is not None else ""
        return JobImportError(f"{where}{who}cannot import {key} {dotted!r}: {reason}")

    try:
        module_name, names = parse_function_path(dotted)
    except ValueError:
        raise fail(f"expected {FUNCTION_SYNTAX}") from None

    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and _is_prefix(exc.name, module_name):
            raise fail(str(exc) + _class_hint(dotted, module_name, names)) from None
        # the module exists but itself imports something missing
        raise fail(f"importing {module_name!r} raised {_describe(exc)}") from None
    except (Exception, SystemExit) as exc:  # SystemExit: a module calling sys.exit() on import
        raise fail(f"importing {module_name!r} raised {_describe(exc)}") from None

    owner = f"module {module_name!r}"
    for index, name in enumerate(names):
        try:
            target = getattr(target, name)
        except AttributeError:
            raise fail(f"{owner} has no attribute {name!r}") from None
        except Exception as exc:  # a module __getattr__ or a descriptor that raises
            raise fail(f"getting {name!r} from {owner} raised {_describe(exc)}") from None
        owner = repr(f"{module_name}:{'.'.join(names[: index + 1])}")
    if not callable(target):
        raise fail(f"not a callable (type {type(target).__name__})")
    return target


def _is_prefix(missing: str, module_name: str) -> bool:
    """True when ``missing`` is ``module_name`` or one of its parent packages."""
    return module_name == missing or module_name.startswith(missing + ".")


def _class_hint(dotted: str, module_name: str, names: tuple[str, ...]) -> str:
    """A hint for ``pkg.mod.Class.method`` (which means a module ``pkg.mod.Class``)."""
    if ":" in dotted or "." not in module_name:
        return ""
    parent, _, last = module_name.rpartition(".")
    try:
        found = hasattr(importlib.import_module(parent), last)
    except (Exception, SystemExit):
        return ""
    if not found:
        return ""
    return f" (for an attribute of {last!r}, write '{parent}:{last}.{'.'.join(names)}')"


def _describe(exc: BaseException) -> str:
    text = one_line(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def describe_callable(func: Callable[..., Any]) -> tuple[str, str]:
    """``(signature, docstring)`` of ``func`` for ``jobcontrol job``: the signature as
    ``"(a, b=1)"`` or ``"(...)"`` when Python cannot tell it, the docstring or ``""``.
    """
    try:
        signature = str(inspect.signature(func))
    except (TypeError, ValueError):
        signature = "(...)"
    return signature, inspect.getdoc(func) or ""


def bind_problem(func: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]
                 ) -> str | None:
    """Why ``func(*args, **kwargs)`` would fail before it runs (its signature refuses
    them), or None: they fit, or Python cannot tell the signature."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return None
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        return f"{exc} (the signature is {signature})"
    return None
