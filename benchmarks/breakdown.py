"""Where the time of an inline build goes: workload 1 (inline, SQLite) split into its parts,
each beside the least that part could cost.

    python -m benchmarks.breakdown                 # 1000 jobs, 7 runs, medians
    python -m benchmarks.breakdown --jobs 300 --runs 3
    python -m benchmarks.breakdown --isolation process

Each run is a new process. In it, jobcontrol builds the 1000 independent no-op jobs of
workload 1 through its Python API, with a clock around each part of a build (the clocks
cost about a microsecond a build, so the parts add up to a little more than the plain
run). Beside each part, a floor measured in the same process:

``config``
    the config loaded and validated, per job (jobcontrol's modules imported before, as in
    the benchmarks); floor: libyaml producing the file's events (parsing only, nothing
    built).
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

Below the parts, the *least recorder*: the whole of workload 1 as one loop of the least
Python that stores what jobcontrol stores (the config read by PyYAML's C loader, each job's
definition snapshot and hash, the claim and finish statements above with one commit a
build, the job's log lines and return value captured), and nothing else: no validation,
no concurrency or cancel handling beyond the SQL, no timeouts or signals, no secrets
masking, no records returned. It is what the floors cost together with the least glue
between them.

With ``--isolation process``, the same jobs are built each in a process of its own (forked
by the runner), and the table shows the CPU time and page faults a build costs in each
process taking part: the runner, and the build processes (as the runner collected them).
Beside them, the floor: ``fork()`` + ``waitpid()`` of a child that runs the job and exits at
once, in a loop, from the process that was the runner just before (so the same size); and
the least recorder with a fork a build: the job runs in a child forked from the recorder
itself, which sends its log records and return value back over a pipe. On a machine with 2
cores, the wall time of a build cannot be less than half of all the CPU time the two kinds
of process spend on it.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import resource
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
    from benchmarks.jc_cases import import_jobcontrol, noop_jobs, write_config
    from jobcontrol import JobControl
    from jobcontrol.execution import inline
    from jobcontrol.storage import sql

    import_jobcontrol("sqlite")  # before the clocks, as in the benchmarks
    config = write_config(workdir, noop_jobs(jobs), "inline")
    url = f"sqlite:///{workdir / 'jobcontrol.db'}"
    spent = dict.fromkeys(PARTS, 0.0)
    undo = [
        _timed(sql.SqlStorage, "claim_build", spent, "claim"),
        _timed(sql.SqlStorage, "finish_build_with_logs", spent, "finish"),
        _timed(tasks, "noop", spent, "job"),
        _timed(inline, "execute_job", spent, "capture"),
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


def _fresh_store(folder: Path, jobs: int, isolation: str) -> tuple[Path, Path]:
    """Workload 1's config for ``jobs`` jobs and an empty SQLite store with jobcontrol's
    schema, in ``folder``: their paths."""
    from benchmarks.jc_cases import noop_jobs, write_config
    from jobcontrol.storage import open_storage

    folder.mkdir(exist_ok=True)
    db = folder / "jobcontrol.db"
    with open_storage(f"sqlite:///{db}") as storage:
        storage.install()
    return write_config(folder, noop_jobs(jobs), isolation), db


def measure_floors(workdir: Path, jobs: int) -> dict[str, float]:
    """Seconds for the least each part could cost, for ``jobs`` jobs."""
    import yaml.cyaml

    from benchmarks import tasks
    from benchmarks.baselines import Collect

    floors = dict.fromkeys(PARTS, 0.0)
    config, path = _fresh_store(workdir, jobs, "inline")
    text = config.read_text()
    started = time.perf_counter()
    parser = yaml.cyaml.CParser(text)
    while parser.get_event() is not None:
        pass
    parser.dispose()
    floors["config"] = time.perf_counter() - started

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

    floors["least"] = _least_recorder(*_fresh_store(workdir / "least", jobs, "inline"))
    return floors


def _least_recorder(config_path: Path, db_path: Path, fork: bool = False) -> float:
    """Seconds for workload 1 built by the least Python that records what jobcontrol does
    (see the module docstring): per build, the previous build's log lines and outcome and
    this build's claim in one commit, then the job with its log and output captured, in
    this process or (``fork``) in a child forked for it (:func:`_run_forked`)."""
    import hashlib
    import importlib
    import io
    from datetime import datetime, timezone

    import yaml

    from benchmarks.baselines import (
        CLAIM_SQL,
        FINISH_SQL,
        LOGS_SQL,
        Collect,
        snapshot,
        sqlite_connect,
    )

    conn = sqlite_connect(db_path)
    cur = conn.cursor()
    root = logging.getLogger()
    handler = Collect()
    hash_encoder = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
    functions: dict[str, Callable[..., Any]] = {}
    started = time.perf_counter()
    config = yaml.load(config_path.read_text(), Loader=yaml.CSafeLoader)
    defaults = config.get("defaults") or {}
    previous: tuple[int, list[tuple[Any, ...]], str] | None = None
    for spec in [*config["jobs"], None]:  # the last round writes the last outcome
        now = datetime.now(timezone.utc).isoformat()
        cur.execute("BEGIN IMMEDIATE")
        if previous is not None:
            build_id, logs, result = previous
            cur.executemany(LOGS_SQL + "(?, ?, ?, ?, ?, ?, ?)", logs)
            cur.execute(FINISH_SQL, ("success", None, now, "json", result, None, None, None,
                                      build_id, "queued", "running"))
            cur.fetchone()
        if spec is None:
            cur.execute("COMMIT")
            break
        job = {**defaults, **spec}
        path, args, kwargs = job["function"], job.get("args", []), job.get("kwargs", {})
        definition = snapshot(job["id"], path, args, kwargs, job["isolation"])
        digest = hashlib.sha256(hash_encoder.encode(
            {"function": path, "args": args, "kwargs": kwargs}).encode()).hexdigest()
        cur.execute(CLAIM_SQL, (job["id"], "running", definition, digest, "{}", now, now, now,
                                 "bench", os.getpid(), None, None, job["id"], "running", 1))
        build_id = cur.lastrowid
        cur.execute("COMMIT")
        func = functions.get(path)
        if func is None:
            module, _, name = path.rpartition(".")
            func = functions[path] = getattr(importlib.import_module(module), name)
        if fork:
            result, records = _run_forked(func, args, kwargs)
        else:
            handler.records = []
            level, stdout = root.level, sys.stdout
            root.addHandler(handler)
            root.setLevel(logging.DEBUG)
            sys.stdout = io.StringIO()
            try:
                result = json.dumps(func(*args, **kwargs))
            finally:
                sys.stdout = stdout
                root.removeHandler(handler)
                root.setLevel(level)
            records = [(r.created, r.levelno, r.name, r.getMessage())
                       for r in handler.records]
        previous = (build_id, [
            (build_id, seq, datetime.fromtimestamp(created, timezone.utc).isoformat(),
             level, name, message, None)
            for seq, (created, level, name, message) in enumerate(records, 1)], result)
    seconds = time.perf_counter() - started
    conn.close()
    return seconds


def _run_forked(func: Callable[..., Any], args: Any, kwargs: Any
                ) -> tuple[str, list[tuple[Any, ...]]]:
    """Run a job in a child forked for it, which sends its JSON return value and its log
    records back over a pipe (``marshal``) and leaves: a process-isolated build with
    nothing else (no process group, signals, output capture, timeout or heartbeat)."""
    import marshal

    from benchmarks.baselines import Collect

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        code = 70
        try:
            os.close(read_end)
            root, handler = logging.getLogger(), Collect()
            root.addHandler(handler)
            root.setLevel(logging.DEBUG)
            result = json.dumps(func(*args, **kwargs))
            view = memoryview(marshal.dumps((result, [
                (r.created, r.levelno, r.name, r.getMessage()) for r in handler.records])))
            while view:
                view = view[os.write(write_end, view):]
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 1 << 16):
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    if status:
        raise RuntimeError(f"the least recorder's child exited with status {status}")
    return marshal.loads(b"".join(chunks))


def least_process_recorder(config_path: str, db_path: str) -> None:
    """Print (JSON) the wall and CPU seconds of the least recorder with a fork a build,
    run in this process (started with only what it needs: a process smaller than the
    runner)."""
    cpu, _ = _rusage(resource.RUSAGE_SELF)
    child_cpu, _ = _rusage(resource.RUSAGE_CHILDREN)
    wall = _least_recorder(Path(config_path), Path(db_path), fork=True)
    print(json.dumps({"least_wall": wall,
                      "least_cpu": _rusage(resource.RUSAGE_SELF)[0] - cpu
                      + _rusage(resource.RUSAGE_CHILDREN)[0] - child_cpu}))


def _bare_sql_loop(path: Path, jobs: int) -> float:
    """jobcontrol's statements for ``jobs`` builds, from a bare loop: per build the
    previous build's 2 log rows and outcome and this build's claim, one commit (the
    benchmarks' SQLite floor, :func:`benchmarks.baselines.build_loop`, without the job)."""
    from benchmarks.baselines import build_loop, sqlite_connect

    conn = sqlite_connect(path)
    cur = conn.cursor()
    started = time.perf_counter()
    build_loop(cur, lambda: cur.execute("COMMIT"), jobs, "?", "BEGIN IMMEDIATE",
               run_jobs=False)
    seconds = time.perf_counter() - started
    conn.close()
    return seconds


def _rusage(who: int) -> tuple[float, int]:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime, usage.ru_minflt


def measure_process(workdir: Path, jobs: int) -> dict[str, float]:
    """Wall seconds, and CPU seconds and page faults by process, of building ``jobs``
    process-isolated no-op jobs on SQLite, each forked by this process."""
    from benchmarks.jc_cases import import_jobcontrol, noop_jobs, write_config
    from jobcontrol import JobControl

    import_jobcontrol("sqlite")
    config = write_config(workdir, noop_jobs(jobs), "process")
    jc = JobControl.from_config(config, storage=f"sqlite:///{workdir / 'jobcontrol.db'}")
    jc.storage.install()
    cpu, faults = _rusage(resource.RUSAGE_SELF)
    child_cpu, child_faults = _rusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with jc:
        builds = jc.build(list(jc.config.jobs))
    wall = time.perf_counter() - started
    cpu_after, faults_after = _rusage(resource.RUSAGE_SELF)
    child_cpu_after, child_faults_after = _rusage(resource.RUSAGE_CHILDREN)
    assert len(builds) == jobs, "every job built"
    return {"wall": wall, "runner_cpu": cpu_after - cpu, "runner_faults": faults_after - faults,
            "builds_cpu": child_cpu_after - child_cpu,
            "builds_faults": child_faults_after - child_faults}


def fork_floor(jobs: int) -> dict[str, float]:
    """The floor of a process-isolated build: ``fork()`` + ``waitpid()`` of a child that
    runs the job and leaves, ``jobs`` times, from this process (the runner, just before)."""
    from benchmarks.baselines import fork_and_wait

    cpu, faults = _rusage(resource.RUSAGE_SELF)
    child_cpu, child_faults = _rusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    fork_and_wait(jobs)
    wall = time.perf_counter() - started
    cpu_after, faults_after = _rusage(resource.RUSAGE_SELF)
    child_cpu_after, child_faults_after = _rusage(resource.RUSAGE_CHILDREN)
    return {"wall": wall, "parent_cpu": cpu_after - cpu,
            "parent_faults": faults_after - faults,
            "child_cpu": child_cpu_after - child_cpu,
            "child_faults": child_faults_after - child_faults}


def child_process(jobs: int) -> None:
    """One run of ``--isolation process``: print its counts and the floor's, per job, as
    JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        spent = measure_process(Path(tmp), jobs)
    floor = fork_floor(jobs)  # from the runner's process: its size
    with tempfile.TemporaryDirectory() as tmp:
        config, db = _fresh_store(Path(tmp), jobs, "process")
        code = ("import sys; sys.path[:] = sys.argv[3:]; "
                "from benchmarks.breakdown import least_process_recorder; "
                "least_process_recorder(sys.argv[1], sys.argv[2])")
        done = subprocess.run([sys.executable, "-c", code, str(config), str(db), *sys.path],
                              capture_output=True, text=True, check=True)
        floor.update(json.loads(done.stdout))
    print(json.dumps({"spent": {k: v / jobs for k, v in spent.items()},
                      "floors": {k: v / jobs for k, v in floor.items()}}))


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
    parser.add_argument("--isolation", choices=("inline", "process"), default="inline",
                        help="the jobs' isolation (default: inline)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        (child if args.isolation == "inline" else child_process)(args.jobs)
        return
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = []
    for number in range(args.runs):
        done = subprocess.run([sys.executable, "-m", "benchmarks.breakdown", "--child",
                               "--jobs", str(args.jobs), "--isolation", args.isolation],
                              env=env, capture_output=True, text=True, check=True)
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"run {number + 1} of {args.runs}", file=sys.stderr)
    if args.isolation == "process":
        print_process_table(runs, args.jobs)
        return
    print(f"workload 1, inline, SQLite, {args.jobs} jobs: microseconds a build, "
          f"{_medians_of(args.runs)}")
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
    least = statistics.median(run["floors"]["least"] for run in runs) * 1e6
    print(f"{'least recorder':<15}{'':>12}{least:9.0f}{total - least:13.0f}")
    print("(the SQL floor of claim and finish together is shown on the claim line; the least "
          "recorder is\nthe whole loop: these floors and the least Python between them)")


def _medians_of(runs: int) -> str:
    return f"medians of {runs} runs" if runs > 1 else "one run"


def print_process_table(runs: list[dict[str, dict[str, float]]], jobs: int) -> None:
    """The table of ``--isolation process``: µs of CPU and page faults a build, by process."""

    def median(side: str, key: str) -> float:
        return statistics.median(run[side][key] for run in runs)

    print(f"workload 1, process isolation, SQLite, {jobs} jobs: a build's CPU time and page "
          f"faults by process, {_medians_of(len(runs))}")
    print(f"{'process':<17}{'CPU µs':>9}{'faults':>9}")
    total_cpu = total_faults = 0.0
    for name, key in (("runner", "runner"), ("build processes", "builds")):
        cpu, faults = median("spent", f"{key}_cpu") * 1e6, median("spent", f"{key}_faults")
        total_cpu += cpu
        total_faults += faults
        print(f"{name:<17}{cpu:9.0f}{faults:9.0f}")
    print(f"{'all':<17}{total_cpu:9.0f}{total_faults:9.0f}")
    cores = os.cpu_count() or 1
    print(f"{'wall':<17}{median('spent', 'wall') * 1e6:9.0f}"
          f"   (all the CPU over {cores} cores: {total_cpu / cores:.0f})")
    print("floor: fork + wait of a child that runs the job, from the runner's process")
    floor_cpu = floor_faults = 0.0
    for name in ("parent", "child"):
        cpu, faults = median("floors", f"{name}_cpu") * 1e6, median("floors", f"{name}_faults")
        floor_cpu += cpu
        floor_faults += faults
        print(f"{name:<17}{cpu:9.0f}{faults:9.0f}")
    print(f"{'all':<17}{floor_cpu:9.0f}{floor_faults:9.0f}")
    print(f"{'wall':<17}{median('floors', 'wall') * 1e6:9.0f}")
    print("least recorder, a fork a build (the same rows; the job's records sent back over a "
          "pipe)")
    print(f"{'all':<17}{median('floors', 'least_cpu') * 1e6:9.0f}")
    print(f"{'wall':<17}{median('floors', 'least_wall') * 1e6:9.0f}")


if __name__ == "__main__":
    main()
