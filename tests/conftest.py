"""Shared fixtures. ``storage`` runs a test once per backend in :data:`STORAGE_BACKENDS`.

PostgreSQL runs when ``$JOBCONTROL_TEST_POSTGRESQL`` names a server (``.ci/run`` sets it);
without it those tests skip, saying so.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobcontrol.storage import Storage, open_storage

#: every backend the storage contract suite runs against
STORAGE_BACKENDS = ["memory", "sqlite", "postgresql"]

PG_ENV = "JOBCONTROL_TEST_POSTGRESQL"


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[Any]:
    """The session's :class:`tests.pgdb.TestDatabases`; skips the test without a server."""
    if not os.environ.get(PG_ENV):
        from tests.pgdb import SKIP_REASON

        pytest.skip(SKIP_REASON)
    from tests.pgdb import TestDatabases

    databases = TestDatabases(os.environ[PG_ENV])
    try:
        yield databases
    finally:
        databases.close()


@pytest.fixture
def pg_url(pg_databases: Any) -> Iterator[str]:
    """The URL of a fresh PostgreSQL database with the schema installed, dropped after."""
    url = pg_databases.create()
    try:
        yield url
    finally:
        pg_databases.drop(url)


def make_storage(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Storage:
    """A fresh, empty storage of backend ``kind``: SQLite files under ``tmp_path``, a
    PostgreSQL database of its own (from the ``pg_url`` fixture)."""
    if kind == "memory":
        return open_storage("memory://")
    if kind == "sqlite":
        return open_storage("sqlite:///jobcontrol.db", base_dir=tmp_path)
    if kind == "postgresql":
        return open_storage(request.getfixturevalue("pg_url"))
    raise ValueError(f"unknown storage backend {kind!r}")


@pytest.fixture(params=STORAGE_BACKENDS, ids=STORAGE_BACKENDS)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """An empty storage of each backend in turn, closed after the test."""
    opened = make_storage(request.param, tmp_path, request)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture(autouse=True, scope="session")
def state_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """``$XDG_STATE_HOME`` in the test run's own folder: a web app's generated secret key
    goes there, never to the home folder of whoever runs the tests."""
    before = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state"))
    yield
    if before is None:
        os.environ.pop("XDG_STATE_HOME", None)
    else:
        os.environ["XDG_STATE_HOME"] = before
