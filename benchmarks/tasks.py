"""The job bodies every tool runs: the same work, the same two log lines a job.

In a peer's process, ``$BENCH_LOG_FILE`` sends the root logger to that file (peers keep no
log per task; a file is where a user's lines would go). jobcontrol captures them itself.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("bench")

if os.environ.get("BENCH_LOG_FILE"):
    logging.basicConfig(filename=os.environ["BENCH_LOG_FILE"], level=logging.INFO)


def noop(n: int = 0) -> int:
    """Workload 1: two log lines, return the argument."""
    log.info("job %d started", n)
    log.info("job %d done", n)
    return n


def step(prev: int = 0) -> int:
    """Workload 2: a link of a chain; returns its parent's value plus one."""
    log.info("step after %d started", prev)
    log.info("step after %d done", prev)
    return prev + 1


def many_lines(count: int) -> int:
    """Workload 3: ``count`` log lines."""
    for i in range(count):
        log.info("line %d of the long job", i)
    return count
