"""The types of a job's parameters (``params:``, see :mod:`jobcontrol.config.params`) and
their values: from a command line's text, a form's or a YAML/JSON value."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PARAM_TYPES = ("string", "int", "float", "bool", "date")
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def from_text(kind: str, value: Any) -> Any:
    """``value`` (text from a command line or a form, or a YAML/JSON value) as ``kind``;
    ValueError saying what was expected."""
    if kind == "string":
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    elif kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
    elif kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
    elif kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
    elif kind == "date":
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value.strip())
            except ValueError:
                pass
    expected = {"string": "a string", "int": "a whole number", "float": "a number",
                "bool": "true or false", "date": "a date (YYYY-MM-DD)"}[kind]
    raise ValueError(f"expected {expected}, got {value!r}")


@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter of a job."""

    name: str
    #: one of :data:`PARAM_TYPES`
    type: str
    #: the value a build gets when none is given (of ``type``)
    default: Any

    def convert(self, value: Any) -> Any:
        """``value`` as this parameter's type; ValueError saying what was expected."""
        return from_text(self.type, value)

    def as_json(self) -> dict[str, Any]:
        return {"type": self.type, "default": json_value(self.default)}


def json_value(value: Any) -> Any:
    """A parameter's value as stored and shown: a date as ``YYYY-MM-DD``."""
    return value.isoformat() if isinstance(value, dt.date) else value



def defaults(specs: tuple[ParamSpec, ...]) -> Mapping[str, Any]:
    """Each parameter's default, by name."""
    return {spec.name: spec.default for spec in specs}
