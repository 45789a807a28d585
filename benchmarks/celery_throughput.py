"""How fast do builds go through Celery workers? 1,000 no-op builds through one
``jobcontrol worker --concurrency 2``, against Celery alone running the same no-op task on a
2-process worker with a result backend.

Both sides use the same broker and the same delivery settings (late acknowledgement, one
message a process at a time), so the difference is what jobcontrol adds: a queued build
(and its run) created in PostgreSQL per task, the atomic start, a child process per build
(``process``), a warm worker process (``pool``) or none (``inline``), its log and outcome
stored, the heartbeat.

Each run times from the first submission to the last build ended (jobcontrol: every build
finished in the storage; Celery: every result in the backend), workers already started,
and how long the sending took. Each run measures Celery, then each ``--isolation`` in
turn, side by side. Reported: each run, the medians (and minimums), and the ratio of the
medians (the target is at most 1.5), with the load average, since the machine is shared.

    python benchmarks/celery_throughput.py --isolation inline,pool,process
    python benchmarks/celery_throughput.py --builds 300 --runs 5 --isolation inline
    python benchmarks/celery_throughput.py --broker amqp://guest:guest@127.0.0.1:5672//
    python benchmarks/celery_throughput.py --database jc_bench --backend redis://h:6379/9
    python benchmarks/celery_throughput.py --isolation inline --floor
    python benchmarks/celery_throughput.py --isolation inline,pool --floor --cpu

``--floor`` also measures, in every run, plain Celery writing the least a durable record of
each build needs, in jobcontrol's own tables (:data:`FLOOR_APP`: the queued row with its run
in one statement, committed before the send; the start; the two log lines with the outcome;
each statement its own transaction), without a result backend: what any tool keeping this
record pays, with nothing of jobcontrol's code around it. ``--cpu`` also reports the CPU
seconds each side spent, by kind of process (:class:`CpuMeter`): where the time goes.

Measured on the development machine (2 cores AMD EPYC shared with other work, so runs
vary; Python 3.11.7; Redis unless said; PostgreSQL; 1,000 builds, medians of 3 runs each):

    isolation inline:  celery 2.53 s, jobcontrol 4.33 s: 1.71x
    isolation inline:  celery 1.96 s, jobcontrol 4.10 s: 2.10x (a busier moment)
    inline, RabbitMQ:  celery 3.29 s, jobcontrol 5.69 s: 1.73x
    isolation process: celery 2.21 s, jobcontrol 8.45 s: 3.83x
    isolation process: celery 3.65 s, jobcontrol 13.34 s: 3.66x (a busier moment)
    isolation inline:  celery 3.11 s, jobcontrol 4.73 s: 1.52x (after the merge with
                       outcomes committed with the next claim, 2026-12-02)
    isolation process: celery 2.81 s, jobcontrol 8.57 s: 3.05x (the same day)
    isolation inline:  celery 1.11 s, jobcontrol 1.82 s: 1.64x (2026-12-04: a build that
                       waits for no other is claimed without a read first; a quieter
                       machine, Celery alone twice as fast as before)
    isolation inline:  celery 1.13 s, jobcontrol 1.94 s: 1.72x; 1.07 s, 1.93 s: 1.80x
    inline, RabbitMQ:  celery 1.25 s, jobcontrol 1.84 s: 1.48x
    isolation process: celery 1.08 s, jobcontrol 4.38 s: 4.07x; 1.06 s, 3.78 s: 3.56x

    2026-12-06, after a queued build and its run became one transaction (4 round trips
    and 1 commit per ``build --async``, from 7 and 2) and a worker's start 2 round trips
    (from 4); every isolation in one invocation of 3 runs, the machine loaded by other
    work, so Celery alone was 2.5-5x slower than on 12-04 (medians, minimums):

    load 7.6:   celery 2.93 s (2.72); inline 4.58 s (3.43): 1.56x;
                pool 5.53 s (4.27): 1.89x; process 10.27 s (9.95): 3.50x
    load 9-19:  celery 5.86 s (4.32); inline 10.47 s (7.47): 1.78x;
                pool 9.69 s (7.56): 1.65x; process 25.22 s (24.54): 4.30x
    alternating with the code before (load 8-14): inline 1.67-1.91x before,
                1.37-1.74x after; pool 1.50-2.21x before, 1.67-2.36x after
    load 6.4:   celery 2.48 s (1.93); inline 4.79 s (4.16): 1.93x;
                pool 5.82 s (5.42): 2.35x; process 11.02 s (8.31): 4.45x

The submitting loop is the critical path: per build, a durable INSERT (its commit waits
for the WAL flush) and the send, against the send alone for Celery ("sent in" shows it:
1,000 sends take Celery 0.6-1.3 s, 1,000 ``build --async`` of jobcontrol 2.8-5.2 s). With
``process``, a build's process (forked for it, run, exited) costs a few ms of CPU (the
runs above forked it from the worker's fork server, since removed).

Needs ``pip install 'jobcontrol[celery,postgresql]'``, a broker, and a PostgreSQL server.
``--database NAME`` names the database of the record: made (and dropped after) when it
does not exist, used and kept when it does (only the builds made by the run are counted);
without it, each invocation makes one of its own (``jobcontrol_celery_bench_<pid>_<random>``)
and drops it. ``--broker`` and ``--backend`` are URLs, a Redis URL naming its database
number (default 6 and 7); queues have names of their own per run and Celery's results are
forgotten after each run; nothing is flushed, so runs sharing the servers do not disturb
each other.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg2  # noqa: E402

from benchmarks.common import unique_name  # noqa: E402
from jobcontrol import BuildState, JobControl  # noqa: E402
from jobcontrol.storage import open_storage  # noqa: E402

#: prefix of the database a run makes when ``--database`` is not given
BENCH_DB = "jobcontrol_celery_bench"

CONFIG = """\
executor: {{type: celery, broker: "{broker}", queue: "{queue}"}}
jobs:
  - {{id: noop, function: noop.noop, concurrency: 1000000, isolation: {isolation}}}
"""

CELERY_APP = """\
from celery import Celery

app = Celery("bench", broker={broker!r}, backend={backend!r})
app.conf.update(task_acks_late=True, worker_prefetch_multiplier=1, task_serializer="json",
                accept_content=["json"], result_serializer="json",
                broker_connection_retry_on_startup=True)


@app.task(name="bench.noop")
def noop():
    return None
"""

#: the floor: plain Celery writing the least a durable record of a build needs, in the same
#: tables as jobcontrol (its queued row with its run, its start, its two log lines and its
#: outcome), each write as one statement where SQL allows, no code of jobcontrol's around it
FLOOR_APP = """\
import json
import os
import socket
from datetime import datetime, timezone

import psycopg2
from celery import Celery

app = Celery("floor", broker={broker!r})
app.conf.update(task_acks_late=True, worker_prefetch_multiplier=1, task_serializer="json",
                accept_content=["json"], broker_connection_retry_on_startup=True)
STORAGE = {storage!r}
_conn = None


def cursor():
    global _conn
    if _conn is None:
        _conn = psycopg2.connect(STORAGE)
        _conn.autocommit = True
    return _conn.cursor()


def now():
    return datetime.now(timezone.utc).isoformat()


@app.task(name="floor.build")
def build(build_id):
    cur = cursor()
    cur.execute("UPDATE builds SET state = 'running', started = %s, heartbeat = %s, host = %s, "
                "pid = %s WHERE id = %s AND state = 'queued'",
                (now(), now(), socket.gethostname(), os.getpid(), build_id))
    if cur.rowcount != 1:
        return
    result = None  # the no-op
    cur.execute(
        "WITH l AS (INSERT INTO logs (build_id, seq, time, level, logger, message) "
        "VALUES (%s, 1, %s, 20, 'floor', 'one'), (%s, 2, %s, 20, 'floor', 'two')) "
        "UPDATE builds SET state = 'success', finished = %s, result_kind = 'json', "
        "result_data = %s WHERE id = %s",
        (build_id, now(), build_id, now(), now(), json.dumps(result), build_id))


SUBMIT = (
    "WITH r AS (INSERT INTO build_runs (trigger, created, created_by, targets, params, token) "
    "VALUES ('api', %s, 'bench', %s, '{{}}', md5(random()::text)) RETURNING id) "
    "INSERT INTO builds (job_id, state, definition, definition_hash, dependency_builds, "
    "created, queue, run_id) SELECT 'noop', 'queued', %s, %s, '{{}}', %s, %s, r.id FROM r "
    "RETURNING id")
"""


class CpuMeter:
    """``--cpu``: the CPU seconds spent between :meth:`start` and :meth:`stop` by each kind
    of process: this program (the submitting loop), the workers (the process group of the
    worker started), PostgreSQL's processes and Redis's. Read from ``/proc`` (Linux)."""

    KINDS = ("submitter", "workers", "postgresql", "redis")

    def __init__(self) -> None:
        self.workers = 0
        self.begun: dict[int, tuple[str, float]] = {}
        self.spent: dict[str, float] = {}

    def _read(self) -> dict[int, tuple[str, float]]:
        found = {}
        tick = os.sysconf("SC_CLK_TCK")
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                command = (entry / "cmdline").read_bytes()
            except OSError:  # ended meanwhile
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            pid, pgid = int(entry.name), int(fields[2])
            kind = ("submitter" if pid == os.getpid() else
                    "workers" if self.workers and pgid == self.workers else
                    "postgresql" if command.startswith(b"postgres") else
                    "redis" if command.startswith(b"redis-server") else None)
            if kind is not None:  # own time only (utime, stime): children are counted alive
                found[pid] = (kind, (int(fields[11]) + int(fields[12])) / tick)
        return found

    def start(self, workers: int) -> None:
        self.workers = workers
        self.begun = self._read()

    def stop(self) -> None:
        self.spent = dict.fromkeys(self.KINDS, 0.0)
        for pid, (kind, seconds) in self._read().items():
            self.spent[kind] += seconds - self.begun.get(pid, (kind, 0.0))[1]


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@contextmanager
def bench_database(server: str, name: str | None) -> Iterator[str]:
    """The URL of database ``name`` on ``server``: made (and dropped afterwards) when it
    does not exist, used as it is (and kept) when it does; ``None``: a new one named for
    this run (``jobcontrol_celery_bench_<pid>_<random>``)."""
    name = name or unique_name(BENCH_DB)
    admin = psycopg2.connect(server)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        made = cur.fetchone() is None
        if made:
            cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(server, name)
    finally:
        if made:
            with admin.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@contextmanager
def started(argv: list[str], cwd: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A worker process, once its log says it is ready; stopped afterwards."""
    env = {**os.environ, "PYTHONPATH": f"{cwd}{os.pathsep}{ROOT}"}
    with log.open("w") as out:
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while " ready." not in log.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield process
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


def _ended(storage: str, after: int) -> tuple[int, int]:
    """Builds after id ``after`` that have ended, and how many of them did not succeed."""
    with psycopg2.connect(storage) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*), count(*) FILTER (WHERE state <> %s) FROM builds "
                    "WHERE id > %s AND state NOT IN ('queued', 'running')",
                    (BuildState.SUCCESS.value, after))
        done, bad = cur.fetchone()
    conn.close()
    return done, bad


def run_jobcontrol(broker: str, storage: str, builds: int, isolation: str,
                   folder: Path, meter: CpuMeter | None = None) -> tuple[float, float]:
    """Seconds for ``builds`` no-op builds: queued one ``build --async`` at a time, each
    ended in the storage (a database used before counts only the builds made now); and
    the seconds the queueing took (the submitting loop alone)."""
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    (folder / "noop.py").write_text("def noop():\n    return None\n")
    config = folder / f"jobs-{isolation}.yaml"
    config.write_text(CONFIG.format(broker=broker, queue=queue, isolation=isolation))
    JobControl.from_config(config, storage).install()
    argv = [sys.executable, "-m", "jobcontrol", "-c", str(config), "--storage", storage,
            "worker", "--concurrency", "2"]
    with started(argv, folder, folder / f"jobcontrol-worker-{isolation}.log") as worker, \
            JobControl.from_config(config, storage) as jc:
        before = max((b.id for b in jc.storage.list_builds(limit=1)), default=0)
        if meter:
            meter.start(worker.pid)
        begin = time.perf_counter()
        for _ in range(builds):
            jc.submit("noop")
        sent = time.perf_counter() - begin
        while True:
            done, bad = _ended(storage, before)
            if done >= builds:
                break
            time.sleep(0.05)
        elapsed = time.perf_counter() - begin
        if meter:
            meter.stop()
        if bad:
            raise RuntimeError(f"{bad} builds did not succeed")
        return elapsed, sent


def plain_celery_app(folder: Path, name: str, source: str) -> tuple[Any, str, list[str]]:
    """The Celery app ``name`` (its ``source``) written to ``folder`` and imported here, a
    queue of its own, and the command of its 2-process worker reading that queue."""
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    (folder / f"{name}.py").write_text(source)
    argv = [sys.executable, "-m", "celery", "-A", name, "worker", "--concurrency=2",
            f"--queues={queue}", "--without-gossip", "--without-mingle", "--loglevel=INFO",
            f"--hostname={name}.{os.getpid()}@%h"]
    sys.path.insert(0, str(folder))
    sys.modules.pop(name, None)
    return importlib.import_module(name), queue, argv


def run_celery(broker: str, backend: str, builds: int, folder: Path,
               meter: CpuMeter | None = None) -> tuple[float, float]:
    """Seconds for ``builds`` no-op Celery tasks, each result read from the backend (and
    removed from it afterwards); and the seconds the sending took."""
    bench_app, queue, argv = plain_celery_app(
        folder, "bench_app", CELERY_APP.format(broker=broker, backend=backend))
    with started(argv, folder, folder / "celery-worker.log") as worker:
        if meter:
            meter.start(worker.pid)
        begin = time.perf_counter()
        results = [bench_app.noop.apply_async(queue=queue) for _ in range(builds)]
        sent = time.perf_counter() - begin
        for result in results:
            result.get(timeout=300)
        elapsed = time.perf_counter() - begin
        if meter:
            meter.stop()
    for result in results:
        result.forget()
    sys.path.remove(str(folder))
    return elapsed, sent


def run_floor(broker: str, storage: str, builds: int, folder: Path,
              meter: CpuMeter | None = None) -> tuple[float, float]:
    """Seconds for ``builds`` no-op builds through plain Celery with the bare durable record
    (see :data:`FLOOR_APP`): each queued row committed, then sent; each ended in the
    storage, counted as jobcontrol's are; and the seconds the sending took."""
    floor_app, queue, argv = plain_celery_app(
        folder, "floor_app", FLOOR_APP.format(broker=broker, storage=storage))
    with open_storage(storage) as store:  # the floor writes jobcontrol's tables
        store.install()
    definition = json.dumps({"id": "noop", "function": "noop.noop", "isolation": "inline"})
    conn = psycopg2.connect(storage)
    conn.autocommit = True  # each statement its own transaction, committed as it ends
    with started(argv, folder, folder / "floor-worker.log") as worker, \
            contextlib.closing(conn):
        before = max_build_id(storage)
        cur = conn.cursor()
        if meter:
            meter.start(worker.pid)
        begin = time.perf_counter()
        for _ in range(builds):
            stamp = datetime.now(timezone.utc).isoformat()
            cur.execute(floor_app.SUBMIT, (stamp, '["noop"]', definition, "0" * 64, stamp, queue))
            floor_app.build.apply_async((cur.fetchone()[0],), queue=queue)
        sent = time.perf_counter() - begin
        while _ended(storage, before)[0] < builds:
            time.sleep(0.05)
        elapsed = time.perf_counter() - begin
        if meter:
            meter.stop()
    sys.path.remove(str(folder))
    return elapsed, sent


def max_build_id(storage: str) -> int:
    with psycopg2.connect(storage) as conn, conn.cursor() as cur:
        cur.execute("SELECT coalesce(max(id), 0) FROM builds")
        (found,) = cur.fetchone()
    conn.close()
    return int(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/6",
                        help="the broker of both sides (a Redis URL names its database)")
    parser.add_argument("--backend", default="redis://127.0.0.1:6379/7",
                        help="Celery's result backend (the Celery-alone side)")
    parser.add_argument("--postgresql", default=os.environ.get(
        "JOBCONTROL_TEST_POSTGRESQL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="the PostgreSQL server (its database is only used to make ours)")
    parser.add_argument("--database", default=None,
                        help="the database for the record: made and dropped if missing, "
                             "kept if it exists (default: a new one named for this run)")
    parser.add_argument("--builds", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--isolation", default="process",
                        help="comma-separated, each measured in every run after Celery: "
                             "process, inline, pool")
    parser.add_argument("--floor", action="store_true",
                        help="also measure plain Celery writing the bare durable record of "
                             "each build (the floor of any tool keeping jobcontrol's record)")
    parser.add_argument("--cpu", action="store_true",
                        help="also report the CPU seconds of each side by kind of process "
                             "(the submitting loop, the workers, PostgreSQL, Redis; Linux)")
    args = parser.parse_args()
    isolations = [i.strip() for i in args.isolation.split(",") if i.strip()]
    for isolation in isolations:
        if isolation not in ("process", "inline", "pool"):
            parser.error(f"--isolation: {isolation!r} is not process, inline or pool")

    ours: dict[str, list[float]] = {isolation: [] for isolation in isolations}
    theirs: list[float] = []
    floors: list[float] = []
    #: CPU seconds by side, then by kind of process, one value a run (``--cpu``)
    cpu: dict[str, dict[str, list[float]]] = {}
    meter = CpuMeter() if args.cpu else None

    def measured(side: str, seconds: float, sent: float) -> str:
        if meter is None:
            return f"{side} {seconds:.2f}s (sent in {sent:.2f}s)"
        for kind, spent in meter.spent.items():
            cpu.setdefault(side, {}).setdefault(kind, []).append(spent)
        return (f"{side} {seconds:.2f}s (sent in {sent:.2f}s; cpu "
                + " ".join(f"{kind} {spent:.2f}s" for kind, spent in meter.spent.items())
                + ")")

    with bench_database(args.postgresql, args.database) as storage:
        for number in range(1, args.runs + 1):
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp)
                seconds, sent = run_celery(args.broker, args.backend, args.builds, folder,
                                           meter)
                theirs.append(seconds)
                line = f"run {number}: " + measured("celery", seconds, sent)
                if args.floor:
                    seconds, sent = run_floor(args.broker, storage, args.builds, folder, meter)
                    floors.append(seconds)
                    line += ", " + measured("floor", seconds, sent)
                for isolation in isolations:
                    seconds, sent = run_jobcontrol(args.broker, storage, args.builds,
                                                   isolation, folder, meter)
                    ours[isolation].append(seconds)
                    line += ", " + measured(f"jobcontrol {isolation}", seconds, sent)
            print(line, flush=True)
    celery_median = statistics.median(theirs)
    print(textwrap.dedent(f"""\
        {args.builds} no-op builds, 2 worker processes, broker {urlsplit(args.broker).scheme},
        median of {args.runs} runs (min), load average {os.getloadavg()[0]:.1f}:
          celery alone (result backend): {celery_median:.2f}s ({min(theirs):.2f}s)"""))
    if floors:
        median = statistics.median(floors)
        print(f"  celery with the bare record (floor): {median:.2f}s ({min(floors):.2f}s)"
              f": {median / celery_median:.2f}x")
    for isolation, times in ours.items():
        median = statistics.median(times)
        print(f"  jobcontrol {isolation} (PostgreSQL record): {median:.2f}s ({min(times):.2f}s)"
              f": {median / celery_median:.2f}x (target: at most 1.5x)")
    if cpu:
        print("CPU seconds, medians of the runs (all of a side, then by kind of process):")
        for side, kinds in cpu.items():
            total = statistics.median([sum(run) for run in zip(*kinds.values(), strict=True)])
            print(f"  {side}: {total:.2f}s: " + ", ".join(
                f"{kind} {statistics.median(values):.2f}s" for kind, values in kinds.items()))

if __name__ == "__main__":
    main()
