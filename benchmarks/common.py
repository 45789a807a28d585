"""What every benchmark case shares: skipping, timing, services, the job functions' home."""

from __future__ import annotations

import importlib
import os
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
#: a Redis server; each peer uses its own database number on it
REDIS = os.environ.get("JOBCONTROL_BENCH_REDIS", "redis://127.0.0.1:6379")


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


def fresh_postgresql_db(name: str) -> str:
    """Drop and create database ``name`` on the benchmark server; its URL. Skips when the
    driver or the server is missing."""
    psycopg2 = require("psycopg2", "psycopg2-binary")
    try:
        admin = psycopg2.connect(POSTGRESQL, connect_timeout=3)
    except psycopg2.OperationalError as exc:
        raise Skipped(f"PostgreSQL unreachable at {POSTGRESQL}: "
                      f"{' '.join(str(exc).split())}") from exc
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        cur.execute(f"CREATE DATABASE {name}")
    admin.close()
    return urlunsplit(urlsplit(POSTGRESQL)._replace(path=f"/{name}"))


def redis_url(db: int) -> str:
    """A flushed Redis database's URL; skips when the client or the server is missing."""
    redis = require("redis")
    url = f"{REDIS}/{db}"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3)
        client.flushdb()
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
