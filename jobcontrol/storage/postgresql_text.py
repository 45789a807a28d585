"""PostgreSQL's text, for :mod:`jobcontrol.storage.postgresql`: its URLs, what its text
cannot hold (NUL), the input ``COPY`` reads, NOTIFY channels, libpq's messages on one line.
Plain functions, with no driver."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from jobcontrol.errors import StorageError
from jobcontrol.models import LogRecord
from jobcontrol.timeutil import as_utc

#: a schema name jobcontrol accepts (it is also quoted wherever it is used)
SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

def parse_url(url: str) -> tuple[str, str | None]:
    """Split a ``postgresql://`` URL into the libpq URL to connect with and the schema.

    Raises :class:`StorageError` for a schema name that is not a plain identifier.
    """
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for key, value in query if key == "schema"]
    schema = schemas[-1] if schemas else None
    if schema is not None and (not SCHEMA_NAME.match(schema) or schema.lower().startswith("pg_")):
        raise StorageError(
            f"bad schema {schema!r} in the storage URL: use letters, digits and _ "
            f"(not starting with a digit or pg_), at most 63 characters"
        )
    rest = urlencode([(key, value) for key, value in query if key != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


#: the values ``?prepare=`` takes, and what each means
PREPARE_VALUES = {"on": True, "true": True, "1": True, "off": False, "false": False, "0": False}


def take_prepare(dsn: str) -> tuple[str, bool]:
    """Take jobcontrol's ``?prepare=on|off`` out of a libpq URL: whether its connections
    prepare a build's statements (off behind a pool that hands each transaction another
    server connection, as PgBouncer's transaction mode does). Default on."""
    parts = urlsplit(dsn)
    query = parse_qsl(parts.query, keep_blank_values=True)
    given = [value for key, value in query if key == "prepare"]
    if not given:
        return dsn, True
    if given[-1].lower() not in PREPARE_VALUES:
        raise StorageError(f"bad prepare={given[-1]!r} in the storage URL: use on or off")
    rest = urlencode([(key, value) for key, value in query if key != "prepare"])
    return urlunsplit(parts._replace(query=rest)), PREPARE_VALUES[given[-1].lower()]


#: the JSON escape of NUL (not an escaped backslash before "u0000"), which jsonb refuses
NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")
#: parameter types that hold no text
_PLAIN = frozenset({int, float, bool, type(None), datetime})


def no_nul(value: Any) -> Any:
    """``value`` with NUL characters in its strings replaced: PostgreSQL text cannot hold
    them (the replacement character is what undecodable output becomes too)."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    items = value if type(value) is tuple else value.values() if type(value) is dict else ()
    if items and not any(  # the common case, parameters of plain values: as they are
            type(item) is not str or "\x00" in item for item in items
            if type(item) not in _PLAIN):
        return value
    if isinstance(value, (tuple, list)):
        return type(value)(no_nul(item) for item in value)
    if isinstance(value, dict):
        return {key: no_nul(item) for key, item in value.items()}
    return value


#: text fields in COPY's text format: backslash escapes for its separators; NUL replaced
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r",
                               "\x00": "\ufffd"})


#: any character :data:`_COPY_ESCAPES` changes (few lines have one: translate() is 5x slower
#: than looking)
_COPY_SPECIAL = re.compile(r"[\\\t\n\r\x00]")


def _copy_text(value: str | None) -> str:
    if value is None:
        return "\\N"
    return value.translate(_COPY_ESCAPES) if _COPY_SPECIAL.search(value) else value


def copy_rows(build_id: int, first_seq: int, records: Sequence[LogRecord]) -> io.StringIO:
    """Log records as the input of ``COPY logs FROM STDIN``, numbered from ``first_seq``."""
    lines = [
        f"{build_id}\t{first_seq + n}\t{as_utc(r.time).isoformat()}\t{int(r.level)}\t"
        f"{_copy_text(r.logger)}\t{_copy_text(r.message)}\t{_copy_text(r.exception)}\n"
        for n, r in enumerate(records)
    ]
    return io.StringIO("".join(lines))


def one_line(error: BaseException) -> str:
    """An error's message on one line (libpq's span several)."""
    return " ".join(str(error).split())


def channel_of(build_id: int) -> str:
    """The NOTIFY channel of one build's news (an identifier: digits and letters only)."""
    return f"jobcontrol_build_{int(build_id)}"
