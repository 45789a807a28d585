"""A job's ``params:``: typed parameters with defaults, given to a build with
``build JOB --param name=value`` and passed to its function as keyword arguments.

``params: {day: {type: date, default: 2026-12-01}, limit: {type: int, default: 100}}``.
Each parameter has a type (``string``, ``int``, ``float``, ``bool`` or ``date``; ``string``
when left out) and a default, so a build nobody gave parameters to (a scheduled one, a
dependency built by ``--deps``) has every value it needs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jobcontrol.config.param_types import PARAM_TYPES, ParamSpec, from_text
from jobcontrol.config.values import Field, type_name
from jobcontrol.config.yaml_loader import MarkedDict


def params(value: Any, at: Field) -> tuple[ParamSpec, ...]:
    """The ``params:`` mapping: ``name: {type: T, default: V}``."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise at.wrong_type(value, "a mapping of parameter names to {type, default}")
    found = []
    for name, spec in value.items():
        inner = at.inner(value, name) if isinstance(name, str) else at
        if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
            raise inner.error(f"params: {name!r} is not a parameter name (a Python "
                              f"identifier, not starting with '_')")
        if not isinstance(spec, dict):
            raise inner.error(f"params: {name} must be a mapping with 'default' (and "
                              f"'type': one of {', '.join(PARAM_TYPES)}), got "
                              f"{type_name(spec)}")
        unknown = [key for key in spec if key not in ("type", "default")]
        if unknown:
            raise inner.error(f"params: {name}: unknown key {unknown[0]!r} (use 'type' "
                              f"and 'default')")
        kind = spec.get("type", "string")
        if kind not in PARAM_TYPES:
            raise inner.error(f"params: {name}: type must be one of "
                              f"{', '.join(PARAM_TYPES)}, got {kind!r}")
        if "default" not in spec:
            raise inner.error(f"params: {name}: missing 'default' (a build given no "
                              f"parameters must have every value)")
        marks = spec.value_marks if isinstance(spec, MarkedDict) else {}
        try:
            default = from_text(kind, spec["default"])
        except ValueError as exc:
            raise at.error(f"params: {name}: default: {exc}",
                           marks.get("default")) from None
        found.append(ParamSpec(name, kind, default))
    return tuple(found)


#: the parser as :data:`~jobcontrol.config.validation.PARSERS` holds it
PARSER: Callable[[Any, Field], tuple[ParamSpec, ...]] = params
