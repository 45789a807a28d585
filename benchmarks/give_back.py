"""A worker whose config differs, beside one whose config matches: how long builds take to
end, and how often the stale worker gave one back before the matching worker took it.

Both workers (``jobcontrol worker --concurrency 1``) read one queue; the stale one's config
defines the job with other kwargs. Every build must end ``success``, run by the matching
worker. A giving-back worker in a hot loop would show thousands of give-backs and builds
held for seconds; see the "Workers whose config differs" section of ``benchmarks/README.rst``.

    python -m benchmarks.give_back --builds 100
    python -m benchmarks.give_back --broker amqp://guest:guest@127.0.0.1:5672//
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.celery_throughput import ROOT, bench_database, started
from jobcontrol import JobControl

CONFIG = """\
executor: {{type: celery, broker: "{broker}", queue: "{queue}"}}
jobs:
  - {{id: noop, function: noop.noop, kwargs: {{tag: {tag}}}, isolation: inline,
      concurrency: 100}}
"""


def project(folder: Path, broker: str, queue: str, tag: str) -> Path:
    folder.mkdir()
    (folder / "noop.py").write_text("def noop(tag=''):\n    return tag\n")
    config = folder / "jobs.yaml"
    config.write_text(CONFIG.format(broker=broker, queue=queue, tag=tag))
    return config


def worker(config: Path, storage: str) -> list[str]:
    return [sys.executable, "-m", "jobcontrol", "-c", str(config), "--storage", storage,
            "worker", "--concurrency", "1"]


def measure(broker: str, storage: str, builds: int, folder: Path) -> str:
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    current = project(folder / "current", broker, queue, "current")
    stale = project(folder / "stale", broker, queue, "stale")
    JobControl.from_config(current, storage).install()
    with started(worker(stale, storage), stale.parent, stale.parent / "worker.log"), \
            started(worker(current, storage), current.parent,
                    current.parent / "worker.log") as matching, \
            JobControl.from_config(current, storage) as jc:
        begin = time.perf_counter()
        made = [jc.submit("noop")[0] for _ in range(builds)]
        while True:
            ended = [jc.get_build(b.id) for b in made]
            if all(b.state.finished for b in ended):
                break
            time.sleep(0.05)
        elapsed = time.perf_counter() - begin
    states = sorted({b.state.value for b in ended})
    by_matching = all((b.worker_id or "").startswith(f"jobcontrol.{matching.pid}@")
                      for b in ended)
    waits = sorted((b.finished - b.created).total_seconds() for b in ended
                   if b.finished and b.created)
    given_back = (stale.parent / "worker.log").read_text().count(
        ": given back for a worker whose config matches")
    return (f"{builds} builds: {elapsed:.2f}s, states {states}, all by the matching worker: "
            f"{by_matching}; created to finished: median {statistics.median(waits):.3f}s, "
            f"max {waits[-1]:.3f}s; given back {given_back} times "
            f"({given_back / builds:.2f} a build)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/6")
    parser.add_argument("--postgresql", default=os.environ.get(
        "JOBCONTROL_TEST_POSTGRESQL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--database", default=None,
                        help="made and dropped if missing (default: one named for this run)")
    parser.add_argument("--builds", type=int, default=100)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    with bench_database(args.postgresql, args.database) as storage, \
            tempfile.TemporaryDirectory() as tmp:
        print(measure(args.broker, storage, args.builds, Path(tmp)))


if __name__ == "__main__":
    main()
