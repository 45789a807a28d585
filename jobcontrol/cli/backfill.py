"""``jobcontrol backfill``: a job's scheduled instants in a window, oldest first."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TYPE_CHECKING

import click

from jobcontrol.cli.build import TextObserver
from jobcontrol.cli.helpers import complete_job_ids, echo, echo_json, format_option, pass_jc
from jobcontrol.cli.schedule import _When
from jobcontrol.errors import ExitCode
from jobcontrol.present import build_json
from jobcontrol.timeutil import isoformat

if TYPE_CHECKING:
    from jobcontrol.core import JobControl


@click.command()
@click.argument("job", shell_complete=complete_job_ids)
@click.option("--from", "start", type=_When(), required=True,
              help="The first instant of the window (ISO 8601; UTC without an offset).")
@click.option("--to", "end", type=_When(), required=True,
              help="The last instant of the window (included).")
@click.option("--dry-run", "-n", is_flag=True,
              help="List the window's instants and which were taken on already; build "
                   "nothing.")
@click.option("--force", is_flag=True, help="Backfill a paused job too.")
@format_option
@pass_jc
def backfill(jc: JobControl, job: str, start: datetime, end: datetime, dry_run: bool,
             force: bool, fmt: str) -> None:
    """Build JOB once for each instant of its schedule from --from to --to, oldest first,
    as one run. Each instant is claimed as run-due claims it: one already taken on (by
    run-due, or a backfill interrupted and started again) is not built twice.

    Exit status: 0 every instant built or taken on before, 1 a build failed or an instant
    could not be built, or a cancelled build (Ctrl-C) stopped it.
    """
    from jobcontrol.backfill import backfill as run_backfill
    from jobcontrol.backfill import taken_instants, window_instants

    if dry_run:
        instants = window_instants(jc, job, start, end)
        taken = taken_instants(jc, job)
        if fmt == "json":
            echo_json([{"instant": isoformat(i), "taken": taken.get(i)} for i in instants])
            return
        for instant in instants:
            state = f"taken on already ({taken[instant]})" if instant in taken else "to build"
            echo(f"{isoformat(instant)}  {state}")
        if not instants:
            echo("no instant of its schedule in that window")
        return
    text = TextObserver(live=sys.stdout.isatty()) if fmt == "table" else None
    report = run_backfill(jc, job, start, end, observer=text, force=force)
    if fmt == "json":
        echo_json({
            "run": None if report.run is None else report.run.id,
            "resumed": report.resumed,
            "stopped": report.stopped,
            "built": [{"instant": isoformat(i), "build": build_json(b)}
                      for i, b in report.built],
            "taken": [{"instant": isoformat(i), "outcome": o} for i, o in report.taken],
            "unfinished": [{"instant": isoformat(i), "build": build_json(b)}
                           for i, b in report.unfinished],
            "not_built": [{"instant": isoformat(i), "reason": r} for i, r in report.not_built],
        })
    else:
        for instant, why in report.not_built:
            echo(f"{job}: instant {isoformat(instant)} not built ({why})", err=True)
        if report.stopped:
            echo(f"{job}: stopped: {report.stopped}; the same command goes on from there",
                 err=True)
        for instant, build in report.unfinished:
            echo(f"{job}: instant {isoformat(instant)} was taken on before: build "
                 f"#{build.id} {build.state.value}, not built again (jobcontrol build {job} "
                 f"--retry-of {build.id} builds it for that instant)", err=True)
        run = f"run #{report.run.id}" if report.run else "no run"
        echo(f"{job}: {_count(len(report.built), 'instant')} built, {len(report.taken)} taken "
             f"on before, {len(report.not_built)} not built ({run}"
             f"{', resumed' if report.resumed else ''})")
    if report.failed:
        sys.exit(ExitCode.FAILED)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


COMMANDS = [backfill]
