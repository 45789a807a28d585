"""The cursor of :mod:`jobcontrol.storage.postgresql`'s connections (psycopg2's, when the
extra is installed)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from jobcontrol.storage.postgresql_text import no_nul

try:
    import psycopg2.extensions
except ImportError:  # the extra is not installed: PostgreSQLStorage says which to install
    psycopg2 = None

_CursorBase: Any = psycopg2.extensions.cursor if psycopg2 is not None else object
_ConnectionBase: Any = psycopg2.extensions.connection if psycopg2 is not None else object

#: a placeholder of the driver's paramstyle, or an escaped ``%``
_PLACEHOLDER = re.compile(rb"%s|%%")


class PreparedStatement:
    """A statement the server plans once a connection (``PREPARE``), then runs by name
    (``EXECUTE``): the busy statements of a build, whose planning cost as much as a round
    trip (the queued build's: 524 µs as text, 404 µs prepared)."""

    def __init__(self, name: str, query: str) -> None:
        self.name = name
        self.query = query
        count = 0

        def numbered(match: re.Match[bytes]) -> bytes:
            nonlocal count
            if match.group() == b"%%":
                return b"%"
            count += 1
            return b"$%d" % count

        self.prepare = f"PREPARE {name} AS ".encode() + _PLACEHOLDER.sub(numbered,
                                                                          query.encode())
        self.call = f"EXECUTE {name}" + (f"({', '.join(['%s'] * count)})" if count else "")


class Statements(dict[str, PreparedStatement]):
    """The statements a storage runs by name, by text: shared by its connections, so one
    added later (a shape of a query made in Python) is run by name on each of them."""

    def __init__(self, statements: Iterable[PreparedStatement] = ()) -> None:
        super().__init__((statement.query, statement) for statement in statements)

    def add(self, name: str, query: str) -> None:
        """Run ``query`` by name from now on (``name``: one of its own)."""
        if query not in self:
            self[query] = PreparedStatement(name, query)


class Connection(_ConnectionBase):
    """A connection that knows which :class:`PreparedStatement` it has prepared."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prepared: set[str] = set()
        #: the statements run by name on this connection, by text (empty: none)
        self.statements: Statements = Statements()

    def prepare(self, statements: Statements) -> None:
        """Run these statements by name from now on (each prepared on first use), and
        those added to them later."""
        self.statements = statements


class Cursor(_CursorBase):
    """A cursor that stores a string with NUL characters rather than fail on it, and sends
    the statements whose result nobody reads (``BEGIN``, a lock, a ``NOTIFY``, a few log
    rows: :meth:`defer`) with the next one, in its round trip: the one seam that keeps a
    build at 4 round trips rather than 7 (1.33x slower on workload 1 without it)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deferred: list[bytes] = []

    def defer(self, query: str | bytes, vars: Any = None) -> None:
        """Run ``query`` (with ``vars``, or composed already: bytes) just before the next
        statement, in the same round trip."""
        self.deferred.append(query if isinstance(query, bytes) else self.mogrify(query, vars))

    def discard_deferred(self) -> None:
        """Forget the deferred statements (the transaction is being rolled back)."""
        self.deferred = []

    def execute(self, query: Any, vars: Any = None) -> Any:
        statement = self.connection.statements.get(query) if isinstance(query, str) else None
        if statement is not None:
            if statement.name not in self.connection.prepared:
                # on its own, so it is known to have run: a prepared name outlives any
                # transaction, and preparing it twice is an error
                super().execute(statement.prepare)
                self.connection.prepared.add(statement.name)
            query = statement.call
        if self.deferred:
            if isinstance(query, (str, bytes)):  # one query string: its result is the last
                text = query if vars is None and isinstance(query, bytes) else self.mogrify(
                    query, vars)
                query, vars = b"; ".join([*self.deferred, text]), None
                self.deferred = []
            else:  # a composed query (SET search_path, CREATE SCHEMA): on its own
                self.send_deferred()
        return super().execute(query, no_nul(vars))

    def send_deferred(self) -> None:
        if self.deferred:
            queued, self.deferred = self.deferred, []
            super().execute(b"; ".join(queued))

    def copy_expert(self, sql: Any, file: Any, size: int = 8192) -> Any:
        self.send_deferred()
        return super().copy_expert(sql, file, size)

    def close(self) -> None:
        if self.deferred and not self.connection.closed:  # nothing came after them
            self.send_deferred()
        super().close()

    def mogrify(self, query: Any, vars: Any = None) -> Any:  # what execute_values uses
        return super().mogrify(query, no_nul(vars))
