"""Step-to-step latency on workers: how long after a build ends does the build waiting for
it start? A chain of no-op jobs (``s1 → s2 → … → sN``) queued with ``build --async``
through a real ``jobcontrol worker`` (2 processes), timed from the records: each step's
``started`` minus its upstream's ``finished``, both written by the storage's clock.

    python benchmarks/step_latency.py
    python benchmarks/step_latency.py --steps 20 --runs 5 --broker amqp://guest:guest@127.0.0.1:5672//
    python benchmarks/step_latency.py --database jc_latency --queue latency

Needs ``pip install 'jobcontrol[celery,postgresql]'``, a broker and a PostgreSQL server.
Without ``--database``, each run makes a database of its own (``jobcontrol_latency_<pid>_<hex>``)
and drops it after; a database named by ``--database`` must exist and is left as it is.
The queue is unique unless ``--queue`` names one; nothing on the broker is flushed. The
code measured is the ``jobcontrol`` on ``sys.path`` (``PYTHONPATH``), workers included.
"""

from __future__ import annotations

import argparse
import itertools
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

CONFIG = """\
executor: {{type: celery, broker: "{broker}", queue: "{queue}"}}
jobs:
{jobs}
"""


def unique_name(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"


def chain_config(broker: str, queue: str, steps: int, isolation: str) -> str:
    jobs = []
    for step in range(1, steps + 1):
        deps = f", dependencies: [s{step - 1}]" if step > 1 else ""
        jobs.append(f"  - {{id: s{step}, function: steps.noop, isolation: {isolation}{deps}}}")
    return CONFIG.format(broker=broker, queue=queue, jobs="\n".join(jobs))


@contextmanager
def database(server: str, name: str | None) -> Iterator[str]:
    """The database ``name`` on ``server``, or a new one of this run's own, dropped after."""
    import psycopg2

    if name is not None:
        yield urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
        return
    made = unique_name("jobcontrol_latency")
    admin = psycopg2.connect(server)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{made}"')
    try:
        yield urlunsplit(urlsplit(server)._replace(path=f"/{made}"))
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{made}" WITH (FORCE)')
        admin.close()


@contextmanager
def worker(config: Path, storage: str, processes: int) -> Iterator[None]:
    """``jobcontrol worker``, once its log says it is ready; stopped after."""
    log = config.parent / "worker.log"
    path = os.pathsep.join(filter(None, [str(config.parent), os.environ.get("PYTHONPATH")]))
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "jobcontrol", "-c", str(config), "--storage", storage,
             "worker", "--concurrency", str(processes)], cwd=config.parent,
            env={**os.environ, "PYTHONPATH": path}, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while " ready." not in log.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def one_chain(jc: object, steps: int) -> list[float]:
    """Queue the whole chain once, wait for its end; the gaps between steps, in seconds."""
    from jobcontrol import BuildState

    builds = jc.submit([f"s{step}" for step in range(1, steps + 1)])  # type: ignore[attr-defined]
    deadline = time.monotonic() + 60 + steps * 5
    while True:
        ended = [jc.storage.get_build(b.id) for b in builds]  # type: ignore[attr-defined]
        if all(b.state.finished for b in ended):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"the chain did not end: {[str(b.state) for b in ended]}")
        time.sleep(0.05)
    bad = [b for b in ended if b.state is not BuildState.SUCCESS]
    if bad:
        raise RuntimeError(f"build {bad[0].id} {bad[0].state}: {bad[0].reason}")
    return [(later.started - earlier.finished).total_seconds()
            for earlier, later in itertools.pairwise(ended)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/6")
    parser.add_argument("--queue", default=None, help="default: a name of this run's own")
    parser.add_argument("--postgresql", default=os.environ.get(
        "JOBCONTROL_TEST_POSTGRESQL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="the server (its URL's database is only connected to)")
    parser.add_argument("--database", default=None,
                        help="an existing database to use, left as it is (default: a new "
                             "one of this run's own, dropped after)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--isolation", choices=["process", "inline", "pool"],
                        default="process")
    args = parser.parse_args()

    from jobcontrol import JobControl

    gaps: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, database(args.postgresql, args.database) as url:
        folder = Path(tmp)
        (folder / "steps.py").write_text("def noop():\n    return None\n")
        config = folder / "jobs.yaml"
        config.write_text(chain_config(args.broker, args.queue or unique_name("latency"),
                                       args.steps, args.isolation))
        with JobControl.from_config(config, url) as jc:
            jc.install()
            with worker(config, url, args.processes):
                one_chain(jc, args.steps)  # warm: imports, fork server, connections
                for number in range(1, args.runs + 1):
                    run = one_chain(jc, args.steps)
                    gaps += run
                    print(f"run {number}: median {statistics.median(run) * 1000:.1f} ms, "
                          f"max {max(run) * 1000:.1f} ms", flush=True)
    print(f"{args.steps}-step chain, {args.runs} runs, {args.processes} worker processes, "
          f"isolation {args.isolation}, broker {urlsplit(args.broker).scheme}: "
          f"step-to-step median {statistics.median(gaps) * 1000:.1f} ms, "
          f"min {min(gaps) * 1000:.1f} ms, max {max(gaps) * 1000:.1f} ms "
          f"({len(gaps)} steps)")


if __name__ == "__main__":
    main()
