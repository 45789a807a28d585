"""The cursor of :mod:`jobcontrol.storage.postgresql`'s connections (psycopg2's, when the
extra is installed)."""

from __future__ import annotations

from typing import Any

from jobcontrol.storage.postgresql_text import no_nul

try:
    import psycopg2.extensions
except ImportError:  # the extra is not installed: PostgreSQLStorage says which to install
    psycopg2 = None

_CursorBase: Any = psycopg2.extensions.cursor if psycopg2 is not None else object


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
