"""SQL shared by the SQLite and PostgreSQL backends (huey's ``BaseSqlStorage`` is the shape).

Queries are written once, with ``?`` placeholders and SQL both dialects accept. What differs
is small and named on :class:`SqlStorage`, each with the SQLite answer as the default where
there is one:

===========================  ================================  ==============================
hook                         SQLite                            PostgreSQL (psycopg2)
===========================  ================================  ==============================
``placeholder``              ``?``                             ``%s``
``id_list_sql``              ``group_concat(b.id)``            ``string_agg(b.id::text, ',')``
``lock_rows_sql``            (none: the write lock is global)  ``FOR UPDATE``
``schema_table_ddl``         ``applied TEXT``                  ``applied timestamptz``
``_begin_write``             ``BEGIN IMMEDIATE``               ``BEGIN``
``_commit``, ``_rollback``   the connection's methods          ``COMMIT``, ``ROLLBACK``
``_lock_job``                (none, as above)                  ``pg_advisory_xact_lock``
``_lock_schema``             (none, as above)                  ``pg_advisory_xact_lock``
``_notify_logs``             (none: readers poll)              ``pg_notify`` (LISTEN wakes)
``_insert_id``               ``cursor.lastrowid``              ``RETURNING id``
``_insert_many``             ``executemany``                   ``execute_values``
``_run_script``              statement by statement            the whole file at once
``_table_exists``            ``sqlite_master``                 ``to_regclass``
``_time_param``              ISO 8601 text                     the datetime (``timestamptz``)
===========================  ================================  ==============================

Migrations are ``migrations/<dialect>/NNNN_name.sql`` (:mod:`jobcontrol.storage.schema`),
applied in order in one transaction, each recorded as a row of ``jobcontrol_schema``.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import functools
import inspect
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, ClassVar, Concatenate, ParamSpec, TypeVar

from jobcontrol.errors import (
    BuildNotFoundError,
    JobAlreadyRunningError,
    OutcomeNotRecordedError,
    StorageError,
)
from jobcontrol.models import (
    Build,
    BuildState,
    BuildStub,
    EncodedJSON,
    ExceptionInfo,
    JobSummary,
    LogCutoff,
    LogRecord,
    ProgressItem,
    ScheduledRun,
    StoredValue,
)
from jobcontrol.storage.base import (
    Storage,
    as_utc,
    batches,
    check_concurrency,
    check_finished_state,
)
from jobcontrol.storage.queries import (
    BUILD_COLUMNS,
    LOG_COLUMNS,
    MAX_IN_PARAMS,
    SELECT_BUILD,
    in_params,
    job_summaries_sql,
)
from jobcontrol.storage.schema import Migration, load_migrations

#: ``json.dumps(value, ensure_ascii=False)``, its encoder made once
_TEXT_ENCODER = json.JSONEncoder(ensure_ascii=False)

SCHEDULE_RUN_COLUMNS = "job_id, scheduled_for, claimed, host, pid, outcome, build_id"

__all__ = ["BUILD_COLUMNS", "Migration", "SqlStorage", "load_migrations"]

#: most claimed builds whose JSON columns are kept for their finish (see ``_claimed``)
MAX_CLAIMED_KEPT = 1000

#: the states a build is deleted in, and its logs trimmed in, never: it is still being written
_UNFINISHED = (BuildState.QUEUED.value, BuildState.RUNNING.value)


class _Claim:
    """What a storage object knows of a build it claimed and has not finished yet: the
    build as inserted and its JSON columns as stored (its finish reads back only what
    others may have changed since), and the number its next log record gets (None:
    unknown, read from the table)."""

    __slots__ = ("build", "definition_json", "deps_json", "next_seq")

    def __init__(self, build: Build, definition_json: str, deps_json: str,
                 next_seq: int | None) -> None:
        self.build = build
        self.definition_json = definition_json
        self.deps_json = deps_json
        self.next_seq = next_seq

    @property
    def definition(self) -> dict[str, Any]:
        return self.build.definition

    @property
    def dependency_builds(self) -> dict[str, int]:
        return self.build.dependency_builds


#: the finish of a build claimed by the same object (see ``SqlStorage._finish_claimed``)
_FINISH_CLAIMED_SQL = (
    "UPDATE builds SET state = ?, reason = ?, finished = ?, result_kind = ?, "
    "result_data = ?, exc_type = ?, exc_message = ?, exc_traceback = ? "
    "WHERE id = ? AND state IN (?, ?) RETURNING heartbeat, cancel_requested, cancel_reason"
)


P = ParamSpec("P")
T = TypeVar("T")
S = TypeVar("S", bound="SqlStorage")


def retried(what: str, *, in_doubt_ok: bool = True
            ) -> Callable[[Callable[Concatenate[S, P], T]], Callable[Concatenate[S, P], T]]:
    """Mark an operation a dialect may try again after reopening a lost connection (see
    :meth:`SqlStorage._operation`): the one place where lost connections are retried.
    ``what`` names it in errors, formatted with its arguments by name (``"finishing build
    {build_id}"``); ``in_doubt_ok``: doing it twice is harmless (a COMMIT in doubt is
    tried again), else an error says it may or may not have happened."""

    def decorate(method: Callable[Concatenate[S, P], T]) -> Callable[Concatenate[S, P], T]:
        signature = inspect.signature(method)

        def describe(*args: Any, **kwargs: Any) -> str:
            return what.format_map(signature.bind(None, *args, **kwargs).arguments)

        @functools.wraps(method)
        def operation(self: S, *args: P.args, **kwargs: P.kwargs) -> T:
            return self._operation(lambda: method(self, *args, **kwargs),
                                   lambda: describe(*args, **kwargs), in_doubt_ok)
        return operation

    return decorate


class _WriteProbed(Exception):
    """Ends :meth:`SqlStorage.check_writable`'s transaction with a rollback."""


class _PendingLost(OutcomeNotRecordedError):
    """An outcome left pending (``commit_later``) could not be written again after the
    transaction it waited in failed (:meth:`SqlStorage.commit_pending` tries again)."""


class SqlStorage(Storage):
    """A :class:`Storage` on a DB-API connection; subclasses supply the dialect hooks.

    One connection per object, opened on first use, guarded by a lock so threads can share
    the object. The schema is migrated forward on first use.
    """

    #: folder under ``migrations/`` with this dialect's schema
    dialect: ClassVar[str]
    #: the driver's exceptions, reported as :class:`StorageError`
    driver_errors: ClassVar[tuple[type[Exception], ...]]
    #: the driver's paramstyle; queries are written with ``?``
    placeholder: ClassVar[str] = "?"
    #: aggregate of the ids of the builds ``b`` of a group, as one comma-separated text
    id_list_sql: ClassVar[str] = "group_concat(b.id)"
    #: appended to a SELECT of a build row a write transaction then depends on
    lock_rows_sql: ClassVar[str] = ""
    #: whether ``UPDATE ... RETURNING`` works (SQLite from 3.35)
    update_returning: ClassVar[bool] = True
    #: the table of applied migrations, created before the first one runs
    schema_table_ddl: ClassVar[str] = (
        "CREATE TABLE IF NOT EXISTS jobcontrol_schema ("
        "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied TEXT NOT NULL)"
    )

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.RLock()
        self._conn: Any = None
        self._ready = False
        self._closed = False
        self._migrations: list[Migration] | None = None
        #: the builds this object claimed and has not finished yet (see :class:`_Claim`)
        self._claimed: dict[int, _Claim] = {}
        #: the writes of outcomes left uncommitted (``commit_later``), in order: the open
        #: transaction holds them, and each is run again should that transaction fail
        self._pending: list[tuple[int, Callable[[], Any]]] = []
        #: such writes whose transaction failed, and which could not be written on their own
        #: either: :meth:`commit_pending` tries them again
        self._unwritten: list[tuple[int, Callable[[], Any]]] = []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label}>"

    @property
    def label(self) -> str:
        """How errors name this storage (never with a password)."""
        from jobcontrol.storage import redact_url

        return redact_url(self.url)

    # -- dialect hooks -----------------------------------------------------------------------

    @abc.abstractmethod
    def _connect(self) -> Any:
        """A new DB-API connection in autocommit mode (transactions are begun explicitly)."""

    @abc.abstractmethod
    def _insert_id(self, cur: Any, sql: str, params: Sequence[Any]) -> int:
        """Run an ``INSERT`` of one row and return its generated ``id``."""

    @abc.abstractmethod
    def _insert_claim(self, cur: Any, sql: str, params: Sequence[Any]) -> int | None:
        """Run the claim's ``INSERT ... SELECT ... WHERE`` of at most one row: its generated
        ``id``, or None when the condition let no row in. ``params`` are the row's 12
        values in the statement's column order, then the condition's job, state and
        concurrency. A dialect may commit the transaction with it (then its
        :meth:`_commit` does nothing)."""

    @abc.abstractmethod
    def _run_script(self, cur: Any, script: str) -> None:
        """Run the statements of a migration file inside the current transaction."""

    @abc.abstractmethod
    def _table_exists(self, cur: Any, name: str) -> bool:
        """Whether a table of that name exists."""

    def _operation(self, call: Callable[[], T], what: Callable[[], str],
                   in_doubt_ok: bool) -> T:
        """Run a :func:`retried` operation: ``call()`` (a dialect that can lose its
        connection tries it again, see ``PostgreSQLStorage``)."""
        return call()

    def _begin_write(self, cur: Any) -> None:
        """Begin a transaction that will write."""
        cur.execute("BEGIN")

    def _commit(self, conn: Any, cur: Any) -> None:
        """End the write transaction :meth:`_begin_write` began, keeping its work."""
        conn.commit()

    def _rollback(self, conn: Any, cur: Any) -> None:
        """End the write transaction, undoing its work."""
        conn.rollback()

    def _lock_job(self, cur: Any, job_id: str) -> None:
        """Serialise claims of ``job_id`` until the transaction ends (none needed by default)."""

    def _lock_schema(self, cur: Any) -> None:
        """Serialise migrations until the transaction ends (none needed by default)."""

    def _stored_as_given(self, reason: str | None, result: StoredValue | None,
                         exception: ExceptionInfo | None) -> bool:
        """Whether a finish's values are stored exactly as given (so it need not read back
        what it wrote): by default, always."""
        return True

    def _notify_logs(self, cur: Any, build_id: int) -> None:
        """Tell readers waiting in :meth:`wait_for_logs` that the build has news, once the
        transaction commits (nothing by default: they poll)."""

    def _insert_many(self, cur: Any, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Insert many rows with one statement."""
        cur.executemany(self._q(sql), rows)

    def _database_missing(self) -> bool:
        """True when the database plainly does not exist yet (so its version is 0)."""
        return False

    def _time_param(self, value: datetime | None) -> Any:
        """A time as the database stores it: ISO 8601 UTC text, microseconds always shown,
        so that text order is time order."""
        if value is None:
            return None
        if value.tzinfo is not timezone.utc:  # most are (utcnow(), read back)
            value = as_utc(value)
        return value.isoformat(timespec="microseconds")

    # -- plumbing ----------------------------------------------------------------------------

    def _q(self, sql: str) -> str:
        """``sql`` in the driver's paramstyle (no query here holds a literal ``?`` or ``%``)."""
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Report driver errors as :class:`StorageError`, naming the storage."""
        try:
            yield
        except self.driver_errors as exc:
            raise self._driver_error(exc) from exc

    def _driver_error(self, exc: Exception) -> StorageError:
        """A driver's error as a :class:`StorageError` naming the storage."""
        message = " ".join(str(exc).split())  # drivers' messages can span lines
        return StorageError(f"{self.label}: {message}")

    def _connection(self) -> Any:
        if self._closed:
            raise StorageError(f"{self.label} is closed")
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    @contextlib.contextmanager
    def _cursor(self, *, ready: bool = True) -> Iterator[Any]:
        """A cursor for reads, each statement its own transaction. Holds the lock."""
        # the lock and the error translation written out, not as nested context managers:
        # every storage call passes here, a build several times
        with self._lock:
            try:
                if ready and not self._ready:
                    self._ensure_schema()
                cur = (self._conn or self._connection()).cursor()
                try:
                    yield cur
                finally:
                    cur.close()
            except self.driver_errors as exc:
                raise self._driver_error(exc) from exc

    @contextlib.contextmanager
    def _transaction(self, *, ready: bool = True, commit: bool = True) -> Iterator[Any]:
        """A cursor in a write transaction: committed at the end, rolled back on any error.

        A transaction left open by a ``commit_later`` finish is continued (and committed with
        this one's work). ``commit=False`` leaves this one open too: the caller adds to
        :attr:`_pending` how to write it again on its own. Should the transaction fail, what
        was pending in it is written again (:meth:`_replay_pending`) before the error is
        raised."""
        with self._lock:
            try:
                if ready and not self._ready:
                    self._ensure_schema()
                conn = self._conn or self._connection()
                cur = conn.cursor()
                try:
                    if not self._pending:  # else it continues the one left open
                        self._begin_write(cur)
                    yield cur
                    if commit:
                        self._commit(conn, cur)
                        self._pending.clear()
                except BaseException:
                    # also after a failed COMMIT, which can leave the transaction open
                    self._forget_log_ends()  # the rollback may undo records
                    with contextlib.suppress(*self.driver_errors):
                        self._rollback(conn, cur)
                    if self._pending:
                        self._replay_pending()
                    raise
                finally:
                    cur.close()
            except self.driver_errors as exc:
                raise self._driver_error(exc) from exc

    def _forget_log_ends(self) -> None:
        """Where the logs of the builds this object claimed end is unknown from now on (a
        write failed, or was rolled back): their next records are numbered from what the
        table holds."""
        for claim in self._claimed.values():
            claim.next_seq = None

    def _replay_pending(self) -> None:
        """The transaction holding pending outcomes was rolled back: write them again, each
        committed on its own. One that cannot be written now is kept for
        :meth:`commit_pending` (the caller gets the error of its own write)."""
        self._unwritten += self._pending
        self._pending = []
        with contextlib.suppress(StorageError):
            self._write_unwritten()

    def _write_unwritten(self) -> None:
        """Write the outcomes a failed transaction took with it, each on its own, in order;
        :class:`_PendingLost` naming the first that cannot be written (it is kept)."""
        while self._unwritten:
            build_id, write_alone = self._unwritten.pop(0)  # not again from within itself
            try:
                write_alone()
            except StorageError as exc:
                self._unwritten.insert(0, (build_id, write_alone))
                raise _PendingLost(f"{exc} (recording the outcome of build {build_id})",
                                   build_id) from exc

    def commit_pending(self) -> None:
        with self._lock:
            if self._pending:
                # a failed COMMIT writes the outcomes again on their own, or keeps them
                with contextlib.suppress(StorageError), self._transaction(ready=False):
                    pass
            self._write_unwritten()

    def give_up_pending(self) -> list[int]:
        with self._lock:
            lost = [build_id for build_id, _ in self._unwritten]
            self._unwritten = []
            return lost

    @staticmethod
    def _dumps(value: Mapping[str, Any]) -> str:
        if isinstance(value, EncodedJSON):
            return value.text
        if not value:
            return "{}"
        try:
            return _TEXT_ENCODER.encode(dict(value))
        except (TypeError, ValueError) as exc:
            raise StorageError(f"cannot store a value that is not JSON: {exc}") from exc

    @staticmethod
    def _loads(value: Any) -> Any:
        # a driver may hand JSON columns back decoded already
        return json.loads(value) if isinstance(value, (str, bytes)) else value

    @staticmethod
    def _time(value: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)  # "+00:00" gives timezone.utc itself
        return value if value.tzinfo is timezone.utc else as_utc(value)

    def _build_from_row(self, row: Sequence[Any],
                        claimed: _Claim | None = None) -> Build:
        """The build a row of :data:`BUILD_COLUMNS` holds. ``claimed``: its JSON columns as
        this object stored them and decoded them, reused where the row still holds them."""
        (build_id, job_id, state, reason, definition, definition_hash, dependency_builds,
         created, started, finished, heartbeat, host, pid,
         result_kind, result_data, exc_type, exc_message, exc_traceback, retry_of,
         cancel_requested, cancel_reason, queue, pgid) = row
        if claimed is not None and claimed.definition_json == definition:
            definition = claimed.definition
        else:
            definition = self._loads(definition)
        if claimed is not None and claimed.deps_json == dependency_builds:
            dependency_builds = claimed.dependency_builds
        else:
            dependency_builds = self._loads(dependency_builds)
        return Build(
            id=build_id,
            job_id=job_id,
            state=BuildState(state),
            reason=reason,
            definition=definition,
            definition_hash=definition_hash,
            dependency_builds=dependency_builds,
            created=self._time(created),
            started=self._time(started),
            finished=self._time(finished),
            heartbeat=self._time(heartbeat),
            host=host,
            pid=pid,
            result=None if result_kind is None else StoredValue(result_kind, result_data),
            exception=(
                None if exc_type is None
                else ExceptionInfo(exc_type, exc_message or "", exc_traceback or "")
            ),
            retry_of=retry_of,
            cancel_requested=self._time(cancel_requested),
            cancel_reason=cancel_reason,
            queue=queue,
            pgid=pgid,
        )

    def _fetch_build(self, cur: Any, build_id: int) -> Build:
        cur.execute(self._q(f"{SELECT_BUILD} WHERE id = ?"), (build_id,))
        row = cur.fetchone()
        if row is None:
            raise BuildNotFoundError(build_id)
        return self._build_from_row(row)

    def _fenced(self, cur: Any, build_id: int) -> bool:
        """True when this object claimed the build (it is the build's runner) and the build
        is no longer running: someone else ended it (abandoned it, say), and the runner's
        late writes (log records, progress) are dropped, as its outcome is. Locks the row
        where it can, so that it stays running until the caller's transaction ends."""
        cur.execute(self._q(f"SELECT state FROM builds WHERE id = ?{self.lock_rows_sql}"),
                    (build_id,))
        row = cur.fetchone()
        return row is not None and row[0] not in _UNFINISHED

    def _check_build(self, cur: Any, build_id: int) -> None:
        """:class:`BuildNotFoundError` unless the build exists; locks its row where it can."""
        cur.execute(self._q(f"SELECT id FROM builds WHERE id = ?{self.lock_rows_sql}"),
                    (build_id,))
        if cur.fetchone() is None:
            raise BuildNotFoundError(build_id)

    # -- lifecycle ---------------------------------------------------------------------------

    def migrations(self) -> list[Migration]:
        """The migrations this code knows for its dialect; the last one's version is current."""
        if self._migrations is None:
            self._migrations = load_migrations(self.dialect)
        return self._migrations

    def _version(self, cur: Any) -> int:
        if not self._table_exists(cur, "jobcontrol_schema"):
            return 0
        cur.execute("SELECT max(version) FROM jobcontrol_schema")
        row = cur.fetchone()
        return int(row[0] or 0)

    def _check_not_newer(self, version: int) -> None:
        known = len(self.migrations())
        if version > known:
            raise StorageError(
                f"{self.label} has schema version {version}, newer than this jobcontrol "
                f"knows ({known}): upgrade jobcontrol"
            )

    def _ensure_schema(self) -> None:
        """Migrate on first use; afterwards a flag check."""
        if self._ready:
            return
        with self._cursor(ready=False) as cur:
            version = self._version(cur)
        self._check_not_newer(version)
        if version < len(self.migrations()):
            self._migrate()
        self._ready = True

    def _migrate(self) -> int:
        # the write transaction makes concurrent first uses wait, then find the work done
        with self._transaction(ready=False) as cur:
            self._lock_schema(cur)
            if not self._table_exists(cur, "jobcontrol_schema"):
                # only when missing: even "IF NOT EXISTS" needs the CREATE privilege
                cur.execute(self.schema_table_ddl)
            version = self._version(cur)
            self._check_not_newer(version)
            for migration in self.migrations()[version:]:
                self._run_script(cur, migration.sql)
                cur.execute(
                    self._q("INSERT INTO jobcontrol_schema (version, name, applied) "
                            "VALUES (?, ?, ?)"),
                    (migration.version, migration.name, self._time_param(self.now())),
                )
                version = migration.version
        return version

    @retried("migrating the schema")
    def install(self) -> int:
        with self._lock:
            version = self._migrate()
            self._ready = True
            return version

    def check_writable(self) -> None:
        try:
            with self._transaction() as cur:
                # a key no one uses: a real insert, whatever the table holds
                cur.execute(self._q("INSERT INTO settings (key, value) VALUES (?, ?)"),
                            (f"jobcontrol.check.{os.getpid()}.{time.time_ns()}", ""))
                raise _WriteProbed  # rolled back: nothing stays
        except _WriteProbed:
            pass
        except StorageError as exc:
            raise StorageError(f"{self.label} cannot be written: "
                               f"{str(exc).removeprefix(self.label + ': ')}") from exc

    @retried("reading the schema version")
    def schema_version(self) -> int:
        with self._lock:
            if self._conn is None and not self._closed and self._database_missing():
                return 0
            with self._cursor(ready=False) as cur:
                return self._version(cur)

    def close(self) -> None:
        with self._lock:
            try:
                if (self._pending or self._unwritten) and not self._closed:
                    self.commit_pending()  # an outcome it cannot write is raised, after
            finally:
                self._closed = True
                conn, self._conn = self._conn, None
                if conn is not None:
                    with self._errors():
                        conn.close()

    # -- builds ------------------------------------------------------------------------------

    def claim_build(
        self,
        job_id: str,
        *,
        concurrency: int,
        definition: Mapping[str, Any],
        definition_hash: str,
        dependency_builds: Mapping[str, int],
        host: str,
        pid: int,
        retry_of: int | None = None,
        claim_token: str | None = None,
    ) -> Build:
        """See :meth:`Storage.claim_build`. ``claim_token``: a value unique to this claim,
        written in its row (a claim whose answer was lost finds its row by it)."""
        check_concurrency(concurrency)
        definition_json = self._dumps(definition)
        deps = {str(k): int(v) for k, v in dependency_builds.items()}
        deps_json = self._dumps(deps)
        with self._transaction() as cur:
            self._lock_job(cur, job_id)
            now = self.now()  # after connecting: the server's clock
            stamp = self._time_param(now)
            # one conditional statement (with the lock, one round trip to a server): the
            # row goes in only while fewer than ``concurrency`` builds of the job run
            build_id = self._insert_claim(
                cur,
                "INSERT INTO builds (job_id, state, definition, definition_hash, "
                "dependency_builds, created, started, heartbeat, host, pid, retry_of, "
                "claim_token) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? "
                "WHERE (SELECT count(*) FROM builds WHERE job_id = ? AND state = ?) < ?",
                (job_id, BuildState.RUNNING.value, definition_json, definition_hash, deps_json,
                 stamp, stamp, stamp, host, pid, retry_of, claim_token,
                 job_id, BuildState.RUNNING.value, concurrency),
            )
            if build_id is None:
                cur.execute(
                    self._q("SELECT id FROM builds WHERE job_id = ? AND state = ? ORDER BY id"),
                    (job_id, BuildState.RUNNING.value),
                )
                raise JobAlreadyRunningError(job_id, [row[0] for row in cur.fetchall()])
        # the row as inserted, without reading it back: a query and its decoding saved on
        # every build (the times as stored: microseconds, UTC)
        started = as_utc(now)
        build = Build(
            id=build_id, job_id=job_id, state=BuildState.RUNNING,
            definition=json.loads(definition_json), definition_hash=definition_hash,
            dependency_builds=deps, created=started, started=started,
            heartbeat=started, host=host, pid=pid, retry_of=retry_of,
        )
        # this object numbers the log records of the builds it claimed (only it writes a
        # running build's log): no query for where a log ends, per batch
        self._remember_claim(_Claim(build, definition_json, deps_json, 1))
        return build

    def _remember_claim(self, claim: _Claim) -> None:
        """This object runs ``claim.build`` (it claimed it, or started it from the queue):
        its writes to the build land only while the build runs (see :meth:`_fenced`)."""
        if len(self._claimed) >= MAX_CLAIMED_KEPT:  # builds finished elsewhere: forget
            self._claimed.clear()
        self._claimed[claim.build.id] = claim

    def enqueue_build(
        self,
        job_id: str,
        *,
        definition: Mapping[str, Any],
        definition_hash: str,
        dependency_builds: Mapping[str, int],
        queue: str,
        retry_of: int | None = None,
    ) -> Build | None:
        definition_json = self._dumps(definition)
        deps_json = self._dumps({str(k): int(v) for k, v in dependency_builds.items()})
        return self._enqueue(job_id, definition_json, definition_hash, deps_json, queue,
                             retry_of, self._time_param(self.now()))

    def _enqueue(self, job_id: str, definition_json: str, definition_hash: str,
                 deps_json: str, queue: str, retry_of: int | None, created: Any
                 ) -> Build | None:
        """The body of :meth:`enqueue_build`, its creation time given (as stored)."""
        with self._transaction() as cur:
            if retry_of is not None:
                # serialised per job, so two workers retrying one build cannot both insert
                self._lock_job(cur, job_id)
                cur.execute(self._q("SELECT id FROM builds WHERE retry_of = ?"), (retry_of,))
                if cur.fetchone() is not None:
                    return None
            build_id = self._insert_id(
                cur,
                "INSERT INTO builds (job_id, state, definition, definition_hash, "
                "dependency_builds, created, retry_of, queue) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (job_id, BuildState.QUEUED.value, definition_json, definition_hash, deps_json,
                 created, retry_of, queue),
            )
            return self._fetch_build(cur, build_id)

    def start_queued_build(
        self,
        build_id: int,
        *,
        concurrency: int,
        host: str,
        pid: int,
        dependency_builds: Mapping[str, int] | None = None,
    ) -> Build | None:
        check_concurrency(concurrency)
        deps_json = None if dependency_builds is None else self._dumps(
            {str(k): int(v) for k, v in dependency_builds.items()})
        return self._start_queued(build_id, concurrency, host, pid, deps_json,
                                  self._time_param(self.now()))

    def _start_queued(self, build_id: int, concurrency: int, host: str, pid: int,
                      deps_json: str | None, now: Any) -> Build | None:
        """The body of :meth:`start_queued_build`, its start time given (as stored)."""
        with self._transaction() as cur:
            # the build's row, then its job: nothing holds a job's lock while it waits for
            # a row another claim has locked, so the two orders cannot deadlock
            cur.execute(self._q(f"SELECT job_id, state FROM builds WHERE id = ?"
                                f"{self.lock_rows_sql}"), (build_id,))
            job_id = self._queued_job(cur.fetchone(), build_id)
            if job_id is None:
                return None
            self._lock_job(cur, job_id)
            cur.execute(
                self._q("SELECT id FROM builds WHERE job_id = ? AND state = ? ORDER BY id"),
                (job_id, BuildState.RUNNING.value),
            )
            running = [r[0] for r in cur.fetchall()]
            if len(running) >= concurrency:
                raise JobAlreadyRunningError(job_id, running)
            cur.execute(
                self._q("UPDATE builds SET state = ?, started = ?, heartbeat = ?, host = ?, "
                        "pid = ?, dependency_builds = coalesce(?, dependency_builds) "
                        "WHERE id = ? AND state = ?"),
                (BuildState.RUNNING.value, now, now, host, pid, deps_json, build_id,
                 BuildState.QUEUED.value),
            )
            build = self._fetch_build(cur, build_id)
        # its JSON columns as stored are not at hand: its finish decodes them again
        self._remember_claim(_Claim(build, "", "", None))
        return build

    @staticmethod
    def _queued_job(row: Sequence[Any] | None, build_id: int) -> str | None:
        """The job of a build to start, from its ``(job_id, state)``; None when it is not
        queued any more, BuildNotFoundError when there is no such build."""
        if row is None:
            raise BuildNotFoundError(build_id)
        job_id, state = row
        return str(job_id) if state == BuildState.QUEUED.value else None

    @retried("reading a build")
    def get_retry(self, build_id: int) -> Build | None:
        with self._cursor() as cur:
            cur.execute(self._q(f"{SELECT_BUILD} WHERE retry_of = ?"), (build_id,))
            row = cur.fetchone()
        return None if row is None else self._build_from_row(row)

    @retried("finishing build {build_id}")
    def finish_build(
        self,
        build_id: int,
        state: BuildState,
        *,
        reason: str | None = None,
        result: StoredValue | None = None,
        exception: ExceptionInfo | None = None,
        finished: datetime | None = None,
    ) -> Build:
        with self._transaction() as cur:
            return self._finish(cur, build_id, state, reason, result, exception, finished)

    def finish_build_with_logs(
        self,
        build_id: int,
        state: BuildState,
        *,
        logs: Sequence[LogRecord],
        reason: str | None = None,
        result: StoredValue | None = None,
        exception: ExceptionInfo | None = None,
        commit_later: bool = False,
    ) -> Build:
        with self._transaction(commit=not commit_later) as cur:
            if logs:
                self._append(cur, build_id, logs)
            build = self._finish(cur, build_id, state, reason, result, exception)
            if commit_later:  # under the lock: no other thread begins a transaction meanwhile
                self._pending.append((build_id, functools.partial(
                    self._finish_again, build_id, state, list(logs), reason, result,
                    exception)))
        return build

    def _finish_again(self, build_id: int, state: BuildState, logs: Sequence[LogRecord],
                      reason: str | None, result: StoredValue | None,
                      exception: ExceptionInfo | None) -> Build:
        """Write a ``commit_later`` finish again on its own, the transaction it waited in
        having failed (a dialect whose COMMIT can be in doubt looks first whether it
        landed)."""
        return self.finish_build_with_logs(build_id, state, logs=logs, reason=reason,
                                           result=result, exception=exception)

    def _finish(self, cur: Any, build_id: int, state: BuildState, reason: str | None,
                result: StoredValue | None, exception: ExceptionInfo | None,
                finished: datetime | None = None) -> Build:
        claimed = self._claimed.get(build_id)  # forgotten once finished: a failure keeps it
        if (claimed is not None and self.update_returning and finished is None
                and self._stored_as_given(reason, result, exception)):
            build = self._finish_claimed(cur, claimed, state, reason, result, exception)
        else:
            row = self._finish_update(cur, build_id, state, reason, result, exception,
                                      finished=finished)
            # fenced off (or no RETURNING): as it stands
            build = (self._fetch_build(cur, build_id) if row is None
                     else self._build_from_row(row, claimed))
        self._claimed.pop(build_id, None)
        return build

    def _finish_claimed(self, cur: Any, claim: _Claim, state: BuildState, reason: str | None,
                        result: StoredValue | None, exception: ExceptionInfo | None) -> Build:
        """The finish of a build this object claimed: the same conditional UPDATE, which
        returns only what may have changed since the claim (the heartbeat, a cancel
        request); the rest of the build is as claimed, or as written now."""
        state = check_finished_state(state)
        build = claim.build
        finished = self.now()
        self._notify_logs(cur, build.id)  # a follower stops at the outcome (or looks again)
        cur.execute(_FINISH_CLAIMED_SQL if self.placeholder == "?" else self._q(
            _FINISH_CLAIMED_SQL), (
            state.value, reason, self._time_param(finished),
            result.kind if result else None, result.data if result else None,
            exception.type if exception else None,
            exception.message if exception else None,
            exception.traceback if exception else None,
            build.id, BuildState.QUEUED.value, BuildState.RUNNING.value,
        ))
        row = cur.fetchone()
        if row is None:  # fenced off (or gone: BuildNotFoundError): as it stands
            return self._fetch_build(cur, build.id)
        heartbeat, cancel_requested, cancel_reason = row
        return Build(
            id=build.id, job_id=build.job_id, state=state, reason=reason,
            definition=build.definition, definition_hash=build.definition_hash,
            dependency_builds=build.dependency_builds, created=build.created,
            started=build.started, finished=as_utc(finished), heartbeat=self._time(heartbeat),
            host=build.host, pid=build.pid, result=result, exception=exception,
            retry_of=build.retry_of, cancel_requested=self._time(cancel_requested),
            cancel_reason=cancel_reason, queue=build.queue, pgid=build.pgid,
        )

    def _finish_update(self, cur: Any, build_id: int, state: BuildState, reason: str | None,
                       result: StoredValue | None, exception: ExceptionInfo | None,
                       also_return: str = "", finished: datetime | None = None
                       ) -> Sequence[Any] | None:
        """The finishing UPDATE: the row it changed (its :data:`BUILD_COLUMNS`, then
        ``also_return`` if given) where the database can return it, else None."""
        state = check_finished_state(state)
        # one conditional UPDATE: a late writer never overwrites a recorded outcome; it
        # returns the row it changed where the database can (no second query)
        returning = ""
        if self.update_returning:
            returning = f" RETURNING {', '.join(BUILD_COLUMNS)}{also_return}"
        # sent with the UPDATE (a NOTIFY is delivered at COMMIT, and once however often
        # sent): a follower stops at the outcome, or looks again where it was fenced off
        self._notify_logs(cur, build_id)
        cur.execute(
            self._q(
                "UPDATE builds SET state = ?, reason = ?, finished = ?, result_kind = ?, "
                "result_data = ?, exc_type = ?, exc_message = ?, exc_traceback = ? "
                "WHERE id = ? AND state IN (?, ?)" + returning
            ),
            (
                state.value, reason, self._time_param(finished or self.now()),
                result.kind if result else None, result.data if result else None,
                exception.type if exception else None,
                exception.message if exception else None,
                exception.traceback if exception else None,
                build_id, BuildState.QUEUED.value, BuildState.RUNNING.value,
            ),
        )
        return cur.fetchone() if returning else None

    @retried("heartbeat")
    def heartbeat(self, build_ids: Sequence[int]) -> set[int]:
        ids = list(dict.fromkeys(build_ids))
        if not ids:
            return set()
        beating: set[int] = set()
        with self._transaction() as cur:
            now = self._time_param(self.now())
            for start in range(0, len(ids), MAX_IN_PARAMS):
                chunk = ids[start:start + MAX_IN_PARAMS]
                cur.execute(
                    self._q(f"UPDATE builds SET heartbeat = ? "
                            f"WHERE state = ? AND id IN ({in_params(chunk)})"),
                    (now, BuildState.RUNNING.value, *chunk),
                )
                if cur.rowcount != len(chunk):  # some ended: which (rarely asked)
                    cur.execute(
                        self._q(f"SELECT id FROM builds "
                                f"WHERE state = ? AND id IN ({in_params(chunk)})"),
                        (BuildState.RUNNING.value, *chunk),
                    )
                    beating.update(row[0] for row in cur.fetchall())
                else:
                    beating.update(chunk)
        return set(ids) - beating

    @retried("recording the process group of build {build_id}")
    def set_process_group(self, build_id: int, pgid: int) -> None:
        with self._transaction() as cur:
            cur.execute(self._q("UPDATE builds SET pgid = ? WHERE id = ? AND state = ?"),
                        (pgid, build_id, BuildState.RUNNING.value))
        claim = self._claimed.get(build_id)
        if claim is not None:  # its finish returns the build as claimed, with this
            claim.build = dataclasses.replace(claim.build, pgid=pgid)

    @retried("cancelling build {build_id}")
    def request_cancel(self, build_id: int, reason: str) -> Build:
        with self._transaction() as cur:
            now = self._time_param(self.now())
            cur.execute(
                self._q("UPDATE builds SET state = ?, reason = ?, finished = ? "
                        "WHERE id = ? AND state = ?"),
                (BuildState.CANCELLED.value, reason, now, build_id, BuildState.QUEUED.value),
            )
            cur.execute(
                self._q("UPDATE builds SET cancel_requested = ?, cancel_reason = ? "
                        "WHERE id = ? AND state = ? AND cancel_requested IS NULL"),
                (now, reason, build_id, BuildState.RUNNING.value),
            )
            return self._fetch_build(cur, build_id)

    @retried("reading cancel requests")
    def cancel_requests(self, build_ids: Sequence[int]) -> dict[int, str]:
        ids = list(dict.fromkeys(build_ids))
        found: dict[int, str] = {}
        with self._cursor() as cur:
            for start in range(0, len(ids), MAX_IN_PARAMS):
                chunk = ids[start:start + MAX_IN_PARAMS]
                cur.execute(
                    self._q(f"SELECT id, cancel_reason FROM builds WHERE state = ? "
                            f"AND cancel_requested IS NOT NULL AND id IN ({in_params(chunk)})"),
                    (BuildState.RUNNING.value, *chunk),
                )
                found.update((int(build_id), reason or "") for build_id, reason in cur)
        return found

    @retried("recording a build of {job_id!r}", in_doubt_ok=False)
    def record_build(
        self,
        job_id: str,
        state: BuildState,
        *,
        reason: str,
        definition: Mapping[str, Any],
        definition_hash: str,
        host: str,
        pid: int,
    ) -> Build:
        state = check_finished_state(state)
        with self._transaction() as cur:
            now = self._time_param(self.now())
            build_id = self._insert_id(
                cur,
                "INSERT INTO builds (job_id, state, reason, definition, definition_hash, "
                "created, started, finished, host, pid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (job_id, state.value, reason, self._dumps(definition), definition_hash,
                 now, now, now, host, pid),
            )
            return self._fetch_build(cur, build_id)

    # -- schedules ---------------------------------------------------------------------------

    @retried("claiming the run of {job_id!r} due at {scheduled_for}", in_doubt_ok=False)
    def claim_scheduled_run(self, job_id: str, scheduled_for: datetime, *, host: str,
                            pid: int, outcome: str = "claimed") -> bool:
        with self._transaction() as cur:
            # the primary key decides: one INSERT wins, the others insert nothing
            cur.execute(
                self._q("INSERT INTO schedule_runs (job_id, scheduled_for, claimed, host, pid, "
                        "outcome) VALUES (?, ?, ?, ?, ?, ?) "
                        "ON CONFLICT (job_id, scheduled_for) DO NOTHING"),
                (job_id, self._time_param(scheduled_for), self._time_param(self.now()), host,
                 pid, outcome),
            )
            return cur.rowcount == 1

    @retried("recording a scheduled run")
    def set_scheduled_run(self, job_id: str, scheduled_for: datetime, *, outcome: str,
                          build_id: int | None = None) -> None:
        with self._transaction() as cur:
            cur.execute(
                self._q("UPDATE schedule_runs SET outcome = ?, build_id = ? "
                        "WHERE job_id = ? AND scheduled_for = ?"),
                (outcome, build_id, job_id, self._time_param(scheduled_for)),
            )

    @retried("reading scheduled runs")
    def last_scheduled_runs(self, job_ids: Iterable[str] | None = None
                            ) -> dict[str, ScheduledRun]:
        sql = (f"SELECT {SCHEDULE_RUN_COLUMNS} FROM schedule_runs s WHERE scheduled_for = "
               f"(SELECT max(scheduled_for) FROM schedule_runs WHERE job_id = s.job_id)")
        with self._cursor() as cur:
            cur.execute(sql)
            runs = [self._scheduled_run(row) for row in cur.fetchall()]
        wanted = None if job_ids is None else set(job_ids)
        return {run.job_id: run for run in runs if wanted is None or run.job_id in wanted}

    @retried("reading scheduled runs")
    def scheduled_runs(self, job_id: str, *, limit: int | None = None) -> list[ScheduledRun]:
        sql = (f"SELECT {SCHEDULE_RUN_COLUMNS} FROM schedule_runs WHERE job_id = ? "
               f"ORDER BY scheduled_for DESC")
        params: list[Any] = [job_id]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._cursor() as cur:
            cur.execute(self._q(sql), params)
            return [self._scheduled_run(row) for row in cur.fetchall()]

    def _scheduled_run(self, row: Sequence[Any]) -> ScheduledRun:
        job_id, scheduled_for, claimed, host, pid, outcome, build_id = row
        return ScheduledRun(job_id=job_id, scheduled_for=self._time(scheduled_for),
                            claimed=self._time(claimed), outcome=outcome, host=host, pid=pid,
                            build_id=build_id)  # type: ignore[arg-type]

    @retried("reading a build")
    def get_build(self, build_id: int) -> Build:
        with self._cursor() as cur:
            return self._fetch_build(cur, build_id)

    @retried("listing builds")
    def list_builds(
        self,
        job_id: str | None = None,
        *,
        states: Sequence[BuildState] | None = None,
        limit: int | None = None,
        before_id: int | None = None,
    ) -> list[Build]:
        where: list[str] = []
        params: list[Any] = []
        if job_id is not None:
            where.append("job_id = ?")
            params.append(job_id)
        if states is not None:
            values = sorted({BuildState(s).value for s in states})
            if not values:
                return []
            where.append(f"state IN ({in_params(values)})")
            params.extend(values)
        if before_id is not None:
            where.append("id < ?")
            params.append(before_id)
        sql = SELECT_BUILD
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(max(limit, 0))
        with self._cursor() as cur:
            cur.execute(self._q(sql), params)
            return [self._build_from_row(row) for row in cur.fetchall()]

    def _summaries_query(self, wanted: set[str] | None) -> tuple[str, list[Any]]:
        """The statement :meth:`job_summaries` runs, in the driver's paramstyle, with its
        parameters (``benchmarks/status_query.py`` EXPLAINs it). More jobs than
        :data:`MAX_IN_PARAMS`: all are read, and the caller filters."""
        params = sorted(wanted) if wanted is not None and len(wanted) <= MAX_IN_PARAMS else []
        sql = job_summaries_sql(self.id_list_sql, len(params) if params else None)
        return self._q(sql), params

    def job_summaries(self, job_ids: Iterable[str] | None = None) -> dict[str, JobSummary]:
        wanted = None if job_ids is None else set(job_ids)  # an iterator is read once
        if wanted is not None and not wanted:
            return {}
        return self._summaries(wanted)

    @retried("reading status")
    def _summaries(self, wanted: set[str] | None) -> dict[str, JobSummary]:
        sql, params = self._summaries_query(wanted)
        with self._cursor() as cur:
            cur.execute(sql, params)
            rows = cur.fetchall()
        width = len(BUILD_COLUMNS)
        summaries: dict[str, JobSummary] = {}
        for row in rows:
            running_ids = row[0]
            last = self._build_from_row(row[1:1 + width])
            success_row = row[1 + width:]
            if wanted is not None and last.job_id not in wanted:
                continue
            running = sorted(int(i) for i in str(running_ids).split(",")) if running_ids else []
            if success_row[0] is None:
                last_success = None
            elif success_row[0] == last.id:  # most often the newest build is the newest success
                last_success = last
            else:
                last_success = self._build_from_row(success_row)
            summaries[last.job_id] = JobSummary(
                job_id=last.job_id,
                last_build=last,
                last_success=last_success,
                running=tuple(running),
            )
        return summaries

    @retried("deleting build {build_id}", in_doubt_ok=False)
    def delete_build(self, build_id: int) -> None:
        with self._transaction() as cur:
            # logs and progress go with it: ON DELETE CASCADE
            cur.execute(self._q("DELETE FROM builds WHERE id = ?"), (build_id,))
            if cur.rowcount == 0:
                raise BuildNotFoundError(build_id)

    # -- logs --------------------------------------------------------------------------------

    def append_logs(self, build_id: int, records: Sequence[LogRecord]) -> None:
        if not records:
            return
        with self._transaction() as cur:
            self._append(cur, build_id, records)

    def _append(self, cur: Any, build_id: int, records: Sequence[LogRecord]) -> int | None:
        """The body of :meth:`append_logs`, inside the caller's transaction: the seq of the
        first record stored (None: dropped, the build's runner being fenced off)."""
        claim = self._claimed.get(build_id)
        if claim is not None and self._fenced(cur, build_id):
            return None
        if claim is not None and claim.next_seq is not None:
            last_seq = claim.next_seq - 1  # a build this object claimed: it writes its log
        else:
            # one statement: whether the build exists (locking its row where it can), and
            # where its log ends
            cur.execute(self._q(f"SELECT (SELECT max(seq) FROM logs WHERE build_id = b.id) "
                                f"FROM builds b WHERE b.id = ?{self.lock_rows_sql}"),
                        (build_id,))
            row = cur.fetchone()
            if row is None:
                raise BuildNotFoundError(build_id)
            last_seq = row[0] or 0
        self._insert_logs(cur, build_id, last_seq + 1, records)
        if claim is not None:
            claim.next_seq = last_seq + len(records) + 1
        self._notify_logs(cur, build_id)
        return last_seq + 1

    def _insert_logs(self, cur: Any, build_id: int, first_seq: int,
                     records: Sequence[LogRecord]) -> None:
        """Insert ``records`` numbered from ``first_seq``."""
        self._insert_many(
            cur,
            "INSERT INTO logs (build_id, seq, time, level, logger, message, exception) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(build_id, first_seq + n, self._time_param(r.time), r.level, r.logger,
              r.message, r.exception) for n, r in enumerate(records)],
        )

    @retried("reading logs")
    def get_logs(
        self,
        build_id: int,
        *,
        min_level: int = 0,
        after_seq: int = 0,
        limit: int | None = None,
        until_seq: int | None = None,
    ) -> list[LogRecord]:
        sql = f"SELECT {LOG_COLUMNS} FROM logs WHERE build_id = ? AND seq > ? AND level >= ?"
        params: list[Any] = [build_id, after_seq, min_level]
        if until_seq is not None:
            sql += " AND seq <= ?"
            params.append(until_seq)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(max(limit, 0))
        with self._cursor() as cur:
            cur.execute(self._q(sql), params)
            rows = cur.fetchall()
        return [
            LogRecord(time=self._time(time), level=level, logger=logger,  # type: ignore[arg-type]
                      message=message, exception=exception, seq=seq)
            for seq, time, level, logger, message, exception in rows
        ]

    # -- progress ----------------------------------------------------------------------------

    @retried("storing progress of build {build_id}")
    def set_progress(self, build_id: int, items: Sequence[ProgressItem]) -> None:
        if not items:
            return
        now = self.now()
        rows = [
            (
                build_id,
                json.dumps([str(part) for part in item.group], ensure_ascii=False),
                float(item.current),
                None if item.total is None else float(item.total),
                item.message,
                self._time_param(item.updated or now),
            )
            for item in items
        ]
        with self._transaction() as cur:
            self._check_build(cur, build_id)
            if build_id in self._claimed and self._fenced(cur, build_id):
                return
            self._insert_many(
                cur,
                "INSERT INTO progress (build_id, group_path, current, total, message, updated) "
                "VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (build_id, group_path) DO UPDATE SET current = excluded.current, "
                "total = excluded.total, message = excluded.message, updated = excluded.updated",
                rows,
            )

    @retried("reading progress")
    def get_progress(self, build_id: int) -> list[ProgressItem]:
        with self._cursor() as cur:
            cur.execute(
                self._q("SELECT group_path, current, total, message, updated FROM progress "
                        "WHERE build_id = ?"),
                (build_id,),
            )
            rows = cur.fetchall()
        items = [
            ProgressItem(group=tuple(self._loads(group)), current=current, total=total,
                         message=message, updated=self._time(updated))
            for group, current, total, message, updated in rows
        ]
        # in Python: JSON text order puts ["a","b"] before ["a"]; tuple order does not
        return sorted(items, key=lambda item: item.group)

    # -- housekeeping ------------------------------------------------------------------------

    @retried("listing builds of {job_id!r}")
    def build_stubs(
        self, job_id: str, *, before_id: int | None = None, limit: int | None = None
    ) -> list[BuildStub]:
        sql = "SELECT id, job_id, state, created, started, finished FROM builds WHERE job_id = ?"
        params: list[Any] = [job_id]
        if before_id is not None:
            sql += " AND id < ?"
            params.append(before_id)
        sql += " ORDER BY id DESC"  # the (job_id, id) index, read backwards
        if limit is not None:
            sql += " LIMIT ?"
            params.append(max(limit, 0))
        with self._cursor() as cur:
            cur.execute(self._q(sql), params)
            rows = cur.fetchall()
        return [
            BuildStub(id=build_id, job_id=job, state=BuildState(state),
                      created=self._time(created),  # type: ignore[arg-type]
                      started=self._time(started), finished=self._time(finished))
            for build_id, job, state, created, started, finished in rows
        ]

    @retried("deleting builds")
    def delete_builds(self, build_ids: Sequence[int]) -> int:
        deleted = 0
        for chunk in batches(list(dict.fromkeys(build_ids))):
            with self._transaction() as cur:
                # logs and progress go with each build: ON DELETE CASCADE
                cur.execute(
                    self._q(f"DELETE FROM builds WHERE id IN ({in_params(chunk)}) "
                            f"AND state NOT IN (?, ?)"),
                    (*chunk, *_UNFINISHED),
                )
                deleted += cur.rowcount
        return deleted

    def _cutoffs_sql(self, cutoffs: Sequence[LogCutoff]) -> tuple[str, list[Any]]:
        """``(level <= ? AND time < ?) OR ...`` over ``cutoffs``, with its parameters."""
        params: list[Any] = []
        for cutoff in cutoffs:
            params += [cutoff.max_level, self._time_param(cutoff.before)]
        return " OR ".join(["(level <= ? AND time < ?)"] * len(cutoffs)), params

    @retried("counting log records")
    def count_logs(
        self, build_ids: Sequence[int], cutoffs: Sequence[LogCutoff] | None = None
    ) -> int:
        if cutoffs is not None and not cutoffs:
            return 0  # no cutoff matches any record
        where, cutoff_params = self._cutoffs_sql(cutoffs or ())
        total = 0
        with self._cursor() as cur:
            for chunk in batches(list(dict.fromkeys(build_ids))):
                sql = f"SELECT count(*) FROM logs WHERE build_id IN ({in_params(chunk)})"
                if where:
                    sql += f" AND ({where})"
                cur.execute(self._q(sql), (*chunk, *cutoff_params))
                total += int(cur.fetchone()[0])
        return total

    @retried("deleting log records")
    def delete_logs(self, build_ids: Sequence[int], cutoffs: Sequence[LogCutoff]) -> int:
        if not cutoffs:
            return 0
        where, cutoff_params = self._cutoffs_sql(cutoffs)
        deleted = 0
        for chunk in batches(list(dict.fromkeys(build_ids))):
            with self._transaction() as cur:
                # never a log still being written: its next batch numbers on from max(seq)
                cur.execute(
                    self._q(f"DELETE FROM logs WHERE build_id IN ("
                            f"SELECT id FROM builds WHERE id IN ({in_params(chunk)}) "
                            f"AND state NOT IN (?, ?)) AND ({where})"),
                    (*chunk, *_UNFINISHED, *cutoff_params),
                )
                deleted += cur.rowcount
        return deleted

    # -- settings ----------------------------------------------------------------------------

    @retried("reading a setting")
    def get_setting(self, key: str) -> str | None:
        with self._cursor() as cur:
            cur.execute(self._q("SELECT value FROM settings WHERE key = ?"), (key,))
            row = cur.fetchone()
        return None if row is None else str(row[0])

    @retried("storing setting {key!r}")
    def set_setting(self, key: str, value: str, *, replace: bool = False) -> str:
        on_conflict = "DO UPDATE SET value = excluded.value" if replace else "DO NOTHING"
        with self._transaction() as cur:
            cur.execute(self._q(f"INSERT INTO settings (key, value) VALUES (?, ?) "
                                f"ON CONFLICT (key) {on_conflict}"), (key, value))
            cur.execute(self._q("SELECT value FROM settings WHERE key = ?"), (key,))
            return str(cur.fetchone()[0])

    # -- web sessions and failed logins ------------------------------------------------------

    @retried("starting a web session")
    def start_web_session(self, session_id: str, user: str, now: datetime,
                          expires: datetime) -> None:
        with self._transaction() as cur:
            cur.execute(self._q("DELETE FROM web_sessions WHERE expires <= ?"),
                        (self._time_param(now),))
            cur.execute(self._q("INSERT INTO web_sessions (id, user_name, expires) "
                                "VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING"),
                        (session_id, user, self._time_param(expires)))

    @retried("reading a web session")
    def web_session_user(self, session_id: str, now: datetime) -> str | None:
        with self._cursor() as cur:
            cur.execute(self._q("SELECT user_name FROM web_sessions WHERE id = ? "
                                "AND expires > ?"), (session_id, self._time_param(now)))
            row = cur.fetchone()
        return None if row is None else str(row[0])

    @retried("ending a web session")
    def end_web_session(self, session_id: str) -> None:
        with self._transaction() as cur:
            cur.execute(self._q("DELETE FROM web_sessions WHERE id = ?"), (session_id,))

    @retried("recording a failed login")
    def record_login_failure(self, keys: Sequence[str], at: datetime,
                             forget_before: datetime) -> None:
        with self._transaction() as cur:
            cur.execute(self._q("DELETE FROM login_failures WHERE at < ?"),
                        (self._time_param(forget_before),))
            self._insert_many(cur, "INSERT INTO login_failures (key, at) VALUES (?, ?)",
                              [(key, self._time_param(at)) for key in keys])

    @retried("reading failed logins")
    def login_failures(self, key: str, since: datetime) -> list[datetime]:
        with self._cursor() as cur:
            cur.execute(self._q("SELECT at FROM login_failures WHERE key = ? AND at >= ? "
                                "ORDER BY at"), (key, self._time_param(since)))
            return [self._time(row[0]) for row in cur.fetchall()]  # type: ignore[misc]
