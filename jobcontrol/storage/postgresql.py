"""``postgresql://user:password@host:5432/db``: the production store, shared by many machines.

Needs psycopg2 (``pip install 'jobcontrol[postgresql]'``), imported only when such a URL is
opened. The URL is libpq's, so its query options (``sslmode``, ``connect_timeout``, ...) work
as they do in ``psql``; jobcontrol adds ``?schema=NAME`` to keep its tables in that schema.

The operations are the SQL base's (:mod:`jobcontrol.storage.sql`); what is PostgreSQL's own:

- Reads run in autocommit; writes are explicit ``BEGIN ... COMMIT`` that always end, so no
  connection is left ``idle in transaction``, but for the moment between a build's outcome
  and the run's next claim (``finish_build_with_logs(commit_later=True)``), which that claim
  commits with its own work (or the storage's commit timer, within 50 ms).
- A claim serialises on ``pg_advisory_xact_lock`` of its job, a migration on one of its
  schema: correct across processes and hosts, released when the transaction ends.
- Statements whose result nobody reads (``BEGIN``, the claim's lock, ``NOTIFY``, a batch of
  at most :data:`SMALL_BATCH` log rows) ride along with the next one (``Cursor.defer``): a
  build is 4 round trips (claim: lock and ``INSERT``, ``COMMIT``; finish: ``BEGIN`` and
  the fence, rows, ``NOTIFY`` and ``UPDATE``). A larger batch goes in with ``COPY`` (3x
  faster a row than ``execute_values``, but a round trip of its own).
- The statements of a build's life (:data:`PREPARED`) and the status query's few shapes
  (:data:`PREPARED_SUMMARIES`) are prepared once a connection and run by name
  (``Connection.prepare``): planning one cost as much as a round trip.
  ``?prepare=off`` in the URL turns it off (for PgBouncer's transaction pooling).
- Every batch and every outcome NOTIFYs ``jobcontrol_build_<id>`` (delivered at COMMIT,
  once a transaction); :meth:`wait_for_logs` LISTENs on a second connection, so
  ``logs --follow`` wakes when a line is committed instead of polling.
- The server's clock judges heartbeats: its offset from this machine's is measured once a
  connection (:meth:`now` asks no query, and answers while the server is away).
- A lost connection (server restart, failover, a killed backend) is reopened and the
  operation tried again for up to :data:`RECONNECT_WINDOW` seconds, in one place
  (:meth:`PostgreSQLStorage._retry`). A write whose ``COMMIT`` was cut off may or may not
  have happened: it is retried where doing it twice is harmless, or where the retry first
  looks whether it landed (a claim for the token all its attempts write, which a unique
  index lets into one row only; a finish, a log batch, a queued or started build for what
  they wrote); otherwise a StorageError says so.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from jobcontrol.errors import BuildNotFoundError, JobAlreadyRunningError, StorageError
from jobcontrol.models import Build, BuildState, ExceptionInfo, LogRecord, NewRun, StoredValue
from jobcontrol.storage.postgresql_cursor import Connection, Cursor, PreparedStatement, Statements
from jobcontrol.storage.postgresql_listen import LogListener
from jobcontrol.storage.postgresql_text import (
    NUL_ESCAPE,
    channel_of,
    copy_rows,
    no_nul,
    one_line,
    parse_url,
    take_prepare,
)
from jobcontrol.storage.sql import _UNFINISHED, SqlStorage, _Claim
from jobcontrol.timeutil import as_utc, utcnow

try:
    import psycopg2
    import psycopg2.errorcodes
    import psycopg2.extensions
    import psycopg2.extras
    from psycopg2 import sql as pgsql
except ImportError as error:  # the extra missing or broken: the storage says which to install
    psycopg2 = None
    _IMPORT_ERROR: ImportError | None = error
else:
    _IMPORT_ERROR = None

log = logging.getLogger(__name__)
T = TypeVar("T")

#: seconds to wait for a server to answer a new connection (unless the URL says otherwise)
CONNECT_TIMEOUT = 10
#: seconds to keep reconnecting after a connection is lost, before giving up
RECONNECT_WINDOW = 30.0
#: the statements of a build's life a connection prepares (query name, text added to it)
PREPARED = (("claim_build", " RETURNING id"), ("finish_claimed", ""), ("finish_build", ""),
            ("enqueue_in_new_run", ""), ("start_queued_build", ""), ("slot_waiters", ""),
            ("consumers", ""))
#: the status query is prepared for up to this many jobs (a step and its dependencies,
#: asked at every step of a run: planned, it cost 0.35 ms of the 0.6 it took)
PREPARED_SUMMARIES = 16
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
#: first keys of jobcontrol's two-part advisory locks, apart from other applications' keys
LOCK_CLAIM = 0x6A630001
LOCK_MIGRATE = 0x6A630002
#: most log records a batch stores with an INSERT; a larger one is COPYed (3x faster a
#: row, but a round trip more)
SMALL_BATCH = 20


class _ConnectFailed(StorageError):
    """No connection could be made (server down, bad address, bad credentials)."""


class _CommitInDoubt(StorageError):
    """The connection broke during COMMIT: the transaction may or may not have happened."""


class _ClaimInDoubt(StorageError):
    """The connection broke while a claim waited for its answer, or the claim's token is in
    a row already (an earlier attempt's, committed after its connection broke): the next
    attempt looks for it first."""


class PostgreSQLStorage(SqlStorage):
    """Builds in a PostgreSQL database: one connection per object (plus one to LISTEN on,
    opened by the first :meth:`wait_for_logs`), shared by threads under a lock.

    Opening is cheap: the connection is made, and the schema migrated, on first use.
    """

    dialect = "postgresql"
    driver_errors = (psycopg2.Error,) if psycopg2 is not None else ()
    placeholder = "%s"
    id_list_sql = "string_agg(b.id::text, ',')"
    schema_table_ddl = (
        "CREATE TABLE IF NOT EXISTS jobcontrol_schema ("
        "version integer PRIMARY KEY, name text NOT NULL, applied timestamptz NOT NULL)"
    )
    #: seconds to keep reconnecting after a lost connection (see :data:`RECONNECT_WINDOW`)
    reconnect_window: float = RECONNECT_WINDOW

    def __init__(self, url: str) -> None:
        if psycopg2 is None:
            raise StorageError(
                f"PostgreSQL storage needs psycopg2, which cannot be imported "
                f"({_IMPORT_ERROR}): pip install 'jobcontrol[postgresql]'"
            )
        super().__init__(url)
        self.dsn, self.schema = parse_url(url)
        self.dsn, prepare = take_prepare(self.dsn)
        try:
            given = psycopg2.extensions.parse_dsn(self.dsn)
        except psycopg2.Error as exc:
            raise StorageError(f"bad PostgreSQL URL {self.label}: "
                               f"{one_line(exc)}") from exc
        self._connect_options = {k: v for k, v in CONNECT_DEFAULTS.items() if k not in given}
        self._listener = LogListener(self._connect, self.label)
        #: ``active`` while this thread runs :meth:`_retry`
        self._retrying = threading.local()
        #: the server's clock minus this machine's, measured on each connect
        self._clock_offset = timedelta()
        #: the builds whose news the open transaction has NOTIFYed
        self._notified: set[int] = set()
        #: the busy statements, run by name on each connection; None with ``?prepare=off``
        self._prepared = Statements(
            PreparedStatement(f"jc_{name}", self.sql[name] + tail) for name, tail in PREPARED
        ) if prepare else None

    @classmethod
    def from_url(cls, url: str, base_dir: str | os.PathLike[str] | None = None
                 ) -> PostgreSQLStorage:
        """Open ``postgresql://user:password@host:port/db[?schema=NAME&libpq options]``."""
        return cls(url)

    @property
    def label(self) -> str:
        return f"PostgreSQL database {super().label}"

    def now(self) -> datetime:
        """The server's clock, as this machine's plus the offset measured on connecting."""
        return utcnow() + self._clock_offset

    # -- connections -------------------------------------------------------------------------

    def _connect(self) -> Any:
        try:
            conn = psycopg2.connect(self.dsn, connection_factory=Connection,
                                    cursor_factory=Cursor, **self._connect_options)
        except psycopg2.Error as exc:
            raise _ConnectFailed(
                f"cannot connect to {self.label}: {one_line(exc)}"
            ) from exc
        try:
            conn.autocommit = True  # reads need no transaction; writes say BEGIN themselves
            if self._prepared is not None:
                conn.prepare(self._prepared)
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
                reason = one_line(exc.__cause__ or exc)
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
        self._notified.clear()
        try:
            cur.execute("COMMIT")
        except psycopg2.Error as exc:
            if conn.closed:
                raise _CommitInDoubt(f"{self.label}: connection lost during COMMIT: "
                                     f"{one_line(exc)}") from exc
            raise

    def _begin_write(self, cur: Any) -> None:
        cur.defer("BEGIN")

    def _rollback(self, conn: Any, cur: Any) -> None:
        self._notified.clear()
        cur.discard_deferred()  # after an error the server would refuse them, and ROLLBACK
        if not conn.closed:
            cur.execute("ROLLBACK")

    def _lock_job(self, cur: Any, job_id: str) -> None:
        # taken before the statement it is sent with (the claim's conditional INSERT, which
        # counts the running builds after the lock is held: each statement its own snapshot)
        cur.defer(self.sql["advisory_lock"], (LOCK_CLAIM, job_id))

    def _summaries_query(self, wanted: set[str] | None) -> tuple[str, list[Any]]:
        sql, params = super()._summaries_query(wanted)
        if self._prepared is not None and len(params) <= PREPARED_SUMMARIES:
            self._prepared.add(f"jc_job_summaries_{len(params)}", sql)
        return sql, params

    def _lock_schema(self, cur: Any) -> None:
        cur.execute(self.sql["advisory_lock"], (LOCK_MIGRATE, self.schema or ""))
        if self.schema:
            # only when missing: CREATE SCHEMA IF NOT EXISTS needs CREATE on the database
            cur.execute(self.sql["schema_exists"], (self.schema,))
            if cur.fetchone() is None:
                cur.execute(pgsql.SQL("CREATE SCHEMA {}").format(pgsql.Identifier(self.schema)))

    def _notify_logs(self, cur: Any, build_id: int) -> None:
        # delivered at COMMIT, once however often sent: sent once a transaction
        if build_id not in self._notified:
            self._notified.add(build_id)
            cur.defer(self.sql["notify_build"], (channel_of(build_id),))

    def _stored_as_given(self, reason: str | None, result: StoredValue | None,
                         exception: ExceptionInfo | None) -> bool:
        # text with NUL characters is stored with U+FFFD instead: such a finish reads its
        # row back
        texts = (reason, result.data if result else None, *(
            (exception.type, exception.message, exception.traceback) if exception else ()))
        return not any(isinstance(text, str) and "\x00" in text for text in texts)

    def _insert_id(self, cur: Any, sql: str, params: Sequence[Any]) -> int:
        cur.execute(self._q(sql) + " RETURNING id", params)
        return int(cur.fetchone()[0])

    def _insert_claim(self, cur: Any, sql: str, params: Sequence[Any]) -> int | None:
        try:
            cur.execute(self._q(sql) + " RETURNING id", params)
        except psycopg2.Error as exc:
            if cur.connection.closed or (
                    exc.pgcode == psycopg2.errorcodes.UNIQUE_VIOLATION
                    and exc.diag.constraint_name == "builds_claim_token"):
                raise _ClaimInDoubt(f"{self.label}: a claim of {params[0]!r} may have been "
                                    f"made already: {one_line(exc)}") from exc
            raise
        row = cur.fetchone()
        return None if row is None else int(row[0])

    def _insert_many(self, cur: Any, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        # "VALUES (%s, %s)" → "VALUES %s" with a row template: one statement for every row
        match = re.search(r"VALUES (\([%s, ]+\))", self._q(sql))
        assert match is not None, sql
        template = match.group(1)
        statement = sql[:match.start()] + "VALUES %s" + sql[match.end():]
        psycopg2.extras.execute_values(cur, statement, rows, template=template,
                                       page_size=max(len(rows), 1))

    def _insert_logs(self, cur: Any, build_id: int, first_seq: int,
                     records: Sequence[LogRecord]) -> None:
        if len(records) <= SMALL_BATCH:  # sent with the next statement (COPY: 2 round trips)
            insert, _, row = self.sql["insert_logs"].partition("VALUES ")
            cur.defer(insert.encode() + b"VALUES " + b", ".join(cur.mogrify(row, (
                build_id, first_seq + n, as_utc(r.time), r.level, r.logger, r.message,
                r.exception)) for n, r in enumerate(records)))
            return
        cur.copy_expert(self.sql["copy_logs"], copy_rows(build_id, first_seq, records))

    def _run_script(self, cur: Any, script: str) -> None:
        cur.execute(script)

    def _table_exists(self, cur: Any, name: str) -> bool:
        cur.execute(self.sql["table_exists"], (name,))
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
        return NUL_ESCAPE.sub(r"\1\\ufffd", text)

    def close(self) -> None:
        self._listener.close()
        super().close()

    # -- writes whose retry looks first whether the attempt cut off landed -----------------

    def claim_build(self, job_id: str, *, concurrency: int, definition: Mapping[str, Any],
                    definition_hash: str, dependency_builds: Mapping[str, int], host: str,
                    pid: int, retry_of: int | None = None, run_id: int | None = None,
                    params: Mapping[str, Any] | None = None,
                    pid_namespace: str | None = None, pgid: int | None = None,
                    claim_token: str | None = None) -> Build:
        # twice is not harmless (a second claim would be refused by the first one's build):
        # every attempt writes the same token, and one after an attempt that may have
        # committed looks for the token's row before claiming again; the unique index lets
        # a late commit of an earlier attempt (its backend outliving its connection) and a
        # new attempt make one row between them. A build found so is read back (its finish
        # too: it is not in _claimed)
        token = claim_token or uuid.uuid4().hex
        again = False

        def attempt() -> Build:
            nonlocal again
            found = self._claim_landed(token) if again else None
            if found is not None:
                return found
            again = True
            try:
                return super(PostgreSQLStorage, self).claim_build(
                    job_id, concurrency=concurrency, definition=definition,
                    definition_hash=definition_hash, dependency_builds=dependency_builds,
                    host=host, pid=pid, retry_of=retry_of, run_id=run_id, params=params,
                    pid_namespace=pid_namespace, pgid=pgid, claim_token=token)
            except JobAlreadyRunningError:
                # refused by this claim's own build, committed late by an earlier attempt?
                found = self._claim_landed(token)
                if found is None:
                    raise
                return found

        return self._retry(attempt, f"claiming a build of {job_id!r}")

    def _claim_landed(self, token: str) -> Build | None:
        """The build the claim with ``token`` made, if one of its attempts committed."""
        with self._cursor() as cur:
            cur.execute(self.sql["claim_landed"], (token,))
            row = cur.fetchone()
        return None if row is None else self._build_from_row(row)

    def _enqueue(self, job_id: str, definition_json: str, definition_hash: str,
                 deps_json: str, queue: str, retry_of: int | None, created: Any,
                 origin: tuple[int | None, str | None] = (None, None),
                 new_run: NewRun | None = None, unless_paused: bool = False) -> Build | None:
        # twice is not harmless (a second queued build would run too): a retry looks for
        # the row it would have made (its job, its creation time to the microsecond) first;
        # a new run recorded with it landed with it
        again = False

        def attempt() -> Build | None:
            nonlocal again
            if again:
                with self._cursor() as cur:
                    cur.execute(self.sql["enqueue_landed"], (job_id, created, queue, retry_of))
                    row = cur.fetchone()
                if row is not None:
                    return self._build_from_row(row)
            again = True
            return super(PostgreSQLStorage, self)._enqueue(
                job_id, definition_json, definition_hash, deps_json, queue, retry_of, created,
                origin, new_run, unless_paused)

        return self._retry(attempt, f"queueing a build of {job_id!r}")

    def _start_queued(self, build_id: int, concurrency: int, host: str, pid: int,
                      deps_json: str | None, now: Any, worker_id: str | None = None,
                      pid_namespace: str | None = None, definition_hash: str | None = None,
                      pgid: int | None = None, job_id: str | None = None) -> Build | None:
        # a retry after the connection broke while starting looks whether that start
        # happened: it did if the row holds what it wrote (its start time to the microsecond)
        again = False

        def attempt() -> Build | None:
            nonlocal again
            if again:
                with self._cursor() as cur:
                    cur.execute(self.sql["start_landed"], (build_id,))
                    row = cur.fetchone()
                if row is None:
                    raise BuildNotFoundError(build_id)
                if row[0] != BuildState.QUEUED.value:
                    if (row[0], row[1], row[2]) != (BuildState.RUNNING.value, host, pid) \
                            or as_utc(row[3]) != now:
                        return None
                    build = self.get_build(build_id)
                    self._remember_claim(_Claim(build, "", "", None))
                    return build
            again = True
            return super(PostgreSQLStorage, self)._start_queued(
                build_id, concurrency, host, pid, deps_json, now, worker_id, pid_namespace,
                definition_hash, pgid, job_id)

        return self._retry(attempt, f"starting build {build_id}")

    def finish_build_with_logs(self, build_id: int, state: BuildState, *,
                               logs: Sequence[LogRecord], reason: str | None = None,
                               result: StoredValue | None = None,
                               exception: ExceptionInfo | None = None,
                               commit_later: bool = False) -> Build:
        records = list(logs)
        again = False

        def attempt() -> Build:
            nonlocal again
            if again:  # the connection broke: did the finish land before it did?
                landed = self._finish_landed(build_id, records)
                if landed is not None:
                    return landed
            again = True
            return super(PostgreSQLStorage, self).finish_build_with_logs(
                build_id, state, logs=records, reason=reason, result=result,
                exception=exception, commit_later=commit_later)

        return self._retry(attempt, f"finishing build {build_id}")

    def _finish_again(self, build_id: int, state: BuildState, logs: Sequence[LogRecord],
                      reason: str | None, result: StoredValue | None,
                      exception: ExceptionInfo | None) -> Build:
        # the transaction it waited in may have committed (its COMMIT in doubt)
        def attempt() -> Build:
            return self._finish_landed(build_id, logs) or SqlStorage.finish_build_with_logs(
                self, build_id, state, logs=logs, reason=reason, result=result,
                exception=exception)

        return self._retry(attempt, f"finishing build {build_id}")

    def _finish_landed(self, build_id: int, records: Sequence[LogRecord]) -> Build | None:
        """The build, if the finish whose answer a lost connection cut off did commit
        (it is finished, its log ending with ``records``); else None (it did not)."""
        with self._cursor() as cur:
            cur.execute(self.sql["build_state"], (build_id,))
            row = cur.fetchone()
            if row is None or row[0] in _UNFINISHED:
                return None
            if records:
                cur.execute(self.sql["last_log"], (build_id,))
                last = cur.fetchone()
                if last is None or (as_utc(last[0]), last[1]) != (
                        as_utc(records[-1].time), no_nul(records[-1].message)):
                    return None
            self._claimed.pop(build_id, None)
            return self._fetch_build(cur, build_id)

    def append_logs(self, build_id: int, records: Sequence[LogRecord]) -> None:
        if not records:
            return
        records = list(records)
        first_seq: int | None = None  # where the previous attempt numbered the batch from

        def attempt() -> None:
            nonlocal first_seq
            if first_seq is not None and self._batch_stored(build_id, first_seq, records):
                return  # the attempt whose COMMIT was cut off did commit
            with self._transaction() as cur:
                first_seq = self._append(cur, build_id, records)

        self._retry(attempt, f"appending logs of build {build_id}")

    def _batch_stored(self, build_id: int, first: int, records: Sequence[LogRecord]) -> bool:
        """Whether ``records`` are stored already, numbered from ``first``."""
        with self._cursor() as cur:
            cur.execute(self.sql["log_at"], (build_id, first + len(records) - 1))
            row = cur.fetchone()
        last = records[-1]
        return row is not None and (as_utc(row[0]), row[1]) == (
            as_utc(last.time), no_nul(last.message))

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
        left = self._listener.wait(
            build_id, timeout, lambda: self._has_log_news(build_id, after_seq, min_level))
        if left is not None:
            super().wait_for_logs(build_id, after_seq, left, min_level=min_level,
                                  poll_interval=poll_interval)
