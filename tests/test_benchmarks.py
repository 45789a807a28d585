"""The benchmark suite still runs: ``python -m benchmarks --quick`` on jobcontrol's own cases
(peers not installed here are reported skipped). Times are printed, never asserted."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_quick_run_prints_the_table(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JOBCONTROL_BENCH_CACHE": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--repeat", "1",
         "--tools", "jobcontrol,baseline,doit"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "tool" in out and "median" in out and "peak RSS" in out
    for title in ("1. ", "2. ", "3. ", "4. ", "5. ", "6. "):
        assert f"\n{title}" in out, f"workload {title} missing:\n{out}"
    assert "jobcontrol inline, SQLite" in out
    assert "jobcontrol pool, SQLite" in out
    assert "logging.FileHandler" in out
    assert "error:" not in out, out
    # a peer is measured or reported skipped, never missing from the table
    assert "doit (sqlite3 backend)" in out
    assert "targets (issue 5):" in out


def test_a_missing_peer_is_reported_skipped() -> None:
    from benchmarks.common import Skipped, require

    try:
        require("no_such_peer_package", "no-such-peer")
    except Skipped as exc:
        assert "no-such-peer not installed" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("require() did not skip")


def test_breakdown_prints_every_part_beside_its_floor() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.breakdown", "--jobs", "20", "--runs", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("workload 1, inline, SQLite, 20 jobs")
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:] if line.strip()}
    for part in ("config", "claim", "finish", "job", "capture", "orchestration", "total"):
        assert part in rows, done.stdout
        assert float(rows[part][0]) > 0, done.stdout  # a time was measured for each part
    assert float(rows["claim"][1]) > 0 and float(rows["config"][1]) > 0  # floors measured
    least = next(line for line in lines if line.startswith("least recorder"))
    assert float(least.split()[2]) > 0, done.stdout  # the least recorder was timed


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux)")
def test_breakdown_of_process_isolation_counts_each_process() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.breakdown", "--isolation", "process",
         "--jobs", "20", "--runs", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("workload 1, process isolation, SQLite, 20 jobs")
    rows = [line.split() for line in lines[2:]]
    names = [" ".join(row[:-2]) for row in rows if len(row) >= 3 and row[-1].isdigit()]
    assert names[:3] == ["runner", "build processes", "all"], done.stdout
    assert "parent" in names and "child" in names, done.stdout  # the fork floor's processes
    assert any(line.startswith("least recorder, a fork a build") for line in lines)
    walls = [float(row[1]) for row in rows if row and row[0] == "wall"]
    assert len(walls) == 3 and all(wall > 0 for wall in walls), done.stdout
    # the build processes ran: the runner collected them, with their page faults
    build_processes = next(row for row in rows if row[:2] == ["build", "processes"])
    assert int(build_processes[-1]) > 0, done.stdout


def test_the_pool_targets_are_judged_on_the_peers_issue_20_names() -> None:
    from benchmarks.targets import check_targets
    from benchmarks.workloads import Case

    def outcome(workload: str, label: str, family: str, per_unit: float) -> SimpleNamespace:
        return SimpleNamespace(case=Case(workload, label, family, "x"), per_unit=per_unit,
                               median=per_unit)

    outcomes = [
        outcome("1", "jobcontrol inline, SQLite", "jobcontrol", 0.0002),
        outcome("1", "jobcontrol pool, SQLite", "jobcontrol", 0.0004),
        outcome("1", "Huey immediate (SqliteHuey)", "huey", 0.0001),  # not one of them
        outcome("1", "Huey consumer (SqliteHuey)", "huey", 0.0007),
        outcome("1", "Celery (Redis, warm worker)", "celery", 0.0016),
        outcome("1", "jobcontrol pool, PostgreSQL", "jobcontrol", 0.0012),
        outcome("1", "bare loop, same PostgreSQL commits", "baseline", 0.001),
        outcome("2", "jobcontrol pool, SQLite", "jobcontrol", 0.002),
        outcome("2", "Luigi requires", "luigi", 0.0009),
    ]
    lines = [line for line in check_targets(outcomes) if "pool" in line]
    assert lines == [
        "MET    w1 jobcontrol pool, SQLite (0.400 ms/job) faster than Huey consumer "
        "(SqliteHuey), Celery (Redis, warm worker) (fastest: Huey consumer (SqliteHuey), "
        "0.700 ms/job)",
        "MISSED w2 jobcontrol pool, SQLite (2.000 ms/job) faster than Luigi requires "
        "(fastest: Luigi requires, 0.900 ms/job)",
        "MISSED w1 pool SQLite within 1.5x of inline: 2.00x (0.400 ms vs 0.200 ms)",
        "MET    w1 pool PostgreSQL within 1.5x of the bare loop: 1.20x (1.200 ms vs "
        "1.000 ms)",
    ]


def test_the_inline_targets_are_judged_against_doit_and_the_bare_postgresql_loop() -> None:
    from benchmarks.targets import check_targets
    from benchmarks.workloads import Case

    def outcome(label: str, family: str, per_unit: float) -> SimpleNamespace:
        return SimpleNamespace(case=Case("1", label, family, "x"), per_unit=per_unit,
                               median=per_unit)

    outcomes = [
        outcome("jobcontrol inline, SQLite", "jobcontrol", 0.0003),
        outcome("doit (sqlite3 backend)", "doit", 0.0001),
        outcome("jobcontrol inline, PostgreSQL", "jobcontrol", 0.001),
        outcome("bare loop, same PostgreSQL commits", "baseline", 0.0008),
    ]
    lines = [line for line in check_targets(outcomes) if "issue 20" in line]
    assert lines == [
        "MISSED w1 inline SQLite within 2x of doit (issue 20): 3.00x (0.300 ms vs 0.100 ms)",
        "MET    w1 inline PostgreSQL within 1.5x of the bare loop (issue 20): 1.25x (1.000 ms "
        "vs 0.800 ms)",
    ]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_the_cpu_meter_tells_this_program_from_the_workers() -> None:
    pytest.importorskip("psycopg2", reason="the test extra installs psycopg2-binary")
    from benchmarks.celery_throughput import CpuMeter

    spin = ("import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end:\n"
            "    pass\nprint('spun', flush=True)\ntime.sleep(60)\n")
    worker = subprocess.Popen([sys.executable, "-c", spin], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        meter = CpuMeter()
        meter.start(worker.pid)  # its process group: the worker started
        end = time.process_time() + 0.2
        while time.process_time() < end:
            pass
        assert worker.stdout is not None and worker.stdout.readline() == "spun\n"
        meter.stop()  # while the worker lives: a process is counted alive
    finally:
        worker.kill()
        worker.communicate()  # reaped, its pipe closed
    assert set(meter.spent) == {"submitter", "workers", "postgresql", "redis"}
    assert meter.spent["workers"] >= 0.25
    assert 0.15 <= meter.spent["submitter"] < meter.spent["workers"] + 0.2
