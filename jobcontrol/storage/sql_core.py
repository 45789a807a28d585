"""The core of :class:`~jobcontrol.storage.sql.SqlStorage`: the dialect hooks, the
connection and its transactions (with outcomes left pending by ``commit_later``, committed
within :data:`~jobcontrol.storage.commit_timer.PENDING_COMMIT_DELAY` all the same), the
one place lost connections are retried (:func:`retried`), rows decoded, the schema
migrated."""

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
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, ClassVar, Concatenate, ParamSpec, TypeVar

from jobcontrol.errors import (
    BuildNotFoundError,
    OutcomeNotRecordedError,
    StorageError,
)
from jobcontrol.models import (
    Build,
    BuildState,
    EncodedJSON,
    ExceptionInfo,
    LogRecord,
    StoredValue,
)
from jobcontrol.storage.arguments import row_limit
from jobcontrol.storage.base import (
    Storage,
)
from jobcontrol.storage.commit_timer import PENDING_COMMIT_DELAY, CommitTimer
from jobcontrol.storage.queries import (
    load_queries,
)
from jobcontrol.storage.schema import Migration, load_migrations
from jobcontrol.timeutil import as_utc

#: ``json.dumps(value, ensure_ascii=False)``, its encoder made once
_TEXT_ENCODER = json.JSONEncoder(ensure_ascii=False)

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


P = ParamSpec("P")
T = TypeVar("T")
S = TypeVar("S", bound="SqlCore")


def retried(what: str, *, in_doubt_ok: bool = True
            ) -> Callable[[Callable[Concatenate[S, P], T]], Callable[Concatenate[S, P], T]]:
    """Mark an operation a dialect may try again after reopening a lost connection (see
    :meth:`SqlStorage._operation`): the one place where lost connections are retried.
    ``what`` names it in errors, formatted with its arguments by name (``"finishing build
    {build_id}"``); ``in_doubt_ok``: doing it twice is harmless (a COMMIT in doubt is
    tried again), else an error says it may or may not have happened."""

    def decorate(method: Callable[Concatenate[S, P], T]) -> Callable[Concatenate[S, P], T]:
        def describe(*args: Any, **kwargs: Any) -> str:  # only when it failed
            return what.format_map(inspect.signature(method).bind(None, *args, **kwargs)
                                   .arguments)

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


@dataclasses.dataclass(frozen=True)
class PendingOutcome:
    """An outcome left for the next write to commit (``commit_later``)."""

    build_id: int
    #: how the build ended, for an error that gives it up: "build 7 (report) ended success"
    outcome: str
    #: writes it again on its own, should the transaction it waits in fail
    write_alone: Callable[[], Any]


class SqlCore(Storage):
    """What the rooms of :class:`~jobcontrol.storage.sql.SqlStorage` share: a
    :class:`Storage` on a DB-API connection; dialects supply the hooks.

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
        #: the SQL of each operation, by name (:func:`load_queries`)
        self.sql = load_queries(self.dialect, self.placeholder)
        #: the builds this object claimed and has not finished yet (see :class:`_Claim`)
        self._claimed: dict[int, _Claim] = {}
        #: the writes of outcomes left uncommitted (``commit_later``), in order: the open
        #: transaction holds them, and each is run again should that transaction fail
        self._pending: list[PendingOutcome] = []
        #: such writes whose transaction failed, and which could not be written on their own
        #: either: :meth:`commit_pending` tries them again
        self._unwritten: list[PendingOutcome] = []
        #: commits what is pending should no write take it soon (callers need not), this
        #: many seconds after it was left pending
        self.pending_commit_delay = PENDING_COMMIT_DELAY
        self._commit_timer = CommitTimer(self._commit_when_due)

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
        ``id``, or None when the condition let no row in. ``params`` are the row's 14
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

    def _limited(self, sql: str, params: list[Any], limit: int | None) -> str:
        """``sql`` with a listing's ``limit`` (see :func:`~.base.row_limit`) added to it and
        to ``params``."""
        rows = row_limit(limit)
        if rows is None:
            return sql
        params.append(rows)
        return f"{sql} LIMIT {self.placeholder}"

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
                        self._commit_timer.disarm()
                    else:
                        self._commit_timer.arm(self.pending_commit_delay)
                except BaseException:
                    # also after a failed COMMIT, which can leave the transaction open
                    self._forget_log_ends()  # the rollback may undo records
                    with contextlib.suppress(*self.driver_errors):
                        self._rollback(conn, cur)
                    if self._pending:
                        self._replay_pending()
                        if self._unwritten:  # tried again by the timer, and by close()
                            self._commit_timer.arm()
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
            pending = self._unwritten.pop(0)  # not again from within itself
            try:
                pending.write_alone()
            except StorageError as exc:
                self._unwritten.insert(0, pending)
                raise _PendingLost(
                    f"{exc} (recording the outcome of build {pending.build_id})",
                    pending.build_id, pending.outcome) from exc

    def commit_pending(self) -> None:
        with self._lock:
            if self._pending:
                # a failed COMMIT writes the outcomes again on their own, or keeps them
                with contextlib.suppress(StorageError), self._transaction(ready=False):
                    pass
            self._write_unwritten()

    def _commit_when_due(self) -> bool:
        """The commit timer's call: commit what is pending; True when nothing is left."""
        with self._lock:
            if self._closed:
                return True
            with contextlib.suppress(StorageError):  # kept: tried again, and by close()
                self.commit_pending()
            return not (self._pending or self._unwritten)

    def give_up_pending(self) -> list[int]:
        with self._lock:
            lost = [pending.build_id for pending in self._unwritten]
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
         cancel_requested, cancel_reason, queue, pgid, run_id, params, worker_id,
         pid_namespace) = row
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
            run_id=run_id,
            params=None if params is None else self._loads(params),
            worker_id=worker_id,
            pid_namespace=pid_namespace,
        )

    def _fetch_build(self, cur: Any, build_id: int) -> Build:
        cur.execute(self.sql["fetch_build"], (build_id,))
        row = cur.fetchone()
        if row is None:
            raise BuildNotFoundError(build_id)
        return self._build_from_row(row)

    @abc.abstractmethod
    def _append(self, cur: Any, build_id: int, records: Sequence[LogRecord], *,
                fence: bool = True) -> int | None:
        """Store log records in the caller's transaction (see ``SqlLogs._append``)."""

    def _fenced(self, cur: Any, build_id: int) -> bool:
        """True when this object claimed the build (it is the build's runner) and the build
        is no longer running: someone else ended it (abandoned it, say), and the runner's
        late writes (log records, progress) are dropped, as its outcome is. Locks the row
        where it can, so that it stays running until the caller's transaction ends."""
        cur.execute(self.sql["build_state_locked"], (build_id,))
        row = cur.fetchone()
        return row is not None and row[0] not in _UNFINISHED

    def _check_build(self, cur: Any, build_id: int) -> None:
        """:class:`BuildNotFoundError` unless the build exists; locks its row where it can."""
        cur.execute(self.sql["build_locked"], (build_id,))
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
        cur.execute(self.sql["schema_version"])
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
                    self.sql["record_migration"],
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
                cur.execute(self.sql["probe_write"],
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
        self._commit_timer.close()  # not under the lock: its thread may be waiting for it
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
