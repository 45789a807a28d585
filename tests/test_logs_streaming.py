"""``jobcontrol logs`` streams: a log of any length is read a page at a time, in bounded
memory, on every storage; ``--level``, ``--format json`` and ``--follow`` still work."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from jobcontrol.models import Build, BuildState, LogCutoff, LogRecord
from jobcontrol.storage import Storage, open_storage
from jobcontrol.timeutil import utcnow
from tests.processes import ROOT, Project
from tests.support import Cli, make_project

CONFIG = """\
jobs:
  - id: big
    function: jobfuncs.noop
"""
#: lines of the big log: enough that holding them all takes far more than the bound
BIG_LOG = 200_000
#: most a ``logs`` process may grow past one printing a one-line log (KiB); the old
#: ``logs``, holding every record, grew ~130 MB for these 200,000 lines (~620 MB for 1M)
RSS_BOUND_KB = 40_000


def claim(storage: Storage, job_id: str = "big") -> Build:
    return storage.claim_build(job_id, concurrency=5, definition={}, definition_hash="",
                               dependency_builds={}, host="h", pid=1)


def level_of(n: int) -> int:
    """Every tenth line a warning, the rest info."""
    return logging.WARNING if n % 10 == 0 else logging.INFO


def append_lines(storage: Storage, build_id: int, count: int, start: int = 0) -> None:
    """``count`` log lines "line N", in batches of 50,000 (a few seconds for 200,000)."""
    now = utcnow()
    for first in range(start, start + count, 50_000):
        storage.append_logs(build_id, [
            LogRecord(now, level_of(n), "bulk", f"line {n} " + "x" * 40)
            for n in range(first, min(start + count, first + 50_000))
        ])


def test_iter_logs_reads_every_record_a_page_at_a_time(storage: Storage) -> None:
    build = claim(storage)
    append_lines(storage, build.id, 25)
    storage.finish_build(build.id, BuildState.SUCCESS)
    # holes: the info lines of the first half pruned, as retention does
    storage.delete_logs([build.id], [LogCutoff(logging.INFO, utcnow() + timedelta(1))])
    append_lines(storage, build.id, 25, start=25)
    kept = storage.get_logs(build.id)
    assert len(kept) == 3 + 25
    for page in (1, 2, 7, 1000):
        assert list(storage.iter_logs(build.id, page=page)) == kept
        warnings = list(storage.iter_logs(build.id, min_level=logging.WARNING, page=page))
        assert warnings == [r for r in kept if r.level >= logging.WARNING]
        after = list(storage.iter_logs(build.id, after_seq=kept[5].seq, page=page))
        assert after == kept[6:]
    assert list(storage.iter_logs(build.id + 1)) == []
    assert storage.get_logs(build.id, after_seq=kept[3].seq - 1,
                            until_seq=kept[7].seq) == kept[3:8]


def test_iter_logs_reads_records_appended_meanwhile(storage: Storage) -> None:
    build = claim(storage)
    append_lines(storage, build.id, 10)
    read = []
    for record in storage.iter_logs(build.id, page=4):
        read.append(record.message.split()[1])
        if len(read) == 6:
            append_lines(storage, build.id, 5, start=10)
    assert read == [str(n) for n in range(15)]


def peak_rss(*args: str, out: Path) -> int:
    """Run ``jobcontrol ARGS`` with its output in ``out``; its peak RSS in KiB, as read
    from ``VmHWM`` while it runs (a high-water mark: the last reading is the highest).
    Not ``wait4``'s ``ru_maxrss``: that counts the test process it was forked from."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBCONTROL_")}
    peak = 0
    with out.open("w") as stdout:
        process = subprocess.Popen([sys.executable, "-m", "jobcontrol", *args], stdout=stdout,
                                   stderr=subprocess.PIPE, env={**env, "PYTHONPATH": str(ROOT)})
        status = Path(f"/proc/{process.pid}/status")
        while process.poll() is None:
            with contextlib.suppress(OSError):
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
            time.sleep(0.005)
        _, err = process.communicate()
    assert process.returncode == 0, err
    return peak


@pytest.fixture(params=["sqlite", "postgresql"])
def big_project(request: pytest.FixtureRequest, tmp_path: Path) -> Project:
    return Project.on(request, tmp_path, CONFIG)


def test_logs_of_a_huge_build_run_in_bounded_memory(big_project: Project,
                                                    tmp_path: Path) -> None:
    storage = open_storage(big_project.storage_url)
    try:
        small = claim(storage)
        append_lines(storage, small.id, 1)
        big = claim(storage)
        append_lines(storage, big.id, BIG_LOG)
        for build in (small, big):
            storage.finish_build(build.id, BuildState.SUCCESS)
    finally:
        storage.close()
    base_rss = peak_rss(*big_project.args("logs", str(small.id)), out=tmp_path / "small")
    big_rss = peak_rss(*big_project.args("logs", str(big.id)), out=tmp_path / "big")
    print(f"peak RSS of logs: {base_rss} KiB for 1 line, {big_rss} KiB for {BIG_LOG}")
    assert big_rss - base_rss < RSS_BOUND_KB
    lines = (tmp_path / "big").read_text().splitlines()
    assert len(lines) == BIG_LOG
    assert lines[0].endswith("line 0 " + "x" * 40)
    assert lines[-1].endswith(f"line {BIG_LOG - 1} " + "x" * 40)
    # the JSON lines of the warnings only, streamed too
    json_rss = peak_rss(*big_project.args("logs", str(big.id), "--format", "json",
                                             "--level", "warning"), out=tmp_path / "json")
    assert json_rss - base_rss < RSS_BOUND_KB
    with (tmp_path / "json").open() as printed:
        records = [json.loads(line) for line in printed]
    assert len(records) == BIG_LOG // 10
    assert {record["level"] for record in records} == {"WARNING"}
    assert [record["seq"] for record in records[:3]] == [1, 11, 21]


def test_follow_reads_a_log_longer_than_a_page(tmp_path: Path, storage: Storage) -> None:
    cli = Cli(make_project(tmp_path, CONFIG), storage)
    build = claim(storage)
    append_lines(storage, build.id, 2500)  # 2.5 pages before it starts

    def writer() -> None:  # more pages while it follows, then the outcome
        for start in range(2500, 5000, 500):
            append_lines(storage, build.id, 500, start=start)
        storage.finish_build(build.id, BuildState.SUCCESS)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        result = cli("logs", str(build.id), "--follow", "--interval", "0.05")
    finally:
        thread.join()
    numbers = [int(line.split()[-2]) for line in result.output.splitlines()]
    assert numbers == list(range(5000))
