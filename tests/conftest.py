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
#: the isolation a job gets when it says nothing, for a whole run (``inline``, ``process``
#: or ``pool``): read here only, to run the suite as if the default were switched
DEFAULT_ISOLATION_ENV = "JOBCONTROL_TEST_DEFAULT_ISOLATION"

#: what a ``jobcontrol`` process a test starts runs first (its folder put on its
#: ``PYTHONPATH`` by :func:`tests.processes.pythonpath`): the same switch, made when the
#: config validation is first imported, so that nothing else is imported sooner
_SWITCH_IN_CHILDREN = """\
import sys


class _SwitchDefaultIsolation:
    def find_spec(self, name, path=None, target=None):
        if name != "jobcontrol.config.validation":
            return None
        sys.meta_path.remove(self)
        import importlib.util

        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            module.BUILTIN_DEFAULTS["isolation"] = {isolation!r}

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _SwitchDefaultIsolation())
"""


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C heard, and ``$JOBCONTROL_TEST_DEFAULT_ISOLATION``'s default isolation."""
    _hear_ctrl_c()
    _switch_default_isolation(config)


def _hear_ctrl_c() -> None:
    """A suite started in the background of a shell without job control (``cmd &`` in a
    script, ``nohup``) inherits SIGINT ignored, as would the ``jobcontrol`` processes it
    starts; the tests that press Ctrl-C need it heard, as it is in a terminal."""
    import signal

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _switch_default_isolation(config: pytest.Config) -> None:
    """With ``$JOBCONTROL_TEST_DEFAULT_ISOLATION``, every config the tests write gives its
    jobs that isolation where they say none: in this process (the validation's built-in
    default) and in the ``jobcontrol`` processes the tests start."""
    isolation = os.environ.get(DEFAULT_ISOLATION_ENV)
    if not isolation:
        return
    from jobcontrol.config import validation
    from jobcontrol.config.values import ISOLATIONS

    if isolation not in ISOLATIONS:
        raise pytest.UsageError(f"${DEFAULT_ISOLATION_ENV}: {isolation!r} is not one of "
                                f"{', '.join(ISOLATIONS)}")
    validation.BUILTIN_DEFAULTS["isolation"] = isolation
    import tempfile

    from tests import processes, support

    support.DEFAULT_ISOLATION = isolation

    folder = Path(tempfile.mkdtemp(prefix="jobcontrol-isolation-"))
    (folder / "sitecustomize.py").write_text(_SWITCH_IN_CHILDREN.format(isolation=isolation))
    processes.EXTRA_PATH.append(str(folder))
    config.add_cleanup(lambda: __import__("shutil").rmtree(folder, ignore_errors=True))


def pytest_report_header(config: pytest.Config) -> str | None:
    isolation = os.environ.get(DEFAULT_ISOLATION_ENV)
    return f"default isolation switched to {isolation}" if isolation else None


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
