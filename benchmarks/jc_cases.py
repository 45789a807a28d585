"""jobcontrol's side of each workload, through its Python API (the path ``jobcontrol build``
takes): load the config, build, and every build is stored with its log and return value."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, Skipped, Timer, fresh_postgresql_db, result

BENCH_DB = "jobcontrol_bench"


def storage_url(backend: str, workdir: Path) -> str:
    """A fresh, empty store of the given backend."""
    if backend == "sqlite":
        return f"sqlite:///{workdir / 'jobcontrol.db'}"
    return fresh_postgresql_db(BENCH_DB)


def noop_jobs(count: int) -> list[dict[str, Any]]:
    """Workload 1's jobs for :func:`write_config`: ``count`` independent no-op jobs."""
    return [{"id": f"noop_{n}", "function": "benchmarks.tasks.noop", "kwargs": f"{{n: {n}}}"}
            for n in range(count)]


def write_config(workdir: Path, jobs: list[dict[str, Any]], isolation: str) -> Path:
    """A jobs.yaml with the given jobs (``id``, ``function``, optional ``kwargs`` text and
    ``dependencies``), every job with the given isolation."""
    lines = [f"defaults: {{isolation: {isolation}}}", "jobs:"]
    for job in jobs:
        lines += [f"  - id: {job['id']}", f"    function: {job['function']}"]
        if "kwargs" in job:
            lines.append(f"    kwargs: {job['kwargs']}")
        if job.get("dependencies"):
            lines.append(f"    dependencies: [{', '.join(job['dependencies'])}]")
    path = workdir / "jobs.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def import_jobcontrol(backend: str) -> None:
    """Import the modules jobcontrol's build path loads, before the clock starts: every
    tool's imports are outside its time, as start-up is workload 5's. (jobcontrol loads its
    config validation, PyYAML, the orchestrator and a storage backend on first use.)"""
    import importlib

    for module in ("jobcontrol.config.validation", "jobcontrol.execution.orchestrator",
                   f"jobcontrol.storage.{'sqlite' if backend == 'sqlite' else 'postgresql'}",
                   "benchmarks.tasks"):
        importlib.import_module(module)


def _count(url: str, sql: str) -> int:
    from jobcontrol.storage import open_storage

    with open_storage(url) as storage, storage._cursor() as cur:  # type: ignore[attr-defined]
        cur.execute(sql)
        return int(cur.fetchone()[0])


def independent(workdir: Path, jobs: int, isolation: str, backend: str) -> dict[str, Any]:
    """Workload 1 (and 6): ``jobs`` independent no-op jobs, each built once."""
    from jobcontrol import BuildState, JobControl

    import_jobcontrol(backend)
    url = storage_url(backend, workdir)
    config = write_config(workdir, noop_jobs(jobs), isolation)
    timer = Timer()
    with timer():
        with JobControl.from_config(config, storage=url) as jc:
            builds = jc.build(list(jc.config.jobs))
    assert len(builds) == jobs and all(b.state is BuildState.SUCCESS for b in builds)
    assert builds[-1].retval == jobs - 1
    logs = _count(url, "SELECT count(*) FROM logs")
    assert logs == 2 * jobs, logs
    return result(timer.seconds, jobs)


def chain(workdir: Path, jobs: int, isolation: str, backend: str) -> dict[str, Any]:
    """Workload 2: ``jobs`` jobs in a chain, each taking its parent's return value
    (``!retval``); ``build LAST --deps`` builds them all."""
    from jobcontrol import BuildState, JobControl

    import_jobcontrol(backend)
    url = storage_url(backend, workdir)
    specs: list[dict[str, Any]] = [{"id": "step_0", "function": "benchmarks.tasks.step"}]
    for n in range(1, jobs):
        specs.append({"id": f"step_{n}", "function": "benchmarks.tasks.step",
                      "kwargs": f"{{prev: !retval step_{n - 1}}}",
                      "dependencies": [f"step_{n - 1}"]})
    config = write_config(workdir, specs, isolation)
    timer = Timer()
    with timer():
        with JobControl.from_config(config, storage=url) as jc:
            builds = jc.build(f"step_{jobs - 1}", deps=True)
    assert len(builds) == jobs and all(b.state is BuildState.SUCCESS for b in builds)
    assert builds[-1].retval == jobs, builds[-1].retval
    return result(timer.seconds, jobs)


def long_log(workdir: Path, lines: int, isolation: str, backend: str) -> dict[str, Any]:
    """Workload 3: one job logging ``lines`` lines; all of them must be stored."""
    from jobcontrol import BuildState, JobControl

    import_jobcontrol(backend)
    url = storage_url(backend, workdir)
    config = write_config(workdir, [{"id": "chatty", "function": "benchmarks.tasks.many_lines",
                                     "kwargs": f"{{count: {lines}}}"}], isolation)
    timer = Timer()
    with timer():
        with JobControl.from_config(config, storage=url) as jc:
            [build] = jc.build("chatty")
    assert build.state is BuildState.SUCCESS, build.reason
    stored = _count(url, "SELECT count(*) FROM logs")
    assert stored == lines, f"{stored} of {lines} lines stored"
    return result(timer.seconds, lines, f"{lines / timer.seconds:,.0f} lines/s stored")


def command(workdir: Path, argv: list[str], config: str | None = None,
            storage: str | None = None) -> dict[str, Any]:
    """Workloads 4 and 5: the wall time of one ``jobcontrol`` command, a new process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "jobcontrol"]
    if config is None and storage is None and argv != ["--version"]:
        config = str(write_config(workdir, [{"id": "one", "function": "benchmarks.tasks.noop"}],
                                  "inline"))
        storage = f"sqlite:///{workdir / 'empty.db'}"
        sqlite3.connect(workdir / "empty.db").close()
    if config:
        cmd += ["-c", config]
    if storage:
        cmd += ["--storage", storage]
    started = time.perf_counter()
    done = subprocess.run(cmd + argv, env=env, capture_output=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode()}")
    return result(seconds, 1)


def python_command(workdir: Path, code: str) -> dict[str, Any]:
    """Workload 5's floor: ``python -c CODE``."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return result(time.perf_counter() - started, 1)


def history_command(workdir: Path, argv: list[str], backend: str, jobs: int,
                    builds: int) -> dict[str, Any]:
    """Workload 4: a command over a stored history of ``builds`` builds of ``jobs`` jobs
    (filled once and cached, see :mod:`benchmarks.history`)."""
    from benchmarks import history

    try:
        url, config = history.filled_store(backend, jobs, builds)
    except ImportError as exc:
        raise Skipped(str(exc)) from exc
    return command(workdir, argv, str(config), url)
