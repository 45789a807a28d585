"""What every benchmark case shares: skipping, timing, services, the job functions' home."""

from __future__ import annotations

import atexit
import importlib
import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent

#: a server the benchmarks create their own databases on (never its own database)
POSTGRESQL = os.environ.get("JOBCONTROL_BENCH_POSTGRESQL",
                            "postgresql://postgres@127.0.0.1:5432/test")
#: a Redis server; each peer uses its own database number on it (never flushed: a run's
#: queues have names of their own)
REDIS = os.environ.get("JOBCONTROL_BENCH_REDIS", "redis://127.0.0.1:6379")

#: the databases :func:`fresh_postgresql_db` made in this process, dropped when it exits
_MADE: list[str] = []


class Skipped(Exception):
    """This case cannot run here (a package or a service is missing); the reason is shown."""


def require(module: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or skip: "package X not installed"."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise Skipped(f"{package or module} not installed ({exc})") from exc


class Timer:
    """Wall time of the measured part of a case (setup and checks stay outside)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    @contextmanager
    def __call__(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - started


def result(seconds: float, count: int, note: str = "") -> dict[str, Any]:
    """What a case returns: the measured seconds, how many jobs (or lines) they covered."""
    return {"seconds": seconds, "count": count, "note": note}


def unique_name(prefix: str) -> str:
    """A name no other run uses, for a database or a queue: ``prefix``, this process's pid
    and a random suffix (two runs on one server, from one machine or many, never share
    one)."""
    return f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"


def postgresql_admin() -> Any:
    """An autocommit connection to the benchmark server; skips when the driver or the server
    is missing."""
    psycopg2 = require("psycopg2", "psycopg2-binary")
    try:
        admin = psycopg2.connect(POSTGRESQL, connect_timeout=3)
    except psycopg2.OperationalError as exc:
        raise Skipped(f"PostgreSQL unreachable at {POSTGRESQL}: "
                      f"{' '.join(str(exc).split())}") from exc
    admin.autocommit = True
    return admin


def fresh_postgresql_db(prefix: str) -> str:
    """Create a database of this run's own on the benchmark server (named by
    :func:`unique_name`), dropped when this process exits; its URL. Skips when the driver
    or the server is missing."""
    name = unique_name(prefix)
    admin = postgresql_admin()
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    if not _MADE:
        atexit.register(_drop_made)
    _MADE.append(name)
    return urlunsplit(urlsplit(POSTGRESQL)._replace(path=f"/{name}"))


def _drop_made() -> None:
    """Drop the databases this process made (the connections to them first: a worker may
    still hold one)."""
    admin = postgresql_admin()
    with admin.cursor() as cur:
        while _MADE:
            cur.execute(f'DROP DATABASE IF EXISTS "{_MADE.pop()}" WITH (FORCE)')
    admin.close()


def redis_url(db: int) -> str:
    """Redis database ``db``'s URL, shared with other runs: nothing is flushed, so a run
    names its queues with :func:`unique_name`. Skips when the client or the server is
    missing."""
    redis = require("redis")
    url = f"{REDIS}/{db}"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3)
        client.ping()
        client.close()
    except redis.RedisError as exc:
        raise Skipped(f"Redis unreachable at {REDIS}: {exc}") from exc
    return url


def wait_until(check: Callable[[], bool], timeout: float, what: str, pause: float = 0.002
               ) -> None:
    """Poll ``check`` until true; RuntimeError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(pause)


class Worker:
    """A peer's worker process, started before the measured part and stopped after it.

    Its output and the jobs' log lines go to files in ``workdir``; it runs this checkout.
    """

    def __init__(self, workdir: Path, name: str, argv: list[str],
                 env: dict[str, str] | None = None) -> None:
        import subprocess
        import sys

        self.log = workdir / f"{name}-worker.log"
        self.output = (workdir / f"{name}-worker.out").open("wb")
        full_env = {**os.environ, "PYTHONPATH": str(ROOT),
                    "BENCH_LOG_FILE": str(self.log), **(env or {})}
        self.process = subprocess.Popen([sys.executable, *argv], env=full_env, cwd=workdir,
                                        stdout=self.output, stderr=subprocess.STDOUT)

    def check(self) -> bool:
        """False while running; RuntimeError if it died."""
        if self.process.poll() is not None:
            raise RuntimeError(f"worker exited with {self.process.returncode}: "
                               f"see {self.output.name}")
        return False

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        import subprocess

        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.output.close()
