"""Throwaway PostgreSQL databases for the tests, on the server ``$JOBCONTROL_TEST_POSTGRESQL``.

Each test gets a database of its own, cloned from a template made once per session with the
schema installed (``CREATE DATABASE x TEMPLATE tpl``, some 30 ms). Background threads clone
a few ahead and drop used ones, so a test waits for neither. Every name holds this machine's
tag and the session's pid: sessions sharing a server, from one machine or several, never
touch each other's databases. A session that died leaves databases named after its pid,
which the next session on the same machine drops.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import queue
import re
import socket
import threading
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg2

from jobcontrol.reaper import process_alive
from jobcontrol.storage.postgresql import PostgreSQLStorage, parse_url

#: the variable naming the server (any database on it: tests make their own)
ENV = "JOBCONTROL_TEST_POSTGRESQL"
#: set to 1 to allow the test that restarts that server (tests/test_postgresql_processes.py)
RESTART_ENV = "JOBCONTROL_TEST_POSTGRESQL_RESTART"
SKIP_REASON = (f"PostgreSQL tests need ${ENV}, e.g. "
               f"{ENV}=postgresql://postgres@127.0.0.1:5432/test (.ci/run sets it)")
PREFIX = "jctest_"
#: this machine's part of the names (a pid alone is no one's on another machine)
HOST_TAG = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` on the same server, with the same options."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


class Admin:
    """An autocommit connection that comes back after the server restarts (the restart
    test does that in the middle of the session)."""

    def __init__(self, url: str, patience: float = 30.0) -> None:
        self.url = url
        self.patience = patience
        self.conn: Any = None

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        deadline = time.monotonic() + self.patience
        while True:
            try:
                if self.conn is None or self.conn.closed:
                    self.conn = psycopg2.connect(self.url, connect_timeout=10)
                    self.conn.autocommit = True
                with self.conn.cursor() as cur:
                    cur.execute(sql, params)
                    return cur.fetchall() if cur.description else []
            except psycopg2.OperationalError:
                lost = self.conn is None or bool(self.conn.closed)
                if not lost or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


class TestDatabases:
    """Creates and drops the test databases of one pytest session.

    Worker threads keep a few databases cloned ahead and drop used ones, on connections of
    their own: the server does that work while the tests run, instead of in their setup.
    """

    __test__ = False  # not a test class, despite its name

    #: databases cloned ahead of the tests that will ask for them
    AHEAD = 4
    #: connections cloning and dropping at once: each clone waits for a checkpoint, and
    #: checkpoints asked for together are done as one
    WORKERS = 3

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self._admin = Admin(server_url)
        self._names = itertools.count(1)
        self._prefix = f"{PREFIX}{HOST_TAG}_{os.getpid()}_"
        version = int(self._admin.execute("SHOW server_version_num")[0][0])
        # PostgreSQL 15 copies a template block by block through the WAL by default: 5x
        # slower than copying its files for a small database like ours
        self._strategy = " STRATEGY FILE_COPY" if version >= 150000 else ""
        self.template = self._prefix + "template"
        self._admin.execute(f'CREATE DATABASE "{self.template}"')
        with PostgreSQLStorage(with_database(server_url, self.template)) as storage:
            storage.install()
        self._ready: queue.Queue[str | BaseException] = queue.Queue()
        self._tasks: queue.Queue[tuple[str, str] | None] = queue.Queue()
        for name in self._stale_names():
            self._tasks.put(("drop", name))
        for _ in range(self.AHEAD):
            self._tasks.put(("clone", ""))
        self._workers = [threading.Thread(target=self._work, daemon=True)
                         for _ in range(self.WORKERS)]
        for worker in self._workers:
            worker.start()

    def _stale_names(self) -> list[str]:
        """What sessions on this machine that died left behind (the pid in the name is
        gone)."""
        rows = self._admin.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                                   (PREFIX.replace("_", r"\_") + "%",))
        stale = []
        for (name,) in rows:
            match = re.match(rf"{PREFIX}{HOST_TAG}_(\d+)_", name)
            if match and not process_alive(int(match.group(1))):
                stale.append(name)
        return stale

    def _clone(self, admin: Admin, template: str) -> str:
        name = f"{self._prefix}{next(self._names)}"
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"{self._strategy}')
        # a test database need not survive a crash of the server: commits need not wait
        # for the disk (what they make visible, and when, is the same)
        admin.execute(f'ALTER DATABASE "{name}" SET synchronous_commit TO off')
        return name

    def create(self, installed: bool = True) -> str:
        """A new database's URL: with the schema installed, or empty (no jobcontrol tables)."""
        if not installed:
            return with_database(self.server_url, self._clone(self._admin, "template0"))
        self._tasks.put(("clone", ""))
        name = self._ready.get(timeout=60)
        if isinstance(name, BaseException):
            raise name
        return with_database(self.server_url, name)

    def drop(self, url: str) -> None:
        """Drop that database soon (connections still open to it are ended)."""
        self._tasks.put(("drop", urlsplit(url).path.lstrip("/")))

    def _work(self) -> None:
        admin = Admin(self.server_url)
        try:
            while (task := self._tasks.get()) is not None:
                action, name = task
                if action == "drop":
                    # a database left behind is dropped by the next session
                    with contextlib.suppress(psycopg2.Error):
                        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                    continue
                try:
                    self._ready.put(self._clone(admin, self.template))
                except Exception as exc:  # the test waiting for a database reports it
                    self._ready.put(exc)
        finally:
            admin.close()

    def close(self) -> None:
        """Drop every database this session made, the template last."""
        for _ in self._workers:
            self._tasks.put(None)
        for worker in self._workers:
            worker.join(timeout=120)
        while not self._ready.empty():  # what was cloned ahead and not used
            name = self._ready.get()
            if isinstance(name, str):
                self._admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        self._admin.execute(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)')
        self._admin.close()


def query(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows from a connection of our own (autocommit), closed before returning."""
    conn = psycopg2.connect(parse_url(url)[0])
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql, params or None)  # no parameters: a % is just a %
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()
