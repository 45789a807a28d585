"""``sqlite:///path.db``: the embedded default, one file, safe across processes.

WAL mode lets readers (``status``, the web UI) run while a build writes; the busy timeout
makes concurrent writers wait for each other instead of failing; ``BEGIN IMMEDIATE`` takes
the write lock up front, so a claim's check and insert are one atomic step across processes.

A database in a folder no one can write (a read-only mount) cannot have the ``-shm`` file
WAL mode reads through: it is opened read-only and *immutable* instead, provided no ``-wal``
file holds writes not yet in it. Every read works then; every write fails, saying so.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jobcontrol.errors import StorageError
from jobcontrol.storage.sql import SqlStorage

#: seconds a writer waits for another one's lock before giving up with an error
BUSY_TIMEOUT = 30


def path_from_url(url: str, base_dir: str | os.PathLike[str] | None = None) -> Path:
    """The database file a ``sqlite://`` URL names, as an absolute path.

    ``sqlite:///jobs.db`` is relative to ``base_dir`` (default: the working directory),
    ``sqlite:////srv/jobs.db`` is absolute. Raises :class:`StorageError` for anything else.
    """
    prefix = "sqlite://"
    if not url.startswith(prefix):
        raise StorageError(f"not a sqlite:// URL: {url!r}")
    rest = url[len(prefix):]
    if not rest.startswith("/"):
        raise StorageError(
            f"bad SQLite URL {url!r}: give a file path after three slashes, "
            f"e.g. sqlite:///jobcontrol.db (relative) or sqlite:////srv/jobcontrol.db (absolute)"
        )
    path = rest[1:]
    if not path or path.endswith("/") or "?" in path or "#" in path:
        raise StorageError(
            f"bad SQLite URL {url!r}: expected a database file, "
            f"e.g. sqlite:///jobcontrol.db or sqlite:////srv/jobcontrol.db"
        )
    return Path(base_dir if base_dir is not None else os.getcwd(), path).absolute()


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switch the file to WAL mode (it stays so), waiting for other processes doing it too."""
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            # the switch needs an exclusive lock, and SQLite refuses at once rather than call
            # the busy handler when processes open a new file together: wait here instead
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(0.005, 0.02))


class SQLiteStorage(SqlStorage):
    """Builds in a SQLite file: one connection per object, shared by threads under a lock.

    Opening is cheap: the file is created, and the schema migrated, on first use.
    """

    dialect = "sqlite"
    driver_errors = (sqlite3.Error,)
    update_returning = sqlite3.sqlite_version_info >= (3, 35, 0)

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(os.path.abspath(path))
        folder = self.path.parent
        if not folder.is_dir():
            # the nearest existing ancestor says what is wrong: missing, or a file
            found = next(p for p in (folder, *folder.parents) if p.exists())
            problem = (f"{found} is not a folder" if not found.is_dir()
                       else f"folder {folder} does not exist")
            raise StorageError(f"cannot open SQLite database {self.path}: {problem}")
        super().__init__(f"sqlite:///{self.path}")

    @classmethod
    def from_url(cls, url: str, base_dir: str | os.PathLike[str] | None = None) -> SQLiteStorage:
        """Open ``sqlite:///relative.db`` (against ``base_dir``) or ``sqlite:////abs.db``."""
        return cls(path_from_url(url, base_dir))

    @property
    def label(self) -> str:
        return f"SQLite database {self.path}"

    # -- dialect hooks -----------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            return self._open(self.path)
        except sqlite3.OperationalError:
            if not self._read_only_folder():
                raise
        # immutable: no -shm file, no locks; nothing can write it here (see module docstring)
        return self._open(f"{self.path.as_uri()}?mode=ro&immutable=1", read_only=True)

    def _open(self, where: str | Path, read_only: bool = False) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions; _transaction() says BEGIN itself
        conn = sqlite3.connect(where, timeout=BUSY_TIMEOUT, isolation_level=None,
                               check_same_thread=False, uri=read_only)
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT * 1000}")
            if not read_only:
                _use_wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            conn.close()
            raise
        return conn

    def _read_only_folder(self) -> bool:
        """Whether the database is there to read, in a folder no one can write (so no
        ``-shm`` file can be made), with nothing left in its ``-wal`` file."""
        wal = self.path.with_name(self.path.name + "-wal")
        return (self.path.is_file() and not os.access(self.path.parent, os.W_OK)
                and (not wal.exists() or wal.stat().st_size == 0))

    def _begin_write(self, cur: Any) -> None:
        # take the write lock now: a deferred transaction that reads and then writes can
        # fail with "database is locked" without waiting, and a claim must not
        cur.execute("BEGIN IMMEDIATE")

    def _insert_id(self, cur: Any, sql: str, params: Sequence[Any]) -> int:
        cur.execute(self._q(sql), params)
        return int(cur.lastrowid)

    def _insert_claim(self, cur: Any, sql: str, params: Sequence[Any]) -> int | None:
        cur.execute(self._q(sql), params)
        return int(cur.lastrowid) if cur.rowcount == 1 else None

    def _run_script(self, cur: Any, script: str) -> None:
        # not executescript(): it commits first, and a migration must be one transaction
        statement = ""
        for line in script.splitlines(keepends=True):
            statement += line
            if sqlite3.complete_statement(statement):
                cur.execute(statement)
                statement = ""
        if statement.strip():
            cur.execute(statement)  # only comments may remain; an incomplete one fails here

    def _table_exists(self, cur: Any, name: str) -> bool:
        cur.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
        return cur.fetchone() is not None

    def _database_missing(self) -> bool:
        return not self.path.exists()
