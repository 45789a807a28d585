"""``python -m benchmarks``: run the workloads, alternating tools, and print the table.

Each run of each case is a new Python process (so imports, caches and memory do not carry
over) in a new temporary folder. Runs alternate: every case once, then every case again,
``--repeat`` times, so a slow minute on a shared machine hits every tool alike.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT
from benchmarks.targets import check_targets
from benchmarks.workloads import QUICK, TITLES, Case, Sizes, cases


@dataclasses.dataclass
class Outcome:
    """Every run of one case."""

    case: Case
    seconds: list[float] = dataclasses.field(default_factory=list)
    peak_kb: list[int] = dataclasses.field(default_factory=list)
    count: int = 0
    note: str = ""
    skipped: str | None = None
    error: str | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None

    @property
    def per_unit(self) -> float | None:
        median = self.median
        return None if median is None or not self.count else median / self.count


def run_once(case: Case, keep: bool) -> tuple[dict[str, Any], int]:
    """One run in a new process; its result and its peak resident memory in KiB (the
    largest process of its tree: a worker it started counts)."""
    workdir = Path(tempfile.mkdtemp(prefix="jobcontrol-bench-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    payload = json.dumps({"target": case.target, "kwargs": case.kwargs})
    with (workdir / "child.err").open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "benchmarks.child", payload,
                                 str(workdir)], cwd=workdir, env=env,
                                stdout=subprocess.PIPE, stderr=err)
        assert proc.stdout is not None
        output = proc.stdout.read().decode("utf-8", "replace")
        proc.stdout.close()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
    if lines:
        outcome = json.loads(lines[-1][len("RESULT "):])
    else:
        tail = (workdir / "child.err").read_text(errors="replace").strip().splitlines()[-1:]
        outcome = {"error": f"exit {proc.returncode}: {' '.join(tail)}"[:200]}
    if "error" in outcome:
        print(f"  {case.key}: {outcome['error']} (details: {workdir}/child.err)",
              file=sys.stderr)
        keep = True
    if not keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return outcome, usage.ru_maxrss


def run_all(selected: list[Case], repeat: int, keep: bool) -> list[Outcome]:
    outcomes = {case.key: Outcome(case) for case in selected}
    for round_no in range(repeat):
        # rotate the order each round: no tool always runs first, or right after another
        shift = round_no % max(1, len(selected))
        for case in selected[shift:] + selected[:shift]:
            out = outcomes[case.key]
            if out.skipped or out.error:
                continue  # a missing package stays missing: do not retry it every round
            started = time.monotonic()
            result, peak = run_once(case, keep)
            if "skipped" in result:
                out.skipped = result["skipped"]
            elif "error" in result:
                out.error = result["error"]
            else:
                out.seconds.append(result["seconds"])
                out.peak_kb.append(peak)
                out.count = result["count"]
                out.note = result.get("note", "")
            print(f"  [{round_no + 1}/{repeat}] {case.key}: "
                  f"{_status(out, result)} ({time.monotonic() - started:.1f} s)",
                  file=sys.stderr, flush=True)
    return [outcomes[case.key] for case in selected]


def _status(out: Outcome, result: dict[str, Any]) -> str:
    if "seconds" in result:
        return f"{result['seconds'] * 1000:.1f} ms"
    return out.skipped or out.error or "?"


def _time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 0.001:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds * 1e6:.0f} µs"


def table(outcomes: list[Outcome]) -> str:
    """The results as a plain-text table, one block per workload."""
    headers = ["tool", "median", "min-max", "per unit", "vs jobcontrol", "peak RSS", "note"]
    rows: list[list[str] | str] = []
    for workload, title in TITLES.items():
        group = [o for o in outcomes if o.case.workload == workload]
        if not group:
            continue
        rows.append(f"{workload}. {title}")
        reference = next((o.per_unit for o in group
                          if o.case.family == "jobcontrol" and o.per_unit), None)
        for out in group:
            if out.median is None:
                reason = f"skipped: {out.skipped}" if out.skipped else f"error: {out.error}"
                rows.append([out.case.label, "—", "", "", "", "", reason])
                continue
            per = out.per_unit or 0.0
            ratio = f"{per / reference:.2f}x" if reference else ""
            rows.append([
                out.case.label, _time(out.median),
                f"{_time(min(out.seconds))}-{_time(max(out.seconds))}",
                f"{_time(per)}/{out.case.unit}" if out.count > 1 else "",
                ratio, f"{max(out.peak_kb) / 1024:.0f} MB", out.note,
            ])
    widths = [len(h) for h in headers]
    for row in rows:
        if isinstance(row, list):
            widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    line = "  ".join("-" * w for w in widths)
    text = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(), line]
    for row in rows:
        if isinstance(row, str):
            text += ["", row]
        else:
            cells = (cell.ljust(w) for cell, w in zip(row, widths, strict=True))
            text.append("  ".join(cells).rstrip())
    return "\n".join(text)


def machine() -> str:
    """One line about where the numbers come from."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")


def compile_sources() -> None:
    """Byte-compile the checkout's jobcontrol and benchmarks, as ``pip install`` does for
    an installed package and for every peer: where ``PYTHONDONTWRITEBYTECODE`` is set,
    each measured process would otherwise compile jobcontrol's sources again (measured:
    11 ms of ``import jobcontrol.storage.sql`` alone)."""
    import compileall

    for folder in ("jobcontrol", "benchmarks"):
        compileall.compile_dir(str(ROOT / folder), quiet=1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    parser.add_argument("--only", metavar="WORKLOADS",
                        help="comma-separated workload numbers (1-6), e.g. --only 1,5")
    parser.add_argument("--tools", metavar="FAMILIES",
                        help="comma-separated: jobcontrol, baseline, doit, huey, luigi, "
                             "celery, rq, procrastinate (default: all)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each case (default 5)")
    parser.add_argument("--jobs", type=int, help="workload 1's size (default 1000)")
    parser.add_argument("--keep", action="store_true", help="keep every run's folder")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    if args.jobs:
        sizes = dataclasses.replace(sizes, jobs=args.jobs)
    selected = cases(sizes)
    if args.only:
        wanted = {w.strip() for w in args.only.split(",")}
        unknown = wanted - set(TITLES)
        if unknown:
            parser.error(f"--only: no workload {', '.join(sorted(unknown))} (1-6)")
        selected = [c for c in selected if c.workload in wanted]
    if args.tools:
        families = {f.strip() for f in args.tools.split(",")}
        selected = [c for c in selected if c.family in families]
    compile_sources()
    print(f"{len(selected)} cases x {args.repeat} runs on {machine()}", file=sys.stderr)
    outcomes = run_all(selected, max(1, args.repeat), args.keep)
    print(f"\nmachine: {machine()}; medians of {args.repeat} runs"
          f"{' (--quick sizes)' if args.quick else ''}\n")
    print(table(outcomes))
    verdicts = check_targets(outcomes)
    if verdicts:
        print("\ntargets (issue 5):")
        for verdict in verdicts:
            print(f"  {verdict}")
