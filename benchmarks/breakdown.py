"""Where the time of an inline build goes: workload 1 (inline, SQLite) split into its parts,
each beside the least that part could cost.

    python -m benchmarks.breakdown                 # 1000 jobs, 7 runs, medians
    python -m benchmarks.breakdown --jobs 300 --runs 3

Each run is a new process. In it, jobcontrol builds the 1000 independent no-op jobs of
workload 1 through its Python API, with a clock around each part of a build (the clocks
cost about a microsecond a build, so the parts add up to a little more than the plain
run). Beside each part, a floor measured in the same process:

``config``
    the config loaded and validated, per job; floor: libyaml producing the file's events
    (parsing only, nothing built).
``claim`` + ``finish``
    the storage's two writes a build (the claim commits the build ``running`` together with
    the previous build's outcome: one commit a build); floor: a bare loop of the same SQL
    statements on the same schema and pragmas, one commit a build, nothing else.
``job``
    the job's own call (its two log lines through ``logging`` into the capture); floor: the
    same call with a handler that keeps the records in a list.
``capture``
    what the runner does around the call (logging attached, stdout/stderr redirected, the
    return value encoded, log records made storable); no floor.
``orchestration``
    the rest: deciding the step, its arguments, the snapshot and hash of its definition,
    starting and recording it; no floor.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT

PARTS = ("config", "claim", "finish", "job", "capture", "orchestration")


def _timed(owner: Any, name: str, into: dict[str, float], part: str) -> Callable[[], None]:
    """Wrap ``owner.name`` so its time adds to ``into[part]``; returns the undo."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            into[part] += time.perf_counter() - started

    setattr(owner, name, wrapper)
    return lambda: setattr(owner, name, original)


def measure_jobcontrol(workdir: Path, jobs: int) -> dict[str, float]:
    """Seconds per part of building ``jobs`` no-op jobs inline on SQLite."""
    from benchmarks import tasks
    from benchmarks.jc_cases import write_config
    from jobcontrol import JobControl
    from jobcontrol.executors import local
    from jobcontrol.storage import sql

    config = write_config(workdir, [
        {"id": f"noop_{n}", "function": "benchmarks.tasks.noop", "kwargs": f"{{n: {n}}}"}
        for n in range(jobs)], "inline")
    url = f"sqlite:///{workdir / 'jobcontrol.db'}"
    spent = dict.fromkeys(PARTS, 0.0)
    undo = [
        _timed(sql.SqlStorage, "claim_build", spent, "claim"),
        _timed(sql.SqlStorage, "finish_build_with_logs", spent, "finish"),
        _timed(tasks, "noop", spent, "job"),
        _timed(local, "execute_job", spent, "capture"),
    ]
    try:
        started = time.perf_counter()
        jc = JobControl.from_config(config, storage=url)
        spent["config"] = time.perf_counter() - started
        jc.storage.install()  # once: not a build's share
        started = time.perf_counter()
        with jc:
            builds = jc.build(list(jc.config.jobs))
        total = time.perf_counter() - started
    finally:
        for restore in undo:
            restore()
    assert len(builds) == jobs  # every job built
    spent["capture"] -= spent["job"]  # execute_job's time around the job's call
    spent["orchestration"] = total - sum(spent[p] for p in PARTS if p != "config")
    return spent


def measure_floors(workdir: Path, jobs: int) -> dict[str, float]:
    """Seconds for the least each part could cost, for ``jobs`` jobs."""
    import yaml.cyaml

    from benchmarks import tasks
    from benchmarks.baselines import Collect
    from benchmarks.jc_cases import write_config
    from jobcontrol.storage import open_storage

    floors = dict.fromkeys(PARTS, 0.0)
    text = write_config(workdir, [
        {"id": f"noop_{n}", "function": "benchmarks.tasks.noop", "kwargs": f"{{n: {n}}}"}
        for n in range(jobs)], "inline").read_text()
    started = time.perf_counter()
    parser = yaml.cyaml.CParser(text)
    while parser.get_event() is not None:
        pass
    parser.dispose()
    floors["config"] = time.perf_counter() - started

    path = workdir / "bare.db"
    with open_storage(f"sqlite:///{path}") as storage:
        storage.install()
    floors["claim"] = _bare_sql_loop(path, jobs)

    root = logging.getLogger()
    handler, level = Collect(), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    started = time.perf_counter()
    for n in range(jobs):
        tasks.noop(n)
    floors["job"] = time.perf_counter() - started
    root.removeHandler(handler)
    root.setLevel(level)
    return floors


def _bare_sql_loop(path: Path, jobs: int) -> float:
    """jobcontrol's statements for ``jobs`` builds, from a bare loop: per build the
    previous build's 2 log rows and outcome and this build's claim, one commit."""
    snapshot = json.dumps({"id": "noop_0", "function": "benchmarks.tasks.noop",
                           "kwargs": {"n": 0}, "isolation": "inline", "title": "noop_0"})
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    cur = conn.cursor()
    previous: int | None = None
    started = time.perf_counter()
    for n in range(jobs + 1):  # the last round writes the last outcome
        cur.execute("BEGIN IMMEDIATE")
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000000+00:00", time.gmtime())
        if previous is not None:
            cur.executemany(
                "INSERT INTO logs (build_id, seq, time, level, logger, message, exception) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(previous, 1, now, 20, "bench", f"job {n} started", None),
                 (previous, 2, now, 20, "bench", f"job {n} done", None)])
            cur.execute(
                "UPDATE builds SET state = ?, reason = ?, finished = ?, result_kind = ?, "
                "result_data = ?, exc_type = ?, exc_message = ?, exc_traceback = ? "
                "WHERE id = ? AND state IN (?, ?) "
                "RETURNING heartbeat, cancel_requested, cancel_reason",
                ("success", None, now, "json", str(n), None, None, None, previous,
                 "queued", "running"))
            cur.fetchone()
        if n < jobs:
            job = f"noop_{n}"
            cur.execute(
                "INSERT INTO builds (job_id, state, definition, definition_hash, "
                "dependency_builds, created, started, heartbeat, host, pid, retry_of) "
                "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? "
                "WHERE (SELECT count(*) FROM builds WHERE job_id = ? AND state = ?) < ?",
                (job, "running", snapshot, "0" * 64, "{}", now, now, now, "bench",
                 os.getpid(), None, job, "running", 1))
            previous = cur.lastrowid
        cur.execute("COMMIT")
    seconds = time.perf_counter() - started
    conn.close()
    return seconds


def child(jobs: int) -> None:
    """One run: print the parts and the floors, per job, as JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "jc").mkdir()
        (work / "floor").mkdir()
        spent = measure_jobcontrol(work / "jc", jobs)
        floors = measure_floors(work / "floor", jobs)
    print(json.dumps({"spent": {k: v / jobs for k, v in spent.items()},
                      "floors": {k: v / jobs for k, v in floors.items()}}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.jobs)
        return
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = []
    for number in range(args.runs):
        done = subprocess.run([sys.executable, "-m", "benchmarks.breakdown", "--child",
                               "--jobs", str(args.jobs)], env=env, capture_output=True,
                              text=True, check=True)
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"run {number + 1} of {args.runs}", file=sys.stderr)
    print(f"workload 1, inline, SQLite, {args.jobs} jobs: microseconds a build, "
          f"medians of {args.runs} runs")
    print(f"{'part':<15}{'jobcontrol':>12}{'floor':>9}{'above floor':>13}")
    total = floor_total = 0.0
    for part in PARTS:
        spent = statistics.median(run["spent"][part] for run in runs) * 1e6
        floor = statistics.median(run["floors"][part] for run in runs) * 1e6
        total += spent
        floor_total += floor
        shown = f"{floor:9.0f}{spent - floor:13.0f}" if floor else f"{'-':>9}{'':>13}"
        print(f"{part:<15}{spent:12.0f}{shown}")
    print(f"{'total':<15}{total:12.0f}{floor_total:9.0f}{total - floor_total:13.0f}")
    print("(the SQL floor of claim and finish together is shown on the claim line)")


if __name__ == "__main__":
    main()
