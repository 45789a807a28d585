"""Return values to their stored form and back.

Values are stored as JSON, with the common non-JSON types tagged so they round-trip
(``{"__jc__": "datetime", "v": "2026-01-01T00:00:00+00:00"}``). A value that cannot be
stored as JSON is kept as its ``repr``, marked so. A job that opts in with ``result: pickle``
stores a pickle, which is loaded only to hand the value to a dependent build (``!retval``),
never to display it.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jobcontrol.errors import RetvalError
from jobcontrol.secrets import is_secret_key

if TYPE_CHECKING:
    from jobcontrol.secrets import Masker


@dataclass(frozen=True)
class StoredValue:
    """A return value in its stored form.

    ``kind`` is ``"json"`` (tagged JSON text, see :mod:`jobcontrol.serialize`), ``"repr"`` (the
    value could not be stored as JSON; ``data`` is its ``repr``) or ``"pickle"`` (base64 of a
    pickle, for jobs that opted in with ``result: pickle``).
    """

    kind: str
    data: str


TAG = "__jc__"
#: encodes return values (made once: ``json.dumps`` with options makes one each call);
#: ensure_ascii keeps lone surrogates and other odd text storable as escapes
_RESULT_ENCODER = json.JSONEncoder(ensure_ascii=True, allow_nan=False)
#: a repr longer than this is cut: a return value is a summary, not a payload
MAX_REPR = 100_000
#: a stored return value larger than this (characters of JSON or base64) is kept as a
#: truncated repr instead, with a note: the build's record stays small
MAX_RESULT = 1_000_000
#: limits for text a build produces: one log message, an exception message, a traceback
MAX_MESSAGE = 65_536
MAX_TRACEBACK = 262_144


def clean_text(text: object, limit: int | None = None,
               mask: Callable[[str], str] | None = None) -> str:
    """Text fit to store: always valid UTF-8 (lone surrogates and undecodable bytes become
    escapes), masked by ``mask`` (before any cut: a secret across it is masked whole), and
    cut in the middle with a note when longer than ``limit``."""
    if not isinstance(text, str):
        text = safe_repr(text, limit or MAX_REPR)
    if not text.isascii():  # ASCII is UTF-8 already: no copy to find out
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if "\x00" in text:  # PostgreSQL text cannot hold NUL
        text = text.replace("\x00", "\\x00")
    if mask is not None:
        text = mask(text)
    if limit is not None and len(text) > limit:
        half = limit // 2
        cut = len(text) - 2 * half
        text = f"{text[:half]}\n... [{cut} characters cut] ...\n{text[-half:]}"
    return text


class Opaque:
    """A stored value shown as text only: a ``repr`` of a non-JSON value, or a pickle."""

    def __init__(self, kind: str, text: str) -> None:
        self.kind = kind
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def __json__(self) -> str:
        """Its text (see :func:`to_jsonable`)."""
        return self.text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Opaque) and (self.kind, self.text) == (other.kind, other.text)

    def __hash__(self) -> int:
        return hash((self.kind, self.text))


class _NotJSON(Exception):
    pass


def _tag(value: Any) -> Any:
    """A JSON-ready structure for ``value``; raises _NotJSON for anything unknown."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return float(value)
        return {TAG: "float", "v": repr(value)}
    if isinstance(value, list):
        return [_tag(item) for item in value]
    if isinstance(value, tuple):
        return {TAG: "tuple", "v": [_tag(item) for item in value]}
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value) and TAG not in value:
            return {key: _tag(item) for key, item in value.items()}
        return {TAG: "dict", "v": [[_tag(k), _tag(v)] for k, v in value.items()]}
    if isinstance(value, (set, frozenset)):
        items = [_tag(item) for item in value]
        try:
            items.sort(key=lambda item: json.dumps(item, sort_keys=True))
        except TypeError:  # pragma: no cover - _tag output is always JSON
            pass
        return {TAG: "set" if isinstance(value, set) else "frozenset", "v": items}
    if isinstance(value, (bytes, bytearray)):
        return {TAG: "bytes", "v": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, dt.datetime):
        return {TAG: "datetime", "v": value.isoformat()}
    if isinstance(value, dt.date):
        return {TAG: "date", "v": value.isoformat()}
    if isinstance(value, dt.time):
        return {TAG: "time", "v": value.isoformat()}
    if isinstance(value, dt.timedelta):
        return {TAG: "timedelta", "v": value.total_seconds()}
    # decimal and uuid are not imported here (a build run would pay for them): a value of
    # their types can only exist once its module is imported by whoever made it
    decimal = sys.modules.get("decimal")
    if decimal is not None and isinstance(value, decimal.Decimal):
        return {TAG: "decimal", "v": str(value)}
    uuid = sys.modules.get("uuid")
    if uuid is not None and isinstance(value, uuid.UUID):
        return {TAG: "uuid", "v": str(value)}
    raise _NotJSON(type(value).__name__)


def _decimal(text: str) -> Any:
    from decimal import Decimal

    return Decimal(text)


def _uuid(text: str) -> Any:
    from uuid import UUID

    return UUID(text)


_UNTAG: dict[str, Callable[[Any], Any]] = {
    "float": float,
    "tuple": lambda v: tuple(_untag(item) for item in v),
    "dict": lambda v: {_untag(k): _untag(item) for k, item in v},
    "set": lambda v: {_untag(item) for item in v},
    "frozenset": lambda v: frozenset(_untag(item) for item in v),
    "bytes": base64.b64decode,
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "timedelta": lambda v: dt.timedelta(seconds=v),
    "decimal": _decimal,
    "uuid": _uuid,
}


def _untag(value: Any) -> Any:
    if isinstance(value, list):
        return [_untag(item) for item in value]
    if isinstance(value, dict):
        tag = value.get(TAG)
        if tag is not None and set(value) == {TAG, "v"} and tag in _UNTAG:
            return _UNTAG[tag](value["v"])
        return {key: _untag(item) for key, item in value.items()}
    return value


def safe_repr(value: Any, limit: int = MAX_REPR) -> str:
    """``repr(value)``, cut to ``limit`` characters; never raises."""
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not fail the build
        text = f"<unrepresentable {type(value).__name__}: {type(exc).__name__}>"
    if len(text) > limit:
        text = text[:limit] + f"... [{len(text) - limit} more characters]"
    return text


def encode_result(value: Any, mode: str = "json") -> StoredValue:
    """The stored form of a job's return value (``mode`` is the job's ``result`` option).

    Never raises: what cannot be stored as asked is kept as a (cut) repr, marked so.
    """
    if mode == "pickle":
        import pickle

        try:
            data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:
            return _as_repr(value)
        encoded = base64.b64encode(data).decode("ascii")
        if len(encoded) > MAX_RESULT:
            return _as_repr(value, f"[pickle of {len(data)} bytes, too large to store]")
        return StoredValue("pickle", encoded)
    try:
        # ensure_ascii keeps lone surrogates and other odd text storable as escapes
        text = _RESULT_ENCODER.encode(_tag(value))
    except (_NotJSON, ValueError, RecursionError, TypeError):
        return _as_repr(value)
    if len(text) > MAX_RESULT:
        return _as_repr(value, f"[{len(text)} characters of JSON, too large to store]")
    return StoredValue("json", text)


def _as_repr(value: Any, note: str | None = None) -> StoredValue:
    limit = MAX_REPR
    text = safe_repr(value, limit)
    if note:
        text = f"{note} {text}"
    return StoredValue("repr", clean_text(text))


def decode_for_display(stored: StoredValue | None) -> Any:
    """The value to show: decoded JSON, else an :class:`Opaque` (a pickle is never loaded)."""
    if stored is None:
        return None
    if stored.kind == "json":
        return _untag(json.loads(stored.data))
    if stored.kind == "pickle":
        return Opaque("pickle", "<pickled value; not loaded for display>")
    return Opaque(stored.kind, stored.data)


def load_for_dependency(stored: StoredValue | None, job_id: str, build_id: int) -> Any:
    """The value a dependent build receives through ``!retval``.

    The only place a pickle is ever loaded: it was written by the job's own build.
    """
    if stored is None:
        return None
    if stored.kind == "json":
        return _untag(json.loads(stored.data))
    if stored.kind == "pickle":
        import pickle

        return pickle.loads(base64.b64decode(stored.data))
    raise RetvalError(
        f"!retval {job_id}: build {build_id} returned a value that could not be stored as "
        f"JSON ({stored.data[:80]}); return JSON-friendly data or set `result: pickle` on {job_id}"
    )


#: exact types :func:`to_jsonable` returns as they are (and floats, but for a non-finite one
#: in output), without a walk or an ABC check: most values
_PLAIN = frozenset({str, int, bool, type(None)})


def to_jsonable(value: Any, masker: Masker | None = None, *, definition: bool = False,
                _secret: bool = False) -> Any:
    """A plain JSON structure of ``value``: mappings as dicts with string keys, sequences and
    sets as lists, a value with a ``__json__()`` method as what that returns (an
    :class:`Opaque` its text), any other value as a JSON scalar.

    For output (CLI ``--format json``, the web API), the default: datetimes ISO 8601, bytes
    base64, timedeltas seconds, a float that is not finite its repr, decimals and UUIDs
    their text. ``definition=True`` gives the form job definitions are hashed and stored in,
    which never changes (a change would make every job outdated): floats as they are, any
    other scalar ``str(value)``, a set's items sorted (its hash is the same in every run).

    With a ``masker``, values under secret-looking keys become ``***`` and the masker's
    secrets inside strings are masked.
    """
    kind = type(value)
    if kind in _PLAIN or (kind is float and (definition or math.isfinite(value))):
        return value if masker is None else masker.value(value, _secret)
    if isinstance(value, Mapping):
        result = {}
        for key, item in value.items():
            text = key if isinstance(key, str) else str(key)
            secret = _secret or (masker is not None and is_secret_key(key))
            result[masker.text(text) if masker else text] = to_jsonable(
                item, masker, definition=definition, _secret=secret)
        return result
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [to_jsonable(item, masker, definition=definition, _secret=_secret)
                 for item in value]
        if definition and isinstance(value, (set, frozenset)):  # a set has no order
            items.sort(key=lambda item: json.dumps(item, sort_keys=True))
        return items
    as_json = getattr(value, "__json__", None)
    if as_json is not None:
        return as_json()
    value = _json_scalar(value, definition)
    return value if masker is None else masker.value(value, _secret)


def _json_scalar(value: Any, definition: bool) -> Any:
    """A value that holds no others, as a JSON scalar (see :func:`to_jsonable`)."""
    if isinstance(value, float):
        return value if definition or math.isfinite(value) else repr(value)
    if isinstance(value, (bool, int, str)):
        return value
    if definition:
        return str(value)  # dates and timestamps from YAML, bytes from !!binary
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return str(value)
