"""``postgresql://user:password@host:5432/db``: the production store, shared by many machines.

Needs psycopg2 (``pip install 'jobcontrol[postgresql]'``), imported only when such a URL is
opened. The URL is libpq's, so its query options (``sslmode``, ``connect_timeout``, ...) work
as they do in ``psql``; jobcontrol adds ``?schema=NAME`` to keep its tables in that schema.

- Reads run in autocommit; writes are explicit ``BEGIN ... COMMIT`` that always end, so no
  connection is left ``idle in transaction``, but for the moment between a build's outcome
  and the run's next claim (``finish_build_with_logs(commit_later=True)``): the claim
  continues that transaction and commits both, and a run commits before it waits.
- A claim serialises on ``pg_advisory_xact_lock`` of its job, a migration on one of its
  schema: correct across processes and hosts, released when the transaction ends.
- Logs go in with ``COPY``, one transaction a batch (3x faster than ``execute_values``,
  which upserts progress); a small batch as an ``INSERT`` sent along with the next
  statement. Statements whose result nobody reads (``BEGIN``, the claim's lock, NOTIFY) ride
  along with the next one (:meth:`_Cursor.defer`), and each write is one round trip. A
  claim is the lock and one conditional ``INSERT ... RETURNING`` sent as one query outside
  ``BEGIN ... COMMIT``, which the server runs as one implicit transaction; a finish with
  its last few records is their ``INSERT``, the NOTIFY and the ``UPDATE``, sent likewise:
  a build is 2 round trips and 2 commits. The last records of a build this object claimed
  are numbered here (only its runner writes a running build's log); other batches are
  numbered by the server, under the build row's lock, and say where the log ends. In a
  run of builds a finish instead leaves its transaction open, and the next claim sends
  its lock and ``INSERT`` with ``COMMIT`` and ``lastval()``: 2 round trips and one COMMIT
  (one WAL flush) a build. Should that transaction fail, the outcome
  is written again on its own. A remote build's writes are one round trip each too: its
  INSERT when queued, then on the worker the job's lock and one conditional ``UPDATE``,
  then the finish. Where the connection breaks during such a query, the retry reads the
  rows to find out whether it committed (a claim looks for the token all its attempts write,
  which a unique index lets into one row only).
  Every batch and every outcome NOTIFYs ``jobcontrol_build_<id>``, once a transaction;
  :meth:`wait_for_logs` LISTENs on a second connection, so ``logs --follow`` wakes when a
  line is committed instead of polling.
- A lost connection (server restart, failover, a killed backend) is reopened and the
  operation tried again for up to :data:`RECONNECT_WINDOW` seconds. A write whose ``COMMIT``
  was cut off may or may not have happened: it is retried only where doing it twice is
  harmless (logs check whether their batch is already there); otherwise a StorageError says so.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import re
import select
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from jobcontrol.errors import BuildNotFoundError, JobAlreadyRunningError, StorageError
from jobcontrol.models import (
    Build,
    BuildState,
    ExceptionInfo,
    LogRecord,
    StoredValue,
)
from jobcontrol.storage.base import as_utc, check_concurrency
from jobcontrol.storage.queries import BUILD_COLUMNS, SELECT_BUILD
from jobcontrol.storage.sql import _UNFINISHED, SqlStorage, _Claim
from jobcontrol.timeutil import utcnow

try:
    import psycopg2
    import psycopg2.errorcodes
    import psycopg2.extensions
    import psycopg2.extras
    from psycopg2 import sql as pgsql
except ImportError:  # the extra is not installed: from_url says which one to install
    psycopg2 = None

log = logging.getLogger(__name__)
T = TypeVar("T")

#: seconds to wait for a server to answer a new connection (unless the URL says otherwise)
CONNECT_TIMEOUT = 10
#: seconds to keep reconnecting after a connection is lost, before giving up
RECONNECT_WINDOW = 30.0
#: libpq settings jobcontrol passes unless the URL sets them: a clear error, never a hang
CONNECT_DEFAULTS = {
    "connect_timeout": str(CONNECT_TIMEOUT),
    "application_name": "jobcontrol",
    # a server that vanishes without closing the socket is noticed within ~25 s
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
}
#: a schema name jobcontrol accepts (it is also quoted wherever it is used)
SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
#: first keys of jobcontrol's two-part advisory locks, apart from other applications' keys
LOCK_CLAIM = 0x6A630001
LOCK_MIGRATE = 0x6A630002
#: most log records a batch stores with an INSERT riding along with the next statement;
#: a larger batch is COPYed (faster per row, but a round trip of its own)
SMALL_BATCH = 20

BUILD_COLUMN_LIST = ", ".join(BUILD_COLUMNS)

_CursorBase: Any = psycopg2.extensions.cursor if psycopg2 is not None else object


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


#: the JSON escape of NUL (not an escaped backslash before "u0000"), which jsonb refuses
_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")
#: parameter types that hold no text
_PLAIN = frozenset({int, float, bool, type(None), datetime})


def _no_nul(value: Any) -> Any:
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
        return type(value)(_no_nul(item) for item in value)
    if isinstance(value, dict):
        return {key: _no_nul(item) for key, item in value.items()}
    return value


class _Cursor(_CursorBase):  # type: ignore[misc]
    """A cursor that stores a string with NUL characters rather than fail on it, and sends
    deferred statements (:meth:`defer`) along with the next one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deferred: list[bytes] = []
        #: the transaction was committed by a statement sent with its work (a claim's)
        self.committed = False

    def defer(self, query: str, vars: Any = None) -> None:
        """Run ``query`` just before the next statement, in the same round trip to the
        server (``BEGIN``, a lock, a NOTIFY: statements whose result nobody reads). A
        transaction costs a round trip a statement; most of a build's were these."""
        self._deferred.append(self.mogrify(query, vars))

    def drop_begin(self) -> bool:
        """Take back a deferred ``BEGIN`` (the next statement is then its own implicit
        transaction): whether there was one, else a transaction is open already."""
        if self._deferred[:1] == [b"BEGIN"]:
            del self._deferred[0]
            return True
        return False

    def discard_deferred(self) -> None:
        """Forget the deferred statements (the transaction is being rolled back)."""
        self._deferred.clear()

    def execute(self, query: Any, vars: Any = None) -> Any:
        if self._deferred:
            # one query string: the deferred statements, then this one (its result is the
            # one fetched); psycopg2 interpolates client-side, so this sends the same text
            text = self.mogrify(query, vars) if isinstance(query, str) else None
            if text is None:  # a composed query: send the deferred ones first
                self._send_deferred()
            else:
                query, vars = b"; ".join([*self._deferred, text]), None
                self._deferred.clear()
        return super().execute(query, _no_nul(vars))

    def _send_deferred(self) -> None:
        if self._deferred:
            queued, self._deferred = self._deferred, []
            super().execute(b"; ".join(queued))

    def copy_expert(self, sql: Any, file: Any, size: int = 8192) -> Any:
        self._send_deferred()
        return super().copy_expert(sql, file, size)

    def mogrify(self, query: Any, vars: Any = None) -> Any:  # what execute_values uses
        return super().mogrify(query, _no_nul(vars))


class _ConnectFailed(StorageError):
    """No connection could be made (server down, bad address, bad credentials)."""


class _CommitInDoubt(StorageError):
    """The connection broke during COMMIT: the transaction may or may not have happened."""


class _ClaimRefused(Exception):
    """A claim sent with the COMMIT of a transaction a finish left open was refused (the
    job runs ``concurrency`` builds already): the transaction was rolled back, and its
    outcome written again on its own; the claim is made again on its own."""


#: a claim that fails rather than insert nothing when refused: its state is NULL then,
#: which ``NOT NULL`` refuses. Named parameters: each value is quoted once
_CLAIM_OR_FAIL_SQL = (
    "INSERT INTO builds (job_id, state, definition, definition_hash, dependency_builds, "
    "created, started, heartbeat, host, pid, retry_of, claim_token) "
    "SELECT %(job)s, CASE WHEN (SELECT count(*) FROM builds WHERE job_id = %(job)s "
    "AND state = %(state)s) < %(concurrency)s THEN %(state)s END, %(definition)s, "
    "%(hash)s, %(deps)s, %(now)s, %(now)s, %(now)s, %(host)s, %(pid)s, %(retry_of)s, "
    "%(token)s"
)


class _ClaimInDoubt(StorageError):
    """The connection broke while a claim waited for its answer, or the claim's token is in
    a row already (an earlier attempt's, committed after its connection broke): the build
    may or may not have been claimed (the next attempt looks for it first)."""


class PostgreSQLStorage(SqlStorage):
    """Builds in a PostgreSQL database: one connection per object (plus one to LISTEN on,
    opened by the first :meth:`wait_for_logs`), shared by threads under a lock.

    Opening is cheap: the connection is made, and the schema migrated, on first use.
    """

    dialect = "postgresql"
    driver_errors = (psycopg2.Error,) if psycopg2 is not None else ()
    placeholder = "%s"
    id_list_sql = "string_agg(b.id::text, ',')"
    lock_rows_sql = " FOR UPDATE"
    schema_table_ddl = (
        "CREATE TABLE IF NOT EXISTS jobcontrol_schema ("
        "version integer PRIMARY KEY, name text NOT NULL, applied timestamptz NOT NULL)"
    )
    #: seconds to keep reconnecting after a lost connection (see :data:`RECONNECT_WINDOW`)
    reconnect_window: float = RECONNECT_WINDOW

    def __init__(self, url: str) -> None:
        if psycopg2 is None:
            raise StorageError(
                "PostgreSQL storage needs psycopg2, which is not installed: "
                "pip install 'jobcontrol[postgresql]'"
            )
        super().__init__(url)
        self.dsn, self.schema = parse_url(url)
        try:
            given = psycopg2.extensions.parse_dsn(self.dsn)
        except psycopg2.Error as exc:
            raise StorageError(f"bad PostgreSQL URL {self.label}: "
                               f"{_one_line(exc)}") from exc
        self._connect_options = {k: v for k, v in CONNECT_DEFAULTS.items() if k not in given}
        self._listen_lock = threading.Lock()
        self._listen_conn: Any = None
        self._listening: str | None = None
        #: ``active`` while this thread runs :meth:`_retry`
        self._retrying = threading.local()
        #: the server's clock minus this machine's, measured on each connect
        self._clock_offset = timedelta()
        #: statements of a transaction left open (see _hold_open), sent with its next one
        self._held_statements: list[bytes] = []

    @classmethod
    def from_url(cls, url: str, base_dir: str | os.PathLike[str] | None = None
                 ) -> PostgreSQLStorage:
        """Open ``postgresql://user:password@host:port/db[?schema=NAME&libpq options]``."""
        return cls(url)

    @property
    def label(self) -> str:
        return f"PostgreSQL database {super().label}"

    # -- connections -------------------------------------------------------------------------

    #: the last records of a build this object claimed are numbered here (only its runner
    #: writes a running build's log); other batches by the server, which then says where
    #: the log ends (COPY, an INSERT ... SELECT of the log's end, under the row's lock)
    numbers_logs_locally = True

    def _stored_as_given(self, reason: str | None, result: StoredValue | None,
                         exception: ExceptionInfo | None) -> bool:
        # text with NUL characters is stored with U+FFFD instead: such a finish reads its
        # row back
        texts = (reason, result.data if result else None, *(
            (exception.type, exception.message, exception.traceback) if exception else ()))
        return not any(isinstance(text, str) and "\x00" in text for text in texts)

    def _connect(self) -> Any:
        try:
            conn = psycopg2.connect(self.dsn, cursor_factory=_Cursor, **self._connect_options)
        except psycopg2.Error as exc:
            raise _ConnectFailed(
                f"cannot connect to {self.label}: {_one_line(exc)}"
            ) from exc
        try:
            conn.autocommit = True  # reads need no transaction; writes say BEGIN themselves
            with conn.cursor() as cur:
                if self.schema:
                    cur.execute(pgsql.SQL("SET search_path TO {}").format(
                        pgsql.Identifier(self.schema)))
                # heartbeats are judged by the server's clock, whichever host writes them;
                # measured once a connection, not asked on every write
                before = utcnow()
                cur.execute("SELECT clock_timestamp()")
                server = as_utc(cur.fetchone()[0])
                after = utcnow()
                self._clock_offset = server - (before + (after - before) / 2)
        except BaseException:
            conn.close()
            raise
        return conn

    def _broken_connection(self, error: StorageError) -> Any:
        """The connection whose loss ``error`` reports (closed by the server, a restart or
        the network), or None when the error is of another kind."""
        cursor = getattr(error.__cause__, "cursor", None)
        conn = cursor.connection if cursor is not None else self._conn
        return conn if conn is not None and conn.closed else None

    def _drop_connection(self, conn: Any) -> None:
        """Forget ``conn`` (unless another thread replaced it already) and close it."""
        with self._lock:
            if self._conn is conn:
                self._conn = None
        try:
            conn.close()
        except psycopg2.Error:
            pass

    def _operation(self, call: Callable[[], T], what: Callable[[], str],
                   in_doubt_ok: bool) -> T:
        # an operation run by another (a read inside a claim's retry, say) is retried by
        # that one: from the outermost only
        if getattr(self._retrying, "active", False):
            return call()
        return self._retry(call, what, in_doubt_ok=in_doubt_ok)

    def _retry(self, call: Callable[[], T], what: str | Callable[[], str], *,
               in_doubt_ok: bool = True) -> T:
        """``call()``, again after reopening a lost connection, for up to
        :attr:`reconnect_window` seconds: the one place lost connections are retried (the
        :func:`~jobcontrol.storage.sql.retried` operations, and the few whose retry first
        looks whether an attempt cut off did land). ``in_doubt_ok``: doing ``what`` twice
        is harmless."""
        outer = getattr(self._retrying, "active", False)
        self._retrying.active = True
        try:
            return self._retry_loop(call, what, in_doubt_ok)
        finally:
            self._retrying.active = outer

    def _retry_loop(self, call: Callable[[], T], what: str | Callable[[], str],
                    in_doubt_ok: bool) -> T:
        deadline: float | None = None
        delay = 0.05
        while True:
            try:
                result = call()
            except StorageError as exc:
                if isinstance(exc, _ConnectFailed):
                    if deadline is None:
                        raise  # down at first contact: say so at once
                else:
                    broken = self._broken_connection(exc)
                    # a COMMIT (or claim) in doubt lost its connection, even where it was
                    # replaced since (by a pending outcome written again)
                    if broken is None and not isinstance(exc, (_CommitInDoubt, _ClaimInDoubt)):
                        raise
                    if broken is not None:
                        self._drop_connection(broken)
                if not isinstance(what, str):
                    what = what()
                if isinstance(exc, _CommitInDoubt) and not in_doubt_ok:
                    raise StorageError(
                        f"{self.label}: the connection was lost while committing ({what}); "
                        f"it may or may not have been recorded"
                    ) from exc
                now = time.monotonic()
                reason = _one_line(exc.__cause__ or exc)
                if deadline is None:
                    deadline = now + self.reconnect_window
                    log.warning("%s: connection lost (%s); reconnecting", self.label, reason)
                if now >= deadline:
                    raise StorageError(
                        f"{self.label}: lost the connection and could not get it back "
                        f"within {self.reconnect_window:g}s ({what}): {reason}"
                    ) from exc
                time.sleep(min(delay, deadline - now))
                delay = min(delay * 2, 1.0)
            else:
                if deadline is not None:
                    log.warning("%s: reconnected", self.label)
                return result

    # -- dialect hooks -----------------------------------------------------------------------

    def _commit(self, conn: Any, cur: Any) -> None:
        # not conn.commit(): psycopg2 ignores it in autocommit mode, even after our BEGIN
        if cur.committed:  # by the claim sent with it
            return
        try:
            cur.execute("COMMIT")
        except psycopg2.Error as exc:
            if conn.closed:
                raise _CommitInDoubt(f"{self.label}: connection lost during COMMIT: "
                                     f"{_one_line(exc)}") from exc
            raise

    def _rollback(self, conn: Any, cur: Any) -> None:
        cur.discard_deferred()
        self._held_statements = []
        if not conn.closed:
            cur.execute("ROLLBACK")

    def _begin_write(self, cur: Any) -> None:
        cur._deferred.append(b"BEGIN")  # sent with the transaction's first statement

    def _hold_open(self, cur: Any) -> None:
        # whatever the finish left deferred rides along with the next transaction's work
        # (nothing as it stands: its NOTIFY goes with its UPDATE)
        self._held_statements, cur._deferred = cur._deferred, []

    def _resume_open(self, cur: Any) -> None:
        cur._deferred[:0] = self._held_statements
        self._held_statements = []

    def _lock_job(self, cur: Any, job_id: str) -> None:
        # taken before the statement it is sent with (the claim's conditional INSERT, which
        # counts the running builds after the lock is held: each statement its own snapshot)
        cur.defer("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (LOCK_CLAIM, job_id))

    def _lock_schema(self, cur: Any) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                    (LOCK_MIGRATE, self.schema or ""))
        if self.schema:
            # only when missing: CREATE SCHEMA IF NOT EXISTS needs CREATE on the database
            cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,))
            if cur.fetchone() is None:
                cur.execute(pgsql.SQL("CREATE SCHEMA {}").format(pgsql.Identifier(self.schema)))

    def _notify_logs(self, cur: Any, build_id: int) -> None:
        # delivered at COMMIT anyway, and once however often sent: with the next statement,
        # and not twice (a finish's last records and its outcome both say so)
        notify = cur.mogrify("SELECT pg_notify(%s, '')", (_channel(build_id),))
        if notify not in cur._deferred:
            cur._deferred.append(notify)

    def _insert_id(self, cur: Any, sql: str, params: Sequence[Any]) -> int:
        cur.execute(self._q(sql) + " RETURNING id", params)
        return int(cur.fetchone()[0])

    def _insert_claim(self, cur: Any, sql: str, params: Sequence[Any]) -> int | None:
        """The claim and its COMMIT in one round trip: the build must be seen running
        before its job starts. On its own, the lock and the ``INSERT ... RETURNING`` are
        sent outside ``BEGIN ... COMMIT`` (the server runs them as one implicit
        transaction). Continuing a transaction a ``commit_later`` finish left open, they
        are sent with ``COMMIT`` and ``SELECT lastval()`` (the last statement's result is
        the one a query string returns, and the session's last id taken is the row's): a
        claim refused then fails instead (see :data:`_CLAIM_OR_FAIL_SQL`), and is made
        again on its own. Where the connection breaks meanwhile, or the claim's token is in
        a row already, the next attempt looks for the row first (:meth:`claim_build`)."""
        if cur.drop_begin():
            query, values = self._q(sql) + " RETURNING id", tuple(params)
        else:
            query = _CLAIM_OR_FAIL_SQL + "; COMMIT; SELECT lastval()"
            (job_id, state, definition, definition_hash, deps, now, _, _, host, pid, retry_of,
             token, _, _, concurrency) = params
            values = {"job": job_id, "state": state, "definition": definition,
                      "hash": definition_hash, "deps": deps, "now": now, "host": host,
                      "pid": pid, "retry_of": retry_of, "token": token,
                      "concurrency": concurrency}
        try:
            cur.execute(query, values)
        except psycopg2.Error as exc:
            if (exc.pgcode == psycopg2.errorcodes.NOT_NULL_VIOLATION
                    and exc.diag.column_name == "state"):
                raise _ClaimRefused(params[0]) from exc
            if cur.connection.closed or (
                    exc.pgcode == psycopg2.errorcodes.UNIQUE_VIOLATION
                    and exc.diag.constraint_name == "builds_claim_token"):
                raise _ClaimInDoubt(f"{self.label}: a claim of {params[0]!r} may have been "
                                    f"made already: {_one_line(exc)}") from exc
            raise
        cur.committed = True
        self._pending.clear()  # what a finish left open was committed with it
        row = cur.fetchone()
        return None if row is None else int(row[0])

    def _claim_landed(self, token: str) -> Build | None:
        """The build the claim with ``token`` made, if one of its attempts committed."""
        with self._cursor() as cur:
            cur.execute(f"{SELECT_BUILD} WHERE claim_token = %s", (token,))
            row = cur.fetchone()
        return None if row is None else self._build_from_row(row)

    def _insert_many(self, cur: Any, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        # "VALUES (?, ?)" → "VALUES %s" with a row template: one statement for every row
        match = re.search(r"VALUES (\([?, ]+\))", sql)
        assert match is not None, sql
        template = self._q(match.group(1))
        statement = sql[:match.start()] + "VALUES %s" + sql[match.end():]
        psycopg2.extras.execute_values(cur, statement, rows, template=template,
                                       page_size=max(len(rows), 1))

    def _run_script(self, cur: Any, script: str) -> None:
        cur.execute(script)

    def _table_exists(self, cur: Any, name: str) -> bool:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (name,))
        return bool(cur.fetchone()[0])

    def _time_param(self, value: Any) -> Any:
        return None if value is None else as_utc(value)

    @staticmethod
    def _dumps(value: Mapping[str, Any]) -> str:
        # jsonb refuses the escape \u0000 (an escaped backslash before "u0000" is kept);
        # the text is looked at first, as most has none (the pattern costs more than that)
        text = SqlStorage._dumps(value)
        if "\\u0000" not in text:
            return text
        return _NUL_ESCAPE.sub(r"\1\\ufffd", text)

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        self._close_listener()
        super().close()

    @contextlib.contextmanager
    def _implicit_transaction(self) -> Iterator[Any]:
        """A cursor for a write sent as one query outside ``BEGIN ... COMMIT`` (the server
        runs it as one implicit transaction). A transaction a ``commit_later`` finish left
        open is committed first: it would take the write in, uncommitted."""
        self.commit_pending()
        with self._cursor() as cur:
            yield cur

    # -- builds: every operation survives a lost connection ----------------------------------

    def claim_build(self, job_id: str, *, concurrency: int, definition: Mapping[str, Any],
                    definition_hash: str, dependency_builds: Mapping[str, int], host: str,
                    pid: int, retry_of: int | None = None, claim_token: str | None = None
                    ) -> Build:
        # twice is not harmless (a second claim would be refused by the first one's build):
        # every attempt writes the same token, and one after an attempt that may have
        # committed (its answer cut off by a lost connection) looks for the token's row
        # before claiming again, however often that happens; the unique index lets a late
        # commit of an earlier attempt (its backend outliving its connection) and a new
        # attempt make one row between them. The finish of a build found so reads its row
        # back (it is not in _claimed)
        token = claim_token or uuid.uuid4().hex
        claim = functools.partial(
            super().claim_build, job_id, concurrency=concurrency, definition=definition,
            definition_hash=definition_hash, dependency_builds=dependency_builds, host=host,
            pid=pid, retry_of=retry_of, claim_token=token)
        attempts = 0

        def attempt() -> Build:
            nonlocal attempts
            attempts += 1
            found = self._claim_landed(token) if attempts > 1 else None
            if found is not None:
                return found
            try:
                try:
                    return claim()
                except _ClaimRefused:  # nothing is pending now: on its own, it says by whom
                    return claim()
            except JobAlreadyRunningError:
                # refused by this claim's own build, committed late by an earlier attempt?
                found = self._claim_landed(token) if attempts > 1 else None
                if found is None:
                    raise
                return found

        return self._retry(attempt, f"claiming a build of {job_id!r}", in_doubt_ok=False)

    def enqueue_build(self, job_id: str, *, definition: Mapping[str, Any],
                      definition_hash: str, dependency_builds: Mapping[str, int], queue: str,
                      retry_of: int | None = None) -> Build | None:
        # one round trip: the INSERT ... RETURNING the row (for a retry, after the job's
        # lock, sent with it: one implicit transaction) outside BEGIN ... COMMIT. A retry is
        # made once per build: the INSERT puts nothing in when one exists, and it runs
        # under the job's lock. Twice is not harmless (a second queued build would run
        # too): where the connection breaks during the query, the retry looks for the row
        # it would have made (its job, its creation time to the microsecond) first.
        definition_json = self._dumps(definition)
        deps_json = self._dumps({str(k): int(v) for k, v in dependency_builds.items()})
        stamp: list[Any] = []  # the creation time the first attempt sent

        def attempt() -> Build | None:
            if stamp:
                with self._cursor() as cur:
                    cur.execute(f"{SELECT_BUILD} WHERE job_id = %s AND created = %s "
                                "AND queue = %s AND retry_of IS NOT DISTINCT FROM %s",
                                (job_id, stamp[0], queue, retry_of))
                    row = cur.fetchone()
                if row is not None:
                    return self._build_from_row(row)
            stamp[:] = [self._time_param(self.now())]
            with self._implicit_transaction() as cur:
                if retry_of is not None:
                    self._lock_job(cur, job_id)
                cur.execute(
                    "INSERT INTO builds (job_id, state, definition, definition_hash, "
                    "dependency_builds, created, retry_of, queue) "
                    "SELECT %s, %s, %s, %s, %s, %s, %s, %s "
                    "WHERE %s IS NULL OR NOT EXISTS (SELECT 1 FROM builds WHERE retry_of = %s) "
                    f"RETURNING {BUILD_COLUMN_LIST}",
                    (job_id, BuildState.QUEUED.value, definition_json, definition_hash,
                     deps_json, stamp[0], retry_of, queue, retry_of, retry_of),
                )
                row = cur.fetchone()
            return None if row is None else self._build_from_row(row)

        return self._retry(attempt, f"queueing a build of {job_id!r}")

    def start_queued_build(self, build_id: int, *, concurrency: int, host: str, pid: int,
                           dependency_builds: Mapping[str, int] | None = None) -> Build | None:
        # one round trip: the job's lock and one conditional UPDATE ... RETURNING the row,
        # sent together outside BEGIN ... COMMIT, so the server runs them as one implicit
        # transaction (the lock held until its end). The job's lock is taken first (its id
        # read from the row, which it never changes), then the UPDATE locks the row: every
        # claim takes the two in that order, and nothing else takes the job's lock while
        # it holds a build's row, so they cannot deadlock. The UPDATE, a statement after
        # the lock (its own snapshot), counts the running builds with every earlier claim
        # of the job committed.
        check_concurrency(concurrency)
        deps_json = None if dependency_builds is None else self._dumps(
            {str(k): int(v) for k, v in dependency_builds.items()})
        stamp: list[Any] = []  # the start time the first attempt sent

        def attempt() -> Build | None:
            if stamp:
                # the connection broke while claiming: did that claim happen? It did if
                # the row holds what it wrote (its start time to the microsecond)
                with self._cursor() as cur:
                    cur.execute("SELECT state, host, pid, started FROM builds WHERE id = %s",
                                (build_id,))
                    row = cur.fetchone()
                if row is None:
                    raise BuildNotFoundError(build_id)
                if row[0] != BuildState.QUEUED.value:
                    ours = (row[0] == BuildState.RUNNING.value and row[1] == host
                            and row[2] == pid and as_utc(row[3]) == stamp[0])
                    if not ours:
                        return None
                    build = self.get_build(build_id)
                    self._remember_claim(_Claim(build, "", "", None))
                    return build
            stamp[:] = [self._time_param(self.now())]
            return self._start_queued(build_id, concurrency, host, pid, deps_json, stamp[0])

        return self._retry(attempt, f"starting build {build_id}")

    def _start_queued(self, build_id: int, concurrency: int, host: str, pid: int,
                      deps_json: str | None, now: datetime) -> Build | None:
        with self._implicit_transaction() as cur:
            cur.defer("SELECT pg_advisory_xact_lock(%s, hashtext(job_id)) FROM builds "
                      "WHERE id = %s", (LOCK_CLAIM, build_id))
            cur.execute(
                "UPDATE builds SET state = %s, started = %s, heartbeat = %s, host = %s, "
                "pid = %s, dependency_builds = coalesce(%s, dependency_builds) "
                "WHERE id = %s AND state = %s AND (SELECT count(*) FROM builds r "
                "WHERE r.job_id = builds.job_id AND r.state = %s) < %s "
                f"RETURNING {BUILD_COLUMN_LIST}",
                (BuildState.RUNNING.value, now, now, host, pid, deps_json, build_id,
                 BuildState.QUEUED.value, BuildState.RUNNING.value, concurrency),
            )
            row = cur.fetchone()
            if row is not None:
                build = self._build_from_row(row)
                # its runner from now on (see SqlStorage.start_queued_build)
                self._remember_claim(_Claim(build, "", "", None))
                return build
            # not started: gone, not queued any more, or its job busy
            cur.execute("SELECT job_id, state FROM builds WHERE id = %s", (build_id,))
            job_id = self._queued_job(cur.fetchone(), build_id)
            if job_id is None:
                return None
            cur.execute("SELECT id FROM builds WHERE job_id = %s AND state = %s ORDER BY id",
                        (job_id, BuildState.RUNNING.value))
            raise JobAlreadyRunningError(job_id, [r[0] for r in cur.fetchall()])

    def finish_build_with_logs(self, build_id: int, state: BuildState, *,
                               logs: Sequence[LogRecord], reason: str | None = None,
                               result: StoredValue | None = None,
                               exception: ExceptionInfo | None = None,
                               commit_later: bool = False) -> Build:
        records = list(logs)
        first_seq: list[int] = []
        sent: list[bool] = []

        def body(cur: Any) -> Build:
            if len(records) > SMALL_BATCH or (records and first_seq):
                # COPY is a round trip of its own anyway; a retry checks its batch first
                self._copy_batch(cur, build_id, records, first_seq)
                return self._finish(cur, build_id, state, reason, result, exception)
            claim = self._claimed.get(build_id)
            if claim is not None and claim.next_seq is not None:
                # the records numbered here, from where the log is known to end (a retry
                # looks there for them); the UPDATE returns only what others may change
                if records:
                    first_seq[:] = [claim.next_seq]
                    self._defer_small_batch(cur, build_id, records)
                return self._finish(cur, build_id, state, reason, result, exception)
            if records:
                self._defer_small_batch(cur, build_id, records)
            # BEGIN, the lock, the INSERT of the records and the UPDATE: one round trip;
            # the UPDATE says where the log ends, so a retry after a COMMIT in doubt can
            # tell whether the batch is stored
            row = self._finish_update(
                cur, build_id, state, reason, result, exception,
                also_return=", (SELECT coalesce(max(seq), 0) FROM logs "
                            "WHERE build_id = builds.id)")
            if row is not None:
                if records:
                    first_seq[:] = [int(row[-1]) - len(records) + 1]
                return self._build_from_row(row[:-1], self._claimed.pop(build_id, None))
            # fenced off (or gone: BuildNotFoundError), the records stored all the same
            if records:
                cur.execute("SELECT coalesce(max(seq), 0) FROM logs WHERE build_id = %s",
                            (build_id,))
                first_seq[:] = [int(cur.fetchone()[0]) - len(records) + 1]
            return self._fetch_build(cur, build_id)

        def attempt(later: bool = False) -> Build:
            if not later and not self._pending and len(records) <= SMALL_BATCH:
                if sent:  # the connection broke: did the finish land before it did?
                    landed = self._finish_landed(build_id, records)
                    if landed is not None:
                        return landed
                sent[:] = [True]
                return self._finish_small(build_id, state, records, reason, result,
                                          exception)
            # in a transaction: a large batch (COPY), or one left open for the next claim
            # to commit (commit_later), or one continuing such a transaction
            with self._transaction(commit=not later) as cur:
                build = body(cur)
                if later:  # written again should its transaction fail; a COMMIT in doubt
                    # is told apart by the look _finish_landed takes (or by the COPY check)
                    sent[:] = [True]
                    self._pending.append((build_id, functools.partial(
                        self._retry, attempt, f"finishing build {build_id}")))
            return build

        return self._retry(functools.partial(attempt, commit_later),
                           f"finishing build {build_id}")

    def _finish_small(self, build_id: int, state: BuildState, records: Sequence[LogRecord],
                      reason: str | None, result: StoredValue | None,
                      exception: ExceptionInfo | None) -> Build:
        """A finish with at most :data:`SMALL_BATCH` last records in one round trip: their
        INSERT (see :meth:`_defer_small_batch`), the NOTIFY and the UPDATE sent together
        outside BEGIN ... COMMIT, which the server runs as one implicit transaction."""
        with self._implicit_transaction() as cur:
            try:
                if records:
                    self._defer_small_batch(cur, build_id, records)
                # fenced off (or gone: BuildNotFoundError), the records stored all the same
                return self._finish(cur, build_id, state, reason, result, exception)
            except BaseException:
                self._forget_log_ends()  # whatever went wrong, ask the server next time
                raise

    def _finish_landed(self, build_id: int, records: Sequence[LogRecord]) -> Build | None:
        """The build, if the finish whose answer a lost connection cut off did commit
        (it is finished, its log ending with ``records``); else None (it did not)."""
        with self._cursor() as cur:
            cur.execute("SELECT state FROM builds WHERE id = %s", (build_id,))
            row = cur.fetchone()
            if row is None or row[0] in (BuildState.QUEUED.value, BuildState.RUNNING.value):
                return None
            if records:
                cur.execute("SELECT time, message FROM logs WHERE build_id = %s "
                            "ORDER BY seq DESC LIMIT 1", (build_id,))
                last = cur.fetchone()
                if last is None or (as_utc(last[0]), last[1]) != (
                        as_utc(records[-1].time), _no_nul(records[-1].message)):
                    return None
            self._claimed.pop(build_id, None)
            return self._fetch_build(cur, build_id)

    def _defer_small_batch(self, cur: Any, build_id: int, records: Sequence[LogRecord]) -> None:
        """Store a few records with the transaction's next statement. For a build this
        object claimed, whose log end it knows, numbered here: only its runner writes a
        running build's log, and the finish that sends them ends it (an attempt sent
        again numbers them alike). Otherwise numbered on from the end of the build's log
        by the server: the build's row locked first (one writer at a time), then an INSERT
        that numbers the rows (its own statement, so it sees what the writer before
        committed). Nothing for a build that does not exist, nor, for its runner, for a
        build someone else ended (see ``SqlStorage._fenced``)."""
        claim = self._claimed.get(build_id)
        if claim is not None and claim.next_seq is not None:
            self._defer_numbered(cur, build_id, claim.next_seq, records, fenced=True)
            self._notify_logs(cur, build_id)
            return
        cur.defer("SELECT 1 FROM builds WHERE id = %s FOR UPDATE", (build_id,))
        rows = b",".join(cur.mogrify("(%s, %s, %s, %s, %s, %s)", (
            n, as_utc(r.time), r.level, r.logger, r.message, r.exception))
            for n, r in enumerate(records, start=1))
        cur.defer(
            "INSERT INTO logs (build_id, seq, time, level, logger, message, exception) "
            "SELECT b.id, b.last + v.n, v.time, v.level, v.logger, v.message, v.exception "
            "FROM (SELECT builds.id, (SELECT coalesce(max(seq), 0) FROM logs "
            f"WHERE build_id = builds.id) AS last FROM builds WHERE builds.id = {int(build_id)}"
            + (" AND builds.state IN ('queued', 'running')" if claim is not None else "")
            + ") AS b, (VALUES " + rows.decode() + ") "
            "AS v (n, time, level, logger, message, exception)")
        self._notify_logs(cur, build_id)

    def now(self) -> datetime:
        """The server's clock, as this machine's plus the offset measured on connecting."""
        return utcnow() + self._clock_offset

    # -- logs and progress -------------------------------------------------------------------

    def append_logs(self, build_id: int, records: Sequence[LogRecord]) -> None:
        if not records:
            return
        records = list(records)
        first_seq: list[int] = []  # what the previous attempt numbered the batch from

        def attempt() -> None:
            with self._transaction() as cur:
                self._copy_batch(cur, build_id, records, first_seq)

        self._retry(attempt, f"appending logs of build {build_id}")

    def _copy_batch(self, cur: Any, build_id: int, records: Sequence[LogRecord],
                    first_seq: list[int]) -> None:
        """Store a batch in the caller's transaction, unless an earlier attempt (whose first
        seq is in ``first_seq``) did commit it; sets ``first_seq`` for the next attempt."""
        # locks the build row (one writer at a time) and finds where its log ends
        cur.execute("SELECT (SELECT coalesce(max(seq), 0) FROM logs WHERE build_id = b.id), "
                    "b.state FROM builds b WHERE b.id = %s FOR UPDATE", (build_id,))
        row = cur.fetchone()
        if row is None:
            raise BuildNotFoundError(build_id)
        claim = self._claimed.get(build_id)
        if claim is not None and row[1] not in _UNFINISHED:
            return  # its runner is fenced off: someone else ended the build (see _fenced)
        if first_seq and self._batch_stored(cur, build_id, first_seq[0], records):
            return  # the attempt whose COMMIT was cut off did commit
        start = int(row[0]) + 1
        first_seq[:] = [start]
        if claim is not None:  # the end of its log from here on (forgotten on a rollback)
            claim.next_seq = start + len(records)
        if len(records) <= SMALL_BATCH:
            self._defer_numbered(cur, build_id, start, records)
        else:
            cur.copy_expert(
                "COPY logs (build_id, seq, time, level, logger, message, exception) "
                "FROM STDIN", _copy_rows(build_id, start, records))
        self._notify_logs(cur, build_id)

    @staticmethod
    def _defer_numbered(cur: Any, build_id: int, start: int,
                        records: Sequence[LogRecord], *, fenced: bool = False) -> None:
        """An INSERT of ``records`` numbered from ``start``, sent with the transaction's
        next statement (no round trip of its own). ``fenced``: made only while the build
        is unfinished (its row locked until the transaction ends), for its runner, which
        someone else may have fenced off by ending the build (see ``SqlStorage._fenced``)."""
        rows = b",".join(cur.mogrify("(%s, %s, %s, %s, %s, %s)", (
            start + n, as_utc(r.time), r.level, r.logger, r.message,
            r.exception)) for n, r in enumerate(records))
        insert = (b"INSERT INTO logs (build_id, seq, time, level, logger, message, exception) "
                  b"SELECT %d, v.* FROM (VALUES " % build_id + rows + b") AS v")
        if fenced:
            insert += (b" WHERE EXISTS (SELECT 1 FROM builds WHERE id = %d "
                       b"AND state IN ('queued', 'running') FOR UPDATE)" % build_id)
        cur._deferred.append(insert)

    @staticmethod
    def _batch_stored(cur: Any, build_id: int, first: int, records: Sequence[LogRecord]) -> bool:
        """Whether ``records`` are stored already, numbered from ``first``."""
        cur.execute("SELECT time, message FROM logs WHERE build_id = %s AND seq = %s",
                    (build_id, first + len(records) - 1))
        row = cur.fetchone()
        last = records[-1]
        return row is not None and (as_utc(row[0]), row[1]) == (
            as_utc(last.time), _no_nul(last.message))

    # -- LISTEN/NOTIFY -----------------------------------------------------------------------

    def wait_for_logs(
        self,
        build_id: int,
        after_seq: int,
        timeout: float,
        *,
        min_level: int = 0,
        poll_interval: float = 0.5,
    ) -> None:
        """Wait on a NOTIFY from the build's writer rather than polling (see the base class).

        Without a listening connection (the server is away) it falls back to polling.
        """
        deadline = time.monotonic() + timeout
        with self._listen_lock:
            while True:
                try:
                    conn = self._listen(build_id)
                except StorageError:
                    remaining = max(0.0, deadline - time.monotonic())
                    super().wait_for_logs(build_id, after_seq, remaining, min_level=min_level,
                                          poll_interval=poll_interval)
                    return
                # listening first, then looking: a commit in between still wakes the select
                if self._has_log_news(build_id, after_seq, min_level):
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                select.select([conn], [], [], remaining)
                try:
                    conn.poll()
                    conn.notifies.clear()
                except psycopg2.Error:
                    self._close_listener()

    def _listen(self, build_id: int) -> Any:
        """The listening connection, subscribed to ``build_id``'s channel (and no other)."""
        if self._closed:
            raise StorageError(f"{self.label} is closed")
        channel = _channel(build_id)
        try:
            if self._listen_conn is None or self._listen_conn.closed:
                self._listen_conn, self._listening = self._connect(), None
            if self._listening != channel:
                with self._listen_conn.cursor() as cur:
                    cur.execute(f"UNLISTEN *; LISTEN {channel}")
                self._listening = channel
            return self._listen_conn
        except psycopg2.Error as exc:
            self._close_listener()
            raise StorageError(f"{self.label}: cannot LISTEN: {exc}") from exc
        except StorageError:
            self._close_listener()
            raise

    def _close_listener(self) -> None:
        conn, self._listen_conn, self._listening = self._listen_conn, None, None
        if conn is not None:
            try:
                conn.close()
            except psycopg2.Error:
                pass


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


def _copy_rows(build_id: int, first_seq: int, records: Sequence[LogRecord]) -> io.StringIO:
    """Log records as the input of ``COPY logs FROM STDIN``, numbered from ``first_seq``."""
    lines = [
        f"{build_id}\t{first_seq + n}\t{as_utc(r.time).isoformat()}\t{int(r.level)}\t"
        f"{_copy_text(r.logger)}\t{_copy_text(r.message)}\t{_copy_text(r.exception)}\n"
        for n, r in enumerate(records)
    ]
    return io.StringIO("".join(lines))


def _one_line(error: BaseException) -> str:
    """An error's message on one line (libpq's span several)."""
    return " ".join(str(error).split())


def _channel(build_id: int) -> str:
    """The NOTIFY channel of one build's news (an identifier: digits and letters only)."""
    return f"jobcontrol_build_{int(build_id)}"
